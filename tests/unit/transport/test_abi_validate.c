/*
 * The transport ABI's checks (src/transport/abi_validate.c, abi_layout.c): the handshake (hello,
 * negotiation, layout), handles, every command against out-of-range handles, stale generations,
 * offsets and lengths outside the buffer area or wrapping, bad states, unknown opcodes and
 * non-zero reserved bytes; fill-ring buffer ownership; the abuse limit; and a host and a device
 * talking through a real region with the rings.
 */
#include "testlib.h"
#include "toe/abi.h"
#include "toe/engine.h"
#include "toe/tcp.h"
#include "transport/abi_validate.h"
#include "transport/ring.h"

#include <stdlib.h>

/* ------------------------------------------------------------------------------------------ */
/* Fixture: a client with a small geometry                                                    */

#define FX_HANDLES 4
#define FX_BUFS 64

struct fixture {
  struct toe_abi_layout layout;
  struct toe_abi_client c;
  struct toe_abi_hslot slots[FX_HANDLES];
  uint32_t bufs[FX_BUFS];
};

static struct toe_abi_hello hello_default(void)
{
  struct toe_abi_hello h;
  memset(&h, 0, sizeof(h));
  h.magic = TOE_ABI_HELLO_MAGIC;
  h.abi_major = TOE_ABI_MAJOR;
  h.abi_minor = TOE_ABI_MINOR;
  h.size = sizeof(h);
  h.caps = TOE_ABI_CAPS_1_0;
  h.pid = 4242;
  memcpy(h.comm, "unit-test", 9);
  return h;
}

static int fx_init(struct fixture *f, uint64_t caps)
{
  memset(f, 0, sizeof(*f));
  struct toe_abi_hello h = hello_default();
  h.sq_entries = 8;
  h.cq_entries = 16;
  h.buf_count = FX_BUFS;
  h.buf_size = 2048;
  h.max_handles = FX_HANDLES;
  struct toe_abi_limits lim;
  toe_abi_limits_default(&lim);
  int rc = toe_abi_layout_compute(&h, &lim, &f->layout);
  if (rc < 0)
    return rc;
  return toe_abi_client_init(&f->c, &f->layout, caps, f->slots, f->bufs);
}

/* A socket in a given state, as the device leaves it after the engine call succeeded. */
static uint32_t fx_sock(struct fixture *f, uint8_t proto, uint8_t state)
{
  uint32_t h = 0, i;
  CHECK_EQ(toe_abi_handle_alloc(&f->c, proto, TOE_ABI_AF_INET, &h), 0);
  CHECK_EQ(toe_abi_handle_lookup(&f->c, h, &i), 0);
  f->c.slots[i].state = state;
  return h;
}

static uint64_t fx_buf_end(const struct fixture *f)
{
  return f->layout.buf_off + (uint64_t)f->layout.buf_count * f->layout.buf_size;
}

static struct toe_abi_sockaddr inet(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
  struct toe_abi_sockaddr sa;
  memset(&sa, 0, sizeof(sa));
  sa.family = TOE_ABI_AF_INET;
  sa.port = port;
  sa.addr[0] = a;
  sa.addr[1] = b;
  sa.addr[2] = c;
  sa.addr[3] = d;
  return sa;
}

/* A valid SQE of each opcode for socket `h` (in the state that op needs). */
static struct toe_abi_sqe sqe_of(const struct fixture *f, uint8_t op, uint32_t h, uint8_t proto)
{
  struct toe_abi_sqe s;
  memset(&s, 0, sizeof(s));
  s.opcode = op;
  s.handle = h;
  s.user_data = 0xabcdef0123456789ull;
  switch (op) {
  case TOE_ABI_OP_OPEN:
    s.handle = 0;
    s.u.open.family = TOE_ABI_AF_INET;
    s.u.open.proto = proto;
    s.u.open.sock_data = 77;
    break;
  case TOE_ABI_OP_BIND:
    s.u.addr.addr = inet(198, 18, 0, 1, 8080);
    break;
  case TOE_ABI_OP_CONNECT:
    s.u.addr.addr = inet(198, 18, 0, 2, 80);
    break;
  case TOE_ABI_OP_LISTEN:
    s.u.listen.backlog = 16;
    break;
  case TOE_ABI_OP_ACCEPT:
    s.u.accept.sock_data = 5;
    break;
  case TOE_ABI_OP_SEND:
    s.u.send.buf_off = f->layout.buf_off + 2048;
    s.u.send.len = 100;
    break;
  case TOE_ABI_OP_SHUTDOWN:
    s.u.shutdown.how = TOE_ABI_SHUT_WR;
    break;
  case TOE_ABI_OP_SETSOCKOPT:
    s.u.sockopt.opt = TOE_ABI_SO_RCVBUF;
    s.u.sockopt.value = 65536;
    break;
  case TOE_ABI_OP_GETSOCKOPT:
    s.u.sockopt.opt = TOE_ABI_SO_ERROR;
    break;
  case TOE_ABI_OP_STATS:
    s.handle = 0;
    s.u.stats.kind = TOE_ABI_STATS_CLIENT;
    s.u.stats.buf_off = f->layout.buf_off;
    s.u.stats.len = 4096;
    break;
  default:
    break;
  }
  return s;
}

/* The state each socket op needs on a TCP socket. */
static uint8_t tcp_state_for(uint8_t op)
{
  switch (op) {
  case TOE_ABI_OP_BIND:
  case TOE_ABI_OP_CONNECT:
    return TOE_ABI_HS_OPEN;
  case TOE_ABI_OP_LISTEN:
    return TOE_ABI_HS_BOUND;
  case TOE_ABI_OP_ACCEPT:
    return TOE_ABI_HS_LISTENING;
  default:
    return TOE_ABI_HS_CONNECTED;
  }
}

static const uint8_t socket_ops[] = {
    TOE_ABI_OP_BIND,   TOE_ABI_OP_LISTEN,     TOE_ABI_OP_CONNECT,
    TOE_ABI_OP_ACCEPT, TOE_ABI_OP_SEND,       TOE_ABI_OP_SHUTDOWN,
    TOE_ABI_OP_CLOSE,  TOE_ABI_OP_SETSOCKOPT, TOE_ABI_OP_GETSOCKOPT,
};
#define N_SOCKET_OPS (sizeof(socket_ops) / sizeof(socket_ops[0]))

static int validate(const struct fixture *f, const struct toe_abi_sqe *s)
{
  uint32_t idx;
  return toe_abi_validate_sqe(&f->c, s, &idx);
}

/* ------------------------------------------------------------------------------------------ */
/* Constants shared with the engine                                                           */

TEST(abi_constants_match_engine)
{
  CHECK_EQ(TOE_ABI_SO_RCVBUF, TOE_SO_RCVBUF);
  CHECK_EQ(TOE_ABI_SO_SNDBUF, TOE_SO_SNDBUF);
  CHECK_EQ(TOE_ABI_SO_KEEPALIVE, TOE_SO_KEEPALIVE);
  CHECK_EQ(TOE_ABI_SO_REUSEADDR, TOE_SO_REUSEADDR);
  CHECK_EQ(TOE_ABI_TCP_NODELAY, TOE_TCP_NODELAY);
  CHECK_EQ(TOE_ABI_TCP_KEEPIDLE, TOE_TCP_KEEPIDLE);
  CHECK_EQ(TOE_ABI_TCP_KEEPINTVL, TOE_TCP_KEEPINTVL);
  CHECK_EQ(TOE_ABI_TCP_KEEPCNT, TOE_TCP_KEEPCNT);
  CHECK_EQ(TOE_ABI_TCP_CONGESTION, TOE_TCP_CONGESTION);
  CHECK_EQ(TOE_ABI_SO_LINGER_ABORT, TOE_SO_LINGER_ABORT);
  CHECK_EQ(TOE_ABI_TCP_MAXSEG, TOE_TCP_MAXSEG);
  CHECK_EQ(TOE_ABI_SO_REUSEPORT, TOE_SO_REUSEPORT);
  CHECK_EQ(TOE_ABI_SHUT_RD, TOE_SHUT_RD);
  CHECK_EQ(TOE_ABI_SHUT_WR, TOE_SHUT_WR);
  CHECK_EQ(TOE_ABI_SHUT_RDWR, TOE_SHUT_RDWR);
  CHECK_EQ(TOE_ABI_SEND_F_MORE, TOE_SEND_MORE);
  CHECK_EQ(TOE_ABI_AF_INET, TOE_AF_INET);
  /* The magics spell their names in memory. */
  uint32_t m = TOE_ABI_HELLO_MAGIC;
  CHECK_MEM(&m, "TOEH", 4);
  m = TOE_ABI_REPLY_MAGIC;
  CHECK_MEM(&m, "TOEW", 4);
  m = TOE_ABI_REGION_MAGIC;
  CHECK_MEM(&m, "TOER", 4);
  CHECK(strcmp(TOE_ABI_VERSION_STRING, "toekit transport ABI 1.7") == 0);
  CHECK_EQ(TOE_ABI_IP_RECVERR, TOE_IP_RECVERR);   /* 1.5: passed through to the engine */
  CHECK_EQ(TOE_ABI_IPV6_V6ONLY, TOE_IPV6_V6ONLY); /* 1.7: likewise */
  CHECK_EQ(TOE_ABI_AF_INET6, TOE_AF_INET6);
}

/* ------------------------------------------------------------------------------------------ */
/* Handshake                                                                                  */

TEST(hello_check)
{
  struct toe_abi_hello h = hello_default();
  CHECK_EQ(toe_abi_hello_check(&h, sizeof(h)), 0);
  CHECK_EQ(toe_abi_hello_check(&h, sizeof(h) - 1), -TOE_EPROTO); /* short */
  CHECK_EQ(toe_abi_hello_check(NULL, sizeof(h)), -TOE_EPROTO);
  struct toe_abi_hello b = h;
  b.magic ^= 1;
  CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), -TOE_EPROTO);
  b = h;
  b.size = 96;
  CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), -TOE_EPROTO);
  b = h;
  b.abi_major = 2;
  CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), -TOE_EPROTONOSUPPORT);
  b = h;
  b.abi_major = 0;
  CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), -TOE_EPROTONOSUPPORT);
  b = h;
  b.abi_minor = 7; /* a newer minor of the same major is fine */
  CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), 0);
  b = h;
  b.flags = 1;
  CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), -TOE_EINVAL);
  /* 1.2: the origin, 0..TOE_ABI_ORIGIN_MAX */
  for (uint32_t o = 0; o <= TOE_ABI_ORIGIN_MAX; o++) {
    b = h;
    b.origin = o;
    CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), 0);
  }
  b = h;
  b.origin = TOE_ABI_ORIGIN_MAX + 1;
  CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), -TOE_EINVAL);
  b = h;
  b.reserved1 = 1;
  CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), -TOE_EINVAL);
  for (size_t i = 0; i < sizeof(h.reserved2); i++) {
    b = h;
    b.reserved2[i] = 1;
    CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), -TOE_EINVAL);
  }
  /* Ring and buffer sizes: 0 or a power of two. */
  b = h;
  b.sq_entries = 100;
  CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), -TOE_EINVAL);
  b = h;
  b.cq_entries = 3;
  CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), -TOE_EINVAL);
  b = h;
  b.fq_entries = 1000;
  CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), -TOE_EINVAL);
  b = h;
  b.buf_size = 3000;
  CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), -TOE_EINVAL);
  b = h;
  b.buf_count = 1000; /* any count */
  b.max_handles = 7;
  CHECK_EQ(toe_abi_hello_check(&b, sizeof(b)), 0);
  /* A longer hello from a later minor: its own size, the 1.0 part read. */
  uint8_t big[sizeof(h) + 32];
  memset(big, 0x5a, sizeof(big));
  b = h;
  b.size = sizeof(big);
  memcpy(big, &b, sizeof(b));
  CHECK_EQ(toe_abi_hello_check((const struct toe_abi_hello *)(const void *)big, sizeof(big)), 0);
}

