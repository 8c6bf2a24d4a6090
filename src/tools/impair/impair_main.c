/* toe-impair: forwards every frame between two interfaces and impairs it on the way (loss,
 * duplication, reordering, delay with jitter, corruption, rate limit), independently per direction
 * and reproducibly from a seed. A stand-in for netem, which this kernel lacks. See docs/impair.md.
 *
 * Data path per direction (rx port -> tx port):
 *
 *   packet socket --> VLAN tag restored, partial checksum finished, GSO super-frame split
 *     --> neighbour discovery? ---------------------------------------> bypass queue --+
 *     --> loss -> corruption -> duplication mark -> reorder hold -> FIFO (delay, rate) --+--> send
 *
 * The FIFO is both the delay line and the rate limiter's queue: each frame gets a departure time
 * (arrival + delay +/- jitter, never earlier than the frame ahead of it, so jitter alone does not
 * reorder) and leaves when that time has come and the token bucket is not in deficit. */
#include "impair.h"
#include "tools/common/toe_cli.h"

#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <math.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5 /* USO (Linux 6.2 uapi); older headers lack it */
#endif

#define RX_BATCH 16
#define TX_BATCH 64
/* Room in front of a received frame so an 802.1Q tag the kernel kept out of band can be put back.
 */
#define RX_HEADROOM 4

enum { K_LOSS, K_DUP, K_REORDER, K_CORRUPT, K_JITTER, K_COUNT };

struct config {
  const char *ifname[2];
  unsigned ifindex[2];
  double loss, dup, reorder, corrupt;
  uint64_t delay_ns, jitter_ns, reorder_hold_ns;
  uint64_t rate_bps;    /* 0: unlimited */
  uint64_t burst_bytes; /* token bucket depth */
  double burst_ns;      /* the same as link time at rate_bps */
  uint64_t limit;
  uint64_t seed;
  uint64_t stats_ns; /* 0: only at exit */
  bool impair_arp;
};

struct frame {
  struct frame *next;
  uint64_t t_dep; /* earliest departure, CLOCK_MONOTONIC ns */
  uint32_t len;
  bool dup;         /* queue an identical copy right behind this one */
  bool passthrough; /* a GSO kind we do not split: sent with its virtio header, kernel segments */
  struct virtio_net_hdr vh;
  uint8_t data[];
};

struct fq {
  struct frame *head, *tail;
  uint64_t n;
};

struct dir_stats {
  uint64_t received;     /* frames read from the rx port */
  uint64_t gso_split;    /* of which GSO super-frames split into wire frames */
  uint64_t csum_fixed;   /* partial (offloaded) checksums completed */
  uint64_t unimpaired;   /* ARP/NDP frames forwarded without impairment */
  uint64_t lost;         /* dropped by --loss */
  uint64_t duplicated;   /* extra copies queued by --dup */
  uint64_t reordered;    /* held back and sent after a later frame by --reorder */
  uint64_t corrupted;    /* one bit flipped by --corrupt */
  uint64_t rate_dropped; /* dropped because the queue already held --limit frames */
  uint64_t forwarded;    /* frames sent on the tx port (copies included) */
  uint64_t tx_dropped;   /* the kernel refused a frame (ENOBUFS: receiver's backlog full) */
  uint64_t errors;       /* truncated/unreadable frames, checksum not fixable, send errors */
};

struct direction {
  char name[8]; /* "a->b" */
  int rx_fd, tx_fd;
  int rx_port, tx_port; /* 0: --a, 1: --b */
  struct imp_rng rng[K_COUNT];
  struct fq q;      /* delay line and rate queue */
  struct fq bypass; /* unimpaired frames: no delay, no rate limit */
  uint64_t last_dep;
  struct frame *held;
  uint64_t held_deadline;
  /* Token bucket kept as a virtual time: at time t it holds (t - vtime) * rate bits, at most the
   * burst; a frame may leave once the bucket is not negative. See flush(). */
  double vtime;
  bool tx_blocked; /* socket buffer full: wait for POLLOUT */
  struct dir_stats st;
};

