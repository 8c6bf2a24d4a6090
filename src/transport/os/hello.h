/*
 * The host side of the transport's handshake (docs/transport.md "Attaching"): one
 * SOCK_SEQPACKET message each way on the device's control socket, the reply carrying the
 * region, kick and notify descriptors (SCM_RIGHTS). Part of the transport's OS layer, in two
 * builds (src/transport/os/CMakeLists.txt): toe_hello_raw, whose system calls are raw syscall(2)s
 * (libtoe's Linux port: an LD_PRELOAD library never sees them), and toe_hello, with the C
 * library's calls (libtoe's POSIX port, toectl). Both go through the host port layer's
 * port_sys.h. Used by libtoe (toe_attach.c) and toectl, which builds its own hello but attaches
 * the same way.
 */
#ifndef TOE_TRANSPORT_OS_HELLO_H
#define TOE_TRANSPORT_OS_HELLO_H

#include "toe/abi.h"

/*
 * Sends `h` on the connected control socket `ctl`, waits at most `timeout_ms` for the reply and
 * receives it with its descriptors, then checks it against the capabilities `h` offered
 * (toe_abi_reply_check). On success returns 0 with *rep filled and fds[TOE_ABI_FD_*] the
 * caller's to close. A reply longer than ours (a later minor) is read in part.
 * Errors (negative; TOE_E* values equal Linux's errno): a send, poll or recvmsg errno;
 * -TOE_ETIMEDOUT no reply in time; -TOE_ECONNREFUSED the device closed without a reply (it
 * refused the session); -TOE_EPROTO a truncated reply, too few or too many descriptors, or a
 * reply toe_abi_reply_check rejects (or its own error). On error no received descriptor is left
 * open and fds[] is untouched past what was received.
 */
int toe_hello_exchange(int ctl, const struct toe_abi_hello *h, int timeout_ms,
                       struct toe_abi_hello_reply *rep, int fds[TOE_ABI_FD_COUNT]);

/*
 * The same for a hello that may be granted more descriptors (1.3, TOE_ABI_CAP_POSIX_BELLS: four):
 * fds has room for `maxfds` (at most TOE_ABI_FD_MAX); a reply whose granted capabilities need
 * more (TOE_ABI_NFDS) is -TOE_EPROTO. toe_hello_exchange is this with maxfds 3.
 */
int toe_hello_exchange_n(int ctl, const struct toe_abi_hello *h, int timeout_ms,
                         struct toe_abi_hello_reply *rep, int *fds, unsigned maxfds);

#endif
