/*
 * The observers' frame view (wire/frame.h): hand-built frames through Ethernet, one 802.1Q tag,
 * ARP, IPv4 and IPv6 with extension headers down to the transport ports, and TCP/UDP checksums
 * computed in place, checked against a byte-at-a-time RFC 1071 reference.
 */
#include "testlib.h"
#include "toe/errno.h"
#include "wire/frame.h"

#include <stdint.h>
#include <string.h>

/* Ethernet header (optionally tagged) at f; returns its length. */
static size_t eth(uint8_t *f, uint16_t type, bool tagged)
{
  memset(f, 0, 12);
  f[0] = 0x02; /* locally administered unicast */
  f[6] = 0x02;
  f[11] = 1;
  size_t o = 12;
  if (tagged) {
    f[o++] = 0x81;
    f[o++] = 0x00;
    f[o++] = 0x00;
    f[o++] = 0x05; /* VID 5 */
  }
  f[o++] = (uint8_t)(type >> 8);
  f[o++] = (uint8_t)type;
  return o;
}

static void put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

/* 20-byte IPv4 header 198.18.0.1 -> 198.18.0.2 (header checksum left 0: the view does not judge
 * it), total length tot, fragment field frag. */
static void ipv4(uint8_t *p, uint8_t proto, uint16_t tot, uint16_t frag)
{
  memset(p, 0, 20);
  p[0] = 0x45;
  put16(p + 2, tot);
  put16(p + 6, frag);
  p[8] = 64;
  p[9] = proto;
  const uint8_t a[8] = {198, 18, 0, 1, 198, 18, 0, 2};
  memcpy(p + 12, a, 8);
}

/* 40-byte IPv6 header 2001:db8::1 -> 2001:db8::2. */
static void ipv6(uint8_t *p, uint8_t nh, uint16_t plen)
{
  memset(p, 0, 40);
  p[0] = 0x60;
  put16(p + 4, plen);
  p[6] = nh;
  p[7] = 64;
  p[8] = 0x20, p[9] = 0x01, p[10] = 0x0d, p[11] = 0xb8, p[23] = 1;
  p[24] = 0x20, p[25] = 0x01, p[26] = 0x0d, p[27] = 0xb8, p[39] = 2;
}

/* RFC 1071 by the definition: big-endian 16-bit words, an odd byte padded with zero. */
static uint32_t ref_add(uint32_t s, const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    s += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
  return s;
}

