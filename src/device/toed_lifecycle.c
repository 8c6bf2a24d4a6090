/*
 * toed's start-up checks, signals, state file and --cleanup (toed_lifecycle.h).
 */
#define _GNU_SOURCE

#include "device/toed_lifecycle.h"

#include "device/ctl_server.h"
#include "device/port_guard.h"
#include "device/port_share.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Bits of /proc/self/status CapEff (linux/capability.h). */
#define CAP_NET_ADMIN_BIT 12
#define CAP_NET_RAW_BIT 13

static unsigned long long cap_eff(void)
{
  FILE *f = fopen("/proc/self/status", "re");
  if (!f)
    return 0;
  char line[256];
  unsigned long long caps = 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "CapEff:", 7) == 0) {
      caps = strtoull(line + 7, NULL, 16);
      break;
    }
  fclose(f);
  return caps;
}

static bool group_exists(const char *g)
{
  char *end;
  errno = 0;
  unsigned long v = strtoul(g, &end, 10);
  if (*g && !*end && !errno)
    return v < (unsigned long)(gid_t)-1;
  return getgrnam(g) != NULL;
}

int toed_check_startup(const struct toed_args *a, char *err, size_t errlen)
{
  unsigned long long caps = cap_eff();
  bool admin = (caps >> CAP_NET_ADMIN_BIT) & 1u, raw = (caps >> CAP_NET_RAW_BIT) & 1u;
  if (!admin || !raw) {
    snprintf(err, errlen,
             "needs root, or CAP_NET_ADMIN and CAP_NET_RAW (it has%s%s%s): it takes the port with "
             "a packet socket and nftables; run it as root (sudo toed ...)",
             admin ? " CAP_NET_ADMIN" : "", raw ? " CAP_NET_RAW" : "",
             admin || raw ? " only" : " neither");
    return -1;
  }
  if (!a->ctl_off && a->ctl_group && !group_exists(a->ctl_group)) {
    snprintf(err, errlen,
             "--ctl-group %s: no such group (create it with 'groupadd %s', or name an existing "
             "group)",
             a->ctl_group, a->ctl_group);
    return -1;
  }
  if (!a->ctl_off && a->ctl_path) {
    char copy[512];
    snprintf(copy, sizeof copy, "%s", a->ctl_path);
    const char *dir = dirname(copy);
    struct stat sb;
    if (stat(dir, &sb) < 0) {
      snprintf(err, errlen,
               "--ctl %s: the directory %s does not exist (create it first: mkdir -p %s)",
               a->ctl_path, dir, dir);
      return -1;
    }
    if (!S_ISDIR(sb.st_mode)) {
      snprintf(err, errlen, "--ctl %s: %s is not a directory", a->ctl_path, dir);
      return -1;
    }
  }
  return 0;
}

uint64_t toed_nofile_need(const struct toed_args *a)
{
  uint64_t n = 64; /* stdio, epoll, timer, signalfd, packet socket, pcap, nft pipes, TAP */
  n += 3ull * ((uint64_t)a->max_clients + 16u); /* control socket, kick, notify per client */
  if (a->host_if)
    n += TOED_PORT_SHARE_MAX; /* a shadow socket per explicit bind */
  return n;
}

int toed_raise_nofile(uint64_t need, char *warn, size_t warnlen)
{
  warn[0] = 0;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
    return -1;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need)
    return 0;
  struct rlimit want = rl;
  want.rlim_cur = need;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
    want.rlim_max = need; /* root (CAP_SYS_RESOURCE) may raise the hard limit too */
  if (setrlimit(RLIMIT_NOFILE, &want) == 0)
    return 0;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max > rl.rlim_cur) {
    want.rlim_cur = want.rlim_max = rl.rlim_max; /* as far as the hard limit goes */
    setrlimit(RLIMIT_NOFILE, &want);
  }
  getrlimit(RLIMIT_NOFILE, &rl);
  snprintf(warn, warnlen,
           "its tables need %llu descriptors but RLIMIT_NOFILE stays at %llu (raise it: ulimit -n "
           "%llu); clients beyond it wait for a free descriptor",
           (unsigned long long)need, (unsigned long long)rl.rlim_cur, (unsigned long long)need);
  return -1;
}

/* ---- signals --------------------------------------------------------------------------------- */

static const int stop_signals[] = {
    SIGHUP,  SIGINT,  SIGQUIT, SIGTERM, SIGUSR2, SIGALRM,   SIGVTALRM,
    SIGPROF, SIGXCPU, SIGXFSZ, SIGIO,   SIGPWR,  SIGSTKFLT,
};

void toed_signals_block(sigset_t *mask)
{
  sigemptyset(mask);
  for (size_t i = 0; i < sizeof stop_signals / sizeof stop_signals[0]; i++)
    sigaddset(mask, stop_signals[i]);
  sigaddset(mask, SIGUSR1);
  for (int s = SIGRTMIN; s <= SIGRTMAX; s++)
    sigaddset(mask, s);
  for (int s = 1; s < NSIG; s++)
    if (sigismember(mask, s) == 1)
      signal(s, SIG_DFL);
  sigprocmask(SIG_BLOCK, mask, NULL);
}

