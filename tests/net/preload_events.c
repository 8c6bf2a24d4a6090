/*
 * preload_events: an ordinary event-loop program, run under libtoe-preload by
 * test_preload_events.sh (docs/interception.md). It uses only the BSD socket API and libc; the
 * library decides what goes to the device. Each check prints "ok   - ..." or "FAIL - ..."; the
 * exit status is the number of failures (capped at 100).
 *
 *   preload_events HOST ECHO_PORT RST_PORT CLOSED_PORT LISTEN_PORT CONNECT_ADDR NETNS
 *
 * HOST runs a TCP echo server on ECHO_PORT and a server that resets after the first bytes on
 * RST_PORT; nothing listens on CLOSED_PORT. The program listens on LISTEN_PORT itself; a "peer"
 * child process enters the network namespace NETNS (a path such as /var/run/netns/NAME) and
 * connects to CONNECT_ADDR:LISTEN_PORT with direct system calls (so the preload library never
 * sees its socket: it is a kernel client on the far side of the link). The parent drives that
 * peer through two pipes: what it writes to the command pipe the peer sends on the connection,
 * what the peer receives comes back on the result pipe.
 *
 * Covered: an epoll set (inside another epoll set) holding an AF_UNIX socketpair, a pipe, an
 * offloaded client and an offloaded listener's accepted connection, with data arriving on all of
 * them at once and checked byte for byte; EPOLLET, EPOLLONESHOT with EPOLL_CTL_MOD re-arm,
 * EPOLL_CTL_DEL, nested readiness; poll and select on kernel and offloaded descriptors mixed;
 * dup/dup2/dup3 from and onto offloaded descriptors; FD_CLOEXEC/SOCK_CLOEXEC across exec; the
 * kernel's errno behaviour on non-blocking sockets.
 */
#define _GNU_SOURCE

#include "check_util.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Byte i of stream `seed`: every stream differs, so a byte delivered to the wrong descriptor
 * fails the comparison. */
static unsigned char pat(size_t i, unsigned seed)
{
  return (unsigned char)((i * 131u + seed * 61u + (i >> 11) * 7u) & 0xff);
}

static void fill(unsigned char *b, size_t off, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    b[i] = pat(off + i, seed);
}

/* A received piece of stream `seed` at offset off: true if it is what was sent. */
static bool same(const unsigned char *b, size_t off, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    if (b[i] != pat(off + i, seed))
      return false;
  return true;
}

/* Writes all of buf to a blocking descriptor. */
static bool write_all(int fd, const void *buf, size_t n)
{
  size_t k = 0;
  while (k < n) {
    ssize_t w = write(fd, (const char *)buf + k, n - k);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return false;
    k += (size_t)w;
  }
  return true;
}

/* Reads up to n bytes from fd (any mode) until n bytes, EOF or timeout_ms. */
static size_t read_for(int fd, void *buf, size_t n, int timeout_ms)
{
  size_t k = 0;
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  while (k < n) {
    uint64_t now = now_ms();
    if (now >= end)
      break;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, (int)(end - now)) <= 0)
      continue;
    ssize_t r = read(fd, (char *)buf + k, n - k);
    if (r == 0)
      break;
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR)
        continue;
      break;
    }
    k += (size_t)r;
  }
  return k;
}

static int ep_set(int ep, int op, int fd, uint32_t events, uint32_t tag)
{
  struct epoll_event ev = {.events = events, .data.u32 = tag};
  return epoll_ctl(ep, op, fd, &ev);
}

/* Reads a non-blocking descriptor until EAGAIN; returns the bytes read (into buf, at most n) and
 * sets *eagain when it ended with EAGAIN. */
static size_t drain(int fd, char *buf, size_t n, bool *eagain)
{
  size_t k = 0;
  *eagain = false;
  for (;;) {
    ssize_t r = recv(fd, buf + k, n - k, 0);
    if (r > 0) {
      k += (size_t)r;
      if (k == n)
        return k;
      continue;
    }
    *eagain = r < 0 && errno == EAGAIN;
    return k;
  }
}

/* ------------------------------------------------------------------------------------------ */
/* the peer: a kernel client in the other namespace                                           */

struct peer {
  pid_t pid;
  int cmd; /* write: the peer sends it on the connection; close: the peer shuts down writing */
  int res; /* read: what the peer received; EOF once the connection gave EOF */
};

struct pump_arg {
  int from, to;
};

/* Copies the command pipe to the connection, then shuts it down for writing. A thread of its own,
 * so that the peer keeps reading while a send blocks (else both ends could wait for each other
 * with full buffers). */
static void *peer_sender(void *arg)
{
  struct pump_arg *a = arg;
  static char buf[65536];
  for (;;) {
    ssize_t r = read(a->from, buf, sizeof(buf));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0 || !write_all(a->to, buf, (size_t)r))
      break;
  }
  shutdown(a->to, SHUT_WR);
  return NULL;
}

/* libc's own syscall(), looked up in libc itself before the fork (a lookup by name would find
 * the preload library's, which routes socket calls to the device). */
static long (*g_libc_syscall)(long, ...);

static void peer_main(int cmd, int res, const char *netns, const char *addr, int port)
{
  if (netns_enter(netns) < 0) {
    fprintf(stderr, "peer: cannot enter %s: %s\n", netns, strerror(errno));
    _exit(90);
  }
  /* Direct system calls: the preload library must not take this socket (it is the far end).
   * The library interposes syscall() too: libc's own (peer_start) goes past it. */
  long (*sys)(long, ...) = g_libc_syscall;
  if (!sys) {
    fprintf(stderr, "peer: libc's syscall() not found\n");
    _exit(91);
  }
  int s = (int)sys(SYS_socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = addr_of(addr, port);
  if (s < 0 || sys(SYS_connect, s, &a, sizeof(a)) < 0) {
    fprintf(stderr, "peer: connect %s:%d: %s\n", addr, port, strerror(errno));
    _exit(91);
  }
  pthread_t th;
  struct pump_arg pa = {.from = cmd, .to = s};
  if (pthread_create(&th, NULL, peer_sender, &pa) != 0)
    _exit(92);
  static char buf[65536];
  for (;;) {
    ssize_t r = read(s, buf, sizeof(buf));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    if (!write_all(res, buf, (size_t)r))
      _exit(94);
  }
  _exit(0);
}

static bool peer_start(struct peer *p, const char *netns, const char *addr, int port)
{
  int cmd[2], res[2];
  void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  g_libc_syscall = libc ? (long (*)(long, ...))dlsym(libc, "syscall") : NULL;
  if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0)
    return false;
  p->pid = fork();
  if (p->pid < 0)
    return false;
  if (p->pid == 0) {
    close(cmd[1]);
    close(res[0]);
    peer_main(cmd[0], res[1], netns, addr, port);
  }
  close(cmd[0]);
  close(res[1]);
  p->cmd = cmd[1];
  p->res = res[0];
  return true;
}

