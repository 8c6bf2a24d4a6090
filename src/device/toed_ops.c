/*
 * toed's operational options (toed_ops.h): --version, --config FILE, --log-level, and sd_notify.
 *
 * sd_notify's protocol is one datagram of "KEY=VALUE\n" lines on the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or '@' for the abstract namespace); written here by hand so toed needs
 * no libsystemd.
 *
 * The log filter: toed's messages are written on standard error from many places that carry no
 * level. With --log-level, standard error becomes a pipe to a small child process that stamps
 * each line with the UTC time and a level and drops the lines below the chosen level. The level
 * of a line is read from its text: "warning" lines are warnings, lines that say something failed
 * are errors, a session's start and end ("ctl: session ...") are debug, the rest info. The child
 * reads until every writer is gone, so nothing toed writes before it exits (its summary, a
 * sanitizer report) is lost.
 */
#define _GNU_SOURCE /* getline, strdup, gmtime_r, clock_gettime */

#include "device/toed_ops.h"

#include "device/toed_args.h"
#include "tools/common/toe_cli.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { LVL_ERROR, LVL_WARNING, LVL_INFO, LVL_DEBUG };
static const char *const level_names[] = {"error", "warning", "info", "debug"};

static int level_parse(const char *s)
{
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0)
      return i;
  if (strcmp(s, "warn") == 0)
    return LVL_WARNING;
  return -1;
}

static int line_level(const char *l)
{
  if (strstr(l, "warning"))
    return LVL_WARNING;
  if (strstr(l, "ctl: session ") || strstr(l, "ctl: client "))
    return LVL_DEBUG;
  if (strstr(l, "cannot ") || strstr(l, "could not") || strstr(l, "failed") || strstr(l, "error") ||
      strstr(l, "Sanitizer") || strstr(l, "runtime error"))
    return LVL_ERROR;
  return LVL_INFO;
}

/* The child: stdin is the pipe, stdout the original standard error. */
static void log_filter(int level)
{
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, stdin)) > 0) {
    if (line[n - 1] == '\n')
      line[--n] = 0;
    int lv = line_level(line);
    if (lv > level)
      continue;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    printf("%s.%03ldZ %-7s %s\n", stamp, ts.tv_nsec / 1000000, level_names[lv], line);
    fflush(stdout);
  }
  free(line);
  _exit(0);
}

/* Puts the filter between toed and its standard error. Returns 0 or -1 (message printed). */
static int log_start(int level)
{
  int p[2];
  if (pipe(p) < 0) {
    fprintf(stderr, "toed: --log-level: pipe: %s\n", strerror(errno));
    return -1;
  }
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "toed: --log-level: fork: %s\n", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    /* Ignore the signals meant for toed (a terminal's Ctrl-C reaches the process group): the
     * filter ends when toed's last write end closes. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    close(p[1]);
    if (dup2(p[0], STDIN_FILENO) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
      _exit(1);
    close(p[0]);
    prctl(PR_SET_NAME, "toed-log", 0, 0, 0);
    log_filter(level);
  }
  close(p[0]);
  if (dup2(p[1], STDERR_FILENO) < 0)
    return -1;
  close(p[1]);
  setvbuf(stderr, NULL, _IOLBF, 0);
  return 0;
}

/* ---- --config FILE ------------------------------------------------------------------------- */

struct argv_buf {
  char **v;
  int n, cap;
};

/* The command line toed runs with (config settings and their strings included) lives as long as
 * the process: kept here, so it stays reachable (no leak report at exit). */
static struct argv_buf kept, kept_rest;
static struct argv_buf kept_owned; /* the strings of the config file's settings (ours to free) */
static char *kept_level;

/* Forgets what an earlier call kept: each call builds its command line afresh (a second call
 * used to append to the first one's and hand back its stale words). */
static void kept_reset(void)
{
  for (int i = 0; i < kept_owned.n; i++)
    free(kept_owned.v[i]);
  kept_owned.n = 0;
  free(kept_level);
  kept_level = NULL;
  kept.n = 0;
  kept_rest.n = 0;
}

static int argv_add(struct argv_buf *a, char *s)
{
  if (a->n + 2 > a->cap) {
    int cap = a->cap ? a->cap * 2 : 32;
    char **v = realloc(a->v, (size_t)cap * sizeof(*v));
    if (!v)
      return -1;
    a->v = v;
    a->cap = cap;
  }
  a->v[a->n++] = s;
  a->v[a->n] = NULL;
  return 0;
}

/* True if the command line names option `key` (as --key or --key=...). */
static bool cmdline_has(int argc, char **argv, const char *key)
{
  size_t k = strlen(key);
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], "--", 2) == 0 && strncmp(argv[i] + 2, key, k) == 0 &&
        (argv[i][2 + k] == 0 || argv[i][2 + k] == '='))
      return true;
  return false;
}

