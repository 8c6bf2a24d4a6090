/*
 * TCP over IPv6: the address pairs of IPv6 connections, segment validation with the RFC 8200 8.1
 * pseudo-header, IPv6 output of segments, the active open to an IPv6 peer and ICMPv6 errors.
 *
 * How an IPv6 connection fits the IPv4-shaped tables (connection hash, SYN cache, TIME_WAIT,
 * ISNs, SYN cookies) without making IPv4 any dearer: its 32-bit local address is 0, which no IPv4
 * connection has (they always hold our address), and its 32-bit remote address is a key, a keyed
 * hash of its two 16-byte addresses (tcp6_key). The pair table below maps each key in use to its
 * addresses and refuses a second pair that would share a key, so within the tables a key names
 * exactly one address pair, and the 4-tuple compares of the IPv4 code stay exact. Every holder of
 * a key (a hashed tcb, a SYN-cache entry, a TIME_WAIT entry, a segment being processed) holds a
 * reference on its pair. Output paths see laddr 0 and send through toe_tcp6_ip_output().
 */
#include "common/byteorder.h"
#include "engine/ipv6.h"
#include "engine/stack.h"
#include "wire/checksum.h"
#include "wire/tcp.h"

#include <string.h>

/* ---- the pair table ---- */

static uint32_t pair_count(const struct toe_config *cfg)
{
  /* one per holder that can exist at once, plus room for segments in flight and connects */
  return cfg->tcp_socks + cfg->tcp_syncache + cfg->tcp_timewait + 16u;
}

static uint32_t pair_buckets(uint32_t n)
{
  uint32_t b = 16;
  while (b < n && b < (1u << 24))
    b <<= 1;
  return b;
}

size_t toe_tcp6_mem_size(const struct toe_config *cfg)
{
  if (!cfg->ipv6)
    return 0;
  uint32_t n = pair_count(cfg);
  return (size_t)n * sizeof(struct toe_tcp6_pair) +
         (size_t)pair_buckets(n) * sizeof(struct toe_tcp6_pair *);
}

void toe_tcp6_init(struct toe_stack *st, void *mem)
{
  struct toe_tcp_tables *t = &st->tcp;
  t->p6_pool = NULL;
  t->p6_hash = NULL;
  t->p6_free = NULL;
  t->p6_last = NULL;
  t->p6_inuse = 0;
  if (!st->cfg.ipv6)
    return;
  uint32_t n = pair_count(&st->cfg);
  uint32_t b = pair_buckets(n);
  memset(mem, 0, toe_tcp6_mem_size(&st->cfg));
  t->p6_pool = mem;
  t->p6_hash = (struct toe_tcp6_pair **)(void *)(t->p6_pool + n);
  t->p6_mask = b - 1;
  for (uint32_t i = n; i-- > 0;) {
    t->p6_pool[i].next = t->p6_free;
    t->p6_free = &t->p6_pool[i];
  }
}

/* The key of (local, remote): keyed, so a peer cannot choose addresses that share one. Never 0. */
static uint32_t tcp6_key(const struct toe_stack *st, const struct toe_in6_addr *l,
                         const struct toe_in6_addr *r)
{
  uint8_t b[33];
  memcpy(b, l->b, 16);
  memcpy(b + 16, r->b, 16);
  b[32] = '6'; /* domain separation from the other keyed hashes */
  uint32_t k = (uint32_t)toe_keyed_hash(st, b, sizeof(b));
  return k ? k : 1u;
}

static struct toe_tcp6_pair **pair_bucket(const struct toe_stack *st, uint32_t key)
{
  return &st->tcp.p6_hash[toe_mix32(key) & st->tcp.p6_mask];
}

const struct toe_tcp6_pair *toe_tcp6_pair_get(const struct toe_stack *st, uint32_t key)
{
  if (st->tcp.p6_hash == NULL)
    return NULL;
  for (const struct toe_tcp6_pair *p = *pair_bucket(st, key); p; p = p->next)
    if (p->key == key)
      return p;
  return NULL;
}

