/*
 * A minimal unit-test framework: TEST() functions registered in a table, CHECK macros that record
 * the failure with file and line and keep going, and a main() that runs them all (or those named
 * on the command line) and prints "N passed, N failed".
 */
#ifndef TOE_TESTLIB_H
#define TOE_TESTLIB_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*test_fn)(void);

void testlib_register(const char *name, test_fn fn);
void testlib_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int testlib_main(int argc, char **argv);

#define TEST(name)                                                                                 \
  static void test_##name(void);                                                                   \
  __attribute__((constructor)) static void register_##name(void)                                   \
  {                                                                                                \
    testlib_register(#name, test_##name);                                                          \
  }                                                                                                \
  static void test_##name(void)

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      testlib_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                                        \
  } while (0)

#define CHECK_EQ(a, b)                                                                             \
  do {                                                                                             \
    long long va_ = (long long)(a), vb_ = (long long)(b);                                          \
    if (va_ != vb_)                                                                                \
      testlib_fail(__FILE__, __LINE__, "CHECK_EQ(%s, %s): %lld != %lld", #a, #b, va_, vb_);        \
  } while (0)

#define CHECK_MEM(a, b, n)                                                                         \
  do {                                                                                             \
    if (memcmp((a), (b), (n)) != 0)                                                                \
      testlib_fail(__FILE__, __LINE__, "CHECK_MEM(%s, %s, %s): bytes differ", #a, #b, #n);         \
  } while (0)

/* Stops the current test (after a failed CHECK that later code depends on). */
#define REQUIRE(cond)                                                                              \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      testlib_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond);                                      \
      return;                                                                                      \
    }                                                                                              \
  } while (0)

/* Every test file ends with TEST_MAIN(). */
#define TEST_MAIN()                                                                                \
  int main(int argc, char **argv)                                                                  \
  {                                                                                                \
    return testlib_main(argc, argv);                                                               \
  }

#endif
