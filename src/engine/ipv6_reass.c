/*
 * IPv6 reassembly (RFC 8200 4.5, RFC 5722, RFC 8021).
 *
 * The scheme of ipv4_reass.c: fragments are kept zero-copy, each its own pbuf chain in a list
 * sorted by offset; overlaps are refused outright (RFC 5722: the whole datagram is discarded and
 * its later fragments silently dropped), so "complete" is "the last fragment was seen and the
 * held bytes add up". Atomic fragments never get here: the extension-header walk passes them as
 * whole packets (RFC 8021, RFC 6946).
 *
 * Memory bound: TOE_IP6_REASS_SLOTS datagrams, at most TOE_IP6_REASS_PER_SRC of them from one
 * source (a single peer cannot fill the table), and buffers counted against the budget IPv4
 * reassembly uses (cfg.reass_max_bufs; nothing once the pool is at its control reserve). When a
 * bound is hit the NEW fragment is dropped; reassemblies under way are never evicted (see
 * ipv4_reass.c for why). A complete datagram is compacted into full buffers.
 */
#include "engine/ipv6.h"
#include "engine/stack.h"
#include "wire/icmpv6.h"

#include <string.h>

#define FR_OFF(p) ((uint32_t)(p)->meta[0])
#define FR_LEN(p) ((uint32_t)(p)->meta[1])
#define FR_HDRS(p) ((uint16_t)(p)->meta[2])
#define FR_UNFRAG(p) ((uint16_t)((p)->meta[3] & 0xffffu))
#define FR_NH_OFF(p) ((uint16_t)((p)->meta[3] >> 16))

#define MAX_PAYLOAD 65535u

static void reass_timeout(struct toe_stack *st, struct toe_timer *t);

void toe_ipv6_reass_init(struct toe_stack *st)
{
  for (unsigned i = 0; i < TOE_IP6_REASS_SLOTS; i++) {
    struct toe_reass6 *r = &st->ip6.reass[i];
    memset(r, 0, sizeof(*r));
    toe_timer_init(&r->timer, reass_timeout);
  }
}

/* The slot of (src, dst, id), and how many slots `src` holds. The table is small and scanned
 * whole: no hash for a peer to aim at. */
static struct toe_reass6 *reass_find(struct toe_stack *st, const struct toe_ipv6_view *v,
                                     uint32_t id, unsigned *from_src, struct toe_reass6 **free_slot)
{
  struct toe_reass6 *found = NULL;
  *from_src = 0;
  *free_slot = NULL;
  for (unsigned i = 0; i < TOE_IP6_REASS_SLOTS; i++) {
    struct toe_reass6 *r = &st->ip6.reass[i];
    if (!r->in_use) {
      if (!*free_slot)
        *free_slot = r;
      continue;
    }
    if (!toe_in6_equal(&r->src, &v->src))
      continue;
    (*from_src)++;
    if (r->id == id && toe_in6_equal(&r->dst, &v->dst))
      found = r;
  }
  return found;
}

static void reass_drop_frags(struct toe_stack *st, struct toe_reass6 *r)
{
  struct toe_pbuf *f = r->frags;
  while (f) {
    struct toe_pbuf *n = f->qnext;
    f->qnext = NULL;
    toe_pbuf_free(st, f);
    f = n;
  }
  r->frags = NULL;
  st->ip.reass_bufs -= r->nbufs;
  r->nbufs = 0;
  r->have_len = 0;
}

static void reass_release(struct toe_stack *st, struct toe_reass6 *r)
{
  toe_timer_cancel(st, &r->timer);
  r->in_use = 0;
  r->flags = 0;
  st->ctr.ip6.reass_inuse--;
}

