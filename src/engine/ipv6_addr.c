/*
 * The interface's IPv6 addresses (RFC 4291, RFC 4862): the link-local address from the MAC, the
 * configured global ones, the groups they make us listen to, on-link decisions and source address
 * selection.
 */
#include "engine/ipv6.h"
#include "engine/stack.h"

#include <string.h>

/* Unicast addresses a config may give (RFC 4291 2.4): not unspecified, loopback, multicast,
 * link-local (that one is derived from the MAC) or v4-mapped. */
static bool global_addr_ok(const struct toe_in6_addr *a)
{
  return !toe_in6_is_unspecified(a) && !toe_in6_is_loopback(a) && !toe_in6_is_multicast(a) &&
         !toe_in6_is_link_local(a) && !toe_in6_is_v4mapped(a);
}

bool toe_ipv6_config_ok(const struct toe_config *cfg)
{
  if (!cfg->ipv6)
    return cfg->addr6_count == 0;
  /* With a host interface (cfg.steering) the addresses are shared with the OS, and steering
   * keeps one answer per solicitation (toe/steer.h, docs/coexistence.md). */
  if (cfg->addr6_count > TOE_MAX_ADDR6 || cfg->nd_entries == 0)
    return false;
  /* RFC 8200 5: every IPv6 link carries 1280-byte packets. */
  if (cfg->mtu < TOE_IPV6_MIN_MTU)
    return false;
  for (unsigned i = 0; i < cfg->addr6_count; i++) {
    struct toe_in6_addr a;
    memcpy(a.b, cfg->addr6[i], 16);
    if (!global_addr_ok(&a) || cfg->addr6_prefix_len[i] == 0 || cfg->addr6_prefix_len[i] > 128)
      return false;
    for (unsigned j = 0; j < i; j++)
      if (memcmp(cfg->addr6[i], cfg->addr6[j], 16) == 0)
        return false;
  }
  return true;
}

static void add_addr(struct toe_ipv6_state *s, const struct toe_in6_addr *a, uint8_t plen)
{
  struct toe_ip6_ifaddr *ia = &s->addrs[s->naddr++];
  ia->addr = *a;
  ia->prefix_len = plen;
  toe_in6_solicited_node(&ia->snm, a);
  ia->state = TOE_IP6_PREFERRED;
  ia->autoconf = false;
  ia->valid_until = TOE_TIME_NEVER;
  ia->preferred_until = TOE_TIME_NEVER;
}

size_t toe_ipv6_mem_size(const struct toe_config *cfg)
{
  if (!cfg->ipv6)
    return 0;
  return (size_t)cfg->nd_entries * sizeof(struct toe_nd_slot);
}

void toe_ipv6_init(struct toe_stack *st, void *mem)
{
  struct toe_ipv6_state *s = &st->ip6;
  memset(s, 0, sizeof(*s));
  if (!st->cfg.ipv6)
    return;
  s->enabled = true;
  struct toe_in6_addr ll;
  toe_in6_link_local_from_mac(&ll, st->cfg.mac.b);
  add_addr(s, &ll, 64); /* RFC 4291 2.5.6: fe80::/64 */
  for (unsigned i = 0; i < st->cfg.addr6_count; i++) {
    struct toe_in6_addr a;
    memcpy(a.b, st->cfg.addr6[i], 16);
    add_addr(s, &a, st->cfg.addr6_prefix_len[i]);
  }
  /* RFC 4862 5.4: every address is tentative until DAD (at toe_stack_start) passes. */
  if (st->cfg.dad_transmits)
    for (unsigned i = 0; i < s->naddr; i++)
      s->addrs[i].state = TOE_IP6_TENTATIVE;
  toe_icmp_bucket_init(st, &s->icmp6_bucket);
  toe_ipv6_reass_init(st);
  toe_ipv6_router_init(st);
  toe_ipv6_dad_init(st);
  toe_nd_params_default(&s->nd_params);
  /* RFC 4861 6.3.2: ReachableTime is drawn uniformly from 0.5..1.5 x BaseReachableTime, so that
   * neighbours do not probe in step. 30 s base, in whole milliseconds. */
  uint32_t ms = 15000u + (uint32_t)(toe_random(st) & 0x7fffffffu) % 30001u;
  s->nd_params.reachable_time = TOE_MSEC(ms);
  s->nd = mem;
}

int toe_ip6_addr_find(const struct toe_stack *st, const struct toe_in6_addr *a)
{
  const struct toe_ipv6_state *s = &st->ip6;
  for (unsigned i = 0; i < s->naddr; i++)
    if (toe_in6_equal(&s->addrs[i].addr, a))
      return (int)i;
  return -1;
}

