/*
 * IPv4 reassembly (RFC 791 3.2, RFC 1122 3.3.2, RFC 815 ideas, RFC 5722's rule).
 *
 * Fragments are kept zero-copy: each is its own pbuf chain (data at its IP header) in a list
 * sorted by payload offset. Because overlaps are refused outright, the held pieces never
 * intersect, so "complete" is simply "the last fragment was seen and the held bytes add up to the
 * datagram length" -- no hole descriptor list (RFC 815) is needed.
 *
 * Ambiguity (RFC 5722 applied to IPv4): an exact duplicate (same offset and length) is dropped
 * and counted; any other overlap, or fragments that disagree on where the datagram ends, discard
 * the whole datagram. Its slot then stays "poisoned" until its timeout so that later fragments
 * of the same datagram cannot start a fresh, attacker-shaped reassembly.
 *
 * Memory bound: at most cfg.reass_slots datagrams and cfg.reass_max_bufs pbufs in all, and
 * nothing once the pool is down to its control reserve; a complete datagram is compacted into
 * full buffers (tiny fragments would otherwise follow it into a socket queue one buffer each). When
 * either bound is hit the NEW fragment is dropped (reass_drop_nomem); existing reassemblies are
 * never evicted. Dropping is deterministic and keeps a flood of bogus first fragments from
 * destroying reassemblies already under way (an evicting policy lets every new bogus fragment
 * kill a real datagram); the cost is that a full table refuses new datagrams until timeouts
 * free slots.
 */
#include "engine/stack.h"
#include "wire/checksum.h"
#include "wire/icmpv4.h"
#include "wire/ipv4.h"

#include <string.h>

/* Per-fragment bookkeeping in pbuf meta (valid while the fragment is held here). */
#define FR_OFF(p) ((uint32_t)(p)->meta[0])
#define FR_LEN(p) ((uint32_t)(p)->meta[1])
#define FR_HLEN(p) ((uint16_t)(p)->meta[2])

#define IP_MAXPACKET 65535u

static uint32_t rhash_size(const struct toe_config *cfg)
{
  uint32_t n = 1;
  while (n < cfg->reass_slots && n < (1u << 20))
    n <<= 1;
  return n;
}

size_t toe_ipv4_reass_mem_size(const struct toe_config *cfg)
{
  size_t n = (size_t)cfg->reass_slots * sizeof(struct toe_reass) +
             (size_t)rhash_size(cfg) * sizeof(struct toe_reass *);
  return (n + 63u) & ~(size_t)63u;
}

static void reass_timeout(struct toe_stack *st, struct toe_timer *t);

void toe_ipv4_reass_init(struct toe_stack *st, void *mem)
{
  struct toe_ipv4_state *ip = &st->ip;
  uint32_t nslots = st->cfg.reass_slots;
  uint32_t nb = rhash_size(&st->cfg);
  ip->reass = mem;
  ip->rhash = (struct toe_reass **)(void *)((uint8_t *)mem + nslots * sizeof(struct toe_reass));
  ip->rhash_mask = nb - 1;
  ip->reass_bufs = 0;
  ip->rfree = NULL;
  for (uint32_t i = 0; i < nb; i++)
    ip->rhash[i] = NULL;
  for (uint32_t i = nslots; i-- > 0;) {
    struct toe_reass *r = &ip->reass[i];
    memset(r, 0, sizeof(*r));
    toe_timer_init(&r->timer, reass_timeout);
    r->hnext = ip->rfree;
    ip->rfree = r;
  }
}

/* Peers choose the key, so the bucket comes from the keyed hash (no chain-flooding). */
static uint32_t reass_bucket(const struct toe_stack *st, uint32_t src, uint32_t dst, uint8_t proto,
                             uint16_t id)
{
  uint8_t k[12];
  toe_ipv4_store(k, src);
  toe_ipv4_store(k + 4, dst);
  k[8] = (uint8_t)(id >> 8);
  k[9] = (uint8_t)id;
  k[10] = proto;
  k[11] = 0;
  return (uint32_t)toe_keyed_hash(st, k, sizeof(k)) & st->ip.rhash_mask;
}

static struct toe_reass *reass_find(struct toe_stack *st, const struct toe_ipv4_view *v,
                                    uint32_t bucket)
{
  for (struct toe_reass *r = st->ip.rhash[bucket]; r; r = r->hnext)
    if (r->src == v->src && r->dst == v->dst && r->id == v->id && r->proto == v->proto)
      return r;
  return NULL;
}

