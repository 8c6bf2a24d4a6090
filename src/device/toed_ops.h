/*
 * toed's operational options, handled before the command line proper (toed_args.c):
 *
 *   --version          the versions (toekit, transport ABI), exit 0
 *   --config FILE      settings from FILE: "key value" lines with the keys of the flags
 *                      (addr, gateway, mtu, ctl-group, ...); a flag on the command line wins
 *   --log-level LEVEL  error, warning, info (default) or debug: every line of toed's standard
 *                      error gets a UTC timestamp and its level, and lines below LEVEL are left
 *                      out (per-session lines are debug)
 *
 * And readiness for systemd (Type=notify): toed_ops_ready() sends READY=1 to $NOTIFY_SOCKET.
 */
#ifndef TOED_OPS_H
#define TOED_OPS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Takes --version, --config and --log-level out of the command line and replaces *argc and *argv
 * with the config file's settings followed by what is left. Returns -1 to go on, or an exit
 * status (0 after --version, 2 after bad usage or a bad config file, with one line on stderr).
 */
int toed_ops_early(int *argc, char ***argv);

/* Tells the service manager that toed is ready (sd_notify's protocol, READY=1 and a STATUS
 * line), when it runs under one ($NOTIFY_SOCKET set); else does nothing. */
void toed_ops_ready(const char *status);

/* Tells the service manager that toed is stopping (STOPPING=1). */
void toed_ops_stopping(void);

/*
 * Formats the fixed part of STATS DEVICE (abi.h, 1.3) into buf: "key value" lines for version,
 * abi, wire, driver, mac, addr, gateway, mtu, vlan, host_if, pid. Addresses in host order.
 */
void toed_ops_identity(char *buf, size_t len, const char *wire, const char *driver,
                       const uint8_t mac[6], uint32_t addr, unsigned prefix, uint32_t gateway,
                       unsigned mtu, unsigned vlan, const char *host_if);

/* Milliseconds since toed_ops_identity() was called (toed's start-up), on the monotonic clock. */
unsigned long long toed_ops_uptime_ms(void);

#endif
