/*
 * toekit error codes.
 *
 * The engine runs where there may be no C library errno.h (device firmware), so it carries its own
 * numbering. The values equal Linux's errno numbers, so a host can hand them to strerror() and the
 * transport ABI can carry them unchanged. Every function in the engine that can fail returns 0 (or
 * a non-negative count) on success and a negative TOE_E* value on failure.
 */
#ifndef TOE_ERRNO_H
#define TOE_ERRNO_H

#define TOE_EPERM 1            /* operation not permitted */
#define TOE_ENOENT 2           /* no such entry (socket, neighbour, filter) */
#define TOE_EINTR 4            /* interrupted */
#define TOE_EIO 5              /* link-level failure */
#define TOE_E2BIG 7            /* argument list or option too long */
#define TOE_EBADF 9            /* bad handle */
#define TOE_EAGAIN 11          /* nothing to read / no room now; try again later */
#define TOE_ENOMEM 12          /* pool or table exhausted */
#define TOE_EACCES 13          /* permission denied (a privileged port) */
#define TOE_EFAULT 14          /* offset/length outside a caller-supplied region */
#define TOE_EBUSY 16           /* resource in use */
#define TOE_EEXIST 17          /* already exists */
#define TOE_EINVAL 22          /* invalid argument */
#define TOE_EMFILE 24          /* no free socket slot */
#define TOE_EPIPE 32           /* write after shutdown or reset */
#define TOE_EDESTADDRREQ 89    /* no destination and not connected */
#define TOE_EMSGSIZE 90        /* datagram too large */
#define TOE_EPROTOTYPE 91      /* wrong protocol for socket */
#define TOE_ENOPROTOOPT 92     /* unknown socket option */
#define TOE_EPROTONOSUPPORT 93 /* protocol not supported */
#define TOE_EOPNOTSUPP 95      /* operation not supported on this socket */
#define TOE_EAFNOSUPPORT 97    /* address family not supported */
#define TOE_EADDRINUSE 98      /* local address/port already bound */
#define TOE_EADDRNOTAVAIL 99   /* address not ours, or no ephemeral port left */
#define TOE_ENETDOWN 100       /* link is down */
#define TOE_ENETUNREACH 101    /* no route to the network */
#define TOE_ECONNABORTED 103   /* connection aborted locally */
#define TOE_ECONNRESET 104     /* connection reset by peer */
#define TOE_ENOBUFS 105        /* out of packet buffers */
#define TOE_EISCONN 106        /* already connected */
#define TOE_ENOTCONN 107       /* not connected */
#define TOE_ESHUTDOWN 108      /* send after shutdown */
#define TOE_ETIMEDOUT 110      /* connection or resolution timed out */
#define TOE_ECONNREFUSED 111   /* port unreachable / RST on connect */
#define TOE_EHOSTDOWN 112      /* host is down */
#define TOE_EHOSTUNREACH 113   /* no ARP answer, or ICMP host unreachable */
#define TOE_EALREADY 114       /* operation already in progress */
#define TOE_EINPROGRESS 115    /* non-blocking connect started */
#define TOE_EPROTO 71          /* protocol error (e.g. ICMP parameter problem) */
#define TOE_EBADMSG 74         /* checksum failed */
#define TOE_ENOTSOCK 88        /* a path that is not a socket (attaching to a device) */

/* Returns a short static description of a TOE_E* value (positive or negative), never NULL. */
const char *toe_strerror(int err);

/* Why attaching to a device (toe_attach, toectl, the preload) failed, in words that say what to
 * do: the errors whose meaning differs there (-TOE_ECONNREFUSED: no toed serves the socket), else
 * toe_strerror's text. Either sign; never NULL. */
const char *toe_attach_strerror(int err);

#endif
