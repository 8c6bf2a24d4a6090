/*
 * The transport's region set-up (src/transport/region.h) and what backs a region and its
 * doorbells on the device (src/transport/os/region_os.h), both kinds: the eventfd kind of 1.0
 * and the POSIX doorbells of 1.3, with a sealed memfd (toed) or an shm object (POSIX only).
 * The host side is played by a second mapping of the descriptors the reply would pass.
 */
#define _GNU_SOURCE

#include "testlib.h"
#include "toe/abi.h"
#include "toe/errno.h"
#include "transport/abi_validate.h"
#include "transport/os/region_os.h"
#include "transport/region.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static struct toe_abi_layout small_layout(uint64_t caps)
{
  struct toe_abi_hello h;
  memset(&h, 0, sizeof(h));
  h.magic = TOE_ABI_HELLO_MAGIC;
  h.abi_major = TOE_ABI_MAJOR;
  h.abi_minor = TOE_ABI_MINOR;
  h.size = sizeof(h);
  h.caps = caps;
  h.sq_entries = 64;
  h.cq_entries = 128;
  h.buf_count = 32;
  h.buf_size = 2048;
  h.max_handles = 8;
  struct toe_abi_limits lim;
  toe_abi_limits_default(&lim);
  struct toe_abi_hello_reply rep;
  if (toe_abi_negotiate(&h, sizeof(h), &lim, 5, &rep) < 0)
    abort();
  return rep.layout;
}

