/*
 * IPv6 header (RFC 8200), its extension-header chain, addresses (RFC 4291) and the flow label
 * (RFC 6437).
 *
 * Addresses are 16 bytes in network order (struct toe_in6_addr): IPv6 has no host-order form worth
 * having, and byte arrays are the same on every host, big-endian or not.
 */
#ifndef TOE_WIRE_IPV6_H
#define TOE_WIRE_IPV6_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOE_IPV6_HLEN 40      /* fixed header */
#define TOE_IPV6_MIN_MTU 1280 /* RFC 8200 5: every link carries this */
#define TOE_IPV6_FRAG_HLEN 8  /* fragment header (RFC 8200 4.5) */
#define TOE_IPV6_FLOW_MASK 0xfffffu

/* Next Header values (IANA "Assigned Internet Protocol Numbers"). */
#define TOE_IPPROTO_HOPOPTS 0
#define TOE_IPPROTO_ROUTING 43
#define TOE_IPPROTO_FRAGMENT 44
#define TOE_IPPROTO_ESP 50
#define TOE_IPPROTO_AH 51
#define TOE_IPPROTO_ICMPV6 58
#define TOE_IPPROTO_NONE 59
#define TOE_IPPROTO_DSTOPTS 60

/* Bounds of the extension-header walk (RFC 8504 5.3 lets a host set them). A legitimate packet to
 * a host carries at most hop-by-hop, destination options twice, routing and fragment (RFC 8200
 * 4.1: each at most once, destination options twice), so 6 headers; 8 leaves room. */
#define TOE_IPV6_MAX_EXT_HDRS 8
#define TOE_IPV6_MAX_EXT_LEN 1024 /* bytes of extension headers, all together */
#define TOE_IPV6_MAX_OPTS 8       /* non-padding options in one options header */
#define TOE_IPV6_MAX_PAD 7        /* consecutive padding bytes (RFC 8504 5.3) */

/* An IPv6 address, network order. */
struct toe_in6_addr {
  uint8_t b[16];
};

/* A checked IPv6 fixed header. */
struct toe_ipv6_view {
  const uint8_t *hdr;
  uint16_t payload_len; /* bytes after the 40-byte header, <= pkt_len - 40 */
  uint8_t tclass;       /* traffic class (DSCP << 2 | ECN) */
  uint32_t flow;        /* flow label, 20 bits (RFC 6437) */
  uint8_t next_hdr;
  uint8_t hop_limit;
  struct toe_in6_addr src;
  struct toe_in6_addr dst;
};

/*
 * Parses the IPv6 header at `p`. `avail` bytes are contiguous at p, `pkt_len` is the length of the
 * whole packet from p (the link may pad after it). Checks: 40 bytes available, version 6, 40 +
 * payload length <= pkt_len, and a source that is not multicast (RFC 4291 2.7). The hop limit is
 * reported, not judged: a host accepts any (RFC 8200 3), and Neighbor Discovery's "hop limit 255"
 * rule is applied by toe_ndp_parse(). A payload length of 0 is taken literally: jumbograms (RFC
 * 2675) are not supported, and such a packet has no room for the hop-by-hop header they need, so
 * the extension walk drops it. Returns 0 or -TOE_EINVAL.
 */
int toe_ipv6_parse(struct toe_ipv6_view *v, const uint8_t *p, size_t avail, size_t pkt_len);

/* Fields of a 40-byte header. */
struct toe_ipv6_fields {
  uint8_t tclass;
  uint32_t flow; /* low 20 bits used */
  uint16_t payload_len;
  uint8_t next_hdr;
  uint8_t hop_limit;
  struct toe_in6_addr src;
  struct toe_in6_addr dst;
};

/* Writes the 40-byte header to `hdr` (at least 40 bytes). Returns TOE_IPV6_HLEN. */
size_t toe_ipv6_write(uint8_t *hdr, const struct toe_ipv6_fields *f);

/* Flow label of a header in memory (RFC 6437 2), and its in-place replacement. */
uint32_t toe_ipv6_flow_get(const uint8_t *hdr);
void toe_ipv6_flow_set(uint8_t *hdr, uint32_t flow);

/*
 * A flow label for a transport flow (RFC 6437 3): a keyed hash of the 5-tuple, so that packets of
 * one flow share it and an outsider cannot predict it (`key` is a per-device secret chosen at
 * start). Never 0, which means "no label". Only 32-bit arithmetic.
 */
uint32_t toe_ipv6_flow_hash(const struct toe_in6_addr *src, const struct toe_in6_addr *dst,
                            uint8_t proto, uint16_t sport, uint16_t dport, uint32_t key);