int toe_tcp6_pair_open(struct toe_stack *st, const struct toe_in6_addr *l,
                       const struct toe_in6_addr *r, uint32_t *key)
{
  if (st->tcp.p6_hash == NULL)
    return -TOE_EAFNOSUPPORT;
  /* A bulk transfer's segments all name one pair: the last pair opened answers without a SipHash
   * (the one cost of IPv6 on the receive path). It is only a hint: checked in full here, and
   * dropped when the pair goes. */
  struct toe_tcp6_pair *last = st->tcp.p6_last;
  if (last && toe_in6_equal(&last->remote, r) && toe_in6_equal(&last->local, l)) {
    last->refs++;
    *key = last->key;
    return 0;
  }
  uint32_t k = tcp6_key(st, l, r);
  struct toe_tcp6_pair **b = pair_bucket(st, k);
  for (struct toe_tcp6_pair *p = *b; p; p = p->next) {
    if (p->key != k)
      continue;
    /* 2^-32 per pair of live address pairs: refused rather than confused. */
    if (!toe_in6_equal(&p->local, l) || !toe_in6_equal(&p->remote, r))
      return -TOE_EADDRINUSE;
    p->refs++;
    st->tcp.p6_last = p;
    *key = k;
    return 0;
  }
  struct toe_tcp6_pair *p = st->tcp.p6_free;
  if (p == NULL)
    return -TOE_ENOBUFS; /* cannot happen: the pool has a slot for every holder */
  st->tcp.p6_free = p->next;
  p->key = k;
  p->refs = 1;
  p->local = *l;
  p->remote = *r;
  p->next = *b;
  *b = p;
  st->tcp.p6_inuse++;
  st->tcp.p6_last = p;
  *key = k;
  return 0;
}

void toe_tcp6_hold(struct toe_stack *st, uint32_t key)
{
  struct toe_tcp6_pair *p = (struct toe_tcp6_pair *)(uintptr_t)toe_tcp6_pair_get(st, key);
  if (p)
    p->refs++;
}

void toe_tcp6_release(struct toe_stack *st, uint32_t key)
{
  if (st->tcp.p6_hash == NULL)
    return;
  struct toe_tcp6_pair **pp = pair_bucket(st, key);
  for (; *pp; pp = &(*pp)->next) {
    struct toe_tcp6_pair *p = *pp;
    if (p->key != key)
      continue;
    if (--p->refs == 0) {
      if (st->tcp.p6_last == p)
        st->tcp.p6_last = NULL;
      *pp = p->next;
      p->next = st->tcp.p6_free;
      st->tcp.p6_free = p;
      st->tcp.p6_inuse--;
    }
    return;
  }
}

/* ---- output ---- */

uint16_t toe_tcp6_csum_finish(const struct toe_stack *st, uint32_t key, uint32_t sum, uint32_t len)
{
  const struct toe_tcp6_pair *p = toe_tcp6_pair_get(st, key);
  if (p == NULL)
    return 0; /* no such pair: toe_tcp6_ip_output drops the segment */
  /* RFC 8200 8.1: source, destination, upper-layer length, zeros, next header. */
  return toe_csum_fold(
      toe_csum_add32(sum, toe_ipv6_pseudo_csum(&p->local, &p->remote, len, TOE_IPPROTO_TCP)));
}

uint32_t toe_tcp6_flow_label(uint32_t key, uint16_t lport, uint16_t rport)
{
  /* RFC 6437 3: a label per flow, from a hash the peer cannot predict (the key is keyed), the
   * same for every packet of the connection; never 0, which would mean "no label". */
  uint32_t f = toe_mix32(key ^ ((uint32_t)lport << 16 | rport)) & 0xfffffu;
  return f ? f : 1u;
}

