/*
 * Classic pcap writer. Format: https://www.tcpdump.org/manpages/pcap-savefile.5.html — all fields
 * in the writer's byte order; the reader detects it from the magic number.
 */
#include "device/pcap_writer.h"

#include <errno.h>
#include <string.h>

#define PCAP_MAGIC_NSEC 0xa1b23c4du
#define LINKTYPE_ETHERNET 1u
#define PCAP_BUFFER (1u << 20)

struct pcap_global {
  uint32_t magic;
  uint16_t version_major;
  uint16_t version_minor;
  int32_t thiszone;
  uint32_t sigfigs;
  uint32_t snaplen;
  uint32_t network;
};

struct pcap_record {
  uint32_t ts_sec;
  uint32_t ts_frac; /* nanoseconds with the 0xa1b23c4d magic */
  uint32_t incl_len;
  uint32_t orig_len;
};

int toed_pcap_open(struct toed_pcap *p, const char *path)
{
  memset(p, 0, sizeof *p);
  p->f = fopen(path, "wbe");
  if (!p->f)
    return -errno;
  /* Large buffer: the data path must not wait for the disk on every frame. */
  setvbuf(p->f, NULL, _IOFBF, PCAP_BUFFER);
  struct pcap_global g = {PCAP_MAGIC_NSEC, 2, 4, 0, 0, TOED_PCAP_SNAPLEN, LINKTYPE_ETHERNET};
  if (fwrite(&g, sizeof g, 1, p->f) != 1 || fflush(p->f) != 0) {
    int e = errno ? errno : EIO;
    fclose(p->f);
    p->f = NULL;
    return -e;
  }
  return 0;
}

static void put_header(struct toed_pcap *p, size_t len, uint64_t ts_ns, size_t *incl)
{
  *incl = len > TOED_PCAP_SNAPLEN ? TOED_PCAP_SNAPLEN : len;
  struct pcap_record r = {(uint32_t)(ts_ns / 1000000000ull), (uint32_t)(ts_ns % 1000000000ull),
                          (uint32_t)*incl, (uint32_t)len};
  if (fwrite(&r, sizeof r, 1, p->f) != 1) {
    p->write_errors++;
    p->last_errno = errno ? errno : EIO;
  }
}

void toed_pcap_write(struct toed_pcap *p, const uint8_t *frame, size_t len, uint64_t ts_ns)
{
  if (!p->f)
    return;
  size_t incl;
  put_header(p, len, ts_ns, &incl);
  if (fwrite(frame, 1, incl, p->f) != incl) {
    p->write_errors++;
    p->last_errno = errno ? errno : EIO;
    return;
  }
  p->frames++;
  p->bytes += incl;
}

void toed_pcap_write_chain(struct toed_pcap *p, const struct toe_pbuf *frame, uint64_t ts_ns)
{
  if (!p->f)
    return;
  size_t incl;
  put_header(p, frame->tot_len, ts_ns, &incl);
  size_t left = incl;
  for (const struct toe_pbuf *b = frame; b && left; b = b->next) {
    size_t n = b->len < left ? b->len : left;
    if (fwrite(b->data, 1, n, p->f) != n) {
      p->write_errors++;
      p->last_errno = errno ? errno : EIO;
      return;
    }
    left -= n;
  }
  p->frames++;
  p->bytes += incl;
}

int toed_pcap_flush(struct toed_pcap *p)
{
  if (!p->f)
    return 0;
  if (fflush(p->f) != 0) {
    p->last_errno = errno ? errno : EIO;
    return -p->last_errno;
  }
  return 0;
}

int toed_pcap_close(struct toed_pcap *p)
{
  if (!p->f)
    return 0;
  int rc = toed_pcap_flush(p);
  if (fclose(p->f) != 0 && rc == 0)
    rc = -(errno ? errno : EIO);
  p->f = NULL;
  return rc;
}
