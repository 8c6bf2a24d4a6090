/*
 * A libtoe client for tests/net/test_device_abuse.sh and test_device_limits.sh: does one thing a
 * host client may try against toed and prints "key value" lines (values are libtoe's results:
 * 0 or a negative TOE_E* number). Exit status 0 unless the arguments were bad (2) or the
 * attach failed (1, with "attach ERR" printed).
 *
 *   bind CTL tcp|udp PORT          binds 0.0.0.0:PORT (TCP: and listens): "bind RC"
 *   connect-from CTL SPORT HOST PORT
 *                                  TCP from source port SPORT: "bind RC", then "connect RC"
 *   origin CTL native|proxy        attaches with that origin: "attach RC"; then opens a TCP
 *                                  socket and tags it with pid 4242 "tagged": "owner RC"
 *   socks CTL tcp|udp N            opens up to N sockets, "opened K" and "error RC" (the first
 *                                  failure, 0 if none); then holds them until stdin closes
 *   shares CTL N                   one UDP socket shared N times: "shared K", "error RC"; holds
 *                                  them until stdin closes
 */
#define _GNU_SOURCE

#include "toe/toe.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void out(const char *key, long long v)
{
  printf("%s %lld\n", key, v);
  fflush(stdout);
}

static toe_dev *attach(const char *ctl, uint32_t origin)
{
  struct toe_attach_opts o;
  toe_attach_opts_init(&o);
  o.origin = origin;
  o.max_handles = 4096;
  toe_dev *d = NULL;
  int rc = toe_attach(ctl, &o, &d);
  out("attach", rc);
  if (rc < 0)
    exit(1);
  return d;
}

static struct sockaddr_in sin4(const char *host, int port)
{
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  if (host)
    inet_pton(AF_INET, host, &a.sin_addr);
  return a;
}

static void hold(void)
{
  char b[64];
  while (read(0, b, sizeof b) > 0) {
  }
}

int main(int argc, char **argv)
{
  if (argc < 3) {
    fputs("usage: device_client MODE CTL ARGS (see the source)\n", stderr);
    return 2;
  }
  const char *mode = argv[1], *ctl = argv[2];
  if (strcmp(mode, "bind") == 0 && argc == 5) {
    toe_dev *d = attach(ctl, TOE_ORIGIN_NATIVE);
    bool tcp = strcmp(argv[3], "tcp") == 0;
    int sd = toe_socket(d, tcp ? TOE_SOCK_STREAM : TOE_SOCK_DGRAM);
    struct sockaddr_in a = sin4(NULL, atoi(argv[4]));
    int rc = sd < 0 ? sd : toe_bind(d, sd, (struct sockaddr *)&a, sizeof a);
    if (rc == 0 && tcp)
      rc = toe_listen(d, sd, 8);
    out("bind", rc);
    toe_detach(d, 0);
    return 0;
  }
  if (strcmp(mode, "connect-from") == 0 && argc == 6) {
    toe_dev *d = attach(ctl, TOE_ORIGIN_NATIVE);
    int sd = toe_socket(d, TOE_SOCK_STREAM);
    struct sockaddr_in la = sin4(NULL, atoi(argv[3]));
    int rc = sd < 0 ? sd : toe_bind(d, sd, (struct sockaddr *)&la, sizeof la);
    out("bind", rc);
    struct sockaddr_in ra = sin4(argv[4], atoi(argv[5]));
    rc = toe_connect_blocking(d, sd, (struct sockaddr *)&ra, sizeof ra, 3000);
    out("connect", rc);
    toe_detach(d, 0);
    return 0;
  }
  if (strcmp(mode, "origin") == 0 && argc == 4) {
    bool proxy = strcmp(argv[3], "proxy") == 0;
    toe_dev *d = attach(ctl, proxy ? TOE_ORIGIN_PROXY : TOE_ORIGIN_NATIVE);
    int sd = toe_socket(d, TOE_SOCK_STREAM);
    out("owner", sd < 0 ? sd : toe_set_owner(d, sd, 4242, "tagged"));
    toe_detach(d, 0);
    return 0;
  }
  if (strcmp(mode, "socks") == 0 && argc == 5) {
    toe_dev *d = attach(ctl, TOE_ORIGIN_NATIVE);
    bool tcp = strcmp(argv[3], "tcp") == 0;
    long n = atol(argv[4]), k = 0;
    int err = 0;
    for (; k < n; k++) {
      int sd = toe_socket(d, tcp ? TOE_SOCK_STREAM : TOE_SOCK_DGRAM);
      if (sd < 0) {
        err = sd;
        break;
      }
    }
    out("opened", k);
    out("error", err);
    hold();
    toe_detach(d, 0);
    return 0;
  }
  if (strcmp(mode, "shares") == 0 && argc == 4) {
    toe_dev *d = attach(ctl, TOE_ORIGIN_NATIVE);
    long n = atol(argv[3]), k = 0;
    int err = 0;
    int sd = toe_socket(d, TOE_SOCK_DGRAM);
    struct sockaddr_in a = sin4(NULL, 0);
    if (sd < 0 || (err = toe_bind(d, sd, (struct sockaddr *)&a, sizeof a)) < 0)
      err = sd < 0 ? sd : err;
    for (; err == 0 && k < n; k++) {
      uint64_t tok;
      int rc = toe_share(d, sd, &tok);
      if (rc < 0) {
        err = rc;
        break;
      }
    }
    out("shared", k);
    out("error", err);
    hold();
    toe_detach(d, 0);
    return 0;
  }
  fputs("usage: device_client MODE CTL ARGS (see the source)\n", stderr);
  return 2;
}
