/*
 * toed's early options (src/device/toed_ops.c): --config FILE puts the file's settings in front
 * of the command line, and each call builds its command line afresh. A second call used to
 * append to the first one's (and hand back words the caller had freed meanwhile): found by
 * fuzz/fuzz_toed_args.c as a use-after-free.
 */
#define _GNU_SOURCE

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

TEST_MAIN()
