/*
 * Send-buffer auto-tuning (tcp_sock.c): a bulk sender whose send buffer, not cwnd, limits it gets
 * a bigger buffer (about two windows), bounded by cfg.tcp_sndbuf_max and by a quarter of the
 * pbuf pool; a buffer set with TOE_SO_SNDBUF stays put; toe_sock_getopt and toe_tcp_get_info
 * report the size in use. The peer is the scripted one of tcp_harness.h, acknowledging
 * everything we sent once per round trip.
 */
#include "engine/stack.h"
#include "engine/tcp.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"

#include <string.h>

static struct harness h; /* big: keep it off the stack */

static const struct toe_counters_tcp *tc(void)
{
  return &toe_stack_counters(h.st)->tcp;
}

static uint8_t chunk[256 * 1024];

/* One round trip of a bulk transfer: the application queues all it may, the stack sends what
 * cwnd allows, then (1 ms later) the peer acknowledges everything that was sent. */
static void bulk_round(struct h_conn *c)
{
  h_clear(&h);
  while (toe_tcp_send(h.st, c->s, chunk, sizeof(chunk), 0) > 0)
    ;
  struct h_tcp t;
  (void)h_conn_last(c, &t); /* the TSval to echo */
  h_advance(&h, TOE_MSEC(1));
  c->rcv_nxt = toe_tcb(c->s)->snd_max;
  h_conn_send(c, H_ACK, NULL, 0);
}

static int64_t sndbuf_of(struct toe_sock *s)
{
  int64_t v = -1;
  if (toe_sock_getopt(h.st, s, TOE_SO_SNDBUF, &v) != 0)
    return -1;
  return v;
}

static uint32_t info_sndbuf(struct toe_sock *s, uint32_t *cwnd)
{
  struct toe_tcp_info ti;
  memset(&ti, 0xa5, sizeof(ti));
  if (toe_tcp_get_info(h.st, s, &ti) != 0)
    return 0;
  if (cwnd)
    *cwnd = ti.snd_cwnd;
  return ti.sndbuf;
}

static void bulk_cfg(struct toe_config *cfg)
{
  h_default_cfg(cfg);
  cfg->pbuf_count = 4096;
  cfg->tcp_sndbuf = 16u * 1024;
  cfg->tcp_sndbuf_max = 4u * 1024 * 1024;
}

TEST(bulk_sender_buffer_grows_when_cwnd_allows)
{
  struct toe_config cfg;
  bulk_cfg(&cfg);
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  h_conn_init(&c, &h, 6001);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  c.win = 0xffff; /* << 7: an 8 MiB window, so only cwnd and the buffer limit */
  CHECK_EQ(sndbuf_of(c.s), 16 * 1024);
  CHECK_EQ(info_sndbuf(c.s, NULL), 16u * 1024);
  uint64_t grows0 = tc()->sndbuf_grows;

  /* round 1: IW10 (about 14.5 KB) is smaller than the buffer: cwnd limits, no growth */
  bulk_round(&c);
  CHECK_EQ(sndbuf_of(c.s), 16 * 1024);
  CHECK_EQ(tc()->sndbuf_grows, grows0);

  uint32_t prev = 16u * 1024;
  for (int i = 0; i < 6; i++) {
    bulk_round(&c);
    uint32_t cwnd = 0;
    uint32_t now = info_sndbuf(c.s, &cwnd);
    CHECK(now >= prev); /* never shrinks */
    /* about two windows, never more than the two cwnds it was sized from plus a segment */
    CHECK(now <= 2u * cwnd + 2u * 1460u);
    CHECK_EQ(sndbuf_of(c.s), (int64_t)now);
    prev = now;
  }
  CHECK(prev > 16u * 1024);
  CHECK(tc()->sndbuf_grows > grows0);
  /* what the buffer allows is what the stack queues and sends */
  CHECK(toe_tcp_tx_space(c.s) + toe_tcp_tx_pending(c.s) == prev);
  h_fini(&h);
}

TEST(sndbuf_locked_by_option_stays_put)
{
  struct toe_config cfg;
  bulk_cfg(&cfg);
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  h_conn_init(&c, &h, 6002);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  c.win = 0xffff;
  REQUIRE(toe_sock_setopt(h.st, c.s, TOE_SO_SNDBUF, 16 * 1024) == 0);
  uint64_t grows0 = tc()->sndbuf_grows;
  uint32_t cwnd = 0;
  for (int i = 0; i < 8; i++)
    bulk_round(&c);
  CHECK_EQ(sndbuf_of(c.s), 16 * 1024);
  CHECK_EQ(info_sndbuf(c.s, &cwnd), 16u * 1024);
  CHECK(cwnd > 2u * 16 * 1024); /* cwnd would have allowed more */
  CHECK_EQ(tc()->sndbuf_grows, grows0);
  h_fini(&h);
}

TEST(growth_capped_by_sndbuf_max)
{
  struct toe_config cfg;
  bulk_cfg(&cfg);
  cfg.tcp_sndbuf_max = 48u * 1024;
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  h_conn_init(&c, &h, 6003);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  c.win = 0xffff;
  for (int i = 0; i < 10; i++)
    bulk_round(&c);
  uint32_t cwnd = 0;
  CHECK_EQ(info_sndbuf(c.s, &cwnd), 48u * 1024);
  CHECK(cwnd > 48u * 1024);
  CHECK_EQ(sndbuf_of(c.s), 48 * 1024);
  h_fini(&h);
}

TEST(growth_capped_by_a_quarter_of_the_pool)
{
  struct toe_config cfg;
  bulk_cfg(&cfg);
  cfg.pbuf_count = 256; /* a quarter: 64 buffers of one segment each */
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  h_conn_init(&c, &h, 6004);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  c.win = 0xffff;
  for (int i = 0; i < 10; i++)
    bulk_round(&c);
  uint32_t mss = toe_tcp_eff_mss(toe_tcb(c.s));
  uint32_t now = info_sndbuf(c.s, NULL);
  CHECK(now > 16u * 1024);
  CHECK(now <= 64u * mss);
  CHECK(tc()->sndbuf_grows >= 1);
  h_fini(&h);
}

TEST(no_growth_when_the_peer_window_holds_data_back)
{
  struct toe_config cfg;
  bulk_cfg(&cfg);
  h_init_cfg(&h, &cfg);
  struct h_conn c;
  h_conn_init(&c, &h, 6005);
  REQUIRE(h_conn_connect(&c, 0) == 0);
  /* the peer's window stays at 8 KiB (64 << 7): data waits in the buffer for the window, the
   * buffer is not what limits */
  c.win = 64;
  uint64_t grows0 = tc()->sndbuf_grows;
  for (int i = 0; i < 8; i++)
    bulk_round(&c);
  CHECK_EQ(sndbuf_of(c.s), 16 * 1024);
  CHECK_EQ(tc()->sndbuf_grows, grows0);
  h_fini(&h);
}

TEST_MAIN()
