/*
 * TCP segment dispatch: header and checksum validation, the 4-tuple hash of connections, and the
 * way a segment that matches no connection is handled (TIME_WAIT, listener, or a RST, RFC 9293
 * 3.10.7.1-3.10.7.2). Also ICMP errors quoting our segments (RFC 5927, RFC 1191, RFC 1122
 * 4.2.3.9).
 *
 * The hash is a power-of-two array of chains through tcb->hnext, keyed by a mixing function seeded
 * from the stack's secret, so a peer cannot aim many connections at one chain.
 */
#include "common/byteorder.h"
#include "engine/stack.h"
#include "engine/tcp.h"
#include "toe/steer.h"
#include "wire/checksum.h"

/* ---- the 4-tuple hash ---- */

static uint32_t hash_buckets(const struct toe_config *cfg)
{
  uint32_t want = cfg->tcp_socks ? cfg->tcp_socks : 1024u;
  if (want > (1u << 24))
    want = 1u << 24;
  uint32_t n = 16;
  while (n < want)
    n <<= 1;
  return n;
}

size_t toe_tcp_demux_mem_size(const struct toe_config *cfg)
{
  return (size_t)hash_buckets(cfg) * sizeof(struct toe_tcb *);
}

void toe_tcp_demux_init(struct toe_stack *st, void *mem)
{
  uint32_t n = hash_buckets(&st->cfg);
  st->tcp.conn_hash = mem;
  for (uint32_t i = 0; i < n; i++)
    st->tcp.conn_hash[i] = NULL;
  st->tcp.conn_hash_mask = n - 1;
  st->tcp.conn_hashed = 0;
}

static uint32_t hash_tuple(const struct toe_stack *st, uint32_t laddr, uint16_t lport,
                           uint32_t raddr, uint16_t rport)
{
  /* The seed comes from the per-device secret (read in place: no state to keep). */
  uint32_t seed = (uint32_t)st->cfg.secret[0] | (uint32_t)st->cfg.secret[1] << 8 |
                  (uint32_t)st->cfg.secret[2] << 16 | (uint32_t)st->cfg.secret[3] << 24;
  uint32_t seed2 = (uint32_t)st->cfg.secret[4] | (uint32_t)st->cfg.secret[5] << 8 |
                   (uint32_t)st->cfg.secret[6] << 16 | (uint32_t)st->cfg.secret[7] << 24;
  uint32_t h = toe_mix32(raddr ^ seed);
  h = toe_mix32(h ^ ((uint32_t)rport << 16 | lport) ^ seed2);
  h = toe_mix32(h ^ laddr);
  return h;
}

static struct toe_tcb **bucket(const struct toe_stack *st, uint32_t laddr, uint16_t lport,
                               uint32_t raddr, uint16_t rport)
{
  return &st->tcp.conn_hash[hash_tuple(st, laddr, lport, raddr, rport) & st->tcp.conn_hash_mask];
}

struct toe_tcb *toe_tcp_lookup(const struct toe_stack *st, uint32_t laddr, uint16_t lport,
                               uint32_t raddr, uint16_t rport)
{
  if (!st->tcp.conn_hash)
    return NULL;
  for (struct toe_tcb *tp = *bucket(st, laddr, lport, raddr, rport); tp; tp = tp->hnext) {
    if (tp->sk.lport == lport && tp->sk.rport == rport && tp->sk.raddr == raddr &&
        tp->sk.laddr == laddr)
      return tp;
  }
  return NULL;
}

/* The steering filter of an IPv6 connection or TIME_WAIT entry (with --host-if the OS must never
 * see its segments: docs/coexistence.md), keyed on the pair its key names. */
void toe_tcp6_filter(struct toe_stack *st, bool add, uint8_t kind, uint16_t lport, uint32_t key,
                     uint16_t rport)
{
  const struct toe_tcp6_pair *p = toe_tcp6_pair_get(st, key);
  if (!p)
    return;
  if (add)
    toe_filt_add6(st, kind, TOE_IPPROTO_TCP, lport, &p->local, &p->remote, rport);
  else
    toe_filt_del6(st, TOE_IPPROTO_TCP, lport, &p->remote, rport);
}

