/*
 * Changing the IPv4 address at run time (include/toe/addr_live.h). The engine has one IPv4
 * address; a connection's local address is part of its identity (RFC 9293 3.1: the socket pair),
 * so a connection on an address that went away can never carry another segment: the peer is told
 * at once (RST) rather than left to time out, and the owner sees the failure.
 */
#include "toe/addr_live.h"

#include "engine/stack.h"
#include "engine/tcp.h"
#include "toe/tcp.h"
#include "wire/ipv4.h"

/* Resets one connection on the old address: the RST where ABORT sends one (RFC 9293 3.10.5),
 * then the drop that tells the owner (or frees an orphan). */
static void reset_conn(struct toe_stack *st, struct toe_tcb *tp)
{
  switch (tp->state) {
  case TOE_TCP_SYN_RECEIVED:
  case TOE_TCP_ESTABLISHED:
  case TOE_TCP_FIN_WAIT_1:
  case TOE_TCP_FIN_WAIT_2:
  case TOE_TCP_CLOSE_WAIT:
    toe_tcp_send_rst_conn(st, tp);
    break;
  default:
    break;
  }
  toe_tcp_drop(st, tp, -TOE_ENETDOWN);
}

int toe_stack_set_addr4(struct toe_stack *st, uint32_t addr, uint8_t prefix_len, uint32_t gateway)
{
  if (prefix_len > 32 || !toe_stack_host_addr_ok(addr, prefix_len))
    return -TOE_EINVAL;
  if (gateway) {
    uint32_t m = toe_ipv4_mask(prefix_len);
    if (gateway == addr || (gateway & m) != (addr & m) ||
        !toe_stack_host_addr_ok(gateway, prefix_len))
      return -TOE_EINVAL;
  }
  uint32_t old = st->cfg.addr;
  if (addr != old) {
    /* The RSTs leave from the old address (the segments they answer were sent to it), so the
     * address changes after them. */
    for (uint32_t i = 0; i < st->cfg.tcp_socks; i++) {
      struct toe_tcb *tp = &st->tcp.tcbs[i];
      if (tp->sk.proto != TOE_IPPROTO_TCP || tp->state == TOE_TCP_CLOSED ||
          tp->state == TOE_TCP_LISTEN || tp->sk.family == TOE_AF_INET6 || tp->sk.laddr != old)
        continue;
      reset_conn(st, tp);
    }
    /* The owners hear of it now, once every connection is reset (callbacks may close). */
    toe_tcp_notify_flush(st);
  }
  st->cfg.addr = addr;
  st->cfg.prefix_len = prefix_len;
  st->cfg.gateway = gateway;
  return 0;
}
