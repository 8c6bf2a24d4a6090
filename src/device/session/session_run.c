/*
 * A session's rounds: submissions taken from the SQ (each with its CQ entry reserved), the
 * sockets' work run within a budget, completions published with their doorbell, and the adaptive
 * polling that decides when the session sleeps.
 */
#define _GNU_SOURCE

#include "device/session/session_internal.h"
#include "transport/os/region_os.h"

#include <string.h>
#include <unistd.h>

/* Submissions, as far as free op slots and CQ room allow. Returns how many were taken. */
uint32_t ses_take_sqes(struct ctl_client *cl, uint32_t budget)
{
  struct toe_abi_sqe batch[SQ_BATCH];
  uint32_t total = 0;
  cl->sq_blocked = false;
  while (total < budget && !cl->end_status) {
    int fr = toe_ring_prod_reserve(&cl->cq, cl->cq.size);
    if (fr < 0) {
      ctl_session_fail(cl, fr, CTL_END_PROTOCOL);
      break;
    }
    uint32_t room = (uint32_t)fr > cl->cq_reserved ? (uint32_t)fr - cl->cq_reserved : 0;
    uint32_t want = min_u32(min_u32(room, cl->ops_navail), min_u32(SQ_BATCH, budget - total));
    if (want == 0) {
      /* The host's CQ (or our op table) is full: the SQ waits; looked at again shortly. */
      int avail = toe_ring_cons_avail(&cl->sq);
      if (avail < 0)
        ctl_session_fail(cl, avail, CTL_END_PROTOCOL);
      else if (avail > 0) {
        cl->sq_blocked = true;
        cl->sq_retry_at = cl->now + RETRY_NS;
      }
      break;
    }
    int n = toe_ring_cons_read(&cl->sq, batch, want);
    if (n < 0) {
      ctl_session_fail(cl, n, CTL_END_PROTOCOL);
      break;
    }
    if (n == 0)
      break;
    for (int i = 0; i < n && !cl->end_status; i++) {
      cl->cq_reserved++;
      ses_submit(cl, &batch[i]);
    }
    toe_ring_cons_release(&cl->sq, (uint32_t)n);
    total += (uint32_t)n;
  }
  return total;
}

void ses_publish(struct ctl_client *cl)
{
  if (!cl->cq_dirty)
    return;
  cl->cq_dirty = false;
  toe_ring_publish(&cl->cq);
  /* The host rings nothing when it drains the CQ; it said whether it sleeps. */
  if (toe_ring_prod_needs_wakeup(&cl->cq)) {
    if (toe_bell_ring(cl->notify, cl->posix_bells)) {
      cl->abi.stats.notifies++;
      cl->dev->stats.notifies++;
    }
  }
}

static void wake(struct ctl_client *cl, toe_time_t now)
{
  if (!cl->awake) {
    cl->awake = true;
    toe_ring_cons_clear_wakeup(&cl->sq);
    toe_ring_cons_clear_wakeup(&cl->fq);
  }
  cl->last_active = now;
}

void ctl_session_kick(struct ctl_client *cl, toe_time_t now)
{
  uint64_t v;
  if (read(cl->kick, &v, sizeof v) == (ssize_t)sizeof v) {
    cl->abi.stats.kicks++;
    cl->dev->stats.kicks++;
  }
  if (cl->state == CTL_CS_ACTIVE)
    wake(cl, now);
}

void ctl_session_run(struct ctl_client *cl, toe_time_t now)
{
  if (cl->state != CTL_CS_ACTIVE || cl->end_status)
    return;
  cl->now = now;
  bool active = false;
  if (cl->awake || cl->resources || (cl->sq_blocked && now >= cl->sq_retry_at)) {
    if (ses_take_fill(cl))
      active = true;
    if (ses_take_sqes(cl, SQ_BUDGET))
      active = true;
  }
  /* A held receive is looked at every round: the host consuming the CQ rings nothing. */
  if (cl->wait_head && (cl->resources || cl->rx_holding || now >= cl->retry_at)) {
    ses_requeue_waiting(cl);
    cl->retry_at = TOE_TIME_NEVER;
    cl->rx_holding = false;
  }
  cl->resources = false;
  for (uint32_t budget = WORK_BUDGET; cl->work_head && budget && !cl->end_status; budget--) {
    struct ctl_sock *k = cl->work_head;
    ses_list_remove(cl, k);
    ses_sock_work(cl, k);
  }
  if (cl->end_status)
    return;
  /* Captured frames go out once per round (a batch of the loop), not per frame. */
  if (cl->cap.records)
    (void)ses_cap_post(cl); /* no CQ room: looked at again in RETRY_NS (ctl_session_next_wake) */
  if (cl->cq_dirty)
    active = true;
  ses_publish(cl);
  if (active)
    cl->last_active = now;

  /* Adaptive polling: after --poll-us without anything to do, announce the sleep (NEED_WAKEUP on
   * both rings the host produces) and re-check, so a submission racing with it is not missed. */
  if (cl->awake && !cl->work_head && now - cl->last_active >= cl->dev->poll_ns) {
    int a = toe_ring_cons_prepare_sleep(&cl->sq);
    int b = toe_ring_cons_prepare_sleep(&cl->fq);
    if (a < 0 || b < 0) {
      ctl_session_fail(cl, -TOE_EPROTO, CTL_END_PROTOCOL);
      return;
    }
    if ((a > 0 && !cl->sq_blocked) || b > 0) {
      toe_ring_cons_clear_wakeup(&cl->sq);
      toe_ring_cons_clear_wakeup(&cl->fq);
      cl->last_active = now;
    } else {
      cl->awake = false;
    }
  }
}

toe_time_t ctl_session_next_wake(const struct ctl_client *cl, toe_time_t now)
{
  if (cl->state == CTL_CS_HELLO)
    return cl->hello_deadline;
  if (cl->state != CTL_CS_ACTIVE)
    return TOE_TIME_NEVER;
  if (cl->end_status || cl->work_head || cl->resources || cl->cq_dirty)
    return now;
  if (cl->awake)
    return now; /* spinning */
  toe_time_t t = TOE_TIME_NEVER;
  if (cl->wait_head && cl->retry_at < t)
    t = cl->retry_at;
  if (cl->sq_blocked && cl->sq_retry_at < t)
    t = cl->sq_retry_at;
  if (cl->cap.records && now + RETRY_NS < t)
    t = now + RETRY_NS; /* records wait for CQ room */
  if (cl->dev->stopping && !cl->shutdown_posted && now + RETRY_NS < t)
    t = now + RETRY_NS;
  return t;
}

void ctl_session_post_shutdown(struct ctl_client *cl)
{
  if (cl->state != CTL_CS_ACTIVE || cl->shutdown_posted || cl->end_status)
    return;
  ses_region_state(cl, TOE_ABI_DEV_STOPPING, 0);
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  if (ses_post_event(cl, NULL, TOE_ABI_EV_SHUTDOWN, 0, 0, &cqe)) {
    cl->shutdown_posted = true;
    ses_publish(cl);
  }
}
