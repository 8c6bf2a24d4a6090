/*
 * toed's early options (src/device/toed_ops.c): --config FILE puts the file's settings in front
 * of the command line, and each call builds its command line afresh. A second call used to
 * append to the first one's (and hand back words the caller had freed meanwhile): found by
 * fuzz/fuzz_toed_args.c as a use-after-free.
 */
#define _GNU_SOURCE

#include "device/toed_args.h"
#include "device/toed_ops.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int argv_is(int argc, char **argv, const char *const *want, int n)
{
  if (argc != n)
    return 0;
  for (int i = 0; i < n; i++)
    if (!argv[i] || strcmp(argv[i], want[i]) != 0)
      return 0;
  return argv[n] == NULL;
}

TEST(config_then_a_second_call_starts_afresh)
{
  char path[] = "/tmp/toe-test-toed-ops-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  const char text[] = "# a comment\nmtu 1500\n";
  REQUIRE(write(fd, text, sizeof text - 1) == (ssize_t)(sizeof text - 1));
  close(fd);

  char *a1[] = {"toed", "--config", path, "--wire", "eth1", NULL};
  int ac = 5;
  char **av = a1;
  CHECK_EQ(toed_ops_early(&ac, &av), -1);
  static const char *const w1[] = {"toed", "--mtu", "1500", "--wire", "eth1"};
  CHECK(argv_is(ac, av, w1, 5));

  char *a2[] = {"toed", "--wire", "eth2", NULL};
  ac = 3;
  av = a2;
  CHECK_EQ(toed_ops_early(&ac, &av), -1);
  static const char *const w2[] = {"toed", "--wire", "eth2"};
  CHECK(argv_is(ac, av, w2, 3));
  unlink(path);
}

/* --addr6: repeatable, global unicast only, and not with a host interface yet. */
TEST(addr6_parsed_and_refused_with_reasons)
{
  struct toed_args a;
  char err[256];
  char *ok[] = {"toed",
                "--wire",
                "eth1",
                "--addr",
                "198.18.0.1/24",
                "--addr6",
                "2001:db8::2/64",
                "--addr6=2001:db8:1::5/48",
                NULL};
  CHECK_EQ(toed_args_parse(&a, 8, ok, err, sizeof err), 0);
  CHECK_EQ(a.n_addr6, 2);
  static const uint8_t want0[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};
  static const uint8_t want1[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 1, [15] = 5};
  CHECK_MEM(a.addr6[0], want0, 16);
  CHECK_MEM(a.addr6[1], want1, 16);
  CHECK_EQ(a.addr6_prefix_len[0], 64);
  CHECK_EQ(a.addr6_prefix_len[1], 48);

  static const struct {
    const char *value, *says;
  } bad[] = {
      {"2001:db8::2", "not an IPv6 address/prefix"},
      {"2001:db8::2/0", "not an IPv6 address/prefix"},
      {"2001:db8::2/129", "not an IPv6 address/prefix"},
      {"198.18.0.1/24", "not an IPv6 address/prefix"},
      {"fe80::1/64", "link-local address comes from the MAC"},
      {"ff02::1/64", "not a usable unicast address"},
      {"::1/128", "not a usable unicast address"},
      {"::/64", "not a usable unicast address"},
      {"::ffff:198.18.0.1/96", "not a usable unicast address"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char *argv[] = {
        "toed", "--wire", "eth1", "--addr", "198.18.0.1/24", "--addr6", (char *)bad[i].value, NULL};
    err[0] = 0;
    CHECK_EQ(toed_args_parse(&a, 7, argv, err, sizeof err), -1);
    if (!strstr(err, bad[i].says))
      testlib_fail(__FILE__, __LINE__, "--addr6 %s: '%s'", bad[i].value, err);
  }
  char *twice[] = {"toed",    "--wire",         "eth1",    "--addr",         "198.18.0.1/24",
                   "--addr6", "2001:db8::2/64", "--addr6", "2001:db8::2/64", NULL};
  CHECK_EQ(toed_args_parse(&a, 9, twice, err, sizeof err), -1);
  CHECK(strstr(err, "given twice") != NULL);
  char *five[] = {"toed",           "--wire",  "eth1",           "--addr",
                  "198.18.0.1/24",  "--addr6", "2001:db8::1/64", "--addr6",
                  "2001:db8::2/64", "--addr6", "2001:db8::3/64", "--addr6",
                  "2001:db8::4/64", "--addr6", "2001:db8::5/64", NULL};
  CHECK_EQ(toed_args_parse(&a, 15, five, err, sizeof err), -1);
  CHECK(strstr(err, "at most 4") != NULL);
  char *hostif[] = {"toed",    "--wire",         "eth1",      "--addr", "198.18.0.1/24",
                    "--addr6", "2001:db8::2/64", "--host-if", "toe0",   NULL};
  /* shared with the OS through steering (docs/coexistence.md) */
  CHECK_EQ(toed_args_parse(&a, 9, hostif, err, sizeof err), 0);
  CHECK_EQ(a.n_addr6, 1);
  /* --follow-host: needs --host-if; --addr becomes optional (a link-local placeholder) */
  char *follow_alone[] = {"toed", "--wire", "eth1", "--follow-host", NULL};
  CHECK_EQ(toed_args_parse(&a, 4, follow_alone, err, sizeof err), -1);
  CHECK(strstr(err, "needs --host-if") != NULL);
  char *follow[] = {"toed", "--wire", "eth1", "--host-if", "toe0", "--follow-host", NULL};
  CHECK_EQ(toed_args_parse(&a, 6, follow, err, sizeof err), 0);
  CHECK(a.follow_host);
  CHECK_EQ(a.addr, TOED_FOLLOW_PLACEHOLDER);
  CHECK_EQ(a.prefix_len, 16);
}

TEST_MAIN()
