/*
 * toed's command line and its config file: toed_ops_early() (src/device/toed_ops.c: --config
 * FILE, whose every line is checked by toed's own parser) then toed_args_parse()
 * (src/device/toed_args.c), as toed's main calls them.
 *
 * Input: arguments separated by newlines, then optionally a NUL byte and a config file's text.
 * With a config file the command line gets "--config /proc/self/fd/N" (a memfd holding the
 * text) in front. Inputs naming --log-level are skipped: it forks a log filter (toed does that
 * once, at start-up). Checked: a refusal says why in one non-empty line; an accepted command
 * line names a wire, a usable address and values inside their documented ranges.
 */
#define _GNU_SOURCE

#include "device/toed_args.h"
#include "device/toed_ops.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 64

static void bad(const char *why, const char *err)
{
  fprintf(stderr, "fuzz_toed_args: %s (err '%s')\n", why, err);
  abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > 4096 || memmem(data, size, "log-level", 9))
    return 0;
  const uint8_t *nul = memchr(data, 0, size);
  size_t alen = nul ? (size_t)(nul - data) : size;
  char *text = malloc(alen + 1);
  if (!text)
    abort();
  memcpy(text, data, alen);
  text[alen] = 0;

  char *argv[MAX_ARGS + 4];
  char cfgpath[64];
  int argc = 0, fd = -1;
  argv[argc++] = "toed";
  if (nul) {
    fd = memfd_create("toed-fuzz.conf", MFD_CLOEXEC);
    if (fd < 0)
      abort();
    size_t clen = size - alen - 1;
    if (clen && write(fd, nul + 1, clen) != (ssize_t)clen)
      abort();
    snprintf(cfgpath, sizeof cfgpath, "/proc/self/fd/%d", fd);
    argv[argc++] = "--config";
    argv[argc++] = cfgpath;
  }
  for (char *s = text, *nl; argc < MAX_ARGS && s; s = nl ? nl + 1 : NULL) {
    nl = strchr(s, '\n');
    if (nl)
      *nl = 0;
    argv[argc++] = s;
  }
  argv[argc] = NULL;

  int ac = argc;
  char **av = argv;
  /* A bad config file is reported on standard error: keep the fuzzer's output readable. */
  int rc = toed_ops_early(&ac, &av);
  if (rc == -1) {
    struct toed_args a;
    char err[256] = "";
    int r = toed_args_parse(&a, ac, av, err, sizeof err);
    if (r < 0) {
      if (r != -1 || !err[0] || strchr(err, '\n'))
        bad("a refusal must say why in one line", err);
    } else if (r != 0) {
      bad("toed_args_parse returned neither 0 nor -1", err);
    } else if (!a.help) {
      if (!a.wire || !a.addr || a.prefix_len == 0 || a.prefix_len > 32 ||
          (a.mtu && (a.mtu < 68 || a.mtu > 9000)) || a.vlan > 4094 || a.pbufs < TOED_MIN_PBUFS ||
          a.pbufs > TOED_MAX_PBUFS || a.max_clients < 1 || a.max_clients > TOED_MAX_MAX_CLIENTS ||
          a.poll_us > TOED_MAX_POLL_US || a.n_services > TOED_MAX_SERVICES ||
          (a.have_mac && (a.mac[0] & 1)) || (a.host_if && strlen(a.host_if) >= 16) ||
          ((a.host_addr || a.icmp_echo_host) && !a.host_if))
        bad("accepted a command line with a value out of range", err);
    }
  } else if (rc != 0 && rc != 1 && rc != 2) {
    bad("toed_ops_early: an exit status other than 0, 1 or 2", "");
  }
  if (fd >= 0)
    close(fd);
  free(text);
  return 0;
}
