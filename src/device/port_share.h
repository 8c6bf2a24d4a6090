/*
 * Ports shared between the device and the host OS on one address (docs/coexistence.md):
 *   - the device's ephemeral range is reserved from the OS (net.ipv4.ip_local_reserved_ports in
 *     toed's namespace), so the OS never picks a port the engine may hand out. The range is
 *     shared by every toed of the namespace: a registry (TOED_STATE_DIR/ports-NETNS-LO-HI, under
 *     flock) lists the toeds relying on it and whether toekit added it; the last toed to go (or
 *     `toed --cleanup` after a crash) removes exactly that range, and only if toekit added it,
 *     leaving whatever else the list holds. A range that was there before any toed (an
 *     administrator's) is never removed;
 *   - every explicit bind or listen of the engine is claimed: toed binds a shadow kernel socket of
 *     the same protocol on the shared address and port, which makes the OS's own bind of the port
 *     fail with EADDRINUSE; if that bind fails because the OS holds the port, the engine's bind
 *     fails with EADDRINUSE instead.
 */
#ifndef TOED_PORT_SHARE_H
#define TOED_PORT_SHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOED_PORT_SHARE_MAX 4096 /* shadow sockets at once (explicit binds, not connections) */
#define TOED_PORT_SHARE_MAX6 4   /* shared IPv6 addresses (toed --addr6 with --host-if) */

struct toed_port_share {
  uint32_t addr;        /* the shared address, host order */
  uint16_t lo, hi;      /* the reserved range */
  bool reserved;        /* we hold a share of the range (registered) */
  uint32_t n;           /* shadow sockets held */
  uint64_t claims;      /* granted */
  uint64_t refused;     /* refused: the OS held the port */
  uint64_t shadow_fail; /* granted without a shadow (out of slots or an unexpected bind error) */
  struct {
    int fd;
    uint16_t port;
    uint8_t proto;
    uint32_t refs; /* engine sockets bound to the port (UDP sockets with SO_REUSEADDR share one) */
    int fd6[TOED_PORT_SHARE_MAX6]; /* the same on each shared IPv6 address (-1: none) */
  } shadow[TOED_PORT_SHARE_MAX];
  /* The shared IPv6 addresses (toed_port_share_set_addr6): the engine's filters own a port in
   * both families, so a claim binds a shadow on each of them too (IPV6_V6ONLY, IPV6_FREEBIND). */
  uint32_t n_addr6;
  uint8_t addr6[TOED_PORT_SHARE_MAX6][16];
};

/*
 * Reserves lo..hi from the OS's ephemeral allocation. Returns 0, or -1 with a message in err (the
 * sysctl cannot be read or written).
 */
int toed_port_share_open(struct toed_port_share *p, uint32_t addr, uint16_t lo, uint16_t hi,
                         char *err, size_t errlen);

/* Claims from now on also bind shadows on these IPv6 addresses (at most TOED_PORT_SHARE_MAX6;
 * network order); a port the OS holds on any of them is refused like one it holds on IPv4. */
void toed_port_share_set_addr6(struct toed_port_share *p, const uint8_t (*addr6)[16], unsigned n);

/* The engine's port_claim callback (toe/engine.h): `ctx` is the struct toed_port_share. */
int toed_port_share_claim(void *ctx, uint8_t proto, uint16_t port, bool claim);

/* Closes every shadow socket and restores ip_local_reserved_ports. Returns 0 or -1. */
/* Releases the shadow sockets and this instance's share of the range (removing the range if it
 * was the last holder and toekit added it). Returns 0, or -1 if the sysctl could not be written. */
int toed_port_share_close(struct toed_port_share *p);

/*
 * For `toed --cleanup`: drops the dead holders of every registered range of this namespace and
 * removes the ranges left without a live one (if toekit added them). Writes what it did to
 * `report` (a line per range, may be empty). Returns the number of ranges removed, or -1.
 */
int toed_port_share_cleanup(char *report, size_t len);

#endif
