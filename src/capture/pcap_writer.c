/*
 * pcap and pcapng writer (pcap_writer.h). Both formats are written in the host's byte order: the
 * reader finds it from the magic number (pcap) or the byte-order magic of the section (pcapng).
 * pcapng blocks follow draft-ietf-opsawg-pcapng section 4: every block is type, total length,
 * body padded to 32 bits, total length again; options are code, length, value padded to 32 bits,
 * ended by opt_endofopt.
 */
#include "capture/pcap_writer.h"

#include <errno.h>
#include <string.h>

#define PCAP_MAGIC_NSEC 0xa1b23c4du
#define LINKTYPE_ETHERNET 1u

#define NG_SHB 0x0a0d0d0au   /* Section Header Block */
#define NG_IDB 0x00000001u   /* Interface Description Block */
#define NG_EPB 0x00000006u   /* Enhanced Packet Block */
#define NG_BOM 0x1a2b3c4du   /* byte-order magic */
#define NG_OPT_END 0u        /* opt_endofopt */
#define NG_SHB_USERAPPL 4u   /* the application that wrote the section */
#define NG_IF_TSRESOL 9u     /* timestamp resolution: 9 = 10^-9 s */
#define NG_EPB_FLAGS 2u      /* epb_flags: bits 0-1 the direction */
#define NG_EPB_FIXED 28u     /* type, length, interface, ts high, ts low, captured, original */
#define NG_EPB_FLAGS_OPT 12u /* the epb_flags option (8) and opt_endofopt (4) */

static void fail(struct toe_pcapw *w)
{
  w->rec_failed = true;
  w->last_errno = errno ? errno : EIO;
}

static void put(struct toe_pcapw *w, const void *p, size_t n)
{
  if (n && !w->rec_failed && fwrite(p, 1, n, w->f) != n)
    fail(w);
}

static void put32(struct toe_pcapw *w, uint32_t v)
{
  put(w, &v, 4);
}

static void put16(struct toe_pcapw *w, uint16_t v)
{
  put(w, &v, 2);
}

static uint32_t pad4(uint32_t n)
{
  return (4u - (n & 3u)) & 3u;
}

static void headers(struct toe_pcapw *w)
{
  if (w->format == TOE_PCAPW_PCAP) {
    put32(w, PCAP_MAGIC_NSEC);
    put16(w, 2); /* version 2.4 */
    put16(w, 4);
    put32(w, 0); /* thiszone */
    put32(w, 0); /* sigfigs */
    put32(w, w->snaplen);
    put32(w, LINKTYPE_ETHERNET);
    return;
  }
  static const char appl[] = "toekit";
  const uint32_t appl_len = sizeof appl - 1;
  uint32_t shb_len = 24 + 4 + appl_len + pad4(appl_len) + 4 + 4;
  put32(w, NG_SHB);
  put32(w, shb_len);
  put32(w, NG_BOM);
  put16(w, 1); /* version 1.0 */
  put16(w, 0);
  const uint64_t unknown = UINT64_MAX; /* section length: not given (-1) */
  put(w, &unknown, 8);
  put16(w, NG_SHB_USERAPPL);
  put16(w, (uint16_t)appl_len);
  put(w, appl, appl_len);
  put(w, "\0\0\0", pad4(appl_len));
  put32(w, NG_OPT_END);
  put32(w, shb_len);

  uint32_t idb_len = 16 + 8 + 4 + 4;
  put32(w, NG_IDB);
  put32(w, idb_len);
  put16(w, LINKTYPE_ETHERNET);
  put16(w, 0);
  put32(w, w->snaplen);
  put16(w, NG_IF_TSRESOL);
  put16(w, 1);
  put(w, "\x09\0\0\0", 4); /* nanoseconds, and the padding */
  put32(w, NG_OPT_END);
  put32(w, idb_len);
}

int toe_pcapw_open(struct toe_pcapw *w, const char *path, int format, uint32_t snaplen,
                   size_t bufsize)
{
  memset(w, 0, sizeof *w);
  if ((format != TOE_PCAPW_PCAP && format != TOE_PCAPW_PCAPNG) || snaplen == 0 ||
      snaplen > TOE_PCAPW_SNAPLEN_MAX)
    return -EINVAL;
  bool to_stdout = strcmp(path, "-") == 0;
  FILE *f = to_stdout ? stdout : fopen(path, "wbe");
  if (!f)
    return -errno;
  /* A large buffer: toed's data path must not wait for the disk on every frame. */
  if (bufsize && !to_stdout)
    setvbuf(f, NULL, _IOFBF, bufsize);
  w->f = f;
  w->own = !to_stdout;
  w->format = format;
  w->snaplen = snaplen;
  errno = 0;
  headers(w);
  if (w->rec_failed || fflush(f) != 0) {
    int e = w->last_errno ? w->last_errno : errno ? errno : EIO;
    if (w->own)
      fclose(f);
    w->f = NULL;
    return -e;
  }
  return 0;
}

