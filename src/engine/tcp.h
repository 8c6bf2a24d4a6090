/*
 * TCP inside the engine: the connection block and the interfaces between the TCP files.
 *
 * The files, one concern each (FreeBSD/gVisor style):
 *   tcp_sock.c       the socket API of include/toe/tcp.h, the tcb pool, close/abort
 *   tcp_demux.c      the 4-tuple hash (connections, TIME_WAIT) and segment dispatch
 *   tcp_input.c      RFC 9293 3.10.7 segment arrival: state machine, RFC 5961, PAWS, data
 *   tcp_reass.c      the out-of-order queue and SACK/D-SACK block generation (RFC 2018, 2883)
 *   tcp_output.c     building and sending segments: options, Nagle, SWS, window updates, ACKs, RST
 *   tcp_timer.c      the per-connection deadline (RTO, delayed ACK, persist, keepalive, TLP, 2MSL)
 *   tcp_rtt.c        RTT sampling and the RTO (RFC 6298)
 *   tcp_sack.c       the SACK scoreboard on sent segments (RFC 6675 pipe, lost marking)
 *   tcp_recovery.c   loss recovery: RACK-TLP (RFC 8985), RFC 6675, NewReno (RFC 6582), undo
 *   tcp_cc.c, cc_newreno.c, cc_cubic.c   congestion control behind struct toe_cc_ops
 *   tcp_syncache.c   listeners' SYN queue and SYN cookies
 *   tcp_timewait.c   compact TIME_WAIT entries (RFC 9293 3.6.1, RFC 6191 reuse)
 *   tcp_isn.c        initial sequence numbers (RFC 6528)
 *   tcp_v6.c         TCP over IPv6: address pairs (keys), IPv6 input and output, active open
 */
#ifndef TOE_ENGINE_TCP_H
#define TOE_ENGINE_TCP_H

#include "engine/div64.h"
#include "engine/sock.h"
#include "engine/timer_wheel.h"
#include "toe/tcp.h"
#include "wire/ipv4.h"
#include "wire/tcp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct toe_cc_ops;

/*
 * A sent-or-queued segment is one pbuf in the send queue (data at the payload, no headers); its
 * sequence number and transmission history live in the pbuf's meta words, seen through this view.
 */
struct toe_tcp_seg {
  uint32_t seq;  /* first sequence number of the payload */
  uint8_t flags; /* TOE_SEG_* */
  uint8_t xmits; /* times transmitted */
  uint16_t _pad;
  toe_time_t xmit_ts; /* time of the most recent transmission (RACK, RTT) */
  uint64_t delivered; /* tcb->delivered when it was (re)sent, for rate/RACK ordering */
  uint32_t csum;      /* with TOE_SEG_CSUM: partial sum (wire/checksum.h) of the whole payload */
  uint32_t _spare;
};
#define TOE_SEG_SACKED 0x01u  /* covered by a SACK block */
#define TOE_SEG_LOST 0x02u    /* marked lost, waiting for retransmission */
#define TOE_SEG_RETRANS 0x04u /* retransmitted at least once (Karn) */
#define TOE_SEG_TLP 0x08u     /* sent as a tail-loss probe */
/* tcp-rec: a retransmission of the segment is in flight (counted in retrans_out). TOE_SEG_LOST
 * stays set while it is, so pipe = (snd_max - snd_una) - sacked_bytes - lost_bytes + retrans_out
 * counts a repaired segment once (RFC 6675 pipe with RFC 8985's lost marks). */
#define TOE_SEG_RXMIT 0x10u
/* `csum` holds the payload's partial sum, computed while the data was copied in; whatever changes
 * the segment's bytes (split, fill, trim) clears the flag and output sums the payload itself. */
#define TOE_SEG_CSUM 0x20u

_Static_assert(sizeof(struct toe_tcp_seg) <= sizeof(((struct toe_pbuf *)0)->meta),
               "segment metadata must fit in pbuf meta");
static inline struct toe_tcp_seg *toe_tcp_seg(struct toe_pbuf *p)
{
  return (struct toe_tcp_seg *)(void *)p->meta;
}

/* Which of the per-connection deadlines are armed (they share one wheel timer). */
enum toe_tcp_timer_kind {
  TOE_TT_RTO = 0,  /* retransmission (or SYN retransmission) */
  TOE_TT_TLP,      /* tail-loss probe (RFC 8985 7) */
  TOE_TT_PERSIST,  /* zero-window probe (RFC 9293 3.8.6.1) */
  TOE_TT_DELACK,   /* delayed ACK (RFC 1122 4.2.3.2) */
  TOE_TT_KEEP,     /* keepalive (RFC 1122 4.2.3.6) */
  TOE_TT_FINWAIT2, /* orphaned FIN_WAIT_2 timeout */
  TOE_TT_REO,      /* RACK reordering timer (RFC 8985 6.2) */
  TOE_TT_COUNT
};

/* tcb flags */
#define TOE_TF_SACK_OK 0x00000001u /* both sides sent SACK-permitted */
#define TOE_TF_TS_OK 0x00000002u   /* timestamps negotiated */
#define TOE_TF_WS_OK 0x00000004u   /* window scaling negotiated */
#define TOE_TF_NODELAY 0x00000008u /* Nagle off */
#define TOE_TF_KEEPALIVE 0x00000010u
#define TOE_TF_ACK_NOW 0x00000020u    /* send an ACK at the end of input processing */
#define TOE_TF_DELACK 0x00000040u     /* an ACK is owed (delayed) */
#define TOE_TF_FIN_QUEUED 0x00000080u /* the application shut down writing: FIN after data */
#define TOE_TF_FIN_SENT 0x00000100u   /* FIN has sequence number snd_max - 1 */
#define TOE_TF_RCVD_FIN 0x00000200u   /* peer's FIN received (rcv_nxt counts it) */
#define TOE_TF_SHUT_RD 0x00000400u
#define TOE_TF_ORPHAN 0x00000800u      /* closed by the application: no socket owner */
#define TOE_TF_IN_RECOVERY 0x00001000u /* fast recovery episode in progress */
#define TOE_TF_NEED_DSACK 0x00002000u  /* next ACK carries a D-SACK block */
#define TOE_TF_LINGER_ABORT 0x00004000u
#define TOE_TF_REUSEADDR 0x00008000u
#define TOE_TF_MORE 0x00010000u          /* TOE_SEND_MORE on the last send */
#define TOE_TF_PASSIVE 0x00020000u       /* created by a listener */
#define TOE_TF_WRITABLE_WAIT 0x00040000u /* the application saw -EAGAIN: notify when space */
#define TOE_TF_CC_UNDO_OK 0x00080000u    /* the current recovery may be undone if spurious */
#define TOE_TF_READ 0x00100000u          /* the application read: output checks the window */

#define TOE_TCP_MAX_SACK_GEN 4 /* SACK blocks we remember to send (RFC 2018 4) */

/* tcp-fix: the smallest send MSS we use, whatever the peer's MSS option (tcp_input.c,
 * tcp_syncache.c) or an ICMP "fragmentation needed" (tcp_demux.c, which also keeps the path MTU
 * estimate at or above TOE_TCP_MIN_MSS + 40) says. Tiny segments only cost per-segment work, and a
 * forged report must not shrink a connection's segments to a few bytes (RFC 5927 7; Linux floors
 * the MSS option at 48, tcp_min_snd_mss). Equal to the smallest SYN-cookie MSS class. */
#define TOE_TCP_MIN_MSS 64u
/* tcp-fix: RFC 6298 5.7: after a retransmitted SYN or SYN-ACK, the RTO is re-initialized to
 * 3 seconds when data transmission begins (RFC 5681 3.1 likewise makes the initial window one
 * segment). */
#define TOE_TCP_RTO_SYN_LOST_US 3000000u

