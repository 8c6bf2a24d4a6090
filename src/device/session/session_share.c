/*
 * Shared sockets (SHARE/ADOPT, ABI 1.2): the tokens, their expiry, and the holders of a shared
 * listener or UDP socket.
 */
#define _GNU_SOURCE

#include "device/session/session_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Shared sockets (SHARE/ADOPT, ABI 1.2)                                                      */

static void share_link(struct ctl_share *sh, struct ctl_sock *k)
{
  k->sh = sh;
  if (!sh->holders) {
    k->sh_next = k->sh_prev = k;
    sh->holders = k;
  } else {
    struct ctl_sock *h = sh->holders;
    k->sh_next = h;
    k->sh_prev = h->sh_prev;
    h->sh_prev->sh_next = k;
    h->sh_prev = k;
  }
}

void ses_share_unlink(struct ctl_share *sh, struct ctl_sock *k)
{
  if (k->sh_next == k) {
    sh->holders = NULL;
  } else {
    k->sh_prev->sh_next = k->sh_next;
    k->sh_next->sh_prev = k->sh_prev;
    if (sh->holders == k)
      sh->holders = k->sh_next;
  }
  if (sh->rr == k)
    sh->rr = NULL;
  if (sh->active == k)
    sh->active = NULL;
  k->sh = NULL;
  k->sh_next = k->sh_prev = NULL;
}

/* The engine socket's events go to a record that exists: a holder, else the anchor. */
static void share_retarget(struct toed_ctl_dev *dev, struct ctl_share *sh)
{
  if (sh->holders) {
    if (sh->anchor) {
      ses_sock_free(dev, sh->anchor);
      sh->anchor = NULL;
    }
    toe_sock_set_user(sh->s, sh->holders);
    return;
  }
  if (!sh->anchor) {
    sh->anchor = ses_sock_alloc(dev); /* cl stays NULL: its events are dropped */
    if (sh->anchor)
      sh->anchor->s = sh->s;
  }
  toe_sock_set_user(sh->s, sh->anchor);
}

/* One reference less; the last one closes the engine socket. */
void ses_share_put(struct toed_ctl_dev *dev, struct ctl_share *sh)
{
  if (--sh->refs > 0) {
    share_retarget(dev, sh);
    return;
  }
  if (sh->anchor)
    ses_sock_free(dev, sh->anchor);
  toe_sock_close(dev->st, sh->s); /* a listener resets what waits in its queue; UDP: closed */
  if (dev->stats.share_inuse)
    dev->stats.share_inuse--;
  free(sh);
}

/* Frees token t (expired, dropped, or its process ended) and the reference it held. */
static void token_free(struct toed_ctl_dev *dev, struct ctl_token *t)
{
  struct ctl_share *sh = t->sh;
  ctl_quota_give(dev, t->uid, CTL_Q_TOKEN);
  if (t->bound && t->pidfd >= 0)
    close(t->pidfd); /* which also takes it out of toed's epoll set */
  memset(t, 0, sizeof(*t));
  dev->tokens_live--;
  ses_share_put(dev, sh);
}

/* Whether the process behind a bound token has ended (a pidfd polls readable when it exits,
 * zombie or reaped). */
static bool token_holder_gone(const struct ctl_token *t)
{
  if (t->pidfd < 0)
    return ctl_pid_ended(t->pid); /* no pidfd_open: the pid itself (could be reused) */
  struct pollfd p = {.fd = t->pidfd, .events = POLLIN};
  return poll(&p, 1, 0) != 0;
}

void ctl_tokens_expire(struct toed_ctl_dev *dev, toe_time_t now)
{
  for (uint32_t i = 0; dev->tokens_live && i < CTL_TOKENS; i++) {
    struct ctl_token *t = &dev->tokens[i];
    if (!t->token || now < t->expires)
      continue;
    if (t->bound && !token_holder_gone(t)) {
      dev->stats.share_pid_polls++;
      t->expires = now + CTL_TOKEN_PID_CHECK_NS; /* its process lives: look again later */
      continue;
    }
    dev->stats.share_expired++;
    token_free(dev, t);
  }
}

