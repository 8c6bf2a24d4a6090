/*
 * toectl's data from the device (toectl_data.h): STATS ENGINE counters and STATS FLOWS records,
 * fetched into growing buffers and parsed with every length checked.
 */
#include "toectl_data.h"

#include "toe/tcp.h" /* enum toe_tcp_state: the ABI's tcp_state values */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- counters (STATS ENGINE) ------------------------------------------------------------------
 */

static bool ident_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

/* Parses one "layer.name value" line (without its newline). */
static bool parse_line(const char *s, size_t len, struct counter *out)
{
  size_t i = 0, k = 0;
  while (i < len && ident_char(s[i]) && k + 1 < sizeof(out->layer))
    out->layer[k++] = s[i++];
  out->layer[k] = 0;
  if (k == 0 || i >= len || s[i] != '.')
    return false;
  i++;
  k = 0;
  while (i < len && (ident_char(s[i]) || s[i] == '.') && k + 1 < sizeof(out->name))
    out->name[k++] = s[i++];
  out->name[k] = 0;
  if (k == 0 || i >= len || (s[i] != ' ' && s[i] != '\t'))
    return false;
  while (i < len && (s[i] == ' ' || s[i] == '\t'))
    i++;
  if (i >= len)
    return false;
  uint64_t v = 0;
  for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return false;
    v = v * 10 + d;
  }
  while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
    i++;
  if (i != len)
    return false;
  out->value = v;
  return true;
}

int counters_parse(const char *text, size_t len, struct counters *cs)
{
  memset(cs, 0, sizeof(*cs));
  size_t pos = 0;
  while (pos < len) {
    const char *nl = memchr(text + pos, '\n', len - pos);
    size_t end = nl ? (size_t)(nl - text) : len;
    if (end > pos) {
      struct counter c;
      if (!parse_line(text + pos, end - pos, &c)) {
        cs->bad_lines++;
      } else {
        if (cs->n == cs->cap) {
          size_t cap = cs->cap ? cs->cap * 2 : 256;
          struct counter *v = realloc(cs->v, cap * sizeof(*v));
          if (!v)
            return -ENOMEM;
          cs->v = v;
          cs->cap = cap;
        }
        cs->v[cs->n++] = c;
      }
    }
    pos = end + 1;
  }
  return 0;
}

const struct counter *counter_find(const struct counters *cs, const char *layer, const char *name)
{
  for (size_t i = 0; i < cs->n; i++)
    if (strcmp(cs->v[i].layer, layer) == 0 && strcmp(cs->v[i].name, name) == 0)
      return &cs->v[i];
  return NULL;
}

/* The layers in order of first appearance (names point into cs). */
size_t layers_list(const struct counters *cs, const char **out, size_t max)
{
  size_t n = 0;
  for (size_t i = 0; i < cs->n; i++) {
    bool seen = false;
    for (size_t k = 0; k < n && !seen; k++)
      seen = strcmp(out[k], cs->v[i].layer) == 0;
    if (!seen && n < max)
      out[n++] = cs->v[i].layer;
  }
  return n;
}

