/*
 * Capture filters (capture_filter.h): a recursive-descent compiler into a fixed node array, and
 * an evaluator over a one-pass summary of the frame's headers. Everything here handles untrusted
 * input (the expression comes from a host client, the frame from the wire): every read is bounded
 * by the given lengths, recursion by TOE_CAPF_MAX_DEPTH and the node count.
 */
#include "transport/capture_filter.h"

#include "toe/errno.h"
#include "wire/frame.h"

#include <string.h>

enum capf_op {
  CF_TRUE = 0,
  CF_ARP,
  CF_IP,
  CF_ICMP,
  CF_TCP,
  CF_UDP,
  CF_HOST,
  CF_SRC_HOST,
  CF_DST_HOST,
  CF_PORT,
  CF_SRC_PORT,
  CF_DST_PORT,
  CF_NOT,
  CF_AND,
  CF_OR,
};

/* ---- compiling ------------------------------------------------------------------------------ */

struct parser {
  struct toe_capf *f;
  const char *s;
  size_t len;
  size_t pos;     /* next unread byte */
  size_t tok;     /* start of the current token */
  size_t tok_len; /* 0 at the end */
  const char *err;
  size_t err_pos;
};

static bool is_space(char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_word(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_';
}

/* Moves to the next token: a word (letters, digits, dots), "(", ")", "!", "&&" or "||". */
static void next(struct parser *p)
{
  while (p->pos < p->len && is_space(p->s[p->pos]))
    p->pos++;
  p->tok = p->pos;
  if (p->pos >= p->len) {
    p->tok_len = 0;
    return;
  }
  char c = p->s[p->pos];
  if (is_word(c)) {
    while (p->pos < p->len && is_word(p->s[p->pos]))
      p->pos++;
  } else if ((c == '&' || c == '|') && p->pos + 1 < p->len && p->s[p->pos + 1] == c) {
    p->pos += 2;
  } else {
    p->pos++; /* one character: "(", ")", "!", or something the grammar refuses */
  }
  p->tok_len = p->pos - p->tok;
}

static bool tok_is(const struct parser *p, const char *w)
{
  size_t n = strlen(w);
  return p->tok_len == n && memcmp(p->s + p->tok, w, n) == 0;
}

static int fail(struct parser *p, const char *msg)
{
  if (!p->err) {
    p->err = msg;
    p->err_pos = p->tok;
  }
  return -1;
}

static int node(struct parser *p, uint8_t op, int a, int b, uint32_t val)
{
  if (p->f->count >= TOE_CAPF_MAX_NODES)
    return fail(p, "expression too long");
  struct toe_capf_node *n = &p->f->n[p->f->count];
  n->op = op;
  n->a = (uint8_t)(a < 0 ? 0 : a);
  n->b = (uint8_t)(b < 0 ? 0 : b);
  n->reserved = 0;
  n->val = val;
  return (int)p->f->count++;
}

/* A dotted quad A.B.C.D, each part 0..255. */
static bool parse_ipv4(const char *s, size_t n, uint32_t *out)
{
  uint32_t v = 0, part = 0;
  unsigned parts = 0, digits = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || s[i] == '.') {
      if (digits == 0 || part > 255)
        return false;
      v = v << 8 | part;
      parts++;
      part = 0;
      digits = 0;
    } else if (s[i] >= '0' && s[i] <= '9' && digits < 3) {
      part = part * 10 + (uint32_t)(s[i] - '0');
      digits++;
    } else {
      return false;
    }
  }
  if (parts != 4)
    return false;
  *out = v;
  return true;
}

static bool parse_port(const char *s, size_t n, uint32_t *out)
{
  uint32_t v = 0;
  if (n == 0 || n > 5)
    return false;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (uint32_t)(s[i] - '0');
  }
  if (v > 65535)
    return false;
  *out = v;
  return true;
}

static int parse_or(struct parser *p, unsigned depth);

static int parse_primitive(struct parser *p)
{
  static const struct {
    const char *w;
    uint8_t op;
  } protos[] = {
      {"arp", CF_ARP}, {"ip", CF_IP}, {"icmp", CF_ICMP}, {"tcp", CF_TCP}, {"udp", CF_UDP}};
  for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
    if (tok_is(p, protos[i].w)) {
      next(p);
      return node(p, protos[i].op, -1, -1, 0);
    }
  int dir = 0; /* 0 either, 1 src, 2 dst */
  if (tok_is(p, "src") || tok_is(p, "dst")) {
    dir = tok_is(p, "src") ? 1 : 2;
    next(p);
  }
  if (tok_is(p, "host")) {
    next(p);
    uint32_t a;
    if (!p->tok_len || !parse_ipv4(p->s + p->tok, p->tok_len, &a))
      return fail(p, "an IPv4 address A.B.C.D after \"host\"");
    next(p);
    return node(p, dir == 1 ? CF_SRC_HOST : dir == 2 ? CF_DST_HOST : CF_HOST, -1, -1, a);
  }
  if (tok_is(p, "port")) {
    next(p);
    uint32_t v;
    if (!p->tok_len || !parse_port(p->s + p->tok, p->tok_len, &v))
      return fail(p, "a port number 0..65535 after \"port\"");
    next(p);
    return node(p, dir == 1 ? CF_SRC_PORT : dir == 2 ? CF_DST_PORT : CF_PORT, -1, -1, v);
  }
  if (dir)
    return fail(p, "\"host\" or \"port\" after \"src\"/\"dst\"");
  return fail(p, "arp, ip, icmp, tcp, udp, host, port, src, dst, not or \"(\"");
}

