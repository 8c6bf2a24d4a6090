/*
 * IPv6 header (RFC 8200) parsing and emission, the extension-header walk, the flow label (RFC
 * 6437), the upper-layer pseudo-header and address helpers (RFC 4291).
 */
#include "wire/ipv6.h"

#include "common/byteorder.h"
#include "toe/errno.h"
#include "wire/checksum.h"

#include <string.h>

#define OPT_PAD1 0
#define OPT_PADN 1
#define OPT_ROUTER_ALERT 5 /* RFC 2711 2.1 */

int toe_ipv6_parse(struct toe_ipv6_view *v, const uint8_t *p, size_t avail, size_t pkt_len)
{
  if (avail > pkt_len)
    avail = pkt_len;
  if (avail < TOE_IPV6_HLEN)
    return -TOE_EINVAL;
  if ((p[0] >> 4) != 6)
    return -TOE_EINVAL;
  uint16_t plen = toe_load_be16(p + 4);
  /* Payload Length counts everything after the fixed header (RFC 8200 3); the link may pad after
   * it, so it may be less than what arrived, never more. */
  if ((size_t)plen > pkt_len - TOE_IPV6_HLEN)
    return -TOE_EINVAL;
  /* RFC 4291 2.7: "Multicast addresses must not be used as source addresses". */
  if (p[8] == 0xff)
    return -TOE_EINVAL;
  uint32_t w = toe_load_be32(p);
  v->hdr = p;
  v->payload_len = plen;
  v->tclass = (uint8_t)(w >> 20);
  v->flow = w & TOE_IPV6_FLOW_MASK;
  v->next_hdr = p[6];
  v->hop_limit = p[7];
  memcpy(v->src.b, p + 8, 16);
  memcpy(v->dst.b, p + 24, 16);
  return 0;
}

size_t toe_ipv6_write(uint8_t *hdr, const struct toe_ipv6_fields *f)
{
  toe_store_be32(hdr, 6u << 28 | (uint32_t)f->tclass << 20 | (f->flow & TOE_IPV6_FLOW_MASK));
  toe_store_be16(hdr + 4, f->payload_len);
  hdr[6] = f->next_hdr;
  hdr[7] = f->hop_limit;
  memcpy(hdr + 8, f->src.b, 16);
  memcpy(hdr + 24, f->dst.b, 16);
  return TOE_IPV6_HLEN;
}

uint32_t toe_ipv6_flow_get(const uint8_t *hdr)
{
  return toe_load_be32(hdr) & TOE_IPV6_FLOW_MASK;
}

void toe_ipv6_flow_set(uint8_t *hdr, uint32_t flow)
{
  uint32_t w = toe_load_be32(hdr);
  toe_store_be32(hdr, (w & ~TOE_IPV6_FLOW_MASK) | (flow & TOE_IPV6_FLOW_MASK));
}

static uint32_t rotl32(uint32_t x, unsigned r)
{
  return (x << r) | (x >> (32 - r));
}

/* One round of the HalfSipHash permutation: additions, rotations and xors on 32-bit words, cheap
 * on a 32-bit core and hard to invert without the key. */
static void sip_round(uint32_t v[4])
{
  v[0] += v[1];
  v[1] = rotl32(v[1], 5);
  v[1] ^= v[0];
  v[0] = rotl32(v[0], 16);
  v[2] += v[3];
  v[3] = rotl32(v[3], 8);
  v[3] ^= v[2];
  v[0] += v[3];
  v[3] = rotl32(v[3], 7);
  v[3] ^= v[0];
  v[2] += v[1];
  v[1] = rotl32(v[1], 13);
  v[1] ^= v[2];
  v[2] = rotl32(v[2], 16);
}

static void sip_absorb(uint32_t v[4], uint32_t m)
{
  v[3] ^= m;
  sip_round(v);
  v[0] ^= m;
}

