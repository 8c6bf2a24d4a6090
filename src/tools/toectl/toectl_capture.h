/*
 * `toectl capture [FILE | -w FILE] [--format pcap|pcapng] [--count N] [--seconds S]
 * [--snaplen N] [--filter EXPR | EXPR...]`: a pcap or pcapng file of what the device sees on the
 * wire, both directions, offloaded flows included. EXPR is tcpdump's filter language
 * (pcap-filter(7)), compiled here with libpcap's pcap_compile() and run by the device as a classic
 * BPF program (ABI 1.4, TOE_ABI_CAP_CAPTURE_BPF); a device without it gets the 1.2 filter text
 * (transport/capture_filter.h), which covers the simple expressions.
 */
#ifndef TOECTL_CAPTURE_H
#define TOECTL_CAPTURE_H

#include "toectl_dev.h"
#include "transport/capture_bpf.h"

#include <stdbool.h>
#include <stdint.h>

#define TC_SNAPLEN_MAX 262144u /* tcpdump's -s limit; 0 means this, as in tcpdump */
#define TC_FILTER_MAX 4096u    /* bytes of an expression */

struct tc_capture_args {
  const char *file;                /* "-": standard output */
  const char *filter;              /* the expression ("": every frame; static storage) */
  uint64_t count;                  /* 0: no limit */
  uint64_t seconds;                /* 0: no limit */
  uint32_t snaplen;                /* 1..TC_SNAPLEN_MAX */
  bool snaplen_set;                /* given (and not 0) */
  int format;                      /* enum toe_pcapw_format */
  const struct toe_bpf_insn *prog; /* compiled by libpcap (static storage; NULL: every frame) */
  uint32_t prog_len;
};

/* Parses the words after "capture" and compiles the filter. Returns 0, or 2 (bad usage or a
 * filter libpcap or the device's checker refuses) with a message printed. */
int tc_capture_parse(int argc, char **argv, struct tc_capture_args *a);

/* Runs the capture until --count, --seconds, SIGINT or SIGTERM. Returns the exit status: 0, or 1
 * (refused, the device went away, or the file cannot be written) with a message printed. */
int tc_capture_run(struct tc_dev *d, const char *ctl, const struct tc_capture_args *a);

#endif
