/*
 * The device's classic-BPF checker and interpreter (src/transport/capture_bpf.c) on hostile
 * input: a host client sends the program, the wire sends the frames. The first two bytes give the
 * program's length in instructions (8 bytes each: code, jt, jf, k, little-endian as the ABI
 * carries them); the rest is the frame, copied into a buffer of exactly its size so that ASan
 * sees any read past it. Checked: the checker never crashes; an accepted program runs without
 * crashing or reading outside the frame; a program is accepted only if it is bounded (the last
 * instruction a RET, every jump forward and inside); the answer depends only on the bytes present
 * (running it twice gives the same answer, with a truncated view never reading more).
 */
#include "transport/capture_bpf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct toe_bpf_insn prog[TOE_BPF_MAXINSNS + 1];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 2)
    return 0;
  uint32_t n = (uint32_t)(data[0] | data[1] << 8) % (TOE_BPF_MAXINSNS + 2);
  data += 2;
  size -= 2;
  if ((size_t)n * 8 > size)
    n = (uint32_t)(size / 8);
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *p = data + (size_t)i * 8;
    prog[i].code = (uint16_t)(p[0] | p[1] << 8);
    prog[i].jt = p[2];
    prog[i].jf = p[3];
    prog[i].k = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
  }
  uint32_t bad = 0;
  const char *why = NULL;
  if (toe_bpf_check(prog, n, &bad, &why) != 0) {
    if (!why || bad > n)
      abort();
    return 0;
  }
  if (n == 0 || n > TOE_BPF_MAXINSNS || (prog[n - 1].code & 0x07) != 0x06)
    abort();
  size_t flen = size - (size_t)n * 8;
  uint8_t *frame = malloc(flen ? flen : 1);
  if (!frame)
    return 0;
  memcpy(frame, data + (size_t)n * 8, flen);
  uint32_t wire = (uint32_t)flen + (flen ? frame[0] : 0u); /* sometimes longer than present */
  uint32_t a = toe_bpf_run(prog, n, frame, wire, (uint32_t)flen);
  if (toe_bpf_run(prog, n, frame, wire, (uint32_t)flen) != a)
    abort();
  (void)toe_bpf_run(prog, n, frame, wire, (uint32_t)(flen / 2));
  free(frame);
  return 0;
}
