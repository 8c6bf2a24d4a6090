/*
 * toectl: what the device is doing, over the transport.
 *
 *   toectl [--ctl PATH] [--json] [-z] status|stats|flows
 *   toectl [--ctl PATH] capture FILE [--count N] [--filter EXPR] [--seconds S] [--snaplen N]
 *
 * status  the session (ABI, granted capabilities), the flows by state, and every gauge (resources
 *         held now: sockets, buffers, clients)
 * stats   the device's counters by layer (link, arp, ip, icmp, udp, tcp, pbuf, timer, transport,
 *         and whatever else it reports), from STATS ENGINE ("layer.name value" lines)
 * flows   the flow table like `ss -tan`, from STATS FLOWS (ABI 1.1, TOE_ABI_CAP_FLOWS): protocol,
 *         state, queues, addresses, cwnd, RTT, retransmissions, the owning client, its origin
 *         (ABI 1.2: libtoe, preload, proxy) and the owning program's pid and command
 * filters the device's steering filter table (ABI 1.2, TOE_ABI_CAP_FILTERS): what the engine owns
 *         and every other frame goes to the host interface; per filter its frames and bytes
 * capture a pcap of what the device sees on the wire, both directions, offloaded flows included
 *         (ABI 1.2, TOE_ABI_CAP_CAPTURE; toectl_capture.c)
 *
 * toectl attaches as a client of its own (comm "toectl") and opens no sockets. Human output is
 * aligned columns; --json prints one JSON object. Exit status: 0, 1 when the device cannot be
 * reached or refuses, 2 for bad usage.
 */
#include "toe/tcp.h" /* enum toe_tcp_state: the ABI's tcp_state values */
#include "toectl_capture.h"
#include "toectl_dev.h"
#include "toectl_out.h"
#include "tools/common/toe_cli.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#define TC_CTL_DIR "/run/toekit"
#define TC_TIMEOUT_MS 5000

static const char *prog = "toectl";

static void usage(FILE *f)
{
  fprintf(f,
          "usage: toectl [--ctl PATH] [--json] [-z] COMMAND\n"
          "\n"
          "commands:\n"
          "  status   the session, the flows by state, and the device's gauges (resources held)\n"
          "  stats    the device's counters by layer (link, arp, ip, icmp, udp, tcp, pbuf, timer,\n"
          "           transport, ...); zero counters are left out unless -z is given\n"
          "  flows    the flow table, like ss -tan: protocol, state, receive and send queue\n"
          "           (bytes), local and peer address, cwnd (bytes), smoothed RTT (ms),\n"
          "           retransmitted segments, the owning client's id, how its flows come\n"
          "           (origin: libtoe, preload, proxy; device for the device's own), and the\n"
          "           owning program's pid and command (for a proxy's flows: the program\n"
          "           whose flow it carries); needs root or toed's user\n"
          "  filters  the steering filter table (toed --host-if): protocol, kind (local: a\n"
          "           listener or bind; conn, timewait: one connection), local and peer\n"
          "           address, and the frames and bytes each steered to the engine; needs root\n"
          "           or toed's user\n"
          "  capture FILE [--count N] [--filter EXPR] [--seconds S] [--snaplen N]\n"
          "           a pcap of what the device sees on the wire (both directions, offloaded\n"
          "           flows included) until N frames, S seconds or Ctrl-C; FILE \"-\" is stdout.\n"
          "           EXPR (evaluated in the device): arp, ip, icmp, tcp, udp,\n"
          "           [src|dst] host A.B.C.D, [src|dst] port N, combined with and, or, not,\n"
          "           ( ); e.g. \"tcp port 80 or icmp\". Needs root or toed's user\n"
          "\n"
          "options:\n"
          "  --ctl PATH  the device's control socket (default: $TOE_CTL, else the only socket\n"
          "              in " TC_CTL_DIR "/)\n"
          "  --json      print one JSON object instead of text (stats: every counter)\n"
          "  -z, --zeros stats: show zero counters too\n"
          "  -h, --help  show this text\n"
          "  -V, --version  show toectl's, the transport ABI's and libtoe's versions\n");
}

/* ---- the control socket's path -------------------------------------------------------------- */

