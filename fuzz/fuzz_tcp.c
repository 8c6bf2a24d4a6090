/*
 * State-aware TCP fuzz target: a stack with small pools, a listener on port 80, and two
 * connections already through their handshakes (one we opened to the peer's port 5000, one the
 * peer opened to the listener), then a sequence of records:
 *
 *   segment record (op < 0xf0), 12 bytes:
 *     op      bits 0-1 target: 0 the active connection, 1 the passive one, 2 the listener (a new
 *             source port), 3 a closed port; bit 2 corrupt the checksum; bit 3 timestamp option;
 *             bit 4 SACK option; bit 5 SYN options (MSS, window scale, SACK-permitted); bit 6
 *             `extra` raw option bytes follow the record (in the input); bit 7 ECN: `dlen` bits
 *             0-1 are the IP ECN field, bit 2 the AE flag (RFC 9768), and the payload is
 *             (dlen >> 3) * 6 bytes
 *     flags   TCP flags
 *     seq     int16: offset from what the connection expects next (rcv_nxt), times `scale`
 *     ack     int16: offset from the oldest unacknowledged byte we sent (snd_una), times `scale`
 *     win     u16 window field
 *     tsd     int8: TSval = the peer's clock + tsd (the clock ticks once per record)
 *     dlen    payload = dlen * 6 bytes of a pattern
 *     t       clock step after the record: t < 200 ms, else (t - 199) s
 *     extra   bits 0-1 scale (1, 256, 65536, 2^24); bits 2-3 SACK blocks - 1; bits 4-7 raw option
 *             bytes (with op bit 6)
 *   application record (0xf0 <= op < 0xff), 2 bytes: op & 7 selects send / recv / shutdown(WR) /
 *     shutdown(RD) / close / abort / reopen / wait on the connection arg & 1; with op bit 3 it
 *     first begins a receive burst (toe_stack_burst_begin), or ends the one that is open, so the
 *     records between two such ops are one burst (deferred output, one ACK per burst).
 *   raw record (op == 0xff): u16 length, then that many bytes of Ethernet frame.
 *
 * The active connection agrees Accurate ECN in its handshake, the passive one RFC 3168 ECN
 * (cfg.tcp_ecn = accecn), so ECE/CWR/AE and CE marks meet both state machines (tcp_ecn.c).
 *
 * Sequence and acknowledgment numbers are relative to the connection's real state, so segments
 * land in and around the windows where the state machine, RFC 5961, PAWS, SACK and reassembly do
 * their work, with valid checksums unless asked otherwise. After every record the sockets are
 * drained. At the end everything is closed, the clock runs past every timeout, and the target
 * aborts if a packet buffer, a tcb or a TIME_WAIT entry was not released.
 *
 * The seed corpus (fuzz/corpus/fuzz_tcp/) comes from fuzz/corpus/make_tcp_corpus.py.
 *
 * fuzz_tcp6.c builds this file with FUZZ_TCP_V6 1: the same records over IPv6 (the peer
 * 2001:db8::2 learned by a neighbour solicitation, the listener on [::], the RFC 8200 8.1
 * checksum), through tcp_v6.c's address pairs; the pair table must be empty at the end too.
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "fz_stack.h"
#include "toe/engine.h"
#include "toe/tcp.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fuzz_pool_tcp.c builds this file with FUZZ_POOL_BOUND 1: the sockets' byte limits are larger
 * than the pool and nothing is read unless an application record says so, so the pool's own
 * limits are what the input meets: each connection's buffer allowance, and with 64 buffers
 * (reserve 16) two full connections put the pool under pressure. */
#ifndef FUZZ_POOL_BOUND
#define FUZZ_POOL_BOUND 0
#endif
#define PBUFS (FUZZ_POOL_BOUND ? 64 : 96)
#ifndef FUZZ_TCP_V6
#define FUZZ_TCP_V6 0
#endif
#if FUZZ_TCP_V6
/* 2001:db8::1 (ours) and 2001:db8::2 (the peer) */
static const uint8_t FZ_OUR6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t FZ_PEER6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
#endif
#define LPORT 80

struct fz {
  struct toe_stack *st;
  struct toe_sock *ls;      /* listener */
  struct toe_sock *conn[2]; /* 0: active, 1: passive (accepted) */
  uint16_t pport[2];        /* the peer's port of each */
  uint16_t next_pport;
  toe_time_t now;
  uint32_t peer_ts; /* the peer's timestamp clock */
  /* the last TCP segment we sent */
  uint32_t last_seq, last_ack, last_tsval;
  uint16_t last_sport, last_dport;
  uint8_t last_flags;
  uint64_t events;
};