/* Appends the file's settings as "--key value" to out. *log_level gets a log-level line.
 * Returns 0, or -1 with one line printed. */
static int config_read(const char *path, int argc, char **argv, struct argv_buf *out,
                       const char **log_level)
{
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "toed: --config %s: %s\n", path, strerror(errno));
    return -1;
  }
  char *line = NULL;
  size_t cap = 0;
  int lineno = 0, rc = 0;
  while (rc == 0 && getline(&line, &cap, f) > 0) {
    lineno++;
    char *s = line, *hash = strchr(s, '#');
    if (hash)
      *hash = 0;
    while (*s == ' ' || *s == '\t')
      s++;
    size_t len = strlen(s);
    while (len &&
           (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' ' || s[len - 1] == '\t'))
      s[--len] = 0;
    if (!*s)
      continue;
    char *key = s, *val = s + strcspn(s, " \t=");
    if (*val) {
      *val++ = 0;
      val += strspn(val, " \t=");
    }
    bool key_ok = *key != 0;
    for (const char *c = key; *c; c++)
      key_ok = key_ok && ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-');
    if (!key_ok || strcmp(key, "config") == 0 || strcmp(key, "version") == 0 ||
        strcmp(key, "help") == 0) {
      fprintf(stderr,
              "toed: %s:%d: '%s' is not a setting (the keys of toed's flags: addr, "
              "gateway, mtu, ...; see toed --help)\n",
              path, lineno, key);
      rc = -1;
      break;
    }
    if (strcmp(key, "log-level") == 0) {
      if (!*log_level)
        *log_level = kept_level = strdup(val);
      continue;
    }
    if (strcmp(key, "service") != 0 && cmdline_has(argc, argv, key))
      continue; /* the command line wins */
    /* Checked now by toed's own parser, so a mistake names its file and line. */
    char opt_buf[64], err[256];
    snprintf(opt_buf, sizeof opt_buf, "--%s", key);
    char *probe[8] = {"toed", opt_buf};
    int np = 2;
    if (*val)
      probe[np++] = val;
    if (strcmp(key, "wire") != 0) {
      probe[np++] = "--wire";
      probe[np++] = "probe0";
    }
    if (strcmp(key, "addr") != 0) {
      probe[np++] = "--addr";
      probe[np++] = "198.18.0.1/24";
    }
    struct toed_args tmp;
    if (toed_args_parse(&tmp, np, probe, err, sizeof err) < 0) {
      fprintf(stderr, "toed: %s:%d: %s\n", path, lineno, err);
      rc = -1;
      break;
    }
    char *opt = malloc(strlen(key) + 3), *v = *val ? strdup(val) : NULL;
    if (opt && argv_add(&kept_owned, opt) < 0) {
      free(opt);
      opt = NULL;
    }
    if (v && argv_add(&kept_owned, v) < 0) {
      free(v);
      v = NULL;
    }
    if (!opt || (*val && !v) || (sprintf(opt, "--%s", key), argv_add(out, opt) < 0) ||
        (v && argv_add(out, v) < 0)) {
      fprintf(stderr, "toed: --config %s: out of memory\n", path);
      rc = -1;
    }
  }
  free(line);
  fclose(f);
  return rc;
}

