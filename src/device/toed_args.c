/*
 * Command-line parsing for toed.
 */
#include "device/toed_args.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void toed_args_usage(FILE *f)
{
  fputs(
      "usage: toed --wire IFNAME --addr ADDR/PREFIX [options]\n"
      "\n"
      "Runs the toekit engine on network port IFNAME: the device owns the port (the kernel's\n"
      "own stack is kept off it while toed runs) and answers ARP, ICMP echo and the built-in\n"
      "services at ADDR. Stops cleanly on SIGINT/SIGTERM and prints its counters.\n"
      "\n"
      "  --wire IFNAME        network interface to own (required)\n"
      "  --addr ADDR/PREFIX   the device's IPv4 address and on-link prefix, e.g. 198.18.0.1/24\n"
      "                       (required)\n"
      "  --addr6 ADDR/PREFIX  also an IPv6 address, e.g. 2001:db8::2/64 (repeatable, up to 4);\n"
      "                       turns IPv6 on: the device answers Neighbor Discovery and ping at\n"
      "                       these and its link-local address (from the MAC); with --host-if\n"
      "                       they are shared with the OS (docs/coexistence.md)\n"
      "  --mac MAC            station address, e.g. 02:00:00:00:00:01 (default: the interface's)\n"
      "  --gateway ADDR       default gateway, on-link (default: none)\n"
      "  --mtu N              IP MTU, 68..9000, at most the interface's (default: the "
      "interface's)\n"
      "  --vlan VID           send and accept only 802.1Q-tagged frames with VID 1..4094\n"
      "  --service NAME[:PORT]\n"
      "                       run a service over UDP and TCP: echo (RFC 862, port 7), discard\n"
      "                       (RFC 863, port 9), chargen (RFC 864, port 19); repeatable\n"
      "  --max-conns N        TCP connections the services hold at once, 1..1048576\n"
      "                       (default 4096; more wait in the listeners' accept queues)\n"
      "  --pbufs N            the engine's packet buffers of 2048 bytes, 256..2097152\n"
      "                       (default 65536 = 128 MiB: all windows and queues come from them)\n"
      "  --pcap FILE          write every frame received and sent to FILE (pcap, ns stamps)\n"
      "  --ctl PATH           control socket where host processes attach (libtoe, toe-nc,\n"
      "                       toectl); default /run/toekit/IFNAME.sock; 'none' disables it\n"
      "  --ctl-group GROUP    group of the control socket (mode 0660): its members may use\n"
      "                       the device (default: toed's group)\n"
      "  --max-clients N      host sessions at once, 1..4096 (default 64)\n"
      "  --poll-us N          poll the clients' rings N microseconds after activity before\n"
      "                       sleeping on their doorbells, 0..1000000 (default 50)\n"
      "  --host-if NAME       create the host interface NAME (a TAP carrying the device's MAC):\n"
      "                       the OS's own view of the port; frames not steered to the engine\n"
      "                       go up to it, the OS's frames go out on the wire (see\n"
      "                       docs/coexistence.md)\n"
      "  --host-addr ADDR/PREFIX\n"
      "                       also give the host interface this address (usually --addr's)\n"
      "  --follow-host        the device's IPv4 address, prefix and default gateway follow the\n"
      "                       host interface's (DHCP, ip addr): live, through rtnetlink; an\n"
      "                       address that goes away resets its connections; --addr is then\n"
      "                       optional (169.254.0.1/16 until the OS has one)\n"
      "  --icmp-echo device|host\n"
      "                       who answers pings to the shared address (default device)\n"
      "  --link afpacket|afxdp\n"
      "                       link driver: AF_PACKET rings (default) or an AF_XDP socket\n"
      "                       (zero-copy where the NIC supports it; docs/operations.md)\n"
      "  --offload none|all|LIST\n"
      "                       work the engine leaves to the driver and kernel (default all);\n"
      "                       LIST is comma-separated from rx-csum, tx-csum (csum = both) and\n"
      "                       tso (64 KiB TCP super-segments, cut by the kernel; needs tx-csum)\n"
      "  --ecn off|passive|on|accecn\n"
      "                       ECN on TCP (RFC 3168): passive (default, as Linux's tcp_ecn=2)\n"
      "                       agrees when a peer asks, on also asks in our SYNs, accecn asks for\n"
      "                       Accurate ECN (RFC 9768) and accepts either, off never\n"
      "  --quiet              log only errors and warnings (no start line, no summary)\n"
      "  --help               show this text\n"
      "  --version            show the versions (toekit, transport ABI)\n"
      "  --config FILE        settings from FILE, \"key value\" lines with the keys of these "
      "flags\n"
      "                       (e.g. /etc/toekit/toed-eth1.conf); a flag given here wins\n"
      "  --log-level LEVEL    error, warning, info or debug: timestamped lines with their level\n"
      "                       (per-session lines are debug)\n"
      "\n"
      "       toed --cleanup IFNAME\n"
      "                       undo what a toed on IFNAME that died (SIGKILL, a crash) left in\n"
      "                       this namespace: its nftables table, reserved ports, socket file\n"
      "\n"
      "Every terminating signal that can be handled (SIGHUP, SIGQUIT, SIGUSR2, ...) stops toed\n"
      "as SIGTERM does; SIGUSR1 logs the counters and toed runs on.\n"
      "Exit status: 0 after a stopping signal, 1 on a runtime failure, 2 on a bad argument,\n"
      "a missing --ctl-group or --ctl directory, or missing privileges (root, or\n"
      "CAP_NET_ADMIN and CAP_NET_RAW).\n",
      f);
}