struct toe_tcb {
  struct toe_sock sk; /* must be first; sk.proto = TOE_IPPROTO_TCP */
  uint8_t state;      /* enum toe_tcp_state */
  uint8_t snd_wscale; /* shift applied to the windows the peer sends us */
  uint8_t rcv_wscale; /* shift we apply to the windows we send */
  uint8_t dupacks;
  uint32_t flags; /* TOE_TF_* */

  /* send sequence space (RFC 9293 3.3.1) */
  uint32_t iss;
  uint32_t snd_una;
  uint32_t snd_nxt; /* next new or retransmitted sequence to send */
  uint32_t snd_max; /* highest sequence sent + 1 */
  uint32_t snd_wnd; /* peer's window, bytes (already scaled) */
  uint32_t snd_wl1;
  uint32_t snd_wl2;
  uint32_t max_sndwnd; /* largest window the peer offered (SWS, RFC 9293 3.8.6.2.1) */

  /* receive sequence space */
  uint32_t irs;
  uint32_t rcv_nxt;
  uint32_t rcv_wnd; /* window we last advertised (bytes) */
  uint32_t rcv_adv; /* rcv_nxt + rcv_wnd at the last advertisement (right edge, never shrinks) */

  /* MSS: what we may send (peer's MSS option clamped to path MTU), and what we announced */
  uint16_t snd_mss;
  uint16_t rcv_mss;
  uint16_t user_mss; /* TOE_TCP_MAXSEG clamp, 0 = none */
  uint16_t pmtu;     /* path MTU now (RFC 1191) */
  uint16_t peer_mss; /* the peer's MSS option (536 without one): the bound when pmtu grows */

  /* timestamps (RFC 7323) */
  uint32_t ts_recent;     /* latest TSval from the peer to echo */
  uint32_t ts_recent_age; /* our clock (ms) when ts_recent was set */
  uint32_t last_ack_sent; /* RFC 7323 4.3: rcv_nxt of our last ACK */
  uint32_t ts_offset;     /* per-connection random offset of our TSval (RFC 7323 5.4) */

  /* RTT (RFC 6298), microseconds */
  uint32_t srtt_us;
  uint32_t rttvar_us;
  uint32_t rto_us;
  uint32_t min_rtt_us; /* RACK's min_RTT (windowed min is not needed for RACK's reo_wnd) */
  uint8_t rto_backoff; /* exponential backoff shift */
  uint8_t syn_retries;
  uint8_t keep_probes; /* unanswered keepalive probes */
  uint8_t tlp_pending; /* a TLP was sent and not yet acked (RFC 8985 7.4) */

  /* congestion control (bytes) */
  uint32_t cwnd;
  uint32_t ssthresh;
  uint32_t recover;    /* NewReno/RFC 6675 RecoveryPoint */
  uint32_t prior_cwnd; /* for undo */
  uint32_t prior_ssthresh;
  uint32_t bytes_acked_ca; /* congestion avoidance byte counting (RFC 3465) */
  const struct toe_cc_ops *cc;
  uint64_t cc_priv[6]; /* congestion control module state (CUBIC's W_max, K, epoch, HyStart) */

  /* SACK scoreboard summary (per-segment flags live in the send queue) */
  uint32_t sacked_bytes;
  uint32_t lost_bytes;
  uint32_t retrans_out; /* bytes retransmitted and not yet acked/sacked */
  uint32_t high_sacked; /* highest sequence SACKed + 1 */
  uint64_t delivered;   /* bytes delivered (acked or sacked) over the life: RACK ordering */

  /* RACK (RFC 8985 6) */
  toe_time_t rack_xmit_ts; /* send time of the most recently sent segment delivered */
  uint32_t rack_end_seq;
  uint32_t rack_reo_wnd_mult;
  uint32_t rack_dsack_round; /* snd_max when the reo_wnd was last increased */
  uint16_t rack_reo_wnd_persist;

  /* send queue: segments [snd_una, ...) in order; snd_next_seg = first never sent */
  struct toe_pbuf *sndq_head;
  struct toe_pbuf *sndq_tail;
  struct toe_pbuf *snd_next_seg;
  /* A run of consecutive sent segments, all SACKed, from sack_run_start to sack_run_end
   * (inclusive; both NULL when none): the walks of SACK marking, RACK and lost-segment
   * retransmission jump over it, so a peer with a tiny MSS that SACKs thousands of segments
   * behind one hole costs each ACK what changed, not the queue length (the CVE-2019-11478
   * class). The run is the one most recently grown; tcp_sack.c keeps it exact. */
  struct toe_pbuf *sack_run_start;
  struct toe_pbuf *sack_run_end;
  uint32_t sack_walk;  /* segments those walks visited (a work counter tests bound) */
  uint32_t sndq_bytes; /* unacked + unsent payload bytes */
  uint32_t sndbuf;     /* limit on sndq_bytes */

  /* receive queue: in-order payload (data at payload), and the out-of-order queue */
  struct toe_pbuf *rcvq_head;
  struct toe_pbuf *rcvq_tail;
  uint32_t rcvq_bytes;
  struct toe_pbuf *ooo_head; /* sorted by seq (seq in meta[0] low 32 bits) */
  uint32_t ooo_bytes;
  uint16_t ooo_count;
  uint16_t sack_gen_count;
  struct toe_tcp_sack_block sack_gen[TOE_TCP_MAX_SACK_GEN]; /* most recent first */
  struct toe_tcp_sack_block dsack;                          /* pending D-SACK block */
  uint32_t rcvbuf;        /* limit on rcvq_bytes + ooo_bytes (the window we offer) */
  uint32_t rcv_space;     /* auto-tuning: bytes read in the current RTT */
  uint32_t rcv_space_seq; /* auto-tuning: rcv_nxt at the start of the measurement */
  toe_time_t rcv_space_ts;

  /* one wheel timer, armed for the earliest of deadline[] */
  struct toe_timer timer;
  toe_time_t deadline[TOE_TT_COUNT]; /* 0 = not armed */

  /* keepalive (seconds) */
  uint16_t keep_idle;
  uint16_t keep_intvl;
  uint8_t keep_cnt;
  uint8_t pending_events; /* TOE_EV_* to deliver */
  uint16_t backlog;       /* listener: accept queue limit */

  /* listener links */
  struct toe_tcb *listener;     /* for passive connections until accepted */
  struct toe_tcb *acceptq_next; /* accept queue link (in the listener's queue) */
  struct toe_tcb *acceptq_head; /* listener: established, not yet accepted */
  struct toe_tcb *acceptq_tail;
  uint16_t acceptq_len;
  uint16_t synq_len; /* listener: embryonic connections in the SYN cache */

  /* 4-tuple hash chain */
  struct toe_tcb *hnext;

  /* figures */
  uint64_t bytes_acked;
  uint64_t bytes_received;
  uint32_t total_retrans;
  uint32_t rto_count;

