/*
 * toed's control socket: accepting host processes, the hello/reply handshake with the region and
 * doorbells passed over SCM_RIGHTS, and the list of sessions driven from toed's event loop
 * (docs/transport.md "Session setup on Linux", "Death").
 *
 * Nothing a client sends on the control socket is trusted: the hello is read into a zeroed
 * buffer and checked by toe_abi_negotiate(); descriptors a client tries to pass are closed at
 * once; identity comes from SO_PEERCRED. A client that says nothing is dropped after 2 s, so
 * silent connections cannot hold the handshake slots.
 */
#define _GNU_SOURCE

#include "device/ctl_server.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HELLO_TIMEOUT TOE_SEC(2)
#define HANDSHAKE_SLOTS 16u /* connections in the handshake beyond --max-clients sessions */
#define ACCEPT_BUDGET 64u   /* connections accepted per wakeup */
#define HELLO_BUF 4096u     /* a longer hello (a later minor) is read whole up to this */
#define MAX_PASSED_FDS 16u  /* descriptors a hostile client may try to pass: all closed */
#define LOG_SESSIONS 32u    /* session start/end lines logged; then only every 1000th */
#define ACCEPT_BACKOFF TOE_MSEC(100) /* a failed accept (no descriptors) is retried after this */

static void ctl_log(struct toed_ctl *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ctl_log(struct toed_ctl *c, const char *fmt, ...)
{
  (void)c;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(stderr, "toed: ctl: %s\n", buf);
}

static bool log_session(const struct toed_ctl *c)
{
  uint64_t n = c->dev.stats.sessions;
  return !c->cfg.quiet && (n <= LOG_SESSIONS || n % 1000 == 0);
}

/* What one client may get. The ABI allows up to 1 GiB per region; toed serves many clients, so
 * it keeps each to 64 MiB (the default geometry takes 17 MiB) and all of them together to
 * CTL_REGIONS_MAX, and the tables to sizes its loop handles in a round. */
#define CTL_REGION_MAX (64ull << 20)
#define CTL_REGIONS_MAX (4ull << 30)
static void device_limits(struct toe_abi_limits *lim, bool privileged)
{
  toe_abi_limits_default(lim);
  lim->sq_max = 4096;
  lim->cq_max = 16384;
  lim->buf_count_max = 16384;
  lim->buf_size_max = TOE_ABI_BUF_SIZE_MAX;
  lim->handles_max = 4096;
  lim->region_max = CTL_REGION_MAX;
  /* The flow table shows every client's connections with their pids: only for root or toed's
   * own user. Sharing and the origin (1.2) are for everyone: they concern the client itself. */
  lim->caps = privileged
                  ? TOE_ABI_CAPS_1_7
                  : (TOE_ABI_CAPS_1_0 | TOE_ABI_CAP_SHARE | TOE_ABI_CAP_ORIGIN |
                     TOE_ABI_CAP_POSIX_BELLS | TOE_ABI_CAP_DEVICE | /* 1.3: identity is no secret */
                     TOE_ABI_CAP_RXMETA |     /* 1.5: a socket's own datagrams */
                     TOE_ABI_CAP_LARGE_BUFS | /* 1.6: the client's own geometry */
                     TOE_ABI_CAP_IPV6);       /* 1.7: AF_INET6 sockets */
}

/*
 * Closes descriptors a client passed with a message (nothing it sends carries any). Called after
 * every recvmsg that returned, whatever it returned: on a SOCK_SEQPACKET socket a zero-length
 * message with SCM_RIGHTS reads as 0 bytes (like the end of the stream) and still installs the
 * descriptors in toed. Descriptors that did not fit the control buffer (MSG_CTRUNC) were never
 * installed: the kernel drops those itself.
 */
static void close_passed_fds(struct msghdr *msg)
{
  if (msg->msg_controllen < sizeof(struct cmsghdr))
    return; /* recvmsg failed or received no control data */
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
      continue;
    size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < n; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
      if (fd >= 0)
        close(fd);
    }
  }
}

