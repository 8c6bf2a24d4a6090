/*
 * toed --ecn: the four modes map to cfg.tcp_ecn (TOE_TCP_ECN_*), the default is Linux's
 * tcp_ecn=2 (passive), and a bad or repeated value is refused with a message that says what to
 * give instead.
 */
#include "device/toed_args.h"
#include "testlib.h"
#include "toe/engine.h"

#include <string.h>

TEST(ecn_modes_and_default)
{
  struct toed_args a;
  char err[256];
  char *none[] = {"toed", "--wire", "eth1", "--addr", "198.18.0.1/24", NULL};
  CHECK_EQ(toed_args_parse(&a, 5, none, err, sizeof err), 0);
  CHECK_EQ(a.ecn, TOE_TCP_ECN_PASSIVE);
  static const struct {
    const char *v;
    int want;
  } modes[] = {{"off", TOE_TCP_ECN_OFF},
               {"on", TOE_TCP_ECN_ON},
               {"passive", TOE_TCP_ECN_PASSIVE},
               {"accecn", TOE_TCP_ECN_ACCECN}};
  for (unsigned i = 0; i < 4; i++) {
    char *argv[] = {"toed",  "--wire",           "eth1", "--addr", "198.18.0.1/24",
                    "--ecn", (char *)modes[i].v, NULL};
    CHECK_EQ(toed_args_parse(&a, 7, argv, err, sizeof err), 0);
    CHECK_EQ(a.ecn, modes[i].want);
  }
  char *eq[] = {"toed", "--wire", "eth1", "--addr", "198.18.0.1/24", "--ecn=on", NULL};
  CHECK_EQ(toed_args_parse(&a, 6, eq, err, sizeof err), 0);
  CHECK_EQ(a.ecn, TOE_TCP_ECN_ON);
}

TEST(ecn_bad_values_refused)
{
  struct toed_args a;
  char err[256];
  char *bad[] = {"toed", "--wire", "eth1", "--addr", "198.18.0.1/24", "--ecn", "2", NULL};
  CHECK_EQ(toed_args_parse(&a, 7, bad, err, sizeof err), -1);
  CHECK(strstr(err, "expected off, passive, on or accecn") != NULL);
  char *twice[] = {"toed",  "--wire", "eth1",  "--addr", "198.18.0.1/24",
                   "--ecn", "on",     "--ecn", "off",    NULL};
  CHECK_EQ(toed_args_parse(&a, 9, twice, err, sizeof err), -1);
  CHECK(strstr(err, "given twice") != NULL);
}

TEST_MAIN()
