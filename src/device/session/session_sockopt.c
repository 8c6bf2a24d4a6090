/*
 * Socket options and per-socket statistics: SETSOCKOPT, GETSOCKOPT and STATS (ABI 1.1).
 */
#define _GNU_SOURCE

#include "device/session/session_internal.h"

#include <string.h>

/* Socket-level options the engine keeps only for TCP: a UDP socket remembers them. (SO_REUSEADDR
 * goes to the engine, where it lets UDP sockets share a port.) */
static bool udp_local_opt(uint32_t opt)
{
  return opt == TOE_ABI_SO_RCVBUF || opt == TOE_ABI_SO_SNDBUF;
}

void ses_op_setsockopt(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  uint32_t opt = sqe->u.sockopt.opt;
  int64_t v = sqe->u.sockopt.value;
  int rc = 0;
  if (opt == TOE_ABI_SO_OWNER_PID || opt == TOE_ABI_SO_OWNER_COMM_LO ||
      opt == TOE_ABI_SO_OWNER_COMM_HI) {
    /* Only a proxy speaks for other programs; anyone else would be forging the flow table. */
    if (cl->origin != TOE_ABI_ORIGIN_PROXY) {
      rc = -TOE_EPERM;
    } else if (opt == TOE_ABI_SO_OWNER_PID) {
      k->owner_pid = (uint32_t)v; /* validated: 0..INT32_MAX */
      k->owner_set = true;
    } else {
      /* 8 name bytes, little-endian in the value; shown only after sanitising (flow_owner) */
      uint8_t *dst = (uint8_t *)k->owner_comm + (opt == TOE_ABI_SO_OWNER_COMM_HI ? 8 : 0);
      for (int i = 0; i < 8; i++)
        dst[i] = (uint8_t)((uint64_t)v >> (8 * i));
      k->owner_set = true;
    }
  } else if (opt == TOE_ABI_SO_RXBUFS) {
    struct toe_abi_hslot *sl = &cl->slots[k->index];
    bool more = (uint32_t)v > sl->rx_max;
    sl->rx_max = (uint32_t)v; /* validated: 0..buf_count */
    if (k->sh && k->proto == TOE_ABI_PROTO_TCP) {
      if (v > 0)
        k->sh->active = k; /* a holder of a shared connection asks for its data again */
      else if (k->sh->active == k)
        k->sh->active = NULL; /* it stops: the next holder that asks gets the data */
    }
    if (more) {
      k->flags |= SF_RX; /* more credit: delivery may resume */
      ses_list_add(cl, k, CTL_LIST_WORK);
    }
  } else if (opt == TOE_ABI_SO_RXMETA) {
    k->rxmeta = v != 0; /* validated: 0/1, UDP; from the next datagram taken off the engine */
  } else if (k->proto == TOE_ABI_PROTO_UDP && udp_local_opt(opt)) {
    k->udp_opt[opt] = v;
  } else {
    /* SO_REUSEPORT groups only form between sockets of one uid (Linux's rule): the engine
     * compares owners at bind, and the owner is the uid the kernel gave for this client. */
    if (opt == TOE_ABI_SO_REUSEPORT)
      toe_sock_set_owner(k->s, (uint32_t)cl->uid);
    rc = toe_sock_setopt(cl->dev->st, k->s, (int)opt, v);
  }
  ses_finish_res(cl, sqe, rc);
}

/* Bytes the device holds for k that the host has not been lent. */
uint32_t ses_sock_nread(const struct ctl_sock *k)
{
  if (k->proto == TOE_ABI_PROTO_TCP)
    return toe_tcp_rx_pending(k->s);
  uint32_t bytes = 0;
  toe_udp_rx_pending(k->s, &bytes);
  if (k->held)
    bytes += k->held->tot_len - k->held_off;
  return bytes;
}