  /* tcp-in (tcp_input.c, tcp_reass.c) */
  uint32_t ooo_fin_seq;  /* sequence number of a FIN that arrived out of order */
  uint32_t chack_sec;    /* second (of toe_tcp_now_ms / 1000) that chack_count counts in */
  uint16_t rcv_seg_max;  /* largest payload received: delayed ACK's "full-sized segment" */
  uint8_t ooo_fin;       /* ooo_fin_seq is valid */
  uint8_t chack_count;   /* challenge ACKs sent in chack_sec (RFC 5961 7 rate limit) */
  int16_t icmp_soft_err; /* last ICMP soft error (RFC 1122 4.2.3.9), 0 = none: the error to
                            report if the connection times out (instead of -TOE_ETIMEDOUT) */
  toe_time_t rcv_tstamp; /* when the last acceptable segment arrived (keepalive idle time) */
  /* tcp-rec (tcp_sack.c, tcp_recovery.c, tcp_cc.c) */
  uint32_t rack_rtt_us;   /* RACK.rtt: RTT of the delivered segment that set rack_xmit_ts */
  uint32_t rack_fack;     /* RACK.fack: highest end sequence delivered (acked or SACKed) */
  uint32_t undo_marker;   /* snd_una when the loss episode began (D-SACK undo range) */
  uint32_t undo_retrans;  /* bytes retransmitted in the episode not yet reported by D-SACK */
  uint32_t undo_tsval;    /* our TSval when the episode's first retransmission left (Eifel) */
  uint32_t prr_delivered; /* RFC 6937 prr_delivered, prr_out, RecoverFS (bytes) */
  uint32_t prr_out;
  uint32_t recover_fs;
  uint32_t prr_snd_max;   /* snd_max when prr_out was last brought up to date */
  uint32_t tlp_end_seq;   /* TLP.end_seq (RFC 8985 7.4), valid while tlp_pending */
  uint16_t sacked_segs;   /* segments SACKed above snd_una (RACK's DupThresh test) */
  uint8_t rec_state;      /* TOE_REC_* */
  uint8_t rec_flags;      /* TOE_RECF_* */
  uint8_t rto_streak;     /* consecutive RTOs without forward progress */
  uint8_t rack_retx;      /* the segment that set rack_xmit_ts was a retransmission */
  uint32_t undo_rxt_high; /* end of the highest data retransmitted in the episode */
  /* what the last toe_tcp_ack_process() found, for toe_tcp_recovery_on_ack() */
  uint32_t ack_delivered;  /* bytes newly delivered (cumulatively acked or SACKed) */
  uint32_t ack_acked;      /* payload bytes newly acknowledged cumulatively */
  uint32_t ack_prior_pipe; /* pipe before the ACK (cwnd-limited test) */
  uint32_t ack_rtt_us;     /* RTT sample taken from the ACK, 0 = none */
  uint32_t ack_ts_ecr;     /* its TSecr (valid with TOE_ACKF_TS) */
  uint8_t ack_flags;       /* TOE_ACKF_* */
  /* tcp-out (tcp_sock.c, tcp_output.c, tcp_timer.c, tcp_rtt.c) */
  struct toe_tcb *notify_next; /* deferred-event list link (st->tcp.notify_head) */
  uint32_t rto_una;            /* snd_una at the last RTO expiry: progress check for retries2 */
  int16_t close_err;           /* why the connection died (negative TOE_E*), 0 = it did not */
  uint8_t owned;               /* the application holds a handle (opened, or accepted) */
  uint8_t ev_seen;             /* edge-triggered events delivered and not consumed since */
  uint8_t notify_queued;       /* on the deferred-event list */
  uint8_t persist_backoff;     /* zero-window probes sent without the window opening */
  uint8_t rto_retries;         /* RTO expirations without snd_una moving (tcp_retries2 limit) */
  uint8_t rcvbuf_locked;       /* TOE_SO_RCVBUF was set: no receive-buffer auto-tuning */
  uint8_t sndbuf_locked;       /* TOE_SO_SNDBUF was set */
  uint8_t sml_out;             /* a segment shorter than the MSS was sent (Nagle, Minshall) */
  uint8_t zwp_out;             /* a zero-window probe is unacknowledged (resent when it opens) */
  uint32_t snd_sml;            /* end of the last short segment sent */
  struct toe_tcb *out_next;    /* burst output list link (st->tcp.out_head) */
  uint8_t out_queued;          /* on the burst output list */
  /* tcp-ecn (tcp_ecn.c): ECN, RFC 3168, and Accurate ECN, RFC 9768 */
  uint16_t ecn_flags;   /* TOE_ECNF_* (engine/tcp_ecn.h) */
  uint8_t ecn_hs_ipecn; /* AccECN client: the SYN-ACK's IP ECN field, fed back on our first ACK */
  uint32_t ecn_cwr_end; /* snd_max at the last reduction: the next waits until snd_una passes it */
  uint32_t ecn_r_cep;   /* AccECN: CE-marked segments received, from 5 (RFC 9768 3.2.1) */
  uint32_t ecn_s_cep;   /* AccECN: CE marks the peer's ACE reported, from 5 */
};

/*
 * TCP's part of the stack (st->tcp). Each file keeps its stack-wide state in its own block below;
 * add fields only in the block of the file you own. The regions are carved from the stack's memory
 * by toe_tcp_mem_size() and toe_tcp_init() (tcp_sock.c), which call the per-file mem_size and init
 * functions declared in this header.
 */
struct toe_tcp_tables {
  /* tcp_sock.c (tcp-out): the tcb pool, and socket events waiting to be delivered */
  struct toe_tcb *tcbs;        /* cfg.tcp_socks slots */
  struct toe_tcb *free;        /* free slots, linked through sk.hnext */
  uint32_t count;              /* cfg.tcp_socks */
  uint32_t inuse;              /* tcbs allocated (sockets, listeners, orphans) */
  struct toe_tcb *notify_head; /* tcbs with pending_events, delivered by toe_tcp_notify_flush */
  struct toe_tcb *notify_tail;
  struct toe_timer notify_timer; /* fallback delivery at the next poll */
  uint8_t notify_busy;           /* a flush is running (callbacks may re-enter) */
  uint8_t in_burst;              /* between toe_stack_burst_begin and _end */
  struct toe_tcb *out_head;      /* tcbs whose output waits for the burst's end (LIFO) */

  /* tcp_demux.c (tcp-in): the 4-tuple hash of connections (not listeners, not TIME_WAIT) */
  struct toe_tcb **conn_hash; /* conn_hash_mask + 1 buckets, a power of two */
  uint32_t conn_hash_mask;
  uint32_t conn_hashed; /* tcbs in the hash */

  /* tcp_syncache.c (tcp-syn): the SYN cache, compact embryonic connections of all listeners */
  struct toe_syncache_entry *sc_pool;  /* cfg.tcp_syncache entries */
  struct toe_syncache_entry *sc_free;  /* unused entries, linked through hnext */
  struct toe_syncache_entry **sc_hash; /* by 4-tuple (keyed hash), sc_hash_mask + 1 buckets */
  uint32_t sc_hash_mask;
  uint32_t sc_count;         /* cfg.tcp_syncache */
  uint32_t sc_inuse;         /* entries in the cache */
  toe_time_t sc_cookie_time; /* when the last SYN cookie was sent (0: never) */

  /* tcp_timewait.c (tcp-syn): compact TIME_WAIT entries */
  struct toe_tw_entry *tw_pool;  /* cfg.tcp_timewait entries */
  struct toe_tw_entry *tw_free;  /* unused entries, linked through hnext */
  struct toe_tw_entry **tw_hash; /* by 4-tuple, tw_hash_mask + 1 buckets */
  uint32_t tw_hash_mask;
  uint32_t tw_count;              /* cfg.tcp_timewait */
  uint32_t tw_inuse;              /* entries held */
  struct toe_tw_entry *tw_oldest; /* expiry order: every entry lives 2*MSL, oldest first */
  struct toe_tw_entry *tw_newest;
  struct toe_timer tw_timer; /* armed for tw_oldest's expiry */

  /* tcp_v6.c: the address pairs of IPv6 connections, by key (NULL without cfg.ipv6) */
  struct toe_tcp6_pair *p6_pool;
  struct toe_tcp6_pair *p6_free;
  struct toe_tcp6_pair **p6_hash;
  struct toe_tcp6_pair *p6_last; /* the last pair opened (a hint, checked in full) */
  uint32_t p6_mask;
  uint32_t p6_inuse;
};

/* The tcb of a socket known to be TCP. */
static inline struct toe_tcb *toe_tcb(struct toe_sock *s)
{
  return (struct toe_tcb *)s;
}

/* ---- tcp_demux.c ---- */
void toe_tcp_input(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv4_view *ip);
/* A segment that came over IPv6 (data at the TCP header; consumed; tcp_v6.c): checked with the
 * IPv6 pseudo-header, then dispatched as an IPv4 one is, under its pair's key (below). */
struct toe_ipv6_view;
struct toe_ipv6_ext;
void toe_tcp_input6(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_ipv6_view *ip,
                    const struct toe_ipv6_ext *ext);

