/*
 * Initial sequence numbers (RFC 6528) and per-connection timestamp offsets (RFC 7323 5.4).
 *
 * RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M is a timer
 * ticking every 4 microseconds and F a pseudorandom function keyed with a per-device secret. The
 * clock keeps ISNs of successive incarnations of one 4-tuple increasing (RFC 9293 3.4.1), the keyed
 * hash keeps them unpredictable to off-path attackers across different 4-tuples. F is the stack's
 * SipHash (toe_keyed_hash) under cfg.secret.
 */
#include "engine/div64.h"
#include "engine/stack.h"
#include "engine/tcp.h"

/* The 4-tuple in a fixed byte layout, with a domain byte so ISNs and TS offsets are unrelated. */
static uint64_t tuple_hash(const struct toe_stack *st, uint8_t domain, uint32_t laddr,
                           uint16_t lport, uint32_t raddr, uint16_t rport)
{
  uint8_t k[13];
  k[0] = (uint8_t)(laddr >> 24);
  k[1] = (uint8_t)(laddr >> 16);
  k[2] = (uint8_t)(laddr >> 8);
  k[3] = (uint8_t)laddr;
  k[4] = (uint8_t)(lport >> 8);
  k[5] = (uint8_t)lport;
  k[6] = (uint8_t)(raddr >> 24);
  k[7] = (uint8_t)(raddr >> 16);
  k[8] = (uint8_t)(raddr >> 8);
  k[9] = (uint8_t)raddr;
  k[10] = (uint8_t)(rport >> 8);
  k[11] = (uint8_t)rport;
  k[12] = domain;
  return toe_keyed_hash(st, k, sizeof(k));
}

uint32_t toe_tcp_isn(const struct toe_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
                     uint16_t rport)
{
  /* M: 4 us ticks of the stack clock (wraps every ~4.77 hours, as RFC 6528 expects) */
  uint32_t m = (uint32_t)(toe_div1000(toe_stack_now(st)) >> 2); /* ns / 4000 */
  uint32_t f = (uint32_t)tuple_hash(st, 'I', laddr, lport, raddr, rport);
  return m + f;
}

uint32_t toe_tcp_ts_offset(const struct toe_stack *st, uint32_t laddr, uint16_t lport,
                           uint32_t raddr, uint16_t rport)
{
  /* RFC 7323 5.4 / 7.1: a random per-connection offset keeps our clock from leaking uptime and
   * from linking connections; keyed on the 4-tuple so a new incarnation of the same connection
   * continues the same (monotonic) TSval sequence, which RFC 6191 TIME_WAIT reuse relies on. */
  return (uint32_t)tuple_hash(st, 'T', laddr, lport, raddr, rport);
}
