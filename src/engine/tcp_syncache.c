/*
 * Listeners' SYN queue: a SYN cache of compact entries, and SYN cookies.
 *
 * A SYN to a listener creates no tcb. It creates a small entry (4-tuple, both initial sequence
 * numbers, the options agreed, a retransmission timer) from a pool of cfg.tcp_syncache shared by
 * all listeners, at most `backlog` per listener, hashed by 4-tuple under the stack's secret (so a
 * SYN flood cannot aim at one bucket). The SYN-ACK is retransmitted with exponential backoff; the
 * handshake-completing ACK turns the entry into a tcb in ESTABLISHED on the listener's accept
 * queue. This is the SYN cache of Lemon, "Resisting SYN flood DoS attacks with a SYN cache"
 * (BSDCon 2002), and RFC 4987 3.
 *
 * When the cache (or the listener's share) is full, or always with cfg.tcp_syncookies == 2, the
 * SYN is answered statelessly with a SYN cookie (RFC 4987 3.6): our ISS is a MAC of the
 * connection, and the ACK that echoes it (ack - 1) lets us rebuild the connection:
 *
 *   ISS bits 31..29  coarse time counter (COOKIE_PERIOD units) modulo 8
 *            28..26  index of the peer's MSS in mss_table (rounded down)
 *            25..0   SipHash of (4-tuple, peer's ISN, full counter, MSS index, option bits)
 *
 * A cookie is accepted for one to two counter periods (about 2 minutes). TCP options that do not
 * fit in the ISS ride in the low bits of our TSval when the peer offered timestamps, and come back
 * in its TSecr (the idea of Linux's cookie_init_timestamp; this layout is our own):
 *
 *   TSval bits 3..0  peer's window scale shift 0..14, 15 = no window scaling
 *              4     SACK permitted
 *              5     ECN (RFC 3168) agreed
 *
 * The option bits (with a "timestamps on" marker) are part of the MAC input, so the ACK cannot
 * claim options that were not agreed. Without timestamps, window scaling and SACK cannot be
 * remembered: the cookie SYN-ACK does not offer them (RFC 7323 2.2, RFC 2018 2: no option in the
 * SYN-ACK means the option is off for both).
 */
#include "engine/div64.h"
#include "engine/stack.h"
#include "engine/tcp.h"
#include "engine/tcp_ecn.h"
#include "wire/checksum.h"
#include "wire/tcp.h"

#include <string.h>

#define SC_F_TS 0x01u      /* timestamps agreed */
#define SC_F_SACK 0x02u    /* SACK permitted both ways */
#define SC_F_WS 0x04u      /* window scaling agreed */
#define SC_F_RETRANS 0x08u /* the SYN-ACK was sent more than once: no RTT sample (Karn) */
#define SC_F_ECN 0x10u     /* RFC 3168 ECN agreed (tcp_ecn.c) */
#define SC_F_ACC 0x20u     /* Accurate ECN agreed (RFC 9768) */
#define SC_F_IPECN_SHIFT 6 /* AccECN: the SYN's IP ECN field, fed back in the SYN-ACK */

/* The ECN mode (tcp_ecn.h: 0, TOE_ECNF_OK or TOE_ECNF_ACC) the SC_F_* flags hold. */
static uint8_t sc_ecn_mode(uint8_t flags)
{
  if (flags & SC_F_ACC)
    return TOE_ECNF_ACC;
  return (flags & SC_F_ECN) ? TOE_ECNF_OK : 0;
}

struct toe_syncache_entry {
  struct toe_syncache_entry *hnext; /* hash chain, or the free list */
  struct toe_tcb *listener;         /* NULL while free */
  struct toe_timer timer;           /* SYN-ACK retransmission */
  toe_time_t synack_time;           /* first SYN-ACK, for the handshake RTT sample */
  uint32_t laddr, raddr;
  uint16_t lport, rport;
  uint32_t iss, irs;
  uint32_t ts_recent; /* the peer's TSval in its SYN */
  uint32_t ts_offset; /* our TSval offset for this 4-tuple */
  uint16_t peer_mss;  /* the SYN's MSS option (536 when absent) */
  uint16_t rcv_mss;   /* the MSS we announced */
  uint16_t rcv_wnd;   /* the window we announced (SYN-ACK windows are never scaled) */
  uint8_t snd_wscale;
  uint8_t rcv_wscale;
  uint8_t flags; /* SC_F_* */
  uint8_t retries;
};

/* An embryonic connection costs an eighth of a tcb. */
_Static_assert(sizeof(struct toe_syncache_entry) <= 128, "SYN-cache entries must stay compact");

/* What a completed handshake knows, from an entry or from a cookie. */
struct sc_conn {
  uint32_t laddr, raddr;
  uint16_t lport, rport;
  uint32_t iss, irs;
  uint32_t ts_recent, ts_offset;
  uint16_t peer_mss, rcv_mss, rcv_wnd;
  uint8_t snd_wscale, rcv_wscale, flags;
  uint32_t rtt_us; /* handshake RTT sample, 0 = none */
};

/* SYN cookies */
#define COOKIE_PERIOD TOE_SEC(64) /* time counter unit; a cookie lives 1..2 units */
#define COOKIE_MAC_MASK 0x03ffffffu
#define COOKIE_TS_BITS 6u
#define COOKIE_TS_MASK ((1u << COOKIE_TS_BITS) - 1u)
#define COOKIE_WS_NONE 15u
#define COOKIE_SACK 0x10u
#define COOKIE_ECN 0x20u
#define COOKIE_OPT_TS 0x40u /* MAC input only: the SYN-ACK carried timestamps */

/* Common MSS values, ascending: the floor for odd tiny ones, the RFC 9293 3.7.1 default, VPNs and
 * tunnels, PPPoE (1452), Ethernet (1460), jumbo frames. A peer's MSS is rounded down. */
static const uint16_t mss_table[8] = {TOE_TCP_MIN_MSS, 536, 1360, 1400, 1440, 1452, 1460, 8960};

#define TCP_DEFAULT_MSS 536u /* RFC 9293 3.7.1: assumed when the SYN has no MSS option */
#define SYNACK_RETRIES_DEFAULT 5u

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 */

static uint32_t tuple_hash(const struct toe_stack *st, uint8_t domain, uint32_t laddr,
                           uint16_t lport, uint32_t raddr, uint16_t rport)
{
  uint8_t b[13];
  memcpy(b, &laddr, 4);
  memcpy(b + 4, &raddr, 4);
  memcpy(b + 8, &lport, 2);
  memcpy(b + 10, &rport, 2);
  b[12] = domain;
  return (uint32_t)toe_keyed_hash(st, b, sizeof(b));
}

