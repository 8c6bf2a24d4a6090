/* toe-impair: seeded PRNG and command-line value parsers. */
#include "common/prng.h"
#include "impair.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The tree's one PRNG (src/common/prng.h), one state word a stream. */
void rng_seed(struct imp_rng *r, uint64_t seed)
{
  toe_prng_seed(&r->s, seed);
}

uint64_t rng_next(struct imp_rng *r)
{
  return toe_prng_next(&r->s);
}

double rng_double(struct imp_rng *r)
{
  return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* strtod that insists on a finite number at the start of s; *end is left at the unit suffix. */
static int num_prefix(const char *s, double *v, const char **end)
{
  if (!s || !*s || isspace((unsigned char)*s))
    return -1;
  char *e;
  errno = 0;
  double d = strtod(s, &e);
  if (e == s || errno || !isfinite(d) || d < 0)
    return -1;
  *v = d;
  *end = e;
  return 0;
}

int parse_prob(const char *s, double *out)
{
  double v;
  const char *e;
  if (num_prefix(s, &v, &e))
    return -1;
  if (strcmp(e, "%") == 0)
    v /= 100.0;
  else if (*e)
    return -1;
  if (v > 1.0)
    return -1;
  *out = v;
  return 0;
}

int parse_time_ns(const char *s, uint64_t *out)
{
  double v;
  const char *e;
  if (num_prefix(s, &v, &e))
    return -1;
  double mult;
  if (!*e && v == 0)
    mult = 0;
  else if (strcasecmp(e, "ns") == 0)
    mult = 1;
  else if (strcasecmp(e, "us") == 0)
    mult = 1e3;
  else if (strcasecmp(e, "ms") == 0)
    mult = 1e6;
  else if (strcasecmp(e, "s") == 0)
    mult = 1e9;
  else
    return -1;
  double ns = v * mult;
  if (ns > 3600e9) /* an hour of delay is a mistake, not a test */
    return -1;
  *out = (uint64_t)llround(ns);
  return 0;
}

int parse_rate(const char *s, uint64_t *out)
{
  double v;
  const char *e;
  if (num_prefix(s, &v, &e))
    return -1;
  double mult;
  if (!*e || strcasecmp(e, "bit") == 0)
    mult = 1;
  else if (strcasecmp(e, "kbit") == 0)
    mult = 1e3;
  else if (strcasecmp(e, "mbit") == 0)
    mult = 1e6;
  else if (strcasecmp(e, "gbit") == 0)
    mult = 1e9;
  else if (strcasecmp(e, "tbit") == 0)
    mult = 1e12;
  else
    return -1;
  double bps = v * mult;
  if (bps < 1000 || bps > 1e13)
    return -1;
  *out = (uint64_t)llround(bps);
  return 0;
}

int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
  if (!s || !*s || *s == '-' || *s == '+' || isspace((unsigned char)*s))
    return -1;
  char *e;
  errno = 0;
  unsigned long long v = strtoull(s, &e, 0);
  if (*e || errno || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

int parse_secs_ns(const char *s, uint64_t *out)
{
  double v;
  const char *e;
  if (num_prefix(s, &v, &e))
    return -1;
  uint64_t ns;
  if (*e) {
    if (parse_time_ns(s, &ns))
      return -1;
  } else {
    if (v > 86400)
      return -1;
    ns = (uint64_t)llround(v * 1e9);
  }
  if (ns < 1000000) /* below a millisecond the stats would drown the output */
    return -1;
  *out = ns;
  return 0;
}
