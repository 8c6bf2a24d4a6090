/*
 * toekit transport ABI 1.0: the contract between a host process (libtoe) and the device (toed, or
 * the real device behind a DriverKit dext) for socket operations over shared-memory rings.
 *
 * docs/transport.md is the specification; this header is its exact C form. Both sides compile
 * against it. Rules every definition here follows:
 *   - fixed-width fields, little-endian, naturally aligned, explicit reserved fields (must be 0);
 *   - no pointers anywhere: the shared region is mapped at different addresses on each side, so
 *     everything is named by an offset from the start of the region or by an index;
 *   - integers are little-endian numbers (ports too); IP addresses are byte strings in network
 *     order;
 *   - errors are negative TOE_E* values (toe/errno.h), which are Linux's errno numbers; a macOS
 * host translates them. Sizes and offsets are pinned with static assertions: changing one is an ABI
 * break (major bump).
 */
#ifndef TOE_ABI_H
#define TOE_ABI_H

#include "toe/errno.h"

#include <stddef.h>
#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the toekit transport ABI is little-endian; a big-endian port must byte-swap every field"
#endif

/* ---------------------------------------------------------------------------------------------
 * Version and capabilities (docs/transport.md "Versioning")
 */

#define TOE_ABI_MAJOR 1 /* incompatible layout or semantics change */
#define TOE_ABI_MINOR 7 /* backwards-compatible additions, each gated by a capability bit */
#define TOE_ABI_VERSION_STRING "toekit transport ABI 1.7"

/* Magic numbers: ASCII "TOEH", "TOEW", "TOER" as little-endian uint32. */
#define TOE_ABI_HELLO_MAGIC 0x48454f54u  /* client -> device hello */
#define TOE_ABI_REPLY_MAGIC 0x57454f54u  /* device -> client welcome */
#define TOE_ABI_REGION_MAGIC 0x52454f54u /* first word of the shared region */

/* Capability bits (hello.caps = what the client understands; reply.caps = what is granted). */
#define TOE_ABI_CAP_TCP (1ull << 0)   /* TCP sockets */
#define TOE_ABI_CAP_UDP (1ull << 1)   /* UDP sockets */
#define TOE_ABI_CAP_IPV6 (1ull << 2)  /* AF_INET6 addresses (not granted by 1.0 devices) */
#define TOE_ABI_CAP_STATS (1ull << 3) /* the STATS command */
/* 1.1: STATS FLOWS, the device-wide flow table; granted only to privileged clients (root or the
 * device's own user), since it shows other clients' flows. */
#define TOE_ABI_CAP_FLOWS (1ull << 4)
#define TOE_ABI_CAPS_1_0 (TOE_ABI_CAP_TCP | TOE_ABI_CAP_UDP | TOE_ABI_CAP_STATS)
#define TOE_ABI_CAPS_1_1 (TOE_ABI_CAPS_1_0 | TOE_ABI_CAP_FLOWS)
/* 1.2 (fork sharing, docs/transport.md "Sharing a socket between sessions"): the SHARE and ADOPT
 * ops, so that a socket outlives the process that opened it in another process's session (a
 * listener shared by pre-forked workers). */
#define TOE_ABI_CAP_SHARE (1ull << 5)

/* 1.2, flow origin (docs/transport.md "1.2: flow origin"): the hello's `origin` says how the
 * client's flows reach the device (a program linking libtoe, the preload library, the
 * transparent proxy); a proxy session may tag each socket with the pid and name of the
 * application whose flow it carries (TOE_ABI_SO_OWNER_*); STATS FLOWS reports both. */
#define TOE_ABI_CAP_ORIGIN (1ull << 6)
#define TOE_ABI_ORIGIN_NATIVE 0  /* a program that links libtoe itself */
#define TOE_ABI_ORIGIN_PRELOAD 1 /* libtoe-preload.so inside an unmodified program */
#define TOE_ABI_ORIGIN_PROXY 2   /* toe-proxyd, carrying other programs' kernel-socket flows */
#define TOE_ABI_ORIGIN_MAX TOE_ABI_ORIGIN_PROXY
/* 1.2 (capture): the CAPTURE op and EV_CAPTURE, copies of the frames the device sees on the wire;
 * granted only to privileged clients (root or the device's own user), like FLOWS. */
#define TOE_ABI_CAP_CAPTURE (1ull << 7)
/* 1.2 (hostif): STATS FILTERS, the device's steering filter table (docs/coexistence.md); like
 * FLOWS, granted only to privileged clients. */
#define TOE_ABI_CAP_FILTERS (1ull << 8)
/* Everything 1.2 adds (each bit documented above). */
#define TOE_ABI_CAPS_1_2                                                                           \
  (TOE_ABI_CAPS_1_1 | TOE_ABI_CAP_SHARE | TOE_ABI_CAP_ORIGIN | TOE_ABI_CAP_CAPTURE |               \
   TOE_ABI_CAP_FILTERS)
/* 1.3 (portable hosts, docs/transport.md "1.3: POSIX doorbells"): doorbells that any POSIX system
 * has instead of eventfds: the kick is a pipe, the notify a connected pair of stream sockets, and
 * the reply passes a fourth descriptor, the device's end of that pair, with which the host makes
 * its own event descriptor readable (POSIX has nothing like epoll to merge several). The region
 * descriptor is any mappable file (a memfd, a POSIX shm object). Offered by libtoe's POSIX port
 * (CMake TOE_HOST_PORT=posix); granted to every client. */
#define TOE_ABI_CAP_POSIX_BELLS (1ull << 16)
/* 1.3 (device identity): STATS DEVICE, what the device is (version, port, addresses, MAC, MTU,
 * link driver, uptime) and, for a session also granted FLOWS, its attached clients; granted to
 * every client. */
#define TOE_ABI_CAP_DEVICE (1ull << 9)
#define TOE_ABI_CAPS_1_3 (TOE_ABI_CAPS_1_2 | TOE_ABI_CAP_POSIX_BELLS | TOE_ABI_CAP_DEVICE)
/* 1.4 (capture as tcpdump, docs/transport.md "1.4: BPF capture filters"): CAPTURE may carry a
 * classic BPF program (TOE_ABI_CAPTURE_F_BPF) instead of the 1.2 filter text, and may ask for
 * records that say each frame's direction (TOE_ABI_CAPTURE_F_DIR). Granted with CAPTURE. */
