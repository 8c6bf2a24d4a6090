/*
 * For tests/net/test_preload_secure.sh: loads libtoe-preload.so (argv[1]) with dlopen and makes
 * one TCP connection through its socket() and connect() to ADDR:PORT (argv[2], argv[3]). Run
 * from a copy with file capabilities (AT_SECURE, like a set-user-ID program), the preload must
 * not take TOE_CTL or TOE_OFFLOAD from the environment (secure_getenv): the shell checks whether
 * the control socket that TOE_CTL names saw a connection. Prints "secure 0|1" (getauxval
 * AT_SECURE) and "connect RC ERRNO". Exit status 0 unless the library cannot be loaded (1) or
 * the arguments are bad (2).
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
  if (argc != 4) {
    fputs("usage: preload_secure LIBTOE_PRELOAD ADDR PORT\n", stderr);
    return 2;
  }
  printf("secure %lu\n", getauxval(AT_SECURE));
  fflush(stdout);
  void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "preload_secure: %s\n", dlerror());
    return 1;
  }
  int (*sock)(int, int, int) = (int (*)(int, int, int))dlsym(h, "socket");
  int (*conn)(int, const struct sockaddr *, socklen_t) =
      (int (*)(int, const struct sockaddr *, socklen_t))dlsym(h, "connect");
  if (!sock || !conn) {
    fprintf(stderr, "preload_secure: no socket/connect in %s\n", argv[1]);
    return 1;
  }
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
  inet_pton(AF_INET, argv[2], &a.sin_addr);
  int fd = sock(AF_INET, SOCK_STREAM, 0);
  int rc = fd < 0 ? -1 : conn(fd, (struct sockaddr *)&a, sizeof a);
  printf("connect %d %d\n", rc, rc < 0 ? errno : 0);
  return 0;
}
