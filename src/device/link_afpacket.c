/*
 * AF_PACKET link driver: a SOCK_RAW/ETH_P_ALL packet socket bound to one interface, with a
 * TPACKET_V3 receive ring and a TPACKET_V3 transmit ring sharing one mmap.
 *
 * Receive: the V3 ring is a set of large blocks (1 MiB here) that the kernel fills with
 * variable-sized frames and hands over whole, when a block is full or its retire timer expires.
 * Large blocks matter because a local peer (veth) can hand over GSO super-frames of up to 64 KiB,
 * and V3 limits a frame by the block, not by a fixed slot. The retire timeout is the latency floor
 * of this driver (1 ms by default): the socket only becomes readable when a block is retired.
 * PACKET_IGNORE_OUTGOING keeps our own transmissions (and anything else leaving the port) out of
 * the ring.
 *
 * Transmit: a TPACKET_V3 TX ring (fixed-size slots, supported since Linux 4.11) filled by tx() and
 * pushed with one send() per batch in flush(), with PACKET_QDISC_BYPASS (the device does its own
 * pacing; no qdisc in between) and PACKET_LOSS (a frame the kernel refuses is discarded instead of
 * stalling the ring). If the kernel refuses the TX ring, the driver falls back to sendmmsg() of a
 * batch copied into a private buffer: slower, same semantics. Chosen over sendmmsg() as the primary
 * path because the ring costs no system call per frame and no per-frame copy into the kernel
 * beyond the ring itself.
 *
 * Frames that a local sender left with a partial L4 checksum (CHECKSUM_PARTIAL, reported as
 * TP_STATUS_CSUMNOTREADY) get the checksum completed here, so the engine and the pcap see what a
 * real wire would carry. 802.1Q tags that the kernel moved into metadata (TP_STATUS_VLAN_VALID) are
 * put back into the frame for the same reason.
 */
#define _GNU_SOURCE

#include "device/link.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"
#include "wire/udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define RX_BLOCK_SIZE (1u << 20) /* 1 MiB: room for many frames and any GSO super-frame */
#define RX_BLOCK_NR 8u
#define RX_FRAME_SIZE 2048u /* only used by the ring arithmetic in V3 */
#define RX_DEFAULT_TOV_MS 1u
#define TX_FRAME_NR 256u
#define TX_BLOCK_SIZE (1u << 16)
/* Where the kernel reads TX data in a slot (no PACKET_TX_HAS_OFF). */
#define TX_DATA_OFF TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
#define FALLBACK_BATCH 64u

struct afp {
  int fd;
  uint8_t *map;
  size_t map_len;
  /* RX ring */
  uint8_t *rx_ring;
  unsigned rx_block_nr;
  unsigned rx_block_size;
  unsigned rx_next; /* next block to look at */
  unsigned rx_tov_ms;
  uint16_t mtu;
  uint8_t *scratch; /* frame with a restored VLAN tag */
  size_t scratch_len;
  /* TX ring (tx_ring == NULL: sendmmsg fallback) */
  uint8_t *tx_ring;
  unsigned tx_frame_nr;
  unsigned tx_frame_size;
  unsigned tx_frames_per_block;
  unsigned tx_block_size;
  unsigned tx_next;
  unsigned tx_pending; /* slots marked SEND_REQUEST since the last kick */
  /* fallback batch */
  uint8_t *fb_buf;
  struct mmsghdr fb_msgs[FALLBACK_BATCH];
  struct iovec fb_iov[FALLBACK_BATCH];
  unsigned fb_count;
  uint32_t fwmark;
  bool promisc;
};

static struct afp *afp_of(const struct toed_link *l)
{
  return (struct afp *)l->priv;
}

static unsigned roundup_pow2(unsigned v)
{
  unsigned p = 1;
  while (p < v)
    p <<= 1;
  return p;
}

/* ------------------------------------------------------------------------------------------- */
/* Checksum completion for frames a local sender left with CHECKSUM_PARTIAL.                     */

