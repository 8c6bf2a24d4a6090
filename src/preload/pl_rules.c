/*
 * libtoe-preload: the offload rules (TOE_OFFLOAD, TOE_OFFLOAD_FILE; docs/interception.md).
 *
 *   rules  := rule { sep rule }          sep: ',' ';' blank or newline; '#' starts a comment
 *   rule   := [ '!' ] kind [ ':' addr [ ':' ports ] ]
 *   kind   := 'tcp' | 'udp' | 'listen' | '*'      ('*' is all three)
 *   addr   := '*' | A.B.C.D [ '/' LEN ]
 *   ports  := '*' | N | N '-' M
 *
 * The first rule that matches decides: plain rules offload, '!' rules keep the socket on the
 * kernel; a socket no rule matches stays on the kernel. Pure string handling, no OS calls.
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <stdio.h>
#include <string.h>

static bool is_sep(char c)
{
  return c == ',' || c == ';' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

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

static bool parse_addr(const char *s, const char *end, struct pl_rule *r)
{
  if (end - s == 1 && *s == '*') {
    r->net = 0;
    r->mask = 0;
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
  r->mask = len == 0 ? 0 : (uint32_t)(0xffffffffu << (32 - len));
  r->net = a & r->mask;
  return true;
}

static bool parse_ports(const char *s, const char *end, struct pl_rule *r)
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

static bool parse_rule(const char *s, const char *end, struct pl_rule *r)
{
  memset(r, 0, sizeof(*r));
  r->port_hi = 65535;
  if (s < end && *s == '!') {
    r->deny = true;
    s++;
  }
  const char *c1 = memchr(s, ':', (size_t)(end - s));
  const char *kend = c1 ? c1 : end;
  size_t kl = (size_t)(kend - s);
  if (kl == 3 && !strncmp(s, "tcp", 3))
    r->kinds = PL_K_TCP;
  else if (kl == 3 && !strncmp(s, "udp", 3))
    r->kinds = PL_K_UDP;
  else if (kl == 6 && !strncmp(s, "listen", 6))
    r->kinds = PL_K_LISTEN;
  else if (kl == 1 && *s == '*')
    r->kinds = PL_K_TCP | PL_K_UDP | PL_K_LISTEN;
  else
    return false;
  if (!c1)
    return true; /* kind alone: any address, any port */
  const char *a = c1 + 1;
  const char *c2 = memchr(a, ':', (size_t)(end - a));
  if (!parse_addr(a, c2 ? c2 : end, r))
    return false;
  if (!c2)
    return true;
  return parse_ports(c2 + 1, end, r);
}

int pl_rules_parse(struct pl_rules *rs, const char *text, char *err, size_t errlen)
{
  int bad = 0;
  const char *p = text;
  while (*p) {
    if (is_sep(*p)) {
      p++;
      continue;
    }
    if (*p == '#') {
      while (*p && *p != '\n')
        p++;
      continue;
    }
    const char *s = p;
    while (*p && !is_sep(*p) && *p != '#')
      p++;
    struct pl_rule r;
    if (!parse_rule(s, p, &r)) {
      if (bad++ == 0 && err && errlen)
        snprintf(err, errlen, "bad rule '%.*s'", (int)(p - s > 60 ? 60 : p - s), s);
      continue;
    }
    if (rs->n >= PL_RULES_MAX) {
      if (bad++ == 0 && err && errlen)
        snprintf(err, errlen, "more than %d rules", PL_RULES_MAX);
      continue;
    }
    rs->r[rs->n++] = r;
  }
  return bad;
}

bool pl_rules_match(const struct pl_rules *rs, unsigned kind, uint32_t addr_be, uint16_t port)
{
  uint32_t a = ntohl(addr_be);
  for (int i = 0; i < rs->n; i++) {
    const struct pl_rule *r = &rs->r[i];
    if (!(r->kinds & kind))
      continue;
    if ((a & r->mask) != r->net)
      continue;
    if (port < r->port_lo || port > r->port_hi)
      continue;
    return !r->deny;
  }
  return false;
}