static struct toe_reass *reass_new(struct toe_stack *st, const struct toe_ipv4_view *v,
                                   uint32_t bucket)
{
  struct toe_ipv4_state *ip = &st->ip;
  struct toe_reass *r = ip->rfree;
  if (!r)
    return NULL;
  ip->rfree = r->hnext;
  r->src = v->src;
  r->dst = v->dst;
  r->id = v->id;
  r->proto = v->proto;
  r->in_use = 1;
  r->flags = 0;
  r->nbufs = 0;
  r->total_len = 0;
  r->have_len = 0;
  r->frags = NULL;
  r->hnext = ip->rhash[bucket];
  ip->rhash[bucket] = r;
  /* RFC 1122 3.3.2: a fixed reassembly timeout from the first fragment's arrival. */
  toe_timer_arm(st, &r->timer, st->now + st->cfg.reass_timeout);
  st->ctr.ip.reass_inuse++;
  return r;
}

/* Frees every fragment held by `r` and returns their buffers to the reassembly budget. */
static void reass_drop_frags(struct toe_stack *st, struct toe_reass *r)
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

/* Unhashes `r`, cancels its timer and returns it to the free list (fragments already gone). */
static void reass_release(struct toe_stack *st, struct toe_reass *r)
{
  struct toe_ipv4_state *ip = &st->ip;
  struct toe_reass **pp = &ip->rhash[reass_bucket(st, r->src, r->dst, r->proto, r->id)];
  for (; *pp; pp = &(*pp)->hnext) {
    if (*pp == r) {
      *pp = r->hnext;
      break;
    }
  }
  toe_timer_cancel(st, &r->timer);
  r->in_use = 0;
  r->flags = 0;
  r->hnext = ip->rfree;
  ip->rfree = r;
  st->ctr.ip.reass_inuse--;
}

/* Discards the datagram's data but remembers its key until the timeout (see the file comment). */
static void reass_poison(struct toe_stack *st, struct toe_reass *r)
{
  reass_drop_frags(st, r);
  r->flags |= TOE_REASS_F_POISONED;
}

static void reass_timeout(struct toe_stack *st, struct toe_timer *t)
{
  struct toe_reass *r = toe_container_of(t, struct toe_reass, timer);
  if (!(r->flags & TOE_REASS_F_POISONED)) {
    st->ctr.ip.reass_timeout++;
    /* RFC 792 / RFC 1122 3.3.2: time exceeded (fragment reassembly time exceeded, code 1), but
     * only if fragment zero is here: without it the error could not quote the transport header
     * the sender needs to match it. */
    if (r->frags && FR_OFF(r->frags) == 0)
      toe_icmp_send_error(st, r->frags, TOE_ICMP_TIME_EXCEEDED, 1, 0);
  }
  reass_drop_frags(st, r);
  reass_release(st, r);
}

static uint32_t chain_bufs(const struct toe_pbuf *p)
{
  uint32_t n = 0;
  for (; p; p = p->next)
    n++;
  return n;
}

/*
 * Builds the datagram once every byte is held: the first fragment keeps its IP header (rewritten
 * as unfragmented), the others follow with their headers pulled. Returns NULL (everything freed,
 * counted) if the result would exceed 65535 bytes.
 */
static struct toe_pbuf *reass_complete(struct toe_stack *st, struct toe_reass *r,
                                       struct toe_ipv4_view *v)
{
  struct toe_pbuf *head = r->frags;
  uint16_t hl = FR_HLEN(head);
  if ((uint32_t)hl + r->total_len > IP_MAXPACKET) {
    /* Only detectable now: the first fragment's options make the header longer than assumed. */
    st->ctr.ip.reass_drop_too_big++;
    reass_drop_frags(st, r);
    reass_release(st, r);
    return NULL;
  }
  struct toe_pbuf *f = head->qnext;
  head->qnext = NULL;
  while (f) {
    struct toe_pbuf *n = f->qnext;
    f->qnext = NULL;
    toe_pbuf_pull(f, FR_HLEN(f)); /* contiguous: linearized on input */
    toe_pbuf_cat(head, f);
    f = n;
  }
  r->frags = NULL;
  st->ip.reass_bufs -= r->nbufs;
  r->nbufs = 0;
  reass_release(st, r);
  /* A datagram of tiny fragments holds a buffer per fragment: compact it into full buffers
   * before it goes up and sits in a socket queue (a thousand 8-byte fragments would otherwise
   * pin a thousand buffers per datagram). The IP header stays in front, with the headroom an
   * ICMP error quoting it needs. */
  head = toe_pbuf_compact(st, head, TOE_PBUF_HEADROOM);

