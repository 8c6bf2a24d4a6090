/*
 * Reading a fuzz input as a stream of little-endian fields (fuzz_session.c, fuzz_preload_msg.c):
 * a read past the end gives zeros, so a target decodes any input without checking lengths. And
 * the failure report every target makes: FZ_FAIL("what", ...) prints "<FZ_NAME>: what" and
 * aborts, FZ_NAME being the target's name, defined before this header is included.
 */
#ifndef TOE_FUZZ_FZ_INPUT_H
#define TOE_FUZZ_FZ_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef FZ_NAME
#error "define FZ_NAME (the fuzz target's name) before including fz_input.h"
#endif

#define FZ_FAIL(...)                                                                               \
  do {                                                                                             \
    fprintf(stderr, FZ_NAME ": " __VA_ARGS__);                                                     \
    fprintf(stderr, "\n");                                                                         \
    abort();                                                                                       \
  } while (0)

struct fz_in {
  const uint8_t *p; /* the next byte */
  size_t n;         /* bytes left */
};

static inline uint8_t fz_u8(struct fz_in *in)
{
  if (!in->n)
    return 0;
  in->n--;
  return *in->p++;
}

static inline uint32_t fz_u16(struct fz_in *in)
{
  uint32_t lo = fz_u8(in);
  return lo | (uint32_t)fz_u8(in) << 8;
}

static inline uint64_t fz_u64(struct fz_in *in)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)fz_u8(in) << (8 * i);
  return v;
}

/* Fills b with the next n bytes (zeros once the input runs out). */
static inline void fz_bytes(struct fz_in *in, uint8_t *b, size_t n)
{
  for (size_t i = 0; i < n; i++)
    b[i] = fz_u8(in);
}

#endif
