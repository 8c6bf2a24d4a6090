/*
 * ECN for TCP (tcp_ecn.c): RFC 3168 and Accurate ECN (RFC 9768).
 *
 * The rest of TCP calls in at five points (every hook is one call):
 *   - tcp_output.c tcp_xmit_ex(): toe_tcp_ecn_tx() for every segment of a connection: the SYN's
 *     offer, ECE/CWR (or AccECN's ACE counter) and the IP ECN field (ECT(0) on new data only);
 *     toe_tcp_retransmit() and zero-window probes set TOE_ECNF_NOECT around their send.
 *   - tcp_input.c SYN-SENT: toe_tcp_ecn_synack_input() with the peer's SYN-ACK (or its SYN in a
 *     simultaneous open, which turns ECN off).
 *   - tcp_input.c, synchronized states: toe_tcp_ecn_input() after the ACK was processed: CE
 *     marks received, CWR, ECE or the ACE counter, and the sender's reduction.
 *   - tcp_syncache.c: toe_tcp_ecn_syn_mode() for a SYN to a listener, toe_tcp_ecn_synack_bits()
 *     for the SYN-ACK, toe_tcp_ecn_passive_init() when the handshake completes.
 *
 * The connection's state lives in the tcb (tp->ecn_*, tcp.h); the counters are tcp.ecn_*.
 */
#ifndef TOE_ENGINE_TCP_ECN_H
#define TOE_ENGINE_TCP_ECN_H

#include <stdbool.h>
#include <stdint.h>

struct toe_stack;
struct toe_tcb;
struct toe_tcp_view;

/* The AE flag (RFC 9768 3: the bit before CWR, header byte 12 bit 0), as a ninth flag bit. */
#define TOE_TCP_AE 0x100u

/* The IP header's ECN field (RFC 3168 5). */
#define TOE_ECN_NOT_ECT 0u
#define TOE_ECN_ECT1 1u
#define TOE_ECN_ECT0 2u
#define TOE_ECN_CE 3u

/* tp->ecn_flags */
#define TOE_ECNF_OK 0x01u        /* RFC 3168 ECN agreed */
#define TOE_ECNF_ACC 0x02u       /* Accurate ECN agreed (RFC 9768) */
#define TOE_ECNF_OFFERED 0x04u   /* SYN-SENT: our SYN asked for ECN */
#define TOE_ECNF_ACC_OFFER 0x08u /* SYN-SENT: ... for AccECN */
#define TOE_ECNF_ECE 0x10u       /* RFC 3168 6.1.3: CE seen, ECE on every ACK until a CWR */
#define TOE_ECNF_CWR 0x20u       /* RFC 3168 6.1.2: cwnd reduced, CWR on the next new data */
#define TOE_ECNF_NOECT 0x40u     /* the segment being sent is a retransmission or a probe */
#define TOE_ECNF_HS_ACE 0x80u    /* AccECN client: the next ACK carries the handshake encoding */
#define TOE_ECNF_HS_SKIP 0x100u  /* AccECN server: the handshake's ACK (its ACE is no counter) */

/* What toe_tcp_ecn_tx() adds to a segment. */
struct toe_tcp_ecn_tx {
  uint16_t flags; /* TCP flags to set: ECE, CWR, TOE_TCP_AE */
  uint8_t tos;    /* IP ECN field */
};

/* The ECN bits of segment `flags` (TOE_TCP_*) of `tp` about to go, `data` if it carries payload;
 * consumes a pending CWR or handshake feedback. */
void toe_tcp_ecn_tx(struct toe_stack *st, struct toe_tcb *tp, uint8_t flags, bool data,
                    struct toe_tcp_ecn_tx *out);

/* SYN-SENT got the peer's SYN (with `th->flags` ACK: its SYN-ACK) carried with IP ECN `ipecn`. */
void toe_tcp_ecn_synack_input(struct toe_stack *st, struct toe_tcb *tp,
                              const struct toe_tcp_view *th, uint8_t ipecn);

/* An acceptable segment in a synchronized state, after its ACK was processed (snd_una moved):
 * `plen` payload bytes, IP ECN field `ipecn`. */
void toe_tcp_ecn_input(struct toe_stack *st, struct toe_tcb *tp, const struct toe_tcp_view *th,
                       uint8_t ipecn, uint32_t plen);

/* Listener side. A SYN's request: 0 none, TOE_ECNF_OK (RFC 3168) or TOE_ECNF_ACC, after
 * cfg.tcp_ecn. */
uint8_t toe_tcp_ecn_syn_mode(const struct toe_stack *st, const struct toe_tcp_view *th);
/* The SYN-ACK's flag bits for `mode` (as toe_tcp_ecn_syn_mode) and the SYN's IP ECN field. */
uint16_t toe_tcp_ecn_synack_bits(uint8_t mode, uint8_t syn_ipecn);
/* The handshake completed with `mode`: sets up tp; `th` is the completing ACK (AccECN: its ACE
 * field feeds back our SYN-ACK and 0 means a middlebox zeroed it: no ECN then, RFC 9768 3.2.2.3).
 */
void toe_tcp_ecn_passive_init(struct toe_stack *st, struct toe_tcb *tp, uint8_t mode,
                              const struct toe_tcp_view *th);

/* The ACE field of a segment (AE, CWR, ECE as a 3-bit number, RFC 9768 3.2.2). */
uint8_t toe_tcp_ecn_ace(const struct toe_tcp_view *th);

#endif
