/*
 * AF_PACKET link driver: a SOCK_RAW/ETH_P_ALL packet socket bound to one interface, with a
 * TPACKET_V2 receive ring and a TPACKET_V2 transmit ring sharing one mmap.
 *
 * Receive: a TPACKET_V2 ring of fixed-size frame slots. The kernel fills one slot per frame, marks
 * it TP_STATUS_USER and wakes the socket at once, so a frame reaches the engine as soon as toed is
 * scheduled: there is no block retire timer. (The TPACKET_V3 ring used before hands over whole
 * blocks, when full or when their retire timer (1 ms at least) expires: below the rate that fills
 * a block, every frame waited for that timer, measured here as 0.5-0.6 ms median and 1-3 ms p99
 * from the kernel to the engine against ~20 us median with this ring, and up to ~4 ms (a jiffy at
 * HZ=250) on other runs; that inflated TCP RTTs into spurious retransmissions, and each nearly
 * empty timer-retired block used up a whole block of the ring, so a short pause in toed overflowed
 * it.)
 * rx_burst() drains every ready slot in ring order and gives each back to the kernel
 * (TP_STATUS_KERNEL) right after the callback, which copies the frame into the engine.
 *
 * Slot size: a local peer (veth) hands over GSO super-frames of up to 64 KiB (IPv4 total length
 * 65535 plus the Ethernet header; the engine accepts them), and a V2 slot must hold a whole frame
 * plus the kernel's header room before it (tpacket2_hdr, sockaddr_ll, alignment: at most ~96
 * bytes), so each slot is 68 KiB and 15 of them tile a 1 MiB block (4 KiB left over per block).
 * Memory cost: 64 blocks x 1 MiB = 64 MiB of kernel memory mapped into toed, for 960 slots, each
 * taken by one frame whatever its size (a 60-byte ACK uses a 68 KiB slot). 960 frames cover a pause
 * of ~30 ms in toed at ~30 k frames/s (a 1000-connection burst) without a kernel drop; the drops
 * the kernel does count (ring full: the slot at its head still ours) come from PACKET_STATISTICS.
 * A frame larger than a slot (a peer with BIG TCP, gso_max_size > 64 KiB) arrives truncated and is
 * counted as rx_drop_truncated.
 * PACKET_IGNORE_OUTGOING keeps our own transmissions (and anything else leaving the port) out of
 * the ring.
 *
 * Transmit: a TPACKET_V2 TX ring (fixed-size slots) filled by tx() and pushed with one send() per
 * batch in flush(), with PACKET_QDISC_BYPASS (the device does its own pacing; no qdisc in between)
 * and PACKET_LOSS (a frame the kernel refuses is discarded instead of stalling the ring). If the
 * kernel refuses the TX ring, the driver falls back to sendmmsg() of a batch copied into a private
 * buffer: slower, same semantics. Chosen over sendmmsg() as the primary path because the ring costs
 * no system call per frame and no per-frame copy into the kernel beyond the ring itself.
 *
 * TSO (toed --offload tso, TOE_LINK_CAP_TSO): a super-segment (one header, up to 64 KiB of payload,
 * TOE_PBUF_F_GSO_TCPV4) goes out through a second packet socket with PACKET_VNET_HDR: a struct
 * virtio_net_hdr (GSO_TCPV4, gso_size, hdr_len, NEEDS_CSUM with csum_start/csum_offset) in front
 * of the frame, sent with one sendmsg() whose iovec points at the pbuf chain (the kernel's copy is
 * the only one). The kernel keeps it whole as far as it can (a veth peer receives the 64 KiB
 * super-frame, as from the kernel's own TCP) and cuts it where it must. A separate socket because
 * PACKET_VNET_HDR changes the layout of both rings of a socket, and the receive ring is better
 * off without it; the TX ring is kicked before each super-segment so frames leave in order.
 * (The kernel's TX ring code reads a vnet header from each slot too, since Linux 4.7; not used
 * here, nor verified on this kernel: a slot would have to hold 64 KiB, and the copy into it is the
 * same copy the sendmsg() does.)
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
#include "wire/frame.h"
#include "wire/tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* RX ring geometry (see the top comment for the sizing and its memory cost). */
/* 68 KiB: a GSO super-frame plus the kernel's header room (checked below). */
#define RX_FRAME_SIZE (65536u + 4096u)
#define RX_BLOCK_SIZE (1u << 20) /* a multiple of the page size; 15 slots per block */
#define RX_BLOCK_NR 64u          /* 64 MiB in all */
#define RX_FRAMES_PER_BLOCK (RX_BLOCK_SIZE / RX_FRAME_SIZE)
#define RX_FRAME_NR (RX_BLOCK_NR * RX_FRAMES_PER_BLOCK) /* 960 */
/* The kernel puts the MAC header at TPACKET_ALIGN(TPACKET2_HDRLEN + max(maclen, 16)) - maclen
 * (tpacket_rcv), under 96 bytes; the largest frame is an IPv4 GSO super-frame (total length 65535)
 * behind an Ethernet header with up to two tags left in the frame. */
