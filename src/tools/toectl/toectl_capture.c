/*
 * toectl capture: streams the device's EV_CAPTURE buffers into a classic pcap file (nanosecond
 * timestamps, LINKTYPE_ETHERNET), returning each buffer to the device as soon as it is written.
 * The device drops (and counts) frames while we are slow; we never slow it down.
 *
 * Every record the device hands over is checked against its buffer before it is written: a
 * record header whose length runs past the buffer ends the capture as a protocol error.
 */
#include "toectl_capture.h"

#include "transport/capture_filter.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PCAP_MAGIC_NSEC 0xa1b23c4du
#define LINKTYPE_ETHERNET 1u
#define WAIT_SLICE_MS 200
#define STOP_TIMEOUT_MS 5000

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
  (void)sig;
  stop_requested = 1;
}

static int64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
  if (!s || !*s)
    return false;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || s[0] == '-' || v > max)
    return false;
  *out = v;
  return true;
}

int tc_capture_parse(int argc, char **argv, struct tc_capture_args *a)
{
  memset(a, 0, sizeof(*a));
  for (int i = 0; i < argc; i++) {
    const char *w = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    uint64_t n;
    if (strcmp(w, "--count") == 0 || strcmp(w, "-c") == 0) {
      if (!parse_u64(v, UINT64_MAX, &n) || n == 0) {
        fprintf(stderr, "toectl: capture: --count needs a number of frames, at least 1\n");
        return 2;
      }
      a->count = n;
      i++;
    } else if (strcmp(w, "--seconds") == 0) {
      if (!parse_u64(v, 100000000, &n) || n == 0) {
        fprintf(stderr, "toectl: capture: --seconds needs a number of seconds, at least 1\n");
        return 2;
      }
      a->seconds = n;
      i++;
    } else if (strcmp(w, "--snaplen") == 0) {
      if (!parse_u64(v, 65535, &n) || n < 64) {
        fprintf(stderr, "toectl: capture: --snaplen needs a number of bytes, 64..65535\n");
        return 2;
      }
      a->snaplen = (uint32_t)n;
      i++;
    } else if (strcmp(w, "--filter") == 0 || strcmp(w, "-f") == 0) {
      if (!v) {
        fprintf(stderr, "toectl: capture: --filter needs an expression (e.g. \"tcp port 80\")\n");
        return 2;
      }
      a->filter = v;
      i++;
    } else if (w[0] == '-' && w[1]) {
      fprintf(stderr, "toectl: capture: unknown option %s\n", w);
      return 2;
    } else if (a->file) {
      fprintf(stderr, "toectl: capture: one FILE only (%s, then %s)\n", a->file, w);
      return 2;
    } else {
      a->file = w;
    }
  }
  if (!a->file) {
    fprintf(stderr, "toectl: capture needs a FILE to write (\"-\" for standard output)\n");
    return 2;
  }
  if (a->filter) {
    size_t len = strlen(a->filter), pos = 0;
    const char *msg = NULL;
    struct toe_capf f;
    if (len > TOE_ABI_CAPTURE_FILTER_MAX) {
      fprintf(stderr, "toectl: capture: the filter is longer than %u bytes\n",
              TOE_ABI_CAPTURE_FILTER_MAX);
      return 2;
    }
    if (toe_capf_compile(&f, a->filter, len, &pos, &msg) < 0) {
      fprintf(stderr, "toectl: capture: bad filter at byte %zu: expected %s\n  %s\n  %*s^\n", pos,
              msg ? msg : "something else", a->filter, (int)pos, "");
      return 2;
    }
  }
  return 0;
}

static uint32_t le32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Writes the records of one EV_CAPTURE buffer, up to the count. Returns records written, or -1 for
 * a malformed buffer. */
static int64_t write_records(FILE *out, const uint8_t *p, uint32_t len, uint64_t room)
{
  int64_t n = 0;
  uint32_t off = 0;
  while (off < len) {
    if (len - off < TOE_ABI_CAPTURE_REC_HDR)
      return -1;
    uint32_t incl = le32(p + off + 8), orig = le32(p + off + 12);
    if (incl > len - off - TOE_ABI_CAPTURE_REC_HDR || incl > orig)
      return -1;
    uint32_t rec = TOE_ABI_CAPTURE_REC_HDR + incl;
    if ((uint64_t)n < room && fwrite(p + off, 1, rec, out) != rec)
      return -2;
    if ((uint64_t)n < room)
      n++;
    off += rec;
  }
  return n;
}