/* Ends the peer (it exits at its connection's EOF); returns its exit status or -1. */
static int peer_wait(struct peer *p, int timeout_ms)
{
  if (p->cmd >= 0)
    close(p->cmd);
  p->cmd = -1;
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  int st = 0;
  for (;;) {
    pid_t w = waitpid(p->pid, &st, WNOHANG);
    if (w == p->pid)
      break;
    if (now_ms() >= end) {
      kill(p->pid, SIGKILL);
      waitpid(p->pid, &st, 0);
      break;
    }
    usleep(10000);
  }
  close(p->res);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Accepts one connection from a non-blocking listener within timeout_ms. */
static int accept_within(int l, int timeout_ms)
{
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  for (;;) {
    int c = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (c >= 0 || errno != EAGAIN || now_ms() >= end)
      return c;
    struct pollfd pf = {.fd = l, .events = POLLIN};
    poll(&pf, 1, 200);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* the interleaved event loop                                                                 */

#define LOOP_BYTES (1u << 20) /* per stream */

enum { T_UNIX = 1, T_PIPE, T_TCP, T_ACC, T_RES, T_INNER = 100 };

struct feeder {
  int unix_w, pipe_w, peer_cmd;
};

/* Writes the three input streams in turns of small pieces, so their data arrives interleaved. */
static void *feeder_main(void *arg)
{
  struct feeder *f = arg;
  unsigned char buf[4096];
  size_t off[3] = {0, 0, 0};
  int fds[3] = {f->unix_w, f->pipe_w, f->peer_cmd};
  unsigned seeds[3] = {T_UNIX, T_PIPE, T_ACC};
  bool more = true;
  while (more) {
    more = false;
    for (int i = 0; i < 3; i++) {
      if (off[i] >= LOOP_BYTES)
        continue;
      size_t n = 1000 + (off[i] / 1000) % 3000;
      if (n > LOOP_BYTES - off[i])
        n = LOOP_BYTES - off[i];
      fill(buf, off[i], n, seeds[i]);
      if (!write_all(fds[i], buf, n))
        return NULL;
      off[i] += n;
      more = true;
    }
  }
  shutdown(f->unix_w, SHUT_WR);
  close(f->pipe_w);
  close(f->peer_cmd); /* the peer shuts its connection down for writing */
  return NULL;
}

struct loop_stats {
  int events[T_RES + 1];
  int switches, last;
};

static void count(struct loop_stats *ls, uint32_t tag)
{
  if (tag > T_RES)
    return;
  ls->events[tag]++;
  if (ls->last && ls->last != (int)tag)
    ls->switches++;
  ls->last = (int)tag;
}

/* One epoll set `inner` (itself inside `outer`) with the AF_UNIX socketpair (level-triggered),
 * the pipe (EPOLLET), the offloaded client t (EPOLLET), the accepted connection c and the peer's
 * result pipe. Streams: unix -> t -> echo -> t (seed T_UNIX); pipe (T_PIPE); peer -> c -> peer
 * (T_ACC). Every wait is on `outer`: if the inner set's readiness did not propagate, the loop
 * would stall and the byte counts below would fall short. */
static void run_loop(int outer, int inner, int t, int c, struct peer *p)
{
  int sv[2], pp[2];
  check(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 && pipe2(pp, O_CLOEXEC) == 0,
        "loop: socketpair and pipe");
  set_nonblock(sv[0], true);
  set_nonblock(pp[0], true);
  set_nonblock(p->res, true);
  check(ep_set(inner, EPOLL_CTL_ADD, sv[0], EPOLLIN, T_UNIX) == 0 &&
            ep_set(inner, EPOLL_CTL_ADD, pp[0], EPOLLIN | EPOLLET, T_PIPE) == 0 &&
            ep_set(inner, EPOLL_CTL_ADD, t, EPOLLIN | EPOLLOUT | EPOLLET, T_TCP) == 0 &&
            ep_set(inner, EPOLL_CTL_ADD, c, EPOLLIN, T_ACC) == 0 &&
            ep_set(inner, EPOLL_CTL_ADD, p->res, EPOLLIN, T_RES) == 0,
        "loop: socketpair, pipe, offloaded client, accepted connection, result pipe in one set");

  pthread_t th;
  struct feeder f = {.unix_w = sv[1], .pipe_w = pp[1], .peer_cmd = p->cmd};
  pthread_create(&th, NULL, feeder_main, &f);

  static unsigned char upend[1 << 16], cpend[1 << 16], buf[1 << 16];
  size_t ulen = 0, uoff = 0, clen = 0, coff = 0;
  size_t u_in = 0, t_sent = 0, t_got = 0, pipe_got = 0, c_got = 0, res_got = 0;
  bool u_eof = false, t_shut = false, t_eof = false, pipe_eof = false, c_eof = false,
       c_shut = false, res_eof = false, bad = false, unix_armed = true, c_out = false;
  struct loop_stats ls = {0};
  int stalls = 0;
  uint64_t end = now_ms() + 90000;
  while (!(t_eof && pipe_eof && res_eof) && !bad && now_ms() < end) {
    struct epoll_event o[2];
    int n = epoll_wait(outer, o, 2, 3000);
    if (n == 0) {
      stalls++;
      printf("# stall: unix in %zu, tcp sent %zu got %zu%s, pipe %zu%s, accepted %zu%s (pending "
             "%zu), result %zu%s\n",
             u_in, t_sent, t_got, t_eof ? " eof" : "", pipe_got, pipe_eof ? " eof" : "", c_got,
             c_eof ? " eof" : "", clen - coff, res_got, res_eof ? " eof" : "");
      continue;
    }
    if (n < 0)
      continue;
    struct epoll_event ev[16];
    int m = epoll_wait(inner, ev, 16, 0);
    for (int i = 0; i < m; i++)
      count(&ls, ev[i].data.u32);
    /* The work below does not depend on which events came: every source is tried (each is
     * non-blocking), which is what an edge-triggered program must do anyway. */
    if (!u_eof && ulen == 0) {
      ssize_t r = read(sv[0], upend, sizeof(upend));
      if (r > 0) {
        bad |= !same(upend, u_in, (size_t)r, T_UNIX);
        u_in += (size_t)r;
        ulen = (size_t)r;
        uoff = 0;
      } else if (r == 0) {
        u_eof = true;
      }
    }
    while (uoff < ulen) {
      ssize_t w = send(t, upend + uoff, ulen - uoff, MSG_NOSIGNAL);
      if (w <= 0)
        break;
      uoff += (size_t)w;
      t_sent += (size_t)w;
    }
    if (uoff == ulen)
      ulen = uoff = 0;
    /* Level-triggered AF_UNIX: off while its data waits for send space on t, or it would be
     * reported on every wait. */
    bool want_unix = ulen == 0 && !u_eof;
    if (want_unix != unix_armed) {
      ep_set(inner, EPOLL_CTL_MOD, sv[0], want_unix ? EPOLLIN : 0, T_UNIX);
      unix_armed = want_unix;
    }
    if (u_eof && ulen == 0 && !t_shut) {
      shutdown(t, SHUT_WR);
      t_shut = true;
    }
    for (ssize_t r; !t_eof && (r = recv(t, buf, sizeof(buf), 0)) != 0;) {
      if (r < 0)
        break;
      bad |= !same(buf, t_got, (size_t)r, T_UNIX);
      t_got += (size_t)r;
    }
    if (!t_eof && recv(t, buf, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
      t_eof = true;
    for (ssize_t r; !pipe_eof;) {
      r = read(pp[0], buf, sizeof(buf));
      if (r == 0)
        pipe_eof = true;
      if (r <= 0)
        break;
      bad |= !same(buf, pipe_got, (size_t)r, T_PIPE);
      pipe_got += (size_t)r;
    }
    /* The accepted connection echoes back to the peer. */
    while (coff < clen) {
      ssize_t w = send(c, cpend + coff, clen - coff, MSG_NOSIGNAL);
      if (w <= 0)
        break;
      coff += (size_t)w;
    }
    if (coff == clen)
      clen = coff = 0;
    if (!c_eof && clen == 0) {
      ssize_t r = recv(c, cpend, sizeof(cpend), 0);
      if (r > 0) {
        bad |= !same(cpend, c_got, (size_t)r, T_ACC);
        c_got += (size_t)r;
        clen = (size_t)r;
        coff = 0;
        ssize_t w = send(c, cpend, clen, MSG_NOSIGNAL);
        if (w > 0)
          coff = (size_t)w;
        if (coff == clen)
          clen = coff = 0;
      } else if (r == 0) {
        c_eof = true;
      }
    }
    if (clen > 0 && !c_out) {
      ep_set(inner, EPOLL_CTL_MOD, c, EPOLLOUT, T_ACC); /* wait for send space, not data */
      c_out = true;
    } else if (clen == 0 && c_out) {
      ep_set(inner, EPOLL_CTL_MOD, c, c_eof ? 0 : EPOLLIN, T_ACC);
      c_out = false;
    }
    if (c_eof && clen == 0 && !c_shut) {
      shutdown(c, SHUT_WR);
      ep_set(inner, EPOLL_CTL_DEL, c, 0, T_ACC);
      c_shut = true;
    }
    for (ssize_t r; !res_eof;) {
      r = read(p->res, buf, sizeof(buf));
      if (r == 0)
        res_eof = true;
      if (r <= 0)
        break;
      bad |= !same(buf, res_got, (size_t)r, T_ACC);
      res_got += (size_t)r;
    }
  }
  pthread_join(th, NULL);
  p->cmd = -1; /* closed by the feeder */
  check(!bad, "loop: every byte of every stream in order, none on the wrong descriptor");
  check(u_in == LOOP_BYTES && t_sent == LOOP_BYTES && t_got == LOOP_BYTES && t_eof,
        "loop: AF_UNIX -> offloaded client -> echo -> back: %zu/%zu/%zu bytes, then EOF", u_in,
        t_sent, t_got);
  check(pipe_got == LOOP_BYTES && pipe_eof, "loop: pipe (EPOLLET, drained to EAGAIN): %zu bytes",
        pipe_got);
  check(c_got == LOOP_BYTES && c_eof, "loop: peer -> accepted offloaded connection: %zu bytes",
        c_got);
  check(res_got == LOOP_BYTES && res_eof, "loop: accepted connection -> peer (echo): %zu bytes",
        res_got);
  /* the result pipe is the test's own helper, read on every pass: it may never show an event */
  check(ls.events[T_UNIX] > 0 && ls.events[T_PIPE] > 0 && ls.events[T_TCP] > 0 &&
            ls.events[T_ACC] > 0 && ls.switches >= 3,
        "loop: events interleaved: unix %d, pipe %d, tcp %d, accepted %d (result pipe %d); %d "
        "switches between sources",
        ls.events[T_UNIX], ls.events[T_PIPE], ls.events[T_TCP], ls.events[T_ACC], ls.events[T_RES],
        ls.switches);
  printf("# loop: %d waits of 3 s on the outer set saw nothing\n", stalls);
  epoll_ctl(inner, EPOLL_CTL_DEL, sv[0], NULL);
  epoll_ctl(inner, EPOLL_CTL_DEL, pp[0], NULL);
  epoll_ctl(inner, EPOLL_CTL_DEL, t, NULL);
  epoll_ctl(inner, EPOLL_CTL_DEL, p->res, NULL);
  close(sv[0]);
  close(sv[1]);
  close(pp[0]);
}

/* ------------------------------------------------------------------------------------------ */
/* epoll modes on the accepted connection, driven by the peer                                 */

static void run_epoll_modes(int c, struct peer *p)
{
  char buf[256];
  bool eagain;
  int inner = epoll_create1(EPOLL_CLOEXEC), outer = epoll_create1(EPOLL_CLOEXEC);
  check(ep_set(outer, EPOLL_CTL_ADD, inner, EPOLLIN, T_INNER) == 0,
        "nested: an epoll descriptor added to another epoll set");

  /* EPOLLET: one edge per arrival once drained, none while nothing new comes */
  check(ep_set(inner, EPOLL_CTL_ADD, c, EPOLLIN | EPOLLET, T_ACC) == 0, "ET: accepted offloaded "
                                                                        "connection added");
  check(wait_tag(inner, T_ACC, 200, NULL) == 0, "ET: no event before data");
  check(wait_tag(outer, T_INNER, 200, NULL) == 0, "nested: outer set quiet while inner is");
  write_all(p->cmd, "first", 5);
  uint32_t m = 0;
  check(wait_tag(outer, T_INNER, 5000, &m) == 1 && (m & EPOLLIN),
        "nested: data on the offloaded socket makes the outer set report the inner one");
  check(wait_tag(inner, T_ACC, 1000, &m) == 1 && (m & EPOLLIN), "ET: one edge for the arrival");
  check(wait_tag(inner, T_ACC, 200, NULL) == 0, "ET: not reported again without new data");
  size_t k = drain(c, buf, sizeof(buf), &eagain);
  check(k == 5 && !memcmp(buf, "first", 5) && eagain, "ET: drained to EAGAIN (%zu bytes)", k);
  check(wait_tag(inner, T_ACC, 200, NULL) == 0, "ET: no edge after draining");
  for (int round = 0; round < 3; round++) {
    char msg[16];
    int len = snprintf(msg, sizeof(msg), "round%d", round);
    write_all(p->cmd, msg, (size_t)len);
    int e = wait_tag(inner, T_ACC, 5000, NULL);
    /* the arrival may come in more than one segment: count only that an edge came */
    k = 0;
    uint64_t end = now_ms() + 3000;
    while (k < (size_t)len && now_ms() < end) {
      k += drain(c, buf + k, sizeof(buf) - k, &eagain);
      if (k < (size_t)len)
        wait_tag(inner, T_ACC, 500, NULL);
    }
    check(e >= 1 && k == (size_t)len && !memcmp(buf, msg, (size_t)len) && eagain,
          "ET: arrival %d: an edge, drained to EAGAIN", round + 1);
  }

  /* EPOLLONESHOT and EPOLL_CTL_MOD re-arm */
  check(ep_set(inner, EPOLL_CTL_MOD, c, EPOLLIN | EPOLLONESHOT, T_ACC) == 0,
        "ONESHOT: MOD to EPOLLIN|EPOLLONESHOT");
  write_all(p->cmd, "one", 3);
  check(wait_tag(inner, T_ACC, 5000, NULL) == 1, "ONESHOT: first event");
  write_all(p->cmd, "two", 3);
  usleep(200000);
  check(wait_tag(inner, T_ACC, 300, NULL) == 0, "ONESHOT: disarmed: no event though more came");
  check(ep_set(inner, EPOLL_CTL_MOD, c, EPOLLIN | EPOLLONESHOT, T_ACC) == 0 &&
            wait_tag(inner, T_ACC, 3000, NULL) == 1,
        "ONESHOT: MOD re-arms: the pending data is reported once");
  check(wait_tag(inner, T_ACC, 200, NULL) == 0, "ONESHOT: and disarmed again");
  k = read_for(c, buf, 6, 3000);
  check(k == 6 && !memcmp(buf, "onetwo", 6), "ONESHOT: both pieces read (%zu bytes)", k);

  /* EPOLL_CTL_DEL */
  check(epoll_ctl(inner, EPOLL_CTL_DEL, c, NULL) == 0, "DEL: removed");
  write_all(p->cmd, "gone", 4);
  struct pollfd pf = {.fd = c, .events = POLLIN};
  check(poll(&pf, 1, 5000) == 1 && (pf.revents & POLLIN), "DEL: data arrived (poll)");
  check(wait_tag(inner, T_ACC, 200, NULL) == 0, "DEL: no epoll event for a removed descriptor");
  check(wait_tag(outer, T_INNER, 200, NULL) == 0, "DEL: nor on the outer set");
  int rc = epoll_ctl(inner, EPOLL_CTL_DEL, c, NULL), e = errno;
  check(rc < 0 && e == ENOENT, "DEL: again gives ENOENT (%s)", strerror(e));
  rc = ep_set(inner, EPOLL_CTL_MOD, c, EPOLLIN, T_ACC);
  e = errno;
  check(rc < 0 && e == ENOENT, "MOD of a removed descriptor: ENOENT (%s)", strerror(e));
  check(ep_set(inner, EPOLL_CTL_ADD, c, EPOLLIN, T_ACC) == 0 &&
            wait_tag(inner, T_ACC, 3000, NULL) == 1,
        "ADD again: the waiting data is reported (level-triggered)");
  rc = ep_set(inner, EPOLL_CTL_ADD, c, EPOLLIN, T_ACC);
  e = errno;
  check(rc < 0 && e == EEXIST, "ADD twice: EEXIST (%s)", strerror(e));
  k = read_for(c, buf, 4, 3000);
  check(k == 4 && !memcmp(buf, "gone", 4), "DEL: the data was kept (%zu bytes)", k);
  epoll_ctl(inner, EPOLL_CTL_DEL, c, NULL);
  close(outer);
  close(inner);
}

/* ------------------------------------------------------------------------------------------ */
/* more epoll: RDHUP and HUP, dup'ed and closed members, threads, fork, EXCLUSIVE              */

/* wait_mask: waits up to timeout_ms until the events for `tag` include all of `want`; returns
 * the union of the bits seen on the last report (0 when none came). */
static uint32_t wait_mask(int ep, uint32_t tag, uint32_t want, int timeout_ms)
{
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  uint32_t m = 0;
  for (;;) {
    uint64_t now = now_ms();
    int left = now >= end ? 0 : (int)(end - now);
    uint32_t got = 0;
    if (wait_tag(ep, tag, left > 200 ? 200 : left, &got) > 0)
      m = got;
    if ((m & want) == want || left == 0)
      return m;
    usleep(20000);
  }
}

struct ep_waiter {
  int ep;
  uint32_t tag;
  int timeout_ms;
  uint32_t mask; /* out */
  int seen;      /* out */
};

static void *ep_waiter_main(void *arg)
{
  struct ep_waiter *w = arg;
  w->seen = wait_tag(w->ep, w->tag, w->timeout_ms, &w->mask);
  return NULL;
}

static void run_epoll_more(const char *host, int echo)
{
  char buf[64];
  int ep = epoll_create1(EPOLL_CLOEXEC), ep2 = epoll_create1(EPOLL_CLOEXEC);

  /* EPOLLRDHUP, then EPOLLHUP once both directions are shut (tcp_poll) */
  int s = tcp_connect(host, echo);
  check(s >= 0 && set_nonblock(s, true) == 0, "RDHUP: connected to the echo server");
  check(ep_set(ep, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLRDHUP, 1) == 0 &&
            ep_set(ep2, EPOLL_CTL_ADD, s, EPOLLIN, 1) == 0,
        "RDHUP: added with EPOLLRDHUP to one set, without it to another");
  check(send(s, "bye", 3, 0) == 3 && shutdown(s, SHUT_WR) == 0, "RDHUP: sent, then SHUT_WR");
  uint32_t m = wait_mask(ep, 1, EPOLLIN | EPOLLRDHUP, 5000);
  check((m & (EPOLLIN | EPOLLRDHUP)) == (EPOLLIN | EPOLLRDHUP),
        "RDHUP: the echo's FIN: EPOLLIN|EPOLLRDHUP (0x%x)", m);
  m = wait_mask(ep2, 1, EPOLLIN, 2000);
  check((m & EPOLLIN) && !(m & EPOLLRDHUP), "RDHUP: not reported where not asked (0x%x)", m);
  m = wait_mask(ep, 1, EPOLLHUP, 3000);
  check((m & EPOLLHUP) && !(m & EPOLLERR),
        "HUP: both directions shut: EPOLLHUP without EPOLLERR (0x%x)", m);
  size_t k = read_for(s, buf, sizeof(buf), 3000);
  ssize_t r = recv(s, buf, sizeof(buf), 0);
  check(k == 3 && !memcmp(buf, "bye", 3) && r == 0, "RDHUP: the data, then EOF (%zu, %zd)", k, r);
  m = wait_mask(ep, 1, EPOLLIN | EPOLLRDHUP, 1000);
  check((m & (EPOLLIN | EPOLLRDHUP)) == (EPOLLIN | EPOLLRDHUP),
        "RDHUP: level-triggered: still reported after reading EOF (0x%x)", m);
  close(s);
  check(wait_tag(ep, 1, 200, NULL) == 0 && wait_tag(ep2, 1, 200, NULL) == 0,
        "close: a closed member leaves both sets");

  /* dup'ed descriptors: each number is its own registration of the same open file */
  s = tcp_connect(host, echo);
  int d = s >= 0 ? dup(s) : -1;
  check(s >= 0 && d >= 0 && ep_set(ep, EPOLL_CTL_ADD, s, EPOLLIN, 2) == 0 &&
            ep_set(ep, EPOLL_CTL_ADD, d, EPOLLIN, 3) == 0,
        "dup: the original and its duplicate both added to one set");
  send(s, "x", 1, 0);
  struct epoll_event out[8];
  uint64_t end = now_ms() + 5000;
  bool t2 = false, t3 = false;
  while ((!t2 || !t3) && now_ms() < end) {
    int n = epoll_wait(ep, out, 8, 200);
    for (int i = 0; i < n; i++) {
      t2 = t2 || (out[i].data.u32 == 2 && (out[i].events & EPOLLIN));
      t3 = t3 || (out[i].data.u32 == 3 && (out[i].events & EPOLLIN));
    }
  }
  check(t2 && t3, "dup: one arrival reported for both numbers (%d, %d)", t2, t3);
  check(read_for(d, buf, 1, 2000) == 1, "dup: read through the duplicate");
  check(epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL) == 0, "dup: the duplicate's registration removed");
  check(close(s) == 0, "dup: the original number closed (the duplicate keeps the file open)");
  send(d, "y", 1, 0);
  check(wait_tag(ep, 2, 5000, &m) == 1 && (m & EPOLLIN),
        "close: the closed number's registration lives on while the file is open (0x%x)", m);
  int rc = epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL), e = errno;
  check(rc < 0 && e == EBADF, "close: DEL by the closed number: EBADF (%s)", strerror(e));
  rc = epoll_ctl(ep, EPOLL_CTL_DEL, d, NULL);
  e = errno;
  check(rc < 0 && e == ENOENT, "dup: DEL by the duplicate, not registered now: ENOENT (%s)",
        strerror(e));
  check(read_for(d, buf, 1, 2000) == 1, "close: the data read through the duplicate");
  close(d);
  check(wait_tag(ep, 2, 300, NULL) == 0, "close: the last descriptor closed: the registration "
                                         "is gone");

  /* a set shared between threads: a thread asleep in epoll_wait wakes for an arrival */
  s = tcp_connect(host, echo);
  check(s >= 0 && set_nonblock(s, true) == 0 && ep_set(ep, EPOLL_CTL_ADD, s, EPOLLIN, 4) == 0,
        "threads: a connection added");
  struct ep_waiter w = {.ep = ep, .tag = 4, .timeout_ms = 5000};
  pthread_t th;
  bool started = pthread_create(&th, NULL, ep_waiter_main, &w) == 0;
  usleep(100000);
  uint64_t t0 = now_ms();
  send(s, "t", 1, 0);
  if (started)
    pthread_join(th, NULL);
  check(started && w.seen == 1 && (w.mask & EPOLLIN) && now_ms() - t0 < 4000,
        "threads: the sleeping thread woke with EPOLLIN (%d, 0x%x)", w.seen, w.mask);
  read_for(s, buf, 1, 2000);

  /* a set shared across fork: the child waits on the inherited set, the parent's data wakes it */
  int sync[2];
  check(pipe2(sync, O_CLOEXEC) == 0, "fork: pipe");
  pid_t pid = fork();
  if (pid == 0) {
    char c;
    ssize_t rr = read(sync[0], &c, 1);
    (void)rr;
    uint32_t cm = 0;
    int seen = wait_tag(ep, 4, 5000, &cm);
    _exit(seen >= 1 && (cm & EPOLLIN) ? 0 : 1);
  }
  ssize_t wr = write(sync[1], "g", 1);
  (void)wr;
  usleep(100000);
  send(s, "f", 1, 0);
  int st = -1;
  waitpid(pid, &st, 0);
  check(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
        "fork: the child, asleep on the inherited set, saw the arrival (status 0x%x)", st);
  check(wait_tag(ep, 4, 2000, &m) == 1 && (m & EPOLLIN), "fork: the parent sees it too (0x%x)", m);
  check(read_for(s, buf, 1, 2000) == 1 && buf[0] == 'f', "fork: the parent reads it");
  close(sync[0]);
  close(sync[1]);
  epoll_ctl(ep, EPOLL_CTL_DEL, s, NULL);

  /* EPOLLEXCLUSIVE: ADD only, no ONESHOT, no MOD; one wake-up for several waiting sets */
  rc = ep_set(ep, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT, 5);
  e = errno;
  check(rc < 0 && e == EINVAL, "EXCLUSIVE with ONESHOT: EINVAL (%s)", strerror(e));
  check(ep_set(ep, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLEXCLUSIVE, 5) == 0 &&
            ep_set(ep2, EPOLL_CTL_ADD, s, EPOLLIN | EPOLLEXCLUSIVE, 5) == 0,
        "EXCLUSIVE: added to two sets");
  rc = ep_set(ep, EPOLL_CTL_MOD, s, EPOLLIN, 5);
  e = errno;
  check(rc < 0 && e == EINVAL, "EXCLUSIVE: MOD: EINVAL (%s)", strerror(e));
  struct ep_waiter w1 = {.ep = ep, .tag = 5, .timeout_ms = 3000};
  struct ep_waiter w2 = {.ep = ep2, .tag = 5, .timeout_ms = 3000};
  pthread_t th1, th2;
  bool s1 = pthread_create(&th1, NULL, ep_waiter_main, &w1) == 0;
  bool s2 = pthread_create(&th2, NULL, ep_waiter_main, &w2) == 0;
  usleep(100000);
  send(s, "e", 1, 0);
  if (s1)
    pthread_join(th1, NULL);
  if (s2)
    pthread_join(th2, NULL);
  check(s1 && s2 && (w1.seen + w2.seen) >= 1,
        "EXCLUSIVE: an arrival wakes at least one of the two waiters (%d, %d)", w1.seen, w2.seen);
  /* Only a woken registration is on its set's ready list: a set that was not woken may not
   * report the socket at all (the kernel's exclusive wake-up stops at the first one). */
  check((!w1.seen || wait_tag(ep, 5, 1000, NULL) == 1) &&
            (!w2.seen || wait_tag(ep2, 5, 1000, NULL) == 1),
        "EXCLUSIVE: a set that was woken keeps reporting the ready socket (level-triggered)");
  check(read_for(s, buf, 1, 2000) == 1 && buf[0] == 'e', "EXCLUSIVE: the data read");
  close(s);
  close(ep2);
  close(ep);
}

/* ------------------------------------------------------------------------------------------ */
/* epoll sets served in the process (docs/interception.md, "Readiness served in user space"):   */
/* sockets connected without a blocking call, waited on only through epoll, so the library      */
/* serves their readiness itself; every check also runs on the kernel.                          */

/* A non-blocking connection made and awaited through epoll only (no blocking call, no poll). */
static int served_connect(const char *host, int port)
{
  struct sockaddr_in a = addr_of(host, port);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (s < 0 || ep < 0)
    goto fail;
  if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)
    goto fail;
  if (ep_set(ep, EPOLL_CTL_ADD, s, EPOLLOUT, 1) < 0 || wait_tag(ep, 1, 5000, NULL) != 1)
    goto fail;
  int e = 0;
  socklen_t el = sizeof(e);
  if (getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e != 0)
    goto fail;
  close(ep);
  return s;
fail:
  if (s >= 0)
    close(s);
  if (ep >= 0)
    close(ep);
  return -1;
}

/* Sends fd over the AF_UNIX socket a and receives it on b: the new number (as another process would
 * get it), or -1. */
static int pass_fd(int a, int b, int fd)
{
  char c = 'f';
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof(u));
  struct iovec iov = {.iov_base = &c, .iov_len = 1};
  struct msghdr mh = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
  cm->cmsg_level = SOL_SOCKET;
  cm->cmsg_type = SCM_RIGHTS;
  cm->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cm), &fd, sizeof(int));
  if (sendmsg(a, &mh, 0) != 1)
    return -1;
  memset(&u, 0, sizeof(u));
  mh.msg_controllen = sizeof(u.buf);
  if (recvmsg(b, &mh, MSG_CMSG_CLOEXEC) != 1)
    return -1;
  cm = CMSG_FIRSTHDR(&mh);
  if (!cm || cm->cmsg_type != SCM_RIGHTS)
    return -1;
  int got;
  memcpy(&got, CMSG_DATA(cm), sizeof(int));
  return got;
}

