#include "tcp_harness.h"

#include "toe/engine.h"

#include <stdio.h>
#include <string.h>

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

void h_tcp_opt_none(struct h_tcp_opt *o)
{
  memset(o, 0, sizeof(*o));
  o->wscale = -1;
}

size_t h_tcp_opts(uint8_t *out, const struct h_tcp_opt *o)
{
  size_t n = 0;
  if (o->mss) {
    out[n++] = 2;
    out[n++] = 4;
    put16(out + n, o->mss);
    n += 2;
  }
  if (o->sack_perm) {
    out[n++] = 1;
    out[n++] = 1;
    out[n++] = 4;
    out[n++] = 2;
  }
  if (o->ts) {
    out[n++] = 1;
    out[n++] = 1;
    out[n++] = 8;
    out[n++] = 10;
    put32(out + n, o->tsval);
    put32(out + n + 4, o->tsecr);
    n += 8;
  }
  if (o->wscale >= 0) {
    out[n++] = 1;
    out[n++] = 3;
    out[n++] = 3;
    out[n++] = (uint8_t)o->wscale;
  }
  if (o->nsack > 0) {
    int k = o->nsack > 4 ? 4 : o->nsack;
    while (n + 4 + 8 * (size_t)k > 40 && k > 0)
      k--;
    if (k > 0) {
      out[n++] = 1;
      out[n++] = 1;
      out[n++] = 5;
      out[n++] = (uint8_t)(2 + 8 * k);
      for (int i = 0; i < k; i++) {
        put32(out + n, o->sack[i][0]);
        put32(out + n + 4, o->sack[i][1]);
        n += 8;
      }
    }
  }
  return n;
}

size_t h_build_tcp(uint8_t *out, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                   uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, const void *opts,
                   size_t optlen, const void *data, size_t dlen)
{
  static uint8_t seg[65536];
  size_t hl = 20 + optlen;
  put16(seg, sport);
  put16(seg + 2, dport);
  put32(seg + 4, seq);
  put32(seg + 8, ack);
  seg[12] = (uint8_t)((hl / 4) << 4);
  seg[13] = flags;
  put16(seg + 14, win);
  put16(seg + 16, 0);
  put16(seg + 18, 0);
  if (optlen)
    memcpy(seg + 20, opts, optlen);
  if (dlen)
    memcpy(seg + hl, data, dlen);
  uint16_t c = h_csum(seg, hl + dlen, h_pseudo_sum(src, dst, 6, (uint16_t)(hl + dlen)));
  put16(seg + 16, c);
  return h_build_ipv4(out, src, dst, 6, 0x1234, 0x4000, 64, seg, hl + dlen);
}

bool h_tcp_parse(const uint8_t *f, size_t len, struct h_tcp *t)
{
  memset(t, 0, sizeof(*t));
  if (len < 14 + 20 + 20 || h_be16(f + 12) != 0x0800)
    return false;
  const uint8_t *ip = f + 14;
  size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
  if ((ip[0] >> 4) != 4 || ihl < 20 || ip[9] != 6)
    return false;
  size_t tot = h_be16(ip + 2);
  if (tot > len - 14 || tot < ihl + 20)
    return false;
  t->ipcsum_ok = h_csum(ip, ihl, 0) == 0;
  t->df = (h_be16(ip + 6) & 0x4000) != 0;
  t->ttl = ip[8];
  t->src = h_be32(ip + 12);
  t->dst = h_be32(ip + 16);
  const uint8_t *th = ip + ihl;
  size_t seglen = tot - ihl;
  size_t hl = (size_t)(th[12] >> 4) * 4;
  if (hl < 20 || hl > seglen)
    return false;
  t->sport = h_be16(th);
  t->dport = h_be16(th + 2);
  t->seq = h_be32(th + 4);
  t->ack = h_be32(th + 8);
  t->flags = th[13];
  t->win = h_be16(th + 14);
  t->urg = h_be16(th + 18);
  t->csum_ok = h_csum(th, seglen, h_pseudo_sum(t->src, t->dst, 6, (uint16_t)seglen)) == 0;
  t->data = th + hl;
  t->dlen = seglen - hl;
  for (size_t i = 20; i < hl;) {
    uint8_t k = th[i];
    if (k == 0)
      break;
    if (k == 1) {
      i++;
      continue;
    }
    if (i + 1 >= hl || th[i + 1] < 2 || i + th[i + 1] > hl)
      return false;
    uint8_t ol = th[i + 1];
    const uint8_t *d = th + i + 2;
    if (k == 2 && ol == 4) {
      t->has_mss = true;
      t->mss = h_be16(d);
    } else if (k == 3 && ol == 3) {
      t->has_ws = true;
      t->ws = d[0];
    } else if (k == 4 && ol == 2) {
      t->sack_perm = true;
    } else if (k == 8 && ol == 10) {
      t->has_ts = true;
      t->tsval = h_be32(d);
      t->tsecr = h_be32(d + 4);
    } else if (k == 5 && ol >= 10 && (ol - 2) % 8 == 0) {
      t->nsack = (ol - 2) / 8;
      if (t->nsack > 4)
        t->nsack = 4;
      for (int b = 0; b < t->nsack; b++) {
        t->sack[b][0] = h_be32(d + 8 * b);
        t->sack[b][1] = h_be32(d + 8 * b + 4);
      }
    }
    i += ol;
  }
  return true;
}