void ses_op_getsockopt(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  struct toe_abi_cqe cqe;
  memset(&cqe, 0, sizeof(cqe));
  uint32_t opt = sqe->u.sockopt.opt;
  int64_t v = 0;
  int rc = 0;
  switch (opt) {
  case TOE_ABI_SO_ERROR:
    /* The pending error, cleared: the latest soft error, else what the engine holds. */
    v = k->so_error;
    k->so_error = 0;
    if (v == 0 && k->s) {
      int e = toe_sock_error(cl->dev->st, k->s);
      v = e < 0 ? e : 0;
    }
    break;
  case TOE_ABI_SO_RXBUFS:
    v = cl->slots[k->index].rx_max;
    break;
  case TOE_ABI_SO_NREAD:
    v = ses_sock_nread(k);
    break;
  case TOE_ABI_SO_RXMETA:
    v = k->rxmeta;
    break;
  case TOE_ABI_SO_OWNER_PID:
    v = k->owner_pid;
    break;
  case TOE_ABI_SO_OWNER_COMM_LO:
  case TOE_ABI_SO_OWNER_COMM_HI: {
    const uint8_t *src = (const uint8_t *)k->owner_comm + (opt == TOE_ABI_SO_OWNER_COMM_HI ? 8 : 0);
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
      u |= (uint64_t)src[i] << (8 * i);
    v = (int64_t)u;
    break;
  }
  default:
    if (k->proto == TOE_ABI_PROTO_UDP && udp_local_opt(opt))
      v = k->udp_opt[opt];
    else
      rc = toe_sock_getopt(cl->dev->st, k->s, (int)opt, &v);
    break;
  }
  cqe.u.sockopt.value = rc == 0 ? v : 0;
  ses_finish(cl, &cqe, sqe, rc);
}

static void sock_stats(struct ctl_client *cl, struct ctl_sock *k, struct toe_abi_sock_stats *ss)
{
  memset(ss, 0, sizeof(*ss));
  ss->proto = k->proto;
  ss->rx_lent = cl->slots[k->index].rx_lent;
  struct toe_sockaddr l, r;
  if (toe_sock_name(k->s, &l, &r) == 0) {
    addr_to_abi(&l, &ss->local);
    addr_to_abi(&r, &ss->remote);
  }
  ss->rx_bytes = k->rx_bytes;
  ss->tx_bytes = k->tx_bytes;
  ss->rx_queued = ses_sock_nread(k);
  struct toe_tcp_info info;
  if (k->proto == TOE_ABI_PROTO_TCP && toe_tcp_get_info(cl->dev->st, k->s, &info) == 0) {
    ss->tcp_state = info.state;
    ss->tx_queued = info.tx_queued;
    ss->rtt_us = info.rtt_us;
    ss->snd_cwnd = info.snd_cwnd;
    ss->snd_mss = info.snd_mss;
    ss->rcv_wnd = info.rcv_wnd;
    ss->retrans_segs = info.total_retrans;
  }
}

void ses_op_stats(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe)
{
  struct toed_ctl_dev *dev = cl->dev;
  const void *src = NULL;
  size_t full = 0;
  struct toe_abi_sock_stats ss;
  switch (sqe->u.stats.kind) {
  case TOE_ABI_STATS_CLIENT:
    src = &cl->abi.stats;
    full = sizeof(cl->abi.stats);
    break;
  case TOE_ABI_STATS_SOCKET:
    sock_stats(cl, k, &ss);
    src = &ss;
    full = sizeof(ss);
    break;
  case TOE_ABI_STATS_ENGINE: { /* who may read what: ctl_stats.c */
    const char *text = NULL;
    full = ctl_engine_stats(dev, cl->privileged, cl->now, &text);
    src = text;
    break;
  }
  case TOE_ABI_STATS_FLOWS:
    full = ctl_flows_build(dev);
    src = dev->scratch;
    break;
  case TOE_ABI_STATS_FILTERS:
    full = ctl_filters_text(dev);
    src = dev->scratch;
    break;
  case TOE_ABI_STATS_DEVICE: /* 1.3 (ctl_info.c) */
    full = ctl_device_text(dev, (cl->abi.caps & TOE_ABI_CAP_FLOWS) != 0);
    src = dev->scratch;
    break;
  default: /* refused by validation */
    break;
  }
  if (!src || full == SIZE_MAX) {
    ses_finish_res(cl, sqe, -TOE_ENOMEM);
    return;
  }
  /* The range was validated inside the buffer area. */
  size_t n = full < sqe->u.stats.len ? full : sqe->u.stats.len;
  memcpy(cl->region + sqe->u.stats.buf_off, src, n);
  ses_finish_res(cl, sqe, full > INT32_MAX ? INT32_MAX : (int)full);
}
