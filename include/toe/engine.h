/*
 * The toekit engine: a sans-IO Ethernet/ARP/IPv4/ICMP/UDP(/TCP) stack.
 *
 * The engine performs no I/O, reads no clock and allocates nothing after creation:
 *   - received frames go in through toe_stack_input() / toe_stack_input_copy(), with the time;
 *   - frames to send come out through the `tx` callback of the config;
 *   - socket readiness comes out through the `sock_event` callback;
 *   - toe_stack_next_deadline() says when toe_stack_poll() must next be called.
 * One stack instance is single-threaded: the caller serialises every call on it. Several instances
 * (one per core) share nothing.
 *
 * Addresses are host byte order `uint32_t` for IPv4 throughout this API; ports are host order too.
 * Time is `toe_time_t`, nanoseconds on a monotonic clock whose epoch the caller chooses.
 * Errors are negative TOE_E* values (see toe/errno.h).
 */
#ifndef TOE_ENGINE_H
#define TOE_ENGINE_H

#include "toe/counters.h"
#include "toe/errno.h"
#include "toe/pbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t toe_time_t;
#define TOE_TIME_NEVER UINT64_MAX
#define TOE_MSEC(ms) ((toe_time_t)(ms)*1000000ull)
#define TOE_SEC(s) ((toe_time_t)(s)*1000000000ull)

struct toe_stack;
struct toe_sock;

struct toe_mac {
  uint8_t b[6];
};

/* Offload capabilities of the link the stack runs on (toe_config.link_caps). */
#define TOE_LINK_CAP_RX_CSUM 0x0001u /* driver sets TOE_PBUF_F_*_CSUM_OK on verified frames */
/* The link completes L4 checksums: the engine leaves the pseudo-header sum in TCP segments and
 * marks them TOE_PBUF_F_CSUM_PARTIAL with csum_start/csum_offset (include/toe/pbuf.h), as
 * virtio-net's NEEDS_CSUM. Without it the engine computes every checksum itself (the software
 * fallback). UDP, ICMP and IP header checksums are always computed by the engine. */
#define TOE_LINK_CAP_TX_CSUM 0x0002u
/* TCP segmentation offload (with TOE_LINK_CAP_TX_CSUM, which it needs: the link completes each
 * piece's checksum). TCP output then hands the link one super-segment for what would have left as
 * back-to-back full-sized segments in one output call: one Ethernet + IPv4 + TCP header and up to
 * toe_config.tso_max bytes of IP datagram, marked TOE_PBUF_F_GSO_TCPV4 | TOE_PBUF_F_CSUM_PARTIAL
 * with gso_size = the MSS (include/toe/pbuf.h). The link cuts it into segments of gso_size payload
 * bytes, the last possibly shorter: each piece gets the header with the sequence number advanced,
 * the IPv4 id advanced by one per piece (the engine reserves that many ids), IPv4 total length and
 * checksum recomputed, FIN and PSH cleared on all but the last piece, and its TCP checksum (the
 * field holds the pseudo-header sum over the whole super-segment's TCP length, as Linux's
 * CHECKSUM_PARTIAL GSO skbs; toe_gso_segment() shows the exact rules). Window, congestion
 * window, Nagle, the path MTU and the peer's MSS are applied per MSS exactly as without TSO: the
 * pieces are the segments that would have gone out. Without the capability every segment is its
 * own frame (the software fallback). */
#define TOE_LINK_CAP_TSO 0x0004u

/*
 * Transmit callback. The engine hands over one complete Ethernet frame (a pbuf chain, consumed: the
 * callee owns it and must release it with toe_pbuf_free() once the bytes are on the wire or
 * copied). It is called from inside toe_stack_input()/poll()/socket calls; the callee must not call
 * back into the engine, except toe_pbuf_free() and toe_gso_segment().
 */
typedef void (*toe_tx_fn)(void *ctx, struct toe_pbuf *frame);

/*
 * The software cut of a TSO super-segment (TOE_PBUF_F_GSO_TCPV4, see TOE_LINK_CAP_TSO), for a link
 * (or a test) that takes super-segments but must put single segments on the wire. `frame` is
 * consumed. On success *out is a qnext-linked list of complete frames, the pieces in order; each
 * payload is a zero-copy view of the super-segment's buffers (toe_pbuf_ref_range()). With
 * `sw_csum` every piece's TCP checksum is computed; without, each piece stays
 * TOE_PBUF_F_CSUM_PARTIAL with its own pseudo-header sum (for a link with checksum offload only).
 * A frame without the GSO flag comes back as the only element. May be called from the tx
 * callback. Returns 0, -TOE_EINVAL for a frame that is not a well-formed untagged or 802.1Q-tagged
 * TCP/IPv4 super-segment (freed), or -TOE_ENOBUFS (freed; the pool ran out).
 */
