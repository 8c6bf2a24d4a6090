/*
 * `toectl capture FILE [--count N] [--filter EXPR] [--seconds S] [--snaplen N]`: a pcap of what
 * the device sees on the wire, both directions, offloaded flows included (ABI 1.2 CAPTURE; the
 * filter language is transport/capture_filter.h, evaluated in the device).
 */
#ifndef TOECTL_CAPTURE_H
#define TOECTL_CAPTURE_H

#include "toectl_dev.h"

#include <stdint.h>

struct tc_capture_args {
  const char *file;   /* "-": standard output */
  const char *filter; /* "" or NULL: every frame */
  uint64_t count;     /* 0: no limit */
  uint64_t seconds;   /* 0: no limit */
  uint32_t snaplen;   /* 0: as much as a buffer holds */
};

/* Parses the words after "capture". Returns 0, or 2 (bad usage) with a message printed. */
int tc_capture_parse(int argc, char **argv, struct tc_capture_args *a);

/* Runs the capture until --count, --seconds, SIGINT or SIGTERM. Returns the exit status: 0, or 1
 * (refused, the device went away, or the file cannot be written) with a message printed. */
int tc_capture_run(struct tc_dev *d, const char *ctl, const struct tc_capture_args *a);

#endif
