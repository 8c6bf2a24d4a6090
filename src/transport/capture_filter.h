/*
 * The capture filter language of `toectl capture --filter` (docs/operations.md "Capturing what
 * the device sees"), compiled and evaluated by the device on every frame it copies to a capture
 * (ABI 1.2 CAPTURE), and compiled by toectl too, so a typo is reported with its position before
 * anything is sent.
 *
 *   expr    := and { ("or" | "||") and }
 *   and     := unary { ["and" | "&&"] unary }        juxtaposition is "and": "tcp port 80"
 *   unary   := ("not" | "!") unary | "(" expr ")" | primitive
 *   primitive := "arp" | "ip" | "icmp" | "tcp" | "udp"
 *              | ["src" | "dst"] "host" A.B.C.D      IPv4 source/destination (ARP: sender/target)
 *              | ["src" | "dst"] "port" N            TCP or UDP port (first fragment only)
 *
 * An empty expression matches every frame. Frames are Ethernet II with at most one 802.1Q tag.
 * The compiled form is a fixed array (no allocation), so the device can hold one per session and
 * evaluate it in bounded time: at most TOE_CAPF_MAX_NODES nodes, nesting at most
 * TOE_CAPF_MAX_DEPTH. Portable C (the transport library): no OS headers.
 */
#ifndef TOE_TRANSPORT_CAPTURE_FILTER_H
#define TOE_TRANSPORT_CAPTURE_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOE_CAPF_MAX_NODES 64u
#define TOE_CAPF_MAX_DEPTH 16u

struct toe_capf_node {
  uint8_t op; /* enum in capture_filter.c */
  uint8_t a;  /* operands (node indices) of not/and/or */
  uint8_t b;
  uint8_t reserved;
  uint32_t val; /* host: IPv4 address (host order); port: the port */
};

struct toe_capf {
  struct toe_capf_node n[TOE_CAPF_MAX_NODES];
  uint32_t count;
  uint32_t root;
};

/*
 * Compiles `len` bytes of `text` (need not be NUL-terminated). Returns 0, or -TOE_EINVAL with
 * *err_pos the byte offset of the problem and *err_msg a static phrase saying what was expected
 * (either pointer may be NULL). `f` matches everything after a failed compile.
 */
int toe_capf_compile(struct toe_capf *f, const char *text, size_t len, size_t *err_pos,
                     const char **err_msg);

/* True if the Ethernet frame (its first `len` bytes) matches. Never reads beyond `len`. */
bool toe_capf_match(const struct toe_capf *f, const uint8_t *frame, size_t len);

/* Bytes of a frame the filter may look at: evaluating on a frame's first this many bytes gives
 * the same answer as on the whole frame. */
#define TOE_CAPF_HEADER_BYTES 128u

#endif
