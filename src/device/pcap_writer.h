/*
 * A classic pcap file writer (the libpcap format: a 24-byte global header and one 16-byte record
 * header per frame), LINKTYPE_ETHERNET with nanosecond timestamps (magic 0xa1b23c4d), written
 * with buffered stdio. toed records every frame it receives from and sends to the wire, because
 * with the stack offloaded the host's own tcpdump no longer sees those flows.
 */
#ifndef TOED_PCAP_WRITER_H
#define TOED_PCAP_WRITER_H

#include "toe/pbuf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TOED_PCAP_SNAPLEN 262144u /* what tcpdump uses; covers any GSO super-frame */

struct toed_pcap {
  FILE *f;
  uint64_t frames;       /* records written */
  uint64_t bytes;        /* frame bytes written */
  uint64_t write_errors; /* records lost to a failed write */
  int last_errno;        /* of the last failed write or flush, 0 if none */
};

/*
 * Creates (truncates) `path` and writes the global header. Returns 0 or a negative errno; `p` is
 * then unusable (f == NULL).
 */
int toed_pcap_open(struct toed_pcap *p, const char *path);

/* Appends one frame captured at `ts_ns` (CLOCK_REALTIME nanoseconds). */
void toed_pcap_write(struct toed_pcap *p, const uint8_t *frame, size_t len, uint64_t ts_ns);

/* Same for a frame held in a pbuf chain. */
void toed_pcap_write_chain(struct toed_pcap *p, const struct toe_pbuf *frame, uint64_t ts_ns);

/* Pushes buffered records to the file. Returns 0 or a negative errno. */
int toed_pcap_flush(struct toed_pcap *p);

/* Flushes and closes. Returns 0 or a negative errno. */
int toed_pcap_close(struct toed_pcap *p);

#endif