int toe_ip6_addr_index(const struct toe_stack *st, const struct toe_in6_addr *a)
{
  int i = toe_ip6_addr_find(st, a);
  return i >= 0 && st->ip6.addrs[i].state == TOE_IP6_PREFERRED ? i : -1;
}

bool toe_ip6_dst_is_ours(const struct toe_stack *st, const struct toe_in6_addr *dst)
{
  const struct toe_ipv6_state *s = &st->ip6;
  if (!toe_in6_is_multicast(dst))
    return toe_ip6_addr_index(st, dst) >= 0;
  struct toe_in6_addr all;
  toe_in6_all_nodes(&all);
  if (toe_in6_equal(dst, &all))
    return true;
  for (unsigned i = 0; i < s->naddr; i++)
    if (toe_in6_equal(dst, &s->addrs[i].snm))
      return true;
  return false;
}

bool toe_ip6_mc_mac_is_ours(const struct toe_stack *st, const uint8_t mac[6])
{
  const struct toe_ipv6_state *s = &st->ip6;
  if (!s->enabled || mac[0] != 0x33 || mac[1] != 0x33)
    return false;
  uint8_t m[6];
  struct toe_in6_addr all;
  toe_in6_all_nodes(&all);
  toe_in6_mc_mac(m, &all);
  if (memcmp(m, mac, 6) == 0)
    return true;
  for (unsigned i = 0; i < s->naddr; i++) {
    toe_in6_mc_mac(m, &s->addrs[i].snm);
    if (memcmp(m, mac, 6) == 0)
      return true;
  }
  return false;
}

const struct toe_in6_addr *toe_ip6_src_for(const struct toe_stack *st,
                                           const struct toe_in6_addr *dst)
{
  const struct toe_ipv6_state *s = &st->ip6;
  /* RFC 6724 5 rule 2 (appropriate scope): a link-local or link-scope multicast destination gets
   * the link-local source. Then rule 8 (longest matching prefix), reduced to "inside our prefix".
   */
  bool link_scope =
      toe_in6_is_link_local(dst) || (toe_in6_is_multicast(dst) && toe_in6_mc_scope(dst) <= 2);
  if (link_scope || s->naddr < 2)
    return &s->addrs[0].addr;
  const struct toe_in6_addr *any = NULL;
  for (unsigned i = 1; i < s->naddr; i++) {
    if (s->addrs[i].state != TOE_IP6_PREFERRED || s->addrs[i].preferred_until <= st->now)
      continue; /* RFC 4862 5.4: a tentative address is no source; a duplicate never; 5.5.4: a
                 * deprecated one not for new communication */
    if (toe_in6_prefix_match(&s->addrs[i].addr, dst, s->addrs[i].prefix_len))
      return &s->addrs[i].addr;
    if (!any)
      any = &s->addrs[i].addr;
  }
  return any ? any : &s->addrs[0].addr;
}

bool toe_ip6_on_link(const struct toe_stack *st, const struct toe_in6_addr *dst)
{
  const struct toe_ipv6_state *s = &st->ip6;
  if (toe_in6_is_link_local(dst))
    return true;
  if (toe_in6_is_multicast(dst))
    return toe_in6_mc_scope(dst) <= 2;
  for (unsigned i = 1; i < s->naddr; i++)
    if (toe_in6_prefix_match(&s->addrs[i].addr, dst, s->addrs[i].prefix_len))
      return true;
  /* RFC 4861 6.3.4: the prefixes routers advertise as on-link. */
  for (unsigned i = 0; i < TOE_IP6_MAX_PREFIXES; i++)
    if (s->prefixes[i].in_use &&
        toe_in6_prefix_match(&s->prefixes[i].prefix, dst, s->prefixes[i].len))
      return true;
  return false;
}

_Static_assert(TOE_ADDR6_PREFERRED == TOE_IP6_PREFERRED &&
                   TOE_ADDR6_TENTATIVE == TOE_IP6_TENTATIVE &&
                   TOE_ADDR6_DUPLICATE == TOE_IP6_DUPLICATE,
               "the public address states are the engine's");

int toe_stack_addr6(const struct toe_stack *st, unsigned i, uint8_t addr[16])
{
  const struct toe_ipv6_state *s = &st->ip6;
  if (!s->enabled || i >= s->naddr)
    return -TOE_ENOENT;
  memcpy(addr, s->addrs[i].addr.b, 16);
  return s->addrs[i].state;
}
