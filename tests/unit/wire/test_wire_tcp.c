/*
 * TCP headers, options and checksums (RFC 9293 3.1, RFC 7323, RFC 2018).
 */
#include "testlib.h"
#include "toe/errno.h"
#include "wire/checksum.h"
#include "wire/tcp.h"

#include <stdint.h>
#include <string.h>

#define SRC 0xc6120002u
#define DST 0xc6120001u

/* Builds a header 40000 -> 80, seq 0x01020304, ack 0x0a0b0c0d, window 0xfaf0, with `flags` and
 * `optlen` (multiple of 4) option bytes. Returns the header length. */
static size_t make_seg(uint8_t *s, uint8_t flags, const uint8_t *opts, size_t optlen)
{
  const uint8_t h[20] = {0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b,
                         0x0c, 0x0d, 0x50, 0x00, 0xfa, 0xf0, 0x00, 0x00, 0x00, 0x07};
  memcpy(s, h, 20);
  s[12] = (uint8_t)(((20 + optlen) / 4) << 4);
  s[13] = flags;
  if (optlen)
    memcpy(s + 20, opts, optlen);
  return 20 + optlen;
}

/* Linux-style SYN options: MSS 1460, SACK-permitted, TS 0x11223344/0, NOP, WS 7. */
static const uint8_t SYN_OPTS[20] = {2,    4,    0x05, 0xb4, 4, 2, 8, 10, 0x11, 0x22,
                                     0x33, 0x44, 0,    0,    0, 0, 1, 3,  3,    7};

TEST(parse_header)
{
  uint8_t s[64];
  size_t hl = make_seg(s, TOE_TCP_ACK | TOE_TCP_PSH, NULL, 0);
  memcpy(s + hl, "data", 4);
  struct toe_tcp_view v;
  REQUIRE(toe_tcp_parse(&v, s, hl + 4, hl + 4) == 0);
  CHECK(v.hdr == s);
  CHECK_EQ(v.src_port, 40000);
  CHECK_EQ(v.dst_port, 80);
  CHECK_EQ(v.seq, 0x01020304u);
  CHECK_EQ(v.ack, 0x0a0b0c0du);
  CHECK_EQ(v.hdr_len, 20);
  CHECK_EQ(v.flags, TOE_TCP_ACK | TOE_TCP_PSH);
  CHECK_EQ(v.window, 0xfaf0);
  CHECK_EQ(v.urg_ptr, 7);
  /* Header contiguous, payload elsewhere. */
  CHECK_EQ(toe_tcp_parse(&v, s, 20, 1000), 0);
}

TEST(bad_data_offset_and_truncation)
{
  uint8_t s[64];
  struct toe_tcp_view v;
  size_t hl = make_seg(s, TOE_TCP_SYN, SYN_OPTS, 20);
  for (size_t n = 0; n < 20; n++)
    CHECK_EQ(toe_tcp_parse(&v, s, n, n), -TOE_EINVAL);
  /* Data offset 10 words but fewer bytes contiguous or in the segment. */
  CHECK_EQ(toe_tcp_parse(&v, s, hl - 1, 100), -TOE_EINVAL);
  CHECK_EQ(toe_tcp_parse(&v, s, hl, hl - 1), -TOE_EINVAL);
  CHECK_EQ(toe_tcp_parse(&v, s, hl, hl), 0);
  /* Data offset below 5. */
  for (uint8_t d = 0; d < 5; d++) {
    s[12] = (uint8_t)(d << 4);
    CHECK_EQ(toe_tcp_parse(&v, s, 64, 64), -TOE_EINVAL);
  }
  /* Data offset 15 = 60 bytes, within 64. */
  s[12] = 0xf0;
  memset(s + 20, 1, 40);
  CHECK_EQ(toe_tcp_parse(&v, s, 64, 64), 0);
  CHECK_EQ(v.hdr_len, 60);
}

TEST(syn_options)
{
  uint8_t s[64];
  size_t hl = make_seg(s, TOE_TCP_SYN, SYN_OPTS, 20);
  struct toe_tcp_view v;
  struct toe_tcp_opts o;
  REQUIRE(toe_tcp_parse(&v, s, hl, hl) == 0);
  REQUIRE(toe_tcp_parse_opts(&v, &o) == 0);
  CHECK_EQ(o.has, TOE_TCPOPT_HAS_MSS | TOE_TCPOPT_HAS_SACK_PERM | TOE_TCPOPT_HAS_TS |
                      TOE_TCPOPT_HAS_WSCALE);
  CHECK_EQ(o.mss, 1460);
  CHECK_EQ(o.wscale, 7);
  CHECK_EQ(o.ts_val, 0x11223344u);
  CHECK_EQ(o.ts_ecr, 0);
}

