/*
 * Ethernet II framing with 802.1Q tag recognition (IEEE 802.3, IEEE 802.1Q).
 */
#ifndef TOE_WIRE_ETHERNET_H
#define TOE_WIRE_ETHERNET_H

#include "toe/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOE_ETH_ALEN 6
#define TOE_ETH_HLEN 14      /* untagged header */
#define TOE_ETH_VLAN_HLEN 18 /* header with one 802.1Q tag */
#define TOE_ETHERTYPE_IPV4 0x0800
#define TOE_ETHERTYPE_ARP 0x0806
#define TOE_ETHERTYPE_VLAN 0x8100
#define TOE_ETHERTYPE_QINQ 0x88a8
#define TOE_ETHERTYPE_IPV6 0x86dd

/* A checked view of an Ethernet header. Valid only while the frame bytes are. */
struct toe_eth_view {
  const uint8_t *frame; /* first byte of the frame */
  uint16_t hdr_len;     /* 14, or 18 with a tag: payload starts at frame + hdr_len */
  uint16_t ethertype;   /* of the payload (after any tag) */
  bool tagged;          /* an 802.1Q tag was present */
  uint16_t tci;         /* tag control information (PCP/DEI/VID) when tagged */
};

/*
 * Parses the header of the `len`-byte frame at `frame`. Returns 0, or -TOE_EINVAL if the frame is
 * shorter than its header, or it carries stacked tags (QinQ), which the engine does not terminate.
 * Ethertype values below 0x0600 (802.3 length fields) are reported as-is; callers drop them.
 */
int toe_eth_parse(struct toe_eth_view *v, const uint8_t *frame, size_t len);

static inline const uint8_t *toe_eth_dst(const struct toe_eth_view *v)
{
  return v->frame;
}
static inline const uint8_t *toe_eth_src(const struct toe_eth_view *v)
{
  return v->frame + 6;
}
static inline uint16_t toe_eth_vid(const struct toe_eth_view *v)
{
  return v->tci & 0x0fff;
}

/* True for ff:ff:ff:ff:ff:ff. */
bool toe_mac_is_broadcast(const uint8_t *mac);
/* True for group addresses (I/G bit set), broadcast included. */
bool toe_mac_is_multicast(const uint8_t *mac);
/* True for 00:00:00:00:00:00. */
bool toe_mac_is_zero(const uint8_t *mac);

/*
 * Writes an Ethernet header into `hdr` (14 bytes, or 18 if `tagged`, with TCI `tci`) and returns
 * the number of bytes written.
 */
uint16_t toe_eth_write(uint8_t *hdr, const uint8_t *dst, const uint8_t *src, uint16_t ethertype,
                       bool tagged, uint16_t tci);

#endif
