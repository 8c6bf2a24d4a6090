/*
 * Connections inherited across fork and exec (test_preload_inherit.sh, docs/interception.md
 * "fork and exec"). Modes:
 *   fork ADDR PORT N    a fork-per-connection server: accept, fork; the child closes the
 *                       listener and echoes the connection until EOF; the parent closes its
 *                       copy at once and accepts the next (N connections), then waits for them
 *   inetd ADDR PORT N   an inetd-style server (SOCK_CLOEXEC listener): accept, fork; the child
 *                       puts the connection on stdin and stdout and execs `cat`
 *   bind ADDR PORT      binds and listens on ADDR:PORT once (the restart check)
 *   closefrom ADDR PORT what sshd's session child does before it serves SFTP: a device session
 *                       is attached (a listener on ADDR:PORT, closed again), closefrom(3) closes
 *                       every descriptor of the program's and the library's, files take the
 *                       numbers; they must stay open (the library must not close them as its
 *                       own), and a new listener must be offloaded again
 *   client ADDR PORT IN OUT  (not preloaded) connects, sends file IN while writing what comes
 *                       back to OUT, half-closes after IN (and after file $PI_HOLD exists, if
 *                       set), and stops at EOF
 * Lines "ok   - ..." and "FAIL - ..." for preload_run; "child PID" on stderr for each fork.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int fails;

static void ok(int cond, const char *what)
{
  printf("%s - %s\n", cond ? "ok  " : "FAIL", what);
  fflush(stdout);
  if (!cond)
    fails++;
}

static struct sockaddr_in addr_of(const char *a, const char *port)
{
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)atoi(port));
  if (inet_pton(AF_INET, a, &sin.sin_addr) != 1) {
    fprintf(stderr, "bad address %s\n", a);
    exit(2);
  }
  return sin;
}

static int listener(const char *a, const char *port, int flags)
{
  struct sockaddr_in sin = addr_of(a, port);
  int l = socket(AF_INET, SOCK_STREAM | flags, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (l < 0 || bind(l, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(l, 16) < 0) {
    fprintf(stderr, "listen on %s:%s: %s\n", a, port, strerror(errno));
    return -1;
  }
  return l;
}

static int write_all(int fd, const char *p, size_t n)
{
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* The child of the fork server: echo until EOF. */
static int echo(int c)
{
  static char buf[65536];
  for (;;) {
    ssize_t r = read(c, buf, sizeof(buf));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      fprintf(stderr, "child read: %s\n", strerror(errno));
      return 1;
    }
    if (r == 0)
      break;
    if (write_all(c, buf, (size_t)r) < 0) {
      fprintf(stderr, "child write: %s\n", strerror(errno));
      return 1;
    }
  }
  shutdown(c, SHUT_WR);
  close(c);
  return 0;
}