static uint32_t ts_now(const struct toe_stack *st, uint32_t offset)
{
  return toe_tcp_now_ms(st) + offset;
}

/* What the path to `raddr` carries: a cached estimate (RFC 1191, engine/pmtu.c) or the link's. */
static uint16_t path_mtu(struct toe_stack *st, uint32_t laddr, uint32_t raddr)
{
  uint16_t link = st->cfg.mtu ? st->cfg.mtu : 1500;
  if (laddr == 0)
    return link; /* IPv6 (tcp.h): no IPv6 path MTU cache in the engine yet */
  uint16_t mtu = toe_pmtu_get(st, raddr);
  if (mtu < link)
    st->ctr.tcp.pmtu_from_cache++;
  return mtu;
}

/* The MSS a SYN-ACK offers: the listener's, less IPv6's longer header (RFC 8200 8.3). */
static uint16_t mss_offer(const struct toe_stack *st, const struct toe_tcb *listener,
                          uint32_t laddr)
{
  uint16_t mss = toe_tcp_mss_offer(st, listener);
  uint32_t mtu = st->cfg.mtu ? st->cfg.mtu : 1500u;
  if (laddr == 0 && mtu > 60u && mss > mtu - 60u)
    mss = (uint16_t)(mtu - 60u);
  return mss;
}

static uint32_t listener_backlog(const struct toe_stack *st, const struct toe_tcb *listener)
{
  if (listener->backlog)
    return listener->backlog;
  return st->cfg.tcp_max_backlog ? st->cfg.tcp_max_backlog : 128u;
}

static uint32_t listener_rcvbuf(const struct toe_stack *st, const struct toe_tcb *listener)
{
  if (listener->rcvbuf)
    return listener->rcvbuf;
  return st->cfg.tcp_rcvbuf ? st->cfg.tcp_rcvbuf : 256u * 1024;
}

static uint32_t seg_len_of(const struct toe_ipv4_view *ip, const struct toe_tcp_view *th)
{
  uint32_t l4 = (uint32_t)ip->total_len - ip->hdr_len;
  uint32_t len = l4 > th->hdr_len ? l4 - th->hdr_len : 0;
  if (th->flags & TOE_TCP_SYN)
    len++;
  if (th->flags & TOE_TCP_FIN)
    len++;
  return len;
}

/* RFC 1122 4.2.3.10: SYNs from broadcast, multicast, loopback or unspecified sources are not
 * connections anyone can complete. */
static bool bad_source(const struct toe_stack *st, uint32_t src)
{
  return src == 0 || src == st->cfg.addr || toe_ipv4_is_multicast(src) ||
         toe_ipv4_is_loopback(src) || toe_ipv4_is_broadcast(src, st->cfg.addr, st->cfg.prefix_len);
}

/* ---------------------------------------------------------------------------------------------
 * Output of connection-less segments
 */

static int xmit(struct toe_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
                uint16_t rport, uint32_t seq, uint32_t ack, uint16_t flags, uint16_t window,
                const struct toe_tcp_opts *o, bool retrans)
{
  struct toe_counters_tcp *c = &st->ctr.tcp;
  struct toe_pbuf *pb = toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
  if (pb == NULL) {
    c->out_drop_nobuf++;
    return -TOE_ENOBUFS;
  }
  uint8_t opt[TOE_TCP_MAX_HLEN - TOE_TCP_HLEN];
  size_t olen = o ? toe_tcp_write_opts(opt, sizeof(opt), o) : 0;
  uint16_t hlen = (uint16_t)(TOE_TCP_HLEN + olen);
  uint8_t *h = toe_pbuf_put(pb, hlen);
  if (h == NULL) {
    toe_pbuf_free(st, pb);
    c->out_drop_nobuf++;
    return -TOE_ENOBUFS;
  }
  memcpy(h + TOE_TCP_HLEN, opt, olen);
  struct toe_tcp_fields f = {
      .src_port = lport,
      .dst_port = rport,
      .seq = seq,
      .ack = ack,
      .flags = (uint8_t)flags,
      .window = window,
      .urg_ptr = 0,
  };
  toe_tcp_write(h, &f, olen);
  if (flags & TOE_TCP_AE)
    h[12] |= 1u; /* RFC 9768's AE flag, the SYN-ACK's handshake feedback */
  uint32_t sum = toe_csum_partial(h, hlen, 0);
  /* laddr 0: an IPv6 4-tuple, raddr its pair's key (tcp.h); RFC 8200 8.1's pseudo-header */
  uint16_t csum = laddr ? toe_tcp_csum_finish(sum, laddr, raddr, hlen)
                        : toe_tcp6_csum_finish(st, raddr, sum, hlen);
  memcpy(h + 16, &csum, 2);
  int rc;
  if (laddr) {
    /* DF: TCP does path MTU discovery (RFC 1191); a SYN-ACK or ACK is small anyway. */
    struct toe_ip_tx tx = {.src = laddr, .dst = raddr, .proto = TOE_IPPROTO_TCP, .df = true};
    rc = toe_ipv4_output(st, pb, &tx);
  } else {
    rc = toe_tcp6_ip_output(st, raddr, lport, rport, 0,
                            pb); /* a SYN-ACK is Not-ECT (RFC 3168 6.1.1) */
  }
  if (rc < 0) {
    c->out_errors++;
    return rc;
  }
  if (retrans)
    c->retrans_segs++;
  else
    c->out_segs++;
  if (flags & TOE_TCP_RST)
    c->out_rsts++;
  return 0;
}

int toe_tcp_xmit_bare(struct toe_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
                      uint16_t rport, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t window,
                      const struct toe_tcp_opts *o)
{
  return xmit(st, laddr, lport, raddr, rport, seq, ack, flags, window, o, false);
}

