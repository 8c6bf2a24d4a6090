/*
 * libtoe-preload: switching a kernel socket to the device. A device socket is opened, the options
 * set so far are replayed, and the descriptor number is turned into the application's end of a
 * new placeholder (pl_pair). docs/interception.md.
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* The switch of a candidate to the device                                                    */

/* Where our private descriptors go: away from the low numbers the application expects to get
 * (and from select()'s FD_SETSIZE when the limit allows). */
static int high_base(void)
{
  struct rlimit rl;
  int base = 64;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur > 128)
    base = (int)(rl.rlim_cur / 2);
  if (base > 65536)
    base = 65536;
  return base;
}

int pl_move_high(int fd)
{
  int nfd = R.fcntl(fd, F_DUPFD_CLOEXEC, high_base());
  if (nfd < 0)
    return fd; /* keep it where it is */
  R.close(fd);
  return nfd;
}

int pl_pair(int *a, int *afd, int *bfd, bool cloexec, bool nonblock)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return -errno;
  int one = 1;
  R.setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)); /* the kernel's minimum */
  int d = R.fcntl(sv[0], F_DUPFD_CLOEXEC, high_base());
  if (d < 0)
    d = R.fcntl(sv[0], F_DUPFD_CLOEXEC, 0);
  if (d < 0) {
    int e = errno;
    R.close(sv[0]);
    R.close(sv[1]);
    return -e;
  }
  if (!cloexec)
    R.fcntl(sv[0], F_SETFD, 0);
  if (nonblock)
    R.fcntl(sv[0], F_SETFL, O_NONBLOCK);
  *a = sv[0];
  *afd = d;
  *bfd = pl_move_high(sv[1]);
  return 0;
}

int pl_switch(int fd, struct psock *ps)
{
  int olevel, oname, slevel, sname;
  if (!pl_opts_offloadable(ps, &olevel, &oname, &slevel, &sname)) {
    /* An option the device cannot honour (pl_opts.c): the kernel keeps the socket, rather than
     * the option being dropped on the way. */
    if (pl_cfg.strict || pl_cfg.debug)
      pl_log("fd %d: option %d/%d is set and the device cannot do it: %s", fd, olevel, oname,
             pl_cfg.strict ? "refused (TOE_STRICT)" : "the socket stays on the kernel");
    return pl_cfg.strict ? -ENOPROTOOPT : 1;
  }
  if (slevel >= 0)
    pl_log("fd %d: option %d/%d was set while a kernel socket; on the device its own limits apply "
           "instead",
           fd, slevel, sname);
  int err = 0;
  struct pdev *p = pl_dev_acquire(&err);
  if (!p)
    return pl_cfg.strict ? -ENETDOWN : 1;
  int sd = toe_socket(p->dev, ps->type == SOCK_STREAM ? TOE_SOCK_STREAM : TOE_SOCK_DGRAM);
  if (sd < 0) {
    pl_dev_release(p);
    return sd == -TOE_ENETDOWN && !pl_cfg.strict ? 1 : sd;
  }
  /* Options set while it was a kernel socket. */
  for (int i = 0; i < ps->nopts; i++) {
    int64_t v;
    int opt = pl_toe_opt_of(ps->opts[i].level, ps->opts[i].name, &ps->opts[i], &v);
    if (opt > 0) {
      int rc = toe_setsockopt(p->dev, sd, opt, v);
      if (rc < 0)
        PL_DBG("fd %d: replaying option %d/%d: %s", fd, ps->opts[i].level, ps->opts[i].name,
               strerror(-rc));
    }
  }
  int fdfl = R.fcntl(fd, F_GETFD);
  int fl = R.fcntl(fd, F_GETFL);
  bool nonblock = fl >= 0 && (fl & O_NONBLOCK);
  int a, afd, bfd;
  int rc = pl_pair(&a, &afd, &bfd, true, nonblock);
  if (rc < 0) {
    toe_close(p->dev, sd);
    pl_dev_release(p);
    return rc;
  }
  /* The descriptor number now names the placeholder; the kernel socket is closed. */
  if (R.dup3(a, fd, (fdfl >= 0 && (fdfl & FD_CLOEXEC)) ? O_CLOEXEC : 0) < 0) {
    int e = errno;
    R.close(a);
    R.close(afd);
    R.close(bfd);
    toe_close(p->dev, sd);
    pl_dev_release(p);
    return -e;
  }
  R.close(a);
  ps->pdev = p;
  ps->sd = sd;
  ps->afd = afd;
  ps->bfd = bfd;
  ps->nonblock = nonblock;
  ps->shown = SH_OUT;         /* a fresh socketpair end is writable and not readable */
  ps->interest = UINT32_MAX;  /* not given yet: the first pl_show sets it */
  atomic_store(&ps->rdy, 0u); /* the first pl_reflect (the switching call's, or a join) sets it */
  atomic_store(&ps->state, PS_OFF);
  pl_dev_link(p, ps);
  pl_show(ps, SH_OUT);
  /* The candidate's epoll registrations (epoll forgot the closed kernel socket): a set served in
   * the process takes the socket as an offloaded member, a kernel set its placeholder. */
  for (int i = 0; i < ps->neps; i++) {
    if (pl_eps_switched(ps->eps[i].epfd, fd, ps, &ps->eps[i].ev))
      continue;
    pl_dev_pin(ps);
    if (R.epoll_ctl(ps->eps[i].epfd, EPOLL_CTL_ADD, fd, &ps->eps[i].ev) < 0)
      PL_DBG("fd %d: re-adding to epoll %d: %s", fd, ps->eps[i].epfd, strerror(errno));
  }
  ps->neps = 0;
  return 0;
}