void toe_tcp_hash_insert(struct toe_stack *st, struct toe_tcb *tp)
{
  if (!st->tcp.conn_hash)
    return;
  struct toe_tcb **b = bucket(st, tp->sk.laddr, tp->sk.lport, tp->sk.raddr, tp->sk.rport);
  for (struct toe_tcb *p = *b; p; p = p->hnext)
    if (p == tp)
      return; /* already in */
  tp->hnext = *b;
  *b = tp;
  st->tcp.conn_hashed++;
  if (tp->sk.laddr == 0) {
    toe_tcp6_hold(st, tp->sk.raddr); /* an IPv6 connection: its key names its pair */
    toe_tcp6_filter(st, true, TOE_FILTER_CONN, tp->sk.lport, tp->sk.raddr, tp->sk.rport);
    return;
  }
  toe_filt_add(st, TOE_FILTER_CONN, TOE_IPPROTO_TCP, tp->sk.lport, tp->sk.raddr, tp->sk.rport);
}

void toe_tcp_hash_remove(struct toe_stack *st, struct toe_tcb *tp)
{
  if (!st->tcp.conn_hash)
    return;
  struct toe_tcb **link = bucket(st, tp->sk.laddr, tp->sk.lport, tp->sk.raddr, tp->sk.rport);
  for (; *link; link = &(*link)->hnext) {
    if (*link == tp) {
      *link = tp->hnext;
      tp->hnext = NULL;
      st->tcp.conn_hashed--;
      if (tp->sk.laddr == 0) {
        toe_tcp6_filter(st, false, 0, tp->sk.lport, tp->sk.raddr, tp->sk.rport);
        toe_tcp6_release(st, tp->sk.raddr);
      } else
        toe_filt_del(st, TOE_IPPROTO_TCP, tp->sk.lport, tp->sk.raddr, tp->sk.rport);
      return;
    }
  }
}

/* ---- segment dispatch ---- */

/* SEG.LEN (RFC 9293 3.4): payload bytes, plus one each for SYN and FIN. */
static uint32_t seg_len(const struct toe_pbuf *pb, const struct toe_tcp_view *th)
{
  return pb->tot_len - th->hdr_len + !!(th->flags & TOE_TCP_SYN) + !!(th->flags & TOE_TCP_FIN);
}

/*
 * A segment for a listener (RFC 9293 3.10.7.2: RST, then ACK, then SYN), with the SYN cache of
 * tcp_syncache.c holding embryonic connections.
 */
static void listen_input(struct toe_stack *st, struct toe_tcb *l, struct toe_pbuf *pb,
                         const struct toe_ipv4_view *ip, const struct toe_tcp_view *th,
                         const struct toe_tcp_opts *opts)
{
  struct toe_counters_tcp *c = &st->ctr.tcp;
  uint8_t fl = th->flags;
  if (fl & TOE_TCP_RST) {
    /* RFC 9293: "An incoming RST segment could not be valid since it could not have been sent
     * in response to anything sent by this incarnation" -- except to an embryonic connection,
     * which an exact RST removes (RFC 5961 3.2). */
    if (!toe_tcp_syncache_rst(st, l, ip, th))
      c->rx_drop_listen++;
    toe_pbuf_free(st, pb);
    return;
  }
  if (fl & TOE_TCP_ACK) {
    if (!(fl & TOE_TCP_SYN)) {
      /* The third segment of a handshake: a SYN-cache entry or a SYN cookie makes it a
       * connection, and the segment (which may carry data or a FIN) goes on there. On NULL the
       * SYN cache already answered (RST or ACK) and counted the drop. */
      struct toe_tcb *tp = toe_tcp_syn_ack_input(st, l, ip, th, opts);
      if (tp)
        toe_tcp_input_conn(st, tp, pb, ip, th, opts);
      else
        toe_pbuf_free(st, pb);
      return;
    }
    /* SYN-ACK: "Any acknowledgment is bad if it arrives on a connection still in the LISTEN
     * state": <SEQ=SEG.ACK><CTL=RST>. */
    c->rx_drop_listen++;
    toe_tcp_send_reset(st, ip, th, seg_len(pb, th));
    toe_pbuf_free(st, pb);
    return;
  }
  if (fl & TOE_TCP_SYN) {
    toe_tcp_syn_input(st, l, pb, ip, th, opts);
    return;
  }
  /* Neither: "drop the segment and return". */
  c->rx_drop_listen++;
  toe_pbuf_free(st, pb);
}