int h_tcp_count(const struct harness *h)
{
  return h_count_tx(h, 0x0800, 6);
}

int h_tcp_find(const struct harness *h, int n)
{
  if (n < 0)
    n = h_tcp_count(h) + n;
  if (n < 0)
    return -1;
  return h_find_tx(h, 0x0800, 6, n);
}

bool h_tcp_get(const struct harness *h, int n, struct h_tcp *t)
{
  int i = h_tcp_find(h, n);
  if (i < 0)
    return false;
  return h_tcp_parse(h->tx[i].bytes, h->tx[i].len, t);
}

/* ---- the scripted peer ---- */

void h_conn_init(struct h_conn *c, struct harness *h, uint16_t pport)
{
  memset(c, 0, sizeof(*c));
  c->h = h;
  c->pport = pport;
  c->irs = 0x10000000u;
  c->win = 65535;
  h_tcp_opt_none(&c->syn_opt);
  c->syn_opt.mss = 1460;
  c->syn_opt.wscale = 7;
  c->syn_opt.sack_perm = true;
  c->syn_opt.ts = true;
  c->tsval = 1000;
  h_learn_peer(h);
}

static bool ours(const struct h_conn *c, const struct h_tcp *t)
{
  return t->src == H_OUR_IP && t->dst == H_PEER_IP && t->dport == c->pport &&
         (c->lport == 0 || t->sport == c->lport);
}

bool h_conn_last(struct h_conn *c, struct h_tcp *t)
{
  for (int i = c->h->ntx - 1; i >= 0; i--) {
    if (h_tcp_parse(c->h->tx[i].bytes, c->h->tx[i].len, t) && ours(c, t)) {
      if (t->has_ts)
        c->ts_recent = t->tsval;
      return true;
    }
  }
  return false;
}

int h_conn_count(const struct h_conn *c)
{
  return h_conn_count_flags(c, 0, 0);
}

int h_conn_count_flags(const struct h_conn *c, int from, uint8_t flags)
{
  int n = 0;
  struct h_tcp t;
  for (int i = from < 0 ? 0 : from; i < c->h->ntx; i++)
    if (h_tcp_parse(c->h->tx[i].bytes, c->h->tx[i].len, &t) && ours(c, &t) &&
        (t.flags & flags) == flags)
      n++;
  return n;
}

/* Takes the latest TSval we sent, to echo. */
static void sync_ts(struct h_conn *c)
{
  struct h_tcp t;
  (void)h_conn_last(c, &t);
}

void h_conn_send_raw(struct h_conn *c, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win,
                     const struct h_tcp_opt *o, const void *data, size_t len)
{
  static uint8_t frame[H_MAX_FRAME];
  uint8_t opts[40];
  size_t ol = 0;
  if (o) {
    ol = h_tcp_opts(opts, o);
  } else if (c->ts) {
    struct h_tcp_opt d;
    h_tcp_opt_none(&d);
    sync_ts(c);
    d.ts = true;
    d.tsval = c->tsval++;
    d.tsecr = c->ts_recent;
    ol = h_tcp_opts(opts, &d);
  }
  size_t n = h_build_tcp(frame, H_PEER_IP, c->pport, H_OUR_IP, c->lport, seq, ack, flags, win, opts,
                         ol, data, len);
  h_input(c->h, frame, n);
}

void h_conn_send_at(struct h_conn *c, uint32_t seq, uint8_t flags, const void *data, size_t len)
{
  h_conn_send_raw(c, seq, c->rcv_nxt, flags, c->win, NULL, data, len);
}