int toe_tcp6_ip_output(struct toe_stack *st, uint32_t key, uint16_t lport, uint16_t rport,
                       uint8_t ecn, struct toe_pbuf *pb)
{
  const struct toe_tcp6_pair *p = toe_tcp6_pair_get(st, key);
  if (p == NULL) {
    toe_pbuf_free(st, pb);
    return -TOE_EHOSTUNREACH;
  }
  struct toe_ip6_tx tx = {
      .src = p->local,
      .dst = p->remote,
      .next_hdr = TOE_IPPROTO_TCP,
      .tclass = (uint8_t)(ecn & 3u),
      .flow = toe_tcp6_flow_label(key, lport, rport),
  };
  return toe_ipv6_output(st, pb, &tx);
}

/* ---- input ---- */

void toe_tcp_input6(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *ip,
                    const struct toe_ipv6_ext *ext)
{
  (void)ext;
  struct toe_counters_tcp *c = &st->ctr.tcp;
  struct toe_tcp_view th;
  struct toe_tcp_opts opts;
  c->in_segs++;
  uint32_t len = pb->tot_len;
  if (len < TOE_TCP_HLEN || len > 0xffffu || toe_pbuf_linearize_head(st, pb, TOE_TCP_HLEN) < 0)
    goto malformed;
  uint16_t hl = (uint16_t)((pb->data[12] >> 4) * 4u);
  if (hl < TOE_TCP_HLEN || hl > len || toe_pbuf_linearize_head(st, pb, hl) != 0 ||
      toe_tcp_parse(&th, pb->data, pb->len, len) < 0)
    goto malformed;
  if (!(pb->flags & TOE_PBUF_F_L4_CSUM_OK)) {
    uint32_t sum = toe_csum_add32(toe_pbuf_csum(pb, 0, len),
                                  toe_ipv6_pseudo_csum(&ip->src, &ip->dst, len, TOE_IPPROTO_TCP));
    if (toe_csum_fold(sum) != 0) {
      c->in_errs++;
      c->rx_drop_checksum++;
      goto drop;
    }
  }
  /* RFC 1122 4.2.3.10 (and RFC 8200's multicast): TCP is unicast only, never a RST to a group;
   * nor is a connection possible with an unspecified source (RFC 4291 2.5.2). ipv6_input.c
   * already took only packets for us, and none from loopback, v4-mapped or our own addresses. */
  if (toe_in6_is_multicast(&ip->dst) || toe_in6_is_unspecified(&ip->src)) {
    c->rx_drop_not_unicast++;
    goto drop;
  }
  if (th.src_port == 0 || th.dst_port == 0) {
    c->rx_drop_bad_port++;
    goto drop;
  }
  if (toe_tcp_parse_opts(&th, &opts) != 0) {
    c->in_errs++;
    c->rx_drop_bad_opts++;
    goto drop;
  }
  uint32_t key;
  if (toe_tcp6_pair_open(st, &ip->dst, &ip->src, &key) < 0) {
    c->rx_drop_no_socket++;
    goto drop;
  }
  /* The IPv4-shaped view the shared code reads (tcp.h, struct toe_tcp6_seg). */
  struct toe_tcp6_seg seg;
  memset(&seg, 0, sizeof(seg));
  seg.v4.hdr = ip->hdr;
  seg.v4.hdr_len = 0;
  seg.v4.total_len = (uint16_t)len;
  seg.v4.tos = ip->tclass;
  seg.v4.ttl = ip->hop_limit;
  seg.v4.proto = TOE_IPPROTO_TCP;
  seg.v4.src = key;
  seg.v4.dst = 0;
  seg.ip6 = ip;
  toe_tcp_dispatch6(st, pb, &seg, &th, &opts);
  toe_tcp6_release(st, key);
  toe_tcp_notify_flush(st);
  return;

malformed:
  c->in_errs++;
  c->rx_drop_malformed++;
drop:
  toe_pbuf_free(st, pb);
}

/* ---- the active open ---- */

