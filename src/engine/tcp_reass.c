/*
 * The out-of-order queue and the SACK/D-SACK blocks we send (RFC 9293 3.10.7.4 "seventh", RFC 2018,
 * RFC 2883).
 *
 * Data that arrives above rcv_nxt is kept, without a copy, in the buffers it arrived in. The queue
 * holds contiguous ranges, sorted by sequence number, that never overlap and never touch: a
 * segment adjacent to a range is chained onto it, so each queue entry is exactly one SACK block.
 * Bytes already held are cut off an arriving segment (or an older entry the new segment covers
 * entirely is freed), so no byte is ever stored twice and nothing can be delivered twice.
 *
 * Memory: the queue is bounded by the receive buffer (bytes) and by a count of buffers, because a
 * peer sending one-byte segments would otherwise pin a whole pool buffer per byte. When the bound
 * is reached the new segment is dropped: nothing already SACKed is thrown away (no reneging,
 * RFC 2018 8), and the segment at rcv_nxt, which is never queued here, can always get through.
 */
#include "engine/stack.h"
#include "engine/tcp.h"

static inline uint32_t ent_seq(const struct toe_pbuf *e)
{
  return (uint32_t)e->meta[0];
}
static inline uint32_t ent_end(const struct toe_pbuf *e)
{
  return ent_seq(e) + e->tot_len;
}

/*
 * Copies the (small) range `pb` into the tailroom of the last buffer of the range `prev` it
 * follows, like tcp_collapse, so in-order runs of tiny segments above a hole share buffers
 * instead of holding one each. Returns false (nothing changed) if it does not fit; else `pb` is
 * freed and the counts are fixed.
 */
static bool collapse_into(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *prev,
                          struct toe_pbuf *pb)
{
  struct toe_pbuf *last = prev;
  while (last->next)
    last = last->next;
  uint32_t n = pb->tot_len;
  if (last->refcnt != 1 || toe_pbuf_tailroom(last) < n)
    return false;
  toe_pbuf_copy_out(pb, 0, last->data + last->len, n);
  last->len = (uint16_t)(last->len + n);
  for (struct toe_pbuf *p = prev; p; p = p->next)
    p->tot_len += n; /* every buffer's tot_len counts to the end of its chain */
  tp->ooo_count = (uint16_t)(tp->ooo_count - toe_pbuf_count(pb));
  toe_pbuf_free(st, pb);
  return true;
}

uint32_t toe_tcp_reass_max_bufs(const struct toe_stack *st)
{
  /* A share of the pool per connection: enough for a window of full-sized segments on the
   * defaults (256 buffers ~ 370 KB of 1448-byte segments), never a large part of the pool. */
  uint32_t n = st->cfg.pbuf_count / 8;
  if (n < 8)
    n = 8;
  if (n > 256)
    n = 256;
  return n;
}

static uint32_t rcvbuf_limit(const struct toe_stack *st, const struct toe_tcb *tp)
{
  if (tp->rcvbuf)
    return tp->rcvbuf;
  return st->cfg.tcp_rcvbuf ? st->cfg.tcp_rcvbuf : 65535u;
}

void toe_tcp_dsack_note(struct toe_stack *st, struct toe_tcb *tp, uint32_t start, uint32_t end)
{
  /* Duplicates are acknowledged at once whether or not SACK is on (RFC 5681 4.2 asks for an
   * immediate ACK for out-of-order data; RFC 2883 4 for a D-SACK as soon as the duplicate
   * arrives). */
  tp->flags |= TOE_TF_ACK_NOW;
  if (!(tp->flags & TOE_TF_SACK_OK) || !toe_seq_lt(start, end))
    return;
  /* RFC 2883 4: one D-SACK block per ACK, naming the duplicate that triggered it; a later
   * duplicate before that ACK went out replaces it (the most recent is the most useful). */
  tp->dsack.start = start;
  tp->dsack.end = end;
  tp->flags |= TOE_TF_NEED_DSACK;
  st->ctr.tcp.rx_dsacks++;
}

/* The queue entry overlapping [start, end), or NULL. */
static struct toe_pbuf *entry_overlapping(const struct toe_tcb *tp, uint32_t start, uint32_t end)
{
  for (struct toe_pbuf *e = tp->ooo_head; e; e = e->qnext) {
    if (toe_seq_ge(ent_seq(e), end))
      return NULL;
    if (toe_seq_gt(ent_end(e), start))
      return e;
  }
  return NULL;
}

/*
 * Rebuilds the SACK blocks (RFC 2018 4): the first names the range holding the segment that just
 * arrived (`first`, if that segment did not advance rcv_nxt), then the blocks reported before,
 * most recent first, each grown to its range now and dropped once rcv_nxt has passed it or it
 * merged into a block already listed.
 */
