/*
 * The stack instance: config defaults and validation, memory sizing and creation in a caller's
 * buffer, start/poll/now, pseudo-random numbers, the keyed hash (SipHash-2-4 test vectors),
 * toe_strerror (and toe_attach_strerror) and the counter walk.
 */
#include "engine/stack.h"
#include "harness.h"
#include "testlib.h"

#include <stdlib.h>

static void noop_tx(void *ctx, struct toe_pbuf *frame)
{
  (void)ctx;
  (void)frame;
}

/* A valid config (harness identity, small pools) with a tx callback. */
static void good_cfg(struct toe_config *c)
{
  h_default_cfg(c);
  c->tx = noop_tx;
}

TEST(config_defaults)
{
  struct toe_config c;
  memset(&c, 0xa5, sizeof(c));
  toe_config_defaults(&c);
  CHECK_EQ(c.addr, 0);
  CHECK(c.tx == NULL && c.sock_event == NULL && c.ctx == NULL);
  CHECK_EQ(c.mtu, 1500);
  CHECK_EQ(c.vlan_id, 0);
  CHECK_EQ(c.pbuf_count, 4096);
  CHECK_EQ(c.pbuf_size, 2048);
  CHECK_EQ(c.arp_entries, 256);
  CHECK_EQ(c.arp_queue_len, 8);
  CHECK_EQ(c.reass_slots, 64);
  CHECK_EQ(c.reass_max_bufs, 1024);
  CHECK_EQ(c.udp_socks, 1024);
  CHECK_EQ(c.udp_rcvq_len, 256);
  CHECK_EQ(c.arp_reachable_time, TOE_SEC(30));
  CHECK_EQ(c.arp_stale_time, TOE_SEC(60));
  CHECK_EQ(c.arp_retry_interval, TOE_SEC(1));
  CHECK_EQ(c.arp_max_retries, 3);
  CHECK_EQ(c.reass_timeout, TOE_SEC(30));
  CHECK_EQ(c.default_ttl, 64);
  CHECK_EQ(c.icmp_rate_per_sec, 100);
  CHECK_EQ(c.icmp_burst, 10);
  CHECK_EQ(c.ephemeral_lo, 49152);
  CHECK_EQ(c.ephemeral_hi, 65535);
  CHECK_EQ(c.random_seed, 0);
}

/* Each mutation of a valid config that must be refused. */
struct bad_case {
  const char *what;
  void (*mutate)(struct toe_config *c);
};

static void no_tx(struct toe_config *c)
{
  c->tx = NULL;
}
static void mtu_small(struct toe_config *c)
{
  c->mtu = 67;
}
static void mtu_big(struct toe_config *c)
{
  c->mtu = 9001;
}
static void prefix_33(struct toe_config *c)
{
  c->prefix_len = 33;
}
static void no_pbufs(struct toe_config *c)
{
  c->pbuf_count = 0;
}
static void pbuf_small(struct toe_config *c)
{
  c->pbuf_size = TOE_PBUF_HEADROOM + 1517;
}
static void no_arp(struct toe_config *c)
{
  c->arp_entries = 0;
}
static void no_arp_queue(struct toe_config *c)
{
  c->arp_queue_len = 0;
}
static void no_reass(struct toe_config *c)
{
  c->reass_slots = 0;
}
static void no_reass_bufs(struct toe_config *c)
{
  c->reass_max_bufs = 0;
}
static void no_udp(struct toe_config *c)
{
  c->udp_socks = 0;
}
static void no_udp_q(struct toe_config *c)
{
  c->udp_rcvq_len = 0;
}
static void addr_zero(struct toe_config *c)
{
  c->addr = 0;
}
static void addr_bcast(struct toe_config *c)
{
  c->addr = 0xffffffffu;
}
static void addr_subnet_bcast(struct toe_config *c)
{
  c->addr = 0xc61200ffu;
} /* .255/24 */
static void addr_network(struct toe_config *c)
{
  c->addr = 0xc6120000u;
} /* .0/24 */
static void addr_mcast(struct toe_config *c)
{
  c->addr = 0xe0000001u;
}
static void addr_loop(struct toe_config *c)
{
  c->addr = 0x7f000001u;
}
static void addr_this_net(struct toe_config *c)
{
  c->addr = 0x00000005u;
}
static void gw_offlink(struct toe_config *c)
{
  c->gateway = 0xc6130001u;
} /* 198.19.0.1 */
static void gw_self(struct toe_config *c)
{
  c->gateway = c->addr;
}
static void gw_bcast(struct toe_config *c)
{
  c->gateway = 0xc61200ffu;
}
static void gw_prefix32(struct toe_config *c)
{
  c->prefix_len = 32;
  c->gateway = 0xc6120002u;
}
static void vlan_4095(struct toe_config *c)
{
  c->vlan_id = 4095;
}
static void eph_reversed(struct toe_config *c)
{
  c->ephemeral_lo = 50000;
  c->ephemeral_hi = 40000;
}
static void eph_zero(struct toe_config *c)
{
  c->ephemeral_lo = 0;
}
static void mac_mcast(struct toe_config *c)
{
  c->mac.b[0] = 0x01;
}
static void mac_zero(struct toe_config *c)
{
  memset(c->mac.b, 0, 6);
}
static void ttl_zero(struct toe_config *c)
{
  c->default_ttl = 0;
}
static void arp_retry_zero(struct toe_config *c)
{
  c->arp_retry_interval = 0;
}
static void arp_retries_zero(struct toe_config *c)
{
  c->arp_max_retries = 0;
}