int toe_gso_segment(struct toe_stack *st, struct toe_pbuf *frame, bool sw_csum,
                    struct toe_pbuf **out);

/* Socket events (bit mask) for the sock_event callback. */
#define TOE_EV_READABLE 0x01u /* data (or an EOF/error) can be received */
#define TOE_EV_WRITABLE 0x02u /* sending would not fail with -TOE_EAGAIN now */
#define TOE_EV_ERROR 0x04u    /* a soft error is pending: toe_sock_error() returns it */

/*
 * Socket event callback: `events` became true for `s`. `user` is the pointer given at open.
 * Called from inside engine calls; the callee may call socket functions on any socket of the
 * stack, but must not call toe_stack_input()/poll().
 */
typedef void (*toe_sock_event_fn)(void *ctx, struct toe_sock *s, void *user, uint32_t events);

/*
 * Port claim callback (toe_config.port_claim), for a device that shares its address with a host OS
 * (docs/coexistence.md): called with `claim` true before an explicit bind of `port` (`proto` 6 TCP
 * or 17 UDP) succeeds; returning -TOE_EADDRINUSE (the OS holds the port) fails the bind with that
 * error, 0 lets it proceed. Called with `claim` false when a socket that was claimed for releases
 * the port (its return value is then ignored). Ephemeral ports are not claimed: the device's
 * ephemeral range is reserved from the OS as a whole. Must not call back into the engine.
 */
typedef int (*toe_port_claim_fn)(void *ctx, uint8_t proto, uint16_t port, bool claim);

/* Global IPv6 addresses a stack holds besides its link-local one (toe_config.addr6). */
#define TOE_MAX_ADDR6 4

struct toe_config {
  /* interface */
  struct toe_mac mac; /* our MAC address */
  uint32_t addr;      /* our IPv4 address */
  uint8_t prefix_len; /* on-link prefix, 0..32 */
  uint32_t gateway;   /* default gateway, 0 = none (off-link destinations unreachable) */
  uint16_t mtu;       /* IP MTU of the link, 68..9000; default 1500 */
  uint16_t vlan_id;   /* 0: untagged; else frames must carry this 802.1Q VID (and are sent so) */
  uint32_t link_caps; /* TOE_LINK_CAP_* */
  uint32_t tso_max;   /* TOE_LINK_CAP_TSO: largest super-segment (IPv4 datagram bytes, headers
                         included) the link cuts, 0 = 65535 (also the most it may be) */

  /* pools and tables (all memory is sized from these at creation) */
  uint32_t pbuf_count;        /* packet buffers; default 4096 */
  uint16_t pbuf_size;         /* bytes of storage per buffer; default 2048 */
  uint32_t arp_entries;       /* neighbour cache entries; default 256 */
  uint16_t arp_queue_len;     /* packets held per unresolved neighbour; default 8 */
  uint32_t reass_slots;       /* datagrams reassembled at once; default 64 */
  uint32_t reass_max_bufs;    /* pbufs reassembly may hold in all; default 1024 */
  uint32_t udp_socks;         /* UDP sockets; default 1024 */
  uint16_t udp_rcvq_len;      /* datagrams queued per UDP socket; default 256 */
  uint32_t tcp_socks;         /* TCP connections + listeners; default 1024 */
  uint32_t tcp_syncache;      /* embryonic connections in all SYN queues; default 1024 */
  uint32_t tcp_timewait;      /* TIME_WAIT entries held at most; default 4096 */
  uint16_t tcp_max_backlog;   /* accept queue limit per listener; default 1024 */
  uint32_t tcp_rcvbuf;        /* default receive buffer (window) per connection; default 256 KiB */
  uint32_t tcp_rcvbuf_max;    /* auto-tuning limit; default 4 MiB */
  uint32_t tcp_sndbuf;        /* default send buffer; default 256 KiB */
  uint32_t tcp_sndbuf_max;    /* default 4 MiB */
  uint8_t tcp_cc;             /* TOE_CC_CUBIC (default) or TOE_CC_NEWRENO */
  uint8_t tcp_syn_retries;    /* SYN retransmissions before giving up; default 6 */
  uint8_t tcp_retries2;       /* RTO expirations before dropping a connection; default 15 */
  uint8_t tcp_timestamps;     /* offer RFC 7323 timestamps; default 1 */
  uint8_t tcp_sack;           /* offer SACK; default 1 */
  uint8_t tcp_wscale;         /* offer window scaling; default 1 */
  uint8_t tcp_syncookies;     /* 0 never, 1 when the SYN queue is full (default), 2 always */
  toe_time_t tcp_rto_min;     /* RFC 6298 2.4 says 1 s; default 200 ms like Linux */
  toe_time_t tcp_rto_max;     /* default 60 s */
  toe_time_t tcp_rto_initial; /* default 1 s (RFC 6298 2.1) */
  toe_time_t tcp_delack;      /* delayed ACK bound; default 40 ms (RFC 1122 4.2.3.2: < 500 ms) */
  toe_time_t tcp_msl;         /* TIME_WAIT lasts 2*MSL; default 30 s (RFC 9293 says 2 min) */
  toe_time_t tcp_fin_timeout; /* orphaned FIN_WAIT_2 limit; default 60 s */
  toe_time_t tcp_keep_idle;   /* keepalive defaults (RFC 1122 4.2.3.6: >= 2 h) */
  toe_time_t tcp_keep_intvl;
  uint8_t tcp_keep_cnt;

