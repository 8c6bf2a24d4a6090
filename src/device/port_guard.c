/*
 * Port guard: nftables netdev ingress/egress chains on the wire port.
 *
 * What was measured (kernel 6.18, nftables 1.0.6, veth pair, 2026-11):
 *   - a netdev ingress chain with policy drop: the kernel stack sees nothing, a packet socket on
 *     the port still receives every frame (ptype_all taps run before the ingress hook);
 *   - a netdev egress chain with policy drop also drops AF_PACKET transmissions, with and without
 *     PACKET_QDISC_BYPASS (af_packet runs the egress hook for bypassing sockets too), and send()
 *     then fails with ENOBUFS;
 *   - the same chain with `meta mark 0x746f6564 accept` passes the frames of a packet socket that
 *     set SO_MARK 0x746f6564, and still drops the kernel's own ARP/ND/MLD.
 * So the guard is one table with both chains, and the link driver marks its socket. The nft
 * command is used (not libnftnl): this is a one-off setup step, not the data path.
 */
#define _GNU_SOURCE

#include "device/port_guard.h"

#include "device/toed_lifecycle.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Runs `nft -f -` with `script` on stdin. Returns 0 with nft's output in `out` (if not NULL), or
 * -1 with nft's first error line (or why it could not run) in err.
 */
