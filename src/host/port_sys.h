/*
 * libtoe's system-call layer (docs/transport.md "The host port layer"): every call libtoe makes on
 * a descriptor goes through these, never through the C library's socket(), read(), poll() ...
 *
 * With TOE_SYS_RAW (libtoe's Linux port) each is a raw syscall(2): an LD_PRELOAD library that
 * interposes those functions (src/preload) never sees libtoe's own calls, so it needs no special
 * case for them and cannot mistake libtoe's descriptors for the application's. Without it (the
 * POSIX port, and toectl: src/transport/os/hello.c in its toe_hello build) they are the plain
 * POSIX calls.
 *
 * Each returns what the C library's function returns: a result, or -1 with errno set.
 */
#ifndef TOE_HOST_PORT_SYS_H
#define TOE_HOST_PORT_SYS_H

#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef TOE_SYS_RAW
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>

static inline int toe_sys_close(int fd)
{
  return (int)syscall(SYS_close, fd);
}
static inline ssize_t toe_sys_read(int fd, void *buf, size_t len)
{
  return (ssize_t)syscall(SYS_read, fd, buf, len);
}
static inline ssize_t toe_sys_write(int fd, const void *buf, size_t len)
{
  return (ssize_t)syscall(SYS_write, fd, buf, len);
}
static inline int toe_sys_poll(struct pollfd *p, nfds_t n, int ms)
{
  /* ppoll: every architecture has it (aarch64 has no poll). */
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  return (int)syscall(SYS_ppoll, p, n, ms < 0 ? NULL : &ts, NULL, (size_t)(_NSIG / 8));
}
static inline int toe_sys_socket(int domain, int type, int proto)
{
  return (int)syscall(SYS_socket, domain, type, proto);
}
static inline int toe_sys_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
  return (int)syscall(SYS_connect, fd, sa, len);
}
static inline int toe_sys_shutdown(int fd, int how)
{
  return (int)syscall(SYS_shutdown, fd, how);
}
static inline int toe_sys_fcntl(int fd, int cmd, long arg)
{
  return (int)syscall(SYS_fcntl, fd, cmd, arg);
}
/* send() with MSG_NOSIGNAL: a vanished device is an error, never SIGPIPE. */
static inline ssize_t toe_sys_send_nosig(int fd, const void *buf, size_t len)
{
  return (ssize_t)syscall(SYS_sendto, fd, buf, len, MSG_NOSIGNAL, NULL, 0);
}
/* recvmsg() whose received descriptors are close-on-exec. */
static inline ssize_t toe_sys_recvmsg_cloexec(int fd, struct msghdr *mh, int flags)
{
  return (ssize_t)syscall(SYS_recvmsg, fd, mh, flags | MSG_CMSG_CLOEXEC);
}

#else /* plain POSIX */

static inline int toe_sys_close(int fd)
{
  return close(fd);
}
static inline ssize_t toe_sys_read(int fd, void *buf, size_t len)
{
  return read(fd, buf, len);
}
static inline ssize_t toe_sys_write(int fd, const void *buf, size_t len)
{
  return write(fd, buf, len);
}
static inline int toe_sys_poll(struct pollfd *p, nfds_t n, int ms)
{
  return poll(p, n, ms);
}
static inline int toe_sys_socket(int domain, int type, int proto)
{
  return socket(domain, type, proto);
}
static inline int toe_sys_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
  return connect(fd, sa, len);
}
static inline int toe_sys_shutdown(int fd, int how)
{
  return shutdown(fd, how);
}
static inline int toe_sys_fcntl(int fd, int cmd, long arg)
{
  return fcntl(fd, cmd, arg);
}
static inline ssize_t toe_sys_send_nosig(int fd, const void *buf, size_t len)
{
#ifdef MSG_NOSIGNAL
  return send(fd, buf, len, MSG_NOSIGNAL);
#else
  return send(fd, buf, len, 0); /* macOS: the socket has SO_NOSIGPIPE (toe_port_ctl_connect) */
#endif
}
static inline ssize_t toe_sys_recvmsg_cloexec(int fd, struct msghdr *mh, int flags)
{
#ifdef MSG_CMSG_CLOEXEC
  return recvmsg(fd, mh, flags | MSG_CMSG_CLOEXEC);
#else
  /* Without MSG_CMSG_CLOEXEC a fork+exec in another thread may inherit them for a moment. */
  ssize_t n = recvmsg(fd, mh, flags);
  if (n >= 0)
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
          int fd_in;
          memcpy(&fd_in, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
          fcntl(fd_in, F_SETFD, FD_CLOEXEC);
        }
  return n;
#endif
}

#endif /* TOE_SYS_RAW */

#endif