/* 1.6: a client that offers TOE_ABI_CAP_LARGE_BUFS and leaves the geometry to the device gets
 * 64 KiB buffers; one that does not keeps 1.0's 8 KiB (it may have sized its own copies for
 * them); an explicit request is honoured either way; a small region limit halves the size rather
 * than leave the session with few buffers; the default receive credit stays 1 MiB's worth. */
TEST(layout_large_buffers)
{
  struct toe_abi_limits lim;
  toe_abi_limits_default(&lim);
  struct toe_abi_hello h = hello_default();
  struct toe_abi_layout l;
  h.caps = TOE_ABI_CAPS_1_6;
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), 0);
  CHECK_EQ(l.buf_size, TOE_ABI_DEFAULT_BUF_SIZE_LARGE);
  CHECK_EQ(l.buf_count, TOE_ABI_DEFAULT_BUF_COUNT_LARGE);
  CHECK_EQ(toe_abi_layout_check(&l), 0);
  /* What the region costs: 32 MiB of buffers plus the rings (under 1 MiB). */
  CHECK(l.region_size <= 33u << 20);

  /* The session's granted caps decide, not the offer alone: a device without the bit. */
  lim.caps = TOE_ABI_CAPS_1_5;
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), 0);
  CHECK_EQ(l.buf_size, TOE_ABI_DEFAULT_BUF_SIZE);
  CHECK_EQ(l.buf_count, TOE_ABI_DEFAULT_BUF_COUNT);
  toe_abi_limits_default(&lim);
  /* An old client (1.5 caps) of a 1.6 device. */
  h.caps = TOE_ABI_CAPS_1_5;
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), 0);
  CHECK_EQ(l.buf_size, TOE_ABI_DEFAULT_BUF_SIZE);
  /* An explicit size is kept. */
  h.caps = TOE_ABI_CAPS_1_6;
  h.buf_size = 8192;
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), 0);
  CHECK_EQ(l.buf_size, 8192);
  CHECK_EQ(l.buf_count, TOE_ABI_DEFAULT_BUF_COUNT_LARGE);
  /* A 4 MiB region: 64 KiB would leave ~60 buffers, 16 KiB not quite 256; 8 KiB is the floor of
   * the halving, and as many of them as fit are taken. */
  h.buf_size = 0;
  lim.region_max = 4u << 20;
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), 0);
  CHECK_EQ(l.buf_size, 8192);
  CHECK(l.buf_count >= 256 && l.buf_count <= TOE_ABI_DEFAULT_BUF_COUNT_LARGE);
  lim.region_max = 24u << 20; /* 256 x 64 KiB and the rings fit: 64 KiB, fewer than 512 */
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), 0);
  CHECK_EQ(l.buf_size, 65536);
  CHECK(l.buf_count >= 256 && l.buf_count < 512);
  lim.region_max = 16u << 20; /* 256 x 64 KiB and the rings do not: 32 KiB */
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), 0);
  CHECK_EQ(l.buf_size, 32768);
  CHECK(l.buf_count >= 256);

  /* The default credit: min(64, buf_count / 4) buffers, at most 1 MiB's worth (at least 8). */
  struct toe_abi_client c;
  static struct toe_abi_hslot slots[TOE_ABI_DEFAULT_HANDLES];
  static uint32_t bufs[TOE_ABI_DEFAULT_BUF_COUNT];
  toe_abi_limits_default(&lim);
  h.buf_size = 0;
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), 0);
  CHECK_EQ(toe_abi_client_init(&c, &l, h.caps, slots, bufs), 0);
  CHECK_EQ(c.rx_max_default, (1u << 20) / 65536);
  h.caps = TOE_ABI_CAPS_1_5;
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), 0);
  CHECK_EQ(toe_abi_client_init(&c, &l, h.caps, slots, bufs), 0);
  CHECK_EQ(c.rx_max_default, 64);
}

TEST(layout_defaults_and_clamping)
{
  struct toe_abi_limits lim;
  toe_abi_limits_default(&lim);
  struct toe_abi_hello h = hello_default();
  struct toe_abi_layout l;
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), 0);
  CHECK_EQ(l.sq_entries, TOE_ABI_DEFAULT_SQ);
  CHECK_EQ(l.cq_entries, TOE_ABI_DEFAULT_CQ);
  CHECK_EQ(l.buf_count, TOE_ABI_DEFAULT_BUF_COUNT);
  CHECK_EQ(l.buf_size, TOE_ABI_DEFAULT_BUF_SIZE);
  CHECK_EQ(l.fq_entries, 2048);
  CHECK_EQ(l.max_handles, TOE_ABI_DEFAULT_HANDLES);
  CHECK_EQ(l.sq_off % TOE_ABI_PAGE, 0);
  CHECK_EQ(l.buf_off % TOE_ABI_PAGE, 0);
  CHECK_EQ(l.sq_ctl_off % TOE_ABI_CACHELINE, 0);
  CHECK(l.region_size >= l.buf_off + (uint64_t)l.buf_count * l.buf_size);
  CHECK_EQ(l.region_size % TOE_ABI_PAGE, 0);
  CHECK_EQ(toe_abi_layout_check(&l), 0);

  /* Too small: raised to the minima; cq at least twice sq; fq covers every buffer. */
  h.sq_entries = 2;
  h.cq_entries = 2;
  h.buf_count = 20;
  h.buf_size = 512;
  h.fq_entries = 4;
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), 0);
  CHECK_EQ(l.sq_entries, TOE_ABI_RING_MIN);
  CHECK_EQ(l.cq_entries, 2 * TOE_ABI_RING_MIN);
  CHECK_EQ(l.buf_size, TOE_ABI_BUF_SIZE_MIN);
  CHECK_EQ(l.buf_count, 20);
  CHECK_EQ(l.fq_entries, 32);

  /* Too big: clamped to the device's limits; the region fits region_max by shrinking buf_count. */
  h.sq_entries = 1u << 30;
  h.cq_entries = 1u << 30;
  h.buf_count = 0xffffffffu;
  h.buf_size = 1u << 30;
  h.max_handles = 0xffffffffu;
  h.fq_entries = 0;
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), 0);
  CHECK_EQ(l.sq_entries, TOE_ABI_SQ_MAX);
  CHECK_EQ(l.cq_entries, TOE_ABI_CQ_MAX);
  CHECK_EQ(l.buf_size, TOE_ABI_BUF_SIZE_MAX);
  CHECK_EQ(l.max_handles, TOE_ABI_HANDLES_MAX);
  CHECK(l.region_size <= TOE_ABI_REGION_MAX);
  CHECK(l.buf_count < TOE_ABI_BUF_COUNT_MAX);
  CHECK(l.fq_entries >= l.buf_count);
  CHECK_EQ(toe_abi_layout_check(&l), 0);

  /* A device with tighter limits. */
  lim.sq_max = 64;
  lim.cq_max = 128;
  lim.region_max = 1u << 20;
  h = hello_default();
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), 0);
  CHECK_EQ(l.sq_entries, 64);
  CHECK_EQ(l.cq_entries, 128);
  CHECK(l.region_size <= (1u << 20));
  CHECK_EQ(toe_abi_layout_check(&l), 0);
  /* ... so tight that not even the minimum buffer area fits. */
  lim.region_max = 8 * TOE_ABI_PAGE;
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), -TOE_ENOMEM);
  /* Nonsense limits. */
  toe_abi_limits_default(&lim);
  lim.cq_max = lim.sq_max; /* < 2 * sq_max */
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), -TOE_EINVAL);
  toe_abi_limits_default(&lim);
  lim.region_max = TOE_ABI_REGION_MAX - 1;
  CHECK_EQ(toe_abi_layout_compute(&h, &lim, &l), -TOE_EINVAL);
}

TEST(layout_check_rejects)
{
  struct toe_abi_limits lim;
  toe_abi_limits_default(&lim);
  struct toe_abi_hello h = hello_default();
  h.buf_count = 64;
  struct toe_abi_layout good, l;
  REQUIRE(toe_abi_layout_compute(&h, &lim, &good) == 0);
  CHECK_EQ(toe_abi_layout_check(&good), 0);
  CHECK_EQ(toe_abi_layout_check(NULL), -TOE_EINVAL);

#define BAD(stmt)                                                                                  \
  do {                                                                                             \
    l = good;                                                                                      \
    stmt;                                                                                          \
    CHECK_EQ(toe_abi_layout_check(&l), -TOE_EINVAL);                                               \
  } while (0)
  BAD(l.reserved = 1);
  BAD(l.sq_entries = 1000);
  BAD(l.sq_entries = 4);
  BAD(l.sq_entries = 2 * TOE_ABI_SQ_MAX);
  BAD(l.cq_entries = l.sq_entries); /* < 2 * sq */
  BAD(l.cq_entries = 3 * l.sq_entries);
  BAD(l.fq_entries = l.buf_count / 2);
  BAD(l.fq_entries = l.buf_count + 1);
  BAD(l.buf_size = 3000);
  BAD(l.buf_size = 1024);
  BAD(l.buf_count = 0);
  BAD(l.max_handles = 0);
  BAD(l.max_handles = 65536);
  BAD(l.region_size = l.region_size + 1);         /* not pages */
  BAD(l.region_size = TOE_ABI_REGION_MAX + 4096); /* too big */
  BAD(l.region_size = l.buf_off);                 /* buffers outside */
  BAD(l.sq_ctl_off = 0);                          /* over the header */
  BAD(l.sq_ctl_off = 1000);                       /* misaligned */
  BAD(l.cq_ctl_off = l.sq_ctl_off + 128);         /* overlapping */
  BAD(l.fq_ctl_off = l.region_size);              /* outside */
  BAD(l.sq_off = l.sq_off + 64);                  /* not a page */
  BAD(l.cq_off = l.sq_off);                       /* overlapping */
  BAD(l.fq_off = l.cq_off + TOE_ABI_PAGE);        /* inside the CQ */
  BAD(l.buf_off = l.fq_off);
  BAD(l.buf_off = UINT64_MAX - TOE_ABI_PAGE + 1); /* offset + length would wrap */
  BAD(l.sq_off = 0xfffffffffffff000ull);
  BAD(l.cq_ctl_off = UINT64_MAX - 127);
#undef BAD
}

