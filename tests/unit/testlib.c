#include "testlib.h"

#include <stdarg.h>
#include <stdlib.h>

#define MAX_TESTS 512

static struct {
  const char *name;
  test_fn fn;
} tests[MAX_TESTS];
static int ntests;
static int cur_failures;

void testlib_register(const char *name, test_fn fn)
{
  if (ntests == MAX_TESTS) {
    fprintf(stderr, "testlib: too many tests (raise MAX_TESTS)\n");
    exit(2);
  }
  tests[ntests].name = name;
  tests[ntests].fn = fn;
  ntests++;
}

void testlib_fail(const char *file, int line, const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "  %s:%d: ", file, line);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  cur_failures++;
}

int testlib_main(int argc, char **argv)
{
  int passed = 0, failed = 0;
  for (int i = 0; i < ntests; i++) {
    if (argc > 1) {
      int wanted = 0;
      for (int a = 1; a < argc; a++)
        wanted |= strcmp(argv[a], tests[i].name) == 0;
      if (!wanted)
        continue;
    }
    cur_failures = 0;
    tests[i].fn();
    if (cur_failures) {
      failed++;
      printf("FAIL %s\n", tests[i].name);
    } else {
      passed++;
      printf("ok   %s\n", tests[i].name);
    }
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