uint32_t toe_ipv6_flow_hash(const struct toe_in6_addr *src, const struct toe_in6_addr *dst,
                            uint8_t proto, uint16_t sport, uint16_t dport, uint32_t key)
{
  /* RFC 6437 3: labels "should be chosen ... from a uniform distribution" and be hard to guess;
   * a keyed hash of the 5-tuple gives one label per flow with no state (RFC 6437 3, RFC 7098). */
  uint32_t v[4] = {key, ~key, 0x6c796765u ^ key, 0x74656462u ^ ~key};
  for (unsigned i = 0; i < 16; i += 4) {
    sip_absorb(v, toe_load_be32(src->b + i));
    sip_absorb(v, toe_load_be32(dst->b + i));
  }
  sip_absorb(v, (uint32_t)sport << 16 | dport);
  sip_absorb(v, proto);
  v[2] ^= 0xff;
  sip_round(v);
  sip_round(v);
  sip_round(v);
  uint32_t h = (v[1] ^ v[3]) & TOE_IPV6_FLOW_MASK;
  return h ? h : 1; /* 0 means "not labelled" (RFC 6437 2) */
}

uint32_t toe_ipv6_pseudo_csum(const struct toe_in6_addr *src, const struct toe_in6_addr *dst,
                              uint32_t len, uint8_t proto)
{
  /* RFC 8200 8.1, figure: source, destination, 32-bit upper-layer packet length, 24 zero bits and
   * the next header value. Laid out in packet order and summed like packet bytes, so the result
   * has the representation of every other partial sum on either endianness. */
  uint8_t ph[40];
  memcpy(ph, src->b, 16);
  memcpy(ph + 16, dst->b, 16);
  toe_store_be32(ph + 32, len);
  ph[36] = ph[37] = ph[38] = 0;
  ph[39] = proto;
  return toe_csum_partial(ph, sizeof ph, 0);
}

/* ---- extension headers ---- */

static int pp(struct toe_ipv6_ext *r, uint8_t code, size_t pointer)
{
  r->pp_code = code;
  r->pp_pointer = (uint32_t)pointer;
  return -TOE_EPROTO;
}

int toe_ipv6_opts_walk(struct toe_ipv6_ext *r, const uint8_t *opts, size_t len, uint16_t opts_off,
                       bool hbh, bool dst_multicast)
{
  size_t i = 0;
  unsigned pad = 0, n = 0;
  while (i < len) {
    uint8_t t = opts[i];
    if (t == OPT_PAD1) {
      /* Padding only aligns: more than 7 bytes in a row is never needed (RFC 8504 5.3) and is a
       * known way to hide data or burn the receiver's time. */
      if (++pad > TOE_IPV6_MAX_PAD)
        return -TOE_EINVAL;
      i++;
      continue;
    }
    /* Every other option is type, length, data (RFC 8200 4.2) and must lie inside the header.
     * A truncated option is discarded silently: there is no field a pointer could name. */
    if (len - i < 2 || opts[i + 1] > len - i - 2)
      return -TOE_EINVAL;
    uint8_t olen = opts[i + 1];
    if (t == OPT_PADN) {
      pad += 2u + olen;
      if (pad > TOE_IPV6_MAX_PAD)
        return -TOE_EINVAL;
      i += 2u + olen;
      continue;
    }
    pad = 0;
    if (++n > TOE_IPV6_MAX_OPTS)
      return pp(r, TOE_IPV6_PP_TOO_MANY_OPTS, opts_off + i);
    if (hbh && t == OPT_ROUTER_ALERT) {
      if (olen != 2) /* RFC 2711 2.1: length 2 */
        return pp(r, TOE_IPV6_PP_HEADER, opts_off + i + 1);
      r->router_alert = true;
      r->ra_value = toe_load_be16(opts + i + 2);
    } else {
      /* Unknown option: its two high-order bits say what to do (RFC 8200 4.2). */
      switch (t >> 6) {
      case 0: /* skip over it */
        break;
      case 1: /* discard the packet */
        return -TOE_EINVAL;
      case 2: /* discard and send code 2, multicast destination or not */
        return pp(r, TOE_IPV6_PP_OPTION, opts_off + i);
      default: /* discard; code 2 only if the destination is not multicast */
        if (dst_multicast)
          return -TOE_EINVAL;
        return pp(r, TOE_IPV6_PP_OPTION, opts_off + i);
      }
    }
    i += 2u + olen;
  }
  return 0;
}

/* Reads the 2-byte start of a header at `off` and its total length; checks it against the packet
 * end and the contiguous bytes. Returns 0, -TOE_EINVAL or -TOE_EAGAIN. */
