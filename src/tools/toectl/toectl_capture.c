/*
 * toectl capture: compiles the tcpdump expression with libpcap (pcap_open_dead + pcap_compile for
 * Ethernet at the snap length), checks the program with the device's own checker
 * (transport/capture_bpf.h) so a program the device would refuse is explained here, ships it in
 * CAPTURE (ABI 1.4), and streams the device's EV_CAPTURE buffers into a pcap or pcapng file
 * (capture/pcap_writer.h: pcapng records each frame's direction), returning each buffer to the
 * device as soon as it is written. The device drops (and counts) frames while we are slow; we never
 * slow it down.
 *
 * Every record the device hands over is checked against its buffer before it is written: a
 * record header whose length runs past the buffer ends the capture as a protocol error.
 */
#include "toectl_capture.h"

#include "capture/pcap_writer.h"
#include "common/byteorder.h"
#include "transport/capture_filter.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_SLICE_MS 200
#define STOP_TIMEOUT_MS 5000

static volatile sig_atomic_t stop_requested;

/* The compiled program and the joined expression live here (one capture per process). */
static struct toe_bpf_insn prog_store[TOE_BPF_MAXINSNS];
static char filter_store[TC_FILTER_MAX + 1];

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

static bool ends_with(const char *s, const char *tail)
{
  size_t n = strlen(s), k = strlen(tail);
  return n >= k && strcmp(s + n - k, tail) == 0;
}

