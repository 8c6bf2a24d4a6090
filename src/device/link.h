/*
 * The link driver interface of toed: how the daemon moves Ethernet frames between a network port
 * and the engine. A driver is an ops table plus its private state; the event loop only sees the
 * ops, so AF_PACKET (link_afpacket.c), AF_XDP and TAP drivers are interchangeable.
 *
 * Contract:
 *   - open() binds the driver to one interface; afterwards fd() is pollable for input (EPOLLIN
 *     means rx_burst() will find frames).
 *   - rx_burst() hands each received frame, complete from the destination MAC on (no FCS, any
 *     802.1Q tag the kernel took out put back in, L4 checksums that the sender left partial
 *     completed), to the callback. The bytes are borrowed: valid only during the callback.
 *   - tx() copies one frame (a pbuf chain) into the driver's transmit path; it becomes visible on
 *     the wire at the latest at the next flush(). The caller keeps ownership of the chain.
 *   - flush() pushes every queued frame to the device.
 * Drivers count what they do in struct toed_link_stats; every drop is counted by reason.
 */
#ifndef TOED_LINK_H
#define TOED_LINK_H

#include "toe/pbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Capabilities (toed_link_ops.caps). */
#define TOED_LINK_CAP_RX_CSUM_FIX 0x0001u /* completes partial L4 checksums of local senders */
#define TOED_LINK_CAP_TX_BATCH 0x0002u    /* tx() queues, flush() sends the batch */
#define TOED_LINK_CAP_GSO_RX 0x0004u      /* may hand over frames larger than the MTU (GSO) */
#define TOED_LINK_CAP_TX_CSUM 0x0008u     /* completes TOE_PBUF_F_CSUM_PARTIAL checksums in tx() */
/* tx() takes TOE_PBUF_F_GSO_TCPV4 super-segments (TOE_LINK_CAP_TSO) when opened with tso set */
#define TOED_LINK_CAP_TSO 0x0010u

/* Receive callback flags. */
#define TOED_RX_F_L4_CSUM_OK                                                                       \
  0x1u /* the L4 checksum is known good (verified by the kernel or the                             \
          NIC, or just completed by the driver for a local sender) */

/* Driver counters. Printed in the exit summary under "driver". */
#define TOED_LINK_STATS(X)                                                                         \
  X(rx_frames)         /* frames handed to the callback */                                         \
  X(rx_bytes)          /* their bytes */                                                           \
  X(rx_blocks)         /* ring blocks (or batches) processed */                                    \
  X(rx_csum_fixed)     /* partial L4 checksums completed (TP_STATUS_CSUMNOTREADY) */               \
  X(rx_vlan_restored)  /* 802.1Q tags the kernel had stripped, put back */                         \
  X(rx_gso_frames)     /* frames longer than MTU + header (GSO super-frames from a local peer) */  \
  X(rx_drop_truncated) /* frames the ring truncated (snaplen < len) */                             \
  X(rx_drop_kernel)    /* frames the kernel dropped: ring full (PACKET_STATISTICS) */              \
  X(rx_drop_malformed) /* ring descriptors that made no sense */                                   \
  X(tx_frames)         /* frames queued for sending */                                             \
  X(tx_bytes)          /* their bytes */                                                           \
  X(tx_kicks)          /* send() calls that pushed the TX ring */                                  \
  X(tx_drop_ring_full) /* no free TX slot even after a flush */                                    \
  X(tx_drop_too_big)   /* frame larger than a TX slot */                                           \
  X(tx_drop_error)     /* the kernel refused a frame (send error or a discarded ring slot) */      \
  X(tx_gso_frames)     /* TSO super-segments handed to the kernel to cut (PACKET_VNET_HDR) */

#define TOED_LINK_STAT_FIELD_(name) uint64_t name;
struct toed_link_stats {
  TOED_LINK_STATS(TOED_LINK_STAT_FIELD_)
};

/* What the caller asks of the link at open. */
struct toed_link_params {
  const char *ifname;
  int ifindex;
  uint16_t mtu;       /* IP MTU the engine uses (TX slots are sized from it) */
  bool promisc;       /* receive unicast frames for other MACs (our MAC differs from the NIC's) */
  uint32_t fwmark;    /* SO_MARK on transmitted frames, 0 = none (lets the port guard pass them) */
  unsigned rx_tov_ms; /* RX ring block retire timeout, 0 = driver default (unused by afpacket,
                         whose TPACKET_V2 ring hands over each frame at once) */
  bool tso;           /* TOED_LINK_CAP_TSO drivers: set up for super-segments (open fails if the
                         kernel refuses) */
};

/*
 * Per-frame receive callback. `ts_ns` is the kernel's receive time (CLOCK_REALTIME ns), 0 if
 * unknown; `flags` are TOED_RX_F_*.
 */
typedef void (*toed_link_rx_fn)(void *ctx, const uint8_t *frame, size_t len, uint64_t ts_ns,
                                unsigned flags);

struct toed_link;

struct toed_link_ops {
  const char *name;
  uint32_t caps; /* TOED_LINK_CAP_* */
  /* Opens the driver; returns 0 or a negative errno, with a message in err[errlen]. */
  int (*open)(struct toed_link *l, const struct toed_link_params *p, char *err, size_t errlen);
  int (*fd)(const struct toed_link *l);
  /* Delivers up to `budget` frames; returns how many were delivered (0: nothing pending). */
  unsigned (*rx_burst)(struct toed_link *l, toed_link_rx_fn cb, void *ctx, unsigned budget);
  /* Queues one frame; returns 0 or a negative errno (the frame is then counted as dropped). */
  int (*tx)(struct toed_link *l, const struct toe_pbuf *frame);
  /* Sends what tx() queued; returns 0 or a negative errno (a transient failure is counted). */
  int (*flush)(struct toed_link *l);
  void (*close)(struct toed_link *l);
  /* One line describing the configuration (ring sizes, TX mode) for the startup log. */
  void (*describe)(const struct toed_link *l, char *buf, size_t len);
};

/* A link: the ops plus the driver's private state and the shared counters. */
struct toed_link {
  const struct toed_link_ops *ops;
  struct toed_link_stats stats;
  void *priv; /* driver state, allocated by open(), freed by close() */
};

/* The AF_PACKET TPACKET_V2 driver (link_afpacket.c). */
extern const struct toed_link_ops toed_link_afpacket_ops;

/* The AF_XDP driver (link_afxdp.c), built when libxdp and libbpf are (TOED_HAVE_AFXDP). */
extern const struct toed_link_ops toed_link_afxdp_ops;

/* Visits every driver counter with its name (for the summary). */
typedef void (*toed_link_stat_fn)(void *arg, const char *name, uint64_t value);
void toed_link_stats_visit(const struct toed_link_stats *s, toed_link_stat_fn fn, void *arg);

#endif