static void put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void put32(uint8_t *p, uint32_t v)
{
  put16(p, (uint16_t)(v >> 16));
  put16(p + 2, (uint16_t)v);
}
static uint32_t get32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t csum(const uint8_t *p, size_t n, uint32_t sum)
{
  for (size_t i = 0; i + 1 < n; i += 2)
    sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1)
    sum += (uint32_t)(p[n - 1] << 8);
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

/* Remembers our last TCP segment (for the handshakes and timestamp echoes), then frees it. */
static void fz_tx(void *ctx, struct toe_pbuf *frame)
{
  struct fz *f = ctx;
  uint8_t b[14 + 60 + 60];
  size_t n = toe_pbuf_copy_out(frame, 0, b, sizeof(b));
  bool v4 = n >= 14 + 20 + 20 && b[12] == 0x08 && b[13] == 0 && b[14 + 9] == 6;
  bool v6 = n >= 14 + 40 + 20 && b[12] == 0x86 && b[13] == 0xdd && b[14 + 6] == 6;
  if (v4 || v6) {
    size_t ihl = v6 ? 40 : (size_t)(b[14] & 0x0f) * 4;
    const uint8_t *t = b + 14 + ihl;
    if (14 + ihl + 20 <= n) {
      f->last_sport = (uint16_t)(t[0] << 8 | t[1]);
      f->last_dport = (uint16_t)(t[2] << 8 | t[3]);
      f->last_seq = get32(t + 4);
      f->last_ack = get32(t + 8);
      f->last_flags = t[13];
      size_t hl = (size_t)(t[12] >> 4) * 4;
      for (size_t i = 20; i < hl && 14 + ihl + i + 10 <= n;) {
        if (t[i] == 0)
          break;
        if (t[i] == 1) {
          i++;
          continue;
        }
        if (t[i + 1] < 2)
          break;
        if (t[i] == 8 && t[i + 1] == 10)
          f->last_tsval = get32(t + i + 2);
        i += t[i + 1];
      }
    }
  }
  toe_pbuf_free(f->st, frame);
}

static void fz_event(void *ctx, struct toe_sock *s, void *user, uint32_t events)
{
  struct fz *f = ctx;
  (void)s;
  (void)user;
  f->events += events;
}

/* A segment from the peer's `sport` to our `dport`; `flags` bit 8 is AE, bits 9-10 the IP ECN
 * field. */
static void fz_segment(struct fz *f, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                       uint16_t flags, uint16_t win, const uint8_t *opts, size_t olen, size_t dlen,
                       bool bad_csum)
{
  static uint8_t fr[14 + 40 + 60 + 1600];
  olen &= ~(size_t)3;
  if (olen > 40)
    olen = 40;
  if (dlen > 1530)
    dlen = 1530;
  uint8_t *ip = fr + 14, *t = fr + (FUZZ_TCP_V6 ? 54 : 34);
  memcpy(fr, FZ_OUR_MAC, 6);
  memcpy(fr + 6, FZ_PEER_MAC, 6);
  put16(fr + 12, FUZZ_TCP_V6 ? 0x86dd : 0x0800);
  size_t tl = 20 + olen + dlen;
#if FUZZ_TCP_V6
  memset(ip, 0, 40);
  ip[0] = 0x60;
  put16(ip + 4, (uint16_t)tl);
  ip[6] = 6;
  ip[7] = 64;
  memcpy(ip + 8, FZ_PEER6, 16);
  memcpy(ip + 24, FZ_OUR6, 16);
  uint32_t ps = 6 + (uint32_t)tl;
  for (int i = 0; i < 16; i += 2)
    ps += (uint32_t)(FZ_PEER6[i] << 8 | FZ_PEER6[i + 1]) +
          (uint32_t)(FZ_OUR6[i] << 8 | FZ_OUR6[i + 1]);
#else
  ip[0] = 0x45;
  ip[1] = (uint8_t)((flags >> 9) & 3u);
  put16(ip + 2, (uint16_t)(20 + tl));
  put16(ip + 4, 1);
  put16(ip + 6, 0x4000);
  ip[8] = 64;
  ip[9] = 6;
  put16(ip + 10, 0);
  put32(ip + 12, FZ_PEER_IP);
  put32(ip + 16, FZ_OUR_IP);
  put16(ip + 10, csum(ip, 20, 0));
  uint32_t ps = (FZ_PEER_IP >> 16) + (FZ_PEER_IP & 0xffff) + (FZ_OUR_IP >> 16) +
                (FZ_OUR_IP & 0xffff) + 6 + (uint32_t)tl;
#endif
  put16(t, sport);
  put16(t + 2, dport);
  put32(t + 4, seq);
  put32(t + 8, ack);
  t[12] = (uint8_t)(((20 + olen) / 4) << 4 | ((flags >> 8) & 1u));
  t[13] = (uint8_t)flags;
  put16(t + 14, win);
  put16(t + 16, 0);
  put16(t + 18, 0);
  memcpy(t + 20, opts, olen);
  for (size_t i = 0; i < dlen; i++)
    t[20 + olen + i] = (uint8_t)(seq + i);
  uint16_t c = csum(t, tl, ps);
  if (bad_csum)
    c ^= 0x1234;
  put16(t + 16, c);
  (void)toe_stack_input_copy(f->st, fr, (size_t)(t - fr) + tl, f->now);
}

