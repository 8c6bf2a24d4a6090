/*
 * The session's private interface: what the files of src/device/session/ share. The public one,
 * for toed's server loop and main, is device/ctl_client.h.
 *
 * A host client's session (docs/transport.md): commands from the submission ring executed against
 * the engine, socket events and received data turned into completion entries, buffers and
 * credit accounted, abuse counted, and everything reset when the session ends.
 *
 * Rules kept throughout:
 *   - every descriptor is copied out of shared memory, then validated (toe_abi_validate_sqe), then
 *     used; nothing the session relies on is read back from the region;
 *   - a CQ entry is reserved for every taken SQE until its completion is written, and events go
 *     only into the free space beyond the reservations, so the CQ never overflows and a
 *     completion never waits;
 *   - received data leaves the engine only into a buffer the host gave (fill ring) and only within
 *     the socket's credit (SO_RXBUFS); otherwise it stays in the engine and TCP's window closes
 *     (RFC 9293 3.8.6), so toed buffers nothing for a slow host;
 *   - a SEND is copied from the region straight into the engine's send buffer (one copy) and
 *     completes when every byte is in; a SEND that does not fit waits in its socket's queue, with
 *     the ops submitted after it, until the engine reports space (never buffered in toed);
 *   - engine calls happen here, never in the sock_event callback (ctl_sock_event only records).
 */
#ifndef TOED_SESSION_INTERNAL_H
#define TOED_SESSION_INTERNAL_H

#include "device/ctl_client.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define SQ_BATCH 64u      /* SQEs copied out per ring read */
#define SQ_BUDGET 1024u   /* SQEs per session per round (then the engine and others run) */
#define FQ_BATCH 256u     /* fill entries per ring read */
#define WORK_BUDGET 4096u /* socket work items per session per round */
/* A held receive (rx_hold) lasts until the host's fill-ring doorbell brings the session back,
 * and never longer than this: a host that does not drain its CQ gets its data all the same. */
#define HOLD_MAX_NS 200000ull
#define RETRY_NS 1000000ull /* re-check of waits no doorbell announces (CQ room, engine pool) */

enum { CTL_LIST_NONE = 0, CTL_LIST_WORK, CTL_LIST_WAIT };

/* ctl_sock.flags */
#define SF_RX 0x0001u            /* data, end of stream or an error may wait in the engine */
#define SF_EOF 0x0002u           /* the engine reported end of stream */
#define SF_EOF_POSTED 0x0004u    /* EV_PEER_CLOSED posted */
#define SF_DEAD 0x0008u          /* the connection is over (reset, failed, or fully closed) */
#define SF_END_POSTED 0x0010u    /* EV_RESET / fatal EV_ERROR posted (or not owed) */
#define SF_WANT_WRITABLE 0x0020u /* a DONTWAIT SEND fell short: EV_WRITABLE when space opens */
#define SF_WRITABLE_PEND 0x0040u /* EV_WRITABLE to post */
#define SF_ERR_PEND 0x0080u      /* a soft EV_ERROR to post */
#define SF_CLOSING 0x0100u       /* a graceful CLOSE waits in the send queue */
#define SF_SHUT_RD 0x0200u       /* the host shut reading: nothing more is delivered */
#define SF_ERR_POSTED 0x0400u    /* err_cq_idx names the last soft EV_ERROR */
#define SF_STALLED 0x0800u       /* delivery stall counted (once per stall) */
#define SF_SEND_NOBUF 0x1000u    /* a SEND waits for the engine's packet pool */
#define SF_DATA_POSTED 0x2000u   /* data_cq_idx names the last EV_DATA */
#define SF_HELD 0x4000u          /* data is held since held_since (rx_hold) */

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                              */

static inline uint32_t min_u32(uint32_t a, uint32_t b)
{
  return a < b ? a : b;
}

/* ABI address (port a little-endian integer, address bytes in network order) -> engine. The
 * ABI's scope id has no engine counterpart: the device has one link, so a link-local address
 * names the same neighbour whatever scope the host gave (validation let only 1.7 clients send
 * AF_INET6 at all). */
static inline void addr_to_engine(const struct toe_abi_sockaddr *a, struct toe_sockaddr *e)
{
  memset(e, 0, sizeof(*e));
  if (a->family == TOE_ABI_AF_INET6) {
    e->family = TOE_AF_INET6;
    e->port = a->port;
    memcpy(e->addr6, a->addr, 16);
    return;
  }
  if (a->family != TOE_ABI_AF_INET)
    return; /* UNSPEC: family 0 ("none"; connect dissolves a UDP association) */
  e->family = TOE_AF_INET;
  e->port = a->port;
  e->addr = (uint32_t)a->addr[0] << 24 | (uint32_t)a->addr[1] << 16 | (uint32_t)a->addr[2] << 8 |
            (uint32_t)a->addr[3];
}

