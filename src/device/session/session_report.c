/*
 * What a session tells: completion and event entries on the CQ (with the room reserved for
 * every taken SQE), and the introspection answers (the flow table, the counters, the filters).
 */
#define _GNU_SOURCE

#include "device/session/session_internal.h"
#include "toe/steer.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Completion queue                                                                           */

/* Writes one CQE (its slot was reserved or checked free). */
void ses_cq_write(struct ctl_client *cl, const struct toe_abi_cqe *cqe)
{
  if (toe_ring_prod_write(&cl->cq, cqe, 1) != 1) {
    /* Reserved room that is not there means the host moved its consumer index backwards. */
    ctl_session_fail(cl, -TOE_EPROTO, CTL_END_PROTOCOL);
    return;
  }
  cl->cq_dirty = true;
}

/* The completion of `sqe` with `res`; `cqe` carries the payload (or is zero). */
void ses_finish(struct ctl_client *cl, struct toe_abi_cqe *cqe, const struct toe_abi_sqe *sqe,
                int res)
{
  cqe->user_data = sqe->user_data;
  cqe->res = res;
  if (!cqe->handle)
    cqe->handle = sqe->handle;
  cqe->type = TOE_ABI_CQE_OP;
  cqe->opcode = sqe->opcode;
  if (cl->cq_reserved)
    cl->cq_reserved--;
  ses_cq_write(cl, cqe);
  cl->abi.stats.completions++;
  cl->dev->stats.completions++;
  if (res < 0) {
    cl->abi.stats.err_op++;
    cl->dev->stats.err_op++;
  }
}

void ses_finish_res(struct ctl_client *cl, const struct toe_abi_sqe *sqe, int res)
{
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  ses_finish(cl, &cqe, sqe, res);
}

/* True if an event may be posted: a free CQ slot beyond the completions owed and `keep` more. */
bool ses_ev_room_keep(struct ctl_client *cl, uint32_t keep)
{
  int r = toe_ring_prod_reserve(&cl->cq, cl->cq_reserved + 1 + keep);
  if (r < 0) {
    ctl_session_fail(cl, r, CTL_END_PROTOCOL);
    return false;
  }
  return (uint32_t)r >= cl->cq_reserved + 1 + keep;
}

bool ses_ev_room(struct ctl_client *cl)
{
  return ses_ev_room_keep(cl, 0);
}

/* Posts an event of socket k (or of the session: k NULL). False if the CQ has no room. */
bool ses_post_event(struct ctl_client *cl, struct ctl_sock *k, uint8_t type, int32_t res,
                    uint16_t flags, struct toe_abi_cqe *cqe)
{
  if (!ses_ev_room(cl))
    return false;
  cqe->user_data = k ? k->sock_data : 0;
  cqe->handle = k ? k->handle : 0;
  cqe->type = type;
  cqe->res = res;
  cqe->flags = flags;
  ses_cq_write(cl, cqe);
  cl->abi.stats.events++;
  cl->dev->stats.events++;
  return true;
}

/* Socket k waits for CQ room: nothing rings a doorbell when the host drains the CQ, so look
 * again shortly. */
bool ses_wait_cq(struct ctl_client *cl, struct ctl_sock *k)
{
  cl->abi.stats.cq_full_waits++;
  cl->dev->stats.cq_full_waits++;
  if (cl->retry_at > cl->now + RETRY_NS)
    cl->retry_at = cl->now + RETRY_NS;
  (void)k;
  return true;
}

