/*
 * toed: the device daemon. Owns one network port and runs the toekit engine on it.
 *
 *   start-up:  arguments -> interface facts -> engine -> port guard -> link driver -> services
 *   loop:      epoll on the link fd, a timerfd for the engine's next deadline (and the pcap's
 *              once-a-second flush) and a signalfd for SIGINT/SIGTERM. Each wake-up drains every
 *              ready RX frame into the engine, serves the sockets that became readable, and
 *              flushes the TX path once for the whole batch.
 *   shutdown:  link closed (its last frames flushed), services closed, the port handed back to
 *              the kernel, pcap flushed, counter summary printed; exit 0.
 *
 * Engine time is CLOCK_MONOTONIC in nanoseconds. pcap timestamps are CLOCK_REALTIME (the kernel's
 * receive stamp for received frames).
 */
#define _GNU_SOURCE

#include "capture/pcap_writer.h"
#include "device/ctl_server.h"
#include "device/follow_host.h"
#include "device/host_if.h"
#include "device/link.h"
#include "device/port_guard.h"
#include "device/port_share.h"
#include "device/services.h"
#include "device/toed_args.h"
#include "device/toed_lifecycle.h"
#include "device/toed_ops.h"
#include "toe/addr_live.h"
#include "toe/engine.h"
#include "toe/steer.h"
#include "wire/checksum.h"
#include "wire/ethernet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define EXIT_RUNTIME 1
#define RX_BUDGET 1024u        /* frames per rx_burst call */
#define RX_MAX_PER_WAKE 16384u /* then let timers and services run */
#define SVC_BUDGET 64u         /* datagrams per socket per round */
#define LOG_INTERVAL TOE_SEC(5)
#define STALL_RETRY TOE_MSEC(1) /* retry of connections that found the buffer pool empty */
#define EPOLL_BATCH 64          /* ready descriptors taken per epoll_wait */

/* One message per interval per kind; the rest are counted and reported with the next one. */
struct ratelimit {
  toe_time_t next;
  uint64_t suppressed;
};

struct toed {
  struct toed_args args;
  int ifindex;
  uint8_t if_mac[6];
  int if_mtu;
  uint8_t mac[6];
  uint16_t mtu;

  struct toe_stack *st;
  struct toed_link link;
  bool link_open;
  struct toed_port_guard guard;
  bool guard_on;
  struct toe_pcapw pcap; /* --pcap */
  struct toed_services svc;
  bool svc_open;
  struct toed_ctl ctl; /* the control socket: host clients (libtoe) */
  bool ctl_open;
  struct toed_host_if hif; /* --host-if: the OS's view of the port */
  bool hif_open;
  struct toed_follow_host fh; /* --follow-host */
  bool fh_open;
  struct toed_port_share ports; /* with a host interface: ports shared with the OS */
  bool ports_open;
  toe_time_t next_carrier_check;

  int epfd, tfd, sfd;
  toe_time_t armed; /* what the timerfd is set to (TOE_TIME_NEVER: disarmed) */
  toe_time_t next_pcap_flush;
  toe_time_t started;
  toe_time_t now; /* of the current batch */
  int stop_signal;

  struct ratelimit rl_tx, rl_svc, rl_pcap, rl_link;
  uint64_t pcap_errors_seen;
  uint64_t dad_seen; /* nd.dad_completed + nd.dad_duplicates already reported */
};

static bool quiet;

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "toed: %s\n", buf);
}

static toe_time_t mono_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (toe_time_t)ts.tv_sec * 1000000000ull + (toe_time_t)ts.tv_nsec;
}