TEST(negotiate_and_reply_check)
{
  struct toe_abi_limits lim;
  toe_abi_limits_default(&lim);
  struct toe_abi_hello h = hello_default();
  struct toe_abi_hello_reply rep;

  /* Unknown capability bits are ignored; granted = offered & device's. */
  h.caps = TOE_ABI_CAP_TCP | TOE_ABI_CAP_IPV6 | (1ull << 40);
  h.abi_minor = 9;
  CHECK_EQ(toe_abi_negotiate(&h, sizeof(h), &lim, 17, &rep), 0);
  CHECK_EQ(rep.magic, TOE_ABI_REPLY_MAGIC);
  CHECK_EQ(rep.size, sizeof(rep));
  CHECK_EQ(rep.status, 0);
  CHECK_EQ(rep.abi_major, TOE_ABI_MAJOR);
  CHECK_EQ(rep.abi_minor, TOE_ABI_MINOR);                  /* min(9, ours) */
  CHECK(rep.caps == (TOE_ABI_CAP_TCP | TOE_ABI_CAP_IPV6)); /* 1.7: IPv6 is granted */
  CHECK_EQ(rep.client_id, 17);
  CHECK_EQ(rep.nfds, TOE_ABI_FD_COUNT);
  CHECK_EQ(toe_abi_layout_check(&rep.layout), 0);
  CHECK_EQ(toe_abi_reply_check(&rep, sizeof(rep), h.caps), 0);

  /* The host refuses a reply granting what it did not offer, or malformed. */
  CHECK_EQ(toe_abi_reply_check(&rep, sizeof(rep), TOE_ABI_CAP_UDP), -TOE_EPROTO);
  struct toe_abi_hello_reply b = rep;
  b.magic = 0;
  CHECK_EQ(toe_abi_reply_check(&b, sizeof(b), h.caps), -TOE_EPROTO);
  CHECK_EQ(toe_abi_reply_check(&rep, sizeof(rep) - 4, h.caps), -TOE_EPROTO);
  b = rep;
  b.abi_major = 3;
  CHECK_EQ(toe_abi_reply_check(&b, sizeof(b), h.caps), -TOE_EPROTONOSUPPORT);
  b = rep;
  b.status = 5;
  CHECK_EQ(toe_abi_reply_check(&b, sizeof(b), h.caps), -TOE_EPROTO);
  b = rep;
  b.nfds = 2;
  CHECK_EQ(toe_abi_reply_check(&b, sizeof(b), h.caps), -TOE_EPROTO);
  b = rep;
  b.layout.buf_off += 64;
  CHECK_EQ(toe_abi_reply_check(&b, sizeof(b), h.caps), -TOE_EINVAL);

  /* Refusals carry their reason, no caps, no layout, no fds; the host sees the status. */
  h = hello_default();
  h.abi_major = 2;
  CHECK_EQ(toe_abi_negotiate(&h, sizeof(h), &lim, 1, &rep), -TOE_EPROTONOSUPPORT);
  CHECK_EQ(rep.status, -TOE_EPROTONOSUPPORT);
  CHECK_EQ(rep.abi_major, TOE_ABI_MAJOR); /* says which major it speaks */
  CHECK_EQ(rep.nfds, 0);
  CHECK(rep.caps == 0);
  CHECK(rep.layout.region_size == 0);
  CHECK_EQ(toe_abi_reply_check(&rep, sizeof(rep), h.caps), -TOE_EPROTONOSUPPORT);
  h = hello_default();
  h.caps = TOE_ABI_CAP_STATS; /* no socket protocol at all */
  CHECK_EQ(toe_abi_negotiate(&h, sizeof(h), &lim, 1, &rep), -TOE_EPROTONOSUPPORT);
  h = hello_default();
  CHECK_EQ(toe_abi_negotiate(&h, 10, &lim, 1, &rep), -TOE_EPROTO);
  CHECK_EQ(rep.status, -TOE_EPROTO);
  lim.region_max = 8 * TOE_ABI_PAGE;
  CHECK_EQ(toe_abi_negotiate(&h, sizeof(h), &lim, 1, &rep), -TOE_ENOMEM);
  CHECK_EQ(toe_abi_reply_check(&rep, sizeof(rep), h.caps), -TOE_ENOMEM);
}

TEST(region_init_and_attach)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  uint8_t *region = aligned_alloc(TOE_ABI_PAGE, f.layout.region_size);
  memset(region, 0xcc, f.layout.region_size);
  toe_abi_region_init(region, &f.layout, TOE_ABI_CAPS_1_0, 9, 0xfffffff0u);
  const struct toe_abi_region_hdr *hdr = (const void *)region;
  CHECK_EQ(hdr->magic, TOE_ABI_REGION_MAGIC);
  CHECK_EQ(hdr->abi_major, TOE_ABI_MAJOR);
  CHECK_EQ(hdr->hdr_size, sizeof(*hdr));
  CHECK_EQ(hdr->client_id, 9);
  CHECK_EQ(hdr->dev_state, TOE_ABI_DEV_RUNNING);
  CHECK_EQ(hdr->dev_status, 0);
  CHECK_MEM(&hdr->layout, &f.layout, sizeof(f.layout));
  const struct toe_abi_ring_ctl *sq = (const void *)(region + f.layout.sq_ctl_off);
  CHECK_EQ(sq->prod, 0xfffffff0u);
  CHECK_EQ(sq->cons, 0xfffffff0u);
  CHECK_EQ(sq->flags, 0);
  CHECK_EQ(region[f.layout.buf_off], 0); /* zeroed */
  CHECK_EQ(region[f.layout.region_size - 1], 0);
  struct toe_ring r;
  CHECK_EQ(toe_ring_init_prod(&r, (struct toe_abi_ring_ctl *)(region + f.layout.cq_ctl_off),
                              region + f.layout.cq_off, f.layout.cq_entries, TOE_ABI_CQE_SIZE),
           0);
  CHECK_EQ(toe_ring_prod_reserve(&r, 1000), (int)f.layout.cq_entries);
  free(region);
}

/* ------------------------------------------------------------------------------------------ */
/* Handles                                                                                    */

TEST(handles_alloc_lookup_free)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  uint32_t h[FX_HANDLES], i, extra;
  for (uint32_t k = 0; k < FX_HANDLES; k++) {
    CHECK_EQ(toe_abi_handle_alloc(&f.c, TOE_ABI_PROTO_TCP, TOE_ABI_AF_INET, &h[k]), 0);
    CHECK(h[k] != TOE_ABI_HANDLE_NONE);
    CHECK_EQ(TOE_ABI_HANDLE_GEN(h[k]), 1);
    CHECK_EQ(toe_abi_handle_lookup(&f.c, h[k], &i), 0);
    CHECK_EQ(i, TOE_ABI_HANDLE_INDEX(h[k]));
    CHECK_EQ(f.c.slots[i].state, TOE_ABI_HS_OPEN);
    CHECK_EQ(f.c.slots[i].rx_max, 16); /* buf_count / 4 */
  }
  CHECK_EQ(f.c.handles_inuse, FX_HANDLES);
  CHECK_EQ(toe_abi_handle_alloc(&f.c, TOE_ABI_PROTO_UDP, TOE_ABI_AF_INET, &extra), -TOE_EMFILE);
  CHECK_EQ(toe_abi_handle_alloc(&f.c, 1, TOE_ABI_AF_INET, &extra), -TOE_EINVAL);

  /* Freed: the old handle is refused, the slot comes back with the next generation. */
  uint32_t i1 = TOE_ABI_HANDLE_INDEX(h[1]);
  toe_abi_handle_free(&f.c, i1);
  toe_abi_handle_free(&f.c, i1); /* twice is harmless */
  toe_abi_handle_free(&f.c, 9999);
  CHECK_EQ(f.c.handles_inuse, FX_HANDLES - 1);
  CHECK_EQ(toe_abi_handle_lookup(&f.c, h[1], &i), -TOE_EBADF);
  CHECK_EQ(toe_abi_handle_alloc(&f.c, TOE_ABI_PROTO_UDP, TOE_ABI_AF_INET, &extra), 0);
  CHECK_EQ(TOE_ABI_HANDLE_INDEX(extra), i1);
  CHECK_EQ(TOE_ABI_HANDLE_GEN(extra), 2);
  CHECK_EQ(toe_abi_handle_lookup(&f.c, h[1], &i), -TOE_EBADF);
  CHECK_EQ(toe_abi_handle_lookup(&f.c, extra, &i), 0);
  CHECK_EQ(f.c.slots[i].proto, TOE_ABI_PROTO_UDP);

  /* Malformed handles. */
  CHECK_EQ(toe_abi_handle_lookup(&f.c, TOE_ABI_HANDLE_NONE, &i), -TOE_EBADF);
  CHECK_EQ(toe_abi_handle_lookup(&f.c, TOE_ABI_HANDLE(FX_HANDLES, 1), &i), -TOE_EBADF);
  CHECK_EQ(toe_abi_handle_lookup(&f.c, TOE_ABI_HANDLE(0xffff, 1), &i), -TOE_EBADF);
  CHECK_EQ(toe_abi_handle_lookup(&f.c, TOE_ABI_HANDLE(0, 0), &i), -TOE_EBADF);
  CHECK_EQ(toe_abi_handle_lookup(&f.c, 0xffffffffu, &i), -TOE_EBADF);

  /* The generation wraps from 65535 to 1, never to 0. */
  uint32_t i0 = TOE_ABI_HANDLE_INDEX(h[0]);
  f.c.slots[i0].gen = 0xffff;
  toe_abi_handle_free(&f.c, i0);
  CHECK_EQ(f.c.slots[i0].gen, 1);
}

/* Reuse is spread: a freed slot is not handed out again while others are free. */
TEST(handles_round_robin)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  uint32_t a, b, i;
  CHECK_EQ(toe_abi_handle_alloc(&f.c, TOE_ABI_PROTO_TCP, TOE_ABI_AF_INET, &a), 0);
  CHECK_EQ(toe_abi_handle_lookup(&f.c, a, &i), 0);
  toe_abi_handle_free(&f.c, i);
  CHECK_EQ(toe_abi_handle_alloc(&f.c, TOE_ABI_PROTO_TCP, TOE_ABI_AF_INET, &b), 0);
  CHECK(TOE_ABI_HANDLE_INDEX(b) != TOE_ABI_HANDLE_INDEX(a));
}

/* ------------------------------------------------------------------------------------------ */
/* Descriptors                                                                                */

TEST(valid_baseline_of_every_op)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  uint32_t idx = 0;
  struct toe_abi_sqe s = sqe_of(&f, TOE_ABI_OP_NOP, 0, 0);
  CHECK_EQ(toe_abi_validate_sqe(&f.c, &s, &idx), 0);
  CHECK_EQ(idx, UINT32_MAX);
  s = sqe_of(&f, TOE_ABI_OP_OPEN, 0, TOE_ABI_PROTO_TCP);
  CHECK_EQ(toe_abi_validate_sqe(&f.c, &s, &idx), 0);
  s = sqe_of(&f, TOE_ABI_OP_OPEN, 0, TOE_ABI_PROTO_UDP);
  CHECK_EQ(toe_abi_validate_sqe(&f.c, &s, NULL), 0); /* index is optional */
  s = sqe_of(&f, TOE_ABI_OP_STATS, 0, 0);
  CHECK_EQ(toe_abi_validate_sqe(&f.c, &s, &idx), 0);
  for (size_t k = 0; k < N_SOCKET_OPS; k++) {
    uint8_t op = socket_ops[k];
    uint32_t h = fx_sock(&f, TOE_ABI_PROTO_TCP, tcp_state_for(op));
    s = sqe_of(&f, op, h, TOE_ABI_PROTO_TCP);
    idx = 12345;
    CHECK_EQ(toe_abi_validate_sqe(&f.c, &s, &idx), 0);
    CHECK_EQ(idx, TOE_ABI_HANDLE_INDEX(h));
    uint32_t i;
    REQUIRE(toe_abi_handle_lookup(&f.c, h, &i) == 0);
    toe_abi_handle_free(&f.c, i);
  }
}

