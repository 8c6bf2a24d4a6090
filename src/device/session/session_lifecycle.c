/*
 * A session's start and end: the region, rings and doorbells set up from the hello, the host's
 * copies of the files closed once the reply went out, and the teardown (the host's last submissions
 * run, what is left open reset, counters and quotas given back).
 */
#define _GNU_SOURCE

#include "device/session/session_internal.h"
#include "transport/os/region_os.h"
#include "transport/region.h"

#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Start and end                                                                              */

/* The region header is informational for the host; the device only writes it. */
void ses_region_state(struct ctl_client *cl, uint32_t state, int32_t status)
{
  if (!cl->region)
    return;
  volatile struct toe_abi_region_hdr *h = (volatile struct toe_abi_region_hdr *)cl->region;
  h->dev_status = status;
  h->dev_state = state;
}

void ctl_session_fail(struct ctl_client *cl, int status, enum ctl_end_kind kind)
{
  if (cl->end_status)
    return; /* the first reason stands */
  cl->end_status = status < 0 ? status : -TOE_EPROTO;
  cl->end_kind = kind;
}

static void session_free(struct ctl_client *cl)
{
  struct toed_ctl_dev *dev = cl->dev;
  if (cl->kick >= 0) {
    epoll_ctl(dev->epfd, EPOLL_CTL_DEL, cl->kick, NULL); /* the host holds the same file */
    close(cl->kick);
  }
  if (cl->notify >= 0)
    close(cl->notify);
  cl->kick = cl->notify = -1;
  if (cl->region)
    munmap(cl->region, cl->region_size);
  cl->region = NULL;
  free(cl->slots);
  free(cl->bufs);
  free(cl->hs);
  free(cl->ops);
  free(cl->free_bufs);
  cl->slots = NULL;
  cl->bufs = NULL;
  cl->hs = NULL;
  cl->ops = NULL;
  cl->free_bufs = NULL;
}

int ctl_session_start(struct ctl_client *cl, const struct toe_abi_hello_reply *rep,
                      int fds[TOE_ABI_FD_MAX], toe_time_t now)
{
  const struct toe_abi_layout *l = &rep->layout;
  struct toed_ctl_dev *dev = cl->dev;
  int rc = -TOE_ENOMEM;
  for (int i = 0; i < TOE_ABI_FD_MAX; i++)
    fds[i] = -1;
  cl->kick = cl->notify = -1;
  cl->region = NULL;
  memset(&cl->cap, 0, sizeof(cl->cap));
  cl->cap.buf = CTL_NONE;

  /* The region (header and rings written) and the doorbells: the transport's set-up. */
  struct toe_region_os ro;
  rc = toe_region_os_create_sealed(&ro, l, rep->caps, rep->client_id);
  if (rc < 0)
    return rc;
  cl->region = ro.region;
  cl->region_size = ro.region_size;
  cl->kick = ro.kick;
  cl->notify = ro.notify;
  cl->posix_bells = ro.posix;
  memcpy(fds, ro.host, sizeof(ro.host));

  cl->slots = calloc(l->max_handles, sizeof(*cl->slots));
  cl->bufs = calloc(l->buf_count, sizeof(*cl->bufs));
  cl->hs = calloc(l->max_handles, sizeof(*cl->hs));
  cl->ops = calloc(l->sq_entries, sizeof(*cl->ops));
  cl->free_bufs = calloc(l->buf_count, sizeof(*cl->free_bufs));
  if (!cl->slots || !cl->bufs || !cl->hs || !cl->ops || !cl->free_bufs)
    goto fail;
  rc = toe_abi_client_init(&cl->abi, l, rep->caps, cl->slots, cl->bufs);
  if (rc < 0)
    goto fail;
  struct toe_region_rings rings;
  rc = toe_region_rings_device(&rings, cl->region, l);
  if (rc < 0)
    goto fail;
  cl->sq = rings.sq;
  cl->cq = rings.cq;
  cl->fq = rings.fq;
  /* 1.6: a host rings once per sleep of ours, not on every publish while we sleep; we clear the
   * flags whenever we read the kick (ctl_session_kick), as toe_ring_cons_count_sleeps requires. */
  toe_ring_cons_count_sleeps(&cl->sq);
  toe_ring_cons_count_sleeps(&cl->fq);
  for (uint32_t i = 0; i < l->sq_entries; i++)
    cl->ops[i].next = i + 1 < l->sq_entries ? i + 1 : CTL_NONE;
  cl->ops_free = 0;
  cl->ops_navail = l->sq_entries;
  cl->cq_reserved = 0;
  cl->nfree_bufs = 0;
  cl->work_head = cl->work_tail = cl->wait_head = cl->wait_tail = NULL;
  cl->resources = cl->cq_dirty = cl->shutdown_posted = cl->sq_blocked = false;
  cl->awake = true;
  cl->last_active = now;
  cl->retry_at = cl->sq_retry_at = TOE_TIME_NEVER;
  cl->now = now;
  cl->end_status = 0;

  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ctl_tag(cl->slot, cl->gen, CTL_TAG_KICK)};
  if (epoll_ctl(dev->epfd, EPOLL_CTL_ADD, cl->kick, &ev) < 0) {
    rc = -TOE_ENOMEM;
    goto fail;
  }
  return 0;