#if FUZZ_TCP_V6
/* A neighbour solicitation from the peer (RFC 4861 4.3, with its link-layer address option): the
 * engine learns the peer's MAC, so connect()'s SYN goes out at once. */
static void fz_learn_peer6(struct fz *f)
{
  static const uint8_t snm[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 1};
  uint8_t fr[14 + 40 + 32];
  memset(fr, 0, sizeof(fr));
  static const uint8_t snm_mac[6] = {0x33, 0x33, 0xff, 0, 0, 1};
  memcpy(fr, snm_mac, 6);
  memcpy(fr + 6, FZ_PEER_MAC, 6);
  put16(fr + 12, 0x86dd);
  uint8_t *ip = fr + 14, *m = fr + 54;
  ip[0] = 0x60;
  put16(ip + 4, 32);
  ip[6] = 58;
  ip[7] = 255;
  memcpy(ip + 8, FZ_PEER6, 16);
  memcpy(ip + 24, snm, 16);
  m[0] = 135;
  memcpy(m + 8, FZ_OUR6, 16);
  m[24] = 1;
  m[25] = 1;
  memcpy(m + 26, FZ_PEER_MAC, 6);
  uint32_t ps = 58 + 32;
  for (int i = 0; i < 16; i += 2)
    ps += (uint32_t)(FZ_PEER6[i] << 8 | FZ_PEER6[i + 1]) + (uint32_t)(snm[i] << 8 | snm[i + 1]);
  put16(m + 2, csum(m, 32, ps));
  (void)toe_stack_input_copy(f->st, fr, sizeof(fr), f->now);
}
#endif

/* SYN options: MSS 1460, SACK-permitted, timestamps, window scale 7. */
static size_t syn_opts(struct fz *f, uint8_t *o, uint32_t tsecr)
{
  const uint8_t head[] = {2, 4, 0x05, 0xb4, 4, 2, 8, 10};
  memcpy(o, head, 8);
  put32(o + 8, f->peer_ts++);
  put32(o + 12, tsecr);
  o[16] = 1;
  o[17] = 3;
  o[18] = 3;
  o[19] = 7;
  return 20;
}

/* Opens connection i afresh: 0 by connect() and the peer's SYN-ACK, 1 by the peer's SYN to the
 * listener, our SYN-ACK, the peer's ACK and accept(). */