int toe_tcp_connect6(struct toe_stack *st, struct toe_tcb *tp, const struct toe_sockaddr *remote)
{
  struct toe_sock *s = &tp->sk;
  struct toe_in6_addr dst;
  memcpy(dst.b, remote->addr6, 16);
  if (remote->port == 0 || toe_in6_is_unspecified(&dst))
    return -TOE_EINVAL;
  if (s->v6flags & TOE_SOCK6_BOUND4)
    return -TOE_EAFNOSUPPORT; /* bound to an IPv4 address */
  switch (tp->state) {
  case TOE_TCP_CLOSED:
    break;
  case TOE_TCP_SYN_SENT:
  case TOE_TCP_SYN_RECEIVED:
    return -TOE_EALREADY;
  default:
    return -TOE_EISCONN;
  }
  if (s->flags & TOE_SOCK_F_CONNECTED)
    return -TOE_EISCONN;
  /* No loopback path in the engine; TCP is unicast only (RFC 1122 4.2.3.10). */
  if (toe_in6_is_loopback(&dst) || toe_ip6_addr_find(st, &dst) >= 0)
    return -TOE_EINVAL;
  if (toe_in6_is_multicast(&dst) || !toe_ip6_on_link(st, &dst))
    return -TOE_ENETUNREACH; /* no default router yet (docs/ipv6.md) */

  /* Source address selection (RFC 6724, as toe_ip6_src_for: the link-local address for a
   * link-local peer, one of our global addresses for a global one). A socket bound to an
   * address keeps it. */
  struct toe_in6_addr src;
  if (s->v6flags & TOE_SOCK6_BOUND6) {
    src = s->laddr6;
  } else {
    const struct toe_in6_addr *a = toe_ip6_src_for(st, &dst);
    if (a == NULL || toe_in6_is_unspecified(a))
      return -TOE_EADDRNOTAVAIL;
    src = *a;
  }
  int rc;
  if (!(s->flags & TOE_SOCK_F_BOUND)) {
    struct toe_in6_addr any;
    memset(&any, 0, sizeof(any));
    rc = toe_sock_bind_local6(st, s, &any, 0);
    if (rc < 0)
      return rc;
  }
  uint32_t key;
  rc = toe_tcp6_pair_open(st, &src, &dst, &key);
  if (rc < 0)
    return rc == -TOE_ENOBUFS ? -TOE_ENOBUFS : -TOE_EADDRNOTAVAIL;
  uint32_t iss_floor = 0;
  bool reuse = false;
  if (toe_tcp_lookup(st, 0, s->lport, key, remote->port)) {
    toe_tcp6_release(st, key);
    return -TOE_EADDRNOTAVAIL;
  }
  int tw = toe_tcp_timewait_connect(st, 0, s->lport, key, remote->port, &iss_floor);
  if (tw < 0) {
    toe_tcp6_release(st, key);
    return -TOE_EADDRNOTAVAIL;
  }
  reuse = tw == 1;
  if (!(s->v6flags & TOE_SOCK6_BOUND6)) {
    s->laddr6 = src;
    s->v6flags |= TOE_SOCK6_AUTO6;
  }
  s->raddr6 = dst;
  s->v6flags = (uint8_t)((s->v6flags & ~TOE_SOCK6_CONN4) | TOE_SOCK6_CONN6);
  s->laddr = 0;
  s->raddr = key;
  s->rport = remote->port;
  s->flags |= TOE_SOCK_F_CONNECTED;
  toe_sock6_refresh(s);

  /* RFC 9293 3.10.1 OPEN (active), as toe_tcp_connect for IPv4 */
  uint32_t iss = toe_tcp_isn(st, 0, s->lport, key, s->rport);
  if (reuse && toe_seq_lt(iss, iss_floor))
    iss = iss_floor; /* RFC 6191 */
  tp->iss = tp->snd_una = tp->snd_nxt = tp->snd_max = iss;
  tp->ts_offset = toe_tcp_ts_offset(st, 0, s->lport, key, s->rport);
  tp->pmtu = st->cfg.mtu; /* no IPv6 path MTU cache in the engine yet: the link's */
  tp->rcv_mss = toe_tcp_mss_offer(st, tp);
  const struct toe_config *cfg = &st->cfg;
  if (cfg->tcp_timestamps)
    tp->flags |= TOE_TF_TS_OK;
  if (cfg->tcp_sack)
    tp->flags |= TOE_TF_SACK_OK;
  if (cfg->tcp_wscale) {
    tp->flags |= TOE_TF_WS_OK;
    tp->rcv_wscale = toe_tcp_wscale_offer(cfg);
  }
  toe_tcp_set_state(st, tp, TOE_TCP_SYN_SENT);
  toe_tcp_hash_insert(st, tp); /* holds the pair while hashed */
  toe_tcp6_release(st, key);
  st->ctr.tcp.active_opens++;
  toe_tcp_output(st, tp);
  toe_tcp_notify_flush(st);
  return -TOE_EINPROGRESS;
}