/* Completes a TCP or UDP checksum over `seg` (seg_len bytes) given the pseudo-header sum. */
static bool finish_l4(uint8_t *seg, size_t seg_len, uint8_t proto, uint32_t pseudo_sum)
{
  size_t off;
  if (proto == TOE_IPPROTO_TCP) {
    if (seg_len < TOE_TCP_HLEN)
      return false;
    off = 16;
  } else if (proto == TOE_IPPROTO_UDP) {
    if (seg_len < TOE_UDP_HLEN)
      return false;
    off = 6;
  } else {
    return false;
  }
  seg[off] = 0;
  seg[off + 1] = 0;
  uint16_t c = toe_csum_fold(toe_csum_partial(seg, seg_len, pseudo_sum));
  /* RFC 768: a computed zero is sent as all ones (zero means "no checksum"). */
  if (proto == TOE_IPPROTO_UDP && c == 0)
    c = 0xffff;
  memcpy(seg + off, &c, 2);
  return true;
}

/* Returns true if the frame carried a TCP/UDP segment whose checksum was completed. */
static bool fix_partial_csum(uint8_t *frame, size_t len)
{
  struct toe_eth_view eth;
  if (toe_eth_parse(&eth, frame, len) != 0)
    return false;
  uint8_t *l3 = frame + eth.hdr_len;
  size_t l3_len = len - eth.hdr_len;

  if (eth.ethertype == TOE_ETHERTYPE_IPV4) {
    struct toe_ipv4_view ip;
    /* The kernel always fills the IPv4 header checksum; only the L4 one is partial. */
    if (toe_ipv4_parse(&ip, l3, l3_len, l3_len, true) != 0 || toe_ipv4_is_fragment(&ip))
      return false;
    if (ip.proto != TOE_IPPROTO_TCP && ip.proto != TOE_IPPROTO_UDP)
      return false;
    uint8_t *seg = l3 + ip.hdr_len;
    size_t seg_len = (size_t)ip.total_len - ip.hdr_len;
    if (ip.proto == TOE_IPPROTO_UDP) {
      struct toe_udp_view u;
      if (toe_udp_parse(&u, seg, seg_len, seg_len) != 0)
        return false;
      seg_len = u.len; /* the UDP length field bounds the checksummed bytes */
    } else {
      struct toe_tcp_view t;
      if (toe_tcp_parse(&t, seg, seg_len, seg_len) != 0)
        return false;
    }
    uint32_t ps = toe_csum_pseudo_v4(ip.src, ip.dst, ip.proto, (uint16_t)seg_len);
    return finish_l4(seg, seg_len, ip.proto, ps);
  }
  if (eth.ethertype == TOE_ETHERTYPE_IPV6) {
    /* The engine does not terminate IPv6 yet, but the pcap should still show valid checksums.
     * Only a TCP/UDP header directly after the fixed header is handled (no extension headers). */
    if (l3_len < 40 || (l3[0] >> 4) != 6)
      return false;
    size_t plen = ((size_t)l3[4] << 8) | l3[5];
    uint8_t nh = l3[6];
    if (plen > l3_len - 40 || (nh != TOE_IPPROTO_TCP && nh != TOE_IPPROTO_UDP))
      return false;
    /* RFC 8200 8.1 pseudo-header: addresses, upper-layer length (32 bits), next header. */
    uint8_t tail[8] = {0, 0, (uint8_t)(plen >> 8), (uint8_t)plen, 0, 0, 0, nh};
    uint32_t ps = toe_csum_partial(l3 + 8, 32, 0);
    ps = toe_csum_partial(tail, sizeof tail, ps);
    return finish_l4(l3 + 40, plen, nh, ps);
  }
  return false;
}

/* ------------------------------------------------------------------------------------------- */
/* Receive                                                                                      */

