/*
 * UDP (RFC 768, RFC 1122 4.1): socket slots, receive path (checksum, demultiplexing, bounded
 * receive queues, ICMP port unreachable for closed ports) and send path (checksum, IPv4 output),
 * and ICMP errors turned into soft errors on connected sockets.
 */
#include "wire/udp.h"

#include "engine/stack.h"
#include "wire/checksum.h"
#include "wire/icmpv4.h"
#include "wire/icmpv6.h"

#include <string.h>

/* Largest payload of one datagram: 65535 - 20 (IPv4 header) - 8 (UDP header). */
#define UDP_MAX_PAYLOAD 65507u

size_t toe_udp_mem_size(const struct toe_config *cfg)
{
  size_t n = (size_t)cfg->udp_socks * sizeof(struct toe_udp_sock);
  return (n + 63u) & ~(size_t)63u;
}

void toe_udp_init(struct toe_stack *st, void *mem)
{
  struct toe_udp_state *u = &st->udp;
  u->socks = mem;
  u->count = st->cfg.udp_socks;
  u->free = NULL;
  /* build the free list back to front so slot 0 is handed out first */
  for (uint32_t i = u->count; i-- > 0;) {
    struct toe_udp_sock *us = &u->socks[i];
    memset(us, 0, sizeof(*us));
    us->sk.hnext = u->free ? &u->free->sk : NULL;
    u->free = us;
  }
}

/*
 * The UDP socket behind a handle, or NULL if `s` is not an open UDP socket of this stack. Checking
 * that the pointer is one of our slots keeps a stale or foreign handle from corrupting memory.
 */
static struct toe_udp_sock *udp_sock(const struct toe_stack *st, const struct toe_sock *s)
{
  if (s == NULL || st->udp.socks == NULL)
    return NULL;
  uintptr_t base = (uintptr_t)st->udp.socks;
  uintptr_t p = (uintptr_t)s;
  if (p < base || p >= base + (uintptr_t)st->udp.count * sizeof(struct toe_udp_sock))
    return NULL;
  if ((p - base) % sizeof(struct toe_udp_sock) != 0)
    return NULL;
  if (s->proto != TOE_IPPROTO_UDP)
    return NULL;
  return (struct toe_udp_sock *)(uintptr_t)s;
}

int toe_udp_open(struct toe_stack *st, void *user, struct toe_sock **out)
{
  struct toe_udp_sock *us = st->udp.free;
  if (us == NULL)
    return -TOE_EMFILE;
  st->udp.free = us->sk.hnext ? (struct toe_udp_sock *)(void *)us->sk.hnext : NULL;
  memset(us, 0, sizeof(*us));
  us->sk.proto = TOE_IPPROTO_UDP;
  us->sk.user = user;
  st->ctr.udp.socks_inuse++;
  *out = &us->sk;
  return 0;
}

void toe_sock_close(struct toe_stack *st, struct toe_sock *s)
{
  if (toe_tcp_sock(st, s) != NULL) {
    toe_tcp_close(st, s); /* graceful close (tcp_sock.c) */
    return;
  }
  struct toe_udp_sock *us = udp_sock(st, s);
  if (us == NULL)
    return;
  if (s->flags & TOE_SOCK_F_BOUND)
    toe_socktab_remove(st, s);
  toe_pbuf_free_queue(st, us->rxq_head);
  memset(us, 0, sizeof(*us));
  us->sk.hnext = st->udp.free ? &st->udp.free->sk : NULL;
  st->udp.free = us;
  st->ctr.udp.socks_inuse--;
}

int toe_sock_bind(struct toe_stack *st, struct toe_sock *s, const struct toe_sockaddr *local)
{
  if (toe_tcp_sock(st, s) != NULL)
    return toe_tcp_bind(st, s, local);
  if (udp_sock(st, s) == NULL)
    return -TOE_EBADF;
  if (local != NULL && local->family == TOE_AF_INET6) {
    int rc = toe_sock_make_v6(st, s);
    if (rc < 0)
      return rc;
    struct toe_in6_addr a;
    memcpy(a.b, local->addr6, 16);
    return toe_sock_bind_local6(st, s, &a, local->port);
  }
  if (local == NULL || local->family != TOE_AF_INET)
    return -TOE_EINVAL;
  if (s->family == TOE_AF_INET6)
    return -TOE_EAFNOSUPPORT;
  return toe_sock_bind_local(st, s, local->addr, local->port);
}