/* $TOE_CTL, else the only socket in /run/toekit. Returns 0, or -1 with a message printed. */
static int default_ctl(char *buf, size_t len)
{
  const char *env = getenv("TOE_CTL");
  if (env && *env) {
    if (strlen(env) >= len) {
      fprintf(stderr, "%s: $TOE_CTL is too long\n", prog);
      return -1;
    }
    strcpy(buf, env);
    return 0;
  }
  DIR *dir = opendir(TC_CTL_DIR);
  if (!dir) {
    fprintf(stderr, "%s: no device: %s/ does not exist (is toed running? or give --ctl PATH)\n",
            prog, TC_CTL_DIR);
    return -1;
  }
  int found = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    char path[sizeof(TC_CTL_DIR) + 256 + 1];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", TC_CTL_DIR, e->d_name);
    if (e->d_name[0] == '.' || lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
      continue;
    if (found++ == 0) {
      if (strlen(path) >= len) {
        closedir(dir);
        fprintf(stderr, "%s: %s: path too long\n", prog, path);
        return -1;
      }
      strcpy(buf, path);
    }
  }
  closedir(dir);
  if (found == 1)
    return 0;
  if (found == 0)
    fprintf(stderr,
            "%s: no device socket in %s/ (is toed running with --ctl? or give --ctl PATH)\n", prog,
            TC_CTL_DIR);
  else
    fprintf(stderr, "%s: %d device sockets in %s/: name one with --ctl PATH or $TOE_CTL\n", prog,
            found, TC_CTL_DIR);
  return -1;
}

/* Why an attach failed, in words. */
static const char *attach_hint(int err)
{
  switch (-err) {
  case ENOENT:
    return "no such device socket";
  case ECONNREFUSED:
    return "nobody serves it (toed not running?)";
  case EACCES:
  case EPERM:
    return "permission denied (the socket's group may use it: see toed --ctl-group)";
  case ENOTSOCK:
    return "not a socket";
  case ETIMEDOUT:
    return "the device did not answer";
  case EMFILE:
    return "the device serves too many clients";
  case EPROTONOSUPPORT:
    return "the device speaks another ABI version";
  case EPROTO:
    return "the device's answer is malformed";
  default:
    return strerror(-err);
  }
}

/* ---- counters (STATS ENGINE) ------------------------------------------------------------------
 */

struct counter {
  char layer[32];
  char name[64];
  uint64_t value;
};

struct counters {
  struct counter *v;
  size_t n, cap;
  size_t bad_lines; /* lines that are not "layer.name value" */
};

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

static int counters_parse(const char *text, size_t len, struct counters *cs)
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

static const struct counter *counter_find(const struct counters *cs, const char *layer,
                                          const char *name)
{
  for (size_t i = 0; i < cs->n; i++)
    if (strcmp(cs->v[i].layer, layer) == 0 && strcmp(cs->v[i].name, name) == 0)
      return &cs->v[i];
  return NULL;
}

/* The layers in order of first appearance (names point into cs). */
static size_t layers_list(const struct counters *cs, const char **out, size_t max)
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
static bool is_gauge(const struct counter *c)
{
  return ends_with(c->name, "inuse") || ends_with(c->name, "_max") ||
         ends_with(c->name, "_attached") || strcmp(c->name, "curr_estab") == 0 ||
         strcmp(c->name, "pending") == 0;
}

/* Fetches a STATS answer of `kind` into a malloc'ed buffer, growing it until the answer fits or
 * the buffer area is exhausted (then *truncated). Returns the bytes held (*out), or -errno. */
static ssize_t fetch(struct tc_dev *d, uint32_t kind, char **out, size_t *full, bool *truncated)
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

struct flow {
  struct toe_abi_flow f;
  char comm[17]; /* printable copy */
};

struct flows {
  struct flow *v;
  size_t n;
  uint32_t count; /* what the device said it has */
  bool truncated; /* not every record fitted */
  bool granted;   /* the device gave us the flow table */
};

static const char *tcp_state_ss(uint8_t s)
{
  /* enum toe_tcp_state (toe/tcp.h), with the names ss(8) prints. */
  static const char *const names[] = {"CLOSE",   "LISTEN",     "SYN-SENT",   "SYN-RECV",
                                      "ESTAB",   "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT",
                                      "CLOSING", "LAST-ACK",   "TIME-WAIT"};
  _Static_assert(sizeof(names) / sizeof(names[0]) == TOE_TCP_TIME_WAIT + 1, "tcp states");
  return s < sizeof(names) / sizeof(names[0]) ? names[s] : "UNKNOWN";
}