static void reass_timeout(struct toe_stack *st, struct toe_timer *t)
{
  struct toe_reass6 *r = toe_container_of(t, struct toe_reass6, timer);
  if (!(r->flags & TOE_IP6_REASS_F_POISONED)) {
    st->ctr.ip6.reass_timeout++;
    /* RFC 8200 4.5: Time Exceeded code 1 to the source, but only if the first fragment (offset
     * 0) arrived: it quotes the headers the sender needs to match the error. */
    struct toe_ipv6_view v;
    if (r->frags && FR_OFF(r->frags) == 0 &&
        toe_ipv6_parse(&v, r->frags->data, r->frags->len, r->frags->tot_len) == 0)
      toe_icmp6_send_error(st, r->frags, &v, false, TOE_ICMPV6_TIME_EXCEEDED, 1, 0);
  }
  reass_drop_frags(st, r);
  reass_release(st, r);
}

/* Takes the fragment header out of the first fragment (`head`, headers contiguous) and rewrites
 * what RFC 8200 4.5 says the reassembled packet's unfragmentable part carries: the Next Header
 * that named the fragment header gets the fragment header's, Payload Length the new length.
 * Returns the head (a private copy if it was shared), or NULL with it freed. */
static struct toe_pbuf *strip_frag_header(struct toe_stack *st, struct toe_pbuf *head,
                                          uint8_t frag_nh)
{
  uint16_t unfrag = FR_UNFRAG(head);
  uint16_t nh_off = FR_NH_OFF(head);
  if (toe_pbuf_shared(head)) {
    struct toe_pbuf *cp = toe_pbuf_copy_range(st, head, 0, head->tot_len, TOE_PBUF_HEADROOM);
    toe_pbuf_free(st, head);
    if (!cp || toe_pbuf_linearize_head(st, cp, (uint16_t)(unfrag + TOE_IPV6_FRAG_HLEN)) != 0) {
      if (cp)
        toe_pbuf_free(st, cp);
      st->ctr.ip6.reass_drop_nomem++;
      return NULL;
    }
    head = cp;
  }
  memmove(head->data + TOE_IPV6_FRAG_HLEN, head->data, unfrag);
  toe_pbuf_pull(head, TOE_IPV6_FRAG_HLEN);
  head->data[nh_off] = frag_nh;
  return head;
}

/* Builds the packet once every byte is held (the caller checked the length fits). */
static struct toe_pbuf *reass_complete(struct toe_stack *st, struct toe_reass6 *r)
{
  struct toe_pbuf *head = r->frags;
  struct toe_pbuf *f = head->qnext;
  head->qnext = NULL;
  r->frags = NULL;
  st->ip.reass_bufs -= r->nbufs;
  r->nbufs = 0;
  uint8_t frag_nh = r->frag_nh;
  reass_release(st, r);
  head = strip_frag_header(st, head, frag_nh);
  while (f) {
    struct toe_pbuf *n = f->qnext;
    f->qnext = NULL;
    if (head) {
      toe_pbuf_pull(f, FR_HDRS(f)); /* contiguous: linearized when it was taken */
      toe_pbuf_cat(head, f);
    } else {
      toe_pbuf_free(st, f);
    }
    f = n;
  }
  if (!head)
    return NULL;
  /* Tiny fragments hold a buffer each: compact before the packet sits in a socket queue. */
  head = toe_pbuf_compact(st, head, TOE_PBUF_HEADROOM);
  uint32_t plen = head->tot_len - TOE_IPV6_HLEN;
  head->data[4] = (uint8_t)(plen >> 8);
  head->data[5] = (uint8_t)plen;
  /* A NIC cannot have verified the transport checksum of a fragment: the upper layer checks. */
  head->flags &= (uint16_t)~TOE_PBUF_F_L4_CSUM_OK;
  st->ctr.ip6.reass_ok++;
  return head;
}

