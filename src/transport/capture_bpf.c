/*
 * Classic BPF checker and interpreter for capture filters (capture_bpf.h). Written from the
 * instruction set's description (bpf(4); Linux Documentation/networking/filter.rst), with the
 * answers of libpcap's bpf_filter() as the reference: tests/unit/transport/test_capture_bpf.c runs
 * both on the same programs and frames.
 */
#include "transport/capture_bpf.h"

#include "toe/errno.h"

#include <stdbool.h>

/* Instruction classes, sizes, modes and operations: the numbers of the classic encoding. */
enum {
  C_LD = 0x00,
  C_LDX = 0x01,
  C_ST = 0x02,
  C_STX = 0x03,
  C_ALU = 0x04,
  C_JMP = 0x05,
  C_RET = 0x06,
  C_MISC = 0x07,
  S_W = 0x00,
  S_H = 0x08,
  S_B = 0x10,
  M_IMM = 0x00,
  M_ABS = 0x20,
  M_IND = 0x40,
  M_MEM = 0x60,
  M_LEN = 0x80,
  M_MSH = 0xa0,
  A_ADD = 0x00,
  A_SUB = 0x10,
  A_MUL = 0x20,
  A_DIV = 0x30,
  A_OR = 0x40,
  A_AND = 0x50,
  A_LSH = 0x60,
  A_RSH = 0x70,
  A_NEG = 0x80,
  A_MOD = 0x90,
  A_XOR = 0xa0,
  J_JA = 0x00,
  J_JEQ = 0x10,
  J_JGT = 0x20,
  J_JGE = 0x30,
  J_JSET = 0x40,
  SRC_K = 0x00,
  SRC_X = 0x08,
  R_K = 0x00,
  R_A = 0x10,
  MISC_TAX = 0x00,
  MISC_TXA = 0x80,
};

/* Whether `code` is an instruction we run, and `k` makes sense for it. */
static const char *insn_problem(const struct toe_bpf_insn *in)
{
  uint16_t c = in->code;
  switch (c) {
  case C_RET | R_K:
  case C_RET | R_A:
  case C_LD | S_W | M_ABS:
  case C_LD | S_H | M_ABS:
  case C_LD | S_B | M_ABS:
  case C_LD | S_W | M_IND:
  case C_LD | S_H | M_IND:
  case C_LD | S_B | M_IND:
  case C_LD | S_W | M_LEN:
  case C_LDX | S_W | M_LEN:
  case C_LDX | S_B | M_MSH:
  case C_LD | M_IMM:
  case C_LDX | M_IMM:
  case C_MISC | MISC_TAX:
  case C_MISC | MISC_TXA:
  case C_ALU | A_NEG:
  case C_JMP | J_JA:
    return NULL;
  case C_LD | M_MEM:
  case C_LDX | M_MEM:
  case C_ST:
  case C_STX:
    return in->k < TOE_BPF_MEMWORDS ? NULL : "scratch memory index over 15";
  default:
    break;
  }
  /* ALU and JMP: the class, an operation and K or X, nothing else (c <= 0xff). */
  if ((c & 0x07) == C_ALU && c <= 0xff) {
    uint16_t op = c & 0xf0;
    if (op == A_NEG || op > A_XOR)
      return "unknown opcode";
    if (!(c & SRC_X) && (op == A_DIV || op == A_MOD) && in->k == 0)
      return "division by a constant zero";
    if (!(c & SRC_X) && (op == A_LSH || op == A_RSH) && in->k >= 32)
      return "constant shift of 32 or more";
    return NULL;
  }
  if ((c & 0x07) == C_JMP && c <= 0xff) {
    uint16_t op = c & 0xf0;
    return op == J_JA || op > J_JSET ? "unknown opcode" : NULL;
  }
  return "unknown opcode";
}

int toe_bpf_check(const struct toe_bpf_insn *prog, uint32_t n, uint32_t *bad, const char **why)
{
  const char *msg = NULL;
  uint32_t at = n;
  if (n == 0 || n > TOE_BPF_MAXINSNS || !prog) {
    msg = n == 0 ? "empty program" : "more than 4096 instructions";
    goto fail;
  }
  for (uint32_t i = 0; i < n; i++) {
    const struct toe_bpf_insn *in = &prog[i];
    at = i;
    msg = insn_problem(in);
    if (msg)
      goto fail;
    if (in->code == (C_JMP | J_JA)) {
      /* Forward only (k is unsigned here: a "negative" offset is a huge one) and inside. */
      if (in->k >= n - i - 1) {
        msg = "jump past the end of the program";
        goto fail;
      }
    } else if ((in->code & 0x07) == C_JMP) {
      if (in->jt >= n - i - 1 || in->jf >= n - i - 1) {
        msg = "jump past the end of the program";
        goto fail;
      }
    }
  }
  /* Every path moves forward and ends in a RET: the last instruction is one. */
  if ((prog[n - 1].code & 0x07) != C_RET) {
    at = n - 1;
    msg = "the last instruction is not a RET";
    goto fail;
  }
  return 0;
fail:
  if (bad)
    *bad = at;
  if (why)
    *why = msg;
  return -TOE_EINVAL;
}

