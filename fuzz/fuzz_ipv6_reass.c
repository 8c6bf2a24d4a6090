/*
 * IPv6 reassembly fuzz target (engine/ipv6_reass.c, RFC 8200 4.5): a whole engine on a virtual
 * clock fed IPv6 fragments built from compact records, so that the fuzzer spends its effort on the
 * reassembly state (overlaps, duplicates, disagreeing ends, the per-source share, the buffer
 * budget, timeouts) rather than on getting headers right.
 *
 * Input: a sequence of 8-byte records
 *   u8 sel  : bits 0-1 source (4 peers), bits 2-3 identification, bit 4 M flag, bit 5 the data
 *             is the true bytes of a 3000-byte echo request (else a fill), bit 6 an extra
 *             destination options header before the fragment header, bit 7 wrong Next Header
 *   u16 off : fragment offset (masked to a multiple of 8, at most 4088)
 *   u16 len : data bytes (at most 1400)
 *   u8 fill : the fill byte
 *   u8 t    : clock advance (t < 200: t ms; else (t - 199) s)
 *   u8 pad  : unused
 * With true data, fragments that tile the request complete it and the echo reply goes out in
 * fragments, which the transmit hook checks (each within the MTU, 8-byte pieces, M on all but
 * the last). At the end the clock runs past every timeout and the target aborts if a buffer, a
 * reassembly slot or a charge on the shared budget was left behind.
 */
#include "fz_stack.h"
#include "toe/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PBUFS 96
#define MSG_LEN 3008

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t OUR6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
static uint8_t msg[4][MSG_LEN]; /* the echo request each source sends, checksummed */
static struct toe_stack *g_st;

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
  for (size_t i = 0; i + 1 < n; i += 2)
    s += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1)
    s += (uint32_t)p[n - 1] << 8;
  return s;
}

static void peer_addr(uint8_t a[16], unsigned i)
{
  memcpy(a, OUR6, 16);
  a[15] = (uint8_t)(2 + i);
}

static void make_msgs(void)
{
  for (unsigned s = 0; s < 4; s++) {
    uint8_t *m = msg[s];
    memset(m, 0, 8);
    m[0] = 128;
    m[5] = (uint8_t)s;
    for (size_t i = 8; i < MSG_LEN; i++)
      m[i] = (uint8_t)(i * 13 + s);
    uint8_t src[16];
    peer_addr(src, s);
    uint32_t x = sum16(src, 16, 0);
    x = sum16(OUR6, 16, x);
    x += MSG_LEN + 58;
    x = sum16(m, MSG_LEN, x);
    while (x >> 16)
      x = (x & 0xffff) + (x >> 16);
    uint16_t cs = (uint16_t)~x;
    m[2] = (uint8_t)(cs >> 8);
    m[3] = (uint8_t)cs;
  }
}

/* Outgoing fragments obey RFC 8200 4.5 as the engine builds them. */
static void fz_tx(void *ctx, struct toe_pbuf *frame)
{
  (void)ctx;
  uint8_t b[1600];
  size_t n = toe_pbuf_copy_out(frame, 0, b, sizeof(b));
  if (n >= 14 + 48 && b[12] == 0x86 && b[13] == 0xdd && b[14 + 6] == 44) {
    size_t plen = (size_t)b[18] << 8 | b[19];
    uint16_t fo = (uint16_t)(b[14 + 42] << 8 | b[14 + 43]);
    if (frame->tot_len != 14 + 40 + plen || 40 + plen > 1500 ||
        ((fo & 1) && ((plen - 8) & 7) != 0)) {
      fprintf(stderr, "fuzz_ipv6_reass: bad fragment sent (len %u, plen %zu, fo %#x)\n",
              (unsigned)frame->tot_len, plen, fo);
      abort();
    }
  }
  toe_pbuf_free(g_st, frame);
}

static void fz_event(void *ctx, struct toe_sock *s, void *user, uint32_t events)
{
  (void)ctx;
  (void)s;
  (void)user;
  (void)events;
}