struct rx_slot {
  struct virtio_net_hdr vh;
  uint8_t buf[RX_HEADROOM + IMP_MAX_FRAME];
  union {
    struct cmsghdr align;
    char c[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
  } ctl;
};

struct impair {
  struct config cfg;
  struct direction dir[2];
  int sock[2];
  bool port_down[2]; /* reported down or gone: check on it until it is back */
  struct rx_slot *slots;
  uint8_t *scratch;
};

static const char *prog = "toe-impair";

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- frame queues ---------------------------------------------------------------------------- */

static void fq_push(struct fq *q, struct frame *f)
{
  f->next = NULL;
  if (q->tail)
    q->tail->next = f;
  else
    q->head = f;
  q->tail = f;
  q->n++;
}

static struct frame *fq_pop(struct fq *q)
{
  struct frame *f = q->head;
  if (f) {
    q->head = f->next;
    if (!q->head)
      q->tail = NULL;
    q->n--;
  }
  return f;
}

static void fq_free(struct fq *q)
{
  struct frame *f;
  while ((f = fq_pop(q)))
    free(f);
}

static struct frame *frame_new(const uint8_t *data, size_t len, const struct virtio_net_hdr *pass)
{
  struct frame *f = malloc(sizeof(*f) + len);
  if (!f)
    return NULL;
  memset(f, 0, sizeof(*f));
  f->len = (uint32_t)len;
  if (pass) {
    f->passthrough = true;
    f->vh = *pass;
  }
  memcpy(f->data, data, len);
  return f;
}

/* ---- impairments ----------------------------------------------------------------------------- */

/* Appends to the FIFO, keeping departure times non-decreasing so that the FIFO order is the
 * departure order. Bounded by --limit; beyond it the frame is dropped and counted. */
static void enqueue(struct impair *im, struct direction *d, struct frame *f)
{
  if (d->q.n >= im->cfg.limit) {
    d->st.rate_dropped++;
    free(f);
    return;
  }
  if (f->t_dep < d->last_dep)
    f->t_dep = d->last_dep;
  d->last_dep = f->t_dep;
  bool dup = f->dup;
  f->dup = false;
  fq_push(&d->q, f);
  if (!dup)
    return;
  if (d->q.n >= im->cfg.limit) {
    d->st.rate_dropped++;
    return;
  }
  struct frame *c = frame_new(f->data, f->len, f->passthrough ? &f->vh : NULL);
  if (!c) {
    d->st.errors++;
    return;
  }
  c->t_dep = f->t_dep;
  fq_push(&d->q, c);
  d->st.duplicated++;
}

/* Flips one random bit in one random byte of the packet past the Ethernet header (and VLAN tags),
 * so that the IP header checksum or the L4 checksum of the receiver catches it. */
static void corrupt(struct direction *d, struct frame *f)
{
  struct pkt_info pi;
  if (pkt_parse(f->data, f->len, &pi) != 0)
    return;
  size_t end = pi.ipver ? pi.ip_end : f->len; /* Ethernet padding is covered by no checksum */
  if (end <= pi.l2len)
    return;
  size_t idx = pi.l2len + (size_t)(rng_next(&d->rng[K_CORRUPT]) % (end - pi.l2len));
  unsigned bit = (unsigned)(rng_next(&d->rng[K_CORRUPT]) & 7);
  f->data[idx] ^= (uint8_t)(1u << bit);
  d->st.corrupted++;
}

/* One wire frame enters the impairment pipeline. Each random stream is drawn exactly once per
 * impairable frame whether or not its impairment is enabled, so adding --dup does not change
 * which frames --loss drops: the decisions depend only on the seed and the frame's position. */
static void submit(struct impair *im, struct direction *d, uint64_t now, const uint8_t *data,
                   size_t len, const struct virtio_net_hdr *pass)
{
  const struct config *c = &im->cfg;
  if (!c->impair_arp && pkt_is_neigh(data, len)) {
    if (d->bypass.n >= c->limit) {
      d->st.rate_dropped++;
      return;
    }
    struct frame *f = frame_new(data, len, pass);
    if (!f) {
      d->st.errors++;
      return;
    }
    fq_push(&d->bypass, f);
    d->st.unimpaired++;
    return;
  }
  double r_loss = rng_double(&d->rng[K_LOSS]);
  double r_dup = rng_double(&d->rng[K_DUP]);
  double r_reorder = rng_double(&d->rng[K_REORDER]);
  double r_corrupt = rng_double(&d->rng[K_CORRUPT]);
  double r_jitter = rng_double(&d->rng[K_JITTER]);
  if (r_loss < c->loss) {
    d->st.lost++;
    return;
  }
  struct frame *f = frame_new(data, len, pass);
  if (!f) {
    d->st.errors++;
    return;
  }
  /* A passed-through super-frame gets its checksum from the kernel after we touch it, which would
   * hide the flipped bit: it is not corrupted. */
  if (r_corrupt < c->corrupt && !pass)
    corrupt(d, f);
  f->dup = r_dup < c->dup;
  int64_t dl = (int64_t)c->delay_ns;
  if (c->jitter_ns) /* uniform in [delay - jitter, delay + jitter], never negative */
    dl += (int64_t)llround((r_jitter * 2.0 - 1.0) * (double)c->jitter_ns);
  if (dl < 0)
    dl = 0;
  f->t_dep = now + (uint64_t)dl;
  if (d->held) {
    /* The held frame goes out right behind this later one. */
    struct frame *h = d->held;
    d->held = NULL;
    enqueue(im, d, f);
    enqueue(im, d, h);
    d->st.reordered++;
  } else if (r_reorder < c->reorder) {
    d->held = f;
    d->held_deadline = now + c->reorder_hold_ns;
  } else {
    enqueue(im, d, f);
  }
}

struct seg_ctx {
  struct impair *im;
  struct direction *d;
  uint64_t now;
};

static void seg_cb(void *ctx, const uint8_t *frame, size_t len)
{
  struct seg_ctx *s = ctx;
  submit(s->im, s->d, s->now, frame, len, NULL);
}

/* ---- receive --------------------------------------------------------------------------------- */

static void handle_frame(struct impair *im, struct direction *d, struct rx_slot *slot,
                         size_t msglen, int msgflags, size_t ctllen, uint64_t now)
{
  if ((msgflags & MSG_TRUNC) || msglen < sizeof(struct virtio_net_hdr)) {
    d->st.errors++;
    return;
  }
  d->st.received++;
  size_t len = msglen - sizeof(struct virtio_net_hdr);
  uint8_t *fr = slot->buf + RX_HEADROOM;
  struct virtio_net_hdr vh = slot->vh;

  uint32_t status = 0;
  struct tpacket_auxdata aux;
  memset(&aux, 0, sizeof(aux));
  struct msghdr mh = {.msg_control = slot->ctl.c, .msg_controllen = ctllen};
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level == SOL_PACKET && cm->cmsg_type == PACKET_AUXDATA &&
        cm->cmsg_len >= CMSG_LEN(sizeof(aux))) {
      memcpy(&aux, CMSG_DATA(cm), sizeof(aux));
      status = aux.tp_status;
    }
  }

  /* The kernel hands VLAN tags out of band when the device "accelerated" them; put the tag back
   * where it belongs (after the MAC addresses) or the frame would leave untagged. */
  if ((status & TP_STATUS_VLAN_VALID) && len >= 12) {
    uint16_t tpid = (status & TP_STATUS_VLAN_TPID_VALID) ? aux.tp_vlan_tpid : ETH_P_8021Q;
    memmove(slot->buf, fr, 12);
    fr = slot->buf;
    fr[12] = (uint8_t)(tpid >> 8);
    fr[13] = (uint8_t)tpid;
    fr[14] = (uint8_t)(aux.tp_vlan_tci >> 8);
    fr[15] = (uint8_t)aux.tp_vlan_tci;
    len += 4;
    if (vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
      vh.csum_start = htole16((uint16_t)(le16toh(vh.csum_start) + 4));
    if (vh.hdr_len)
      vh.hdr_len = htole16((uint16_t)(le16toh(vh.hdr_len) + 4));
  }

  unsigned gso = vh.gso_type & (unsigned)~VIRTIO_NET_HDR_GSO_ECN;
  if (gso == VIRTIO_NET_HDR_GSO_TCPV4 || gso == VIRTIO_NET_HDR_GSO_TCPV6 ||
      gso == VIRTIO_NET_HDR_GSO_UDP_L4) {
    /* Split here so that every wire-sized segment is impaired on its own, as on a real link. */
    struct seg_ctx ctx = {im, d, now};
    if (pkt_segment(fr, len, gso == VIRTIO_NET_HDR_GSO_UDP_L4, le16toh(vh.gso_size), im->scratch,
                    seg_cb, &ctx) >= 0) {
      d->st.gso_split++;
      return;
    }
    /* Not a shape we can split (say an IPv6 routing header): let the kernel segment it. */
    submit(im, d, now, fr, len, &vh);
    return;
  }
  if (gso != VIRTIO_NET_HDR_GSO_NONE) {
    submit(im, d, now, fr, len, &vh); /* UFO: the kernel fragments it on the way out */
    return;
  }
  if (vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    if (pkt_fix_csum(fr, len, le16toh(vh.csum_start), le16toh(vh.csum_offset)) == 0)
      d->st.csum_fixed++;
    else
      d->st.errors++;
  } else if (status & TP_STATUS_CSUMNOTREADY) {
    if (pkt_l4_csum(fr, len) == 0)
      d->st.csum_fixed++;
    else
      d->st.errors++;
  }
  submit(im, d, now, fr, len, NULL);
}

