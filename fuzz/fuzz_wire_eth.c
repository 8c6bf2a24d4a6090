/*
 * Fuzzes the Ethernet parser: accepted frames must give a consistent view that re-emits to the
 * same header bytes; the accept/reject decision must match a straightforward model.
 */
#include "wire/ethernet.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* Model: 14 bytes, not an outer S-tag; with a C-tag 18 bytes and no second tag. */
  int want_ok = 0;
  if (size >= 14) {
    unsigned t = (unsigned)data[12] << 8 | data[13];
    if (t == 0x8100)
      want_ok = size >= 18 && ((data[16] << 8 | data[17]) != 0x8100) &&
                ((data[16] << 8 | data[17]) != 0x88a8);
    else
      want_ok = t != 0x88a8;
  }

  struct toe_eth_view v;
  int r = toe_eth_parse(&v, data, size);
  if ((r == 0) != want_ok)
    abort();
  if (r != 0)
    return 0;

  if (v.frame != data || (v.hdr_len != 14 && v.hdr_len != 18) || v.hdr_len > size)
    abort();
  if (v.tagged != (v.hdr_len == 18))
    abort();
  if (!v.tagged && v.tci != 0)
    abort();
  const uint8_t *dst = toe_eth_dst(&v), *src = toe_eth_src(&v);
  unsigned acc = v.ethertype ^ toe_eth_vid(&v);
  for (int i = 0; i < 6; i++)
    acc += dst[i] + src[i];
  acc += toe_mac_is_broadcast(dst) + toe_mac_is_multicast(dst) + toe_mac_is_zero(src);
  if (toe_mac_is_broadcast(dst) && !toe_mac_is_multicast(dst))
    abort();
  sink = acc;

  /* Re-emit: the header bytes are fully determined by the view. */
  uint8_t h[18];
  uint16_t n = toe_eth_write(h, dst, src, v.ethertype, v.tagged, v.tci);
  if (n != v.hdr_len || memcmp(h, data, n) != 0)
    abort();
  struct toe_eth_view w;
  if (toe_eth_parse(&w, h, n) != 0 || w.hdr_len != v.hdr_len || w.ethertype != v.ethertype ||
      w.tagged != v.tagged || w.tci != v.tci)
    abort();
  return 0;
}
