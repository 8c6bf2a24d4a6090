/*
 * The rule grammar of the preload and the proxy (toe_rules.h, docs/interception.md): one parser
 * and one matcher. Pure string handling, no OS calls.
 */
#include "rules/toe_rules.h"

#include <arpa/inet.h>
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

/* '[' IPv6 ']' [ '/' LEN ] (RFC 4291 2.2 text forms; inet_pton is pure string handling). */
static bool parse_addr6(const char *s, const char *end, struct toe_rule *r)
{
  const char *close = memchr(s, ']', (size_t)(end - s));
  char text[INET6_ADDRSTRLEN];
  size_t n = close ? (size_t)(close - s - 1) : 0;
  if (!close || n == 0 || n >= sizeof(text))
    return false;
  memcpy(text, s + 1, n);
  text[n] = 0;
  uint8_t a[16];
  if (inet_pton(AF_INET6, text, a) != 1)
    return false;
  s = close + 1;
  unsigned long len = 128;
  if (s < end && *s == '/') {
    s++;
    if (!parse_num(&s, end, 128, &len))
      return false;
  }
  if (s != end)
    return false;
  for (unsigned i = 0; i < 16; i++) {
    unsigned bits = len >= 8 * (i + 1) ? 8 : len > 8 * i ? (unsigned)len - 8 * i : 0;
    a[i] &= (uint8_t)(0xff00u >> bits);
  }
  r->v6 = true;
  r->len6 = (uint8_t)len;
  memcpy(r->net6, a, 16);
  return true;
}

static bool parse_addr(const char *s, const char *end, struct toe_rule *r)
{
  if (end - s == 1 && *s == '*') {
    r->net = 0;
    r->len = 0;
    return true;
  }
  if (s < end && *s == '[')
    return parse_addr6(s, end, r);
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
  /* An IPv6 address has colons of its own: the ports follow its closing bracket. */
  const char *from = a;
  if (a < end && *a == '[') {
    const char *close = memchr(a, ']', (size_t)(end - a));
    if (!close)
      return fail(TOE_RULE_ADDR, bad);
    from = close;
  }
  const char *c2 = memchr(from, ':', (size_t)(end - from));
  if (!parse_addr(a, c2 ? c2 : end, r))
    return fail(TOE_RULE_ADDR, bad);
  if (c2 && !parse_ports(c2 + 1, end, r))
    return fail(TOE_RULE_PORTS, bad);
  return 0;
}

bool toe_rule_match(const struct toe_rule *r, unsigned kind, uint32_t addr, uint16_t port)
{
  return !r->v6 && (r->kinds & kind) && (addr & prefix_mask(r->len)) == r->net &&
         port >= r->port_lo && port <= r->port_hi;
}

bool toe_rule_match6(const struct toe_rule *r, unsigned kind, const uint8_t addr[16], uint16_t port)
{
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (!r->v6) {
    if (r->len == 0) /* '*' (or 0.0.0.0/0): every address of either family */
      return (r->kinds & kind) && port >= r->port_lo && port <= r->port_hi;
    if (memcmp(addr, mapped, sizeof(mapped)) != 0)
      return false; /* an IPv4 network holds no other IPv6 address */
    uint32_t a =
        (uint32_t)addr[12] << 24 | (uint32_t)addr[13] << 16 | (uint32_t)addr[14] << 8 | addr[15];
    return toe_rule_match(r, kind, a, port);
  }
  if (!(r->kinds & kind) || port < r->port_lo || port > r->port_hi)
    return false;
  for (unsigned i = 0; i < 16; i++) {
    unsigned bits = r->len6 >= 8 * (i + 1) ? 8 : r->len6 > 8 * i ? r->len6 - 8 * i : 0;
    if ((addr[i] & (uint8_t)(0xff00u >> bits)) != r->net6[i])
      return false;
  }
  return true;
}