/* Sends the SYN-ACK of `c` with TSval `tsval` (ignored without timestamps). */
static int send_synack(struct toe_stack *st, const struct sc_conn *c, uint32_t tsval, bool retrans)
{
  struct toe_tcp_opts o;
  memset(&o, 0, sizeof(o));
  o.has = TOE_TCPOPT_HAS_MSS;
  o.mss = c->rcv_mss;
  if (c->flags & SC_F_WS) {
    o.has |= TOE_TCPOPT_HAS_WSCALE;
    o.wscale = c->rcv_wscale;
  }
  if (c->flags & SC_F_SACK)
    o.has |= TOE_TCPOPT_HAS_SACK_PERM;
  if (c->flags & SC_F_TS) {
    o.has |= TOE_TCPOPT_HAS_TS;
    o.ts_val = tsval;
    o.ts_ecr = c->ts_recent;
  }
  /* ECN's answer (tcp_ecn.c); a SYN-ACK is never ECT itself (RFC 3168 6.1.1) */
  uint16_t ecn = toe_tcp_ecn_synack_bits(sc_ecn_mode(c->flags), c->flags >> SC_F_IPECN_SHIFT);
  return xmit(st, c->laddr, c->lport, c->raddr, c->rport, c->iss, c->irs + 1,
              (uint16_t)(TOE_TCP_SYN | TOE_TCP_ACK | ecn), c->rcv_wnd, &o, retrans);
}

/* ---------------------------------------------------------------------------------------------
 * The cache
 */

static void entry_to_conn(const struct toe_syncache_entry *e, struct sc_conn *c)
{
  memset(c, 0, sizeof(*c));
  c->laddr = e->laddr;
  c->raddr = e->raddr;
  c->lport = e->lport;
  c->rport = e->rport;
  c->iss = e->iss;
  c->irs = e->irs;
  c->ts_recent = e->ts_recent;
  c->ts_offset = e->ts_offset;
  c->peer_mss = e->peer_mss;
  c->rcv_mss = e->rcv_mss;
  c->rcv_wnd = e->rcv_wnd;
  c->snd_wscale = e->snd_wscale;
  c->rcv_wscale = e->rcv_wscale;
  c->flags = e->flags;
}

static struct toe_syncache_entry **sc_bucket(const struct toe_stack *st, uint32_t laddr,
                                             uint16_t lport, uint32_t raddr, uint16_t rport)
{
  uint32_t h = tuple_hash(st, 'S', laddr, lport, raddr, rport);
  return &st->tcp.sc_hash[h & st->tcp.sc_hash_mask];
}

static struct toe_syncache_entry *sc_lookup(const struct toe_stack *st, uint32_t laddr,
                                            uint16_t lport, uint32_t raddr, uint16_t rport)
{
  if (st->tcp.sc_hash == NULL || st->tcp.sc_inuse == 0)
    return NULL;
  for (struct toe_syncache_entry *e = *sc_bucket(st, laddr, lport, raddr, rport); e; e = e->hnext) {
    if (e->laddr == laddr && e->lport == lport && e->raddr == raddr && e->rport == rport)
      return e;
  }
  return NULL;
}

static void sc_remove(struct toe_stack *st, struct toe_syncache_entry *e)
{
  struct toe_syncache_entry **pp = sc_bucket(st, e->laddr, e->lport, e->raddr, e->rport);
  while (*pp && *pp != e)
    pp = &(*pp)->hnext;
  if (*pp)
    *pp = e->hnext;
  toe_timer_cancel(st, &e->timer);
  if (e->laddr == 0)
    toe_tcp6_release(st, e->raddr); /* an IPv6 entry's hold on its pair */
  if (e->listener && e->listener->synq_len)
    e->listener->synq_len--;
  e->listener = NULL;
  e->hnext = st->tcp.sc_free;
  st->tcp.sc_free = e;
  st->tcp.sc_inuse--;
  st->ctr.tcp.syncache_inuse = st->tcp.sc_inuse;
}

static toe_time_t synack_rto(const struct toe_stack *st, unsigned backoff)
{
  toe_time_t rto = st->cfg.tcp_rto_initial ? st->cfg.tcp_rto_initial : TOE_SEC(1);
  toe_time_t max = st->cfg.tcp_rto_max ? st->cfg.tcp_rto_max : TOE_SEC(60);
  for (unsigned i = 0; i < backoff && rto < max; i++)
    rto *= 2;
  return rto < max ? rto : max;
}

/* SYN-ACK retransmission timer (RFC 6298 5.5 backoff, as for SYNs). */
static void sc_timer_fn(struct toe_stack *st, struct toe_timer *t)
{
  struct toe_syncache_entry *e = toe_container_of(t, struct toe_syncache_entry, timer);
  unsigned max = st->cfg.tcp_syn_retries ? st->cfg.tcp_syn_retries : SYNACK_RETRIES_DEFAULT;
  st->ctr.tcp.rto_expired++;
  if (e->retries >= max) {
    st->ctr.tcp.syncache_timeouts++;
    st->ctr.tcp.attempt_fails++;
    sc_remove(st, e);
    return;
  }
  e->retries++;
  e->flags |= SC_F_RETRANS;
  struct sc_conn c;
  entry_to_conn(e, &c);
  st->ctr.tcp.synack_retrans++;
  st->ctr.tcp.syn_retrans++;
  send_synack(st, &c, ts_now(st, e->ts_offset), true);
  toe_timer_arm(st, &e->timer, toe_stack_now(st) + synack_rto(st, e->retries));
}

size_t toe_tcp_syncache_mem_size(const struct toe_config *cfg)
{
  uint32_t n = cfg->tcp_syncache;
  uint32_t buckets = 1;
  while (buckets < n && buckets < (1u << 30))
    buckets <<= 1;
  return (size_t)n * sizeof(struct toe_syncache_entry) +
         (size_t)buckets * sizeof(struct toe_syncache_entry *);
}

void toe_tcp_syncache_init(struct toe_stack *st, void *mem)
{
  uint32_t n = st->cfg.tcp_syncache;
  uint32_t buckets = 1;
  while (buckets < n && buckets < (1u << 30))
    buckets <<= 1;
  struct toe_syncache_entry *pool = mem;
  memset(mem, 0, toe_tcp_syncache_mem_size(&st->cfg));
  st->tcp.sc_pool = pool;
  st->tcp.sc_hash = (struct toe_syncache_entry **)(void *)(pool + n);
  st->tcp.sc_hash_mask = buckets - 1;
  st->tcp.sc_count = n;
  st->tcp.sc_inuse = 0;
  st->tcp.sc_cookie_time = 0;
  st->tcp.sc_free = NULL;
  for (uint32_t i = n; i-- > 0;) {
    toe_timer_init(&pool[i].timer, sc_timer_fn);
    pool[i].hnext = st->tcp.sc_free;
    st->tcp.sc_free = &pool[i];
  }
}

uint32_t toe_tcp_syncache_count(const struct toe_stack *st, const struct toe_tcb *listener)
{
  return listener ? listener->synq_len : st->tcp.sc_inuse;
}