static bool addr_zero(const struct toe_abi_sockaddr *a)
{
  static const struct toe_abi_sockaddr z;
  return memcmp(a, &z, sizeof(z)) == 0;
}

static const char *flow_state(const struct toe_abi_flow *f)
{
  if (f->proto == TOE_ABI_PROTO_TCP)
    return tcp_state_ss(f->tcp_state);
  return addr_zero(&f->remote) ? "UNCONN" : "ESTAB";
}

static const char *proto_name(uint8_t p)
{
  return p == TOE_ABI_PROTO_TCP ? "tcp" : p == TOE_ABI_PROTO_UDP ? "udp" : "?";
}

/* The address part of a socket address ("198.18.0.1", "0.0.0.0" when none). */
static void addr_str(const struct toe_abi_sockaddr *a, char *out, size_t len)
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
static void endpoint_str(const struct toe_abi_sockaddr *a, char *out, size_t len)
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
static int flows_fetch(struct tc_dev *d, struct flows *fl)
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

/* ---- filters (STATS FILTERS text, abi.h) -------------------------------------------------- */

static void json_session(struct tc_json *j, const char *ctl, const struct tc_dev *d);

static int cmd_filters(struct tc_dev *d, const char *ctl, bool json)
{
  if (!(d->rep.caps & TOE_ABI_CAP_FILTERS)) {
    fprintf(stderr,
            "%s: the device at %s does not show its filter table to this user (needs root or "
            "toed's user, and a device with ABI 1.2)\n",
            prog, ctl);
    return 1;
  }
  char *text;
  size_t full;
  bool trunc;
  ssize_t n = fetch(d, TOE_ABI_STATS_FILTERS, &text, &full, &trunc);
  if (n < 0) {
    fprintf(stderr, "%s: STATS FILTERS: %s\n", prog, strerror((int)-n));
    return 1;
  }
  struct tc_table t;
  const char *hdr[] = {"Proto",   "Kind",  "Local Address:Port", "Peer Address:Port", ">Refs",
                       ">Frames", ">Bytes"};
  struct tc_json j;
  if (json) {
    tc_json_init(&j, stdout);
    tc_json_obj(&j, NULL);
    json_session(&j, ctl, d);
    tc_json_bool(&j, "truncated", trunc);
    tc_json_arr(&j, "filters");
  } else if (tc_table_init(&t, 7, hdr) < 0) {
    free(text);
    return -ENOMEM;
  }
  size_t count = 0, bad = 0;
  char *save = NULL;
  for (char *line = strtok_r(n > 0 ? text : NULL, "\n", &save); n > 0 && line;
       line = strtok_r(NULL, "\n", &save)) {
    char proto[8], kind[12], la[16], ra[16];
    unsigned lp, rp, refs;
    unsigned long long frames, bytes;
    if (sscanf(line, "%7s %11s %15s %u %15s %u %u %llu %llu", proto, kind, la, &lp, ra, &rp, &refs,
               &frames, &bytes) != 9) {
      bad++;
      continue;
    }
    count++;
    bool local = strcmp(kind, "local") == 0;
    if (json) {
      tc_json_obj(&j, NULL);
      tc_json_str(&j, "proto", proto);
      tc_json_str(&j, "kind", kind);
      tc_json_str(&j, "local_addr", la);
      tc_json_u64(&j, "local_port", lp);
      tc_json_str(&j, "remote_addr", ra);
      tc_json_u64(&j, "remote_port", rp);
      tc_json_u64(&j, "refs", refs);
      tc_json_u64(&j, "frames", frames);
      tc_json_u64(&j, "bytes", bytes);
      tc_json_obj_end(&j);
    } else {
      char loc[40], rem[40], r[16], f[24], b[24];
      snprintf(loc, sizeof loc, "%s:%u", la, lp);
      snprintf(rem, sizeof rem, local ? "*:*" : "%s:%u", ra, rp);
      snprintf(r, sizeof r, "%u", refs);
      snprintf(f, sizeof f, "%llu", frames);
      snprintf(b, sizeof b, "%llu", bytes);
      tc_table_add(&t, (const char *const[]){proto, kind, loc, rem, r, f, b});
    }
  }
  free(text);
  if (bad)
    fprintf(stderr, "%s: warning: filter lines not understood: %zu\n", prog, bad);
  if (json) {
    tc_json_arr_end(&j);
    tc_json_u64(&j, "count", count);
    tc_json_obj_end(&j);
    tc_json_end(&j);
  } else {
    printf("%zu filters (every other frame goes to the host interface)%s\n", count,
           trunc ? ", truncated" : "");
    if (count)
      tc_table_print(&t, stdout, 0);
    tc_table_free(&t);
  }
  return 0;
}

