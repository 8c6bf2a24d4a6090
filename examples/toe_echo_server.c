/*
 * The smallest libtoe server: listens on the device's PORT, and for each of COUNT connections
 * (default 1) echoes what it receives until the peer closes.
 *
 *   cc toe_echo_server.c $(pkg-config --cflags --libs libtoe) -o toe_echo_server
 *   ./toe_echo_server 7007 1                     # $TOE_CTL, or the only socket in /run/toekit
 *
 * Prints "listening" once the listener is up (scripts wait for it), and one line per connection.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <toe/toe.h>

static int fail(const char *what, int rc)
{
  fprintf(stderr, "toe_echo_server: %s: %s\n", what, toe_strerror(rc));
  return 1;
}

int main(int argc, char **argv)
{
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: toe_echo_server PORT [COUNT]\n");
    return 2;
  }
  int count = argc == 3 ? atoi(argv[2]) : 1;
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  toe_dev *dev;
  int rc = toe_attach(NULL, NULL, &dev);
  if (rc < 0)
    return fail("attach to the device", rc);
  int ls = toe_socket(dev, TOE_SOCK_STREAM);
  if (ls < 0)
    return fail("socket", ls);
  if ((rc = toe_bind(dev, ls, (struct sockaddr *)&local, sizeof(local))) < 0)
    return fail("bind", rc);
  if ((rc = toe_listen(dev, ls, 16)) < 0)
    return fail("listen", rc);
  printf("listening on port %s (libtoe %s)\n", argv[1], toe_version());
  fflush(stdout);
  for (int i = 0; i < count; i++) {
    struct sockaddr_in peer;
    socklen_t plen = sizeof(peer);
    int sd = toe_accept_blocking(dev, ls, (struct sockaddr *)&peer, &plen, -1);
    if (sd < 0)
      return fail("accept", sd);
    char buf[4096], who[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &peer.sin_addr, who, sizeof(who));
    ssize_t n, total = 0;
    while ((n = toe_recv_blocking(dev, sd, buf, sizeof(buf), 10000)) > 0) {
      ssize_t w = toe_send_all(dev, sd, buf, (size_t)n, 10000);
      if (w < 0)
        return fail("send", (int)w);
      total += n;
    }
    printf("%s:%u: echoed %zd bytes\n", who, ntohs(peer.sin_port), total);
    fflush(stdout);
    toe_flush(dev, sd, 5000);
    toe_close(dev, sd);
  }
  toe_close(dev, ls);
  toe_detach(dev, 1000);
  return 0;
}
