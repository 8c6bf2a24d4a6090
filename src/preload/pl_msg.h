/*
 * libtoe-preload: the pure pieces of the data path that copy between an application's message
 * structures and the preload's own buffers: iovec totals, gather and scatter, and control
 * messages built into an application's msghdr. No interposer, no global state, no lock: they
 * touch only what they are given, so fuzz/fuzz_preload_msg.c links this file alone and checks
 * them against the kernel's rules (docs/interception.md).
 */
#ifndef TOE_PRELOAD_PL_MSG_H
#define TOE_PRELOAD_PL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* The number of bytes a vector of n entries describes, or -EINVAL when n is negative or above
 * IOV_MAX, or the lengths add up to more than SSIZE_MAX (the kernel's limits on readv/writev and
 * the msghdr calls). Reads only the lengths. */
ssize_t pl_iov_total(const struct iovec *iov, int n);

/* Copies the vector's bytes, in order, into dst until cap bytes are copied or the vector ends;
 * returns how many were copied. The caller owns dst (cap bytes) and the vector's buffers, which
 * must be readable for their lengths up to the point the copy stops. */
size_t pl_iov_gather(char *dst, size_t cap, const struct iovec *iov, int n);

/* Copies len bytes of src into the vector's buffers, in order, filling each before the next;
 * what does not fit is dropped (the caller bounds len by pl_iov_total). Returns the bytes
 * copied: min(len, the vector's total). Writes nothing past a buffer's length. */
size_t pl_iov_scatter(const char *src, size_t len, const struct iovec *iov, int n);

/* Appends one control message (level, type, len bytes of data) to the application's buffer
 * msg->msg_control of msg->msg_controllen bytes, at offset *used, as the kernel's put_cmsg()
 * does: when the whole message does not fit, MSG_CTRUNC is set in msg->msg_flags and what fits
 * is written with cmsg_len saying how much (nothing at all when not even a header fits); *used
 * advances by the message's CMSG_SPACE, at most to the end of the buffer. The buffer need not
 * be aligned (the header is copied, not stored through a pointer). Returns true if the whole
 * message was written. After the last one the caller sets msg->msg_controllen to *used. */
bool pl_cmsg_put(struct msghdr *msg, size_t *used, int level, int type, const void *data,
                 size_t len);

#endif
