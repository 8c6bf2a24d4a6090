/*
 * AF_XDP link driver: one XDP socket (XSK) on queue 0 of the port, with libxdp's default XSK
 * program redirecting every frame of that queue (ARP included) into it.
 *
 * Memory: one UMEM of UMEM_FRAMES chunks of 4 KiB (16 MiB). The first RX_FRAMES chunks belong to
 * the receive side: they circulate between the fill ring (given to the kernel) and the RX ring
 * (handed back with a frame in them); rx_burst() gives each chunk back to the fill ring right
 * after its frame went to the callback (which copies it). The other TX_FRAMES chunks belong to the
 * transmit side: a free stack of chunks, taken by tx() (which copies the frame in), put on the TX
 * ring, and returned through the completion ring once the kernel sent them.
 *
 * Mode: bind() is tried with XDP_ZEROCOPY first (a NIC whose driver supports it DMAs straight into
 * the UMEM), then with XDP_COPY (the kernel copies each frame between its buffers and the UMEM; the
 * only mode veth offers: zero-copy gives EOPNOTSUPP there). The start-up line says which. The XDP
 * program is attached in whatever mode the kernel picks (native where the driver has XDP, generic
 * otherwise), through libxdp's dispatcher when a bpffs is mounted, as a single program otherwise.
 * Reopening an XSK on a queue that was closed less than about a second ago can fail with EBUSY
 * (the kernel frees the old socket's UMEM binding late): open() retries for a few seconds.
 *
 * Transmit: tx() fills TX ring slots, flush() publishes them and kicks the kernel with one
 * sendto(). In copy mode one kick sends at most 32 frames (the kernel's per-call budget) and then
 * reports EAGAIN, so flush() kicks again until the ring is drained or the kernel stops making
 * progress.
 *
 * What XDP does not carry: a frame's metadata. There is no receive timestamp (the callback gets 0:
 * the caller stamps it) and no checksum state. A local sender on a veth (the peer namespace's
 * kernel) leaves TCP/UDP checksums partial (CHECKSUM_PARTIAL: only the pseudo-header sum in the
 * checksum field); AF_PACKET reports that per frame (TP_STATUS_CSUMNOTREADY), XDP does not. So a
 * received TCP/UDP segment whose checksum does not verify but whose checksum field holds exactly
 * its folded pseudo-header sum (what Linux puts there, tcp_v4_send_check / udp4_hwcsum) is taken as
 * partial and completed (rx_csum_fixed); any other bad checksum is left for the engine to drop. On
 * a real wire no sender leaves a partial checksum; a damaged frame is taken for one only if the
 * damage left exactly that value in its checksum field, odds of about 2^-16, the same order as
 * the odds that a damage passes the Internet checksum at all.
 * Also no GSO: XDP takes only frames that fit one page, so while the program is attached the
 * kernel stops sending super-frames to the port (veth turns off its peer's TSO).
 */
#define _GNU_SOURCE

#include "device/link.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"
#include "wire/frame.h"
#include "wire/ipv4.h"
#include "wire/ipv6.h"
#include "wire/tcp.h"
#include "wire/udp.h"

#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#define FRAME_SIZE XSK_UMEM__DEFAULT_FRAME_SIZE /* 4096: one page per chunk */
#define RX_FRAMES 2048u                         /* fill + RX rings */
#define TX_FRAMES 2048u                         /* TX + completion rings */
#define UMEM_FRAMES (RX_FRAMES + TX_FRAMES)
/* The kernel keeps XDP_PACKET_HEADROOM (256) in front of a received frame in its chunk. */
#define FRAME_MAX (FRAME_SIZE - 256u)
#define OPEN_RETRY_MS 3000u /* EBUSY after a recent close of the same queue */
#define KICK_MAX 128u       /* sendto() calls per flush: TX_FRAMES / 32 with room to spare */
#define STATS_EVERY 1024u   /* rx bursts between two reads of XDP_STATISTICS */
#define RX_BATCH 256u       /* frames per RX ring peek */

