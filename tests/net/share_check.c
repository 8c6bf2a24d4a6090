/*
 * share_check: sharing a socket between sessions (ABI 1.2 SHARE/ADOPT, docs/transport.md
 * "Sharing a socket between sessions") under bad tokens and every order of closing and dying, for
 * tests/net/test_transport_share.sh. Each session is a process of its own with its own toe_attach
 * (a forked child attaches after the fork). Each check prints "ok   - ..." or "FAIL - ...", the
 * exit status is the number of failures (capped at 100).
 *
 *   share_check CTL PORT_BASE DEV_ADDR NETNS
 *
 * The program listens on the device at DEV_ADDR:PORT_BASE.. (five ports). Connections to them come
 * from "peer" children that enter the network namespace NETNS (a path such as
 * /var/run/netns/NAME) and connect from the kernel there.
 */
#define _GNU_SOURCE

#include "check_util.h"
#include "toe/toe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *ctl, *dev_addr, *netns;

static toe_dev *attach(void)
{
  toe_dev *d = NULL;
  int rc = toe_attach(ctl, NULL, &d);
  if (rc < 0) {
    fprintf(stderr, "share_check: cannot attach to %s: %s\n", ctl, strerror(-rc));
    return NULL;
  }
  return d;
}

/* A listener on the device at DEV_ADDR:port, or a negative errno. */
static int listener(toe_dev *d, int port)
{
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, dev_addr, &a.sin_addr);
  int sd = toe_socket(d, TOE_SOCK_STREAM);
  if (sd < 0)
    return sd;
  int rc = toe_bind(d, sd, (struct sockaddr *)&a, sizeof(a));
  if (rc == 0)
    rc = toe_listen(d, sd, 16);
  if (rc < 0) {
    toe_close(d, sd);
    return rc;
  }
  return sd;
}

/* A kernel client in the peer namespace: connects to DEV_ADDR:port, sends "hello", then reads
 * until EOF. Exit status: 0 done, 1 refused/reset/failed, 90 setup. */
static pid_t peer_connect(int port)
{
  pid_t pid = fork();
  if (pid != 0)
    return pid;
  if (netns_enter(netns) < 0)
    _exit(90);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, dev_addr, &a.sin_addr);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 || write(s, "hello", 5) != 5)
    _exit(1);
  char buf[64];
  ssize_t r;
  while ((r = read(s, buf, sizeof(buf))) > 0)
    ;
  _exit(r == 0 ? 0 : 1);
}

static int wait_status(pid_t pid, int timeout_ms)
{
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  int st = 0;
  for (;;) {
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (now_ms() >= end) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    usleep(10000);
  }
}

/* Accepts one connection on sd within timeout_ms, checks that it says "hello", closes it (the
 * peer then sees EOF). Returns true if all of that happened. */
static bool serve_one(toe_dev *d, int sd, int timeout_ms)
{
  int c = toe_accept_blocking(d, sd, NULL, NULL, timeout_ms);
  if (c < 0)
    return false;
  char buf[8];
  ssize_t r = toe_recv_blocking(d, c, buf, sizeof(buf), 5000);
  toe_close(d, c);
  return r == 5 && !memcmp(buf, "hello", 5);
}

/* A second session in a child process. It reads a token from `in`, adopts it and writes
 * "adopt RC\n" to `out`; then follows `what`: 'c' close at once, 'a' accept-and-serve `n`
 * connections (writing "served K\n"), 'h' hold (accepting, serving nothing) until killed,
 * '2' adopt the same token again and report "again RC\n". It exits 0 after detaching. */
struct child {
  pid_t pid;
  int to, from;
};

static void child_main(int in, int out, char what, int n)
{
  toe_dev *d = attach();
  if (!d)
    _exit(90);
  uint64_t tok = 0;
  if (read(in, &tok, sizeof(tok)) != (ssize_t)sizeof(tok))
    _exit(91);
  int sd = toe_adopt(d, tok);
  dprintf(out, "adopt %d\n", sd);
  if (what == '2')
    dprintf(out, "again %d\n", toe_adopt(d, tok));
  if (sd >= 0 && what == 'a') {
    int k = 0;
    for (int i = 0; i < n; i++)
      k += serve_one(d, sd, 10000);
    dprintf(out, "served %d\n", k);
  }
  if (sd >= 0 && what == 'h') {
    dprintf(out, "holding 1\n");
    /* asks for connections (posts ACCEPTs) and never takes one */
    toe_poll_ctl(d, sd, TOE_POLLIN, NULL);
    for (;;)
      toe_wait(d, sd, 0, 1000);
  }
  if (sd >= 0)
    toe_close(d, sd);
  toe_detach(d, 1000);
  _exit(0);
}

