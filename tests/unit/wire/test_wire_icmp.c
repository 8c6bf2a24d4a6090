/*
 * ICMPv4 headers (RFC 792, RFC 1191).
 */
#include "testlib.h"
#include "toe/errno.h"
#include "wire/checksum.h"
#include "wire/icmpv4.h"

#include <stdint.h>
#include <string.h>

TEST(echo_request)
{
  const uint8_t m[12] = {8, 0, 0x06, 0xf6, 0x12, 0x34, 0x00, 0x05, 'p', 'i', 'n', 'g'};
  struct toe_icmp_view v;
  REQUIRE(toe_icmp_parse(&v, m, sizeof m) == 0);
  CHECK_EQ(v.type, TOE_ICMP_ECHO_REQUEST);
  CHECK_EQ(v.code, 0);
  CHECK_EQ(v.id, 0x1234);
  CHECK_EQ(v.seq, 5);
  CHECK_EQ(v.next_mtu, 0);
  CHECK_EQ(v.pointer, 0);
  CHECK(v.body == m + 8);
  CHECK_EQ(v.body_len, 4);
  CHECK(!toe_icmp_is_error(v.type));
  /* Header alone: empty body. */
  REQUIRE(toe_icmp_parse(&v, m, 8) == 0);
  CHECK_EQ(v.body_len, 0);
}

TEST(truncated)
{
  const uint8_t m[8] = {0};
  struct toe_icmp_view v;
  for (size_t n = 0; n < 8; n++)
    CHECK_EQ(toe_icmp_parse(&v, m, n), -TOE_EINVAL);
}

TEST(frag_needed)
{
  /* Dest unreachable, fragmentation needed, next-hop MTU 1400, quoting 28 bytes. */
  uint8_t m[36] = {3, 4, 0, 0, 0, 0, 0x05, 0x78, 0x45};
  struct toe_icmp_view v;
  REQUIRE(toe_icmp_parse(&v, m, sizeof m) == 0);
  CHECK_EQ(v.next_mtu, 1400);
  CHECK_EQ(v.id, 0);
  CHECK_EQ(v.body_len, 28);
  CHECK_EQ(v.body[0], 0x45);
  CHECK(toe_icmp_is_error(v.type));
  /* Port unreachable: same bytes are unused, no MTU reported. */
  m[1] = TOE_ICMP_PORT_UNREACH;
  REQUIRE(toe_icmp_parse(&v, m, sizeof m) == 0);
  CHECK_EQ(v.next_mtu, 0);
}

TEST(param_problem)
{
  const uint8_t m[8] = {12, 0, 0, 0, 9, 0, 0, 0};
  struct toe_icmp_view v;
  REQUIRE(toe_icmp_parse(&v, m, sizeof m) == 0);
  CHECK_EQ(v.pointer, 9);
  CHECK(toe_icmp_is_error(TOE_ICMP_PARAM_PROBLEM));
}

TEST(error_types)
{
  int n = 0;
  for (int t = 0; t < 256; t++)
    n += toe_icmp_is_error((uint8_t)t) ? 1 : 0;
  CHECK_EQ(n, 5);
  CHECK(toe_icmp_is_error(3));
  CHECK(toe_icmp_is_error(4));
  CHECK(toe_icmp_is_error(5));
  CHECK(toe_icmp_is_error(11));
  CHECK(toe_icmp_is_error(12));
}

TEST(write_hdr_and_checksum)
{
  uint8_t m[12];
  memset(m, 0xcc, sizeof m);
  toe_icmp_write_hdr(m, TOE_ICMP_ECHO_REPLY, 0, 0x12340005u);
  const uint8_t want[8] = {0, 0, 0, 0, 0x12, 0x34, 0x00, 0x05};
  CHECK_MEM(m, want, 8);
  CHECK_EQ(m[8], 0xcc);
  memcpy(m + 8, "ping", 4);
  uint16_t c = toe_csum(m, sizeof m);
  memcpy(m + 2, &c, 2);
  CHECK_EQ(toe_csum(m, sizeof m), 0);
  /* By hand: words 0000 0000 1234 0005 7069 6e67 sum to f109, so the checksum is 0ef6 (the echo
   * request with type 8 sums to f909, checksum 06f6). */
  CHECK_EQ(m[2], 0x0e);
  CHECK_EQ(m[3], 0xf6);
  struct toe_icmp_view v;
  REQUIRE(toe_icmp_parse(&v, m, sizeof m) == 0);
  CHECK_EQ(v.type, TOE_ICMP_ECHO_REPLY);
  CHECK_EQ(v.id, 0x1234);
  CHECK_EQ(v.seq, 5);
  CHECK_MEM(v.body, "ping", 4);
}

TEST_MAIN()
