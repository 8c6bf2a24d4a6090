/*
 * Which program owns the application end of an intercepted flow, for the device's flow table
 * (toectl flows), and its uid for the limits. The proxy sees only addresses; the kernel maps them
 * to the socket's inode and uid, and the process's descriptor table maps the inode to the
 * process:
 *   NETLINK_SOCK_DIAG, one exact lookup (SOCK_DIAG_BY_FAMILY without NLM_F_DUMP): a hash lookup.
 *   /proc/net/tcp (udp) is only the fallback: reading it walks the kernel's established table,
 *   which holds every namespace's sockets (on this project's shared test machines 400,000 of
 *   them: 98% of the proxy's time went there, seconds per flow, in the event loop).
 *   /proc/PID/fd/N -> "socket:[INODE]".
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
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* From /proc/net/tcp (udp): the fallback when sock_diag is not there. Reading it walks the
 * host's whole established table (every namespace's sockets), so it is slow on a busy host. */
static int find_proc(enum px_proto proto, const struct sockaddr_in *app,
                     const struct sockaddr_in *dst, uid_t *uid, unsigned long *inode)
{
  FILE *f = fopen(proto == PX_TCP ? "/proc/net/tcp" : "/proc/net/udp", "re");
  if (!f)
    return -errno;
  char line[512];
  int rc = -ENOENT;
  if (!fgets(line, sizeof line, f)) { /* the heading */
    fclose(f);
    return rc;
  }
  while (rc == -ENOENT && fgets(line, sizeof line, f)) {
    unsigned la, lp, ra, rp, st;
    unsigned long u, ino;
    /* sl: local rem st tx:rx tr:when retrnsmt uid timeout inode */
    if (sscanf(line, " %*u: %x:%x %x:%x %x %*x:%*x %*x:%*x %*x %lu %*u %lu", &la, &lp, &ra, &rp,
               &st, &u, &ino) != 7)
      continue;
    if (lp != ntohs(app->sin_port))
      continue;
    bool match;
    if (proto == PX_TCP) /* the application's connected socket: local = its address, peer = dst */
      match =
          la == app->sin_addr.s_addr && ra == dst->sin_addr.s_addr && rp == ntohs(dst->sin_port);
    else /* a UDP socket may be unbound in address (0.0.0.0) and unconnected */
      match = (la == app->sin_addr.s_addr || la == 0) &&
              (ra == 0 || (ra == dst->sin_addr.s_addr && rp == ntohs(dst->sin_port)));
    if (match) {
      *uid = (uid_t)u;
      *inode = ino;
      rc = 0;
    }
  }
  fclose(f);
  return rc;
}

/* One exact lookup over NETLINK_SOCK_DIAG (a hash lookup in the kernel, not a walk): `local` and
 * `remote` as the request's source and destination. 0 with the answer, -ENOENT, or -errno. */
static int diag_one(int proto, const struct sockaddr_in *local, const struct sockaddr_in *remote,
                    const struct sockaddr_in *app, uid_t *uid, unsigned long *inode)
{
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0)
    return -errno;
  struct {
    struct nlmsghdr nlh;
    struct inet_diag_req_v2 r;
  } req;
  memset(&req, 0, sizeof req);
  req.nlh.nlmsg_len = sizeof req;
  req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.nlh.nlmsg_flags = NLM_F_REQUEST;
  req.r.sdiag_family = AF_INET;
  req.r.sdiag_protocol = (uint8_t)proto;
  req.r.idiag_states = ~0u;
  req.r.id.idiag_sport = local->sin_port;
  req.r.id.idiag_dport = remote->sin_port;
  req.r.id.idiag_src[0] = local->sin_addr.s_addr;
  req.r.id.idiag_dst[0] = remote->sin_addr.s_addr;
  req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  struct sockaddr_nl nl = {.nl_family = AF_NETLINK};
  int rc = -EIO;
  if (sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&nl, sizeof nl) < 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  union {
    struct nlmsghdr h;
    char b[8192];
  } buf;
  ssize_t n = recv(fd, &buf, sizeof buf, 0);
  close(fd);
  if (n < 0)
    return -errno;
  for (struct nlmsghdr *h = &buf.h; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
    if (h->nlmsg_type == NLMSG_ERROR) {
      const struct nlmsgerr *e = NLMSG_DATA(h);
      return h->nlmsg_len >= NLMSG_LENGTH(sizeof *e) && e->error ? e->error : -EIO;
    }
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
        h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
      continue;
    const struct inet_diag_msg *m = NLMSG_DATA(h);
    /* the answer names the socket's own local end: it must be the application's (inode 0: an
     * orphan, closed by its program; its uid still counts for the limits) */
    if (m->id.idiag_sport != app->sin_port ||
        (m->id.idiag_src[0] != app->sin_addr.s_addr && m->id.idiag_src[0] != 0))
      return -ENOENT;
    *uid = (uid_t)m->idiag_uid;
    *inode = m->idiag_inode;
    return 0;
  }
  return rc;
}

int px_sock_find(enum px_proto proto, const struct sockaddr_in *app, const struct sockaddr_in *dst,
                 uid_t *uid, unsigned long *inode)
{
  int rc;
  if (proto == PX_TCP) {
    rc = diag_one(IPPROTO_TCP, app, dst, app, uid, inode);
  } else {
    /* udp_diag looks a socket up as for a datagram arriving from (source) to (destination): the
     * application's socket receives from dst at app. */
    rc = diag_one(IPPROTO_UDP, dst, app, app, uid, inode);
    if (rc == -ENOENT)
      rc = diag_one(IPPROTO_UDP, app, dst, app, uid, inode);
  }
  if (rc == 0 || rc == -ENOENT)
    return rc;
  return find_proc(proto, app, dst, uid, inode); /* no sock_diag here */
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
  unsigned long inode = 0;
  uid_t uid;
  int r = px_sock_find(proto, app, dst, &uid, &inode);
  if (r < 0)
    return r;
  if (!inode)
    return -ENOENT; /* an orphan: its program closed it */
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
