/*
 * The rule parsers: the shared grammar (src/rules/toe_rules.c), the preload's TOE_OFFLOAD lists
 * (src/preload/pl_rules.c) and toe-proxyd's --include/--exclude rules (src/proxy/px_rules.c).
 *
 * Input: u8 mode | u32 address | u16 port | text. mode % 3 picks the parser: one rule from an
 * unterminated buffer of exactly the text's length (a read past its end is a sanitizer error),
 * a whole TOE_OFFLOAD list, or one proxy rule. Checked: a parsed rule is well formed (prefix
 * length <= 32, or <= 128 for an IPv6 one, network masked, port range ordered) and matches its
 * own network and ports (an IPv6 rule no IPv4 address); a
 * proxy rule printed by px_rule_str parses back to the same rule; a list never holds more than
 * PL_RULES_MAX rules and reports an error exactly when it skipped something.
 */
#define _GNU_SOURCE /* preload.h names the GNU socket calls it interposes */

#include "preload/preload.h"
#include "proxy/proxyd.h"
#include "rules/toe_rules.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct toe_rule_kind kinds[] = {
    {"tcp", 1}, {"udp", 2}, {"listen", 4}, {"*", 7}, {NULL, 0},
};

/* An IPv6 rule: prefix length <= 128, network masked, matches its own network at both ends of
 * its port range, and never an IPv4 address. */
static void well_formed6(const struct toe_rule *r, const char *who)
{
  bool ok = r->len6 <= 128 && r->port_lo <= r->port_hi && r->kinds;
  uint8_t hi[16];
  for (unsigned i = 0; i < 16 && ok; i++) {
    unsigned bits = r->len6 >= 8 * (i + 1) ? 8 : r->len6 > 8 * i ? r->len6 - 8 * i : 0;
    uint8_t m = (uint8_t)(0xff00u >> bits);
    ok = (r->net6[i] & ~m) == 0;
    hi[i] = (uint8_t)(r->net6[i] | ~m);
  }
  if (!ok || !toe_rule_match6(r, r->kinds, r->net6, r->port_lo) ||
      !toe_rule_match6(r, r->kinds, hi, r->port_hi) || toe_rule_match(r, r->kinds, 0, r->port_lo)) {
    fprintf(stderr, "fuzz_rules: %s: bad IPv6 rule: kinds %u /%u ports %u-%u\n", who, r->kinds,
            r->len6, r->port_lo, r->port_hi);
    abort();
  }
}

static void well_formed(const struct toe_rule *r, const char *who)
{
  if (r->v6) {
    well_formed6(r, who);
    return;
  }
  uint32_t mask = r->len == 0 ? 0 : (uint32_t)(0xffffffffu << (32 - r->len));
  if (r->len > 32 || (r->net & ~mask) || r->port_lo > r->port_hi || !r->kinds ||
      !toe_rule_match(r, r->kinds, r->net, r->port_lo) ||
      !toe_rule_match(r, r->kinds, r->net | ~mask, r->port_hi)) {
    fprintf(stderr, "fuzz_rules: %s: bad rule: kinds %u net %#x/%u ports %u-%u\n", who, r->kinds,
            r->net, r->len, r->port_lo, r->port_hi);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 7)
    return 0;
  uint8_t mode = data[0];
  uint32_t addr =
      (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4];
  uint16_t port = (uint16_t)(data[5] << 8 | data[6]);
  data += 7;
  size -= 7;
  if (size > 4096)
    return 0;

  if (mode % 3 == 0) {
    char *s = malloc(size ? size : 1); /* exactly the text: no terminator to lean on */
    if (!s)
      abort();
    memcpy(s, data, size);
    struct toe_rule r;
    enum toe_rule_part bad = (enum toe_rule_part)99;
    int rc = toe_rule_parse(s, s + size, kinds, (mode & 8) ? TOE_RULE_ALLOW_NOT : 0, &r, &bad);
    if (rc == 0) {
      well_formed(&r, "toe_rule_parse");
      if (r.negated && !(mode & 8))
        abort();
      (void)toe_rule_match(&r, mode >> 4, addr, port);
      uint8_t a6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}; /* v4-mapped, or not */
      memcpy(a6 + 12, &addr, 4);
      a6[(mode >> 4) & 15] ^= (uint8_t)(mode & 1);
      (void)toe_rule_match6(&r, mode >> 4, a6, port);
    } else if (bad != TOE_RULE_KIND && bad != TOE_RULE_ADDR && bad != TOE_RULE_PORTS) {
      abort();
    }
    free(s);
    return 0;
  }

  char *text = malloc(size + 1);
  if (!text)
    abort();
  memcpy(text, data, size);
  text[size] = 0;
  if (mode % 3 == 1) {
    static struct pl_rules rs;
    memset(&rs, 0, sizeof rs);
    char err[128] = "";
    int bad = pl_rules_parse(&rs, text, (mode & 8) ? NULL : err, sizeof err);
    if (rs.n < 0 || rs.n > PL_RULES_MAX || bad < 0 || (bad > 0 && !(mode & 8) && !err[0]) ||
        (bad == 0 && err[0])) {
      fprintf(stderr, "fuzz_rules: pl_rules_parse: %d rules, %d bad, err '%s'\n", rs.n, bad, err);
      abort();
    }
    for (int i = 0; i < rs.n; i++)
      well_formed(&rs.r[i], "pl_rules_parse");
    (void)pl_rules_match(&rs, mode >> 4, htonl(addr), port);
  } else {
    struct toe_rule r, r2;
    char err[512], out[64], err2[512];
    if (px_rule_parse(text, &r, err, sizeof err) == 0) {
      well_formed(&r, "px_rule_parse");
      if (r.negated)
        abort();
      px_rule_str(&r, out, sizeof out);
      if (px_rule_parse(out, &r2, err2, sizeof err2) != 0 || r2.kinds != r.kinds ||
          r2.net != r.net || r2.len != r.len || r2.port_lo != r.port_lo ||
          r2.port_hi != r.port_hi) {
        fprintf(stderr, "fuzz_rules: '%s' printed as '%s' does not parse back\n", text, out);
        abort();
      }
      static struct px_rules rs;
      memset(&rs, 0, sizeof rs);
      if (mode & 8)
        rs.exc[rs.nexc++] = r;
      else
        rs.inc[rs.ninc++] = r;
      (void)px_rules_select(&rs, (mode & 16) ? PX_UDP : PX_TCP, htonl(addr), port);
    }
  }
  free(text);
  return 0;
}