/*
 * TCP over IPv6 in the IPv4-shaped tables (tcp_v6.c has the why). An IPv6 connection, SYN-cache
 * entry or TIME_WAIT entry has laddr 0 (no IPv4 one has) and raddr = the key of its address pair;
 * the pair table maps keys to addresses, one pair per key. A segment that came over IPv6 reaches
 * the shared code as a toe_tcp6_seg: an IPv4 view with src = key, dst = 0, hdr_len 0, total_len
 * the TCP length and tos the traffic class.
 */
struct toe_tcp6_pair {
  struct toe_tcp6_pair *next; /* hash chain, or the free list */
  uint32_t key;
  uint32_t refs; /* holders: hashed tcbs, SYN-cache and TIME_WAIT entries, segments in process */
  struct toe_in6_addr local;
  struct toe_in6_addr remote;
};
struct toe_tcp6_seg {
  struct toe_ipv4_view v4;
  const struct toe_ipv6_view *ip6;
};
size_t toe_tcp6_mem_size(const struct toe_config *cfg);
void toe_tcp6_init(struct toe_stack *st, void *mem);
/* The pair of `key`, or NULL. */
const struct toe_tcp6_pair *toe_tcp6_pair_get(const struct toe_stack *st, uint32_t key);
/* Takes a reference on the pair (local, remote), creating it; *key gets its key. Returns 0,
 * -TOE_EADDRINUSE (another pair has that key), -TOE_ENOBUFS or -TOE_EAFNOSUPPORT (no IPv6). */
int toe_tcp6_pair_open(struct toe_stack *st, const struct toe_in6_addr *l,
                       const struct toe_in6_addr *r, uint32_t *key);
/* Another reference on an existing pair / dropping one (the last frees the pair). */
void toe_tcp6_hold(struct toe_stack *st, uint32_t key);
void toe_tcp6_release(struct toe_stack *st, uint32_t key);
/* The checksum field of a segment of `len` bytes whose header and payload sum to `sum`. */
uint16_t toe_tcp6_csum_finish(const struct toe_stack *st, uint32_t key, uint32_t sum, uint32_t len);
/* The RFC 6437 flow label of a connection: a keyed hash, stable for the 4-tuple, never 0. */
uint32_t toe_tcp6_flow_label(uint32_t key, uint16_t lport, uint16_t rport);
/* Sends segment `pb` (data at the TCP header, checksum done; consumed) over IPv6 with `ecn` in
 * the traffic class's ECN field (RFC 3168 5; tcp_ecn.c decides it). Returns as toe_ipv6_output,
 * or -TOE_EHOSTUNREACH if the pair is gone. */
int toe_tcp6_ip_output(struct toe_stack *st, uint32_t key, uint16_t lport, uint16_t rport,
                       uint8_t ecn, struct toe_pbuf *pb);
/* Dispatch of a checked IPv6 segment to a connection, TIME_WAIT, listener or RST (tcp_demux.c). */
void toe_tcp_dispatch6(struct toe_stack *st, struct toe_pbuf *pb, const struct toe_tcp6_seg *seg,
                       const struct toe_tcp_view *th, const struct toe_tcp_opts *opts);
/* The IPv6 view of a segment the shared code holds as `ip`, or NULL for IPv4. */
static inline const struct toe_ipv6_view *toe_tcp_seg_ip6(const struct toe_ipv4_view *ip)
{
  return ip->dst == 0 ? ((const struct toe_tcp6_seg *)(const void *)ip)->ip6 : NULL;
}
/* IP header bytes of a connection with local address `laddr` (0: IPv6, RFC 8200 8.3). */
static inline uint32_t toe_tcp_ip_hlen(uint32_t laddr)
{
  return laddr ? 20u : 40u;
}
/* The active open of an IPv6 socket to IPv6 peer `remote` (toe_tcp_connect's IPv6 half). */
int toe_tcp_connect6(struct toe_stack *st, struct toe_tcb *tp, const struct toe_sockaddr *remote);
/*
 * An ICMPv6 error (RFC 4443) quoting a segment we sent from qsrc to qdst, whose first 8 bytes are
 * at ql4: err is -TOE_EMSGSIZE (Packet Too Big, new `mtu`), -TOE_ECONNREFUSED (port unreachable)
 * or another destination-unreachable error (soft, RFC 5461). True if it was about a connection.
 * The hook the ICMPv6 input calls for next header TCP.
 */
bool toe_tcp_icmp6_error(struct toe_stack *st, const struct toe_in6_addr *qsrc,
                         const struct toe_in6_addr *qdst, const uint8_t *ql4, int err,
                         uint32_t mtu);
struct toe_tcb *toe_tcp_lookup(const struct toe_stack *st, uint32_t laddr, uint16_t lport,
                               uint32_t raddr, uint16_t rport);
void toe_tcp_hash_insert(struct toe_stack *st, struct toe_tcb *tp);
/* Adds (kind) or drops the steering filter of the IPv6 4-tuple (lport, the pair `key` names,
 * rport); nothing if the key names no pair (tcp_demux.c). */
void toe_tcp6_filter(struct toe_stack *st, bool add, uint8_t kind, uint16_t lport, uint32_t key,
                     uint16_t rport);
void toe_tcp_hash_remove(struct toe_stack *st, struct toe_tcb *tp);
/* The path MTU estimate for `dst` aged out (RFC 1191 6.3, engine/pmtu.c): every connection to it
 * using a lower estimate goes back to `mtu` (its MSS as far as the peer's option allows). */
void toe_tcp_pmtu_raise(struct toe_stack *st, uint32_t dst, uint16_t mtu);
/* ICMP error quoting a TCP segment we sent (RFC 5927 validation). Returns true if delivered. */
bool toe_tcp_icmp_error(struct toe_stack *st, const struct toe_ipv4_view *qip, const uint8_t *ql4,
                        int err, uint16_t next_mtu);
/* ARP gave up on the peer of a segment we queued (`qip`, `ql4` as for an ICMP error): a
 * connection in SYN-SENT ends with -TOE_EHOSTUNREACH, a synchronized one keeps it as its soft
 * error. Returns true if a connection took it. */
bool toe_tcp_link_failure(struct toe_stack *st, const struct toe_ipv4_view *qip,
                          const uint8_t *ql4);
/* The 4-tuple hash's memory (called by toe_tcp_mem_size/toe_tcp_init in tcp_sock.c). */
size_t toe_tcp_demux_mem_size(const struct toe_config *cfg);
void toe_tcp_demux_init(struct toe_stack *st, void *mem);

/* ---- tcp_input.c ---- */
/* Segment for an existing connection (data at the TCP header; consumed). */
void toe_tcp_input_conn(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *pb,
                        const struct toe_ipv4_view *ip, const struct toe_tcp_view *th,
                        const struct toe_tcp_opts *opts);
/*
 * Conventions of the input path (tcp-in):
 *  - ts_recent_age and chack_sec use toe_tcp_now_ms(): the stack clock in ms, without ts_offset.
 *  - In SYN_SENT, TOE_TF_TS_OK/SACK_OK/WS_OK mean "offered in our SYN" (rcv_wscale = the shift
 *    offered); the SYN-ACK clears those the peer did not answer (and both shifts when window
 *    scaling is off), RFC 7323 2.2 and 3.2, RFC 2018 2.
 *  - Output sends SYN (SYN_SENT) or SYN-ACK (SYN_RECEIVED) when snd_nxt == iss: simultaneous open
 *    sets snd_nxt = iss and calls toe_tcp_output() to answer the peer's SYN with a SYN-ACK.
 *  - The input path sets TOE_TF_ACK_NOW (send an ACK at once: out-of-order data, a hole filled,
 *    a FIN, data trimmed off the window) or TOE_TF_DELACK (in-order data owes an ACK; output
 *    decides between now and the delayed-ACK timer, using rcv_seg_max), and calls
 *    toe_tcp_output() last. ACKs a drop asks for (unacceptable segment, RFC 5961 challenge) go
 *    out through toe_tcp_send_ack() at once, at most 10 per second per connection.
 *  - Every state change goes through toe_tcp_set_state() (the curr_estab gauge).
 *  - toe_tcp_input() ends with toe_tcp_notify_flush().
 */
