/*
 * The tree's one pcap/pcapng writer (src/capture/pcap_writer.c), read back by libpcap: both
 * formats give the frames, lengths (cut to the snap length, original kept) and nanosecond stamps
 * written; a frame given in pieces reads as one; the pcapng blocks are well formed (every block's
 * two lengths agree and the blocks tile the file) and each Enhanced Packet Block carries the
 * direction it was given in epb_flags (and none when unknown).
 */
#define _DEFAULT_SOURCE /* libpcap's headers use u_int and friends */

#include "capture/pcap_writer.h"
#include "testlib.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

static void tmpfile_name(const char *ext)
{
  snprintf(path, sizeof path, "/tmp/toe-pcapw-%d.%s", (int)getpid(), ext);
}

static void frame_bytes(uint8_t *f, size_t n, uint8_t seed)
{
  for (size_t i = 0; i < n; i++)
    f[i] = (uint8_t)(seed + i * 7);
}

/* Writes three frames (60 bytes inbound, 300 bytes outbound given in three pieces, 1000 bytes
 * of unknown direction) with snap length 200. */
static void write_three(int format)
{
  struct toe_pcapw w;
  REQUIRE(toe_pcapw_open(&w, path, format, 200, 0) == 0);
  uint8_t f[1000];
  frame_bytes(f, 60, 1);
  toe_pcapw_write(&w, 1700000000123456789ull, f, 60, 60, TOE_PCAPW_DIR_IN);
  frame_bytes(f, 300, 2);
  toe_pcapw_begin(&w, 1700000001000000001ull, 300, 300, TOE_PCAPW_DIR_OUT);
  toe_pcapw_data(&w, f, 14);
  toe_pcapw_data(&w, f + 14, 186);
  toe_pcapw_data(&w, f + 200, 100);
  toe_pcapw_end(&w);
  frame_bytes(f, 1000, 3);
  toe_pcapw_write(&w, 1700000002000000000ull, f, 1000, 1500, TOE_PCAPW_DIR_UNKNOWN);
  CHECK_EQ(w.frames, 3);
  CHECK_EQ(w.bytes, 60 + 200 + 200);
  CHECK_EQ(w.write_errors, 0);
  CHECK_EQ(toe_pcapw_close(&w), 0);
}

static void read_back_with_libpcap(void)
{
  char err[PCAP_ERRBUF_SIZE];
  pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
  REQUIRE(p != NULL);
  CHECK_EQ(pcap_datalink(p), DLT_EN10MB);
  CHECK_EQ(pcap_snapshot(p), 200);
  static const struct {
    uint32_t caplen, len, sec, nsec;
    uint8_t seed;
  } want[] = {{60, 60, 1700000000, 123456789, 1},
              {200, 300, 1700000001, 1, 2},
              {200, 1500, 1700000002, 0, 3}};
  struct pcap_pkthdr *h;
  const u_char *data;
  for (int i = 0; i < 3; i++) {
    REQUIRE(pcap_next_ex(p, &h, &data) == 1);
    CHECK_EQ(h->caplen, want[i].caplen);
    CHECK_EQ(h->len, want[i].len);
    CHECK_EQ(h->ts.tv_sec, want[i].sec);
    CHECK_EQ(h->ts.tv_usec, want[i].nsec); /* nanoseconds with PRECISION_NANO */
    uint8_t f[200];
    frame_bytes(f, want[i].caplen, want[i].seed);
    CHECK_MEM(data, f, want[i].caplen);
  }
  CHECK_EQ(pcap_next_ex(p, &h, &data), PCAP_ERROR_BREAK); /* and nothing more */
  pcap_close(p);
}

TEST(pcap_reads_back)
{
  tmpfile_name("pcap");
  write_three(TOE_PCAPW_PCAP);
  read_back_with_libpcap();
  unlink(path);
}