  /* RFC 791 3.2 reassembly: total length = header + data, flags/offset cleared (DF kept as the
   * sender set it). */
  uint8_t *h = head->data;
  uint16_t tot = (uint16_t)head->tot_len; /* hl + total_len, checked above */
  h[2] = (uint8_t)(tot >> 8);
  h[3] = (uint8_t)tot;
  h[6] &= (uint8_t)(TOE_IPV4_DF >> 8);
  h[7] = 0;
  h[10] = 0;
  h[11] = 0;
  uint16_t cs = toe_csum(h, hl);
  memcpy(h + 10, &cs, 2);
  /* A NIC cannot have verified the transport checksum of a fragment: have L4 check it. */
  head->flags &= (uint16_t)~TOE_PBUF_F_L4_CSUM_OK;
  st->ctr.ip.reass_ok++;
  if (toe_ipv4_parse(v, head->data, head->len, head->tot_len, true) != 0) {
    /* Cannot happen (the header was valid and only the fields above changed); stay safe. */
    st->ctr.ip.rx_drop_malformed++;
    toe_pbuf_free(st, head);
    return NULL;
  }
  return head;
}

struct toe_pbuf *toe_ipv4_reass(struct toe_stack *st, struct toe_pbuf *pb, struct toe_ipv4_view *v)
{
  struct toe_counters_ip *c = &st->ctr.ip;
  uint32_t off = v->frag_off;
  uint32_t len = (uint32_t)v->total_len - v->hdr_len;
  uint32_t end = off + len;

  /* RFC 791 3.2: every fragment but the last carries a multiple of 8 bytes; an empty fragment
   * carries nothing and would only complicate the bookkeeping. */
  if (len == 0 || (v->mf && (len & 7u) != 0)) {
    c->reass_drop_bad_frag++;
    goto drop;
  }
  if (end + TOE_IPV4_HLEN > IP_MAXPACKET) {
    c->reass_drop_too_big++;
    goto drop;
  }

  uint32_t bucket = reass_bucket(st, v->src, v->dst, v->proto, v->id);
  struct toe_reass *r = reass_find(st, v, bucket);
  if (r && (r->flags & TOE_REASS_F_POISONED)) {
    c->reass_drop_poisoned++;
    goto drop;
  }
  uint32_t nb = chain_bufs(pb);
  /* Its own bound, and never the control reserve (pbuf_charge.c): a fragment flood must not
   * take the buffers ARP and ICMP answer with. */
  if (st->ip.reass_bufs + nb > st->cfg.reass_max_bufs ||
      toe_pbuf_pool_free_count(st) < toe_pbuf_pool_reserve(st)) {
    c->reass_drop_nomem++;
    goto drop;
  }
  if (!r) {
    r = reass_new(st, v, bucket);
    if (!r) {
      c->reass_drop_nomem++;
      goto drop;
    }
  }

  /* Where does the datagram end? The last fragment says so, and everyone must agree. Nothing is
   * committed until the fragment is accepted. */
  uint32_t total = r->total_len;
  if (!v->mf) {
    if (total != 0 && total != end)
      goto inconsistent;
    total = end;
  }
  if (total != 0 && end > total)
    goto inconsistent;

  /* Find the insertion point; refuse any overlap that is not an exact duplicate. */
  struct toe_pbuf **pp = &r->frags;
  for (struct toe_pbuf *f = r->frags; f; f = f->qnext) {
    uint32_t fo = FR_OFF(f), fe = FR_OFF(f) + FR_LEN(f);
    if (fo == off && fe == end) {
      c->reass_drop_duplicate++;
      goto drop;
    }
    if (fo < end && off < fe) {
      c->reass_drop_overlap++;
      reass_poison(st, r);
      goto drop;
    }
    if (total != 0 && fe > total)
      goto inconsistent;
    if (fo < off)
      pp = &f->qnext;
  }

  r->total_len = total;
  pb->meta[0] = off;
  pb->meta[1] = len;
  pb->meta[2] = v->hdr_len;
  pb->qnext = *pp;
  *pp = pb;
  r->nbufs += nb;
  st->ip.reass_bufs += nb;
  r->have_len += len;

  if (r->total_len != 0 && r->have_len == r->total_len)
    return reass_complete(st, r, v);
  return NULL;

inconsistent:
  /* Two fragments disagree about the datagram's length: which one lies is unknowable. */
  c->reass_drop_bad_frag++;
  reass_poison(st, r);
drop:
  toe_pbuf_free(st, pb);
  return NULL;
}