const char *toed_signal_name(int sig, char *buf, size_t len)
{
  if (sig >= SIGRTMIN && sig <= SIGRTMAX) {
    snprintf(buf, len, "SIGRTMIN+%d", sig - SIGRTMIN);
    return buf;
  }
  const char *abbrev = sigabbrev_np(sig);
  snprintf(buf, len, "SIG%s", abbrev ? abbrev : "?");
  return buf;
}

/* ---- liveness and state ---------------------------------------------------------------------- */

bool toed_pid_alive(pid_t pid)
{
  if (pid <= 0)
    return false;
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f)
    return false;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  /* "PID (COMM) S ...": comm may hold spaces and parentheses; the state follows the last ')'. */
  char *open = strchr(buf, '('), *close = strrchr(buf, ')');
  if (!open || !close || close < open || close[1] != ' ')
    return false;
  char state = close[2];
  if (state == 'Z' || state == 'X' || state == 'x')
    return false; /* a zombie holds nothing: its descriptors, sockets and memory are gone */
  return strncmp(open + 1, "toed", 4) == 0;
}

unsigned long toed_netns_id(void)
{
  struct stat sb;
  return stat("/proc/self/ns/net", &sb) == 0 ? (unsigned long)sb.st_ino : 0;
}

static void state_path(char *buf, size_t len, const char *ifname)
{
  snprintf(buf, len, "%s/toed-%lu-%s", TOED_STATE_DIR, toed_netns_id(), ifname);
}

int toed_state_write(const char *ifname, const char *ctl_path)
{
  mkdir("/run/toekit", 0755);
  mkdir(TOED_STATE_DIR, 0755);
  char path[256];
  state_path(path, sizeof path, ifname);
  FILE *f = fopen(path, "we");
  if (!f)
    return -1;
  fprintf(f, "pid %ld\nctl %s\n", (long)getpid(), ctl_path ? ctl_path : "");
  return fclose(f) == 0 ? 0 : -1;
}

/* Reads a state file: its pid (0 if none) and control socket path ("" if none). */
static long state_read(const char *ifname, char *ctl, size_t ctllen)
{
  char path[256], line[600];
  state_path(path, sizeof path, ifname);
  ctl[0] = 0;
  FILE *f = fopen(path, "re");
  if (!f)
    return 0;
  long pid = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (strncmp(line, "pid ", 4) == 0)
      pid = strtol(line + 4, NULL, 10);
    else if (strncmp(line, "ctl ", 4) == 0 && snprintf(ctl, ctllen, "%s", line + 4) >= (int)ctllen)
      ctl[0] = 0; /* a path that does not fit is not the one toed wrote */
  }
  fclose(f);
  return pid;
}

void toed_state_remove(const char *ifname)
{
  char ctl[512];
  if (state_read(ifname, ctl, sizeof ctl) == (long)getpid()) {
    char path[256];
    state_path(path, sizeof path, ifname);
    unlink(path);
  }
}

/* Removes a control socket file nobody answers on. Returns 1 if removed, 0 if not. */
static int remove_dead_socket(const char *path)
{
  struct stat sb;
  if (!path[0] || lstat(path, &sb) < 0 || !S_ISSOCK(sb.st_mode) ||
      strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
    return 0;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path));
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  int e = errno;
  close(fd);
  if (rc == 0 || e != ECONNREFUSED)
    return 0; /* someone serves it, or we cannot tell */
  return unlink(path) == 0;
}

int toed_cleanup_main(const char *ifname)
{
  char ctl[512];
  long pid = state_read(ifname, ctl, sizeof ctl);
  if (pid > 0 && toed_pid_alive((pid_t)pid)) {
    fprintf(stderr,
            "toed: --cleanup %s: toed (pid %ld) is running on it; stop it instead "
            "(kill -TERM %ld)\n",
            ifname, pid, pid);
    return 1;
  }
  int status = 0, done = 0;
  char err[256];
  int rc = toed_port_guard_cleanup(ifname, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "toed: --cleanup %s: %s\n", ifname, err);
    if (strstr(err, "is running"))
      return 1;
    status = 1;
  } else if (rc > 0) {
    printf("toed: removed the nftables guard table of %s\n", ifname);
    done++;
  }
  char report[1024];
  rc = toed_port_share_cleanup(report, sizeof report);
  if (rc < 0) {
    fprintf(stderr, "toed: --cleanup: cannot restore net.ipv4.ip_local_reserved_ports: %s\n",
            strerror(errno));
    status = 1;
  } else if (rc > 0) {
    printf("toed: %s", report);
    done++;
  }
  char def[160];
  snprintf(def, sizeof def, "%s/%s.sock", TOED_CTL_DEFAULT_DIR, ifname);
  for (int i = 0; i < 2; i++) {
    const char *p = i == 0 ? ctl : def;
    if (remove_dead_socket(p)) {
      printf("toed: removed the control socket file %s\n", p);
      done++;
    }
  }
  if (pid > 0) {
    char path[256];
    state_path(path, sizeof path, ifname);
    unlink(path);
  }
  if (!done && !status)
    printf("toed: nothing of a toed on %s was left to clean up\n", ifname);
  return status;
}