/* ---- ICMPv6 errors ---- */

bool toe_tcp_icmp6_error(struct toe_stack *st, const struct toe_in6_addr *qsrc,
                         const struct toe_in6_addr *qdst, const uint8_t *ql4, int err, uint32_t mtu)
{
  struct toe_counters_tcp *c = &st->ctr.tcp;
  if (st->tcp.p6_hash == NULL)
    return false;
  uint32_t key = tcp6_key(st, qsrc, qdst);
  const struct toe_tcp6_pair *p = toe_tcp6_pair_get(st, key);
  if (p == NULL || !toe_in6_equal(&p->local, qsrc) || !toe_in6_equal(&p->remote, qdst))
    return false;
  uint16_t sport = toe_load_be16(ql4);
  uint16_t dport = toe_load_be16(ql4 + 2);
  uint32_t seq = toe_load_be32(ql4 + 4);
  struct toe_tcb *tp = toe_tcp_lookup(st, 0, sport, key, dport);
  if (tp == NULL)
    return false;
  /* RFC 5927 4.1: only an error quoting a segment in flight is about this connection. */
  if (!(toe_seq_ge(seq, tp->snd_una) && toe_seq_lt(seq, tp->snd_max))) {
    c->icmp_bad_seq++;
    return false;
  }
  if (err == -TOE_EMSGSIZE) {
    /* RFC 8201 4: Packet Too Big lowers the path MTU, never below the IPv6 minimum of 1280
     * (RFC 8200 5). A PMTU cache for IPv6 is the IP layer's (docs/ipv6.md); the connection
     * keeps its own estimate meanwhile. */
    if (mtu < TOE_IPV6_MIN_MTU)
      mtu = TOE_IPV6_MIN_MTU;
    uint32_t cur = tp->pmtu ? tp->pmtu : st->cfg.mtu;
    if (mtu >= cur)
      return true;
    tp->pmtu = (uint16_t)mtu;
    uint32_t mss = mtu - TOE_IPV6_HLEN - TOE_TCP_HLEN;
    if (mss < tp->snd_mss)
      tp->snd_mss = (uint16_t)mss;
    c->icmp_pmtu++;
    if (tp->state != TOE_TCP_SYN_SENT && tp->state != TOE_TCP_SYN_RECEIVED && tp->sndq_head &&
        tp->snd_una != tp->snd_max)
      (void)toe_tcp_retransmit(st, tp, tp->sndq_head);
    return true;
  }
  if (tp->state == TOE_TCP_SYN_SENT && err == -TOE_ECONNREFUSED) {
    /* RFC 1122 4.2.3.9 (port unreachable is hard while connecting; RFC 4443 3.1 code 4) */
    c->icmp_hard_aborts++;
    toe_tcp_drop(st, tp, err);
    toe_tcp_notify_flush(st);
    return true;
  }
  /* RFC 5461 4.1: destination unreachable is a soft error in synchronized states: remembered
   * as the reason to give if the connection times out. */
  tp->icmp_soft_err = (int16_t)err;
  c->icmp_soft_errors++;
  return true;
}