/*
 * A destination given to an IPv6 socket: a v4-mapped one is an IPv4 destination (*v6 false,
 * *addr set) unless the socket is V6ONLY; an IPv6 one needs a socket that may take IPv6. A
 * TOE_AF_INET address is refused as Linux's IPv6 sockets do.
 */
static int dest6(const struct toe_sock *s, const struct toe_sockaddr *d, bool *v6, uint32_t *addr,
                 struct toe_in6_addr *addr6)
{
  if (d->family != TOE_AF_INET6)
    return d->family == TOE_AF_INET ? -TOE_EAFNOSUPPORT : -TOE_EINVAL;
  if (d->port == 0)
    return -TOE_EINVAL;
  memcpy(addr6->b, d->addr6, 16);
  if (toe_in6_is_v4mapped(addr6)) {
    if ((s->v6flags & (TOE_SOCK6_V6ONLY | TOE_SOCK6_BOUND6)) || toe_in6_mapped_v4(addr6) == 0)
      return -TOE_ENETUNREACH; /* Linux: an IPv6-only socket has no IPv4 path */
    *v6 = false;
    *addr = toe_in6_mapped_v4(addr6);
    return 0;
  }
  if (toe_in6_is_unspecified(addr6) || (s->v6flags & TOE_SOCK6_BOUND4))
    return -TOE_EINVAL;
  *v6 = true;
  return 0;
}

/* connect() of an IPv6 socket. */
static int connect6(struct toe_stack *st, struct toe_sock *s, const struct toe_sockaddr *remote)
{
  bool v6;
  uint32_t addr = 0;
  struct toe_in6_addr a6;
  int rc = dest6(s, remote, &v6, &addr, &a6);
  if (rc < 0)
    return rc;
  if (!(s->flags & TOE_SOCK_F_BOUND)) {
    struct toe_in6_addr any;
    memset(&any, 0, sizeof(any));
    rc = toe_sock_bind_local6(st, s, &any, 0);
    if (rc < 0)
      return rc;
  }
  if (v6) {
    if (toe_in6_is_unspecified(&s->laddr6)) {
      const struct toe_in6_addr *src = toe_ip6_src_for(st, &a6);
      if (src == NULL)
        return -TOE_EADDRNOTAVAIL;
      s->laddr6 = *src;
      s->v6flags |= TOE_SOCK6_AUTO6;
    }
    s->raddr6 = a6;
    s->v6flags = (uint8_t)((s->v6flags & ~TOE_SOCK6_CONN4) | TOE_SOCK6_CONN6);
  } else {
    if (s->laddr == 0) {
      s->laddr = st->cfg.addr;
      s->flags |= TOE_SOCK_F_LADDR_AUTO;
    }
    s->raddr = addr;
    s->v6flags = (uint8_t)((s->v6flags & ~TOE_SOCK6_CONN6) | TOE_SOCK6_CONN4);
  }
  s->rport = remote->port;
  s->flags |= TOE_SOCK_F_CONNECTED;
  toe_sock6_refresh(s);
  return 0;
}