TEST(syn_only_options_ignored_without_syn)
{
  uint8_t s[64];
  size_t hl = make_seg(s, TOE_TCP_ACK, SYN_OPTS, 20);
  struct toe_tcp_view v;
  struct toe_tcp_opts o;
  REQUIRE(toe_tcp_parse(&v, s, hl, hl) == 0);
  REQUIRE(toe_tcp_parse_opts(&v, &o) == 0);
  CHECK_EQ(o.has, TOE_TCPOPT_HAS_TS);
  CHECK_EQ(o.ts_val, 0x11223344u);
}

TEST(sack_blocks)
{
  uint8_t s[64];
  struct toe_tcp_view v;
  struct toe_tcp_opts o;
  for (int n = 1; n <= 4; n++) {
    uint8_t opts[36] = {1, 1, 5, (uint8_t)(2 + 8 * n)};
    for (int b = 0; b < n; b++) {
      uint32_t st = 1000u * (uint32_t)(b + 1), en = st + 500;
      uint8_t *q = opts + 4 + 8 * b;
      q[0] = (uint8_t)(st >> 24), q[1] = (uint8_t)(st >> 16), q[2] = (uint8_t)(st >> 8);
      q[3] = (uint8_t)st;
      q[4] = (uint8_t)(en >> 24), q[5] = (uint8_t)(en >> 16), q[6] = (uint8_t)(en >> 8);
      q[7] = (uint8_t)en;
    }
    size_t hl = make_seg(s, TOE_TCP_ACK, opts, (size_t)(4 + 8 * n));
    REQUIRE(toe_tcp_parse(&v, s, hl, hl) == 0);
    REQUIRE(toe_tcp_parse_opts(&v, &o) == 0);
    CHECK_EQ(o.has, TOE_TCPOPT_HAS_SACK);
    CHECK_EQ(o.sack_count, n);
    for (int b = 0; b < n; b++) {
      CHECK_EQ(o.sack[b].start, 1000u * (uint32_t)(b + 1));
      CHECK_EQ(o.sack[b].end, 1000u * (uint32_t)(b + 1) + 500);
    }
  }
  /* Wrong SACK lengths (no block, not a multiple of 8) are ignored, parsing continues. */
  const uint8_t odd[16] = {5, 2, 5, 11, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0};
  size_t hl = make_seg(s, TOE_TCP_ACK, odd, 16);
  REQUIRE(toe_tcp_parse(&v, s, hl, hl) == 0);
  CHECK_EQ(toe_tcp_parse_opts(&v, &o), 0);
  CHECK_EQ(o.has, 0);
  CHECK_EQ(o.sack_count, 0);
}

TEST(unknown_and_wrong_length_options)
{
  uint8_t s[64];
  struct toe_tcp_view v;
  struct toe_tcp_opts o;
  /* Unknown kind 30 (MPTCP) len 6 skipped; MSS with length 3 ignored; WS with length 4 ignored;
   * TS with length 8 ignored; then a good MSS. */
  const uint8_t opts[28] = {30, 6, 1, 2, 3, 4, 2, 3, 9, 3,    4,    1, 1, 8,
                            8,  0, 0, 0, 0, 0, 0, 2, 4, 0x02, 0x18, 0, 0, 0};
  size_t hl = make_seg(s, TOE_TCP_SYN, opts, 28);
  REQUIRE(toe_tcp_parse(&v, s, hl, hl) == 0);
  REQUIRE(toe_tcp_parse_opts(&v, &o) == 0);
  CHECK_EQ(o.has, TOE_TCPOPT_HAS_MSS);
  CHECK_EQ(o.mss, 536);
}

TEST(bad_option_lengths)
{
  uint8_t s[64];
  struct toe_tcp_view v;
  struct toe_tcp_opts o;
  const struct {
    uint8_t opts[8];
  } bad[] = {
      {{8, 10, 0, 0, 0, 0, 0, 0}}, /* TS running past the 8-byte option area */
      {{30, 0, 0, 0, 0, 0, 0, 0}}, /* length 0: would loop forever */
      {{30, 1, 0, 0, 0, 0, 0, 0}}, /* length 1 */
      {{1, 1, 1, 1, 1, 1, 1, 2}},  /* kind with no room for its length */
      {{30, 9, 0, 0, 0, 0, 0, 0}}, /* unknown kind, length past the header */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t hl = make_seg(s, TOE_TCP_SYN, bad[i].opts, 8);
    REQUIRE(toe_tcp_parse(&v, s, hl, hl) == 0);
    if (toe_tcp_parse_opts(&v, &o) != -TOE_EINVAL)
      testlib_fail(__FILE__, __LINE__, "bad option case %zu accepted", i);
  }
  /* What came before the bad option stays parsed. */
  const uint8_t partial[8] = {2, 4, 0x05, 0xb4, 3, 0, 0, 0};
  size_t hl = make_seg(s, TOE_TCP_SYN, partial, 8);
  REQUIRE(toe_tcp_parse(&v, s, hl, hl) == 0);
  CHECK_EQ(toe_tcp_parse_opts(&v, &o), -TOE_EINVAL);
  CHECK_EQ(o.has, TOE_TCPOPT_HAS_MSS);
  CHECK_EQ(o.mss, 1460);
}