struct toe_tcb *toe_tcp_syncache_listener(const struct toe_stack *st, uint32_t laddr,
                                          uint16_t lport, uint32_t raddr, uint16_t rport)
{
  const struct toe_syncache_entry *e = sc_lookup(st, laddr, lport, raddr, rport);
  return e ? e->listener : NULL;
}

void toe_tcp_syncache_listener_closed(struct toe_stack *st, struct toe_tcb *listener)
{
  for (uint32_t i = 0; i < st->tcp.sc_count && listener->synq_len; i++) {
    struct toe_syncache_entry *e = &st->tcp.sc_pool[i];
    if (e->listener == listener)
      sc_remove(st, e);
  }
}

/* ---------------------------------------------------------------------------------------------
 * SYN cookies
 */

static uint32_t cookie_mac(const struct toe_stack *st, const struct sc_conn *c, uint32_t count,
                           uint32_t mss_idx, uint32_t optbits)
{
  uint8_t b[28];
  memcpy(b, &c->laddr, 4);
  memcpy(b + 4, &c->raddr, 4);
  memcpy(b + 8, &c->lport, 2);
  memcpy(b + 10, &c->rport, 2);
  memcpy(b + 12, &c->irs, 4);
  memcpy(b + 16, &count, 4);
  memcpy(b + 20, &mss_idx, 4);
  memcpy(b + 24, &optbits, 4);
  uint8_t tagged[29];
  memcpy(tagged, b, sizeof(b));
  tagged[28] = 'C'; /* domain separation from the other keyed hashes */
  return (uint32_t)toe_keyed_hash(st, tagged, sizeof(tagged)) & COOKIE_MAC_MASK;
}

static uint32_t cookie_count(const struct toe_stack *st)
{
  /* now / COOKIE_PERIOD without a 64-bit divide: ns -> s, then 64 s units */
  _Static_assert(COOKIE_PERIOD == TOE_SEC(64), "cookie_count divides by 64 s");
  return (uint32_t)(toe_div1000(toe_div1000000(toe_stack_now(st))) >> 6);
}

/* The option bits a cookie carries in its TSval (and MACs), from the agreed flags. */
static uint32_t cookie_optbits(const struct sc_conn *c)
{
  if (!(c->flags & SC_F_TS))
    return 0;
  uint32_t b = COOKIE_OPT_TS;
  b |= (c->flags & SC_F_WS) ? c->snd_wscale : COOKIE_WS_NONE;
  if (c->flags & SC_F_SACK)
    b |= COOKIE_SACK;
  if (c->flags & SC_F_ECN)
    b |= COOKIE_ECN;
  return b;
}

static uint32_t cookie_mss_index(uint16_t peer_mss)
{
  uint32_t i = 7;
  while (i > 0 && mss_table[i] > peer_mss)
    i--;
  return i;
}

/* Fills c->iss with a cookie for the connection described by `c` (irs, tuple, options). */
static void cookie_make(const struct toe_stack *st, struct sc_conn *c)
{
  uint32_t count = cookie_count(st);
  uint32_t idx = cookie_mss_index(c->peer_mss);
  c->iss = (count & 7u) << 29 | idx << 26 | cookie_mac(st, c, count, idx, cookie_optbits(c));
}

/* TSval for a cookie SYN-ACK: our clock with the option bits in the low bits, never ahead of the
 * clock so the TSvals the connection sends later keep increasing (RFC 7323 5.4). */
static uint32_t cookie_tsval(const struct toe_stack *st, const struct sc_conn *c)
{
  uint32_t now = ts_now(st, c->ts_offset);
  uint32_t v = (now & ~COOKIE_TS_MASK) | (cookie_optbits(c) & COOKIE_TS_MASK);
  if (toe_seq_gt(v, now))
    v -= COOKIE_TS_MASK + 1;
  return v;
}

/* Cookies are checked only while they may be outstanding: a stray ACK is otherwise not worth a
 * MAC, and an attacker gets no oracle to grind against when we are not under pressure. */
static bool cookies_active(const struct toe_stack *st)
{
  if (st->cfg.tcp_syncookies == 0 || st->tcp.sc_cookie_time == 0)
    return false;
  return toe_stack_now(st) - st->tcp.sc_cookie_time <= 2 * COOKIE_PERIOD;
}

/*
 * Checks the cookie an ACK carries back (ack - 1) and rebuilds the connection into `c` (tuple
 * already filled). Returns false if the MAC, the age or the option bits do not check out.
 */
static bool cookie_check(const struct toe_stack *st, const struct toe_tcp_view *th,
                         const struct toe_tcp_opts *opts, struct sc_conn *c)
{
  c->iss = th->ack - 1;
  c->irs = th->seq - 1;
  uint32_t now_count = cookie_count(st);
  uint32_t age = (now_count - (c->iss >> 29)) & 7u;
  if (age > 1)
    return false;
  uint32_t count = now_count - age;
  uint32_t idx = (c->iss >> 26) & 7u;
  uint32_t optbits = 0;
  c->ts_offset = toe_tcp_ts_offset(st, c->laddr, c->lport, c->raddr, c->rport);
  if (opts->has & TOE_TCPOPT_HAS_TS) {
    uint32_t b = opts->ts_ecr & COOKIE_TS_MASK;
    uint32_t ws = b & 0x0fu;
    if (ws > 14 && ws != COOKIE_WS_NONE)
      return false;
    /* The echoed TSval must be one we could have sent within the cookie's life. */
    uint32_t ts_age = ts_now(st, c->ts_offset) - opts->ts_ecr;
    if ((int32_t)ts_age < 0 || ts_age > (uint32_t)(2 * COOKIE_PERIOD / 1000000u))
      return false;
    optbits = COOKIE_OPT_TS | b;
  }
  if (cookie_mac(st, c, count, idx, optbits) != (c->iss & COOKIE_MAC_MASK))
    return false;
  c->peer_mss = mss_table[idx];
  c->flags = 0;
  c->snd_wscale = c->rcv_wscale = 0;
  if (optbits) {
    c->flags |= SC_F_TS;
    c->ts_recent = opts->ts_val;
    if ((optbits & 0x0fu) != COOKIE_WS_NONE) {
      c->flags |= SC_F_WS;
      c->snd_wscale = (uint8_t)(optbits & 0x0fu);
      c->rcv_wscale = toe_tcp_wscale_offer(&st->cfg);
    }
    if (optbits & COOKIE_SACK)
      c->flags |= SC_F_SACK;
    if (optbits & COOKIE_ECN)
      c->flags |= SC_F_ECN;
  }
  /* AccECN is not in the cookie: the ACK shows it. Only an AccECN client sends a non-zero ACE
   * on the handshake's ACK (RFC 9768 3.1.5, table 3), and we answer AccECN SYNs only when
   * configured to. */
  if (st->cfg.tcp_ecn == TOE_TCP_ECN_ACCECN && toe_tcp_ecn_ace(th) != 0)
    c->flags |= SC_F_ACC;
  return true;
}