static inline void addr_to_abi(const struct toe_sockaddr *e, struct toe_abi_sockaddr *a)
{
  memset(a, 0, sizeof(*a));
  if (e->family == TOE_AF_INET6) {
    a->family = TOE_ABI_AF_INET6;
    a->port = e->port;
    memcpy(a->addr, e->addr6, 16);
    return;
  }
  if (e->family != TOE_AF_INET)
    return;
  a->family = TOE_ABI_AF_INET;
  a->port = e->port;
  a->addr[0] = (uint8_t)(e->addr >> 24);
  a->addr[1] = (uint8_t)(e->addr >> 16);
  a->addr[2] = (uint8_t)(e->addr >> 8);
  a->addr[3] = (uint8_t)e->addr;
}

/* An engine address as a socket of ABI family `fam` names it: an AF_INET6 handle sees an IPv4
 * address as v4-mapped ::ffff:a.b.c.d (RFC 4291 2.5.5.2) and "none" as :: port 0, as Linux's
 * getsockname on an unbound AF_INET6 socket; anything else converts as it is. */
static inline void addr_to_abi_fam(const struct toe_sockaddr *e, uint16_t fam,
                                   struct toe_abi_sockaddr *a)
{
  addr_to_abi(e, a);
  if (fam != TOE_ABI_AF_INET6 || a->family == TOE_ABI_AF_INET6)
    return;
  uint8_t v4[4];
  memcpy(v4, a->addr, 4);
  bool some = a->family == TOE_ABI_AF_INET && (v4[0] | v4[1] | v4[2] | v4[3]);
  memset(a->addr, 0, sizeof(a->addr));
  if (some) {
    a->addr[10] = 0xff;
    a->addr[11] = 0xff;
    memcpy(a->addr + 12, v4, 4);
  }
  a->family = TOE_ABI_AF_INET6;
}

/* ---- start and end (session_lifecycle.c) ----------------------------------------------------- */
void ses_region_state(struct ctl_client *cl, uint32_t state, int32_t status);

/* ---- rounds (session_run.c) ------------------------------------------------------------------ */
uint32_t ses_take_sqes(struct ctl_client *cl, uint32_t budget);
void ses_publish(struct ctl_client *cl);

/* ---- socket work and receiving (session_rx.c) ------------------------------------------------ */
void ses_list_remove(struct ctl_client *cl, struct ctl_sock *k);
void ses_list_add(struct ctl_client *cl, struct ctl_sock *k, uint8_t which);
void ses_requeue_waiting(struct ctl_client *cl);
struct ctl_sock *ses_sock_alloc(struct toed_ctl_dev *dev);
void ses_sock_free(struct toed_ctl_dev *dev, struct ctl_sock *k);
void ses_sock_work(struct ctl_client *cl, struct ctl_sock *k);
uint32_t ses_take_fill(struct ctl_client *cl);

/* ---- commands (session_cmd.c) ---------------------------------------------------------------- */
void ses_cancel_ops(struct ctl_client *cl, struct ctl_sock *k, int err, bool sends, bool quiet);
void ses_sock_close(struct ctl_client *cl, struct ctl_sock *k, bool abort);
void ses_connect_check(struct ctl_client *cl, struct ctl_sock *k);
bool ses_accept_run(struct ctl_client *cl, struct ctl_sock *k);
bool ses_sendq_run(struct ctl_client *cl, struct ctl_sock *k);
void ses_submit(struct ctl_client *cl, const struct toe_abi_sqe *sqe);

/* ---- options and statistics (session_sockopt.c) ---------------------------------------------- */
void ses_op_setsockopt(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe);
uint32_t ses_sock_nread(const struct ctl_sock *k);
void ses_op_getsockopt(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe);
void ses_op_stats(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe);

/* ---- capture (session_capture.c) ------------------------------------------------------------- */
void ses_cap_unlist(struct ctl_client *cl);
bool ses_cap_post(struct ctl_client *cl);
void ses_op_capture(struct ctl_client *cl, const struct toe_abi_sqe *sqe);

/* ---- shared sockets (session_share.c) -------------------------------------------------------- */
void ses_share_unlink(struct ctl_share *sh, struct ctl_sock *k);
void ses_share_put(struct toed_ctl_dev *dev, struct ctl_share *sh);
void ses_op_share(struct ctl_client *cl, struct ctl_sock *k, const struct toe_abi_sqe *sqe);
void ses_op_adopt(struct ctl_client *cl, const struct toe_abi_sqe *sqe);

/* ---- completions and events (session_report.c) ----------------------------------------------- */
void ses_cq_write(struct ctl_client *cl, const struct toe_abi_cqe *cqe);
void ses_finish(struct ctl_client *cl, struct toe_abi_cqe *cqe, const struct toe_abi_sqe *sqe,
                int res);
void ses_finish_res(struct ctl_client *cl, const struct toe_abi_sqe *sqe, int res);
bool ses_ev_room_keep(struct ctl_client *cl, uint32_t keep);
bool ses_ev_room(struct ctl_client *cl);
bool ses_post_event(struct ctl_client *cl, struct ctl_sock *k, uint8_t type, int32_t res,
                    uint16_t flags, struct toe_abi_cqe *cqe);
bool ses_wait_cq(struct ctl_client *cl, struct ctl_sock *k);
bool ses_cq_consumed(struct ctl_client *cl, uint32_t idx);

#endif /* TOED_SESSION_INTERNAL_H */