const char *toed_fmt_ipv4(uint32_t a, char *buf, size_t len)
{
  snprintf(buf, len, "%u.%u.%u.%u", (unsigned)(a >> 24), (unsigned)(a >> 16) & 255,
           (unsigned)(a >> 8) & 255, (unsigned)a & 255);
  return buf;
}

const char *toed_fmt_mac(const uint8_t *m, char *buf, size_t len)
{
  snprintf(buf, len, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return buf;
}

/* Decimal number without sign, spaces or junk, within [lo, hi]. */
static bool parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
  if (!s || !isdigit((unsigned char)s[0]) || strlen(s) > 10)
    return false;
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *end || v < lo || v > hi)
    return false;
  *out = v;
  return true;
}

/* Strict dotted quad (inet_pton refuses short forms, leading zeros and values over 255). */
static bool parse_ipv4(const char *s, uint32_t *out)
{
  struct in_addr in;
  if (inet_pton(AF_INET, s, &in) != 1)
    return false;
  *out = ntohl(in.s_addr);
  return true;
}

/* "A.B.C.D/N" with min_len <= N <= 32: the address (host order) and the prefix length. */
/* --offload: "none", "all", or a comma-separated list of features. Returns 0 or -1. */
static int parse_offload(const char *v, unsigned *out)
{
  if (strcmp(v, "none") == 0) {
    *out = 0;
    return 0;
  }
  if (strcmp(v, "all") == 0) {
    *out = TOED_OFFLOAD_ALL;
    return 0;
  }
  unsigned f = 0;
  while (*v) {
    size_t n = strcspn(v, ",");
    if (n == 7 && strncmp(v, "rx-csum", n) == 0)
      f |= TOED_OFFLOAD_RX_CSUM;
    else if (n == 7 && strncmp(v, "tx-csum", n) == 0)
      f |= TOED_OFFLOAD_TX_CSUM;
    else if (n == 4 && strncmp(v, "csum", n) == 0)
      f |= TOED_OFFLOAD_RX_CSUM | TOED_OFFLOAD_TX_CSUM;
    else if (n == 3 && strncmp(v, "tso", n) == 0)
      f |= TOED_OFFLOAD_TSO;
    else
      return -1;
    v += n;
    if (*v == ',' && *++v == '\0')
      return -1; /* a trailing comma */
  }
  *out = f;
  return 0;
}

static bool parse_cidr(const char *v, unsigned long min_len, uint32_t *addr, uint8_t *len)
{
  char buf[64];
  const char *slash = strchr(v, '/');
  unsigned long plen;
  size_t alen = slash ? (size_t)(slash - v) : 0;
  if (!slash || alen >= sizeof buf)
    return false;
  memcpy(buf, v, alen);
  buf[alen] = 0;
  if (!parse_ipv4(buf, addr) || !parse_uint(slash + 1, min_len, 32, &plen))
    return false;
  *len = (uint8_t)plen;
  return true;
}

