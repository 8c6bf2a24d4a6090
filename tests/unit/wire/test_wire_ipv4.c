/*
 * IPv4 header parsing and emission (RFC 791).
 */
#include "testlib.h"
#include "toe/errno.h"
#include "wire/ipv4.h"

#include <stdint.h>
#include <string.h>

/* Reference header checksum: byte loop, big-endian words, written big-endian. */
static void ref_fix_csum(uint8_t *h, size_t hlen)
{
  h[10] = h[11] = 0;
  uint32_t s = 0;
  for (size_t i = 0; i < hlen; i += 2)
    s += (uint32_t)h[i] << 8 | h[i + 1];
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  s = ~s & 0xffff;
  h[10] = (uint8_t)(s >> 8);
  h[11] = (uint8_t)s;
}

/* A 20-byte header 198.18.0.2 -> 198.18.0.1, UDP, total 28, id 0x1234, DF, ttl 64. */
static void make_hdr(uint8_t *h)
{
  const uint8_t base[20] = {0x45, 0x10, 0x00, 28,   0x12, 0x34, 0x40, 0x00, 64,   17,
                            0,    0,    0xc6, 0x12, 0x00, 0x02, 0xc6, 0x12, 0x00, 0x01};
  memcpy(h, base, 20);
  ref_fix_csum(h, 20);
}

/* Same with `optlen` (multiple of 4) option bytes `opts` inserted. */
static size_t make_hdr_opts(uint8_t *h, const uint8_t *opts, size_t optlen, size_t payload)
{
  make_hdr(h);
  memcpy(h + 20, opts, optlen);
  size_t hlen = 20 + optlen;
  h[0] = (uint8_t)(0x40 | (hlen / 4));
  size_t tot = hlen + payload;
  h[2] = (uint8_t)(tot >> 8);
  h[3] = (uint8_t)tot;
  ref_fix_csum(h, hlen);
  return tot;
}

TEST(parse_valid)
{
  uint8_t p[28] = {0};
  make_hdr(p);
  struct toe_ipv4_view v;
  REQUIRE(toe_ipv4_parse(&v, p, 28, 28, false) == 0);
  CHECK(v.hdr == p);
  CHECK_EQ(v.hdr_len, 20);
  CHECK_EQ(v.total_len, 28);
  CHECK_EQ(v.tos, 0x10);
  CHECK_EQ(v.ttl, 64);
  CHECK_EQ(v.proto, TOE_IPPROTO_UDP);
  CHECK_EQ(v.id, 0x1234);
  CHECK(v.df);
  CHECK(!v.mf);
  CHECK_EQ(v.frag_off, 0);
  CHECK(!toe_ipv4_is_fragment(&v));
  CHECK_EQ(v.src, 0xc6120002u);
  CHECK_EQ(v.dst, 0xc6120001u);
  /* Only the header contiguous; Ethernet padding after total length. */
  CHECK_EQ(toe_ipv4_parse(&v, p, 20, 46, false), 0);
  CHECK_EQ(v.total_len, 28);
}

TEST(fragment_fields)
{
  uint8_t p[28] = {0};
  make_hdr(p);
  p[6] = 0x20 | 0x01; /* MF, offset high bits */
  p[7] = 0x02;        /* offset 0x102 units = 2064 bytes */
  ref_fix_csum(p, 20);
  struct toe_ipv4_view v;
  REQUIRE(toe_ipv4_parse(&v, p, 28, 28, false) == 0);
  CHECK(v.mf);
  CHECK(!v.df);
  CHECK_EQ(v.frag_off, 0x102 * 8);
  CHECK(toe_ipv4_is_fragment(&v));
  /* Largest offset. */
  p[6] = 0x1f;
  p[7] = 0xff;
  ref_fix_csum(p, 20);
  REQUIRE(toe_ipv4_parse(&v, p, 28, 28, false) == 0);
  CHECK_EQ(v.frag_off, 65528);
  CHECK(!v.mf);
  CHECK(toe_ipv4_is_fragment(&v));
}

TEST(truncated_and_lying)
{
  uint8_t p[64] = {0};
  make_hdr(p);
  struct toe_ipv4_view v;
  for (size_t n = 0; n < 20; n++)
    CHECK_EQ(toe_ipv4_parse(&v, p, n, n, false), -TOE_EINVAL);
  /* Total length larger than the packet. */
  CHECK_EQ(toe_ipv4_parse(&v, p, 27, 27, false), -TOE_EINVAL);
  /* Total length below the header length. */
  p[3] = 19;
  ref_fix_csum(p, 20);
  CHECK_EQ(toe_ipv4_parse(&v, p, 28, 28, false), -TOE_EINVAL);
  /* avail > pkt_len must not let the parser believe avail. */
  make_hdr(p);
  CHECK_EQ(toe_ipv4_parse(&v, p, 64, 19, false), -TOE_EINVAL);
}