/* Validates and dispatches one segment (consumed). */
static void tcp_dispatch(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv4_view *ip)
{
  struct toe_counters_tcp *c = &st->ctr.tcp;
  struct toe_tcp_view th;
  struct toe_tcp_opts opts;
  c->in_segs++;

  uint32_t len = pb->tot_len;
  /* The header (options included) may straddle buffers of a reassembled datagram. */
  if (len < TOE_TCP_HLEN || toe_pbuf_linearize_head(st, pb, TOE_TCP_HLEN) != 0)
    goto malformed;
  uint16_t hl = (uint16_t)((pb->data[12] >> 4) * 4u);
  if (hl < TOE_TCP_HLEN || hl > len || toe_pbuf_linearize_head(st, pb, hl) != 0 ||
      toe_tcp_parse(&th, pb->data, pb->len, len) != 0)
    goto malformed;
  /* RFC 9293 3.1: the checksum covers the pseudo-header, header and text. */
  if (!(pb->flags & TOE_PBUF_F_L4_CSUM_OK) &&
      !toe_tcp_csum_ok(toe_pbuf_csum(pb, 0, len), ip->src, ip->dst, (uint16_t)len)) {
    c->in_errs++;
    c->rx_drop_checksum++;
    toe_pbuf_free(st, pb);
    return;
  }
  /* RFC 1122 4.2.3.10 / RFC 9293 3.10.7.2: TCP is unicast only; a SYN to a broadcast or
   * multicast address is dropped silently, and nothing else there gets a RST either. */
  if (ip->dst != st->cfg.addr) {
    c->rx_drop_not_unicast++;
    toe_pbuf_free(st, pb);
    return;
  }
  if (th.src_port == 0 || th.dst_port == 0) {
    c->rx_drop_bad_port++;
    toe_pbuf_free(st, pb);
    return;
  }
  /* RFC 9293 3.1 (MUST-7): an option length that cannot be right must not derail us. The
   * segment is dropped rather than half-understood (a PAWS or SACK decision on the options
   * before the bad one could be wrong). */
  if (toe_tcp_parse_opts(&th, &opts) != 0) {
    c->in_errs++;
    c->rx_drop_bad_opts++;
    toe_pbuf_free(st, pb);
    return;
  }

  struct toe_tcb *tp = toe_tcp_lookup(st, ip->dst, th.dst_port, ip->src, th.src_port);
  if (tp) {
    toe_tcp_input_conn(st, tp, pb, ip, &th, &opts);
    return;
  }
  if (toe_tcp_timewait_input(st, pb, ip, &th, &opts))
    return;
  struct toe_sock *s =
      toe_socktab_lookup(st, TOE_IPPROTO_TCP, ip->dst, th.dst_port, ip->src, th.src_port);
  if (s && toe_tcb(s)->state == TOE_TCP_LISTEN) {
    struct toe_tcb *l = toe_tcb(s);
    if ((s->flags & TOE_SOCK_F_REUSEPORT) && !(th.flags & TOE_TCP_SYN)) {
      /* The ACK (or RST) of a handshake belongs to the group member that answered its SYN, even
       * if a member joined or left since and the flow hash now picks another. */
      struct toe_tcb *owner =
          toe_tcp_syncache_listener(st, ip->dst, th.dst_port, ip->src, th.src_port);
      if (owner)
        l = owner;
    }
    listen_input(st, l, pb, ip, &th, &opts);
    return;
  }
  /* No connection (RFC 9293 3.10.7.1, CLOSED): a RST unless this is one. */
  c->rx_drop_no_socket++;
  toe_tcp_send_reset(st, ip, &th, seg_len(pb, &th)); /* never answers a RST */
  toe_pbuf_free(st, pb);
  return;

malformed:
  c->in_errs++;
  c->rx_drop_malformed++;
  toe_pbuf_free(st, pb);
}