static void on_usr1(int sig)
{
  (void)sig;
}

/* A helper thread: after 200 ms, SIGUSR1 to the blocked thread, then (if fd >= 0) one byte on fd
 * 200 ms later. */
struct poker {
  pthread_t target;
  int fd;
};

static void *poker_main(void *arg)
{
  struct poker *k = arg;
  usleep(200000);
  pthread_kill(k->target, SIGUSR1);
  if (k->fd >= 0) {
    usleep(200000);
    send(k->fd, "r", 1, MSG_NOSIGNAL);
  }
  return NULL;
}

/* Blocking recv on a socket waited on only through blocking calls (served in the process by the
 * library): SO_RCVTIMEO, a signal without SA_RESTART (EINTR), and with it (restarted, the data
 * that comes afterwards returned). */
static void run_blocking_served(int s)
{
  char buf[8];
  check(set_nonblock(s, false) == 0, "blocking: the socket made blocking");
  struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  uint64_t t0 = now_ms();
  ssize_t r = recv(s, buf, sizeof(buf), 0);
  int e = errno;
  uint64_t dt = now_ms() - t0;
  check(r < 0 && e == EAGAIN && dt >= 250 && dt < 3000,
        "blocking: SO_RCVTIMEO 300 ms: EAGAIN after %llu ms (%s)", (unsigned long long)dt,
        r < 0 ? strerror(e) : "data");
  tv.tv_usec = 0;
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

  struct sigaction sa, old;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_usr1;
  sigaction(SIGUSR1, &sa, &old);
  struct poker k = {pthread_self(), -1};
  pthread_t th;
  bool started = pthread_create(&th, NULL, poker_main, &k) == 0;
  r = recv(s, buf, sizeof(buf), 0);
  e = errno;
  if (started)
    pthread_join(th, NULL);
  check(started && r < 0 && e == EINTR, "blocking: a signal without SA_RESTART: EINTR (%zd, %s)", r,
        r < 0 ? strerror(e) : "data");

  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  k.fd = s;
  started = pthread_create(&th, NULL, poker_main, &k) == 0;
  r = recv(s, buf, sizeof(buf), 0);
  e = errno;
  if (started)
    pthread_join(th, NULL);
  check(started && r == 1 && buf[0] == 'r',
        "blocking: a signal with SA_RESTART: restarted, the echo returned (%zd, %s)", r,
        r < 0 ? strerror(e) : "data");
  sigaction(SIGUSR1, &old, NULL);
  set_nonblock(s, true);
}

