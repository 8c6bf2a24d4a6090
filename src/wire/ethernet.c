/*
 * Ethernet II framing with 802.1Q tag recognition (IEEE 802.3 3.2.6, IEEE 802.1Q 9.5).
 */
#include "wire/ethernet.h"

#include "common/byteorder.h"
#include "toe/errno.h"

#include <string.h>

int toe_eth_parse(struct toe_eth_view *v, const uint8_t *frame, size_t len)
{
  if (len < TOE_ETH_HLEN)
    return -TOE_EINVAL;
  uint16_t type = toe_load_be16(frame + 12);
  v->frame = frame;
  v->hdr_len = TOE_ETH_HLEN;
  v->ethertype = type;
  v->tagged = false;
  v->tci = 0;
  /* An S-tag (802.1ad) as the outer tag means provider bridging: the engine is an end station and
   * does not terminate it. */
  if (type == TOE_ETHERTYPE_QINQ)
    return -TOE_EINVAL;
  if (type == TOE_ETHERTYPE_VLAN) {
    if (len < TOE_ETH_VLAN_HLEN)
      return -TOE_EINVAL;
    uint16_t inner = toe_load_be16(frame + 16);
    /* A second tag behind the first (stacked/QinQ): not terminated. */
    if (inner == TOE_ETHERTYPE_VLAN || inner == TOE_ETHERTYPE_QINQ)
      return -TOE_EINVAL;
    v->hdr_len = TOE_ETH_VLAN_HLEN;
    v->ethertype = inner;
    v->tagged = true;
    v->tci = toe_load_be16(frame + 14);
  }
  return 0;
}

bool toe_mac_is_broadcast(const uint8_t *mac)
{
  return (mac[0] & mac[1] & mac[2] & mac[3] & mac[4] & mac[5]) == 0xff;
}

/* The I/G bit is the least significant bit of the first octet (IEEE 802 8.2). */
bool toe_mac_is_multicast(const uint8_t *mac)
{
  return (mac[0] & 0x01) != 0;
}

bool toe_mac_is_zero(const uint8_t *mac)
{
  return (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) == 0;
}

uint16_t toe_eth_write(uint8_t *hdr, const uint8_t *dst, const uint8_t *src, uint16_t ethertype,
                       bool tagged, uint16_t tci)
{
  /* Copied out first: callers may pass addresses that point into the header being written (e.g.
   * turning a received frame around in place, dst = old source). */
  uint8_t d[TOE_ETH_ALEN], s[TOE_ETH_ALEN];
  memcpy(d, dst, TOE_ETH_ALEN);
  memcpy(s, src, TOE_ETH_ALEN);
  memcpy(hdr, d, TOE_ETH_ALEN);
  memcpy(hdr + 6, s, TOE_ETH_ALEN);
  if (tagged) {
    toe_store_be16(hdr + 12, TOE_ETHERTYPE_VLAN);
    toe_store_be16(hdr + 14, tci);
    toe_store_be16(hdr + 16, ethertype);
    return TOE_ETH_VLAN_HLEN;
  }
  toe_store_be16(hdr + 12, ethertype);
  return TOE_ETH_HLEN;
}