void toe_tcp_dispatch6(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_tcp6_seg *seg,
                       const struct toe_tcp_view *th, const struct toe_tcp_opts *opts)
{
  /* As tcp_dispatch after its checks (tcp_v6.c made them), with the pair's key as the remote
   * address; only the listener lookup needs the 16-byte addresses. */
  const struct toe_ipv4_view *ip = &seg->v4;
  struct toe_tcb *tp = toe_tcp_lookup(st, 0, th->dst_port, ip->src, th->src_port);
  if (tp) {
    toe_tcp_input_conn(st, tp, pb, ip, th, opts);
    return;
  }
  if (toe_tcp_timewait_input(st, pb, ip, th, opts))
    return;
  struct toe_sock *s = toe_socktab_lookup6(st, TOE_IPPROTO_TCP, &seg->ip6->dst, th->dst_port,
                                           &seg->ip6->src, th->src_port);
  if (s && toe_tcb(s)->state == TOE_TCP_LISTEN) {
    struct toe_tcb *l = toe_tcb(s);
    if ((s->flags & TOE_SOCK_F_REUSEPORT) && !(th->flags & TOE_TCP_SYN)) {
      struct toe_tcb *owner = toe_tcp_syncache_listener(st, 0, th->dst_port, ip->src, th->src_port);
      if (owner)
        l = owner;
    }
    listen_input(st, l, pb, ip, th, opts);
    return;
  }
  st->ctr.tcp.rx_drop_no_socket++;
  toe_tcp_send_reset(st, ip, th, seg_len(pb, th)); /* never answers a RST */
  toe_pbuf_free(st, pb);
}

void toe_tcp_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv4_view *ip)
{
  tcp_dispatch(st, pb, ip);
  /* Socket events raised while the segment was processed go out now, when no tcb is in the
   * middle of a change (a callback may close or abort its socket). */
  toe_tcp_notify_flush(st);
}

/* ---- ICMP errors ---- */

/* RFC 1191 7: the plateau below `len` when a router gave no next-hop MTU. */
static uint16_t plateau_below(uint16_t len)
{
  static const uint16_t plateaus[] = {32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68};
  for (unsigned i = 0; i < sizeof(plateaus) / sizeof(plateaus[0]); i++)
    if (plateaus[i] < len)
      return plateaus[i];
  return 68;
}

void toe_tcp_pmtu_raise(struct toe_stack *st, uint32_t dst, uint16_t mtu)
{
  struct toe_tcp_tables *tt = &st->tcp;
  for (uint32_t i = 0; i < tt->count; i++) {
    struct toe_tcb *tp = &tt->tcbs[i];
    if (tp->sk.proto != TOE_IPPROTO_TCP || !(tp->sk.flags & TOE_SOCK_F_CONNECTED) ||
        tp->sk.raddr != dst || tp->sk.laddr == 0 || !tp->pmtu || tp->pmtu >= mtu)
      continue;
    tp->pmtu = mtu;
    /* The MSS grows back as far as the peer's option and the user's clamp allow; segments
     * already queued keep their size, new ones use it. */
    uint32_t mss = (uint32_t)mtu - TOE_IPV4_HLEN - TOE_TCP_HLEN;
    if (tp->peer_mss && tp->peer_mss < mss)
      mss = tp->peer_mss;
    if (tp->user_mss && tp->user_mss < mss)
      mss = tp->user_mss;
    if (mss > tp->snd_mss)
      tp->snd_mss = (uint16_t)mss;
    st->ctr.tcp.pmtu_raised++;
  }
}