static bool ends_with(const char *s, const char *suffix)
{
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* A gauge says how much of something is held now (counters.h: the *_inuse gauges and a few
 * others), as opposed to a counter that only grows. */
bool is_gauge(const struct counter *c)
{
  return ends_with(c->name, "inuse") || ends_with(c->name, "_max") ||
         ends_with(c->name, "_attached") || strcmp(c->name, "curr_estab") == 0 ||
         strcmp(c->name, "pending") == 0;
}

/* Fetches a STATS answer of `kind` into a malloc'ed buffer, growing it until the answer fits or
 * the buffer area is exhausted (then *truncated). Returns the bytes held (*out), or -errno. */
ssize_t fetch(struct tc_dev *d, uint32_t kind, char **out, size_t *full, bool *truncated)
{
  size_t max = tc_stats_max(d);
  size_t cap = max < 65536 ? max : 65536;
  *out = NULL;
  *truncated = false;
  for (int tries = 0;; tries++) {
    char *buf = realloc(*out, cap + 1);
    if (!buf) {
      free(*out);
      *out = NULL;
      return -ENOMEM;
    }
    *out = buf;
    ssize_t r = tc_stats(d, kind, buf, cap);
    if (r < 0) {
      free(*out);
      *out = NULL;
      return r;
    }
    *full = (size_t)r;
    if ((size_t)r <= cap) {
      buf[r] = 0;
      return r;
    }
    if (cap == max || tries >= 4) { /* it keeps growing, or cannot fit: take what we have */
      buf[cap] = 0;
      *truncated = true;
      return (ssize_t)cap;
    }
    cap = (size_t)r + (size_t)r / 4 + 4096; /* room for some growth between the two calls */
    if (cap > max)
      cap = max;
  }
}

/* ---- flows (STATS FLOWS) ------------------------------------------------------------------- */

const char *tcp_state_ss(uint8_t s)
{
  /* enum toe_tcp_state (toe/tcp.h), with the names ss(8) prints. */
  static const char *const names[] = {"CLOSE",   "LISTEN",     "SYN-SENT",   "SYN-RECV",
                                      "ESTAB",   "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT",
                                      "CLOSING", "LAST-ACK",   "TIME-WAIT"};
  _Static_assert(sizeof(names) / sizeof(names[0]) == TOE_TCP_TIME_WAIT + 1, "tcp states");
  return s < sizeof(names) / sizeof(names[0]) ? names[s] : "UNKNOWN";
}

bool addr_zero(const struct toe_abi_sockaddr *a)
{
  static const struct toe_abi_sockaddr z;
  return memcmp(a, &z, sizeof(z)) == 0;
}

const char *flow_state(const struct toe_abi_flow *f)
{
  if (f->proto == TOE_ABI_PROTO_TCP)
    return tcp_state_ss(f->tcp_state);
  return addr_zero(&f->remote) ? "UNCONN" : "ESTAB";
}

const char *proto_name(uint8_t p)
{
  return p == TOE_ABI_PROTO_TCP ? "tcp" : p == TOE_ABI_PROTO_UDP ? "udp" : "?";
}

/* The address part of a socket address ("198.18.0.1", "0.0.0.0" when none). */
void addr_str(const struct toe_abi_sockaddr *a, char *out, size_t len)
{
  if (a->family == TOE_ABI_AF_INET6) {
    char tmp[INET6_ADDRSTRLEN];
    inet_ntop(AF_INET6, a->addr, tmp, sizeof(tmp));
    snprintf(out, len, "[%s]", tmp);
  } else if (a->family == TOE_ABI_AF_INET) {
    snprintf(out, len, "%u.%u.%u.%u", a->addr[0], a->addr[1], a->addr[2], a->addr[3]);
  } else {
    snprintf(out, len, "0.0.0.0");
  }
}

/* "addr:port" like ss: "0.0.0.0:*" for no peer, "*" for port 0. */
void endpoint_str(const struct toe_abi_sockaddr *a, char *out, size_t len)
{
  char ad[64];
  addr_str(a, ad, sizeof(ad));
  if (a->port)
    snprintf(out, len, "%s:%u", ad, a->port);
  else
    snprintf(out, len, "%s:*", ad);
}

static int flow_cmp(const void *pa, const void *pb)
{
  const struct toe_abi_flow *a = &((const struct flow *)pa)->f, *b = &((const struct flow *)pb)->f;
  if (a->proto != b->proto)
    return a->proto < b->proto ? -1 : 1;
  int c = memcmp(a->local.addr, b->local.addr, 16);
  if (c)
    return c;
  if (a->local.port != b->local.port)
    return a->local.port < b->local.port ? -1 : 1;
  c = memcmp(a->remote.addr, b->remote.addr, 16);
  if (c)
    return c;
  if (a->remote.port != b->remote.port)
    return a->remote.port < b->remote.port ? -1 : 1;
  return a->client_id < b->client_id ? -1 : a->client_id > b->client_id;
}

/* Returns 0, or -errno (flows->granted false and 0 returned when the device refuses FLOWS). */
int flows_fetch(struct tc_dev *d, struct flows *fl)
{
  memset(fl, 0, sizeof(*fl));
  if (!(d->rep.caps & TOE_ABI_CAP_FLOWS))
    return 0;
  char *buf;
  size_t full;
  bool trunc;
  ssize_t got = fetch(d, TOE_ABI_STATS_FLOWS, &buf, &full, &trunc);
  if (got < 0)
    return (int)got;
  fl->granted = true;
  struct toe_abi_flows_hdr h;
  if ((size_t)got < sizeof(h)) {
    free(buf);
    return -EPROTO;
  }
  memcpy(&h, buf, sizeof(h));
  /* A record must at least hold the 1.1 fields up to comm; a later minor may add more. */
  if (h.record_size < offsetof(struct toe_abi_flow, comm) || h.record_size > 65536) {
    free(buf);
    return -EPROTO;
  }
  size_t fit = ((size_t)got - sizeof(h)) / h.record_size;
  size_t n = h.count < fit ? h.count : fit;
  fl->count = h.count;
  fl->truncated = trunc || n < h.count;
  fl->v = calloc(n ? n : 1, sizeof(*fl->v));
  if (!fl->v) {
    free(buf);
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    struct flow *f = &fl->v[i];
    size_t take = h.record_size < sizeof(f->f) ? h.record_size : sizeof(f->f);
    memcpy(&f->f, buf + sizeof(h) + i * h.record_size, take); /* rest stays zero */
    size_t k = 0;
    for (size_t j = 0; j < sizeof(f->f.comm) && f->f.comm[j]; j++) {
      unsigned char ch = (unsigned char)f->f.comm[j];
      f->comm[k++] = (ch >= 0x20 && ch < 0x7f && ch != ' ') ? (char)ch : '?';
    }
    f->comm[k] = 0;
  }
  fl->n = n;
  qsort(fl->v, fl->n, sizeof(*fl->v), flow_cmp);
  free(buf);
  return 0;
}