int toe_sock_connect(struct toe_stack *st, struct toe_sock *s, const struct toe_sockaddr *remote)
{
  if (toe_tcp_sock(st, s) != NULL)
    return toe_tcp_connect(st, s, remote); /* active open (tcp_sock.c) */
  if (udp_sock(st, s) == NULL)
    return -TOE_EBADF;
  if (remote == NULL)
    return -TOE_EINVAL;
  if (remote->family == 0) {
    /* dissolve the association (connect with AF_UNSPEC); the port stays bound, as in Linux */
    s->flags &= (uint8_t)~TOE_SOCK_F_CONNECTED;
    s->raddr = 0;
    s->rport = 0;
    if (s->flags & TOE_SOCK_F_LADDR_AUTO) {
      s->laddr = 0;
      s->flags &= (uint8_t)~TOE_SOCK_F_LADDR_AUTO;
    }
    if (s->v6flags & TOE_SOCK6_AUTO6)
      memset(&s->laddr6, 0, sizeof(s->laddr6));
    s->v6flags &= (uint8_t) ~(TOE_SOCK6_AUTO6 | TOE_SOCK6_CONN4 | TOE_SOCK6_CONN6);
    memset(&s->raddr6, 0, sizeof(s->raddr6));
    toe_sock6_refresh(s);
    return 0;
  }
  if (remote->family == TOE_AF_INET6) {
    int rc = toe_sock_make_v6(st, s);
    return rc < 0 ? rc : connect6(st, s, remote);
  }
  if (s->family == TOE_AF_INET6)
    return remote->family == TOE_AF_INET ? -TOE_EAFNOSUPPORT : -TOE_EINVAL;
  if (remote->family != TOE_AF_INET || remote->addr == 0 || remote->port == 0)
    return -TOE_EINVAL;
  if (!(s->flags & TOE_SOCK_F_BOUND)) {
    int rc = toe_sock_bind_local(st, s, 0, 0);
    if (rc < 0)
      return rc;
  }
  /*
   * Like Linux, the local address of a socket bound to "any" becomes the source address the
   * association uses (so toe_sock_name() shows it). The table key (proto, port) is unchanged;
   * with one interface address this cannot create a conflict.
   */
  if (s->laddr == 0) {
    s->laddr = st->cfg.addr;
    s->flags |= TOE_SOCK_F_LADDR_AUTO;
  }
  s->raddr = remote->addr;
  s->rport = remote->port;
  s->flags |= TOE_SOCK_F_CONNECTED;
  return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Output */

/* Where a datagram goes: IPv4 `addr`, or IPv6 `addr6` when `v6`. */
struct udp_dst {
  bool v6;
  uint16_t port;
  uint32_t addr;
  struct toe_in6_addr addr6;
};

/* Resolves the destination of a send: explicit, or the connected peer. */
static int udp_dest(const struct toe_stack *st, struct toe_sock *s, const struct toe_sockaddr *dst,
                    struct udp_dst *d)
{
  d->v6 = false;
  if (dst == NULL) {
    if (!(s->flags & TOE_SOCK_F_CONNECTED))
      return -TOE_EDESTADDRREQ;
    d->v6 = (s->v6flags & TOE_SOCK6_CONN6) != 0;
    d->addr = s->raddr;
    d->addr6 = s->raddr6;
    d->port = s->rport;
    return 0;
  }
  if (dst->family == TOE_AF_INET6) {
    int rc = toe_sock_make_v6(st, s);
    if (rc < 0)
      return -TOE_EAFNOSUPPORT; /* a bound IPv4 socket */
    d->port = dst->port;
    return dest6(s, dst, &d->v6, &d->addr, &d->addr6);
  }
  if (s->family == TOE_AF_INET6)
    return dst->family == TOE_AF_INET ? -TOE_EAFNOSUPPORT : -TOE_EINVAL;
  /* port 0 cannot be addressed (Linux refuses it with EINVAL too) */
  if (dst->family != TOE_AF_INET || dst->addr == 0 || dst->port == 0)
    return -TOE_EINVAL;
  d->addr = dst->addr;
  d->port = dst->port;
  return 0;
}

/*
 * IPv6 output of a datagram (`pb` at the payload, consumed). RFC 8200 8.1: the checksum is
 * mandatory over IPv6, and a computed zero is sent as 0xffff.
 */
static int udp_output6(struct toe_stack *st, struct toe_sock *s, struct toe_pbuf *pb,
                       const struct toe_in6_addr *daddr, uint16_t dport)
{
  uint32_t plen = pb->tot_len;
  uint16_t ulen = (uint16_t)(plen + TOE_UDP_HLEN);
  const struct toe_in6_addr *src = &s->laddr6;
  if (toe_in6_is_unspecified(src))
    src = toe_ip6_src_for(st, daddr);
  uint8_t *h = src ? toe_pbuf_push(pb, TOE_UDP_HLEN) : NULL;
  if (h == NULL) {
    toe_pbuf_free(st, pb);
    st->ctr.udp.tx_errors++;
    return src ? -TOE_EINVAL : -TOE_EADDRNOTAVAIL;
  }
  toe_udp_write(h, s->lport, dport, ulen);
  uint32_t sum = toe_csum_add32(toe_ipv6_pseudo_csum(src, daddr, ulen, TOE_IPPROTO_UDP),
                                toe_pbuf_csum(pb, 0, ulen));
  uint16_t csum = toe_csum_fold(sum);
  if (csum == 0)
    csum = 0xffff;
  memcpy(h + 6, &csum, 2);
  struct toe_ip6_tx tx = {.src = *src, .dst = *daddr, .next_hdr = TOE_IPPROTO_UDP};
  int rc = toe_ipv6_output(st, pb, &tx);
  if (rc < 0) {
    st->ctr.udp.tx_errors++;
    return rc;
  }
  st->ctr.udp.tx_datagrams++;
  return (int)plen;
}

/*
 * Prepends the header to `pb` (payload, consumed), checksums it and hands it to IPv4.
 * The socket is bound.
 */
static int udp_output(struct toe_stack *st, struct toe_sock *s, struct toe_pbuf *pb, uint32_t daddr,
                      uint16_t dport)
{
  uint32_t plen = pb->tot_len;
  uint16_t ulen = (uint16_t)(plen + TOE_UDP_HLEN);
  uint32_t saddr = s->laddr ? s->laddr : st->cfg.addr;
  uint8_t *h = toe_pbuf_push(pb, TOE_UDP_HLEN);
  if (h == NULL) {
    toe_pbuf_free(st, pb);
    st->ctr.udp.tx_errors++;
    return -TOE_EINVAL;
  }
  toe_udp_write(h, s->lport, dport, ulen);
  /* RFC 768: the checksum covers the pseudo header, the header and the data; always sent */
  uint16_t csum = toe_udp_csum_finish(toe_pbuf_csum(pb, 0, ulen), saddr, daddr, ulen);
  memcpy(h + 6, &csum, 2);

  struct toe_ip_tx tx = {
      .src = saddr,
      .dst = daddr,
      .proto = TOE_IPPROTO_UDP,
      .ttl = 0,
      .tos = 0,
      .df = false,
  };
  int rc = toe_ipv4_output(st, pb, &tx);
  if (rc < 0) {
    st->ctr.udp.tx_errors++;
    return rc;
  }
  st->ctr.udp.tx_datagrams++;
  return (int)plen;
}

/* Sends `pb` (payload, consumed) to `d`. */
static int udp_output_to(struct toe_stack *st, struct toe_sock *s, struct toe_pbuf *pb,
                         const struct udp_dst *d)
{
  if (d->v6)
    return udp_output6(st, s, pb, &d->addr6, d->port);
  return udp_output(st, s, pb, d->addr, d->port);
}

/* Checks common to both send calls; autobinds an unbound socket (like Linux). */
static int udp_send_prepare(struct toe_stack *st, struct toe_sock *s, size_t len,
                            const struct toe_sockaddr *dst, struct udp_dst *d)
{
  int rc = udp_dest(st, s, dst, d);
  if (rc < 0)
    return rc;
  if (len > UDP_MAX_PAYLOAD)
    return -TOE_EMSGSIZE;
  if (!(s->flags & TOE_SOCK_F_BOUND)) {
    rc = toe_sock_bind_local(st, s, 0, 0);
    if (rc < 0)
      return rc;
  }
  return 0;
}

int toe_udp_sendto(struct toe_stack *st, struct toe_sock *s, const void *data, size_t len,
                   const struct toe_sockaddr *dst)
{
  if (udp_sock(st, s) == NULL)
    return -TOE_EBADF;
  if (data == NULL && len != 0)
    return -TOE_EINVAL;
  struct udp_dst d;
  int rc = udp_send_prepare(st, s, len, dst, &d);
  if (rc < 0) {
    st->ctr.udp.tx_errors++;
    return rc;
  }
  struct toe_pbuf *pb = len ? toe_pbuf_from_bytes(st, data, len, TOE_PBUF_HEADROOM)
                            : toe_pbuf_alloc(st, TOE_PBUF_HEADROOM);
  if (pb == NULL) {
    st->ctr.udp.tx_errors++;
    return -TOE_ENOBUFS;
  }
  return udp_output_to(st, s, pb, &d);
}

int toe_udp_send_pbuf(struct toe_stack *st, struct toe_sock *s, struct toe_pbuf *payload,
                      const struct toe_sockaddr *dst)
{
  if (payload == NULL)
    return -TOE_EINVAL;
  if (udp_sock(st, s) == NULL) {
    toe_pbuf_free(st, payload);
    return -TOE_EBADF;
  }
  struct udp_dst d;
  int rc = udp_send_prepare(st, s, payload->tot_len, dst, &d);
  if (rc == 0 && toe_pbuf_headroom(payload) < TOE_PBUF_HEADROOM)
    rc = -TOE_EINVAL;
  if (rc < 0) {
    toe_pbuf_free(st, payload);
    st->ctr.udp.tx_errors++;
    return rc;
  }
  payload->qnext = NULL;
  return udp_output_to(st, s, payload, &d);
}

/* ------------------------------------------------------------------------------------------ */
/* Receive queue */

/* The source of a queued datagram, in the socket's family (v4-mapped on an IPv6 socket). */
static void udp_from(const struct toe_udp_sock *us, const struct toe_pbuf *pb,
                     struct toe_sockaddr *from)
{
  uint64_t m = pb->meta[0];
  if (m & TOE_UDP_META_V6) {
    struct toe_in6_addr a;
    for (unsigned i = 0; i < 8; i++) {
      a.b[i] = (uint8_t)(pb->meta[1] >> (56 - 8 * i));
      a.b[8 + i] = (uint8_t)(pb->meta[3] >> (56 - 8 * i));
    }
    toe_sock_fill_name(&us->sk, from, TOE_UDP_META_PORT(m), true, 0, &a);
    return;
  }
  toe_sock_fill_name(&us->sk, from, TOE_UDP_META_PORT(m), false, TOE_UDP_META_ADDR(m), NULL);
}

static struct toe_pbuf *udp_dequeue(struct toe_udp_sock *us, struct toe_sockaddr *from)
{
  struct toe_pbuf *pb = us->rxq_head;
  if (pb == NULL)
    return NULL;
  us->rxq_head = pb->qnext;
  if (us->rxq_head == NULL)
    us->rxq_tail = NULL;
  pb->qnext = NULL;
  us->rxq_len--;
  us->rxq_bytes -= pb->tot_len;
  if (from)
    udp_from(us, pb, from);
  return pb;
}

int toe_udp_recvfrom(struct toe_stack *st, struct toe_sock *s, void *buf, size_t cap,
                     struct toe_sockaddr *from)
{
  struct toe_udp_sock *us = udp_sock(st, s);
  if (us == NULL)
    return -TOE_EBADF;
  if (buf == NULL)
    cap = 0;
  struct toe_pbuf *pb = udp_dequeue(us, from);
  if (pb == NULL)
    return -TOE_EAGAIN;
  uint32_t len = pb->tot_len;
  if (cap > 0)
    toe_pbuf_copy_out(pb, 0, buf, cap < len ? cap : len);
  toe_pbuf_free(st, pb);
  return (int)len;
}

struct toe_pbuf *toe_udp_recv_pbuf(struct toe_stack *st, struct toe_sock *s,
                                   struct toe_sockaddr *from)
{
  struct toe_udp_sock *us = udp_sock(st, s);
  if (us == NULL)
    return NULL;
  return udp_dequeue(us, from);
}

void toe_udp_pbuf_rxinfo(const struct toe_pbuf *pb, struct toe_udp_rxinfo *ri)
{
  if (pb->meta[0] & TOE_UDP_META_V6) {
    ri->dst = 0;
    ri->tos = (uint8_t)(pb->meta[0] >> 32);
    ri->ttl = (uint8_t)(pb->meta[0] >> 40);
    ri->at = pb->meta[2];
    return;
  }
  ri->dst = (uint32_t)pb->meta[1];
  ri->tos = (uint8_t)(pb->meta[1] >> 32);
  ri->ttl = (uint8_t)(pb->meta[1] >> 40);
  ri->at = pb->meta[2];
}

uint32_t toe_udp_rx_pending(const struct toe_sock *s, uint32_t *bytes)
{
  if (s == NULL || s->proto != TOE_IPPROTO_UDP) {
    if (bytes)
      *bytes = 0;
    return 0;
  }
  const struct toe_udp_sock *us = (const struct toe_udp_sock *)(const void *)s;
  if (bytes)
    *bytes = us->rxq_bytes;
  return us->rxq_len;
}

/* ------------------------------------------------------------------------------------------ */
/* Input */

/* Queues `pb` (at the UDP header, `ulen` bytes) on `us`; meta as udp.h says. Consumes. */
static void udp_enqueue(struct toe_stack *st, struct toe_udp_sock *us, struct toe_pbuf *pb,
                        const uint64_t meta[4])
{
  struct toe_counters_udp *c = &st->ctr.udp;
  if (us->rxq_len >= st->cfg.udp_rcvq_len) {
    c->rx_drop_queue_full++;
    toe_pbuf_free(st, pb);
    return;
  }
  if (pb->next != NULL)
    pb = toe_pbuf_compact(st, pb, 0);
  uint32_t owner = toe_pbuf_owner_udp(st, (uint32_t)(us - st->udp.socks));
  if (toe_pbuf_charge_check(st, owner, toe_pbuf_chain_bufs(pb), UINT32_MAX) < 0) {
    c->rx_drop_nomem++;
    toe_pbuf_free(st, pb);
    return;
  }
  toe_pbuf_charge(st, pb, owner);
  toe_pbuf_pull(pb, TOE_UDP_HLEN);
  pb->meta[0] = meta[0];
  pb->meta[1] = meta[1];
  pb->meta[2] = st->now;
  pb->meta[3] = meta[3];
  pb->qnext = NULL;
  bool was_empty = us->rxq_head == NULL;
  if (us->rxq_tail)
    us->rxq_tail->qnext = pb;
  else
    us->rxq_head = pb;
  us->rxq_tail = pb;
  us->rxq_len++;
  us->rxq_bytes += pb->tot_len;
  c->rx_delivered++;
  if (was_empty)
    toe_sock_notify(st, &us->sk, TOE_EV_READABLE); /* last: the callback may close the socket */
}

void toe_udp_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv4_view *ip)
{
  struct toe_counters_udp *c = &st->ctr.udp;
  struct toe_udp_view v;
  c->rx_datagrams++;

  /* the header may straddle buffers of a reassembled datagram */
  if (pb->tot_len < TOE_UDP_HLEN || toe_pbuf_linearize_head(st, pb, TOE_UDP_HLEN) < 0 ||
      toe_udp_parse(&v, pb->data, pb->len, pb->tot_len) < 0) {
    c->rx_drop_malformed++;
    toe_pbuf_free(st, pb);
    return;
  }
  /* RFC 768: bytes past the length field are not part of the datagram (IP padding) */
  if (v.len < pb->tot_len)
    toe_pbuf_trim(st, pb, v.len);

  /* a zero checksum field means the sender computed none (RFC 768, RFC 1122 4.1.3.4) */
  if (v.csum != 0 && !(pb->flags & TOE_PBUF_F_L4_CSUM_OK) &&
      !toe_udp_csum_ok(&v, toe_pbuf_csum(pb, 0, v.len), ip->src, ip->dst)) {
    c->rx_drop_checksum++;
    toe_pbuf_free(st, pb);
    return;
  }

  struct toe_sock *s =
      toe_socktab_lookup(st, TOE_IPPROTO_UDP, ip->dst, v.dst_port, ip->src, v.src_port);
  if (s == NULL) {
    c->rx_drop_no_port++;
    /*
     * RFC 1122 4.1.3.1: a datagram for a port nobody listens on SHOULD draw an ICMP port
     * unreachable. The ICMP layer applies the suppression rules (broadcasts, fragments, rate).
     * It quotes the datagram from its IP header, which is still in front of the data.
     */
    if (toe_pbuf_push(pb, ip->hdr_len) != NULL)
      toe_icmp_send_error(st, pb, TOE_ICMP_DEST_UNREACH, TOE_ICMP_PORT_UNREACH, 0);
    toe_pbuf_free(st, pb);
    return;
  }

  uint64_t meta[4] = {TOE_UDP_META_FROM(ip->src, v.src_port),
                      TOE_UDP_META_RX(ip->dst, ip->tos, ip->ttl), 0, 0};
  udp_enqueue(st, (struct toe_udp_sock *)(void *)s, pb, meta);
}