static void input_frag(struct toe_stack *st, const uint8_t *r, toe_time_t now)
{
  static uint8_t f[14 + 40 + 8 + 8 + 1400];
  unsigned src = r[0] & 3u;
  uint32_t id = (r[0] >> 2) & 3u;
  bool more = (r[0] & 0x10) != 0;
  bool real = (r[0] & 0x20) != 0;
  bool dstopt = (r[0] & 0x40) != 0;
  uint32_t off = (uint32_t)(r[1] << 8 | r[2]) & 0x0ff8u;
  uint32_t len = (uint32_t)(r[3] << 8 | r[4]) % 1401u;
  memcpy(f, FZ_OUR_MAC, 6);
  memcpy(f + 6, FZ_PEER_MAC, 6);
  f[12] = 0x86;
  f[13] = 0xdd;
  uint8_t *ip = f + 14;
  memset(ip, 0, 8);
  ip[0] = 0x60;
  ip[7] = 64;
  peer_addr(ip + 8, src);
  memcpy(ip + 24, OUR6, 16);
  uint8_t *p = ip + 40;
  if (dstopt) {
    ip[6] = 60;
    p[0] = 44;
    p[1] = 0;
    p[2] = 1; /* PadN of 4 */
    p[3] = 4;
    memset(p + 4, 0, 4);
    p += 8;
  } else {
    ip[6] = 44;
  }
  p[0] = (r[0] & 0x80) ? 17 : 58;
  p[1] = 0;
  uint16_t fo = (uint16_t)(off | (more ? 1u : 0u));
  p[2] = (uint8_t)(fo >> 8);
  p[3] = (uint8_t)fo;
  p[4] = p[5] = p[6] = 0;
  p[7] = (uint8_t)(0x40 + id);
  p += 8;
  for (uint32_t i = 0; i < len; i++)
    p[i] = real && off + i < MSG_LEN ? msg[src][off + i] : r[5];
  size_t plen = (size_t)(p - ip - 40) + len;
  ip[4] = (uint8_t)(plen >> 8);
  ip[5] = (uint8_t)plen;
  (void)toe_stack_input_copy(st, f, 14 + 40 + plen, now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static bool init;
  if (!init) {
    make_msgs();
    init = true;
  }
  struct toe_config cfg;
  fz_config(&cfg, PBUFS, fz_tx, fz_event, NULL);
  cfg.ipv6 = 1;
  cfg.addr6_count = 1;
  memcpy(cfg.addr6[0], OUR6, 16);
  cfg.addr6_prefix_len[0] = 64;
  cfg.dad_transmits = 0;
  cfg.nd_entries = 4;
  cfg.reass_max_bufs = 24; /* the budget shared with IPv4, met by a handful of fragments */
  cfg.icmp_rate_per_sec = 1000;
  cfg.icmp_burst = 50;
  toe_time_t now = TOE_SEC(1);
  fz_stack_start(&cfg, now, &g_st);
  struct toe_stack *st = g_st;

  while (size >= 8) {
    input_frag(st, data, now);
    uint8_t t = data[6];
    now += t < 200 ? TOE_MSEC(t) : TOE_SEC((toe_time_t)(t - 199));
    toe_stack_poll(st, now);
    data += 8;
    size -= 8;
  }
  fz_run_out(st, &now, 50);
  const struct toe_counters *c = toe_stack_counters(st);
  uint32_t free_bufs = toe_pbuf_pool_free_count(st);
  if (free_bufs != PBUFS || c->pbuf.inuse != 0 || c->ip6.reass_inuse != 0) {
    fprintf(stderr, "fuzz_ipv6_reass: leak: %u of %u buffers free, reass %llu\n", free_bufs, PBUFS,
            (unsigned long long)c->ip6.reass_inuse);
    abort();
  }
  toe_stack_free(st);
  g_st = NULL;
  return 0;
}