bool toe_tcp_icmp_error(struct toe_stack *st, const struct toe_ipv4_view *qip, const uint8_t *ql4,
                        int err, uint16_t next_mtu)
{
  struct toe_counters_tcp *c = &st->ctr.tcp;
  uint16_t sport = (uint16_t)(ql4[0] << 8 | ql4[1]);
  uint16_t dport = (uint16_t)(ql4[2] << 8 | ql4[3]);
  uint32_t seq = toe_load_be32(ql4 + 4);
  struct toe_tcb *tp = toe_tcp_lookup(st, qip->src, sport, qip->dst, dport);
  if (!tp) /* perhaps about a SYN-ACK of the SYN cache */
    return toe_tcp_syncache_icmp_error(st, qip, ql4, err);
  /* RFC 5927 4.1 (and RFC 5961 spirit): only an error quoting a segment in flight, SND.UNA <=
   * seq < SND.NXT, can be about this connection; anything else is stale or forged. */
  if (!(toe_seq_ge(seq, tp->snd_una) && toe_seq_lt(seq, tp->snd_max))) {
    c->icmp_bad_seq++;
    return false;
  }

  if (err == -TOE_EMSGSIZE) {
    /* Path MTU discovery (RFC 1191 5-7): lower the estimate, never raise it. RFC 1191 3 puts
     * the floor at 68 bytes; ours is higher, room for a segment of TOE_TCP_MIN_MSS: a report of
     * less, genuine or forged by someone who guessed a sequence number in flight, must not make
     * the connection crawl in segments of a few bytes (RFC 5927 7; Linux's floor is 552). The
     * estimate and the MSS stay consistent, so every segment still has room for its options. */
    uint32_t mtu = next_mtu;
    if (mtu == 0)
      mtu = plateau_below(qip->total_len);
    else if (mtu >= qip->total_len)
      return true; /* the quoted datagram fits that MTU: not what dropped it (RFC 1191 4) */
    if (mtu < TOE_TCP_MIN_MSS + TOE_IPV4_HLEN + TOE_TCP_HLEN)
      mtu = TOE_TCP_MIN_MSS + TOE_IPV4_HLEN + TOE_TCP_HLEN;
    /* Remembered for the destination (engine/pmtu.c): the next connection to it starts there,
     * and the estimate ages (RFC 1191 6.3). */
    toe_pmtu_lower(st, qip->dst, (uint16_t)mtu);
    uint32_t cur = tp->pmtu ? tp->pmtu : st->cfg.mtu;
    if (mtu >= cur)
      return true;
    tp->pmtu = (uint16_t)mtu;
    uint32_t mss = mtu - TOE_IPV4_HLEN - TOE_TCP_HLEN; /* >= TOE_TCP_MIN_MSS */
    if (mss < tp->snd_mss)
      tp->snd_mss = (uint16_t)mss;
    c->icmp_pmtu++;
    /* RFC 1191 6.3: retransmit what was dropped at once, in segments of the new size (the
     * retransmission splits the first unacknowledged segment; loss recovery sends the rest). */
    if (tp->state != TOE_TCP_SYN_SENT && tp->state != TOE_TCP_SYN_RECEIVED && tp->sndq_head &&
        tp->snd_una != tp->snd_max)
      (void)toe_tcp_retransmit(st, tp, tp->sndq_head);
    return true;
  }

  if (tp->state == TOE_TCP_SYN_SENT && (err == -TOE_ECONNREFUSED || err == -TOE_ENOPROTOOPT)) {
    /* RFC 1122 4.2.3.9: port and protocol unreachable are hard errors: the connection attempt
     * ends (the quoted sequence number, our ISS, authenticates the message, RFC 5927). */
    c->icmp_hard_aborts++;
    toe_tcp_drop(st, tp, err);
    toe_tcp_notify_flush(st);
    return true;
  }
  /* Soft errors (and, in synchronized states, hard ones too: RFC 5461 4.1) do not abort: they
   * are remembered as the reason to give if the connection later times out (RFC 1122
   * 4.2.3.9). */
  tp->icmp_soft_err = (int16_t)err;
  c->icmp_soft_errors++;
  return true;
}

bool toe_tcp_link_failure(struct toe_stack *st, const struct toe_ipv4_view *qip, const uint8_t *ql4)
{
  uint16_t sport = (uint16_t)(ql4[0] << 8 | ql4[1]);
  uint16_t dport = (uint16_t)(ql4[2] << 8 | ql4[3]);
  uint32_t seq = toe_load_be32(ql4 + 4);
  struct toe_tcb *tp = toe_tcp_lookup(st, qip->src, sport, qip->dst, dport);
  /* A segment of an earlier incarnation of the 4-tuple, or a pure ACK, is about nobody's data. */
  if (!tp || !(toe_seq_ge(seq, tp->snd_una) && toe_seq_lt(seq, tp->snd_max)))
    return false;
  if (tp->state == TOE_TCP_SYN_SENT) {
    /* Unlike an ICMP host unreachable from the wire, which RFC 1122 4.2.3.9 makes a soft error
     * because a router may be wrong for a moment, this is our own link failing to find the
     * peer after every ARP request: the attempt ends, as on Linux (EHOSTUNREACH after ~3 s). */
    toe_tcp_drop(st, tp, -TOE_EHOSTUNREACH);
    toe_tcp_notify_flush(st);
    return true;
  }
  /* Synchronized: keep retransmitting (the neighbour may come back); if the connection times
   * out, this is the reason it gives (RFC 1122 4.2.3.9). */
  tp->icmp_soft_err = -TOE_EHOSTUNREACH; /* counted as arp.fail_notified */
  return true;
}