static uint32_t mask_of(uint8_t prefix)
{
  return prefix ? 0xffffffffu << (32 - prefix) : 0;
}

static int hexval(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  c = tolower(c);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Six two-digit hex bytes separated by ':' (or all by '-'). */
static bool parse_mac(const char *s, uint8_t *mac)
{
  if (strlen(s) != 17)
    return false;
  char sep = s[2];
  if (sep != ':' && sep != '-')
    return false;
  for (int i = 0; i < 6; i++) {
    int hi = hexval((unsigned char)s[3 * i]), lo = hexval((unsigned char)s[3 * i + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != sep))
      return false;
    mac[i] = (uint8_t)(hi << 4 | lo);
  }
  return true;
}

/* Returns the value of the option at argv[*i] ("--x=v" or "--x v"), or NULL if missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *eq)
{
  if (eq)
    return eq + 1;
  if (*i + 1 >= argc)
    return NULL;
  return argv[++*i];
}

static int fail(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
  snprintf(err, errlen, fmt, a, b);
  return -1;
}

static int parse_service(struct toed_args *a, const char *v, char *err, size_t errlen)
{
  char name[32];
  const char *colon = strchr(v, ':');
  size_t nlen = colon ? (size_t)(colon - v) : strlen(v);
  if (nlen == 0 || nlen >= sizeof name)
    return fail(err, errlen, "--service %s: unknown service (known: %s; e.g. --service echo:7)", v,
                toed_service_names());
  memcpy(name, v, nlen);
  name[nlen] = 0;
  int kind = toed_service_lookup(name);
  if (kind < 0) {
    snprintf(err, errlen, "--service %s: unknown service '%s' (known: %s; e.g. --service echo:7)",
             v, name, toed_service_names());
    return -1;
  }
  unsigned long port = toed_service_default_port((enum toed_service_kind)kind);
  if (colon && !parse_uint(colon + 1, 1, 65535, &port))
    return fail(err, errlen, "--service %s: '%s' is not a port number 1..65535 (e.g. echo:7)", v,
                colon + 1);
  for (unsigned i = 0; i < a->n_services; i++)
    if (a->services[i].port == port) {
      snprintf(err, errlen, "--service %s: port %lu already has a service (%s)", v, port,
               toed_service_name(a->services[i].kind));
      return -1;
    }
  if (a->n_services == TOED_MAX_SERVICES) {
    snprintf(err, errlen, "--service %s: too many services (at most %d)", v, TOED_MAX_SERVICES);
    return -1;
  }
  struct toed_service_spec *sp = &a->services[a->n_services++];
  sp->kind = (enum toed_service_kind)kind;
  sp->port = (uint16_t)port;
  sp->protos = TOED_SVC_PROTO_UDP | TOED_SVC_PROTO_TCP;
  return 0;
}

/* --addr6 ADDR/PREFIX: a global unicast IPv6 address (RFC 4291 2.4) with its on-link prefix. */
static int parse_addr6(struct toed_args *a, const char *v, char *err, size_t errlen)
{
  char buf[64];
  const char *slash = strchr(v, '/');
  unsigned long plen;
  if (!slash || (size_t)(slash - v) >= sizeof buf || !parse_uint(slash + 1, 1, 128, &plen))
    return fail(err, errlen,
                "--addr6 %s: not an IPv6 address/prefix (expected e.g. 2001:db8::2/64)", v, NULL);
  memcpy(buf, v, (size_t)(slash - v));
  buf[slash - v] = 0;
  struct in6_addr in6;
  if (inet_pton(AF_INET6, buf, &in6) != 1)
    return fail(err, errlen,
                "--addr6 %s: not an IPv6 address/prefix (expected e.g. 2001:db8::2/64)", v, NULL);
  const uint8_t *b = in6.s6_addr;
  static const uint8_t zero[16];
  static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  bool loopback = memcmp(b, zero, 15) == 0 && b[15] == 1;
  if (memcmp(b, zero, 16) == 0 || loopback || b[0] == 0xff || memcmp(b, v4mapped, 12) == 0)
    return fail(err, errlen,
                "--addr6 %s: not a usable unicast address (not ::, ::1, multicast or "
                "v4-mapped; e.g. 2001:db8::2/64)",
                v, NULL);
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
    return fail(err, errlen,
                "--addr6 %s: the link-local address comes from the MAC (modified EUI-64); give "
                "a global one (e.g. 2001:db8::2/64)",
                v, NULL);
  for (unsigned i = 0; i < a->n_addr6; i++)
    if (memcmp(a->addr6[i], b, 16) == 0)
      return fail(err, errlen, "--addr6 %s: given twice (give each address once)", v, NULL);
  if (a->n_addr6 >= TOED_MAX_ADDR6)
    return fail(err, errlen, "--addr6 %s: at most 4 IPv6 addresses (drop one)", v, NULL);
  memcpy(a->addr6[a->n_addr6], b, 16);
  a->addr6_prefix_len[a->n_addr6] = (uint8_t)plen;
  a->n_addr6++;
  return 0;
}

int toed_args_parse(struct toed_args *a, int argc, char **argv, char *err, size_t errlen)
{
  memset(a, 0, sizeof *a);
  a->max_conns = TOED_DEFAULT_MAX_CONNS;
  a->pbufs = TOED_DEFAULT_PBUFS;
  a->poll_us = TOED_DEFAULT_POLL_US;
  a->offload = TOED_OFFLOAD_ALL;
  a->max_clients = TOED_DEFAULT_MAX_CLIENTS;
  a->ecn = 2; /* TOE_TCP_ECN_PASSIVE */
  bool have_addr = false, have_gw = false;
  const char *addr_text = NULL, *gw_text = NULL;
  unsigned seen = 0; /* bit per single-valued option, to refuse repeats */

  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      a->help = true;
      return 0;
    }
    if (strcmp(arg, "--quiet") == 0 || strcmp(arg, "-q") == 0) {
      a->quiet = true;
      continue;
    }
    if (strcmp(arg, "--follow-host") == 0) {
      a->follow_host = true;
      continue;
    }
    if (strncmp(arg, "--", 2) != 0)
      return fail(err, errlen, "unexpected argument '%s' (options start with --; see toed --help)",
                  arg, NULL);

    static const struct {
      const char *name;
      const char *example;
    } opts[] = {
        {"wire", "--wire eth1"},
        {"addr", "--addr 198.18.0.1/24"},
        {"mac", "--mac 02:00:00:00:00:01"},
        {"gateway", "--gateway 198.18.0.254"},
        {"mtu", "--mtu 1500"},
        {"vlan", "--vlan 100"},
        {"service", "--service echo:7"},
        {"pcap", "--pcap /tmp/toed.pcap"},
        {"max-conns", "--max-conns 4096"},
        {"pbufs", "--pbufs 65536"},
        {"ctl", "--ctl /run/toekit/eth1.sock"},
        {"ctl-group", "--ctl-group toekit"},
        {"max-clients", "--max-clients 64"},
        {"poll-us", "--poll-us 50"},
        {"host-if", "--host-if toe0"},
        {"host-addr", "--host-addr 198.18.0.1/24"},
        {"icmp-echo", "--icmp-echo host"},
        {"link", "--link afxdp"},
        {"offload", "--offload none"},
        {"addr6", "--addr6 2001:db8::2/64"},
        {"ecn", "--ecn on"},
    };
    const char *eq = strchr(arg, '=');
    size_t nlen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
    int which = -1;
    for (int k = 0; k < (int)(sizeof opts / sizeof opts[0]); k++)
      if (strlen(opts[k].name) == nlen && strncmp(arg + 2, opts[k].name, nlen) == 0)
        which = k;
    if (which < 0)
      return fail(err, errlen, "unknown option '%s' (see toed --help)", arg, NULL);
    const char *v = opt_value(argc, argv, &i, eq);
    if (!v || !*v) {
      snprintf(err, errlen, "--%s needs a value (e.g. %s)", opts[which].name, opts[which].example);
      return -1;
    }
    const char *name = opts[which].name;
    if (strcmp(name, "service") != 0 && strcmp(name, "addr6") != 0) {
      if (seen & (1u << which)) {
        snprintf(err, errlen, "--%s given twice (give it once)", name);
        return -1;
      }
      seen |= 1u << which;
    }

    if (strcmp(name, "wire") == 0) {
      a->wire = v;
    } else if (strcmp(name, "addr") == 0) {
      if (!parse_cidr(v, 0, &a->addr, &a->prefix_len))
        return fail(err, errlen,
                    "--addr %s: not an IPv4 address/prefix (expected e.g. 198.18.0.1/24)", v, NULL);
      have_addr = true;
      addr_text = v;
    } else if (strcmp(name, "mac") == 0) {
      if (!parse_mac(v, a->mac))
        return fail(err, errlen,
                    "--mac %s: not a MAC address (expected six hex bytes, e.g. 02:00:00:00:00:01)",
                    v, NULL);
      if (a->mac[0] & 1)
        return fail(err, errlen,
                    "--mac %s: a multicast (group) address cannot be a station's (clear the low "
                    "bit of the first byte, e.g. 02:00:00:00:00:01)",
                    v, NULL);
      static const uint8_t zero[6];
      if (memcmp(a->mac, zero, 6) == 0)
        return fail(err, errlen, "--mac %s: the zero MAC cannot be a station's (e.g. %s)", v,
                    "02:00:00:00:00:01");
      a->have_mac = true;
    } else if (strcmp(name, "gateway") == 0) {
      if (!parse_ipv4(v, &a->gateway))
        return fail(err, errlen, "--gateway %s: not an IPv4 address (expected e.g. %s)", v,
                    "198.18.0.254");
      have_gw = true;
      gw_text = v;
    } else if (strcmp(name, "mtu") == 0) {
      unsigned long mtu;
      if (!parse_uint(v, 68, 9000, &mtu))
        return fail(err, errlen, "--mtu %s: not an MTU between 68 and 9000 (e.g. %s)", v,
                    "--mtu 1500");
      a->mtu = (uint16_t)mtu;
    } else if (strcmp(name, "vlan") == 0) {
      unsigned long vid;
      if (!parse_uint(v, 1, 4094, &vid))
        return fail(err, errlen, "--vlan %s: not a VLAN ID between 1 and 4094 (e.g. %s)", v,
                    "--vlan 100");
      a->vlan = (uint16_t)vid;
    } else if (strcmp(name, "service") == 0) {
      if (parse_service(a, v, err, errlen) < 0)
        return -1;
    } else if (strcmp(name, "pcap") == 0) {
      a->pcap = v;
    } else if (strcmp(name, "max-conns") == 0) {
      unsigned long n;
      if (!parse_uint(v, 1, TOED_MAX_MAX_CONNS, &n))
        return fail(err, errlen, "--max-conns %s: not a number between 1 and 1048576 (e.g. %s)", v,
                    "--max-conns 4096");
      a->max_conns = (uint32_t)n;
    } else if (strcmp(name, "pbufs") == 0) {
      unsigned long n;
      if (!parse_uint(v, TOED_MIN_PBUFS, TOED_MAX_PBUFS, &n))
        return fail(err, errlen, "--pbufs %s: not a number between 256 and 2097152 (e.g. %s)", v,
                    "--pbufs 65536");
      a->pbufs = (uint32_t)n;
    } else if (strcmp(name, "ctl") == 0) {
      a->ctl_off = strcmp(v, "none") == 0;
      a->ctl_path = a->ctl_off ? NULL : v;
    } else if (strcmp(name, "ctl-group") == 0) {
      a->ctl_group = v;
    } else if (strcmp(name, "max-clients") == 0) {
      unsigned long n;
      if (!parse_uint(v, 1, TOED_MAX_MAX_CLIENTS, &n))
        return fail(err, errlen, "--max-clients %s: not a number between 1 and 4096 (e.g. %s)", v,
                    "--max-clients 64");
      a->max_clients = (uint32_t)n;
    } else if (strcmp(name, "poll-us") == 0) {
      unsigned long n;
      if (!parse_uint(v, 0, TOED_MAX_POLL_US, &n))
        return fail(err, errlen, "--poll-us %s: not a number of microseconds 0..1000000 (e.g. %s)",
                    v, "--poll-us 50");
      a->poll_us = (uint32_t)n;
    } else if (strcmp(name, "host-if") == 0) {
      if (strlen(v) >= 16 || strpbrk(v, "/ \t\n:\"\\"))
        return fail(err, errlen,
                    "--host-if %s: not a usable interface name (at most 15 "
                    "characters, no '/', ':' or spaces; e.g. %s)",
                    v, "toe0");
      a->host_if = v;
    } else if (strcmp(name, "host-addr") == 0) {
      if (!parse_cidr(v, 1, &a->host_addr, &a->host_prefix_len))
        return fail(err, errlen,
                    "--host-addr %s: not an IPv4 address/prefix (expected e.g. 198.18.0.1/24)", v,
                    NULL);
    } else if (strcmp(name, "icmp-echo") == 0) {
      if (strcmp(v, "host") == 0)
        a->icmp_echo_host = true;
      else if (strcmp(v, "device") != 0)
        return fail(err, errlen, "--icmp-echo %s: expected 'device' or 'host'", v, NULL);
    } else if (strcmp(name, "link") == 0) {
      if (strcmp(v, "afpacket") != 0 && strcmp(v, "afxdp") != 0)
        return fail(err, errlen, "--link %s: expected 'afpacket' or 'afxdp'", v, NULL);
      a->link = v;
    } else if (strcmp(name, "addr6") == 0) {
      if (parse_addr6(a, v, err, errlen) < 0)
        return -1;
    } else if (strcmp(name, "ecn") == 0) {
      /* the values of TOE_TCP_ECN_* (toe/engine.h), in that order */
      static const char *const modes[] = {"off", "on", "passive", "accecn"};
      int m = -1;
      for (int k = 0; k < 4; k++)
        if (strcmp(v, modes[k]) == 0)
          m = k;
      if (m < 0)
        return fail(err, errlen, "--ecn %s: expected off, passive, on or accecn (e.g. %s)", v,
                    "--ecn on");
      a->ecn = (uint8_t)m;
    } else if (strcmp(name, "offload") == 0) {
      if (parse_offload(v, &a->offload) < 0)
        return fail(err, errlen,
                    "--offload %s: expected none, all, or a comma-separated list of rx-csum, "
                    "tx-csum, csum, tso (e.g. %s)",
                    v, "--offload rx-csum");
    }
  }

  if ((a->host_addr || a->icmp_echo_host) && !a->host_if)
    return fail(err, errlen, "--host-addr and --icmp-echo need --host-if (e.g. --host-if toe0)",
                NULL, NULL);
  if (!a->wire)
    return fail(err, errlen, "no --wire interface given (e.g. --wire eth1; see toed --help)", NULL,
                NULL);
  if (a->follow_host && !a->host_if)
    return fail(err, errlen, "--follow-host needs --host-if (e.g. --host-if toe0 --follow-host)",
                NULL, NULL);
  if (!have_addr && a->follow_host) {
    /* Until the OS has an address on the host interface: an IPv4 link-local one (RFC 3927),
     * which no DHCP server or operator hands out. */
    a->addr = TOED_FOLLOW_PLACEHOLDER;
    a->prefix_len = 16;
    have_addr = true;
    addr_text = "169.254.0.1/16";
  }
  if (!have_addr)
    return fail(err, errlen, "no --addr given (e.g. --addr 198.18.0.1/24; see toed --help)", NULL,
                NULL);

  /* A usable unicast host address (RFC 1122 3.2.1.3, RFC 1812 4.2.2.11). /31 and /32 have no
   * network or broadcast address to avoid (RFC 3021). */
  uint32_t mask = mask_of(a->prefix_len);
  bool bad = a->addr == 0 || (a->addr >> 24) == 127 || (a->addr >> 24) == 0 ||
             (a->addr >> 28) >= 14 || a->prefix_len == 0;
  if (a->prefix_len <= 30)
    bad = bad || (a->addr & ~mask) == 0 || (a->addr & ~mask) == ~mask;
  if (bad)
    return fail(err, errlen,
                "--addr %s: not a usable host address (not zero, loopback, multicast, or the "
                "subnet's network/broadcast address; e.g. 198.18.0.1/24)",
                addr_text, NULL);

  if (have_gw) {
    char net[16];
    if (a->gateway == a->addr || (a->gateway & mask) != (a->addr & mask) ||
        (a->prefix_len <= 30 && ((a->gateway & ~mask) == 0 || (a->gateway & ~mask) == ~mask))) {
      snprintf(err, errlen,
               "--gateway %s: not another host inside %s/%u (the gateway must be on-link)", gw_text,
               toed_fmt_ipv4(a->addr & mask, net, sizeof net), (unsigned)a->prefix_len);
      return -1;
    }
  }
  return 0;
}