  /* protocol timing and limits */
  toe_time_t arp_reachable_time; /* an answered entry is trusted this long; default 30 s */
  toe_time_t arp_stale_time;     /* a stale entry is kept this long unused; default 60 s */
  toe_time_t arp_retry_interval; /* between requests while resolving; default 1 s */
  uint8_t arp_max_retries;       /* requests before giving up; default 3 */
  toe_time_t reass_timeout;      /* RFC 1122 3.3.2 suggests 60 s..120 s; default 30 s */
  uint8_t default_ttl;           /* RFC 1700 / RFC 1122: default 64 */
  uint32_t icmp_rate_per_sec;    /* ICMP errors sent per second (token bucket); default 100 */
  uint32_t icmp_burst;           /* bucket depth; default 10 */
  uint16_t ephemeral_lo;         /* ephemeral port range, inclusive; default 49152..65535 */
  uint16_t ephemeral_hi;

  /* Pool protection (docs/transport.md "Buffer accounting"): every buffer a socket's queues hold
   * is charged to the socket, in buffers, whatever its payload. 0 = the default, computed from
   * pbuf_count at creation (so a caller that only changes pbuf_count gets scaled values). */
  uint32_t pbuf_reserve;  /* buffers only control traffic may use; default count/32, >= 16 */
  uint32_t sock_max_bufs; /* most buffers one socket holds per direction; default count/8, >= 16 */
  uint32_t sock_min_bufs; /* under pressure a socket moving data grows to <= this; default 256 */

  /* coexistence with a host interface (toe/steer.h, docs/coexistence.md) */
  uint8_t steering;       /* 1: keep the filter table and steer with toe_steer_frame(); default 0 */
  uint8_t icmp_echo_host; /* 1: echo requests are the OS's to answer (steered to the host) */

  /* seed for the engine's pseudo-random numbers (IP ids, ephemeral ports, later ISNs' secret) */
  uint64_t random_seed;
  uint8_t secret[16]; /* per-device secret for keyed hashes; caller fills it with random bytes */

  /* callbacks */
  toe_tx_fn tx;
  toe_sock_event_fn sock_event; /* may be NULL */
  toe_port_claim_fn port_claim; /* may be NULL: no claims */
  void *ctx;                    /* passed to every callback */

  /* IPv6 (docs/ipv6.md). With ipv6 set the stack terminates IPv6 on the link: it takes the
   * link-local address fe80::/64 + the modified EUI-64 of `mac` (RFC 4291 2.5.1, RFC 4862 5.3)
   * and the addr6_count global addresses below, listens to their solicited-node groups and
   * ff02::1, answers Neighbor Solicitations and ICMPv6 echo. Without it IPv6 frames are dropped as
   * an unterminated ethertype (link.rx_drop_ethertype). Not yet with cfg.steering (the OS then
   * keeps all of IPv6). */
  uint8_t ipv6;                            /* 1: terminate IPv6; default 0 */
  uint8_t addr6_count;                     /* global addresses in addr6, 0..TOE_MAX_ADDR6 */
  uint8_t addr6[TOE_MAX_ADDR6][16];        /* network order; unicast, not link-local */
  uint8_t addr6_prefix_len[TOE_MAX_ADDR6]; /* on-link prefix of each, 1..128 */
  uint32_t nd_entries;                     /* IPv6 neighbour cache entries; default 64 */
  uint8_t dad_transmits; /* DupAddrDetectTransmits (RFC 4862 5.1): DAD probes per address at
                            toe_stack_start(), addresses tentative until they pass; default 1;
                            0 = no DAD, addresses usable at once */