static uint64_t real_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void ratelimited(struct ratelimit *rl, toe_time_t now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ratelimited(struct ratelimit *rl, toe_time_t now, const char *fmt, ...)
{
  if (now < rl->next) {
    rl->suppressed++;
    return;
  }
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (rl->suppressed)
    logmsg("%s (%llu similar messages suppressed)", buf, (unsigned long long)rl->suppressed);
  else
    logmsg("%s", buf);
  rl->suppressed = 0;
  rl->next = now + LOG_INTERVAL;
}

/* ------------------------------------------------------------------------------------------- */
/* Engine callbacks                                                                              */

/* Completes a TOE_PBUF_F_CSUM_PARTIAL checksum in the frame itself (the driver did so in its
 * own copy): for the captures, which read the frame after tx(). The field is in the head buffer,
 * which is the frame's own (a fresh header buffer). */
static void csum_complete(struct toe_pbuf *frame)
{
  size_t start = frame->csum_start, field = start + frame->csum_offset;
  if (field + 2 > frame->len)
    return;
  uint32_t sum = 0;
  size_t n = 0;
  for (const struct toe_pbuf *p = frame; p; p = p->next) {
    size_t skip = n < start ? start - n : 0;
    if (skip < p->len)
      sum = toe_csum_combine(sum, toe_csum_partial(p->data + skip, p->len - skip, 0),
                             n + skip - start);
    n += p->len;
  }
  uint16_t c = toe_csum_fold(sum);
  memcpy(frame->data + field, &c, 2);
  frame->flags &= (uint16_t)~TOE_PBUF_F_CSUM_PARTIAL;
}

/* A sent frame held in a pbuf chain, into the --pcap file. */
static void pcap_write_chain(struct toe_pcapw *w, const struct toe_pbuf *frame, uint64_t ts_ns)
{
  toe_pcapw_begin(w, ts_ns, frame->tot_len, frame->tot_len, TOE_PCAPW_DIR_OUT);
  for (const struct toe_pbuf *b = frame; b; b = b->next)
    toe_pcapw_data(w, b->data, b->len);
  toe_pcapw_end(w);
}

static void on_tx(void *ctx, struct toe_pbuf *frame)
{
  struct toed *d = ctx;
  if (!d->link_open) {
    /* Closing sockets after the port was handed back (RSTs of the last connections). */
    toe_pbuf_free(d->st, frame);
    return;
  }
  int rc = d->link.ops->tx(&d->link, frame);
  if (rc == 0 && (frame->flags & TOE_PBUF_F_CSUM_PARTIAL) && (d->pcap.f || d->ctl_open))
    csum_complete(frame); /* the capture shows what the wire carries */
  if (rc == 0) {
    if (d->pcap.f)
      pcap_write_chain(&d->pcap, frame, real_now());
    if (d->ctl_open)
      toed_ctl_capture(&d->ctl, NULL, 0, frame, 0, TOE_ABI_CAPTURE_DIR_OUT); /* toectl capture */
  } else {
    ratelimited(&d->rl_tx, d->now, "transmit failed on %s: %s (frame dropped)", d->args.wire,
                strerror(-rc));
  }
  toe_pbuf_free(d->st, frame);
}

static void on_sock_event(void *ctx, struct toe_sock *s, void *user, uint32_t events)
{
  struct toed *d = ctx;
  if (d->ctl_open && toed_ctl_on_sock_event(&d->ctl, user, events))
    return; /* a host client's socket */
  toed_services_on_event(&d->svc, user, events);
}

static int on_port_claim(void *ctx, uint8_t proto, uint16_t port, bool claim)
{
  struct toed *d = ctx;
  return d->ports_open ? toed_port_share_claim(&d->ports, proto, port, claim) : 0;
}

/* Hands a received frame to the engine; with --offload rx-csum, one the driver knows is good
 * goes in marked so (TOE_PBUF_F_L4_CSUM_OK: the engine skips its own L4 check). */
static void input_frame(struct toed *d, const uint8_t *frame, size_t len, unsigned flags)
{
  if ((flags & TOED_RX_F_L4_CSUM_OK) && (d->args.offload & TOED_OFFLOAD_RX_CSUM) &&
      len >= TOE_ETH_HLEN) {
    struct toe_pbuf *p = toe_pbuf_from_bytes(d->st, frame, len, 2);
    if (p) {
      p->flags |= TOE_PBUF_F_L4_CSUM_OK;
      toe_stack_input(d->st, p, d->now);
      return;
    }
  }
  (void)toe_stack_input_copy(d->st, frame, len, d->now); /* also counts a full pool */
}

static void on_rx(void *ctx, const uint8_t *frame, size_t len, uint64_t ts_ns, unsigned flags)
{
  struct toed *d = ctx;
  if (d->pcap.f)
    toe_pcapw_write(&d->pcap, ts_ns ? ts_ns : real_now(), frame, (uint32_t)len, (uint32_t)len,
                    TOE_PCAPW_DIR_IN);
  if (d->ctl_open)
    toed_ctl_capture(&d->ctl, frame, len, NULL, ts_ns, TOE_ABI_CAPTURE_DIR_IN); /* toectl capture */
  /* Each frame at the time it is handled: a burst can take milliseconds (tens under ASan), and a
   * stale engine clock arms timers in the past (a segment sent at a time already gone gets its
   * tail-loss probe at once). A full pool is counted by the engine (link.rx_drop_nobuf). */
  d->now = mono_now();
  /* With a host interface the filter table decides (toe/steer.h); without, all is the engine's. */
  unsigned to = d->hif_open ? toe_steer_frame(d->st, frame, len) : TOE_STEER_ENGINE;
  if (to & TOE_STEER_HOST)
    toed_host_if_up(&d->hif, frame, len);
  if (to & TOE_STEER_ENGINE)
    input_frame(d, frame, len, flags);
}

/* Frames the OS sent on the host interface: to the wire, unless a coexistence rule stops them. */
/* --follow-host: the OS changed toe0's IPv4 address or default gateway (follow_host.h). */
static void follow_host(struct toed *d)
{
  int rc = toed_follow_host_read(&d->fh);
  if (rc < 0)
    ratelimited(&d->rl_tx, d->now, "--follow-host: rtnetlink: %s", strerror(-rc));
  uint32_t addr, gw;
  uint8_t plen;
  if (!toed_follow_host_take(&d->fh, &addr, &plen, &gw))
    return;
  if (addr == 0) {
    /* The OS's address went: the device stops answering for it (its connections are reset). */
    addr = TOED_FOLLOW_PLACEHOLDER;
    plen = 16;
  }
  uint32_t m = plen ? ~0u << (32 - plen) : 0;
  if (gw && (gw & m) != (addr & m))
    gw = 0; /* not on-link from the new address (yet): set when its route comes */
  if (addr == d->args.addr && plen == d->args.prefix_len && gw == d->args.gateway)
    return;
  char a[16], g[16];
  uint32_t be = htonl(addr), gbe = htonl(gw);
  inet_ntop(AF_INET, &be, a, sizeof a);
  inet_ntop(AF_INET, &gbe, g, sizeof g);
  if (toe_stack_set_addr4(d->st, addr, plen, gw) < 0) {
    logmsg("--follow-host: the OS's %s/%u on %s is not usable by the device; keeping the old one",
           a, plen, d->hif.name);
    return;
  }
  logmsg("--follow-host: address %s/%u, gateway %s (from %s)", a, plen, gw ? g : "none",
         d->hif.name);
  d->args.addr = addr;
  d->args.prefix_len = plen;
  d->args.gateway = gw;
  d->ports.addr = addr; /* new claims bind their shadows on it */
}

static void drain_host_if(struct toed *d)
{
  for (unsigned i = 0; i < RX_BUDGET; i++) {
    int n = toed_host_if_read(&d->hif);
    if (n <= 0)
      return;
    const uint8_t *f = d->hif.buf;
    if (!toed_host_if_may_send(&d->hif, d->st, d->args.addr, f, (size_t)n))
      continue;
    /* The driver copies from a borrowed chain; this one-buffer chain is not from the pool. */
    struct toe_pbuf pb;
    memset(&pb, 0, sizeof pb);
    pb.data = d->hif.buf;
    pb.len = (uint16_t)(n > 65535 ? 65535 : n);
    pb.tot_len = pb.len;
    pb.refcnt = 1;
    if (d->link.ops->tx(&d->link, &pb) == 0) {
      d->hif.stats.to_wire++;
      if (d->pcap.f)
        toe_pcapw_write(&d->pcap, real_now(), f, pb.len, pb.len, TOE_PCAPW_DIR_OUT);
      if (d->ctl_open)
        toed_ctl_capture(&d->ctl, f, pb.len, NULL, 0,
                         TOE_ABI_CAPTURE_DIR_OUT); /* the OS's frames too */
    } else {
      d->hif.stats.drop_tx_error++;
    }
  }
}

/* The host interface's carrier follows the wire's (checked once a second). */
static void follow_carrier(struct toed *d)
{
  if (!d->hif_open || d->now < d->next_carrier_check)
    return;
  toed_host_if_set_carrier(&d->hif, toed_if_running(d->args.wire));
  d->next_carrier_check = d->now + TOE_SEC(1);
}

/* ------------------------------------------------------------------------------------------- */
/* Summary                                                                                       */

struct summary {
  char layer[48];
  char line[4096];
  size_t len;
};

static void summary_flush(struct summary *s)
{
  if (s->len)
    fprintf(stderr, "toed:  %s\n", s->line);
  s->len = 0;
  s->line[0] = 0;
}

/* One line per layer, "layer.name=value" for each non-zero counter. */
static void summary_add(void *arg, const char *layer, const char *name, uint64_t value)
{
  struct summary *s = arg;
  if (strcmp(layer, s->layer) != 0) {
    summary_flush(s);
    snprintf(s->layer, sizeof s->layer, "%s", layer);
  }
  if (value == 0 || s->len >= sizeof s->line - 128)
    return;
  int w = snprintf(s->line + s->len, sizeof s->line - s->len, " %s.%s=%llu", layer, name,
                   (unsigned long long)value);
  if (w > 0)
    s->len += (size_t)w;
}

static void summary_driver(void *arg, const char *name, uint64_t value)
{
  summary_add(arg, "driver", name, value);
}

static void summary_host_if(void *arg, const char *name, uint64_t value)
{
  summary_add(arg, "host_if", name, value);
}

/* "udp/echo:7" becomes the layer "svc_udp_echo_7". */
static void summary_service(void *arg, const char *label, const char *name, uint64_t value)
{
  char layer[48];
  int n = snprintf(layer, sizeof layer, "svc_%s", label);
  for (int i = 0; i < n && i < (int)sizeof layer - 1; i++)
    if (layer[i] == '/' || layer[i] == ':')
      layer[i] = '_';
  summary_add(arg, layer, name, value);
}

static void print_counters(struct toed *d)
{
  struct summary s;
  memset(&s, 0, sizeof s);
  toe_counters_visit(toe_stack_counters(d->st), summary_add, &s);
  summary_flush(&s);
  memset(&s, 0, sizeof s);
  toed_link_stats_visit(&d->link.stats, summary_driver, &s);
  summary_flush(&s);
  memset(&s, 0, sizeof s);
  if (d->svc_open)
    toed_services_visit(&d->svc, summary_service, &s);
  summary_flush(&s);
  if (d->ctl_open) {
    memset(&s, 0, sizeof s);
    toed_ctl_visit(&d->ctl, summary_add, &s);
    summary_flush(&s);
  }
  if (d->args.host_if) {
    memset(&s, 0, sizeof s);
    toed_host_if_stats_visit(&d->hif.stats, summary_host_if, &s);
    summary_add(&s, "host_if", "port_claims", d->ports.claims);
    summary_add(&s, "host_if", "port_refused", d->ports.refused);
    summary_add(&s, "host_if", "port_shadow_fail", d->ports.shadow_fail);
    summary_flush(&s);
  }
  if (d->args.pcap) {
    memset(&s, 0, sizeof s);
    summary_add(&s, "pcap", "frames", d->pcap.frames);
    summary_add(&s, "pcap", "bytes", d->pcap.bytes);
    summary_add(&s, "pcap", "write_errors", d->pcap.write_errors);
    summary_add(&s, "pcap", "ts_raised", d->pcap.ts_raised);
    summary_flush(&s);
  }
}

static void print_summary(struct toed *d)
{
  double secs = (double)(mono_now() - d->started) / 1e9;
  char why[48], sig[24];
  if (d->stop_signal)
    snprintf(why, sizeof why, "on %s", toed_signal_name(d->stop_signal, sig, sizeof sig));
  else
    snprintf(why, sizeof why, "because of an error");
  logmsg("stopped %s after %.1f s; non-zero counters:", why, secs);
  print_counters(d);
}

/* ------------------------------------------------------------------------------------------- */
/* Set-up                                                                                        */

/* Interface facts. Returns 0, or -1 with a message (usage error: the interface is an argument). */
static int query_interface(struct toed *d, char *err, size_t errlen)
{
  const char *ifn = d->args.wire;
  if (strlen(ifn) >= IFNAMSIZ || (d->ifindex = (int)if_nametoindex(ifn)) == 0) {
    snprintf(err, errlen, "--wire %s: no such network interface (list them with 'ip link')", ifn);
    return -1;
  }
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "cannot query %s: %s", ifn, strerror(errno));
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifn);
  int rc = ioctl(fd, SIOCGIFHWADDR, &ifr);
  if (rc == 0 && ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    close(fd);
    snprintf(err, errlen, "--wire %s: not an Ethernet interface (toed needs an Ethernet port)",
             ifn);
    return -1;
  }
  if (rc == 0)
    memcpy(d->if_mac, ifr.ifr_hwaddr.sa_data, 6);
  if (rc == 0)
    rc = ioctl(fd, SIOCGIFMTU, &ifr);
  int e = errno;
  close(fd);
  if (rc < 0) {
    snprintf(err, errlen, "--wire %s: cannot read its MAC/MTU: %s", ifn, strerror(e));
    return -1;
  }
  d->if_mtu = ifr.ifr_mtu;
  return 0;
}