/* ---------------------------------------------------------------------------------------------
 * Handshake completion: a tcb from what the SYN and the ACK told us
 */

static struct toe_tcb *sc_establish(struct toe_stack *st, struct toe_tcb *listener,
                                    const struct sc_conn *c, const struct toe_tcp_view *th)
{
  struct toe_counters_tcp *ctr = &st->ctr.tcp;
  struct toe_tcb *tp = toe_tcb_alloc(st);
  if (tp == NULL) {
    ctr->listen_nomem++;
    return NULL;
  }
  toe_time_t now = toe_stack_now(st);

  tp->sk.proto = TOE_IPPROTO_TCP;
  tp->sk.flags |= TOE_SOCK_F_BOUND | TOE_SOCK_F_CONNECTED;
  /* Linux clones sk_reuseport into the child: its TIME_WAIT then lets the group's port be bound
   * again by SO_REUSEPORT sockets (toe_tcp_timewait_port_used). */
  tp->sk.flags |= (uint8_t)(listener->sk.flags & TOE_SOCK_F_REUSEPORT);
  tp->sk.owner = listener->sk.owner;
  /* A dual-stack IPv6 listener's child is an IPv4 connection under IPv6 (v4-mapped) names; an
   * IPv6 child (laddr 0, tcp.h) takes its pair's addresses. */
  if (c->laddr == 0) {
    const struct toe_tcp6_pair *p = toe_tcp6_pair_get(st, c->raddr);
    if (p == NULL) {
      toe_tcb_free(st, tp);
      return NULL;
    }
    tp->sk.family = TOE_AF_INET6;
    tp->sk.v6flags = TOE_SOCK6_BOUND6 | TOE_SOCK6_CONN6;
    tp->sk.laddr6 = p->local;
    tp->sk.raddr6 = p->remote;
    tp->sk.flags |= TOE_SOCK_F_NOT_V4;
  } else if (listener->sk.family == TOE_AF_INET6) {
    tp->sk.family = TOE_AF_INET6;
    tp->sk.v6flags = TOE_SOCK6_BOUND4 | TOE_SOCK6_CONN4;
  }
  tp->sk.laddr = c->laddr;
  tp->sk.lport = c->lport;
  tp->sk.raddr = c->raddr;
  tp->sk.rport = c->rport;
  tp->sk.user = NULL; /* set by accept */

  /* Socket options are inherited from the listener, as on BSD and Linux. */
  tp->flags |= TOE_TF_PASSIVE | (listener->flags & (TOE_TF_NODELAY | TOE_TF_KEEPALIVE));
  if (listener->rcvbuf)
    tp->rcvbuf = listener->rcvbuf;
  if (listener->sndbuf)
    tp->sndbuf = listener->sndbuf;
  /* buffer sizes the application set on the listener stay fixed on its connections, as on Linux */
  tp->rcvbuf_locked = listener->rcvbuf_locked;
  tp->sndbuf_locked = listener->sndbuf_locked;
  if (listener->cc)
    tp->cc = listener->cc;
  tp->user_mss = listener->user_mss;
  if (listener->keep_idle)
    tp->keep_idle = listener->keep_idle;
  if (listener->keep_intvl)
    tp->keep_intvl = listener->keep_intvl;
  if (listener->keep_cnt)
    tp->keep_cnt = listener->keep_cnt;

  /* sequence spaces (RFC 9293 3.10.7.4, SYN-RECEIVED: the ACK acknowledged our SYN) */
  tp->iss = c->iss;
  tp->snd_una = c->iss + 1;
  tp->snd_nxt = c->iss + 1;
  tp->snd_max = c->iss + 1;
  tp->irs = c->irs;
  tp->rcv_nxt = c->irs + 1;
  /* What the peer knows of our window is what the SYN-ACK offered: min(buffer, 65535), the
   * field of a SYN is not scaled (RFC 7323 2.2). The first segment we send carries the scaled
   * window; output does not send an ACK just for that (tcp_output.c window_update_due). */
  tp->rcv_wnd = c->rcv_wnd;
  tp->rcv_adv = tp->rcv_nxt + c->rcv_wnd;
  tp->last_ack_sent = tp->rcv_nxt;

  /* options */
  if (c->flags & SC_F_WS) {
    tp->flags |= TOE_TF_WS_OK;
    tp->snd_wscale = c->snd_wscale > 14 ? 14 : c->snd_wscale; /* RFC 7323 2.3 */
    tp->rcv_wscale = c->rcv_wscale;
  } else {
    tp->snd_wscale = 0;
    tp->rcv_wscale = 0;
  }
  if (c->flags & SC_F_SACK)
    tp->flags |= TOE_TF_SACK_OK;
  tp->ts_offset = c->ts_offset;
  if (c->flags & SC_F_TS) {
    tp->flags |= TOE_TF_TS_OK;
    tp->ts_recent = c->ts_recent;
    tp->ts_recent_age = toe_tcp_now_ms(st);
  }
  toe_tcp_ecn_passive_init(st, tp, sc_ecn_mode(c->flags), th);

  /* The ACK's window is the first scaled one (RFC 7323 2.2); RFC 9293 3.10.7.4 sets SND.WND,
   * SND.WL1 and SND.WL2 from it. */
  tp->snd_wnd = (uint32_t)th->window << tp->snd_wscale;
  tp->snd_wl1 = th->seq;
  tp->snd_wl2 = th->ack;
  tp->max_sndwnd = tp->snd_wnd;

  /* MSS: the peer's option clamped to what our path carries (RFC 9293 3.7.1, RFC 1191). */
  tp->pmtu = path_mtu(st, c->laddr, c->raddr);
  tp->peer_mss = c->peer_mss;
  uint32_t mss = c->peer_mss;
  uint32_t pmss = (uint32_t)tp->pmtu - toe_tcp_ip_hlen(c->laddr) - TOE_TCP_HLEN;
  if (mss > pmss)
    mss = pmss;
  if (tp->user_mss && tp->user_mss < mss)
    mss = tp->user_mss;
  if (mss < TOE_TCP_MIN_MSS)
    mss = TOE_TCP_MIN_MSS;
  tp->snd_mss = (uint16_t)mss;
  tp->rcv_mss = c->rcv_mss;

  /* Congestion control starts from the real MSS: IW10 (RFC 6928). A lost SYN-ACK leaves one
   * segment (RFC 5681 3.1) and an RTO of at least 3 s (RFC 6298 5.7). */
  if (tp->cc == NULL)
    tp->cc = toe_cc_by_id(st->cfg.tcp_cc);
  if (tp->cc && tp->cc->init)
    tp->cc->init(st, tp);
  if (tp->cwnd == 0) {
    uint32_t iw = 10 * mss;
    uint32_t cap = 2 * mss > 14600 ? 2 * mss : 14600;
    tp->cwnd = iw < cap ? iw : cap;
  }
  if (tp->ssthresh == 0)
    tp->ssthresh = UINT32_MAX;
  if (c->rtt_us)
    toe_tcp_rtt_sample(st, tp, c->rtt_us);
  if (c->flags & SC_F_RETRANS) {
    tp->cwnd = mss;
    if (tp->rto_us < TOE_TCP_RTO_SYN_LOST_US)
      tp->rto_us = TOE_TCP_RTO_SYN_LOST_US;
  }

  tp->rcv_tstamp = now;
  if (tp->flags & TOE_TF_KEEPALIVE) {
    toe_time_t idle = tp->keep_idle ? TOE_SEC(tp->keep_idle) : st->cfg.tcp_keep_idle;
    toe_tcp_timer_set(st, tp, TOE_TT_KEEP, now + idle);
  }

  toe_tcp_set_state(st, tp, TOE_TCP_ESTABLISHED);
  toe_tcp_hash_insert(st, tp);

  /* onto the listener's accept queue */
  tp->listener = listener;
  tp->acceptq_next = NULL;
  if (listener->acceptq_tail)
    listener->acceptq_tail->acceptq_next = tp;
  else
    listener->acceptq_head = tp;
  listener->acceptq_tail = tp;
  listener->acceptq_len++;
  ctr->passive_opens++;
  toe_tcp_notify(st, listener, TOE_EV_READABLE);
  return tp;
}