int tc_capture_run(struct tc_dev *d, const char *ctl, const struct tc_capture_args *a)
{
  if (!(d->rep.caps & TOE_ABI_CAP_CAPTURE)) {
    fprintf(stderr,
            "toectl: capture: the device at %s lets only root or toed's own user capture packets "
            "(you are uid %u); run toectl as root\n",
            ctl, (unsigned)geteuid());
    return 1;
  }
  bool to_stdout = strcmp(a->file, "-") == 0;
  FILE *out = to_stdout ? stdout : fopen(a->file, "wbe");
  if (!out) {
    fprintf(stderr, "toectl: capture: cannot create %s: %s\n", a->file, strerror(errno));
    return 1;
  }
  uint32_t snaplen = d->rep.layout.buf_size - TOE_ABI_CAPTURE_REC_HDR;
  if (a->snaplen && a->snaplen < snaplen)
    snaplen = a->snaplen;
  /* The pcap global header (https://www.tcpdump.org/manpages/pcap-savefile.5.html), in our byte
   * order, which is the ABI's: the records from the device are written as they come. */
  uint32_t g[6] = {PCAP_MAGIC_NSEC, 2u | 4u << 16, 0, 0, snaplen, LINKTYPE_ETHERNET};
  int status = 1;
  if (fwrite(g, sizeof(g), 1, out) != 1 || fflush(out) != 0) {
    fprintf(stderr, "toectl: capture: cannot write %s: %s\n", a->file, strerror(errno));
    goto done;
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal; /* no SA_RESTART: the wait returns at once */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  const char *filter = a->filter ? a->filter : "";
  int rc = tc_capture_start(d, filter, strlen(filter), a->snaplen);
  if (rc < 0) {
    if (rc == -EPERM)
      fprintf(stderr,
              "toectl: capture: the device at %s refused: only root or toed's user may "
              "capture\n",
              ctl);
    else if (rc == -EINVAL)
      fprintf(stderr, "toectl: capture: the device refused the filter \"%s\"\n", filter);
    else if (rc == -EBUSY)
      fprintf(stderr, "toectl: capture: the device runs as many captures as it allows (8); stop "
                      "one and try again\n");
    else
      fprintf(stderr, "toectl: capture: cannot start: %s\n", strerror(-rc));
    goto done;
  }
  fprintf(stderr, "toectl: capturing on %s into %s (filter: %s)\n", ctl, a->file,
          *filter ? filter : "every frame");

  uint64_t written = 0, dev_frames = 0, dev_dropped = 0;
  int64_t deadline = a->seconds ? mono_ms() + (int64_t)a->seconds * 1000 : 0;
  int64_t stop_deadline = 0;
  uint64_t stop_ud = 0;
  bool stopping = false;
  for (;;) {
    if (!stopping && (stop_requested || (a->count && written >= a->count) ||
                      (deadline && mono_ms() >= deadline))) {
      rc = tc_capture_stop(d, &stop_ud);
      if (rc < 0) {
        fprintf(stderr, "toectl: capture: cannot stop: %s\n", strerror(-rc));
        goto done;
      }
      stopping = true;
      stop_deadline = mono_ms() + STOP_TIMEOUT_MS;
    }
    struct toe_abi_cqe cqe;
    int r = tc_next(d, &cqe, WAIT_SLICE_MS);
    if (r == -EINTR)
      continue;
    if (r < 0) {
      fprintf(stderr, "toectl: capture: %s\n",
              r == -ENETDOWN ? "the device went away" : strerror(-r));
      goto done;
    }
    if (r == 0) {
      if (stopping && mono_ms() >= stop_deadline) {
        fprintf(stderr, "toectl: capture: the device did not confirm the stop\n");
        goto done;
      }
      continue;
    }
    if (cqe.type == TOE_ABI_EV_CAPTURE) {
      const uint8_t *recs = tc_capture_records(d, &cqe);
      int64_t n = recs ? write_records(out, recs, cqe.u.capture.len,
                                       a->count ? a->count - written : UINT64_MAX)
                       : -1;
      if (n == -2) {
        fprintf(stderr, "toectl: capture: cannot write %s: %s\n", a->file, strerror(errno));
        goto done;
      }
      if (n < 0) {
        fprintf(stderr, "toectl: capture: the device sent a malformed buffer\n");
        goto done;
      }
      written += (uint64_t)n;
      dev_frames = cqe.u.capture.frames;
      dev_dropped = cqe.u.capture.dropped;
      if (fflush(out) != 0) {
        fprintf(stderr, "toectl: capture: cannot write %s: %s\n", a->file, strerror(errno));
        goto done;
      }
      rc = tc_fill_return(d, cqe.u.capture.buf_id);
      if (rc < 0) {
        fprintf(stderr, "toectl: capture: cannot return a buffer: %s\n", strerror(-rc));
        goto done;
      }
    } else if (cqe.type == TOE_ABI_CQE_OP && stopping && cqe.user_data == stop_ud) {
      if (cqe.res == 0) {
        dev_frames = cqe.u.capture.frames;
        dev_dropped = cqe.u.capture.dropped;
      }
      break;
    } else if (cqe.type == TOE_ABI_EV_SHUTDOWN) {
      stop_requested = 1; /* the device stops: finish cleanly */
    }
  }
  fprintf(stderr,
          "toectl: %llu frames written to %s; the device delivered %llu and dropped %llu "
          "(dropped: toectl could not keep up)\n",
          (unsigned long long)written, a->file, (unsigned long long)dev_frames,
          (unsigned long long)dev_dropped);
  status = 0;
done:
  if (!to_stdout) {
    if (fclose(out) != 0 && status == 0) {
      fprintf(stderr, "toectl: capture: cannot finish %s: %s\n", a->file, strerror(errno));
      status = 1;
    }
  } else if (fflush(out) != 0) {
    status = 1;
  }
  return status;
}
