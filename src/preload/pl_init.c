/*
 * libtoe-preload: initialisation (the real functions through dlsym, the configuration from the
 * TOE_* environment variables, the offload rules) and logging. docs/interception.md.
 *
 * Locks, in the order they are taken across the preload: g_attach (device attach, pl_dev.c) >
 * psock.mu > pdev.mu > g_tab (descriptor table, pl_fdtab.c). libtoe's own lock is taken inside
 * toe_* calls and never held across ours. A descriptor that is not ours is recognised without any
 * lock (one or two atomic loads, pl_ours), so calls on kernel descriptors, including those made in
 * signal handlers, never block on us and never allocate.
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct pl_real R;
struct pl_config pl_cfg;
atomic_bool pl_ready;
unsigned pl_fork_gen;
static pid_t g_pid; /* ours; a different getpid() means a vfork child sharing our memory */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* ------------------------------------------------------------------------------------------ */
/* Logging                                                                                    */

void pl_log(const char *fmt, ...)
{
  char buf[512];
  int n = snprintf(buf, sizeof(buf), "toe-preload[%d]: ", (int)getpid());
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
  va_end(ap);
  if (m < 0)
    m = 0;
  size_t len = (size_t)n + (size_t)m;
  if (len > sizeof(buf) - 2)
    len = sizeof(buf) - 2;
  buf[len++] = '\n';
  int e = errno;
  ssize_t w = R.write ? R.write(2, buf, len) : -1;
  (void)w;
  errno = e;
}

/* ------------------------------------------------------------------------------------------ */
/* Initialisation                                                                             */

/* Rules that always come first: loopback is the host's own, never the device's. */
static const char *const RULES_ALWAYS = "!*:127.0.0.0/8:*";
/* The default when neither TOE_OFFLOAD nor TOE_OFFLOAD_FILE is set: every AF_INET TCP/UDP socket
 * except multicast and limited broadcast UDP, which the device does not carry. */
static const char *const RULES_DEFAULT =
    "!udp:224.0.0.0/4:* !udp:255.255.255.255:* tcp:*:* udp:*:* listen:*:*";

static void load_rules(const char *what, const char *text)
{
  char err[128];
  int bad = pl_rules_parse(&pl_cfg.rules, text, err, sizeof(err));
  if (bad)
    pl_log("%s: %d malformed rule(s) ignored (%s)", what, bad, err);
}

static void load_rules_file(const char *path)
{
  FILE *f = fopen(path, "re");
  if (!f) {
    pl_log("TOE_OFFLOAD_FILE %s: %s", path, strerror(errno));
    return;
  }
  char *text = NULL;
  size_t len = 0, cap = 0;
  char chunk[1024];
  size_t k;
  while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0) {
    if (len + k + 1 > cap) {
      size_t ncap = (cap ? cap * 2 : 4096);
      while (ncap < len + k + 1)
        ncap *= 2;
      char *t = realloc(text, ncap);
      if (!t)
        break;
      text = t;
      cap = ncap;
    }
    memcpy(text + len, chunk, k);
    len += k;
  }
  fclose(f);
  if (text) {
    text[len] = 0;
    load_rules("TOE_OFFLOAD_FILE", text);
    free(text);
  }
}

/* TOE_PROFILE names a set of defaults for the waiting knobs; TOE_SPIN_US and TOE_BATCH override
 * them one by one (docs/interception.md, "Spinning"). */
static void load_wait_config(void)
{
  static const struct {
    const char *name;
    int spin_us, batch;
    bool drain;
  } profiles[] = {
      {"default", 0, 64, false},    /* no host spinning: the pump wakes the waiters */
      {"latency", 50, 16, true},    /* spin 50 us on the completion queue before sleeping */
      {"throughput", 0, 256, true}, /* no spinning; completions in large batches, processed by
                                     * the waiting thread before it sleeps */
  };
  const char *s = secure_getenv("TOE_PROFILE");
  unsigned pick = 0;
  if (s && *s) {
    unsigned i;
    for (i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
      if (!strcmp(s, profiles[i].name))
        break;
    if (i < sizeof(profiles) / sizeof(profiles[0]))
      pick = i;
    else
      pl_log("TOE_PROFILE=%s is not a profile (default, latency, throughput): using default", s);
  }
  pl_cfg.profile = profiles[pick].name;
  pl_cfg.spin_us = profiles[pick].spin_us;
  pl_cfg.batch = profiles[pick].batch;
  pl_cfg.drain = profiles[pick].drain;
  s = secure_getenv("TOE_SPIN_US");
  if (s && *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 1000000)
      pl_log("TOE_SPIN_US=%s is not a number of microseconds (0..1000000): ignored", s);
    else
      pl_cfg.spin_us = (int)v;
  }
  s = secure_getenv("TOE_BATCH");
  if (s && *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 1 || v > 256)
      pl_log("TOE_BATCH=%s is not a batch size (1..256): ignored", s);
    else
      pl_cfg.batch = (int)v;
  }
  if (pl_cfg.spin_us > 0)
    pl_cfg.drain = true;
  PL_DBG("profile %s: spin %d us, batch %d%s", pl_cfg.profile, pl_cfg.spin_us, pl_cfg.batch,
         pl_cfg.drain ? ", waiting threads process completions" : "");
}

