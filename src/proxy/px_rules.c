/*
 * toe-proxyd's rules, the counterpart of NENetworkRule (docs/interception.md "toe-proxyd"):
 *
 *   rule   := proto [ ':' addr [ ':' ports ] ]
 *   proto  := 'tcp' | 'udp' | '*'
 *   addr   := '*' | A.B.C.D [ '/' LEN ]
 *   ports  := '*' | N | N '-' M
 *
 * The same grammar as the preload's TOE_OFFLOAD rules (src/preload/pl_rules.c) without '!' and
 * `listen`: a proxy is handed outbound flows only, and exclusion is a separate list (--exclude),
 * which wins over --include as NETransparentProxyNetworkSettings' excludedNetworkRules do.
 * Pure string handling, no OS calls.
 */
#include "proxy/proxyd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

/* Parses a decimal number <= max from [*p, end); advances *p. */
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

static bool parse_addr(const char *s, const char *end, struct px_rule *r)
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
  uint32_t mask = len == 0 ? 0 : (uint32_t)(0xffffffffu << (32 - len));
  r->net = a & mask;
  r->len = (uint8_t)len;
  return true;
}

static bool parse_ports(const char *s, const char *end, struct px_rule *r)
{
  if (end - s == 1 && *s == '*')
    return true;
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

int px_rule_parse(const char *text, struct px_rule *r, char *err, size_t errlen)
{
  memset(r, 0, sizeof(*r));
  r->port_hi = 65535;
  const char *s = text, *end = text + strlen(text);
  const char *c1 = memchr(s, ':', (size_t)(end - s));
  size_t kl = (size_t)((c1 ? c1 : end) - s);
  if (kl == 3 && !strncmp(s, "tcp", 3)) {
    r->protos = PX_TCP;
  } else if (kl == 3 && !strncmp(s, "udp", 3)) {
    r->protos = PX_UDP;
  } else if (kl == 1 && *s == '*') {
    r->protos = PX_TCP | PX_UDP;
  } else {
    snprintf(err, errlen, "bad rule '%s': the protocol must be tcp, udp or *", text);
    return -EINVAL;
  }
  if (!c1)
    return 0;
  const char *a = c1 + 1;
  const char *c2 = memchr(a, ':', (size_t)(end - a));
  if (!parse_addr(a, c2 ? c2 : end, r)) {
    snprintf(err, errlen, "bad rule '%s': the address must be * or A.B.C.D[/LEN]", text);
    return -EINVAL;
  }
  if (c2 && !parse_ports(c2 + 1, end, r)) {
    snprintf(err, errlen, "bad rule '%s': the ports must be *, N or N-M (0..65535)", text);
    return -EINVAL;
  }
  return 0;
}

static bool rule_match(const struct px_rule *r, enum px_proto proto, uint32_t a, uint16_t port)
{
  uint32_t mask = r->len == 0 ? 0 : (uint32_t)(0xffffffffu << (32 - r->len));
  return (r->protos & (unsigned)proto) && (a & mask) == r->net && port >= r->port_lo &&
         port <= r->port_hi;
}

bool px_rules_select(const struct px_rules *rs, enum px_proto proto, uint32_t addr_be,
                     uint16_t port)
{
  uint32_t a = ntohl(addr_be);
  if ((a >> 24) == 127)
    return false; /* loopback is the host's own, whatever the rules say */
  for (int i = 0; i < rs->nexc; i++)
    if (rule_match(&rs->exc[i], proto, a, port))
      return false;
  for (int i = 0; i < rs->ninc; i++)
    if (rule_match(&rs->inc[i], proto, a, port))
      return true;
  return false;
}

void px_rule_str(const struct px_rule *r, char *out, size_t len)
{
  const char *proto = r->protos == PX_TCP ? "tcp" : r->protos == PX_UDP ? "udp" : "*";
  char ports[16];
  if (r->port_lo == 0 && r->port_hi == 65535)
    snprintf(ports, sizeof ports, "*");
  else if (r->port_lo == r->port_hi)
    snprintf(ports, sizeof ports, "%u", r->port_lo);
  else
    snprintf(ports, sizeof ports, "%u-%u", r->port_lo, r->port_hi);
  snprintf(out, len, "%s:%u.%u.%u.%u/%u:%s", proto, r->net >> 24, (r->net >> 16) & 255,
           (r->net >> 8) & 255, r->net & 255, r->len, ports);
}
