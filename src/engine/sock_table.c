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

/*
 * How well `s` matches a datagram to (laddr, lport) from (raddr, rport): -1 not at all, else 0..3
 * (+1 bound to laddr itself, +2 connected to exactly that remote).
 */
static int match_score(const struct toe_sock *s, uint8_t proto, uint32_t laddr, uint16_t lport,
                       uint32_t raddr, uint16_t rport)
{
  if (s->proto != proto || s->lport != lport)
    return -1;
  if (s->flags & TOE_SOCK_F_NOT_V4)
    return -1; /* an IPv6-only socket (V6ONLY, bound or connected to IPv6) */
  int score = 0;
  if (s->laddr != 0) {
    if (s->laddr != laddr)
      return -1;
    score += 1;
  }
  if (s->flags & TOE_SOCK_F_CONNECTED) {
    /* RFC 1122 4.1.3.4 leaves filtering to the application; a connected socket asks for it */
    if (s->raddr != raddr || s->rport != rport)
      return -1;
    score += 2;
  }
  /* A TCP socket of a SO_REUSEPORT group takes new flows only once it listens (Linux adds it to
   * the group at listen()); until then its bind must not hide the listening members. */
  if ((s->flags & TOE_SOCK_F_REUSEPORT) && proto == TOE_IPPROTO_TCP &&
      toe_tcb((struct toe_sock *)(uintptr_t)s)->state != TOE_TCP_LISTEN)
    return -1;
  return score;
}

/* Whether `s` may be chosen in place of `best`, a member of a SO_REUSEPORT group. */
static bool same_group(const struct toe_sock *best, const struct toe_sock *s)
{
  return (s->flags & TOE_SOCK_F_REUSEPORT) && s->owner == best->owner;
}

/*
 * The flow hash that picks a group member: MurmurHash3's finalizer (toe_mix32) over the 4-tuple,
 * keyed with the device secret (bytes 8..15, unused by the other tables) so a peer cannot choose
 * ports that all land on one member.
 */

static uint32_t flow_hash(const struct toe_stack *st, uint32_t laddr, uint16_t lport,
                          uint32_t raddr, uint16_t rport)
{
  const uint8_t *k = st->cfg.secret + 8;
  uint32_t k0 = (uint32_t)k[0] | (uint32_t)k[1] << 8 | (uint32_t)k[2] << 16 | (uint32_t)k[3] << 24;
  uint32_t k1 = (uint32_t)k[4] | (uint32_t)k[5] << 8 | (uint32_t)k[6] << 16 | (uint32_t)k[7] << 24;
  uint32_t h = toe_mix32(raddr ^ k0);
  h = toe_mix32(h ^ ((uint32_t)rport << 16 | lport) ^ k1);
  return toe_mix32(h ^ laddr);
}

struct toe_sock *toe_socktab_lookup(const struct toe_stack *st, uint8_t proto, uint32_t laddr,
                                    uint16_t lport, uint32_t raddr, uint16_t rport)
{
  const struct toe_socktab *t = &st->socks;
  struct toe_sock *const *head = &t->bind_hash[socktab_bucket(t, proto, lport)];
  struct toe_sock *best = NULL;
  int best_score = -1;
  uint32_t group = 0; /* members of best's SO_REUSEPORT group with best_score, best included */
  for (struct toe_sock *s = *head; s; s = s->hnext) {
    int score = match_score(s, proto, laddr, lport, raddr, rport);
    if (score < 0)
      continue;
    if (score > best_score) {
      best = s;
      best_score = score;
      group = (s->flags & TOE_SOCK_F_REUSEPORT) ? 1u : 0u;
      if (score == 3)
        break; /* nothing beats an exact 4-tuple */
    } else if (score == best_score && group != 0 && same_group(best, s)) {
      group++;
    }
  }
  if (group <= 1)
    return best;
  /* Member index h * group / 2^32 (a multiply, no division, for 32-bit firmware), counted in
   * chain order: fixed while no member joins or leaves. */
  uint32_t pick = (uint32_t)(((uint64_t)flow_hash(st, laddr, lport, raddr, rport) * group) >> 32);
  const struct toe_sock *leader = best;
  for (struct toe_sock *s = *head; s; s = s->hnext) {
    if (match_score(s, proto, laddr, lport, raddr, rport) != best_score || !same_group(leader, s))
      continue;
    if (pick-- == 0)
      return s;
  }
  return best; /* not reached: the second pass sees the same members */
}

