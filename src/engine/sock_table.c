/*
 * The socket table: a chained hash of bound sockets keyed by (protocol, local port), the port
 * conflict rules, ephemeral port selection (RFC 6056), and the socket calls common to every
 * protocol (notification, soft errors, names).
 */
#include "engine/div64.h"
#include "engine/stack.h"
#include "toe/steer.h"

#include <string.h>

/*
 * Buckets: one per socket slot of every protocol (rounded up to a power of two), at least 16, at
 * most 65536 (the key has 17 bits, so chains stay about two long even with every port bound).
 */
#define SOCKTAB_MIN_BITS 4u
#define SOCKTAB_MAX_BITS 16u

static uint32_t socktab_bits(const struct toe_config *cfg)
{
  uint64_t want = (uint64_t)cfg->udp_socks + cfg->tcp_socks;
  uint32_t bits = SOCKTAB_MIN_BITS;
  while (bits < SOCKTAB_MAX_BITS && (1u << bits) < want)
    bits++;
  return bits;
}

size_t toe_socktab_mem_size(const struct toe_config *cfg)
{
  size_t n = ((size_t)1 << socktab_bits(cfg)) * sizeof(struct toe_sock *);
  return (n + 63u) & ~(size_t)63u;
}

void toe_socktab_init(struct toe_stack *st, void *mem)
{
  struct toe_socktab *t = &st->socks;
  uint32_t bits = socktab_bits(&st->cfg);
  t->bind_hash = mem;
  t->mask = (1u << bits) - 1u;
  t->hash_shift = (uint8_t)(32u - bits);
  t->next_ephemeral = 0;
  t->bound = 0;
  for (uint32_t i = 0; i <= t->mask; i++)
    t->bind_hash[i] = NULL;
}

/*
 * Fibonacci hashing of the 17-bit key (proto, port): consecutive ports (ephemeral allocations)
 * land in different buckets. Local ports are chosen by us, not by the peer, so the hash needs no
 * key to resist collision attacks.
 */
static uint32_t socktab_bucket(const struct toe_socktab *t, uint8_t proto, uint16_t lport)
{
  uint32_t key = ((uint32_t)proto << 16) | lport;
  return ((key * 0x9e3779b1u) >> t->hash_shift) & t->mask;
}

void toe_socktab_insert(struct toe_stack *st, struct toe_sock *s)
{
  struct toe_socktab *t = &st->socks;
  uint32_t b = socktab_bucket(t, s->proto, s->lport);
  s->hnext = t->bind_hash[b];
  t->bind_hash[b] = s;
  t->bound++;
  /* The port's traffic is the engine's from now on (toe/steer.h). */
  toe_filt_add(st, TOE_FILTER_LOCAL, s->proto, s->lport, 0, 0);
}

void toe_socktab_remove(struct toe_stack *st, struct toe_sock *s)
{
  struct toe_socktab *t = &st->socks;
  struct toe_sock **pp = &t->bind_hash[socktab_bucket(t, s->proto, s->lport)];
  for (; *pp; pp = &(*pp)->hnext) {
    if (*pp == s) {
      *pp = s->hnext;
      s->hnext = NULL;
      t->bound--;
      toe_filt_del(st, s->proto, s->lport, 0, 0);
      if (s->flags & TOE_SOCK_F_CLAIMED) {
        s->flags &= (uint8_t)~TOE_SOCK_F_CLAIMED;
        (void)st->cfg.port_claim(st->cfg.ctx, s->proto, s->lport, false);
      }
      return;
    }
  }
}

struct toe_sock *toe_socktab_lookup(const struct toe_stack *st, uint8_t proto, uint32_t laddr,
                                    uint16_t lport, uint32_t raddr, uint16_t rport)
{
  const struct toe_socktab *t = &st->socks;
  struct toe_sock *best = NULL;
  int best_score = -1;
  for (struct toe_sock *s = t->bind_hash[socktab_bucket(t, proto, lport)]; s; s = s->hnext) {
    if (s->proto != proto || s->lport != lport)
      continue;
    int score = 0;
    if (s->laddr != 0) {
      if (s->laddr != laddr)
        continue;
      score += 1;
    }
    if (s->flags & TOE_SOCK_F_CONNECTED) {
      /* RFC 1122 4.1.3.4 leaves filtering to the application; a connected socket asks for it */
      if (s->raddr != raddr || s->rport != rport)
        continue;
      score += 2;
    }
    if (score > best_score) {
      best = s;
      best_score = score;
      if (score == 3)
        break; /* nothing beats an exact 4-tuple */
    }
  }
  return best;
}

bool toe_socktab_port_in_use(const struct toe_stack *st, uint8_t proto, uint32_t laddr,
                             uint16_t lport)
{
  const struct toe_socktab *t = &st->socks;
  for (const struct toe_sock *s = t->bind_hash[socktab_bucket(t, proto, lport)]; s; s = s->hnext) {
    if (s->proto != proto || s->lport != lport)
      continue;
    /* two binds coexist only if both name a specific address and the addresses differ */
    if (s->laddr == 0 || laddr == 0 || s->laddr == laddr)
      return true;
  }
  return false;
}

