/*
 * Neighbour reachability state machine (RFC 4861 7.3.2, 7.2.3, 7.2.5, appendix C).
 */
#include "engine/nd_cache.h"

#include <string.h>

void toe_nd_params_default(struct toe_nd_params *p)
{
  p->reachable_time = TOE_SEC(30);   /* REACHABLE_TIME */
  p->retrans_timer = TOE_SEC(1);     /* RETRANS_TIMER */
  p->delay_first_probe = TOE_SEC(5); /* DELAY_FIRST_PROBE_TIME */
  p->max_multicast_solicit = 3;      /* MAX_MULTICAST_SOLICIT */
  p->max_unicast_solicit = 3;        /* MAX_UNICAST_SOLICIT */
}

void toe_nd_entry_init(struct toe_nd_entry *e, const struct toe_in6_addr *ip)
{
  memset(e, 0, sizeof *e);
  e->ip = *ip;
}

static void set_state(struct toe_nd_entry *e, uint8_t st, toe_time_t deadline)
{
  e->state = st;
  e->deadline = deadline;
}

unsigned toe_nd_output(struct toe_nd_entry *e, toe_time_t now, const struct toe_nd_params *p)
{
  switch (e->state) {
  case TOE_ND_NONE: /* 7.2.2: create INCOMPLETE, solicit, queue */
    set_state(e, TOE_ND_INCOMPLETE, now + p->retrans_timer);
    e->probes = 1;
    return TOE_ND_ACT_QUEUE | TOE_ND_ACT_MCAST_NS;
  case TOE_ND_INCOMPLETE:
    return TOE_ND_ACT_QUEUE;
  case TOE_ND_STALE: /* 7.3.3: first use of a stale entry starts the DELAY period */
    set_state(e, TOE_ND_DELAY, now + p->delay_first_probe);
    return TOE_ND_ACT_SEND;
  default: /* REACHABLE, DELAY, PROBE: the cached address is used meanwhile */
    return TOE_ND_ACT_SEND;
  }
}

unsigned toe_nd_timer(struct toe_nd_entry *e, toe_time_t now, const struct toe_nd_params *p)
{
  if (e->deadline == 0 || now < e->deadline)
    return 0;
  switch (e->state) {
  case TOE_ND_INCOMPLETE: /* 7.2.2: retransmit, then give up */
    if (e->probes < p->max_multicast_solicit) {
      e->probes++;
      e->deadline = now + p->retrans_timer;
      return TOE_ND_ACT_MCAST_NS;
    }
    set_state(e, TOE_ND_NONE, 0);
    return TOE_ND_ACT_FAIL;
  case TOE_ND_REACHABLE: /* 7.3.3: ReachableTime without confirmation */
    set_state(e, TOE_ND_STALE, 0);
    return 0;
  case TOE_ND_DELAY: /* 7.3.3: no upper-layer confirmation came: probe */
    set_state(e, TOE_ND_PROBE, now + p->retrans_timer);
    e->probes = 1;
    return TOE_ND_ACT_UCAST_NS;
  case TOE_ND_PROBE:
    if (e->probes < p->max_unicast_solicit) {
      e->probes++;
      e->deadline = now + p->retrans_timer;
      return TOE_ND_ACT_UCAST_NS;
    }
    set_state(e, TOE_ND_NONE, 0);
    return TOE_ND_ACT_FAIL;
  default:
    e->deadline = 0;
    return 0;
  }
}

unsigned toe_nd_confirm(struct toe_nd_entry *e, toe_time_t now, const struct toe_nd_params *p)
{
  if (e->state == TOE_ND_NONE || e->state == TOE_ND_INCOMPLETE)
    return 0;
  set_state(e, TOE_ND_REACHABLE, now + p->reachable_time);
  return 0;
}

unsigned toe_nd_lladdr(struct toe_nd_entry *e, const uint8_t mac[6], bool from_router)
{
  unsigned act = 0;
  if (from_router)
    e->is_router = true;
  if (e->state == TOE_ND_INCOMPLETE)
    act = TOE_ND_ACT_FLUSH; /* appendix C: INCOMPLETE + lladdr -> STALE, send the queue */
  else if (e->state != TOE_ND_NONE && memcmp(e->mac, mac, 6) == 0)
    return 0; /* 7.2.3: the same address changes nothing */
  memcpy(e->mac, mac, 6);
  set_state(e, TOE_ND_STALE, 0);
  e->probes = 0;
  return act;
}

unsigned toe_nd_advert(struct toe_nd_entry *e, toe_time_t now, const struct toe_nd_view *na,
                       const struct toe_nd_params *p)
{
  /* 7.2.5: no entry, nothing to do (an unsolicited NA creates no entry). */
  if (e->state == TOE_ND_NONE)
    return 0;
  unsigned act = 0;
  if (e->state == TOE_ND_INCOMPLETE) {
    if (!na->tll)
      return 0; /* nothing to resolve with */
    memcpy(e->mac, na->tll, 6);
    if (na->solicited)
      set_state(e, TOE_ND_REACHABLE, now + p->reachable_time);
    else
      set_state(e, TOE_ND_STALE, 0);
    e->is_router = na->router;
    e->probes = 0;
    return TOE_ND_ACT_FLUSH;
  }
  bool differs = na->tll && memcmp(na->tll, e->mac, 6) != 0;
  if (!na->override && differs) {
    /* 7.2.5 (a): another address without Override: distrust the cached one a little (REACHABLE
     * becomes STALE, so it is probed on use) but change nothing else. */
    if (e->state == TOE_ND_REACHABLE)
      set_state(e, TOE_ND_STALE, 0);
    return 0;
  }
  /* 7.2.5 (b): Override, or the same address, or none given. */
  if (differs)
    memcpy(e->mac, na->tll, 6);
  if (na->solicited) {
    set_state(e, TOE_ND_REACHABLE, now + p->reachable_time);
    e->probes = 0;
  } else if (differs) {
    set_state(e, TOE_ND_STALE, 0);
    e->probes = 0;
  }
  if (e->is_router && !na->router)
    act |= TOE_ND_ACT_ROUTER_LOST;
  e->is_router = na->router;
  return act;
}
