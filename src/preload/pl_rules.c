/*
 * libtoe-preload: the offload rules (TOE_OFFLOAD, TOE_OFFLOAD_FILE; docs/interception.md).
 *
 *   rules  := rule { sep rule }          sep: ',' ';' blank or newline; '#' starts a comment
 *   rule   := [ '!' ] kind [ ':' addr [ ':' ports ] ]
 *   kind   := 'tcp' | 'udp' | 'listen' | '*'      ('*' is all three)
 *   addr   := '*' | A.B.C.D [ '/' LEN ] | '[' IPv6 ']' [ '/' LEN ]
 *   ports  := '*' | N | N '-' M
 *
 * The first rule that matches decides: plain rules offload, '!' rules keep the socket on the
 * kernel; a socket no rule matches stays on the kernel. The grammar of one rule is shared with
 * toe-proxyd (src/rules/toe_rules.c); this file adds the list syntax and the first-match decision.
 * Pure string handling, no OS calls.
 */
#define _GNU_SOURCE

#include "preload/preload.h"

#include <stdio.h>
#include <string.h>

static bool is_sep(char c)
{
  return c == ',' || c == ';' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The kinds of TOE_OFFLOAD's rules; '*' is all three. */
static const struct toe_rule_kind pl_kinds[] = {
    {"tcp", PL_K_TCP},
    {"udp", PL_K_UDP},
    {"listen", PL_K_LISTEN},
    {"*", PL_K_TCP | PL_K_UDP | PL_K_LISTEN},
    {NULL, 0},
};

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
    struct toe_rule r;
    if (toe_rule_parse(s, p, pl_kinds, TOE_RULE_ALLOW_NOT, &r, NULL) < 0) {
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
  for (int i = 0; i < rs->n; i++)
    if (toe_rule_match(&rs->r[i], kind, a, port))
      return !rs->r[i].negated; /* the first match decides */
  return false;
}

bool pl_rules_match6(const struct pl_rules *rs, unsigned kind, const uint8_t addr[16],
                     uint16_t port)
{
  for (int i = 0; i < rs->n; i++)
    if (toe_rule_match6(&rs->r[i], kind, addr, port))
      return !rs->r[i].negated; /* the first match decides, as for IPv4 */
  return false;
}