/*
 * What a bind holds, per family: an IPv4 socket holds its IPv4 address; an IPv6 one bound to ::
 * holds both families' "any" unless V6ONLY (Linux's dual-stack rule), bound to ::ffff:a.b.c.d
 * the IPv4 address, bound to an IPv6 address just that.
 */
struct bindkey {
  bool v4, v6;
  uint32_t a4;
  struct toe_in6_addr a6;
};

static void sock_bindkey(const struct toe_sock *s, struct bindkey *k)
{
  if (s->family != TOE_AF_INET6) {
    *k = (struct bindkey){.v4 = true, .a4 = s->laddr};
    return;
  }
  k->v4 = !(s->v6flags & (TOE_SOCK6_V6ONLY | TOE_SOCK6_BOUND6));
  k->v6 = !(s->v6flags & TOE_SOCK6_BOUND4);
  k->a4 = (s->v6flags & TOE_SOCK6_BOUND4) ? s->laddr : 0;
  memset(&k->a6, 0, sizeof(k->a6));
  if (s->v6flags & TOE_SOCK6_BOUND6)
    k->a6 = s->laddr6;
}

/* Two binds coexist only if, in every family both hold, both name specific addresses that
 * differ. */
static bool keys_overlap(const struct bindkey *a, const struct bindkey *b)
{
  if (a->v4 && b->v4 && (a->a4 == 0 || b->a4 == 0 || a->a4 == b->a4))
    return true;
  return a->v6 && b->v6 &&
         (toe_in6_is_unspecified(&a->a6) || toe_in6_is_unspecified(&b->a6) ||
          toe_in6_equal(&a->a6, &b->a6));
}

static bool port_in_use_key(const struct toe_stack *st, uint8_t proto, const struct bindkey *k,
                            uint16_t lport)
{
  const struct toe_socktab *t = &st->socks;
  for (const struct toe_sock *s = t->bind_hash[socktab_bucket(t, proto, lport)]; s; s = s->hnext) {
    if (s->proto != proto || s->lport != lport)
      continue;
    struct bindkey o;
    sock_bindkey(s, &o);
    if (keys_overlap(k, &o))
      return true;
  }
  return false;
}

bool toe_socktab_port_in_use(const struct toe_stack *st, uint8_t proto, uint32_t laddr,
                             uint16_t lport)
{
  struct bindkey k = {.v4 = true, .a4 = laddr};
  return port_in_use_key(st, proto, &k, lport);
}

static uint16_t ephemeral_key(struct toe_stack *st, uint8_t proto, const struct bindkey *k)
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
    if (!port_in_use_key(st, proto, k, port)) {
      st->socks.next_ephemeral = port;
      return port;
    }
  }
  return 0;
}

uint16_t toe_socktab_ephemeral(struct toe_stack *st, uint8_t proto, uint32_t laddr)
{
  struct bindkey k = {.v4 = true, .a4 = laddr};
  return ephemeral_key(st, proto, &k);
}

/*
 * True if `s` may hold a port together with `o`, which holds it already: UDP sockets that both set
 * SO_REUSEADDR, as on Linux (udp_lib_lport_inuse): a UDP server may bind a fresh socket to its port
 * while an earlier one, connected to a client, still holds it (iperf3 does);
 * toe_socktab_lookup then gives each datagram to the connected socket of its 4-tuple first. For TCP
 * SO_REUSEADDR only lets bind take a port held by TIME_WAIT (tcp_sock.c). Sockets of either
 * protocol that both set SO_REUSEPORT and have the same owner form a group (Linux asks for the
 * same effective uid, so one user cannot steal another's traffic; here the device passes its
 * client's uid as the owner).
 */