/* Compiles a->filter with libpcap into prog_store and checks it as the device will. */
static int compile_filter(struct tc_capture_args *a)
{
  a->prog = NULL;
  a->prog_len = 0;
  if (!a->filter[0])
    return 0; /* every frame: no program at all */
  pcap_t *p = pcap_open_dead(DLT_EN10MB, (int)a->snaplen);
  if (!p) {
    fprintf(stderr, "toectl: capture: libpcap cannot compile filters here (pcap_open_dead)\n");
    return 2;
  }
  struct bpf_program bp;
  if (pcap_compile(p, &bp, a->filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
    fprintf(stderr,
            "toectl: capture: bad filter \"%s\": %s (the language is tcpdump's, "
            "pcap-filter(7))\n",
            a->filter, pcap_geterr(p));
    pcap_close(p);
    return 2;
  }
  pcap_close(p);
  if (bp.bf_len > TOE_BPF_MAXINSNS) {
    fprintf(stderr,
            "toectl: capture: the filter \"%s\" compiles to %u instructions; the device runs at "
            "most %u: simplify it\n",
            a->filter, (unsigned)bp.bf_len, TOE_BPF_MAXINSNS);
    pcap_freecode(&bp);
    return 2;
  }
  for (unsigned i = 0; i < bp.bf_len; i++)
    prog_store[i] = (struct toe_bpf_insn){bp.bf_insns[i].code, bp.bf_insns[i].jt, bp.bf_insns[i].jf,
                                          bp.bf_insns[i].k};
  uint32_t n = (uint32_t)bp.bf_len, bad = 0;
  pcap_freecode(&bp);
  const char *why = NULL;
  if (toe_bpf_check(prog_store, n, &bad, &why) < 0) {
    fprintf(stderr,
            "toectl: capture: the filter \"%s\" compiles to a program the device does not run "
            "(instruction %u: %s); the device runs only programs that jump forward (\"protochain\" "
            "loops)\n",
            a->filter, (unsigned)bad, why ? why : "refused");
    return 2;
  }
  a->prog = prog_store;
  a->prog_len = n;
  return 0;
}

int tc_capture_parse(int argc, char **argv, struct tc_capture_args *a)
{
  memset(a, 0, sizeof(*a));
  a->snaplen = TC_SNAPLEN_MAX;
  const char *format = NULL, *filter = NULL;
  size_t flen = 0;
  filter_store[0] = 0;
  bool words = false, file_by_w = false;
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
    } else if (strcmp(w, "--snaplen") == 0 || strcmp(w, "-s") == 0) {
      if (!parse_u64(v, TC_SNAPLEN_MAX, &n)) {
        fprintf(stderr,
                "toectl: capture: --snaplen needs a number of bytes, 0..%u (0: the whole frame, "
                "as tcpdump -s 0)\n",
                TC_SNAPLEN_MAX);
        return 2;
      }
      a->snaplen = n ? (uint32_t)n : TC_SNAPLEN_MAX;
      a->snaplen_set = n != 0;
      i++;
    } else if (strcmp(w, "--format") == 0) {
      if (!v || toe_pcapw_parse_format(v, &a->format) < 0) {
        fprintf(stderr, "toectl: capture: --format needs pcap or pcapng\n");
        return 2;
      }
      format = v;
      i++;
    } else if (strcmp(w, "-w") == 0) {
      if (!v) {
        fprintf(stderr, "toectl: capture: -w needs a FILE (\"-\" for standard output)\n");
        return 2;
      }
      if (a->file) {
        fprintf(stderr, "toectl: capture: one FILE only (%s, then %s)\n", a->file, v);
        return 2;
      }
      a->file = v;
      file_by_w = true;
      i++;
    } else if (strcmp(w, "--filter") == 0 || strcmp(w, "-f") == 0) {
      if (!v) {
        fprintf(stderr, "toectl: capture: --filter needs an expression (e.g. \"tcp port 80\")\n");
        return 2;
      }
      filter = v;
      i++;
    } else if (w[0] == '-' && w[1]) {
      fprintf(stderr, "toectl: capture: unknown option %s\n", w);
      return 2;
    } else if (!a->file && !file_by_w) {
      a->file = w;
    } else {
      /* The rest of the line is the expression, as tcpdump takes it. */
      size_t k = strlen(w);
      if (flen + k + 1 > TC_FILTER_MAX) {
        fprintf(stderr, "toectl: capture: the filter is longer than %u bytes\n", TC_FILTER_MAX);
        return 2;
      }
      if (flen)
        filter_store[flen++] = ' ';
      memcpy(filter_store + flen, w, k);
      flen += k;
      filter_store[flen] = 0;
      words = true;
    }
  }
  if (!a->file) {
    fprintf(stderr, "toectl: capture needs a FILE to write (\"-\" for standard output)\n");
    return 2;
  }
  if (filter && words) {
    fprintf(stderr,
            "toectl: capture: give the filter once: --filter \"%s\" or words after FILE, "
            "not both\n",
            filter);
    return 2;
  }
  if (filter) {
    if (strlen(filter) > TC_FILTER_MAX) {
      fprintf(stderr, "toectl: capture: the filter is longer than %u bytes\n", TC_FILTER_MAX);
      return 2;
    }
    strcpy(filter_store, filter);
  }
  a->filter = filter_store;
  if (!format) /* like tcpdump's readers: the name says which */
    a->format = ends_with(a->file, ".pcapng") ? TOE_PCAPW_PCAPNG : TOE_PCAPW_PCAP;
  return compile_filter(a);
}

/* Writes the records of one EV_CAPTURE buffer (headers of `hdr` bytes), up to `room` of them.
 * Returns records written, -1 for a malformed buffer, -2 for a write error. */
