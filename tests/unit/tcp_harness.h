/*
 * TCP test helpers on top of harness.h: hand-built TCP segments (with options), a parser for
 * captured TCP frames, and a scripted peer ("h_conn") that opens a connection with one of our
 * sockets, actively or passively, and then sends segments with the right sequence numbers,
 * acknowledgments and timestamps.
 *
 * Like harness.c, these helpers write and read bytes directly and check checksums with the
 * reference implementation, so they do not depend on the wire layer under test.
 */
#ifndef TOE_TEST_TCP_HARNESS_H
#define TOE_TEST_TCP_HARNESS_H

#include "harness.h"
#include "toe/tcp.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define H_FIN 0x01
#define H_SYN 0x02
#define H_RST 0x04
#define H_PSH 0x08
#define H_ACK 0x10
#define H_URG 0x20

/* Options for a hand-built segment. */
struct h_tcp_opt {
  uint16_t mss;   /* 0: no MSS option */
  int wscale;     /* < 0: no window scale option */
  bool sack_perm; /* SACK-permitted */
  bool ts;        /* timestamps */
  uint32_t tsval, tsecr;
  int nsack; /* SACK blocks (0..4) */
  uint32_t sack[4][2];
};

/* No options at all. */
void h_tcp_opt_none(struct h_tcp_opt *o);
/* Writes the options (NOP-padded to a multiple of 4) and returns their length (<= 40). */
size_t h_tcp_opts(uint8_t *out, const struct h_tcp_opt *o);

/* A whole Ethernet frame from src:sport to dst:dport carrying a TCP segment; returns its length.
 * `opts` are raw option bytes (optlen a multiple of 4). */
size_t h_build_tcp(uint8_t *out, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                   uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, const void *opts,
                   size_t optlen, const void *data, size_t dlen);

/* A parsed captured TCP frame. */
struct h_tcp {
  uint32_t src, dst; /* IPv4 addresses */
  uint16_t sport, dport;
  uint32_t seq, ack;
  uint8_t flags;
  uint16_t win;
  uint16_t urg;
  bool csum_ok; /* TCP checksum verified with the pseudo-header */
  bool ipcsum_ok;
  bool df;
  uint8_t ttl;
  const uint8_t *data; /* payload inside the captured frame */
  size_t dlen;
  /* options */
  bool has_mss;
  uint16_t mss;
  bool has_ws;
  uint8_t ws;
  bool sack_perm;
  bool has_ts;
  uint32_t tsval, tsecr;
  int nsack;
  uint32_t sack[4][2];
};

/* Parses a frame; false if it is not a well-formed IPv4 TCP frame. */
bool h_tcp_parse(const uint8_t *frame, size_t len, struct h_tcp *t);
/* Index in h->tx of the n-th captured TCP frame (n < 0 counts from the end: -1 is the last), or
 * -1. */
int h_tcp_find(const struct harness *h, int n);
int h_tcp_count(const struct harness *h);
/* Parses the n-th captured TCP frame (as h_tcp_find); false if there is none. */
bool h_tcp_get(const struct harness *h, int n, struct h_tcp *t);

/* A scripted peer at H_PEER_IP. */
struct h_conn {
  struct harness *h;
  struct toe_sock *s;  /* our socket of the connection (connected or accepted) */
  struct toe_sock *ls; /* our listener (passive opens) */
  uint16_t lport;      /* our port */
  uint16_t pport;      /* the peer's port */
  uint32_t iss;        /* our initial sequence number */
  uint32_t irs;        /* the peer's initial sequence number */
  uint32_t snd_nxt;    /* next sequence number the peer sends */
  uint32_t rcv_nxt;    /* what the peer acknowledges */
  uint16_t win;        /* window field the peer sends (after the SYN: scaled by syn_opt.wscale) */
  struct h_tcp_opt syn_opt; /* options of the peer's SYN or SYN-ACK */
  bool ts;                  /* timestamps agreed */
  bool sack;                /* SACK agreed */
  uint8_t our_ws;           /* window shift we announced (0 if scaling is off) */
  uint32_t tsval;           /* the peer's timestamp clock: each segment sends tsval++ */
  uint32_t ts_recent;       /* the last TSval we sent, echoed by the peer */
  struct h_tcp syn;         /* our SYN or SYN-ACK */
};

/* Prepares a peer on port `pport` with the usual options (MSS 1460, window scale 7, SACK,
 * timestamps) and a 64 KiB window; puts the peer in our neighbour cache (h_learn_peer). */
void h_conn_init(struct h_conn *c, struct harness *h, uint16_t pport);
/* Active open: our socket (bound to lport first if non-zero) connects to the peer, which answers
 * the SYN with a SYN-ACK carrying syn_opt. Returns 0 once our ACK was seen, else < 0. */
int h_conn_connect(struct h_conn *c, uint16_t lport);
/* Passive open: a listener on lport; the peer sends SYN (syn_opt), our SYN-ACK, the peer's ACK,
 * then toe_tcp_accept. Returns 0 with c->s set, else < 0. */
int h_conn_accept(struct h_conn *c, uint16_t lport);
/* Segment from the peer at snd_nxt acknowledging rcv_nxt (with TS if agreed); snd_nxt advances
 * by len (+1 for SYN/FIN). */
void h_conn_send(struct h_conn *c, uint8_t flags, const void *data, size_t len);
/* Same at sequence `seq`, snd_nxt unchanged. */
void h_conn_send_at(struct h_conn *c, uint32_t seq, uint8_t flags, const void *data, size_t len);
/* Full control: explicit seq, ack, flags, window and options (NULL = the usual TS if agreed). */
void h_conn_send_raw(struct h_conn *c, uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win,
                     const struct h_tcp_opt *o, const void *data, size_t len);
/* The last captured segment of this connection from us (false if none); updates ts_recent. */
bool h_conn_last(struct h_conn *c, struct h_tcp *t);
/* Counts our captured segments of this connection. */
int h_conn_count(const struct h_conn *c);
/* Segments of this connection from us captured at index >= `from` that have `flags` all set. */
int h_conn_count_flags(const struct h_conn *c, int from, uint8_t flags);
/* Reads everything our socket has received into buf (up to cap); returns bytes read. */
size_t h_conn_read(struct h_conn *c, void *buf, size_t cap);

#endif
