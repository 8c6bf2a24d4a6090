/*
 * Ethernet II framing and 802.1Q tags.
 */
#include "testlib.h"
#include "toe/errno.h"
#include "wire/ethernet.h"

#include <stdint.h>
#include <string.h>

static const uint8_t DST[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
static const uint8_t SRC[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

TEST(untagged)
{
  uint8_t f[60] = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00, 0x45};
  struct toe_eth_view v;
  REQUIRE(toe_eth_parse(&v, f, sizeof f) == 0);
  CHECK_EQ(v.hdr_len, 14);
  CHECK_EQ(v.ethertype, TOE_ETHERTYPE_IPV4);
  CHECK(!v.tagged);
  CHECK_EQ(v.tci, 0);
  CHECK(v.frame == f);
  CHECK_MEM(toe_eth_dst(&v), DST, 6);
  CHECK_MEM(toe_eth_src(&v), SRC, 6);
  /* Exactly a header, no payload, is fine too. */
  CHECK_EQ(toe_eth_parse(&v, f, 14), 0);
}

TEST(vlan_tagged)
{
  /* PCP 5, DEI 1, VID 0x123 -> TCI 0xb123; inner type ARP. */
  uint8_t f[64] = {0x02, 0, 0,    0,    0,    0x01, 0x02, 0,    0,
                   0,    0, 0x02, 0x81, 0x00, 0xb1, 0x23, 0x08, 0x06};
  struct toe_eth_view v;
  REQUIRE(toe_eth_parse(&v, f, sizeof f) == 0);
  CHECK(v.tagged);
  CHECK_EQ(v.hdr_len, 18);
  CHECK_EQ(v.ethertype, TOE_ETHERTYPE_ARP);
  CHECK_EQ(v.tci, 0xb123);
  CHECK_EQ(toe_eth_vid(&v), 0x123);
  CHECK_EQ(toe_eth_parse(&v, f, 18), 0);
}

TEST(truncated)
{
  uint8_t f[18] = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x00};
  struct toe_eth_view v;
  for (size_t n = 0; n < 14; n++)
    CHECK_EQ(toe_eth_parse(&v, f, n), -TOE_EINVAL);
  /* A tag announced but not all there. */
  f[12] = 0x81;
  f[13] = 0x00;
  f[16] = 0x08;
  for (size_t n = 14; n < 18; n++)
    CHECK_EQ(toe_eth_parse(&v, f, n), -TOE_EINVAL);
  CHECK_EQ(toe_eth_parse(&v, f, 18), 0);
}

TEST(stacked_tags_rejected)
{
  uint8_t f[64] = {0x02, 0, 0,    0,    0,    0x01, 0x02, 0,    0,
                   0,    0, 0x02, 0x81, 0x00, 0x00, 0x05, 0x81, 0x00};
  struct toe_eth_view v;
  CHECK_EQ(toe_eth_parse(&v, f, sizeof f), -TOE_EINVAL);
  f[16] = 0x88;
  f[17] = 0xa8;
  CHECK_EQ(toe_eth_parse(&v, f, sizeof f), -TOE_EINVAL);
  /* 802.1ad S-tag outside. */
  f[12] = 0x88;
  f[13] = 0xa8;
  f[16] = 0x08;
  f[17] = 0x00;
  CHECK_EQ(toe_eth_parse(&v, f, sizeof f), -TOE_EINVAL);
}

TEST(length_field_reported_as_is)
{
  /* 802.3 frame: type/length 0x002e is a length; the parser reports it, callers drop it. */
  uint8_t f[60] = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x00, 0x2e};
  struct toe_eth_view v;
  REQUIRE(toe_eth_parse(&v, f, sizeof f) == 0);
  CHECK_EQ(v.ethertype, 0x002e);
  CHECK(v.ethertype < 0x0600);
}

TEST(mac_classes)
{
  const uint8_t bc[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const uint8_t mc[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
  const uint8_t almost[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xfe};
  const uint8_t zero[6] = {0};
  const uint8_t nz[6] = {0, 0, 0, 0, 0, 1};
  CHECK(toe_mac_is_broadcast(bc));
  CHECK(!toe_mac_is_broadcast(almost));
  CHECK(!toe_mac_is_broadcast(mc));
  CHECK(toe_mac_is_multicast(bc));
  CHECK(toe_mac_is_multicast(mc));
  CHECK(toe_mac_is_multicast(almost));
  CHECK(!toe_mac_is_multicast(DST));
  CHECK(toe_mac_is_zero(zero));
  CHECK(!toe_mac_is_zero(nz));
  CHECK(!toe_mac_is_zero(DST));
}

TEST(write_round_trip)
{
  uint8_t h[18];
  struct toe_eth_view v;
  memset(h, 0xaa, sizeof h);
  CHECK_EQ(toe_eth_write(h, DST, SRC, TOE_ETHERTYPE_ARP, false, 0), 14);
  const uint8_t want[14] = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x06};
  CHECK_MEM(h, want, 14);
  CHECK_EQ(h[14], 0xaa); /* nothing written past the header */
  REQUIRE(toe_eth_parse(&v, h, 14) == 0);
  CHECK_EQ(v.ethertype, TOE_ETHERTYPE_ARP);

  CHECK_EQ(toe_eth_write(h, DST, SRC, TOE_ETHERTYPE_IPV4, true, 0x2fff), 18);
  const uint8_t want_t[18] = {0x02, 0, 0,    0,    0,    0x01, 0x02, 0,    0,
                              0,    0, 0x02, 0x81, 0x00, 0x2f, 0xff, 0x08, 0x00};
  CHECK_MEM(h, want_t, 18);
  REQUIRE(toe_eth_parse(&v, h, 18) == 0);
  CHECK(v.tagged);
  CHECK_EQ(v.tci, 0x2fff);
  CHECK_EQ(toe_eth_vid(&v), 0xfff);
  CHECK_EQ(v.ethertype, TOE_ETHERTYPE_IPV4);
}

TEST(write_in_place_turnaround)
{
  /* Replying in place: the new destination is the old source, read from the same buffer. */
  uint8_t h[14] = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x06};
  toe_eth_write(h, h + 6, h, TOE_ETHERTYPE_ARP, false, 0);
  CHECK_MEM(h, SRC, 6);
  CHECK_MEM(h + 6, DST, 6);
}

TEST_MAIN()
