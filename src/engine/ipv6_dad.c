/*
 * Duplicate address detection (RFC 4862 5.4, with the nonce of RFC 7527) for our IPv6 addresses
 * at start, and the MLDv2 report that joins their solicited-node groups (RFC 3810 6.1, RFC 4861
 * 7.2.1), so that switches snooping MLD deliver solicitations for them.
 *
 * One timer drives all addresses in step: a random delay of 0..MAX_RTR_SOLICITATION_DELAY (RFC
 * 4862 5.4.2: the interface just came up), then dad_transmits probes RetransTimer apart; an address
 * whose last wait ends with no sign of another owner becomes preferred. While tentative an address
 * only takes part in ND (ipv6_addr.c, nd.c); found duplicate it is never used (RFC 4862 5.4.5).
 */
#include "engine/ipv6.h"
#include "engine/stack.h"
#include "wire/ethernet.h"
#include "wire/icmpv6.h"
#include "wire/mld.h"
#include "wire/ndp.h"

#include <string.h>

#define MAX_RTR_SOLICITATION_DELAY_MS 1000u /* RFC 4861 10 */

/* An MLDv2 report joining every solicited-node group we listen to, from :: while the link-local
 * address is tentative (RFC 3590 4), to ff02::16 (RFC 3810 5.2.14). */
static void send_mld_report(struct toe_stack *st)
{
  struct toe_ipv6_state *s = &st->ip6;
  struct toe_in6_addr groups[TOE_IP6_MAX_ADDRS], src, all_mld;
  unsigned n = 0;
  for (unsigned i = 0; i < s->naddr; i++) {
    bool dup = false;
    for (unsigned j = 0; j < n; j++)
      dup = dup || toe_in6_equal(&groups[j], &s->addrs[i].snm);
    if (!dup && s->addrs[i].state != TOE_IP6_DUPLICATE)
      groups[n++] = s->addrs[i].snm;
  }
  if (n == 0)
    return;
  memset(&src, 0, sizeof src);
  if (s->addrs[0].state == TOE_IP6_PREFERRED)
    src = s->addrs[0].addr;
  struct toe_pbuf *pb = toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
  if (!pb) {
    st->ctr.link.tx_drop_nobuf++;
    return;
  }
  uint16_t cap = toe_pbuf_tailroom(pb);
  uint8_t *p = toe_pbuf_put(pb, cap);
  /* RFC 3810 6.1: a join is a CHANGE_TO_EXCLUDE record with no sources. */
  int len = toe_mld2_build_packet(p, cap, &src, TOE_MLD2_CHANGE_TO_EXCLUDE, groups, n);
  if (len < 0) {
    toe_pbuf_free(st, pb);
    return;
  }
  toe_pbuf_trim(st, pb, (uint32_t)len);
  uint8_t mac[6];
  toe_in6_all_mldv2_routers(&all_mld);
  toe_in6_mc_mac(mac, &all_mld);
  st->ctr.ip6.tx_packets++;
  st->ctr.nd.tx_mld_reports++;
  toe_link_output(st, pb, mac, TOE_ETHERTYPE_IPV6);
}

/* A DAD probe: NS for the tentative address, from ::, to its solicited-node group, without a
 * source link-layer option (RFC 4862 5.4.2) and with a fresh nonce (RFC 7527 4.1). */
static void send_probe(struct toe_stack *st, struct toe_ip6_ifaddr *ia)
{
  uint64_t r = toe_random(st);
  for (int i = 0; i < 6; i++)
    ia->nonce[i] = (uint8_t)(r >> (8 * i));
  struct toe_pbuf *pb = toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
  if (!pb) {
    st->ctr.link.tx_drop_nobuf++;
    return;
  }
  uint8_t *p = toe_pbuf_put(pb, TOE_ND_NS_LEN + 8);
  int n = toe_nd_write_ns(p, TOE_ND_NS_LEN + 8, &ia->addr, NULL, ia->nonce);
  if (n < 0) {
    toe_pbuf_free(st, pb);
    return;
  }
  toe_pbuf_trim(st, pb, (uint32_t)n);
  struct toe_ip6_tx tx = {
      .dst = ia->snm, .next_hdr = TOE_IPPROTO_ICMPV6, .hop_limit = TOE_ND_HOP_LIMIT};
  memset(&tx.src, 0, sizeof tx.src);
  toe_icmpv6_finish(p, (size_t)n, &tx.src, &tx.dst);
  uint8_t mac[6];
  toe_in6_mc_mac(mac, &tx.dst);
  if (toe_ipv6_output_mac(st, pb, &tx, mac) == 0)
    st->ctr.nd.tx_dad_ns++;
}

static void dad_timer_expired(struct toe_stack *st, struct toe_timer *t)
{
  struct toe_ipv6_state *s = toe_container_of(t, struct toe_ipv6_state, dad_timer);
  bool more = false;
  if (s->dad_waiting) {
    /* A wait ended: addresses with probes left send the next, the others passed. */
    for (unsigned i = 0; i < s->naddr; i++) {
      struct toe_ip6_ifaddr *ia = &s->addrs[i];
      if (ia->state != TOE_IP6_TENTATIVE)
        continue;
      if (ia->dad_left == 0) {
        ia->state = TOE_IP6_PREFERRED;
        st->ctr.nd.dad_completed++;
      } else {
        send_probe(st, ia);
        ia->dad_left--;
        more = true;
      }
    }
  } else {
    /* The initial delay ended: first probes, and the report's repetition (RFC 3810 6.1:
     * Robustness Variable 2, so one more). */
    s->dad_waiting = true;
    send_mld_report(st);
    for (unsigned i = 0; i < s->naddr; i++) {
      struct toe_ip6_ifaddr *ia = &s->addrs[i];
      if (ia->state != TOE_IP6_TENTATIVE)
        continue;
      send_probe(st, ia);
      ia->dad_left--;
      more = true;
    }
  }
  if (more)
    toe_timer_arm(st, &s->dad_timer, st->now + s->nd_params.retrans_timer);
}

void toe_ipv6_dad_init(struct toe_stack *st)
{
  /* At creation, not at start: a SLAAC address (ipv6_router.c) may arm it at any time. */
  toe_timer_init(&st->ip6.dad_timer, dad_timer_expired);
}

void toe_ipv6_start(struct toe_stack *st)
{
  struct toe_ipv6_state *s = &st->ip6;
  if (!s->enabled)
    return;
  send_mld_report(st);
  s->dad_waiting = false;
  bool tentative = false;
  for (unsigned i = 0; i < s->naddr; i++) {
    if (s->addrs[i].state == TOE_IP6_TENTATIVE) {
      s->addrs[i].dad_left = st->cfg.dad_transmits;
      tentative = true;
    }
  }
  uint32_t delay_ms = (uint32_t)(toe_random(st) & 0xffffu) % (MAX_RTR_SOLICITATION_DELAY_MS + 1u);
  if (tentative)
    toe_timer_arm(st, &s->dad_timer, st->now + TOE_MSEC(delay_ms));
}

void toe_ip6_dad_duplicate(struct toe_stack *st, unsigned idx)
{
  struct toe_ip6_ifaddr *ia = &st->ip6.addrs[idx];
  if (ia->state != TOE_IP6_TENTATIVE)
    return;
  ia->state = TOE_IP6_DUPLICATE;
  ia->dad_left = 0;
  st->ctr.nd.dad_duplicates++;
}