int ctl_tokens_reap(struct toed_ctl_dev *dev)
{
  int n = 0;
  for (uint32_t i = 0; dev->tokens_live && i < CTL_TOKENS; i++) {
    struct ctl_token *t = &dev->tokens[i];
    if (t->token && t->bound && token_holder_gone(t)) {
      dev->stats.share_expired++;
      token_free(dev, t);
      n++;
    }
  }
  return n;
}

toe_time_t ctl_tokens_next(const struct toed_ctl_dev *dev)
{
  toe_time_t t = TOE_TIME_NEVER;
  for (uint32_t i = 0; dev->tokens_live && i < CTL_TOKENS; i++)
    if (dev->tokens[i].token && dev->tokens[i].expires < t)
      t = dev->tokens[i].expires;
  return t;
}

/*
 * SHARE: a token that lets a session of the same uid (any uid if the sharer is root) adopt k (a
 * listener or a UDP socket). A
 * listener's posted ACCEPTs are handed back first (-ECONNABORTED): from now on connections go
 * only to holders that ask for them, so a process that shares a listener and never accepts on
 * it again (a pre-fork server's master) does not take connections nobody will serve.
 */
void ses_op_share(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  struct toed_ctl_dev *dev = cl->dev;
  ctl_tokens_expire(dev, cl->now);
  struct ctl_token *t = NULL;
  for (uint32_t i = 0; i < CTL_TOKENS && !t; i++)
    if (!dev->tokens[i].token)
      t = &dev->tokens[i];
  if (!t) {
    ses_finish_res(cl, sqe, -TOE_EMFILE);
    return;
  }
  int q = ctl_quota_take(dev, cl->uid, CTL_Q_TOKEN, true); /* given back at adopt or expiry */
  if (q < 0) {
    ses_finish_res(cl, sqe, q);
    return;
  }
  uint64_t tok = 0;
  while (!tok) {
    if (getrandom(&tok, sizeof(tok), 0) != (ssize_t)sizeof(tok)) {
      ctl_quota_give(dev, cl->uid, CTL_Q_TOKEN);
      ses_finish_res(cl, sqe, -TOE_EAGAIN);
      return;
    }
  }
  if (!k->sh) {
    struct ctl_share *sh = calloc(1, sizeof(*sh));
    if (!sh) {
      ctl_quota_give(dev, cl->uid, CTL_Q_TOKEN);
      ses_finish_res(cl, sqe, -TOE_ENOMEM);
      return;
    }
    sh->s = k->s;
    sh->proto = k->proto;
    sh->refs = 1;
    share_link(sh, k);
    dev->stats.share_inuse++;
  }
  struct toe_tcp_info info;
  bool conn = k->proto == TOE_ABI_PROTO_TCP &&
              !(toe_tcp_get_info(dev->st, k->s, &info) == 0 && info.state == TOE_TCP_LISTEN);
  if (conn) {
    /* A connection: from now on the sharer gets received data only once it asks again (a
     * SETSOCKOPT RXBUFS gives its credit back), so that bytes go to the process that reads
     * them and not into the buffers of one that forked and will close its copy (a
     * fork-per-connection server's parent). What was lent before this completion is the
     * sharer's to hand on (docs/interception.md "fork and exec"). */
    cl->slots[k->index].rx_max = 0;
    k->sh->active = NULL;
  } else if (k->proto == TOE_ABI_PROTO_TCP) {
    ses_cancel_ops(cl, k, -TOE_ECONNABORTED, false, false);
  }
  k->sh->refs++;
  t->token = tok;
  t->uid = cl->uid;
  t->expires = cl->now + CTL_TOKEN_TTL_NS;
  t->sh = k->sh;
  dev->tokens_live++;
  dev->stats.share_tokens++;
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  cqe.u.share.token = tok;
  ses_finish(cl, &cqe, sqe, 0);
}