/* Sends the reply, with its rep->nfds descriptors when `fds` is given. Returns 0 or -errno. */
static int send_reply(int fd, const struct toe_abi_hello_reply *rep, const int *fds)
{
  struct iovec iov = {.iov_base = (void *)rep, .iov_len = sizeof(*rep)};
  union {
    char buf[CMSG_SPACE(sizeof(int) * TOE_ABI_FD_MAX)];
    struct cmsghdr align;
  } cbuf;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (fds) {
    memset(&cbuf, 0, sizeof cbuf);
    msg.msg_control = cbuf.buf;
    msg.msg_controllen = sizeof cbuf.buf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    size_t nfds = rep->nfds <= TOE_ABI_FD_MAX ? rep->nfds : TOE_ABI_FD_COUNT;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
  }
  ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n == (ssize_t)sizeof(*rep))
    return 0;
  return n < 0 ? -errno : -EIO;
}

/* A refusal: status, no capabilities, no layout, no descriptors. */
static void refusal(struct toe_abi_hello_reply *rep, int status)
{
  memset(rep, 0, sizeof(*rep));
  rep->magic = TOE_ABI_REPLY_MAGIC;
  rep->abi_major = TOE_ABI_MAJOR;
  rep->abi_minor = TOE_ABI_MINOR;
  rep->size = sizeof(*rep);
  rep->status = status;
}

/* The namespace's net.ipv4.ip_unprivileged_port_start (the kernel's default 1024 if unreadable). */
static uint16_t unprivileged_port_start(void)
{
  FILE *f = fopen("/proc/sys/net/ipv4/ip_unprivileged_port_start", "re");
  int v = 1024;
  if (f) {
    if (fscanf(f, "%d", &v) != 1)
      v = 1024;
    fclose(f);
  }
  return v < 0 ? 0 : v > 65535 ? 65535 : (uint16_t)v;
}

/* Whether process `pid` has CAP_NET_BIND_SERVICE in its effective set (/proc/PID/status). The
 * pid is SO_PEERCRED's, taken while its connection is open; unreadable means no. */
static bool has_net_bind_service(pid_t pid)
{
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f)
    return false;
  bool yes = false;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "CapEff:", 7) == 0) {
      unsigned long long caps = strtoull(line + 7, NULL, 16);
      yes = (caps >> 10) & 1u; /* CAP_NET_BIND_SERVICE = 10 (linux/capability.h) */
      break;
    }
  }
  fclose(f);
  return yes;
}

/* The process name for toectl: the hello's, printable, else /proc/PID/comm. */
static void client_comm(struct ctl_client *cl, const char *hello_comm)
{
  char raw[17];
  memset(raw, 0, sizeof raw);
  memcpy(raw, hello_comm, 16);
  if (!raw[0]) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/comm", (int)cl->pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t n = read(fd, raw, 16);
      close(fd);
      if (n > 0 && raw[n - 1] == '\n')
        raw[n - 1] = 0;
    }
  }
  memset(cl->comm, 0, sizeof cl->comm);
  for (size_t i = 0; i < sizeof cl->comm - 1 && raw[i]; i++)
    cl->comm[i] = isprint((unsigned char)raw[i]) ? raw[i] : '?';
}

static struct ctl_client *slot_of(struct toed_ctl *c, uint64_t tag)
{
  uint32_t slot = ((uint32_t)tag & ~CTL_TAG_BASE) >> 2;
  uint32_t gen = (uint32_t)(tag >> 32);
  if (slot >= c->nslots)
    return NULL;
  struct ctl_client *cl = &c->clients[slot];
  return cl->state != CTL_CS_FREE && cl->gen == gen ? cl : NULL;
}

/* Ends a connection: its session (if any), then its control socket, which the host sees close. */
static void drop(struct toed_ctl *c, struct ctl_client *cl, int status, enum ctl_end_kind kind,
                 toe_time_t now)
{
  if (cl->state == CTL_CS_ACTIVE) {
    cl->now = now;
    size_t rs = cl->region_size;
    ctl_quota_give(&c->dev, cl->uid, CTL_Q_SESSION);
    ctl_session_end(cl, status, kind);
    if (c->sessions)
      c->sessions--;
    c->region_bytes -= rs <= c->region_bytes ? rs : c->region_bytes;
    if (log_session(c) || kind == CTL_END_ABUSE || kind == CTL_END_PROTOCOL)
      ctl_log(c, "session %u (pid %d, %s) ended: %s", cl->client_id, (int)cl->pid, cl->comm,
              kind == CTL_END_CLIENT     ? "the client closed it"
              : kind == CTL_END_ABUSE    ? "too many invalid descriptors"
              : kind == CTL_END_PROTOCOL ? "protocol violation"
              : kind == CTL_END_SHUTDOWN ? "toed stops"
                                         : "set-up failed");
  }
  if (cl->fd >= 0) {
    epoll_ctl(c->dev.epfd, EPOLL_CTL_DEL, cl->fd, NULL);
    close(cl->fd);
  }
  cl->fd = cl->kick = cl->notify = -1;
  cl->state = CTL_CS_FREE;
  cl->ending = false;
  cl->end_status = 0;
}