#define RX_MAC_ROOM_MAX 96u
#define RX_LARGEST_FRAME (65535u + TOE_ETH_HLEN + 8u)
_Static_assert(RX_MAC_ROOM_MAX + RX_LARGEST_FRAME <= RX_FRAME_SIZE, "RX slot too small for GSO");
_Static_assert(RX_FRAME_SIZE % TPACKET_ALIGNMENT == 0, "RX slot size must be TPACKET aligned");
_Static_assert(RX_BLOCK_SIZE % 4096u == 0 && RX_FRAMES_PER_BLOCK > 0, "RX block geometry");
#define TX_FRAME_NR 256u
#define TX_BLOCK_SIZE (1u << 16)
/* Where the kernel reads TX data in a slot (no PACKET_TX_HAS_OFF): after the aligned header. */
#define TX_DATA_OFF TPACKET_ALIGN(sizeof(struct tpacket2_hdr))
#define FALLBACK_BATCH 64u

struct afp {
  int fd;
  uint8_t *map;
  size_t map_len;
  /* RX ring */
  uint8_t *rx_ring;
  unsigned rx_next; /* next slot to look at: the kernel fills the slots in ring order */
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
  int gso_fd; /* TSO: the PACKET_VNET_HDR socket for super-segments, -1 without */
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

/* Returns true if the frame carried a TCP/UDP segment whose checksum was completed: found and
 * computed from scratch by the tree's frame view (wire/frame.h), IPv4 and IPv6 alike. */
static bool fix_partial_csum(uint8_t *frame, size_t len)
{
  struct toe_frame_view v;
  return toe_frame_parse(&v, frame, len, len) == 0 && toe_frame_l4_csum(frame, &v) == 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Receive                                                                                      */

static void afp_read_kernel_drops(struct toed_link *l)
{
  struct afp *a = afp_of(l);
  struct tpacket_stats st;
  socklen_t sl = sizeof st;
  /* The kernel clears its counters on every read (and with them the TP_STATUS_LOSING flag it puts
   * on every frame while drops are pending), so they are accumulated here. */
  if (getsockopt(a->fd, SOL_PACKET, PACKET_STATISTICS, &st, &sl) == 0)
    l->stats.rx_drop_kernel += st.tp_drops;
}

static void afp_deliver(struct toed_link *l, const struct tpacket2_hdr *h, uint8_t *data,
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
        (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->tp_vlan_tpid : TOE_ETHERTYPE_VLAN;
    uint16_t tci = h->tp_vlan_tci;
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
  unsigned flags = 0;
  if ((h->tp_status & TP_STATUS_CSUMNOTREADY) && fix_partial_csum(frame, len)) {
    l->stats.rx_csum_fixed++;
    flags |= TOED_RX_F_L4_CSUM_OK; /* we just computed it over these very bytes */
  }
#ifdef TP_STATUS_CSUM_VALID
  if (h->tp_status & TP_STATUS_CSUM_VALID)
    flags |= TOED_RX_F_L4_CSUM_OK; /* the kernel (or the NIC) verified it (DATA_VALID) */
#endif
  if (len > (size_t)a->mtu + TOE_ETH_VLAN_HLEN)
    l->stats.rx_gso_frames++;

  l->stats.rx_frames++;
  l->stats.rx_bytes += len;
  cb(ctx, frame, len, (uint64_t)h->tp_sec * 1000000000ull + h->tp_nsec, flags);
}

/* Slot i of the RX ring: slots never straddle a block (the kernel's own arithmetic). */
static struct tpacket2_hdr *rx_slot(const struct afp *a, unsigned i)
{
  unsigned blk = i / RX_FRAMES_PER_BLOCK;
  unsigned in = i % RX_FRAMES_PER_BLOCK;
  return (struct tpacket2_hdr *)(void *)(a->rx_ring + (size_t)blk * RX_BLOCK_SIZE +
                                         (size_t)in * RX_FRAME_SIZE);
}

static unsigned afp_rx_burst(struct toed_link *l, toed_link_rx_fn cb, void *ctx, unsigned budget)
{
  struct afp *a = afp_of(l);
  unsigned done = 0;
  bool losing = false;

  /* Every ready slot, in the order the kernel filled them, up to the budget. Each goes back to the
   * kernel as soon as its frame was handed over (the callback copies it), so a long burst frees
   * room while it is being processed. */
  while (done < budget) {
    struct tpacket2_hdr *h = rx_slot(a, a->rx_next);
    /* Acquire: the frame's bytes and header fields are read only after its status says USER. */
    uint32_t status = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
    if (!(status & TP_STATUS_USER))
      break;
    if (status & TP_STATUS_LOSING)
      losing = true;
    /* Distrust the descriptor just enough never to read outside the slot. */
    if (h->tp_mac < sizeof(struct tpacket2_hdr) ||
        (size_t)h->tp_mac + h->tp_snaplen > RX_FRAME_SIZE)
      l->stats.rx_drop_malformed++;
    else
      afp_deliver(l, h, (uint8_t *)h + h->tp_mac, cb, ctx);
    /* Release: our reads (and the in-place checksum fix) are done before the kernel refills. */
    __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    a->rx_next = a->rx_next + 1 == RX_FRAME_NR ? 0 : a->rx_next + 1;
    done++;
  }
  if (losing)
    afp_read_kernel_drops(l);
  if (done)
    l->stats.rx_blocks++;
  /* Slots consumed, dropped ones included: 0 means the ring is empty. */
  return done;
}

/* ------------------------------------------------------------------------------------------- */
/* Transmit                                                                                     */

static struct tpacket2_hdr *tx_slot(struct afp *a, unsigned i)
{
  unsigned blk = i / a->tx_frames_per_block;
  unsigned in = i % a->tx_frames_per_block;
  return (struct tpacket2_hdr *)(void *)(a->tx_ring + (size_t)blk * a->tx_block_size +
                                         (size_t)in * a->tx_frame_size);
}

/*
 * Copies the frame to dst. A frame the engine left with a partial checksum
 * (TOE_PBUF_F_CSUM_PARTIAL, TOE_LINK_CAP_TX_CSUM) gets it completed on the way: the bytes from
 * csum_start on are summed while they are copied (one pass), and the complement goes into the
 * field at csum_start + csum_offset, which held the pseudo-header's sum. So the wire, the peer and
 * any capture of the ring see an ordinary frame.
 */
static size_t copy_chain(uint8_t *dst, const struct toe_pbuf *p)
{
  size_t n = 0;
  bool partial = (p->flags & TOE_PBUF_F_CSUM_PARTIAL) != 0;
  size_t start = p->csum_start, field = (size_t)p->csum_start + p->csum_offset;
  uint32_t sum = 0;
  if (partial && field + 2 > p->tot_len)
    partial = false; /* cannot happen with the engine's frames: leave the frame as it is */
  for (; p; p = p->next) {
    if (!partial || n + p->len <= start) {
      memcpy(dst + n, p->data, p->len);
    } else {
      size_t skip = n < start ? start - n : 0; /* header bytes before the summed region */
      memcpy(dst + n, p->data, skip);
      sum = toe_csum_combine(sum, toe_csum_copy(dst + n + skip, p->data + skip, p->len - skip, 0),
                             n + skip - start);
    }
    n += p->len;
  }
  if (partial) {
    uint16_t c = toe_csum_fold(sum);
    memcpy(dst + field, &c, 2);
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

static int afp_flush(struct toed_link *l);

#define GSO_IOV_MAX 128u /* buffers of a super-segment: 64 KiB in >= 1 KiB buffers, and headers */

/* A TSO super-segment: the virtio-net header and the chain, one sendmsg() on the GSO socket. */
static int afp_tx_gso(struct toed_link *l, const struct toe_pbuf *frame)
{
  struct afp *a = afp_of(l);
  size_t len = frame->tot_len;
  size_t l4 = frame->csum_start;
  uint8_t th[TOE_TCP_HLEN];
  /* the Ethernet, IPv4 and TCP headers are what each piece repeats: hdr_len */
  if (a->gso_fd < 0 || !(frame->flags & TOE_PBUF_F_CSUM_PARTIAL) ||
      toe_pbuf_copy_out(frame, (uint32_t)l4, th, sizeof th) != sizeof th) {
    l->stats.tx_drop_error++;
    return -EINVAL;
  }
  size_t hdr_len = l4 + (size_t)(th[12] >> 4) * 4u;
  /* Fields in the host's byte order: a packet socket's virtio-net header is "legacy" virtio,
   * native-endian (the kernel's vio_le() is the CPU's order for it). */
  struct virtio_net_hdr vh;
  memset(&vh, 0, sizeof vh);
  vh.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  vh.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
  vh.hdr_len = (uint16_t)hdr_len;
  vh.gso_size = frame->gso_size;
  vh.csum_start = frame->csum_start;
  vh.csum_offset = frame->csum_offset;
  struct iovec iov[GSO_IOV_MAX];
  unsigned n = 0;
  iov[n].iov_base = &vh;
  iov[n++].iov_len = sizeof vh;
  for (const struct toe_pbuf *p = frame; p; p = p->next) {
    if (p->len == 0)
      continue;
    if (n == GSO_IOV_MAX) {
      l->stats.tx_drop_too_big++;
      return -EMSGSIZE;
    }
    iov[n].iov_base = p->data;
    iov[n++].iov_len = p->len;
  }
  /* frames queued on the TX ring go first: the order on the wire is the engine's */
  (void)afp_flush(l);
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = iov;
  msg.msg_iovlen = n;
  ssize_t r;
  do
    r = sendmsg(a->gso_fd, &msg, MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    l->stats.tx_drop_error++;
    return -e;
  }
  l->stats.tx_kicks++;
  l->stats.tx_gso_frames++;
  l->stats.tx_frames++;
  l->stats.tx_bytes += len;
  return 0;
}

static int afp_tx(struct toed_link *l, const struct toe_pbuf *frame)
{
  struct afp *a = afp_of(l);
  size_t len = frame->tot_len;

  if (frame->flags & TOE_PBUF_F_GSO_TCPV4)
    return afp_tx_gso(l, frame);

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

  struct tpacket2_hdr *h = tx_slot(a, a->tx_next);
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
  if (a->gso_fd >= 0)
    close(a->gso_fd);
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
  a->gso_fd = -1;
  a->mtu = p->mtu;
  a->fwmark = p->fwmark;
  a->promisc = p->promisc;
  /* p->rx_tov_ms is a block retire timeout: a V2 ring has no blocks to retire, so it is unused. */
  int rc;
  int one = 1;

  /* Protocol 0 until the rings exist, so nothing queues on the socket before; bind() below
   * switches to ETH_P_ALL. */
  a->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (a->fd < 0) {
    rc = afp_fail(err, errlen, errno, "cannot open an AF_PACKET socket", p->ifname);
    goto fail;
  }
  /* The version applies to both rings; it must be set before either exists. */
  int ver = TPACKET_V2;
  if (setsockopt(a->fd, SOL_PACKET, PACKET_VERSION, &ver, sizeof ver) < 0) {
    rc = afp_fail(err, errlen, errno, "PACKET_VERSION TPACKET_V2 refused", p->ifname);
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

  /* V1/V2 rings take a struct tpacket_req (the kernel reads only that much for them). */
  struct tpacket_req rx;
  memset(&rx, 0, sizeof rx);
  rx.tp_block_size = RX_BLOCK_SIZE;
  rx.tp_block_nr = RX_BLOCK_NR;
  rx.tp_frame_size = RX_FRAME_SIZE;
  rx.tp_frame_nr = RX_FRAME_NR;
  if (setsockopt(a->fd, SOL_PACKET, PACKET_RX_RING, &rx, sizeof rx) < 0) {
    rc = afp_fail(err, errlen, errno, "cannot set up the TPACKET_V2 RX ring", p->ifname);
    goto fail;
  }

  /* TX slots hold the header, the largest frame the engine builds (MTU + tagged Ethernet
   * header) and slack; power of two so they tile the blocks exactly. */
  a->tx_frame_size = roundup_pow2((unsigned)(TX_DATA_OFF + p->mtu + TOE_ETH_VLAN_HLEN));
  if (a->tx_frame_size < 2048)
    a->tx_frame_size = 2048;
  a->tx_block_size = a->tx_frame_size > TX_BLOCK_SIZE ? a->tx_frame_size : TX_BLOCK_SIZE;
  a->tx_frames_per_block = a->tx_block_size / a->tx_frame_size;
  a->tx_frame_nr = TX_FRAME_NR;
  struct tpacket_req tx;
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
  a->scratch_len = RX_FRAME_SIZE + 4; /* the largest slot's frame plus a restored tag */
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
  if (p->tso) {
    /* Protocol 0: this socket only sends (it receives nothing). */
    a->gso_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int sndbuf = 4 << 20;
    if (a->gso_fd < 0 || setsockopt(a->gso_fd, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0 ||
        (p->fwmark &&
         setsockopt(a->gso_fd, SOL_SOCKET, SO_MARK, &p->fwmark, sizeof p->fwmark) < 0)) {
      rc = afp_fail(err, errlen, errno,
                    "cannot set up the PACKET_VNET_HDR socket for TSO (try --offload csum)",
                    p->ifname);
      goto fail;
    }
    (void)setsockopt(a->gso_fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    (void)setsockopt(a->gso_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct sockaddr_ll gl;
    memset(&gl, 0, sizeof gl);
    gl.sll_family = AF_PACKET;
    gl.sll_protocol = 0;
    gl.sll_ifindex = p->ifindex;
    if (bind(a->gso_fd, (struct sockaddr *)&gl, sizeof gl) < 0) {
      rc = afp_fail(err, errlen, errno, "cannot bind the TSO packet socket", p->ifname);
      goto fail;
    }
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
    snprintf(buf, len,
             "afpacket tpacket_v2 rx ring %ux%uKiB (%u MiB), tx ring %ux%u, qdisc bypass%s%s",
             RX_FRAME_NR, RX_FRAME_SIZE / 1024, (RX_BLOCK_NR * RX_BLOCK_SIZE) >> 20, a->tx_frame_nr,
             a->tx_frame_size, a->promisc ? ", promisc" : "", a->gso_fd >= 0 ? ", tso" : "");
  else
    snprintf(buf, len, "afpacket tpacket_v2 rx ring %ux%uKiB (%u MiB), tx sendmmsg x%u%s",
             RX_FRAME_NR, RX_FRAME_SIZE / 1024, (RX_BLOCK_NR * RX_BLOCK_SIZE) >> 20, FALLBACK_BATCH,
             a->promisc ? ", promisc" : "");
}

const struct toed_link_ops toed_link_afpacket_ops = {
    .name = "afpacket",
    .caps = TOED_LINK_CAP_RX_CSUM_FIX | TOED_LINK_CAP_TX_BATCH | TOED_LINK_CAP_GSO_RX |
            TOED_LINK_CAP_TX_CSUM | TOED_LINK_CAP_TSO,
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
