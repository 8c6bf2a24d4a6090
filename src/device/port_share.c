/*
 * Port sharing between the engine and the host OS (port_share.h, docs/coexistence.md).
 */
#define _GNU_SOURCE

#include "device/port_share.h"

#include "device/toed_lifecycle.h"
#include "toe/errno.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define RESERVED_PATH "/proc/sys/net/ipv4/ip_local_reserved_ports"

static int read_file(const char *path, char *buf, size_t len)
{
  FILE *f = fopen(path, "re");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, len - 1, f);
  fclose(f);
  buf[n] = 0;
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
    buf[--n] = 0;
  return 0;
}

static int write_file(const char *path, const char *text)
{
  FILE *f = fopen(path, "we");
  if (!f)
    return -1;
  int rc = fputs(text, f) < 0 ? -1 : 0;
  if (fclose(f) != 0)
    rc = -1;
  return rc;
}

/* ---- the reserved range, shared by the namespace's toeds ---------------------------------- */

/* A list of ranges as the kernel prints ip_local_reserved_ports ("8080,49152-65535"). */
#define MAX_RANGES 512
struct ranges {
  uint32_t n;
  uint16_t lo[MAX_RANGES], hi[MAX_RANGES];
};

static void ranges_parse(const char *text, struct ranges *r)
{
  r->n = 0;
  const char *c = text;
  while (*c && r->n < MAX_RANGES) {
    char *end;
    unsigned long a = strtoul(c, &end, 10), b = a;
    if (end == c)
      break;
    if (*end == '-')
      b = strtoul(end + 1, &end, 10);
    if (a <= 65535 && b <= 65535 && a <= b) {
      r->lo[r->n] = (uint16_t)a;
      r->hi[r->n] = (uint16_t)b;
      r->n++;
    }
    c = end;
    while (*c == ',' || *c == ' ' || *c == '\n')
      c++;
  }
}

/* Whether lo..hi lies inside one range of the list (the kernel merges adjacent ones). */
static bool ranges_cover(const struct ranges *r, uint16_t lo, uint16_t hi)
{
  for (uint32_t i = 0; i < r->n; i++)
    if (r->lo[i] <= lo && hi <= r->hi[i])
      return true;
  return false;
}

/* The list without lo..hi, as text for the sysctl. */
static void ranges_format_without(const struct ranges *r, uint16_t lo, uint16_t hi, char *out,
                                  size_t len)
{
  size_t n = 0;
  out[0] = 0;
  for (uint32_t i = 0; i < r->n; i++) {
    uint32_t a[2] = {r->lo[i], 0}, b[2] = {r->hi[i], 0};
    int parts = 1;
    if (hi >= r->lo[i] && lo <= r->hi[i]) { /* overlaps: keep what lies outside lo..hi */
      parts = 0;
      if (r->lo[i] < lo) {
        a[parts] = r->lo[i];
        b[parts++] = lo - 1u;
      }
      if (r->hi[i] > hi) {
        a[parts] = hi + 1u;
        b[parts++] = r->hi[i];
      }
    }
    for (int k = 0; k < parts && n < len; k++) {
      int w = a[k] == b[k] ? snprintf(out + n, len - n, "%s%u", n ? "," : "", a[k])
                           : snprintf(out + n, len - n, "%s%u-%u", n ? "," : "", a[k], b[k]);
      if (w > 0)
        n += (size_t)w;
    }
  }
  if (n < len - 1) {
    out[n++] = '\n';
    out[n] = 0;
  }
}

/* The registry of a range: "added 0|1" and a "pid N" line per toed relying on it. */
struct registry {
  int fd; /* open and flock'ed */
  char path[160];
  bool exists; /* had content */
  bool added;  /* toekit added the range (else it was there before any toed) */
  uint32_t npids;
  pid_t pids[64];
};

static int registry_open(struct registry *g, const char *path)
{
  memset(g, 0, sizeof *g);
  snprintf(g->path, sizeof g->path, "%s", path);
  mkdir("/run/toekit", 0755);
  mkdir(TOED_STATE_DIR, 0755);
  g->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (g->fd < 0)
    return -1;
  if (flock(g->fd, LOCK_EX) < 0) {
    close(g->fd);
    return -1;
  }
  char buf[2048];
  ssize_t n = pread(g->fd, buf, sizeof buf - 1, 0);
  buf[n > 0 ? n : 0] = 0;
  g->exists = n > 0;
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    long v;
    if (sscanf(line, "added %ld", &v) == 1)
      g->added = v != 0;
    else if (sscanf(line, "pid %ld", &v) == 1 && v > 0 && g->npids < 64 && v != (long)getpid() &&
             toed_pid_alive((pid_t)v))
      g->pids[g->npids++] = (pid_t)v; /* the dead (and zombies) drop out here */
  }
  return 0;
}