  /* ECN on TCP (RFC 3168, and Accurate ECN, RFC 9768; docs/architecture.md "ECN"): one of
   * TOE_TCP_ECN_*; default TOE_TCP_ECN_PASSIVE, Linux's net.ipv4.tcp_ecn=2. */
  uint8_t tcp_ecn;
};

/* cfg.tcp_ecn. Whatever the mode, ECN is used only when both ends agree in the handshake. */
#define TOE_TCP_ECN_OFF 0     /* never: our SYNs do not ask, a peer's request is not answered */
#define TOE_TCP_ECN_ON 1      /* ask for RFC 3168 ECN in our SYNs, accept it from peers */
#define TOE_TCP_ECN_PASSIVE 2 /* accept RFC 3168 ECN when a peer's SYN asks, do not ask */
#define TOE_TCP_ECN_ACCECN 3  /* ask for Accurate ECN; accept AccECN or RFC 3168 ECN */

/* Fills `cfg` with the defaults above (addresses zero, callbacks NULL). */
void toe_config_defaults(struct toe_config *cfg);

/*
 * Bytes of memory a stack with this config needs, including all pools and tables.
 * Returns 0 if the config is invalid.
 */
size_t toe_stack_mem_size(const struct toe_config *cfg);

/*
 * Creates a stack in `mem` (at least toe_stack_mem_size() bytes, 64-byte aligned, owned by the
 * caller, which must keep it until the stack is no longer used). No other memory is ever allocated.
 * Returns 0 and sets *out, or:
 *   -TOE_EINVAL  invalid config (no tx callback, MTU out of range, prefix > 32, zero-sized pools,
 *                address zero or broadcast, gateway off-link, ...)
 *   -TOE_ENOMEM  `mem_len` smaller than toe_stack_mem_size()
 */
int toe_stack_create(const struct toe_config *cfg, void *mem, size_t mem_len,
                     struct toe_stack **out);

/* Convenience for hosted builds: allocates the memory with malloc. Free with toe_stack_free(). */
int toe_stack_new(const struct toe_config *cfg, struct toe_stack **out);
void toe_stack_free(struct toe_stack *st);

/*
 * Brings the interface up at time `now`: announces our address with a gratuitous ARP (RFC 5227
 * style announcement). Call once after creation.
 */
void toe_stack_start(struct toe_stack *st, toe_time_t now);

/*
 * Processes one received Ethernet frame (without FCS). `frame` is consumed. `now` must not go
 * backwards between calls.
 */
void toe_stack_input(struct toe_stack *st, struct toe_pbuf *frame, toe_time_t now);

/*
 * Copies `len` bytes into pbufs and processes them as a frame. Returns 0, or -TOE_ENOBUFS if the
 * pool could not hold it (counted in link.rx_drop_nobuf).
 */
int toe_stack_input_copy(struct toe_stack *st, const void *frame, size_t len, toe_time_t now);

/* Runs every timer due at `now`. */
void toe_stack_poll(struct toe_stack *st, toe_time_t now);

/*
 * A receive burst: frames a driver took from its ring in one go go in between
 * toe_stack_burst_begin() and toe_stack_burst_end(), as GRO gives the kernel one super-frame for
 * them. A TCP connection then makes one output decision for the burst (at its end) instead of
 * one per segment: in-order data gets one ACK for the whole burst (up to 64 KiB of it; more gets
 * an ACK at once, as a 64 KiB GRO frame would), and a sender builds its next super-segment once
 * from every ACK of the burst. What needs an ACK at once (out-of-order data, a hole filled, a
 * FIN, data past the window) still gets it at once, segment by segment (RFC 5681 4.2; fast
 * retransmit counts duplicate ACKs). Calls do not nest; end must follow begin before any poll.
 */
void toe_stack_burst_begin(struct toe_stack *st);
void toe_stack_burst_end(struct toe_stack *st);

/*
 * The earliest time toe_stack_poll() has work to do, or TOE_TIME_NEVER. It may be earlier than
 * the real next expiry (a wheel slot boundary), never later.
 */
toe_time_t toe_stack_next_deadline(const struct toe_stack *st);