#define TOE_ABI_CAP_CAPTURE_BPF (1ull << 10)
#define TOE_ABI_CAPS_1_4 (TOE_ABI_CAPS_1_3 | TOE_ABI_CAP_CAPTURE_BPF)
/* 1.5 (ancillary data, docs/transport.md "1.5: per-datagram metadata"): a UDP socket may ask
 * (TOE_ABI_SO_RXMETA) for a struct toe_abi_rx_meta with each datagram: the address it was sent
 * to, its TOS and TTL and when it arrived, for IP_PKTINFO, IP_TOS, IP_TTL and SO_TIMESTAMP(NS).
 * The option TOE_ABI_IP_RECVERR passes through too. Granted to every client. */
#define TOE_ABI_CAP_RXMETA (1ull << 11)
#define TOE_ABI_CAPS_1_5 (TOE_ABI_CAPS_1_4 | TOE_ABI_CAP_RXMETA)
/* 1.6 (a leaner transport, docs/transport.md "1.6: large buffers"): the client takes whatever
 * buffer size the layout gives it, so a hello that leaves buf_size (and buf_count) 0 gets the
 * large default geometry (TOE_ABI_DEFAULT_BUF_SIZE_LARGE, halved while the region limit would
 * leave fewer than TOE_ABI_LARGE_MIN_BUFS of them) instead of 1.0's 8 KiB. A client without the
 * bit keeps 1.0's defaults (it may have sized its own copies for 8 KiB). Granted to every client.
 */
#define TOE_ABI_CAP_LARGE_BUFS (1ull << 12)
#define TOE_ABI_CAPS_1_6 (TOE_ABI_CAPS_1_5 | TOE_ABI_CAP_LARGE_BUFS)
/* 1.7 (IPv6): TOE_ABI_CAP_IPV6 granted. OPEN takes TOE_ABI_AF_INET6; every address of such a
 * socket (BIND, CONNECT, SEND, EV_DATA's sender, ACCEPT's peer, ADOPT's local address, STATS) is
 * an AF_INET6 one, an IPv4 peer of a dual-stack socket the v4-mapped ::ffff:a.b.c.d; the option
 * TOE_ABI_IPV6_V6ONLY; the rx_meta record of an IPv6 socket has family AF_INET6. A client that
 * did not offer the capability gets -TOE_EAFNOSUPPORT for AF_INET6, as before. */
#define TOE_ABI_CAPS_1_7 (TOE_ABI_CAPS_1_6 | TOE_ABI_CAP_IPV6)

/* ---------------------------------------------------------------------------------------------
 * Geometry limits and defaults (the device clamps a client's requests to these)
 */

#define TOE_ABI_CACHELINE 128u /* index separation: 64 on x86-64, 128 on Apple silicon */
#define TOE_ABI_PAGE 4096u     /* alignment of ring entry arrays and the buffer area */

#define TOE_ABI_RING_MIN 8u        /* smallest ring (entries, power of two) */
#define TOE_ABI_SQ_MAX 32768u      /* largest SQ */
#define TOE_ABI_CQ_MAX 131072u     /* largest CQ; always >= 2 * sq_entries */
#define TOE_ABI_BUF_SIZE_MIN 2048u /* buffer size: power of two in [MIN, MAX] */
#define TOE_ABI_BUF_SIZE_MAX 65536u
#define TOE_ABI_BUF_COUNT_MIN 16u
#define TOE_ABI_BUF_COUNT_MAX 65536u
#define TOE_ABI_HANDLES_MAX 65535u /* sockets per client: index 0xffff is never valid */
#define TOE_ABI_REGION_MAX (1ull << 30)

#define TOE_ABI_DEFAULT_SQ 1024u
#define TOE_ABI_DEFAULT_CQ 4096u
#define TOE_ABI_DEFAULT_BUF_SIZE 8192u
#define TOE_ABI_DEFAULT_BUF_COUNT 2048u
#define TOE_ABI_DEFAULT_HANDLES 1024u
/* 1.6, TOE_ABI_CAP_LARGE_BUFS granted and buf_size/buf_count 0 in the hello: 512 x 64 KiB (32 MiB
 * of region, touched only as used). Each buffer carries up to 64 KiB of one socket per EV_DATA
 * and a whole UDP datagram, and a SEND of TOE_SEND_RUN_MAX buffers up to 512 KiB. */
#define TOE_ABI_DEFAULT_BUF_SIZE_LARGE 65536u
#define TOE_ABI_DEFAULT_BUF_COUNT_LARGE 512u
#define TOE_ABI_LARGE_MIN_BUFS 256u /* below this many, the large default halves its size */
/* The default receive credit (SO_RXBUFS) in bytes: min(64, buf_count / 4) buffers, but no more
 * than this many bytes' worth of them (and at least 8), so large buffers do not multiply what one
 * socket may hold. */
#define TOE_ABI_RXBUFS_DEFAULT_BYTES (1u << 20)

/* Entry sizes. */
#define TOE_ABI_SQE_SIZE 64u
#define TOE_ABI_CQE_SIZE 64u
#define TOE_ABI_FQE_SIZE 4u /* a fill-ring entry is a uint32_t buffer id */

/* ---------------------------------------------------------------------------------------------
 * Handles (docs/transport.md "Handles")
 *
 * A handle names one socket of one client: bits 0-15 are the index into that client's handle
 * table, bits 16-31 the slot's generation (1..65535, bumped when the slot is freed, never 0). So
 * 0 is never a valid handle, and a handle kept after close is refused (-TOE_EBADF) until the
 * generation wraps (65535 reuses of that very slot).
 */
#define TOE_ABI_HANDLE(index, gen) ((uint32_t)(((uint32_t)(gen) << 16) | ((index)&0xffffu)))
#define TOE_ABI_HANDLE_INDEX(h) ((uint32_t)(h)&0xffffu)
#define TOE_ABI_HANDLE_GEN(h) ((uint32_t)(h) >> 16)
#define TOE_ABI_HANDLE_NONE 0u