static bool is_port_error(int err)
{
  return err == ENETDOWN || err == ENODEV || err == ENXIO;
}

static void rx_batch(struct impair *im, struct direction *d)
{
  struct mmsghdr msgs[RX_BATCH];
  struct iovec iov[RX_BATCH][2];
  memset(msgs, 0, sizeof(msgs));
  for (int i = 0; i < RX_BATCH; i++) {
    struct rx_slot *s = &im->slots[i];
    iov[i][0] = (struct iovec){&s->vh, sizeof(s->vh)};
    iov[i][1] = (struct iovec){s->buf + RX_HEADROOM, IMP_MAX_FRAME};
    msgs[i].msg_hdr.msg_iov = iov[i];
    msgs[i].msg_hdr.msg_iovlen = 2;
    msgs[i].msg_hdr.msg_control = s->ctl.c;
    msgs[i].msg_hdr.msg_controllen = sizeof(s->ctl.c);
  }
  int r = recvmmsg(d->rx_fd, msgs, RX_BATCH, MSG_DONTWAIT | MSG_TRUNC, NULL);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
      return;
    /* EINVAL: a GSO kind the virtio header cannot describe, such as a tunnel (the frame is
     * consumed). ENETDOWN: the port went down or away. */
    if (is_port_error(errno))
      im->port_down[d->rx_port] = true;
    else
      d->st.errors++;
    return;
  }
  uint64_t now = now_ns();
  for (int i = 0; i < r; i++)
    handle_frame(im, d, &im->slots[i], msgs[i].msg_len, msgs[i].msg_hdr.msg_flags,
                 msgs[i].msg_hdr.msg_controllen, now);
}