static int run_nft_out(const char *script, char *err, size_t errlen, char *out_buf, size_t out_len)
{
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) < 0)
    goto sys_fail;
  if (pipe2(out, O_CLOEXEC) < 0) {
    close(in[0]);
    close(in[1]);
    goto sys_fail;
  }
  pid_t pid = fork();
  if (pid < 0) {
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    goto sys_fail;
  }
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    /* The daemon blocks SIGINT/SIGTERM for its signalfd; nft must get default handling. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    char *argv_[] = {"nft", "-f", "-", NULL};
    execvp("nft", argv_);
    execv("/usr/sbin/nft", argv_);
    execv("/sbin/nft", argv_);
    dprintf(2, "cannot run nft: %s (install nftables)\n", strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  /* Scripts are small (well under a pipe buffer), so writing before reading cannot deadlock. */
  size_t left = strlen(script);
  const char *p = script;
  while (left) {
    ssize_t w = write(in[1], p, left);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    p += w;
    left -= (size_t)w;
  }
  close(in[1]);
  char buf[2048];
  size_t got = 0;
  for (;;) {
    ssize_t r = read(out[0], buf + got, sizeof buf - 1 - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
    if (got == sizeof buf - 1) {
      char sink[512];
      while (read(out[0], sink, sizeof sink) > 0) {
      }
      break;
    }
  }
  buf[got] = 0;
  close(out[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    if (out_buf)
      snprintf(out_buf, out_len, "%s", buf);
    return 0;
  }
  /* First line of nft's complaint. */
  char *nl = strchr(buf, '\n');
  if (nl)
    *nl = 0;
  snprintf(err, errlen, "%.200s", buf[0] ? buf : "nft failed");
  return -1;

sys_fail:
  snprintf(err, errlen, "cannot run nft: %s", strerror(errno));
  return -1;
}

static int run_nft(const char *script, char *err, size_t errlen)
{
  return run_nft_out(script, err, errlen, NULL, 0);
}

/*
 * The table carries the owner's PID in its comment. If a live toed owns it, the port is taken:
 * replacing its table would leave that toed unguarded once either of us exits. Otherwise the table
 * is a crashed toed's leftover and is replaced.
 */
static long live_owner(const char *table)
{
  char script[128], listing[4096], err[256];
  snprintf(script, sizeof script, "list table netdev %s\n", table);
  if (run_nft_out(script, err, sizeof err, listing, sizeof listing) != 0)
    return 0; /* no such table */
  const char *tag = "comment \"toed pid ";
  const char *c = strstr(listing, tag);
  if (!c)
    return 0;
  long pid = strtol(c + strlen(tag), NULL, 10);
  /* A zombie or a pid reused by another program owns nothing (toed_pid_alive). */
  return pid > 0 && pid != (long)getpid() && toed_pid_alive((pid_t)pid) ? pid : 0;
}

/* The table's name for an interface: "toed_" and the name with non-alphanumerics as '_'. */
static void table_name(const char *ifname, char *table, size_t len)
{
  int n = snprintf(table, len, "toed_");
  for (const char *c = ifname; *c && (size_t)n < len - 1; c++)
    table[n++] = isalnum((unsigned char)*c) ? *c : '_';
  table[n] = 0;
}

int toed_port_guard_cleanup(const char *ifname, char *err, size_t errlen)
{
  char table[64], script[128], listing[4096];
  table_name(ifname, table, sizeof table);
  long owner = live_owner(table);
  if (owner) {
    snprintf(err, errlen, "toed (pid %ld) is running on %s; stop it instead (kill -TERM %ld)",
             owner, ifname, owner);
    return -1;
  }
  snprintf(script, sizeof script, "list table netdev %s\n", table);
  if (run_nft_out(script, err, errlen, listing, sizeof listing) != 0)
    return 0; /* no table */
  snprintf(script, sizeof script, "delete table netdev %s\n", table);
  if (run_nft(script, err, errlen) != 0)
    return -1;
  return 1;
}

static int if_flags(const char *ifname, short *flags, bool set)
{
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
  int rc;
  if (set) {
    ifr.ifr_flags = *flags;
    rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
  } else {
    rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    *flags = ifr.ifr_flags;
  }
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

static int read_sysctl_int(const char *path)
{
  FILE *f = fopen(path, "re");
  if (!f)
    return -1;
  int v = -1;
  if (fscanf(f, "%d", &v) != 1)
    v = -1;
  fclose(f);
  return v;
}

static int write_sysctl_int(const char *path, int v)
{
  FILE *f = fopen(path, "we");
  if (!f)
    return -1;
  int rc = fprintf(f, "%d\n", v) < 0 ? -1 : 0;
  if (fclose(f) != 0)
    rc = -1;
  return rc;
}

static void ipv6_path(const struct toed_port_guard *g, char *buf, size_t len)
{
  snprintf(buf, len, "/proc/sys/net/ipv6/conf/%s/disable_ipv6", g->ifname);
}

/* Fallback without an egress hook: silence the two sources of unsolicited frames. */
static void fallback_silence(struct toed_port_guard *g)
{
  short fl;
  if (if_flags(g->ifname, &fl, false) == 0 && !(fl & IFF_NOARP)) {
    fl |= IFF_NOARP;
    if (if_flags(g->ifname, &fl, true) == 0)
      g->arp_changed = true;
  }
  char path[128];
  ipv6_path(g, path, sizeof path);
  int old = read_sysctl_int(path);
  if (old == 0 && write_sysctl_int(path, 1) == 0)
    g->ipv6_saved = old;
}

static const char *script_fmt = "table netdev %s\n"
                                "delete table netdev %s\n"
                                "table netdev %s {\n"
                                "  comment \"toed pid %ld\"\n"
                                "  chain ingress {\n"
                                "    type filter hook ingress device \"%s\" priority -500;\n"
                                "    policy drop;\n"
                                "  }\n"
                                "%s"
                                "}\n";

int toed_port_guard_install(struct toed_port_guard *g, const char *ifname, uint32_t fwmark,
                            char *err, size_t errlen, char *warn, size_t warnlen)
{
  memset(g, 0, sizeof *g);
  g->ipv6_saved = -1;
  warn[0] = 0;
  if (strlen(ifname) >= sizeof g->ifname || strpbrk(ifname, "\"\\\n")) {
    snprintf(err, errlen, "interface name '%s' cannot be used in an nftables rule", ifname);
    return -1;
  }
  snprintf(g->ifname, sizeof g->ifname, "%s", ifname);
  /* Table names are identifiers: keep letters and digits, map the rest to '_'. */
  table_name(ifname, g->table, sizeof g->table);

  long owner = live_owner(g->table);
  if (owner) {
    snprintf(err, errlen, "toed (pid %ld) already owns %s; stop it first", owner, ifname);
    return -1;
  }

  char egress[256];
  snprintf(egress, sizeof egress,
           "  chain egress {\n"
           "    type filter hook egress device \"%s\" priority -500;\n"
           "    policy drop;\n"
           "    meta mark 0x%08x accept\n"
           "  }\n",
           ifname, fwmark);
  char script[1024];
  char nft_err[256];
  /* "table" then "delete table" in one transaction: removes a stale table of a crashed toed
   * whether or not one exists, atomically with creating the new one. */
  snprintf(script, sizeof script, script_fmt, g->table, g->table, g->table, (long)getpid(), ifname,
           egress);
#ifdef TOED_TEST_NO_EGRESS
  /* Test builds only: behave as if the egress hook were missing. */
  bool egress_ok = false;
  snprintf(nft_err, sizeof nft_err, "egress disabled in this test build");
#else
  bool egress_ok = run_nft(script, nft_err, sizeof nft_err) == 0;
#endif
  if (egress_ok) {
    g->table_installed = true;
    g->egress = true;
  } else {
    char nft_err2[256];
    snprintf(script, sizeof script, script_fmt, g->table, g->table, g->table, (long)getpid(),
             ifname, "");
    if (run_nft(script, nft_err2, sizeof nft_err2) != 0) {
      snprintf(err, errlen, "cannot install the nftables port guard on %s: %s", ifname, nft_err2);
      return -1;
    }
    g->table_installed = true;
    fallback_silence(g);
    snprintf(warn, warnlen, "no netdev egress hook (%s): turned ARP off and IPv6 off on %s instead",
             nft_err, ifname);
  }

  /* The port must be up to carry frames; bring it up now that the kernel cannot use it. */
  short fl;
  if (if_flags(g->ifname, &fl, false) == 0 && !(fl & IFF_UP)) {
    fl |= IFF_UP;
    if (if_flags(g->ifname, &fl, true) < 0) {
      snprintf(err, errlen, "cannot bring %s up: %s", ifname, strerror(errno));
      toed_port_guard_remove(g);
      return -1;
    }
    g->up_changed = true;
  }
  return 0;
}

int toed_port_guard_remove(struct toed_port_guard *g)
{
  int rc = 0;
  short fl;
  if (g->up_changed && if_flags(g->ifname, &fl, false) == 0) {
    fl &= ~IFF_UP;
    if (if_flags(g->ifname, &fl, true) < 0)
      rc = -1;
    g->up_changed = false;
  }
  if (g->arp_changed && if_flags(g->ifname, &fl, false) == 0) {
    fl &= ~IFF_NOARP;
    if (if_flags(g->ifname, &fl, true) < 0)
      rc = -1;
    g->arp_changed = false;
  }
  if (g->ipv6_saved >= 0) {
    char path[128];
    ipv6_path(g, path, sizeof path);
    if (write_sysctl_int(path, g->ipv6_saved) < 0)
      rc = -1;
    g->ipv6_saved = -1;
  }
  if (g->table_installed) {
    char script[128], err[256];
    snprintf(script, sizeof script, "delete table netdev %s\n", g->table);
    /* The interface may be gone (the table went with it); that is not a failure. */
    if (run_nft(script, err, sizeof err) != 0 && if_nametoindex(g->ifname) != 0)
      rc = -1;
    g->table_installed = false;
  }
  return rc;
}

void toed_port_guard_describe(const struct toed_port_guard *g, char *buf, size_t len)
{
  snprintf(buf, len, "nft netdev %s ingress drop%s", g->table,
           g->egress ? " + egress drop (marked frames pass)" : ", ARP and IPv6 off");
}