/* Loads `size` (1, 2 or 4) big-endian bytes at `off` + `idx`; false if any lies past buflen. */
static bool load(const uint8_t *pkt, uint32_t buflen, uint32_t off, uint32_t idx, uint32_t size,
                 uint32_t *out)
{
  uint64_t at = (uint64_t)off + idx; /* no wrap: both are 32-bit */
  if (at > buflen || buflen - at < size)
    return false;
  const uint8_t *p = pkt + at;
  uint32_t v = 0;
  for (uint32_t i = 0; i < size; i++)
    v = v << 8 | p[i];
  *out = v;
  return true;
}

uint32_t toe_bpf_run(const struct toe_bpf_insn *prog, uint32_t n, const uint8_t *pkt,
                     uint32_t wirelen, uint32_t buflen)
{
  uint32_t A = 0, X = 0, mem[TOE_BPF_MEMWORDS] = {0};
  /* Each step moves pc forward by at least one: at most n steps. The bound on pc is kept even
   * though the checker guarantees it, so a caller's mistake cannot become an out-of-bounds read. */
  for (uint32_t pc = 0; pc < n; pc++) {
    const struct toe_bpf_insn *in = &prog[pc];
    uint32_t k = in->k, v;
    switch (in->code) {
    case C_RET | R_K:
      return k;
    case C_RET | R_A:
      return A;
    case C_LD | S_W | M_ABS:
    case C_LD | S_H | M_ABS:
    case C_LD | S_B | M_ABS:
    case C_LD | S_W | M_IND:
    case C_LD | S_H | M_IND:
    case C_LD | S_B | M_IND: {
      uint32_t size = (in->code & 0x18) == S_W ? 4u : (in->code & 0x18) == S_H ? 2u : 1u;
      uint32_t idx = (in->code & 0xe0) == M_IND ? X : 0;
      if (!load(pkt, buflen, k, idx, size, &v))
        return 0; /* outside the bytes present: not wanted (as bpf_filter does) */
      A = v;
      break;
    }
    case C_LDX | S_B | M_MSH: /* X = 4 * (pkt[k] & 0xf): an IPv4 header's length */
      if (!load(pkt, buflen, k, 0, 1, &v))
        return 0;
      X = (v & 0xf) << 2;
      break;
    case C_LD | S_W | M_LEN:
      A = wirelen;
      break;
    case C_LDX | S_W | M_LEN:
      X = wirelen;
      break;
    case C_LD | M_IMM:
      A = k;
      break;
    case C_LDX | M_IMM:
      X = k;
      break;
    case C_LD | M_MEM:
      A = mem[k % TOE_BPF_MEMWORDS]; /* checked < 16; the mask keeps a bad caller in bounds */
      break;
    case C_LDX | M_MEM:
      X = mem[k % TOE_BPF_MEMWORDS];
      break;
    case C_ST:
      mem[k % TOE_BPF_MEMWORDS] = A;
      break;
    case C_STX:
      mem[k % TOE_BPF_MEMWORDS] = X;
      break;
    case C_MISC | MISC_TAX:
      X = A;
      break;
    case C_MISC | MISC_TXA:
      A = X;
      break;
    case C_ALU | A_NEG:
      A = 0u - A;
      break;
    case C_JMP | J_JA:
      if (k >= n - pc - 1)
        return 0;
      pc += k;
      break;
    default:
      if ((in->code & 0x07) == C_ALU) {
        uint32_t s = (in->code & SRC_X) ? X : k;
        switch (in->code & 0xf0) {
        case A_ADD:
          A += s;
          break;
        case A_SUB:
          A -= s;
          break;
        case A_MUL:
          A *= s;
          break;
        case A_DIV: /* 32-bit division: fine on the device's 32-bit cores */
          if (s == 0)
            return 0;
          A /= s;
          break;
        case A_MOD:
          if (s == 0)
            return 0;
          A %= s;
          break;
        case A_OR:
          A |= s;
          break;
        case A_AND:
          A &= s;
          break;
        case A_XOR:
          A ^= s;
          break;
        case A_LSH:
          A = s < 32 ? A << s : 0;
          break;
        case A_RSH:
          A = s < 32 ? A >> s : 0;
          break;
        default:
          return 0; /* refused by the checker */
        }
      } else if ((in->code & 0x07) == C_JMP) {
        uint32_t s = (in->code & SRC_X) ? X : k;
        bool t;
        switch (in->code & 0xf0) {
        case J_JEQ:
          t = A == s;
          break;
        case J_JGT:
          t = A > s;
          break;
        case J_JGE:
          t = A >= s;
          break;
        case J_JSET:
          t = (A & s) != 0;
          break;
        default:
          return 0;
        }
        pc += t ? in->jt : in->jf;
      } else {
        return 0; /* refused by the checker */
      }
      break;
    }
  }
  return 0; /* ran off the end: not reached for a checked program */
}
