/*
 * The neighbour reachability state machine (engine/nd_cache.c) against RFC 4861 appendix C and
 * 7.2.5, on a virtual clock, with neighbor advertisements as toe_nd_parse() decodes them.
 */
#include "engine/nd_cache.h"
#include "testlib.h"
#include "wire/icmpv6.h"
#include "wire/ndp.h"

#include <string.h>

static const uint8_t MAC1[6] = {0x02, 0, 0, 0, 0, 1};
static const uint8_t MAC2[6] = {0x02, 0, 0, 0, 0, 2};

static struct toe_in6_addr target(void)
{
  struct toe_in6_addr a = {{0x20, 0x01, 0x0d, 0xb8}};
  a.b[15] = 2;
  return a;
}

/* An NA for target() built and parsed by the wire layer, so the view is what the engine sees. */
static struct toe_nd_view na_view(bool router, bool solicited, bool override, const uint8_t *tll,
                                  uint8_t *buf)
{
  struct toe_in6_addr t = target();
  struct toe_ipv6_view ip = {.hop_limit = 255, .src = t};
  ip.dst = t;
  ip.dst.b[15] = 1;
  struct toe_nd_view v;
  memset(&v, 0, sizeof v);
  int n = toe_nd_write_na(buf, 32, &t, router, solicited, override, tll);
  if (n < 0 || toe_nd_parse(&v, &ip, buf, (size_t)n, false) != 0)
    memset(&v, 0xee, sizeof v); /* makes the caller's checks fail loudly */
  return v;
}

TEST(resolve_and_fail)
{
  struct toe_nd_params p;
  toe_nd_params_default(&p);
  struct toe_nd_entry e;
  struct toe_in6_addr t = target();
  toe_nd_entry_init(&e, &t);
  toe_time_t now = TOE_SEC(100);
  CHECK_EQ(toe_nd_output(&e, now, &p), TOE_ND_ACT_QUEUE | TOE_ND_ACT_MCAST_NS);
  CHECK_EQ(e.state, TOE_ND_INCOMPLETE);
  CHECK_EQ(toe_nd_output(&e, now, &p), TOE_ND_ACT_QUEUE);
  CHECK_EQ(toe_nd_timer(&e, now + TOE_MSEC(999), &p), 0); /* not yet */
  /* MAX_MULTICAST_SOLICIT = 3 solicitations, RetransTimer apart, then failure. */
  now += TOE_SEC(1);
  CHECK_EQ(toe_nd_timer(&e, now, &p), TOE_ND_ACT_MCAST_NS);
  now += TOE_SEC(1);
  CHECK_EQ(toe_nd_timer(&e, now, &p), TOE_ND_ACT_MCAST_NS);
  now += TOE_SEC(1);
  CHECK_EQ(toe_nd_timer(&e, now, &p), TOE_ND_ACT_FAIL);
  CHECK_EQ(e.state, TOE_ND_NONE);
  CHECK_EQ(e.deadline, 0);
}

TEST(solicited_na_resolves)
{
  struct toe_nd_params p;
  toe_nd_params_default(&p);
  struct toe_nd_entry e;
  struct toe_in6_addr t = target();
  uint8_t b[32];
  toe_nd_entry_init(&e, &t);
  toe_time_t now = TOE_SEC(1);
  toe_nd_output(&e, now, &p);
  /* An NA without a target link-layer address cannot resolve. */
  struct toe_nd_view na = na_view(false, true, true, NULL, b);
  CHECK_EQ(toe_nd_advert(&e, now, &na, &p), 0);
  CHECK_EQ(e.state, TOE_ND_INCOMPLETE);
  na = na_view(true, true, false, MAC1, b);
  CHECK_EQ(toe_nd_advert(&e, now, &na, &p), TOE_ND_ACT_FLUSH);
  CHECK_EQ(e.state, TOE_ND_REACHABLE);
  CHECK_MEM(e.mac, MAC1, 6);
  CHECK(e.is_router);
  CHECK_EQ(toe_nd_output(&e, now, &p), TOE_ND_ACT_SEND);
  /* ReachableTime later: STALE; first use: DELAY; 5 s without confirmation: PROBE. */
  now += p.reachable_time;
  CHECK_EQ(toe_nd_timer(&e, now, &p), 0);
  CHECK_EQ(e.state, TOE_ND_STALE);
  CHECK_EQ(toe_nd_output(&e, now, &p), TOE_ND_ACT_SEND);
  CHECK_EQ(e.state, TOE_ND_DELAY);
  now += TOE_SEC(5);
  CHECK_EQ(toe_nd_timer(&e, now, &p), TOE_ND_ACT_UCAST_NS);
  CHECK_EQ(e.state, TOE_ND_PROBE);
  CHECK_EQ(toe_nd_output(&e, now, &p), TOE_ND_ACT_SEND); /* the cached address meanwhile */
  /* The probe answered: solicited NA, same address. */
  na = na_view(true, true, false, MAC1, b);
  CHECK_EQ(toe_nd_advert(&e, now, &na, &p), 0);
  CHECK_EQ(e.state, TOE_ND_REACHABLE);
  /* Again to PROBE, and this time unanswered: MAX_UNICAST_SOLICIT = 3, then failure. */
  now += p.reachable_time;
  toe_nd_timer(&e, now, &p);
  toe_nd_output(&e, now, &p);
  now += TOE_SEC(5);
  CHECK_EQ(toe_nd_timer(&e, now, &p), TOE_ND_ACT_UCAST_NS);
  now += TOE_SEC(1);
  CHECK_EQ(toe_nd_timer(&e, now, &p), TOE_ND_ACT_UCAST_NS);
  now += TOE_SEC(1);
  CHECK_EQ(toe_nd_timer(&e, now, &p), TOE_ND_ACT_UCAST_NS);
  now += TOE_SEC(1);
  CHECK_EQ(toe_nd_timer(&e, now, &p), TOE_ND_ACT_FAIL);
  CHECK_EQ(e.state, TOE_ND_NONE);
}