static int setup_loop(struct toed *d, sigset_t *mask, char *err, size_t errlen)
{
  d->epfd = epoll_create1(EPOLL_CLOEXEC);
  d->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  d->sfd = signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (d->epfd < 0 || d->tfd < 0 || d->sfd < 0) {
    snprintf(err, errlen, "cannot set up the event loop: %s", strerror(errno));
    return -1;
  }
  int fds[5] = {d->link.ops->fd(&d->link), d->tfd, d->sfd, d->hif_open ? d->hif.fd : -1,
                d->fh_open ? d->fh.fd : -1};
  for (int i = 0; i < 5; i++) {
    if (fds[i] < 0)
      continue;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, fds[i], &ev) < 0) {
      snprintf(err, errlen, "cannot set up the event loop: %s", strerror(errno));
      return -1;
    }
  }
  d->armed = TOE_TIME_NEVER;
  return 0;
}

static void arm_timer(struct toed *d, toe_time_t when)
{
  if (when == d->armed)
    return;
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  if (when != TOE_TIME_NEVER) {
    if (when == 0)
      when = 1; /* zero would disarm */
    its.it_value.tv_sec = (time_t)(when / 1000000000ull);
    its.it_value.tv_nsec = (long)(when % 1000000000ull);
  }
  timerfd_settime(d->tfd, TFD_TIMER_ABSTIME, &its, NULL);
  d->armed = when;
}