static inline uint32_t toe_tcp_now_ms(const struct toe_stack *st)
{
  return (uint32_t)toe_div1000000(toe_stack_now(st));
}
/* Changes tp->state, keeping the curr_estab gauge (ESTABLISHED + CLOSE_WAIT, RFC 4022). */
void toe_tcp_set_state(struct toe_stack *st, struct toe_tcb *tp, uint8_t state);
/* Appends in-order payload `pb` (data at the payload; consumed) to the receive queue. A small
 * payload is copied into the tail buffer when it fits (or into a fresh buffer of its own that the
 * next small payloads fill), and a sparse chain is compacted, so tiny segments cannot pin a
 * buffer each. Buffers not yet charged are charged to the connection's receive side; returns
 * -TOE_ENOBUFS (pb freed, nothing queued: the caller must not advance rcv_nxt) when its allowance
 * or the pool refuses them, else 0. Data already charged (from the out-of-order queue) is never
 * refused. */
int toe_tcp_rcvq_append(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *pb);

/* ---- buffer accounting (tcp_sock.c; engine/pbuf_pool.h) ---- */
/* The owner id the connection's receive queues (in order and out of order) are charged to. */
uint32_t toe_tcp_rx_owner(const struct toe_stack *st, const struct toe_tcb *tp);
/* The receive side's allowance in buffers (from rcvbuf; the pool caps it at sock_max_bufs). */
uint32_t toe_tcp_rx_buf_limit(const struct toe_stack *st, const struct toe_tcb *tp);
/* Bytes the connection's receive side may still take in pool buffers now (allowance, pressure,
 * reserve), at one received segment per buffer: the receive window never promises more. */
uint32_t toe_tcp_rx_room_bytes(const struct toe_stack *st, const struct toe_tcb *tp);
/* The largest receive buffer (window) a connection may have: cfg.tcp_rcvbuf_max, clamped to what
 * the per-socket buffer cap can hold at half a buffer per segment. */
uint32_t toe_tcp_rcvbuf_max(const struct toe_stack *st);

/* ---- tcp_reass.c ---- */
/*
 * The out-of-order queue (tp->ooo_head): contiguous ranges above rcv_nxt, sorted, never
 * overlapping or adjacent (adjacent data is merged into one chain), each a qnext-linked chain with
 * data at the payload and its first sequence number in meta[0]. ooo_count counts buffers.
 */
/* Queues payload `pb` (consumed) starting at `seq` (after rcv_nxt). Bytes already queued are
 * dropped from the new segment (reported as D-SACK), ranges are merged, SACK blocks updated
 * (RFC 2018 4: most recent first). Returns how many bytes the queue grew by (0: duplicate, or
 * over the bound). */
uint32_t toe_tcp_reass_insert(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *pb,
                              uint32_t seq);
/* Moves the queued data rcv_nxt has reached to the receive queue, advancing rcv_nxt past it.
 * Returns the bytes moved. */
uint32_t toe_tcp_reass_pull(struct toe_stack *st, struct toe_tcb *tp);
/* Notes [start, end) as duplicate data for the next ACK's D-SACK block (RFC 2883) if SACK is on. */
void toe_tcp_dsack_note(struct toe_stack *st, struct toe_tcb *tp, uint32_t start, uint32_t end);
/* Frees the out-of-order queue and forgets the SACK blocks (close, FIN, reset). */
void toe_tcp_reass_purge(struct toe_stack *st, struct toe_tcb *tp);
/* Most buffers one connection's out-of-order queue may hold. */
uint32_t toe_tcp_reass_max_bufs(const struct toe_stack *st);

/* ---- tcp_output.c ---- */
/*
 * Sends whatever the windows, Nagle and SWS avoidance allow, plus a pending ACK.
 *  - SYN_SENT / SYN_RECEIVED: sends the SYN / SYN-ACK when snd_nxt == iss (options from the
 *    TOE_TF_*_OK flags), then snd_nxt = snd_max = iss + 1. Nothing else in those states.
 *  - New data from snd_next_seg (never retransmissions: tcp-rec drives those with
 *    toe_tcp_retransmit); a FIN after the data when TOE_TF_FIN_QUEUED (ESTABLISHED -> FIN_WAIT_1,
 *    CLOSE_WAIT -> LAST_ACK when it leaves); the FIN again when FIN_SENT and snd_nxt == snd_max - 1
 *    with no data outstanding (tcp-rec's RTO path sets snd_nxt = snd_una for that).
 *  - ACKs: TOE_TF_ACK_NOW at once; TOE_TF_DELACK at once when two full-sized segments (by
 *    rcv_seg_max) are unacknowledged or a quick ACK is due, else when TOE_TT_DELACK fires;
 *    a window update when the application's reads opened the window enough (RFC 9293 3.8.6.2.2).
 *  - Timers it keeps: the RTO while data is outstanding (RFC 6298 5.1), persist while the peer's
 *    window is zero with data waiting, keepalive, and FINWAIT2 for orphans in FIN_WAIT_2.
 */
void toe_tcp_output(struct toe_stack *st, struct toe_tcb *tp);
/*
 * Burst input (toe_stack_burst_begin/_end): the end of a segment's processing calls
 * toe_tcp_output_or_defer() with the segment's payload length `plen`; it queues the tcb for
 * toe_tcp_output_burst_end() when nothing asks for output at once (an ACK is due at once in the
 * quick-ACK start, for a super-frame of two or more full-sized segments, and when a GRO
 * super-frame's worth or a quarter of our window is unacknowledged); toe_tcp_output_undefer()
 * takes a tcb that is released off the list.
 */
void toe_tcp_output_or_defer(struct toe_stack *st, struct toe_tcb *tp, uint32_t plen);
void toe_tcp_output_burst_end(struct toe_stack *st);
void toe_tcp_output_undefer(struct toe_stack *st, struct toe_tcb *tp);
/* Sends a pure ACK now (with SACK/D-SACK and timestamps). */
void toe_tcp_send_ack(struct toe_stack *st, struct toe_tcb *tp);
/* Retransmits the segment `seg` (in the send queue) now. Returns 0 or -TOE_ENOBUFS. */
int toe_tcp_retransmit(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *seg);
/* Sends a RST answering segment `th` (RFC 9293 3.10.7.1 rules for seq/ack) from no connection.
 * `seg_len` is SEG.LEN: payload bytes plus one each for SYN and FIN. Nothing is sent in answer
 * to a RST, or for a segment not addressed to our unicast address. */
void toe_tcp_send_reset(struct toe_stack *st, const struct toe_ipv4_view *ip,
                        const struct toe_tcp_view *th, uint32_t seg_len);
/* Sends RST for a connection (abort). */
void toe_tcp_send_rst_conn(struct toe_stack *st, struct toe_tcb *tp);
/* The receive window to advertise now (bytes, before scaling). */
uint32_t toe_tcp_rcv_window(const struct toe_stack *st, const struct toe_tcb *tp);
/* Our current TSval. */
uint32_t toe_tcp_ts_now(const struct toe_stack *st, const struct toe_tcb *tp);
/* The window-scale shift we offer (RFC 7323 2.3): enough for cfg.tcp_rcvbuf_max, at most 14; 0
 * when cfg.tcp_wscale is off. */
