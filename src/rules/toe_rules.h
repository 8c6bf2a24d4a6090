/*
 * The rule grammar shared by libtoe-preload's offload rules (src/preload/pl_rules.c) and
 * toe-proxyd's include/exclude rules (src/proxy/px_rules.c), docs/interception.md:
 *
 *   rule   := [ '!' ] kind [ ':' addr [ ':' ports ] ]     ('!' only where the caller allows it)
 *   kind   := one of the caller's names (e.g. 'tcp', 'udp', 'listen', '*')
 *   addr   := '*' | A.B.C.D [ '/' LEN ] | '[' IPv6 ']' [ '/' LEN ]
 *   ports  := '*' | N | N '-' M
 *
 * An IPv4 rule also covers the v4-mapped IPv6 addresses ::ffff:A.B.C.D of its network (the IPv4
 * peers of a dual-stack AF_INET6 socket, RFC 4291 2.5.5.2); an IPv6 rule covers only IPv6
 * addresses; '*' covers both. One parser and one matcher; what a kind means, how a list is written
 * and what a match decides stay with each caller. Pure string handling, no OS calls, no state.
 * Internal to toekit (a static library linked into libtoe-preload and toe-proxyd), not part of
 * libtoe's API.
 */
#ifndef TOE_RULES_H
#define TOE_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One parsed rule. The fields are in this order so that callers may write one as a literal. */
struct toe_rule {
  unsigned kinds;            /* the caller's kind bits (toe_rule_kind.bits) */
  uint32_t net;              /* host order, already masked */
  uint8_t len;               /* prefix length 0..32 */
  uint16_t port_lo, port_hi; /* host order; 0..65535 is any port */
  bool negated;              /* written with a leading '!' */
  /* Appended so that IPv4 literals stay as they were: */
  bool v6;          /* an IPv6 rule ('[' addr ']'): net6/len6 below, net and len unused */
  uint8_t len6;     /* prefix length 0..128 */
  uint8_t net6[16]; /* network order, already masked */
};

/* A kind name and the bits it stands for; a table of them ends with a NULL name. */
struct toe_rule_kind {
  const char *name;
  unsigned bits;
};

/* Which part of a rule was malformed (set by toe_rule_parse on -EINVAL). */
enum toe_rule_part { TOE_RULE_KIND, TOE_RULE_ADDR, TOE_RULE_PORTS };

#define TOE_RULE_ALLOW_NOT 1u /* flag: a leading '!' is accepted (sets negated) */

/*
 * Parses one rule from [s, end) (not NUL-terminated) into *r; an omitted addr or ports means any.
 * `kinds` is the caller's table of kind names. Returns 0, or -EINVAL with *bad (if not NULL) set
 * to the part that is malformed; a '!' without TOE_RULE_ALLOW_NOT is a malformed kind.
 */
int toe_rule_parse(const char *s, const char *end, const struct toe_rule_kind *kinds,
                   unsigned flags, struct toe_rule *r, enum toe_rule_part *bad);

/* true if r covers `kind` (any of its bits), the address (host order) and the port (host order).
 * Whether a match offloads, declines or excludes is the caller's business (r->negated). */
bool toe_rule_match(const struct toe_rule *r, unsigned kind, uint32_t addr, uint16_t port);

/* The same for an IPv6 address (16 bytes, network order): an IPv6 rule by its prefix, an IPv4
 * rule only for a v4-mapped address (then as its IPv4 address), '*' always. */
bool toe_rule_match6(const struct toe_rule *r, unsigned kind, const uint8_t addr[16],
                     uint16_t port);

#endif