static uint16_t ref_fold(uint32_t s)
{
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

/* True if the segment at seg (len bytes) verifies with its IPv4 or IPv6 pseudo-header. */
static bool csum_verifies(const uint8_t *l3, bool v6, const uint8_t *seg, size_t len, uint8_t proto)
{
  uint32_t s = v6 ? ref_add(0, l3 + 8, 32) : ref_add(0, l3 + 12, 8);
  s += proto + (uint32_t)(len >> 16) + (uint32_t)(len & 0xffff);
  s = ref_add(s, seg, len);
  return ref_fold(s) == 0xffff;
}

TEST(ipv4_tcp_ports_and_checksum)
{
  uint8_t f[128] = {0};
  size_t o = eth(f, TOE_ETHERTYPE_IPV4, false);
  ipv4(f + o, TOE_IPPROTO_TCP, 20 + 20 + 5, 0);
  uint8_t *t = f + o + 20;
  put16(t, 40000);
  put16(t + 2, 7);
  t[12] = 5 << 4;
  t[13] = 0x18;
  memcpy(t + 20, "hello", 5);
  size_t len = o + 45 + 6; /* 6 bytes of Ethernet padding after the packet */
  struct toe_frame_view v;
  REQUIRE(toe_frame_parse(&v, f, len, len) == 0);
  CHECK_EQ(v.ipver, 4);
  CHECK_EQ(v.l3_off, 14);
  CHECK_EQ(v.ip_end, 14 + 45);
  CHECK_EQ(v.l4_proto, TOE_IPPROTO_TCP);
  CHECK_EQ(v.l4_off, 34);
  CHECK(!v.fragment);
  CHECK(v.ports);
  CHECK_EQ(v.sport, 40000);
  CHECK_EQ(v.dport, 7);
  CHECK_EQ(v.v4.src, 0xc6120001u);
  REQUIRE(toe_frame_l4_csum(f, &v) == 0);
  CHECK(csum_verifies(f + o, false, t, 25, TOE_IPPROTO_TCP));
  /* The padding is no part of the segment: changing it keeps the checksum right. */
  f[len - 1] = 0xaa;
  CHECK(csum_verifies(f + o, false, t, 25, TOE_IPPROTO_TCP));
}

TEST(tagged_udp_zero_checksum_sent_as_ffff)
{
  uint8_t f[128] = {0};
  size_t o = eth(f, TOE_ETHERTYPE_IPV4, true);
  CHECK_EQ(o, 18);
  ipv4(f + o, TOE_IPPROTO_UDP, 20 + 8 + 2, 0);
  uint8_t *u = f + o + 20;
  put16(u, 53);
  put16(u + 2, 53);
  put16(u + 4, 10);
  /* Payload chosen so that the sum of pseudo-header, header and data folds to 0xffff, whose
   * complement 0 must go out as 0xffff (RFC 768). */
  uint32_t s = ref_add(0, f + o + 12, 8) + TOE_IPPROTO_UDP + 10;
  s = ref_add(s, u, 8);
  uint16_t need = (uint16_t)(0xffff - ref_fold(s));
  put16(u + 8, need);
  size_t len = o + 30;
  struct toe_frame_view v;
  REQUIRE(toe_frame_parse(&v, f, len, len) == 0);
  CHECK(v.eth.tagged);
  CHECK_EQ(v.l4_off, 38);
  CHECK(v.ports);
  REQUIRE(toe_frame_l4_csum(f, &v) == 0);
  CHECK_EQ(u[6], 0xff);
  CHECK_EQ(u[7], 0xff);
  CHECK(csum_verifies(f + o, false, u, 10, TOE_IPPROTO_UDP));
}

TEST(ipv4_fragments)
{
  uint8_t f[128] = {0};
  size_t o = eth(f, TOE_ETHERTYPE_IPV4, false);
  /* First fragment (MF, offset 0): ports readable, checksum not ours to compute. */
  ipv4(f + o, TOE_IPPROTO_UDP, 20 + 16, 0x2000);
  put16(f + o + 20, 1000);
  put16(f + o + 22, 2000);
  struct toe_frame_view v;
  REQUIRE(toe_frame_parse(&v, f, o + 36, o + 36) == 0);
  CHECK(v.fragment);
  CHECK(v.ports);
  CHECK_EQ(v.dport, 2000);
  CHECK_EQ(toe_frame_l4_csum(f, &v), -TOE_EINVAL);
  /* A later fragment (offset 8 bytes): no transport header in it. */
  put16(f + o + 6, 1);
  REQUIRE(toe_frame_parse(&v, f, o + 36, o + 36) == 0);
  CHECK(v.fragment);
  CHECK_EQ(v.l4_off, 0);
  CHECK(!v.ports);
}

TEST(ipv6_extension_headers)
{
  uint8_t f[160] = {0};
  size_t o = eth(f, TOE_ETHERTYPE_IPV6, false);
  /* Hop-by-hop options (8 bytes of PadN) then TCP. */
  ipv6(f + o, TOE_IPPROTO_HOPOPTS, 8 + 20);
  uint8_t *h = f + o + 40;
  h[0] = TOE_IPPROTO_TCP;
  h[1] = 0;
  h[2] = 1; /* PadN */
  h[3] = 4;
  uint8_t *t = h + 8;
  put16(t, 443);
  put16(t + 2, 50000);
  t[12] = 5 << 4;
  size_t len = o + 40 + 28;
  struct toe_frame_view v;
  REQUIRE(toe_frame_parse(&v, f, len, len) == 0);
  CHECK_EQ(v.ipver, 6);
  CHECK_EQ(v.l4_proto, TOE_IPPROTO_TCP);
  CHECK_EQ(v.l4_off, o + 48);
  CHECK_EQ(v.sport, 443);
  REQUIRE(toe_frame_l4_csum(f, &v) == 0);
  CHECK(csum_verifies(f + o, true, t, 20, TOE_IPPROTO_TCP));

  /* A routing header with segments left: the pseudo-header's destination would be another
   * address, and a host refuses it (RFC 8200 4.4): no transport header described. */
  ipv6(f + o, TOE_IPPROTO_ROUTING, 8 + 20);
  h[0] = TOE_IPPROTO_TCP;
  h[1] = 0;
  h[2] = 4; /* routing type */
  h[3] = 1; /* segments left */
  REQUIRE(toe_frame_parse(&v, f, len, len) == 0);
  CHECK_EQ(v.ipver, 6);
  CHECK_EQ(v.l4_off, 0);
  CHECK_EQ(toe_frame_l4_csum(f, &v), -TOE_EINVAL);

  /* First fragment of a fragmented UDP datagram: ports, but no checksum. */
  ipv6(f + o, TOE_IPPROTO_FRAGMENT, 8 + 16);
  memset(h, 0, 8);
  h[0] = TOE_IPPROTO_UDP;
  h[3] = 1; /* offset 0, M set */
  h[7] = 9; /* identification */
  put16(h + 8, 5000);
  put16(h + 10, 6000);
  len = o + 40 + 24;
  REQUIRE(toe_frame_parse(&v, f, len, len) == 0);
  CHECK(v.fragment);
  CHECK_EQ(v.l4_proto, TOE_IPPROTO_UDP);
  CHECK(v.ports);
  CHECK_EQ(v.dport, 6000);
  CHECK_EQ(toe_frame_l4_csum(f, &v), -TOE_EINVAL);
}

TEST(arp_and_refusals)
{
  uint8_t f[64] = {0};
  size_t o = eth(f, TOE_ETHERTYPE_ARP, false);
  const uint8_t arp[28] = {0,   1,  8, 0, 6, 4, 0, 1, 2, 0, 0,   0,  0, 1,
                           198, 18, 0, 1, 0, 0, 0, 0, 0, 0, 198, 18, 0, 2};
  memcpy(f + o, arp, 28);
  struct toe_frame_view v;
  REQUIRE(toe_frame_parse(&v, f, o + 28, o + 28) == 0);
  CHECK(v.arp);
  CHECK_EQ(v.arp_view.spa, 0xc6120001u);
  CHECK_EQ(v.arp_view.tpa, 0xc6120002u);
  CHECK_EQ(v.ipver, 0);
  /* A runt, and stacked tags (QinQ), have no view. */
  CHECK_EQ(toe_frame_parse(&v, f, 13, 13), -TOE_EINVAL);
  f[12] = 0x88;
  f[13] = 0xa8;
  CHECK_EQ(toe_frame_parse(&v, f, 40, 40), -TOE_EINVAL);
  CHECK_EQ(v.l4_off, 0);
}

TEST(headers_only_give_the_view_of_the_whole)
{
  uint8_t f[1514] = {0};
  size_t o = eth(f, TOE_ETHERTYPE_IPV4, false);
  ipv4(f + o, TOE_IPPROTO_TCP, 1500, 0);
  put16(f + o + 20, 22);
  put16(f + o + 22, 60000);
  f[o + 32] = 5 << 4;
  struct toe_frame_view whole, head;
  REQUIRE(toe_frame_parse(&whole, f, sizeof f, sizeof f) == 0);
  REQUIRE(toe_frame_parse(&head, f, 64, TOE_FRAME_LEN_UNKNOWN) == 0);
  CHECK_EQ(head.ipver, 4);
  CHECK_EQ(head.ip_end, whole.ip_end);
  CHECK(head.ports);
  CHECK_EQ(head.dport, 60000);
  /* Not all of the segment is at hand: no checksum from the first bytes. */
  CHECK_EQ(toe_frame_l4_csum(f, &head), -TOE_EINVAL);
  /* A known wire length the IP packet does not fit: not an IP packet. */
  REQUIRE(toe_frame_parse(&head, f, 64, 64) == 0);
  CHECK_EQ(head.ipver, 0);
  CHECK(!head.ports);
}

TEST_MAIN()