/* ---- transmit -------------------------------------------------------------------------------- */

/* sendmmsg of the batch; returns how many went, or -errno if the first one failed. */
static int send_batch(int fd, struct frame **batch, int n)
{
  static const struct virtio_net_hdr none; /* no offload asked: the frame is final */
  struct mmsghdr msgs[TX_BATCH];
  struct iovec iov[TX_BATCH][2];
  memset(msgs, 0, sizeof(struct mmsghdr) * (size_t)n);
  for (int i = 0; i < n; i++) {
    struct frame *f = batch[i];
    iov[i][0] = (struct iovec){f->passthrough ? &f->vh : (void *)&none, sizeof(none)};
    iov[i][1] = (struct iovec){f->data, f->len};
    msgs[i].msg_hdr.msg_iov = iov[i];
    msgs[i].msg_hdr.msg_iovlen = 2;
  }
  int r = sendmmsg(fd, msgs, (unsigned)n, MSG_DONTWAIT);
  return r < 0 ? -errno : r;
}

static void flush(struct impair *im, struct direction *d, uint64_t now)
{
  const struct config *c = &im->cfg;
  if (d->held && now >= d->held_deadline) {
    /* Nothing came along to overtake it in time: it leaves in order, not counted as reordered. */
    struct frame *h = d->held;
    d->held = NULL;
    enqueue(im, d, h);
  }
  while (!d->tx_blocked) {
    struct frame *batch[TX_BATCH];
    double vt[TX_BATCH]; /* bucket state after each frame of the batch */
    int n = 0;
    for (struct frame *f = d->bypass.head; f && n < TX_BATCH; f = f->next)
      batch[n++] = f;
    int nbypass = n;
    double v = d->vtime;
    for (struct frame *f = d->q.head; f && n < TX_BATCH; f = f->next) {
      if (f->t_dep > now)
        break;
      if (c->rate_bps) {
        /* Token bucket (deficit form: a frame may go when the bucket is not negative and is then
         * charged in full, so any frame size works). It is evaluated at the frame's ideal
         * departure time s, not at the moment this process got the CPU: a late wake-up sends
         * what should have gone meanwhile instead of losing that credit, so the long-run rate
         * stays exact on a busy machine. Idle time fills the bucket up to the burst only. */
        double s = fmax((double)f->t_dep, v);
        if (s > (double)now)
          break;
        v = fmax(v, s - c->burst_ns) + (double)f->len * 8e9 / (double)c->rate_bps;
        vt[n] = v;
      }
      batch[n++] = f;
    }
    if (n == 0)
      break;
    int r = send_batch(d->tx_fd, batch, n);
    int done;
    if (r > 0) {
      d->st.forwarded += (uint64_t)r;
      done = r;
    } else if (r == -EAGAIN || r == -EWOULDBLOCK) {
      d->tx_blocked = true;
      break;
    } else if (r == -EINTR) {
      continue;
    } else {
      /* The frame at the front cannot be sent: drop it, count why, go on with the rest. */
      if (r == -ENOBUFS)
        d->st.tx_dropped++;
      else
        d->st.errors++;
      if (is_port_error(-r))
        im->port_down[d->tx_port] = true;
      done = 1;
    }
    for (int i = 0; i < done; i++)
      free(i < nbypass ? fq_pop(&d->bypass) : fq_pop(&d->q));
    if (c->rate_bps && done > nbypass)
      d->vtime = vt[done - 1];
  }
}

