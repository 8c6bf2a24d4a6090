/*
 * toe-proxyd: the Linux counterpart of macOS's NETransparentProxyProvider
 * (docs/interception.md "toe-proxyd").
 *
 * Outbound TCP and UDP flows of ordinary kernel sockets that the include rules select (and no
 * exclude rule does) are delivered to this process by the kernel: policy routing (ip rule ->
 * a table of `local` routes) routes them to the loopback device, and an nftables TPROXY rule in
 * prerouting hands them to the proxy's IP_TRANSPARENT sockets with the original destination
 * intact. Each TCP flow becomes a device connection to that destination (bytes spliced both
 * ways); each UDP flow (application socket, destination) a connected device UDP socket.
 *
 *   px_rules.c    include/exclude rules: parsing and matching
 *   px_nft.c      the nftables table and the ip rules/routes: text, install, removal
 *   px_owner.c    which program owns the local end of a flow (/proc)
 *   px_tcp.c      TCP flows: accept, connect over the device, splice
 *   px_udp.c      UDP flows: datagrams both ways, replies from the original destination
 *   proxyd_main.c arguments, the event loop, signals, counters
 *
 * Errors inside are negative errno values; messages to people go to stderr prefixed
 * "toe-proxyd:". No global state outside proxyd_main.c's signal handling.
 */
#ifndef TOE_PROXYD_H
#define TOE_PROXYD_H

#include "rules/toe_rules.h"
#include "toe/toe.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* ---- rules (px_rules.c) ------------------------------------------------------------------- */

#define PX_RULES_MAX 64

enum px_proto { PX_TCP = 1, PX_UDP = 2 };

/* A rule is a struct toe_rule (src/rules/toe_rules.h): its kinds are the protocols (PX_TCP |
 * PX_UDP), then the remote network and port range (host order); never negated (exclusion is its
 * own list). */
struct px_rules {
  struct toe_rule inc[PX_RULES_MAX];
  int ninc;
  struct toe_rule exc[PX_RULES_MAX];
  int nexc;
};

/*
 * Parses one rule: `proto ':' addr [ ':' ports ]`, proto tcp|udp|'*', addr '*' | A.B.C.D[/LEN],
 * ports '*' | N | N-M (docs/interception.md). Returns 0 or -EINVAL; `err` says what is wrong.
 */
int px_rule_parse(const char *text, struct toe_rule *r, char *err, size_t errlen);

/* true if the flow (proto, remote address in network order, remote port) is selected: some
 * include rule matches and no exclude rule does. */
bool px_rules_select(const struct px_rules *rs, enum px_proto proto, uint32_t addr_be,
                     uint16_t port);

/* Writes a rule back as text ("tcp:198.18.0.0/15:80"). */
void px_rule_str(const struct toe_rule *r, char *out, size_t len);

/* ---- nftables and policy routing (px_nft.c) ----------------------------------------------- */

struct px_net {
  uint32_t fwmark;      /* marks the proxy's own reply packets */
  uint32_t table;       /* routing table holding the `local` routes */
  uint32_t pref;        /* first ip rule preference; the proxy owns pref .. px_net_pref_last() */
  uint16_t tcp_port;    /* the TCP listener on 127.0.0.1 */
  uint16_t udp_port;    /* the UDP socket on 127.0.0.1 */
  const char *nft_name; /* the nftables table, family inet */
};

/* Prints every command install would run (dry run), one per line, to `out`. */
void px_net_print(const struct px_net *n, const struct px_rules *rs, FILE *out);

/* Removes what this proxy or a dead one installed (tagged: the nft table's owner comment, the ip
 * rules' and the route's protocol), never anyone else's, nor a live proxy's. Returns 1 if
 * something was found and removed, 0 if nothing was there, -errno if nft or ip could not be run. */
int px_net_remove(const struct px_net *n);