/* ------------------------------------------------------------------------------------------- */
/* The event loop                                                                                */

static void report_errors(struct toed *d)
{
  if (d->svc.error_events) {
    ratelimited(&d->rl_svc, d->now, "a service could not send: %s",
                toe_strerror(d->svc.last_error));
    d->svc.error_events = 0;
  }
  if (d->pcap.write_errors != d->pcap_errors_seen) {
    d->pcap_errors_seen = d->pcap.write_errors;
    ratelimited(&d->rl_pcap, d->now, "cannot write the pcap %s: %s (frames lost from it)",
                d->args.pcap, strerror(d->pcap.last_errno));
  }
}

static void drain_rx(struct toed *d)
{
  unsigned total = 0, n;
  do {
    /* One engine burst per ring burst: a connection makes one ACK (and, sending, one output)
     * decision for all of its segments in it, as GRO gives the kernel (toe_stack_burst_begin). */
    toe_stack_burst_begin(d->st);
    n = d->link.ops->rx_burst(&d->link, on_rx, d, RX_BUDGET);
    toe_stack_burst_end(d->st);
    total += n;
  } while (n > 0 && total < RX_MAX_PER_WAKE);
}

static int link_error(struct toed *d)
{
  int e = 0;
  socklen_t sl = sizeof e;
  getsockopt(d->link.ops->fd(&d->link), SOL_SOCKET, SO_ERROR, &e, &sl);
  if (if_nametoindex(d->args.wire) == 0) {
    logmsg("%s disappeared; stopping", d->args.wire);
    return -1;
  }
  if (e)
    ratelimited(&d->rl_link, d->now, "link %s: %s", d->args.wire, strerror(e));
  return 0;
}

/* Says when IPv6 duplicate address detection has decided about the device's addresses: a
 * duplicate is an operator's mistake to fix, so it is a warning naming the address. */
static void report_dad(struct toed *d)
{
  const struct toe_counters_nd *c = &toe_stack_counters(d->st)->nd;
  uint64_t decided = c->dad_completed + c->dad_duplicates;
  if (decided == d->dad_seen)
    return;
  d->dad_seen = decided;
  uint8_t a[16];
  char text[INET6_ADDRSTRLEN];
  int state;
  for (unsigned i = 0; (state = toe_stack_addr6(d->st, i, a)) >= 0; i++) {
    if (state == TOE_ADDR6_TENTATIVE)
      return; /* not all decided yet: report once they are */
  }
  for (unsigned i = 0; (state = toe_stack_addr6(d->st, i, a)) >= 0; i++) {
    inet_ntop(AF_INET6, a, text, sizeof text);
    if (state == TOE_ADDR6_DUPLICATE)
      logmsg("warning: IPv6 address %s is already in use on %s (duplicate address detection, "
             "RFC 4862): the device will not use it; give --addr6 another address",
             text, d->args.wire);
    else if (!quiet)
      logmsg("IPv6 address %s ready", text);
  }
}

/* Brings the engine's clock up to now (socket calls act at the engine's time). */
static void toed_poll_now(struct toed *d)
{
  d->now = mono_now();
  toe_stack_poll(d->st, d->now);
}