uint16_t toe_socktab_ephemeral(struct toe_stack *st, uint8_t proto, uint32_t laddr)
{
  uint32_t lo = st->cfg.ephemeral_lo, hi = st->cfg.ephemeral_hi;
  if (lo == 0)
    lo = 1; /* port 0 means "pick one"; it is never handed out */
  if (hi < lo)
    return 0;
  uint32_t num = hi - lo + 1u;
  /*
   * RFC 6056 3.3.1 (Algorithm 1): a random offset into the range, then a linear search for a
   * free port. A random start keeps ports unpredictable to off-path attackers; the linear search
   * bounds the work to one pass over the range even when it is nearly full.
   */
  uint32_t offset = (uint32_t)toe_umod64(toe_random(st), num);
  for (uint32_t i = 0; i < num; i++) {
    uint16_t port = (uint16_t)(lo + (offset + i) % num);
    if (!toe_socktab_port_in_use(st, proto, laddr, port)) {
      st->socks.next_ephemeral = port;
      return port;
    }
  }
  return 0;
}

/*
 * True if binding `s` to (laddr, lport) conflicts with a bound socket. UDP sockets that both set
 * SO_REUSEADDR share a port, as on Linux (udp_lib_lport_inuse): a UDP server may bind a fresh
 * socket to its port while an earlier one, connected to a client, still holds it (iperf3 does);
 * toe_socktab_lookup then gives each datagram to the connected socket of its 4-tuple first. For TCP
 * SO_REUSEADDR only lets bind take a port held by TIME_WAIT (tcp_sock.c).
 */
static bool bind_conflict(const struct toe_stack *st, const struct toe_sock *s, uint32_t laddr,
                          uint16_t lport)
{
  if (s->proto != TOE_IPPROTO_UDP || !(s->flags & TOE_SOCK_F_REUSEADDR))
    return toe_socktab_port_in_use(st, s->proto, laddr, lport);
  const struct toe_socktab *t = &st->socks;
  for (const struct toe_sock *o = t->bind_hash[socktab_bucket(t, s->proto, lport)]; o;
       o = o->hnext) {
    if (o->proto != s->proto || o->lport != lport)
      continue;
    if (o->laddr != 0 && laddr != 0 && o->laddr != laddr)
      continue;
    if (!(o->flags & TOE_SOCK_F_REUSEADDR))
      return true;
  }
  return false;
}

int toe_sock_bind_local(struct toe_stack *st, struct toe_sock *s, uint32_t laddr, uint16_t lport)
{
  if (s->flags & TOE_SOCK_F_BOUND)
    return -TOE_EINVAL;
  if (laddr != 0 && laddr != st->cfg.addr)
    return -TOE_EADDRNOTAVAIL;
  if (lport == 0) {
    lport = toe_socktab_ephemeral(st, s->proto, laddr);
    if (lport == 0)
      return -TOE_EADDRNOTAVAIL;
  } else if (bind_conflict(st, s, laddr, lport)) {
    return -TOE_EADDRINUSE;
  } else if (st->cfg.port_claim) {
    /* A host OS sharing our address may hold the port (docs/coexistence.md). */
    int rc = st->cfg.port_claim(st->cfg.ctx, s->proto, lport, true);
    if (rc < 0)
      return rc;
    s->flags |= TOE_SOCK_F_CLAIMED;
  }
  s->laddr = laddr;
  s->lport = lport;
  s->flags |= TOE_SOCK_F_BOUND;
  toe_socktab_insert(st, s);
  return 0;
}

void toe_sock_notify(struct toe_stack *st, struct toe_sock *s, uint32_t events)
{
  if (st->cfg.sock_event)
    st->cfg.sock_event(st->cfg.ctx, s, s->user, events);
}

void toe_sock_set_error(struct toe_stack *st, struct toe_sock *s, int err)
{
  s->soft_err = (int16_t)err;
  toe_sock_notify(st, s, TOE_EV_ERROR);
}

int toe_sock_error(struct toe_stack *st, struct toe_sock *s)
{
  if (s == NULL || s->proto == 0)
    return -TOE_EBADF;
  int err = s->soft_err;
  s->soft_err = 0;
  return err;
}

void toe_sock_set_user(struct toe_sock *s, void *user)
{
  if (s != NULL && s->proto != 0)
    s->user = user;
}

int toe_sock_name(const struct toe_sock *s, struct toe_sockaddr *local, struct toe_sockaddr *remote)
{
  if (s == NULL || s->proto == 0)
    return -TOE_EBADF;
  if (local) {
    local->family = TOE_AF_INET;
    local->port = s->lport;
    local->addr = s->laddr;
  }
  if (remote) {
    memset(remote, 0, sizeof(*remote));
    if (s->flags & TOE_SOCK_F_CONNECTED) {
      remote->family = TOE_AF_INET;
      remote->port = s->rport;
      remote->addr = s->raddr;
    }
  }
  return 0;
}