static void load_config(void)
{
  /* secure_getenv here and above: in a set-user-ID or file-capability program (AT_SECURE) the
   * environment is the caller's, not the program owner's: it must not choose the device, the
   * rules or how the process spins. */
  const char *s = secure_getenv("TOE_PRELOAD_DEBUG");
  pl_cfg.debug = s && *s && strcmp(s, "0") != 0;
  s = secure_getenv("TOE_STRICT");
  pl_cfg.strict = s && *s && strcmp(s, "0") != 0;
  s = secure_getenv("TOE_CTL");
  if (s && *s)
    snprintf(pl_cfg.ctl, sizeof(pl_cfg.ctl), "%s", s);
  pl_cfg.linger_ms = 5000;
  s = secure_getenv("TOE_PRELOAD_LINGER_MS");
  if (s && *s)
    pl_cfg.linger_ms = atoi(s);

  load_wait_config();

  const char *rules = secure_getenv("TOE_OFFLOAD");
  const char *file = secure_getenv("TOE_OFFLOAD_FILE");
  if (rules && (!strcmp(rules, "none") || !strcmp(rules, "off") || !strcmp(rules, "0"))) {
    pl_cfg.disabled = true;
    return;
  }
  load_rules("built-in", RULES_ALWAYS);
  if ((!rules || !*rules) && (!file || !*file)) {
    load_rules("built-in", RULES_DEFAULT);
  } else {
    if (rules && *rules)
      load_rules("TOE_OFFLOAD", rules);
    if (file && *file)
      load_rules_file(file);
  }
  PL_DBG("%d offload rule(s)%s%s", pl_cfg.rules.n, pl_cfg.strict ? ", strict" : "",
         pl_cfg.ctl[0] ? "" : ", default control socket");
}

#define SYM(name) R.name = (__typeof__(R.name))dlsym(RTLD_NEXT, #name)

static void init_once(void)
{
  SYM(socket);
  SYM(bind);
  SYM(listen);
  SYM(accept);
  SYM(accept4);
  SYM(connect);
  SYM(send);
  SYM(sendto);
  SYM(sendmsg);
  SYM(sendmmsg);
  SYM(recv);
  SYM(recvfrom);
  SYM(recvmsg);
  SYM(recvmmsg);
  SYM(read);
  SYM(write);
  SYM(readv);
  SYM(writev);
  SYM(pread);
  SYM(close);
  SYM(close_range);
  SYM(shutdown);
  SYM(getsockopt);
  SYM(setsockopt);
  SYM(getsockname);
  SYM(getpeername);
  SYM(fcntl);
  SYM(fcntl64);
  SYM(ioctl);
  SYM(poll);
  SYM(ppoll);
  SYM(select);
  SYM(pselect);
  SYM(epoll_create);
  SYM(epoll_create1);
  SYM(epoll_ctl);
  SYM(epoll_wait);
  SYM(epoll_pwait);
  SYM(epoll_pwait2);
  SYM(dup);
  SYM(dup2);
  SYM(dup3);
  SYM(sendfile);
  SYM(splice);
  SYM(syscall);
  if (!R.fcntl64)
    R.fcntl64 = R.fcntl;
  g_pid = getpid();
  load_config();
  pthread_atfork(pl_atfork_prepare, pl_atfork_parent, pl_atfork_child);
  /* Registered last, so it runs first before a fork (prepare handlers run in reverse order):
   * every served epoll set goes back to the kernel, as the child shares the kernel sets. */
  pthread_atfork(pl_eps_fallback_all, NULL, pl_eps_fork_child);
  pl_inh_init(); /* sockets the image before an exec handed on */
  atomic_store_explicit(&pl_ready, true, memory_order_release);
}

void pl_init_slow(void)
{
  pthread_once(&g_once, init_once);
}

bool pl_foreign_child(void)
{
  return getpid() != g_pid;
}

/* ------------------------------------------------------------------------------------------ */

void pl_init_fork_child(void)
{
  g_pid = getpid();
}
