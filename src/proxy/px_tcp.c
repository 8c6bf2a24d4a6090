/*
 * TCP flows (docs/interception.md "toe-proxyd"): the kernel hands the proxy the application's
 * connection on its IP_TRANSPARENT listener (TPROXY), with the original destination as the
 * accepted socket's local address. The proxy opens a device connection to that destination and
 * splices the two byte streams through two bounded buffers, one per direction:
 *
 *   app --read--> a2d --toe_send--> device          device --toe_recv--> d2a --send--> app
 *
 * A full buffer stops reading its side (the kernel's window to the application closes, or the
 * device's window to the peer does: end-to-end flow control, nothing is dropped). A FIN is
 * passed on once everything before it was (shutdown(SHUT_WR) on the other side, RFC 9293 3.6
 * half-close); a reset or error on one side resets the other (SO_LINGER 0 on the kernel socket,
 * TOE_OPT_LINGER_ABORT on the device socket). The application's connect() has already succeeded
 * when the proxy learns of it (the kernel completed the handshake), so a device connection that
 * fails shows to the application as a reset, not as a refused connect.
 */
#include "proxy/proxyd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct px_tcp_flow {
  enum px_kind kind; /* PX_K_TCP: first, for the device event dispatch */
  struct px_tcp_flow *prev, *next;
  int fd; /* the kernel socket accepted from the application; -1 when closed */
  int sd; /* the device socket; -1 when closed */
  struct sockaddr_in app, dst;
  bool connected; /* the device connection is established */
  bool app_eof;   /* the application sent its FIN */
  bool dev_shut;  /* ... and it was passed on to the device */
  bool dev_eof;   /* the peer sent its FIN (through the device) */
  bool app_shut;  /* ... and it was passed on to the application */
  bool kreg;      /* fd is in the epoll set */
  uid_t uid;      /* the flow is charged to this uid (px_flow_admit) */
  uint32_t kev;   /* with these events */
  uint32_t dint;  /* device poll interest set */
  size_t a2d_off, a2d_len, d2a_off, d2a_len;
  char *a2d, *d2a; /* p->bufsize each */
};

static void flow_unlink(struct proxyd *p, struct px_tcp_flow *f)
{
  if (f->prev)
    f->prev->next = f->next;
  else
    p->tcp_head = f->next;
  if (f->next)
    f->next->prev = f->prev;
}