void toe_udp_input6(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *ip,
                    const struct toe_ipv6_ext *ext, bool ll_group)
{
  struct toe_counters_udp *c = &st->ctr.udp;
  struct toe_udp_view v;
  c->rx_datagrams++;
  c->rx_datagrams6++;
  if (pb->tot_len < TOE_UDP_HLEN || toe_pbuf_linearize_head(st, pb, TOE_UDP_HLEN) < 0 ||
      toe_udp_parse(&v, pb->data, pb->len, pb->tot_len) < 0) {
    c->rx_drop_malformed++;
    goto drop;
  }
  if (v.len < pb->tot_len)
    toe_pbuf_trim(st, pb, v.len);
  /* RFC 8200 8.1: over IPv6 the checksum is mandatory; a zero one is discarded and counted
   * (RFC 6935's zero-checksum tunnels are not ours). */
  if (v.csum == 0) {
    c->rx_drop_zero_csum6++;
    goto drop;
  }
  if (!(pb->flags & TOE_PBUF_F_L4_CSUM_OK)) {
    uint32_t sum = toe_csum_add32(toe_pbuf_csum(pb, 0, v.len),
                                  toe_ipv6_pseudo_csum(&ip->src, &ip->dst, v.len, TOE_IPPROTO_UDP));
    if (toe_csum_fold(sum) != 0) {
      c->rx_drop_checksum++;
      goto drop;
    }
  }
  /* Datagrams to a group are not ours to take yet (no IPv6 multicast sockets). */
  struct toe_sock *s = NULL;
  if (!toe_in6_is_multicast(&ip->dst))
    s = toe_socktab_lookup6(st, TOE_IPPROTO_UDP, &ip->dst, v.dst_port, &ip->src, v.src_port);
  if (s == NULL) {
    c->rx_drop_no_port++;
    /* RFC 4443 3.1 code 4, quoting from the IPv6 header still in front of the data;
     * toe_icmp6_send_error applies RFC 4443 2.4 (e) (no error for a group destination). */
    if (toe_pbuf_push(pb, ext->offset) != NULL)
      toe_icmp6_send_error(st, pb, ip, ll_group, TOE_ICMPV6_DEST_UNREACH, TOE_ICMPV6_PORT_UNREACH,
                           0);
    goto drop;
  }
  uint64_t meta[4] = {0, 0, 0, 0};
  meta[0] =
      TOE_UDP_META_V6 | ((uint64_t)ip->hop_limit << 40) | ((uint64_t)ip->tclass << 32) | v.src_port;
  for (unsigned i = 0; i < 8; i++) {
    meta[1] = meta[1] << 8 | ip->src.b[i];
    meta[3] = meta[3] << 8 | ip->src.b[8 + i];
  }
  udp_enqueue(st, (struct toe_udp_sock *)(void *)s, pb, meta);
  return;
drop:
  toe_pbuf_free(st, pb);
}