TEST(bad_version_and_ihl)
{
  uint8_t p[64] = {0};
  struct toe_ipv4_view v;
  make_hdr(p);
  p[0] = 0x65; /* version 6 */
  ref_fix_csum(p, 20);
  CHECK_EQ(toe_ipv4_parse(&v, p, 28, 28, false), -TOE_EINVAL);
  for (uint8_t ihl = 0; ihl < 5; ihl++) {
    make_hdr(p);
    p[0] = (uint8_t)(0x40 | ihl);
    ref_fix_csum(p, 20);
    CHECK_EQ(toe_ipv4_parse(&v, p, 28, 28, false), -TOE_EINVAL);
  }
  /* IHL 15 (60 bytes) but only 28 contiguous / in the packet. */
  make_hdr(p);
  p[0] = 0x4f;
  p[3] = 60;
  CHECK_EQ(toe_ipv4_parse(&v, p, 28, 60, true), -TOE_EINVAL);
  CHECK_EQ(toe_ipv4_parse(&v, p, 64, 28, true), -TOE_EINVAL);
}

TEST(checksum)
{
  uint8_t p[28] = {0};
  make_hdr(p);
  struct toe_ipv4_view v;
  p[8] = 63; /* TTL changed, checksum not */
  CHECK_EQ(toe_ipv4_parse(&v, p, 28, 28, false), -TOE_EBADMSG);
  /* The link says it checked: accepted. */
  CHECK_EQ(toe_ipv4_parse(&v, p, 28, 28, true), 0);
  CHECK_EQ(v.ttl, 63);
  /* Checksum over options too. */
  const uint8_t opts[4] = {1, 1, 1, 0};
  size_t tot = make_hdr_opts(p, opts, 4, 4);
  CHECK_EQ(toe_ipv4_parse(&v, p, tot, tot, false), 0);
  p[22] = 0;
  CHECK_EQ(toe_ipv4_parse(&v, p, tot, tot, false), -TOE_EBADMSG);
}

TEST(reserved_flag)
{
  uint8_t p[28] = {0};
  make_hdr(p);
  p[6] |= 0x80;
  ref_fix_csum(p, 20);
  struct toe_ipv4_view v;
  CHECK_EQ(toe_ipv4_parse(&v, p, 28, 28, false), -TOE_EINVAL);
}

TEST(options_valid)
{
  uint8_t p[80] = {0};
  struct toe_ipv4_view v;
  /* NOP, record route (len 7, pointer 4, room for one address), EOL */
  const uint8_t rr[12] = {1, 7, 7, 4, 0, 0, 0, 0, 0, 0, 0, 0};
  size_t tot = make_hdr_opts(p, rr, 12, 8);
  REQUIRE(toe_ipv4_parse(&v, p, tot, tot, false) == 0);
  CHECK_EQ(v.hdr_len, 32);
  CHECK_EQ(v.total_len, 40);
  /* Router alert (RFC 2113), 4 bytes, filling the options exactly. */
  const uint8_t ra[4] = {0x94, 4, 0, 0};
  tot = make_hdr_opts(p, ra, 4, 0);
  CHECK_EQ(toe_ipv4_parse(&v, p, tot, tot, false), 0);
  /* After EOL anything is padding, even bytes that would be a bad option. */
  const uint8_t eol[8] = {0, 0x44, 0, 0xff, 0xff, 0xff, 0xff, 0xff};
  tot = make_hdr_opts(p, eol, 8, 0);
  CHECK_EQ(toe_ipv4_parse(&v, p, tot, tot, false), 0);
  /* Maximum header, 40 bytes of NOPs. */
  uint8_t nops[40];
  memset(nops, 1, sizeof nops);
  tot = make_hdr_opts(p, nops, 40, 0);
  CHECK_EQ(toe_ipv4_parse(&v, p, tot, tot, false), 0);
  CHECK_EQ(v.hdr_len, 60);
}