static void afp_read_kernel_drops(struct toed_link *l)
{
  struct afp *a = afp_of(l);
  struct tpacket_stats_v3 st;
  socklen_t sl = sizeof st;
  /* The kernel clears its counters on every read, so they are accumulated here. */
  if (getsockopt(a->fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0)
    l->stats.rx_drop_kernel += st.tp_drops;
}

static void afp_deliver(struct toed_link *l, struct tpacket3_hdr *h, uint8_t *data,
                        toed_link_rx_fn cb, void *ctx)
{
  struct afp *a = afp_of(l);
  size_t len = h->tp_snaplen;
  uint8_t *frame = data;

  if (h->tp_snaplen < h->tp_len) {
    l->stats.rx_drop_truncated++;
    return;
  }
  if (len < TOE_ETH_HLEN) {
    l->stats.rx_drop_malformed++;
    return;
  }
  if (h->tp_status & TP_STATUS_VLAN_VALID) {
    /* The kernel (or the NIC) took the 802.1Q tag out of the frame: put it back. */
    if (len + 4 > a->scratch_len) {
      l->stats.rx_drop_truncated++;
      return;
    }
    uint16_t tpid =
        (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : TOE_ETHERTYPE_VLAN;
    uint16_t tci = (uint16_t)h->hv1.tp_vlan_tci;
    memcpy(a->scratch, data, 12);
    a->scratch[12] = (uint8_t)(tpid >> 8);
    a->scratch[13] = (uint8_t)tpid;
    a->scratch[14] = (uint8_t)(tci >> 8);
    a->scratch[15] = (uint8_t)tci;
    memcpy(a->scratch + 16, data + 12, len - 12);
    frame = a->scratch;
    len += 4;
    l->stats.rx_vlan_restored++;
  }
  if ((h->tp_status & TP_STATUS_CSUMNOTREADY) && fix_partial_csum(frame, len))
    l->stats.rx_csum_fixed++;
  if (len > (size_t)a->mtu + TOE_ETH_VLAN_HLEN)
    l->stats.rx_gso_frames++;

  l->stats.rx_frames++;
  l->stats.rx_bytes += len;
  cb(ctx, frame, len, (uint64_t)h->tp_sec * 1000000000ull + h->tp_nsec);
}

static unsigned afp_rx_burst(struct toed_link *l, toed_link_rx_fn cb, void *ctx, unsigned budget)
{
  struct afp *a = afp_of(l);
  unsigned delivered = 0;

  /* Whole blocks only: a block goes back to the kernel once all of its frames were handled. */
  for (unsigned round = 0; round < a->rx_block_nr && delivered < budget; round++) {
    uint8_t *blk = a->rx_ring + (size_t)a->rx_next * a->rx_block_size;
    struct tpacket_block_desc *bd = (struct tpacket_block_desc *)(void *)blk;
    uint32_t status = __atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE);
    if (!(status & TP_STATUS_USER))
      break;
    if (status & TP_STATUS_LOSING)
      afp_read_kernel_drops(l);

    uint32_t n = bd->hdr.bh1.num_pkts;
    size_t off = bd->hdr.bh1.offset_to_first_pkt;
    size_t blk_len = bd->hdr.bh1.blk_len;
    if (blk_len > a->rx_block_size)
      blk_len = a->rx_block_size;
    for (uint32_t i = 0; i < n; i++) {
      /* Distrust the descriptors just enough never to read outside the block. */
      if (off + sizeof(struct tpacket3_hdr) > blk_len) {
        l->stats.rx_drop_malformed += n - i;
        break;
      }
      struct tpacket3_hdr *h = (struct tpacket3_hdr *)(void *)(blk + off);
      if ((size_t)h->tp_mac + h->tp_snaplen > blk_len - off) {
        l->stats.rx_drop_malformed += n - i;
        break;
      }
      afp_deliver(l, h, blk + off + h->tp_mac, cb, ctx);
      delivered++;
      if (h->tp_next_offset == 0)
        break;
      off += h->tp_next_offset;
    }
    l->stats.rx_blocks++;
    __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    a->rx_next = (a->rx_next + 1) % a->rx_block_nr;
  }
  return delivered;
}

/* ------------------------------------------------------------------------------------------- */
/* Transmit                                                                                     */

static struct tpacket3_hdr *tx_slot(struct afp *a, unsigned i)
{
  unsigned blk = i / a->tx_frames_per_block;
  unsigned in = i % a->tx_frames_per_block;
  return (struct tpacket3_hdr *)(void *)(a->tx_ring + (size_t)blk * a->tx_block_size +
                                         (size_t)in * a->tx_frame_size);
}

static size_t copy_chain(uint8_t *dst, const struct toe_pbuf *p)
{
  size_t n = 0;
  for (; p; p = p->next) {
    memcpy(dst + n, p->data, p->len);
    n += p->len;
  }
  return n;
}

static int afp_kick(struct toed_link *l)
{
  struct afp *a = afp_of(l);
  if (a->tx_pending == 0)
    return 0;
  a->tx_pending = 0;
  l->stats.tx_kicks++;
  if (send(a->fd, NULL, 0, MSG_DONTWAIT) < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    int e = errno;
    l->stats.tx_drop_error++;
    return -e;
  }
  return 0;
}

static int afp_fallback_flush(struct toed_link *l)
{
  struct afp *a = afp_of(l);
  unsigned done = 0;
  int err = 0;
  while (done < a->fb_count) {
    int r = sendmmsg(a->fd, a->fb_msgs + done, a->fb_count - done, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      /* The first remaining frame was refused; count it and go on with the rest. */
      err = -errno;
      l->stats.tx_drop_error++;
      done++;
      continue;
    }
    done += (unsigned)r;
  }
  if (a->fb_count)
    l->stats.tx_kicks++;
  a->fb_count = 0;
  return err;
}

static int afp_tx(struct toed_link *l, const struct toe_pbuf *frame)
{
  struct afp *a = afp_of(l);
  size_t len = frame->tot_len;

  if (len > a->tx_frame_size - TX_DATA_OFF) {
    l->stats.tx_drop_too_big++;
    return -EMSGSIZE;
  }
  if (!a->tx_ring) {
    if (a->fb_count == FALLBACK_BATCH)
      afp_fallback_flush(l);
    unsigned i = a->fb_count++;
    uint8_t *buf = a->fb_buf + (size_t)i * a->tx_frame_size;
    a->fb_iov[i].iov_base = buf;
    a->fb_iov[i].iov_len = copy_chain(buf, frame);
    memset(&a->fb_msgs[i], 0, sizeof a->fb_msgs[i]);
    a->fb_msgs[i].msg_hdr.msg_iov = &a->fb_iov[i];
    a->fb_msgs[i].msg_hdr.msg_iovlen = 1;
    l->stats.tx_frames++;
    l->stats.tx_bytes += len;
    return 0;
  }

  struct tpacket3_hdr *h = tx_slot(a, a->tx_next);
  uint32_t st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
  if (st == TP_STATUS_WRONG_FORMAT) {
    /* Only without PACKET_LOSS; reclaim the slot so the ring does not stall. */
    l->stats.tx_drop_error++;
    st = TP_STATUS_AVAILABLE;
  }
  if (st != TP_STATUS_AVAILABLE) {
    /* Ring full: push what is queued and look once more before giving up on this frame. */
    afp_kick(l);
    st = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
    if (st != TP_STATUS_AVAILABLE && st != TP_STATUS_WRONG_FORMAT) {
      l->stats.tx_drop_ring_full++;
      return -ENOBUFS;
    }
  }
  copy_chain((uint8_t *)h + TX_DATA_OFF, frame);
  h->tp_len = (uint32_t)len;
  h->tp_snaplen = (uint32_t)len;
  h->tp_next_offset = 0; /* the kernel rejects variable-sized TX slots */
  __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
  a->tx_next = (a->tx_next + 1) % a->tx_frame_nr;
  a->tx_pending++;
  l->stats.tx_frames++;
  l->stats.tx_bytes += len;
  return 0;
}

static int afp_flush(struct toed_link *l)
{
  struct afp *a = afp_of(l);
  return a->tx_ring ? afp_kick(l) : afp_fallback_flush(l);
}

/* ------------------------------------------------------------------------------------------- */
/* Setup                                                                                        */

static int afp_fail(char *err, size_t errlen, int e, const char *what, const char *ifname)
{
  snprintf(err, errlen, "%s on %s: %s%s", what, ifname, strerror(e),
           (e == EPERM || e == EACCES) ? " (run as root or with CAP_NET_RAW/CAP_NET_ADMIN)" : "");
  return -e;
}

static void afp_close(struct toed_link *l)
{
  struct afp *a = afp_of(l);
  if (!a)
    return;
  if (a->fd >= 0) {
    afp_flush(l);
    afp_read_kernel_drops(l);
  }
  if (a->map)
    munmap(a->map, a->map_len);
  if (a->fd >= 0)
    close(a->fd); /* also drops the promiscuous membership */
  free(a->scratch);
  free(a->fb_buf);
  free(a);
  l->priv = NULL;
}

static int afp_open(struct toed_link *l, const struct toed_link_params *p, char *err, size_t errlen)
{
  struct afp *a = calloc(1, sizeof *a);
  if (!a) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  l->priv = a;
  a->fd = -1;
  a->mtu = p->mtu;
  a->fwmark = p->fwmark;
  a->promisc = p->promisc;
  a->rx_tov_ms = p->rx_tov_ms ? p->rx_tov_ms : RX_DEFAULT_TOV_MS;
  int rc;
  int one = 1;

  /* Protocol 0 until the rings exist, so nothing queues on the socket before; bind() below
   * switches to ETH_P_ALL. */
  a->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (a->fd < 0) {
    rc = afp_fail(err, errlen, errno, "cannot open an AF_PACKET socket", p->ifname);
    goto fail;
  }
  int ver = TPACKET_V3;
  if (setsockopt(a->fd, SOL_PACKET, PACKET_VERSION, &ver, sizeof ver) < 0) {
    rc = afp_fail(err, errlen, errno, "PACKET_VERSION TPACKET_V3 refused", p->ifname);
    goto fail;
  }
  /* Not fatal on old kernels: without it we would also see (and hand the engine) our own TX. */
  if (setsockopt(a->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) < 0) {
    rc = afp_fail(err, errlen, errno, "PACKET_IGNORE_OUTGOING refused", p->ifname);
    goto fail;
  }
  /* Performance only; ignore if unsupported. */
  (void)setsockopt(a->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  (void)setsockopt(a->fd, SOL_PACKET, PACKET_LOSS, &one, sizeof one);
  if (p->fwmark && setsockopt(a->fd, SOL_SOCKET, SO_MARK, &p->fwmark, sizeof p->fwmark) < 0) {
    rc = afp_fail(err, errlen, errno, "SO_MARK refused", p->ifname);
    goto fail;
  }

  struct tpacket_req3 rx;
  memset(&rx, 0, sizeof rx);
  rx.tp_block_size = RX_BLOCK_SIZE;
  rx.tp_block_nr = RX_BLOCK_NR;
  rx.tp_frame_size = RX_FRAME_SIZE;
  rx.tp_frame_nr = RX_BLOCK_NR * (RX_BLOCK_SIZE / RX_FRAME_SIZE);
  rx.tp_retire_blk_tov = a->rx_tov_ms;
  if (setsockopt(a->fd, SOL_PACKET, PACKET_RX_RING, &rx, sizeof rx) < 0) {
    rc = afp_fail(err, errlen, errno, "cannot set up the TPACKET_V3 RX ring", p->ifname);
    goto fail;
  }
  a->rx_block_nr = RX_BLOCK_NR;
  a->rx_block_size = RX_BLOCK_SIZE;

  /* TX slots hold the header, the largest frame the engine builds (MTU + tagged Ethernet
   * header) and slack; power of two so they tile the blocks exactly. */
  a->tx_frame_size = roundup_pow2((unsigned)(TX_DATA_OFF + p->mtu + TOE_ETH_VLAN_HLEN));
  if (a->tx_frame_size < 2048)
    a->tx_frame_size = 2048;
  a->tx_block_size = a->tx_frame_size > TX_BLOCK_SIZE ? a->tx_frame_size : TX_BLOCK_SIZE;
  a->tx_frames_per_block = a->tx_block_size / a->tx_frame_size;
  a->tx_frame_nr = TX_FRAME_NR;
  struct tpacket_req3 tx;
  memset(&tx, 0, sizeof tx);
  tx.tp_block_size = a->tx_block_size;
  tx.tp_frame_size = a->tx_frame_size;
  tx.tp_block_nr = TX_FRAME_NR / a->tx_frames_per_block;
  tx.tp_frame_nr = tx.tp_block_nr * a->tx_frames_per_block;
  bool have_tx_ring = setsockopt(a->fd, SOL_PACKET, PACKET_TX_RING, &tx, sizeof tx) == 0;
#ifdef TOED_TEST_NO_TX_RING
  /* Test builds only: exercise the sendmmsg fallback (the ring is set up but left unused). */
  if (have_tx_ring) {
    memset(&tx, 0, sizeof tx);
    have_tx_ring = setsockopt(a->fd, SOL_PACKET, PACKET_TX_RING, &tx, sizeof tx) != 0;
  }
#endif

  size_t rx_len = (size_t)RX_BLOCK_SIZE * RX_BLOCK_NR;
  size_t tx_len = have_tx_ring ? (size_t)tx.tp_block_size * tx.tp_block_nr : 0;
  a->map_len = rx_len + tx_len;
  void *m = mmap(NULL, a->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, a->fd, 0);
  if (m == MAP_FAILED) {
    a->map = NULL;
    rc = afp_fail(err, errlen, errno, "cannot map the packet rings", p->ifname);
    goto fail;
  }
  a->map = m;
  a->rx_ring = a->map;
  if (have_tx_ring) {
    a->tx_ring = a->map + rx_len;
  } else {
    a->fb_buf = malloc((size_t)FALLBACK_BATCH * a->tx_frame_size);
    if (!a->fb_buf) {
      rc = afp_fail(err, errlen, ENOMEM, "cannot allocate the TX batch", p->ifname);
      goto fail;
    }
  }
  a->scratch_len = RX_BLOCK_SIZE + 4;
  a->scratch = malloc(a->scratch_len);
  if (!a->scratch) {
    rc = afp_fail(err, errlen, ENOMEM, "cannot allocate the RX scratch buffer", p->ifname);
    goto fail;
  }

  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = p->ifindex;
  if (bind(a->fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
    rc = afp_fail(err, errlen, errno, "cannot bind the packet socket", p->ifname);
    goto fail;
  }
  if (p->promisc) {
    struct packet_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.mr_ifindex = p->ifindex;
    mr.mr_type = PACKET_MR_PROMISC;
    if (setsockopt(a->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
      rc = afp_fail(err, errlen, errno, "cannot enable promiscuous mode", p->ifname);
      goto fail;
    }
  }
  return 0;

fail:
  afp_close(l);
  return rc;
}

static int afp_fd(const struct toed_link *l)
{
  return afp_of(l)->fd;
}

static void afp_describe(const struct toed_link *l, char *buf, size_t len)
{
  const struct afp *a = afp_of(l);
  if (a->tx_ring)
    snprintf(buf, len, "afpacket tpacket_v3 rx %ux%uKiB tov %ums, tx ring %ux%u, qdisc bypass%s",
             a->rx_block_nr, a->rx_block_size / 1024, a->rx_tov_ms, a->tx_frame_nr,
             a->tx_frame_size, a->promisc ? ", promisc" : "");
  else
    snprintf(buf, len, "afpacket tpacket_v3 rx %ux%uKiB tov %ums, tx sendmmsg x%u%s",
             a->rx_block_nr, a->rx_block_size / 1024, a->rx_tov_ms, FALLBACK_BATCH,
             a->promisc ? ", promisc" : "");
}

const struct toed_link_ops toed_link_afpacket_ops = {
    .name = "afpacket",
    .caps = TOED_LINK_CAP_RX_CSUM_FIX | TOED_LINK_CAP_TX_BATCH | TOED_LINK_CAP_GSO_RX,
    .open = afp_open,
    .fd = afp_fd,
    .rx_burst = afp_rx_burst,
    .tx = afp_tx,
    .flush = afp_flush,
    .close = afp_close,
    .describe = afp_describe,
};

void toed_link_stats_visit(const struct toed_link_stats *s, toed_link_stat_fn fn, void *arg)
{
#define TOED_VISIT_(name) fn(arg, #name, s->name);
  TOED_LINK_STATS(TOED_VISIT_)
#undef TOED_VISIT_
}