static bool readable(int fd)
{
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static bool nonblocking(int fd)
{
  return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

/* The host's view: maps the passed region descriptor, attaches its rings, submits one SQE; the
 * device's rings see it. */
static void host_device_rings(struct toe_region_os *r, const struct toe_abi_layout *l)
{
  struct stat st;
  REQUIRE(fstat(r->host[TOE_ABI_FD_REGION], &st) == 0);
  CHECK((uint64_t)st.st_size >= l->region_size);
  uint8_t *h =
      mmap(NULL, l->region_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->host[TOE_ABI_FD_REGION], 0);
  REQUIRE(h != MAP_FAILED);
  const struct toe_abi_region_hdr *hdr = (const void *)h;
  CHECK_EQ(hdr->magic, TOE_ABI_REGION_MAGIC);
  CHECK_EQ(hdr->client_id, 9u);
  CHECK_EQ(hdr->dev_state, TOE_ABI_DEV_RUNNING);
  CHECK(memcmp(&hdr->layout, l, sizeof(*l)) == 0);
  struct toe_region_rings host, dev;
  CHECK_EQ(toe_region_rings_host(&host, h, l), 0);
  CHECK_EQ(toe_region_rings_device(&dev, r->region, l), 0);
  struct toe_abi_sqe sqe;
  memset(&sqe, 0, sizeof(sqe));
  sqe.opcode = TOE_ABI_OP_NOP;
  sqe.user_data = 0x1234;
  CHECK_EQ(toe_ring_prod_write(&host.sq, &sqe, 1), 1);
  toe_ring_publish(&host.sq);
  struct toe_abi_sqe got;
  CHECK_EQ(toe_ring_consume(&dev.sq, &got, 1), 1);
  CHECK_EQ(got.user_data, 0x1234u);
  munmap(h, l->region_size);
}

TEST(init_fresh_matches_region_init)
{
  struct toe_abi_layout l = small_layout(TOE_ABI_CAPS_1_2);
  uint8_t *a = calloc(1, l.region_size), *b = calloc(1, l.region_size);
  REQUIRE(a && b);
  memset(a, 0x5a, l.region_size);
  toe_abi_region_init(a, &l, TOE_ABI_CAPS_1_2, 3, 7); /* clears, then the same as fresh */
  toe_region_init_fresh(b, &l, TOE_ABI_CAPS_1_2, 3, 7);
  CHECK(memcmp(a, b, l.region_size) == 0);
  /* rings that a host wrote into before the device attached are refused */
  struct toe_region_rings r;
  CHECK_EQ(toe_region_rings_device(&r, b, &l), 0);
  ((struct toe_abi_ring_ctl *)(void *)(b + l.sq_ctl_off))->prod = 5;
  CHECK_EQ(toe_region_rings_device(&r, b, &l), -TOE_EPROTO);
  free(a);
  free(b);
}

TEST(sealed_eventfd_kind)
{
  struct toe_abi_layout l = small_layout(TOE_ABI_CAPS_1_2);
  struct toe_region_os r;
  REQUIRE(toe_region_os_create_sealed(&r, &l, TOE_ABI_CAPS_1_2, 9) == 0);
  CHECK_EQ(r.nhost, 3u);
  CHECK(!r.posix);
  CHECK_EQ(r.host[TOE_ABI_FD_KICK], r.kick); /* one eventfd, both sides */
  CHECK_EQ(r.host[TOE_ABI_FD_NOTIFY], r.notify);
  CHECK_EQ(r.host[TOE_ABI_FD_NOTIFY_SELF], -1);
  int seals = fcntl(r.host[TOE_ABI_FD_REGION], F_GET_SEALS);
  CHECK_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
           F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  CHECK(ftruncate(r.host[TOE_ABI_FD_REGION], 4096) < 0); /* a host cannot shrink it */
  CHECK(nonblocking(r.kick) && nonblocking(r.notify));
  host_device_rings(&r, &l);
  /* doorbells: 8-byte rings, drained at once */
  CHECK(!toe_bell_drain(r.kick));
  uint64_t one = 1;
  CHECK_EQ(write(r.host[TOE_ABI_FD_KICK], &one, 8), 8);
  CHECK_EQ(write(r.host[TOE_ABI_FD_KICK], &one, 8), 8);
  CHECK(toe_bell_drain(r.kick));
  CHECK(!readable(r.kick));
  CHECK(toe_bell_ring(r.notify, false));
  CHECK(readable(r.host[TOE_ABI_FD_NOTIFY]));
  toe_region_os_handed(&r);
  CHECK(r.kick >= 0 && r.notify >= 0); /* the device's own stay */
  toe_region_os_free(&r);
  CHECK_EQ(r.kick, -1);
  CHECK(r.region == NULL);
  toe_region_os_free(&r); /* idempotent */
}

/* The 1.3 doorbells, whatever backs the region. */
static void posix_bells(struct toe_region_os *r)
{
  CHECK_EQ(r->nhost, 4u);
  CHECK(r->posix);
  int hk = r->host[TOE_ABI_FD_KICK], hn = r->host[TOE_ABI_FD_NOTIFY];
  int hs = r->host[TOE_ABI_FD_NOTIFY_SELF];
  CHECK(hk != r->kick && hn != r->notify); /* separate ends */
  CHECK_EQ(hs, r->notify);                 /* the device's end, shared */
  /* kick: the host writes the pipe, the device drains it */
  uint64_t one = 1;
  for (int i = 0; i < 3; i++)
    CHECK_EQ(write(hk, &one, 8), 8);
  CHECK(readable(r->kick));
  CHECK(toe_bell_drain(r->kick));
  CHECK(!readable(r->kick));
  /* notify: the device's ring and the host's own write both make the host's end readable */
  CHECK(toe_bell_ring(r->notify, true));
  CHECK(readable(hn));
  CHECK(toe_bell_drain(hn));
  CHECK(!readable(hn));
  CHECK_EQ(write(hs, &one, 8), 8);
  CHECK(readable(hn));
  CHECK(toe_bell_drain(hn));
  /* A hostile host clears O_NONBLOCK on the shared end and stops reading: the device's rings
   * never block (send MSG_DONTWAIT), they just report a full doorbell. */
  int fl = fcntl(hs, F_GETFL);
  CHECK_EQ(fcntl(hs, F_SETFL, fl & ~O_NONBLOCK), 0);
  alarm(20); /* a blocked ring would hang here: fail instead */
  int full = 0;
  for (int i = 0; i < 200000 && !full; i++)
    full = !toe_bell_ring(r->notify, true);
  alarm(0);
  CHECK(full);
  CHECK(readable(hn));
  /* The host is gone (its end closed): ringing is an error, not a SIGPIPE. */
  toe_region_os_handed(r);
  CHECK_EQ(r->host[TOE_ABI_FD_NOTIFY], -1);
  CHECK(!toe_bell_ring(r->notify, true));
}

TEST(sealed_posix_kind)
{
  struct toe_abi_layout l = small_layout(TOE_ABI_CAPS_1_3);
  struct toe_region_os r;
  REQUIRE(toe_region_os_create_sealed(&r, &l, TOE_ABI_CAPS_1_3, 9) == 0);
  CHECK(fcntl(r.host[TOE_ABI_FD_REGION], F_GET_SEALS) & F_SEAL_SHRINK);
  host_device_rings(&r, &l);
  posix_bells(&r);
  toe_region_os_free(&r);
}

TEST(shm_posix_kind)
{
  struct toe_abi_layout l = small_layout(TOE_ABI_CAPS_1_3);
  struct toe_region_os r;
  CHECK_EQ(toe_region_os_create_shm(&r, &l, TOE_ABI_CAPS_1_2, 9), -TOE_EOPNOTSUPP);
  CHECK(r.region == NULL && r.host[TOE_ABI_FD_REGION] == -1);
  REQUIRE(toe_region_os_create_shm(&r, &l, TOE_ABI_CAPS_1_3, 9) == 0);
  CHECK(fcntl(r.host[TOE_ABI_FD_REGION], F_GETFD) & FD_CLOEXEC);
  host_device_rings(&r, &l);
  posix_bells(&r);
  toe_region_os_free(&r);
}

TEST_MAIN()