static int ext_len(const uint8_t *pkt, size_t off, size_t end, size_t avail, size_t *hlen)
{
  if (end - off < 2)
    return -TOE_EINVAL;
  if (avail < off + 2)
    return -TOE_EAGAIN;
  /* Hdr Ext Len counts 8-octet units, not including the first 8 (RFC 8200 4.3, 4.4, 4.6). */
  *hlen = ((size_t)pkt[off + 1] + 1) * 8;
  if (end - off < *hlen)
    return -TOE_EINVAL;
  return 0;
}

static bool is_ext(uint8_t nh)
{
  return nh == TOE_IPPROTO_HOPOPTS || nh == TOE_IPPROTO_ROUTING || nh == TOE_IPPROTO_FRAGMENT ||
         nh == TOE_IPPROTO_DSTOPTS;
}

/*
 * RFC 7112 5: a first fragment must hold the whole header chain, up to the upper-layer header.
 * Walks the headers after the fragment header (their options are processed after reassembly) and
 * fails with code 3, pointer 0 if the chain leaves the fragment.
 */
static int first_frag_chain(struct toe_ipv6_ext *r, const uint8_t *pkt, size_t off, size_t end,
                            size_t avail, uint8_t nh, unsigned n_hdrs)
{
  while (is_ext(nh)) {
    if (off >= end)
      return pp(r, TOE_IPV6_PP_FIRST_FRAG, 0);
    if (++n_hdrs > TOE_IPV6_MAX_EXT_HDRS)
      return pp(r, TOE_IPV6_PP_TOO_MANY_EXT, off);
    size_t hlen = nh == TOE_IPPROTO_FRAGMENT ? TOE_IPV6_FRAG_HLEN : 0;
    if (hlen == 0) {
      int e = ext_len(pkt, off, end, avail, &hlen);
      if (e == -TOE_EINVAL)
        return pp(r, TOE_IPV6_PP_FIRST_FRAG, 0);
      if (e)
        return e;
    } else if (end - off < hlen) {
      return pp(r, TOE_IPV6_PP_FIRST_FRAG, 0);
    }
    if (off - TOE_IPV6_HLEN + hlen > TOE_IPV6_MAX_EXT_LEN)
      return pp(r, TOE_IPV6_PP_CHAIN_LONG, off);
    if (avail < off + 1)
      return -TOE_EAGAIN;
    nh = pkt[off];
    off += hlen;
  }
  /* The upper-layer header must start inside the fragment too; TOE_IPPROTO_NONE has none. */
  if (nh != TOE_IPPROTO_NONE && off >= end)
    return pp(r, TOE_IPV6_PP_FIRST_FRAG, 0);
  return 0;
}

static int frag_hdr(struct toe_ipv6_ext *r, const uint8_t *pkt, size_t off, size_t end,
                    size_t avail)
{
  if (r->has_frag)
    return -TOE_EINVAL; /* two fragment headers: nothing legitimate sends that (RFC 8200 4.1) */
  if (end - off < TOE_IPV6_FRAG_HLEN)
    return -TOE_EINVAL;
  if (avail < off + TOE_IPV6_FRAG_HLEN)
    return -TOE_EAGAIN;
  const uint8_t *f = pkt + off;
  uint16_t fo = toe_load_be16(f + 2);
  r->has_frag = true;
  r->frag_nh = f[0];
  r->frag_off = fo & 0xfff8u;
  r->frag_more = (fo & 1) != 0;
  r->frag_id = toe_load_be32(f + 4);
  r->unfrag_len = (uint16_t)off;
  r->atomic = r->frag_off == 0 && !r->frag_more;
  return 0;
}