/* ---------------------------------------------------------------------------------------------
 * Addresses
 */

#define TOE_ABI_AF_UNSPEC 0
#define TOE_ABI_AF_INET 2
#define TOE_ABI_AF_INET6 10

#define TOE_ABI_PROTO_TCP 6
#define TOE_ABI_PROTO_UDP 17

/* A socket address. IPv4 uses addr[0..3] (network order) and leaves the rest 0. */
struct toe_abi_sockaddr {
  uint16_t family;   /* TOE_ABI_AF_* ; UNSPEC (all zero) = "none" where allowed */
  uint16_t port;     /* port number (a little-endian integer, not network order) */
  uint32_t scope_id; /* IPv6 scope; 0 for IPv4 */
  uint8_t addr[16];  /* address bytes, network order */
};

/* ---------------------------------------------------------------------------------------------
 * Handshake messages (Linux: one SOCK_SEQPACKET message each way on the control socket)
 */

/* Requested geometry: 0 in any field means "the device's default". */
struct toe_abi_hello {
  uint32_t magic;     /* TOE_ABI_HELLO_MAGIC */
  uint16_t abi_major; /* TOE_ABI_MAJOR the client was built for */
  uint16_t abi_minor; /* TOE_ABI_MINOR the client was built for */
  uint32_t size;      /* sizeof(struct toe_abi_hello) */
  uint32_t flags;     /* reserved, 0 */
  uint64_t caps;      /* TOE_ABI_CAP_* the client understands */
  uint32_t pid;       /* informational: the device trusts the kernel's peer credentials */
  /* 1.2: TOE_ABI_ORIGIN_* (0 = native, what a 1.1 client sent in this reserved field) */
  uint32_t origin;
  uint32_t sq_entries; /* power of two wanted, or 0 */
  uint32_t cq_entries;
  uint32_t fq_entries;
  uint32_t buf_count;
  uint32_t buf_size;
  uint32_t max_handles;
  uint64_t reserved1;
  char comm[16];         /* process name, for toectl; need not be NUL-terminated */
  uint8_t reserved2[48]; /* 0 */
};

/* Where everything is in the region. Offsets are from the start of the region. */
struct toe_abi_layout {
  uint64_t region_size;
  uint32_t sq_entries; /* power of two */
  uint32_t cq_entries; /* power of two, >= 2 * sq_entries */
  uint32_t fq_entries; /* power of two, >= buf_count */
  uint32_t buf_count;
  uint32_t buf_size;    /* power of two */
  uint32_t max_handles; /* handle table size (index < max_handles) */
  uint64_t sq_ctl_off;  /* struct toe_abi_ring_ctl of each ring */
  uint64_t sq_off;      /* sq_entries * struct toe_abi_sqe */
  uint64_t cq_ctl_off;
  uint64_t cq_off; /* cq_entries * struct toe_abi_cqe */
  uint64_t fq_ctl_off;
  uint64_t fq_off;  /* fq_entries * uint32_t buffer id */
  uint64_t buf_off; /* buf_count * buf_size bytes */
  uint64_t reserved;
};

struct toe_abi_hello_reply {
  uint32_t magic;     /* TOE_ABI_REPLY_MAGIC */
  uint16_t abi_major; /* the device's major */
  uint16_t abi_minor; /* min(client minor, device minor) */
  uint32_t size;      /* sizeof(struct toe_abi_hello_reply) */
  int32_t status;     /* 0, or -TOE_E* why the session is refused (then no fds follow) */
  uint64_t caps;      /* granted: client caps & device caps */
  uint32_t client_id; /* the device's number for this session (toectl shows it) */
  uint32_t nfds;      /* descriptors passed with the reply: TOE_ABI_NFDS(caps), or 0 */
  struct toe_abi_layout layout;
};

/* SCM_RIGHTS file descriptors of a successful reply, in this order. */
#define TOE_ABI_FD_REGION 0 /* memfd of the region (sealed: it cannot shrink or grow) */
#define TOE_ABI_FD_KICK 1   /* eventfd the host writes to wake the device (SQ, FQ) */
#define TOE_ABI_FD_NOTIFY 2 /* eventfd the device writes to wake the host (CQ) */
#define TOE_ABI_FD_COUNT 3
/* 1.3, TOE_ABI_CAP_POSIX_BELLS granted: KICK is the write end of a pipe, NOTIFY the host's end of
 * a connected pair of stream sockets, and a fourth descriptor follows: */
#define TOE_ABI_FD_NOTIFY_SELF 3 /* the device's end of the notify pair (host's own wake-ups) */
#define TOE_ABI_FD_MAX 4         /* most descriptors a reply passes */
/* The number of descriptors a successful reply passes for the granted capabilities. */
#define TOE_ABI_NFDS(caps) (((caps)&TOE_ABI_CAP_POSIX_BELLS) ? 4u : 3u)

/* ---------------------------------------------------------------------------------------------
 * The shared region
 */

/* One ring's shared indices. Each index is on its own cache line (no false sharing). */
struct toe_abi_ring_ctl {
  uint32_t prod; /* written only by the producer (store-release), free-running */
  uint8_t pad0[TOE_ABI_CACHELINE - 4];
  uint32_t cons; /* written only by the consumer (store-release), free-running */
  uint8_t pad1[TOE_ABI_CACHELINE - 4];
  uint32_t flags; /* TOE_ABI_RING_F_*, written only by the consumer */
  uint8_t pad2[TOE_ABI_CACHELINE - 4];
};

/* The consumer sleeps: the producer must ring the doorbell after publishing (docs: "Doorbells"). */
#define TOE_ABI_RING_F_NEED_WAKEUP 0x1u
/* 1.6: bits 8..31 of flags may count the consumer's sleeps (1, 2, ..., never 0): a producer rings
 * once per count; 0 means "ring on every publish while NEED_WAKEUP is set" (docs/transport.md). */
#define TOE_ABI_RING_SLEEP_SHIFT 8u
#define TOE_ABI_RING_SLEEP_MASK 0xffffffu