void h_conn_send(struct h_conn *c, uint8_t flags, const void *data, size_t len)
{
  h_conn_send_at(c, c->snd_nxt, flags, data, len);
  c->snd_nxt += (uint32_t)len + ((flags & H_SYN) ? 1u : 0u) + ((flags & H_FIN) ? 1u : 0u);
}

int h_conn_connect(struct h_conn *c, uint16_t lport)
{
  struct harness *h = c->h;
  struct toe_sock *s = NULL;
  if (toe_tcp_open(h->st, c, &s) != 0)
    return -1;
  if (lport) {
    struct toe_sockaddr l = {.family = TOE_AF_INET, .port = lport, .addr = 0};
    if (toe_sock_bind(h->st, s, &l) != 0)
      return -2;
  }
  struct toe_sockaddr r = {.family = TOE_AF_INET, .port = c->pport, .addr = H_PEER_IP};
  int rc = toe_sock_connect(h->st, s, &r);
  if (rc != 0 && rc != -TOE_EINPROGRESS)
    return -3;
  c->s = s;
  struct toe_sockaddr ln, rn;
  toe_sock_name(s, &ln, &rn);
  c->lport = ln.port;
  struct h_tcp syn;
  if (!h_conn_last(c, &syn) || syn.flags != H_SYN)
    return -4;
  c->syn = syn;
  c->iss = syn.seq;
  c->rcv_nxt = syn.seq + 1;
  c->snd_nxt = c->irs;
  c->ts = syn.has_ts && c->syn_opt.ts;
  c->sack = syn.sack_perm && c->syn_opt.sack_perm;
  c->our_ws = (syn.has_ws && c->syn_opt.wscale >= 0) ? syn.ws : 0;
  struct h_tcp_opt o = c->syn_opt;
  o.tsecr = syn.tsval;
  o.tsval = c->tsval++;
  if (!c->ts)
    o.ts = false;
  /* The SYN-ACK's window is never scaled (RFC 7323 2.2). */
  h_conn_send_raw(c, c->snd_nxt, c->rcv_nxt, H_SYN | H_ACK, c->win, &o, NULL, 0);
  c->snd_nxt++;
  struct h_tcp ack;
  if (!h_conn_last(c, &ack) || !(ack.flags & H_ACK) || (ack.flags & (H_SYN | H_RST)) ||
      ack.ack != c->snd_nxt)
    return -5;
  return 0;
}

int h_conn_accept(struct h_conn *c, uint16_t lport)
{
  struct harness *h = c->h;
  struct toe_sock *ls = NULL;
  if (toe_tcp_open(h->st, c, &ls) != 0)
    return -1;
  struct toe_sockaddr l = {.family = TOE_AF_INET, .port = lport, .addr = 0};
  if (toe_sock_bind(h->st, ls, &l) != 0)
    return -2;
  if (toe_tcp_listen(h->st, ls, 16) != 0)
    return -3;
  c->ls = ls;
  c->lport = lport;
  c->snd_nxt = c->irs;
  struct h_tcp_opt o = c->syn_opt;
  o.tsval = c->tsval++;
  o.tsecr = 0;
  int before = h->ntx;
  h_conn_send_raw(c, c->snd_nxt, 0, H_SYN, c->win, &o, NULL, 0);
  c->snd_nxt++;
  struct h_tcp sa;
  if (h->ntx == before || !h_conn_last(c, &sa) || sa.flags != (H_SYN | H_ACK) ||
      sa.ack != c->snd_nxt)
    return -4;
  c->syn = sa;
  c->iss = sa.seq;
  c->rcv_nxt = sa.seq + 1;
  c->ts = sa.has_ts && c->syn_opt.ts;
  c->sack = sa.sack_perm && c->syn_opt.sack_perm;
  c->our_ws = (sa.has_ws && c->syn_opt.wscale >= 0) ? sa.ws : 0;
  if (c->syn_opt.wscale < 0 || !sa.has_ws)
    c->syn_opt.wscale = -1;
  h_conn_send(c, H_ACK, NULL, 0);
  struct toe_sock *s = NULL;
  if (toe_tcp_accept(h->st, ls, c, &s) != 0)
    return -5;
  c->s = s;
  return 0;
}

size_t h_conn_read(struct h_conn *c, void *buf, size_t cap)
{
  size_t got = 0;
  while (got < cap) {
    int n = toe_tcp_recv(c->h->st, c->s, (uint8_t *)buf + got, cap - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  return got;
}