fail:
  if (rc >= 0)
    rc = -TOE_ENOMEM;
  ctl_session_handed(cl, fds, TOE_ABI_FD_MAX);
  session_free(cl);
  return rc;
}

void ctl_session_handed(struct ctl_client *cl, int fds[TOE_ABI_FD_MAX], uint32_t nfds)
{
  for (uint32_t i = 0; i < nfds && i < TOE_ABI_FD_MAX; i++) {
    if (fds[i] >= 0 && fds[i] != cl->kick && fds[i] != cl->notify)
      close(fds[i]);
    fds[i] = -1;
  }
}

void ctl_session_end(struct ctl_client *cl, int status, enum ctl_end_kind kind)
{
  if (cl->state != CTL_CS_ACTIVE || cl->ending)
    return;
  cl->ending = true;
  struct toed_ctl_dev *dev = cl->dev;
  toe_time_t now = cl->now;

  if (kind == CTL_END_CLIENT && !cl->end_status) {
    /* The host's last words: what it submitted before closing the control socket is executed,
     * so a CLOSE it sent on its way out is a graceful close, not a reset. */
    cl->awake = true;
    ses_take_fill(cl);
    ses_take_sqes(cl, cl->sq.size);
    for (uint32_t budget = WORK_BUDGET; cl->work_head && budget && !cl->end_status; budget--) {
      struct ctl_sock *k = cl->work_head;
      ses_list_remove(cl, k);
      ses_sock_work(cl, k);
    }
  }
  if (cl->cap.on)
    ses_cap_unlist(cl); /* nobody will read the records */
  /* The completions written so far (the refusals that ended it, say) become visible. */
  if (!toe_ring_error(&cl->cq))
    ses_publish(cl);
  ses_region_state(cl, TOE_ABI_DEV_GONE, status);

  /* What is left open is reset: its owner is gone and will read nothing (the issue: RST to the
   * peers). Waiting ops die without completions; nobody reads them. */
  for (uint32_t i = 0; cl->hs && i < cl->abi.layout.max_handles; i++) {
    struct ctl_sock *k = cl->hs[i];
    if (!k)
      continue;
    ses_cancel_ops(cl, k, 0, true, true);
    dev->stats.socks_reset_on_end++;
    ses_sock_close(cl, k, true);
  }
  cl->work_head = cl->work_tail = cl->wait_head = cl->wait_tail = NULL;
  session_free(cl);
  switch (kind) {
  case CTL_END_CLIENT:
    dev->stats.ended_client++;
    break;
  case CTL_END_ABUSE:
    dev->stats.ended_abuse++;
    break;
  case CTL_END_PROTOCOL:
    dev->stats.ended_protocol++;
    break;
  case CTL_END_SHUTDOWN:
    dev->stats.ended_shutdown++;
    break;
  case CTL_END_SETUP:
    dev->stats.setup_errors++;
    break;
  }
  if (dev->stats.clients_attached)
    dev->stats.clients_attached--;
  (void)now;
}
