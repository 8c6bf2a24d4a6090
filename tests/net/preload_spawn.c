/*
 * Children started without fork() that use a connection their parent accepted
 * (test_preload_spawn.sh, docs/interception.md "fork and exec"). One server per run:
 *   preload_spawn MODE ADDR PORT
 * listens on ADDR:PORT (a SOCK_CLOEXEC listener), accepts one connection and has a child echo it
 * back with `cat` until the client half-closes:
 *   spawn         posix_spawnp with file actions that dup2 the connection (accepted with
 *                 SOCK_CLOEXEC: dup2 clears the flag on the copy) to stdin and stdout, as inetd
 *   spawn-setsid  the same with POSIX_SPAWN_SETSID (the child leads a session of its own)
 *   system        system("cat") with the connection on stdin and stdout: /bin/sh, then cat
 *   popen         popen("cat", "r") with the connection on stdin: the child reads the
 *                 connection, the parent writes what it reads from the pipe back to it
 *   clone         syscall(SYS_clone, SIGCHLD, ...): a fork without the C library's fork hooks;
 *                 the child dup2s the connection to stdin and stdout and execs cat
 * Then the listener, open all along, accepts a second connection, which the parent echoes itself.
 * glibc runs posix_spawn, system and popen in a child made with clone(CLONE_VM | CLONE_VFORK),
 * which shares the parent's memory until its exec and calls the kernel's execve directly.
 * The client is preload_inherit's (preload_inherit client ADDR PORT IN OUT); the script compares
 * what came back. Prints "ok   - ..." and "FAIL - ..." lines (preload_run); exit status 0 when
 * all passed.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int fails;
static FILE *out; /* the checks' lines: a copy of the original stdout (system and popen move it) */

static void ok(int cond, const char *what)
{
  fprintf(out, "%s - %s\n", cond ? "ok  " : "FAIL", what);
  fflush(out);
  if (!cond)
    fails++;
}

static int listener(const char *a, const char *port)
{
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)atoi(port));
  if (inet_pton(AF_INET, a, &sin.sin_addr) != 1) {
    fprintf(stderr, "bad address %s\n", a);
    return -1;
  }
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (l < 0 || bind(l, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(l, 4) < 0) {
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

/* Waits for child pid; true when it exited with status 0. */
static int exited_ok(pid_t pid)
{
  int st = 0;
  pid_t w;
  while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
    ;
  if (w != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "child %d: %s %d\n", (int)pid, WIFSIGNALED(st) ? "signal" : "status",
            WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    return 0;
  }
  return 1;
}

static void by_spawn(int c, int setsid_too)
{
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, c, 0);
  posix_spawn_file_actions_adddup2(&fa, c, 1);
  posix_spawnattr_init(&at);
  if (setsid_too)
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID);
  char *argv[] = {"cat", NULL};
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, "cat", &fa, &at, argv, environ);
  ok(rc == 0, "posix_spawnp started cat");
  fprintf(stderr, "child %d\n", (int)pid);
  if (rc == 0 && setsid_too)
    ok(getsid(pid) == pid, "the child leads a session of its own (POSIX_SPAWN_SETSID)");
  close(c);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (rc == 0)
    ok(exited_ok(pid), "cat exited with status 0");
}

/* The connection as this process's stdin (and stdout): a POSIX shell's redirections name one
 * digit only, and the library's own descriptors push a new one past 9. The checks' lines go to
 * a copy of the original stdout (out). */
static void conn_as_stdio(int c, int both)
{
  if (dup2(c, 0) != 0 || (both && dup2(c, 1) != 1))
    ok(0, "dup2 of the connection to stdin/stdout");
  close(c);
}

static void stdio_back(void)
{
  int z = open("/dev/null", O_RDWR);
  dup2(z, 0);
  dup2(fileno(out), 1);
  close(z);
}

static void by_system(int c)
{
  conn_as_stdio(c, 1);
  int st = system("cat");
  stdio_back();
  ok(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "system(\"cat\") returned 0");
}

static void by_popen(int c)
{
  int w = dup(c); /* the parent writes the echo here */
  conn_as_stdio(c, 0);
  FILE *f = popen("cat", "r");
  stdio_back();
  ok(f != NULL, "popen(\"cat\", \"r\") started");
  if (!f) {
    close(w);
    return;
  }
  static char buf[65536];
  size_t n, total = 0;
  int wr = 0;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
    if (write_all(w, buf, n) < 0)
      wr = -1;
    total += n;
  }
  fprintf(stderr, "popen: %zu bytes through the pipe\n", total);
  ok(wr == 0, "the parent wrote everything back to the connection");
  int st = pclose(f);
  ok(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "pclose: the child exited with status 0");
  close(w);
}

static void by_clone(int c)
{
  long pid = syscall(SYS_clone, (unsigned long)SIGCHLD, 0L, 0L, 0L, 0L);
  if (pid == 0) {
    if (dup2(c, 0) < 0 || dup2(c, 1) < 0)
      _exit(126);
    execlp("cat", "cat", (char *)NULL);
    _exit(127);
  }
  ok(pid > 0, "clone(SIGCHLD) made a child");
  fprintf(stderr, "child %ld\n", pid);
  close(c);
  if (pid > 0)
    ok(exited_ok((pid_t)pid), "cat exited with status 0");
}

int main(int argc, char **argv)
{
  if (argc != 4) {
    fprintf(stderr, "usage: %s spawn|spawn-setsid|system|popen|clone ADDR PORT\n", argv[0]);
    return 2;
  }
  const char *mode = argv[1];
  int o = fcntl(1, F_DUPFD_CLOEXEC, 3);
  out = o >= 0 ? fdopen(o, "w") : NULL;
  if (!out)
    return 1;
  int l = listener(argv[2], argv[3]);
  if (l < 0)
    return 1;
  fprintf(out, "# listening\n");
  fflush(out);
  int cloexec = strncmp(mode, "spawn", 5) == 0 ? SOCK_CLOEXEC : 0;
  int c = accept4(l, NULL, NULL, cloexec);
  ok(c >= 0, "accepted the connection");
  if (c < 0)
    return 1;
  if (strcmp(mode, "spawn") == 0)
    by_spawn(c, 0);
  else if (strcmp(mode, "spawn-setsid") == 0)
    by_spawn(c, 1);
  else if (strcmp(mode, "system") == 0)
    by_system(c);
  else if (strcmp(mode, "popen") == 0)
    by_popen(c);
  else if (strcmp(mode, "clone") == 0)
    by_clone(c);
  else
    return 2;
  /* The listener was open all along (shared with the child, which does not hold it: close-on-
   * exec): this process still gets the next connection, and echoes it itself. */
  fprintf(out, "# second\n");
  fflush(out);
  c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
  ok(c >= 0, "the listener, shared while the child started, still accepts here");
  static char buf[65536];
  ssize_t n;
  size_t total = 0;
  int wr = 0;
  while (c >= 0 && ((n = read(c, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))) {
    if (n > 0 && write_all(c, buf, (size_t)n) < 0)
      wr = -1;
    total += n > 0 ? (size_t)n : 0;
  }
  fprintf(stderr, "second connection: %zu bytes echoed by the parent\n", total);
  ok(c >= 0 && wr == 0, "the parent echoed the second connection");
  if (c >= 0)
    close(c);
  close(l);
  return fails ? 1 : 0;
}