TEST(unknown_opcodes)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  const uint8_t bad[] = {0, TOE_ABI_OP__COUNT, TOE_ABI_OP__COUNT + 1, 100, 200, 255};
  for (size_t k = 0; k < sizeof(bad); k++) {
    struct toe_abi_sqe s;
    memset(&s, 0, sizeof(s));
    s.opcode = bad[k];
    uint32_t idx = 5;
    CHECK_EQ(toe_abi_validate_sqe(&f.c, &s, &idx), -TOE_EOPNOTSUPP);
    CHECK_EQ(idx, UINT32_MAX);
  }
  /* A zeroed SQE (forgotten memset of a slot) is refused, not a NOP. */
  struct toe_abi_sqe z;
  memset(&z, 0, sizeof(z));
  CHECK_EQ(validate(&f, &z), -TOE_EOPNOTSUPP);
}

/* Byte ranges [lo, hi) of an SQE that must be zero for `op`, beyond flags and reserved0. */
struct range {
  size_t lo, hi;
};

static size_t reserved_ranges(uint8_t op, struct range *r)
{
  struct toe_abi_sqe s;
  const size_t u = offsetof(struct toe_abi_sqe, u);
  const size_t end = sizeof(s);
  size_t n = 0;
#define RANGE(field)                                                                               \
  r[n++] = (struct range)                                                                          \
  {                                                                                                \
    offsetof(struct toe_abi_sqe, field), offsetof(struct toe_abi_sqe, field) + sizeof(s.field)     \
  }
  switch (op) {
  case TOE_ABI_OP_NOP:
    r[n++] = (struct range){u, end};
    break;
  case TOE_ABI_OP_OPEN:
    RANGE(u.open.reserved0);
    RANGE(u.open.reserved1);
    RANGE(u.open.reserved2);
    break;
  case TOE_ABI_OP_BIND:
  case TOE_ABI_OP_CONNECT:
    RANGE(u.addr.reserved);
    break;
  case TOE_ABI_OP_LISTEN:
    RANGE(u.listen.reserved);
    break;
  case TOE_ABI_OP_ACCEPT:
    RANGE(u.accept.reserved);
    break;
  case TOE_ABI_OP_SEND:
    RANGE(u.send.reserved);
    break;
  case TOE_ABI_OP_SHUTDOWN:
    RANGE(u.shutdown.reserved);
    break;
  case TOE_ABI_OP_CLOSE:
    RANGE(u.close.reserved);
    break;
  case TOE_ABI_OP_SETSOCKOPT:
    RANGE(u.sockopt.reserved0);
    RANGE(u.sockopt.reserved);
    break;
  case TOE_ABI_OP_GETSOCKOPT:
    RANGE(u.sockopt.reserved0);
    RANGE(u.sockopt.value);
    RANGE(u.sockopt.reserved);
    break;
  case TOE_ABI_OP_STATS:
    RANGE(u.stats.reserved);
    break;
  }
#undef RANGE
  r[n++] = (struct range){1, 4}; /* flags, reserved0 */
  return n;
}

TEST(reserved_fields_nonzero)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  uint32_t tested = 0;
  for (uint8_t op = 1; op < TOE_ABI_OP__COUNT; op++) {
    uint32_t h = 0;
    if (op == TOE_ABI_OP_SHARE || op == TOE_ABI_OP_ADOPT)
      continue; /* 1.2, behind TOE_ABI_CAP_SHARE: share_adopt below */
    if (op == TOE_ABI_OP_CAPTURE)
      continue; /* 1.2, behind TOE_ABI_CAP_CAPTURE: capture_op_validation below */
    if (op != TOE_ABI_OP_NOP && op != TOE_ABI_OP_OPEN && op != TOE_ABI_OP_STATS)
      h = fx_sock(&f, TOE_ABI_PROTO_TCP, tcp_state_for(op));
    struct toe_abi_sqe base = sqe_of(&f, op, h, TOE_ABI_PROTO_TCP);
    REQUIRE(validate(&f, &base) == 0);
    struct range r[8];
    size_t n = reserved_ranges(op, r);
    for (size_t k = 0; k < n; k++)
      for (size_t b = r[k].lo; b < r[k].hi; b++) {
        for (int v = 0; v < 2; v++) {
          struct toe_abi_sqe s = base;
          ((uint8_t *)&s)[b] = v ? 0xff : 0x01;
          int rc = validate(&f, &s);
          if (rc != -TOE_EINVAL)
            testlib_fail(__FILE__, __LINE__, "op %u byte %zu = %d: got %d", op, b, v, rc);
          tested++;
        }
      }
    if (h) {
      uint32_t i;
      REQUIRE(toe_abi_handle_lookup(&f.c, h, &i) == 0);
      toe_abi_handle_free(&f.c, i);
    }
  }
  CHECK(tested > 500);
  /* NOP and OPEN name no socket. */
  struct toe_abi_sqe s = sqe_of(&f, TOE_ABI_OP_NOP, 0, 0);
  s.handle = TOE_ABI_HANDLE(0, 1);
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s = sqe_of(&f, TOE_ABI_OP_OPEN, 0, TOE_ABI_PROTO_TCP);
  s.handle = TOE_ABI_HANDLE(0, 1);
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
}

/* 1.2: SHARE (a listener, a connection or a UDP socket, no arguments) and ADOPT (no handle, a
 * non-zero token, the token flags), both only with TOE_ABI_CAP_SHARE. */
TEST(share_adopt)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  uint32_t lis = fx_sock(&f, TOE_ABI_PROTO_TCP, TOE_ABI_HS_LISTENING);
  struct toe_abi_sqe s;
  memset(&s, 0, sizeof(s));
  s.opcode = TOE_ABI_OP_SHARE;
  s.handle = lis;
  CHECK_EQ(validate(&f, &s), -TOE_EOPNOTSUPP); /* not granted */
  struct toe_abi_sqe a;
  memset(&a, 0, sizeof(a));
  a.opcode = TOE_ABI_OP_ADOPT;
  a.u.adopt.token = 0x1234;
  CHECK_EQ(validate(&f, &a), -TOE_EOPNOTSUPP);

  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_2) == 0);
  lis = fx_sock(&f, TOE_ABI_PROTO_TCP, TOE_ABI_HS_LISTENING);
  uint32_t conn = fx_sock(&f, TOE_ABI_PROTO_TCP, TOE_ABI_HS_CONNECTED);
  uint32_t udp = fx_sock(&f, TOE_ABI_PROTO_UDP, TOE_ABI_HS_BOUND);
  uint32_t idx = 0;
  s.handle = lis;
  CHECK_EQ(toe_abi_validate_sqe(&f.c, &s, &idx), 0);
  CHECK_EQ(idx, TOE_ABI_HANDLE_INDEX(lis));
  s.handle = udp;
  CHECK_EQ(validate(&f, &s), 0);
  s.handle = conn; /* a connection is shared (fork and exec) */
  CHECK_EQ(validate(&f, &s), 0);
  struct toe_abi_hslot *cs = &f.c.slots[TOE_ABI_HANDLE_INDEX(conn)];
  cs->state = TOE_ABI_HS_CONNECTING; /* one being made is not (its CONNECT is one session's) */
  CHECK_EQ(validate(&f, &s), -TOE_EOPNOTSUPP);
  cs->state = TOE_ABI_HS_OPEN; /* nor one that neither listens nor is connected */
  CHECK_EQ(validate(&f, &s), -TOE_EOPNOTSUPP);
  cs->state = TOE_ABI_HS_CONNECTED;
  s.handle = TOE_ABI_HANDLE(40, 1); /* not open */
  CHECK_EQ(validate(&f, &s), -TOE_EBADF);
  s.handle = lis;
  for (size_t b = 0; b < sizeof(s.u.raw); b++) {
    struct toe_abi_sqe t = s;
    t.u.raw[b] = 1;
    CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  }
  CHECK_EQ(toe_abi_validate_sqe(&f.c, &a, &idx), 0);
  CHECK_EQ(idx, UINT32_MAX); /* names no socket of this client */
  struct toe_abi_sqe t = a;
  t.u.adopt.token = 0;
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  t = a;
  t.handle = lis;
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  for (size_t b = 0; b < sizeof(a.u.adopt.reserved); b++) {
    t = a;
    t.u.adopt.reserved[b] = 0xff;
    CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  }
  /* The token flags: one at a time, a pid only with F_BIND, and a pid the kernel could have. */
  t = a;
  t.u.adopt.adopt_flags = TOE_ABI_ADOPT_F_BIND;
  t.u.adopt.pid = 4242;
  CHECK_EQ(validate(&f, &t), 0);
  t.u.adopt.pid = 0; /* the client's own process */
  CHECK_EQ(validate(&f, &t), 0);
  t.u.adopt.pid = 0x80000000u;
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  t = a;
  t.u.adopt.adopt_flags = TOE_ABI_ADOPT_F_DROP;
  CHECK_EQ(validate(&f, &t), 0);
  t.u.adopt.pid = 1;
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  t = a;
  t.u.adopt.pid = 1; /* a pid with a plain ADOPT */
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  t = a;
  t.u.adopt.adopt_flags = TOE_ABI_ADOPT_F_BIND | TOE_ABI_ADOPT_F_DROP;
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  t.u.adopt.adopt_flags = 0x4;
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
}

TEST(bad_handles_every_op)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  /* A socket that was closed, and one that is open, in slots 0 and 1. */
  uint32_t stale = fx_sock(&f, TOE_ABI_PROTO_TCP, TOE_ABI_HS_CONNECTED);
  toe_abi_handle_free(&f.c, TOE_ABI_HANDLE_INDEX(stale));
  uint32_t live = fx_sock(&f, TOE_ABI_PROTO_TCP, TOE_ABI_HS_CONNECTED);
  uint32_t li = TOE_ABI_HANDLE_INDEX(live);
  const uint32_t bad[] = {
      TOE_ABI_HANDLE_NONE,
      TOE_ABI_HANDLE(FX_HANDLES, 1), /* index == table size */
      TOE_ABI_HANDLE(0xffff, 1),     /* far out */
      0xffffffffu,
      stale,                                            /* closed: generation moved on */
      TOE_ABI_HANDLE(li, 0),                            /* generation 0 */
      TOE_ABI_HANDLE(li, TOE_ABI_HANDLE_GEN(live) + 1), /* a future generation */
      TOE_ABI_HANDLE(3, 1),                             /* never opened */
  };
  for (size_t k = 0; k < N_SOCKET_OPS; k++) {
    uint8_t op = socket_ops[k];
    f.c.slots[li].state = tcp_state_for(op);
    struct toe_abi_sqe s = sqe_of(&f, op, live, TOE_ABI_PROTO_TCP);
    CHECK_EQ(validate(&f, &s), 0);
    for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
      s.handle = bad[b];
      uint32_t idx = 0;
      int rc = toe_abi_validate_sqe(&f.c, &s, &idx);
      if (rc != -TOE_EBADF)
        testlib_fail(__FILE__, __LINE__, "op %u handle %#x: got %d", op, bad[b], rc);
      CHECK_EQ(idx, UINT32_MAX);
    }
  }
  /* STATS on a socket, too. */
  struct toe_abi_sqe s = sqe_of(&f, TOE_ABI_OP_STATS, 0, 0);
  s.u.stats.kind = TOE_ABI_STATS_SOCKET;
  s.handle = live;
  CHECK_EQ(validate(&f, &s), 0);
  s.handle = stale;
  CHECK_EQ(validate(&f, &s), -TOE_EBADF);
  s.handle = TOE_ABI_HANDLE_NONE;
  CHECK_EQ(validate(&f, &s), -TOE_EBADF);
}

