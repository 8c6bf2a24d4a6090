/*
 * toectl's session with a device: the smallest client of the transport ABI (docs/transport.md).
 *
 * toectl opens no sockets, so it needs none of libtoe's machinery (fill ring, receive buffers,
 * socket table): it says hello, maps the region, and submits one STATS command at a time into a
 * range of its own buffer area, waiting for the completion. It offers TOE_ABI_CAP_FLOWS (1.1),
 * which a device grants only to privileged users; without it `flows` is refused cleanly.
 */
#ifndef TOECTL_DEV_H
#define TOECTL_DEV_H

#include "toe/abi.h"
#include "transport/ring.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tc_dev {
  int ctl;    /* the control socket: its hang-up means the device is gone */
  int kick;   /* eventfd: wakes the device */
  int notify; /* eventfd: the device wakes us */
  void *region;
  size_t region_size;
  struct toe_abi_hello_reply rep; /* checked; rep.layout is the layout we use */
  struct toe_ring sq, cq;
  struct toe_ring fq; /* capture only: buffers given back to the device */
  uint64_t next_ud;   /* user_data of the next SQE */
  int timeout_ms;     /* bound on one command's round trip */
};

/*
 * Attaches to the device serving the control socket `path`. Returns 0, or -errno: the errors of
 * connect(2) (-ENOENT, -ECONNREFUSED, -EACCES), the device's refusal (reply status), -ETIMEDOUT if
 * it does not answer within timeout_ms, -EPROTO for a malformed reply.
 */
int tc_attach(struct tc_dev *d, const char *path, int timeout_ms);

/* Ends the session (closing the control socket is the end) and frees everything. */
void tc_detach(struct tc_dev *d);

/* Bytes a STATS answer can have at most here (the whole buffer area). */
size_t tc_stats_max(const struct tc_dev *d);

/*
 * STATS of `kind` (TOE_ABI_STATS_*; handle 0). Copies min(answer, len) bytes into out and returns
 * the size of the whole answer, or -errno: the completion's error (-EOPNOTSUPP: STATS not granted,
 * -EINVAL: kind unknown or not granted), -ENETDOWN (the device hung up), -ETIMEDOUT, -EPROTO.
 */
ssize_t tc_stats(struct tc_dev *d, uint32_t kind, void *out, size_t len);

/*
 * The next completion-ring entry, waiting up to timeout_ms. Returns 1 (entry in *out), 0 (none
 * in time), -EINTR (a signal arrived), -ENETDOWN (the device hung up), -EPROTO.
 */
int tc_next(struct tc_dev *d, struct toe_abi_cqe *out, int timeout_ms);

/*
 * Starts a capture (ABI 1.2, TOE_ABI_CAP_CAPTURE): puts the filter (`len` bytes: text, or with
 * TOE_ABI_CAPTURE_F_BPF in `flags` a 1.4 BPF program) in the first buffers, gives every other
 * buffer to the device on the fill ring, submits CAPTURE with `flags` and waits for its
 * completion. Returns 0, -EPERM (capture not granted to this user), -EINVAL (the device refused
 * the filter), -EBUSY, or the errors of tc_stats.
 */
int tc_capture_start(struct tc_dev *d, const void *filter, size_t len, uint32_t snaplen,
                     uint32_t flags);

/* Submits CAPTURE STOP; its completion (user_data *ud) follows the last EV_CAPTURE. */
int tc_capture_stop(struct tc_dev *d, uint64_t *ud);

/* The records of an EV_CAPTURE inside our region, or NULL if the entry names bytes outside its
 * buffer (a broken device). */
const uint8_t *tc_capture_records(const struct tc_dev *d, const struct toe_abi_cqe *cqe);

/* Gives buffer `buf_id` back to the device. Returns 0 or -errno. */
int tc_fill_return(struct tc_dev *d, uint32_t buf_id);

#endif
