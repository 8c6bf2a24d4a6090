/*
 * TCP flows (docs/interception.md "toe-proxyd"): the kernel hands the proxy the application's
 * connection on its IP_TRANSPARENT listener (TPROXY), with the original destination as the
 * accepted socket's local address. The proxy opens a device connection to that destination and
 * relays the two byte streams without a buffer of its own, straight between the kernel socket
 * and the shared region of the device:
 *
 *   app --read()--> send space reserved in the region (toe_send_buf_get) --commit--> device
 *   device --toe_recv_zc--> pieces lent in place (up to PX_ZC_MAX) --sendmsg(iovec)--> app
 *
 * So each byte is copied once per direction by the kernel (into or out of the region) and never
 * by the proxy, and one system call moves up to a whole send run (TOE_SEND_RUN_MAX buffers) or
 * every piece held (up to --buffer bytes). Flow control is end to end: without send space the
 * proxy does not read the application (the kernel's window to it closes); while it holds
 * --buffer bytes the application has not taken, it takes no more pieces (the device's window to
 * the peer closes once the socket's receive buffers are all lent). A FIN is passed on once
 * everything before it was (shutdown(SHUT_WR) on the other side, RFC 9293 3.6 half-close); a
 * reset or error on one side resets the other (SO_LINGER 0 on the kernel socket,
 * TOE_OPT_LINGER_ABORT on the device socket). The application's connect() has already succeeded
 * when the proxy learns of it (the kernel completed the handshake), so a device connection that
 * fails shows to the application as a reset, not as a refused connect.
 *
 * Wake-ups: the kernel socket is in the epoll set once, edge-triggered (EPOLLIN | EPOLLOUT), so
 * no epoll_ctl per change of interest; every event runs pump(), which tries every direction
 * until none moves (a short read means the socket was drained: Linux reports each later arrival
 * as a new edge). What the edges said is kept (app_rd, app_wr), so a pump woken by the device
 * makes no read or sendmsg on the kernel socket that could only fail with EAGAIN. The device side
 * is level-triggered (toe_poll_ctl) and asks only for what blocks: POLLOUT only after send space
 * ran out, POLLIN only while under --buffer.
 */
#include "proxy/proxyd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Received pieces a flow may hold (lent by toe_recv_zc, not yet taken by the application):
 * at the default 8 KiB buffers, 512 KiB in one sendmsg. */
#define PX_ZC_MAX 64

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
  bool tx_wait;   /* the device had no send space: wait for TOE_POLLOUT */
  /* What the kernel socket may do, from its edges: app_rd, bytes (or its FIN) may wait to be
   * read; app_wr, it may take more. Cleared by a short read or send (the next arrival, or room,
   * is a new edge), set by the edge: no read or sendmsg that would only say EAGAIN. */
  bool app_rd, app_wr;
  bool app_rdhup; /* an edge said the application's FIN is in: a short read may end before it */
  uid_t uid;      /* the flow is charged to this uid (px_flow_admit) */
  uint32_t dint;  /* device poll interest set */
  /* device -> application: pieces lent in place, a ring of zc_n from zc_head; zc_off bytes of
   * the first were sent already; zc_bytes not yet sent in all */
  unsigned zc_head, zc_n;
  size_t zc_off, zc_bytes;
  struct toe_zc zc[PX_ZC_MAX];
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

/* Gives every held piece back to the device. */
static void zc_release_all(struct proxyd *p, struct px_tcp_flow *f)
{
  for (; f->zc_n; f->zc_n--, f->zc_head = (f->zc_head + 1) % PX_ZC_MAX)
    toe_recv_zc_release(p->dev, &f->zc[f->zc_head]);
  f->zc_off = f->zc_bytes = 0;
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
  zc_release_all(p, f);
  if (f->sd >= 0) {
    if (abort_dev)
      toe_setsockopt(p->dev, f->sd, TOE_OPT_LINGER_ABORT, 1);
    toe_close(p->dev, f->sd);
  }
  flow_unlink(p, f);
  px_flow_release(p, f->uid);
  p->ctr.tcp_active--;
  free(f);
}

static void set_interest(struct proxyd *p, struct px_tcp_flow *f)
{
  /* Once the application's side is shut both ways the kernel reports EPOLLHUP for good: stop
   * watching it (nothing more can come from it). */
  bool watch = f->fd >= 0 && !(f->app_eof && f->app_shut);
  if (watch && !f->kreg) {
    /* Edge-triggered, both directions, once: pump() tries everything on every event. EPOLLERR
     * (the application's reset) is always reported. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = f};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, f->fd, &ev) < 0)
      p->ctr.errors++;
    f->kreg = true;
  } else if (!watch && f->kreg) {
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, f->fd, NULL);
    f->kreg = false;
  }
  if (f->sd >= 0) {
    uint32_t dint = 0;
    if (!f->connected)
      dint = TOE_POLLOUT; /* the connect's completion */
    else {
      if (!f->dev_eof && f->zc_n < PX_ZC_MAX && f->zc_bytes < p->bufsize)
        dint |= TOE_POLLIN;
      if (f->tx_wait && !f->app_eof)
        dint |= TOE_POLLOUT;
    }
    if (dint != f->dint && toe_poll_ctl(p->dev, f->sd, dint, f) == 0)
      f->dint = dint;
  }
}

/* application -> device: reads the application's bytes straight into reserved send space and
 * commits them. Returns 1 if something moved, 0 if not, -1 if the flow was ended. */