/*
 * Partial sum of the upper-layer pseudo-header (RFC 8200 8.1): source, destination, the 32-bit
 * upper-layer length and the next header value (the upper-layer protocol, not that of an
 * extension header). Add the partial sum of the upper-layer bytes and fold with toe_csum_fold().
 */
uint32_t toe_ipv6_pseudo_csum(const struct toe_in6_addr *src, const struct toe_in6_addr *dst,
                              uint32_t len, uint8_t proto);

/* ---- extension headers ---- */

/* What the engine must do about a packet whose extension headers it cannot accept. */
#define TOE_IPV6_PP_HEADER 0        /* erroneous header field (RFC 4443 3.4) */
#define TOE_IPV6_PP_NEXT_HEADER 1   /* unrecognized Next Header */
#define TOE_IPV6_PP_OPTION 2        /* unrecognized IPv6 option */
#define TOE_IPV6_PP_FIRST_FRAG 3    /* first fragment lacks the header chain (RFC 7112 5) */
#define TOE_IPV6_PP_CHAIN_LONG 7    /* extension header chain too long (RFC 8883 3.1) */
#define TOE_IPV6_PP_TOO_MANY_EXT 8  /* too many extension headers (RFC 8883 3.1) */
#define TOE_IPV6_PP_TOO_MANY_OPTS 9 /* too many options in one header (RFC 8883 3.1) */

/* Result of toe_ipv6_ext_walk(). Offsets count from the first byte of the IPv6 header. */
struct toe_ipv6_ext {
  uint8_t proto;     /* upper-layer protocol; TOE_IPPROTO_FRAGMENT for a fragment to reassemble */
  uint16_t offset;   /* where the upper-layer header (or the fragment's data) starts */
  uint16_t nh_off;   /* offset of the Next Header field that named `proto` (for a code 1 error) */
  uint8_t n_hdrs;    /* extension headers walked */
  bool router_alert; /* hop-by-hop Router Alert option (RFC 2711), value in ra_value */
  uint16_t ra_value; /* 0: MLD (RFC 2710 3) */
  /* Fragment header (RFC 8200 4.5), when has_frag. */
  bool has_frag;
  bool atomic;       /* offset 0 and M clear: no reassembly, the payload is whole (RFC 8021) */
  bool frag_more;    /* M flag */
  uint16_t frag_off; /* fragment offset in bytes (field * 8) */
  uint32_t frag_id;
  uint8_t frag_nh;     /* Next Header in the fragment header (of the reassembled payload) */
  uint16_t unfrag_len; /* bytes before the fragment header: the per-fragment headers */
  /* When the walk returns -TOE_EPROTO: the Parameter Problem to send (RFC 4443 3.4). */
  uint8_t pp_code;
  uint32_t pp_pointer; /* offset of the offending byte in the invoking packet */
};

/*
 * Walks the extension headers of the packet `pkt` (IPv6 header first) already checked into `v`.
 * `avail` bytes are contiguous at pkt; the walk never reads past avail nor past 40 + payload_len.
 *
 * Processing (RFC 8200 4): hop-by-hop options only directly after the IPv6 header (elsewhere: code
 * 1, pointer at the Next Header field naming it); options of hop-by-hop and destination options
 * headers by their type's action bits (4.2): skip, discard, discard and send code 2 (always, or
 * only if the destination is not multicast); Pad1/PadN and Router Alert understood. A routing
 * header with Segments Left 0 is ignored; any other is refused with code 0 at its Routing Type
 * field, since a host forwards nothing and type 0 is deprecated (RFC 5095 3). A fragment header
 * with offset 0 and M clear is an atomic fragment: the walk continues past it (RFC 8021, RFC 6946).
 * Any other fragment stops the walk with proto TOE_IPPROTO_FRAGMENT and offset at its data; a
 * first fragment (offset 0) must still hold the whole header chain (RFC 7112 5: code 3, pointer 0);
 * a non-last fragment whose data is not a multiple of 8 gets code 0 at Payload Length, and one
 * that would end past 65535 code 0 at its Fragment Offset field (RFC 8200 4.5). The walk stops at
 * the first header it does not know: that is the upper-layer protocol, TOE_IPPROTO_NONE included;
 * the engine answers code 1 for protocols it does not serve.
 * Limits: at most TOE_IPV6_MAX_EXT_HDRS headers, TOE_IPV6_MAX_EXT_LEN bytes of them and
 * TOE_IPV6_MAX_OPTS options per header (RFC 8883 codes 8, 7, 9), runs of more than
 * TOE_IPV6_MAX_PAD padding bytes dropped (RFC 8504 5.3).
 *
 * Returns 0 (r describes the upper layer), -TOE_EPROTO (discard and send the Parameter Problem in
 * r->pp_code / r->pp_pointer, subject to toe_icmpv6_error_allowed()), -TOE_EINVAL (discard
 * silently: a header runs past the packet, an option says "discard", padding abuse) or
 * -TOE_EAGAIN (a header lies past `avail` but inside the packet: make it contiguous and retry).
 */