/* Has the host consumed CQ entry `idx`? (Re-reads its consumer index.) */
bool ses_cq_consumed(struct ctl_client *cl, uint32_t idx)
{
  if (toe_ring_prod_outstanding(&cl->cq) < 0) {
    ctl_session_fail(cl, -TOE_EPROTO, CTL_END_PROTOCOL);
    return true;
  }
  return (int32_t)(cl->cq.cached - idx) > 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Introspection: the flow table and the counters                                             */

static bool scratch_reserve(struct toed_ctl_dev *dev, size_t need)
{
  if (need <= dev->scratch_cap)
    return true;
  size_t cap = dev->scratch_cap ? dev->scratch_cap : 65536;
  while (cap < need)
    cap *= 2;
  char *p = realloc(dev->scratch, cap);
  if (!p)
    return false;
  dev->scratch = p;
  dev->scratch_cap = cap;
  return true;
}

struct text_ctx {
  struct toed_ctl_dev *dev;
  size_t len;
  bool failed;
};

static void text_add(void *arg, const char *layer, const char *name, uint64_t value)
{
  struct text_ctx *t = arg;
  char line[160];
  int n = snprintf(line, sizeof line, "%s.%s %llu\n", layer, name, (unsigned long long)value);
  if (n <= 0 || (size_t)n >= sizeof line || !scratch_reserve(t->dev, t->len + (size_t)n)) {
    t->failed = true;
    return;
  }
  memcpy(t->dev->scratch + t->len, line, (size_t)n);
  t->len += (size_t)n;
}

size_t ctl_counters_text(struct toed_ctl_dev *dev)
{
  struct text_ctx t = {dev, 0, false};
  toe_counters_visit(toe_stack_counters(dev->st), text_add, &t);
#define TEXT_STAT_(name) text_add(&t, "transport", #name, dev->stats.name);
  TOED_CTL_STATS(TEXT_STAT_)
#undef TEXT_STAT_
  return t.failed ? SIZE_MAX : t.len;
}

static void filter_line(void *arg, const struct toe_filter_info *f)
{
  struct text_ctx *t = arg;
  static const char *const kinds[] = {"?", "local", "conn", "timewait"};
  char line[240], la[INET6_ADDRSTRLEN], ra[INET6_ADDRSTRLEN];
  /* abi.h: dotted quads, or for an IPv6 exact filter (family 6) both addresses as RFC 5952 text */
  if (f->family == 6) {
    inet_ntop(AF_INET6, f->laddr6, la, sizeof la);
    inet_ntop(AF_INET6, f->raddr6, ra, sizeof ra);
  } else {
    uint32_t l = htonl(f->laddr), r = htonl(f->raddr);
    inet_ntop(AF_INET, &l, la, sizeof la);
    inet_ntop(AF_INET, &r, ra, sizeof ra);
  }
  int n =
      snprintf(line, sizeof line, "%s %s %s %u %s %u %u %llu %llu\n", f->proto == 6 ? "tcp" : "udp",
               kinds[f->kind <= 3 ? f->kind : 0], la, f->lport, ra, f->rport, f->refs,
               (unsigned long long)f->frames, (unsigned long long)f->bytes);
  if (n <= 0 || (size_t)n >= sizeof line || !scratch_reserve(t->dev, t->len + (size_t)n)) {
    t->failed = true;
    return;
  }
  memcpy(t->dev->scratch + t->len, line, (size_t)n);
  t->len += (size_t)n;
}

size_t ctl_filters_text(struct toed_ctl_dev *dev)
{
  struct text_ctx t = {dev, 0, false};
  /* An empty table still answers (a zero-length result), so reserve the first byte. */
  if (!scratch_reserve(dev, 1))
    return SIZE_MAX;
  toe_filter_visit(dev->st, filter_line, &t);
  return t.failed ? SIZE_MAX : t.len;
}

struct owner {
  uintptr_t s;
  const struct ctl_sock *k;
};

static int owner_cmp(const void *a, const void *b)
{
  uintptr_t x = ((const struct owner *)a)->s, y = ((const struct owner *)b)->s;
  return x < y ? -1 : x > y;
}

struct flows_ctx {
  struct toed_ctl_dev *dev;
  struct owner *owners;
  size_t nowners;
  size_t len;
  uint32_t count;
  bool failed;
};

static struct toe_abi_flow *flow_next(struct flows_ctx *f)
{
  if (!scratch_reserve(f->dev, f->len + sizeof(struct toe_abi_flow))) {
    f->failed = true;
    return NULL;
  }
  struct toe_abi_flow *r = (struct toe_abi_flow *)(void *)(f->dev->scratch + f->len);
  memset(r, 0, sizeof(*r));
  f->len += sizeof(*r);
  f->count++;
  return r;
}

static void flow_owner(struct toe_abi_flow *r, const struct ctl_sock *k)
{
  const struct ctl_client *cl = k->cl;
  r->client_id = cl->client_id;
  r->origin = cl->origin;
  r->pid = (uint32_t)cl->pid;
  r->uid = (uint32_t)cl->uid;
  memcpy(r->comm, cl->comm, sizeof(r->comm));
  if (k->owner_set) {
    /* A proxy's flow belongs to the program it carries: its tag, made printable like a hello's
     * name (cl->comm already is), stops at the first NUL. */
    r->pid = k->owner_pid;
    memset(r->comm, 0, sizeof(r->comm));
    for (size_t i = 0; i < sizeof(r->comm) - 1 && k->owner_comm[i]; i++)
      r->comm[i] = isprint((unsigned char)k->owner_comm[i]) ? k->owner_comm[i] : '?';
  }
  r->rx_bytes = k->rx_bytes;
  r->tx_bytes = k->tx_bytes;
}

static void flow_tcp(void *arg, const struct toe_sock *s, const struct toe_sockaddr *local,
                     const struct toe_sockaddr *remote, const struct toe_tcp_info *info)
{
  struct flows_ctx *f = arg;
  struct toe_abi_flow *r = flow_next(f);
  if (!r)
    return;
  r->proto = TOE_ABI_PROTO_TCP;
  r->tcp_state = info->state;
  addr_to_abi(local, &r->local);
  addr_to_abi(remote, &r->remote);
  r->rx_queued = info->rx_queued;
  r->tx_queued = info->tx_queued;
  r->snd_cwnd = info->snd_cwnd;
  r->rtt_us = info->rtt_us;
  r->rcv_wnd = info->rcv_wnd;
  r->snd_mss = info->snd_mss;
  r->retrans_segs = info->total_retrans;
  if (s && f->nowners) {
    struct owner key = {(uintptr_t)s, NULL};
    const struct owner *o = bsearch(&key, f->owners, f->nowners, sizeof(*o), owner_cmp);
    if (o) /* a shared connection's owner: the holder that uses it (toe-share: any) */
      flow_owner(r, o->k->sh && o->k->sh->active ? o->k->sh->active : o->k);
  }
}

size_t ctl_flows_build(struct toed_ctl_dev *dev)
{
  struct flows_ctx f = {dev, NULL, 0, sizeof(struct toe_abi_flows_hdr), 0, false};
  if (!scratch_reserve(dev, f.len))
    return SIZE_MAX;
  /* The clients' engine sockets, sorted, to find each connection's owner. */
  f.owners = malloc((size_t)dev->nsocks * sizeof(*f.owners) + 1);
  if (!f.owners)
    return SIZE_MAX;
  for (uint32_t i = 0; i < dev->nsocks; i++) {
    const struct ctl_sock *k = &dev->socks[i];
    if (k->cl && k->s && k->proto == TOE_ABI_PROTO_TCP)
      f.owners[f.nowners++] = (struct owner){(uintptr_t)k->s, k};
  }
  qsort(f.owners, f.nowners, sizeof(*f.owners), owner_cmp);
  toe_tcp_visit(dev->st, flow_tcp, &f);
  /* UDP: the engine has no visitor; the clients' sockets are known here. */
  for (uint32_t i = 0; i < dev->nsocks && !f.failed; i++) {
    const struct ctl_sock *k = &dev->socks[i];
    if (!k->cl || !k->s || k->proto != TOE_ABI_PROTO_UDP)
      continue;
    if (k->sh && k != (k->sh->active ? k->sh->active : k->sh->holders))
      continue; /* one row per socket: a shared one's active (else first) holder */
    struct toe_abi_flow *r = flow_next(&f);
    if (!r)
      break;
    r->proto = TOE_ABI_PROTO_UDP;
    struct toe_sockaddr l, rm;
    if (toe_sock_name(k->s, &l, &rm) == 0) {
      addr_to_abi(&l, &r->local);
      addr_to_abi(&rm, &r->remote);
    }
    r->rx_queued = ses_sock_nread(k);
    flow_owner(r, k);
  }
  free(f.owners);
  if (f.failed)
    return SIZE_MAX;
  struct toe_abi_flows_hdr *h = (struct toe_abi_flows_hdr *)(void *)dev->scratch;
  memset(h, 0, sizeof(*h));
  h->record_size = sizeof(struct toe_abi_flow);
  h->count = f.count;
  return f.len;
}