/* ---------------------------------------------------------------------------------------------
 * Segments to a listener
 */

static void syn_input(struct toe_stack *st, struct toe_tcb *listener, struct toe_pbuf *pb,
                      const struct toe_ipv4_view *ip, const struct toe_tcp_view *th,
                      const struct toe_tcp_opts *opts, bool floor_set, uint32_t iss_floor)
{
  struct toe_counters_tcp *ctr = &st->ctr.tcp;
  /* A SYN carrying FIN is nonsense nobody sends; Linux drops it too. */
  if (listener == NULL || listener->state != TOE_TCP_LISTEN || !(th->flags & TOE_TCP_SYN) ||
      (th->flags & (TOE_TCP_ACK | TOE_TCP_RST | TOE_TCP_FIN)) ||
      (ip->dst != 0 && bad_source(st, ip->src))) { /* IPv6 sources: checked in tcp_v6.c */
    ctr->rx_drop_syn_bad++;
    toe_pbuf_free(st, pb);
    return;
  }
  struct sc_conn c;
  memset(&c, 0, sizeof(c));
  c.laddr = ip->dst;
  c.raddr = ip->src;
  c.lport = th->dst_port;
  c.rport = th->src_port;
  c.irs = th->seq;

  struct toe_syncache_entry *e = sc_lookup(st, c.laddr, c.lport, c.raddr, c.rport);
  if (e) {
    if (th->seq == e->irs) {
      /* The peer did not hear our SYN-ACK: answer its retransmitted SYN at once. */
      ctr->syncache_dup_syns++;
      ctr->synack_retrans++;
      e->flags |= SC_F_RETRANS;
      struct sc_conn ec;
      entry_to_conn(e, &ec);
      send_synack(st, &ec, ts_now(st, e->ts_offset), true);
    } else {
      /* Another SYN on an embryonic 4-tuple: RFC 5961 4.2 challenge ACK. A peer that restarted
       * answers it with a RST at exactly rcv_nxt, which frees the entry for its next SYN. */
      ctr->challenge_acks++;
      struct toe_tcp_opts o;
      memset(&o, 0, sizeof(o));
      if (e->flags & SC_F_TS) {
        o.has = TOE_TCPOPT_HAS_TS;
        o.ts_val = ts_now(st, e->ts_offset);
        o.ts_ecr = e->ts_recent;
      }
      xmit(st, e->laddr, e->lport, e->raddr, e->rport, e->iss + 1, e->irs + 1, TOE_TCP_ACK,
           e->rcv_wnd, &o, false);
    }
    toe_pbuf_free(st, pb);
    return;
  }

  /* Linux drops SYNs while the accept queue is full: completing them could only fail. */
  uint32_t backlog = listener_backlog(st, listener);
  if (listener->acceptq_len >= backlog) {
    ctr->listen_drops++;
    toe_pbuf_free(st, pb);
    return;
  }

  bool full = st->tcp.sc_free == NULL || listener->synq_len >= backlog;
  bool cookie = st->cfg.tcp_syncookies == 2 || full;
  if (full)
    ctr->syncache_overflow++;
  if (cookie && st->cfg.tcp_syncookies == 0) {
    toe_pbuf_free(st, pb);
    return;
  }

  /* Options (RFC 7323 2.2 and 3.2, RFC 2018 2): on only when both sides offer them. */
  if (st->cfg.tcp_timestamps && (opts->has & TOE_TCPOPT_HAS_TS)) {
    c.flags |= SC_F_TS;
    c.ts_recent = opts->ts_val;
  }
  if (st->cfg.tcp_sack && (opts->has & TOE_TCPOPT_HAS_SACK_PERM))
    c.flags |= SC_F_SACK;
  if (st->cfg.tcp_wscale && (opts->has & TOE_TCPOPT_HAS_WSCALE)) {
    c.flags |= SC_F_WS;
    c.snd_wscale = opts->wscale > 14 ? 14 : opts->wscale;
    c.rcv_wscale = toe_tcp_wscale_offer(&st->cfg);
  }
  /* ECN (RFC 3168 6.1.1, RFC 9768 3.1.1): what the SYN asks for, as far as cfg.tcp_ecn allows */
  uint8_t ecn = toe_tcp_ecn_syn_mode(st, th);
  if (ecn == TOE_ECNF_ACC)
    c.flags |= (uint8_t)(SC_F_ACC | (ip->tos & 3u) << SC_F_IPECN_SHIFT);
  else if (ecn == TOE_ECNF_OK)
    c.flags |= SC_F_ECN;
  uint32_t pm = (opts->has & TOE_TCPOPT_HAS_MSS) ? opts->mss : TCP_DEFAULT_MSS;
  if (pm < TOE_TCP_MIN_MSS) /* the floor every path applies (tcp.h) */
    pm = TOE_TCP_MIN_MSS;
  c.peer_mss = (uint16_t)pm;
  c.rcv_mss = mss_offer(st, listener, c.laddr);
  uint32_t wnd = listener_rcvbuf(st, listener);
  c.rcv_wnd = (uint16_t)(wnd > 65535u ? 65535u : wnd);
  c.ts_offset = toe_tcp_ts_offset(st, c.laddr, c.lport, c.raddr, c.rport);

  if (cookie) {
    /* A cookie ISS is a MAC, so a TIME_WAIT reopen's floor cannot apply; PAWS (the peer's newer
     * timestamps) is what protects such a reopened 4-tuple then. */
    if (!(c.flags & SC_F_TS))
      c.flags &= (uint8_t) ~(SC_F_WS | SC_F_SACK | SC_F_ECN); /* nowhere to remember them */
    if (!(c.flags & SC_F_WS))
      c.snd_wscale = c.rcv_wscale = 0;
    cookie_make(st, &c);
    if (send_synack(st, &c, cookie_tsval(st, &c), false) == 0) {
      ctr->syncookies_sent++;
      st->tcp.sc_cookie_time = toe_stack_now(st);
    }
    toe_pbuf_free(st, pb);
    return;
  }

  c.iss = toe_tcp_isn(st, c.laddr, c.lport, c.raddr, c.rport);
  if (floor_set && toe_seq_lt(c.iss, iss_floor))
    c.iss = iss_floor;

  e = st->tcp.sc_free;
  st->tcp.sc_free = e->hnext;
  e->listener = listener;
  e->laddr = c.laddr;
  e->raddr = c.raddr;
  e->lport = c.lport;
  e->rport = c.rport;
  e->iss = c.iss;
  e->irs = c.irs;
  e->ts_recent = c.ts_recent;
  e->ts_offset = c.ts_offset;
  e->peer_mss = c.peer_mss;
  e->rcv_mss = c.rcv_mss;
  e->rcv_wnd = c.rcv_wnd;
  e->snd_wscale = c.snd_wscale;
  e->rcv_wscale = c.rcv_wscale;
  e->flags = c.flags;
  e->retries = 0;
  e->synack_time = toe_stack_now(st);
  struct toe_syncache_entry **b = sc_bucket(st, c.laddr, c.lport, c.raddr, c.rport);
  if (c.laddr == 0)
    toe_tcp6_hold(st, c.raddr); /* released by sc_remove */
  e->hnext = *b;
  *b = e;
  listener->synq_len++;
  st->tcp.sc_inuse++;
  ctr->syncache_inuse = st->tcp.sc_inuse;
  ctr->syncache_adds++;
  send_synack(st, &c, ts_now(st, c.ts_offset), false);
  toe_timer_arm(st, &e->timer, toe_stack_now(st) + synack_rto(st, 0));
  toe_pbuf_free(st, pb);
}

