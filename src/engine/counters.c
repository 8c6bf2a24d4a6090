/*
 * Walking the counters for printing: the layer lists in include/toe/counters.h generate one visit
 * per counter, in declaration order, so a counter added to a list shows up here by itself.
 */
#include "toe/counters.h"

#include <stddef.h>

void toe_counters_visit(const struct toe_counters *c, toe_counter_visit_fn fn, void *arg)
{
  if (!c || !fn)
    return;
#define VISIT_(layer, member, name) fn(arg, layer, #name, c->member.name);
#define VISIT_LINK_(name) VISIT_("link", link, name)
#define VISIT_ARP_(name) VISIT_("arp", arp, name)
#define VISIT_IP_(name) VISIT_("ip", ip, name)
#define VISIT_ICMP_(name) VISIT_("icmp", icmp, name)
#define VISIT_UDP_(name) VISIT_("udp", udp, name)
#define VISIT_TCP_(name) VISIT_("tcp", tcp, name)
#define VISIT_PBUF_(name) VISIT_("pbuf", pbuf, name)
#define VISIT_TIMER_(name) VISIT_("timer", timer, name)
#define VISIT_STEER_(name) VISIT_("steer", steer, name)
#define VISIT_IP6_(name) VISIT_("ip6", ip6, name)
#define VISIT_ICMP6_(name) VISIT_("icmp6", icmp6, name)
#define VISIT_ND_(name) VISIT_("nd", nd, name)
  TOE_COUNTERS_LINK(VISIT_LINK_)
  TOE_COUNTERS_ARP(VISIT_ARP_)
  TOE_COUNTERS_IP(VISIT_IP_)
  TOE_COUNTERS_ICMP(VISIT_ICMP_)
  TOE_COUNTERS_UDP(VISIT_UDP_)
  TOE_COUNTERS_TCP(VISIT_TCP_)
  TOE_COUNTERS_PBUF(VISIT_PBUF_)
  TOE_COUNTERS_TIMER(VISIT_TIMER_)
  TOE_COUNTERS_STEER(VISIT_STEER_)
  TOE_COUNTERS_IP6(VISIT_IP6_)
  TOE_COUNTERS_ICMP6(VISIT_ICMP6_)
  TOE_COUNTERS_ND(VISIT_ND_)
#undef VISIT_
#undef VISIT_LINK_
#undef VISIT_ARP_
#undef VISIT_IP_
#undef VISIT_ICMP_
#undef VISIT_UDP_
#undef VISIT_TCP_
#undef VISIT_PBUF_
#undef VISIT_TIMER_
#undef VISIT_STEER_
#undef VISIT_IP6_
#undef VISIT_ICMP6_
#undef VISIT_ND_
}