static void run_epoll_served(const char *host, int echo)
{
  char buf[64];
  uint32_t m = 0;
  int x = served_connect(host, echo), y = served_connect(host, echo);
  int ep = epoll_create1(EPOLL_CLOEXEC), ep2 = epoll_create1(EPOLL_CLOEXEC);
  check(x >= 0 && y >= 0 && ep >= 0 && ep2 >= 0, "served: two connections made through epoll");

  /* EPOLLOUT|EPOLLET: one edge for the writable socket, none again without a change */
  /* (each result is taken before check() prints it: its arguments have no order) */
  bool ok = ep_set(ep, EPOLL_CTL_ADD, x, EPOLLOUT | EPOLLET, 1) == 0 &&
            wait_tag(ep, 1, 2000, &m) == 1 && (m & EPOLLOUT);
  check(ok, "served ET: EPOLLOUT reported once when added (0x%x)", m);
  check(wait_tag(ep, 1, 200, NULL) == 0, "served ET: no second EPOLLOUT edge without a change");

  /* EPOLLIN|EPOLLET|EPOLLONESHOT: one report, none for more data, MOD re-arms (data waiting) */
  ok = ep_set(ep, EPOLL_CTL_MOD, x, EPOLLIN | EPOLLET | EPOLLONESHOT, 1) == 0 &&
       send(x, "a", 1, 0) == 1 && wait_tag(ep, 1, 5000, &m) == 1 && (m & EPOLLIN);
  check(ok, "served ET|ONESHOT: the echo reported (0x%x)", m);
  check(send(x, "b", 1, 0) == 1 && wait_tag(ep, 1, 500, NULL) == 0,
        "served ET|ONESHOT: disarmed: more data is not reported");
  ok = ep_set(ep, EPOLL_CTL_MOD, x, EPOLLIN | EPOLLET | EPOLLONESHOT, 1) == 0 &&
       wait_tag(ep, 1, 2000, &m) == 1 && (m & EPOLLIN);
  check(ok, "served ET|ONESHOT: MOD re-arms, the waiting data is reported (0x%x)", m);
  check(read_for(x, buf, 2, 2000) == 2 && !memcmp(buf, "ab", 2), "served: both bytes read");

  /* level-triggered, more ready members than max: successive waits report each of them */
  check(ep_set(ep, EPOLL_CTL_MOD, x, EPOLLIN, 1) == 0 &&
            ep_set(ep, EPOLL_CTL_ADD, y, EPOLLIN, 2) == 0,
        "served LT: two members");
  send(x, "c", 1, 0);
  send(y, "d", 1, 0);
  bool t1 = false, t2 = false;
  uint64_t end = now_ms() + 5000;
  while ((!t1 || !t2) && now_ms() < end) {
    struct epoll_event ev[1];
    if (epoll_wait(ep, ev, 1, 200) == 1) {
      t1 = t1 || ev[0].data.u32 == 1;
      t2 = t2 || ev[0].data.u32 == 2;
    }
  }
  check(t1 && t2, "served LT: epoll_wait with max 1 reports both ready members in turn (%d, %d)",
        t1, t2);
  check(read_for(x, buf, 1, 2000) == 1 && read_for(y, buf, 1, 2000) == 1, "served LT: data read");

  /* a duplicate of the set's descriptor (the library hands such a set to the kernel) */
  int d = dup(ep);
  send(x, "e", 1, 0);
  ok = d >= 0 && wait_tag(d, 1, 5000, &m) == 1 && (m & EPOLLIN);
  check(ok, "served: the set's dup reports the offloaded member (0x%x)", m);
  check(wait_tag(ep, 1, 2000, &m) == 1, "served: so does the original number");
  close(d);
  check(read_for(x, buf, 1, 2000) == 1, "served: data read after the dup");
  epoll_ctl(ep, EPOLL_CTL_DEL, x, NULL);
  epoll_ctl(ep, EPOLL_CTL_DEL, y, NULL);
  close(ep);

  /* the set's descriptor passed over SCM_RIGHTS (to ourselves: a new number for the same set, as
   * another process would get it) */
  ep = epoll_create1(EPOLL_CLOEXEC);
  int sp[2] = {-1, -1};
  ok = ep >= 0 && ep_set(ep, EPOLL_CTL_ADD, x, EPOLLIN, 1) == 0 &&
       socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0;
  int got = ok ? pass_fd(sp[0], sp[1], ep) : -1;
  send(x, "p", 1, 0);
  ok = got >= 0 && wait_tag(got, 1, 5000, &m) == 1 && (m & EPOLLIN);
  check(ok, "served: the set passed over SCM_RIGHTS reports the offloaded member (0x%x)", m);
  check(read_for(x, buf, 1, 2000) == 1 && buf[0] == 'p', "served: data read after the pass");
  if (got >= 0)
    close(got);
  close(sp[0]);
  close(sp[1]);
  epoll_ctl(ep, EPOLL_CTL_DEL, x, NULL);
  close(ep);

  /* no lost wake-up: a thread asleep on one set, the main thread asleep on another set while the
   * device's news for the first arrives (whichever thread takes it must wake the other) */
  ep = epoll_create1(EPOLL_CLOEXEC);
  check(ep_set(ep, EPOLL_CTL_ADD, x, EPOLLIN, 1) == 0 &&
            ep_set(ep2, EPOLL_CTL_ADD, y, EPOLLIN, 2) == 0,
        "served wake-up: one member in each of two sets");
  int woke = 0, rounds = 5;
  for (int i = 0; i < rounds; i++) {
    struct ep_waiter w = {.ep = ep, .tag = 1, .timeout_ms = 5000};
    pthread_t th;
    if (pthread_create(&th, NULL, ep_waiter_main, &w) != 0)
      break;
    usleep(50000);
    uint64_t t0 = now_ms();
    send(x, "w", 1, 0);
    wait_tag(ep2, 2, 300, NULL); /* asleep on the other set while the echo comes back */
    pthread_join(th, NULL);
    if (w.seen == 1 && now_ms() - t0 < 3000)
      woke++;
    read_for(x, buf, 1, 2000);
  }
  check(woke == rounds, "served wake-up: the thread asleep on its set woke every time (%d of %d)",
        woke, rounds);
  epoll_ctl(ep, EPOLL_CTL_DEL, x, NULL);
  epoll_ctl(ep2, EPOLL_CTL_DEL, y, NULL);

  /* EPOLLEXCLUSIVE with two threads waiting in two sets */
  check(ep_set(ep, EPOLL_CTL_ADD, x, EPOLLIN | EPOLLEXCLUSIVE, 5) == 0 &&
            ep_set(ep2, EPOLL_CTL_ADD, x, EPOLLIN | EPOLLEXCLUSIVE, 5) == 0,
        "served EXCLUSIVE: added to two sets");
  int rc = ep_set(ep, EPOLL_CTL_MOD, x, EPOLLIN, 5), e = errno;
  check(rc < 0 && e == EINVAL, "served EXCLUSIVE: MOD: EINVAL (%s)", strerror(e));
  rc = ep_set(ep, EPOLL_CTL_ADD, y, EPOLLIN | EPOLLEXCLUSIVE | EPOLLRDHUP, 6);
  e = errno;
  check(rc < 0 && e == EINVAL, "served EXCLUSIVE: with EPOLLRDHUP: EINVAL (%s)", strerror(e));
  struct ep_waiter w1 = {.ep = ep, .tag = 5, .timeout_ms = 3000};
  struct ep_waiter w2 = {.ep = ep2, .tag = 5, .timeout_ms = 3000};
  pthread_t th1, th2;
  bool s1 = pthread_create(&th1, NULL, ep_waiter_main, &w1) == 0;
  bool s2 = pthread_create(&th2, NULL, ep_waiter_main, &w2) == 0;
  usleep(100000);
  send(x, "x", 1, 0);
  if (s1)
    pthread_join(th1, NULL);
  if (s2)
    pthread_join(th2, NULL);
  check(s1 && s2 && (w1.seen + w2.seen) >= 1,
        "served EXCLUSIVE: an arrival wakes at least one of the two waiters (%d, %d)", w1.seen,
        w2.seen);
  check(read_for(x, buf, 1, 2000) == 1 && buf[0] == 'x', "served EXCLUSIVE: the data read");

  /* a member added while a thread sleeps in the set, already readable: the sleeper wakes */
  int ep3 = epoll_create1(EPOLL_CLOEXEC), ep4 = epoll_create1(EPOLL_CLOEXEC);
  epoll_ctl(ep, EPOLL_CTL_DEL, x, NULL);
  epoll_ctl(ep2, EPOLL_CTL_DEL, x, NULL);
  ok = send(x, "q", 1, 0) == 1 && ep_set(ep3, EPOLL_CTL_ADD, x, EPOLLIN, 1) == 0 &&
       wait_tag(ep3, 1, 5000, NULL) == 1;
  check(ok, "served ADD: the socket is readable");
  struct ep_waiter wa = {.ep = ep4, .tag = 8, .timeout_ms = 5000};
  pthread_t tha;
  bool sa = pthread_create(&tha, NULL, ep_waiter_main, &wa) == 0;
  usleep(150000);
  uint64_t ta = now_ms();
  ep_set(ep4, EPOLL_CTL_ADD, x, EPOLLIN, 8);
  if (sa)
    pthread_join(tha, NULL);
  check(sa && wa.seen == 1 && now_ms() - ta < 3000,
        "served ADD: a thread asleep in the set wakes for a ready member added (%d)", wa.seen);
  check(read_for(x, buf, 1, 2000) == 1 && buf[0] == 'q', "served ADD: the data read");
  close(ep4);
  close(ep3);

  run_blocking_served(y);

  /* close of a member with data waiting: it leaves both sets; the other member still reported */
  ok = ep_set(ep, EPOLL_CTL_ADD, x, EPOLLIN, 5) == 0 &&
       ep_set(ep2, EPOLL_CTL_ADD, x, EPOLLIN, 5) == 0 && send(x, "c", 1, 0) == 1 &&
       wait_tag(ep, 5, 5000, NULL) == 1 && wait_tag(ep2, 5, 2000, NULL) == 1;
  check(ok, "served close: a member with data waiting, in two sets");
  close(x);
  send(y, "z", 1, 0);
  check(ep_set(ep, EPOLL_CTL_ADD, y, EPOLLIN, 7) == 0 && wait_tag(ep, 7, 5000, NULL) == 1 &&
            wait_tag(ep, 5, 200, NULL) == 0 && wait_tag(ep2, 5, 200, NULL) == 0,
        "served close: a closed member is gone from both sets, the other is reported");
  close(y);
  close(ep2);
  close(ep);
}