struct afx {
  struct xsk_umem *umem;
  struct xsk_socket *xsk;
  struct xsk_ring_prod fq;
  struct xsk_ring_cons cq;
  struct xsk_ring_cons rx;
  struct xsk_ring_prod tx;
  uint8_t *area;
  size_t area_len;
  int fd;
  int promisc_fd;              /* packet socket holding a promiscuous membership, -1 = none */
  uint64_t tx_free[TX_FRAMES]; /* stack of free TX chunk addresses */
  unsigned tx_nfree;
  unsigned tx_pending; /* TX slots reserved since the last submit */
  unsigned rx_bursts;
  uint16_t mtu;
  bool zerocopy;
  int zc_err; /* why the zero-copy bind failed (errno), for describe() */
  bool promisc;
  int ifindex;
  char mode[48]; /* how the XDP program is attached, for describe() */
};

static struct afx *afx_of(const struct toed_link *l)
{
  return (struct afx *)l->priv;
}

/* ------------------------------------------------------------------------------------------- */
/* libxdp/libbpf messages: kept (the last warning explains a failed open), never printed, since  */
/* their fallbacks (no bpffs: no dispatcher) are normal here and toed reports what it got.       */

static char lib_msg[256];

static int lib_print(const char *fmt, va_list ap)
{
  char buf[sizeof lib_msg];
  vsnprintf(buf, sizeof buf, fmt, ap);
  size_t n = strlen(buf);
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
    buf[--n] = 0;
  if (n)
    memcpy(lib_msg, buf, n + 1);
  return 0;
}

static int xdp_print(enum libxdp_print_level level, const char *fmt, va_list ap)
{
  return level == LIBXDP_WARN ? lib_print(fmt, ap) : 0;
}

static int bpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
  return level == LIBBPF_WARN ? lib_print(fmt, ap) : 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Partial checksums of local senders (see the top comment).                                     */

/*
 * A TCP/UDP segment whose checksum field holds the folded pseudo-header sum (what Linux leaves for
 * the device: ~csum_tcpudp_magic(), which toe_csum_fold() complements) is completed in place, in
 * one pass: the sum S over the pseudo-header and the segment as it is includes that field P, and
 * the checksum with the field zeroed is ~(S - P) = toe_csum_fold(S + ~P) (RFC 1071 ones'
 * complement arithmetic; RFC 1624 for taking a field's value out of a sum). A segment whose
 * field holds that value but whose checksum is already complete (S folds to zero) is left as it
 * is, and counts as verified too. Any other field value costs no pass here: the engine verifies
 * it. The frame is found through the tree's frame view (wire/frame.h), IPv4 and IPv6 alike, as
 * the AF_PACKET driver does. Returns true when the checksum is known good (verified or
 * completed).
 */
static bool fix_partial_csum(uint8_t *frame, size_t len, bool *completed)
{
  struct toe_frame_view v;
  *completed = false;
  if (toe_frame_parse(&v, frame, len, len) != 0 || !v.ipver || !v.l4_off || v.fragment ||
      v.l4_off > v.ip_end || v.ip_end > v.len)
    return false;
  uint8_t *seg = frame + v.l4_off;
  size_t seg_len = v.ip_end - v.l4_off, off;
  if (v.l4_proto == TOE_IPPROTO_TCP) {
    struct toe_tcp_view t;
    if (toe_tcp_parse(&t, seg, seg_len, seg_len) != 0)
      return false;
    off = 16;
  } else if (v.l4_proto == TOE_IPPROTO_UDP) {
    struct toe_udp_view u;
    if (toe_udp_parse(&u, seg, seg_len, seg_len) != 0)
      return false;
    seg_len = u.len; /* the UDP length field bounds the checksummed bytes */
    off = 6;
  } else {
    return false;
  }
  uint16_t field;
  memcpy(&field, seg + off, 2);
  if (v.l4_proto == TOE_IPPROTO_UDP && field == 0)
    return false; /* RFC 768: no checksum (IPv4); the engine judges it */
  uint32_t ps = v.ipver == 4
                    ? toe_csum_pseudo_v4(v.v4.src, v.v4.dst, v.l4_proto, (uint16_t)seg_len)
                    : toe_ipv6_pseudo_csum(&v.v6.src, &v.v6.dst, (uint32_t)seg_len, v.l4_proto);
  uint16_t partial = (uint16_t)~toe_csum_fold(ps);
  if (field != partial)
    return false;
  uint32_t sum = toe_csum_partial(seg, seg_len, ps);
  if (toe_csum_fold(sum) == 0)
    return true; /* a complete checksum that happens to equal that value */
  uint16_t not_field = (uint16_t)~field;
  uint16_t c = toe_csum_fold(toe_csum_add32(sum, not_field));
  if (v.l4_proto == TOE_IPPROTO_UDP && c == 0)
    c = 0xffff; /* RFC 768: a computed zero is sent as all ones */
  memcpy(seg + off, &c, 2);
  *completed = true;
  return true;
}