static struct ctl_client *free_slot(struct toed_ctl *c)
{
  for (uint32_t i = 0; i < c->nslots; i++)
    if (c->clients[i].state == CTL_CS_FREE)
      return &c->clients[i];
  return NULL;
}

/*
 * Out of descriptors or memory: the connection stays in the backlog and the listening socket
 * stays readable, so a level-triggered epoll would wake toed at once, for ever (100 % CPU). The
 * socket leaves the epoll set instead and comes back after ACCEPT_BACKOFF (toed_ctl_run).
 */
static void listen_pause(struct toed_ctl *c, toe_time_t now)
{
  if (c->listen_paused || c->lfd < 0)
    return;
  epoll_ctl(c->dev.epfd, EPOLL_CTL_DEL, c->lfd, NULL);
  c->listen_paused = true;
  c->listen_resume = now + ACCEPT_BACKOFF;
  if (c->accept_backoffs++ < LOG_SESSIONS)
    ctl_log(c, "cannot accept a client: %s; trying again in %llu ms", strerror(errno),
            (unsigned long long)(ACCEPT_BACKOFF / TOE_MSEC(1)));
}

static void listen_resume(struct toed_ctl *c, toe_time_t now)
{
  if (!c->listen_paused || now < c->listen_resume)
    return;
  c->listen_paused = false;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ctl_tag(0, 0, CTL_TAG_LISTEN)};
  if (c->lfd >= 0 && epoll_ctl(c->dev.epfd, EPOLL_CTL_ADD, c->lfd, &ev) < 0)
    listen_pause(c, now); /* out of memory for epoll too: later */
}

static void on_listen(struct toed_ctl *c, toe_time_t now)
{
  for (uint32_t n = 0; n < ACCEPT_BUDGET && c->lfd >= 0 && !c->listen_paused; n++) {
    int fd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        listen_pause(c, now);
      return; /* EAGAIN: nothing more */
    }
    c->dev.stats.connects++;
    struct ctl_client *cl = free_slot(c);
    struct ucred cr;
    socklen_t crl = sizeof cr;
    if (!cl || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0) {
      struct toe_abi_hello_reply rep;
      refusal(&rep, -TOE_EMFILE);
      send_reply(fd, &rep, NULL);
      c->dev.stats.refused_full++;
      close(fd);
      continue;
    }
    cl->gen++;
    cl->state = CTL_CS_HELLO;
    cl->fd = fd;
    cl->kick = cl->notify = -1;
    cl->pid = cr.pid;
    cl->uid = cr.uid;
    cl->gid = cr.gid;
    cl->since = now;
    cl->hello_deadline = now + HELLO_TIMEOUT;
    cl->end_status = 0;
    cl->ending = false;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                             .data.u64 = ctl_tag(cl->slot, cl->gen, CTL_TAG_CONTROL)};
    if (epoll_ctl(c->dev.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      cl->fd = -1;
      cl->state = CTL_CS_FREE;
    }
  }
}

