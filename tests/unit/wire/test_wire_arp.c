/*
 * ARP packets (RFC 826).
 */
#include "testlib.h"
#include "toe/errno.h"
#include "wire/arp.h"

#include <stdint.h>
#include <string.h>

static const uint8_t MAC_A[6] = {0x02, 0, 0, 0, 0, 0x02};
static const uint8_t MAC_B[6] = {0x02, 0, 0, 0, 0, 0x01};

/* who-has 198.18.0.1 tell 198.18.0.2, padded to the 46-byte Ethernet minimum payload */
static const uint8_t REQ[46] = {0x00, 0x01, 0x08, 0x00, 6,    4,    0x00, 0x01, 0x02, 0,
                                0,    0,    0,    0x02, 0xc6, 0x12, 0x00, 0x02, 0,    0,
                                0,    0,    0,    0,    0xc6, 0x12, 0x00, 0x01};

TEST(parse_request)
{
  struct toe_arp_view v;
  REQUIRE(toe_arp_parse(&v, REQ, 28) == 0);
  CHECK_EQ(v.op, TOE_ARP_OP_REQUEST);
  CHECK_MEM(v.sha, MAC_A, 6);
  CHECK_EQ(v.spa, 0xc6120002u);
  CHECK_EQ(v.tpa, 0xc6120001u);
  CHECK(v.sha == REQ + 8);
  CHECK(v.tha == REQ + 18);
  /* Trailing Ethernet padding is allowed. */
  CHECK_EQ(toe_arp_parse(&v, REQ, sizeof REQ), 0);
}

TEST(truncated)
{
  struct toe_arp_view v;
  for (size_t n = 0; n < 28; n++)
    CHECK_EQ(toe_arp_parse(&v, REQ, n), -TOE_EINVAL);
}

TEST(wrong_types_and_lengths)
{
  struct toe_arp_view v;
  /* byte offset, bad value */
  const struct {
    size_t off;
    uint8_t val;
  } bad[] = {
      {1, 6},    /* htype 6 (IEEE 802) */
      {0, 1},    /* htype 0x0101 */
      {2, 0x86}, /* ptype 0x8600 */
      {3, 0xdd}, /* ptype 0x08dd */
      {4, 8},    /* hlen 8 */
      {5, 16},   /* plen 16 */
      {7, 0},    /* op 0 */
      {7, 3},    /* op 3 (RARP request) */
      {6, 1},    /* op 0x0101 */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t p[28];
    memcpy(p, REQ, 28);
    p[bad[i].off] = bad[i].val;
    if (toe_arp_parse(&v, p, 28) != -TOE_EINVAL)
      testlib_fail(__FILE__, __LINE__, "case %zu accepted", i);
  }
}

TEST(write_round_trip)
{
  uint8_t p[30];
  memset(p, 0xee, sizeof p);
  CHECK_EQ(
      toe_arp_write(p, TOE_ARP_OP_REQUEST, MAC_A, 0xc6120002u, (const uint8_t[6]){0}, 0xc6120001u),
      28);
  CHECK_MEM(p, REQ, 28);
  CHECK_EQ(p[28], 0xee);
  struct toe_arp_view v;
  REQUIRE(toe_arp_write(p, TOE_ARP_OP_REPLY, MAC_B, 0xc6120001u, MAC_A, 0xc6120002u) == 28);
  REQUIRE(toe_arp_parse(&v, p, 28) == 0);
  CHECK_EQ(v.op, TOE_ARP_OP_REPLY);
  CHECK_MEM(v.sha, MAC_B, 6);
  CHECK_MEM(v.tha, MAC_A, 6);
  CHECK_EQ(v.spa, 0xc6120001u);
  CHECK_EQ(v.tpa, 0xc6120002u);
}

TEST(reply_in_place)
{
  /* Turning a request into a reply in its own buffer: tha comes from the old sha. */
  uint8_t p[28];
  memcpy(p, REQ, 28);
  struct toe_arp_view v;
  REQUIRE(toe_arp_parse(&v, p, 28) == 0);
  toe_arp_write(p, TOE_ARP_OP_REPLY, MAC_B, v.tpa, v.sha, v.spa);
  REQUIRE(toe_arp_parse(&v, p, 28) == 0);
  CHECK_EQ(v.op, TOE_ARP_OP_REPLY);
  CHECK_MEM(v.sha, MAC_B, 6);
  CHECK_MEM(v.tha, MAC_A, 6);
  CHECK_EQ(v.spa, 0xc6120001u);
  CHECK_EQ(v.tpa, 0xc6120002u);
}

TEST_MAIN()
