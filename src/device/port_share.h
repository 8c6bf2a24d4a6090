/*
 * Ports shared between the device and the host OS on one address (docs/coexistence.md):
 *   - the device's ephemeral range is reserved from the OS (net.ipv4.ip_local_reserved_ports in
 *     toed's namespace, set at start and restored at exit), so the OS never picks a port the
 *     engine may hand out;
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

struct toed_port_share {
  uint32_t addr;        /* the shared address, host order */
  char saved[4096];     /* ip_local_reserved_ports before us */
  bool reserved;        /* we changed it */
  uint32_t n;           /* shadow sockets held */
  uint64_t claims;      /* granted */
  uint64_t refused;     /* refused: the OS held the port */
  uint64_t shadow_fail; /* granted without a shadow (out of slots or an unexpected bind error) */
  struct {
    int fd;
    uint16_t port;
    uint8_t proto;
    uint32_t refs; /* engine sockets bound to the port (UDP sockets with SO_REUSEADDR share one) */
  } shadow[TOED_PORT_SHARE_MAX];
};

/*
 * Reserves lo..hi from the OS's ephemeral allocation. Returns 0, or -1 with a message in err (the
 * sysctl cannot be read or written).
 */
int toed_port_share_open(struct toed_port_share *p, uint32_t addr, uint16_t lo, uint16_t hi,
                         char *err, size_t errlen);

/* The engine's port_claim callback (toe/engine.h): `ctx` is the struct toed_port_share. */
int toed_port_share_claim(void *ctx, uint8_t proto, uint16_t port, bool claim);

/* Closes every shadow socket and restores ip_local_reserved_ports. Returns 0 or -1. */
int toed_port_share_close(struct toed_port_share *p);

#endif