int toe_ipv6_ext_walk(struct toe_ipv6_ext *r, const struct toe_ipv6_view *v, const uint8_t *pkt,
                      size_t avail)
{
  memset(r, 0, sizeof *r);
  size_t end = TOE_IPV6_HLEN + (size_t)v->payload_len;
  if (avail > end)
    avail = end;
  bool mc = toe_in6_is_multicast(&v->dst);
  uint8_t nh = v->next_hdr;
  size_t nh_off = 6; /* the Next Header field of the fixed header */
  size_t off = TOE_IPV6_HLEN;

  while (is_ext(nh)) {
    /* RFC 8200 4.1: hop-by-hop options only immediately after the IPv6 header; elsewhere it is
     * treated as an unrecognized Next Header (RFC 8200 4.3 note). */
    if (nh == TOE_IPPROTO_HOPOPTS && off != TOE_IPV6_HLEN)
      return pp(r, TOE_IPV6_PP_NEXT_HEADER, nh_off);
    /* A header named but not there: truncated, before any limit (whose pointer would name it). */
    if (off >= end)
      return -TOE_EINVAL;
    if (r->n_hdrs >= TOE_IPV6_MAX_EXT_HDRS)
      return pp(r, TOE_IPV6_PP_TOO_MANY_EXT, off);
    size_t hlen;
    if (nh == TOE_IPPROTO_FRAGMENT) {
      int e = frag_hdr(r, pkt, off, end, avail);
      if (e)
        return e;
      hlen = TOE_IPV6_FRAG_HLEN;
    } else {
      int e = ext_len(pkt, off, end, avail, &hlen);
      if (e)
        return e;
    }
    if (off - TOE_IPV6_HLEN + hlen > TOE_IPV6_MAX_EXT_LEN)
      return pp(r, TOE_IPV6_PP_CHAIN_LONG, off);
    if (avail < off + hlen)
      return -TOE_EAGAIN;
    r->n_hdrs++;

    if (nh == TOE_IPPROTO_FRAGMENT && !r->atomic) {
      /* A real fragment: the upper layer is known only after reassembly. */
      size_t data = end - off - hlen;
      /* RFC 8200 4.5: a fragment that is not the last must carry a multiple of 8 bytes, else
       * code 0 pointing at Payload Length; one that would make the reassembled Payload Length
       * (per-fragment headers, offset, data) exceed 65535 gets code 0 pointing at its Fragment
       * Offset field. */
      if (r->frag_more && (data & 7) != 0)
        return pp(r, TOE_IPV6_PP_HEADER, 4);
      if (off - TOE_IPV6_HLEN + r->frag_off + data > 65535)
        return pp(r, TOE_IPV6_PP_HEADER, off + 2);
      if (r->frag_off == 0) {
        int e = first_frag_chain(r, pkt, off + hlen, end, avail, r->frag_nh, (unsigned)r->n_hdrs);
        if (e)
          return e;
      }
      r->proto = TOE_IPPROTO_FRAGMENT;
      r->offset = (uint16_t)(off + hlen);
      r->nh_off = (uint16_t)nh_off;
      return 0;
    }
    if (nh == TOE_IPPROTO_HOPOPTS || nh == TOE_IPPROTO_DSTOPTS) {
      int e = toe_ipv6_opts_walk(r, pkt + off + 2, hlen - 2, (uint16_t)(off + 2),
                                 nh == TOE_IPPROTO_HOPOPTS, mc);
      if (e)
        return e;
    } else if (nh == TOE_IPPROTO_ROUTING && pkt[off + 3] != 0) {
      /* RFC 8200 4.4: a routing header is acted on only while Segments Left is non-zero, and a
       * host forwards nothing, so every type is "unrecognized" to it: code 0 pointing at the
       * Routing Type. Type 0 in particular must not be processed (RFC 5095 3). */
      return pp(r, TOE_IPV6_PP_HEADER, off + 2);
    }
    nh_off = off; /* the Next Header field is every extension header's first byte */
    nh = pkt[off];
    off += hlen;
  }
  r->proto = nh;
  r->offset = (uint16_t)off;
  r->nh_off = (uint16_t)nh_off;
  return 0;
}

size_t toe_ipv6_write_frag(uint8_t *p, uint8_t next_hdr, uint16_t frag_off, bool more, uint32_t id)
{
  p[0] = next_hdr;
  p[1] = 0;
  toe_store_be16(p + 2, (uint16_t)((frag_off & 0xfff8u) | (more ? 1u : 0u)));
  toe_store_be32(p + 4, id);
  return TOE_IPV6_FRAG_HLEN;
}

size_t toe_ipv6_write_hbh_router_alert(uint8_t *p, uint8_t next_hdr, uint16_t value)
{
  p[0] = next_hdr;
  p[1] = 0; /* 8 bytes */
  p[2] = OPT_ROUTER_ALERT;
  p[3] = 2;
  toe_store_be16(p + 4, value);
  p[6] = OPT_PADN; /* PadN with no data: 2 bytes to the 8-byte boundary */
  p[7] = 0;
  return 8;
}

/* ---- addresses ---- */

static const uint8_t zero16[16];