uint8_t toe_tcp_wscale_offer(const struct toe_config *cfg);
/* The MSS to announce in our SYN / SYN-ACK: MTU - 40, clamped by TOE_TCP_MAXSEG if set. */
uint16_t toe_tcp_mss_offer(const struct toe_stack *st, const struct toe_tcb *tp);
/* Payload bytes of a full-sized segment we send now: snd_mss less the timestamp option. */
uint32_t toe_tcp_eff_mss(const struct toe_tcb *tp);
/* A keepalive probe (SEQ = SND.UNA - 1, no data; RFC 1122 4.2.3.6). */
void toe_tcp_send_keepalive(struct toe_stack *st, struct toe_tcb *tp);
/* A zero-window probe (one octet of new data, or the unacknowledged probe again; RFC 9293
 * 3.8.6.1), or what fits in a small window nothing else will open (3.8.6.2.1's override). */
void toe_tcp_send_window_probe(struct toe_stack *st, struct toe_tcb *tp);

/* ---- shared by tcp_output.c and tcp_timer.c ---- */
/* Synchronized states (RFC 9293 3.3.2): ESTABLISHED through LAST_ACK (TIME_WAIT lives elsewhere).
 */
static inline bool toe_tcp_synchronized(const struct toe_tcb *tp)
{
  return tp->state >= TOE_TCP_ESTABLISHED && tp->state <= TOE_TCP_LAST_ACK;
}

/*
 * Persist mode: the peer offers no window while data (or a FIN) waits or is outstanding. The
 * persist timer then probes (RFC 9293 3.8.6.1) and the RTO is off. Output and the timers must agree
 * on this, or a connection can sit with neither timer making progress.
 */
static inline bool toe_tcp_zero_window_wait(const struct toe_tcb *tp)
{
  return tp->snd_wnd == 0 && (tp->snd_next_seg != NULL || tp->snd_una != tp->snd_max);
}

/* ---- tcp_timer.c ---- */
/*
 * One wheel timer per tcb, armed for the earliest armed deadline[] (lazily: moving a deadline
 * later does not touch the wheel; the timer re-arms itself when it fires early). Expired kinds run
 * in order RTO, TLP, REO, PERSIST, DELACK, KEEP, FINWAIT2, each only if still due:
 *   RTO: SYN_SENT/SYN_RECEIVED retransmit the SYN/SYN-ACK with backoff and give up after
 *        cfg.tcp_syn_retries; otherwise after cfg.tcp_retries2 expirations without progress the
 *        connection is dropped (-TOE_ETIMEDOUT or icmp_soft_err), else toe_tcp_on_rto().
 *   TLP: toe_tcp_on_tlp(); REO: toe_tcp_on_reo_timer(); PERSIST: zero-window probe;
 *   DELACK: the owed ACK; KEEP: keepalive probe or drop; FINWAIT2: orphan closed.
 */
void toe_tcp_timer_set(struct toe_stack *st, struct toe_tcb *tp, enum toe_tcp_timer_kind k,
                       toe_time_t when);
void toe_tcp_timer_clear(struct toe_stack *st, struct toe_tcb *tp, enum toe_tcp_timer_kind k);
void toe_tcp_timers_init(struct toe_tcb *tp);
/* Re-arms the RTO (and TLP) after new data was sent or acked (RFC 6298 5.1-5.3). */
void toe_tcp_rearm_rto(struct toe_stack *st, struct toe_tcb *tp);

/* ---- tcp_rtt.c ---- */
/* RFC 6298 with rto_us clamped to [cfg.tcp_rto_min, cfg.tcp_rto_max]; a sample also updates
 * min_rtt_us and ends the exponential backoff (a valid sample, Karn). Samples of 0 count as 1 us.
 */
void toe_tcp_rtt_sample(struct toe_stack *st, struct toe_tcb *tp, uint32_t rtt_us);
uint32_t toe_tcp_rto_us(const struct toe_stack *st, const struct toe_tcb *tp); /* with backoff */
/* The RTO before any RTT sample (cfg.tcp_rto_initial, RFC 6298 2.1), clamped like any RTO. */
uint32_t toe_tcp_rto_initial_us(const struct toe_stack *st);

/* ---- tcp_sack.c / tcp_recovery.c ---- */
/* Processes an ACK's cumulative and SACK information against the send queue. */
/* The segment a queue walk continues from after visiting `p`: the end of the SACKed run when `p`
 * starts it (every segment in between is SACKed), else `p` itself. */
static inline struct toe_pbuf *toe_tcp_sack_skip(const struct toe_tcb *tp, struct toe_pbuf *p)
{
  return p == tp->sack_run_start ? tp->sack_run_end : p;
}

/* Forgets the SACKed run (SACK marks cleared, or a segment of it replaced). */
static inline void toe_tcp_sack_run_clear(struct toe_tcb *tp)
{
  tp->sack_run_start = tp->sack_run_end = NULL;
}

void toe_tcp_ack_process(struct toe_stack *st, struct toe_tcb *tp, uint32_t ack,
                         const struct toe_tcp_opts *opts, uint32_t ts_ecr);
/* RACK-TLP detection/TLP, RFC 6675/NewReno recovery decisions, spurious undo: after an ACK. */
void toe_tcp_recovery_on_ack(struct toe_stack *st, struct toe_tcb *tp, uint32_t acked_bytes,
                             bool dup_ack);
void toe_tcp_on_rto(struct toe_stack *st, struct toe_tcb *tp);
void toe_tcp_on_tlp(struct toe_stack *st, struct toe_tcb *tp);
void toe_tcp_on_reo_timer(struct toe_stack *st, struct toe_tcb *tp);
/* Bytes in flight per RFC 6675 "pipe". */
uint32_t toe_tcp_pipe(const struct toe_tcb *tp);
/*
 * Contract between the input/output/timer paths and tcp-rec:
 *  - For an acceptable ACK in a synchronized state (SND.UNA =< SEG.ACK =< SND.MAX), the input path
 *    calls toe_tcp_ack_process(st, tp, SEG.ACK, opts, ts_ecr), then
 *    toe_tcp_recovery_on_ack(st, tp, acked, dup_ack) with acked = SEG.ACK - SND.UNA taken before
 *    the first call and dup_ack = RFC 5681's duplicate ACK (data outstanding, no payload, no
 *    SYN/FIN, SEG.ACK == SND.UNA, window unchanged), then toe_tcp_output() as usual.
 *    ts_ecr is the segment's TSecr when TOE_TF_TS_OK and the option is present, else 0.
 *  - toe_tcp_ack_process() takes every RTT sample (segment times with Karn's rule, and timestamps)
 *    through toe_tcp_rtt_sample(); it frees acked segments, resets rto_backoff on progress,
 *    re-arms the RTO (toe_tcp_rearm_rto) and notifies TOE_EV_WRITABLE when space frees.
 *  - toe_tcp_retransmit() (tcp-out) sends the segment and updates xmit_ts, xmits, TOE_SEG_RETRANS,
 *    total_retrans and the retrans_segs counter; tcp-rec keeps LOST/RXMIT, lost_bytes, retrans_out.
 *  - The RTO timer: tcp_timer.c handles the handshake states and the tcp_retries2 limit, then calls
 *    toe_tcp_on_rto(), which marks everything lost, retransmits the first segment (or the FIN when
 *    only the FIN is outstanding, through toe_tcp_output with snd_nxt = snd_una), backs off
 *    (rto_backoff++, RFC 6298 5.5) and re-arms the RTO (5.6).
 *  - toe_tcp_tlp_schedule() arms TOE_TT_TLP (RFC 8985 7.2) when a probe is allowed, or clears it;
 *    toe_tcp_rearm_rto() calls it after arming the RTO, and the output path calls it after
 *    sending new data (7.2: the PTO restarts when new data is sent), after arming the RTO.
 */
/* tcp_sack.c: marks a sent segment lost (keeping lost_bytes/retrans_out in step: a lost
 * retransmission stops counting in retrans_out). Returns true if it was not marked before. */
bool toe_tcp_mark_lost(struct toe_stack *st, struct toe_tcb *tp, struct toe_pbuf *seg);
/* Arms or clears the tail-loss probe timer (RFC 8985 7.2). */
void toe_tcp_tlp_schedule(struct toe_stack *st, struct toe_tcb *tp);
/* Picks tp->cc (cfg.tcp_cc when unset) and sets the initial window (RFC 6928) and ssthresh. Called
 * when the connection becomes ESTABLISHED, once snd_mss is known. */