/* Before installing: -EEXIST with a hint in err if a live toe-proxyd owns the nft table, or the
 * table, an ip rule in our preference range or a route in our routing table is someone else's;
 * 0 if the way is clear (a dead proxy's leftovers are for px_net_remove). */
int px_net_check(const struct px_net *n, char *err, size_t errlen);

/* The last ip rule preference the proxy uses (its range is pref .. this). */
uint32_t px_net_pref_last(const struct px_net *n);

/* The mark that lets the replies of connections this host did not open bypass the proxy's
 * routing (fwmark + 1; --fwmark must leave it free). */
uint32_t px_net_reply_mark(const struct px_net *n);

/* Installs the rules. Returns 0, or -errno (what failed is said on stderr; partial work is
 * undone). */
int px_net_install(const struct px_net *n, const struct px_rules *rs);

/* ---- owner lookup (px_owner.c) ------------------------------------------------------------ */

/*
 * The kernel socket whose local address is `app` (TCP: connected to `dst`; UDP: bound there,
 * connected to dst or not): its owner's uid and its inode, by one sock_diag lookup (/proc/net/tcp
 * or udp if there is no sock_diag). Returns 0, -ENOENT (no such socket: the application closed
 * it), or -errno.
 */
int px_sock_find(enum px_proto proto, const struct sockaddr_in *app, const struct sockaddr_in *dst,
                 uid_t *uid, unsigned long *inode);

/*
 * The program whose kernel socket has local address `app` and (TCP: peer `dst`; UDP: any peer or
 * `dst`): /proc/net/tcp or /proc/net/udp gives the socket's inode, a scan of /proc/PID/fd finds
 * the process. *hint (0: none) is asked first, and set to the process found by a full scan.
 * Sets *pid and comm (NUL-terminated, up to 15 characters). Returns 0, or -ENOENT (not found:
 * the application may have gone already), -errno.
 */
int px_owner_find(enum px_proto proto, const struct sockaddr_in *app, const struct sockaddr_in *dst,
                  pid_t *hint, pid_t *pid, char comm[16]);

/* ---- counters ------------------------------------------------------------------------------ */

#define PX_COUNTERS(X)                                                                             \
  X(tcp_flows)       /* TCP flows accepted from applications */                                    \
  X(tcp_active)      /* gauge: TCP flows open now */                                               \
  X(tcp_connected)   /* ... whose device connection was established */                             \
  X(tcp_failed)      /* ... whose device connection failed (the application sees a reset) */       \
  X(tcp_resets)      /* flows ended by a reset from either side */                                 \
  X(bytes_to_dev)    /* bytes application -> device (TCP and UDP) */                               \
  X(bytes_from_dev)  /* bytes device -> application */                                             \
  X(udp_flows)       /* UDP flows opened */                                                        \
  X(udp_active)      /* gauge: UDP flows open now */                                               \
  X(udp_dgrams_out)  /* datagrams application -> device */                                         \
  X(udp_dgrams_in)   /* datagrams device -> application */                                         \
  X(udp_idle_closed) /* UDP flows closed after the idle timeout */                                 \
  X(udp_dropped)     /* datagrams dropped (device send space, reply send error) */                 \
  X(owner_unknown)   /* flows whose application could not be found */                              \
  X(flows_refused)   /* flows refused: over --max-flows or --max-flows-per-uid */                  \
  X(accept_backoffs) /* accepts that failed for want of descriptors or memory (then waited) */     \
  X(errors)          /* other errors (accept, socket calls, device calls) */

#define PX_COUNTER_FIELD_(n) uint64_t n;
struct px_counters {
  PX_COUNTERS(PX_COUNTER_FIELD_)
};

void px_counters_print(const struct px_counters *c, FILE *out, const char *when);

/* ---- the proxy ---------------------------------------------------------------------------- */

struct px_tcp_flow;
struct px_udp_flow;

/* ---- flow limits (px_limits.c) ------------------------------------------------------------ */