static struct child child_start(char what, int n)
{
  int a[2], b[2];
  struct child c = {.pid = -1, .to = -1, .from = -1};
  if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0)
    return c;
  c.pid = fork();
  if (c.pid == 0) {
    close(a[1]);
    close(b[0]);
    child_main(a[0], b[1], what, n);
  }
  close(a[0]);
  close(b[1]);
  c.to = a[1];
  c.from = b[0];
  return c;
}

/* The value of the child's next "KEY VALUE" line (or -9999 on EOF/timeout/another key). */
static int child_get(struct child *c, const char *key, int timeout_ms)
{
  char line[64];
  size_t k = 0;
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  while (k < sizeof(line) - 1) {
    struct pollfd pf = {.fd = c->from, .events = POLLIN};
    uint64_t now = now_ms();
    if (now >= end || poll(&pf, 1, (int)(end - now)) <= 0)
      return -9999;
    if (read(c->from, line + k, 1) != 1)
      return -9999;
    if (line[k] == '\n')
      break;
    k++;
  }
  line[k] = 0;
  size_t kl = strlen(key);
  if (strncmp(line, key, kl) || line[kl] != ' ')
    return -9999;
  return atoi(line + kl + 1);
}

static void child_give(struct child *c, uint64_t tok)
{
  if (write(c->to, &tok, sizeof(tok)) != (ssize_t)sizeof(tok))
    fprintf(stderr, "share_check: cannot pass the token: %s\n", strerror(errno));
}

