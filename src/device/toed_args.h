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

#define TOED_MAX_ADDR6 4                    /* TOE_MAX_ADDR6 */
#define TOED_FOLLOW_PLACEHOLDER 0xa9fe0001u /* 169.254.0.1: --follow-host before the OS has one */

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
  uint32_t max_conns;    /* --max-conns: TCP connections the services hold at once */
  uint32_t pbufs;        /* --pbufs: the engine's packet buffers (2048 bytes each) */
  const char *ctl_path;  /* --ctl PATH; NULL: the default /run/toekit/IFNAME.sock */
  bool ctl_off;          /* --ctl none: no control socket */
  const char *ctl_group; /* --ctl-group GROUP or NULL */
  uint32_t poll_us;      /* --poll-us: ring polling after activity before sleeping */
  uint32_t max_clients;  /* --max-clients: host sessions at once */
  const char *host_if;   /* --host-if NAME: the host interface (TAP), NULL = none */
  uint32_t host_addr;    /* --host-addr A.B.C.D/N for it, host order, 0 = leave unconfigured */
  uint8_t host_prefix_len;
  bool icmp_echo_host; /* --icmp-echo host: pings are the OS's to answer */
  bool follow_host;    /* --follow-host: the IPv4 address follows the host interface's */
  const char *link;    /* --link afpacket|afxdp: the link driver (default afpacket) */
  unsigned offload;    /* --offload: TOED_OFFLOAD_* the link may use (default all) */
  /* --addr6 ADDR/PREFIX, repeatable: global IPv6 addresses (network order); any --addr6 turns
   * IPv6 on (the link-local address then comes from the MAC) */
  uint8_t addr6[TOED_MAX_ADDR6][16];
  uint8_t addr6_prefix_len[TOED_MAX_ADDR6];
  unsigned n_addr6;
  uint8_t ecn; /* --ecn: cfg.tcp_ecn, TOE_TCP_ECN_* (toe/engine.h); default 2, passive */
};

/* --offload features (the link's checksum work, see src/device/link.h) */
#define TOED_OFFLOAD_RX_CSUM 0x1u /* frames the driver knows are good go in checksum-verified */
#define TOED_OFFLOAD_TX_CSUM 0x2u /* the driver sums TCP segments while copying them out */
#define TOED_OFFLOAD_TSO 0x4u     /* TCP super-segments go to the kernel to cut (PACKET_VNET_HDR) */
#define TOED_OFFLOAD_ALL (TOED_OFFLOAD_RX_CSUM | TOED_OFFLOAD_TX_CSUM | TOED_OFFLOAD_TSO)

#define TOED_DEFAULT_POLL_US 50u
#define TOED_MAX_POLL_US 1000000u
#define TOED_DEFAULT_MAX_CLIENTS 64u
#define TOED_MAX_MAX_CLIENTS 4096u

#define TOED_DEFAULT_PBUFS 65536u /* 128 MiB: several MiB of window for many connections */
#define TOED_MIN_PBUFS 256u
#define TOED_MAX_PBUFS 2097152u /* 4 GiB */

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
