/*
 * Descriptions of the TOE_E* error numbers (toe/errno.h): the one table of error strings, for the
 * engine (freestanding: a switch of string constants, no libc) and the host programs alike.
 */
#include "toe/errno.h"

const char *toe_strerror(int err)
{
  /* Either sign is accepted; compare on the magnitude without negating INT_MIN. */
  long e = err < 0 ? -(long)err : (long)err;
  switch (e) {
  case 0:
    return "success";
  case TOE_EPERM:
    return "operation not permitted";
  case TOE_ENOENT:
    return "no such entry";
  case TOE_EINTR:
    return "interrupted";
  case TOE_EIO:
    return "link-level failure";
  case TOE_E2BIG:
    return "argument or option too long";
  case TOE_EBADF:
    return "bad handle";
  case TOE_EAGAIN:
    return "try again";
  case TOE_ENOMEM:
    return "out of memory";
  case TOE_EACCES:
    return "permission denied";
  case TOE_EFAULT:
    return "bad offset or length";
  case TOE_EBUSY:
    return "resource busy";
  case TOE_EEXIST:
    return "already exists";
  case TOE_EINVAL:
    return "invalid argument";
  case TOE_EMFILE:
    return "no free socket";
  case TOE_EPIPE:
    return "broken pipe";
  case TOE_EPROTO:
    return "protocol error";
  case TOE_EBADMSG:
    return "bad checksum";
  case TOE_EDESTADDRREQ:
    return "destination address required";
  case TOE_EMSGSIZE:
    return "message too long";
  case TOE_EPROTOTYPE:
    return "wrong protocol for socket";
  case TOE_ENOPROTOOPT:
    return "protocol option not available";
  case TOE_EPROTONOSUPPORT:
    return "protocol not supported";
  case TOE_EOPNOTSUPP:
    return "operation not supported";
  case TOE_EAFNOSUPPORT:
    return "address family not supported";
  case TOE_EADDRINUSE:
    return "address already in use";
  case TOE_EADDRNOTAVAIL:
    return "address not available";
  case TOE_ENETDOWN:
    return "network is down";
  case TOE_ENETUNREACH:
    return "network unreachable";
  case TOE_ECONNABORTED:
    return "connection aborted";
  case TOE_ECONNRESET:
    return "connection reset by peer";
  case TOE_ENOBUFS:
    return "no buffer space";
  case TOE_EISCONN:
    return "already connected";
  case TOE_ENOTCONN:
    return "not connected";
  case TOE_ESHUTDOWN:
    return "sent after shutdown";
  case TOE_ETIMEDOUT:
    return "timed out";
  case TOE_ECONNREFUSED:
    return "connection refused";
  case TOE_EHOSTDOWN:
    return "host is down";
  case TOE_EHOSTUNREACH:
    return "no route to host";
  case TOE_EALREADY:
    return "operation already in progress";
  case TOE_EINPROGRESS:
    return "operation in progress";
  case TOE_ENOTSOCK:
    return "not a socket";
  default:
    return "unknown error";
  }
}

const char *toe_attach_strerror(int err)
{
  long e = err < 0 ? -(long)err : (long)err;
  switch (e) {
  case TOE_ENOENT:
    return "no such device socket";
  case TOE_ECONNREFUSED:
    return "nobody serves it (toed not running?)";
  case TOE_EACCES:
  case TOE_EPERM:
    return "permission denied (the socket's group may use it: see toed --ctl-group)";
  case TOE_ETIMEDOUT:
    return "the device did not answer";
  case TOE_EMFILE:
    return "the device serves too many clients";
  case TOE_EPROTONOSUPPORT:
    return "the device speaks another ABI version";
  case TOE_EPROTO:
    return "the device's answer is malformed";
  default:
    return toe_strerror(err);
  }
}