/* ------------------------------------------------------------------------------------------ */
/* poll and select on kernel and offloaded descriptors                                        */

static void run_poll_select(int l, int t)
{
  int pp[2], sv[2];
  pipe2(pp, O_CLOEXEC | O_NONBLOCK);
  socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
  write(pp[1], "p", 1);
  send(t, "ping", 4, 0);
  /* expected: pipe readable, socketpair quiet (for POLLIN), t readable (the echo) and writable,
   * the listener readable (the peer's connection is waiting) */
  struct pollfd pf[4] = {{.fd = pp[0], .events = POLLIN},
                         {.fd = sv[0], .events = POLLIN},
                         {.fd = t, .events = POLLIN | POLLOUT},
                         {.fd = l, .events = POLLIN}};
  short seen[4] = {0};
  uint64_t end = now_ms() + 5000;
  while (now_ms() < end && !((seen[0] & POLLIN) && (seen[2] & POLLIN) && (seen[3] & POLLIN))) {
    if (poll(pf, 4, 500) < 0)
      break;
    for (int i = 0; i < 4; i++)
      seen[i] |= pf[i].revents;
  }
  check(seen[0] == POLLIN && seen[1] == 0 && seen[2] == (POLLIN | POLLOUT) && seen[3] == POLLIN,
        "poll: pipe 0x%x, socketpair 0x%x, offloaded client 0x%x, offloaded listener 0x%x", seen[0],
        seen[1], seen[2], seen[3]);
  struct timespec ts = {.tv_sec = 2};
  pf[1].events = POLLOUT;
  int n = ppoll(pf, 4, &ts, NULL);
  check(n == 4 && pf[1].revents == POLLOUT, "ppoll: all four ready (%d), socketpair writable", n);

  int maxfd = pp[0];
  int fds[4] = {pp[0], sv[0], t, l};
  for (int i = 0; i < 4; i++)
    if (fds[i] > maxfd)
      maxfd = fds[i];
  fd_set r, w;
  FD_ZERO(&r);
  FD_ZERO(&w);
  for (int i = 0; i < 4; i++)
    FD_SET(fds[i], &r);
  FD_SET(t, &w);
  FD_SET(sv[0], &w);
  struct timeval tv = {.tv_sec = 2};
  n = select(maxfd + 1, &r, &w, NULL, &tv);
  check(n == 5 && FD_ISSET(pp[0], &r) && !FD_ISSET(sv[0], &r) && FD_ISSET(t, &r) &&
            FD_ISSET(l, &r) && FD_ISSET(t, &w) && FD_ISSET(sv[0], &w),
        "select: readable pipe, client, listener; writable client and socketpair (%d)", n);
  char buf[8];
  read(pp[0], buf, 1);
  size_t k = read_for(t, buf, 4, 3000);
  check(k == 4 && !memcmp(buf, "ping", 4), "poll/select: the echo read");
  FD_ZERO(&r);
  FD_SET(pp[0], &r);
  FD_SET(t, &r);
  FD_SET(sv[0], &r);
  struct timespec ts0 = {.tv_nsec = 100000000};
  n = pselect(maxfd + 1, &r, NULL, NULL, &ts0, NULL);
  check(n == 0, "pselect: nothing readable once read (%d)", n);
  close(pp[0]);
  close(pp[1]);
  close(sv[0]);
  close(sv[1]);
}