/* Writes the registry back (or removes it when nobody is left) and unlocks it. */
static void registry_close(struct registry *g, bool keep)
{
  if (keep) {
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "added %d\n", g->added ? 1 : 0);
    for (uint32_t i = 0; i < g->npids && n < (int)sizeof buf - 32; i++)
      n += snprintf(buf + n, sizeof buf - (size_t)n, "pid %ld\n", (long)g->pids[i]);
    if (ftruncate(g->fd, 0) < 0 || pwrite(g->fd, buf, (size_t)n, 0) != n) {
      /* Best effort: the worst case is a range that --cleanup cannot attribute. */
    }
  } else {
    unlink(g->path);
  }
  close(g->fd); /* releases the lock */
}

static void registry_path(char *buf, size_t len, uint16_t lo, uint16_t hi)
{
  snprintf(buf, len, "%s/ports-%lu-%u-%u", TOED_STATE_DIR, toed_netns_id(), (unsigned)lo,
           (unsigned)hi);
}

/* The last holder is gone: remove the range if toekit added it. Returns 0 or -1. */
static int release_range(const struct registry *g, uint16_t lo, uint16_t hi, bool *removed)
{
  *removed = false;
  if (!g->added)
    return 0;
  char cur[8192], text[8192];
  if (read_file(RESERVED_PATH, cur, sizeof cur) < 0)
    return -1;
  struct ranges r;
  ranges_parse(cur, &r);
  ranges_format_without(&r, lo, hi, text, sizeof text);
  if (write_file(RESERVED_PATH, text) < 0)
    return -1;
  *removed = true;
  return 0;
}

int toed_port_share_open(struct toed_port_share *p, uint32_t addr, uint16_t lo, uint16_t hi,
                         char *err, size_t errlen)
{
  memset(p, 0, sizeof *p);
  p->addr = addr;
  p->lo = lo;
  p->hi = hi;
  char path[160];
  registry_path(path, sizeof path, lo, hi);
  struct registry g;
  if (registry_open(&g, path) < 0) {
    snprintf(err, errlen, "cannot open %s: %s (needed to share the reserved ports)", path,
             strerror(errno));
    return -1;
  }
  char cur[8192];
  if (read_file(RESERVED_PATH, cur, sizeof cur) < 0) {
    snprintf(err, errlen, "cannot read %s: %s (needed to reserve the device's ports)",
             RESERVED_PATH, strerror(errno));
    registry_close(&g, g.exists);
    return -1;
  }
  struct ranges r;
  ranges_parse(cur, &r);
  if (!ranges_cover(&r, lo, hi)) {
    char text[sizeof cur + 32];
    snprintf(text, sizeof text, "%s%s%u-%u\n", cur, cur[0] ? "," : "", (unsigned)lo, (unsigned)hi);
    if (write_file(RESERVED_PATH, text) < 0) {
      snprintf(err, errlen, "cannot reserve ports %u-%u from the OS in %s: %s (toed needs root)",
               (unsigned)lo, (unsigned)hi, RESERVED_PATH, strerror(errno));
      registry_close(&g, g.exists);
      return -1;
    }
    g.added = true;
  } else if (!g.exists) {
    g.added = false; /* there before any toed: an administrator's, never removed by us */
  }
  /* else: registered already; `added` says whether it is toekit's, live holders or not (a
   * crashed toed's range is not "the original"). */
  if (g.npids < 64)
    g.pids[g.npids++] = getpid();
  registry_close(&g, true);
  p->reserved = true;
  return 0;
}

int toed_port_share_cleanup(char *report, size_t len)
{
  report[0] = 0;
  DIR *dir = opendir(TOED_STATE_DIR);
  if (!dir)
    return 0;
  char prefix[64];
  snprintf(prefix, sizeof prefix, "ports-%lu-", toed_netns_id());
  int removed_n = 0;
  size_t used = 0;
  struct dirent *de;
  while ((de = readdir(dir))) {
    unsigned lo, hi;
    if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
        sscanf(de->d_name + strlen(prefix), "%u-%u", &lo, &hi) != 2 || lo > hi || hi > 65535)
      continue;
    char path[160];
    registry_path(path, sizeof path, (uint16_t)lo, (uint16_t)hi);
    struct registry g;
    if (registry_open(&g, path) < 0)
      continue;
    if (g.npids) {
      registry_close(&g, true);
      continue;
    }
    bool removed;
    if (release_range(&g, (uint16_t)lo, (uint16_t)hi, &removed) < 0) {
      registry_close(&g, true);
      closedir(dir);
      return -1;
    }
    registry_close(&g, false);
    if (removed) {
      removed_n++;
      int w = snprintf(report + used, len - used,
                       "removed the reserved ports %u-%u from %s (no live toed holds them)\n", lo,
                       hi, RESERVED_PATH);
      if (w > 0 && (size_t)w < len - used)
        used += (size_t)w;
    }
  }
  closedir(dir);
  return removed_n;
}

