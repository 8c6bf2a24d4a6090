/*
 * Classic BPF for capture filters (ABI 1.4, TOE_ABI_CAP_CAPTURE_BPF): `toectl capture` compiles a
 * tcpdump expression with libpcap's pcap_compile() and ships the program; the device checks it
 * once (toe_bpf_check) and runs it on every frame it copies to that capture (toe_bpf_run).
 *
 * The instruction set is the classic one of BSD and Linux (bpf(4), Documentation/networking/
 * filter.rst): the accumulator A, the index register X, 16 words of scratch memory, loads from the
 * frame (absolute, indexed, the IP header length idiom), ALU, forward conditional jumps and RET.
 * The program's answer is the number of bytes to keep: 0 drops the frame.
 *
 * Why it is safe to run a host's program on the device's only thread:
 *   - the checker refuses anything that could loop or fault before it runs (the rules of Linux's
 *     sk_chk_filter): at most TOE_BPF_MAXINSNS instructions, every opcode known, every jump
 *     forward and inside the program, no division or modulo by a constant zero, no constant shift
 *     of 32 or more, scratch memory indices below TOE_BPF_MEMWORDS, and the last instruction a RET;
 *   - so a run executes each instruction at most once (bounded by the program's length);
 *   - every load is checked against the bytes present: one that falls outside ends the run with
 *     0 (drop), as libpcap's bpf_filter() does; division by X = 0 likewise.
 * No allocation, no OS headers, no global state: the interpreter is portable to firmware.
 */
#ifndef TOE_TRANSPORT_CAPTURE_BPF_H
#define TOE_TRANSPORT_CAPTURE_BPF_H

#include <stddef.h>
#include <stdint.h>

#define TOE_BPF_MAXINSNS 4096u /* Linux's BPF_MAXINSNS */
#define TOE_BPF_MEMWORDS 16u

/* One instruction, the layout of struct bpf_insn / struct sock_filter. */
struct toe_bpf_insn {
  uint16_t code;
  uint8_t jt; /* conditional jumps: instructions to skip when true */
  uint8_t jf; /* ... when false */
  uint32_t k;
};

/*
 * Checks `n` instructions of `prog` (read only). Returns 0 if the program may be run, or
 * -TOE_EINVAL with *bad the index of the first offending instruction (n for an empty or too long
 * program) and *why a static phrase saying what is wrong; either pointer may be NULL.
 */
int toe_bpf_check(const struct toe_bpf_insn *prog, uint32_t n, uint32_t *bad, const char **why);

/*
 * Runs a program toe_bpf_check() accepted over a frame: `pkt` holds its first `buflen` bytes,
 * `wirelen` is its whole length (what `len` and BPF_LEN load). Returns the program's answer, the
 * number of bytes to keep (0: not wanted). Never reads outside pkt[0..buflen) or prog[0..n).
 */
uint32_t toe_bpf_run(const struct toe_bpf_insn *prog, uint32_t n, const uint8_t *pkt,
                     uint32_t wirelen, uint32_t buflen);

#endif