/* ------------------------------------------------------------------------------------------ */
/* dup, dup2, dup3                                                                            */

/* Sends msg on `via` and reads its echo on `on`. */
static bool echo_through(int via, int on, const char *msg)
{
  char buf[64];
  size_t n = strlen(msg);
  if (send(via, msg, n, 0) != (ssize_t)n)
    return false;
  return read_for(on, buf, n, 3000) == n && !memcmp(buf, msg, n);
}

static void run_dup(const char *host, int echo, int l, const char *netns, const char *caddr,
                    int lport)
{
  int s = tcp_connect(host, echo);
  check(s >= 0, "dup: connected to the echo server");
  int d = dup(s);
  check(d >= 0 && echo_through(d, s, "via-dup"), "dup: data sent on the duplicate, read on the "
                                                 "original");
  check(close(s) == 0 && echo_through(d, d, "after-close"),
        "dup: closing the original leaves the duplicate working");
  int d3 = dup3(d, 150, O_CLOEXEC);
  check(d3 == 150 && (fcntl(150, F_GETFD) & FD_CLOEXEC) && !(fcntl(d, F_GETFD) & FD_CLOEXEC),
        "dup3(O_CLOEXEC) onto 150: close-on-exec on the new number only");
  check(echo_through(150, d, "dup3"), "dup3: the new number carries the same connection");
  errno = 0;
  check(dup3(d, d, 0) < 0 && errno == EINVAL, "dup3 onto itself: EINVAL");
  check(dup2(d, d) == d && echo_through(d, d, "self"), "dup2 onto itself: a no-op");
  /* fcntl F_DUPFD_CLOEXEC from an offloaded socket */
  int fd2 = fcntl(d, F_DUPFD_CLOEXEC, 160);
  check(fd2 >= 160 && (fcntl(fd2, F_GETFD) & FD_CLOEXEC) && echo_through(fd2, 150, "dupfd"),
        "F_DUPFD_CLOEXEC: >= 160 (%d), close-on-exec, same connection", fd2);
  close(fd2);

  /* dup2 over an offloaded connection closes it as the kernel would: the peer sees EOF */
  struct peer p;
  check(peer_start(&p, netns, caddr, lport), "dup2: a second peer connection");
  int c = accept_within(l, 5000);
  check(c >= 0, "dup2: accepted (%s)", c < 0 ? strerror(errno) : "ok");
  write_all(p.cmd, "hi", 2);
  char buf[64];
  check(read_for(c, buf, 2, 3000) == 2 && !memcmp(buf, "hi", 2), "dup2: peer -> accepted");
  check(dup2(d, c) == c, "dup2 of the echo connection over the accepted one");
  size_t k = read_for(p.res, buf, sizeof(buf), 5000);
  int st = peer_wait(&p, 5000);
  check(k == 0 && st == 0,
        "dup2: the replaced connection was closed: the peer saw EOF (%zu "
        "bytes, status %d)",
        k, st);
  check(echo_through(c, d, "replaced"), "dup2: its number now carries the echo connection");

  /* a kernel descriptor over an offloaded one, and an offloaded one over a kernel one */
  int pp[2];
  pipe2(pp, O_CLOEXEC);
  check(dup2(pp[1], c) == c && write(c, "k", 1) == 1 && read(pp[0], buf, 1) == 1,
        "dup2 of a pipe over an offloaded number: it is the pipe now");
  check(echo_through(d, 150, "still"), "  the socket lives on in its other numbers");
  check(dup2(d, pp[1]) == pp[1] && echo_through(pp[1], d, "over-pipe"),
        "dup2 of an offloaded socket over a pipe's number");
  close(pp[1]);
  close(c);
  close(150);
  char one;
  check(read(pp[0], &one, 1) == 0, "  the pipe's write end was closed by it (EOF)");
  close(pp[0]);
  check(echo_through(d, d, "last"), "the last remaining number still works");
  close(d);
}

