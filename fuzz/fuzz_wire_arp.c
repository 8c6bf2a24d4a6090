/*
 * Fuzzes the ARP parser: accept/reject against a model, and write(parse(x)) == x's first 28
 * bytes for every accepted packet.
 */
#include "wire/arp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile unsigned sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  int want_ok = size >= 28 && data[0] == 0 && data[1] == 1 && data[2] == 0x08 && data[3] == 0 &&
                data[4] == 6 && data[5] == 4 && data[6] == 0 && (data[7] == 1 || data[7] == 2);
  struct toe_arp_view v;
  int r = toe_arp_parse(&v, data, size);
  if ((r == 0) != want_ok)
    abort();
  if (r != 0)
    return 0;

  if (v.sha != data + 8 || v.tha != data + 18)
    abort();
  unsigned acc = v.op ^ v.spa ^ v.tpa;
  for (int i = 0; i < 6; i++)
    acc += v.sha[i] + v.tha[i];
  sink = acc;

  uint8_t p[TOE_ARP_LEN];
  if (toe_arp_write(p, v.op, v.sha, v.spa, v.tha, v.tpa) != TOE_ARP_LEN)
    abort();
  if (memcmp(p, data, TOE_ARP_LEN) != 0)
    abort();
  struct toe_arp_view w;
  if (toe_arp_parse(&w, p, sizeof p) != 0 || w.op != v.op || w.spa != v.spa || w.tpa != v.tpa ||
      memcmp(w.sha, v.sha, 6) != 0 || memcmp(w.tha, v.tha, 6) != 0)
    abort();
  return 0;
}