TEST(config_validation)
{
  static const struct bad_case cases[] = {
      {"no tx callback", no_tx},
      {"mtu 67", mtu_small},
      {"mtu 9001", mtu_big},
      {"prefix 33", prefix_33},
      {"no pbufs", no_pbufs},
      {"pbuf too small for a tagged 1518-byte frame", pbuf_small},
      {"no arp entries", no_arp},
      {"no arp queue", no_arp_queue},
      {"no reassembly slots", no_reass},
      {"no reassembly buffers", no_reass_bufs},
      {"no udp sockets", no_udp},
      {"no udp queue", no_udp_q},
      {"address 0", addr_zero},
      {"address 255.255.255.255", addr_bcast},
      {"address = subnet broadcast", addr_subnet_bcast},
      {"address = subnet network", addr_network},
      {"multicast address", addr_mcast},
      {"loopback address", addr_loop},
      {"0.0.0.0/8 address", addr_this_net},
      {"gateway off-link", gw_offlink},
      {"gateway = our address", gw_self},
      {"gateway = subnet broadcast", gw_bcast},
      {"gateway on a /32", gw_prefix32},
      {"vlan 4095", vlan_4095},
      {"ephemeral range reversed", eph_reversed},
      {"ephemeral range from 0", eph_zero},
      {"multicast MAC", mac_mcast},
      {"zero MAC", mac_zero},
      {"ttl 0", ttl_zero},
      {"arp retry interval 0", arp_retry_zero},
      {"arp retries 0", arp_retries_zero},
  };
  struct toe_config c;
  good_cfg(&c);
  REQUIRE(toe_stack_mem_size(&c) > 0);
  void *mem = aligned_alloc(64, 64u << 20);
  REQUIRE(mem != NULL);
  struct toe_stack *st = NULL;
  REQUIRE(toe_stack_create(&c, mem, 64u << 20, &st) == 0);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    good_cfg(&c);
    cases[i].mutate(&c);
    st = NULL;
    size_t sz = toe_stack_mem_size(&c);
    int rc = toe_stack_create(&c, mem, 64u << 20, &st);
    struct toe_stack *st2 = NULL;
    int rc2 = toe_stack_new(&c, &st2);
    if (sz != 0 || rc != -TOE_EINVAL || st != NULL || rc2 != -TOE_EINVAL)
      testlib_fail(__FILE__, __LINE__, "accepted: %s (size %zu, create %d, new %d)", cases[i].what,
                   sz, rc, rc2);
  }
  CHECK_EQ(toe_stack_mem_size(NULL), 0);
  good_cfg(&c);
  CHECK_EQ(toe_stack_create(NULL, mem, 64u << 20, &st), -TOE_EINVAL);
  CHECK_EQ(toe_stack_create(&c, mem, 64u << 20, NULL), -TOE_EINVAL);
  free(mem);
}