/* When this direction next needs attention, UINT64_MAX for never. */
static uint64_t next_wake(const struct impair *im, const struct direction *d, uint64_t now)
{
  uint64_t w = UINT64_MAX;
  if (d->held)
    w = d->held_deadline;
  if (d->tx_blocked) /* POLLOUT will wake us */
    return w;
  if (d->bypass.head)
    return now;
  if (d->q.head) {
    uint64_t t = d->q.head->t_dep;
    if (im->cfg.rate_bps && d->vtime > (double)t)
      t = (uint64_t)ceil(d->vtime);
    if (t < w)
      w = t;
  }
  return w;
}

/* ---- statistics ------------------------------------------------------------------------------ */

static void print_stats(const struct impair *im, const char *when)
{
  for (int i = 0; i < 2; i++) {
    const struct direction *d = &im->dir[i];
    const struct dir_stats *s = &d->st;
    printf("%s: %s %s (%s -> %s): received=%llu forwarded=%llu lost=%llu duplicated=%llu "
           "reordered=%llu corrupted=%llu rate_dropped=%llu unimpaired=%llu gso_split=%llu "
           "csum_fixed=%llu tx_dropped=%llu errors=%llu queued=%llu\n",
           prog, when, d->name, im->cfg.ifname[i], im->cfg.ifname[1 - i],
           (unsigned long long)s->received, (unsigned long long)s->forwarded,
           (unsigned long long)s->lost, (unsigned long long)s->duplicated,
           (unsigned long long)s->reordered, (unsigned long long)s->corrupted,
           (unsigned long long)s->rate_dropped, (unsigned long long)s->unimpaired,
           (unsigned long long)s->gso_split, (unsigned long long)s->csum_fixed,
           (unsigned long long)s->tx_dropped, (unsigned long long)s->errors,
           (unsigned long long)(d->q.n + d->bypass.n + (d->held ? 1 : 0)));
  }
  fflush(stdout);
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
  fprintf(out,
          "usage: %s --a IF1 --b IF2 [--loss P] [--dup P] [--reorder P] [--delay T] [--jitter T]\n"
          "          [--corrupt P] [--rate R] [--limit N] [--seed N] [--stats-interval SECS]\n"
          "          [--burst BYTES] [--reorder-hold T] [--impair-arp]\n"
          "Forwards every frame between IF1 and IF2 and impairs it per direction.\n"
          "  P: probability, \"2%%\" or \"0.02\"   T: time, \"10ms\", \"500us\", \"1s\"\n"
          "  R: rate, \"500mbit\", \"1gbit\", \"100kbit\"   N: integer\n"
          "  --limit N          frames held per direction (delay line + rate queue), default 1000\n"
          "  --burst BYTES      token bucket depth for --rate (default 0: frames paced back to "
          "back)\n"
          "  --seed N           PRNG seed (default 1): same seed, same frames -> same decisions\n"
          "  --reorder-hold T   longest a frame waits to be overtaken (default 10ms)\n"
          "  --impair-arp       impair ARP and IPv6 neighbour discovery too (default: forwarded "
          "as is)\n"
          "  -h, --help         show this text\n"
          "  -V, --version      show the versions (toekit, transport ABI, libtoe)\n"
          "See docs/impair.md.\n",
          prog);
}

static void bad_arg(const char *opt, const char *val, const char *want)
{
  fprintf(stderr, "%s: bad value '%s' for --%s (want %s)\n", prog, val, opt, want);
  exit(2);
}

enum {
  O_A = 256,
  O_B,
  O_LOSS,
  O_DUP,
  O_REORDER,
  O_DELAY,
  O_JITTER,
  O_CORRUPT,
  O_RATE,
  O_LIMIT,
  O_SEED,
  O_STATS,
  O_HOLD,
  O_IMPAIR_ARP,
  O_BURST,
  O_HELP
};

