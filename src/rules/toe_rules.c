/*
 * The rule grammar of the preload and the proxy (toe_rules.h, docs/interception.md): one parser
 * and one matcher. Pure string handling, no OS calls.
 */
#include "rules/toe_rules.h"

#include <errno.h>
#include <string.h>

/* Parses a decimal number of at most `max` from [*p, end); advances *p. */
static bool parse_num(const char **p, const char *end, unsigned long max, unsigned long *out)
{
  const char *s = *p;
  unsigned long v = 0;
  if (s >= end || *s < '0' || *s > '9')
    return false;
  while (s < end && *s >= '0' && *s <= '9') {
    v = v * 10 + (unsigned long)(*s - '0');
    if (v > max)
      return false;
    s++;
  }
  *p = s;
  *out = v;
  return true;
}

static uint32_t prefix_mask(unsigned len)
{
  return len == 0 ? 0 : (uint32_t)(0xffffffffu << (32 - len));
}

static bool parse_addr(const char *s, const char *end, struct toe_rule *r)
{
  if (end - s == 1 && *s == '*') {
    r->net = 0;
    r->len = 0;
    return true;
  }
  uint32_t a = 0;
  for (int i = 0; i < 4; i++) {
    unsigned long b;
    if (!parse_num(&s, end, 255, &b))
      return false;
    a = (a << 8) | (uint32_t)b;
    if (i < 3) {
      if (s >= end || *s != '.')
        return false;
      s++;
    }
  }
  unsigned long len = 32;
  if (s < end && *s == '/') {
    s++;
    if (!parse_num(&s, end, 32, &len))
      return false;
  }
  if (s != end)
    return false;
  r->net = a & prefix_mask((unsigned)len);
  r->len = (uint8_t)len;
  return true;
}

static bool parse_ports(const char *s, const char *end, struct toe_rule *r)
{
  if (end - s == 1 && *s == '*') {
    r->port_lo = 0;
    r->port_hi = 65535;
    return true;
  }
  unsigned long lo, hi;
  if (!parse_num(&s, end, 65535, &lo))
    return false;
  hi = lo;
  if (s < end && *s == '-') {
    s++;
    if (!parse_num(&s, end, 65535, &hi) || hi < lo)
      return false;
  }
  if (s != end)
    return false;
  r->port_lo = (uint16_t)lo;
  r->port_hi = (uint16_t)hi;
  return true;
}

static int fail(enum toe_rule_part part, enum toe_rule_part *bad)
{
  if (bad)
    *bad = part;
  return -EINVAL;
}

int toe_rule_parse(const char *s, const char *end, const struct toe_rule_kind *kinds,
                   unsigned flags, struct toe_rule *r, enum toe_rule_part *bad)
{
  memset(r, 0, sizeof(*r));
  r->port_hi = 65535;
  if ((flags & TOE_RULE_ALLOW_NOT) && s < end && *s == '!') {
    r->negated = true;
    s++;
  }
  const char *c1 = memchr(s, ':', (size_t)(end - s));
  size_t kl = (size_t)((c1 ? c1 : end) - s);
  for (const struct toe_rule_kind *k = kinds; k->name && !r->kinds; k++)
    if (strlen(k->name) == kl && !strncmp(s, k->name, kl))
      r->kinds = k->bits;
  if (!r->kinds)
    return fail(TOE_RULE_KIND, bad);
  if (!c1)
    return 0; /* kind alone: any address, any port */
  const char *a = c1 + 1;
  const char *c2 = memchr(a, ':', (size_t)(end - a));
  if (!parse_addr(a, c2 ? c2 : end, r))
    return fail(TOE_RULE_ADDR, bad);
  if (c2 && !parse_ports(c2 + 1, end, r))
    return fail(TOE_RULE_PORTS, bad);
  return 0;
}

bool toe_rule_match(const struct toe_rule *r, unsigned kind, uint32_t addr, uint16_t port)
{
  return (r->kinds & kind) && (addr & prefix_mask(r->len)) == r->net && port >= r->port_lo &&
         port <= r->port_hi;
}
