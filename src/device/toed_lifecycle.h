/*
 * toed's life outside the data path (docs/operations.md "Signals and cleanup"):
 *
 *   - checks before anything is touched: privileges, --ctl-group, the --ctl directory (each a
 *     one-line message and exit status 2);
 *   - the signals toed takes: every terminating signal that can be handled stops it cleanly
 *     (SIGUSR1 dumps the counters instead); a crash (SIGKILL, a fault) leaves state behind that
 *     `toed --cleanup IFNAME` undoes;
 *   - the state file /run/toekit/state/NETNS-IFNAME (pid, control socket path), which is what
 *     --cleanup reads;
 *   - whether a pid is a live toed (a zombie is not).
 */
#ifndef TOED_LIFECYCLE_H
#define TOED_LIFECYCLE_H

#include "device/toed_args.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TOED_STATE_DIR "/run/toekit/state"

/*
 * Checks what toed needs before it changes anything: root or CAP_NET_ADMIN and CAP_NET_RAW; the
 * --ctl-group exists; the --ctl path's directory exists. Returns 0, or -1 with a one-line message
 * (no "toed: " prefix) in err: toed then exits with TOED_EXIT_USAGE.
 */
int toed_check_startup(const struct toed_args *a, char *err, size_t errlen);

/* Descriptors toed's tables can hold at once: sessions (3 each), shadow sockets, its own. */
uint64_t toed_nofile_need(const struct toed_args *a);

/*
 * Raises RLIMIT_NOFILE (soft, and hard if needed and allowed) to `need`, so that a client cannot
 * take toed to its limit before its tables are full. Returns 0, or -1 with a warning in warn.
 */
int toed_raise_nofile(uint64_t need, char *warn, size_t warnlen);

/*
 * Fills `mask` with the signals toed takes through its signalfd: SIGUSR1 (dump the counters)
 * and every terminating signal that can be handled (SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR2,
 * SIGALRM, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGIO, SIGPWR, SIGSTKFLT, the real-time ones),
 * sets their disposition to the default (a shell starts background jobs with SIGINT ignored, and
 * an ignored signal never reaches a signalfd) and blocks them.
 */
void toed_signals_block(sigset_t *mask);

/* Whether signal `sig` from the signalfd asks for a counter dump (else: stop). */
static inline bool toed_signal_is_dump(int sig)
{
  return sig == SIGUSR1;
}

/* "SIGHUP", "SIGRTMIN+3", ... for the stop message. */
const char *toed_signal_name(int sig, char *buf, size_t len);

/*
 * Whether `pid` is a running toed: it exists, is not a zombie, and its comm starts with "toed"
 * (a pid reused by another program is not one).
 */
bool toed_pid_alive(pid_t pid);

/* This network namespace's inode number (0 if unknown): keys the per-namespace state. */
unsigned long toed_netns_id(void);

/*
 * Records this instance in TOED_STATE_DIR (pid and control socket path, NULL for none), so that
 * `toed --cleanup IFNAME` can undo what a crash leaves. Best effort: returns 0 or -1.
 */
int toed_state_write(const char *ifname, const char *ctl_path);
/* Removes this instance's state file (only if it is still ours). */
void toed_state_remove(const char *ifname);

/*
 * `toed --cleanup IFNAME`: undoes what a toed on IFNAME that died without cleaning up left in
 * this namespace: its nftables guard table, its share of the reserved-port range, its control
 * socket file. Refuses (status 1) while a live toed owns IFNAME. Prints what it did. Returns the
 * exit status.
 */
int toed_cleanup_main(const char *ifname);

#endif