static int child_end(struct child *c, int timeout_ms)
{
  close(c->to);
  int st = wait_status(c->pid, timeout_ms);
  close(c->from);
  return st;
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc != 5) {
    fprintf(stderr, "usage: share_check CTL PORT_BASE DEV_ADDR NETNS\n");
    return 100;
  }
  ctl = argv[1];
  int port = atoi(argv[2]);
  dev_addr = argv[3];
  netns = argv[4];
  signal(SIGPIPE, SIG_IGN);
  toe_dev *d = attach();
  if (!d)
    return 100;

  /* ---- bad tokens ---- */
  int l = listener(d, port);
  check(l >= 0, "listen on %s:%d (%d)", dev_addr, port, l);
  uint64_t expiring = 0;
  int rc = toe_share(d, l, &expiring);
  uint64_t t_expiring = now_ms();
  check(rc == 0 && expiring != 0, "share: a token to let expire (%d)", rc);
  rc = toe_adopt(d, 0);
  check(rc < 0, "adopt token 0: refused (%d %s)", rc, rc < 0 ? strerror(-rc) : "");
  uint64_t junk = expiring ^ 0x5a5a5a5a5a5a5a5aull;
  rc = toe_adopt(d, junk);
  check(rc == -ENOENT, "adopt an unknown token: ENOENT (%d)", rc);
  rc = toe_adopt(d, ~0ull);
  check(rc == -ENOENT, "adopt token ~0: ENOENT (%d)", rc);
  int conn = toe_socket(d, TOE_SOCK_STREAM);
  uint64_t tok = 0;
  rc = toe_share(d, conn, &tok);
  check(rc == -EOPNOTSUPP, "share a TCP socket that does not listen: EOPNOTSUPP (%d)", rc);
  toe_close(d, conn);
  rc = toe_share(d, 12345, &tok);
  check(rc < 0, "share a socket that does not exist: refused (%d)", rc);
  /* used once: a second adopt of the same token fails, in the same session and in another */
  rc = toe_share(d, l, &tok);
  struct child c = child_start('2', 0);
  child_give(&c, tok);
  int a1 = child_get(&c, "adopt", 10000), a2 = child_get(&c, "again", 10000);
  check(rc == 0 && a1 >= 0 && a2 == -ENOENT,
        "reuse: adopted in another session (%d), the second "
        "adopt there gives ENOENT (%d)",
        a1, a2);
  rc = toe_adopt(d, tok);
  check(rc == -ENOENT, "reuse: and in the sharer's own session ENOENT (%d)", rc);
  check(child_end(&c, 10000) == 0, "reuse: the adopter closed and exited");
  /* the sharer's own listener still serves after all that */
  pid_t p = peer_connect(port);
  check(serve_one(d, l, 10000) && wait_status(p, 10000) == 0,
        "after the bad tokens the sharer's listener serves a connection");

  /* ---- the sharer closes before the adopter adopts ---- */
  int l2 = listener(d, port + 1);
  rc = toe_share(d, l2, &tok);
  check(l2 >= 0 && rc == 0, "sharer-first: listen and share (%d, %d)", l2, rc);
  check(toe_close(d, l2) == 0, "sharer-first: the sharer closes its listener");
  c = child_start('a', 1);
  child_give(&c, tok);
  a1 = child_get(&c, "adopt", 10000);
  check(a1 >= 0, "sharer-first: the token kept the socket: adopted (%d)", a1);
  p = peer_connect(port + 1);
  check(child_get(&c, "served", 15000) == 1 && wait_status(p, 10000) == 0,
        "sharer-first: the adopter accepts and serves the peer's connection");
  check(child_end(&c, 10000) == 0, "sharer-first: the adopter closed and exited");

  /* ---- the adopter closes first ---- */
  int l3 = listener(d, port + 2);
  rc = toe_share(d, l3, &tok);
  c = child_start('c', 0);
  child_give(&c, tok);
  a1 = child_get(&c, "adopt", 10000);
  check(l3 >= 0 && rc == 0 && a1 >= 0, "adopter-first: adopted (%d)", a1);
  check(child_end(&c, 10000) == 0, "adopter-first: the adopter closed its handle and exited");
  p = peer_connect(port + 2);
  check(serve_one(d, l3, 10000) && wait_status(p, 10000) == 0,
        "adopter-first: the sharer's listener still serves");
  toe_close(d, l3);

  /* ---- a holder killed -9 while the other accepts ---- */
  int l4 = listener(d, port + 3);
  rc = toe_share(d, l4, &tok);
  c = child_start('h', 0);
  child_give(&c, tok);
  a1 = child_get(&c, "adopt", 10000);
  check(l4 >= 0 && rc == 0 && a1 >= 0 && child_get(&c, "holding", 5000) == 1,
        "kill: the adopter holds the listener, asking for connections");
  kill(c.pid, SIGKILL);
  check(child_end(&c, 5000) == 128 + SIGKILL, "kill: the adopter is killed with SIGKILL");
  int ok = 0;
  for (int i = 0; i < 3; i++) {
    p = peer_connect(port + 3);
    ok += serve_one(d, l4, 10000) && wait_status(p, 10000) == 0;
  }
  check(ok == 3, "kill: the sharer accepts and serves every later connection (%d of 3)", ok);
  /* and the other way round: the sharer lets go while the adopter accepts */
  int l5 = listener(d, port + 4);
  rc = toe_share(d, l5, &tok);
  c = child_start('a', 2);
  child_give(&c, tok);
  a1 = child_get(&c, "adopt", 10000);
  check(l5 >= 0 && rc == 0 && a1 >= 0, "sharer-goes: adopted (%d)", a1);
  check(toe_close(d, l5) == 0, "sharer-goes: the sharer's handle goes");
  int ok2 = 0;
  for (int i = 0; i < 2; i++) {
    p = peer_connect(port + 4);
    ok2 += wait_status(p, 15000) == 0;
  }
  check(child_get(&c, "served", 20000) == 2 && ok2 == 2,
        "sharer-goes: the adopter accepts and serves both connections");
  check(child_end(&c, 10000) == 0, "sharer-goes: the adopter exited");
  p = peer_connect(port + 4);
  check(wait_status(p, 10000) == 1, "sharer-goes: with every holder gone the port is closed "
                                    "(the peer's connect fails)");

  /* ---- expiry: the first token, never adopted ---- */
  uint64_t age = now_ms() - t_expiring;
  if (age < 11000)
    usleep((useconds_t)(11000 - age) * 1000u);
  rc = toe_adopt(d, expiring);
  check(rc == -ENOENT, "expired: a token not adopted in 10 s gives ENOENT (%d)", rc);
  toe_close(d, l);
  toe_close(d, l4);
  rc = toe_detach(d, 1000);
  check(rc == 0, "detach (%d)", rc);
  return check_exit_status();
}