static void sack_rebuild(struct toe_tcb *tp, const struct toe_pbuf *first)
{
  struct toe_tcp_sack_block nb[TOE_TCP_MAX_SACK_GEN];
  const struct toe_pbuf *used[TOE_TCP_MAX_SACK_GEN];
  unsigned n = 0;
  if (first) {
    nb[n].start = ent_seq(first);
    nb[n].end = ent_end(first);
    used[n++] = first;
  }
  for (unsigned i = 0; i < tp->sack_gen_count && i < TOE_TCP_MAX_SACK_GEN; i++) {
    if (n == TOE_TCP_MAX_SACK_GEN)
      break;
    const struct toe_pbuf *e = entry_overlapping(tp, tp->sack_gen[i].start, tp->sack_gen[i].end);
    if (!e)
      continue;
    bool dup = false;
    for (unsigned k = 0; k < n; k++)
      dup |= used[k] == e;
    if (dup)
      continue;
    nb[n].start = ent_seq(e);
    nb[n].end = ent_end(e);
    used[n++] = e;
  }
  for (unsigned i = 0; i < n; i++)
    tp->sack_gen[i] = nb[i];
  tp->sack_gen_count = (uint16_t)n;
}

uint32_t toe_tcp_reass_insert(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *pb,
                              uint32_t seq)
{
  struct toe_counters_tcp *c = &st->ctr.tcp;
  uint32_t len = pb->tot_len;
  /* Nothing to keep: empty, or not above rcv_nxt (the caller delivers in-order data itself). */
  if (len == 0 || !toe_seq_gt(seq, tp->rcv_nxt)) {
    toe_pbuf_free(st, pb);
    return 0;
  }
  /* A sparse chain (data in tiny IPv4 fragments) would hold a buffer per fragment here: compact
   * it first, so the queue's buffers carry data (pbuf_charge.c). */
  if (pb->next != NULL && pb->owner == 0)
    pb = toe_pbuf_compact(st, pb, 0);
  uint32_t end = seq + len;
  /* Bytes past a FIN are not part of the stream (RFC 9293 3.10.7.4: the FIN ends it). */
  if (tp->ooo_fin && toe_seq_gt(end, tp->ooo_fin_seq)) {
    if (!toe_seq_lt(seq, tp->ooo_fin_seq)) {
      toe_pbuf_free(st, pb);
      return 0;
    }
    end = tp->ooo_fin_seq;
  }

  /*
   * First pass, changing nothing: the part of [seq, end) not yet held ([s2, e2)), the entries it
   * covers entirely (to be replaced by it), and the first duplicate range for the D-SACK.
   */
  uint32_t s2 = seq, e2 = end;
  uint32_t dup_s = 0, dup_e = 0;
  bool has_dup = false;
  uint64_t covered_bytes = 0;
  uint32_t covered_bufs = 0;
  for (struct toe_pbuf *e = tp->ooo_head; e; e = e->qnext) {
    uint32_t es = ent_seq(e), ee = ent_end(e);
    if (toe_seq_le(ee, s2))
      continue;
    if (toe_seq_ge(es, e2))
      break;
    if (toe_seq_le(es, s2)) {
      if (toe_seq_ge(ee, e2)) {
        /* All held already: RFC 2883 4.1.2, the D-SACK block, then this range's SACK block. */
        toe_tcp_dsack_note(st, tp, has_dup ? dup_s : s2, has_dup ? dup_e : e2);
        sack_rebuild(tp, e);
        c->rx_drop_dup++;
        toe_pbuf_free(st, pb);
        return 0;
      }
      if (!has_dup) {
        dup_s = s2;
        dup_e = ee;
        has_dup = true;
      }
      s2 = ee;
    } else if (toe_seq_ge(ee, e2)) {
      if (!has_dup) {
        dup_s = es;
        dup_e = e2;
        has_dup = true;
      }
      e2 = es;
      break;
    } else {
      if (!has_dup) {
        dup_s = es;
        dup_e = ee;
        has_dup = true;
      }
      covered_bytes += e->tot_len;
      covered_bufs += toe_pbuf_count(e);
    }
  }

  /* The bound, counted as it will be once the covered entries are gone. */
  uint32_t new_len = e2 - s2;
  uint32_t new_bufs = toe_pbuf_count(pb);
  uint64_t bytes = (uint64_t)tp->rcvq_bytes + tp->ooo_bytes - covered_bytes + new_len;
  uint64_t bufs = (uint64_t)tp->ooo_count - covered_bufs + new_bufs;
  if (bytes > rcvbuf_limit(st, tp) || bufs > toe_tcp_reass_max_bufs(st)) {
    c->rx_drop_ooo_full++;
    toe_pbuf_free(st, pb);
    return 0;
  }
  /* The buffers are charged to the connection with its in-order queue (one allowance for both,
   * as Linux's sk_rmem_alloc): a peer's holes cannot hold more of the pool than its window. */
  uint32_t owner = toe_tcp_rx_owner(st, tp);
  if (new_bufs > covered_bufs &&
      toe_pbuf_charge_check(st, owner, new_bufs - covered_bufs, toe_tcp_rx_buf_limit(st, tp)) < 0) {
    c->rx_drop_nomem++;
    toe_pbuf_free(st, pb);
    return 0;
  }
  toe_pbuf_charge(st, pb, owner);

  /* Cut the new segment down to [s2, e2). */
  if (s2 != seq)
    pb = toe_pbuf_drop_front(st, pb, s2 - seq);
  if (pb->tot_len > new_len)
    toe_pbuf_trim(st, pb, new_len);
  pb->meta[0] = s2;
  pb->qnext = NULL;

  /* Second pass: drop the covered entries and find where the new range goes. */
  struct toe_pbuf **link = &tp->ooo_head;
  struct toe_pbuf *prev = NULL;
  while (*link) {
    struct toe_pbuf *e = *link;
    uint32_t es = ent_seq(e), ee = ent_end(e);
    if (toe_seq_ge(es, e2))
      break;
    if (toe_seq_ge(es, s2) && toe_seq_le(ee, e2)) {
      *link = e->qnext;
      tp->ooo_bytes -= e->tot_len;
      tp->ooo_count = (uint16_t)(tp->ooo_count - toe_pbuf_count(e));
      e->qnext = NULL;
      toe_pbuf_free(st, e);
      continue;
    }
    prev = e;
    link = &e->qnext;
  }
  pb->qnext = *link;
  *link = pb;
  tp->ooo_bytes += new_len;
  tp->ooo_count = (uint16_t)(tp->ooo_count + toe_pbuf_count(pb));

  /* Merge with the neighbours it now touches: one entry per contiguous range. */
  struct toe_pbuf *cur = pb;
  if (prev && ent_end(prev) == s2) {
    prev->qnext = pb->qnext;
    pb->qnext = NULL;
    if (!collapse_into(st, tp, prev, pb))
      toe_pbuf_cat(prev, pb);
    cur = prev;
  }
  struct toe_pbuf *nx = cur->qnext;
  if (nx && ent_end(cur) == ent_seq(nx)) {
    cur->qnext = nx->qnext;
    nx->qnext = NULL;
    toe_pbuf_cat(cur, nx);
  }

  if (has_dup)
    toe_tcp_dsack_note(st, tp, dup_s, dup_e);
  sack_rebuild(tp, cur);
  c->rx_ooo_segs++;
  return new_len - (uint32_t)covered_bytes;
}

