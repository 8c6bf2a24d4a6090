/*
 * Fuzzes the IPv6 header parser and the extension-header walk. The first input byte picks how
 * many bytes are contiguous (the rest of the packet "in further buffers") and padding after the
 * packet; the rest is the packet, copied into a buffer of exactly `avail` bytes so that any read
 * past it trips AddressSanitizer. The header parse is compared with an independent model; the walk
 * is checked for its invariants and for agreeing with itself when the whole packet is contiguous.
 */
#include "toe/errno.h"
#include "wire/ipv6.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

static int model_parse(const uint8_t *p, size_t avail, size_t pkt_len)
{
  if (avail > pkt_len)
    avail = pkt_len;
  if (avail < 40 || p[0] >> 4 != 6)
    return -TOE_EINVAL;
  size_t plen = (size_t)p[4] << 8 | p[5];
  if (40 + plen > pkt_len || p[8] == 0xff)
    return -TOE_EINVAL;
  return 0;
}

static int is_ext(uint8_t nh)
{
  return nh == 0 || nh == 43 || nh == 44 || nh == 60;
}

static void check_walk(const struct toe_ipv6_view *v, const uint8_t *buf, size_t avail,
                       const uint8_t *whole, size_t whole_len)
{
  size_t end = 40 + (size_t)v->payload_len;
  struct toe_ipv6_ext r;
  int e = toe_ipv6_ext_walk(&r, v, buf, avail);
  if (e != 0 && e != -TOE_EPROTO && e != -TOE_EINVAL && e != -TOE_EAGAIN)
    abort();
  if (e == -TOE_EAGAIN && avail >= end)
    abort(); /* asked for bytes it already had */
  if (e == -TOE_EPROTO) {
    if (r.pp_pointer >= end)
      abort(); /* the pointer names a byte of the invoking packet */
    switch (r.pp_code) {
    case 0:
    case 1:
    case 2:
    case 3:
    case 7:
    case 8:
    case 9:
      break;
    default:
      abort();
    }
  }
  if (e == 0) {
    if (r.offset < 40 || r.offset > end || r.offset > avail || r.nh_off >= r.offset)
      abort();
    if (r.n_hdrs > TOE_IPV6_MAX_EXT_HDRS || r.offset - 40u > TOE_IPV6_MAX_EXT_LEN + 8u)
      abort();
    if (r.proto == TOE_IPPROTO_FRAGMENT) {
      if (!r.has_frag || r.atomic || r.offset != r.unfrag_len + 8)
        abort();
    } else if (is_ext(r.proto)) {
      abort(); /* the walk ends on an upper layer */
    }
    /* The header that named the upper layer holds its number. */
    if (buf[r.nh_off] != (r.proto == TOE_IPPROTO_FRAGMENT ? 44 : r.proto))
      abort();
    if (r.has_frag && r.frag_off % 8)
      abort();
    sink = r.proto + r.offset + r.frag_id + r.ra_value;
  }
  /* Given everything contiguous, a walk that finished or chose an error finishes the same way. */
  if (e == 0 || e == -TOE_EPROTO) {
    struct toe_ipv6_ext w;
    int f = toe_ipv6_ext_walk(&w, v, whole, whole_len);
    if (f != e || w.proto != r.proto || w.offset != r.offset || w.pp_code != r.pp_code ||
        w.pp_pointer != r.pp_pointer || w.has_frag != r.has_frag || w.atomic != r.atomic)
      abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  uint8_t ctl = data[0];
  data++;
  size--;
  size_t avail = size, pkt_len = size;
  if (ctl & 1)
    avail = size > (size_t)(ctl >> 1) ? size - (ctl >> 1) : 0;
  if (ctl & 0x80)
    pkt_len = size + (ctl & 0x3e); /* link padding */
  uint8_t *buf = malloc(avail ? avail : 1);
  if (!buf)
    return 0;
  memcpy(buf, data, avail);

  struct toe_ipv6_view v;
  int r = toe_ipv6_parse(&v, buf, avail, pkt_len);
  if (r != model_parse(buf, avail, pkt_len))
    abort();
  if (r == 0) {
    if (v.hdr != buf || v.flow > 0xfffff || v.flow != toe_ipv6_flow_get(buf) ||
        memcmp(v.src.b, buf + 8, 16) || memcmp(v.dst.b, buf + 24, 16))
      abort();
    /* The whole packet as it would be once made contiguous: the input's bytes, then zeros for
     * the link padding. */
    size_t whole_len = 40 + (size_t)v.payload_len;
    uint8_t *whole = calloc(1, whole_len);
    if (!whole) {
      free(buf);
      return 0;
    }
    memcpy(whole, data, whole_len < size ? whole_len : size);
    check_walk(&v, buf, avail, whole, whole_len);

    /* Re-emit and parse again: every field survives. */
    struct toe_ipv6_fields f = {.tclass = v.tclass,
                                .flow = v.flow,
                                .payload_len = v.payload_len,
                                .next_hdr = v.next_hdr,
                                .hop_limit = v.hop_limit,
                                .src = v.src,
                                .dst = v.dst};
    uint8_t h[40];
    if (toe_ipv6_write(h, &f) != 40 || memcmp(h, buf, 40) != 0)
      abort();
    uint32_t fl = toe_ipv6_flow_hash(&v.src, &v.dst, v.next_hdr, v.payload_len, v.hop_limit, ctl);
    if (fl == 0 || fl > 0xfffff)
      abort();
    toe_ipv6_flow_set(h, fl);
    if (toe_ipv6_flow_get(h) != fl || memcmp(h + 4, buf + 4, 36) != 0)
      abort();
    struct toe_in6_addr sn;
    toe_in6_solicited_node(&sn, &v.dst);
    if (!toe_in6_is_solicited_node(&sn) || memcmp(sn.b + 13, v.dst.b + 13, 3))
      abort();
    unsigned acc = toe_in6_is_link_local(&v.src) + toe_in6_is_multicast(&v.dst) +
                   toe_in6_is_v4mapped(&v.dst) + toe_in6_mc_scope(&v.dst) +
                   toe_in6_prefix_match(&v.src, &v.dst, (uint8_t)(ctl | 0x80));
    if (!toe_in6_prefix_match(&v.src, &v.src, ctl))
      abort();
    sink = acc + toe_ipv6_pseudo_csum(&v.src, &v.dst, v.payload_len, v.next_hdr);
    free(whole);
  }
  free(buf);
  return 0;
}
