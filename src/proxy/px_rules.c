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
 * which wins over --include as NETransparentProxyNetworkSettings' excludedNetworkRules do. The
 * grammar itself is shared with the preload (src/rules/toe_rules.c); this file names the
 * protocols, words the errors and decides the selection. Pure string handling, no OS calls.
 */
#include "proxy/proxyd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

/* toe-proxyd's protocols; '*' is both. */
static const struct toe_rule_kind px_kinds[] = {
    {"tcp", PX_TCP},
    {"udp", PX_UDP},
    {"*", PX_TCP | PX_UDP},
    {NULL, 0},
};

int px_rule_parse(const char *text, struct toe_rule *r, char *err, size_t errlen)
{
  static const char *const why[] = {
      [TOE_RULE_KIND] = "the protocol must be tcp, udp or *",
      [TOE_RULE_ADDR] = "the address must be * or A.B.C.D[/LEN]",
      [TOE_RULE_PORTS] = "the ports must be *, N or N-M (0..65535)",
  };
  enum toe_rule_part bad;
  int rc = toe_rule_parse(text, text + strlen(text), px_kinds, 0, r, &bad);
  if (rc < 0) {
    snprintf(err, errlen, "bad rule '%s': %s", text, why[bad]);
  } else if (r->v6) {
    /* The shared grammar reads IPv6 networks (the preload's rules take them); the proxy's
     * redirection is IPv4 only so far, so such a rule could never select a flow. */
    snprintf(err, errlen, "bad rule '%s': toe-proxyd carries IPv4 flows only (give A.B.C.D[/LEN])",
             text);
    rc = -EINVAL;
  }
  return rc;
}

bool px_rules_select(const struct px_rules *rs, enum px_proto proto, uint32_t addr_be,
                     uint16_t port)
{
  uint32_t a = ntohl(addr_be);
  if ((a >> 24) == 127)
    return false; /* loopback is the host's own, whatever the rules say */
  for (int i = 0; i < rs->nexc; i++)
    if (toe_rule_match(&rs->exc[i], proto, a, port))
      return false;
  for (int i = 0; i < rs->ninc; i++)
    if (toe_rule_match(&rs->inc[i], proto, a, port))
      return true;
  return false;
}

void px_rule_str(const struct toe_rule *r, char *out, size_t len)
{
  const char *proto = r->kinds == PX_TCP ? "tcp" : r->kinds == PX_UDP ? "udp" : "*";
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