struct toe_pbuf *toe_ipv6_reass(struct toe_stack *st, struct toe_pbuf *pb,
                                const struct toe_ipv6_view *v, const struct toe_ipv6_ext *ext)
{
  struct toe_counters_ip6 *c = &st->ctr.ip6;
  uint32_t off = ext->frag_off;
  uint32_t pkt_len = (uint32_t)TOE_IPV6_HLEN + v->payload_len;
  uint32_t len = pkt_len - ext->offset;
  uint32_t end = off + len;

  /* The walk checked the 8-byte multiple and the 65535 bound (RFC 8200 4.5, with Parameter
   * Problems); an empty fragment carries nothing and only complicates the bookkeeping. */
  if (len == 0) {
    c->reass_drop_bad_frag++;
    goto drop;
  }
  if (ext->offset > pb->len && toe_pbuf_linearize_head(st, pb, ext->offset) != 0) {
    c->rx_drop_malformed++;
    goto drop;
  }

  unsigned from_src;
  struct toe_reass6 *slot;
  struct toe_reass6 *r = reass_find(st, v, ext->frag_id, &from_src, &slot);
  if (r && (r->flags & TOE_IP6_REASS_F_POISONED)) {
    c->reass_drop_poisoned++;
    goto drop;
  }
  uint32_t nb = toe_pbuf_count(pb);
  if (st->ip.reass_bufs + nb > st->cfg.reass_max_bufs ||
      toe_pbuf_pool_free_count(st) < toe_pbuf_pool_reserve(st)) {
    c->reass_drop_nomem++;
    goto drop;
  }
  if (!r) {
    if (!slot || from_src >= TOE_IP6_REASS_PER_SRC) {
      c->reass_drop_nomem++;
      goto drop;
    }
    r = slot;
    r->src = v->src;
    r->dst = v->dst;
    r->id = ext->frag_id;
    r->in_use = 1;
    r->flags = 0;
    r->frag_nh = 0;
    r->nbufs = 0;
    r->total_len = 0;
    r->have_len = 0;
    r->frags = NULL;
    toe_timer_arm(st, &r->timer, st->now + TOE_IP6_REASS_TIMEOUT);
    c->reass_inuse++;
  }

  uint32_t total = r->total_len;
  if (!ext->frag_more) {
    if (total != 0 && total != end)
      goto inconsistent;
    total = end;
  }
  if (total != 0 && end > total)
    goto inconsistent;

  struct toe_pbuf **pp = &r->frags;
  for (struct toe_pbuf *f = r->frags; f; f = f->qnext) {
    uint32_t fo = FR_OFF(f), fe = FR_OFF(f) + FR_LEN(f);
    if (fo == off && fe == end) {
      c->reass_drop_duplicate++;
      goto drop;
    }
    if (fo < end && off < fe) {
      /* RFC 5722 3: an overlapping fragment discards the whole datagram. */
      c->reass_drop_overlap++;
      goto poison;
    }
    if (total != 0 && fe > total)
      goto inconsistent;
    if (fo < off)
      pp = &f->qnext;
  }
  /* RFC 8200 4.5: the reassembled payload length is the first fragment's unfragmentable part
   * plus the fragmentable data; more than 65535 is an error. Known only once both are here. */
  uint32_t unfrag =
      off == 0 ? ext->unfrag_len : (r->frags && FR_OFF(r->frags) == 0 ? FR_UNFRAG(r->frags) : 0);
  if (total != 0 && unfrag != 0 && unfrag - TOE_IPV6_HLEN + total > MAX_PAYLOAD) {
    c->reass_drop_too_big++;
    goto poison;
  }

  r->total_len = total;
  if (off == 0)
    r->frag_nh = ext->frag_nh;
  pb->meta[0] = off;
  pb->meta[1] = len;
  pb->meta[2] = ext->offset;
  pb->meta[3] = (uint64_t)ext->unfrag_len | (uint64_t)ext->nh_off << 16;
  pb->qnext = *pp;
  *pp = pb;
  r->nbufs += nb;
  st->ip.reass_bufs += nb;
  r->have_len += len;
  if (r->total_len != 0 && r->have_len == r->total_len)
    return reass_complete(st, r);
  return NULL;

inconsistent:
  /* Two fragments disagree about where the datagram ends: which one lies is unknowable. */
  c->reass_drop_bad_frag++;
poison:
  reass_drop_frags(st, r);
  r->flags |= TOE_IP6_REASS_F_POISONED;
drop:
  toe_pbuf_free(st, pb);
  return NULL;
}