/* Ends a flow. abort_app: reset the application's connection; abort_dev: reset the device's. */
static void flow_end(struct proxyd *p, struct px_tcp_flow *f, bool abort_app, bool abort_dev)
{
  if (abort_app || abort_dev)
    p->ctr.tcp_resets++;
  if (f->fd >= 0) {
    if (abort_app) {
      /* SO_LINGER with a zero timeout: close() sends a RST (RFC 9293 3.6). */
      struct linger lg = {1, 0};
      setsockopt(f->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(f->fd); /* also leaves the epoll set */
  }
  if (f->sd >= 0) {
    if (abort_dev)
      toe_setsockopt(p->dev, f->sd, TOE_OPT_LINGER_ABORT, 1);
    toe_close(p->dev, f->sd);
  }
  flow_unlink(p, f);
  px_flow_release(p, f->uid);
  p->ctr.tcp_active--;
  free(f->a2d);
  free(f);
}

static void set_interest(struct proxyd *p, struct px_tcp_flow *f)
{
  uint32_t kev = 0;
  if (f->connected && !f->app_eof && f->a2d_len < p->bufsize)
    kev |= EPOLLIN;
  if (f->d2a_len > f->d2a_off)
    kev |= EPOLLOUT;
  /* Once the application's side is shut both ways the kernel reports EPOLLHUP for good: stop
   * watching it (nothing more can come from it). */
  bool watch = f->fd >= 0 && !(f->app_eof && f->app_shut);
  if (watch && (!f->kreg || kev != f->kev)) {
    /* registered even with no events: EPOLLERR (the application's reset) is always reported */
    struct epoll_event ev = {.events = kev, .data.ptr = f};
    if (epoll_ctl(p->epfd, f->kreg ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, f->fd, &ev) < 0)
      p->ctr.errors++;
    f->kreg = true;
    f->kev = kev;
  } else if (!watch && f->kreg) {
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, f->fd, NULL);
    f->kreg = false;
  }
  if (f->sd >= 0) {
    uint32_t dint = 0;
    if (!f->connected)
      dint = TOE_POLLOUT; /* the connect's completion */
    else {
      if (!f->dev_eof && f->d2a_len < p->bufsize)
        dint |= TOE_POLLIN;
      if (f->a2d_len > f->a2d_off)
        dint |= TOE_POLLOUT;
    }
    if (dint != f->dint && toe_poll_ctl(p->dev, f->sd, dint, f) == 0)
      f->dint = dint;
  }
}

/* Moves whatever can move; ends the flow when both directions are done. Returns false if the
 * flow was freed. */
static bool pump(struct proxyd *p, struct px_tcp_flow *f)
{
  bool progress = true;
  while (progress && f->connected) {
    progress = false;
    /* application -> a2d */
    if (!f->app_eof && f->a2d_len < p->bufsize) {
      ssize_t n = read(f->fd, f->a2d + f->a2d_len, p->bufsize - f->a2d_len);
      if (n > 0) {
        f->a2d_len += (size_t)n;
        progress = true;
      } else if (n == 0) {
        f->app_eof = true;
        progress = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        flow_end(p, f, false, true); /* the application reset: so does the peer */
        return false;
      }
    }
    /* a2d -> device */
    if (f->a2d_len > f->a2d_off && f->sd >= 0) {
      ssize_t n = toe_send(p->dev, f->sd, f->a2d + f->a2d_off, f->a2d_len - f->a2d_off, 0);
      if (n > 0) {
        f->a2d_off += (size_t)n;
        p->ctr.bytes_to_dev += (uint64_t)n;
        progress = true;
      } else if (n != -TOE_EAGAIN) {
        flow_end(p, f, true, false); /* the device connection is gone */
        return false;
      }
    }
    if (f->a2d_off == f->a2d_len) {
      f->a2d_off = f->a2d_len = 0;
      if (f->app_eof && !f->dev_shut && f->sd >= 0) {
        toe_shutdown(p->dev, f->sd, TOE_SHUT_WR); /* the FIN follows the bytes sent */
        f->dev_shut = true;
        progress = true;
      }
    }
    /* device -> d2a */
    if (!f->dev_eof && f->d2a_len < p->bufsize && f->sd >= 0) {
      ssize_t n = toe_recv(p->dev, f->sd, f->d2a + f->d2a_len, p->bufsize - f->d2a_len, 0);
      if (n > 0) {
        f->d2a_len += (size_t)n;
        p->ctr.bytes_from_dev += (uint64_t)n;
        progress = true;
      } else if (n == 0) {
        f->dev_eof = true;
        progress = true;
      } else if (n != -TOE_EAGAIN) {
        flow_end(p, f, true, false); /* the peer reset (or the device went) */
        return false;
      }
    }
    /* d2a -> application */
    if (f->d2a_len > f->d2a_off) {
      ssize_t n =
          send(f->fd, f->d2a + f->d2a_off, f->d2a_len - f->d2a_off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        f->d2a_off += (size_t)n;
        progress = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        flow_end(p, f, false, true);
        return false;
      }
    }
    if (f->d2a_off == f->d2a_len) {
      f->d2a_off = f->d2a_len = 0;
      if (f->dev_eof && !f->app_shut) {
        shutdown(f->fd, SHUT_WR);
        f->app_shut = true;
        progress = true;
      }
    }
    /* The device side is finished both ways: close it now (graceful; everything was read), or
     * it would report POLLHUP for as long as it exists. */
    if (f->sd >= 0 && f->dev_eof && f->dev_shut) {
      toe_close(p->dev, f->sd);
      f->sd = -1;
    }
    if (f->app_eof && f->dev_shut && f->dev_eof && f->app_shut) {
      flow_end(p, f, false, false);
      return false;
    }
  }
  set_interest(p, f);
  return true;
}

int px_tcp_open_listener(struct proxyd *p)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -errno;
  int one = 1;
  int mark = (int)p->net.fwmark;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(p->net.tcp_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* IP_TRANSPARENT: TPROXY only hands connections to transparent sockets, and the accepted ones
   * answer from the original destination's address. SO_MARK (inherited by accepted sockets and
   * their SYN-ACKs): our replies route back through loopback and are not intercepted again. */
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) < 0 ||
      bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1024) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  p->tcp_lfd = fd;
  return 0;
}

static void tag_owner(struct proxyd *p, enum px_proto proto, int sd, const struct sockaddr_in *app,
                      const struct sockaddr_in *dst)
{
  pid_t pid;
  char comm[16];
  if (px_owner_find(proto, app, dst, &pid, comm) < 0) {
    p->ctr.owner_unknown++;
    return;
  }
  if (toe_set_owner(p->dev, sd, (uint32_t)pid, comm) < 0)
    p->ctr.errors++;
  else if (p->verbose)
    px_log("flow of %s[%d]", comm, (int)pid);
}