static void parse_args(int argc, char **argv, struct config *c)
{
  static const struct option opts[] = {
      {"a", required_argument, NULL, O_A},
      {"b", required_argument, NULL, O_B},
      {"loss", required_argument, NULL, O_LOSS},
      {"dup", required_argument, NULL, O_DUP},
      {"reorder", required_argument, NULL, O_REORDER},
      {"delay", required_argument, NULL, O_DELAY},
      {"jitter", required_argument, NULL, O_JITTER},
      {"corrupt", required_argument, NULL, O_CORRUPT},
      {"rate", required_argument, NULL, O_RATE},
      {"limit", required_argument, NULL, O_LIMIT},
      {"seed", required_argument, NULL, O_SEED},
      {"stats-interval", required_argument, NULL, O_STATS},
      {"reorder-hold", required_argument, NULL, O_HOLD},
      {"impair-arp", no_argument, NULL, O_IMPAIR_ARP},
      {"burst", required_argument, NULL, O_BURST},
      {"help", no_argument, NULL, O_HELP},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  static const char *p_want = "a probability like 2% or 0.02";
  static const char *t_want = "a time like 10ms, 500us or 1s";
  memset(c, 0, sizeof(*c));
  c->limit = 1000;
  c->seed = 1;
  c->reorder_hold_ns = 10000000;
  opterr = 0;
  int o;
  while ((o = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
    const char *v = optarg;
    const char *name = NULL;
    for (const struct option *p = opts; p->name; p++)
      if (p->val == o)
        name = p->name;
    switch (o) {
    case O_A:
      c->ifname[0] = v;
      break;
    case O_B:
      c->ifname[1] = v;
      break;
    case O_LOSS:
      if (parse_prob(v, &c->loss))
        bad_arg(name, v, p_want);
      break;
    case O_DUP:
      if (parse_prob(v, &c->dup))
        bad_arg(name, v, p_want);
      break;
    case O_REORDER:
      if (parse_prob(v, &c->reorder))
        bad_arg(name, v, p_want);
      break;
    case O_CORRUPT:
      if (parse_prob(v, &c->corrupt))
        bad_arg(name, v, p_want);
      break;
    case O_DELAY:
      if (parse_time_ns(v, &c->delay_ns))
        bad_arg(name, v, t_want);
      break;
    case O_JITTER:
      if (parse_time_ns(v, &c->jitter_ns))
        bad_arg(name, v, t_want);
      break;
    case O_HOLD:
      if (parse_time_ns(v, &c->reorder_hold_ns) || c->reorder_hold_ns == 0)
        bad_arg(name, v, "a non-zero time like 10ms");
      break;
    case O_RATE:
      if (parse_rate(v, &c->rate_bps))
        bad_arg(name, v, "a rate of at least 1kbit like 500mbit, 1gbit or 100kbit");
      break;
    case O_LIMIT:
      if (parse_u64(v, 1, 10000000, &c->limit))
        bad_arg(name, v, "a frame count from 1 to 10000000");
      break;
    case O_SEED:
      if (parse_u64(v, 0, UINT64_MAX, &c->seed))
        bad_arg(name, v, "an unsigned 64-bit integer");
      break;
    case O_STATS:
      if (parse_secs_ns(v, &c->stats_ns))
        bad_arg(name, v, "seconds like 1 or 0.5, at least 1ms");
      break;
    case O_IMPAIR_ARP:
      c->impair_arp = true;
      break;
    case O_BURST:
      if (parse_u64(v, 0, 1u << 30, &c->burst_bytes))
        bad_arg(name, v, "a byte count from 0 to 1073741824");
      break;
    case O_HELP:
    case 'h':
      usage(stdout);
      exit(0);
    case 'V':
      exit(toe_cli_version(prog, NULL));
    default:
      if (optopt >= O_A && optopt <= O_HELP) {
        for (const struct option *p = opts; p->name; p++)
          if (p->val == optopt)
            name = p->name;
        fprintf(stderr, "%s: --%s needs a value (see toe-impair --help)\n", prog,
                name ? name : "?");
      } else {
        fprintf(stderr, "%s: unknown or ambiguous option '%s' (see toe-impair --help)\n", prog,
                argv[optind - 1]);
      }
      exit(2);
    }
  }
  if (optind < argc) {
    fprintf(stderr, "%s: unexpected argument '%s' (see toe-impair --help)\n", prog, argv[optind]);
    exit(2);
  }
  if (!c->ifname[0] || !c->ifname[1]) {
    fprintf(stderr, "%s: both --a IF1 and --b IF2 are required (see toe-impair --help)\n", prog);
    exit(2);
  }
  for (int i = 0; i < 2; i++) {
    c->ifindex[i] = if_nametoindex(c->ifname[i]);
    if (!c->ifindex[i]) {
      fprintf(stderr, "%s: no interface '%s' in this network namespace\n", prog, c->ifname[i]);
      exit(2);
    }
  }
  if (c->ifindex[0] == c->ifindex[1]) {
    fprintf(stderr, "%s: --a and --b must be two different interfaces\n", prog);
    exit(2);
  }
  if (c->rate_bps)
    c->burst_ns = (double)c->burst_bytes * 8e9 / (double)c->rate_bps;
}

static void setsockopt_int(int fd, int level, int opt, int val, const char *what, bool must)
{
  if (setsockopt(fd, level, opt, &val, sizeof(val)) != 0 && must) {
    fprintf(stderr, "%s: setsockopt %s: %s\n", prog, what, strerror(errno));
    exit(1);
  }
}

static int open_port(const char *ifname, unsigned ifindex)
{
  /* Protocol 0 at creation: nothing is queued until bind() names the protocol and the port. */
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    fprintf(stderr, "%s: AF_PACKET socket: %s (needs CAP_NET_RAW)\n", prog, strerror(errno));
    exit(1);
  }
  /* A virtio header on every frame tells us about GSO super-frames and partial checksums. */
  setsockopt_int(fd, SOL_PACKET, PACKET_VNET_HDR, 1, "PACKET_VNET_HDR", true);
  setsockopt_int(fd, SOL_PACKET, PACKET_AUXDATA, 1, "PACKET_AUXDATA", true);
  /* Our own transmissions on this port must not come back to us as input. */
  setsockopt_int(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1, "PACKET_IGNORE_OUTGOING", true);
  setsockopt_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20, "SO_RCVBUFFORCE", false);
  setsockopt_int(fd, SOL_SOCKET, SO_SNDBUFFORCE, 8 << 20, "SO_SNDBUFFORCE", false);
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof(sll));
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = (int)ifindex;
  if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0) {
    fprintf(stderr, "%s: bind to %s: %s\n", prog, ifname, strerror(errno));
    exit(1);
  }
  /* Frames addressed to other MACs than the port's own must reach us too. */
  struct packet_mreq mr;
  memset(&mr, 0, sizeof(mr));
  mr.mr_ifindex = (int)ifindex;
  mr.mr_type = PACKET_MR_PROMISC;
  if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) != 0) {
    fprintf(stderr, "%s: promiscuous mode on %s: %s\n", prog, ifname, strerror(errno));
    exit(1);
  }
  return fd;
}

