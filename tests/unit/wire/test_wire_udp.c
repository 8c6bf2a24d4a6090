/*
 * UDP headers and checksums (RFC 768).
 */
#include "testlib.h"
#include "toe/errno.h"
#include "wire/checksum.h"
#include "wire/udp.h"

#include <stdint.h>
#include <string.h>

#define SRC 0xc6120002u
#define DST 0xc6120001u

/* Reference UDP checksum with a byte loop over pseudo-header and datagram, big-endian result. */
static uint16_t ref_udp_csum(const uint8_t *d, size_t len, uint32_t src, uint32_t dst)
{
  uint32_t s = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 17 + (uint32_t)len;
  for (size_t i = 0; i < len; i++)
    s += (i & 1) ? d[i] : (uint32_t)d[i] << 8;
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  s = ~s & 0xffff;
  return (uint16_t)(s ? s : 0xffff);
}

/* 5353 -> 7, 5 bytes "hello", checksum filled by the reference. */
static size_t make_dgram(uint8_t *d)
{
  const uint8_t h[13] = {0x14, 0xe9, 0x00, 0x07, 0x00, 13, 0, 0, 'h', 'e', 'l', 'l', 'o'};
  memcpy(d, h, 13);
  uint16_t c = ref_udp_csum(d, 13, SRC, DST);
  d[6] = (uint8_t)(c >> 8);
  d[7] = (uint8_t)c;
  return 13;
}

TEST(parse_valid)
{
  uint8_t d[32] = {0};
  size_t n = make_dgram(d);
  struct toe_udp_view v;
  REQUIRE(toe_udp_parse(&v, d, n, n) == 0);
  CHECK_EQ(v.src_port, 5353);
  CHECK_EQ(v.dst_port, 7);
  CHECK_EQ(v.len, 13);
  uint8_t c[2];
  memcpy(c, &v.csum, 2);
  CHECK_EQ(c[0], d[6]);
  CHECK_EQ(c[1], d[7]);
  /* IP payload longer than the UDP length (padding): accepted, length field wins. */
  CHECK_EQ(toe_udp_parse(&v, d, 8, 20), 0);
  CHECK_EQ(v.len, 13);
}

TEST(truncated_and_lying)
{
  uint8_t d[32] = {0};
  size_t n = make_dgram(d);
  struct toe_udp_view v;
  for (size_t a = 0; a < 8; a++)
    CHECK_EQ(toe_udp_parse(&v, d, a, n), -TOE_EINVAL);
  /* Length field larger than the datagram. */
  CHECK_EQ(toe_udp_parse(&v, d, 8, 12), -TOE_EINVAL);
  d[5] = 0xff;
  CHECK_EQ(toe_udp_parse(&v, d, n, n), -TOE_EINVAL);
  /* Length field below the header size. */
  for (uint8_t l = 0; l < 8; l++) {
    d[4] = 0;
    d[5] = l;
    CHECK_EQ(toe_udp_parse(&v, d, n, n), -TOE_EINVAL);
  }
  /* Exactly a header. */
  d[5] = 8;
  CHECK_EQ(toe_udp_parse(&v, d, 8, 8), 0);
}

TEST(checksum_verify)
{
  uint8_t d[32] = {0};
  size_t n = make_dgram(d);
  struct toe_udp_view v;
  REQUIRE(toe_udp_parse(&v, d, n, n) == 0);
  CHECK(toe_udp_csum_ok(&v, toe_csum_partial(d, n, 0), SRC, DST));
  /* Wrong pseudo-header (address), wrong data. */
  CHECK(!toe_udp_csum_ok(&v, toe_csum_partial(d, n, 0), SRC + 1, DST));
  d[9] ^= 0x20;
  CHECK(!toe_udp_csum_ok(&v, toe_csum_partial(d, n, 0), SRC, DST));
  /* Zero checksum field: not computed by the sender, accepted whatever the data. */
  d[6] = d[7] = 0;
  REQUIRE(toe_udp_parse(&v, d, n, n) == 0);
  CHECK(toe_udp_csum_ok(&v, toe_csum_partial(d, n, 0), SRC, DST));
}

TEST(checksum_finish)
{
  uint8_t d[32] = {0};
  size_t n = make_dgram(d);
  uint8_t w[32];
  toe_udp_write(w, 5353, 7, 13);
  memcpy(w + 8, "hello", 5);
  uint16_t c = toe_udp_csum_finish(toe_csum_partial(w, 13, 0), SRC, DST, 13);
  memcpy(w + 6, &c, 2);
  CHECK_MEM(w, d, n);
}

TEST(checksum_zero_sent_as_ffff)
{
  /* Choose a payload word that makes the computed checksum zero: setting it to the checksum
   * computed with the word at zero brings the sum to 0xffff. */
  uint8_t w[12];
  toe_udp_write(w, 1000, 2000, 12);
  memset(w + 8, 0, 4);
  uint16_t c0 = toe_udp_csum_finish(toe_csum_partial(w, 12, 0), SRC, DST, 12);
  memcpy(w + 8, &c0, 2);
  CHECK_EQ(ref_udp_csum(w, 12, SRC, DST), 0xffff); /* the reference agrees it computes to 0 */
  uint16_t c = toe_udp_csum_finish(toe_csum_partial(w, 12, 0), SRC, DST, 12);
  CHECK_EQ(c, 0xffff);
  memcpy(w + 6, &c, 2);
  struct toe_udp_view v;
  REQUIRE(toe_udp_parse(&v, w, 12, 12) == 0);
  CHECK(v.csum != 0);
  CHECK(toe_udp_csum_ok(&v, toe_csum_partial(w, 12, 0), SRC, DST));
}

TEST(write)
{
  uint8_t w[10];
  memset(w, 0x77, sizeof w);
  toe_udp_write(w, 0xabcd, 0x0102, 0x0304);
  const uint8_t want[8] = {0xab, 0xcd, 0x01, 0x02, 0x03, 0x04, 0, 0};
  CHECK_MEM(w, want, 8);
  CHECK_EQ(w[8], 0x77);
}

TEST_MAIN()
