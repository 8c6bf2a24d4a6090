/*
 * The smallest libtoe client: connects through the device to HOST:PORT, sends MESSAGE, prints
 * what comes back until the peer closes, and detaches.
 *
 *   cc toe_echo_client.c $(pkg-config --cflags --libs libtoe) -o toe_echo_client
 *   ./toe_echo_client 198.18.0.2 7 hello        # $TOE_CTL, or the only socket in /run/toekit
 *
 * Every libtoe call returns a negative errno value on failure; toe_strerror says what it means.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <toe/toe.h>

static int fail(const char *what, int rc)
{
  fprintf(stderr, "toe_echo_client: %s: %s\n", what, toe_strerror(rc));
  return 1;
}

int main(int argc, char **argv)
{
  if (argc != 4) {
    fprintf(stderr, "usage: toe_echo_client HOST PORT MESSAGE\n");
    return 2;
  }
  struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &peer.sin_addr) != 1) {
    fprintf(stderr, "toe_echo_client: not an IPv4 address: %s\n", argv[1]);
    return 2;
  }
  toe_dev *dev;
  int rc = toe_attach(NULL, NULL, &dev); /* NULL: $TOE_CTL or the default socket */
  if (rc < 0)
    return fail("attach to the device", rc);
  int sd = toe_socket(dev, TOE_SOCK_STREAM);
  if (sd < 0)
    return fail("socket", sd);
  rc = toe_connect_blocking(dev, sd, (struct sockaddr *)&peer, sizeof(peer), 5000);
  if (rc < 0)
    return fail("connect", rc);
  ssize_t n = toe_send_all(dev, sd, argv[3], strlen(argv[3]), 5000);
  if (n < 0)
    return fail("send", (int)n);
  toe_shutdown(dev, sd, SHUT_WR); /* our FIN: an echo server then closes its side */
  char buf[4096];
  while ((n = toe_recv_blocking(dev, sd, buf, sizeof(buf), 5000)) > 0)
    fwrite(buf, 1, (size_t)n, stdout);
  if (n < 0)
    return fail("recv", (int)n);
  printf("\n");
  toe_close(dev, sd);
  toe_detach(dev, 1000);
  return 0;
}