static int64_t write_records(struct toe_pcapw *w, const uint8_t *p, uint32_t len, uint32_t hdr,
                             uint64_t room)
{
  int64_t n = 0;
  uint32_t off = 0;
  while (off < len) {
    if (len - off < hdr)
      return -1;
    const uint8_t *r = p + off;
    uint32_t incl = toe_load_le32(r + 8), orig = toe_load_le32(r + 12);
    if (incl > len - off - hdr || incl > orig)
      return -1;
    unsigned dir =
        hdr == TOE_ABI_CAPTURE_REC_HDR_DIR ? toe_load_le32(r + 16) & 3u : TOE_PCAPW_DIR_UNKNOWN;
    if ((uint64_t)n < room) {
      uint64_t ts = (uint64_t)toe_load_le32(r) * 1000000000ull + toe_load_le32(r + 4);
      uint64_t errs = w->write_errors;
      toe_pcapw_write(w, ts, r + hdr, incl, orig, dir);
      if (w->write_errors != errs)
        return -2;
      n++;
    }
    off += hdr + incl;
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
  /* What to send: the BPF program (1.4), or for an older device the 1.2 filter text, which the
   * simple expressions (arp, ip, icmp, tcp, udp, host, port, and, or, not) are written in too. */
  bool bpf = (d->rep.caps & TOE_ABI_CAP_CAPTURE_BPF) != 0;
  const void *fdata = NULL;
  size_t flen = 0;
  uint32_t flags = 0;
  if (bpf) {
    flags = TOE_ABI_CAPTURE_F_DIR | (a->prog ? TOE_ABI_CAPTURE_F_BPF : 0);
    fdata = a->prog;
    flen = a->prog ? a->prog_len * sizeof(struct toe_abi_bpf_insn) : 0;
  } else if (a->filter[0]) {
    struct toe_capf f;
    size_t len = strlen(a->filter);
    if (len > TOE_ABI_CAPTURE_FILTER_MAX || toe_capf_compile(&f, a->filter, len, NULL, NULL) < 0) {
      fprintf(stderr,
              "toectl: capture: the device at %s (an older one: no BPF filters) runs only simple "
              "filters (arp, ip, icmp, tcp, udp, [src|dst] host, [src|dst] port, and, or, not); "
              "\"%s\" is not one\n",
              ctl, a->filter);
      return 1;
    }
    fdata = a->filter;
    flen = len;
  }
  const uint32_t hdr = bpf ? TOE_ABI_CAPTURE_REC_HDR_DIR : TOE_ABI_CAPTURE_REC_HDR;
  /* The device keeps at most a buffer's worth of a frame; the file says what it will hold. */
  uint32_t snaplen = d->rep.layout.buf_size - hdr;
  if (a->snaplen < snaplen)
    snaplen = a->snaplen;
  if (a->snaplen_set && a->snaplen > snaplen)
    fprintf(stderr,
            "toectl: capture: the device keeps at most %u bytes of a frame: snap length %u\n",
            snaplen, snaplen);
  struct toe_pcapw w;
  int rc = toe_pcapw_open(&w, a->file, a->format, snaplen, 0);
  if (rc < 0) {
    fprintf(stderr, "toectl: capture: cannot create %s: %s\n", a->file, strerror(-rc));
    return 1;
  }
  int status = 1;

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal; /* no SA_RESTART: the wait returns at once */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  const char *filter = a->filter;
  rc = tc_capture_start(d, fdata, flen, snaplen, flags);
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
  fprintf(stderr, "toectl: capturing on %s into %s (%s, snap length %u; filter: %s)\n", ctl,
          a->file, toe_pcapw_format_name(a->format), snaplen, *filter ? filter : "every frame");

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
      int64_t n = recs ? write_records(&w, recs, cqe.u.capture.len, hdr,
                                       a->count ? a->count - written : UINT64_MAX)
                       : -1;
      if (n == -2) {
        fprintf(stderr, "toectl: capture: cannot write %s: %s\n", a->file, strerror(w.last_errno));
        goto done;
      }
      if (n < 0) {
        fprintf(stderr, "toectl: capture: the device sent a malformed buffer\n");
        goto done;
      }
      written += (uint64_t)n;
      dev_frames = cqe.u.capture.frames;
      dev_dropped = cqe.u.capture.dropped;
      if (toe_pcapw_flush(&w) < 0) {
        fprintf(stderr, "toectl: capture: cannot write %s: %s\n", a->file, strerror(w.last_errno));
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
  if (toe_pcapw_close(&w) < 0 && status == 0) {
    fprintf(stderr, "toectl: capture: cannot finish %s: %s\n", a->file, strerror(w.last_errno));
    status = 1;
  }
  return status;
}
