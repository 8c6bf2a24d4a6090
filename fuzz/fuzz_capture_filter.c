/*
 * The capture filter (src/transport/capture_filter.c) on hostile input: the device compiles an
 * expression a host client sent and evaluates it on every frame from the wire. The first byte
 * splits the input: that many bytes (at most 256, the ABI's limit) are the expression, the rest
 * is a frame to match it against. Any crash, out-of-bounds read or unbounded recursion is a bug;
 * a compiled filter must also give the same answer on the frame's first TOE_CAPF_HEADER_BYTES.
 */
#include "transport/capture_filter.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

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
  return 0;
}
