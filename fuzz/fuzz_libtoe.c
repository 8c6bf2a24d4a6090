/*
 * libtoe's handling of what a device writes into the completion ring (src/host/toe_event.c,
 * toe_io.c, toe_socket.c): libtoe must never crash, hang or lose track of its buffers whatever
 * the completions say. A fake device thread does the real handshake (the transport's own
 * negotiation and region set-up, a sealed memfd and eventfds), then answers every submission
 * entry with a completion shaped by the fuzz input (result, handle, opcode and user_data kept or
 * garbled) and adds events of its own (data in a buffer from the fill ring or any id, with any
 * offset and length; peer closed, reset, error, shutdown, unknown types), while the main thread
 * makes libtoe calls decoded from the input (no call blocks: connect, send and recv return at
 * once; a control call the device garbles times out after 40 ms, and an input stops after
 * four of those).
 *
 * Input: u8 k | k answer records of 16 bytes | calls of 2 bytes
 *   answer: u8 mode (bit 0: garble user_data, bit 1: wrong opcode, bit 2: the handle of another
 *           socket, bit 3: no answer at all), u8 events to add, u8 event type, u8 event flags,
 *           i32 res, u32 buffer id / offset selector, u32 length
 *   call:   u8 op, u8 argument (socket, open, connect, bind+listen, accept, send, recv, close,
 *           poll, getsockopt, stats, shutdown, sendto, info)
 * At the end the device goes away (control socket closed) and libtoe must detach promptly.
 */
#define _GNU_SOURCE

#include "toe/abi.h"
#include "toe/toe.h"
#include "transport/abi_validate.h"
#include "transport/ring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ANSWERS 64
#define MAX_CALLS 48
#define NSD 8

struct answer {
  uint8_t mode, nev, evtype, evflags;
  int32_t res;
  uint32_t sel, len;
};

static struct {
  int lfd;
  char path[108];
  pthread_t th;
  atomic_bool stop;
  /* set up by the device thread */
  int cfd, kick, notify;
  uint8_t *region;
  struct toe_abi_layout lay;
  struct toe_ring sq, cq, fq;
  uint32_t pool[65536], npool;
  uint32_t handles[16];
  uint64_t sock_data[16];
  uint32_t nhandles;
  struct answer ans[MAX_ANSWERS];
  uint32_t nans, next_ans;
} D;

static void dev_post(const struct toe_abi_cqe *c)
{
  if (toe_ring_prod_write(&D.cq, c, 1) == 1)
    toe_ring_publish(&D.cq);
}

static void dev_events(const struct answer *a)
{
  for (uint32_t i = 0; i < a->nev && D.nhandles; i++) {
    struct toe_abi_cqe c;
    memset(&c, 0, sizeof c);
    uint32_t k = (a->sel + i) % D.nhandles;
    c.handle = D.handles[k];
    c.user_data = D.sock_data[k];
    c.type = (uint8_t)(a->evtype % 10); /* 0 and 9 are no type at all */
    c.flags = a->evflags;
    c.res = a->res;
    if (c.type == TOE_ABI_EV_DATA || c.type == TOE_ABI_EV_CAPTURE) {
      uint32_t id = (a->sel & 0x80000000u) || !D.npool ? a->sel >> 8 : D.pool[--D.npool];
      c.u.data.buf_id = id;
      c.u.data.offset = (a->sel >> 16) & 0xfffu;
      c.u.data.len = a->len;
      if (!(a->mode & 0x10))
        c.res = (int32_t)a->len;
      c.u.data.from.family = TOE_ABI_AF_INET;
      c.u.data.from.port = 9;
    }
    dev_post(&c);
  }
}

static void dev_answer(const struct toe_abi_sqe *e)
{
  struct answer a = {0};
  if (D.next_ans < D.nans)
    a = D.ans[D.next_ans++];
  struct toe_abi_cqe c;
  memset(&c, 0, sizeof c);
  c.type = TOE_ABI_CQE_OP;
  c.opcode = (a.mode & 2) ? (uint8_t)(e->opcode + 1) : e->opcode;
  c.user_data = (a.mode & 1) ? e->user_data ^ ((uint64_t)a.sel << 16) : e->user_data;
  c.handle = e->handle;
  c.res = a.res;
  switch (e->opcode) {
  case TOE_ABI_OP_OPEN:
  case TOE_ABI_OP_ADOPT:
    c.handle = TOE_ABI_HANDLE(D.nhandles % 16, 1);
    if (D.nhandles < 16) {
      D.handles[D.nhandles] = c.handle;
      D.sock_data[D.nhandles++] =
          e->opcode == TOE_ABI_OP_OPEN ? e->u.open.sock_data : e->u.adopt.sock_data;
    }
    break;
  case TOE_ABI_OP_ACCEPT:
    c.u.accept.handle = TOE_ABI_HANDLE(D.nhandles % 16, 1);
    if (D.nhandles < 16) {
      D.handles[D.nhandles] = c.u.accept.handle;
      D.sock_data[D.nhandles++] = e->u.accept.sock_data;
    }
    break;
  case TOE_ABI_OP_SEND:
    if (a.res >= 0 && !(a.mode & 0x10))
      c.res = (int32_t)e->u.send.len;
    break;
  case TOE_ABI_OP_CONNECT:
    if (a.res > 0)
      c.res = 0;
    break;
  default:
    break;
  }
  if ((a.mode & 4) && D.nhandles)
    c.handle = D.handles[a.sel % D.nhandles];
  if (!(a.mode & 8))
    dev_post(&c);
  dev_events(&a);
}