TEST(upper_layer_confirmation)
{
  struct toe_nd_params p;
  toe_nd_params_default(&p);
  struct toe_nd_entry e;
  struct toe_in6_addr t = target();
  toe_nd_entry_init(&e, &t);
  toe_time_t now = TOE_SEC(1);
  CHECK_EQ(toe_nd_confirm(&e, now, &p), 0); /* no entry: nothing */
  CHECK_EQ(e.state, TOE_ND_NONE);
  toe_nd_output(&e, now, &p);
  toe_nd_confirm(&e, now, &p); /* INCOMPLETE has no address to confirm */
  CHECK_EQ(e.state, TOE_ND_INCOMPLETE);
  /* An NS from the neighbour with its address: STALE, queue flushed (appendix C). */
  CHECK_EQ(toe_nd_lladdr(&e, MAC1, false), TOE_ND_ACT_FLUSH);
  CHECK_EQ(e.state, TOE_ND_STALE);
  toe_nd_output(&e, now, &p);
  CHECK_EQ(e.state, TOE_ND_DELAY);
  /* TCP saw its data acknowledged within DELAY_FIRST_PROBE_TIME: no probe at all. */
  toe_nd_confirm(&e, now + TOE_SEC(2), &p);
  CHECK_EQ(e.state, TOE_ND_REACHABLE);
  CHECK_EQ(e.deadline, now + TOE_SEC(2) + p.reachable_time);
  CHECK_EQ(toe_nd_timer(&e, now + TOE_SEC(5), &p), 0);
  CHECK_EQ(e.state, TOE_ND_REACHABLE);
}

TEST(lladdr_and_override_rules)
{
  struct toe_nd_params p;
  toe_nd_params_default(&p);
  struct toe_nd_entry e;
  struct toe_in6_addr t = target();
  uint8_t b[32];
  toe_time_t now = TOE_SEC(1);
  /* An NS creates a STALE entry (7.2.3); the same address again changes nothing. */
  toe_nd_entry_init(&e, &t);
  CHECK_EQ(toe_nd_lladdr(&e, MAC1, false), 0);
  CHECK_EQ(e.state, TOE_ND_STALE);
  toe_nd_confirm(&e, now, &p);
  CHECK_EQ(toe_nd_lladdr(&e, MAC1, false), 0);
  CHECK_EQ(e.state, TOE_ND_REACHABLE);
  /* A different address: recorded, STALE. */
  toe_nd_lladdr(&e, MAC2, false);
  CHECK_MEM(e.mac, MAC2, 6);
  CHECK_EQ(e.state, TOE_ND_STALE);

  /* 7.2.5 (a): a different address without Override: REACHABLE -> STALE, address kept. */
  toe_nd_confirm(&e, now, &p);
  struct toe_nd_view na = na_view(false, true, false, MAC1, b);
  CHECK_EQ(toe_nd_advert(&e, now, &na, &p), 0);
  CHECK_EQ(e.state, TOE_ND_STALE);
  CHECK_MEM(e.mac, MAC2, 6);
  /* In STALE it changes nothing at all. */
  CHECK_EQ(toe_nd_advert(&e, now, &na, &p), 0);
  CHECK_EQ(e.state, TOE_ND_STALE);
  CHECK_MEM(e.mac, MAC2, 6);
  /* 7.2.5 (b): with Override, unsolicited: new address, STALE. */
  toe_nd_confirm(&e, now, &p);
  na = na_view(false, false, true, MAC1, b);
  toe_nd_advert(&e, now, &na, &p);
  CHECK_MEM(e.mac, MAC1, 6);
  CHECK_EQ(e.state, TOE_ND_STALE);
  /* Unsolicited, same address: state unchanged. */
  toe_nd_confirm(&e, now, &p);
  toe_nd_advert(&e, now, &na, &p);
  CHECK_EQ(e.state, TOE_ND_REACHABLE);
  /* No target address, solicited: REACHABLE. */
  toe_nd_lladdr(&e, MAC2, false);
  na = na_view(false, true, false, NULL, b);
  toe_nd_advert(&e, now, &na, &p);
  CHECK_EQ(e.state, TOE_ND_REACHABLE);
  CHECK_MEM(e.mac, MAC2, 6);

  /* IsRouter: an RA sets it; an NA with R clear takes it away, and says so once. */
  toe_nd_lladdr(&e, MAC2, true);
  CHECK(e.is_router);
  na = na_view(false, false, false, MAC2, b);
  CHECK_EQ(toe_nd_advert(&e, now, &na, &p), TOE_ND_ACT_ROUTER_LOST);
  CHECK(!e.is_router);
  CHECK_EQ(toe_nd_advert(&e, now, &na, &p), 0);

  /* No entry: an NA creates none. */
  toe_nd_entry_init(&e, &t);
  na = na_view(true, false, true, MAC1, b);
  CHECK_EQ(toe_nd_advert(&e, now, &na, &p), 0);
  CHECK_EQ(e.state, TOE_ND_NONE);
}

TEST_MAIN()