static void fz_open(struct fz *f, int i)
{
  uint8_t o[40];
  f->conn[i] = NULL;
  uint16_t pport = f->next_pport++;
  if (f->next_pport < 5000)
    f->next_pport = 5000;
  f->pport[i] = pport;
  uint32_t irs = 0x01000000u * (uint32_t)(i + 1) + pport;
  if (i == 0) {
    struct toe_sock *s = NULL;
    if (toe_tcp_open(f->st, f, &s) != 0)
      return;
    struct toe_sockaddr r = {.family = TOE_AF_INET, .port = pport, .addr = FZ_PEER_IP};
#if FUZZ_TCP_V6
    r.family = TOE_AF_INET6;
    memcpy(r.addr6, FZ_PEER6, 16);
#endif
    (void)toe_sock_connect(f->st, s, &r);
    f->conn[0] = s;
    if (f->last_dport != pport || (f->last_flags & 0x3f) != 0x02)
      return; /* no SYN went out (no buffers): left in SYN_SENT for the records to poke at */
    size_t n = syn_opts(f, o, f->last_tsval);
    /* SYN-ACK|CWR: AccECN, our SYN arrived Not-ECT (RFC 9768 table 2) */
    fz_segment(f, pport, f->last_sport, irs, f->last_seq + 1, 0x92, 65535, o, n, 0, false);
    return;
  }
  if (f->ls == NULL)
    return;
  size_t n = syn_opts(f, o, 0);
  fz_segment(f, pport, LPORT, irs, 0, 0xc2, 65535, o, n, 0, false); /* SYN|ECE|CWR: RFC 3168 */
  if (f->last_dport != pport || (f->last_flags & 0x3f) != 0x12)
    return;
  uint8_t ts[12] = {1, 1, 8, 10};
  put32(ts + 4, f->peer_ts++);
  put32(ts + 8, f->last_tsval);
  fz_segment(f, pport, LPORT, irs + 1, f->last_seq + 1, 0x10, 512, ts, 12, 0, false);
  struct toe_sock *s = NULL;
  if (toe_tcp_accept(f->st, f->ls, f, &s) == 0)
    f->conn[1] = s;
}

static void fz_drain(struct fz *f)
{
  static uint8_t buf[8192];
  for (int i = 0; i < 2; i++) {
    if (f->conn[i] == NULL)
      continue;
    for (int k = 0; k < 16; k++)
      if (toe_tcp_recv(f->st, f->conn[i], buf, sizeof(buf)) <= 0)
        break;
    (void)toe_sock_error(f->st, f->conn[i]);
    (void)toe_tcp_rx_pending(f->conn[i]);
    (void)toe_tcp_tx_pending(f->conn[i]);
  }
  /* extra connections the peer opened through the listener: accepted and closed */
  for (int k = 0; k < 4 && f->ls; k++) {
    struct toe_sock *s = NULL;
    if (toe_tcp_accept(f->st, f->ls, f, &s) != 0)
      break;
    if (k & 1)
      toe_tcp_abort(f->st, s);
    else
      toe_sock_close(f->st, s);
  }
}

static void fz_app(struct fz *f, uint8_t op, uint8_t arg)
{
  static uint8_t big[6000];
  int i = arg & 1;
  struct toe_sock *s = f->conn[i];
  switch (op & 7) {
  case 0:
    if (s)
      (void)toe_tcp_send(f->st, s, big, (size_t)(arg >> 1) * 47u, (arg & 0x80) ? TOE_SEND_MORE : 0);
    break;
  case 1:
    fz_drain(f);
    break;
  case 2:
    if (s)
      (void)toe_tcp_shutdown(f->st, s, TOE_SHUT_WR);
    break;
  case 3:
    if (s)
      (void)toe_tcp_shutdown(f->st, s, TOE_SHUT_RD);
    break;
  case 4:
    if (s) {
      toe_sock_close(f->st, s);
      f->conn[i] = NULL;
    }
    break;
  case 5:
    if (s) {
      toe_tcp_abort(f->st, s);
      f->conn[i] = NULL;
    }
    break;
  case 6:
    if (s)
      toe_sock_close(f->st, s);
    fz_open(f, i);
    break;
  default:
    f->now += TOE_SEC(1 + (arg & 63));
    toe_stack_poll(f->st, f->now);
    break;
  }
}

static toe_time_t step(uint8_t t)
{
  return t < 200 ? TOE_MSEC(t) : TOE_SEC((toe_time_t)(t - 199));
}