static int dev_handshake(void)
{
  struct toe_abi_hello h;
  ssize_t n = recv(D.cfd, &h, sizeof h, 0);
  if (n <= 0)
    return -1;
  struct toe_abi_limits lim;
  toe_abi_limits_default(&lim);
  lim.caps = TOE_ABI_CAPS_1_6;
  lim.handles_max = 16;
  struct toe_abi_hello_reply rep;
  if (toe_abi_negotiate(&h, (size_t)n, &lim, 7, &rep) < 0)
    return -1;
  D.lay = rep.layout;
  int mfd = memfd_create("fuzz-libtoe", MFD_ALLOW_SEALING | MFD_CLOEXEC);
  if (mfd < 0 || ftruncate(mfd, (off_t)D.lay.region_size) < 0)
    abort();
  D.region = mmap(NULL, D.lay.region_size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
  if (D.region == MAP_FAILED)
    abort();
  toe_abi_region_init(D.region, &D.lay, rep.caps, 7, 0);
  fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  D.kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  D.notify = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int fds[3] = {mfd, D.kick, D.notify};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof fds)];
  } cm;
  memset(&cm, 0, sizeof cm);
  struct iovec iov = {.iov_base = &rep, .iov_len = sizeof rep};
  struct msghdr mh = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof cm.buf};
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&mh);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(cmsg), fds, sizeof fds);
  int sent = (int)sendmsg(D.cfd, &mh, MSG_NOSIGNAL);
  close(mfd);
  if (sent < 0)
    return -1; /* libtoe gave up waiting (a loaded machine): this input attaches nothing */
  const struct toe_abi_layout *l = &D.lay;
  toe_ring_init_cons(&D.sq, (void *)(D.region + l->sq_ctl_off), D.region + l->sq_off, l->sq_entries,
                     TOE_ABI_SQE_SIZE);
  toe_ring_init_prod(&D.cq, (void *)(D.region + l->cq_ctl_off), D.region + l->cq_off, l->cq_entries,
                     TOE_ABI_CQE_SIZE);
  toe_ring_init_cons(&D.fq, (void *)(D.region + l->fq_ctl_off), D.region + l->fq_off, l->fq_entries,
                     TOE_ABI_FQE_SIZE);
  return 0;
}

static void *dev_main(void *arg)
{
  (void)arg;
  D.cfd = accept4(D.lfd, NULL, NULL, SOCK_CLOEXEC);
  if (D.cfd < 0 || dev_handshake() < 0)
    return NULL;
  while (!atomic_load(&D.stop)) {
    uint32_t ids[256];
    int n = toe_ring_cons_read(&D.fq, ids, 256);
    for (int i = 0; i < n; i++)
      if (D.npool < sizeof D.pool / sizeof D.pool[0])
        D.pool[D.npool++] = ids[i];
    if (n > 0)
      toe_ring_cons_release(&D.fq, (uint32_t)n);
    struct toe_abi_sqe e;
    bool any = false;
    while (toe_ring_consume(&D.sq, &e, 1) == 1) {
      dev_answer(&e);
      any = true;
    }
    if (any || n > 0) {
      uint64_t one = 1;
      (void)!write(D.notify, &one, sizeof one);
    } else {
      struct timespec ts = {0, 20000};
      nanosleep(&ts, NULL);
    }
  }
  return NULL;
}

static void remove_socket(void)
{
  if (D.path[0])
    unlink(D.path);
}

