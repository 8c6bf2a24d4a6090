/*
 * ICMPv4 (RFC 792, RFC 1122 3.2.2): echo, error generation with rate limiting
 * (RFC 1812 4.3.2.8), and delivery of received errors to the socket whose datagram they quote.
 */
#ifndef TOE_ENGINE_ICMP_H
#define TOE_ENGINE_ICMP_H

#include "toe/engine.h"
#include "wire/ipv4.h"

#include <stdbool.h>
#include <stdint.h>

struct toe_icmp_state {
  uint64_t tokens_milli; /* token bucket in thousandths of a token */
  toe_time_t last_refill;
};

void toe_icmp_init(struct toe_stack *st);

/* A token bucket of icmp_rate_per_sec tokens a second, icmp_burst deep (RFC 1812 4.3.2.8; RFC 4443
 * 2.4 (f) for ICMPv6, which keeps its own): init fills it; take returns false when it is empty. */
void toe_icmp_bucket_init(struct toe_stack *st, struct toe_icmp_state *s);
bool toe_icmp_bucket_take(struct toe_stack *st, struct toe_icmp_state *s);

/* Handles a received ICMP message (data at the ICMP header; consumed). `ip` is its IP header. */
void toe_icmp_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv4_view *ip);

/*
 * Sends an ICMP error of `type`/`code` about the datagram `orig` (data at its IP header; borrowed,
 * not consumed), quoting its IP header and as much of its payload as keeps the error within 576
 * bytes (RFC 1812 4.3.2.3; at least the 8 bytes RFC 792 requires).
 * `rest` is the 4-byte rest-of-header (e.g. next-hop MTU). Suppressed per RFC 1122 3.2.2: never
 * about ICMP errors, non-first fragments, link or IP broadcast/multicast, or invalid sources;
 * rate limited by a token bucket. Counts what it does.
 */
void toe_icmp_send_error(struct toe_stack *st, const struct toe_pbuf *orig, uint8_t type,
                         uint8_t code, uint32_t rest);

#endif