/* Device states in the region header. */
#define TOE_ABI_DEV_RUNNING 1
#define TOE_ABI_DEV_STOPPING 2 /* shutting down: an EV_SHUTDOWN was posted */
#define TOE_ABI_DEV_GONE 3     /* the session is over; dev_status says why */

/* At offset 0 of the region. Written by the device before the reply; informational for the host
 * (the layout in the reply is what counts, and the device never reads any of this back). */
struct toe_abi_region_hdr {
  uint32_t magic;     /* TOE_ABI_REGION_MAGIC */
  uint16_t abi_major; /* as in the reply */
  uint16_t abi_minor;
  uint32_t hdr_size; /* sizeof(struct toe_abi_region_hdr) */
  uint32_t client_id;
  uint64_t caps;
  uint64_t reserved0;
  struct toe_abi_layout layout; /* same as the reply's */
  uint32_t dev_state;           /* TOE_ABI_DEV_*, on its own cache line */
  int32_t dev_status;           /* 0, or -TOE_E* why the device ended the session */
  uint8_t reserved1[120];
};

/* ---------------------------------------------------------------------------------------------
 * Submission queue entries (host -> device)
 */

enum toe_abi_op {
  TOE_ABI_OP_NOP = 1,      /* completes with 0; for tests and wakeup latency */
  TOE_ABI_OP_OPEN = 2,     /* new socket; the completion's handle is it */
  TOE_ABI_OP_BIND = 3,     /* local address; completion carries the bound address */
  TOE_ABI_OP_LISTEN = 4,   /* TCP: bound -> listening */
  TOE_ABI_OP_CONNECT = 5,  /* TCP: completes when established or failed; UDP: at once */
  TOE_ABI_OP_ACCEPT = 6,   /* TCP listener: completes when a connection is taken */
  TOE_ABI_OP_SEND = 7,     /* data from the buffer area; completes when the device took it */
  TOE_ABI_OP_SHUTDOWN = 8, /* TCP half-close */
  TOE_ABI_OP_CLOSE = 9,    /* frees the handle; pending ops on it complete first */
  TOE_ABI_OP_SETSOCKOPT = 10,
  TOE_ABI_OP_GETSOCKOPT = 11,
  TOE_ABI_OP_STATS = 12, /* writes statistics into the buffer area */
  /* 1.2, TOE_ABI_CAP_SHARE: */
  TOE_ABI_OP_SHARE = 13,   /* a one-time token for `handle` (a listener, a connection, UDP) */
  TOE_ABI_OP_ADOPT = 14,   /* a handle in this session to the socket a token names */
  TOE_ABI_OP_CAPTURE = 15, /* 1.2, CAP_CAPTURE: start or stop streaming frames (EV_CAPTURE) */
  TOE_ABI_OP__COUNT
};

/* SEND flags */
#define TOE_ABI_SEND_F_MORE 0x1u /* more data follows at once (like MSG_MORE) */
#define TOE_ABI_SEND_F_DONTWAIT                                                                    \
  0x2u /* complete now with what fits (or -EAGAIN); EV_WRITABLE later */
#define TOE_ABI_SEND_F_ALL (TOE_ABI_SEND_F_MORE | TOE_ABI_SEND_F_DONTWAIT)

/* CLOSE flags */
#define TOE_ABI_CLOSE_F_ABORT                                                                      \
  0x1u /* reset (RST) instead of a graceful close; cancels pending sends */
#define TOE_ABI_CLOSE_F_ALL TOE_ABI_CLOSE_F_ABORT

/* SHUTDOWN how */
#define TOE_ABI_SHUT_RD 0
#define TOE_ABI_SHUT_WR 1
#define TOE_ABI_SHUT_RDWR 2

/* STATS kinds */
#define TOE_ABI_STATS_CLIENT 1 /* struct toe_abi_client_stats of this session */
#define TOE_ABI_STATS_SOCKET 2 /* struct toe_abi_sock_stats of `handle` */
#define TOE_ABI_STATS_ENGINE 3 /* the engine's counters as text, "layer.name value\n" lines */
#define TOE_ABI_STATS_FLOWS 4  /* 1.1, TOE_ABI_CAP_FLOWS: every flow of the device (handle 0) */
/* 1.2, TOE_ABI_CAP_FILTERS (handle 0): the filter table as text, one filter a line,
 * "PROTO KIND LADDR LPORT RADDR RPORT REFS FRAMES BYTES\n" (proto tcp|udp, kind local|conn|
 * timewait, addresses dotted quads, RADDR RPORT 0.0.0.0 0 for local filters; an IPv6 exact
 * filter has both addresses as IPv6 text, RFC 5952); empty without a host interface. */
#define TOE_ABI_STATS_FILTERS 6
/* 1.3, TOE_ABI_CAP_DEVICE (handle 0): the device's identity as text, "key value\n" lines (the
 * value is the rest of the line; keys in docs/transport.md "1.3: device identity"), then, for a
 * session granted TOE_ABI_CAP_FLOWS, one line per attached client:
 * "client ID PID UID ORIGIN SOCKETS CONNECTED_MS COMM\n". */
#define TOE_ABI_STATS_DEVICE 7

/* ---- 1.2 capture (TOE_ABI_CAP_CAPTURE; docs/transport.md "Packet capture") ----------------
 * CAPTURE (handle 0) without STOP starts a capture for this session: u.capture names the filter
 * expression (text, not NUL-terminated, at most TOE_ABI_CAPTURE_FILTER_MAX bytes; len 0: every
 * frame) and the snap length; it completes at once with 0 (running), -TOE_EINVAL (bad filter),
 * -TOE_EBUSY (this session captures already, or the device runs as many captures as it allows).
 * From then on the device fills buffers taken from the fill ring with classic pcap records (16-byte
 * record header, little-endian, nanosecond stamps, then the frame's first incl_len bytes) and lends
 * each with an EV_CAPTURE. When the host is slow (no fill buffer, no CQ room) frames are dropped
 * and counted, never the device's traffic held. CAPTURE with TOE_ABI_CAPTURE_F_STOP (every other
 * field 0) ends it: the last records are posted, then the completion (0, or -TOE_ENOENT if no
 * capture runs) with the totals in u.capture.
 */