TEST(config_accepted_edge_cases)
{
  struct toe_config c;
  good_cfg(&c);
  c.gateway = 0xc61200feu; /* 198.18.0.254, on-link */
  CHECK(toe_stack_mem_size(&c) > 0);
  good_cfg(&c);
  c.prefix_len = 31; /* RFC 3021: both addresses usable */
  c.addr = 0xc6120000u;
  c.gateway = 0xc6120001u;
  CHECK(toe_stack_mem_size(&c) > 0);
  good_cfg(&c);
  c.prefix_len = 32;
  CHECK(toe_stack_mem_size(&c) > 0);
  good_cfg(&c);
  c.mtu = 68;
  c.vlan_id = 4094;
  c.pbuf_size = TOE_PBUF_HEADROOM + 1518;
  c.ephemeral_lo = c.ephemeral_hi = 40000;
  CHECK(toe_stack_mem_size(&c) > 0);
  good_cfg(&c);
  c.mtu = 9000;
  c.pbuf_size = 65535;
  c.pbuf_count = 16;
  CHECK(toe_stack_mem_size(&c) > 0);
}

TEST(mem_size)
{
  struct toe_config c;
  good_cfg(&c);
  size_t a = toe_stack_mem_size(&c);
  CHECK(a > 0);
  CHECK_EQ(a % 64, 0);
  CHECK(a >=
        sizeof(struct toe_stack) + (size_t)c.pbuf_count * (c.pbuf_size + sizeof(struct toe_pbuf)));
  c.pbuf_count *= 2;
  size_t b = toe_stack_mem_size(&c);
  CHECK(b >= a + (size_t)(c.pbuf_count / 2) * c.pbuf_size);
  c.pbuf_size = 2000; /* storage stride rounds up to 64 */
  CHECK(toe_stack_mem_size(&c) == b);
}

TEST(create_in_caller_buffer)
{
  struct toe_config c;
  good_cfg(&c);
  size_t n = toe_stack_mem_size(&c);
  REQUIRE(n > 0);
  size_t guard = 4096;
  uint8_t *mem = aligned_alloc(64, n + guard + 64);
  REQUIRE(mem != NULL);
  memset(mem, 0xcd, n + guard + 64);
  struct toe_stack *st = NULL;
  CHECK_EQ(toe_stack_create(&c, mem, n - 1, &st), -TOE_ENOMEM);
  CHECK(st == NULL);
  CHECK_EQ(toe_stack_create(&c, mem + 8, n + 64, &st), -TOE_EINVAL); /* not 64-byte aligned */
  REQUIRE(toe_stack_create(&c, mem, n, &st) == 0);
  CHECK((void *)st == (void *)mem);
  CHECK_EQ(toe_stack_now(st), 0);
  CHECK(toe_stack_config(st)->addr == c.addr);
  CHECK_EQ(toe_pbuf_pool_free_count(st), c.pbuf_count);
  CHECK_EQ(toe_stack_counters(st)->pbuf.inuse, 0);

  /* every buffer can be used end to end; nothing is written past the block */
  struct toe_pbuf **all = calloc(c.pbuf_count, sizeof(*all));
  for (uint32_t i = 0; i < c.pbuf_count; i++) {
    all[i] = toe_pbuf_alloc(st, 0);
    REQUIRE(all[i] != NULL);
    CHECK((uint8_t *)all[i]->base >= mem && all[i]->base + all[i]->cap <= mem + n);
    memset(toe_pbuf_put(all[i], all[i]->cap), 0x11, all[i]->cap);
  }
  for (uint32_t i = 0; i < c.pbuf_count; i++)
    toe_pbuf_free(st, all[i]);
  free(all);
  int clobbered = 0;
  for (size_t i = n; i < n + guard; i++)
    clobbered += mem[i] != 0xcd;
  CHECK_EQ(clobbered, 0);
  toe_stack_poll(st, TOE_SEC(2));
  CHECK_EQ(toe_stack_now(st), TOE_SEC(2));
  toe_stack_free(st); /* not from toe_stack_new: must not free the caller's memory */
  free(mem);
}

TEST(new_start_poll_now)
{
  struct harness h;
  h_init(&h);
  CHECK_EQ(toe_stack_now(h.st), TOE_SEC(1));
  toe_stack_start(h.st, TOE_SEC(3));
  CHECK_EQ(toe_stack_now(h.st), TOE_SEC(3));
  toe_stack_poll(h.st, TOE_SEC(2)); /* backwards: ignored */
  CHECK_EQ(toe_stack_now(h.st), TOE_SEC(3));
  toe_stack_poll(h.st, TOE_SEC(4));
  CHECK_EQ(toe_stack_now(h.st), TOE_SEC(4));
  h_fini(&h);
}