/* SEND and STATS name bytes of the buffer area: anything else, or a wrapping sum, is EFAULT. */
TEST(offsets_and_lengths)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  const uint64_t lo = f.layout.buf_off, hi = fx_buf_end(&f);
  struct {
    uint64_t off;
    uint32_t len;
    int want;
  } cases[] = {
      {lo, 1, 0},
      {lo, 0, 0},
      {hi - 100, 100, 0},
      {hi, 0, 0},                   /* empty at the very end */
      {lo, (uint32_t)(hi - lo), 0}, /* the whole area */
      {hi - 100, 101, -TOE_EFAULT}, /* one past the end */
      {hi, 1, -TOE_EFAULT},
      {hi + 1, 0, -TOE_EFAULT},
      {lo - 1, 1, -TOE_EFAULT}, /* the page before (fill ring) */
      {0, 64, -TOE_EFAULT},     /* the header */
      {f.layout.sq_off, 64, -TOE_EFAULT},
      {f.layout.cq_off, 64, -TOE_EFAULT},
      {lo, 0xffffffffu, -TOE_EFAULT},
      {UINT64_MAX, 1, -TOE_EFAULT},
      {UINT64_MAX - 50, 100, -TOE_EFAULT}, /* off + len wraps to a small number */
      {UINT64_MAX - 0xfffffffeull, 0xffffffffu, -TOE_EFAULT},
      {f.layout.region_size + TOE_ABI_PAGE, 0, -TOE_EFAULT},
  };
  uint32_t tcp = fx_sock(&f, TOE_ABI_PROTO_TCP, TOE_ABI_HS_CONNECTED);
  uint32_t udp = fx_sock(&f, TOE_ABI_PROTO_UDP, TOE_ABI_HS_CONNECTED);
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    CHECK_EQ(toe_abi_check_range(&f.c, cases[k].off, cases[k].len), cases[k].want);
    struct toe_abi_sqe s = sqe_of(&f, TOE_ABI_OP_SEND, tcp, TOE_ABI_PROTO_TCP);
    s.u.send.buf_off = cases[k].off;
    s.u.send.len = cases[k].len;
    CHECK_EQ(validate(&f, &s), cases[k].want);
    s.handle = udp; /* UDP: same range rule (these lengths are small or out of range anyway) */
    if (cases[k].len <= 65507)
      CHECK_EQ(validate(&f, &s), cases[k].want);
    s = sqe_of(&f, TOE_ABI_OP_STATS, 0, 0);
    s.u.stats.buf_off = cases[k].off;
    s.u.stats.len = cases[k].len;
    CHECK_EQ(validate(&f, &s), cases[k].want);
  }
  /* 64-bit lengths in the helper. */
  CHECK_EQ(toe_abi_check_range(&f.c, lo, UINT64_MAX), -TOE_EFAULT);
  CHECK_EQ(toe_abi_check_range(&f.c, 1, UINT64_MAX), -TOE_EFAULT);
}

struct state_case {
  uint8_t proto, op, state, flags;
  int want;
};

TEST(states)
{
  const uint8_t T = TOE_ABI_PROTO_TCP, U = TOE_ABI_PROTO_UDP;
  const uint8_t O = TOE_ABI_HS_OPEN, B = TOE_ABI_HS_BOUND, L = TOE_ABI_HS_LISTENING,
                G = TOE_ABI_HS_CONNECTING, C = TOE_ABI_HS_CONNECTED;
  const struct state_case cases[] = {
      {T, TOE_ABI_OP_BIND, O, 0, 0},
      {T, TOE_ABI_OP_BIND, B, 0, -TOE_EINVAL},
      {T, TOE_ABI_OP_BIND, L, 0, -TOE_EINVAL},
      {T, TOE_ABI_OP_BIND, G, 0, -TOE_EINVAL},
      {T, TOE_ABI_OP_BIND, C, 0, -TOE_EINVAL},
      {T, TOE_ABI_OP_LISTEN, B, 0, 0},
      {T, TOE_ABI_OP_LISTEN, O, 0, -TOE_EINVAL},
      {T, TOE_ABI_OP_LISTEN, L, 0, -TOE_EINVAL},
      {T, TOE_ABI_OP_LISTEN, G, 0, -TOE_EINVAL},
      {T, TOE_ABI_OP_LISTEN, C, 0, -TOE_EINVAL},
      {T, TOE_ABI_OP_CONNECT, O, 0, 0},
      {T, TOE_ABI_OP_CONNECT, B, 0, 0},
      {T, TOE_ABI_OP_CONNECT, G, 0, -TOE_EALREADY},
      {T, TOE_ABI_OP_CONNECT, C, 0, -TOE_EISCONN},
      {T, TOE_ABI_OP_CONNECT, L, 0, -TOE_EISCONN},
      {T, TOE_ABI_OP_ACCEPT, L, 0, 0},
      {T, TOE_ABI_OP_ACCEPT, O, 0, -TOE_EINVAL},
      {T, TOE_ABI_OP_ACCEPT, B, 0, -TOE_EINVAL},
      {T, TOE_ABI_OP_ACCEPT, C, 0, -TOE_EINVAL},
      {T, TOE_ABI_OP_SEND, C, 0, 0},
      {T, TOE_ABI_OP_SEND, C, TOE_ABI_HF_SHUT_RD, 0},
      {T, TOE_ABI_OP_SEND, C, TOE_ABI_HF_SHUT_WR, -TOE_EPIPE},
      {T, TOE_ABI_OP_SEND, O, 0, -TOE_ENOTCONN},
      {T, TOE_ABI_OP_SEND, B, 0, -TOE_ENOTCONN},
      {T, TOE_ABI_OP_SEND, L, 0, -TOE_ENOTCONN},
      {T, TOE_ABI_OP_SEND, G, 0, -TOE_ENOTCONN},
      {T, TOE_ABI_OP_SHUTDOWN, C, 0, 0},
      {T, TOE_ABI_OP_SHUTDOWN, G, 0, 0},
      {T, TOE_ABI_OP_SHUTDOWN, O, 0, -TOE_ENOTCONN},
      {T, TOE_ABI_OP_SHUTDOWN, B, 0, -TOE_ENOTCONN},
      {T, TOE_ABI_OP_SHUTDOWN, L, 0, -TOE_ENOTCONN},
      {T, TOE_ABI_OP_CLOSE, O, 0, 0},
      {T, TOE_ABI_OP_CLOSE, L, 0, 0},
      {T, TOE_ABI_OP_CLOSE, G, 0, 0},
      {T, TOE_ABI_OP_CLOSE, C, TOE_ABI_HF_SHUT_WR, 0},
      {T, TOE_ABI_OP_SETSOCKOPT, O, 0, 0},
      {T, TOE_ABI_OP_GETSOCKOPT, L, 0, 0},
      {U, TOE_ABI_OP_BIND, O, 0, 0},
      {U, TOE_ABI_OP_BIND, B, 0, -TOE_EINVAL},
      {U, TOE_ABI_OP_BIND, C, 0, -TOE_EINVAL},
      {U, TOE_ABI_OP_LISTEN, B, 0, -TOE_EOPNOTSUPP},
      {U, TOE_ABI_OP_ACCEPT, B, 0, -TOE_EOPNOTSUPP},
      {U, TOE_ABI_OP_SHUTDOWN, C, 0, -TOE_EOPNOTSUPP},
      {U, TOE_ABI_OP_CONNECT, O, 0, 0},
      {U, TOE_ABI_OP_CONNECT, B, 0, 0},
      {U, TOE_ABI_OP_CONNECT, C, 0, 0}, /* re-connect */
      {U, TOE_ABI_OP_SEND, C, 0, 0},    /* no destination: needs a connected socket */
      {U, TOE_ABI_OP_SEND, O, 0, -TOE_EDESTADDRREQ},
      {U, TOE_ABI_OP_SEND, B, 0, -TOE_EDESTADDRREQ},
      {U, TOE_ABI_OP_CLOSE, B, 0, 0},
  };
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    struct fixture f;
    REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
    uint32_t h = fx_sock(&f, cases[k].proto, cases[k].state);
    f.c.slots[TOE_ABI_HANDLE_INDEX(h)].flags = cases[k].flags;
    struct toe_abi_sqe s = sqe_of(&f, cases[k].op, h, cases[k].proto);
    int rc = validate(&f, &s);
    if (rc != cases[k].want)
      testlib_fail(__FILE__, __LINE__, "case %zu (proto %u op %u state %u): got %d want %d", k,
                   cases[k].proto, cases[k].op, cases[k].state, rc, cases[k].want);
  }
}

