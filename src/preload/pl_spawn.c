/*
 * libtoe-preload: programs started without fork (docs/interception.md "fork and exec").
 *
 * glibc's posix_spawn, system and popen start their child with clone(CLONE_VM | CLONE_VFORK) and
 * call the kernel's execve themselves: neither the fork hooks nor our execve wrapper run, so the
 * new program would get the placeholder sockets without what lets it adopt the offloaded sockets
 * behind them (an inetd-style child spawned with its connection on stdin and stdout would read
 * nothing). These wrappers share every offloaded socket first and hand the tokens on in the
 * child's environment (TOE_INHERIT, naming each socket by its placeholder's inode: the spawn's
 * file actions renumber descriptors), then bind each token to the child when it holds the socket
 * and give the others up (pl_inherit.c).
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[], char *const[]);

static int spawn_with(bool search, pid_t *pid, const char *path,
                      const posix_spawn_file_actions_t *fa, const posix_spawnattr_t *attr,
                      char *const argv[], char *const envp[])
{
  static spawn_fn real_spawn, real_spawnp;
  if (!real_spawn) {
    real_spawnp = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawnp");
    real_spawn = (spawn_fn)dlsym(RTLD_NEXT, "posix_spawn");
  }
  spawn_fn real = search ? real_spawnp : real_spawn;
  if (!real)
    return ENOSYS;
  pl_init();
  struct pl_handoff *h = pl_inh_spawn_prepare();
  char **nv = h ? pl_inh_spawn_envp(h, envp) : NULL;
  pid_t child = 0;
  int rc = real(&child, path, fa, attr, argv, nv ? nv : envp);
  free(nv);
  pl_inh_spawn_done(h, rc == 0 ? child : 0);
  if (rc == 0 && pid)
    *pid = child;
  return rc;
}

PL_API int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
  return spawn_with(false, pid, path, fa, attr, argv, envp);
}

PL_API int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
  return spawn_with(true, pid, file, fa, attr, argv, envp);
}

/* system and popen pass the process's own environment to the shell they start: the tokens go
 * there for the call (setenv, as glibc's own calls read environ). */
static void env_set(const struct pl_handoff *h)
{
  const char *v = pl_inh_spawn_env(h);
  const char *eq = v ? strchr(v, '=') : NULL;
  if (eq)
    setenv("TOE_INHERIT", eq + 1, 1);
}

PL_API int system(const char *cmd)
{
  static int (*real_system)(const char *);
  if (!real_system)
    real_system = (int (*)(const char *))dlsym(RTLD_NEXT, "system");
  pl_init();
  struct pl_handoff *h = cmd ? pl_inh_spawn_prepare() : NULL;
  if (h)
    env_set(h);
  int rc = real_system(cmd);
  int e = errno;
  if (h) {
    unsetenv("TOE_INHERIT");
    pl_inh_spawn_done(h, 0); /* the shell has finished: what it did not adopt is given up */
  }
  errno = e;
  return rc;
}

/* Our children now (pids whose parent we are, from /proc/PID/stat), at most max. */
static int children(pid_t *v, int max)
{
  DIR *d = opendir("/proc");
  if (!d)
    return -1;
  pid_t self = getpid();
  int n = 0;
  for (struct dirent *de; n < max && (de = readdir(d)) != NULL;) {
    if (de->d_name[0] < '1' || de->d_name[0] > '9')
      continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%.255s/stat", de->d_name);
    FILE *f = fopen(path, "re");
    if (!f)
      continue;
    size_t k = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[k] = 0;
    const char *c = strrchr(buf, ')'); /* the command may hold spaces and parentheses */
    int ppid;
    if (c && sscanf(c + 1, " %*c %d", &ppid) == 1 && ppid == self)
      v[n++] = (pid_t)atoi(de->d_name);
  }
  closedir(d);
  return n;
}

PL_API FILE *popen(const char *cmd, const char *type)
{
  static FILE *(*real_popen)(const char *, const char *);
  if (!real_popen)
    real_popen = (FILE * (*)(const char *, const char *)) dlsym(RTLD_NEXT, "popen");
  pl_init();
  struct pl_handoff *h = cmd ? pl_inh_spawn_prepare() : NULL;
  pid_t before[256], after[256];
  int nb = -1;
  if (h) {
    nb = children(before, 256);
    env_set(h);
  }
  FILE *f = real_popen(cmd, type);
  int e = errno;
  if (h) {
    unsetenv("TOE_INHERIT");
    /* popen does not say its child's pid: the one child that is new (another thread may have
     * started one meanwhile: then unknown, and the tokens stay ours until we end). */
    pid_t child = f ? -1 : 0;
    int na = f && nb >= 0 ? children(after, 256) : -1;
    for (int i = 0, found = 0; i < na; i++) {
      bool old = false;
      for (int k = 0; k < nb && !old; k++)
        old = before[k] == after[i];
      if (!old && ++found == 1)
        child = after[i];
      else if (!old)
        child = -1;
    }
    pl_inh_spawn_done(h, child);
  }
  errno = e;
  return f;
}
