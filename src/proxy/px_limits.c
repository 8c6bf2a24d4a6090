/*
 * Flow limits of toe-proxyd (docs/interception.md "toe-proxyd", "Limits"). The proxy runs as
 * root and every local user's selected flows come to it: without limits one user could make it
 * open descriptors, buffers and device sockets without end. Each flow is charged to the uid of
 * the application's kernel socket (px_sock_find: sock_diag): at most max_per_uid flows per uid
 * (root's own flows only count against the total) and max_total in all. A flow over a limit is
 * refused: a TCP connection reset, a UDP datagram dropped, counted in flows_refused.
 */
#include "proxy/proxyd.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* The uid of the kernel socket (app, dst); (uid_t)-1 if not found. */
static uid_t socket_uid(enum px_proto proto, const struct sockaddr_in *app,
                        const struct sockaddr_in *dst)
{
  uid_t uid;
  unsigned long inode;
  return px_sock_find(proto, app, dst, &uid, &inode) == 0 ? uid : (uid_t)-1;
}

static struct px_uid_count *slot(struct proxyd *p, uid_t uid, bool make)
{
  struct px_uid_count *free_slot = NULL;
  for (int i = 0; i < PX_UIDS_MAX; i++) {
    struct px_uid_count *u = &p->lim.uids[i];
    if (u->flows && u->uid == uid)
      return u;
    if (!u->flows && !free_slot)
      free_slot = u;
  }
  if (make && free_slot)
    free_slot->uid = uid;
  return make ? free_slot : NULL;
}

bool px_flow_admit(struct proxyd *p, enum px_proto proto, const struct sockaddr_in *app,
                   const struct sockaddr_in *dst, uid_t *uid_out)
{
  uid_t uid = socket_uid(proto, app, dst);
  *uid_out = uid;
  if (p->lim.total >= p->lim.max_total) {
    p->ctr.flows_refused++;
    if (!p->lim.logged_total++)
      px_log("refusing flows: %u open, the most --max-flows allows", p->lim.total);
    return false;
  }
  if (uid != 0) {
    struct px_uid_count *u = slot(p, uid, true);
    /* No slot left (PX_UIDS_MAX uids with flows): the flow is refused as over its limit. */
    if (!u || u->flows >= p->lim.max_per_uid) {
      p->ctr.flows_refused++;
      if (p->lim.logged_uid++ < 8)
        px_log("refusing a flow of uid %ld: it has %u open, the most --max-flows-per-uid allows",
               (long)uid, u ? u->flows : 0);
      return false;
    }
    u->flows++;
  }
  p->lim.total++;
  return true;
}

void px_flow_release(struct proxyd *p, uid_t uid)
{
  if (p->lim.total)
    p->lim.total--;
  if (uid == 0)
    return;
  struct px_uid_count *u = slot(p, uid, false);
  if (u && u->flows)
    u->flows--;
}
