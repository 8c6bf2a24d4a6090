/*
 * Which program owns the application end of an intercepted flow, for the device's flow table
 * (toectl flows). The proxy sees only addresses; the kernel's socket tables map them to an inode
 * and the process's descriptor table maps the inode to the process:
 *   /proc/net/tcp (udp): "sl local rem st ... inode" with addresses as the hex of the raw 32-bit
 *   network-order value and ports in host order; /proc/PID/fd/N -> "socket:[INODE]".
 * A full scan reads every process's descriptor table: on a busy host that takes milliseconds to
 * seconds per flow, in the event loop. So the process that owned the last flow is asked first
 * (`hint`: a client opening many connections, a browser, wrk, a download manager, costs one
 * scan, not one per connection), then the processes in the proxy's network namespace, and only
 * then the rest. It runs once, when the flow opens. A program that already exited, or whose
 * socket was passed on, gives -ENOENT: the flow is then untagged (the device shows the proxy
 * itself as its owner).
 */
#include "proxy/proxyd.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The inode of the kernel socket matching (app, dst), or 0. */
static unsigned long find_inode(enum px_proto proto, const struct sockaddr_in *app,
                                const struct sockaddr_in *dst)
{
  FILE *f = fopen(proto == PX_TCP ? "/proc/net/tcp" : "/proc/net/udp", "re");
  if (!f)
    return 0;
  char line[512];
  unsigned long found = 0;
  if (!fgets(line, sizeof line, f)) { /* the heading */
    fclose(f);
    return 0;
  }
  while (!found && fgets(line, sizeof line, f)) {
    unsigned la, lp, ra, rp, st;
    unsigned long inode;
    /* sl: local rem st tx:rx tr:when retrnsmt uid timeout inode */
    if (sscanf(line, " %*u: %x:%x %x:%x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &la, &lp, &ra, &rp,
               &st, &inode) != 6)
      continue;
    if (lp != ntohs(app->sin_port))
      continue;
    if (proto == PX_TCP) {
      /* the application's connected socket: local = its address, peer = the destination */
      if (la == app->sin_addr.s_addr && ra == dst->sin_addr.s_addr && rp == ntohs(dst->sin_port) &&
          inode)
        found = inode;
    } else {
      /* a UDP socket may be unbound in address (0.0.0.0) and unconnected */
      bool local_ok = la == app->sin_addr.s_addr || la == 0;
      bool peer_ok = ra == 0 || (ra == dst->sin_addr.s_addr && rp == ntohs(dst->sin_port));
      if (local_ok && peer_ok && inode)
        found = inode;
    }
  }
  fclose(f);
  return found;
}

static bool pid_has_inode(const char *pid, const char *want)
{
  char path[300];
  snprintf(path, sizeof path, "/proc/%.255s/fd", pid);
  DIR *d = opendir(path);
  if (!d)
    return false;
  bool hit = false;
  struct dirent *e;
  while (!hit && (e = readdir(d))) {
    if (e->d_name[0] == '.')
      continue;
    char link[600], target[64];
    snprintf(link, sizeof link, "%s/%s", path, e->d_name);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
      continue;
    target[n] = 0;
    hit = strcmp(target, want) == 0;
  }
  closedir(d);
  return hit;
}

static void read_comm(long pid, char comm[16])
{
  memset(comm, 0, 16);
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/comm", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, comm, 15);
    close(fd);
    if (n > 0)
      comm[strcspn(comm, "\n")] = 0;
  }
}

int px_owner_find(enum px_proto proto, const struct sockaddr_in *app, const struct sockaddr_in *dst,
                  pid_t *hint, pid_t *pid, char comm[16])
{
  unsigned long inode = find_inode(proto, app, dst);
  if (!inode)
    return -ENOENT;
  char want[64];
  snprintf(want, sizeof want, "socket:[%lu]", inode);
  if (*hint > 0) {
    char name[24];
    snprintf(name, sizeof name, "%ld", (long)*hint);
    if (pid_has_inode(name, want)) {
      *pid = *hint;
      read_comm(*hint, comm);
      return 0;
    }
  }
  /* Two passes: first the processes in the proxy's own network namespace (the application's
   * socket lives here, and its owner almost always too), then the rest (a socket passed to a
   * process elsewhere). A host may hold hundreds of thousands of descriptors in other
   * namespaces (containers, test harnesses): reading them all is seconds of work. */
  char self_ns[64] = "";
  ssize_t sn = readlink("/proc/self/ns/net", self_ns, sizeof self_ns - 1);
  self_ns[sn > 0 ? sn : 0] = 0;
  pid_t self = getpid();
  int rc = -ENOENT;
  for (int pass = 0; pass < 2 && rc == -ENOENT; pass++) {
    DIR *d = opendir("/proc");
    if (!d)
      return -errno;
    struct dirent *e;
    while ((e = readdir(d))) {
      char *end;
      long v = strtol(e->d_name, &end, 10);
      if (*end || v <= 0 || v == self || v == *hint)
        continue;
      if (self_ns[0]) {
        char path[64], ns[64];
        snprintf(path, sizeof path, "/proc/%ld/ns/net", v);
        ssize_t n = readlink(path, ns, sizeof ns - 1);
        ns[n > 0 ? n : 0] = 0;
        if ((strcmp(ns, self_ns) == 0) != (pass == 0))
          continue;
      } else if (pass == 1) {
        break; /* no namespace to tell them apart: the first pass saw everyone */
      }
      if (!pid_has_inode(e->d_name, want))
        continue;
      *pid = (pid_t)v;
      *hint = (pid_t)v;
      read_comm(v, comm);
      rc = 0;
      break;
    }
    closedir(d);
  }
  return rc;
}
