/*
 * UDP header (RFC 768).
 */
#include "wire/udp.h"

#include "common/byteorder.h"
#include "toe/errno.h"
#include "wire/checksum.h"
#include "wire/ipv4.h"

#include <string.h>

int toe_udp_parse(struct toe_udp_view *v, const uint8_t *p, size_t avail, size_t dgram_len)
{
  if (avail < TOE_UDP_HLEN || dgram_len < TOE_UDP_HLEN)
    return -TOE_EINVAL;
  uint16_t len = toe_load_be16(p + 4);
  /* The length counts header and data (RFC 768), so it is >= 8; it may be less than the IP
   * payload (the rest is ignored) but never more (RFC 1122 4.1.3.4 spirit: a lying length is
   * dropped). */
  if (len < TOE_UDP_HLEN || len > dgram_len)
    return -TOE_EINVAL;
  v->src_port = toe_load_be16(p);
  v->dst_port = toe_load_be16(p + 2);
  v->len = len;
  memcpy(&v->csum, p + 6, 2);
  return 0;
}

bool toe_udp_csum_ok(const struct toe_udp_view *v, uint32_t sum, uint32_t src, uint32_t dst)
{
  /* An all-zero field means the sender computed no checksum (RFC 768). */
  if (v->csum == 0)
    return true;
  /* A correct checksum makes the sum over pseudo-header and datagram 0xffff (RFC 1071 1). */
  sum = toe_csum_add32(sum, toe_csum_pseudo_v4(src, dst, TOE_IPPROTO_UDP, v->len));
  return toe_csum_fold(sum) == 0;
}

void toe_udp_write(uint8_t *p, uint16_t src_port, uint16_t dst_port, uint16_t len)
{
  toe_store_be16(p, src_port);
  toe_store_be16(p + 2, dst_port);
  toe_store_be16(p + 4, len);
  p[6] = 0;
  p[7] = 0;
}

uint16_t toe_udp_csum_finish(uint32_t sum, uint32_t src, uint32_t dst, uint16_t len)
{
  uint16_t c =
      toe_csum_fold(toe_csum_add32(sum, toe_csum_pseudo_v4(src, dst, TOE_IPPROTO_UDP, len)));
  /* A computed zero is sent as all ones, since zero means "no checksum" (RFC 768). Both are the
   * same value in ones'-complement arithmetic, so the receiver's check still passes. */
  return c == 0 ? 0xffff : c;
}