void toe_tcp_syn_input(struct toe_stack *st, struct toe_tcb *listener, struct toe_pbuf *pb,
                       const struct toe_ipv4_view *ip, const struct toe_tcp_view *th,
                       const struct toe_tcp_opts *opts)
{
  syn_input(st, listener, pb, ip, th, opts, false, 0);
}

void toe_tcp_syn_input_reopen(struct toe_stack *st, struct toe_tcb *listener, struct toe_pbuf *pb,
                              const struct toe_ipv4_view *ip, const struct toe_tcp_view *th,
                              const struct toe_tcp_opts *opts, uint32_t iss_floor)
{
  syn_input(st, listener, pb, ip, th, opts, true, iss_floor);
}

/* An ACK for an entry (RFC 9293 3.10.7.4 in SYN-RECEIVED, RFC 7323 PAWS). */
static struct toe_tcb *entry_ack(struct toe_stack *st, struct toe_tcb *listener,
                                 struct toe_syncache_entry *e, const struct toe_ipv4_view *ip,
                                 const struct toe_tcp_view *th, const struct toe_tcp_opts *opts)
{
  struct toe_counters_tcp *ctr = &st->ctr.tcp;
  struct sc_conn c;
  entry_to_conn(e, &c);
  uint32_t seg_len = seg_len_of(ip, th);
  struct toe_tcp_opts ack_opts;
  memset(&ack_opts, 0, sizeof(ack_opts));
  if (e->flags & SC_F_TS) {
    ack_opts.has = TOE_TCPOPT_HAS_TS;
    ack_opts.ts_val = ts_now(st, e->ts_offset);
    ack_opts.ts_ecr = e->ts_recent;
  }

  if (e->flags & SC_F_TS) {
    /* RFC 7323 3.2: once agreed, a segment without timestamps is dropped. */
    if (!(opts->has & TOE_TCPOPT_HAS_TS)) {
      ctr->rx_drop_no_ts++;
      return NULL;
    }
    /* PAWS (RFC 7323 5.3 R1): an older TSval is an old duplicate; acknowledge and drop. */
    if (toe_seq_lt(opts->ts_val, e->ts_recent)) {
      ctr->rx_drop_paws++;
      xmit(st, e->laddr, e->lport, e->raddr, e->rport, e->iss + 1, e->irs + 1, TOE_TCP_ACK,
           e->rcv_wnd, &ack_opts, false);
      return NULL;
    }
  }
  /* RFC 9293 3.10.7.4 first check: the sequence number must fall in the window we offered. */
  uint32_t rcv_nxt = e->irs + 1;
  uint32_t wnd = e->rcv_wnd;
  bool ok;
  if (seg_len == 0)
    ok = toe_seq_ge(th->seq, rcv_nxt) && toe_seq_lt(th->seq, rcv_nxt + (wnd ? wnd : 1));
  else
    ok = (toe_seq_ge(th->seq, rcv_nxt) && toe_seq_lt(th->seq, rcv_nxt + wnd)) ||
         (toe_seq_ge(th->seq + seg_len - 1, rcv_nxt) &&
          toe_seq_lt(th->seq + seg_len - 1, rcv_nxt + wnd));
  if (!ok) {
    ctr->rx_drop_out_of_window++;
    xmit(st, e->laddr, e->lport, e->raddr, e->rport, e->iss + 1, e->irs + 1, TOE_TCP_ACK,
         e->rcv_wnd, &ack_opts, false);
    return NULL;
  }
  /* "If the segment acknowledgment is not acceptable, form a reset segment" (RFC 9293). */
  if (th->ack != e->iss + 1) {
    ctr->syncache_bad_acks++;
    toe_tcp_send_reset(st, ip, th, seg_len);
    return NULL;
  }
  /* Accept queue full: drop the ACK and keep the entry, as Linux does; the SYN-ACK
   * retransmission makes the peer ACK again later, when there may be room. */
  if (listener->acceptq_len >= listener_backlog(st, listener)) {
    ctr->listen_drops++;
    return NULL;
  }
  if (!(e->flags & SC_F_RETRANS)) {
    toe_time_t rtt = toe_stack_now(st) - e->synack_time;
    uint64_t us = toe_div1000(rtt);
    c.rtt_us = us == 0 ? 1u : (us > UINT32_MAX ? UINT32_MAX : (uint32_t)us);
  }
  if (c.flags & SC_F_TS)
    c.ts_recent = opts->ts_val; /* the ACK's TSval is newer than the SYN's */
  struct toe_tcb *tp = sc_establish(st, listener, &c, th);
  if (tp == NULL)
    return NULL; /* no tcb: keep the entry, the peer will retry */
  ctr->syncache_completed++;
  sc_remove(st, e);
  return tp;
}

