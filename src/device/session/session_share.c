/*
 * Shared sockets (SHARE/ADOPT, ABI 1.2): the tokens, their expiry, and the holders of a shared
 * listener or UDP socket.
 */
#define _GNU_SOURCE

#include "device/session/session_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

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

void ctl_tokens_expire(struct toed_ctl_dev *dev, toe_time_t now)
{
  for (uint32_t i = 0; dev->tokens_live && i < CTL_TOKENS; i++) {
    struct ctl_token *t = &dev->tokens[i];
    if (!t->token || now < t->expires)
      continue;
    struct ctl_share *sh = t->sh;
    ctl_quota_give(dev, t->uid, CTL_Q_TOKEN);
    memset(t, 0, sizeof(*t));
    dev->tokens_live--;
    dev->stats.share_expired++;
    ses_share_put(dev, sh);
  }
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
  if (k->proto == TOE_ABI_PROTO_TCP)
    ses_cancel_ops(cl, k, -TOE_ECONNABORTED, false, false);
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

/* ADOPT: a handle of this session to the socket a token names (the token is used up). */
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
  int rc = n ? toe_abi_handle_alloc(&cl->abi, sh->proto, TOE_ABI_AF_INET, &h) : -TOE_EMFILE;
  if (rc < 0) {
    if (n)
      ses_sock_free(dev, n);
    ctl_quota_give(dev, cl->uid, qk);
    ses_finish(cl, &cqe, sqe, rc);
    return;
  }
  n->charged = true;
  ctl_quota_give(dev, t->uid, CTL_Q_TOKEN);
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
  if (sh->proto == TOE_ABI_PROTO_TCP) {
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