TEST(addresses)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  uint32_t t = fx_sock(&f, TOE_ABI_PROTO_TCP, TOE_ABI_HS_OPEN);
  uint32_t u = fx_sock(&f, TOE_ABI_PROTO_UDP, TOE_ABI_HS_BOUND);
  struct toe_abi_sqe s;

  /* BIND */
  s = sqe_of(&f, TOE_ABI_OP_BIND, t, 0);
  s.u.addr.addr = inet(0, 0, 0, 0, 0); /* any address, ephemeral port */
  CHECK_EQ(validate(&f, &s), 0);
  s.u.addr.addr.family = 99;
  CHECK_EQ(validate(&f, &s), -TOE_EAFNOSUPPORT);
  s.u.addr.addr.family = TOE_ABI_AF_UNSPEC;
  CHECK_EQ(validate(&f, &s), -TOE_EAFNOSUPPORT);
  s.u.addr.addr = inet(198, 18, 0, 1, 80);
  s.u.addr.addr.addr[4] = 1; /* garbage past an IPv4 address */
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.u.addr.addr = inet(198, 18, 0, 1, 80);
  s.u.addr.addr.addr[15] = 1;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.u.addr.addr = inet(198, 18, 0, 1, 80);
  s.u.addr.addr.scope_id = 3;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.u.addr.addr = inet(198, 18, 0, 1, 80);
  s.u.addr.addr.family = TOE_ABI_AF_INET6; /* not granted */
  CHECK_EQ(validate(&f, &s), -TOE_EAFNOSUPPORT);

  /* CONNECT: a peer needs an address and a port; UNSPEC only dissolves a UDP association. */
  s = sqe_of(&f, TOE_ABI_OP_CONNECT, t, 0);
  s.u.addr.addr = inet(198, 18, 0, 2, 0);
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.u.addr.addr = inet(0, 0, 0, 0, 80);
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  memset(&s.u.addr.addr, 0, sizeof(s.u.addr.addr));
  CHECK_EQ(validate(&f, &s), -TOE_EAFNOSUPPORT);
  s.handle = u;
  CHECK_EQ(validate(&f, &s), 0);
  s.u.addr.addr.port = 53; /* UNSPEC with anything set */
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);

  /* SEND: a TCP send names no destination; a UDP one a full one (or none when connected). */
  f.c.slots[TOE_ABI_HANDLE_INDEX(t)].state = TOE_ABI_HS_CONNECTED;
  s = sqe_of(&f, TOE_ABI_OP_SEND, t, 0);
  s.u.send.dst = inet(198, 18, 0, 2, 80);
  CHECK_EQ(validate(&f, &s), -TOE_EISCONN);
  s.handle = u;
  CHECK_EQ(validate(&f, &s), 0);
  s.u.send.dst = inet(198, 18, 0, 2, 0);
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.u.send.dst = inet(198, 18, 0, 2, 9);
  s.u.send.dst.family = 7;
  CHECK_EQ(validate(&f, &s), -TOE_EAFNOSUPPORT);
  s.u.send.dst = inet(255, 255, 255, 255, 9); /* broadcast is allowed */
  CHECK_EQ(validate(&f, &s), 0);

  /* With IPv6 granted: the family must still be the socket's. */
  struct fixture f6;
  REQUIRE(fx_init(&f6, TOE_ABI_CAPS_1_0 | TOE_ABI_CAP_IPV6) == 0);
  uint32_t t4 = fx_sock(&f6, TOE_ABI_PROTO_TCP, TOE_ABI_HS_OPEN);
  s = sqe_of(&f6, TOE_ABI_OP_BIND, t4, 0);
  s.u.addr.addr.family = TOE_ABI_AF_INET6;
  CHECK_EQ(validate(&f6, &s), -TOE_EAFNOSUPPORT);
  s = sqe_of(&f6, TOE_ABI_OP_OPEN, 0, TOE_ABI_PROTO_TCP);
  s.u.open.family = TOE_ABI_AF_INET6;
  CHECK_EQ(validate(&f6, &s), 0);

  /* 1.7: an AF_INET6 socket takes AF_INET6 addresses (any scope id), not AF_INET ones. */
  uint32_t h6 = 0, i6;
  CHECK_EQ(toe_abi_handle_alloc(&f6.c, TOE_ABI_PROTO_UDP, TOE_ABI_AF_INET6, &h6), 0);
  CHECK_EQ(toe_abi_handle_lookup(&f6.c, h6, &i6), 0);
  f6.c.slots[i6].state = TOE_ABI_HS_OPEN;
  s = sqe_of(&f6, TOE_ABI_OP_BIND, h6, 0);
  memset(&s.u.addr.addr, 0, sizeof(s.u.addr.addr));
  s.u.addr.addr.family = TOE_ABI_AF_INET6;
  s.u.addr.addr.port = 7000;
  s.u.addr.addr.scope_id = 3;
  CHECK_EQ(validate(&f6, &s), 0);
  s.u.addr.addr = inet(0, 0, 0, 0, 7000);
  CHECK_EQ(validate(&f6, &s), -TOE_EAFNOSUPPORT);
  s = sqe_of(&f6, TOE_ABI_OP_CONNECT, h6, 0);
  memset(&s.u.addr.addr, 0, sizeof(s.u.addr.addr));
  s.u.addr.addr.family = TOE_ABI_AF_INET6;
  s.u.addr.addr.port = 53;
  CHECK_EQ(validate(&f6, &s), -TOE_EINVAL); /* :: is no peer */
  s.u.addr.addr.addr[15] = 1;
  CHECK_EQ(validate(&f6, &s), 0);
  s.u.addr.addr.port = 0;
  CHECK_EQ(validate(&f6, &s), -TOE_EINVAL); /* nor is port 0 */
  /* IPV6_V6ONLY: AF_INET6 sockets only, 0 or 1, and only with the capability. */
  s = sqe_of(&f6, TOE_ABI_OP_SETSOCKOPT, h6, 0);
  s.u.sockopt.opt = TOE_ABI_IPV6_V6ONLY;
  s.u.sockopt.value = 1;
  CHECK_EQ(validate(&f6, &s), 0);
  s.u.sockopt.value = 2;
  CHECK_EQ(validate(&f6, &s), -TOE_EINVAL);
  s.u.sockopt.value = 0;
  s.handle = t4;
  CHECK_EQ(validate(&f6, &s), -TOE_ENOPROTOOPT);
  s.handle = h6;
  f6.c.caps &= ~TOE_ABI_CAP_IPV6;
  CHECK_EQ(validate(&f6, &s), -TOE_ENOPROTOOPT);
}

TEST(open_arguments_and_caps)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAP_UDP) == 0); /* UDP only, no STATS */
  struct toe_abi_sqe s = sqe_of(&f, TOE_ABI_OP_OPEN, 0, TOE_ABI_PROTO_UDP);
  CHECK_EQ(validate(&f, &s), 0);
  s.u.open.proto = TOE_ABI_PROTO_TCP; /* not granted */
  CHECK_EQ(validate(&f, &s), -TOE_EPROTONOSUPPORT);
  s.u.open.proto = 1; /* ICMP: never */
  CHECK_EQ(validate(&f, &s), -TOE_EPROTONOSUPPORT);
  s.u.open.proto = TOE_ABI_PROTO_UDP;
  s.u.open.family = TOE_ABI_AF_INET6;
  CHECK_EQ(validate(&f, &s), -TOE_EAFNOSUPPORT);
  s.u.open.family = 1;
  CHECK_EQ(validate(&f, &s), -TOE_EAFNOSUPPORT);
  s = sqe_of(&f, TOE_ABI_OP_STATS, 0, 0);
  CHECK_EQ(validate(&f, &s), -TOE_EOPNOTSUPP);
}

TEST(op_arguments)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  uint32_t t = fx_sock(&f, TOE_ABI_PROTO_TCP, TOE_ABI_HS_CONNECTED);
  uint32_t u = fx_sock(&f, TOE_ABI_PROTO_UDP, TOE_ABI_HS_CONNECTED);
  struct toe_abi_sqe s;

  /* SEND flags */
  s = sqe_of(&f, TOE_ABI_OP_SEND, t, 0);
  s.u.send.send_flags = TOE_ABI_SEND_F_MORE | TOE_ABI_SEND_F_DONTWAIT;
  CHECK_EQ(validate(&f, &s), 0);
  s.u.send.send_flags = 0x4;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.u.send.send_flags = 0x80000000u;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.handle = u;
  s.u.send.send_flags = TOE_ABI_SEND_F_DONTWAIT;
  CHECK_EQ(validate(&f, &s), 0);
  s.u.send.send_flags = TOE_ABI_SEND_F_MORE; /* no corking datagrams */
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  /* A datagram larger than UDP can carry (the area here is 128 KiB). */
  s.u.send.send_flags = 0;
  s.u.send.len = 65507;
  CHECK_EQ(validate(&f, &s), 0);
  s.u.send.len = 65508;
  CHECK_EQ(validate(&f, &s), -TOE_EMSGSIZE);
  s.handle = t; /* a stream has no such limit */
  CHECK_EQ(validate(&f, &s), 0);

  /* SHUTDOWN how, CLOSE flags */
  s = sqe_of(&f, TOE_ABI_OP_SHUTDOWN, t, 0);
  for (uint32_t how = 0; how <= 2; how++) {
    s.u.shutdown.how = how;
    CHECK_EQ(validate(&f, &s), 0);
  }
  s.u.shutdown.how = 3;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.u.shutdown.how = 0xffffffffu;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s = sqe_of(&f, TOE_ABI_OP_CLOSE, t, 0);
  s.u.close.close_flags = TOE_ABI_CLOSE_F_ABORT;
  CHECK_EQ(validate(&f, &s), 0);
  s.u.close.close_flags = 2;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);

  /* Socket options */
  const uint32_t tcp_only[] = {TOE_ABI_SO_KEEPALIVE,    TOE_ABI_TCP_NODELAY, TOE_ABI_TCP_KEEPIDLE,
                               TOE_ABI_TCP_KEEPINTVL,   TOE_ABI_TCP_KEEPCNT, TOE_ABI_TCP_CONGESTION,
                               TOE_ABI_SO_LINGER_ABORT, TOE_ABI_TCP_MAXSEG};
  for (size_t k = 0; k < sizeof(tcp_only) / sizeof(tcp_only[0]); k++) {
    for (int get = 0; get < 2; get++) {
      s = sqe_of(&f, get ? TOE_ABI_OP_GETSOCKOPT : TOE_ABI_OP_SETSOCKOPT, t, 0);
      s.u.sockopt.opt = tcp_only[k];
      s.u.sockopt.value = get ? 0 : 1;
      CHECK_EQ(validate(&f, &s), 0);
      s.handle = u;
      CHECK_EQ(validate(&f, &s), -TOE_ENOPROTOOPT);
    }
  }
  const uint32_t both[] = {TOE_ABI_SO_RCVBUF, TOE_ABI_SO_SNDBUF, TOE_ABI_SO_REUSEADDR,
                           TOE_ABI_SO_REUSEPORT};
  for (size_t k = 0; k < sizeof(both) / sizeof(both[0]); k++) {
    s = sqe_of(&f, TOE_ABI_OP_SETSOCKOPT, u, 0);
    s.u.sockopt.opt = both[k];
    CHECK_EQ(validate(&f, &s), 0);
  }
  const uint32_t unknown[] = {0, 13, 0xff, 0x103, 0x200, 0xffffffffu};
  for (size_t k = 0; k < sizeof(unknown) / sizeof(unknown[0]); k++) {
    s = sqe_of(&f, TOE_ABI_OP_SETSOCKOPT, t, 0);
    s.u.sockopt.opt = unknown[k];
    CHECK_EQ(validate(&f, &s), -TOE_ENOPROTOOPT);
    s.opcode = TOE_ABI_OP_GETSOCKOPT;
    s.u.sockopt.value = 0;
    CHECK_EQ(validate(&f, &s), -TOE_ENOPROTOOPT);
  }
  /* Read-only options cannot be set. */
  s = sqe_of(&f, TOE_ABI_OP_SETSOCKOPT, t, 0);
  s.u.sockopt.opt = TOE_ABI_SO_ERROR;
  CHECK_EQ(validate(&f, &s), -TOE_ENOPROTOOPT);
  s.u.sockopt.opt = TOE_ABI_SO_NREAD;
  CHECK_EQ(validate(&f, &s), -TOE_ENOPROTOOPT);
  s.opcode = TOE_ABI_OP_GETSOCKOPT;
  s.u.sockopt.value = 0;
  CHECK_EQ(validate(&f, &s), 0);
  /* RXBUFS: 0 (pause) ..buf_count */
  s = sqe_of(&f, TOE_ABI_OP_SETSOCKOPT, u, 0);
  s.u.sockopt.opt = TOE_ABI_SO_RXBUFS;
  const int64_t vals[] = {1, FX_BUFS, 0, -1, FX_BUFS + 1, INT64_MIN, INT64_MAX};
  const int want[] = {0, 0, 0, -TOE_EINVAL, -TOE_EINVAL, -TOE_EINVAL, -TOE_EINVAL};
  for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
    s.u.sockopt.value = vals[k];
    CHECK_EQ(validate(&f, &s), want[k]);
  }

  /* STATS kinds */
  s = sqe_of(&f, TOE_ABI_OP_STATS, 0, 0);
  s.u.stats.kind = TOE_ABI_STATS_ENGINE;
  CHECK_EQ(validate(&f, &s), 0);
  s.u.stats.kind = 0;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.u.stats.kind = TOE_ABI_STATS_FLOWS; /* 4: not granted to this session, so unknown */
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.u.stats.kind = 5;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.u.stats.kind = TOE_ABI_STATS_CLIENT;
  s.handle = t; /* client-wide stats name no socket */
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);

  /* 1.1: FLOWS for a session granted CAP_FLOWS, device-wide (no handle). */
  f.c.caps |= TOE_ABI_CAP_FLOWS;
  s = sqe_of(&f, TOE_ABI_OP_STATS, 0, 0);
  s.u.stats.kind = TOE_ABI_STATS_FLOWS;
  CHECK_EQ(validate(&f, &s), 0);
  s.handle = t;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.handle = 0;
  s.u.stats.kind = 5;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);

  /* 1.2: FILTERS only for a session granted CAP_FILTERS, device-wide (no handle). */
  s.u.stats.kind = TOE_ABI_STATS_FILTERS;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  f.c.caps |= TOE_ABI_CAP_FILTERS;
  CHECK_EQ(validate(&f, &s), 0);
  s.handle = t;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);

  /* 1.2: the owner tag options exist only with CAP_ORIGIN, on TCP and UDP sockets alike. */
  const uint32_t owner[] = {TOE_ABI_SO_OWNER_PID, TOE_ABI_SO_OWNER_COMM_LO,
                            TOE_ABI_SO_OWNER_COMM_HI};
  for (size_t k = 0; k < sizeof(owner) / sizeof(owner[0]); k++) {
    s = sqe_of(&f, TOE_ABI_OP_SETSOCKOPT, t, 0);
    s.u.sockopt.opt = owner[k];
    s.u.sockopt.value = 1234;
    CHECK_EQ(validate(&f, &s), -TOE_ENOPROTOOPT); /* not granted yet */
  }
  f.c.caps |= TOE_ABI_CAP_ORIGIN;
  for (size_t k = 0; k < sizeof(owner) / sizeof(owner[0]); k++) {
    for (int on_udp = 0; on_udp < 2; on_udp++) {
      s = sqe_of(&f, TOE_ABI_OP_SETSOCKOPT, on_udp ? u : t, 0);
      s.u.sockopt.opt = owner[k];
      s.u.sockopt.value = 1234;
      CHECK_EQ(validate(&f, &s), 0);
      s.opcode = TOE_ABI_OP_GETSOCKOPT;
      s.u.sockopt.value = 0;
      CHECK_EQ(validate(&f, &s), 0);
    }
  }
  s = sqe_of(&f, TOE_ABI_OP_SETSOCKOPT, t, 0);
  s.u.sockopt.opt = TOE_ABI_SO_OWNER_PID;
  s.u.sockopt.value = -1;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.u.sockopt.value = (int64_t)INT32_MAX + 1;
  CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
  s.u.sockopt.value = INT32_MAX;
  CHECK_EQ(validate(&f, &s), 0);
  s.u.sockopt.opt = TOE_ABI_SO_OWNER_COMM_HI + 1; /* the rest of the range is unknown */
  CHECK_EQ(validate(&f, &s), -TOE_ENOPROTOOPT);
}