struct toe_tcb *toe_tcp_syn_ack_input(struct toe_stack *st, struct toe_tcb *listener,
                                      const struct toe_ipv4_view *ip, const struct toe_tcp_view *th,
                                      const struct toe_tcp_opts *opts)
{
  struct toe_counters_tcp *ctr = &st->ctr.tcp;
  if (listener == NULL || listener->state != TOE_TCP_LISTEN || !(th->flags & TOE_TCP_ACK) ||
      (th->flags & (TOE_TCP_SYN | TOE_TCP_RST)))
    return NULL;
  struct toe_syncache_entry *e = sc_lookup(st, ip->dst, th->dst_port, ip->src, th->src_port);
  if (e && e->listener == listener)
    return entry_ack(st, listener, e, ip, th, opts);

  if (!e && cookies_active(st)) {
    struct sc_conn c;
    memset(&c, 0, sizeof(c));
    c.laddr = ip->dst;
    c.raddr = ip->src;
    c.lport = th->dst_port;
    c.rport = th->src_port;
    if (cookie_check(st, th, opts, &c)) {
      if (listener->acceptq_len >= listener_backlog(st, listener)) {
        ctr->listen_drops++;
        return NULL;
      }
      c.rcv_mss = mss_offer(st, listener, c.laddr);
      uint32_t wnd = listener_rcvbuf(st, listener);
      c.rcv_wnd = (uint16_t)(wnd > 65535u ? 65535u : wnd);
      struct toe_tcb *tp = sc_establish(st, listener, &c, th);
      if (tp)
        ctr->syncookies_recv++;
      return tp;
    }
    /* While cookies may be outstanding, an ACK that does not check out is dropped silently, as
     * Linux does: it may be a later segment of a cookie connection whose third segment was lost
     * (its seq - 1 is not the ISN the cookie covers), and a RST would kill that connection; the
     * peer retransmits the first segment, which does complete it. */
    ctr->syncookies_failed++;
    return NULL;
  }
  /* RFC 9293 3.10.7.2 (LISTEN): "any acknowledgment is bad ... <SEQ=SEG.ACK><CTL=RST>". */
  ctr->syncache_bad_acks++;
  toe_tcp_send_reset(st, ip, th, seg_len_of(ip, th));
  return NULL;
}

bool toe_tcp_syncache_rst(struct toe_stack *st, struct toe_tcb *listener,
                          const struct toe_ipv4_view *ip, const struct toe_tcp_view *th)
{
  struct toe_syncache_entry *e = sc_lookup(st, ip->dst, th->dst_port, ip->src, th->src_port);
  if (e == NULL || (listener && e->listener != listener) || !(th->flags & TOE_TCP_RST))
    return false;
  uint32_t rcv_nxt = e->irs + 1;
  if (th->seq == rcv_nxt) {
    /* RFC 9293 3.10.7.4: a passive open returns to LISTEN; the entry simply goes. */
    st->ctr.tcp.syncache_resets++;
    st->ctr.tcp.rx_resets++;
    st->ctr.tcp.attempt_fails++;
    sc_remove(st, e);
    return true;
  }
  /* RFC 5961 3.2: in the window but not exact -> challenge ACK; outside -> ignore. */
  if (toe_seq_gt(th->seq, rcv_nxt) && toe_seq_lt(th->seq, rcv_nxt + e->rcv_wnd)) {
    struct toe_tcp_opts o;
    memset(&o, 0, sizeof(o));
    if (e->flags & SC_F_TS) {
      o.has = TOE_TCPOPT_HAS_TS;
      o.ts_val = ts_now(st, e->ts_offset);
      o.ts_ecr = e->ts_recent;
    }
    st->ctr.tcp.challenge_acks++;
    xmit(st, e->laddr, e->lport, e->raddr, e->rport, e->iss + 1, rcv_nxt, TOE_TCP_ACK, e->rcv_wnd,
         &o, false);
  }
  st->ctr.tcp.rx_drop_rst++;
  return true;
}

bool toe_tcp_syncache_icmp_error(struct toe_stack *st, const struct toe_ipv4_view *qip,
                                 const uint8_t *ql4, int err)
{
  /* The quote holds at least our ports and sequence number (RFC 792: 8 bytes). */
  uint16_t sport = (uint16_t)(ql4[0] << 8 | ql4[1]);
  uint16_t dport = (uint16_t)(ql4[2] << 8 | ql4[3]);
  uint32_t seq = (uint32_t)ql4[4] << 24 | (uint32_t)ql4[5] << 16 | (uint32_t)ql4[6] << 8 | ql4[7];
  struct toe_syncache_entry *e = sc_lookup(st, qip->src, sport, qip->dst, dport);
  if (e == NULL)
    return false;
  /* RFC 5927 4.1: only an error quoting the sequence number we sent is believed. */
  if (seq != e->iss) {
    st->ctr.tcp.icmp_bad_seq++;
    return false;
  }
  /* Fragmentation needed is about size, not reachability; a SYN-ACK is small, so keep going. */
  if (err == -TOE_EMSGSIZE)
    return true;
  st->ctr.tcp.syncache_icmp++;
  st->ctr.tcp.attempt_fails++;
  sc_remove(st, e);
  return true;
}