uint32_t toe_tcp_reass_pull(struct toe_stack *st, struct toe_tcb *tp)
{
  uint32_t moved = 0;
  struct toe_pbuf *e;
  while ((e = tp->ooo_head) != NULL && toe_seq_le(ent_seq(e), tp->rcv_nxt)) {
    uint32_t es = ent_seq(e), ee = ent_end(e);
    tp->ooo_head = e->qnext;
    e->qnext = NULL;
    tp->ooo_bytes -= e->tot_len;
    tp->ooo_count = (uint16_t)(tp->ooo_count - toe_pbuf_count(e));
    if (es != tp->rcv_nxt) {
      /* In-order data that just arrived also carried these bytes: the later copy is the
       * duplicate (RFC 2883 4.1.1 reports it). */
      uint32_t dend = toe_seq_lt(ee, tp->rcv_nxt) ? ee : tp->rcv_nxt;
      toe_tcp_dsack_note(st, tp, es, dend);
    }
    if (toe_seq_le(ee, tp->rcv_nxt)) {
      toe_pbuf_free(st, e);
      continue;
    }
    if (es != tp->rcv_nxt)
      e = toe_pbuf_drop_front(st, e, tp->rcv_nxt - es);
    uint32_t n = e->tot_len;
    tp->rcv_nxt += n;
    if (tp->flags & TOE_TF_SHUT_RD) {
      /* shutdown(SHUT_RD) since it was queued: acknowledged and discarded */
      st->ctr.tcp.rx_shut_rd_bytes += n;
      toe_pbuf_free(st, e);
      continue;
    }
    (void)toe_tcp_rcvq_append(st, tp, e); /* charged on arrival: never refused */
    tp->bytes_received += n;
    st->ctr.tcp.rx_bytes += n;
    moved += n;
  }
  sack_rebuild(tp, NULL);
  return moved;
}

void toe_tcp_reass_purge(struct toe_stack *st, struct toe_tcb *tp)
{
  toe_pbuf_free_queue(st, tp->ooo_head);
  tp->ooo_head = NULL;
  tp->ooo_bytes = 0;
  tp->ooo_count = 0;
  tp->sack_gen_count = 0;
  tp->ooo_fin = 0;
}