/* 1.2 CAPTURE: only with the capability, device-wide, reserved bytes zero, filter text in range
 * and bounded; STOP carries nothing. */
TEST(capture_op_validation)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_1) == 0);
  struct toe_abi_sqe s;
  memset(&s, 0, sizeof(s));
  s.opcode = TOE_ABI_OP_CAPTURE;
  s.u.capture.buf_off = f.layout.buf_off;
  s.u.capture.len = 3;
  CHECK_EQ(validate(&f, &s), -TOE_EOPNOTSUPP); /* not granted */
  f.c.caps |= TOE_ABI_CAP_CAPTURE;
  uint32_t idx = 7;
  CHECK_EQ(toe_abi_validate_sqe(&f.c, &s, &idx), 0);
  CHECK_EQ(idx, UINT32_MAX);
  struct toe_abi_sqe t = s;
  t.handle = TOE_ABI_HANDLE(0, 1);
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  for (size_t b = 0; b < sizeof(s.u.capture.reserved); b++) {
    t = s;
    t.u.capture.reserved[b] = 1;
    CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  }
  t = s;
  t.u.capture.capture_flags = 8; /* unknown */
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  t.u.capture.capture_flags = TOE_ABI_CAPTURE_F_BPF; /* 1.4, not granted */
  CHECK_EQ(validate(&f, &t), -TOE_EOPNOTSUPP);
  t.u.capture.capture_flags = TOE_ABI_CAPTURE_F_DIR;
  CHECK_EQ(validate(&f, &t), -TOE_EOPNOTSUPP);
  t = s;
  t.u.capture.len = TOE_ABI_CAPTURE_FILTER_MAX + 1;
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  t = s;
  t.u.capture.buf_off = f.layout.buf_off - 1;
  CHECK_EQ(validate(&f, &t), -TOE_EFAULT);
  t = s;
  t.u.capture.buf_off = UINT64_MAX - 1;
  CHECK_EQ(validate(&f, &t), -TOE_EFAULT);
  t = s; /* no filter: no offset either */
  t.u.capture.len = 0;
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  t.u.capture.buf_off = 0;
  CHECK_EQ(validate(&f, &t), 0);
  /* STOP names nothing else */
  memset(&t, 0, sizeof(t));
  t.opcode = TOE_ABI_OP_CAPTURE;
  t.u.capture.capture_flags = TOE_ABI_CAPTURE_F_STOP;
  CHECK_EQ(validate(&f, &t), 0);
  t.u.capture.snaplen = 100;
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
}

/* 1.4 CAPTURE with a BPF program: only with TOE_ABI_CAP_CAPTURE_BPF, whole instructions, 1 to
 * 4096 of them, inside the buffer area; direction-tagged records likewise only when granted. */
/* 1.5 (TOE_ABI_CAP_RXMETA): SO_RXMETA and IP_RECVERR exist only with the capability, only on
 * UDP sockets, and take 0 or 1. */
TEST(rxmeta_options)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_4) == 0);
  uint32_t t = fx_sock(&f, TOE_ABI_PROTO_TCP, TOE_ABI_HS_CONNECTED);
  uint32_t u = fx_sock(&f, TOE_ABI_PROTO_UDP, TOE_ABI_HS_BOUND);
  const uint32_t opts[] = {TOE_ABI_SO_RXMETA, TOE_ABI_IP_RECVERR};
  struct toe_abi_sqe s;
  for (size_t k = 0; k < 2; k++) {
    s = sqe_of(&f, TOE_ABI_OP_SETSOCKOPT, u, 0);
    s.u.sockopt.opt = opts[k];
    s.u.sockopt.value = 1;
    f.c.caps &= ~TOE_ABI_CAP_RXMETA;
    CHECK_EQ(validate(&f, &s), -TOE_ENOPROTOOPT); /* a 1.4 session: unknown */
    f.c.caps |= TOE_ABI_CAP_RXMETA;
    CHECK_EQ(validate(&f, &s), 0);
    s.u.sockopt.value = 0;
    CHECK_EQ(validate(&f, &s), 0);
    const int64_t bad[] = {2, -1, INT64_MIN, INT64_MAX};
    for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
      s.u.sockopt.value = bad[b];
      CHECK_EQ(validate(&f, &s), -TOE_EINVAL);
    }
    s.opcode = TOE_ABI_OP_GETSOCKOPT;
    s.u.sockopt.value = 0;
    CHECK_EQ(validate(&f, &s), 0);
    s.handle = t; /* a stream has no datagrams to describe */
    CHECK_EQ(validate(&f, &s), -TOE_ENOPROTOOPT);
    s.opcode = TOE_ABI_OP_SETSOCKOPT;
    s.u.sockopt.value = 1;
    CHECK_EQ(validate(&f, &s), -TOE_ENOPROTOOPT);
  }
  /* The meta record's layout is pinned (abi.h asserts it too). */
  CHECK_EQ(sizeof(struct toe_abi_rx_meta), TOE_ABI_RX_META_SIZE);
  CHECK_EQ(offsetof(struct toe_abi_rx_meta, time_ns), 8);
  CHECK_EQ(offsetof(struct toe_abi_rx_meta, dst), 16);
}

TEST(capture_bpf_op_validation)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_1 | TOE_ABI_CAP_CAPTURE) == 0);
  struct toe_abi_sqe s;
  memset(&s, 0, sizeof(s));
  s.opcode = TOE_ABI_OP_CAPTURE;
  s.u.capture.buf_off = f.layout.buf_off;
  s.u.capture.len = 8 * 4;
  s.u.capture.capture_flags = TOE_ABI_CAPTURE_F_BPF | TOE_ABI_CAPTURE_F_DIR;
  CHECK_EQ(validate(&f, &s), -TOE_EOPNOTSUPP);
  f.c.caps |= TOE_ABI_CAP_CAPTURE_BPF;
  CHECK_EQ(validate(&f, &s), 0);
  struct toe_abi_sqe t = s;
  t.u.capture.len = 8 * 4 + 3; /* part of an instruction */
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  t.u.capture.len = 0; /* a program has at least its RET */
  t.u.capture.buf_off = 0;
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  t = s;
  t.u.capture.len = 8 * (TOE_ABI_CAPTURE_BPF_MAX + 1);
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
  t.u.capture.len = 8 * TOE_ABI_CAPTURE_BPF_MAX; /* the most; must still fit the area */
  CHECK_EQ(validate(&f, &t),
           (uint64_t)f.layout.buf_count * f.layout.buf_size >= 8 * TOE_ABI_CAPTURE_BPF_MAX
               ? 0
               : -TOE_EFAULT);
  t = s;
  t.u.capture.buf_off = f.layout.buf_off + (uint64_t)f.layout.buf_count * f.layout.buf_size - 8;
  CHECK_EQ(validate(&f, &t), -TOE_EFAULT); /* runs past the buffer area */
  t = s;                                   /* direction-tagged records with the 1.2 text filter */
  t.u.capture.capture_flags = TOE_ABI_CAPTURE_F_DIR;
  t.u.capture.len = 3;
  CHECK_EQ(validate(&f, &t), 0);
  t.u.capture.capture_flags = TOE_ABI_CAPTURE_F_STOP | TOE_ABI_CAPTURE_F_DIR; /* STOP is alone */
  t.u.capture.len = 0;
  t.u.capture.buf_off = 0;
  CHECK_EQ(validate(&f, &t), -TOE_EINVAL);
}

/* A buffer handed over without a socket (EV_CAPTURE) is the host's again, and only a buffer the
 * device holds can be. */
TEST(buffer_give_without_socket)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  CHECK_EQ(toe_abi_buf_give(&f.c, 2), -TOE_EINVAL); /* the host's already */
  CHECK_EQ(toe_abi_fill_take(&f.c, 2), 0);
  CHECK_EQ(toe_abi_buf_give(&f.c, 2), 0);
  CHECK_EQ(f.c.bufs[2], TOE_ABI_BUF_HOST);
  CHECK_EQ(toe_abi_buf_give(&f.c, FX_BUFS), -TOE_EINVAL);
  CHECK_EQ(toe_abi_fill_take(&f.c, 2), 0); /* and it can come back */
}

TEST(cqe_error)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  struct toe_abi_sqe s = sqe_of(&f, TOE_ABI_OP_SEND, TOE_ABI_HANDLE(2, 7), 0);
  struct toe_abi_cqe c;
  memset(&c, 0xff, sizeof(c));
  toe_abi_cqe_error(&c, &s, -TOE_EBADF);
  CHECK(c.user_data == s.user_data);
  CHECK_EQ(c.res, -TOE_EBADF);
  CHECK_EQ(c.handle, TOE_ABI_HANDLE(2, 7));
  CHECK_EQ(c.type, TOE_ABI_CQE_OP);
  CHECK_EQ(c.opcode, TOE_ABI_OP_SEND);
  CHECK_EQ(c.flags, TOE_ABI_CQE_F_VALIDATION);
  CHECK_EQ(c.reserved0, 0);
  uint8_t zero[40] = {0};
  CHECK_MEM(c.u.raw, zero, sizeof(zero));
}

/* ------------------------------------------------------------------------------------------ */
/* Buffers and abuse                                                                          */