void toe_pcapw_begin(struct toe_pcapw *w, uint64_t ts_ns, uint32_t len, uint32_t orig_len,
                     unsigned dir)
{
  if (!w->f)
    return;
  uint32_t incl = len < w->snaplen ? len : w->snaplen;
  if (ts_ns < w->last_ts_ns) { /* in time order: see the header */
    ts_ns = w->last_ts_ns;
    w->ts_raised++;
  }
  w->last_ts_ns = ts_ns;
  if (orig_len < len)
    orig_len = len;
  w->rec_failed = false;
  w->rec_done = 0;
  w->rec_incl = incl;
  w->rec_dir = dir & 3u;
  if (w->format == TOE_PCAPW_PCAP) {
    put32(w, (uint32_t)(ts_ns / 1000000000ull));
    put32(w, (uint32_t)(ts_ns % 1000000000ull));
    put32(w, incl);
    put32(w, orig_len);
    return;
  }
  uint32_t total = NG_EPB_FIXED + incl + pad4(incl) + (w->rec_dir ? NG_EPB_FLAGS_OPT : 0) + 4;
  put32(w, NG_EPB);
  put32(w, total);
  put32(w, 0); /* the one interface */
  put32(w, (uint32_t)(ts_ns >> 32));
  put32(w, (uint32_t)ts_ns);
  put32(w, incl);
  put32(w, orig_len);
}

void toe_pcapw_data(struct toe_pcapw *w, const void *p, size_t n)
{
  if (!w->f)
    return;
  /* The first rec_incl bytes of the frame go in the record; the rest (past the cut) is skipped. */
  uint32_t room = w->rec_incl - w->rec_done;
  size_t k = n < room ? n : room;
  put(w, p, k);
  w->rec_done += (uint32_t)k;
}

void toe_pcapw_end(struct toe_pcapw *w)
{
  if (!w->f)
    return;
  /* Fewer bytes given than announced (a caller's bug): zeros keep the file readable, and the
   * record counts as damaged. */
  static const uint8_t zeros[64];
  if (w->rec_done < w->rec_incl) {
    while (w->rec_done < w->rec_incl) {
      uint32_t k = w->rec_incl - w->rec_done;
      k = k < sizeof zeros ? k : (uint32_t)sizeof zeros;
      put(w, zeros, k);
      w->rec_done += k;
    }
    if (!w->rec_failed) {
      w->rec_failed = true;
      w->last_errno = EIO;
    }
  }
  if (w->format == TOE_PCAPW_PCAPNG) {
    uint32_t total =
        NG_EPB_FIXED + w->rec_incl + pad4(w->rec_incl) + (w->rec_dir ? NG_EPB_FLAGS_OPT : 0) + 4;
    put(w, zeros, pad4(w->rec_incl));
    if (w->rec_dir) {
      put16(w, NG_EPB_FLAGS);
      put16(w, 4);
      put32(w, w->rec_dir); /* 01 inbound, 10 outbound */
      put32(w, NG_OPT_END);
    }
    put32(w, total);
  }
  if (w->rec_failed) {
    w->write_errors++;
    return;
  }
  w->frames++;
  w->bytes += w->rec_incl;
}

void toe_pcapw_write(struct toe_pcapw *w, uint64_t ts_ns, const void *frame, uint32_t len,
                     uint32_t orig_len, unsigned dir)
{
  toe_pcapw_begin(w, ts_ns, len, orig_len, dir);
  toe_pcapw_data(w, frame, len);
  toe_pcapw_end(w);
}

int toe_pcapw_flush(struct toe_pcapw *w)
{
  if (!w->f)
    return 0;
  if (fflush(w->f) != 0) {
    w->last_errno = errno ? errno : EIO;
    return -w->last_errno;
  }
  return 0;
}

int toe_pcapw_close(struct toe_pcapw *w)
{
  if (!w->f)
    return 0;
  int rc = toe_pcapw_flush(w);
  if (w->own && fclose(w->f) != 0 && rc == 0)
    rc = -(errno ? errno : EIO);
  w->f = NULL;
  return rc;
}

const char *toe_pcapw_format_name(int format)
{
  return format == TOE_PCAPW_PCAPNG ? "pcapng" : "pcap";
}

int toe_pcapw_parse_format(const char *s, int *format)
{
  if (strcmp(s, "pcap") == 0)
    *format = TOE_PCAPW_PCAP;
  else if (strcmp(s, "pcapng") == 0)
    *format = TOE_PCAPW_PCAPNG;
  else
    return -1;
  return 0;
}
