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

#endif
