/*
 * Set-up shared by the fuzz targets that drive one whole engine on a virtual clock
 * (fuzz_engine.c, fuzz_tcp.c, fuzz_steer.c and the pool-bound variants that include the first
 * two): the addresses, a small configuration, the peer made known by an ARP request, the clock
 * run out at the end, and the pool statistics a seed writer asks for.
 *
 * The engine is 198.18.0.1/24 with MAC 02:00:00:00:00:01; the peer is 198.18.0.2 with MAC
 * 02:00:00:00:00:02 (RFC 2544 benchmarking addresses).
 */
#ifndef TOE_FUZZ_FZ_STACK_H
#define TOE_FUZZ_FZ_STACK_H

#include "toe/engine.h"

#include <stdint.h>

#define FZ_OUR_IP 0xc6120001u  /* 198.18.0.1/24 */
#define FZ_PEER_IP 0xc6120002u /* 198.18.0.2 */

extern const uint8_t FZ_OUR_MAC[6];
extern const uint8_t FZ_PEER_MAC[6];

/* toe_config_defaults(), then the engine's MAC and address (/24), `pbufs` packet buffers, 8 ARP
 * entries, a fixed random seed and secret (so that a crash reproduces), and the callbacks with
 * their context. The caller sizes the rest. */
void fz_config(struct toe_config *cfg, uint32_t pbufs, toe_tx_fn tx, toe_sock_event_fn ev,
               void *ctx);

/* Creates the engine of `cfg` into *st, then starts it at `now` (*st is set first: the engine's
 * callbacks may run during the start and find it through their context). Aborts if the
 * configuration is refused (a bug in the target, not in the input). */
void fz_stack_start(const struct toe_config *cfg, toe_time_t now, struct toe_stack **st);

/* Hands the engine the peer's ARP request for our address (in VLAN `vlan` if not 0), so that the
 * peer is a known neighbour before the input starts. */
void fz_learn_peer(struct toe_stack *st, toe_time_t now, uint16_t vlan);

/* Runs the clock past every deadline the engine has, at most `rounds` times, 10 s beyond each:
 * what is closed finishes closing, every timer (retransmission, TIME_WAIT, ARP, reassembly)
 * runs out. */
void fz_run_out(struct toe_stack *st, toe_time_t *now, int rounds);

/* With FUZZ_POOL_STATS in the environment, one line to stderr of how far the input pushed the
 * pool of `pbufs` buffers (target `name`): whether a seed reaches the pool's limits. */
void fz_pool_stats(const char *name, const struct toe_stack *st, uint32_t pbufs);

#endif