static int run_loop(struct toed *d)
{
  for (;;) {
    d->now = mono_now();
    /* Input before timers: a frame that arrived while toed was busy or descheduled (an ACK, say)
     * must be seen before the retransmission or tail-loss-probe timer it would have stopped is
     * taken as expired. Cheap when the ring is empty. */
    drain_rx(d);
    /* Always, not only when a timer is due: socket calls (the services') act at the engine's
     * time, which must be now, not the time of the last frame or poll (engine.h). */
    d->now = mono_now();
    toe_stack_poll(d->st, d->now);
    if (d->args.n_addr6)
      report_dad(d);
    if (toed_services_pending(&d->svc) || toed_services_stalled(&d->svc))
      toed_services_run(&d->svc, SVC_BUDGET);
    if (d->ctl_open)
      toed_ctl_run(&d->ctl, d->now); /* every client's rings, in one batch */
    if (d->hif_open) {
      if (d->fh_open)
        follow_host(d);
      drain_host_if(d);
      follow_carrier(d);
    }
    int frc = d->link.ops->flush(&d->link);
    if (frc < 0)
      ratelimited(&d->rl_tx, d->now, "transmit failed on %s: %s", d->args.wire, strerror(-frc));
    if (d->pcap.f && d->now >= d->next_pcap_flush) {
      toe_pcapw_flush(&d->pcap);
      d->next_pcap_flush = d->now + TOE_SEC(1);
    }
    report_errors(d);
    /* Host clients get a grace period to close after EV_SHUTDOWN (docs/transport.md). */
    if (d->stop_signal && (!d->ctl_open || toed_ctl_stop(&d->ctl, d->now)))
      return 0;

    toe_time_t wake = toe_stack_next_deadline(d->st);
    if (d->pcap.f && d->next_pcap_flush < wake)
      wake = d->next_pcap_flush;
    if (d->hif_open && d->next_carrier_check < wake)
      wake = d->next_carrier_check;
    /* The engine just ran its timers; a deadline that is still not in the future is a wheel slot
     * boundary, not work: wait a little instead of spinning on it. */
    if (wake <= d->now)
      wake = d->now + 50000;
    /* TCP connections waiting for packet buffers: look again soon (no event says when). */
    if (toed_services_stalled(&d->svc) && wake > d->now + STALL_RETRY)
      wake = d->now + STALL_RETRY;
    /* Host clients: spinning on their rings after activity (--poll-us), work queued, or a
     * re-check due. */
    bool ctl_busy = false;
    if (d->ctl_open) {
      toe_time_t cw = toed_ctl_next_wake(&d->ctl, d->now);
      if (cw <= d->now)
        ctl_busy = true;
      else if (cw < wake)
        wake = cw;
    }
    int timeout = -1;
    if (toed_services_pending(&d->svc) || ctl_busy)
      timeout = 0; /* more work now; just look for input first */
    else
      arm_timer(d, wake);

    /* Every ready descriptor in one wake-up: each client's control socket and kick eventfd are
     * in this set too, and with 4 at a time a loop round (every session run once) served only 4
     * of 64 busy clients' doorbells and hellos (test_transport_many at load 14: 24 hellos
     * unread after 2 s, 3 ops unanswered after 5 s). A client ended earlier in the batch leaves
     * events with a stale tag, which toed_ctl_on_epoll ignores. */
    struct epoll_event evs[EPOLL_BATCH];
    int n = epoll_wait(d->epfd, evs, EPOLL_BATCH, timeout);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      logmsg("epoll_wait: %s", strerror(errno));
      return -1;
    }
    d->now = mono_now();
    for (int i = 0; i < n; i++) {
      switch (evs[i].data.u32) {
      case 0:
        if (evs[i].events & EPOLLERR && link_error(d) < 0)
          return -1;
        if (evs[i].events & EPOLLIN)
          drain_rx(d);
        break;
      case 1: {
        uint64_t ticks;
        if (read(d->tfd, &ticks, sizeof ticks) < 0) {
          /* EAGAIN: re-armed before we read; nothing to do. */
        }
        d->armed = TOE_TIME_NEVER; /* expired: the next arm must really set it */
        break;
      }
      case 2: {
        struct signalfd_siginfo si;
        if (read(d->sfd, &si, sizeof si) != (ssize_t)sizeof si)
          break;
        if (toed_signal_is_dump((int)si.ssi_signo)) {
          logmsg("counters after %.1f s (SIGUSR1):", (double)(d->now - d->started) / 1e9);
          print_counters(d);
        } else if (!d->stop_signal) {
          d->stop_signal = (int)si.ssi_signo;
        }
        break;
      }
      case 3:
      case 4:
        break; /* the host interface and its addresses: read at the top of the loop */
      default:
        if (d->ctl_open && toed_ctl_is_tag(evs[i].data.u64))
          toed_ctl_on_epoll(&d->ctl, evs[i].data.u64, evs[i].events, d->now);
        break;
      }
    }
  }
}

/* ------------------------------------------------------------------------------------------- */

static void teardown(struct toed *d)
{
  if (d->ctl_open)
    toed_ctl_close(&d->ctl);
  if (d->fh_open)
    toed_follow_host_close(&d->fh);
  d->fh_open = false;
  if (d->hif_open)
    toed_host_if_close(&d->hif);
  d->hif_open = false;
  if (d->ports_open && toed_port_share_close(&d->ports) < 0)
    logmsg("could not restore net.ipv4.ip_local_reserved_ports (check it with sysctl)");
  d->ports_open = false;
  if (d->svc_open)
    toed_services_close(&d->svc);
  d->svc_open = false;
  if (d->link_open)
    d->link.ops->close(&d->link);
  d->link_open = false;
  if (d->guard_on && toed_port_guard_remove(&d->guard) < 0)
    logmsg("could not fully restore %s (check 'nft list tables' and 'ip link show %s')",
           d->args.wire, d->args.wire);
  d->guard_on = false;
  if (d->pcap.f) {
    int rc = toe_pcapw_close(&d->pcap);
    if (rc < 0)
      logmsg("cannot finish the pcap %s: %s", d->args.pcap, strerror(-rc));
  }
  if (d->epfd >= 0)
    close(d->epfd);
  if (d->tfd >= 0)
    close(d->tfd);
  if (d->sfd >= 0)
    close(d->sfd);
  d->epfd = d->tfd = d->sfd = -1;
}