static void on_hello(struct toed_ctl *c, struct ctl_client *cl, toe_time_t now)
{
  union {
    struct toe_abi_hello h;
    uint8_t b[HELLO_BUF];
  } buf;
  union {
    char b[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
    struct cmsghdr align;
  } cbuf;
  memset(&buf, 0, sizeof buf);
  struct iovec iov = {.iov_base = buf.b, .iov_len = sizeof buf.b};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf.b;
  msg.msg_controllen = sizeof cbuf.b;
  ssize_t n = recvmsg(cl->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  int e = errno;
  if (n >= 0)
    close_passed_fds(&msg);
  errno = e;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (n <= 0) {
    drop(c, cl, 0, CTL_END_CLIENT, now); /* gone before saying hello */
    return;
  }
  /* A truncated message cannot be a valid hello: its size field will not match. Nor can one
   * that came with more descriptors than fit (MSG_CTRUNC): a hello carries none. */
  size_t len = (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ? sizeof buf.b + 1 : (size_t)n;
  bool privileged = cl->uid == 0 || cl->uid == geteuid();
  struct toe_abi_limits lim;
  device_limits(&lim, privileged);
  uint32_t id = ++c->next_id;
  if (id == 0)
    id = ++c->next_id;
  struct toe_abi_hello_reply rep;
  int st = len > sizeof buf.b ? -TOE_EPROTO : toe_abi_negotiate(&buf.h, len, &lim, id, &rep);
  if (st < 0) {
    refusal(&rep, st);
    send_reply(cl->fd, &rep, NULL);
    c->dev.stats.hello_refused++;
    drop(c, cl, 0, CTL_END_CLIENT, now);
    return;
  }
  if (c->sessions >= c->cfg.max_clients || c->dev.stopping ||
      c->region_bytes + rep.layout.region_size > CTL_REGIONS_MAX) {
    refusal(&rep, c->dev.stopping                     ? -TOE_ESHUTDOWN
                  : c->sessions >= c->cfg.max_clients ? -TOE_EMFILE
                                                      : -TOE_ENOMEM);
    send_reply(cl->fd, &rep, NULL);
    c->dev.stats.refused_full++;
    drop(c, cl, 0, CTL_END_CLIENT, now);
    return;
  }
  client_comm(cl, buf.h.comm);
  /* Checked by toe_abi_negotiate (<= TOE_ABI_ORIGIN_MAX); meaningful only if the client offered
   * the capability, as every 1.2 client does (an older one sends 0 here: native). */
  cl->origin = (rep.caps & TOE_ABI_CAP_ORIGIN) ? (uint8_t)buf.h.origin : TOE_ABI_ORIGIN_NATIVE;
  /* The proxy origin lets a session tag its flows as other programs' (SO_OWNER_*): only root or
   * toed's own user may claim it, as only they may see every flow; others are refused. */
  if (cl->origin == TOE_ABI_ORIGIN_PROXY && !privileged) {
    refusal(&rep, -TOE_EPERM);
    send_reply(cl->fd, &rep, NULL);
    if (++c->dev.stats.hello_refused <= LOG_SESSIONS)
      ctl_log(c, "refused pid %d uid %d (%s): only root or toed's user may claim the proxy origin",
              (int)cl->pid, (int)cl->uid, cl->comm);
    drop(c, cl, 0, CTL_END_CLIENT, now);
    return;
  }
  cl->privileged = privileged;
  int q = ctl_quota_take(&c->dev, cl->uid, CTL_Q_SESSION, true); /* given back in drop() */
  if (q < 0) {
    refusal(&rep, q);
    send_reply(cl->fd, &rep, NULL);
    c->dev.stats.refused_full++;
    drop(c, cl, 0, CTL_END_CLIENT, now);
    return;
  }
  cl->priv_port_start = unprivileged_port_start();
  cl->bind_priv = cl->uid == 0 || has_net_bind_service(cl->pid);
  cl->client_id = id;
  int fds[TOE_ABI_FD_MAX];
  int rc = ctl_session_start(cl, &rep, fds, now);
  if (rc < 0) {
    ctl_quota_give(&c->dev, cl->uid, CTL_Q_SESSION);
    refusal(&rep, rc);
    send_reply(cl->fd, &rep, NULL);
    c->dev.stats.setup_errors++;
    drop(c, cl, 0, CTL_END_CLIENT, now);
    return;
  }
  cl->state = CTL_CS_ACTIVE;
  c->sessions++;
  c->region_bytes += cl->region_size;
  struct toed_ctl_stats *s = &c->dev.stats;
  s->sessions++;
  s->clients_attached++;
  if (s->clients_attached > s->clients_max)
    s->clients_max = s->clients_attached;
  rc = send_reply(cl->fd, &rep, fds);
  /* The mapping keeps the memory and the session its doorbells; the host has its own copies. */
  ctl_session_handed(cl, fds, rep.nfds);
  if (rc < 0) {
    drop(c, cl, rc, CTL_END_SETUP, now);
    return;
  }
  if (log_session(c))
    ctl_log(c,
            "session %u: pid %d uid %d (%s), sq %u cq %u, %u buffers of %u bytes, %u handles, "
            "caps 0x%llx",
            id, (int)cl->pid, (int)cl->uid, cl->comm, rep.layout.sq_entries, rep.layout.cq_entries,
            rep.layout.buf_count, rep.layout.buf_size, rep.layout.max_handles,
            (unsigned long long)rep.caps);
}

/* After the hello the control socket carries nothing: data is a violation, EOF the client's end. */
static void on_control(struct toed_ctl *c, struct ctl_client *cl, uint32_t events, toe_time_t now)
{
  if (cl->state == CTL_CS_HELLO) {
    on_hello(c, cl, now);
    return;
  }
  char b[64];
  union {
    char b[CMSG_SPACE(sizeof(int) * MAX_PASSED_FDS)];
    struct cmsghdr align;
  } cbuf;
  struct iovec iov = {.iov_base = b, .iov_len = sizeof b};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf.b;
  msg.msg_controllen = sizeof cbuf.b;
  ssize_t n = recvmsg(cl->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  int e = errno;
  if (n >= 0)
    close_passed_fds(&msg);
  errno = e;
  /* A message of any length, the empty one included (its descriptors are closed above), is a
   * violation: the end of the stream comes with EPOLLRDHUP/EPOLLHUP, a message without it. */
  if (n > 0) {
    drop(c, cl, -TOE_EPROTO, CTL_END_PROTOCOL, now);
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) &&
      !(events & (EPOLLHUP | EPOLLERR)))
    return;
  drop(c, cl, 0, CTL_END_CLIENT, now); /* the client closed it, exited or died */
}

/* ---- share tokens bound to a process ------------------------------------------------------ */

/* The default of toed_ctl_config.pidfd_open: the system call (ENOSYS before Linux 5.3). */
static int sys_pidfd_open(pid_t pid)
{
  return (int)syscall(SYS_pidfd_open, pid, 0);
}

toe_time_t ctl_token_watch(struct toed_ctl_dev *dev, struct ctl_token *t, toe_time_t now)
{
  /* A pidfd polls readable once its process has exited (zombie or reaped): in the epoll set it
   * wakes toed on the exit itself, so a restarted server finds its port free at once and no
   * timer looks at live processes. Closing the pidfd (token_free) removes it from the set. */
  struct epoll_event ev = {.events = EPOLLIN,
                           .data.u64 = ctl_tag((uint32_t)(t - dev->tokens), 0, CTL_TAG_PIDFD)};
  if (t->pidfd >= 0 && epoll_ctl(dev->epfd, EPOLL_CTL_ADD, t->pidfd, &ev) == 0)
    return TOE_TIME_NEVER;
  /* Without pidfd_open (Linux < 5.3) or with epoll out of memory: looked at every
   * CTL_TOKEN_PID_CHECK_NS (ctl_tokens_expire) and before a bind is refused (ctl_tokens_reap). */
  return now + CTL_TOKEN_PID_CHECK_NS;
}

bool ctl_pid_ended(pid_t pid)
{
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f)
    return true;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *close_paren = strrchr(buf, ')'); /* the command may hold spaces and parentheses */
  if (!close_paren || close_paren[1] != ' ')
    return false; /* unreadable: kept (freed at the latest when toed stops) */
  char state = close_paren[2];
  return state == 'Z' || state == 'X' || state == 'x';
}

/* A watched pidfd became readable: its process ended. The engine is brought to now first, as
 * freeing the token may close a listener. Every bound token whose process ended goes. */
static void on_pidfd(struct toed_ctl *c, toe_time_t now)
{
  if (toe_stack_now(c->dev.st) < now)
    toe_stack_poll(c->dev.st, now);
  c->dev.stats.share_pidfd_exits += (uint64_t)ctl_tokens_reap(&c->dev);
}

void toed_ctl_on_epoll(struct toed_ctl *c, uint64_t tag, uint32_t events, toe_time_t now)
{
  if (!c->open)
    return;
  uint32_t kind = (uint32_t)tag & 3u;
  if (kind == CTL_TAG_LISTEN) {
    on_listen(c, now);
    return;
  }
  if (kind == CTL_TAG_PIDFD) {
    on_pidfd(c, now);
    return;
  }
  struct ctl_client *cl = slot_of(c, tag);
  if (!cl)
    return; /* a connection that ended since the event was queued */
  if (kind == CTL_TAG_CONTROL)
    on_control(c, cl, events, now);
  else if (kind == CTL_TAG_KICK && cl->state == CTL_CS_ACTIVE)
    ctl_session_kick(cl, now);
}

bool toed_ctl_on_sock_event(struct toed_ctl *c, void *user, uint32_t events)
{
  return c->open && ctl_sock_event(&c->dev, user, events);
}

void toed_ctl_capture_(struct toed_ctl *c, const uint8_t *bytes, size_t len,
                       const struct toe_pbuf *chain, uint64_t ts_ns, unsigned dir)
{
  if (!ts_ns) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  }
  /* The filters read the frame as one run of bytes: a chain is gathered once for all captures. */
  uint32_t wirelen = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len, buflen = wirelen;
  if (chain) {
    wirelen = chain->tot_len;
    buflen = 0;
    for (const struct toe_pbuf *b = chain; b && buflen < TOED_CTL_CAP_FRAME_MAX; b = b->next) {
      uint32_t k =
          b->len < TOED_CTL_CAP_FRAME_MAX - buflen ? b->len : TOED_CTL_CAP_FRAME_MAX - buflen;
      memcpy(c->dev.cap_frame + buflen, b->data, k);
      buflen += k;
    }
    bytes = c->dev.cap_frame;
  }
  for (uint32_t i = 0; i < c->dev.capturing; i++)
    ctl_session_capture(c->dev.capturers[i], bytes, buflen, wirelen, dir, ts_ns);
}

void toed_ctl_run(struct toed_ctl *c, toe_time_t now)
{
  if (!c->open)
    return;
  listen_resume(c, now);
  /* Socket calls act at the engine's time: bring it to now before executing anything. */
  bool work = false;
  for (uint32_t i = 0; i < c->nslots && !work; i++)
    work =
        c->clients[i].state == CTL_CS_ACTIVE && ctl_session_next_wake(&c->clients[i], now) <= now;
  if (c->dev.tokens_live && ctl_tokens_next(&c->dev) <= now) {
    toe_stack_poll(c->dev.st, now);
    ctl_tokens_expire(&c->dev, now); /* unused SHARE tokens, and what only they held */
  }
  if (work && toe_stack_now(c->dev.st) < now)
    toe_stack_poll(c->dev.st, now);
  for (uint32_t i = 0; i < c->nslots; i++) {
    struct ctl_client *cl = &c->clients[i];
    if (cl->state == CTL_CS_HELLO && now >= cl->hello_deadline) {
      /* The 2 s are the client's to send its hello, not toed's to read it: a busy or
       * descheduled toed finds hellos that came in time still waiting in their sockets (at load
       * 14, 24 of 64 clients were dropped so). Serve one that is there; drop only if none is. */
      on_hello(c, cl, now);
      if (cl->state == CTL_CS_HELLO) {
        c->dev.stats.hello_timeouts++;
        drop(c, cl, 0, CTL_END_CLIENT, now);
        continue;
      }
    }
    if (cl->state != CTL_CS_ACTIVE)
      continue;
    if (c->dev.stopping)
      ctl_session_post_shutdown(cl);
    ctl_session_run(cl, now);
    if (cl->end_status)
      drop(c, cl, cl->end_status, cl->end_kind, now);
  }
}

toe_time_t toed_ctl_next_wake(const struct toed_ctl *c, toe_time_t now)
{
  if (!c->open)
    return TOE_TIME_NEVER;
  toe_time_t t = c->dev.stopping ? c->stop_deadline : TOE_TIME_NEVER;
  if (c->listen_paused && c->listen_resume < t)
    t = c->listen_resume;
  toe_time_t tk = ctl_tokens_next(&c->dev);
  if (tk < t)
    t = tk;
  for (uint32_t i = 0; i < c->nslots && t > now; i++) {
    const struct ctl_client *cl = &c->clients[i];
    if (cl->state == CTL_CS_FREE)
      continue;
    toe_time_t w = ctl_session_next_wake(cl, now);
    if (w < t)
      t = w;
  }
  return t;
}

static void close_listener(struct toed_ctl *c)
{
  if (c->lfd < 0)
    return;
  if (!c->listen_paused)
    epoll_ctl(c->dev.epfd, EPOLL_CTL_DEL, c->lfd, NULL);
  c->listen_paused = false;
  close(c->lfd);
  c->lfd = -1;
  /* Only our own socket file: another toed may have taken the path since. */
  struct stat sb;
  if (lstat(c->path, &sb) == 0 && S_ISSOCK(sb.st_mode) && sb.st_dev == c->path_dev &&
      sb.st_ino == c->path_ino)
    unlink(c->path);
}

bool toed_ctl_stop(struct toed_ctl *c, toe_time_t now)
{
  if (!c->open)
    return true;
  if (!c->dev.stopping) {
    c->dev.stopping = true;
    c->stop_deadline = now + TOED_CTL_STOP_GRACE;
    close_listener(c); /* no new clients */
    for (uint32_t i = 0; i < c->nslots; i++)
      ctl_session_post_shutdown(&c->clients[i]);
  }
  if (now >= c->stop_deadline)
    return true;
  for (uint32_t i = 0; i < c->nslots; i++) {
    const struct ctl_client *cl = &c->clients[i];
    if (cl->state == CTL_CS_ACTIVE && cl->abi.handles_inuse > 0)
      return false;
  }
  return true;
}

void toed_ctl_close(struct toed_ctl *c)
{
  if (!c->open)
    return;
  toe_time_t now = toe_stack_now(c->dev.st);
  for (uint32_t i = 0; i < c->nslots; i++) {
    struct ctl_client *cl = &c->clients[i];
    if (cl->state != CTL_CS_FREE)
      drop(c, cl, -TOE_ENETDOWN, CTL_END_SHUTDOWN, now);
  }
  close_listener(c);
  free(c->clients);
  free(c->dev.socks);
  free(c->dev.scratch);
  free(c->dev.cap_progs);
  free(c->dev.cap_frame);
  c->dev.cap_progs = NULL;
  c->dev.cap_frame = NULL;
  ctl_engine_stats_free(&c->dev);
  c->clients = NULL;
  c->nslots = 0;
  c->dev.socks = NULL;
  c->dev.nsocks = 0;
  c->dev.sock_free = NULL;
  c->dev.scratch = NULL;
  c->dev.scratch_cap = 0;
  c->open = false;
}

struct visit_ctx {
  toed_ctl_stat_fn fn;
  void *arg;
};
static void visit_quota(void *arg, const char *name, uint64_t value)
{
  struct visit_ctx *v = arg;
  v->fn(v->arg, "transport", name, value);
}

void toed_ctl_visit(const struct toed_ctl *c, toed_ctl_stat_fn fn, void *arg)
{
#define VISIT_STAT_(name) fn(arg, "transport", #name, c->dev.stats.name);
  TOED_CTL_STATS(VISIT_STAT_)
#undef VISIT_STAT_
  fn(arg, "transport", "accept_backoffs", c->accept_backoffs);
  struct visit_ctx v = {fn, arg};
  ctl_quota_visit(&c->dev, visit_quota, &v);
}

void toed_ctl_describe(const struct toed_ctl *c, char *buf, size_t len)
{
  char grp[48];
  if (c->cfg.group)
    snprintf(grp, sizeof grp, "group %s", c->cfg.group);
  else
    snprintf(grp, sizeof grp, "group %d", (int)getegid());
  snprintf(buf, len, "%s (mode 0660, %s), up to %u clients, poll %u us", c->path, grp,
           c->cfg.max_clients, c->cfg.poll_us);
}

/* ------------------------------------------------------------------------------------------ */
/* Opening                                                                                    */

static int resolve_group(const char *g, gid_t *out)
{
  char *end;
  errno = 0;
  unsigned long v = strtoul(g, &end, 10);
  if (*g && !*end && !errno && v < (unsigned long)(gid_t)-1) {
    *out = (gid_t)v;
    return 0;
  }
  struct group *gr = getgrnam(g);
  if (!gr)
    return -1;
  *out = gr->gr_gid;
  return 0;
}

/* A socket file left by a toed that died is removed; one that answers belongs to a live toed. */
static int clear_stale(const char *path, char *err, size_t errlen)
{
  struct stat sb;
  if (lstat(path, &sb) < 0)
    return errno == ENOENT ? 0 : (snprintf(err, errlen, "--ctl %s: %s", path, strerror(errno)), -1);
  if (!S_ISSOCK(sb.st_mode)) {
    snprintf(err, errlen, "--ctl %s: exists and is not a socket (remove it or choose another path)",
             path);
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "--ctl %s: socket: %s", path, strerror(errno));
    return -1;
  }
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, strlen(path));
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  int e = errno;
  close(fd);
  if (rc == 0) {
    snprintf(err, errlen, "--ctl %s: another toed serves this socket (stop it, or use --ctl PATH)",
             path);
    return -1;
  }
  if (e != ECONNREFUSED) {
    snprintf(err, errlen, "--ctl %s: cannot check the existing socket: %s", path, strerror(e));
    return -1;
  }
  unlink(path);
  return 0;
}