void toe_tcp_cc_init(struct toe_stack *st, struct toe_tcb *tp);

/* tcp-rec: recovery states (tp->rec_state) and flags (tp->rec_flags). */
#define TOE_REC_OPEN 0          /* no loss episode */
#define TOE_REC_RECOVERY 1      /* fast recovery (RFC 6675 / RFC 6582); TOE_TF_IN_RECOVERY is set */
#define TOE_REC_LOSS 2          /* after an RTO, until SND.UNA reaches recover */
#define TOE_RECF_REORDER 0x01u  /* RACK.reordering_seen (RFC 8985 6.2 step 3) */
#define TOE_RECF_UNDO_TS 0x02u  /* undo_tsval is valid */
#define TOE_RECF_UNDO 0x04u     /* undo_marker is valid: the episode may still prove spurious */
#define TOE_RECF_TLP_RETX 0x08u /* TLP.is_retrans */
#define TOE_RECF_NR_PARTIAL 0x10u  /* NewReno: a partial ACK was seen in this recovery */
#define TOE_RECF_DSACK_ROUND 0x20u /* rack_dsack_round is valid (RFC 8985 6.2 step 4) */
#define TOE_RECF_RECOVER_OK 0x40u  /* recover holds a past episode's end (RFC 6582 3.2 step 2) */
#define TOE_RECF_UNDO_RETX 0x80u   /* the episode retransmitted something (undo_retrans counts) */
#define TOE_ACKF_UNA 0x01u         /* SND.UNA advanced */
#define TOE_ACKF_SACKED 0x02u      /* new data SACKed */
#define TOE_ACKF_DSACK 0x04u       /* a valid D-SACK block (RFC 2883) */
#define TOE_ACKF_DSACK_TLP 0x08u   /* ... reporting the TLP retransmission as a duplicate */
#define TOE_ACKF_TS 0x10u          /* ack_ts_ecr is valid */

/* ---- tcp_cc.c ---- */
struct toe_cc_ops {
  const char *name;
  uint32_t id; /* TOE_CC_* */
  void (*init)(struct toe_stack *st, struct toe_tcb *tp);
  /* new data acknowledged outside recovery: grow cwnd */
  void (*on_ack)(struct toe_stack *st, struct toe_tcb *tp, uint32_t acked, uint32_t rtt_us);
  /* a loss episode starts (fast recovery): set ssthresh, cwnd */
  void (*on_loss)(struct toe_stack *st, struct toe_tcb *tp);
  /* retransmission timeout */
  void (*on_rto)(struct toe_stack *st, struct toe_tcb *tp);
  /* recovery ended */
  void (*on_recovery_exit)(struct toe_stack *st, struct toe_tcb *tp);
  /* a loss episode proved spurious: restore state saved at on_loss/on_rto */
  void (*undo)(struct toe_stack *st, struct toe_tcb *tp);
};
extern const struct toe_cc_ops toe_cc_newreno;
extern const struct toe_cc_ops toe_cc_cubic;
const struct toe_cc_ops *toe_cc_by_id(uint32_t id);
/*
 * tcp-rec: helpers shared by the congestion control modules (windows in bytes). on_loss and on_rto
 * are called before tp->rec_state changes, with tp->prior_cwnd/prior_ssthresh already saved for
 * undo; a timeout while rec_state is not TOE_REC_OPEN keeps ssthresh (RFC 5681 3.1: the reduction
 * of this episode was already made) and only collapses cwnd.
 */
#define TOE_CC_SSTHRESH_INF 0x7fffffffu /* "arbitrarily high" initial ssthresh (RFC 5681 3.1) */
#define TOE_CC_CWND_MAX 0x40000000u     /* ceiling on cwnd, keeps the arithmetic in range */
/* SMSS for the window arithmetic: toe_tcp_eff_mss() (RFC 5681 2). */
uint32_t toe_cc_mss(const struct toe_tcb *tp);
/* RFC 6928 initial window: min(10*MSS, max(2*MSS, 14600)). */
uint32_t toe_cc_initial_window(uint32_t mss);
/* The window a connection starts with: RFC 6928's, or one segment after a lost SYN or SYN-ACK
 * (tp->syn_retries, RFC 5681 3.1). */
uint32_t toe_cc_iw(const struct toe_tcb *tp);
/* FlightSize (RFC 5681 2): data sent and not cumulatively acknowledged. */
uint32_t toe_cc_flight(const struct toe_tcb *tp);
/* Slow start (RFC 5681 3.1, RFC 3465 2.2 with limit L = `limit` bytes per ACK) up to ssthresh;
 * returns the acked bytes left over for congestion avoidance once cwnd reached ssthresh. */
uint32_t toe_cc_slow_start(struct toe_tcb *tp, uint32_t acked, uint32_t limit);

/* ---- tcp_syncache.c ---- */
/*
 * Listeners keep embryonic connections as compact SYN-cache entries (not tcbs) until the
 * handshake-completing ACK, or answer with SYN cookies when the cache (cfg.tcp_syncache in all, a
 * listener's backlog each) is full or cfg.tcp_syncookies == 2. The demultiplexer calls, for a
 * segment to a listener whose 4-tuple matched no connection and no TIME_WAIT entry:
 *   SYN without ACK/RST        -> toe_tcp_syn_input
 *   RST                        -> toe_tcp_syncache_rst (then frees the segment)
 *   ACK without SYN/RST        -> toe_tcp_syn_ack_input; on a connection returned, the segment
 *                                 (its data, FIN) is processed on it by toe_tcp_input_conn; on
 *                                 NULL the caller just frees the segment: the answer RFC 9293 asks
 *                                 for (RST to an unacceptable ACK, ACK to an out-of-window one)
 *                                 was already sent here, and the drop counted.
 * TSvals sent here are toe_tcp_now_ms(st) + toe_tcp_ts_offset(4-tuple) (RFC 7323 5.4); the tcb
 * created inherits the offset in tp->ts_offset. TIME_WAIT continues from toe_tcp_ts_now().
 */
/* SYN to a listener (data at TCP header; consumed). */
void toe_tcp_syn_input(struct toe_stack *st, struct toe_tcb *listener, struct toe_pbuf *pb,
                       const struct toe_ipv4_view *ip, const struct toe_tcp_view *th,
                       const struct toe_tcp_opts *opts);
/* ACK to a listener that may complete a SYN-cache entry or carry a valid cookie; returns the new
 * connection (already in the hash and on the listener's accept queue, state ESTABLISHED) or NULL
 * (see above: nothing left for the caller to do but free the segment). */
struct toe_tcb *toe_tcp_syn_ack_input(struct toe_stack *st, struct toe_tcb *listener,
                                      const struct toe_ipv4_view *ip, const struct toe_tcp_view *th,
                                      const struct toe_tcp_opts *opts);
/* RST to a listener: removes the matching SYN-cache entry if its sequence number is exactly
 * rcv_nxt (RFC 5961 3.2: one in the window gets a challenge ACK, others are ignored; counted
 * here). Returns true if an entry matched the 4-tuple, false if the RST is the caller's to count.
 */
bool toe_tcp_syncache_rst(struct toe_stack *st, struct toe_tcb *listener,
                          const struct toe_ipv4_view *ip, const struct toe_tcp_view *th);
/* ICMP error quoting a SYN-ACK we sent (called by toe_tcp_icmp_error when no connection matches):
 * drops the entry if the quoted sequence is its ISS (RFC 5927). Returns true if one matched. */
bool toe_tcp_syncache_icmp_error(struct toe_stack *st, const struct toe_ipv4_view *qip,
                                 const uint8_t *ql4, int err);
/* The listener whose SYN cache holds the handshake of this 4-tuple, or NULL: the rest of a
 * handshake goes to the listener that answered its SYN even if a SO_REUSEPORT group changed
 * meanwhile (Linux finds it by its request socket). */
