/*
 * toed's command line. Parsing is strict: every malformed value is reported in one line that says
 * what is wrong and what a good value looks like, and the caller exits with status 2.
 */
#ifndef TOED_ARGS_H
#define TOED_ARGS_H

#include "device/services.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TOED_EXIT_USAGE 2

struct toed_args {
  const char *wire; /* --wire IFNAME */
  uint32_t addr;    /* --addr A.B.C.D/N, host order */
  uint8_t prefix_len;
  bool have_mac; /* --mac given; otherwise the interface's own */
  uint8_t mac[6];
  uint32_t gateway; /* --gateway, host order, 0 = none */
  uint16_t mtu;     /* --mtu, 0 = the interface's */
  uint16_t vlan;    /* --vlan VID, 0 = untagged */
  const char *pcap; /* --pcap FILE or NULL */
  bool quiet;       /* --quiet: errors and warnings only */
  bool help;        /* --help: print usage and exit 0 */
  struct toed_service_spec services[TOED_MAX_SERVICES];
  unsigned n_services;
};

/*
 * Parses argv. Returns 0 (check `help`), or -1 with a one-line message (no "toed: " prefix, no
 * newline) in err.
 */
int toed_args_parse(struct toed_args *a, int argc, char **argv, char *err, size_t errlen);

/* Prints the usage text. */
void toed_args_usage(FILE *f);

/* Formats an address as "a.b.c.d" (buf >= 16 bytes) and a MAC as "xx:..:xx" (buf >= 18). */
const char *toed_fmt_ipv4(uint32_t a, char *buf, size_t len);
const char *toed_fmt_mac(const uint8_t *mac, char *buf, size_t len);

#endif