static void arm_timer(int tfd, uint64_t when)
{
  struct itimerspec its;
  memset(&its, 0, sizeof(its));
  if (when != UINT64_MAX) {
    if (when == 0)
      when = 1; /* zero would disarm */
    its.it_value.tv_sec = (time_t)(when / 1000000000ull);
    its.it_value.tv_nsec = (long)(when % 1000000000ull);
  }
  timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* -1: the interface no longer exists; 0: it exists but is down; 1: it is up. */
static int port_state(int fd, unsigned ifindex)
{
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  if (!if_indextoname(ifindex, ifr.ifr_name))
    return -1;
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0)
    return errno == ENODEV ? -1 : 0;
  return (ifr.ifr_flags & IFF_UP) ? 1 : 0;
}

static void drain_fd(int fd)
{
  uint64_t v;
  while (read(fd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
  }
}

int main(int argc, char **argv)
{
  static struct impair im; /* big; and zeroed */
  struct config *c = &im.cfg;
  parse_args(argc, argv, c);

  /* Delay and rate are timed with timerfd: the default 50 us timer slack would be added to every
   * wake-up. */
  prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  int stfd = -1;
  if (sfd < 0 || tfd < 0) {
    fprintf(stderr, "%s: signalfd/timerfd: %s\n", prog, strerror(errno));
    return 1;
  }
  im.slots = calloc(RX_BATCH, sizeof(struct rx_slot));
  im.scratch = malloc(IMP_MAX_FRAME);
  if (!im.slots || !im.scratch) {
    fprintf(stderr, "%s: out of memory\n", prog);
    return 1;
  }
  for (int i = 0; i < 2; i++)
    im.sock[i] = open_port(c->ifname[i], c->ifindex[i]);

  uint64_t start = now_ns();
  for (int i = 0; i < 2; i++) {
    struct direction *d = &im.dir[i];
    snprintf(d->name, sizeof(d->name), "%s", i == 0 ? "a->b" : "b->a");
    d->rx_fd = im.sock[i];
    d->tx_fd = im.sock[1 - i];
    d->rx_port = i;
    d->tx_port = 1 - i;
    /* Independent streams per direction and per impairment, all derived from the one seed. */
    for (int k = 0; k < K_COUNT; k++)
      rng_seed(&d->rng[k], c->seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(1 + i * K_COUNT + k)));
    d->vtime = (double)start - c->burst_ns; /* the bucket starts full */
  }
  if (c->stats_ns) {
    stfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its;
    its.it_interval.tv_sec = (time_t)(c->stats_ns / 1000000000ull);
    its.it_interval.tv_nsec = (long)(c->stats_ns % 1000000000ull);
    its.it_value = its.it_interval;
    if (stfd < 0 || timerfd_settime(stfd, 0, &its, NULL) != 0) {
      fprintf(stderr, "%s: stats timer: %s\n", prog, strerror(errno));
      return 1;
    }
  }

  printf("%s: forwarding %s <-> %s (seed %llu)\n", prog, c->ifname[0], c->ifname[1],
         (unsigned long long)c->seed);
  fflush(stdout);

  int rc = 0;
  for (;;) {
    uint64_t now = now_ns();
    uint64_t wake = UINT64_MAX;
    for (int i = 0; i < 2; i++) {
      flush(&im, &im.dir[i], now);
      uint64_t w = next_wake(&im, &im.dir[i], now);
      if (w < wake)
        wake = w;
    }
    arm_timer(tfd, wake);

    struct pollfd pfd[5];
    int npfd = 4;
    for (int i = 0; i < 2; i++) {
      /* Port i receives direction i and sends direction 1-i. */
      pfd[i].fd = im.sock[i];
      pfd[i].events = (short)(POLLIN | (im.dir[1 - i].tx_blocked ? POLLOUT : 0));
      pfd[i].revents = 0;
    }
    pfd[2] = (struct pollfd){.fd = tfd, .events = POLLIN};
    pfd[3] = (struct pollfd){.fd = sfd, .events = POLLIN};
    if (stfd >= 0)
      pfd[npfd++] = (struct pollfd){.fd = stfd, .events = POLLIN};
    /* While a port is down, look at it twice a second: a deleted port ends the run. */
    int timeout = (im.port_down[0] || im.port_down[1]) ? 500 : -1;
    if (poll(pfd, (nfds_t)npfd, timeout) < 0) {
      if (errno == EINTR)
        continue;
      fprintf(stderr, "%s: poll: %s\n", prog, strerror(errno));
      rc = 1;
      break;
    }
    if (pfd[3].revents) {
      drain_fd(sfd);
      break;
    }
    if (pfd[2].revents)
      drain_fd(tfd);
    if (npfd == 5 && pfd[4].revents) {
      drain_fd(stfd);
      print_stats(&im, "stats");
    }
    for (int i = 0; i < 2; i++) {
      if (pfd[i].revents & POLLOUT)
        im.dir[1 - i].tx_blocked = false;
      if (pfd[i].revents & POLLERR) {
        /* The kernel flags a packet socket with ENETDOWN when its port goes down or away. */
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(im.sock[i], SOL_SOCKET, SO_ERROR, &err, &el);
        if (is_port_error(err))
          im.port_down[i] = true;
      }
      if (pfd[i].revents & POLLIN)
        rx_batch(&im, &im.dir[i]);
    }
    bool gone = false;
    for (int i = 0; i < 2; i++) {
      if (!im.port_down[i])
        continue;
      int st = port_state(im.sock[i], c->ifindex[i]);
      if (st < 0) {
        fprintf(stderr, "%s: interface %s is gone\n", prog, c->ifname[i]);
        gone = true;
      } else if (st > 0) {
        im.port_down[i] = false;
        /* Frames queued for it may go again. */
        im.dir[1 - i].tx_blocked = false;
      }
    }
    if (gone) {
      rc = 1;
      break;
    }
  }

  print_stats(&im, "final");
  for (int i = 0; i < 2; i++) {
    fq_free(&im.dir[i].q);
    fq_free(&im.dir[i].bypass);
    free(im.dir[i].held);
    close(im.sock[i]);
  }
  free(im.slots);
  free(im.scratch);
  close(tfd);
  close(sfd);
  if (stfd >= 0)
    close(stfd);
  return rc;
}