TEST(eol_ends_options)
{
  uint8_t s[64];
  struct toe_tcp_view v;
  struct toe_tcp_opts o;
  /* After EOL: garbage that would be a bad option, and a TS that must not be seen. */
  const uint8_t opts[16] = {1, 0, 30, 0, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0};
  size_t hl = make_seg(s, TOE_TCP_ACK, opts, 16);
  REQUIRE(toe_tcp_parse(&v, s, hl, hl) == 0);
  CHECK_EQ(toe_tcp_parse_opts(&v, &o), 0);
  CHECK_EQ(o.has, 0);
}

TEST(write_opts_layouts)
{
  uint8_t p[48];
  struct toe_tcp_opts o = {0};
  /* SYN: MSS, SACK-permitted, TS, NOP, WS: exactly the Linux layout. */
  o.has = TOE_TCPOPT_HAS_MSS | TOE_TCPOPT_HAS_SACK_PERM | TOE_TCPOPT_HAS_TS | TOE_TCPOPT_HAS_WSCALE;
  o.mss = 1460;
  o.wscale = 7;
  o.ts_val = 0x11223344u;
  memset(p, 0xee, sizeof p);
  CHECK_EQ(toe_tcp_write_opts(p, sizeof p, &o), 20);
  CHECK_MEM(p, SYN_OPTS, 20);
  CHECK_EQ(p[20], 0xee);

  /* TS alone: NOP, NOP, TS. */
  memset(&o, 0, sizeof o);
  o.has = TOE_TCPOPT_HAS_TS;
  o.ts_val = 1;
  o.ts_ecr = 2;
  const uint8_t ts[12] = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};
  CHECK_EQ(toe_tcp_write_opts(p, sizeof p, &o), 12);
  CHECK_MEM(p, ts, 12);

  /* SACK-permitted alone, and WS alone. */
  o.has = TOE_TCPOPT_HAS_SACK_PERM | TOE_TCPOPT_HAS_WSCALE;
  o.wscale = 14;
  const uint8_t spws[8] = {1, 1, 4, 2, 1, 3, 3, 14};
  CHECK_EQ(toe_tcp_write_opts(p, sizeof p, &o), 8);
  CHECK_MEM(p, spws, 8);

  /* Nothing. */
  o.has = 0;
  CHECK_EQ(toe_tcp_write_opts(p, sizeof p, &o), 0);
}

TEST(write_opts_sack_cut_to_fit)
{
  uint8_t p[64];
  struct toe_tcp_opts o = {0};
  o.has = TOE_TCPOPT_HAS_TS | TOE_TCPOPT_HAS_SACK;
  o.sack_count = 4;
  for (int i = 0; i < 4; i++) {
    o.sack[i].start = (uint32_t)(100 * i);
    o.sack[i].end = (uint32_t)(100 * i + 50);
  }
  /* 12 bytes of TS leave 28: room for 4 + 3 blocks. */
  size_t n = toe_tcp_write_opts(p, sizeof p, &o);
  CHECK_EQ(n, 40);
  CHECK_EQ(p[12], 1);
  CHECK_EQ(p[13], 1);
  CHECK_EQ(p[14], 5);
  CHECK_EQ(p[15], 26);
  /* No TS: all four blocks, 36 bytes. */
  o.has = TOE_TCPOPT_HAS_SACK;
  CHECK_EQ(toe_tcp_write_opts(p, sizeof p, &o), 36);
  CHECK_EQ(p[3], 34);
  /* A small cap: one block only; cap not a multiple of 4 rounds down. */
  CHECK_EQ(toe_tcp_write_opts(p, 15, &o), 12);
  CHECK_EQ(p[3], 10);
  /* Too small for anything. */
  CHECK_EQ(toe_tcp_write_opts(p, 11, &o), 0);
  /* Cap bounds every write: nothing past it is touched. */
  o.has = TOE_TCPOPT_HAS_MSS | TOE_TCPOPT_HAS_SACK_PERM | TOE_TCPOPT_HAS_TS | TOE_TCPOPT_HAS_WSCALE;
  for (size_t cap = 0; cap <= 44; cap++) {
    memset(p, 0xee, sizeof p);
    size_t w = toe_tcp_write_opts(p, cap, &o);
    CHECK(w <= cap);
    CHECK(w % 4 == 0);
    for (size_t i = w; i < sizeof p; i++)
      if (p[i] != 0xee) {
        testlib_fail(__FILE__, __LINE__, "cap %zu: byte %zu written", cap, i);
        break;
      }
  }
}