static int parse_unary(struct parser *p, unsigned depth)
{
  if (depth > TOE_CAPF_MAX_DEPTH)
    return fail(p, "nested too deeply");
  if (tok_is(p, "not") || tok_is(p, "!")) {
    next(p);
    int a = parse_unary(p, depth + 1);
    return a < 0 ? a : node(p, CF_NOT, a, -1, 0);
  }
  if (tok_is(p, "(")) {
    next(p);
    int a = parse_or(p, depth + 1);
    if (a < 0)
      return a;
    if (!tok_is(p, ")"))
      return fail(p, "\")\"");
    next(p);
    return a;
  }
  return parse_primitive(p);
}

/* True if the current token can start a unary (so juxtaposition means "and"). */
static bool starts_unary(const struct parser *p)
{
  return p->tok_len && !tok_is(p, ")") && !tok_is(p, "or") && !tok_is(p, "||") &&
         !tok_is(p, "and") && !tok_is(p, "&&");
}

static int parse_and(struct parser *p, unsigned depth)
{
  int a = parse_unary(p, depth);
  while (a >= 0) {
    if (tok_is(p, "and") || tok_is(p, "&&"))
      next(p);
    else if (!starts_unary(p))
      break;
    int b = parse_unary(p, depth);
    if (b < 0)
      return b;
    a = node(p, CF_AND, a, b, 0);
  }
  return a;
}

static int parse_or(struct parser *p, unsigned depth)
{
  int a = parse_and(p, depth);
  while (a >= 0 && (tok_is(p, "or") || tok_is(p, "||"))) {
    next(p);
    int b = parse_and(p, depth);
    if (b < 0)
      return b;
    a = node(p, CF_OR, a, b, 0);
  }
  return a;
}

int toe_capf_compile(struct toe_capf *f, const char *text, size_t len, size_t *err_pos,
                     const char **err_msg)
{
  memset(f, 0, sizeof(*f));
  struct parser p = {.f = f, .s = text, .len = text ? len : 0};
  next(&p);
  int root;
  if (p.tok_len == 0) {
    root = node(&p, CF_TRUE, -1, -1, 0);
  } else {
    root = parse_or(&p, 0);
    if (root >= 0 && p.tok_len)
      root = fail(&p, "\"and\", \"or\" or the end of the expression");
  }
  if (root < 0) {
    if (err_pos)
      *err_pos = p.err_pos;
    if (err_msg)
      *err_msg = p.err;
    memset(f, 0, sizeof(*f));
    f->count = 1; /* node 0: CF_TRUE */
    return -TOE_EINVAL;
  }
  f->root = (uint32_t)root;
  return 0;
}

/* ---- matching -------------------------------------------------------------------------------- */

/* What the primitives look at, read once per frame. */
struct summary {
  bool arp, ip, ports;
  uint8_t proto;
  uint32_t src, dst; /* IPv4 addresses, or ARP sender and target protocol addresses */
  uint16_t sport, dport;
};

/* One walk through the frame with the tree's frame view (wire/frame.h); the primitives are IPv4
 * and ARP only, so an IPv6 frame summarises as neither. */
static void summarize(const uint8_t *fr, size_t len, struct summary *s)
{
  memset(s, 0, sizeof(*s));
  struct toe_frame_view v;
  if (toe_frame_parse(&v, fr, len, TOE_FRAME_LEN_UNKNOWN) != 0)
    return;
  if (v.eth.ethertype == TOE_ETHERTYPE_ARP) {
    s->arp = true;
    /* Ethernet/IPv4 ARP (RFC 826): sender and target protocol addresses. */
    if (v.arp) {
      s->src = v.arp_view.spa;
      s->dst = v.arp_view.tpa;
    }
    return;
  }
  if (v.ipver != 4)
    return;
  s->ip = true;
  s->proto = v.l4_proto;
  s->src = v.v4.src;
  s->dst = v.v4.dst;
  /* Ports only in a first fragment (RFC 791: only offset 0 carries the transport header). */
  s->ports = v.ports;
  s->sport = v.sport;
  s->dport = v.dport;
}

static bool eval(const struct toe_capf *f, uint32_t i, const struct summary *s, unsigned depth)
{
  if (i >= f->count || depth > TOE_CAPF_MAX_NODES)
    return false; /* not reached for a compiled filter */
  const struct toe_capf_node *n = &f->n[i];
  bool have_addr = s->ip || s->arp;
  switch (n->op) {
  case CF_TRUE:
    return true;
  case CF_ARP:
    return s->arp;
  case CF_IP:
    return s->ip;
  case CF_ICMP:
    return s->ip && s->proto == 1;
  case CF_TCP:
    return s->ip && s->proto == 6;
  case CF_UDP:
    return s->ip && s->proto == 17;
  case CF_HOST:
    return have_addr && (s->src == n->val || s->dst == n->val);
  case CF_SRC_HOST:
    return have_addr && s->src == n->val;
  case CF_DST_HOST:
    return have_addr && s->dst == n->val;
  case CF_PORT:
    return s->ports && (s->sport == n->val || s->dport == n->val);
  case CF_SRC_PORT:
    return s->ports && s->sport == n->val;
  case CF_DST_PORT:
    return s->ports && s->dport == n->val;
  case CF_NOT:
    return !eval(f, n->a, s, depth + 1);
  case CF_AND:
    return eval(f, n->a, s, depth + 1) && eval(f, n->b, s, depth + 1);
  case CF_OR:
    return eval(f, n->a, s, depth + 1) || eval(f, n->b, s, depth + 1);
  default:
    return false;
  }
}

bool toe_capf_match(const struct toe_capf *f, const uint8_t *frame, size_t len)
{
  if (f->count == 0 || f->n[f->root].op == CF_TRUE)
    return true;
  struct summary s;
  summarize(frame, len, &s);
  return eval(f, f->root, &s, 0);
}