#define TOE_ABI_CAPTURE_F_STOP 0x1u
/* 1.4, TOE_ABI_CAP_CAPTURE_BPF: [buf_off, buf_off + len) is a classic BPF program, len / 8
 * struct toe_abi_bpf_insn (1..TOE_ABI_CAPTURE_BPF_MAX), instead of filter text. The device checks
 * it (forward in-range jumps, known opcodes, no constant division by zero, a RET last: -TOE_EINVAL
 * otherwise) and keeps min(its answer, snaplen) bytes of each frame; an answer of 0 drops it. */
#define TOE_ABI_CAPTURE_F_BPF 0x2u
/* 1.4, TOE_ABI_CAP_CAPTURE_BPF: every record carries a 4-byte flags word after the 16-byte pcap
 * record header (TOE_ABI_CAPTURE_REC_HDR_DIR bytes in all): the direction in bits 0-1, as
 * pcapng's epb_flags (TOE_ABI_CAPTURE_DIR_*). */
#define TOE_ABI_CAPTURE_F_DIR 0x4u
#define TOE_ABI_CAPTURE_F_ALL                                                                      \
  (TOE_ABI_CAPTURE_F_STOP | TOE_ABI_CAPTURE_F_BPF | TOE_ABI_CAPTURE_F_DIR)
#define TOE_ABI_CAPTURE_FILTER_MAX 256u
#define TOE_ABI_CAPTURE_REC_HDR 16u     /* bytes of a pcap record header */
#define TOE_ABI_CAPTURE_REC_HDR_DIR 20u /* ... followed by the flags word (F_DIR) */
#define TOE_ABI_CAPTURE_DIR_IN 1u       /* received from the wire */
#define TOE_ABI_CAPTURE_DIR_OUT 2u      /* sent to the wire (by the engine or the host OS) */
#define TOE_ABI_CAPTURE_BPF_MAX 4096u   /* instructions (Linux's BPF_MAXINSNS) */

/* 1.4: one classic BPF instruction, the layout of struct bpf_insn / struct sock_filter. */
struct toe_abi_bpf_insn {
  uint16_t code;
  uint8_t jt;
  uint8_t jf;
  uint32_t k;
};

/*
 * Socket options. 1..12 are the engine's enum toe_sockopt values (toe/tcp.h), passed through;
 * 0x100 and up belong to the transport.
 */
#define TOE_ABI_SO_RCVBUF 1
#define TOE_ABI_SO_SNDBUF 2
#define TOE_ABI_SO_KEEPALIVE 3
#define TOE_ABI_SO_REUSEADDR 4
#define TOE_ABI_TCP_NODELAY 5
#define TOE_ABI_TCP_KEEPIDLE 6
#define TOE_ABI_TCP_KEEPINTVL 7
#define TOE_ABI_TCP_KEEPCNT 8
#define TOE_ABI_TCP_CONGESTION 9
#define TOE_ABI_SO_LINGER_ABORT 10
#define TOE_ABI_TCP_MAXSEG 11
/* 0/1, TCP and UDP, before bind: share the port with the sockets of the same uid that set it
 * (SO_REUSEPORT). A device from before it answers -TOE_ENOPROTOOPT. */
#define TOE_ABI_SO_REUSEPORT 12
/* 1.5: 0/1, UDP only: also report errors Linux reports only to a socket with IP_RECVERR (ICMP
 * errors on an unconnected socket, a failed neighbour resolution) as the pending error
 * (EV_ERROR, SO_ERROR). An older device answers -TOE_ENOPROTOOPT. */
#define TOE_ABI_IP_RECVERR 13
/* 1.7, TOE_ABI_CAP_IPV6: 0/1, AF_INET6 sockets only, before bind (Linux's IPV6_V6ONLY: the socket
 * takes no IPv4 traffic). 0 at OPEN (a dual-stack socket, Linux's default). -TOE_EINVAL on a
 * bound socket or for other values, -TOE_ENOPROTOOPT on an AF_INET socket. */
#define TOE_ABI_IPV6_V6ONLY 14
#define TOE_ABI_SO_ERROR 0x100 /* get only: pending socket error (and clear it), 0 or -TOE_E* */
#define TOE_ABI_SO_RXBUFS                                                                          \
  0x101 /* buffers the device may lend this socket at once (1..buf_count)                          \
         */
#define TOE_ABI_SO_NREAD                                                                           \
  0x102 /* get only: bytes the device holds for this socket, not yet lent                          \
         */
/* 1.5, TOE_ABI_CAP_RXMETA: 0/1, UDP only: the first EV_DATA of each datagram received from now
 * on carries TOE_ABI_CQE_F_META and a struct toe_abi_rx_meta in its buffer just before the data
 * (docs/transport.md "1.5: per-datagram metadata"). -TOE_EINVAL for other values,
 * -TOE_ENOPROTOOPT on TCP or without the capability. */
#define TOE_ABI_SO_RXMETA 0x103
/* 1.2, TOE_ABI_CAP_ORIGIN: the owner tag of a socket carried for another program (0x300..0x3ff).
 * Set only by a session whose hello said TOE_ABI_ORIGIN_PROXY (others get -EPERM); STATS FLOWS
 * then shows the tag instead of the session's own pid and name. */
#define TOE_ABI_SO_OWNER_PID 0x300     /* the application's pid (0..INT32_MAX; 0: unknown) */
#define TOE_ABI_SO_OWNER_COMM_LO 0x301 /* bytes 0..7 of its name, little-endian in the value */
#define TOE_ABI_SO_OWNER_COMM_HI 0x302 /* bytes 8..15 */

