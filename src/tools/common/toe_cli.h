/*
 * The command-line conventions every toekit program shares (docs/operations.md, "Command lines"):
 *
 *   --help     usage on stdout, exit 0
 *   --version  "PROG (toekit) X.Y.Z", the transport ABI and libtoe versions on stdout, exit 0
 *   bad usage  one line on stderr, "PROG: what is wrong (see PROG --help)", exit 2
 *   failure    a message saying what happened and what to do, exit 1
 *
 * Header-only (static inline) so that each program, the daemon included, takes it without a
 * library of its own.
 */
#ifndef TOE_TOOLS_CLI_H
#define TOE_TOOLS_CLI_H

#include "toe/abi.h"
#include "toe/toe.h"

#include <stdarg.h>
#include <stdio.h>

#define TOE_CLI_EXIT_OK 0
#define TOE_CLI_EXIT_FAIL 1
#define TOE_CLI_EXIT_USAGE 2

/*
 * Prints the version block on stdout. `libtoe` is the loaded library's toe_version() for a
 * program linked with libtoe, or NULL for one that is not (the version its headers had is shown).
 * Returns TOE_CLI_EXIT_OK, or TOE_CLI_EXIT_FAIL if stdout cannot be written.
 */
static inline int toe_cli_version(const char *prog, const char *libtoe)
{
  printf("%s (toekit) %s\n", prog, TOE_VERSION);
  printf("transport ABI %u.%u\n", (unsigned)TOE_ABI_MAJOR, (unsigned)TOE_ABI_MINOR);
  if (libtoe)
    printf("libtoe %s (libtoe.so.1)\n", libtoe);
  else
    printf("libtoe %s (headers; not linked)\n", TOE_VERSION);
  return fflush(stdout) == 0 && !ferror(stdout) ? TOE_CLI_EXIT_OK : TOE_CLI_EXIT_FAIL;
}

/* Prints "PROG: MESSAGE (see PROG --help)" on stderr and returns TOE_CLI_EXIT_USAGE. */
static inline int toe_cli_usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int toe_cli_usage_error(const char *prog, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "%s: ", prog);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (see %s --help)\n", prog);
  va_end(ap);
  return TOE_CLI_EXIT_USAGE;
}

#endif