#define PX_UIDS_MAX 1024 /* distinct uids with flows at once */
#define PX_DEFAULT_MAX_FLOWS 16384u
#define PX_DEFAULT_MAX_FLOWS_PER_UID 1024u
struct px_uid_count {
  uid_t uid;
  uint32_t flows; /* 0: the slot is free */
};
struct px_limits {
  uint32_t max_total, max_per_uid;
  uint32_t total;
  uint32_t logged_total, logged_uid;
  struct px_uid_count uids[PX_UIDS_MAX];
};

/* The device session's geometry (toe_attach_opts) and the default --buffer: see proxyd_main.c. */
#define PX_DEV_BUF_SIZE 65536u
#define PX_DEV_BUF_COUNT 1024u
#define PX_DEFAULT_BUFFER (512u << 10)

/* UDP flows are found by (application address, destination) in a hash table. */
#define PX_UDP_HASH 4096u

struct proxyd {
  toe_dev *dev;
  int epfd;
  int tcp_lfd; /* IP_TRANSPARENT listener */
  int udp_fd;  /* IP_TRANSPARENT, IP_RECVORIGDSTADDR */
  struct px_rules rules;
  struct px_net net;
  struct px_counters ctr;
  int udp_idle_ms;
  size_t bufsize; /* per direction per TCP flow */
  bool verbose;
  struct px_tcp_flow *tcp_head;
  struct px_udp_flow *udp_head;
  struct px_udp_flow *udp_hash[PX_UDP_HASH];
  struct px_limits lim;
  uint64_t tcp_resume_ms; /* != 0: the listener is out of epoll (no descriptors) until then */
  pid_t owner_hint;       /* the owner of the last flow: asked first (px_owner_find) */
};

/*
 * A new flow of the application socket `app` to `dst`: charged to the socket's uid (*uid, or
 * (uid_t)-1 if unknown) if within --max-flows and --max-flows-per-uid (root's flows count only
 * against the total); false (counted, logged a few times) if over a limit.
 */
bool px_flow_admit(struct proxyd *p, enum px_proto proto, const struct sockaddr_in *app,
                   const struct sockaddr_in *dst, uid_t *uid);
/* A flow admitted for `uid` ended. */
void px_flow_release(struct proxyd *p, uid_t uid);

/* epoll tags: the low bits say what, the rest is the object's address (8-byte aligned). */
#define PX_TAG_SIGNAL 1u
#define PX_TAG_TOE 2u
#define PX_TAG_TCP_LISTEN 3u
#define PX_TAG_UDP 4u
#define PX_TAG_TCP_FLOW 5u /* data.ptr: a struct px_tcp_flow (whose first field is the kind) */

/* px_tcp.c */
int px_tcp_open_listener(struct proxyd *p);
void px_tcp_accept(struct proxyd *p);
/* The listener paused for want of descriptors: back in epoll once tcp_resume_ms has come; returns
 * ms until then (-1: not paused). */
int px_tcp_resume(struct proxyd *p, uint64_t now_ms);
void px_tcp_kernel_event(struct proxyd *p, struct px_tcp_flow *f, uint32_t events);
void px_tcp_device_event(struct proxyd *p, struct px_tcp_flow *f, uint32_t events);
void px_tcp_close_all(struct proxyd *p);

/* px_udp.c */
int px_udp_open(struct proxyd *p);
void px_udp_receive(struct proxyd *p);
void px_udp_device_event(struct proxyd *p, struct px_udp_flow *f, uint32_t events);
/* Closes UDP flows idle for longer than udp_idle_ms; returns ms until the next may expire. */
int px_udp_expire(struct proxyd *p, uint64_t now_ms);
void px_udp_close_all(struct proxyd *p);

/* Device-socket event dispatch: every device socket's udata points at one of these. */
enum px_kind { PX_K_TCP = 1, PX_K_UDP = 2 };

uint64_t px_now_ms(void);
void px_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