struct toe_abi_sqe {
  uint8_t opcode;     /* enum toe_abi_op */
  uint8_t flags;      /* reserved in 1.0: 0 */
  uint16_t reserved0; /* 0 */
  uint32_t handle;    /* socket the op acts on; 0 for NOP, OPEN, STATS(CLIENT/ENGINE) */
  uint64_t user_data; /* echoed in the completion */
  union {
    uint8_t raw[48];
    struct {
      uint16_t family; /* TOE_ABI_AF_INET (AF_INET6 with TOE_ABI_CAP_IPV6) */
      uint8_t proto;   /* TOE_ABI_PROTO_TCP / _UDP */
      uint8_t reserved0;
      uint32_t reserved1;
      uint64_t sock_data; /* echoed as user_data in every event of the new socket */
      uint8_t reserved2[32];
    } open;
    struct { /* BIND and CONNECT */
      struct toe_abi_sockaddr addr;
      uint8_t reserved[24];
    } addr;
    struct {
      uint32_t backlog;
      uint8_t reserved[44];
    } listen;
    struct {
      uint64_t sock_data; /* for the accepted socket's events */
      uint8_t reserved[40];
    } accept;
    struct {
      uint64_t buf_off; /* region offset of the data; [buf_off, buf_off + len) in the buffer area */
      uint32_t len;
      uint32_t send_flags;         /* TOE_ABI_SEND_F_* */
      struct toe_abi_sockaddr dst; /* UDP: destination, or UNSPEC on a connected socket */
      uint8_t reserved[8];
    } send;
    struct {
      uint32_t how; /* TOE_ABI_SHUT_* */
      uint8_t reserved[44];
    } shutdown;
    struct {
      uint32_t close_flags; /* TOE_ABI_CLOSE_F_* */
      uint8_t reserved[44];
    } close;
    struct { /* SETSOCKOPT and GETSOCKOPT (value ignored, must be 0, for GET) */
      uint32_t opt;
      uint32_t reserved0;
      int64_t value;
      uint8_t reserved[32];
    } sockopt;
    struct {
      uint32_t kind; /* TOE_ABI_STATS_* */
      uint32_t len;  /* bytes available at buf_off */
      uint64_t buf_off;
      uint8_t reserved[32];
    } stats;
    /* 1.2: SHARE has no arguments (every byte of u is reserved). */
    struct {
      uint64_t token;       /* from a SHARE completion (same uid, or a root sharer) */
      uint64_t sock_data;   /* echoed as user_data in every event of the adopted handle (0 with
                               a TOE_ABI_ADOPT_F_* flag) */
      uint32_t adopt_flags; /* 0: adopt; TOE_ABI_ADOPT_F_BIND or _F_DROP: act on the token */
      uint32_t pid;         /* F_BIND: the process that holds the token (0: this client's) */
      uint8_t reserved[24];
    } adopt;
    struct {                  /* 1.2 CAPTURE */
      uint64_t buf_off;       /* filter expression: [buf_off, buf_off + len) in the buffer area */
      uint32_t len;           /* 0: every frame; at most TOE_ABI_CAPTURE_FILTER_MAX (F_BPF:
                                 8 * instructions, 8 .. 8 * TOE_ABI_CAPTURE_BPF_MAX) */
      uint32_t snaplen;       /* bytes kept of a frame; 0: as many as a buffer holds */
      uint32_t capture_flags; /* TOE_ABI_CAPTURE_F_* */
      uint8_t reserved[28];
    } capture;
  } u;
};

/* ADOPT completion: what the adopted socket is (u.adopt.state). */
#define TOE_ABI_ADOPT_LISTENING 1     /* a TCP listener */
#define TOE_ABI_ADOPT_BOUND 2         /* a UDP socket without a default peer */
#define TOE_ABI_ADOPT_CONNECTED 3     /* a UDP socket with a default peer */
#define TOE_ABI_ADOPT_TCP_CONNECTED 4 /* a TCP connection (u.adopt.peer_* name its peer) */

/*
 * ADOPT flags (connections inherited across fork and exec, docs/transport.md "Sharing a socket
 * between sessions"). With a flag the ADOPT makes no handle (sock_data 0, res 0 or an error):
 *   F_BIND: the token is held by process `pid` (the client's own, or a child of it): it no
 *           longer expires after a few seconds but when that process ends (an exec keeps it);
 *   F_DROP: the token is given up now (a process closed what it inherited without using it).
 * Both only for a token the client could adopt (-TOE_ENOENT otherwise).
 */
#define TOE_ABI_ADOPT_F_BIND 0x1u
#define TOE_ABI_ADOPT_F_DROP 0x2u

/* ---------------------------------------------------------------------------------------------
 * Completion queue entries (device -> host)
 */

/* cqe.type: a completion of one SQE, or an unsolicited socket event. */
enum toe_abi_cqe_type {
  TOE_ABI_CQE_OP = 1,         /* completion: opcode says which; res is the result */
  TOE_ABI_EV_DATA = 2,        /* received data lent in u.data; res = bytes */
  TOE_ABI_EV_WRITABLE = 3,    /* send space after a DONTWAIT send fell short */
  TOE_ABI_EV_PEER_CLOSED = 4, /* the peer's FIN: every byte before it was delivered (EOF) */
  TOE_ABI_EV_RESET = 5,       /* connection reset; res = -TOE_ECONNRESET */
  TOE_ABI_EV_ERROR = 6,       /* res = -TOE_E*; F_FATAL if the connection is dead */
  TOE_ABI_EV_SHUTDOWN = 7,    /* the device is stopping (handle 0); close everything */
  TOE_ABI_EV_CAPTURE = 8,     /* 1.2: captured frames lent in u.capture; res = bytes */
  TOE_ABI_CQE__COUNT
};

/* cqe.flags */
#define TOE_ABI_CQE_F_MORE 0x1u       /* EV_DATA: the datagram continues in the next EV_DATA */
#define TOE_ABI_CQE_F_FATAL 0x2u      /* EV_ERROR: the connection is gone (only CLOSE remains) */
#define TOE_ABI_CQE_F_VALIDATION 0x4u /* an error completion from descriptor validation */
/* 1.5, EV_DATA on a socket with TOE_ABI_SO_RXMETA: the first piece of a datagram; a struct
 * toe_abi_rx_meta lies at [offset - TOE_ABI_RX_META_SIZE, offset) of the lent buffer (so offset
 * is at least TOE_ABI_RX_META_SIZE). */
#define TOE_ABI_CQE_F_META 0x8u

/* 1.5: what the device saw of one received datagram (TOE_ABI_CQE_F_META). A later minor may
 * grow it at its end: `size` says how many bytes this device wrote (>= 32), and they all lie
 * before the data; a host reads the fields it knows. */