int main(int argc, char **argv)
{
  static struct toed d;
  char err[512];
  d.epfd = d.tfd = d.sfd = -1;

  if (argc >= 2 && strcmp(argv[1], "--cleanup") == 0) {
    if (argc != 3) {
      logmsg("--cleanup needs exactly one interface name (e.g. toed --cleanup eth1)");
      return TOED_EXIT_USAGE;
    }
    return toed_cleanup_main(argv[2]);
  }
  int early = toed_ops_early(&argc, &argv); /* --version, --config, --log-level (toed_ops.c) */
  if (early >= 0)
    return early;
  if (toed_args_parse(&d.args, argc, argv, err, sizeof err) < 0) {
    logmsg("%s", err);
    return TOED_EXIT_USAGE;
  }
  if (d.args.help) {
    toed_args_usage(stdout);
    return 0;
  }
  quiet = d.args.quiet;
#ifndef TOED_HAVE_AFXDP
  if (d.args.link && strcmp(d.args.link, "afxdp") == 0) {
    logmsg("--link afxdp: this toed was built without the AF_XDP driver (install libxdp-dev and "
           "libbpf-dev, e.g. with 'make deps', and rebuild), or use --link afpacket");
    return TOED_EXIT_USAGE;
  }
#endif
  if (toed_check_startup(&d.args, err, sizeof err) < 0) {
    logmsg("%s", err);
    return TOED_EXIT_USAGE;
  }
  if (toed_raise_nofile(toed_nofile_need(&d.args), err, sizeof err) < 0)
    logmsg("warning: %s", err);

  /* Signals go to the signalfd; blocked from here on so none is lost during start-up: every
   * terminating one that can be handled stops toed cleanly (toed_lifecycle.h). */
  sigset_t mask;
  toed_signals_block(&mask);
  signal(SIGPIPE, SIG_IGN);

  if (query_interface(&d, err, sizeof err) < 0) {
    logmsg("%s", err);
    return TOED_EXIT_USAGE;
  }
  if (d.if_mtu < 68) {
    logmsg("--wire %s: its MTU %d is below the IPv4 minimum 68", d.args.wire, d.if_mtu);
    return TOED_EXIT_USAGE;
  }
  if (d.args.mtu > d.if_mtu) {
    logmsg("--mtu %u: larger than %s's MTU %d (raise it first: ip link set %s mtu %u)",
           (unsigned)d.args.mtu, d.args.wire, d.if_mtu, d.args.wire, (unsigned)d.args.mtu);
    return TOED_EXIT_USAGE;
  }
  d.mtu = d.args.mtu ? d.args.mtu : (uint16_t)(d.if_mtu > 9000 ? 9000 : d.if_mtu);
  memcpy(d.mac, d.args.have_mac ? d.args.mac : d.if_mac, 6);
  static const uint8_t zero_mac[6];
  if (!d.args.have_mac && ((d.mac[0] & 1) || memcmp(d.mac, zero_mac, 6) == 0)) {
    logmsg("--wire %s: the interface has no usable MAC address; give one with --mac", d.args.wire);
    return TOED_EXIT_USAGE;
  }
  if (d.args.pcap) {
    int rc = toe_pcapw_open(&d.pcap, d.args.pcap, TOE_PCAPW_PCAP, TOE_PCAPW_SNAPLEN_MAX, 1u << 20);
    if (rc < 0) {
      logmsg("--pcap %s: cannot create it: %s", d.args.pcap, strerror(-rc));
      return TOED_EXIT_USAGE;
    }
  }

  /* The engine. */
  struct toe_config cfg;
  toe_config_defaults(&cfg);
  memcpy(cfg.mac.b, d.mac, 6);
  cfg.addr = d.args.addr;
  cfg.prefix_len = d.args.prefix_len;
  cfg.gateway = d.args.gateway;
  cfg.mtu = d.mtu;
  cfg.vlan_id = d.args.vlan;
  _Static_assert(TOED_MAX_ADDR6 == TOE_MAX_ADDR6, "toed's --addr6 limit is the engine's");
  if (d.args.n_addr6) {
    cfg.ipv6 = 1;
    cfg.addr6_count = (uint8_t)d.args.n_addr6;
    memcpy(cfg.addr6, d.args.addr6, sizeof cfg.addr6);
    memcpy(cfg.addr6_prefix_len, d.args.addr6_prefix_len, sizeof cfg.addr6_prefix_len);
  }
  /* --offload: the checksums the driver takes over (src/device/link.h); receive verification is
   * per frame (TOED_RX_F_L4_CSUM_OK in on_rx) */
  d.link.ops = &toed_link_afpacket_ops;
#ifdef TOED_HAVE_AFXDP
  if (d.args.link && strcmp(d.args.link, "afxdp") == 0)
    d.link.ops = &toed_link_afxdp_ops;
#endif
  cfg.link_caps = 0;
  if ((d.args.offload & TOED_OFFLOAD_TX_CSUM) && (d.link.ops->caps & TOED_LINK_CAP_TX_CSUM))
    cfg.link_caps |= TOE_LINK_CAP_TX_CSUM;
  if (d.args.offload & TOED_OFFLOAD_RX_CSUM)
    cfg.link_caps |= TOE_LINK_CAP_RX_CSUM;
  /* TSO rides on the checksum offload: the kernel completes each piece's checksum */
  if ((d.args.offload & TOED_OFFLOAD_TSO) && (cfg.link_caps & TOE_LINK_CAP_TX_CSUM) &&
      (d.link.ops->caps & TOED_LINK_CAP_TSO))
    cfg.link_caps |= TOE_LINK_CAP_TSO;
  /* Pools for the TCP services: every window and send queue lives in pbufs; a connection that
   * ends holds its tcb until its FIN is acknowledged, hence room for twice the connections. */
  cfg.pbuf_count = d.args.pbufs;
  uint64_t socks = 2ull * d.args.max_conns + 2u * TOED_MAX_SERVICES;
  cfg.tcp_socks = socks < 16384u ? 16384u : (uint32_t)socks;
  cfg.tcp_syncache = toed_svc_backlog(d.args.max_conns);
  cfg.tcp_max_backlog = toed_svc_backlog(d.args.max_conns);
  /* A UDP service's queue must hold what one drain of the link brings between two service runs
   * (a full RX ring and more: the engine's default 256 overflowed under a flood, ~0.5 M drops in
   * bench/udp_pps.sh), without letting one socket sit on much of the pool: 1/16 of it, at most
   * 4096 datagrams (8 MiB), at least the default. Overflows count as udp.rx_drop_queue_full. */
  uint32_t rcvq = d.args.pbufs / 16u;
  cfg.udp_rcvq_len = (uint16_t)(rcvq > 4096u ? 4096u : rcvq < 256u ? 256u : rcvq);
  if (getrandom(&cfg.random_seed, sizeof cfg.random_seed, 0) != sizeof cfg.random_seed ||
      getrandom(cfg.secret, sizeof cfg.secret, 0) != sizeof cfg.secret) {
    logmsg("getrandom: %s", strerror(errno));
    teardown(&d);
    return EXIT_RUNTIME;
  }
  cfg.tx = on_tx;
  cfg.tcp_ecn = d.args.ecn; /* --ecn */
  cfg.sock_event = on_sock_event;
  cfg.ctx = &d;
  if (d.args.host_if) {
    /* Coexistence with the OS on the host interface (docs/coexistence.md). */
    cfg.steering = 1;
    cfg.icmp_echo_host = d.args.icmp_echo_host;
    cfg.port_claim = on_port_claim;
    if (toed_port_share_open(&d.ports, d.args.addr, cfg.ephemeral_lo, cfg.ephemeral_hi, err,
                             sizeof err) < 0) {
      logmsg("%s", err);
      teardown(&d);
      return EXIT_RUNTIME;
    }
    d.ports_open = true;
    toed_port_share_set_addr6(&d.ports, (const uint8_t(*)[16])d.args.addr6, d.args.n_addr6);
  }
  int rc = toe_stack_new(&cfg, &d.st);
  if (rc < 0) {
    logmsg("cannot create the engine: %s (check --addr, --gateway and --mtu; with --addr6 the MTU "
           "must be at least 1280)",
           toe_strerror(rc));
    teardown(&d);
    return EXIT_RUNTIME;
  }

  /* The port: keep the kernel off it, then open it. */
  char warn[512];
  if (toed_port_guard_install(&d.guard, d.args.wire, TOED_FWMARK, err, sizeof err, warn,
                              sizeof warn) < 0) {
    logmsg("%s", err);
    teardown(&d);
    toe_stack_free(d.st);
    return EXIT_RUNTIME;
  }
  d.guard_on = true;
  if (warn[0])
    logmsg("warning: %s", warn);

  struct toed_link_params lp = {
      .ifname = d.args.wire,
      .ifindex = d.ifindex,
      .mtu = d.mtu,
      .promisc = memcmp(d.mac, d.if_mac, 6) != 0,
      .fwmark = d.guard.egress ? TOED_FWMARK : 0,
      .rx_tov_ms = 0,
      .tso = (cfg.link_caps & TOE_LINK_CAP_TSO) != 0,
  };
  rc = d.link.ops->open(&d.link, &lp, err, sizeof err);
  if (rc < 0) {
    logmsg("%s", err);
    teardown(&d);
    toe_stack_free(d.st);
    return EXIT_RUNTIME;
  }
  d.link_open = true;

  if (d.args.host_if) {
    struct toed_host_if_params hp = {
        .name = d.args.host_if,
        .mac = d.mac,
        .mtu = d.mtu,
        .addr = d.args.host_addr,
        .prefix_len = d.args.host_prefix_len,
        .carrier = toed_if_running(d.args.wire),
    };
    if (toed_host_if_open(&d.hif, &hp, err, sizeof err) < 0) {
      logmsg("%s", err);
      teardown(&d);
      toe_stack_free(d.st);
      return EXIT_RUNTIME;
    }
    d.hif_open = true;
    if (d.args.follow_host) {
      if (toed_follow_host_open(&d.fh, d.hif.ifindex, err, sizeof err) < 0) {
        logmsg("%s", err);
        teardown(&d);
        toe_stack_free(d.st);
        return EXIT_RUNTIME;
      }
      d.fh_open = true;
    }
  }

  if (toed_services_open(&d.svc, d.st, d.args.services, d.args.n_services, cfg.random_seed ^ 1,
                         d.args.max_conns, err, sizeof err) < 0) {
    logmsg("%s", err);
    teardown(&d);
    toe_stack_free(d.st);
    return EXIT_RUNTIME;
  }
  d.svc_open = true;
  if (setup_loop(&d, &mask, err, sizeof err) < 0) {
    logmsg("%s", err);
    teardown(&d);
    toe_stack_free(d.st);
    return EXIT_RUNTIME;
  }

  /* The control socket. One given with --ctl must work; the default path may be taken by another
   * toed (several test namespaces share the file system): then toed runs without it. */
  if (!d.args.ctl_off) {
    char path[128];
    struct toed_ctl_config cc;
    memset(&cc, 0, sizeof cc);
    cc.path = d.args.ctl_path;
    cc.path_is_default = d.args.ctl_path == NULL;
    cc.group = d.args.ctl_group;
    cc.poll_us = d.args.poll_us;
    cc.max_clients = d.args.max_clients;
    cc.quiet = quiet;
    static char identity[1024], drv[200]; /* STATS DEVICE (1.3); lives as long as toed */
    d.link.ops->describe(&d.link, drv, sizeof drv);
    toed_ops_identity(identity, sizeof identity, d.args.wire, drv, d.mac, d.args.addr,
                      d.args.prefix_len, d.args.gateway, d.mtu, d.args.vlan,
                      d.hif_open ? d.hif.name : NULL);
    cc.identity = identity;
    cc.uptime_ms = toed_ops_uptime_ms;
    if (!cc.path) {
      snprintf(path, sizeof path, "%s/%s.sock", TOED_CTL_DEFAULT_DIR, d.args.wire);
      cc.path = path;
    }
    if (toed_ctl_open(&d.ctl, &cc, d.st, d.epfd, err, sizeof err) == 0) {
      d.ctl_open = true;
    } else if (cc.path_is_default) {
      logmsg("warning: %s; running without a control socket", err);
    } else {
      logmsg("%s", err);
      teardown(&d);
      toe_stack_free(d.st);
      return EXIT_RUNTIME;
    }
  }

  toed_state_write(d.args.wire, d.ctl_open ? d.ctl.path : NULL); /* for toed --cleanup */

  if (!quiet) {
    char a[16], g[16], m[18], svcs[256], gd[160], ld[200];
    toed_services_describe(d.args.services, d.args.n_services, svcs, sizeof svcs);
    toed_port_guard_describe(&d.guard, gd, sizeof gd);
    d.link.ops->describe(&d.link, ld, sizeof ld);
    char vlan[16];
    snprintf(vlan, sizeof vlan, "%u", (unsigned)d.args.vlan);
    logmsg("up on %s: mac %s, addr %s/%u, gateway %s, mtu %u, vlan %s, services %s, pcap %s; "
           "link %s; guard %s",
           d.args.wire, toed_fmt_mac(d.mac, m, sizeof m), toed_fmt_ipv4(d.args.addr, a, sizeof a),
           (unsigned)d.args.prefix_len,
           d.args.gateway ? toed_fmt_ipv4(d.args.gateway, g, sizeof g) : "none", (unsigned)d.mtu,
           d.args.vlan ? vlan : "none", svcs, d.args.pcap ? d.args.pcap : "off", ld, gd);
  }

  if (!quiet && d.hif_open) {
    char ha[16];
    logmsg("host interface %s: mac shared, addr %s, icmp echo answered by the %s, ephemeral "
           "ports %u-%u reserved from the OS",
           d.hif.name, d.args.host_addr ? toed_fmt_ipv4(d.args.host_addr, ha, sizeof ha) : "unset",
           d.args.icmp_echo_host ? "host" : "device", (unsigned)cfg.ephemeral_lo,
           (unsigned)cfg.ephemeral_hi);
  }
  if (!quiet && d.ctl_open) {
    char cd[256];
    toed_ctl_describe(&d.ctl, cd, sizeof cd);
    logmsg("control socket %s", cd);
  }

  d.started = d.now = mono_now();
  d.next_pcap_flush = d.now + TOE_SEC(1);
  toe_stack_start(d.st, d.now); /* gratuitous ARP; sent by the first flush of the loop */
  toed_ops_ready(d.args.wire);  /* systemd Type=notify: serving now */
  rc = run_loop(&d);
  toed_ops_stopping();

  /* Connections still open are reset while the port is still ours (so the peers learn of it);
   * then the port goes back, then the report (the services' counters die with them). */
  toed_poll_now(&d);
  toed_services_stop(&d.svc);
  if (d.ctl_open)
    toed_ctl_close(&d.ctl); /* clients' connections reset, their control sockets closed */
  d.link.ops->flush(&d.link);
  d.link.ops->close(&d.link);
  d.link_open = false;
  if (d.hif_open)
    toed_host_if_close(&d.hif); /* the OS's interface goes with the device */
  d.hif_open = false;
  if (d.ports_open && toed_port_share_close(&d.ports) < 0)
    logmsg("could not restore net.ipv4.ip_local_reserved_ports (check it with sysctl)");
  d.ports_open = false;
  if (toed_port_guard_remove(&d.guard) < 0)
    logmsg("could not fully restore %s (check 'nft list tables' and 'ip link show %s')",
           d.args.wire, d.args.wire);
  d.guard_on = false;
  if (d.pcap.f) {
    int prc = toe_pcapw_close(&d.pcap);
    if (prc < 0)
      logmsg("cannot finish the pcap %s: %s", d.args.pcap, strerror(-prc));
  }
  toed_state_remove(d.args.wire);
  if (!quiet)
    print_summary(&d);
  teardown(&d);
  toe_stack_free(d.st);
  return rc == 0 ? 0 : EXIT_RUNTIME;
}
