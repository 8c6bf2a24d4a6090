/*
 * The pcap and pcapng file writer shared by toed (--pcap: every frame it receives and sends) and
 * toectl capture (the frames the device streams over the transport): Ethernet frames
 * (LINKTYPE_ETHERNET) with nanosecond timestamps, written with buffered stdio.
 *
 *   - pcap (the default): the classic libpcap format, https://www.tcpdump.org/manpages/
 *     pcap-savefile.5.html, magic 0xa1b23c4d (nanoseconds), in the writer's byte order;
 *   - pcapng (RFC draft draft-ietf-opsawg-pcapng): a Section Header Block, one Interface
 *     Description Block (linktype 1, the snap length, if_tsresol 9: nanoseconds) and an Enhanced
 *     Packet Block per frame, with the epb_flags option giving its direction (inbound or
 *     outbound) when it is known; readers (tshark, Wireshark) show it as frame.packet_flags.
 *
 * A write error does not stop the caller: the record is counted in write_errors and the errno
 * kept in last_errno (toed keeps running; toectl checks after each batch).
 */
#ifndef TOE_CAPTURE_PCAP_WRITER_H
#define TOE_CAPTURE_PCAP_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum toe_pcapw_format {
  TOE_PCAPW_PCAP = 0,
  TOE_PCAPW_PCAPNG = 1,
};

/* A frame's direction; IN and OUT are pcapng's epb_flags bits 0-1 (and the ABI's CAPTURE_DIR). */
#define TOE_PCAPW_DIR_UNKNOWN 0u
#define TOE_PCAPW_DIR_IN 1u
#define TOE_PCAPW_DIR_OUT 2u

#define TOE_PCAPW_SNAPLEN_MAX 262144u /* what tcpdump uses; covers any GSO super-frame */

struct toe_pcapw {
  FILE *f;    /* NULL: closed (every call is then a no-op) */
  bool own;   /* opened here (closed by toe_pcapw_close), not standard output */
  int format; /* enum toe_pcapw_format */
  uint32_t snaplen;
  uint64_t frames;       /* records written */
  uint64_t bytes;        /* frame bytes written */
  uint64_t write_errors; /* records lost or damaged by a failed write */
  int last_errno;        /* of the last failed write or flush, 0 if none */
  uint64_t last_ts_ns;   /* the stamp of the last record written */
  uint64_t ts_raised;    /* records stamped later than asked, to keep the file in time order */
  /* The record being written (toe_pcapw_begin .. toe_pcapw_end). */
  uint32_t rec_incl; /* frame bytes in the record (the first ones given, up to snaplen) */
  uint32_t rec_done; /* of which written so far */
  unsigned rec_dir;
  bool rec_failed;
};

/*
 * Creates (truncates) `path`, or takes standard output for "-", and writes the file's header(s)
 * for `format` with `snaplen` (1..TOE_PCAPW_SNAPLEN_MAX: longer frames are cut to it). `bufsize`
 * is the stdio buffer (0: stdio's default). Returns 0, or a negative errno (-EINVAL for a bad
 * format or snap length); `w` is then closed (f == NULL).
 */
int toe_pcapw_open(struct toe_pcapw *w, const char *path, int format, uint32_t snaplen,
                   size_t bufsize);

/*
 * Appends one frame: `len` bytes at `frame` (at most snaplen of them are kept), `orig_len` its
 * length on the wire (>= len), captured at `ts_ns` (CLOCK_REALTIME nanoseconds), `dir` one of
 * TOE_PCAPW_DIR_* (pcap files cannot say it and drop it).
 *
 * Records are written in the order they come, and their stamps never go backwards: a stamp
 * earlier than the last record's is raised to it (counted in ts_raised). That happens when a
 * received frame, stamped by the kernel at its arrival, is handled after a frame the device sent
 * meanwhile (stamped when sent): the file keeps the order in which the device saw the frames,
 * and tools that read it (tcptrace, mergecap, Wireshark's time deltas) see time in that order.
 */
void toe_pcapw_write(struct toe_pcapw *w, uint64_t ts_ns, const void *frame, uint32_t len,
                     uint32_t orig_len, unsigned dir);

/* The same in pieces, for a frame held in several buffers: begin with the bytes that will
 * follow (`len`, cut to snaplen here), then toe_pcapw_data() until they are given (anything past
 * the cut is skipped), then toe_pcapw_end(). */
void toe_pcapw_begin(struct toe_pcapw *w, uint64_t ts_ns, uint32_t len, uint32_t orig_len,
                     unsigned dir);
void toe_pcapw_data(struct toe_pcapw *w, const void *p, size_t n);
void toe_pcapw_end(struct toe_pcapw *w);

/* Pushes buffered records to the file. Returns 0 or a negative errno. */
int toe_pcapw_flush(struct toe_pcapw *w);

/* Flushes and closes (standard output is flushed only). Returns 0 or a negative errno. */
int toe_pcapw_close(struct toe_pcapw *w);

/* "pcap" or "pcapng" for a format; parses those words (0, or -1 for anything else). */
const char *toe_pcapw_format_name(int format);
int toe_pcapw_parse_format(const char *s, int *format);

#endif
