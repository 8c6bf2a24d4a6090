/*
 * UDP (RFC 768, RFC 1122 4.1): socket slots, receive path (checksum, demultiplexing, bounded
 * receive queues, ICMP port unreachable for closed ports) and send path (checksum, IPv4 output),
 * and ICMP errors turned into soft errors on connected sockets.
 */
#include "wire/udp.h"

#include "engine/stack.h"
#include "wire/icmpv4.h"

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
  if (local == NULL || local->family != TOE_AF_INET)
    return -TOE_EINVAL;
  return toe_sock_bind_local(st, s, local->addr, local->port);
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
    return 0;
  }
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

/* Resolves the destination of a send: explicit, or the connected peer. */
static int udp_dest(const struct toe_sock *s, const struct toe_sockaddr *dst, uint32_t *addr,
                    uint16_t *port)
{
  if (dst == NULL) {
    if (!(s->flags & TOE_SOCK_F_CONNECTED))
      return -TOE_EDESTADDRREQ;
    *addr = s->raddr;
    *port = s->rport;
    return 0;
  }
  /* port 0 cannot be addressed (Linux refuses it with EINVAL too) */
  if (dst->family != TOE_AF_INET || dst->addr == 0 || dst->port == 0)
    return -TOE_EINVAL;
  *addr = dst->addr;
  *port = dst->port;
  return 0;
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

/* Checks common to both send calls; autobinds an unbound socket (like Linux). */
static int udp_send_prepare(struct toe_stack *st, struct toe_sock *s, size_t len,
                            const struct toe_sockaddr *dst, uint32_t *daddr, uint16_t *dport)
{
  int rc = udp_dest(s, dst, daddr, dport);
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
  uint32_t daddr;
  uint16_t dport;
  int rc = udp_send_prepare(st, s, len, dst, &daddr, &dport);
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
  return udp_output(st, s, pb, daddr, dport);
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
  uint32_t daddr;
  uint16_t dport;
  int rc = udp_send_prepare(st, s, payload->tot_len, dst, &daddr, &dport);
  if (rc == 0 && toe_pbuf_headroom(payload) < TOE_PBUF_HEADROOM)
    rc = -TOE_EINVAL;
  if (rc < 0) {
    toe_pbuf_free(st, payload);
    st->ctr.udp.tx_errors++;
    return rc;
  }
  payload->qnext = NULL;
  return udp_output(st, s, payload, daddr, dport);
}

/* ------------------------------------------------------------------------------------------ */
/* Receive queue */

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
  if (from) {
    from->family = TOE_AF_INET;
    from->addr = TOE_UDP_META_ADDR(pb->meta[0]);
    from->port = TOE_UDP_META_PORT(pb->meta[0]);
  }
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

  struct toe_udp_sock *us = (struct toe_udp_sock *)(void *)s;
  if (us->rxq_len >= st->cfg.udp_rcvq_len) {
    c->rx_drop_queue_full++;
    toe_pbuf_free(st, pb);
    return;
  }
  /* The queue is charged in buffers too (pbuf_charge.c): a datagram count alone would let 256
   * reassembled datagrams of a thousand buffers each sit in one socket. A sparse chain is
   * compacted first, so a datagram costs what its bytes need. */
  if (pb->next != NULL)
    pb = toe_pbuf_compact(st, pb, 0);
  uint32_t owner = toe_pbuf_owner_udp(st, (uint32_t)(us - st->udp.socks));
  if (toe_pbuf_charge_check(st, owner, toe_pbuf_chain_bufs(pb), UINT32_MAX) < 0) {
    c->rx_drop_nomem++;
    toe_pbuf_free(st, pb);
    return;
  }
  toe_pbuf_charge(st, pb, owner);
  toe_pbuf_pull(pb, TOE_UDP_HLEN); /* linearized above: cannot fail */
  pb->meta[0] = TOE_UDP_META_FROM(ip->src, v.src_port);
  pb->meta[1] = TOE_UDP_META_RX(ip->dst, ip->tos, ip->ttl);
  pb->meta[2] = st->now;
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
    toe_sock_notify(st, s, TOE_EV_READABLE); /* last: the callback may close the socket */
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