void px_tcp_accept(struct proxyd *p)
{
  for (;;) {
    struct sockaddr_in app;
    socklen_t alen = sizeof app;
    int fd = accept4(p->tcp_lfd, (struct sockaddr *)&app, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* The connection stays in the backlog and the listener readable: level-triggered, epoll
         * would wake us at once for ever. Out of the set for 100 ms instead. */
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, p->tcp_lfd, NULL);
        p->tcp_resume_ms = px_now_ms() + 100;
        p->ctr.accept_backoffs++;
      } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        p->ctr.errors++;
      }
      return;
    }
    p->ctr.tcp_flows++;
    struct sockaddr_in dst;
    socklen_t dlen = sizeof dst;
    uid_t uid;
    /* TPROXY keeps the original destination as the accepted socket's local address. */
    if (getsockname(fd, (struct sockaddr *)&dst, &dlen) < 0) {
      p->ctr.errors++;
      close(fd);
      continue;
    }
    if (!px_flow_admit(p, PX_TCP, &app, &dst, &uid)) {
      struct linger lg = {1, 0}; /* over a limit: the application sees a reset */
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
      close(fd);
      continue;
    }
    struct px_tcp_flow *f = calloc(1, sizeof *f);
    char *bufs = malloc(2 * p->bufsize);
    if (!f || !bufs) {
      p->ctr.errors++;
      px_flow_release(p, uid);
      free(f);
      free(bufs);
      close(fd);
      continue;
    }
    f->uid = uid;
    f->kind = PX_K_TCP;
    f->fd = fd;
    f->sd = -1;
    f->app = app;
    f->dst = dst;
    f->a2d = bufs;
    f->d2a = bufs + p->bufsize;
    f->next = p->tcp_head;
    if (p->tcp_head)
      p->tcp_head->prev = f;
    p->tcp_head = f;
    p->ctr.tcp_active++;
    int nodelay = 1; /* the application's segments are already coalesced by the kernel */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, sizeof nodelay);
    if (p->verbose) {
      char a[INET_ADDRSTRLEN], d[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, &app.sin_addr, a, sizeof a);
      inet_ntop(AF_INET, &dst.sin_addr, d, sizeof d);
      px_log("tcp %s:%u -> %s:%u: connecting over the device", a, ntohs(app.sin_port), d,
             ntohs(dst.sin_port));
    }
    int sd = toe_socket(p->dev, TOE_SOCK_STREAM);
    if (sd < 0) {
      p->ctr.errors++;
      p->ctr.tcp_failed++;
      flow_end(p, f, true, false);
      continue;
    }
    f->sd = sd;
    tag_owner(p, PX_TCP, sd, &app, &dst);
    int rc = toe_connect(p->dev, sd, (struct sockaddr *)&dst, sizeof dst);
    if (rc < 0 && rc != -TOE_EINPROGRESS) {
      p->ctr.tcp_failed++;
      flow_end(p, f, true, false);
      continue;
    }
    set_interest(p, f);
  }
}

int px_tcp_resume(struct proxyd *p, uint64_t now_ms)
{
  if (!p->tcp_resume_ms)
    return -1;
  if (now_ms < p->tcp_resume_ms)
    return (int)(p->tcp_resume_ms - now_ms);
  p->tcp_resume_ms = 0;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = PX_TAG_TCP_LISTEN};
  epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->tcp_lfd, &ev);
  return -1;
}

void px_tcp_kernel_event(struct proxyd *p, struct px_tcp_flow *f, uint32_t events)
{
  if (events & EPOLLERR) {
    /* The application reset its connection (or it failed): so does the peer's. Level-triggered,
     * it would be reported again and again whatever pump() does. */
    flow_end(p, f, false, true);
    return;
  }
  pump(p, f); /* finds out what is possible */
}

void px_tcp_device_event(struct proxyd *p, struct px_tcp_flow *f, uint32_t events)
{
  if (!f->connected) {
    int64_t err = 0;
    if (toe_getsockopt(p->dev, f->sd, TOE_OPT_ERROR, &err) < 0 || err != 0 ||
        (events & TOE_POLLHUP)) {
      if (p->verbose)
        px_log("tcp connect over the device failed: %s", toe_strerror((int)(err ? err : -1)));
      p->ctr.tcp_failed++;
      flow_end(p, f, true, false);
      return;
    }
    f->connected = true;
    p->ctr.tcp_connected++;
  }
  pump(p, f);
}

void px_tcp_close_all(struct proxyd *p)
{
  /* At exit: pass on what is buffered if it goes at once, then close gracefully (the device
   * finishes its connections on its own; toe_detach's linger waits for the data). */
  while (p->tcp_head) {
    struct px_tcp_flow *f = p->tcp_head;
    if (f->connected && f->a2d_len > f->a2d_off && f->sd >= 0)
      toe_send(p->dev, f->sd, f->a2d + f->a2d_off, f->a2d_len - f->a2d_off, 0);
    if (f->d2a_len > f->d2a_off)
      send(f->fd, f->d2a + f->d2a_off, f->d2a_len - f->d2a_off, MSG_NOSIGNAL | MSG_DONTWAIT);
    flow_end(p, f, !f->connected, false);
  }
}