TEST(fill_ring_ownership)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  /* Bad ids and double returns are refused and counted. */
  CHECK_EQ(toe_abi_fill_take(&f.c, FX_BUFS), -TOE_EFAULT);
  CHECK_EQ(toe_abi_fill_take(&f.c, 0xffffffffu), -TOE_EFAULT);
  CHECK_EQ(toe_abi_fill_take(&f.c, 3), 0);
  CHECK_EQ(f.c.bufs[3], TOE_ABI_BUF_DEVICE);
  CHECK_EQ(toe_abi_fill_take(&f.c, 3), -TOE_EALREADY);
  CHECK_EQ(f.c.stats.fill_bad, 3);
  CHECK_EQ(f.c.stats.fill_taken, 1);

  /* Lending counts against the socket; the return is its credit. */
  uint32_t h = fx_sock(&f, TOE_ABI_PROTO_TCP, TOE_ABI_HS_CONNECTED);
  uint32_t i = TOE_ABI_HANDLE_INDEX(h);
  CHECK_EQ(toe_abi_buf_lend(&f.c, 3, h), 0);
  CHECK_EQ(f.c.bufs[3], h);
  CHECK_EQ(f.c.slots[i].rx_lent, 1);
  CHECK_EQ(f.c.stats.bufs_lent, 1);
  CHECK_EQ(toe_abi_buf_lend(&f.c, 3, h), -TOE_EINVAL); /* not the device's any more */
  CHECK_EQ(toe_abi_buf_lend(&f.c, 4, h), -TOE_EINVAL); /* never given to the device */
  CHECK_EQ(toe_abi_fill_take(&f.c, 3), 0);
  CHECK_EQ(f.c.slots[i].rx_lent, 0);
  CHECK_EQ(toe_abi_buf_lend(&f.c, 3, TOE_ABI_HANDLE(i, 9)), -TOE_EINVAL); /* stale handle */
  CHECK_EQ(toe_abi_buf_lend(&f.c, FX_BUFS, h), -TOE_EINVAL);

  /* A buffer lent to a socket that closed, whose slot now holds a new socket: returning it must
   * not take credit from the newcomer. */
  CHECK_EQ(toe_abi_buf_lend(&f.c, 3, h), 0);
  CHECK_EQ(toe_abi_fill_take(&f.c, 5), 0);
  CHECK_EQ(toe_abi_buf_lend(&f.c, 5, h), 0);
  toe_abi_handle_free(&f.c, i);
  /* Round-robin reuse: the freed slot comes back after the others were taken. */
  uint32_t h2 = 0;
  for (int k = 0; k < FX_HANDLES; k++) {
    h2 = fx_sock(&f, TOE_ABI_PROTO_TCP, TOE_ABI_HS_CONNECTED);
    if (TOE_ABI_HANDLE_INDEX(h2) == i)
      break;
  }
  REQUIRE(TOE_ABI_HANDLE_INDEX(h2) == i);
  CHECK(h2 != h);
  CHECK_EQ(toe_abi_fill_take(&f.c, 6), 0);
  CHECK_EQ(toe_abi_buf_lend(&f.c, 6, h2), 0);
  CHECK_EQ(f.c.slots[i].rx_lent, 1);
  CHECK_EQ(toe_abi_fill_take(&f.c, 3), 0); /* the old socket's */
  CHECK_EQ(toe_abi_fill_take(&f.c, 5), 0);
  CHECK_EQ(f.c.slots[i].rx_lent, 1);
  CHECK_EQ(toe_abi_fill_take(&f.c, 6), 0); /* the new one's */
  CHECK_EQ(f.c.slots[i].rx_lent, 0);
  CHECK_EQ(toe_abi_buf_offset(&f.c, 6), f.layout.buf_off + 6 * 2048);
}

TEST(abuse_limit)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  uint64_t t = 5000000000ull;
  /* 64 strikes within a second are tolerated, the 65th ends the session. */
  for (uint32_t k = 0; k < TOE_ABI_STRIKE_LIMIT; k++)
    CHECK(!toe_abi_client_strike(&f.c, t + k * 1000000ull));
  CHECK(toe_abi_client_strike(&f.c, t + 500000000ull));
  CHECK_EQ(f.c.stats.strikes, TOE_ABI_STRIKE_LIMIT + 1);
  /* A client making occasional mistakes is never disconnected. */
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  for (uint32_t k = 0; k < 10 * TOE_ABI_STRIKE_LIMIT; k++)
    CHECK(!toe_abi_client_strike(&f.c, t + k * (TOE_ABI_STRIKE_WINDOW_NS / 32)));
}

/* ------------------------------------------------------------------------------------------ */
/* Host and device over a real region                                                         */

/* The device's loop in miniature: copy SQEs out, validate, answer each with a completion. */
static int device_poll(struct toe_abi_client *c, struct toe_ring *sq, struct toe_ring *cq,
                       uint64_t now, bool *disconnect)
{
  struct toe_abi_sqe batch[4];
  int n = toe_ring_cons_read(sq, batch, 4);
  if (n <= 0)
    return n;
  int room = toe_ring_prod_reserve(cq, (uint32_t)n);
  if (room < 0)
    return room;
  for (int k = 0; k < room; k++) {
    struct toe_abi_cqe *cqe = toe_ring_prod_slot(cq, (uint32_t)k);
    uint32_t idx;
    int rc = toe_abi_validate_sqe(c, &batch[k], &idx);
    if (rc < 0) {
      toe_abi_cqe_error(cqe, &batch[k], rc);
      if (toe_abi_client_strike(c, now))
        *disconnect = true;
      continue;
    }
    memset(cqe, 0, sizeof(*cqe));
    cqe->type = TOE_ABI_CQE_OP;
    cqe->opcode = batch[k].opcode;
    cqe->user_data = batch[k].user_data;
    cqe->handle = batch[k].handle;
    if (batch[k].opcode == TOE_ABI_OP_OPEN) {
      uint32_t h;
      cqe->res = toe_abi_handle_alloc(c, batch[k].u.open.proto, batch[k].u.open.family, &h);
      cqe->handle = cqe->res == 0 ? h : 0;
    } else if (batch[k].opcode == TOE_ABI_OP_CLOSE) {
      toe_abi_handle_free(c, idx);
    }
  }
  toe_ring_prod_submit(cq, (uint32_t)room);
  toe_ring_publish(cq);
  toe_ring_cons_release(sq, (uint32_t)room);
  return room;
}

TEST(host_and_device_through_region)
{
  struct fixture f;
  REQUIRE(fx_init(&f, TOE_ABI_CAPS_1_0) == 0);
  const struct toe_abi_layout *l = &f.layout;
  uint8_t *region = aligned_alloc(TOE_ABI_PAGE, l->region_size);
  toe_abi_region_init(region, l, TOE_ABI_CAPS_1_0, 1, 0xfffffffau);
  struct toe_abi_ring_ctl *sqc = (void *)(region + l->sq_ctl_off);
  struct toe_abi_ring_ctl *cqc = (void *)(region + l->cq_ctl_off);
  struct toe_ring hsq, hcq, dsq, dcq; /* host and device views */
  REQUIRE(toe_ring_init_prod(&hsq, sqc, region + l->sq_off, l->sq_entries, 64) == 0);
  REQUIRE(toe_ring_init_cons(&dsq, sqc, region + l->sq_off, l->sq_entries, 64) == 0);
  REQUIRE(toe_ring_init_prod(&dcq, cqc, region + l->cq_off, l->cq_entries, 64) == 0);
  REQUIRE(toe_ring_init_cons(&hcq, cqc, region + l->cq_off, l->cq_entries, 64) == 0);
  bool disc = false;

  /* OPEN, then CLOSE of what it returned, then a use of the closed handle. */
  struct toe_abi_sqe s = sqe_of(&f, TOE_ABI_OP_OPEN, 0, TOE_ABI_PROTO_TCP);
  s.user_data = 1;
  REQUIRE(toe_ring_prod_write(&hsq, &s, 1) == 1);
  toe_ring_publish(&hsq);
  CHECK_EQ(device_poll(&f.c, &dsq, &dcq, 0, &disc), 1);
  struct toe_abi_cqe c;
  REQUIRE(toe_ring_consume(&hcq, &c, 1) == 1);
  CHECK(c.user_data == 1);
  CHECK_EQ(c.res, 0);
  uint32_t h = c.handle;
  CHECK(h != 0);
  s = sqe_of(&f, TOE_ABI_OP_CLOSE, h, 0);
  s.user_data = 2;
  struct toe_abi_sqe s2 = sqe_of(&f, TOE_ABI_OP_GETSOCKOPT, h, 0);
  s2.user_data = 3;
  REQUIRE(toe_ring_prod_write(&hsq, &s, 1) == 1);
  REQUIRE(toe_ring_prod_write(&hsq, &s2, 1) == 1);
  toe_ring_publish(&hsq);
  CHECK_EQ(device_poll(&f.c, &dsq, &dcq, 0, &disc), 2);
  struct toe_abi_cqe cs[2];
  REQUIRE(toe_ring_consume(&hcq, cs, 2) == 2);
  CHECK(cs[0].user_data == 2 && cs[0].res == 0);
  CHECK(cs[1].user_data == 3 && cs[1].res == -TOE_EBADF);
  CHECK(cs[1].flags & TOE_ABI_CQE_F_VALIDATION);

  /* The host rewrites an SQE slot while the device holds its copy: the device acts on what it
   * validated (a NOP), not on the rewritten bytes. */
  s = sqe_of(&f, TOE_ABI_OP_NOP, 0, 0);
  s.user_data = 4;
  REQUIRE(toe_ring_prod_write(&hsq, &s, 1) == 1);
  toe_ring_publish(&hsq);
  struct toe_abi_sqe copy;
  REQUIRE(toe_ring_cons_read(&dsq, &copy, 1) == 1);
  struct toe_abi_sqe *slot = (struct toe_abi_sqe *)toe_ring_cons_slot(&dsq, 0);
  CHECK(slot->user_data == 4);
  slot->opcode = TOE_ABI_OP_CLOSE;
  slot->handle = TOE_ABI_HANDLE(0, 1);
  CHECK_EQ(toe_abi_validate_sqe(&f.c, &copy, NULL), 0);
  CHECK_EQ(copy.opcode, TOE_ABI_OP_NOP);
  toe_ring_cons_release(&dsq, 1);

  /* A flood of garbage: every entry gets an error completion, then the client is cut off. */
  int answered = 0;
  for (int round = 0; round < 40 && !disc; round++) {
    struct toe_abi_sqe junk[4];
    memset(junk, 0x5a, sizeof(junk));
    int w = toe_ring_prod_write(&hsq, junk, 4);
    REQUIRE(w >= 0);
    toe_ring_publish(&hsq);
    CHECK(device_poll(&f.c, &dsq, &dcq, 1000, &disc) >= 0);
    struct toe_abi_cqe got[8];
    int r;
    while ((r = toe_ring_consume(&hcq, got, 8)) > 0)
      for (int k = 0; k < r; k++) {
        CHECK_EQ(got[k].res, -TOE_EOPNOTSUPP);
        answered++;
      }
  }
  CHECK(disc);
  /* The earlier EBADF was strike 1; junk entry 64 was strike 65, over the limit (and 64 is a
   * whole number of batches of 4). */
  CHECK_EQ(answered, TOE_ABI_STRIKE_LIMIT);
  CHECK_EQ(f.c.stats.strikes, TOE_ABI_STRIKE_LIMIT + 1);

  /* A hostile SQ tail stops the device without reading past the ring. */
  sqc->prod = dsq.local + l->sq_entries + 1;
  CHECK_EQ(device_poll(&f.c, &dsq, &dcq, 0, &disc), -TOE_EPROTO);
  free(region);
}

TEST_MAIN()