TEST(random_numbers)
{
  struct toe_config c;
  good_cfg(&c);
  struct toe_stack *a, *b, *z;
  c.random_seed = 1;
  REQUIRE(toe_stack_new(&c, &a) == 0);
  REQUIRE(toe_stack_new(&c, &b) == 0);
  c.random_seed = 0;
  REQUIRE(toe_stack_new(&c, &z) == 0);
  int same = 1, differ_z = 0, zeros = 0;
  uint64_t ones = 0;
  enum { N = 4096 };
  uint64_t prev = 0;
  int repeats = 0;
  for (int i = 0; i < N; i++) {
    uint64_t x = toe_random(a);
    same &= x == toe_random(b);
    uint64_t y = toe_random(z);
    differ_z += x != y;
    zeros += y == 0;
    repeats += y == prev;
    prev = y;
    for (uint64_t v = x; v; v &= v - 1)
      ones++;
  }
  CHECK(same);           /* deterministic per seed */
  CHECK_EQ(differ_z, N); /* seeds give different streams */
  CHECK_EQ(zeros, 0);    /* seed 0 is not a stuck state */
  CHECK_EQ(repeats, 0);
  /* bits are balanced: 64 * N / 2 = 131072 expected, sd ~ 256 */
  CHECK(ones > 131072 - 2560 && ones < 131072 + 2560);
  toe_stack_free(a);
  toe_stack_free(b);
  toe_stack_free(z);
}

TEST(siphash_test_vectors)
{
  /* SipHash-2-4 with key 00 01 .. 0f over messages 00 01 .. (len-1): the paper's Appendix A
   * example (15 bytes) and the first entries of the reference implementation's vector table. */
  uint8_t key[16], msg[64];
  for (int i = 0; i < 16; i++)
    key[i] = (uint8_t)i;
  for (int i = 0; i < 64; i++)
    msg[i] = (uint8_t)i;
  CHECK(toe_siphash24(key, msg, 15) == 0xa129ca6149be45e5ull);
  CHECK(toe_siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ull);
  CHECK(toe_siphash24(key, msg, 1) == 0x74f839c593dc67fdull);
  CHECK(toe_siphash24(key, msg, 2) == 0x0d6c8009d9a94f5aull);

  /* toe_keyed_hash uses the config's secret */
  struct toe_config c;
  good_cfg(&c);
  memcpy(c.secret, key, 16);
  struct toe_stack *st;
  REQUIRE(toe_stack_new(&c, &st) == 0);
  CHECK(toe_keyed_hash(st, msg, 15) == 0xa129ca6149be45e5ull);
  toe_stack_free(st);
  c.secret[0] ^= 1;
  REQUIRE(toe_stack_new(&c, &st) == 0);
  CHECK(toe_keyed_hash(st, msg, 15) != 0xa129ca6149be45e5ull);
  /* every length from 0 to 63 hashes differently (covers each tail length) */
  int collisions = 0;
  uint64_t hs[64];
  for (int n = 0; n < 64; n++) {
    hs[n] = toe_keyed_hash(st, msg, (size_t)n);
    for (int m = 0; m < n; m++)
      collisions += hs[m] == hs[n];
  }
  CHECK_EQ(collisions, 0);
  toe_stack_free(st);
}

