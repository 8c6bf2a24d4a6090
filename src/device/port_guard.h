/*
 * The port guard keeps the namespace's kernel off the wire port while toed owns it: the kernel
 * must neither receive frames from the port (or it would answer ARP, ICMP and TCP itself, twice
 * with the engine) nor send any (ARP, IPv6 neighbour discovery, MLD, its own traffic).
 *
 * Mechanism (measured on kernel 6.18, see port_guard.c): one nftables table `netdev toed_<if>`
 * with an ingress chain (policy drop) and an egress chain (policy drop) on the device. Packet
 * sockets still receive everything, because their taps run before the netdev ingress hook. The
 * egress hook does see packet-socket transmissions (also with PACKET_QDISC_BYPASS), so the egress
 * chain accepts frames carrying toed's socket mark (SO_MARK) and drops the rest.
 * If the kernel or nft has no egress hook, the guard falls back to turning ARP off on the port
 * and disabling IPv6 on it, the two sources of unsolicited kernel frames on an unused port.
 * Everything is undone on exit; a table left behind by a crashed toed is replaced at start.
 */
#ifndef TOED_PORT_GUARD_H
#define TOED_PORT_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Socket mark of toed's transmissions, "toed" in ASCII. */
#define TOED_FWMARK 0x746f6564u

struct toed_port_guard {
  char ifname[32];
  char table[64];
  bool table_installed;
  bool egress; /* the egress chain is in place */
  /* fallback state, restored on exit */
  bool arp_changed; /* we turned IFF_NOARP on */
  int ipv6_saved;   /* previous disable_ipv6 value, -1 = not changed */
  bool up_changed;  /* we brought the interface up */
};

/*
 * Installs the guard on `ifname`, whose transmissions toed will mark with `fwmark`. Returns 0 or
 * -1 with a message in err. `warn` receives a one-line note when a fallback was used (may be
 * empty).
 */
int toed_port_guard_install(struct toed_port_guard *g, const char *ifname, uint32_t fwmark,
                            char *err, size_t errlen, char *warn, size_t warnlen);

/* Removes the guard and restores what it changed. Safe to call twice. Returns 0 or -1. */
int toed_port_guard_remove(struct toed_port_guard *g);

/* A short description for the start-up log ("nft netdev toed_eth1 ingress+egress drop"). */
/*
 * For `toed --cleanup IFNAME`: removes the guard table a toed that died left on IFNAME. Returns 1
 * if one was removed, 0 if there was none, -1 with a message in err if a live toed owns it (a
 * zombie does not) or nft failed.
 */
int toed_port_guard_cleanup(const char *ifname, char *err, size_t errlen);

void toed_port_guard_describe(const struct toed_port_guard *g, char *buf, size_t len);

#endif