int toe_ipv6_ext_walk(struct toe_ipv6_ext *r, const struct toe_ipv6_view *v, const uint8_t *pkt,
                      size_t avail);

/*
 * Checks the options area of one hop-by-hop or destination options header (`len` bytes at `opts`,
 * which sit at offset `opts_off` of the packet) per RFC 8200 4.2. Sets router_alert/ra_value in r
 * when `hbh`. Returns 0, -TOE_EINVAL or -TOE_EPROTO as toe_ipv6_ext_walk() does.
 */
int toe_ipv6_opts_walk(struct toe_ipv6_ext *r, const uint8_t *opts, size_t len, uint16_t opts_off,
                       bool hbh, bool dst_multicast);

/* Writes a fragment header (8 bytes). `frag_off` is in bytes, a multiple of 8. Returns 8. */
size_t toe_ipv6_write_frag(uint8_t *p, uint8_t next_hdr, uint16_t frag_off, bool more, uint32_t id);

/*
 * Writes an 8-byte hop-by-hop options header holding a Router Alert option with `value` (RFC 2711;
 * 0 for MLD) and a PadN to the 8-byte boundary. Returns 8.
 */
size_t toe_ipv6_write_hbh_router_alert(uint8_t *p, uint8_t next_hdr, uint16_t value);

/* ---- addresses (RFC 4291) ---- */

bool toe_in6_is_unspecified(const struct toe_in6_addr *a); /* :: */
bool toe_in6_is_loopback(const struct toe_in6_addr *a);    /* ::1 */
bool toe_in6_is_multicast(const struct toe_in6_addr *a);   /* ff00::/8 */
bool toe_in6_is_link_local(const struct toe_in6_addr *a);  /* fe80::/10 */
bool toe_in6_is_v4mapped(const struct toe_in6_addr *a);    /* ::ffff:0:0/96 */
/* The IPv4 address (host order) in the last 32 bits of a v4-mapped address (RFC 4291 2.5.5.2). */
uint32_t toe_in6_mapped_v4(const struct toe_in6_addr *a);
bool toe_in6_equal(const struct toe_in6_addr *a, const struct toe_in6_addr *b);
/* True if the first `prefix_len` (0..128) bits of a and b agree. */
bool toe_in6_prefix_match(const struct toe_in6_addr *a, const struct toe_in6_addr *b,
                          uint8_t prefix_len);
/* Multicast scope (RFC 4291 2.7: 1 interface, 2 link, 5 site, 8 organization, e global); 0 if not
 * multicast. */
uint8_t toe_in6_mc_scope(const struct toe_in6_addr *a);
/* True for ff02::1:ffXX:XXXX, the solicited-node group of some address (RFC 4291 2.7.1). */
bool toe_in6_is_solicited_node(const struct toe_in6_addr *a);

/* ff02::1 (all nodes), ff02::2 (all routers), ff02::16 (all MLDv2-capable routers, RFC
 * 3810 5.2.14). */
void toe_in6_all_nodes(struct toe_in6_addr *out);
void toe_in6_all_routers(struct toe_in6_addr *out);
void toe_in6_all_mldv2_routers(struct toe_in6_addr *out);
/* The solicited-node multicast address of `a`: ff02::1:ff00:0/104 | low 24 bits (RFC 4291 2.7.1).
 */
void toe_in6_solicited_node(struct toe_in6_addr *out, const struct toe_in6_addr *a);
/* Ethernet address of an IPv6 multicast group: 33:33 and the group's low 32 bits (RFC 2464 7). */
void toe_in6_mc_mac(uint8_t mac[6], const struct toe_in6_addr *group);
/* The modified EUI-64 interface identifier of a MAC (RFC 4291 2.5.1, appendix A): the U/L bit
 * inverted, ff:fe in the middle. Writes 8 bytes. */
void toe_in6_eui64(uint8_t iid[8], const uint8_t mac[6]);
/* fe80::/64 with the modified EUI-64 of `mac` (RFC 4862 5.3). */
void toe_in6_link_local_from_mac(struct toe_in6_addr *out, const uint8_t mac[6]);
/* ::ffff:a.b.c.d for host-order IPv4 address v4 (RFC 4291 2.5.5.2). */
void toe_in6_v4mapped(struct toe_in6_addr *out, uint32_t v4);

#endif