static int app_to_dev(struct proxyd *p, struct px_tcp_flow *f)
{
  int moved = 0;
  while (!f->app_eof && f->sd >= 0 && f->app_rd) {
    struct toe_txbuf tb;
    int rc = toe_send_buf_get(p->dev, f->sd, p->bufsize, &tb);
    if (rc == -TOE_EAGAIN) {
      f->tx_wait = true;
      break;
    }
    if (rc < 0) {
      flow_end(p, f, true, false); /* the device connection is gone */
      return -1;
    }
    f->tx_wait = false;
    ssize_t n = read(f->fd, tb.data, tb.cap);
    if (n <= 0) {
      int e = errno;
      toe_send_buf_cancel(p->dev, &tb);
      if (n == 0) {
        f->app_eof = true;
        moved = 1;
      } else if (e == EAGAIN) {
        f->app_rd = false;
      } else if (e != EINTR) {
        flow_end(p, f, false, true); /* the application reset: so does the peer */
        return -1;
      }
      break;
    }
    ssize_t c = toe_send_buf_commit(p->dev, &tb, (size_t)n, 0, NULL, 0);
    if (c < 0) {
      flow_end(p, f, true, false);
      return -1;
    }
    p->ctr.bytes_to_dev += (uint64_t)n;
    moved = 1;
    if ((size_t)n < tb.cap) {
      /* drained: a later arrival is a new edge; but a FIN already in comes as a read of 0 and
       * no edge, so the next pump reads once more */
      if (!f->app_rdhup)
        f->app_rd = false;
      break;
    }
  }
  if (f->app_eof && !f->dev_shut && f->sd >= 0) {
    toe_shutdown(p->dev, f->sd, TOE_SHUT_WR); /* the FIN follows the bytes sent */
    f->dev_shut = true;
    moved = 1;
  }
  return moved;
}

/* device -> application: takes pieces in place while under --buffer, then hands every held
 * piece to one sendmsg. Returns 1 if something moved, 0 if not, -1 if the flow was ended. */
static int dev_to_app(struct proxyd *p, struct px_tcp_flow *f)
{
  int moved = 0;
  while (!f->dev_eof && f->sd >= 0 && f->zc_n < PX_ZC_MAX && f->zc_bytes < p->bufsize) {
    struct toe_zc *z = &f->zc[(f->zc_head + f->zc_n) % PX_ZC_MAX];
    ssize_t n = toe_recv_zc(p->dev, f->sd, z);
    if (n > 0) {
      f->zc_n++;
      f->zc_bytes += (size_t)n;
      p->ctr.bytes_from_dev += (uint64_t)n;
      moved = 1;
    } else if (n == 0) {
      f->dev_eof = true;
      moved = 1;
    } else if (n == -TOE_EAGAIN) {
      break;
    } else {
      flow_end(p, f, true, false); /* the peer reset (or the device went) */
      return -1;
    }
  }
  if (f->zc_n && f->app_wr) {
    struct iovec iov[PX_ZC_MAX];
    for (unsigned i = 0; i < f->zc_n; i++) {
      const struct toe_zc *z = &f->zc[(f->zc_head + i) % PX_ZC_MAX];
      size_t off = i == 0 ? f->zc_off : 0;
      iov[i].iov_base = (char *)z->data + off;
      iov[i].iov_len = z->len - off;
    }
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = f->zc_n};
    ssize_t n = sendmsg(f->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      flow_end(p, f, false, true);
      return -1;
    }
    if ((n < 0 && errno == EAGAIN) || (n >= 0 && (size_t)n < f->zc_bytes))
      f->app_wr = false; /* full: room is a new EPOLLOUT edge */
    if (n > 0) {
      moved = 1;
      f->zc_bytes -= (size_t)n;
      size_t left = (size_t)n;
      while (left) {
        struct toe_zc *z = &f->zc[f->zc_head];
        size_t rest = z->len - f->zc_off;
        if (left < rest) {
          f->zc_off += left;
          break;
        }
        left -= rest;
        toe_recv_zc_release(p->dev, z);
        f->zc_head = (f->zc_head + 1) % PX_ZC_MAX;
        f->zc_n--;
        f->zc_off = 0;
      }
    }
  }
  if (!f->zc_n && f->dev_eof && !f->app_shut) {
    shutdown(f->fd, SHUT_WR);
    f->app_shut = true;
    moved = 1;
  }
  return moved;
}

/* Moves whatever can move; ends the flow when both directions are done. Returns false if the
 * flow was freed. */
static bool pump(struct proxyd *p, struct px_tcp_flow *f)
{
  bool progress = true;
  while (progress && f->connected) {
    int a = app_to_dev(p, f);
    if (a < 0)
      return false;
    int d = dev_to_app(p, f);
    if (d < 0)
      return false;
    progress = a || d;
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
  if (px_owner_find(proto, app, dst, &p->owner_hint, &pid, comm) < 0) {
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
    if (!f) {
      p->ctr.errors++;
      px_flow_release(p, uid);
      close(fd);
      continue;
    }
    f->uid = uid;
    f->kind = PX_K_TCP;
    f->app_rd = f->app_wr = true;
    f->fd = fd;
    f->sd = -1;
    f->app = app;
    f->dst = dst;
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
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
    f->app_rd = true;
  if (events & (EPOLLRDHUP | EPOLLHUP))
    f->app_rdhup = true;
  if (events & (EPOLLOUT | EPOLLHUP))
    f->app_wr = true;
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
    for (unsigned i = 0; i < f->zc_n; i++) {
      const struct toe_zc *z = &f->zc[(f->zc_head + i) % PX_ZC_MAX];
      size_t off = i == 0 ? f->zc_off : 0;
      if (send(f->fd, (const char *)z->data + off, z->len - off, MSG_NOSIGNAL | MSG_DONTWAIT) <
          (ssize_t)(z->len - off))
        break;
    }
    flow_end(p, f, !f->connected, false);
  }
}