static int serve(const char *mode, const char *a, const char *port, int n)
{
  bool inetd = strcmp(mode, "inetd") == 0;
  int l = listener(a, port, inetd ? SOCK_CLOEXEC : 0);
  if (l < 0)
    return 1;
  printf("# listening\n");
  fflush(stdout);
  pid_t kids[64];
  int nk = 0;
  for (int i = 0; i < n && i < 64; i++) {
    int c = accept(l, NULL, NULL);
    if (c < 0) {
      fprintf(stderr, "accept: %s\n", strerror(errno));
      return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
      fprintf(stderr, "fork: %s\n", strerror(errno));
      return 1;
    }
    if (pid == 0) {
      if (!inetd) {
        close(l);
        _exit(echo(c));
      }
      if (dup2(c, 0) < 0 || dup2(c, 1) < 0) {
        fprintf(stderr, "dup2: %s\n", strerror(errno));
        _exit(1);
      }
      close(c);
      execlp("cat", "cat", (char *)NULL);
      fprintf(stderr, "exec cat: %s\n", strerror(errno));
      _exit(127);
    }
    fprintf(stderr, "child %d\n", (int)pid);
    kids[nk++] = pid;
    close(c); /* the child serves it */
  }
  for (int i = 0; i < nk; i++) {
    int st = 0;
    char what[64];
    snprintf(what, sizeof(what), "child %d served its connection", i + 1);
    ok(waitpid(kids[i], &st, 0) == kids[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0, what);
  }
  close(l);
  return fails ? 1 : 0;
}

struct sender {
  int fd;
  const char *path;
  int rc;
};

static void *send_file(void *arg)
{
  struct sender *s = arg;
  static char buf[65536];
  int f = open(s->path, O_RDONLY | O_CLOEXEC);
  s->rc = f < 0;
  for (ssize_t r; f >= 0 && (r = read(f, buf, sizeof(buf))) > 0;)
    if (write_all(s->fd, buf, (size_t)r) < 0) {
      s->rc = 1;
      break;
    }
  if (f >= 0)
    close(f);
  /* PI_HOLD=PATH: the connection stays open (before the half-close) until PATH exists, so that
   * the test looks at it while the server still serves it (at most 60 s). */
  const char *hold = getenv("PI_HOLD");
  for (int i = 0; hold && i < 6000 && access(hold, F_OK) != 0; i++)
    usleep(10000);
  shutdown(s->fd, SHUT_WR);
  return NULL;
}

static int client(const char *a, const char *port, const char *in, const char *out)
{
  struct sockaddr_in sin = addr_of(a, port);
  int c = -1;
  for (int i = 0; i < 100; i++) { /* the server may still be starting */
    c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(c, (struct sockaddr *)&sin, sizeof(sin)) == 0)
      break;
    close(c);
    c = -1;
    usleep(100000);
  }
  if (c < 0) {
    fprintf(stderr, "connect %s:%s: %s\n", a, port, strerror(errno));
    return 1;
  }
  int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (o < 0)
    return 1;
  struct sender s = {c, in, 0};
  pthread_t t;
  pthread_create(&t, NULL, send_file, &s);
  static char buf[65536];
  int rc = 0;
  for (;;) {
    ssize_t r = read(c, buf, sizeof(buf));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      rc = r < 0;
      break;
    }
    if (write_all(o, buf, (size_t)r) < 0) {
      rc = 1;
      break;
    }
  }
  pthread_join(t, NULL);
  close(o);
  close(c);
  return rc || s.rc;
}

/* The numbers libtoe and the library hold for a session are low ones (libtoe's control socket
 * and eventfds) and high ones (the pump's eventfd is low too): NFILES files cover the low ones. */
#define NFILES 32

static int after_closefrom(const char *a, const char *port)
{
  int l = listener(a, port, SOCK_CLOEXEC);
  ok(l >= 0, "a listener before (a device session attached)");
  if (l < 0)
    return 1;
  close(l);
  closefrom(3);
  int fds[NFILES];
  for (int i = 0; i < NFILES; i++)
    fds[i] = open("/dev/null", O_RDWR | O_CLOEXEC);
  /* The library's pump looks at its session at least every 500 ms: more than twice that. */
  usleep(1200 * 1000);
  int lost = 0, first_lost = -1;
  for (int i = 0; i < NFILES; i++) {
    if (fds[i] < 0 || fcntl(fds[i], F_GETFD) < 0 || write(fds[i], "x", 1) != 1) {
      if (!lost++)
        first_lost = fds[i];
    }
  }
  char what[160];
  snprintf(what, sizeof(what),
           "the %d files opened after closefrom(3) are all open 1.2 s later (%d closed under "
           "the program, the first fd %d)",
           NFILES, lost, first_lost);
  ok(lost == 0, what);
  l = listener(a, port, SOCK_CLOEXEC);
  ok(l >= 0, "a listener after closefrom (a new session)");
  for (int i = 0; i < NFILES; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  if (l >= 0)
    close(l);
  return lost != 0 || l < 0;
}

int main(int argc, char **argv)
{
  if (argc == 5 && (strcmp(argv[1], "fork") == 0 || strcmp(argv[1], "inetd") == 0))
    return serve(argv[1], argv[2], argv[3], atoi(argv[4]));
  if (argc == 4 && strcmp(argv[1], "bind") == 0) {
    int l = listener(argv[2], argv[3], SOCK_CLOEXEC);
    ok(l >= 0, "the port is free at once after the server exited");
    return l < 0;
  }
  if (argc == 4 && strcmp(argv[1], "closefrom") == 0)
    return after_closefrom(argv[2], argv[3]);
  if (argc == 6 && strcmp(argv[1], "client") == 0)
    return client(argv[2], argv[3], argv[4], argv[5]);
  fprintf(stderr,
          "usage: %s fork|inetd ADDR PORT N | bind|closefrom ADDR PORT | client ADDR PORT IN OUT\n",
          argv[0]);
  return 2;
}