struct toe_tcb *toe_tcp_syncache_listener(const struct toe_stack *st, uint32_t laddr,
                                          uint16_t lport, uint32_t raddr, uint16_t rport);
/* A listener is closing: forgets its SYN-cache entries (tcp_sock.c calls it). */
void toe_tcp_syncache_listener_closed(struct toe_stack *st, struct toe_tcb *listener);
/* SYN-cache entries held for `listener` (NULL: all listeners). */
uint32_t toe_tcp_syncache_count(const struct toe_stack *st, const struct toe_tcb *listener);
/* Memory of the SYN cache (called by toe_tcp_mem_size/toe_tcp_init in tcp_sock.c). */
size_t toe_tcp_syncache_mem_size(const struct toe_config *cfg);
void toe_tcp_syncache_init(struct toe_stack *st, void *mem);
/* Between tcp_timewait.c and tcp_syncache.c: a SYN that reopens a TIME_WAIT 4-tuple; the new ISS
 * is at least `iss_floor` (beyond the old connection's sequence space, RFC 6191 / RFC 9293 3.4). */
void toe_tcp_syn_input_reopen(struct toe_stack *st, struct toe_tcb *listener, struct toe_pbuf *pb,
                              const struct toe_ipv4_view *ip, const struct toe_tcp_view *th,
                              const struct toe_tcp_opts *opts, uint32_t iss_floor);
/* A connection-less segment from (laddr, lport) to (raddr, rport): SYN-ACKs, TIME_WAIT ACKs.
 * `o` may be NULL. Returns 0 or a negative TOE_E* (counted). */
int toe_tcp_xmit_bare(struct toe_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
                      uint16_t rport, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t window,
                      const struct toe_tcp_opts *o);

/* ---- tcp_timewait.c ---- */
/*
 * TIME_WAIT (RFC 9293 3.6.1) is held in compact entries, not tcbs, in their own 4-tuple hash:
 * the demultiplexer looks a segment up in the connection hash first, then calls
 * toe_tcp_timewait_input, then tries a listener.
 */
/* Moves a connection to compact TIME_WAIT (2*MSL) and releases the tcb with toe_tcp_close_final
 * (which takes it out of the connection hash; the tcb is freed at once if orphaned). The caller
 * sends the ACK of the peer's FIN first: `tp` is gone afterwards. Uses tp->snd_max, rcv_nxt,
 * rcv_wnd, rcv_wscale, TS state and toe_tcp_ts_now(). When all cfg.tcp_timewait entries are in
 * use the oldest is recycled (counted); with no table at all the connection just closes. */
void toe_tcp_enter_timewait(struct toe_stack *st, struct toe_tcb *tp);
/* Segment for a TIME_WAIT 4-tuple; returns true if it was handled (consumed), false (pb untouched)
 * if no TIME_WAIT entry holds the 4-tuple. A SYN that may reopen the 4-tuple (RFC 6191) is passed
 * to the listener from here. */
bool toe_tcp_timewait_input(struct toe_stack *st, struct toe_pbuf *pb,
                            const struct toe_ipv4_view *ip, const struct toe_tcp_view *th,
                            const struct toe_tcp_opts *opts);
/* For connect(): 0 if the 4-tuple is not in TIME_WAIT; 1 if it was, and the entry was released
 * for reuse (timestamps on and the entry older than 1 s, so PAWS protects the new connection, as
 * Linux's tcp_tw_reuse): *iss_floor is then the lowest ISS the new connection may use;
 * -TOE_EADDRINUSE if the 4-tuple is held (pick another port). */
int toe_tcp_timewait_connect(struct toe_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
                             uint16_t rport, uint32_t *iss_floor);
/* True if some TIME_WAIT entry holds local port `lport` (on laddr, 0 = any): bind without
 * TOE_SO_REUSEADDR fails then, as on Linux. With `reuseport` (the binding socket set
 * SO_REUSEPORT) entries of connections that had it too do not count (Linux's
 * inet_csk_bind_conflict): a SO_REUSEPORT server restarts at once. Linear in the entries: for
 * bind, not for ephemeral port searches. */
bool toe_tcp_timewait_port_used(const struct toe_stack *st, uint32_t laddr, uint16_t lport,
                                bool reuseport);
/* Visits every TIME_WAIT entry for toe_tcp_visit (s == NULL). */
void toe_tcp_timewait_visit(const struct toe_stack *st, toe_tcp_visit_fn fn, void *arg);
/* Memory of the TIME_WAIT table (called by toe_tcp_mem_size/toe_tcp_init in tcp_sock.c). */
size_t toe_tcp_timewait_mem_size(const struct toe_config *cfg);
void toe_tcp_timewait_init(struct toe_stack *st, void *mem);

/* ---- tcp_isn.c ---- */
/* RFC 6528: ISN = M + F(4-tuple, secret), M a 4-microsecond clock. */
uint32_t toe_tcp_isn(const struct toe_stack *st, uint32_t laddr, uint16_t lport, uint32_t raddr,
                     uint16_t rport);
/* The per-connection random offset of our TSval (RFC 7323 5.4), keyed on the 4-tuple. */
uint32_t toe_tcp_ts_offset(const struct toe_stack *st, uint32_t laddr, uint16_t lport,
                           uint32_t raddr, uint16_t rport);

/* ---- tcp_sock.c ---- */
/* Bytes of stack memory TCP needs (the tcb pool plus every TCP table), and its layout into it. */
size_t toe_tcp_mem_size(const struct toe_config *cfg);
void toe_tcp_init(struct toe_stack *st, void *mem);
/* A zeroed tcb with the defaults of cfg (buffers, MSS, RTO, congestion control), or NULL. */
struct toe_tcb *toe_tcb_alloc(struct toe_stack *st);
void toe_tcb_free(struct toe_stack *st, struct toe_tcb *tp);
/* Connection dropped with error `err` (reset, timeout): notifies, frees when orphaned. */
void toe_tcp_drop(struct toe_stack *st, struct toe_tcb *tp, int err);
/* Moves to CLOSED and releases everything (after LAST_ACK, TIME_WAIT handoff, ...). */
void toe_tcp_close_final(struct toe_stack *st, struct toe_tcb *tp);
/*
 * Queues events for the socket owner; they are delivered (through toe_sock_notify) by
 * toe_tcp_notify_flush(), never from inside the caller, so a callback that closes or aborts the
 * socket cannot pull the tcb from under the code that raised the event. READABLE is edge-triggered
 * (once until the application reads the queue dry, or recv/accept says -TOE_EAGAIN); the other
 * events are delivered as raised (WRITABLE: at establishment, and when space is back after a
 * send saw -TOE_EAGAIN: the raiser clears TOE_TF_WRITABLE_WAIT). Only sockets the application
 * holds get events (not orphans, not connections waiting in an accept queue).
 */
void toe_tcp_notify(struct toe_stack *st, struct toe_tcb *tp, uint32_t events);
/* Delivers the queued events. The input path calls it when toe_tcp_input() is done; the socket
 * calls and timers of tcp_sock.c/tcp_timer.c call it themselves (and a zero-delay timer delivers
 * anything left at the next poll). */
void toe_tcp_notify_flush(struct toe_stack *st);
/* toe_sock_bind / toe_sock_connect / toe_sock_close on a TCP socket (dispatched from udp.c). */
int toe_tcp_bind(struct toe_stack *st, struct toe_sock *s, const struct toe_sockaddr *local);
int toe_tcp_connect(struct toe_stack *st, struct toe_sock *s, const struct toe_sockaddr *remote);
void toe_tcp_close(struct toe_stack *st, struct toe_sock *s);
/* The tcb behind a handle, or NULL if `s` is not an open TCP socket of this stack. */
struct toe_tcb *toe_tcp_sock(const struct toe_stack *st, const struct toe_sock *s);

#endif