#define TOE_ABI_RX_META_SIZE 32u
#define TOE_ABI_RX_META_F_DST 0x1u  /* dst holds the destination address */
#define TOE_ABI_RX_META_F_TOS 0x2u  /* tos is the IP header's TOS byte (DSCP and ECN) */
#define TOE_ABI_RX_META_F_TTL 0x4u  /* ttl is the IP header's TTL */
#define TOE_ABI_RX_META_F_TIME 0x8u /* time_ns is the arrival time */
struct toe_abi_rx_meta {
  uint16_t size;    /* bytes of this record (TOE_ABI_RX_META_SIZE in 1.5) */
  uint16_t family;  /* TOE_ABI_AF_INET (the address family of dst) */
  uint8_t tos;      /* IPv4 TOS byte as received */
  uint8_t ttl;      /* IPv4 TTL as received */
  uint16_t flags;   /* TOE_ABI_RX_META_F_*: which fields are set */
  uint64_t time_ns; /* arrival, nanoseconds since the Unix epoch (the host's CLOCK_REALTIME) */
  uint8_t dst[16];  /* the datagram's destination address, network order (IPv4: 4 bytes) */
};

struct toe_abi_cqe {
  uint64_t user_data; /* the SQE's user_data (completions) or the socket's sock_data (events) */
  int32_t res;        /* >= 0 result, < 0 -TOE_E* */
  uint32_t handle;    /* the socket concerned (OPEN: the new one), or 0 */
  uint8_t type;       /* enum toe_abi_cqe_type */
  uint8_t opcode;     /* TOE_ABI_CQE_OP: the SQE's opcode; else 0 */
  uint16_t flags;     /* TOE_ABI_CQE_F_* */
  uint32_t reserved0;
  union {
    uint8_t raw[40];
    struct {           /* EV_DATA */
      uint32_t buf_id; /* lent buffer (owned by the host until returned on the fill ring) */
      uint32_t offset; /* data starts here inside the buffer */
      uint32_t len;    /* = res */
      uint32_t reserved;
      struct toe_abi_sockaddr from; /* UDP: the sender (first piece of a datagram) */
    } data;
    struct {           /* completion of ACCEPT */
      uint32_t handle; /* the new connection */
      uint32_t reserved;
      struct toe_abi_sockaddr peer;
      uint64_t reserved1;
    } accept;
    struct { /* completion of BIND and CONNECT: the local address now (port chosen) */
      struct toe_abi_sockaddr local;
      uint8_t reserved[16];
    } addr;
    struct { /* completion of GETSOCKOPT */
      int64_t value;
      uint8_t reserved[32];
    } sockopt;
    struct {          /* 1.2: completion of SHARE */
      uint64_t token; /* random, non-zero, adoptable once, for a few seconds (transport.md) */
      uint8_t reserved[32];
    } share;
    struct { /* 1.2: completion of ADOPT (cqe.handle is the new handle) */
      struct toe_abi_sockaddr local;
      uint8_t proto;        /* TOE_ABI_PROTO_* */
      uint8_t state;        /* TOE_ABI_ADOPT_* */
      uint16_t peer_port;   /* ADOPT_TCP_CONNECTED: the peer's port (IPv4) */
      uint8_t peer_addr[4]; /* and address, network order */
      uint8_t reserved[8];
    } adopt;
    struct {            /* 1.2: EV_CAPTURE, and the completion of CAPTURE STOP (buf_id 0) */
      uint32_t buf_id;  /* lent buffer of pcap records (the host returns it on the fill ring) */
      uint32_t offset;  /* records start here inside the buffer (0) */
      uint32_t len;     /* bytes of records (= res) */
      uint32_t records; /* records in this buffer */
      uint64_t frames;  /* frames delivered by this capture so far (this buffer's included) */
      uint64_t dropped; /* frames that matched but were dropped: no buffer or CQ room */
      uint64_t reserved;
    } capture;
  } u;
};

/* ---------------------------------------------------------------------------------------------
 * Statistics (the STATS command). Counters only grow; the struct grows at its end only, and the
 * completion's res says how many bytes the device has (a host reads the fields it knows).
 */

#define TOE_ABI_CLIENT_STATS(X)                                                                    \
  X(sqes)            /* submission entries taken */                                                \
  X(completions)     /* completions posted */                                                      \
  X(events)          /* events posted */                                                           \
  X(err_validation)  /* SQEs refused by validation (each is a strike) */                           \
  X(err_op)          /* ops that failed in the engine (not the client's fault) */                  \
  X(fill_taken)      /* buffers returned on the fill ring */                                       \
  X(fill_bad)        /* fill entries refused: bad id, or a buffer the device holds */              \
  X(bufs_lent)       /* buffers lent with EV_DATA */                                               \
  X(rx_bytes)        /* bytes delivered to the host */                                             \
  X(tx_bytes)        /* bytes taken from SEND */                                                   \
  X(strikes)         /* validation and fill errors counted against the client */                   \
  X(kicks)           /* device wakeups by the host's doorbell */                                   \
  X(notifies)        /* host wakeups by the device's doorbell */                                   \
  X(cq_full_waits)   /* times an event waited because the CQ had no free slot */                   \
  X(rx_stall_nobuf)  /* times delivery stopped: no fill buffer */                                  \
  X(rx_stall_credit) /* times delivery stopped: the socket's RXBUFS lent */

#define TOE_ABI_STAT_FIELD_(name) uint64_t name;
struct toe_abi_client_stats {
  TOE_ABI_CLIENT_STATS(TOE_ABI_STAT_FIELD_)
};

struct toe_abi_sock_stats {
  uint8_t proto;     /* TOE_ABI_PROTO_* */
  uint8_t tcp_state; /* enum toe_tcp_state (toe/tcp.h); 0 for UDP */
  uint16_t reserved0;
  uint32_t rx_lent; /* buffers lent to the host now */
  struct toe_abi_sockaddr local;
  struct toe_abi_sockaddr remote;
  uint64_t rx_bytes;  /* bytes delivered to the host */
  uint64_t tx_bytes;  /* bytes taken from SEND */
  uint32_t rx_queued; /* bytes held by the device, not yet lent */
  uint32_t tx_queued; /* bytes in the send buffer */
  uint32_t rtt_us;    /* TCP smoothed RTT */
  uint32_t snd_cwnd;  /* TCP congestion window, bytes */
  uint32_t snd_mss;
  uint32_t rcv_wnd;
  uint64_t retrans_segs;
};