/* ------------------------------------------------------------------------------------------- */
/* Counters                                                                                     */

static void afx_read_kernel_stats(struct toed_link *l)
{
  struct afx *a = afx_of(l);
  struct xdp_statistics st;
  socklen_t sl = sizeof st;
  /* Cumulative since the socket was bound (unlike PACKET_STATISTICS, not cleared by reading). */
  if (getsockopt(a->fd, SOL_XDP, XDP_STATISTICS, &st, &sl) == 0) {
    l->stats.rx_drop_kernel = st.rx_dropped + st.rx_ring_full;
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Receive                                                                                      */

static unsigned afx_rx_burst(struct toed_link *l, toed_link_rx_fn cb, void *ctx, unsigned budget)
{
  struct afx *a = afx_of(l);
  uint64_t refill[RX_BATCH];
  uint32_t idx_rx = 0, idx_fq = 0;
  unsigned n = xsk_ring_cons__peek(&a->rx, budget < RX_BATCH ? budget : RX_BATCH, &idx_rx);
  if (n == 0) {
    /* With XDP_USE_NEED_WAKEUP the kernel stops looking at an empty fill ring until woken. */
    if (xsk_ring_prod__needs_wakeup(&a->fq))
      (void)recvfrom(a->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
    return 0;
  }
  unsigned nf = 0;
  for (unsigned i = 0; i < n; i++) {
    const struct xdp_desc *d = xsk_ring_cons__rx_desc(&a->rx, idx_rx + i);
    /* Aligned mode: the address is the frame's own, inside its chunk after the headroom. */
    uint64_t base = d->addr - d->addr % FRAME_SIZE;
    if (base >= (uint64_t)RX_FRAMES * FRAME_SIZE) {
      /* Not one of our RX chunks: nothing to read, nothing to give back. */
      l->stats.rx_drop_malformed++;
      continue;
    }
    refill[nf++] = base;
    if (d->addr % FRAME_SIZE + d->len > FRAME_SIZE || d->len < TOE_ETH_HLEN) {
      l->stats.rx_drop_malformed++;
      continue;
    }
    uint8_t *frame = xsk_umem__get_data(a->area, d->addr);
    size_t len = d->len;
    unsigned flags = 0;
    bool completed;
    if (fix_partial_csum(frame, len, &completed)) {
      l->stats.rx_csum_fixed += completed;
      flags = TOED_RX_F_L4_CSUM_OK; /* a local sender's partial sum, completed (or verified) */
    }
    l->stats.rx_frames++;
    l->stats.rx_bytes += len;
    cb(ctx, frame, len, 0, flags);
  }
  xsk_ring_cons__release(&a->rx, n);
  /* The fill ring has room for every RX chunk, so the chunks just used always fit back. */
  if (nf && xsk_ring_prod__reserve(&a->fq, nf, &idx_fq) == nf) {
    for (unsigned i = 0; i < nf; i++)
      *xsk_ring_prod__fill_addr(&a->fq, idx_fq + i) = refill[i];
    xsk_ring_prod__submit(&a->fq, nf);
  }
  l->stats.rx_blocks++;
  if (++a->rx_bursts % STATS_EVERY == 0)
    afx_read_kernel_stats(l);
  return n;
}

/* ------------------------------------------------------------------------------------------- */
/* Transmit                                                                                     */

/* Takes back the TX chunks the kernel is done with. */
static void afx_reclaim(struct afx *a)
{
  uint32_t idx;
  unsigned n = xsk_ring_cons__peek(&a->cq, TX_FRAMES, &idx);
  for (unsigned i = 0; i < n; i++) {
    uint64_t addr = *xsk_ring_cons__comp_addr(&a->cq, idx + i);
    if (a->tx_nfree < TX_FRAMES)
      a->tx_free[a->tx_nfree++] = addr - addr % FRAME_SIZE;
  }
  if (n)
    xsk_ring_cons__release(&a->cq, n);
}

/* True while the kernel has not yet taken every descriptor put on the TX ring. */
static bool afx_tx_busy(struct afx *a)
{
  return xsk_prod_nb_free(&a->tx, TX_FRAMES) < TX_FRAMES;
}

static int afx_kick(struct toed_link *l)
{
  struct afx *a = afx_of(l);
  if (a->tx_pending) {
    xsk_ring_prod__submit(&a->tx, a->tx_pending);
    a->tx_pending = 0;
  }
  int err = 0;
  /* Copy mode sends at most 32 frames per call and then says EAGAIN (also when the device is
   * busy): kick until the kernel took every descriptor, a bounded number of times. */
  for (unsigned k = 0; k < KICK_MAX && afx_tx_busy(a); k++) {
    if (a->zerocopy && !xsk_ring_prod__needs_wakeup(&a->tx))
      break; /* the NIC's driver is already at it */
    l->stats.tx_kicks++;
    if (sendto(a->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0) {
      int e = errno;
      if (e == EAGAIN || e == EINTR) {
        afx_reclaim(a);
        continue;
      }
      if (e != EBUSY && e != ENOBUFS) {
        l->stats.tx_drop_error++;
        err = -e;
      }
      break; /* transient: the next flush kicks again */
    }
    if (a->zerocopy)
      break;
  }
  afx_reclaim(a);
  return err;
}

static int afx_tx(struct toed_link *l, const struct toe_pbuf *frame)
{
  struct afx *a = afx_of(l);
  size_t len = frame->tot_len;
  uint32_t idx;

  if (len > FRAME_MAX) {
    l->stats.tx_drop_too_big++;
    return -EMSGSIZE;
  }
  if (a->tx_nfree == 0)
    afx_reclaim(a);
  if (a->tx_nfree == 0)
    afx_kick(l); /* everything is queued: push it and take back what went out */
  if (a->tx_nfree == 0 || xsk_ring_prod__reserve(&a->tx, 1, &idx) != 1) {
    l->stats.tx_drop_ring_full++;
    return -ENOBUFS;
  }
  uint64_t addr = a->tx_free[--a->tx_nfree];
  uint8_t *dst = xsk_umem__get_data(a->area, addr);
  size_t n = 0;
  for (const struct toe_pbuf *p = frame; p; p = p->next) {
    memcpy(dst + n, p->data, p->len);
    n += p->len;
  }
  struct xdp_desc *d = xsk_ring_prod__tx_desc(&a->tx, idx);
  d->addr = addr;
  d->len = (uint32_t)len;
  d->options = 0;
  a->tx_pending++;
  l->stats.tx_frames++;
  l->stats.tx_bytes += len;
  return 0;
}

static int afx_flush(struct toed_link *l)
{
  struct afx *a = afx_of(l);
  if (a->tx_pending == 0 && !afx_tx_busy(a)) {
    afx_reclaim(a);
    return 0;
  }
  return afx_kick(l);
}

/* ------------------------------------------------------------------------------------------- */
/* Setup                                                                                        */

static int afx_fail(char *err, size_t errlen, int e, const char *what, const char *ifname)
{
  snprintf(err, errlen, "%s on %s: %s%s%s%s", what, ifname, strerror(e),
           (e == EPERM || e == EACCES) ? " (run as root or with CAP_NET_ADMIN, CAP_BPF)" : "",
           lib_msg[0] ? "; libxdp: " : "", lib_msg);
  return -e;
}

/*
 * libxdp detaches the program it loaded when its last socket goes, but not one it found attached
 * (left by a toed that was killed, and reused by this one). toed owns the port, so libxdp's
 * default XSK program still attached as a single program after our socket is gone is ours to
 * remove: otherwise the port stays in XDP mode (a veth peer without TSO) after toed.
 */
static void afx_detach_leftover(int ifindex)
{
  struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(ifindex);
  if (!mp || libxdp_get_error(mp))
    return;
  struct xdp_program *main_prog = xdp_multiprog__main_prog(mp);
  if (xdp_multiprog__is_legacy(mp) && main_prog &&
      strcmp(xdp_program__name(main_prog), "xsk_def_prog") == 0)
    (void)xdp_multiprog__detach(mp);
  xdp_multiprog__close(mp);
}

static void afx_close(struct toed_link *l)
{
  struct afx *a = afx_of(l);
  if (!a)
    return;
  if (a->xsk) {
    afx_flush(l);
    afx_read_kernel_stats(l);
    xsk_socket__delete(a->xsk);
    afx_detach_leftover(a->ifindex);
  }
  if (a->umem)
    xsk_umem__delete(a->umem);
  if (a->area)
    munmap(a->area, a->area_len);
  if (a->promisc_fd >= 0)
    close(a->promisc_fd); /* drops the promiscuous membership */
  free(a);
  l->priv = NULL;
}

/* Receive queues of the interface (from sysfs), 0 if unknown. */
static unsigned rx_queue_count(const char *ifname)
{
  char path[128];
  snprintf(path, sizeof path, "/sys/class/net/%s/queues", ifname);
  DIR *dir = opendir(path);
  if (!dir)
    return 0;
  unsigned n = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL)
    if (strncmp(e->d_name, "rx-", 3) == 0)
      n++;
  closedir(dir);
  return n;
}

/* Creates the UMEM and the socket with the given bind flags; retries while the queue is busy. */
static int afx_create(struct afx *a, const char *ifname, uint16_t bind_flags)
{
  struct xsk_umem_config uc = {
      .fill_size = RX_FRAMES,
      .comp_size = TX_FRAMES,
      .frame_size = FRAME_SIZE,
      .frame_headroom = 0,
      .flags = 0,
  };
  struct xsk_socket_config sc = {
      .rx_size = RX_FRAMES,
      .tx_size = TX_FRAMES,
      .libxdp_flags = 0, /* load libxdp's default program: every frame of the queue to us */
      .xdp_flags = 0,    /* native where the driver has XDP, generic otherwise */
      .bind_flags = bind_flags,
  };
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    lib_msg[0] = 0;
    int rc = xsk_umem__create(&a->umem, a->area, a->area_len, &a->fq, &a->cq, &uc);
    if (rc < 0) {
      a->umem = NULL;
      return rc;
    }
    rc = xsk_socket__create(&a->xsk, ifname, 0, a->umem, &a->rx, &a->tx, &sc);
    if (rc == 0)
      return 0;
    a->xsk = NULL;
    xsk_umem__delete(a->umem);
    a->umem = NULL;
    clock_gettime(CLOCK_MONOTONIC, &t);
    long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
    if (rc != -EBUSY || ms >= (long)OPEN_RETRY_MS)
      return rc;
    struct timespec pause = {0, 100 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
}

static void afx_note_mode(struct afx *a)
{
  struct xdp_multiprog *mp = xdp_multiprog__get_from_ifindex(a->ifindex);
  if (!mp || libxdp_get_error(mp)) {
    snprintf(a->mode, sizeof a->mode, "xdp mode unknown");
    return;
  }
  enum xdp_attach_mode m = xdp_multiprog__attach_mode(mp);
  snprintf(a->mode, sizeof a->mode, "%s xdp, %s",
           m == XDP_MODE_NATIVE ? "native"
           : m == XDP_MODE_SKB  ? "generic"
           : m == XDP_MODE_HW   ? "offloaded"
                                : "unknown",
           xdp_multiprog__is_legacy(mp) ? "single program" : "libxdp dispatcher");
  xdp_multiprog__close(mp);
}

static int afx_open(struct toed_link *l, const struct toed_link_params *p, char *err, size_t errlen)
{
  struct afx *a = calloc(1, sizeof *a);
  if (!a) {
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
  }
  l->priv = a;
  a->fd = -1;
  a->promisc_fd = -1;
  a->mtu = p->mtu;
  a->promisc = p->promisc;
  a->ifindex = p->ifindex;
  int rc;
  libxdp_set_print(xdp_print);
  libbpf_set_print(bpf_print);
  lib_msg[0] = 0;

  if ((size_t)p->mtu + TOE_ETH_VLAN_HLEN > FRAME_MAX) {
    snprintf(err, errlen,
             "--link afxdp on %s: MTU %u too large for the driver's %u-byte frames (use --mtu "
             "%u or less, or --link afpacket)",
             p->ifname, (unsigned)p->mtu, FRAME_MAX, FRAME_MAX - TOE_ETH_VLAN_HLEN);
    rc = -EMSGSIZE;
    goto fail;
  }
  unsigned nq = rx_queue_count(p->ifname);
  if (nq > 1) {
    /* XDP programs run per queue and the socket reads queue 0: the others' frames would reach
     * the guarded kernel stack and be dropped there. */
    snprintf(err, errlen,
             "--link afxdp on %s: the interface has %u receive queues and the driver reads queue 0 "
             "only (reduce them: ethtool -L %s combined 1, or use --link afpacket)",
             p->ifname, nq, p->ifname);
    rc = -EINVAL;
    goto fail;
  }

  a->area_len = (size_t)UMEM_FRAMES * FRAME_SIZE;
  void *m = mmap(NULL, a->area_len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (m == MAP_FAILED) {
    rc = afx_fail(err, errlen, errno, "cannot map the AF_XDP UMEM", p->ifname);
    goto fail;
  }
  a->area = m;

  /* Zero-copy where the driver can; copy mode otherwise (veth: EOPNOTSUPP). */
  rc = afx_create(a, p->ifname, XDP_ZEROCOPY | XDP_USE_NEED_WAKEUP);
  if (rc == 0) {
    a->zerocopy = true;
  } else {
    a->zc_err = -rc;
    rc = afx_create(a, p->ifname, XDP_COPY | XDP_USE_NEED_WAKEUP);
    if (rc < 0) {
      const char *what = rc == -EBUSY || rc == -EEXIST
                             ? "cannot attach an AF_XDP socket (queue busy, or another XDP "
                               "program attached: see 'ip link show'; 'ip link set IF xdp off')"
                             : "cannot create the AF_XDP socket";
      rc = afx_fail(err, errlen, -rc, what, p->ifname);
      goto fail;
    }
  }
  a->fd = xsk_socket__fd(a->xsk);
  afx_note_mode(a);

  /* Marked like the AF_PACKET driver's socket, for a port guard that looks at marks (copy-mode
   * XSK transmissions skip the netdev egress hook anyway). */
  if (p->fwmark && setsockopt(a->fd, SOL_SOCKET, SO_MARK, &p->fwmark, sizeof p->fwmark) < 0) {
    rc = afx_fail(err, errlen, errno, "SO_MARK refused", p->ifname);
    goto fail;
  }

  /* Every RX chunk to the kernel; every TX chunk free. */
  uint32_t idx;
  if (xsk_ring_prod__reserve(&a->fq, RX_FRAMES, &idx) != RX_FRAMES) {
    rc = afx_fail(err, errlen, ENOSPC, "cannot fill the AF_XDP fill ring", p->ifname);
    goto fail;
  }
  for (unsigned i = 0; i < RX_FRAMES; i++)
    *xsk_ring_prod__fill_addr(&a->fq, idx + i) = (uint64_t)i * FRAME_SIZE;
  xsk_ring_prod__submit(&a->fq, RX_FRAMES);
  for (unsigned i = 0; i < TX_FRAMES; i++)
    a->tx_free[i] = (uint64_t)(RX_FRAMES + TX_FRAMES - 1 - i) * FRAME_SIZE;
  a->tx_nfree = TX_FRAMES;

  if (p->promisc) {
    /* A packet socket that receives nothing (protocol 0) but holds a promiscuous membership:
     * dropped with the socket, so nothing to undo on a crash. */
    a->promisc_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    struct packet_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.mr_ifindex = p->ifindex;
    mr.mr_type = PACKET_MR_PROMISC;
    if (a->promisc_fd < 0 ||
        setsockopt(a->promisc_fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
      rc = afx_fail(err, errlen, errno, "cannot enable promiscuous mode", p->ifname);
      goto fail;
    }
  }
  return 0;

fail:
  afx_close(l);
  return rc;
}

static int afx_fd(const struct toed_link *l)
{
  return afx_of(l)->fd;
}

static void afx_describe(const struct toed_link *l, char *buf, size_t len)
{
  const struct afx *a = afx_of(l);
  char zc[80] = "zero-copy";
  if (!a->zerocopy)
    snprintf(zc, sizeof zc, "copy mode (zero-copy: %s)", strerror(a->zc_err));
  snprintf(buf, len,
           "afxdp queue 0, %s, %s, umem %ux%u (%u MiB), rx/fill %u, tx/comp %u, need_wakeup%s", zc,
           a->mode, UMEM_FRAMES, FRAME_SIZE, (UMEM_FRAMES * FRAME_SIZE) >> 20, RX_FRAMES, TX_FRAMES,
           a->promisc ? ", promisc" : "");
}

const struct toed_link_ops toed_link_afxdp_ops = {
    .name = "afxdp",
    .caps = TOED_LINK_CAP_RX_CSUM_FIX | TOED_LINK_CAP_TX_BATCH,
    .open = afx_open,
    .fd = afx_fd,
    .rx_burst = afx_rx_burst,
    .tx = afx_tx,
    .flush = afx_flush,
    .close = afx_close,
    .describe = afx_describe,
};