TEST(write_and_parse_round_trip)
{
  uint8_t s[80];
  struct toe_tcp_opts o = {0}, r;
  o.has = TOE_TCPOPT_HAS_MSS | TOE_TCPOPT_HAS_SACK_PERM | TOE_TCPOPT_HAS_TS | TOE_TCPOPT_HAS_WSCALE;
  o.mss = 8960;
  o.wscale = 9;
  o.ts_val = 0xdeadbeefu;
  o.ts_ecr = 0x01020304u;
  size_t ol = toe_tcp_write_opts(s + 20, 40, &o);
  struct toe_tcp_fields f = {.src_port = 1,
                             .dst_port = 65535,
                             .seq = 0xfffffff0u,
                             .ack = 0x12345678u,
                             .flags = TOE_TCP_SYN | TOE_TCP_ACK | TOE_TCP_ECE,
                             .window = 29200,
                             .urg_ptr = 0};
  size_t hl = toe_tcp_write(s, &f, ol);
  CHECK_EQ(hl, 40);
  struct toe_tcp_view v;
  REQUIRE(toe_tcp_parse(&v, s, hl, hl) == 0);
  CHECK_EQ(v.hdr_len, 40);
  CHECK_EQ(v.src_port, 1);
  CHECK_EQ(v.dst_port, 65535);
  CHECK_EQ(v.seq, 0xfffffff0u);
  CHECK_EQ(v.ack, 0x12345678u);
  CHECK_EQ(v.flags, f.flags);
  CHECK_EQ(v.window, 29200);
  CHECK_EQ(v.csum, 0);
  REQUIRE(toe_tcp_parse_opts(&v, &r) == 0);
  CHECK_EQ(r.has, o.has);
  CHECK_EQ(r.mss, o.mss);
  CHECK_EQ(r.wscale, o.wscale);
  CHECK_EQ(r.ts_val, o.ts_val);
  CHECK_EQ(r.ts_ecr, o.ts_ecr);
}

TEST(checksum)
{
  uint8_t s[64];
  struct toe_tcp_fields f = {
      .src_port = 40000, .dst_port = 80, .seq = 1, .ack = 2, .flags = TOE_TCP_ACK, .window = 100};
  size_t hl = toe_tcp_write(s, &f, 0);
  memcpy(s + hl, "hello", 5); /* odd length */
  uint16_t len = (uint16_t)(hl + 5);
  uint16_t c = toe_tcp_csum_finish(toe_csum_partial(s, len, 0), SRC, DST, len);
  memcpy(s + 16, &c, 2);
  /* Reference: pseudo-header and segment, byte loop. */
  uint32_t r = (SRC >> 16) + (SRC & 0xffff) + (DST >> 16) + (DST & 0xffff) + 6 + len;
  for (size_t i = 0; i < len; i++)
    r += (i & 1) ? s[i] : (uint32_t)s[i] << 8;
  while (r >> 16)
    r = (r & 0xffff) + (r >> 16);
  CHECK_EQ(r, 0xffff);
  CHECK(toe_tcp_csum_ok(toe_csum_partial(s, len, 0), SRC, DST, len));
  CHECK(!toe_tcp_csum_ok(toe_csum_partial(s, len, 0), SRC, DST ^ 0x100, len));
  s[hl + 4] ^= 1;
  CHECK(!toe_tcp_csum_ok(toe_csum_partial(s, len, 0), SRC, DST, len));
}

TEST(write_clamps_bad_opt_len)
{
  uint8_t s[64];
  struct toe_tcp_fields f = {0};
  CHECK_EQ(toe_tcp_write(s, &f, 44), 60);
  CHECK_EQ(s[12], 0xf0);
  CHECK_EQ(toe_tcp_write(s, &f, 6), 24);
  CHECK_EQ(s[12], 0x60);
}

TEST(sequence_comparisons)
{
  CHECK(toe_seq_lt(1, 2));
  CHECK(toe_seq_lt(0xfffffff0u, 0x10));
  CHECK(!toe_seq_lt(0x10, 0xfffffff0u));
  CHECK(toe_seq_gt(0x10, 0xfffffff0u));
  CHECK(toe_seq_le(5, 5));
  CHECK(toe_seq_ge(5, 5));
  CHECK(!toe_seq_lt(5, 5));
  CHECK(!toe_seq_gt(5, 5));
}

TEST_MAIN()