/* ---- output --------------------------------------------------------------------------------- */

static void caps_str(uint64_t caps, char *out, size_t len)
{
  static const struct {
    uint64_t bit;
    const char *name;
  } names[] = {{TOE_ABI_CAP_TCP, "tcp"},        {TOE_ABI_CAP_UDP, "udp"},
               {TOE_ABI_CAP_IPV6, "ipv6"},      {TOE_ABI_CAP_STATS, "stats"},
               {TOE_ABI_CAP_FLOWS, "flows"},    {TOE_ABI_CAP_SHARE, "share"},
               {TOE_ABI_CAP_ORIGIN, "origin"},  {TOE_ABI_CAP_CAPTURE, "capture"},
               {TOE_ABI_CAP_FILTERS, "filters"}};
  out[0] = 0;
  size_t pos = 0;
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (caps & names[i].bit) {
      int k = snprintf(out + pos, len - pos, "%s%s", pos ? " " : "", names[i].name);
      if (k > 0 && (size_t)k < len - pos)
        pos += (size_t)k;
    }
}

static void json_caps(struct tc_json *j, uint64_t caps)
{
  char buf[64], *save = NULL;
  caps_str(caps, buf, sizeof(buf));
  tc_json_arr(j, "caps");
  for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
    tc_json_str(j, NULL, t);
  tc_json_arr_end(j);
}

static void json_session(struct tc_json *j, const char *ctl, const struct tc_dev *d)
{
  char abi[16];
  snprintf(abi, sizeof(abi), "%u.%u", d->rep.abi_major, d->rep.abi_minor);
  tc_json_str(j, "ctl", ctl);
  tc_json_str(j, "abi", abi);
  tc_json_u64(j, "client_id", d->rep.client_id);
  json_caps(j, d->rep.caps);
}

static void json_endpoint(struct tc_json *j, const char *key, const struct toe_abi_sockaddr *a)
{
  if (addr_zero(a)) {
    tc_json_null(j, key);
    return;
  }
  char ad[64];
  addr_str(a, ad, sizeof(ad));
  tc_json_obj(j, key);
  tc_json_str(j, "addr", ad);
  tc_json_u64(j, "port", a->port);
  tc_json_obj_end(j);
}

static int cmd_stats(struct tc_dev *d, const char *ctl, const struct counters *cs, bool json,
                     bool zeros)
{
  const char *layers[64];
  size_t nl = layers_list(cs, layers, 64);
  if (json) {
    struct tc_json j;
    tc_json_init(&j, stdout);
    tc_json_obj(&j, NULL);
    json_session(&j, ctl, d);
    tc_json_obj(&j, "counters");
    for (size_t l = 0; l < nl; l++) {
      tc_json_obj(&j, layers[l]);
      for (size_t i = 0; i < cs->n; i++)
        if (strcmp(cs->v[i].layer, layers[l]) == 0)
          tc_json_u64(&j, cs->v[i].name, cs->v[i].value);
      tc_json_obj_end(&j);
    }
    tc_json_obj_end(&j);
    tc_json_obj_end(&j);
    tc_json_end(&j);
    return 0;
  }
  /* One table for all layers, so that the values line up across them. */
  struct tc_table t;
  const char *hdr[] = {"counter", ">value"};
  if (tc_table_init(&t, 2, hdr) < 0)
    return -ENOMEM;
  printf("counters of the device at %s%s\n", ctl, zeros ? "" : " (zeros left out: -z shows them)");
  for (size_t l = 0; l < nl; l++) {
    size_t shown = 0;
    for (size_t i = 0; i < cs->n; i++) {
      const struct counter *c = &cs->v[i];
      if (strcmp(c->layer, layers[l]) != 0 || (!zeros && c->value == 0))
        continue;
      char name[100], val[24];
      snprintf(name, sizeof(name), "%s.%s", c->layer, c->name);
      snprintf(val, sizeof(val), "%llu", (unsigned long long)c->value);
      const char *row[] = {name, val};
      if (tc_table_add(&t, row) < 0) {
        tc_table_free(&t);
        return -ENOMEM;
      }
      shown++;
    }
    if (shown == 0) {
      char name[100];
      snprintf(name, sizeof(name), "%s.*", layers[l]);
      const char *row[] = {name, "0"};
      tc_table_add(&t, row);
    }
  }
  tc_table_print(&t, stdout, 0);
  tc_table_free(&t);
  return 0;
}

