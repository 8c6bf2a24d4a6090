/*
 * --follow-host: the device's IPv4 address, prefix and default gateway follow the OS's host
 * interface (docs/coexistence.md "Addresses that follow the OS"). An rtnetlink socket listens to
 * the OS's address and route changes (RTM_NEWADDR/RTM_DELADDR, RTM_NEWROUTE/RTM_DELROUTE) on the
 * host interface; toed applies them to the engine with toe_stack_set_addr4().
 */
#ifndef TOED_FOLLOW_HOST_H
#define TOED_FOLLOW_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct toed_follow_host {
  int fd;      /* NETLINK_ROUTE socket, nonblocking; -1 when closed */
  int ifindex; /* the host interface */
  /* What the OS has on it now (host order; addr 0: none) */
  uint32_t addr;
  uint8_t prefix_len;
  uint32_t gateway;
  bool changed; /* addr/prefix_len/gateway changed since the last toed_follow_host_take() */
  uint64_t events;
};

/* Opens the socket and asks for the interface's current addresses and routes. Returns 0, or
 * -errno with a message in err. */
int toed_follow_host_open(struct toed_follow_host *f, int ifindex, char *err, size_t errlen);

/* Reads every pending message (nonblocking). Returns 0 or -errno. */
int toed_follow_host_read(struct toed_follow_host *f);

/* True once (per change) when the OS's address, prefix or gateway changed; copies them. */
bool toed_follow_host_take(struct toed_follow_host *f, uint32_t *addr, uint8_t *prefix_len,
                           uint32_t *gateway);

void toed_follow_host_close(struct toed_follow_host *f);

#endif