/* One segment record (the 12 bytes at r, raw option bytes after them). Returns bytes used. */
static size_t fz_seg_record(struct fz *f, const uint8_t *r, size_t avail)
{
  uint8_t op = r[0];
  uint16_t flags = r[1];
  int16_t seq_off = (int16_t)(r[2] << 8 | r[3]);
  int16_t ack_off = (int16_t)(r[4] << 8 | r[5]);
  uint16_t win = (uint16_t)(r[6] << 8 | r[7]);
  int8_t tsd = (int8_t)r[8];
  size_t dlen = (size_t)r[9] * 6u;
  if (op & 0x80) { /* ECN: the IP ECN field and AE from dlen's low bits */
    flags |= (uint16_t)((r[9] & 4u) << 6) | (uint16_t)((r[9] & 3u) << 9);
    dlen = (size_t)(r[9] >> 3) * 6u;
  }
  uint8_t extra = r[11];
  static const uint32_t scales[4] = {1u, 256u, 65536u, 1u << 24};
  uint32_t scale = scales[extra & 3];
  size_t used = 12;

  int target = op & 3;
  uint16_t sport, dport;
  uint32_t rcv = 0x12345678u, una = 0x9abcdef0u;
  if (target < 2) {
    struct toe_sock *s = f->conn[target];
    if (s == NULL)
      return used;
    struct toe_tcb *tp = toe_tcb(s);
    sport = f->pport[target];
    dport = tp->sk.lport;
    rcv = tp->rcv_nxt;
    una = tp->snd_una;
  } else if (target == 2) {
    sport = (uint16_t)(9000 + (r[10] & 0x3f));
    dport = LPORT;
  } else {
    sport = 4444;
    dport = 81;
  }

  uint8_t opts[60];
  size_t olen = 0;
  if (op & 0x20) {
    olen += syn_opts(f, opts, 0);
  }
  if (op & 0x08) {
    opts[olen++] = 1;
    opts[olen++] = 1;
    opts[olen++] = 8;
    opts[olen++] = 10;
    put32(opts + olen, f->peer_ts + (uint32_t)(int32_t)tsd);
    put32(opts + olen + 4, f->last_tsval);
    olen += 8;
  }
  if ((op & 0x10) && olen <= 40 - 12) {
    int nb = ((extra >> 2) & 3) + 1;
    while (olen + 4 + 8u * (size_t)nb > 40)
      nb--;
    opts[olen++] = 1;
    opts[olen++] = 1;
    opts[olen++] = 5;
    opts[olen++] = (uint8_t)(2 + 8 * nb);
    for (int b = 0; b < nb; b++) {
      uint32_t left = una + (uint32_t)(r[10] + b * 3) * 100u;
      put32(opts + olen, left);
      put32(opts + olen + 4, left + 100u * (uint32_t)(1 + (r[9] & 3)));
      olen += 8;
    }
  }
  if (op & 0x40) {
    size_t raw = (size_t)(extra >> 4) * 2u;
    if (raw > avail - used)
      raw = avail - used;
    if (olen + raw > 40)
      raw = 40 - olen;
    memcpy(opts + olen, r + used, raw);
    olen += raw;
    used += raw;
  }
  while (olen & 3)
    opts[olen++] = 0;

  uint32_t seq = rcv + (uint32_t)(int32_t)seq_off * scale; /* modulo 2^32 */
  uint32_t ack = una + (uint32_t)(int32_t)ack_off * scale;
  fz_segment(f, sport, dport, seq, ack, flags, win, opts, olen, dlen, (op & 0x04) != 0);
  f->peer_ts++;
  f->now += step(r[10]);
  toe_stack_poll(f->st, f->now);
  return used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct fz f;
  memset(&f, 0, sizeof(f));
  struct toe_config cfg;
  fz_config(&cfg, PBUFS, fz_tx, fz_event, &f);
  cfg.tcp_socks = 8;
  cfg.tcp_syncache = 4;
  cfg.tcp_timewait = 4;
  cfg.tcp_max_backlog = 2;
  cfg.tcp_rcvbuf = 16384;
  cfg.tcp_rcvbuf_max = 32768;
  cfg.tcp_sndbuf = 16384;
  cfg.tcp_sndbuf_max = 32768;
#if FUZZ_POOL_BOUND
  /* Windows larger than the pool in bytes: what a segment costs in buffers, not the bytes it
   * carries, decides (tiny segments into a window nobody reads, a send queue nobody acks). */
  cfg.tcp_rcvbuf = cfg.tcp_rcvbuf_max = 512u * 1024;
  cfg.tcp_sndbuf = cfg.tcp_sndbuf_max = 512u * 1024;
#endif
#if FUZZ_TCP_V6
  cfg.ipv6 = 1;
  cfg.addr6_count = 1;
  memcpy(cfg.addr6[0], FZ_OUR6, 16);
  cfg.addr6_prefix_len[0] = 64;
  cfg.dad_transmits = 0;
#endif
  cfg.icmp_rate_per_sec = 1000;
  cfg.icmp_burst = 50;
  cfg.tcp_ecn = TOE_TCP_ECN_ACCECN;
  f.now = TOE_SEC(1);
  f.peer_ts = 1000;
  f.next_pport = 5000;
  fz_stack_start(&cfg, f.now, &f.st);
  fz_learn_peer(f.st, f.now, 0);
  struct toe_sockaddr l = {.family = TOE_AF_INET, .port = LPORT, .addr = 0};
#if FUZZ_TCP_V6
  fz_learn_peer6(&f);
  l.family = TOE_AF_INET6;
  memset(l.addr6, 0, 16);
#endif
  if (toe_tcp_open(f.st, &f, &f.ls) == 0 &&
      (toe_sock_bind(f.st, f.ls, &l) != 0 || toe_tcp_listen(f.st, f.ls, 2) != 0)) {
    toe_sock_close(f.st, f.ls);
    f.ls = NULL;
  }
  fz_open(&f, 0);
  fz_open(&f, 1);

  while (size >= 2) {
    uint8_t op = data[0];
    if (op == 0xff) {
      if (size < 3)
        break;
      size_t len = (size_t)data[1] << 8 | data[2];
      data += 3;
      size -= 3;
      if (len > size)
        len = size;
      (void)toe_stack_input_copy(f.st, data, len, f.now);
      data += len;
      size -= len;
    } else if (op >= 0xf0) {
      if (op & 8) {
        if (f.st->tcp.in_burst)
          toe_stack_burst_end(f.st);
        else
          toe_stack_burst_begin(f.st);
      }
      fz_app(&f, op, data[1]);
      data += 2;
      size -= 2;
    } else {
      if (size < 12)
        break;
      size_t used = fz_seg_record(&f, data, size);
      data += used;
      size -= used;
    }
#if !FUZZ_POOL_BOUND
    fz_drain(&f); /* (the pool-bound variant reads only when an application record says so) */
#endif
  }

  /* tear down: close everything, then let every timer (retransmissions, FIN_WAIT_2, TIME_WAIT,
   * ARP, ...) run out */
  if (f.st->tcp.in_burst)
    toe_stack_burst_end(f.st);
  for (int i = 0; i < 2; i++)
    if (f.conn[i])
      toe_sock_close(f.st, f.conn[i]);
  if (f.ls)
    toe_sock_close(f.st, f.ls);
  fz_run_out(f.st, &f.now, 400);
  const struct toe_counters *c = toe_stack_counters(f.st);
  fz_pool_stats(FUZZ_POOL_BOUND ? "fuzz_pool_tcp"
                : FUZZ_TCP_V6   ? "fuzz_tcp6"
                                : "fuzz_tcp",
                f.st, PBUFS);
  uint32_t free_bufs = toe_pbuf_pool_free_count(f.st);
  if (free_bufs != PBUFS || c->pbuf.inuse != 0 || toe_pbuf_pool_charged(f.st) != 0 ||
      c->tcp.socks_inuse != 0 || c->tcp.curr_estab != 0 || f.st->tcp.tw_inuse != 0 ||
      f.st->tcp.conn_hashed != 0 || f.st->tcp.p6_inuse != 0) {
    fprintf(stderr,
            "fuzz_tcp: leak: %u of %u buffers free, inuse %llu, tcbs %llu, estab %llu, "
            "time-wait %u, hashed %u, IPv6 pairs %u\n",
            free_bufs, PBUFS, (unsigned long long)c->pbuf.inuse,
            (unsigned long long)c->tcp.socks_inuse, (unsigned long long)c->tcp.curr_estab,
            f.st->tcp.tw_inuse, f.st->tcp.conn_hashed, f.st->tcp.p6_inuse);
    for (uint32_t i = 0; i < f.st->tcp.count; i++) {
      const struct toe_tcb *tp = &f.st->tcp.tcbs[i];
      if (tp->sk.proto == 0)
        continue;
      fprintf(stderr,
              "  tcb %u: %s flags %#x owned %u una %u nxt %u max %u sndq %u rcvq %u ooo %u "
              "deadlines rto %llu persist %llu keep %llu fw2 %llu\n",
              i, toe_tcp_state_name(tp->state), tp->flags, tp->owned, tp->snd_una, tp->snd_nxt,
              tp->snd_max, tp->sndq_bytes, tp->rcvq_bytes, tp->ooo_bytes,
              (unsigned long long)tp->deadline[TOE_TT_RTO],
              (unsigned long long)tp->deadline[TOE_TT_PERSIST],
              (unsigned long long)tp->deadline[TOE_TT_KEEP],
              (unsigned long long)tp->deadline[TOE_TT_FINWAIT2]);
    }
    abort();
  }
  toe_stack_free(f.st);
  return 0;
}