int toed_ops_early(int *argc, char ***argv)
{
  int ac = *argc;
  char **av = *argv;
  const char *config = NULL, *log_level = NULL;
  struct argv_buf *rest = &kept_rest, *out = &kept;
  kept_reset();
  if (argv_add(out, av[0]) < 0)
    return 1;
  for (int i = 1; i < ac; i++) {
    const char *a = av[i];
    if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0)
      return toe_cli_version("toed", NULL);
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
      return -1; /* toed_args prints the usage */
    const char **slot = strncmp(a, "--config", 8) == 0 && (a[8] == 0 || a[8] == '=') ? &config
                        : strncmp(a, "--log-level", 11) == 0 && (a[11] == 0 || a[11] == '=')
                            ? &log_level
                            : NULL;
    if (!slot) {
      if (argv_add(rest, av[i]) < 0)
        return 1;
      continue;
    }
    const char *eq = strchr(a, '=');
    const char *v = eq ? eq + 1 : i + 1 < ac ? av[++i] : NULL;
    if (!v || !*v)
      return toe_cli_usage_error("toed", "%s needs a value", eq ? "--" : a);
    if (*slot)
      return toe_cli_usage_error("toed", "%.*s given twice", eq ? (int)(eq - a) : (int)strlen(a),
                                 a);
    *slot = v;
  }
  if (config && config_read(config, ac, av, out, &log_level) < 0)
    return 2;
  for (int i = 0; i < rest->n; i++)
    if (argv_add(out, rest->v[i]) < 0)
      return 1;
  if (log_level) {
    int lv = level_parse(log_level);
    if (lv < 0)
      return toe_cli_usage_error("toed",
                                 "--log-level %s: not a level (error, warning, info, "
                                 "debug)",
                                 log_level);
    if (log_start(lv) < 0)
      return 1;
  }
  *argc = out->n;
  *argv = out->v;
  return -1;
}

/* ---- sd_notify ---------------------------------------------------------------------------- */

static void notify(const char *msg)
{
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || !*path)
    return;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t len = strlen(path);
  if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
    return;
  memcpy(sa.sun_path, path, len);
  if (path[0] == '@')
    sa.sun_path[0] = 0; /* abstract namespace */
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return;
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
  if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
    fprintf(stderr, "toed: warning: cannot notify the service manager at %s: %s\n", path,
            strerror(errno));
  close(fd);
}

void toed_ops_ready(const char *status)
{
  char msg[512];
  snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s\nMAINPID=%ld\n", status ? status : "running",
           (long)getpid());
  notify(msg);
}

void toed_ops_stopping(void)
{
  notify("STOPPING=1\n");
}

/* ---- identity (STATS DEVICE) ------------------------------------------------------------- */

static void ipv4_str(uint32_t a, char *out, size_t len)
{
  snprintf(out, len, "%u.%u.%u.%u", (unsigned)(a >> 24), (unsigned)(a >> 16 & 255),
           (unsigned)(a >> 8 & 255), (unsigned)(a & 255));
}

static struct timespec started;

unsigned long long toed_ops_uptime_ms(void)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (unsigned long long)(now.tv_sec - started.tv_sec) * 1000ull +
         (unsigned long long)((now.tv_nsec - started.tv_nsec) / 1000000);
}

void toed_ops_identity(char *buf, size_t len, const char *wire, const char *driver,
                       const uint8_t mac[6], uint32_t addr, unsigned prefix, uint32_t gateway,
                       unsigned mtu, unsigned vlan, const char *host_if)
{
  char a[16], g[16] = "none", v[16] = "none";
  clock_gettime(CLOCK_MONOTONIC, &started);
  ipv4_str(addr, a, sizeof a);
  if (gateway)
    ipv4_str(gateway, g, sizeof g);
  if (vlan)
    snprintf(v, sizeof v, "%u", vlan);
  snprintf(buf, len,
           "version %s\nabi %u.%u\nwire %s\ndriver %s\nmac %02x:%02x:%02x:%02x:%02x:%02x\n"
           "addr %s/%u\ngateway %s\nmtu %u\nvlan %s\nhost_if %s\npid %ld\n",
           TOE_VERSION, (unsigned)TOE_ABI_MAJOR, (unsigned)TOE_ABI_MINOR, wire, driver, mac[0],
           mac[1], mac[2], mac[3], mac[4], mac[5], a, prefix, g, mtu, v, host_if ? host_if : "none",
           (long)getpid());
}