/* The time of the last input/poll call: the engine's notion of now. */
toe_time_t toe_stack_now(const struct toe_stack *st);

/* The stack's counters (live; read them between calls). */
const struct toe_counters *toe_stack_counters(const struct toe_stack *st);

/* The config the stack was created with (after defaults were applied). */
const struct toe_config *toe_stack_config(const struct toe_stack *st);

/* IPv6 address states (RFC 4862 2), as toe_stack_addr6() reports them. */
#define TOE_ADDR6_PREFERRED 0 /* usable */
#define TOE_ADDR6_TENTATIVE 1 /* DAD still running: only Neighbor Discovery uses it */
#define TOE_ADDR6_DUPLICATE 2 /* DAD found another node using it: never used */

/*
 * The i-th IPv6 address of the stack (0: the link-local one, then cfg.addr6 in order): copies it
 * to `addr` (16 bytes, network order) and returns its TOE_ADDR6_* state, or -TOE_ENOENT past the
 * last one (or with IPv6 off).
 */
int toe_stack_addr6(const struct toe_stack *st, unsigned i, uint8_t addr[16]);

/* ---------------------------------------------------------------------------------------------
 * Sockets
 *
 * Socket calls act at the stack's current time (toe_stack_now()); a caller that let time pass
 * should call toe_stack_poll() first. A handle that is not an open socket of the stack (NULL, or
 * closed) gives -TOE_EBADF (NULL / 0 where the call returns no error code).
 */

#define TOE_AF_INET 2
#define TOE_AF_INET6 10

/*
 * A socket address, tagged by `family`. TOE_AF_INET: `addr`, host order, 0 = any (bind).
 * TOE_AF_INET6: `addr6`, 16 bytes in network order, :: = any (bind); an IPv4 peer or address of
 * a dual-stack IPv6 socket is the v4-mapped ::ffff:a.b.c.d (RFC 4291 2.5.5.2), as on Linux.
 * The union keeps IPv4 callers' {family, port, addr} initializers as they were.
 */
struct toe_sockaddr {
  uint16_t family; /* TOE_AF_INET or TOE_AF_INET6 (0 = none: dissolve a UDP association) */
  uint16_t port;   /* host order */
  union {
    uint32_t addr;     /* TOE_AF_INET */
    uint8_t addr6[16]; /* TOE_AF_INET6 */
  };
};

/*
 * Opens a UDP socket. `user` is returned in events. Returns 0 and *out, or -TOE_EMFILE if all
 * udp_socks slots are in use.
 */
int toe_udp_open(struct toe_stack *st, void *user, struct toe_sock **out);

/*
 * IPv6 (the engine API's AF_INET6 socket). A socket is IPv4 until it is bound, connected or sent
 * from with a TOE_AF_INET6 address, or given TOE_IPV6_V6ONLY (toe/tcp.h): from then on it is an
 * IPv6 socket for good, its names are TOE_AF_INET6, and a TOE_AF_INET address given to it is
 * refused with -TOE_EAFNOSUPPORT (as is a TOE_AF_INET6 address on a stack without IPv6, or on a
 * bound IPv4 socket: -TOE_EINVAL there). Dual-stack rules are Linux's: an IPv6 socket bound to ::
 * without V6ONLY also takes IPv4 traffic (its peers appear as v4-mapped addresses) and holds the
 * port for both families; one bound to ::ffff:a.b.c.d (or connected to a v4-mapped peer) is an IPv4
 * socket under IPv6 names; one bound to an IPv6 address of ours, with V6ONLY, or connected to an
 * IPv6 peer takes no IPv4 traffic. TCP and UDP carry both families.
 *
 * Binds to a local address (0 or our own address) and port (0 picks an ephemeral port).
 * Errors: -TOE_EINVAL already bound or bad family; -TOE_EADDRNOTAVAIL address not ours, or no
 * ephemeral port free; -TOE_EADDRINUSE port taken.
 */
int toe_sock_bind(struct toe_stack *st, struct toe_sock *s, const struct toe_sockaddr *local);

/*
 * UDP: sets the default destination and filters received datagrams to that peer; binds an
 * ephemeral port first if unbound. A socket bound to any address gets ours as its local address
 * (as Linux does; toe_sock_name() shows it). A family of 0 dissolves the association (the port
 * stays bound).
 * Errors: as bind, plus -TOE_EINVAL for a zero address/port.
 */
int toe_sock_connect(struct toe_stack *st, struct toe_sock *s, const struct toe_sockaddr *remote);