/* The parent process id of `pid` (/proc/PID/stat), or -1. */
static pid_t parent_of(pid_t pid)
{
  char path[64], buf[512];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *c = strrchr(buf, ')'); /* the command may hold spaces and parentheses */
  int ppid;
  if (!c || sscanf(c + 1, " %*c %d", &ppid) != 1)
    return -1;
  return (pid_t)ppid;
}

/*
 * ADOPT F_BIND: token t is held by process pid (0: the client's own) until it ends. Only the
 * client itself or a child of it (a fork the token was made for), seen in toed's pid namespace:
 * a client in another one gets -EPERM and its token keeps the few seconds' expiry.
 */
static int token_bind(struct ctl_client *cl, struct ctl_token *t, pid_t pid)
{
  if (pid == 0)
    pid = cl->pid;
  if (pid <= 0 || (pid != cl->pid && parent_of(pid) != cl->pid))
    return -TOE_EPERM;
  int fd = cl->dev->pidfd_open(pid);
  if (fd < 0 && errno != ENOSYS)
    return -TOE_EPERM;
  if (t->bound && t->pidfd >= 0)
    close(t->pidfd);
  t->bound = true;
  t->pidfd = fd;
  t->pid = pid;
  t->expires = ctl_token_watch(cl->dev, t, cl->now); /* on its exit, or polled without pidfd */
  return 0;
}

/* ADOPT: a handle of this session to the socket a token names (the token is used up); with a
 * flag, F_BIND or F_DROP on the token instead. */
