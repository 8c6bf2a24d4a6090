/*
 * The capture filter (src/transport/capture_filter.c) on hostile input: the device compiles an
 * expression a host client sent and evaluates it on every frame from the wire. The first byte
 * splits the input: that many bytes (at most 256, the ABI's limit) are the expression, the rest
 * is a frame to match it against. Any crash, out-of-bounds read or unbounded recursion is a bug;
 * a compiled filter must also give the same answer on the frame's first TOE_CAPF_HEADER_BYTES.
 *
 * The filter reads frames through the wire layer's frame view (wire/frame.h), which toe-impair
 * and toed's link drivers share; the same frame also goes through it whole here: offsets inside
 * the frame, and the TCP/UDP checksum it computes in place is stable (a second run writes the
 * same bytes) and leaves the view unchanged.
 */
#include "transport/capture_filter.h"
#include "wire/frame.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void frame_view(const uint8_t *frame, size_t flen)
{
  static uint8_t copy[65536 + 64];
  if (flen > sizeof copy)
    return;
  memcpy(copy, frame, flen);
  struct toe_frame_view v;
  if (toe_frame_parse(&v, copy, flen, flen) != 0)
    return;
  if (v.l3_off > flen || v.ip_end > flen || v.l4_off > flen || (v.ports && v.l4_off + 4 > flen))
    abort();
  if (v.ipver && (v.ip_end < v.l3_off || (v.l4_off && v.l4_off < v.l3_off)))
    abort();
  if (toe_frame_l4_csum(copy, &v) != 0)
    return;
  static uint8_t again[65536 + 64];
  memcpy(again, copy, flen);
  struct toe_frame_view w;
  if (toe_frame_parse(&w, again, flen, flen) != 0 || w.l4_off != v.l4_off || w.ip_end != v.ip_end ||
      toe_frame_l4_csum(again, &w) != 0 || memcmp(again, copy, flen) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  size_t n = data[0];
  data++;
  size--;
  if (n > size)
    n = size;
  struct toe_capf f;
  size_t pos = 0;
  const char *msg = NULL;
  int rc = toe_capf_compile(&f, (const char *)data, n, &pos, &msg);
  if (rc != 0 && (pos > n || msg == NULL))
    abort();
  const uint8_t *frame = data + n;
  size_t flen = size - n;
  bool whole = toe_capf_match(&f, frame, flen);
  size_t head = flen < TOE_CAPF_HEADER_BYTES ? flen : TOE_CAPF_HEADER_BYTES;
  if (toe_capf_match(&f, frame, head) != whole)
    abort();
  frame_view(frame, flen);
  return 0;
}