/*
 * STATS FLOWS (1.1, TOE_ABI_CAP_FLOWS): the device's flow table, for toectl. The answer is a
 * struct toe_abi_flows_hdr followed by `count` records of `record_size` bytes (a later minor may
 * append fields to the record: a host steps by record_size and reads the fields it knows).
 * The completion's res is the size of the full answer; a host with too small a range sees `count`
 * and asks again with a larger one. Every TCP connection of the engine is listed (those of host
 * clients, the device's own services, connections closed by their owner and still finishing, and
 * TIME_WAIT), plus the UDP sockets of host clients.
 */
struct toe_abi_flows_hdr {
  uint32_t record_size; /* sizeof(struct toe_abi_flow) of this device */
  uint32_t count;       /* records in the full answer */
  uint64_t reserved;
};

struct toe_abi_flow {
  uint8_t proto;     /* TOE_ABI_PROTO_* */
  uint8_t tcp_state; /* enum toe_tcp_state (toe/tcp.h); 0 for UDP */
  uint8_t origin;    /* 1.2: the owning session's TOE_ABI_ORIGIN_* (0 for the device's own) */
  uint8_t reserved0;
  uint32_t client_id; /* owning session (hello reply's client_id); 0: the device's own */
  uint32_t pid; /* the owner's pid and uid from the kernel's peer credentials; 0 if none (1.2: the
                  socket's owner tag, when a proxy session set one) */
  uint32_t uid;
  struct toe_abi_sockaddr local;
  struct toe_abi_sockaddr remote; /* zero for listeners and unconnected UDP sockets */
  uint32_t rx_queued;             /* bytes held by the device for the owner, not yet delivered */
  uint32_t tx_queued;             /* bytes in the send buffer */
  uint32_t snd_cwnd;              /* TCP congestion window, bytes */
  uint32_t rtt_us;                /* TCP smoothed RTT */
  uint32_t rcv_wnd;
  uint32_t snd_mss;
  uint64_t retrans_segs; /* TCP segments retransmitted */
  uint64_t rx_bytes;     /* bytes delivered to the owning host (0 for the device's own flows) */
  uint64_t tx_bytes;     /* bytes taken from the owning host's SENDs */
  char comm[16];         /* the owner's process name (from its hello, or the owner tag), NUL-padded,
                            printable */
};

/* ---------------------------------------------------------------------------------------------
 * Pinned sizes and offsets
 */

#ifdef __cplusplus /* the DriverKit side is C++ */
#define TOE_ABI_ASSERT_(cond, msg) static_assert(cond, msg)
#else
#define TOE_ABI_ASSERT_(cond, msg) _Static_assert(cond, msg)
#endif
TOE_ABI_ASSERT_(sizeof(struct toe_abi_bpf_insn) == 8, "bpf_insn");
TOE_ABI_ASSERT_(sizeof(struct toe_abi_sockaddr) == 24, "sockaddr");
TOE_ABI_ASSERT_(sizeof(struct toe_abi_hello) == 128, "hello");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_hello, comm) == 64, "hello.comm");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_hello, origin) == 28, "hello.origin");
TOE_ABI_ASSERT_(sizeof(struct toe_abi_layout) == 96, "layout");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_layout, buf_off) == 80, "layout.buf_off");
TOE_ABI_ASSERT_(sizeof(struct toe_abi_hello_reply) == 128, "reply");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_hello_reply, layout) == 32, "reply.layout");
TOE_ABI_ASSERT_(sizeof(struct toe_abi_ring_ctl) == 3 * TOE_ABI_CACHELINE, "ring_ctl");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_ring_ctl, cons) == TOE_ABI_CACHELINE, "ring_ctl.cons");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_ring_ctl, flags) == 2 * TOE_ABI_CACHELINE, "ring_ctl.fl");
TOE_ABI_ASSERT_(sizeof(struct toe_abi_region_hdr) == 256, "region_hdr");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_region_hdr, layout) == 32, "region_hdr.layout");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_region_hdr, dev_state) == TOE_ABI_CACHELINE, "dev_state");
TOE_ABI_ASSERT_(sizeof(struct toe_abi_sqe) == TOE_ABI_SQE_SIZE, "sqe");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_sqe, user_data) == 8, "sqe.user_data");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_sqe, u) == 16, "sqe.u");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_sqe, u.send.dst) == 32, "sqe.send.dst");
TOE_ABI_ASSERT_(sizeof(struct toe_abi_cqe) == TOE_ABI_CQE_SIZE, "cqe");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_cqe, type) == 16, "cqe.type");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_cqe, u) == 24, "cqe.u");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_cqe, u.data.from) == 40, "cqe.data.from");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_sqe, u.adopt.sock_data) == 24, "sqe.adopt.sock_data");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_cqe, u.adopt.proto) == 48, "cqe.adopt.proto");
TOE_ABI_ASSERT_(sizeof(struct toe_abi_sock_stats) == 104, "sock_stats");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_sqe, u.capture.capture_flags) == 32, "sqe.capture");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_cqe, u.capture.dropped) == 48, "cqe.capture.dropped");
TOE_ABI_ASSERT_(sizeof(struct toe_abi_flows_hdr) == 16, "flows_hdr");
TOE_ABI_ASSERT_(sizeof(struct toe_abi_rx_meta) == TOE_ABI_RX_META_SIZE, "rx_meta");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_rx_meta, dst) == 16, "rx_meta.dst");
TOE_ABI_ASSERT_(sizeof(struct toe_abi_flow) == 128, "flow");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_flow, local) == 16, "flow.local");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_flow, origin) == 2, "flow.origin");
TOE_ABI_ASSERT_(offsetof(struct toe_abi_flow, comm) == 112, "flow.comm");

#endif