/* How the flow reaches the device (ABI 1.2; a 1.1 device leaves the field 0, "libtoe"). */
static const char *flow_origin(const struct toe_abi_flow *f)
{
  if (f->client_id == 0)
    return "device";
  switch (f->origin) {
  case TOE_ABI_ORIGIN_NATIVE:
    return "libtoe";
  case TOE_ABI_ORIGIN_PRELOAD:
    return "preload";
  case TOE_ABI_ORIGIN_PROXY:
    return "proxy";
  default:
    return "?";
  }
}

static int cmd_flows(struct tc_dev *d, const char *ctl, const struct flows *fl, bool json)
{
  if (json) {
    struct tc_json j;
    tc_json_init(&j, stdout);
    tc_json_obj(&j, NULL);
    json_session(&j, ctl, d);
    tc_json_u64(&j, "count", fl->count);
    tc_json_bool(&j, "truncated", fl->truncated);
    tc_json_arr(&j, "flows");
    for (size_t i = 0; i < fl->n; i++) {
      const struct toe_abi_flow *f = &fl->v[i].f;
      tc_json_obj(&j, NULL);
      tc_json_str(&j, "proto", proto_name(f->proto));
      tc_json_str(&j, "state", flow_state(f));
      tc_json_u64(&j, "tcp_state", f->tcp_state);
      json_endpoint(&j, "local", &f->local);
      json_endpoint(&j, "remote", &f->remote);
      tc_json_u64(&j, "recv_q", f->rx_queued);
      tc_json_u64(&j, "send_q", f->tx_queued);
      tc_json_u64(&j, "cwnd", f->snd_cwnd);
      tc_json_u64(&j, "rtt_us", f->rtt_us);
      tc_json_u64(&j, "rcv_wnd", f->rcv_wnd);
      tc_json_u64(&j, "mss", f->snd_mss);
      tc_json_u64(&j, "retrans", f->retrans_segs);
      tc_json_u64(&j, "rx_bytes", f->rx_bytes);
      tc_json_u64(&j, "tx_bytes", f->tx_bytes);
      tc_json_u64(&j, "client_id", f->client_id);
      tc_json_str(&j, "origin", flow_origin(f));
      tc_json_u64(&j, "pid", f->pid);
      tc_json_u64(&j, "uid", f->uid);
      tc_json_str(&j, "comm", fl->v[i].comm);
      tc_json_obj_end(&j);
    }
    tc_json_arr_end(&j);
    tc_json_obj_end(&j);
    tc_json_end(&j);
    return 0;
  }
  struct tc_table t;
  const char *hdr[] = {"Proto",
                       "State",
                       ">Recv-Q",
                       ">Send-Q",
                       "Local Address:Port",
                       "Peer Address:Port",
                       ">Cwnd",
                       ">RTT(ms)",
                       ">Retrans",
                       ">Client",
                       "Origin",
                       ">PID",
                       "Command"};
  if (tc_table_init(&t, 13, hdr) < 0)
    return -ENOMEM;
  for (size_t i = 0; i < fl->n; i++) {
    const struct toe_abi_flow *f = &fl->v[i].f;
    /* Congestion state means something only for a connection that sends: not for UDP, a
     * listener or TIME-WAIT (ss leaves it out there too). */
    bool tcp = f->proto == TOE_ABI_PROTO_TCP && f->tcp_state != TOE_TCP_LISTEN &&
               f->tcp_state != TOE_TCP_TIME_WAIT;
    char rq[16], sq[16], loc[80], rem[80], cwnd[16], rtt[24], rtx[24], cli[16], pid[16];
    snprintf(rq, sizeof(rq), "%u", f->rx_queued);
    snprintf(sq, sizeof(sq), "%u", f->tx_queued);
    endpoint_str(&f->local, loc, sizeof(loc));
    endpoint_str(&f->remote, rem, sizeof(rem));
    snprintf(cwnd, sizeof(cwnd), tcp && f->snd_cwnd ? "%u" : "-", f->snd_cwnd);
    if (tcp)
      snprintf(rtt, sizeof(rtt), "%u.%03u", f->rtt_us / 1000, f->rtt_us % 1000);
    else
      snprintf(rtt, sizeof(rtt), "-");
    snprintf(rtx, sizeof(rtx), tcp ? "%llu" : "-", (unsigned long long)f->retrans_segs);
    snprintf(cli, sizeof(cli), f->client_id ? "%u" : "-", f->client_id);
    snprintf(pid, sizeof(pid), f->pid ? "%u" : "-", f->pid);
    const char *comm = f->client_id == 0 ? "(device)" : fl->v[i].comm[0] ? fl->v[i].comm : "-";
    const char *row[] = {
        proto_name(f->proto), flow_state(f), rq,  sq, loc, rem, cwnd, rtt, rtx, cli,
        flow_origin(f),       pid,           comm};
    if (tc_table_add(&t, row) < 0) {
      tc_table_free(&t);
      return -ENOMEM;
    }
  }
  tc_table_print(&t, stdout, 0);
  tc_table_free(&t);
  if (fl->truncated)
    printf("(%u flows; only %zu fitted in the answer)\n", fl->count, fl->n);
  return 0;
}

