/*
 * Steering a received frame to the engine, the host interface or both (include/toe/steer.h has
 * the rules; docs/coexistence.md says why each exists). Only headers are read, in place; nothing
 * is consumed or modified, so the caller can hand the same bytes to either side.
 */
#include "toe/steer.h"

#include "common/byteorder.h"
#include "engine/stack.h"
#include "engine/steer6.h"
#include "wire/ethernet.h"
#include "wire/icmpv4.h"
#include "wire/ipv4.h"

#include <string.h>

unsigned toe_steer_verdict(struct toe_stack *st, unsigned v)
{
  if (v == TOE_STEER_BOTH)
    st->ctr.steer.to_both++;
  else if (v == TOE_STEER_HOST)
    st->ctr.steer.to_host++;
  else
    st->ctr.steer.to_engine++;
  return v;
}

static unsigned verdict(struct toe_stack *st, unsigned v)
{
  return toe_steer_verdict(st, v);
}

/* A filter hit: count it on the filter. */
static bool hit(struct toe_stack *st, uint8_t proto, uint16_t lport, uint32_t raddr, uint16_t rport,
                size_t len)
{
  struct toe_filter *f = toe_filt_lookup(st, proto, lport, raddr, rport);
  if (!f)
    return false;
  f->frames++;
  f->bytes += len;
  return true;
}

/*
 * An ICMP error quotes the offending datagram's IP header and at least its first 8 bytes (RFC 792;
 * RFC 1122 3.2.2), which hold both ports of TCP and UDP. The quoted datagram is one we (or the OS)
 * sent: its source is the shared address and its source port the local one.
 */
static unsigned steer_icmp_error(struct toe_stack *st, const struct toe_icmp_view *ic, size_t len)
{
  /* The quote is usually cut short after 8 bytes of payload, so only the fields needed are read
   * (version, header length, protocol, addresses, ports); the engine validates the rest. */
  if (ic->body_len < 20 || (ic->body[0] >> 4) != 4)
    goto host;
  size_t qhl = (size_t)(ic->body[0] & 0x0f) * 4u;
  if (qhl < 20 || ic->body_len < qhl + 4)
    goto host;
  uint8_t proto = ic->body[9];
  uint32_t src = toe_load_be32(ic->body + 12), dst = toe_load_be32(ic->body + 16);
  if (src != st->cfg.addr || (proto != TOE_IPPROTO_TCP && proto != TOE_IPPROTO_UDP))
    goto host;
  const uint8_t *l4 = ic->body + qhl;
  if (hit(st, proto, toe_load_be16(l4), dst, toe_load_be16(l4 + 2), len)) {
    st->ctr.steer.icmp_err_engine++;
    return verdict(st, TOE_STEER_ENGINE);
  }
host:
  st->ctr.steer.icmp_err_host++;
  return verdict(st, TOE_STEER_HOST);
}

unsigned toe_steer_frame(struct toe_stack *st, const uint8_t *frame, size_t len)
{
  if (!st->cfg.steering)
    return TOE_STEER_ENGINE;
  struct toe_counters_steer *c = &st->ctr.steer;
  struct toe_eth_view eth;
  if (!frame || toe_eth_parse(&eth, frame, len) < 0) {
    c->malformed++;
    return verdict(st, TOE_STEER_ENGINE);
  }
  uint16_t vid = eth.tagged ? toe_eth_vid(&eth) : 0;
  if (vid != st->cfg.vlan_id) {
    c->not_ours++;
    return verdict(st, TOE_STEER_HOST);
  }
  const uint8_t *dst = toe_eth_dst(&eth);
  bool for_us = toe_mac_is_broadcast(dst) || memcmp(dst, st->cfg.mac.b, 6) == 0;
  if (eth.ethertype == TOE_ETHERTYPE_ARP && for_us)
    return verdict(st, TOE_STEER_BOTH); /* the engine answers; both learn neighbours */
  /* IPv6 is shared only when the engine has it on; else it is all the OS's. Its groups are on
   * 33:33:xx MACs (RFC 2464 7). */
  bool mac_ours = memcmp(dst, st->cfg.mac.b, 6) == 0;
  if (eth.ethertype == TOE_ETHERTYPE_IPV6 && st->ip6.enabled &&
      (mac_ours || (dst[0] == 0x33 && dst[1] == 0x33)))
    return toe_steer_ipv6(st, frame, len, eth.hdr_len, mac_ours);
  if (eth.ethertype != TOE_ETHERTYPE_IPV4 || !for_us) {
    c->not_ours++;
    return verdict(st, TOE_STEER_HOST);
  }

  const uint8_t *l3 = frame + eth.hdr_len;
  size_t l3_len = len - eth.hdr_len;
  struct toe_ipv4_view ip;
  /* The header checksum is the engine's to verify (it counts failures); a parse failure of any
   * kind goes there too. */
  if (toe_ipv4_parse(&ip, l3, l3_len, l3_len, true) < 0) {
    c->malformed++;
    return verdict(st, TOE_STEER_ENGINE);
  }
  if (ip.dst != st->cfg.addr) {
    /* Broadcasts, multicast, other addresses the OS may have on its interface. */
    c->not_ours++;
    return verdict(st, TOE_STEER_HOST);
  }
  if (toe_ipv4_is_fragment(&ip)) {
    c->fragments++;
    return verdict(st, TOE_STEER_ENGINE);
  }
  const uint8_t *l4 = l3 + ip.hdr_len;
  size_t l4_len = (size_t)ip.total_len - ip.hdr_len;
  switch (ip.proto) {
  case TOE_IPPROTO_TCP:
  case TOE_IPPROTO_UDP: {
    bool tcp = ip.proto == TOE_IPPROTO_TCP;
    if (l4_len < 4) {
      c->malformed++;
      return verdict(st, TOE_STEER_ENGINE);
    }
    if (hit(st, ip.proto, toe_load_be16(l4 + 2), ip.src, toe_load_be16(l4), len)) {
      if (tcp)
        c->tcp_engine++;
      else
        c->udp_engine++;
      return verdict(st, TOE_STEER_ENGINE);
    }
    if (tcp)
      c->tcp_host++;
    else
      c->udp_host++;
    return verdict(st, TOE_STEER_HOST);
  }
  case TOE_IPPROTO_ICMP: {
    struct toe_icmp_view ic;
    if (toe_icmp_parse(&ic, l4, l4_len) < 0) {
      c->malformed++;
      return verdict(st, TOE_STEER_ENGINE);
    }
    if (ic.type == TOE_ICMP_ECHO_REQUEST) {
      if (st->cfg.icmp_echo_host) {
        c->echo_host++;
        return verdict(st, TOE_STEER_HOST);
      }
      c->echo_engine++;
      return verdict(st, TOE_STEER_ENGINE);
    }
    if (toe_icmp_is_error(ic.type))
      return steer_icmp_error(st, &ic, len);
    c->icmp_other++;
    return verdict(st, TOE_STEER_HOST);
  }
  default:
    c->other_proto++;
    return verdict(st, TOE_STEER_HOST);
  }
}