static struct sockaddr_in sin_of(uint8_t last, uint16_t port)
{
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(0xc6120000u | last); /* 198.18.0.x */
  return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  if (!D.lfd) {
    snprintf(D.path, sizeof D.path, "/tmp/toe-fuzz-libtoe-%d.sock", (int)getpid());
    unlink(D.path);
    D.lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", D.path);
    if (D.lfd < 0 || bind(D.lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(D.lfd, 4) < 0)
      abort();
    atexit(remove_socket);
  }
  int lfd = D.lfd;
  char path[108];
  memcpy(path, D.path, sizeof path);
  memset(&D, 0, sizeof D);
  D.lfd = lfd;
  memcpy(D.path, path, sizeof path);
  D.cfd = D.kick = D.notify = -1;
  uint32_t k = data[0] % (MAX_ANSWERS + 1);
  data++;
  size--;
  for (uint32_t i = 0; i < k && size >= 16; i++, data += 16, size -= 16) {
    struct answer *a = &D.ans[D.nans++];
    a->mode = data[0];
    a->nev = data[1] % 8;
    a->evtype = data[2];
    a->evflags = data[3];
    memcpy(&a->res, data + 4, 4);
    memcpy(&a->sel, data + 8, 4);
    memcpy(&a->len, data + 12, 4);
  }
  if (pthread_create(&D.th, NULL, dev_main, NULL) != 0)
    abort();

  struct toe_attach_opts o;
  toe_attach_opts_init(&o);
  o.op_timeout_ms = 40;
  o.spin_us = 0;
  o.sq_entries = 8;
  o.cq_entries = 16;
  o.buf_count = 16;
  o.buf_size = 2048;
  o.max_handles = 16;
  o.comm = "fuzz";
  toe_dev *d = NULL;
  int rc = toe_attach(D.path, &o, &d);
  int sd[NSD];
  int nsd = 0, timeouts = 0;
  static uint8_t buf[65536];
  for (uint32_t i = 0; rc == 0 && i < MAX_CALLS && size >= 2; i++, data += 2, size -= 2) {
    uint8_t arg = data[1];
    int s = nsd ? sd[arg % nsd] : -1;
    if (timeouts >= 4)
      break; /* each cost op_timeout_ms: enough of them */
    int r = 0;
    switch (data[0] % 14) {
    case 0:
      if (nsd < NSD) {
        r = toe_socket(d, (arg & 1) ? TOE_SOCK_DGRAM : TOE_SOCK_STREAM);
        if (r >= 0)
          sd[nsd++] = r;
      }
      break;
    case 1: {
      struct sockaddr_in a = sin_of(2, (uint16_t)(5000 + arg));
      r = toe_connect(d, s, (struct sockaddr *)&a, sizeof a);
      break;
    }
    case 2: {
      struct sockaddr_in a = sin_of(0, (uint16_t)(6000 + arg));
      a.sin_addr.s_addr = 0;
      r = toe_bind(d, s, (struct sockaddr *)&a, sizeof a);
      if (r != -TOE_ETIMEDOUT)
        r = toe_listen(d, s, 4);
      break;
    }
    case 3:
      if (nsd < NSD) {
        r = toe_accept(d, s, NULL, NULL);
        if (r >= 0)
          sd[nsd++] = r;
      }
      break;
    case 4:
      (void)toe_send(d, s, buf, (size_t)arg * 97u, 0);
      break;
    case 5:
      (void)toe_recv(d, s, buf, (size_t)arg * 64u + 1, (arg & 1) ? TOE_MSG_PEEK : 0);
      break;
    case 6:
      if (s >= 0) {
        (void)toe_close(d, s);
        int at = arg % nsd;
        nsd--;
        sd[at] = sd[nsd];
      }
      break;
    case 7: {
      struct toe_event ev[8];
      (void)toe_poll(d, ev, 8, arg % 3);
      break;
    }
    case 8: {
      int64_t v;
      r = toe_getsockopt(d, s, arg % 16, &v);
      break;
    }
    case 9:
      r = (int)toe_stats(d, (arg & 1) ? s : -1, arg % 6, buf, (size_t)arg * 256u);
      break;
    case 10:
      r = toe_shutdown(d, s, arg % 3);
      break;
    case 11: {
      struct sockaddr_in a = sin_of(2, 9);
      (void)toe_sendto(d, s, buf, (size_t)arg * 17u, 0, (struct sockaddr *)&a, sizeof a);
      break;
    }
    case 12: {
      /* 1.5: a datagram's metadata record, whatever the device wrote before the data (odd
       * arguments read it back through toe_recvmsg) */
      struct sockaddr_in from;
      socklen_t fl = sizeof from;
      struct toe_rxmeta meta;
      if (arg & 1)
        (void)toe_recvmsg(d, s, buf, (size_t)arg * 8u, (arg & 2) ? TOE_MSG_PEEK : 0,
                          (struct sockaddr *)&from, &fl, &meta);
      else
        (void)toe_recvfrom(d, s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
      break;
    }
    case 13: {
      struct toe_dev_info info;
      (void)toe_dev_info(d, &info);
      (void)toe_sock_events(d, s);
      break;
    }
    }
    if (r == -TOE_ETIMEDOUT)
      timeouts++;
  }
  if (getenv("FUZZ_LIBTOE_VERBOSE") && d) { /* what a seed reached (for writing seeds) */
    struct toe_dev_info info;
    toe_dev_info(d, &info);
    fprintf(stderr, "fuzz_libtoe: attach %d, sqes %llu cqes %llu bad %llu, %d sockets\n", rc,
            (unsigned long long)info.sqes, (unsigned long long)info.cqes,
            (unsigned long long)info.bad_cqes, nsd);
  }
  /* The device goes: libtoe must notice and let go promptly. */
  atomic_store(&D.stop, true);
  pthread_join(D.th, NULL);
  if (D.cfd >= 0)
    close(D.cfd);
  if (d) {
    struct toe_event ev[8];
    (void)toe_poll(d, ev, 8, 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    (void)toe_detach(d, 50);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (ms > 2000) {
      fprintf(stderr, "fuzz_libtoe: toe_detach took %ld ms after the device went\n", ms);
      abort();
    }
  }
  if (D.region)
    munmap(D.region, D.lay.region_size);
  if (D.kick >= 0)
    close(D.kick);
  if (D.notify >= 0)
    close(D.notify);
  return 0;
}