/* Maps a socket option onto libtoe's (0 if it has none). */
int pl_toe_opt_of(int level, int name, const struct pl_opt *o, int64_t *v)
{
  int iv = 0;
  if (o->len >= sizeof(int))
    memcpy(&iv, o->val, sizeof(int));
  *v = iv;
  if (level == SOL_SOCKET) {
    switch (name) {
    case SO_RCVBUF:
      return TOE_OPT_RCVBUF;
    case SO_SNDBUF:
      return TOE_OPT_SNDBUF;
    case SO_KEEPALIVE:
      *v = iv != 0;
      return TOE_OPT_KEEPALIVE;
    case SO_REUSEADDR:
      *v = iv != 0;
      return TOE_OPT_REUSEADDR;
    case SO_REUSEPORT:
      *v = iv != 0;
      return TOE_OPT_REUSEPORT;
    case SO_LINGER: {
      struct linger lg = {0, 0};
      if (o->len >= sizeof(lg))
        memcpy(&lg, o->val, sizeof(lg));
      *v = lg.l_onoff && lg.l_linger == 0;
      return TOE_OPT_LINGER_ABORT;
    }
    default:
      /* recvmsg's timestamps: the device describes each datagram (pl_opts.c) */
      if (iv && pl_cmsg_bit(level, name)) {
        *v = 1;
        return TOE_OPT_RXMETA;
      }
      return 0;
    }
  }
  if (level == IPPROTO_IP) {
    if (name == IP_RECVERR) {
      *v = iv != 0;
      return TOE_OPT_RECVERR;
    }
    /* IP_PKTINFO, IP_RECVTOS, IP_RECVTTL: the device describes each datagram */
    if (iv && pl_cmsg_bit(level, name)) {
      *v = 1;
      return TOE_OPT_RXMETA;
    }
    return 0;
  }
  if (level == IPPROTO_TCP) {
    switch (name) {
    case 1 /* TCP_NODELAY */:
      *v = iv != 0;
      return TOE_OPT_NODELAY;
    case 2 /* TCP_MAXSEG */:
      return TOE_OPT_MAXSEG;
    case 4 /* TCP_KEEPIDLE */:
      return TOE_OPT_KEEPIDLE;
    case 5 /* TCP_KEEPINTVL */:
      return TOE_OPT_KEEPINTVL;
    case 6 /* TCP_KEEPCNT */:
      return TOE_OPT_KEEPCNT;
    case 13 /* TCP_CONGESTION */: {
      char name_buf[17] = {0};
      memcpy(name_buf, o->val, o->len < 16 ? o->len : 16);
      if (!strcmp(name_buf, "cubic"))
        *v = 2;
      else if (!strcmp(name_buf, "reno") || !strcmp(name_buf, "newreno"))
        *v = 1;
      else
        return 0;
      return TOE_OPT_CONGESTION;
    }
    default:
      return 0;
    }
  }
  return 0;
}
