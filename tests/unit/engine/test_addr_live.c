/*
 * The IPv4 address changing at run time (toe/addr_live.h): connections on the old address are
 * reset (RST to the peer from the old address, the owner sees -TOE_ENETDOWN), listeners stay and
 * take connections on the new one, echo and ARP answer for the new address only, bad addresses
 * are refused without change.
 */
#include "engine/stack.h"
#include "harness.h"
#include "tcp_harness.h"
#include "testlib.h"
#include "toe/addr_live.h"
#include "toe/tcp.h"

#include <string.h>

#define NEW_IP 0xc6120009u /* 198.18.0.9 */

static int events(const struct harness *h, const struct toe_sock *s, uint32_t mask)
{
  int n = 0;
  for (int i = 0; i < h->nev; i++)
    if (h->ev[i].sock == s && (h->ev[i].events & mask))
      n++;
  return n;
}

TEST(bad_addresses_are_refused_without_change)
{
  struct harness h;
  h_init(&h);
  CHECK_EQ(toe_stack_set_addr4(h.st, 0, 24, 0), -TOE_EINVAL);
  CHECK_EQ(toe_stack_set_addr4(h.st, 0xc61200ffu, 24, 0), -TOE_EINVAL); /* the broadcast */
  CHECK_EQ(toe_stack_set_addr4(h.st, 0xe0000001u, 24, 0), -TOE_EINVAL); /* multicast */
  CHECK_EQ(toe_stack_set_addr4(h.st, NEW_IP, 33, 0), -TOE_EINVAL);
  CHECK_EQ(toe_stack_set_addr4(h.st, NEW_IP, 24, 0xc6130001u), -TOE_EINVAL); /* gw off-link */
  CHECK_EQ(toe_stack_set_addr4(h.st, NEW_IP, 24, NEW_IP), -TOE_EINVAL);
  CHECK_EQ(toe_stack_config(h.st)->addr, H_OUR_IP);
  CHECK_EQ(toe_stack_set_addr4(h.st, NEW_IP, 24, 0xc61200feu), 0);
  CHECK_EQ(toe_stack_config(h.st)->addr, NEW_IP);
  CHECK_EQ(toe_stack_config(h.st)->gateway, 0xc61200feu);
  h_fini(&h);
}

TEST(connections_on_the_old_address_are_reset)
{
  struct harness h;
  h_init(&h);
  struct h_conn a, p;
  h_conn_init(&a, &h, 5020);
  REQUIRE(h_conn_connect(&a, 0) == 0); /* active */
  h_conn_init(&p, &h, 5021);
  REQUIRE(h_conn_accept(&p, 80) == 0); /* passive; the listener stays */
  CHECK_EQ(h.st->ctr.tcp.curr_estab, 2);
  uint64_t resets = h.st->ctr.tcp.estab_resets;
  h_clear(&h);
  REQUIRE(toe_stack_set_addr4(h.st, NEW_IP, 24, 0) == 0);
  /* one RST each, from the old address, acceptable to the peer (SEQ = its RCV.NXT) */
  CHECK_EQ(h_conn_count_flags(&a, 0, H_RST), 1);
  CHECK_EQ(h_conn_count_flags(&p, 0, H_RST), 1);
  struct h_tcp t;
  REQUIRE(h_conn_last(&a, &t));
  CHECK_EQ(t.src, H_OUR_IP);
  CHECK_EQ(t.seq, a.rcv_nxt);
  CHECK(t.csum_ok);
  CHECK(events(&h, a.s, TOE_EV_ERROR) >= 1);
  CHECK_EQ(toe_sock_error(h.st, a.s), -TOE_ENETDOWN);
  CHECK_EQ(toe_sock_error(h.st, p.s), -TOE_ENETDOWN);
  CHECK_EQ(h.st->ctr.tcp.curr_estab, 0);
  CHECK_EQ(h.st->ctr.tcp.estab_resets, resets + 2);
  /* The owners close their sockets as after any reset. */
  toe_sock_close(h.st, a.s);
  toe_sock_close(h.st, p.s);

  /* The listener (bound to any) takes a connection on the new address. */
  h_clear(&h);
  uint8_t f[256];
  size_t n = h_build_tcp(f, H_PEER_IP, 5022, NEW_IP, 80, 1000, 0, H_SYN, 65535, NULL, 0, NULL, 0);
  h_input(&h, f, n);
  REQUIRE(h_tcp_get(&h, -1, &t));
  CHECK_EQ(t.flags & (H_SYN | H_ACK), H_SYN | H_ACK);
  CHECK_EQ(t.src, NEW_IP);
  /* The old address is no longer ours: a SYN to it is not answered (not our unicast address). */
  h_clear(&h);
  n = h_build_tcp(f, H_PEER_IP, 5023, H_OUR_IP, 80, 1000, 0, H_SYN, 65535, NULL, 0, NULL, 0);
  h_input(&h, f, n);
  CHECK_EQ(h_tcp_count(&h), 0);
  h_fini(&h);
}

TEST(echo_answers_on_the_new_address_only)
{
  struct harness h;
  h_init(&h);
  h_learn_peer(&h);
  REQUIRE(toe_stack_set_addr4(h.st, NEW_IP, 24, 0) == 0);
  uint8_t f[256];
  h_clear(&h);
  size_t n = h_build_icmp_echo(f, H_PEER_IP, H_OUR_IP, 1, 1, "x", 1);
  h_input(&h, f, n);
  CHECK_EQ(h.ntx, 0);
  n = h_build_icmp_echo(f, H_PEER_IP, NEW_IP, 1, 2, "x", 1);
  h_input(&h, f, n);
  REQUIRE(h.ntx == 1);
  /* the reply's IPv4 source (14 + 12) */
  const uint8_t *ip = h.tx[0].bytes + 14;
  CHECK_EQ((uint32_t)ip[12] << 24 | (uint32_t)ip[13] << 16 | (uint32_t)ip[14] << 8 | ip[15],
           NEW_IP);
  h_fini(&h);
}

TEST_MAIN()