/* Binds a kernel socket on addr:port. Returns the fd, or -errno. */
static int shadow_bind(uint32_t addr, uint8_t proto, uint16_t port)
{
  int fd = socket(AF_INET, (proto == 6 ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  /* The address may not be configured on the host interface (yet): bind anyway, the port
   * conflict rules apply all the same. No SO_REUSEADDR: it must conflict with every other bind. */
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(addr);
  if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

/* The same on an IPv6 address: IPv6 only, so the IPv4 shadow keeps its own conflicts. */
static int shadow_bind6(const uint8_t addr[16], uint8_t proto, uint16_t port)
{
  int fd = socket(AF_INET6, (proto == 6 ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof one);
  struct sockaddr_in6 sin6;
  memset(&sin6, 0, sizeof sin6);
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(port);
  memcpy(sin6.sin6_addr.s6_addr, addr, 16);
  if (bind(fd, (struct sockaddr *)&sin6, sizeof sin6) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

static void close_fd6(int *fd6)
{
  for (unsigned j = 0; j < TOED_PORT_SHARE_MAX6; j++) {
    if (fd6[j] >= 0)
      close(fd6[j]);
    fd6[j] = -1;
  }
}

/* Binds the IPv6 shadows of a claim into fd6. Returns 0, -EADDRINUSE (none left bound) or
 * another -errno (those bound are kept). */
static int shadow_bind_all6(const struct toed_port_share *p, uint8_t proto, uint16_t port, int *fd6)
{
  int rc = 0;
  for (unsigned j = 0; j < TOED_PORT_SHARE_MAX6; j++)
    fd6[j] = -1;
  for (unsigned j = 0; j < p->n_addr6; j++) {
    int fd = shadow_bind6(p->addr6[j], proto, port);
    if (fd == -EADDRINUSE) {
      close_fd6(fd6);
      return -EADDRINUSE;
    }
    if (fd < 0)
      rc = fd;
    else
      fd6[j] = fd;
  }
  return rc;
}

void toed_port_share_set_addr6(struct toed_port_share *p, const uint8_t (*addr6)[16], unsigned n)
{
  p->n_addr6 = n < TOED_PORT_SHARE_MAX6 ? n : TOED_PORT_SHARE_MAX6;
  for (unsigned j = 0; j < p->n_addr6; j++)
    memcpy(p->addr6[j], addr6[j], 16);
}

int toed_port_share_claim(void *ctx, uint8_t proto, uint16_t port, bool claim)
{
  struct toed_port_share *p = ctx;
  for (uint32_t i = 0; i < p->n; i++) {
    if (p->shadow[i].port != port || p->shadow[i].proto != proto)
      continue;
    /* Engine sockets sharing a port (UDP SO_REUSEADDR) share its shadow: the OS is kept off the
     * port until the last of them lets it go. */
    if (claim) {
      p->shadow[i].refs++;
      return 0;
    }
    if (--p->shadow[i].refs == 0) {
      close(p->shadow[i].fd);
      close_fd6(p->shadow[i].fd6);
      p->shadow[i] = p->shadow[--p->n];
    }
    return 0;
  }
  if (!claim)
    return 0;
  int fd = shadow_bind(p->addr, proto, port);
  if (fd == -EADDRINUSE) {
    p->refused++;
    return -TOE_EADDRINUSE;
  }
  int fd6[TOED_PORT_SHARE_MAX6];
  int rc6 = shadow_bind_all6(p, proto, port, fd6);
  if (rc6 == -EADDRINUSE) {
    if (fd >= 0)
      close(fd);
    p->refused++;
    return -TOE_EADDRINUSE;
  }
  p->claims++;
  if (fd < 0 || rc6 < 0 || p->n == TOED_PORT_SHARE_MAX) {
    /* Out of fds or slots: the engine's bind still stands; the OS is then not stopped from
     * binding the port, which is counted (the filter table keeps the traffic apart anyway). */
    if (fd >= 0)
      close(fd);
    close_fd6(fd6);
    p->shadow_fail++;
    return 0;
  }
  memcpy(p->shadow[p->n].fd6, fd6, sizeof fd6);
  p->shadow[p->n].fd = fd;
  p->shadow[p->n].port = port;
  p->shadow[p->n].proto = proto;
  p->shadow[p->n].refs = 1;
  p->n++;
  return 0;
}

int toed_port_share_close(struct toed_port_share *p)
{
  for (uint32_t i = 0; i < p->n; i++) {
    close(p->shadow[i].fd);
    close_fd6(p->shadow[i].fd6);
  }
  p->n = 0;
  int rc = 0;
  if (p->reserved) {
    char path[160];
    registry_path(path, sizeof path, p->lo, p->hi);
    struct registry g;
    if (registry_open(&g, path) < 0)
      return -1;
    /* registry_open left this instance out: what remains are the other live holders. */
    bool removed = false;
    if (g.npids == 0 && release_range(&g, p->lo, p->hi, &removed) < 0)
      rc = -1;
    registry_close(&g, g.npids > 0 || rc < 0);
    p->reserved = false;
  }
  return rc;
}