TEST(strerror)
{
  CHECK(strcmp(toe_strerror(TOE_EINVAL), "invalid argument") == 0);
  CHECK(strcmp(toe_strerror(-TOE_EINVAL), "invalid argument") == 0);
  CHECK(strcmp(toe_strerror(-TOE_ENOBUFS), "no buffer space") == 0);
  CHECK(strcmp(toe_strerror(0), "success") == 0);
  CHECK(strcmp(toe_strerror(12345), "unknown error") == 0);
  CHECK(toe_strerror(-2147483647 - 1) != NULL);
  /* every code named in toe/errno.h has its own text */
  static const int codes[] = {
      TOE_EPERM,        TOE_ENOENT,       TOE_EINTR,           TOE_EIO,
      TOE_E2BIG,        TOE_EBADF,        TOE_EAGAIN,          TOE_ENOMEM,
      TOE_EFAULT,       TOE_EBUSY,        TOE_EEXIST,          TOE_EINVAL,
      TOE_EMFILE,       TOE_EPIPE,        TOE_EDESTADDRREQ,    TOE_EMSGSIZE,
      TOE_EPROTOTYPE,   TOE_ENOPROTOOPT,  TOE_EPROTONOSUPPORT, TOE_EOPNOTSUPP,
      TOE_EAFNOSUPPORT, TOE_EADDRINUSE,   TOE_EADDRNOTAVAIL,   TOE_ENETDOWN,
      TOE_ENETUNREACH,  TOE_ECONNABORTED, TOE_ECONNRESET,      TOE_ENOBUFS,
      TOE_EISCONN,      TOE_ENOTCONN,     TOE_ESHUTDOWN,       TOE_ETIMEDOUT,
      TOE_ECONNREFUSED, TOE_EHOSTDOWN,    TOE_EHOSTUNREACH,    TOE_EALREADY,
      TOE_EINPROGRESS,  TOE_EPROTO,       TOE_EBADMSG,         TOE_ENOTSOCK};
  int unknown = 0;
  for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
    unknown += strcmp(toe_strerror(-codes[i]), "unknown error") == 0;
  CHECK_EQ(unknown, 0);
  /* attaching: the errors whose meaning is the device's, else the same table's text */
  CHECK(strcmp(toe_attach_strerror(-TOE_ECONNREFUSED), "nobody serves it (toed not running?)") ==
        0);
  CHECK(strcmp(toe_attach_strerror(-TOE_ENOENT), "no such device socket") == 0);
  CHECK(strcmp(toe_attach_strerror(TOE_EPROTONOSUPPORT), "the device speaks another ABI version") ==
        0);
  CHECK(strcmp(toe_attach_strerror(-TOE_ENOBUFS), toe_strerror(-TOE_ENOBUFS)) == 0);
  CHECK(strcmp(toe_attach_strerror(-TOE_ENOTSOCK), "not a socket") == 0);
  CHECK(toe_attach_strerror(-2147483647 - 1) != NULL);
}

struct visit_log {
  int n;
  int saw_first;
  int saw_double_free;
  int saw_timer_pending;
  int out_of_order;
  uint64_t rx_frames;
  const char *last_layer;
};

static void visit(void *arg, const char *layer, const char *name, uint64_t value)
{
  struct visit_log *v = arg;
  if (v->n == 0 && strcmp(layer, "link") == 0 && strcmp(name, "rx_frames") == 0)
    v->saw_first = 1;
  if (strcmp(layer, "link") == 0 && strcmp(name, "rx_frames") == 0)
    v->rx_frames = value;
  if (strcmp(layer, "pbuf") == 0 && strcmp(name, "double_free") == 0)
    v->saw_double_free = 1;
  if (strcmp(layer, "timer") == 0 && strcmp(name, "pending") == 0)
    v->saw_timer_pending = 1;
  v->n++;
  v->last_layer = layer;
}

#define COUNT_ONE_(name) +1
#ifndef TOE_COUNTERS_TCP
#define TOE_COUNTERS_TCP(X)
#endif

TEST(counters_visit)
{
  struct harness h;
  h_init(&h);
  uint8_t junk[10] = {0};
  h_input(&h, junk, sizeof(junk));
  h_input(&h, junk, sizeof(junk));
  struct visit_log v = {0};
  toe_counters_visit(toe_stack_counters(h.st), visit, &v);
  int expected = 0 TOE_COUNTERS_LINK(COUNT_ONE_) TOE_COUNTERS_ARP(COUNT_ONE_)
      TOE_COUNTERS_IP(COUNT_ONE_) TOE_COUNTERS_ICMP(COUNT_ONE_) TOE_COUNTERS_UDP(COUNT_ONE_)
          TOE_COUNTERS_TCP(COUNT_ONE_) TOE_COUNTERS_PBUF(COUNT_ONE_) TOE_COUNTERS_TIMER(COUNT_ONE_)
              TOE_COUNTERS_STEER(COUNT_ONE_) TOE_COUNTERS_IP6(COUNT_ONE_)
                  TOE_COUNTERS_ICMP6(COUNT_ONE_) TOE_COUNTERS_ND(COUNT_ONE_);
  CHECK_EQ(v.n, expected);
  CHECK(v.saw_first);
  CHECK(v.saw_double_free);
  CHECK(v.saw_timer_pending);
  CHECK_EQ(v.rx_frames, 2);
  CHECK(v.last_layer && strcmp(v.last_layer, "nd") == 0);
  toe_counters_visit(NULL, visit, &v); /* harmless */
  h_fini(&h);
}

TEST_MAIN()