bool toe_udp_icmp_error(struct toe_stack *st, const struct toe_ipv4_view *qip, const uint8_t *ql4,
                        int err)
{
  uint16_t sport = (uint16_t)(ql4[0] << 8 | ql4[1]);
  uint16_t dport = (uint16_t)(ql4[2] << 8 | ql4[3]);
  /* the quoted datagram went from (qip->src, sport) to (qip->dst, dport) */
  if (qip->src != st->cfg.addr)
    return false;
  struct toe_sock *s = toe_socktab_lookup(st, TOE_IPPROTO_UDP, qip->src, sport, qip->dst, dport);
  /*
   * RFC 1122 4.1.3.3 passes ICMP errors up to the application layer; only a connected socket has
   * a single peer the error can be about, so Linux reports to an unconnected socket only when it
   * asked with IP_RECVERR (udp_err: then sk_err is set either way).
   */
  if (s == NULL || !(s->flags & (TOE_SOCK_F_CONNECTED | TOE_SOCK_F_RECVERR)))
    return false;
  toe_sock_set_error(st, s, err);
  return true;
}

bool toe_udp_link_failure(struct toe_stack *st, const struct toe_ipv4_view *qip, const uint8_t *ql4)
{
  uint16_t sport = (uint16_t)(ql4[0] << 8 | ql4[1]);
  uint16_t dport = (uint16_t)(ql4[2] << 8 | ql4[3]);
  struct toe_sock *s = toe_socktab_lookup(st, TOE_IPPROTO_UDP, qip->src, sport, qip->dst, dport);
  if (s == NULL || !(s->flags & TOE_SOCK_F_RECVERR))
    return false;
  toe_sock_set_error(st, s, -TOE_EHOSTUNREACH);
  return true;
}