/* Flows by protocol and state, for status. */
struct state_count {
  const char *proto, *state;
  unsigned n;
};

static size_t count_states(const struct flows *fl, struct state_count *out, size_t max)
{
  size_t n = 0;
  for (size_t i = 0; i < fl->n; i++) {
    const char *p = proto_name(fl->v[i].f.proto), *s = flow_state(&fl->v[i].f);
    size_t k = 0;
    while (k < n && !(strcmp(out[k].proto, p) == 0 && strcmp(out[k].state, s) == 0))
      k++;
    if (k == n) {
      if (n == max)
        continue;
      out[n++] = (struct state_count){p, s, 0};
    }
    out[k].n++;
  }
  return n;
}

static int cmd_status(struct tc_dev *d, const char *ctl, const struct counters *cs,
                      const struct flows *fl, bool json)
{
  struct state_count sc[64];
  size_t nsc = count_states(fl, sc, 64);
  unsigned ntcp = 0, nudp = 0;
  for (size_t i = 0; i < fl->n; i++)
    *(fl->v[i].f.proto == TOE_ABI_PROTO_TCP ? &ntcp : &nudp) += 1;
  const struct counter *rxf = counter_find(cs, "link", "rx_frames"),
                       *txf = counter_find(cs, "link", "tx_frames");
  if (json) {
    struct tc_json j;
    tc_json_init(&j, stdout);
    tc_json_obj(&j, NULL);
    json_session(&j, ctl, d);
    tc_json_obj(&j, "flows");
    tc_json_bool(&j, "available", fl->granted);
    tc_json_u64(&j, "total", fl->granted ? fl->count : 0);
    tc_json_u64(&j, "tcp", ntcp);
    tc_json_u64(&j, "udp", nudp);
    tc_json_obj(&j, "states");
    for (size_t i = 0; i < nsc; i++) {
      char key[48];
      snprintf(key, sizeof(key), "%s.%s", sc[i].proto, sc[i].state);
      tc_json_u64(&j, key, sc[i].n);
    }
    tc_json_obj_end(&j);
    tc_json_obj_end(&j);
    tc_json_obj(&j, "gauges");
    for (size_t i = 0; i < cs->n; i++)
      if (is_gauge(&cs->v[i])) {
        char key[100];
        snprintf(key, sizeof(key), "%s.%s", cs->v[i].layer, cs->v[i].name);
        tc_json_u64(&j, key, cs->v[i].value);
      }
    tc_json_obj_end(&j);
    tc_json_obj_end(&j);
    tc_json_end(&j);
    return 0;
  }
  char caps[64];
  caps_str(d->rep.caps, caps, sizeof(caps));
  struct tc_table t;
  const char *hdr[] = {"device", ctl};
  if (tc_table_init(&t, 2, hdr) < 0)
    return -ENOMEM;
  char buf[512];
  snprintf(buf, sizeof(buf), "toekit transport ABI %u.%u, this session is client %u (caps: %s)",
           d->rep.abi_major, d->rep.abi_minor, d->rep.client_id, caps);
  tc_table_add(&t, (const char *const[]){"abi", buf});
  if (rxf && txf) {
    snprintf(buf, sizeof(buf), "%llu frames received, %llu sent", (unsigned long long)rxf->value,
             (unsigned long long)txf->value);
    tc_table_add(&t, (const char *const[]){"link", buf});
  }
  const struct counter *cl = counter_find(cs, "transport", "clients_attached");
  if (cl) {
    snprintf(buf, sizeof(buf), "%llu attached (this one included)", (unsigned long long)cl->value);
    tc_table_add(&t, (const char *const[]){"clients", buf});
  }
  if (!fl->granted) {
    tc_table_add(&t, (const char *const[]){
                         "flows", "not available (the flow table needs root or toed's user)"});
  } else {
    size_t pos = (size_t)snprintf(buf, sizeof(buf), "%u: tcp %u, udp %u", fl->count, ntcp, nudp);
    for (size_t i = 0; i < nsc && pos < sizeof(buf); i++) {
      int k = snprintf(buf + pos, sizeof(buf) - pos, "%s %s %s %u", i ? "," : ";", sc[i].proto,
                       sc[i].state, sc[i].n);
      if (k > 0)
        pos += (size_t)k;
    }
    if (fl->truncated && pos < sizeof(buf))
      snprintf(buf + pos, sizeof(buf) - pos, " (by state: the first %zu only)", fl->n);
    tc_table_add(&t, (const char *const[]){"flows", buf});
  }
  tc_table_print(&t, stdout, 0);
  tc_table_free(&t);

  const char *ghdr[] = {"gauge", ">now"};
  if (tc_table_init(&t, 2, ghdr) < 0)
    return -ENOMEM;
  for (size_t i = 0; i < cs->n; i++)
    if (is_gauge(&cs->v[i])) {
      char key[100], val[24];
      snprintf(key, sizeof(key), "%s.%s", cs->v[i].layer, cs->v[i].name);
      snprintf(val, sizeof(val), "%llu", (unsigned long long)cs->v[i].value);
      tc_table_add(&t, (const char *const[]){key, val});
    }
  printf("\n");
  tc_table_print(&t, stdout, 0);
  tc_table_free(&t);
  return 0;
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
  const char *ctl_arg = NULL, *cmd = NULL;
  bool json = false, zeros = false;
  struct tc_capture_args cap;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!cmd && strcmp(a, "capture") == 0) {
      /* Everything after it is the capture's own (its FILE, --count, ...), except --ctl. */
      char **rest = calloc((size_t)argc, sizeof(char *));
      int nrest = 0;
      if (!rest)
        return 1;
      for (int k = i + 1; k < argc; k++) {
        if (strcmp(argv[k], "--ctl") == 0 && k + 1 < argc)
          ctl_arg = argv[++k];
        else if (strncmp(argv[k], "--ctl=", 6) == 0)
          ctl_arg = argv[k] + 6;
        else
          rest[nrest++] = argv[k];
      }
      int rc = tc_capture_parse(nrest, rest, &cap);
      free(rest);
      if (rc)
        return rc;
      cmd = a;
      break;
    }
    if (strcmp(a, "--ctl") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s: --ctl needs a PATH\n", prog);
        return 2;
      }
      ctl_arg = argv[++i];
    } else if (strncmp(a, "--ctl=", 6) == 0) {
      ctl_arg = a + 6;
    } else if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0) {
      json = true;
    } else if (strcmp(a, "-z") == 0 || strcmp(a, "--zeros") == 0) {
      zeros = true;
    } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
      return toe_cli_version(prog, NULL);
    } else if (a[0] == '-') {
      return toe_cli_usage_error(prog, "unknown option %s", a);
    } else if (cmd) {
      fprintf(stderr, "%s: one command at a time (%s, then %s)\n", prog, cmd, a);
      return 2;
    } else {
      cmd = a;
    }
  }
  if (!cmd)
    return toe_cli_usage_error(prog, "no command (status, stats, flows, top, filters or capture)");
  if (strcmp(cmd, "status") != 0 && strcmp(cmd, "stats") != 0 && strcmp(cmd, "flows") != 0 &&
      strcmp(cmd, "filters") != 0 && strcmp(cmd, "capture") != 0) {
    fprintf(stderr, "%s: unknown command %s (status, stats, flows, filters or capture)\n", prog,
            cmd);
    return 2;
  }
  if (ctl_arg && !*ctl_arg) {
    fprintf(stderr, "%s: --ctl needs a PATH\n", prog);
    return 2;
  }

  char ctl[sizeof(((struct sockaddr_un *)0)->sun_path)];
  if (ctl_arg) {
    if (strlen(ctl_arg) >= sizeof(ctl)) {
      fprintf(stderr, "%s: %s: path too long for a Unix socket\n", prog, ctl_arg);
      return 1;
    }
    strcpy(ctl, ctl_arg);
  } else if (default_ctl(ctl, sizeof(ctl)) < 0) {
    return 1;
  }

  struct tc_dev dev;
  int rc = tc_attach(&dev, ctl, TC_TIMEOUT_MS);
  if (rc < 0) {
    fprintf(stderr, "%s: cannot attach to %s: %s\n", prog, ctl, attach_hint(rc));
    return 1;
  }
  if (!(dev.rep.caps & TOE_ABI_CAP_STATS)) {
    fprintf(stderr, "%s: the device at %s does not grant the STATS command\n", prog, ctl);
    tc_detach(&dev);
    return 1;
  }

  if (strcmp(cmd, "capture") == 0) {
    int st = tc_capture_run(&dev, ctl, &cap);
    tc_detach(&dev);
    return st;
  }

  int status = 1;
  if (strcmp(cmd, "filters") == 0) {
    rc = cmd_filters(&dev, ctl, json);
    if (rc < 0)
      fprintf(stderr, "%s: %s\n", prog, strerror(-rc));
    status = rc == 0 && fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
    tc_detach(&dev);
    return status;
  }
  struct counters cs = {0};
  struct flows fl = {0};
  if (strcmp(cmd, "stats") == 0 || strcmp(cmd, "status") == 0) {
    char *text;
    size_t full;
    bool trunc;
    ssize_t n = fetch(&dev, TOE_ABI_STATS_ENGINE, &text, &full, &trunc);
    if (n < 0) {
      fprintf(stderr, "%s: STATS ENGINE: %s\n", prog, strerror((int)-n));
      goto out;
    }
    rc = counters_parse(text, (size_t)n, &cs);
    free(text);
    if (rc < 0) {
      fprintf(stderr, "%s: %s\n", prog, strerror(-rc));
      goto out;
    }
    if (cs.bad_lines)
      fprintf(stderr, "%s: warning: lines of the device's counters not understood: %zu\n", prog,
              cs.bad_lines);
    if (trunc)
      fprintf(stderr, "%s: warning: the counters were truncated (%zu bytes of %zu)\n", prog,
              (size_t)n, full);
  }
  if (strcmp(cmd, "flows") == 0 || strcmp(cmd, "status") == 0) {
    rc = flows_fetch(&dev, &fl);
    if (rc < 0) {
      fprintf(stderr, "%s: STATS FLOWS: %s\n", prog, strerror(-rc));
      goto out;
    }
    if (!fl.granted && strcmp(cmd, "flows") == 0) {
      fprintf(stderr,
              "%s: the device at %s does not show its flow table to this user (needs root or "
              "toed's user)\n",
              prog, ctl);
      goto out;
    }
  }
  if (strcmp(cmd, "stats") == 0)
    rc = cmd_stats(&dev, ctl, &cs, json, zeros);
  else if (strcmp(cmd, "flows") == 0)
    rc = cmd_flows(&dev, ctl, &fl, json);
  else
    rc = cmd_status(&dev, ctl, &cs, &fl, json);
  if (rc < 0)
    fprintf(stderr, "%s: %s\n", prog, strerror(-rc));
  else if (fflush(stdout) != 0 || ferror(stdout))
    fprintf(stderr, "%s: write error on standard output\n", prog);
  else
    status = 0;
out:
  free(cs.v);
  free(fl.v);
  tc_detach(&dev);
  return status;
}