static bool shares_port(const struct toe_sock *s, const struct toe_sock *o)
{
  if ((s->flags & o->flags & TOE_SOCK_F_REUSEPORT) && s->owner == o->owner)
    return true;
  return s->proto == TOE_IPPROTO_UDP && (s->flags & o->flags & TOE_SOCK_F_REUSEADDR);
}

/* True if binding `s` to what `k` holds on `lport` conflicts with a bound socket. */
static bool bind_conflict(const struct toe_stack *st, const struct toe_sock *s,
                          const struct bindkey *k, uint16_t lport)
{
  if (!(s->flags & (TOE_SOCK_F_REUSEADDR | TOE_SOCK_F_REUSEPORT)))
    return port_in_use_key(st, s->proto, k, lport);
  const struct toe_socktab *t = &st->socks;
  for (const struct toe_sock *o = t->bind_hash[socktab_bucket(t, s->proto, lport)]; o;
       o = o->hnext) {
    if (o->proto != s->proto || o->lport != lport)
      continue;
    struct bindkey ok;
    sock_bindkey(o, &ok);
    if (!keys_overlap(k, &ok))
      continue;
    if (!shares_port(s, o))
      return true;
  }
  return false;
}

/* The port part of a bind, for both families: `k` says what the bind holds. */
static int bind_port(struct toe_stack *st, struct toe_sock *s, const struct bindkey *k,
                     uint16_t lport)
{
  if (lport == 0) {
    lport = ephemeral_key(st, s->proto, k);
    if (lport == 0)
      return -TOE_EADDRNOTAVAIL;
  } else if (bind_conflict(st, s, k, lport)) {
    return -TOE_EADDRINUSE;
  } else if (st->cfg.port_claim) {
    /* A host OS sharing our address may hold the port (docs/coexistence.md). */
    int rc = st->cfg.port_claim(st->cfg.ctx, s->proto, lport, true);
    if (rc < 0)
      return rc;
    s->flags |= TOE_SOCK_F_CLAIMED;
  }
  s->lport = lport;
  s->flags |= TOE_SOCK_F_BOUND;
  toe_socktab_insert(st, s);
  return 0;
}

