/*
 * Port sharing between the engine and the host OS (port_share.h, docs/coexistence.md).
 */
#define _GNU_SOURCE

#include "device/port_share.h"

#include "toe/errno.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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

int toed_port_share_open(struct toed_port_share *p, uint32_t addr, uint16_t lo, uint16_t hi,
                         char *err, size_t errlen)
{
  memset(p, 0, sizeof *p);
  p->addr = addr;
  if (read_file(RESERVED_PATH, p->saved, sizeof p->saved) < 0) {
    snprintf(err, errlen, "cannot read %s: %s (needed to reserve the device's ports)",
             RESERVED_PATH, strerror(errno));
    return -1;
  }
  char text[sizeof p->saved + 32];
  snprintf(text, sizeof text, "%s%s%u-%u\n", p->saved, p->saved[0] ? "," : "", (unsigned)lo,
           (unsigned)hi);
  if (write_file(RESERVED_PATH, text) < 0) {
    snprintf(err, errlen, "cannot reserve ports %u-%u from the OS in %s: %s (toed needs root)",
             (unsigned)lo, (unsigned)hi, RESERVED_PATH, strerror(errno));
    return -1;
  }
  p->reserved = true;
  return 0;
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
  p->claims++;
  if (fd < 0 || p->n == TOED_PORT_SHARE_MAX) {
    /* Out of fds or slots: the engine's bind still stands; the OS is then not stopped from
     * binding the port, which is counted (the filter table keeps the traffic apart anyway). */
    if (fd >= 0)
      close(fd);
    p->shadow_fail++;
    return 0;
  }
  p->shadow[p->n].fd = fd;
  p->shadow[p->n].port = port;
  p->shadow[p->n].proto = proto;
  p->shadow[p->n].refs = 1;
  p->n++;
  return 0;
}

int toed_port_share_close(struct toed_port_share *p)
{
  for (uint32_t i = 0; i < p->n; i++)
    close(p->shadow[i].fd);
  p->n = 0;
  int rc = 0;
  if (p->reserved) {
    char text[sizeof p->saved + 2];
    snprintf(text, sizeof text, "%s\n", p->saved);
    if (write_file(RESERVED_PATH, text) < 0)
      rc = -1;
    p->reserved = false;
  }
  return rc;
}