bool toe_in6_is_unspecified(const struct toe_in6_addr *a)
{
  return memcmp(a->b, zero16, 16) == 0;
}

bool toe_in6_is_loopback(const struct toe_in6_addr *a)
{
  return memcmp(a->b, zero16, 15) == 0 && a->b[15] == 1;
}

bool toe_in6_is_multicast(const struct toe_in6_addr *a)
{
  return a->b[0] == 0xff;
}

bool toe_in6_is_link_local(const struct toe_in6_addr *a)
{
  return a->b[0] == 0xfe && (a->b[1] & 0xc0) == 0x80;
}

bool toe_in6_is_v4mapped(const struct toe_in6_addr *a)
{
  return memcmp(a->b, zero16, 10) == 0 && a->b[10] == 0xff && a->b[11] == 0xff;
}

uint32_t toe_in6_mapped_v4(const struct toe_in6_addr *a)
{
  return toe_load_be32(a->b + 12);
}

bool toe_in6_equal(const struct toe_in6_addr *a, const struct toe_in6_addr *b)
{
  return memcmp(a->b, b->b, 16) == 0;
}

bool toe_in6_prefix_match(const struct toe_in6_addr *a, const struct toe_in6_addr *b,
                          uint8_t prefix_len)
{
  if (prefix_len > 128)
    prefix_len = 128;
  unsigned bytes = prefix_len >> 3, bits = prefix_len & 7;
  if (memcmp(a->b, b->b, bytes) != 0)
    return false;
  if (bits == 0)
    return true;
  uint8_t m = (uint8_t)(0xff00u >> bits);
  return ((a->b[bytes] ^ b->b[bytes]) & m) == 0;
}

uint8_t toe_in6_mc_scope(const struct toe_in6_addr *a)
{
  return toe_in6_is_multicast(a) ? (uint8_t)(a->b[1] & 0x0f) : 0;
}

bool toe_in6_is_solicited_node(const struct toe_in6_addr *a)
{
  static const uint8_t pfx[13] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff};
  return memcmp(a->b, pfx, 13) == 0;
}

static void mc_link(struct toe_in6_addr *out, uint8_t last)
{
  memset(out->b, 0, 16);
  out->b[0] = 0xff;
  out->b[1] = 0x02;
  out->b[15] = last;
}

void toe_in6_all_nodes(struct toe_in6_addr *out)
{
  mc_link(out, 1);
}

void toe_in6_all_routers(struct toe_in6_addr *out)
{
  mc_link(out, 2);
}

void toe_in6_all_mldv2_routers(struct toe_in6_addr *out)
{
  mc_link(out, 0x16);
}

void toe_in6_solicited_node(struct toe_in6_addr *out, const struct toe_in6_addr *a)
{
  uint8_t low[3] = {a->b[13], a->b[14], a->b[15]}; /* out may be a */
  mc_link(out, 0);
  out->b[11] = 1;
  out->b[12] = 0xff;
  memcpy(out->b + 13, low, 3);
}

void toe_in6_mc_mac(uint8_t mac[6], const struct toe_in6_addr *group)
{
  mac[0] = 0x33;
  mac[1] = 0x33;
  memcpy(mac + 2, group->b + 12, 4);
}

void toe_in6_eui64(uint8_t iid[8], const uint8_t mac[6])
{
  /* RFC 4291 appendix A: insert ff:fe between the OUI and the rest, and invert the universal/local
   * bit (0x02 of the first byte) so that a hand-configured ::1 style identifier stays "local". */
  iid[0] = (uint8_t)(mac[0] ^ 0x02);
  iid[1] = mac[1];
  iid[2] = mac[2];
  iid[3] = 0xff;
  iid[4] = 0xfe;
  iid[5] = mac[3];
  iid[6] = mac[4];
  iid[7] = mac[5];
}

void toe_in6_link_local_from_mac(struct toe_in6_addr *out, const uint8_t mac[6])
{
  memset(out->b, 0, 8);
  out->b[0] = 0xfe;
  out->b[1] = 0x80;
  toe_in6_eui64(out->b + 8, mac);
}

void toe_in6_v4mapped(struct toe_in6_addr *out, uint32_t v4)
{
  memset(out->b, 0, 10);
  out->b[10] = 0xff;
  out->b[11] = 0xff;
  toe_store_be32(out->b + 12, v4);
}