/*
 * Sends one datagram of `len` bytes (copied). `dst` may be NULL on a connected socket.
 * Returns len, or: -TOE_EDESTADDRREQ (no dst and not connected); -TOE_EMSGSIZE
 * (len > 65507); -TOE_ENOBUFS (pool empty); -TOE_ENETUNREACH (no route); -TOE_EHOSTUNREACH
 * (neighbour known to be unreachable); -TOE_EINVAL (bad dst: family, zero address or port).
 * An unbound socket is first bound to an ephemeral port (-TOE_EADDRNOTAVAIL if none is free).
 * Broadcast destinations are allowed.
 * A datagram waiting for ARP resolution counts as sent; if resolution fails it is dropped (counted
 * in arp.queue_drop_failed), and while the failure is remembered sends to that neighbour return
 * -TOE_EHOSTUNREACH.
 */
int toe_udp_sendto(struct toe_stack *st, struct toe_sock *s, const void *data, size_t len,
                   const struct toe_sockaddr *dst);

/*
 * Zero-copy send: `payload` is a chain holding just the datagram payload, with at least
 * TOE_PBUF_HEADROOM bytes of headroom in its head. Consumed. Returns as toe_udp_sendto().
 */
int toe_udp_send_pbuf(struct toe_stack *st, struct toe_sock *s, struct toe_pbuf *payload,
                      const struct toe_sockaddr *dst);

/*
 * Receives one datagram: copies up to `cap` bytes into `buf`, sets *from (if not NULL).
 * Returns the datagram's full length (larger than cap means it was truncated, like MSG_TRUNC),
 * or -TOE_EAGAIN if none is queued.
 */
int toe_udp_recvfrom(struct toe_stack *st, struct toe_sock *s, void *buf, size_t cap,
                     struct toe_sockaddr *from);

/*
 * Zero-copy receive: returns the next datagram as a chain whose data starts at the payload (the
 * caller owns it and frees it with toe_pbuf_free()), or NULL if none is queued.
 */
struct toe_pbuf *toe_udp_recv_pbuf(struct toe_stack *st, struct toe_sock *s,
                                   struct toe_sockaddr *from);

/*
 * What the stack kept of a received datagram besides its source: the destination address it was
 * sent to (the socket may be bound to the wildcard), the IPv4 header's TOS and TTL (of the first
 * fragment for a reassembled one) and the stack's clock when it arrived (the `now` given to
 * toe_stack_input). For the host's IP_PKTINFO, IP_TOS, IP_TTL and SO_TIMESTAMP ancillary data.
 */
struct toe_udp_rxinfo {
  uint32_t dst; /* host order (0 for an IPv6 datagram) */
  uint8_t tos;  /* IPv6: the traffic class */
  uint8_t ttl;  /* IPv6: the hop limit */
  toe_time_t at;
};
/* Fills *ri for a chain returned by toe_udp_recv_pbuf() (until it is freed or modified). */
void toe_udp_pbuf_rxinfo(const struct toe_pbuf *pb, struct toe_udp_rxinfo *ri);

/* Datagrams / bytes waiting in the receive queue. */
uint32_t toe_udp_rx_pending(const struct toe_sock *s, uint32_t *bytes);

/*
 * Returns and clears the socket's pending soft error (like SO_ERROR): 0 or a negative TOE_E*
 * (-TOE_ECONNREFUSED after ICMP port unreachable on a connected socket, -TOE_EHOSTUNREACH, ...).
 */
int toe_sock_error(struct toe_stack *st, struct toe_sock *s);

/* Local and remote addresses (remote is zero when unconnected). Returns 0. */
int toe_sock_name(const struct toe_sock *s, struct toe_sockaddr *local,
                  struct toe_sockaddr *remote);

/* Closes the socket and frees its queued data. The pointer is invalid afterwards. */
void toe_sock_close(struct toe_stack *st, struct toe_sock *s);

/* Sets who owns the socket for SO_REUSEPORT (TOE_SO_REUSEPORT, toe/tcp.h): sockets share a port
 * only with sockets of the same owner, as Linux asks for the same uid. 0 at open; the device
 * sets its client's uid. Takes effect at the next bind. */
void toe_sock_set_owner(struct toe_sock *s, uint32_t owner);

/* Replaces the `user` pointer given at open: later events carry the new one (the device hands a
 * socket shared by several clients over from one holder to another). */
void toe_sock_set_user(struct toe_sock *s, void *user);

#endif
