/*
 * Counter patterns and flow filters (toectl_select.h).
 */
#include "toectl_select.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool tc_pattern_match(const struct tc_patterns *p, const char *layer, const char *name)
{
  if (!p || p->n == 0)
    return true;
  char full[128];
  snprintf(full, sizeof full, "%s.%s", layer, name);
  for (int i = 0; i < p->n; i++) {
    const char *pat = p->v[i];
    if (fnmatch(pat, full, 0) == 0)
      return true;
    if (!strpbrk(pat, ".*?[") && strcmp(pat, layer) == 0) /* a bare layer name */
      return true;
  }
  return false;
}

/* The states as flow_state() names them (toectl_data.c), in one table for the bit mask. */
static const char *const state_names[] = {"CLOSE",   "LISTEN",     "SYN-SENT",   "SYN-RECV",
                                          "ESTAB",   "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT",
                                          "CLOSING", "LAST-ACK",   "TIME-WAIT",  "UNCONN"};
#define N_STATES (sizeof state_names / sizeof state_names[0])

static int state_index(const char *s)
{
  for (size_t i = 0; i < N_STATES; i++)
    if (strcmp(state_names[i], s) == 0)
      return (int)i;
  return -1;
}

/* ss's spellings: "established" (ESTAB), "syn-recv"/"syn_recv", "time-wait", "closed", ... */
static int state_bits(const char *w, uint32_t *bits)
{
  char up[32];
  size_t k = 0;
  for (; w[k] && k + 1 < sizeof up; k++)
    up[k] = w[k] == '_' ? '-' : (char)toupper((unsigned char)w[k]);
  up[k] = 0;
  if (strcmp(up, "ALL") == 0) {
    *bits = (1u << N_STATES) - 1;
    return 0;
  }
  if (strcmp(up, "CONNECTED") == 0) { /* ss: all but listen and closed */
    *bits = ((1u << N_STATES) - 1) & ~(1u << 0) & ~(1u << 1) & ~(1u << 11);
    return 0;
  }
  if (strcmp(up, "ESTABLISHED") == 0)
    strcpy(up, "ESTAB");
  else if (strcmp(up, "CLOSED") == 0)
    strcpy(up, "CLOSE");
  else if (strcmp(up, "LISTENING") == 0)
    strcpy(up, "LISTEN");
  int i = state_index(up);
  if (i < 0)
    return -1;
  *bits = 1u << i;
  return 0;
}

static int parse_port(const char *s)
{
  if (*s == ':')
    s++;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (!*s || *end || errno || v < 0 || v > 65535)
    return -1;
  return (int)v;
}

static int parse_prefix(const char *s, uint32_t *addr, uint32_t *mask)
{
  char buf[64];
  snprintf(buf, sizeof buf, "%s", s);
  int plen = 32;
  char *slash = strchr(buf, '/');
  if (slash) {
    *slash = 0;
    char *end;
    long v = strtol(slash + 1, &end, 10);
    if (!slash[1] || *end || v < 0 || v > 32)
      return -1;
    plen = (int)v;
  }
  struct in_addr a;
  if (inet_pton(AF_INET, buf, &a) != 1)
    return -1;
  *mask = plen ? ~0u << (32 - plen) : 0;
  *addr = ntohl(a.s_addr) & *mask;
  return 0;
}

int tc_flow_filter_parse(int n, char *const *w, struct tc_flow_filter *f, char *err, size_t errlen)
{
  memset(f, 0, sizeof *f);
  f->sport = f->dport = f->port = -1;
  for (int i = 0; i < n; i++) {
    const char *k = w[i];
    if (strcmp(k, "tcp") == 0 || strcmp(k, "udp") == 0) {
      f->proto = k[0] == 't' ? TOE_ABI_PROTO_TCP : TOE_ABI_PROTO_UDP;
      continue;
    }
    bool known = strcmp(k, "state") == 0 || strcmp(k, "sport") == 0 || strcmp(k, "dport") == 0 ||
                 strcmp(k, "port") == 0 || strcmp(k, "src") == 0 || strcmp(k, "dst") == 0 ||
                 strcmp(k, "comm") == 0;
    if (!known) {
      snprintf(err, errlen,
               "unknown flow filter '%s' (tcp, udp, state S, sport N, dport N, port N, src A[/P], "
               "dst A[/P], comm NAME)",
               k);
      return -1;
    }
    /* "sport = :80" and "sport == 80" as ss writes them */
    if (i + 1 < n &&
        (strcmp(w[i + 1], "=") == 0 || strcmp(w[i + 1], "==") == 0 || strcmp(w[i + 1], "eq") == 0))
      i++;
    if (i + 1 >= n) {
      snprintf(err, errlen, "flow filter '%s' needs a value", k);
      return -1;
    }
    const char *v = w[++i];
    if (strcmp(k, "state") == 0) {
      uint32_t bits;
      if (state_bits(v, &bits) < 0) {
        snprintf(err, errlen,
                 "unknown state '%s' (established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, "
                 "time-wait, close-wait, last-ack, closing, listen, closed, unconn, connected, "
                 "all)",
                 v);
        return -1;
      }
      f->states |= bits;
    } else if (strcmp(k, "comm") == 0) {
      f->comm = v;
    } else if (strcmp(k, "src") == 0 || strcmp(k, "dst") == 0) {
      bool s = k[0] == 's';
      if (parse_prefix(v, s ? &f->src_addr : &f->dst_addr, s ? &f->src_mask : &f->dst_mask) < 0) {
        snprintf(err, errlen, "%s %s: not an IPv4 address or prefix (e.g. 198.18.0.0/24)", k, v);
        return -1;
      }
      *(s ? &f->src : &f->dst) = true;
    } else {
      int p = parse_port(v);
      if (p < 0) {
        snprintf(err, errlen, "%s %s: not a port (0..65535, or :N)", k, v);
        return -1;
      }
      *(k[0] == 's' ? &f->sport : k[0] == 'd' ? &f->dport : &f->port) = p;
    }
  }
  return 0;
}

static uint32_t flow_ipv4(const struct toe_abi_sockaddr *a)
{
  if (a->family != TOE_ABI_AF_INET)
    return 0;
  return (uint32_t)a->addr[0] << 24 | (uint32_t)a->addr[1] << 16 | (uint32_t)a->addr[2] << 8 |
         a->addr[3];
}

bool tc_flow_match(const struct tc_flow_filter *f, const struct toe_abi_flow *fl, const char *state,
                   const char *comm)
{
  if (f->proto && fl->proto != f->proto)
    return false;
  if (f->states) {
    int i = state_index(state);
    if (i < 0 || !(f->states & (1u << i)))
      return false;
  }
  if (f->sport >= 0 && fl->local.port != f->sport)
    return false;
  if (f->dport >= 0 && fl->remote.port != f->dport)
    return false;
  if (f->port >= 0 && fl->local.port != f->port && fl->remote.port != f->port)
    return false;
  if (f->src &&
      (fl->local.family != TOE_ABI_AF_INET || (flow_ipv4(&fl->local) & f->src_mask) != f->src_addr))
    return false;
  if (f->dst && (fl->remote.family != TOE_ABI_AF_INET ||
                 (flow_ipv4(&fl->remote) & f->dst_mask) != f->dst_addr))
    return false;
  if (f->comm && strcmp(f->comm, comm) != 0)
    return false;
  return true;
}