int toe_sock_bind_local(struct toe_stack *st, struct toe_sock *s, uint32_t laddr, uint16_t lport)
{
  if (s->flags & TOE_SOCK_F_BOUND)
    return -TOE_EINVAL;
  if (laddr != 0 && laddr != st->cfg.addr)
    return -TOE_EADDRNOTAVAIL;
  if (s->family == TOE_AF_INET6) {
    /* An IPv6 socket asked for "any" by an IPv4-minded caller (autobind, ephemeral connect). */
    struct toe_in6_addr any;
    memset(&any, 0, sizeof(any));
    if (laddr != 0)
      toe_in6_v4mapped(&any, laddr);
    return toe_sock_bind_local6(st, s, &any, lport);
  }
  struct bindkey k = {.v4 = true, .a4 = laddr};
  int rc = bind_port(st, s, &k, lport);
  if (rc == 0)
    s->laddr = laddr;
  return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* IPv6 sockets */

int toe_sock_make_v6(const struct toe_stack *st, struct toe_sock *s)
{
  if (s->family == TOE_AF_INET6)
    return 0;
  if (!st->ip6.enabled)
    return -TOE_EAFNOSUPPORT; /* as socket(AF_INET6) on a host with IPv6 off */
  if (s->flags & TOE_SOCK_F_BOUND)
    return -TOE_EINVAL; /* an IPv4 socket stays one: its port is held for IPv4 only */
  s->family = TOE_AF_INET6;
  s->v6flags = 0;
  memset(&s->laddr6, 0, sizeof(s->laddr6));
  memset(&s->raddr6, 0, sizeof(s->raddr6));
  return 0;
}

int toe_sock_set_v6only(const struct toe_stack *st, struct toe_sock *s, int64_t value)
{
  if (value != 0 && value != 1)
    return -TOE_EINVAL;
  if (s->flags & TOE_SOCK_F_BOUND)
    return -TOE_EINVAL; /* Linux too refuses IPV6_V6ONLY on a bound socket */
  int rc = toe_sock_make_v6(st, s);
  if (rc < 0)
    return rc;
  if (value)
    s->v6flags |= TOE_SOCK6_V6ONLY;
  else
    s->v6flags &= (uint8_t)~TOE_SOCK6_V6ONLY;
  toe_sock6_refresh(s);
  return 0;
}

void toe_sock6_refresh(struct toe_sock *s)
{
  if (s->family != TOE_AF_INET6)
    return;
  bool no_v4 = (s->v6flags & (TOE_SOCK6_V6ONLY | TOE_SOCK6_BOUND6 | TOE_SOCK6_CONN6)) != 0;
  if (no_v4)
    s->flags |= TOE_SOCK_F_NOT_V4;
  else
    s->flags &= (uint8_t)~TOE_SOCK_F_NOT_V4;
}

int toe_sock_bind_local6(struct toe_stack *st, struct toe_sock *s, const struct toe_in6_addr *a,
                         uint16_t lport)
{
  if (s->flags & TOE_SOCK_F_BOUND)
    return -TOE_EINVAL;
  struct bindkey k;
  memset(&k, 0, sizeof(k));
  uint8_t bound = 0;
  if (toe_in6_is_v4mapped(a)) {
    /* RFC 4291 2.5.5.2: an IPv4 address under an IPv6 name; V6ONLY sockets have no IPv4. */
    uint32_t v4 = toe_in6_mapped_v4(a);
    if (s->v6flags & TOE_SOCK6_V6ONLY)
      return -TOE_EINVAL;
    if (v4 != 0 && v4 != st->cfg.addr)
      return -TOE_EADDRNOTAVAIL;
    k.v4 = true;
    k.a4 = v4;
    bound = TOE_SOCK6_BOUND4;
  } else if (toe_in6_is_unspecified(a)) {
    k.v4 = !(s->v6flags & TOE_SOCK6_V6ONLY);
    k.v6 = true;
  } else {
    if (toe_ip6_addr_find(st, a) < 0)
      return -TOE_EADDRNOTAVAIL;
    k.v6 = true;
    k.a6 = *a;
    bound = TOE_SOCK6_BOUND6;
  }
  int rc = bind_port(st, s, &k, lport);
  if (rc < 0)
    return rc;
  s->laddr = k.a4;
  s->laddr6 = k.a6;
  s->v6flags |= bound;
  toe_sock6_refresh(s);
  return 0;
}

static int match_score6(const struct toe_sock *s, uint8_t proto, const struct toe_in6_addr *laddr,
                        uint16_t lport, const struct toe_in6_addr *raddr, uint16_t rport)
{
  if (s->proto != proto || s->lport != lport || s->family != TOE_AF_INET6)
    return -1;
  if (s->v6flags & (TOE_SOCK6_BOUND4 | TOE_SOCK6_CONN4))
    return -1; /* an IPv4 socket under IPv6 names */
  int score = 0;
  if (!toe_in6_is_unspecified(&s->laddr6)) {
    if (!toe_in6_equal(&s->laddr6, laddr))
      return -1;
    score += 1;
  }
  if (s->flags & TOE_SOCK_F_CONNECTED) {
    if (s->rport != rport || !toe_in6_equal(&s->raddr6, raddr))
      return -1;
    score += 2;
  }
  if ((s->flags & TOE_SOCK_F_REUSEPORT) && proto == TOE_IPPROTO_TCP &&
      toe_tcb((struct toe_sock *)(uintptr_t)s)->state != TOE_TCP_LISTEN)
    return -1;
  return score;
}

/* An IPv6 address folded to 32 bits for the SO_REUSEPORT flow hash (keyed there). */
static uint32_t fold6(const struct toe_in6_addr *a)
{
  uint32_t h = 0;
  for (unsigned i = 0; i < 16; i += 4)
    h = toe_mix32(h ^ ((uint32_t)a->b[i] << 24 | (uint32_t)a->b[i + 1] << 16 |
                       (uint32_t)a->b[i + 2] << 8 | a->b[i + 3]));
  return h;
}

struct toe_sock *toe_socktab_lookup6(const struct toe_stack *st, uint8_t proto,
                                     const struct toe_in6_addr *laddr, uint16_t lport,
                                     const struct toe_in6_addr *raddr, uint16_t rport)
{
  const struct toe_socktab *t = &st->socks;
  struct toe_sock *const *head = &t->bind_hash[socktab_bucket(t, proto, lport)];
  struct toe_sock *best = NULL;
  int best_score = -1;
  uint32_t group = 0;
  for (struct toe_sock *s = *head; s; s = s->hnext) {
    int score = match_score6(s, proto, laddr, lport, raddr, rport);
    if (score < 0)
      continue;
    if (score > best_score) {
      best = s;
      best_score = score;
      group = (s->flags & TOE_SOCK_F_REUSEPORT) ? 1u : 0u;
      if (score == 3)
        break;
    } else if (score == best_score && group != 0 && same_group(best, s)) {
      group++;
    }
  }
  if (group <= 1)
    return best;
  uint32_t h = flow_hash(st, fold6(laddr), lport, fold6(raddr), rport);
  uint32_t pick = (uint32_t)(((uint64_t)h * group) >> 32);
  const struct toe_sock *leader = best;
  for (struct toe_sock *s = *head; s; s = s->hnext) {
    if (match_score6(s, proto, laddr, lport, raddr, rport) != best_score || !same_group(leader, s))
      continue;
    if (pick-- == 0)
      return s;
  }
  return best;
}

void toe_sock_fill_name(const struct toe_sock *s, struct toe_sockaddr *sa, uint16_t port, bool v6,
                        uint32_t a4, const struct toe_in6_addr *a6)
{
  memset(sa, 0, sizeof(*sa));
  sa->port = port;
  if (s->family != TOE_AF_INET6) {
    sa->family = TOE_AF_INET;
    sa->addr = a4;
    return;
  }
  sa->family = TOE_AF_INET6;
  if (v6) {
    memcpy(sa->addr6, a6->b, 16);
  } else if (a4 != 0 || !(s->v6flags & TOE_SOCK6_V6ONLY)) {
    /* IPv4 under an IPv6 name; an unbound dual-stack "any" stays :: */
    struct toe_in6_addr m;
    memset(&m, 0, sizeof(m));
    if (a4 != 0)
      toe_in6_v4mapped(&m, a4);
    memcpy(sa->addr6, m.b, 16);
  }
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

void toe_sock_set_owner(struct toe_sock *s, uint32_t owner)
{
  if (s != NULL && s->proto != 0)
    s->owner = owner;
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
  /* An IPv6 socket's local name is IPv6 unless it is bound or connected as an IPv4 one. */
  bool v6 = (s->v6flags & (TOE_SOCK6_BOUND4 | TOE_SOCK6_CONN4)) == 0;
  if (local)
    toe_sock_fill_name(s, local, s->lport, v6, s->laddr, &s->laddr6);
  if (remote) {
    memset(remote, 0, sizeof(*remote));
    if (s->flags & TOE_SOCK_F_CONNECTED)
      toe_sock_fill_name(s, remote, s->rport, (s->v6flags & TOE_SOCK6_CONN6) != 0, s->raddr,
                         &s->raddr6);
  }
  return 0;
}