void ses_op_adopt(struct ctl_client *cl, const struct toe_abi_sqe *sqe)
{
  struct toed_ctl_dev *dev = cl->dev;
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  ctl_tokens_expire(dev, cl->now);
  struct ctl_token *t = NULL;
  for (uint32_t i = 0; i < CTL_TOKENS && !t; i++)
    if (dev->tokens[i].token && dev->tokens[i].token == sqe->u.adopt.token)
      t = &dev->tokens[i];
  /* A token is the adopter's only if it has the sharer's uid, or the sharer is root: a root
   * daemon that forks workers and lets them drop privileges (nginx's "user nobody") hands them
   * its sockets, as it would its kernel sockets. The token itself never leaves the processes
   * forked from the sharer (it is random and lives in their memory). */
  if (!t || (t->uid != cl->uid && t->uid != 0)) {
    /* Unknown and foreign tokens look the same: a client learns nothing of others'. */
    dev->stats.share_refused++;
    ses_finish(cl, &cqe, sqe, -TOE_ENOENT);
    return;
  }
  if (sqe->u.adopt.adopt_flags == TOE_ABI_ADOPT_F_BIND) {
    ses_finish(cl, &cqe, sqe, token_bind(cl, t, (pid_t)sqe->u.adopt.pid));
    return;
  }
  if (sqe->u.adopt.adopt_flags == TOE_ABI_ADOPT_F_DROP) {
    token_free(dev, t);
    ses_finish(cl, &cqe, sqe, 0);
    return;
  }
  if (cl->abi.handles_inuse >= cl->abi.layout.max_handles) {
    ses_finish(cl, &cqe, sqe,
               -TOE_EMFILE); /* the token stays: the client may close one and retry */
    return;
  }
  struct ctl_share *sh = t->sh;
  enum ctl_quota_kind qk = sh->proto == TOE_ABI_PROTO_TCP ? CTL_Q_TCP : CTL_Q_UDP;
  int q = ctl_quota_take(dev, cl->uid, qk, false); /* the socket exists: the uid's share only */
  if (q < 0) {
    ses_finish(cl, &cqe, sqe, q); /* the token stays */
    return;
  }
  uint32_t h = 0;
  struct ctl_sock *n = ses_sock_alloc(dev);
  struct toe_sockaddr fam_name;
  toe_sock_name(sh->s, &fam_name, NULL); /* 1.7: the handle keeps the socket's family */
  uint16_t fam = fam_name.family == TOE_AF_INET6 ? TOE_ABI_AF_INET6 : TOE_ABI_AF_INET;
  int rc = !n ? -TOE_EMFILE
           : fam == TOE_ABI_AF_INET6 && !(cl->abi.caps & TOE_ABI_CAP_IPV6)
               ? -TOE_EAFNOSUPPORT
               : toe_abi_handle_alloc(&cl->abi, sh->proto, fam, &h);
  if (rc < 0) {
    if (n)
      ses_sock_free(dev, n);
    ctl_quota_give(dev, cl->uid, qk);
    ses_finish(cl, &cqe, sqe, rc);
    return;
  }
  n->charged = true;
  ctl_quota_give(dev, t->uid, CTL_Q_TOKEN);
  if (t->bound && t->pidfd >= 0)
    close(t->pidfd);        /* which also takes it out of toed's epoll set */
  memset(t, 0, sizeof(*t)); /* its reference goes to the new holder */
  dev->tokens_live--;
  n->cl = cl;
  n->s = sh->s;
  n->proto = sh->proto;
  n->handle = h;
  n->index = TOE_ABI_HANDLE_INDEX(h);
  n->sock_data = sqe->u.adopt.sock_data;
  cl->hs[n->index] = n;
  share_link(sh, n);
  share_retarget(dev, sh);
  struct toe_sockaddr local, remote;
  toe_sock_name(sh->s, &local, &remote);
  uint8_t state;
  struct toe_tcp_info info;
  if (sh->proto == TOE_ABI_PROTO_TCP &&
      !(toe_tcp_get_info(dev->st, sh->s, &info) == 0 && info.state == TOE_TCP_LISTEN)) {
    /* A connection: this holder is the one that uses it now. Whatever the engine holds (data,
     * the peer's FIN, an error) is looked at for it at once. */
    state = TOE_ABI_ADOPT_TCP_CONNECTED;
    cl->slots[n->index].state = TOE_ABI_HS_CONNECTED;
    sh->active = n;
    cqe.u.adopt.peer_port = remote.port;
    /* An IPv6 peer does not fit the 4 bytes: the host reads it with STATS SOCKET (1.7). */
    if (remote.family == TOE_AF_INET) {
      cqe.u.adopt.peer_addr[0] = (uint8_t)(remote.addr >> 24);
      cqe.u.adopt.peer_addr[1] = (uint8_t)(remote.addr >> 16);
      cqe.u.adopt.peer_addr[2] = (uint8_t)(remote.addr >> 8);
      cqe.u.adopt.peer_addr[3] = (uint8_t)remote.addr;
    }
    n->flags |= SF_RX;
    n->ev |= TOE_EV_READABLE | TOE_EV_WRITABLE;
    ses_list_add(cl, n, CTL_LIST_WORK);
  } else if (sh->proto == TOE_ABI_PROTO_TCP) {
    state = TOE_ABI_ADOPT_LISTENING;
    cl->slots[n->index].state = TOE_ABI_HS_LISTENING;
  } else if (remote.family) {
    state = TOE_ABI_ADOPT_CONNECTED;
    cl->slots[n->index].state = TOE_ABI_HS_CONNECTED;
  } else {
    state = TOE_ABI_ADOPT_BOUND;
    cl->slots[n->index].state = TOE_ABI_HS_BOUND;
  }
  dev->stats.socks_inuse++;
  dev->stats.socks_opened++;
  dev->stats.share_adopted++;
  if (sh->proto == TOE_ABI_PROTO_UDP) {
    n->flags |= SF_RX; /* datagrams may be waiting already */
    ses_list_add(cl, n, CTL_LIST_WORK);
  }
  addr_to_abi(&local, &cqe.u.adopt.local);
  cqe.u.adopt.proto = sh->proto;
  cqe.u.adopt.state = state;
  cqe.handle = h;
  ses_finish(cl, &cqe, sqe, 0);
}
