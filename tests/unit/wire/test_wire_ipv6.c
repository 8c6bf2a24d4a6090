/*
 * IPv6 header, extension-header walk, pseudo-header checksum, flow label and addresses, against
 * hand-built packets and packets built by scapy (ipv6_vectors.h, gen_ipv6_vectors.py).
 */
#include "ipv6_vectors.h"
#include "testlib.h"
#include "toe/errno.h"
#include "wire/checksum.h"
#include "wire/ipv6.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct toe_in6_addr addr_at(const uint8_t *p)
{
  struct toe_in6_addr a;
  memcpy(a.b, p, 16);
  return a;
}

static const uint8_t A[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
static const uint8_t B[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

/* Writes a 40-byte header A -> dst with next header `nh` and payload length `plen`. */
static void hdr(uint8_t *p, uint8_t nh, uint16_t plen, const uint8_t *dst)
{
  struct toe_ipv6_fields f = {.payload_len = plen, .next_hdr = nh, .hop_limit = 64};
  memcpy(f.src.b, A, 16);
  memcpy(f.dst.b, dst ? dst : B, 16);
  toe_ipv6_write(p, &f);
}

/* Parses and walks `len` bytes at p (all contiguous). */
static int walk(struct toe_ipv6_ext *r, const uint8_t *p, size_t len)
{
  struct toe_ipv6_view v;
  int e = toe_ipv6_parse(&v, p, len, len);
  if (e)
    return 1000 + e; /* a parse failure is never what a walk test expects */
  return toe_ipv6_ext_walk(r, &v, p, len);
}

/* The sum of an upper-layer packet with its pseudo-header: 0 when the checksum is right. */
static uint16_t upper_csum(const uint8_t *pkt, size_t off, size_t len, uint8_t proto)
{
  struct toe_in6_addr s = addr_at(pkt + 8), d = addr_at(pkt + 24);
  uint32_t sum = toe_ipv6_pseudo_csum(&s, &d, (uint32_t)len, proto);
  return toe_csum_fold(toe_csum_add32(sum, toe_csum_partial(pkt + off, len, 0)));
}

TEST(parse_scapy_udp)
{
  struct toe_ipv6_view v;
  REQUIRE(toe_ipv6_parse(&v, v_udp6, sizeof v_udp6, sizeof v_udp6) == 0);
  CHECK(v.hdr == v_udp6);
  CHECK_EQ(v.payload_len, 24);
  CHECK_EQ(v.tclass, 0xb8);
  CHECK_EQ(v.flow, 0x12345);
  CHECK_EQ(toe_ipv6_flow_get(v_udp6), 0x12345);
  CHECK_EQ(v.next_hdr, 17);
  CHECK_EQ(v.hop_limit, 64);
  CHECK_MEM(v.src.b, A, 16);
  CHECK_MEM(v.dst.b, B, 16);
  /* scapy's UDP checksum verifies through our pseudo-header; one changed bit breaks it. */
  CHECK_EQ(upper_csum(v_udp6, 40, 24, 17), 0);
  CHECK(upper_csum(v_udp6, 40, 24, 6) != 0);
  struct toe_ipv6_ext r;
  REQUIRE(toe_ipv6_ext_walk(&r, &v, v_udp6, sizeof v_udp6) == 0);
  CHECK_EQ(r.proto, 17);
  CHECK_EQ(r.offset, 40);
  CHECK_EQ(r.nh_off, 6);
  CHECK_EQ(r.n_hdrs, 0);
  CHECK(!r.has_frag);
  /* Re-emitting the fields gives scapy's header byte for byte. */
  struct toe_ipv6_fields f = {.tclass = v.tclass,
                              .flow = v.flow,
                              .payload_len = v.payload_len,
                              .next_hdr = v.next_hdr,
                              .hop_limit = v.hop_limit,
                              .src = v.src,
                              .dst = v.dst};
  uint8_t h[40];
  CHECK_EQ(toe_ipv6_write(h, &f), 40);
  CHECK_MEM(h, v_udp6, 40);
}

TEST(pseudo_header_tcp)
{
  struct toe_ipv6_view v;
  REQUIRE(toe_ipv6_parse(&v, v_tcp6_syn, sizeof v_tcp6_syn, sizeof v_tcp6_syn) == 0);
  CHECK_EQ(v.next_hdr, 6);
  CHECK_EQ(upper_csum(v_tcp6_syn, 40, 20, 6), 0);
  /* Recompute into a copy with the field zeroed: the same value scapy stored. */
  uint8_t p[sizeof v_tcp6_syn];
  memcpy(p, v_tcp6_syn, sizeof p);
  p[56] = p[57] = 0;
  struct toe_in6_addr s = addr_at(p + 8), d = addr_at(p + 24);
  uint16_t c = toe_csum_fold(
      toe_csum_add32(toe_ipv6_pseudo_csum(&s, &d, 20, 6), toe_csum_partial(p + 40, 20, 0)));
  memcpy(p + 56, &c, 2);
  CHECK_MEM(p, v_tcp6_syn, sizeof p);
}

TEST(parse_rejects)
{
  uint8_t p[80];
  struct toe_ipv6_view v;
  hdr(p, 17, 8, NULL);
  for (size_t n = 0; n < 40; n++)
    CHECK_EQ(toe_ipv6_parse(&v, p, n, n), -TOE_EINVAL);
  CHECK_EQ(toe_ipv6_parse(&v, p, 48, 48), 0);
  /* Payload Length past the packet; avail beyond pkt_len is not believed. */
  CHECK_EQ(toe_ipv6_parse(&v, p, 47, 47), -TOE_EINVAL);
  CHECK_EQ(toe_ipv6_parse(&v, p, 80, 47), -TOE_EINVAL);
  /* Link padding after the packet is fine; only the header needs to be contiguous. */
  CHECK_EQ(toe_ipv6_parse(&v, p, 40, 80), 0);
  CHECK_EQ(v.payload_len, 8);
  /* Version 4 or 7. */
  p[0] = 0x40;
  CHECK_EQ(toe_ipv6_parse(&v, p, 48, 48), -TOE_EINVAL);
  p[0] = 0x70;
  CHECK_EQ(toe_ipv6_parse(&v, p, 48, 48), -TOE_EINVAL);
  /* A multicast source (RFC 4291 2.7). */
  hdr(p, 17, 8, NULL);
  p[8] = 0xff;
  CHECK_EQ(toe_ipv6_parse(&v, p, 48, 48), -TOE_EINVAL);
  /* Hop limit 0 is a host's to accept (RFC 8200 3). */
  hdr(p, 17, 8, NULL);
  p[7] = 0;
  CHECK_EQ(toe_ipv6_parse(&v, p, 48, 48), 0);
  CHECK_EQ(v.hop_limit, 0);
}

TEST(flow_label)
{
  uint8_t p[40];
  memcpy(p, v_udp6, 40);
  toe_ipv6_flow_set(p, 0xfffff);
  CHECK_EQ(toe_ipv6_flow_get(p), 0xfffff);
  CHECK_EQ(p[0], 0x6b); /* version and traffic class untouched */
  CHECK_EQ(p[1] & 0xf0, 0x80);
  toe_ipv6_flow_set(p, 0x123456); /* only 20 bits are a label */
  CHECK_EQ(toe_ipv6_flow_get(p), 0x23456);
  CHECK_MEM(p + 4, v_udp6 + 4, 36);

  struct toe_in6_addr a = addr_at(A), b = addr_at(B);
  uint32_t h1 = toe_ipv6_flow_hash(&a, &b, 6, 1000, 80, 42);
  CHECK_EQ(h1, toe_ipv6_flow_hash(&a, &b, 6, 1000, 80, 42)); /* one flow, one label */
  CHECK(h1 != 0 && h1 <= 0xfffff);
  CHECK(h1 != toe_ipv6_flow_hash(&a, &b, 6, 1000, 80, 43)); /* the key matters */
  CHECK(h1 != toe_ipv6_flow_hash(&b, &a, 6, 1000, 80, 42)); /* so does the direction */
  /* Over 4096 source ports: labels never 0, in range, and spread (a 20-bit space gives ~8
   * collisions among 4096 values; a broken mix gives hundreds). */
  static uint8_t seen[(TOE_IPV6_FLOW_MASK + 1) / 8];
  memset(seen, 0, sizeof seen);
  unsigned dup = 0;
  for (unsigned port = 0; port < 4096; port++) {
    uint32_t h = toe_ipv6_flow_hash(&a, &b, 17, (uint16_t)port, 53, 0x5eed);
    CHECK(h != 0 && h <= 0xfffff);
    if (seen[h >> 3] & (1u << (h & 7)))
      dup++;
    seen[h >> 3] |= (uint8_t)(1u << (h & 7));
  }
  CHECK(dup < 40);
}

TEST(ext_chain_scapy)
{
  struct toe_ipv6_ext r;
  REQUIRE(walk(&r, v_ext_chain, sizeof v_ext_chain) == 0);
  CHECK_EQ(r.proto, 17);
  CHECK_EQ(r.n_hdrs, 3);
  CHECK_EQ(r.offset, 40 + 8 + 8 + 8);
  CHECK_EQ(r.nh_off, 56); /* the routing header named UDP */
  CHECK(r.router_alert);
  CHECK_EQ(r.ra_value, 0);
  CHECK(!r.has_frag);
  /* The routing header is type 0 with Segments Left 0: ignored (RFC 5095 3, RFC 8200 4.4). */
  CHECK_EQ(v_ext_chain[56 + 2], 0);
  CHECK_EQ(v_ext_chain[56 + 3], 0);
}

TEST(routing_type0_refused)
{
  struct toe_ipv6_ext r;
  CHECK_EQ(walk(&r, v_rh0_segleft, sizeof v_rh0_segleft), -TOE_EPROTO);
  CHECK_EQ(r.pp_code, TOE_IPV6_PP_HEADER);
  CHECK_EQ(r.pp_pointer, 42); /* the Routing Type field */
  /* Any other type with segments left: the same (a host routes nothing). */
  uint8_t p[sizeof v_rh0_segleft];
  memcpy(p, v_rh0_segleft, sizeof p);
  p[42] = 4;
  CHECK_EQ(walk(&r, p, sizeof p), -TOE_EPROTO);
  CHECK_EQ(r.pp_pointer, 42);
  p[43] = 0; /* segments left 0: skipped */
  CHECK_EQ(walk(&r, p, sizeof p), 0);
  CHECK_EQ(r.proto, 17);
}

TEST(fragments_scapy)
{
  struct toe_ipv6_ext r;
  REQUIRE(walk(&r, v_atomic_frag, sizeof v_atomic_frag) == 0);
  CHECK(r.has_frag);
  CHECK(r.atomic);
  CHECK_EQ(r.proto, 17); /* an atomic fragment is processed whole (RFC 8021) */
  CHECK_EQ(r.offset, 48);
  CHECK_EQ(r.frag_id, 0xabcdef01u);

  REQUIRE(walk(&r, v_frag_first, sizeof v_frag_first) == 0);
  CHECK_EQ(r.proto, TOE_IPPROTO_FRAGMENT);
  CHECK_EQ(r.offset, 48);
  CHECK_EQ(r.nh_off, 6);
  CHECK(r.has_frag && !r.atomic && r.frag_more);
  CHECK_EQ(r.frag_off, 0);
  CHECK_EQ(r.frag_nh, 17);
  CHECK_EQ(r.frag_id, 0x1234);
  CHECK_EQ(r.unfrag_len, 40);
  uint16_t first_data = (uint16_t)(sizeof v_frag_first - 48);

  REQUIRE(walk(&r, v_frag_second, sizeof v_frag_second) == 0);
  CHECK_EQ(r.proto, TOE_IPPROTO_FRAGMENT);
  CHECK(r.frag_more);
  CHECK_EQ(r.frag_off, first_data);
  CHECK_EQ(r.frag_id, 0x1234);

  REQUIRE(walk(&r, v_frag_last, sizeof v_frag_last) == 0);
  CHECK(!r.frag_more);
  CHECK_EQ(r.frag_off + (sizeof v_frag_last - 48), 3072 + 8); /* UDP header and 3072 bytes */

  /* Our writer gives the same fragment header as scapy. */
  uint8_t fh[8];
  CHECK_EQ(toe_ipv6_write_frag(fh, 17, 0, true, 0x1234), 8);
  CHECK_MEM(fh, v_frag_first + 40, 8);
  toe_ipv6_write_frag(fh, 17, first_data, true, 0x1234);
  CHECK_MEM(fh, v_frag_second + 40, 8);
}

TEST(fragment_rules)
{
  uint8_t p[200];
  struct toe_ipv6_ext r;
  /* A non-last fragment with 20 data bytes: not a multiple of 8 (RFC 8200 4.5). */
  hdr(p, 44, 8 + 20, NULL);
  toe_ipv6_write_frag(p + 40, 17, 8, true, 1);
  CHECK_EQ(walk(&r, p, 40 + 28), -TOE_EPROTO);
  CHECK_EQ(r.pp_code, 0);
  CHECK_EQ(r.pp_pointer, 4);
  /* The same as the last fragment: fine. */
  toe_ipv6_write_frag(p + 40, 17, 8, false, 1);
  CHECK_EQ(walk(&r, p, 40 + 28), 0);
  /* Ending past 65535. */
  hdr(p, 44, 8 + 16, NULL);
  toe_ipv6_write_frag(p + 40, 17, 65528, true, 1);
  CHECK_EQ(walk(&r, p, 40 + 24), -TOE_EPROTO);
  CHECK_EQ(r.pp_code, 0);
  CHECK_EQ(r.pp_pointer, 42);
  toe_ipv6_write_frag(p + 40, 17, 65512, false, 1); /* ends at 65528: fine */
  CHECK_EQ(walk(&r, p, 40 + 24), 0);
  /* A first fragment whose header chain does not fit (RFC 7112 5): a destination options header
   * of 16 bytes in 8 bytes of fragment data. */
  hdr(p, 44, 8 + 8, NULL);
  toe_ipv6_write_frag(p + 40, 60, 0, true, 2);
  memset(p + 48, 0, 8);
  p[48] = 17;
  p[49] = 1; /* 16 bytes */
  CHECK_EQ(walk(&r, p, 40 + 16), -TOE_EPROTO);
  CHECK_EQ(r.pp_code, TOE_IPV6_PP_FIRST_FRAG);
  CHECK_EQ(r.pp_pointer, 0);
  /* A first fragment with the chain ending exactly at its end: no upper-layer header. */
  p[49] = 0;
  p[50] = 1; /* PadN 4 */
  p[51] = 4;
  CHECK_EQ(walk(&r, p, 40 + 16), -TOE_EPROTO);
  CHECK_EQ(r.pp_code, TOE_IPV6_PP_FIRST_FRAG);
  /* With 8 more bytes the upper layer starts inside: accepted for reassembly. */
  hdr(p, 44, 8 + 16, NULL);
  CHECK_EQ(walk(&r, p, 40 + 24), 0);
  CHECK_EQ(r.proto, TOE_IPPROTO_FRAGMENT);
  CHECK_EQ(r.frag_nh, 60);
  /* Two fragment headers. */
  hdr(p, 44, 16 + 8, NULL);
  toe_ipv6_write_frag(p + 40, 44, 0, false, 3);
  toe_ipv6_write_frag(p + 48, 17, 0, false, 4);
  CHECK_EQ(walk(&r, p, 40 + 24), -TOE_EINVAL);
}

/* Writes a header of type `nh_self` at p with next header `next`, `len` bytes (multiple of 8), its
 * options area filled from `opts` then PadN/Pad1 to the end. */
static void opts_hdr(uint8_t *p, uint8_t next, size_t len, const uint8_t *opts, size_t olen)
{
  memset(p, 0, len);
  p[0] = next;
  p[1] = (uint8_t)(len / 8 - 1);
  if (olen)
    memcpy(p + 2, opts, olen);
  size_t pad = len - 2 - olen;
  if (pad == 1)
    p[2 + olen] = 0;
  else if (pad >= 2) {
    p[2 + olen] = 1;
    p[3 + olen] = (uint8_t)(pad - 2);
  }
}

TEST(option_actions)
{
  static const uint8_t mc[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  uint8_t p[128];
  struct toe_ipv6_ext r;
  struct {
    uint8_t type;
    int uni, multi; /* expected results to a unicast and to a multicast destination */
  } cases[] = {
      {0x1e, 0, 0},                     /* 00: skip */
      {0x5e, -TOE_EINVAL, -TOE_EINVAL}, /* 01: discard */
      {0x9e, -TOE_EPROTO, -TOE_EPROTO}, /* 10: discard, code 2 even to multicast */
      {0xde, -TOE_EPROTO, -TOE_EINVAL}, /* 11: discard, code 2 unless multicast */
      {0xc2, -TOE_EPROTO, -TOE_EINVAL}, /* jumbo payload: not supported */
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    for (int m = 0; m < 2; m++) {
      for (int hbh = 0; hbh < 2; hbh++) {
        uint8_t opt[4] = {cases[k].type, 2, 0xaa, 0xbb};
        hdr(p, hbh ? 0 : 60, 8 + 8, m ? mc : NULL);
        opts_hdr(p + 40, 59, 8, opt, 4);
        int e = walk(&r, p, 56);
        CHECK_EQ(e, m ? cases[k].multi : cases[k].uni);
        if (e == -TOE_EPROTO) {
          CHECK_EQ(r.pp_code, TOE_IPV6_PP_OPTION);
          CHECK_EQ(r.pp_pointer, 42);
        }
        if (e == 0) {
          CHECK_EQ(r.proto, TOE_IPPROTO_NONE);
          CHECK_EQ(r.offset, 48);
        }
      }
    }
  }
  /* Router alert only means something in hop-by-hop; with a bad length it is an error. */
  uint8_t ra[4] = {5, 2, 0, 1};
  hdr(p, 0, 8, NULL);
  opts_hdr(p + 40, 59, 8, ra, 4);
  REQUIRE(walk(&r, p, 48) == 0);
  CHECK(r.router_alert);
  CHECK_EQ(r.ra_value, 1);
  hdr(p, 60, 8, NULL);
  REQUIRE(walk(&r, p, 48) == 0); /* in destination options: an unknown "skip" option */
  CHECK(!r.router_alert);
  uint8_t ra3[5] = {5, 3, 0, 1, 0};
  hdr(p, 0, 8, NULL);
  opts_hdr(p + 40, 59, 8, ra3, 5);
  CHECK_EQ(walk(&r, p, 48), -TOE_EPROTO);
  CHECK_EQ(r.pp_code, 0);
  CHECK_EQ(r.pp_pointer, 43);
  /* Our hop-by-hop Router Alert header is scapy's (from the MLD report). */
  uint8_t h8[8];
  CHECK_EQ(toe_ipv6_write_hbh_router_alert(h8, 58, 0), 8);
  CHECK_MEM(h8, v_mld2_report + 40, 8);
}

TEST(option_limits)
{
  uint8_t p[256];
  struct toe_ipv6_ext r;
  /* 8 bytes of padding in a row: PadN with 6 data bytes. */
  hdr(p, 60, 16, NULL);
  uint8_t pad8[8] = {1, 6, 0, 0, 0, 0, 0, 0};
  opts_hdr(p + 40, 59, 16, pad8, 8); /* then PadN 4: 14 bytes of padding */
  CHECK_EQ(walk(&r, p, 56), -TOE_EINVAL);
  /* 6 Pad1 (the whole area of an 8-byte header): fine. */
  hdr(p, 60, 8, NULL);
  memset(p + 40, 0, 8);
  p[40] = 59;
  CHECK_EQ(walk(&r, p, 48), 0);
  /* An option running past its header. */
  hdr(p, 60, 8, NULL);
  uint8_t runs[2] = {0x1e, 5};
  opts_hdr(p + 40, 59, 8, runs, 2);
  CHECK_EQ(walk(&r, p, 48), -TOE_EINVAL);
  /* The type byte alone at the end. */
  memset(p + 40, 0, 8);
  p[40] = 59;
  p[47] = 0x1e;
  CHECK_EQ(walk(&r, p, 48), -TOE_EINVAL);
  /* 9 non-padding options: code 9 at the ninth. */
  uint8_t nine[18];
  for (int i = 0; i < 9; i++) {
    nine[2 * i] = 0x1e;
    nine[2 * i + 1] = 0;
  }
  hdr(p, 60, 24, NULL);
  opts_hdr(p + 40, 59, 24, nine, 18);
  CHECK_EQ(walk(&r, p, 64), -TOE_EPROTO);
  CHECK_EQ(r.pp_code, TOE_IPV6_PP_TOO_MANY_OPTS);
  CHECK_EQ(r.pp_pointer, 42 + 16);
  opts_hdr(p + 40, 59, 24, nine, 16); /* 8: fine */
  CHECK_EQ(walk(&r, p, 64), 0);
}

TEST(header_limits)
{
  static uint8_t p[40 + 2048 + 64];
  struct toe_ipv6_ext r;
  /* Nine destination options headers: code 8 at the ninth. */
  hdr(p, 60, 9 * 8, NULL);
  for (int i = 0; i < 9; i++)
    opts_hdr(p + 40 + 8 * i, i == 8 ? 59 : 60, 8, NULL, 0);
  CHECK_EQ(walk(&r, p, 40 + 72), -TOE_EPROTO);
  CHECK_EQ(r.pp_code, TOE_IPV6_PP_TOO_MANY_EXT);
  CHECK_EQ(r.pp_pointer, 40 + 64);
  /* Eight: accepted. */
  hdr(p, 60, 8 * 8, NULL);
  opts_hdr(p + 40 + 56, 59, 8, NULL, 0);
  CHECK_EQ(walk(&r, p, 40 + 64), 0);
  CHECK_EQ(r.n_hdrs, 8);
  /* Eight, the last naming a ninth that is not there: truncated (silent), not "too many" with a
   * pointer past the packet (found by fuzz_wire_ipv6). */
  p[40 + 56] = 60;
  CHECK_EQ(walk(&r, p, 40 + 64), -TOE_EINVAL);
  /* The same inside a first fragment: its header chain is incomplete (RFC 7112). */
  hdr(p, 44, 8 + 8, NULL);
  toe_ipv6_write_frag(p + 40, 60, 0, true, 9);
  opts_hdr(p + 48, 60, 8, NULL, 0);
  CHECK_EQ(walk(&r, p, 40 + 16), -TOE_EPROTO);
  CHECK_EQ(r.pp_code, TOE_IPV6_PP_FIRST_FRAG);
  CHECK_EQ(r.pp_pointer, 0);
  /* One header of 2048 bytes: the chain is too long (code 7 at its start). Its options would be
   * far too much padding too; the length limit comes first. */
  hdr(p, 60, 2048, NULL);
  memset(p + 40, 0, 2048);
  p[40] = 59;
  p[41] = 255;
  CHECK_EQ(walk(&r, p, 40 + 2048), -TOE_EPROTO);
  CHECK_EQ(r.pp_code, TOE_IPV6_PP_CHAIN_LONG);
  CHECK_EQ(r.pp_pointer, 40);
  /* Hop-by-hop after another header: code 1 at the Next Header field that names it. */
  hdr(p, 60, 16, NULL);
  opts_hdr(p + 40, 0, 8, NULL, 0);
  opts_hdr(p + 48, 59, 8, NULL, 0);
  CHECK_EQ(walk(&r, p, 56), -TOE_EPROTO);
  CHECK_EQ(r.pp_code, TOE_IPV6_PP_NEXT_HEADER);
  CHECK_EQ(r.pp_pointer, 40);
  /* A jumbogram announcement: payload length 0 with hop-by-hop. */
  hdr(p, 0, 0, NULL);
  CHECK_EQ(walk(&r, p, 40), -TOE_EINVAL);
}

TEST(truncation_never_overreads)
{
  /* Every scapy packet, parsed from a heap copy of exactly `avail` bytes while the packet is
   * longer: the walk either finishes or asks for more, never reads past (ASan watches). */
  struct {
    const uint8_t *p;
    size_t len;
  } pk[] = {{v_udp6, sizeof v_udp6},
            {v_ext_chain, sizeof v_ext_chain},
            {v_rh0_segleft, sizeof v_rh0_segleft},
            {v_atomic_frag, sizeof v_atomic_frag},
            {v_frag_first, sizeof v_frag_first},
            {v_mld2_report, sizeof v_mld2_report}};
  for (size_t k = 0; k < sizeof pk / sizeof pk[0]; k++) {
    struct toe_ipv6_ext full;
    struct toe_ipv6_view v;
    REQUIRE(toe_ipv6_parse(&v, pk[k].p, pk[k].len, pk[k].len) == 0);
    int want = toe_ipv6_ext_walk(&full, &v, pk[k].p, pk[k].len);
    for (size_t avail = 40; avail < pk[k].len; avail++) {
      uint8_t *c = malloc(avail);
      REQUIRE(c != NULL);
      memcpy(c, pk[k].p, avail);
      struct toe_ipv6_ext r;
      REQUIRE(toe_ipv6_parse(&v, c, avail, pk[k].len) == 0);
      int e = toe_ipv6_ext_walk(&r, &v, c, avail);
      if (e == 0 || e == -TOE_EPROTO)
        CHECK_EQ(e, want);
      else
        CHECK_EQ(e, -TOE_EAGAIN);
      if (e == 0)
        CHECK(r.offset <= avail);
      free(c);
    }
    /* And a packet cut short (Payload Length larger than what arrived) is refused by parse. */
    CHECK_EQ(toe_ipv6_parse(&v, pk[k].p, pk[k].len - 1, pk[k].len - 1), -TOE_EINVAL);
  }
  /* A header running past the payload: discarded, not "try again". */
  uint8_t p[64];
  hdr(p, 60, 8, NULL);
  opts_hdr(p + 40, 59, 8, NULL, 0);
  p[41] = 1; /* claims 16 bytes */
  struct toe_ipv6_ext r;
  CHECK_EQ(walk(&r, p, 48), -TOE_EINVAL);
  hdr(p, 60, 1, NULL);
  CHECK_EQ(walk(&r, p, 41), -TOE_EINVAL); /* no room for the length byte */
  hdr(p, 44, 4, NULL);
  CHECK_EQ(walk(&r, p, 44), -TOE_EINVAL); /* half a fragment header */
}

TEST(addresses)
{
  struct toe_in6_addr b = addr_at(B), o;
  toe_in6_solicited_node(&o, &b);
  CHECK_MEM(o.b, v_nsma_b, 16);
  CHECK(toe_in6_is_solicited_node(&o));
  CHECK(!toe_in6_is_solicited_node(&b));
  uint8_t mac[6];
  toe_in6_mc_mac(mac, &o);
  CHECK_MEM(mac, v_nsmac_b, 6);
  static const uint8_t mac_b[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  uint8_t iid[8];
  toe_in6_eui64(iid, mac_b);
  CHECK_MEM(iid, v_iid_b, 8);
  toe_in6_link_local_from_mac(&o, mac_b);
  CHECK_MEM(o.b, v_ll_b, 16);
  CHECK(toe_in6_is_link_local(&o));
  CHECK(!toe_in6_is_link_local(&b));
  /* In place. */
  toe_in6_solicited_node(&b, &b);
  CHECK_MEM(b.b, v_nsma_b, 16);

  struct toe_in6_addr z = {{0}}, one = {{0}}, m;
  one.b[15] = 1;
  CHECK(toe_in6_is_unspecified(&z));
  CHECK(!toe_in6_is_unspecified(&one));
  CHECK(toe_in6_is_loopback(&one));
  CHECK(!toe_in6_is_loopback(&z));
  toe_in6_all_nodes(&m);
  CHECK(toe_in6_is_multicast(&m));
  CHECK_EQ(toe_in6_mc_scope(&m), 2);
  CHECK_EQ(m.b[15], 1);
  toe_in6_all_routers(&m);
  CHECK_EQ(m.b[15], 2);
  toe_in6_all_mldv2_routers(&m);
  CHECK_EQ(m.b[15], 0x16);
  CHECK_MEM(m.b, v_mld2_report + 24, 16);
  CHECK_EQ(toe_in6_mc_scope(&one), 0);
  toe_in6_v4mapped(&o, 0xc6120001u);
  CHECK(toe_in6_is_v4mapped(&o));
  CHECK_EQ(o.b[12], 198);
  CHECK_EQ(o.b[15], 1);
  CHECK(!toe_in6_is_v4mapped(&one));
  /* fe80::/10 includes febf::, not fec0::. */
  struct toe_in6_addr ll = {{0xfe, 0xbf}};
  CHECK(toe_in6_is_link_local(&ll));
  ll.b[1] = 0xc0;
  CHECK(!toe_in6_is_link_local(&ll));

  struct toe_in6_addr a = addr_at(A);
  b = addr_at(B);
  CHECK(toe_in6_prefix_match(&a, &b, 0));
  CHECK(toe_in6_prefix_match(&a, &b, 64));
  CHECK(toe_in6_prefix_match(&a, &b, 126));
  CHECK(!toe_in6_prefix_match(&a, &b, 127)); /* ...01 vs ...10 differ in bit 126 */
  CHECK(!toe_in6_prefix_match(&a, &b, 128));
  CHECK(toe_in6_prefix_match(&a, &a, 128));
  CHECK(toe_in6_prefix_match(&a, &a, 200)); /* clamped */
  struct toe_in6_addr c = a;
  c.b[0] ^= 0x80;
  CHECK(!toe_in6_prefix_match(&a, &c, 1));
  CHECK(toe_in6_equal(&a, &a));
  CHECK(!toe_in6_equal(&a, &b));
}

TEST_MAIN()