/* ------------------------------------------------------------------------------------------ */
/* close-on-exec                                                                              */

static void run_exec(const char *host, int echo)
{
  int a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* closed at exec */
  int b = socket(AF_INET, SOCK_STREAM, 0);                /* inherited */
  int c = socket(AF_INET, SOCK_STREAM, 0);                /* FD_CLOEXEC set later: closed */
  int d = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* FD_CLOEXEC cleared: inherited */
  struct sockaddr_in e = addr_of(host, echo);
  bool conn = true;
  int fds[4] = {a, b, c, d};
  for (int i = 0; i < 4; i++)
    conn &= connect(fds[i], (struct sockaddr *)&e, sizeof(e)) == 0;
  check(conn, "exec: four connections to the echo server");
  check(fcntl(c, F_SETFD, FD_CLOEXEC) == 0 && fcntl(d, F_SETFD, 0) == 0,
        "exec: fcntl F_SETFD on two of them");
  check((fcntl(a, F_GETFD) & FD_CLOEXEC) && !(fcntl(b, F_GETFD) & FD_CLOEXEC) &&
            (fcntl(c, F_GETFD) & FD_CLOEXEC) && !(fcntl(d, F_GETFD) & FD_CLOEXEC),
        "exec: F_GETFD reads back what was set");
  int out[2];
  pipe2(out, O_CLOEXEC);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    /* the shell lists its own descriptors ("; :" keeps it from exec'ing ls, whose directory
     * descriptor could take a closed number) */
    execl("/bin/sh", "sh", "-c", "ls /proc/$$/fd; :", (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  char list[4096];
  size_t k = read_for(out[0], list, sizeof(list) - 1, 10000);
  list[k] = 0;
  close(out[0]);
  int st = -1;
  waitpid(pid, &st, 0);
  bool have[4] = {false, false, false, false};
  for (char *tok = strtok(list, " \n"); tok; tok = strtok(NULL, " \n"))
    for (int i = 0; i < 4; i++)
      if (atoi(tok) == fds[i] && tok[0] >= '0' && tok[0] <= '9')
        have[i] = true;
  check(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !have[0] && have[1] && !have[2] && have[3],
        "exec: the new program has %d? %s, %d? %s, %d? %s, %d? %s (want no yes no yes)", a,
        have[0] ? "yes" : "no", b, have[1] ? "yes" : "no", c, have[2] ? "yes" : "no", d,
        have[3] ? "yes" : "no");
  bool ok = true;
  for (int i = 0; i < 4; i++)
    ok &= echo_through(fds[i], fds[i], "parent");
  check(ok, "exec: all four still work in the parent");
  for (int i = 0; i < 4; i++)
    close(fds[i]);
}

/* ------------------------------------------------------------------------------------------ */
/* non-blocking errno behaviour                                                               */

static volatile sig_atomic_t sigpipes;
static void on_sigpipe(int sig)
{
  (void)sig;
  sigpipes++;
}

static void run_errors(const char *host, int rst, int closed)
{
  char buf[64];
  /* refused: EINPROGRESS, then writable with POLLERR, SO_ERROR ECONNREFUSED */
  struct sockaddr_in a = addr_of(host, closed);
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int rc = connect(s, (struct sockaddr *)&a, sizeof(a));
  check(rc < 0 && errno == EINPROGRESS, "refused: EINPROGRESS");
  struct pollfd pf = {.fd = s, .events = POLLOUT};
  rc = poll(&pf, 1, 5000);
  int e = -1;
  socklen_t el = sizeof(e);
  getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el);
  check(rc == 1 && (pf.revents & POLLERR) && e == ECONNREFUSED,
        "refused: POLLERR (0x%x), SO_ERROR ECONNREFUSED (%s)", pf.revents, strerror(e));
  close(s);

  /* reset: ECONNRESET on recv, then EPIPE with SIGPIPE unless MSG_NOSIGNAL */
  a = addr_of(host, rst);
  s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  rc = connect(s, (struct sockaddr *)&a, sizeof(a));
  pf = (struct pollfd){.fd = s, .events = POLLOUT};
  poll(&pf, 1, 5000);
  e = -1;
  getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &el);
  check(rc < 0 && errno == EINPROGRESS && e == 0, "reset: connected (SO_ERROR %d)", e);
  ssize_t r = recv(s, buf, sizeof(buf), 0);
  check(r < 0 && errno == EAGAIN, "EAGAIN: nothing to read yet");
  send(s, "bye", 3, 0);
  pf = (struct pollfd){.fd = s, .events = POLLIN};
  rc = poll(&pf, 1, 5000);
  check(rc == 1 && (pf.revents & (POLLERR | POLLHUP)), "reset: POLLERR|POLLHUP (0x%x)", pf.revents);
  r = recv(s, buf, sizeof(buf), 0);
  check(r < 0 && errno == ECONNRESET, "reset: recv gives ECONNRESET (%zd, %s)", r,
        r < 0 ? strerror(errno) : "-");
  signal(SIGPIPE, on_sigpipe);
  sigpipes = 0;
  r = send(s, "x", 1, 0);
  check(r < 0 && errno == EPIPE && sigpipes == 1, "reset: send gives EPIPE and SIGPIPE (%d)",
        (int)sigpipes);
  r = send(s, "x", 1, MSG_NOSIGNAL);
  check(r < 0 && errno == EPIPE && sigpipes == 1, "reset: MSG_NOSIGNAL: EPIPE without SIGPIPE");
  signal(SIGPIPE, SIG_DFL);
  close(s);
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc != 8) {
    fprintf(stderr, "usage: preload_events HOST ECHO_PORT RST_PORT CLOSED_PORT LISTEN_PORT "
                    "CONNECT_ADDR NETNS\n");
    return 100;
  }
  const char *host = argv[1], *caddr = argv[6], *netns = argv[7];
  int echo = atoi(argv[2]), rst = atoi(argv[3]), closed = atoi(argv[4]), lport = atoi(argv[5]);

  /* the offloaded listener, and EADDRINUSE for a second one */
  struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lport)};
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int rc = bind(l, (struct sockaddr *)&any, sizeof(any));
  if (rc == 0)
    rc = listen(l, 16);
  check(rc == 0, "listen on port %d (%s)", lport, rc ? strerror(errno) : "ok");
  int l2 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  rc = bind(l2, (struct sockaddr *)&any, sizeof(any));
  if (rc == 0)
    rc = listen(l2, 16);
  check(rc < 0 && errno == EADDRINUSE, "a second listener on port %d: EADDRINUSE (%s)", lport,
        rc < 0 ? strerror(errno) : "ok");
  close(l2);
  errno = 0;
  check(accept(l, NULL, NULL) < 0 && errno == EAGAIN, "accept with nothing waiting: EAGAIN");

  /* the offloaded client: non-blocking connect */
  struct sockaddr_in ea = addr_of(host, echo);
  int t = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  rc = connect(t, (struct sockaddr *)&ea, sizeof(ea));
  check(rc < 0 && errno == EINPROGRESS, "connect: EINPROGRESS (%s)",
        rc < 0 ? strerror(errno) : "0");
  struct pollfd pf = {.fd = t, .events = POLLOUT};
  rc = poll(&pf, 1, 5000);
  int e = -1;
  socklen_t el = sizeof(e);
  getsockopt(t, SOL_SOCKET, SO_ERROR, &e, &el);
  check(rc == 1 && pf.revents == POLLOUT && e == 0, "connect: POLLOUT (0x%x), SO_ERROR 0 (%d)",
        pf.revents, e);
  char buf[16];
  ssize_t r = recv(t, buf, sizeof(buf), 0);
  e = errno;
  check(r < 0 && e == EAGAIN, "recv with nothing: EAGAIN (%s)", r < 0 ? strerror(e) : "data");

  struct peer p;
  check(peer_start(&p, netns, caddr, lport), "peer: started");
  run_poll_select(l, t);
  int c = accept_within(l, 5000);
  check(c >= 0, "accept the peer's connection (%s)", c < 0 ? strerror(errno) : "ok");
  if (c < 0) {
    peer_wait(&p, 1000);
    return 100;
  }
  run_epoll_modes(c, &p);
  run_epoll_served(host, echo); /* before run_epoll_more's fork hands every set to the kernel */
  run_epoll_more(host, echo);

  int inner = epoll_create1(EPOLL_CLOEXEC), outer = epoll_create(4);
  ep_set(outer, EPOLL_CTL_ADD, inner, EPOLLIN, T_INNER);
  run_loop(outer, inner, t, c, &p);
  int st = peer_wait(&p, 5000);
  check(st == 0, "peer: exited 0 after EOF (%d)", st);
  close(outer);
  close(inner);
  close(c);
  close(t);

  run_dup(host, echo, l, netns, caddr, lport);
  run_exec(host, echo);
  run_errors(host, rst, closed);
  close(l);
  return check_exit_status();
}