int toed_ctl_open(struct toed_ctl *c, const struct toed_ctl_config *cfg, struct toe_stack *st,
                  int epfd, char *err, size_t errlen)
{
  memset(c, 0, sizeof(*c));
  c->lfd = -1;
  c->cfg = *cfg;
  c->dev.st = st;
  c->dev.epfd = epfd;
  c->dev.poll_ns = (toe_time_t)cfg->poll_us * 1000u;
  c->dev.pidfd_open = cfg->pidfd_open ? cfg->pidfd_open : sys_pidfd_open;
  c->dev.started = toe_stack_now(st);
  if (!cfg->path || strlen(cfg->path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
    snprintf(err, errlen, "--ctl %s: path too long for a Unix socket (at most %zu bytes)",
             cfg->path ? cfg->path : "", sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    return -TOE_EINVAL;
  }
  snprintf(c->path, sizeof c->path, "%s", cfg->path);
  if (cfg->group && resolve_group(cfg->group, &c->gid) < 0) {
    snprintf(err, errlen, "--ctl-group %s: no such group", cfg->group);
    return -TOE_EINVAL;
  }

  ctl_quota_init(&c->dev, cfg->max_clients);
  /* One record per engine socket: a client can never hold more than the engine has. */
  const struct toe_config *ec = toe_stack_config(st);
  c->dev.nsocks = ec->tcp_socks + ec->udp_socks;
  c->dev.socks = calloc(c->dev.nsocks, sizeof(*c->dev.socks));
  c->nslots = cfg->max_clients + HANDSHAKE_SLOTS;
  c->clients = calloc(c->nslots, sizeof(*c->clients));
  c->dev.cap_progs = calloc((size_t)TOED_CTL_CAPTURES_MAX * TOE_BPF_MAXINSNS,
                            sizeof(*c->dev.cap_progs)); /* touched only by BPF captures */
  c->dev.cap_progs_used = 0;
  c->dev.cap_frame = malloc(TOED_CTL_CAP_FRAME_MAX);
  if (!c->dev.socks || !c->clients || !c->dev.cap_progs || !c->dev.cap_frame) {
    snprintf(err, errlen, "control socket: out of memory");
    goto fail_mem;
  }
  for (uint32_t i = c->dev.nsocks; i-- > 0;) {
    c->dev.socks[i].free_next = c->dev.sock_free;
    c->dev.sock_free = &c->dev.socks[i];
  }
  for (uint32_t i = 0; i < c->nslots; i++) {
    struct ctl_client *cl = &c->clients[i];
    cl->dev = &c->dev;
    cl->slot = i;
    cl->fd = cl->kick = cl->notify = -1;
  }

  if (cfg->path_is_default)
    mkdir(TOED_CTL_DEFAULT_DIR, 0755); /* exists already on a second run */
  if (clear_stale(c->path, err, errlen) < 0)
    goto fail_mem;
  c->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->lfd < 0) {
    snprintf(err, errlen, "--ctl %s: socket: %s", c->path, strerror(errno));
    goto fail_mem;
  }
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, c->path, strlen(c->path));
  /* Created 0660 from the start (no window in which anyone else could connect). */
  mode_t old = umask(0117);
  int rc = bind(c->lfd, (struct sockaddr *)&sa, sizeof sa);
  int e = errno;
  umask(old);
  if (rc < 0) {
    snprintf(err, errlen, "--ctl %s: bind: %s", c->path, strerror(e));
    goto fail_sock;
  }
  struct stat sb;
  if ((cfg->group && chown(c->path, (uid_t)-1, c->gid) < 0) || chmod(c->path, 0660) < 0 ||
      lstat(c->path, &sb) < 0) {
    snprintf(err, errlen, "--ctl %s: cannot set owner/mode: %s", c->path, strerror(errno));
    unlink(c->path);
    goto fail_sock;
  }
  c->path_dev = sb.st_dev;
  c->path_ino = sb.st_ino;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ctl_tag(0, 0, CTL_TAG_LISTEN)};
  if (listen(c->lfd, 128) < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, c->lfd, &ev) < 0) {
    snprintf(err, errlen, "--ctl %s: listen: %s", c->path, strerror(errno));
    unlink(c->path);
    goto fail_sock;
  }
  c->open = true;
  return 0;

fail_sock:
  close(c->lfd);
  c->lfd = -1;
fail_mem:
  free(c->dev.socks);
  free(c->clients);
  free(c->dev.cap_progs);
  free(c->dev.cap_frame);
  c->dev.socks = NULL;
  c->clients = NULL;
  c->dev.cap_progs = NULL;
  c->dev.cap_frame = NULL;
  return -TOE_EINVAL;
}