TEST(options_malformed)
{
  uint8_t p[80] = {0};
  struct toe_ipv4_view v;
  const uint8_t bad[][8] = {
      {0x44, 0, 0, 0, 0, 0, 0, 0},    /* length 0 */
      {0x44, 1, 0, 0, 0, 0, 0, 0},    /* length 1 */
      {0x44, 9, 5, 0, 0, 0, 0, 0},    /* length past the header (9 > 8) */
      {1, 1, 1, 1, 1, 1, 1, 0x83},    /* last byte a type with no room for its length */
      {0x94, 4, 0, 0, 0x07, 0xff, 0}, /* second option too long */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t tot = make_hdr_opts(p, bad[i], 8, 0);
    if (toe_ipv4_parse(&v, p, tot, tot, false) != -TOE_EINVAL)
      testlib_fail(__FILE__, __LINE__, "malformed option case %zu accepted", i);
    if (toe_ipv4_opts_check(bad[i], 8) != -TOE_EINVAL)
      testlib_fail(__FILE__, __LINE__, "opts_check case %zu accepted", i);
  }
  /* The same lengths are fine when they fit. */
  const uint8_t ok[8] = {0x44, 8, 5, 0, 0, 0, 0, 0};
  CHECK_EQ(toe_ipv4_opts_check(ok, 8), 0);
}

TEST(write_round_trip)
{
  struct toe_ipv4_fields f = {.tos = 0xb8,
                              .ttl = 255,
                              .proto = TOE_IPPROTO_TCP,
                              .id = 0xbeef,
                              .total_len = 1500,
                              .frag_off = 1480,
                              .mf = true,
                              .df = false,
                              .src = 0xc6120001u,
                              .dst = 0xc6130203u};
  uint8_t h[24];
  memset(h, 0x5a, sizeof h);
  CHECK_EQ(toe_ipv4_write(h, &f), 20);
  CHECK_EQ(h[20], 0x5a);
  /* The checksum the writer stored equals the reference over the same bytes. */
  uint8_t c[20];
  memcpy(c, h, 20);
  ref_fix_csum(c, 20);
  CHECK_MEM(c, h, 20);
  const uint8_t want[20] = {0x45,  0xb8,  0x05, 0xdc, 0xbe, 0xef, 0x20, 0xb9, 255,  6,
                            h[10], h[11], 0xc6, 0x12, 0x00, 0x01, 0xc6, 0x13, 0x02, 0x03};
  CHECK_MEM(h, want, 20);
  struct toe_ipv4_view v;
  REQUIRE(toe_ipv4_parse(&v, h, 20, 1500, false) == 0);
  CHECK_EQ(v.tos, f.tos);
  CHECK_EQ(v.ttl, f.ttl);
  CHECK_EQ(v.proto, f.proto);
  CHECK_EQ(v.id, f.id);
  CHECK_EQ(v.total_len, f.total_len);
  CHECK_EQ(v.frag_off, f.frag_off);
  CHECK_EQ(v.mf, f.mf);
  CHECK_EQ(v.df, f.df);
  CHECK_EQ(v.src, f.src);
  CHECK_EQ(v.dst, f.dst);
}

TEST(address_classes)
{
  CHECK(toe_ipv4_is_multicast(0xe0000001u));
  CHECK(toe_ipv4_is_multicast(0xefffffffu));
  CHECK(!toe_ipv4_is_multicast(0xdfffffffu));
  CHECK(!toe_ipv4_is_multicast(0xf0000000u));
  CHECK(toe_ipv4_is_loopback(0x7f000001u));
  CHECK(!toe_ipv4_is_loopback(0x80000001u));
  CHECK_EQ(toe_ipv4_mask(0), 0);
  CHECK_EQ(toe_ipv4_mask(1), 0x80000000u);
  CHECK_EQ(toe_ipv4_mask(24), 0xffffff00u);
  CHECK_EQ(toe_ipv4_mask(31), 0xfffffffeu);
  CHECK_EQ(toe_ipv4_mask(32), 0xffffffffu);
  CHECK_EQ(toe_ipv4_mask(33), 0xffffffffu);
  uint32_t our = 0xc6120001u; /* 198.18.0.1 */
  CHECK(toe_ipv4_is_broadcast(0xffffffffu, our, 24));
  CHECK(toe_ipv4_is_broadcast(0xc61200ffu, our, 24));
  CHECK(!toe_ipv4_is_broadcast(0xc61201ffu, our, 24)); /* another network's broadcast */
  CHECK(!toe_ipv4_is_broadcast(0xc61200feu, our, 24));
  CHECK(toe_ipv4_is_broadcast(0xc613ffffu, our, 15));
  CHECK(!toe_ipv4_is_broadcast(0xc6120001u, our, 31)); /* /31 has none (RFC 3021) */
  CHECK(!toe_ipv4_is_broadcast(0xc6120001u, our, 32));
  CHECK(toe_ipv4_is_broadcast(0xffffffffu, our, 32));
  uint8_t b[4];
  toe_ipv4_store(b, 0xc6120203u);
  CHECK_EQ(b[0], 198);
  CHECK_EQ(b[1], 18);
  CHECK_EQ(b[2], 2);
  CHECK_EQ(b[3], 3);
  CHECK_EQ(toe_ipv4_load(b), 0xc6120203u);
}

TEST_MAIN()