static uint32_t rd32(const uint8_t *p)
{
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

TEST(pcapng_reads_back_with_directions)
{
  tmpfile_name("pcapng");
  write_three(TOE_PCAPW_PCAPNG);
  read_back_with_libpcap();
  /* Walk the blocks: SHB, IDB, then three EPBs with epb_flags 1, 2 and none. */
  FILE *f = fopen(path, "rb");
  REQUIRE(f != NULL);
  static uint8_t buf[8192];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  unlink(path);
  static const uint32_t types[] = {0x0a0d0d0a, 1, 6, 6, 6};
  static const int dirs[] = {-1, -1, 1, 2, 0};
  size_t off = 0;
  for (int b = 0; b < 5; b++) {
    REQUIRE(off + 12 <= n);
    uint32_t type = rd32(buf + off), len = rd32(buf + off + 4);
    CHECK_EQ(type, types[b]);
    REQUIRE(len % 4 == 0 && len >= 12 && off + len <= n);
    CHECK_EQ(rd32(buf + off + len - 4), len); /* the trailing copy of the length */
    if (b == 0)
      CHECK_EQ(rd32(buf + off + 8), 0x1a2b3c4du);
    if (b >= 2) {
      uint32_t caplen = rd32(buf + off + 20);
      size_t opt = off + 28 + ((caplen + 3u) & ~3u);
      if (dirs[b]) {
        CHECK_EQ(rd32(buf + opt), 2u | 4u << 16); /* epb_flags, 4 bytes */
        CHECK_EQ(rd32(buf + opt + 4), (uint32_t)dirs[b]);
        CHECK_EQ(rd32(buf + opt + 8), 0); /* opt_endofopt */
      } else {
        CHECK_EQ(opt + 4, off + len); /* no options at all */
      }
    }
    off += len;
  }
  CHECK_EQ(off, n);
}

/* A stamp earlier than the last record's is raised to it (a received frame stamped at its
 * arrival, handled after a frame the device sent meanwhile): the file stays in time order. */
TEST(stamps_never_go_backwards)
{
  tmpfile_name("pcap");
  struct toe_pcapw w;
  REQUIRE(toe_pcapw_open(&w, path, TOE_PCAPW_PCAP, 200, 0) == 0);
  uint8_t f[60];
  frame_bytes(f, sizeof f, 4);
  toe_pcapw_write(&w, 1700000005000000000ull, f, 60, 60, TOE_PCAPW_DIR_OUT);
  toe_pcapw_write(&w, 1700000004999000000ull, f, 60, 60, TOE_PCAPW_DIR_IN); /* 1 ms earlier */
  toe_pcapw_write(&w, 1700000005000000007ull, f, 60, 60, TOE_PCAPW_DIR_OUT);
  CHECK_EQ(w.ts_raised, 1);
  CHECK_EQ(toe_pcapw_close(&w), 0);
  char err[PCAP_ERRBUF_SIZE];
  pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
  REQUIRE(p != NULL);
  static const uint32_t nsec[] = {0, 0, 7};
  struct pcap_pkthdr *h;
  const u_char *data;
  for (int i = 0; i < 3; i++) {
    REQUIRE(pcap_next_ex(p, &h, &data) == 1);
    CHECK_EQ(h->ts.tv_sec, 1700000005);
    CHECK_EQ(h->ts.tv_usec, nsec[i]);
  }
  pcap_close(p);
  unlink(path);
}

TEST(bad_arguments_and_write_errors)
{
  struct toe_pcapw w;
  CHECK_EQ(toe_pcapw_open(&w, "/tmp/x", 7, 100, 0), -EINVAL);
  CHECK_EQ(toe_pcapw_open(&w, "/tmp/x", TOE_PCAPW_PCAP, 0, 0), -EINVAL);
  CHECK_EQ(toe_pcapw_open(&w, "/tmp/x", TOE_PCAPW_PCAP, TOE_PCAPW_SNAPLEN_MAX + 1, 0), -EINVAL);
  CHECK_EQ(toe_pcapw_open(&w, "/nonexistent-dir/x.pcap", TOE_PCAPW_PCAP, 100, 0), -ENOENT);
  CHECK(w.f == NULL);
  toe_pcapw_write(&w, 0, "x", 1, 1, 0); /* closed: nothing happens */
  CHECK_EQ(w.frames, 0);
  /* /dev/full takes the header into stdio's buffer and then fails: open says so. */
  CHECK_EQ(toe_pcapw_open(&w, "/dev/full", TOE_PCAPW_PCAPNG, 100, 0), -ENOSPC);
  int fmt = -1;
  CHECK_EQ(toe_pcapw_parse_format("pcapng", &fmt), 0);
  CHECK_EQ(fmt, TOE_PCAPW_PCAPNG);
  CHECK_EQ(toe_pcapw_parse_format("pcap", &fmt), 0);
  CHECK_EQ(fmt, TOE_PCAPW_PCAP);
  CHECK_EQ(toe_pcapw_parse_format("erf", &fmt), -1);
}

TEST_MAIN()
