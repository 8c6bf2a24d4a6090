/*
 * toectl: what the device is doing, over the transport.
 *
 *   toectl [--ctl PATH] [--json] status
 *   toectl [--ctl PATH] [--json] [-z] [--prometheus] [-i SECS [-c N]] stats [PATTERN...]
 *   toectl [--ctl PATH] [--json] flows [FILTER...]
 *   toectl [--ctl PATH] [--json] [-i SECS] [-n N] top [FILTER...]
 *   toectl [--ctl PATH] capture FILE|-w FILE [--format pcap|pcapng] [--count N] [--seconds S]
 *          [--snaplen N] [--filter EXPR | EXPR...]
 *
 * status  the device's identity (ABI 1.3 STATS DEVICE: version, port, link driver, addresses, MAC,
 *         MTU, uptime, attached clients), the session (ABI, granted capabilities), the flows by
 *         state, and every gauge (resources held now: sockets, buffers, clients)
 * top     the flows by rate, refreshed (toectl_live.c); stats -i is the counters' live view
 * stats   the device's counters by layer (link, arp, ip, icmp, udp, tcp, pbuf, timer, transport,
 *         and whatever else it reports), from STATS ENGINE ("layer.name value" lines)
 * flows   the flow table like `ss -tan`, from STATS FLOWS (ABI 1.1, TOE_ABI_CAP_FLOWS): protocol,
 *         state, queues, addresses, cwnd, RTT, retransmissions, the owning client, its origin
 *         (ABI 1.2: libtoe, preload, proxy) and the owning program's pid and command
 * filters the device's steering filter table (ABI 1.2, TOE_ABI_CAP_FILTERS): what the engine owns
 *         and every other frame goes to the host interface; per filter its frames and bytes
 * capture a pcap or pcapng of what the device sees on the wire, both directions, offloaded flows
 *         included, filtered by a tcpdump expression (ABI 1.2 CAPTURE, 1.4 BPF; toectl_capture.c)
 *
 * toectl attaches as a client of its own (comm "toectl") and opens no sockets. Human output is
 * aligned columns; --json prints one JSON object. Exit status: 0, 1 when the device cannot be
 * reached or refuses, 2 for bad usage.
 */
#include "toe/errno.h"
#include "toe/tcp.h" /* enum toe_tcp_state: the ABI's tcp_state values */
#include "toectl_capture.h"
#include "toectl_data.h"
#include "toectl_dev.h"
#include "toectl_live.h"
#include "toectl_out.h"
#include "toectl_select.h"
#include "tools/common/toe_cli.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
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
          "usage: toectl [options] COMMAND [ARGS...]\n"
          "\n"
          "commands:\n"
          "  status   the device (version, port, link driver, addresses, MAC, MTU, uptime, the\n"
          "           attached clients), the session, the flows by state, the gauges\n"
          "  stats [PATTERN...]\n"
          "           the device's counters by layer (link, arp, ip, icmp, udp, tcp, pbuf, timer,\n"
          "           transport, ...); zero counters are left out unless -z is given. PATTERN\n"
          "           is a glob on layer.name (\"tcp.*\", \"*retrans*\") or a layer (\"tcp\")\n"
          "  flows [FILTER...]\n"
          "           the flow table, like ss -tan: protocol, state, receive and send queue\n"
          "           (bytes), local and peer address, cwnd (bytes), smoothed RTT (ms),\n"
          "           retransmitted segments, the owning client's id, how its flows come\n"
          "           (origin: libtoe, preload, proxy; device for the device's own), and the\n"
          "           owning program's pid and command (for a proxy's flows: the program\n"
          "           whose flow it carries); needs root or toed's user. FILTER, like ss:\n"
          "           tcp, udp, state S (established, listen, time-wait, ..., connected),\n"
          "           sport N, dport N, port N, src A[/P], dst A[/P], comm NAME\n"
          "  top [FILTER...]\n"
          "           the flows by rate (bytes/s received and sent), refreshed every -i SECS\n"
          "           (default 1); -n N: N refreshes, then exit\n"
          "  filters  the steering filter table (toed --host-if): protocol, kind (local: a\n"
          "           listener or bind; conn, timewait: one connection), local and peer\n"
          "           address, and the frames and bytes each steered to the engine; needs root\n"
          "           or toed's user\n"
          "  capture FILE|-w FILE [--format pcap|pcapng] [-c|--count N] [--seconds S]\n"
          "          [-s|--snaplen N] [-f|--filter EXPR | EXPR...]\n"
          "           a pcap or pcapng file of what the device sees on the wire (both\n"
          "           directions, offloaded flows included) until N frames, S seconds or\n"
          "           Ctrl-C; FILE \"-\" is stdout; pcapng (the default for FILE.pcapng)\n"
          "           records each frame's direction. EXPR: tcpdump's filter language\n"
          "           (pcap-filter(7)), compiled by libpcap, run in the device; e.g.\n"
          "           \"tcp port 80 or icmp\". N bytes of a frame kept: 0..262144 (0, the\n"
          "           default: all the device keeps, 65516). Needs root or toed's user\n"
          "\n"
          "options:\n"
          "  --ctl PATH         the device's control socket (default: $TOE_CTL, else the only\n"
          "                     socket in " TC_CTL_DIR "/)\n"
          "  -j, --json         print JSON instead of text (with a timestamp; stats: every\n"
          "                     counter; -i: one object per report, one per line)\n"
          "  -z, --zeros        stats: show zero (with -i: unchanged) counters too\n"
          "  -i, --interval S   stats, top: report every S seconds (stats: the change of each\n"
          "                     counter and its rate per second, like nstat -d)\n"
          "  -c, --count N      stats -i: N reports, then exit (default: until Ctrl-C)\n"
          "  -n, --iterations N top: N refreshes, then exit (default: until Ctrl-C)\n"
          "  -P, --prometheus   stats: the Prometheus text exposition format\n"
          "  -h, --help         show this text\n"
          "  -V, --version      show toectl's, the transport ABI's and libtoe's versions\n"
          "\n"
          "exit status: 0; 1 when the device cannot be reached or refuses; 2 for bad usage\n");
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

/* Why an attach failed, in words: the one table of error strings (src/common/errno.c), or the C
 * library's for a system error that table does not know (a path's ENOTDIR, say). */
static const char *attach_hint(int err)
{
  const char *s = toe_attach_strerror(err);
  return strcmp(s, toe_strerror(0x7fffffff)) != 0 ? s : strerror(-err);
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
    char proto[8], kind[12], la[48], ra[48];
    unsigned lp, rp, refs;
    unsigned long long frames, bytes;
    if (sscanf(line, "%7s %11s %47s %u %47s %u %u %llu %llu", proto, kind, la, &lp, ra, &rp, &refs,
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
      char loc[64], rem[64], r[16], f[24], b[24];
      /* IPv6 addresses in brackets before the port (RFC 5952 6), as ss prints them */
      bool v6 = strchr(la, ':') != NULL;
      snprintf(loc, sizeof loc, v6 ? "[%s]:%u" : "%s:%u", la, lp);
      if (local)
        snprintf(rem, sizeof rem, "*:*");
      else
        snprintf(rem, sizeof rem, v6 ? "[%s]:%u" : "%s:%u", ra, rp);
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

/* ---- the device's identity (ABI 1.3 STATS DEVICE text, abi.h) ------------------------------ */

/* The value of `key` in the "key value" lines (the rest of the line), into out; false if absent. */
static bool dev_get(const char *text, const char *key, char *out, size_t len)
{
  size_t k = strlen(key);
  for (const char *l = text; l && *l;) {
    const char *nl = strchr(l, '\n');
    size_t ll = nl ? (size_t)(nl - l) : strlen(l);
    if (ll > k && strncmp(l, key, k) == 0 && l[k] == ' ') {
      size_t v = ll - k - 1 < len - 1 ? ll - k - 1 : len - 1;
      memcpy(out, l + k + 1, v);
      out[v] = 0;
      return true;
    }
    l = nl ? nl + 1 : NULL;
  }
  out[0] = 0;
  return false;
}

struct dev_client {
  unsigned id, uid, sockets;
  int pid;
  char origin[12], comm[32];
  unsigned long long connected_ms;
};

/* The next "client ..." line from *pos; false when there is none left. */
static bool dev_next_client(const char **pos, struct dev_client *c)
{
  while (*pos && **pos) {
    const char *l = *pos, *nl = strchr(l, '\n');
    *pos = nl ? nl + 1 : NULL;
    if (strncmp(l, "client ", 7) == 0 &&
        sscanf(l, "client %u %d %u %11s %u %llu %31s", &c->id, &c->pid, &c->uid, c->origin,
               &c->sockets, &c->connected_ms, c->comm) == 7)
      return true;
  }
  return false;
}

static void duration_str(unsigned long long ms, char *out, size_t len)
{
  unsigned long long s = ms / 1000;
  if (s >= 86400)
    snprintf(out, len, "%llud%02lluh%02llum", s / 86400, s / 3600 % 24, s / 60 % 60);
  else if (s >= 3600)
    snprintf(out, len, "%lluh%02llum%02llus", s / 3600, s / 60 % 60, s % 60);
  else if (s >= 60)
    snprintf(out, len, "%llum%02llus", s / 60, s % 60);
  else
    snprintf(out, len, "%llu.%03llus", s, ms % 1000);
}

static void json_device(struct tc_json *j, const char *text)
{
  static const char *const strs[] = {"version", "abi",     "wire", "driver", "mac",
                                     "addr",    "gateway", "vlan", "host_if"};
  static const char *const nums[] = {"mtu", "pid", "uptime_ms", "clients"};
  char v[256];
  tc_json_obj(j, "device");
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    if (dev_get(text, strs[i], v, sizeof v))
      tc_json_str(j, strs[i], v);
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
    if (dev_get(text, nums[i], v, sizeof v))
      tc_json_u64(j, nums[i], strtoull(v, NULL, 10));
  tc_json_obj_end(j);
  tc_json_arr(j, "clients");
  struct dev_client c;
  for (const char *pos = text; dev_next_client(&pos, &c);) {
    tc_json_obj(j, NULL);
    tc_json_u64(j, "client_id", c.id);
    tc_json_i64(j, "pid", c.pid);
    tc_json_u64(j, "uid", c.uid);
    tc_json_str(j, "origin", c.origin);
    tc_json_u64(j, "sockets", c.sockets);
    tc_json_u64(j, "connected_ms", c.connected_ms);
    tc_json_str(j, "comm", c.comm);
    tc_json_obj_end(j);
  }
  tc_json_arr_end(j);
}

/* The identity rows of status's first table. */
static void table_device(struct tc_table *t, const char *text)
{
  char a[256], b[256], c[64], e[64], buf[1024];
  dev_get(text, "version", a, sizeof a);
  dev_get(text, "pid", b, sizeof b);
  dev_get(text, "uptime_ms", c, sizeof c);
  duration_str(strtoull(c, NULL, 10), e, sizeof e);
  snprintf(buf, sizeof buf, "toekit %s (toed pid %s), up %s", a, b, e);
  tc_table_add(t, (const char *const[]){"version", buf});
  dev_get(text, "wire", a, sizeof a);
  dev_get(text, "driver", b, sizeof b);
  snprintf(buf, sizeof buf, "%s: %s", a, b);
  tc_table_add(t, (const char *const[]){"port", buf});
  dev_get(text, "mac", a, sizeof a);
  tc_table_add(t, (const char *const[]){"mac", a});
  dev_get(text, "addr", a, sizeof a);
  dev_get(text, "gateway", b, sizeof b);
  dev_get(text, "mtu", c, sizeof c);
  dev_get(text, "vlan", e, sizeof e);
  snprintf(buf, sizeof buf, "%s, gateway %s, mtu %s, vlan %s", a, b, c, e);
  tc_table_add(t, (const char *const[]){"address", buf});
  if (dev_get(text, "host_if", a, sizeof a) && strcmp(a, "none") != 0)
    tc_table_add(t, (const char *const[]){"host if", a});
}

/* The attached clients (privileged sessions only get the lines). */
static void print_clients(const char *text)
{
  struct tc_table t;
  const char *hdr[] = {">Client", ">PID", ">UID", "Origin", ">Sockets", ">Connected", "Command"};
  if (tc_table_init(&t, 7, hdr) < 0)
    return;
  struct dev_client c;
  size_t n = 0;
  for (const char *pos = text; dev_next_client(&pos, &c); n++) {
    char id[16], pid[16], uid[16], so[16], conn[32];
    snprintf(id, sizeof id, "%u", c.id);
    snprintf(pid, sizeof pid, "%d", c.pid);
    snprintf(uid, sizeof uid, "%u", c.uid);
    snprintf(so, sizeof so, "%u", c.sockets);
    duration_str(c.connected_ms, conn, sizeof conn);
    tc_table_add(&t, (const char *const[]){id, pid, uid, c.origin, so, conn, c.comm});
  }
  if (n) {
    printf("\n");
    tc_table_print(&t, stdout, 0);
  }
  tc_table_free(&t);
}

/* ---- output --------------------------------------------------------------------------------- */

static void caps_str(uint64_t caps, char *out, size_t len)
{
  static const struct {
    uint64_t bit;
    const char *name;
  } names[] = {{TOE_ABI_CAP_TCP, "tcp"},
               {TOE_ABI_CAP_UDP, "udp"},
               {TOE_ABI_CAP_IPV6, "ipv6"},
               {TOE_ABI_CAP_STATS, "stats"},
               {TOE_ABI_CAP_FLOWS, "flows"},
               {TOE_ABI_CAP_SHARE, "share"},
               {TOE_ABI_CAP_ORIGIN, "origin"},
               {TOE_ABI_CAP_CAPTURE, "capture"},
               {TOE_ABI_CAP_CAPTURE_BPF, "capture-bpf"},
               {TOE_ABI_CAP_FILTERS, "filters"},
               {TOE_ABI_CAP_DEVICE, "device"}};
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
  char buf[128], *save = NULL;
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
  tc_json_now(j);
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
                      const struct flows *fl, const char *devinfo, bool json)
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
    if (devinfo)
      json_device(&j, devinfo);
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
  char caps[128];
  caps_str(d->rep.caps, caps, sizeof(caps));
  struct tc_table t;
  const char *hdr[] = {"device", ctl};
  if (tc_table_init(&t, 2, hdr) < 0)
    return -ENOMEM;
  if (devinfo)
    table_device(&t, devinfo);
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
  /* The device's fair shares (docs/transport.md "Limits"): what one user other than root may
   * hold, and (for root) how often clients were refused. */
  const struct counter *lt = counter_find(cs, "transport", "limit_tcp_per_uid"),
                       *lu = counter_find(cs, "transport", "limit_udp_per_uid"),
                       *lk = counter_find(cs, "transport", "limit_tokens_per_uid"),
                       *ls = counter_find(cs, "transport", "limit_sessions_per_uid"),
                       *ru = counter_find(cs, "transport", "limit_refused_uid"),
                       *rr = counter_find(cs, "transport", "limit_refused_reserve");
  if (lt && lu && lk && ls) {
    int k = snprintf(buf, sizeof(buf),
                     "per user: %llu tcp, %llu udp sockets, %llu share tokens, %llu sessions",
                     (unsigned long long)lt->value, (unsigned long long)lu->value,
                     (unsigned long long)lk->value, (unsigned long long)ls->value);
    if (ru && rr && k > 0 && (size_t)k < sizeof(buf))
      snprintf(buf + k, sizeof(buf) - (size_t)k, "; refused %llu over a share, %llu at the reserve",
               (unsigned long long)ru->value, (unsigned long long)rr->value);
    tc_table_add(&t, (const char *const[]){"limits", buf});
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
  if (devinfo)
    print_clients(devinfo);

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

/* Keeps the counters that match the patterns (in order). */
static void counters_select(struct counters *cs, const struct tc_patterns *p)
{
  size_t k = 0;
  for (size_t i = 0; i < cs->n; i++)
    if (tc_pattern_match(p, cs->v[i].layer, cs->v[i].name))
      cs->v[k++] = cs->v[i];
  cs->n = k;
}

/* Keeps the flows that pass the filter (in order). */
static void flows_select(struct flows *fl, const struct tc_flow_filter *f)
{
  size_t k = 0;
  for (size_t i = 0; i < fl->n; i++)
    if (tc_flow_match(f, &fl->v[i].f, flow_state(&fl->v[i].f), fl->v[i].comm))
      fl->v[k++] = fl->v[i];
  fl->n = k;
}

/* A positive number of seconds (at least 1 ms, at most a day). */
static bool parse_secs(const char *s, double *out)
{
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (!*s || *end || errno || !(v >= 0.001 && v <= 86400))
    return false;
  *out = v;
  return true;
}

static bool parse_count(const char *s, long *out)
{
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (!*s || *end || errno || v < 1)
    return false;
  *out = v;
  return true;
}

/* The STATS DEVICE text (1.3), or NULL when the device does not give it. */
static char *fetch_devinfo(struct tc_dev *d)
{
  if (!(d->rep.caps & TOE_ABI_CAP_DEVICE))
    return NULL;
  char *text;
  size_t full;
  bool trunc;
  ssize_t n = fetch(d, TOE_ABI_STATS_DEVICE, &text, &full, &trunc);
  if (n < 0) {
    fprintf(stderr, "%s: warning: STATS DEVICE: %s\n", prog, strerror((int)-n));
    return NULL;
  }
  return text;
}

int main(int argc, char **argv)
{
  const char *ctl_arg = NULL, *cmd = NULL;
  bool json = false, zeros = false, prometheus = false;
  double interval = 0;
  long count = 0, iterations = 0;
  struct tc_capture_args cap;

  /* `capture` takes the rest of the line as its own (FILE, --count, ...), except --ctl. */
  for (int i = 1; i < argc; i++) {
    static const char *const with_value[] = {"--ctl",   "-i", "--interval",  "-c",
                                             "--count", "-n", "--iterations"};
    bool skip = false;
    for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
      skip = skip || strcmp(argv[i], with_value[k]) == 0;
    if (skip) {
      i++;
      continue;
    }
    if (argv[i][0] == '-')
      continue;
    if (strcmp(argv[i], "capture") != 0)
      break;
    char **rest = calloc((size_t)argc, sizeof(char *));
    int nrest = 0;
    if (!rest)
      return 1;
    for (int k = 1; k < argc; k++) {
      if (k == i)
        continue;
      if (strcmp(argv[k], "--ctl") == 0 && k + 1 < argc)
        ctl_arg = argv[++k];
      else if (strncmp(argv[k], "--ctl=", 6) == 0)
        ctl_arg = argv[k] + 6;
      else if (k > i)
        rest[nrest++] = argv[k];
      else if (strcmp(argv[k], "--json") == 0 || strcmp(argv[k], "-j") == 0)
        continue; /* capture writes pcap */
      else {
        free(rest);
        return toe_cli_usage_error(prog, "option %s before capture: give it after", argv[k]);
      }
    }
    int rc = tc_capture_parse(nrest, rest, &cap);
    free(rest);
    if (rc)
      return rc;
    cmd = "capture";
    break;
  }

  enum { O_CTL = 256 };
  static const struct option longs[] = {
      {"ctl", required_argument, NULL, O_CTL}, {"json", no_argument, NULL, 'j'},
      {"zeros", no_argument, NULL, 'z'},       {"interval", required_argument, NULL, 'i'},
      {"count", required_argument, NULL, 'c'}, {"iterations", required_argument, NULL, 'n'},
      {"prometheus", no_argument, NULL, 'P'},  {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},     {NULL, 0, NULL, 0}};
  /* static: the words outlive every return path (no leak report on an early exit) */
  static char **words;
  words = calloc((size_t)argc + 1, sizeof(char *));
  int nwords = 0;
  if (!words)
    return 1;
  opterr = 0;
  int c;
  while (!cmd && (c = getopt_long(argc, argv, "jzi:c:n:PhV", longs, NULL)) != -1) {
    switch (c) {
    case O_CTL:
      ctl_arg = optarg;
      break;
    case 'j':
      json = true;
      break;
    case 'z':
      zeros = true;
      break;
    case 'P':
      prometheus = true;
      break;
    case 'i':
      if (!parse_secs(optarg, &interval))
        return toe_cli_usage_error(prog, "-i %s: not a number of seconds (0.001 to 86400)", optarg);
      break;
    case 'c':
      if (!parse_count(optarg, &count))
        return toe_cli_usage_error(prog, "-c %s: not a count of reports (1 or more)", optarg);
      break;
    case 'n':
      if (!parse_count(optarg, &iterations))
        return toe_cli_usage_error(prog, "-n %s: not a count of refreshes (1 or more)", optarg);
      break;
    case 'h':
      usage(stdout);
      return fflush(stdout) == 0 ? 0 : 1;
    case 'V':
      return toe_cli_version(prog, NULL);
    default:
      if (optopt == O_CTL || optopt == 'i' || optopt == 'c' || optopt == 'n')
        return toe_cli_usage_error(prog, "%s needs a value", argv[optind - 1]);
      if (optopt)
        return toe_cli_usage_error(prog, "unknown option -%c", optopt);
      return toe_cli_usage_error(prog, "unknown option %s", argv[optind - 1]);
    }
  }
  if (!cmd) {
    for (int i = optind; i < argc; i++)
      words[nwords++] = argv[i];
    if (nwords == 0)
      return toe_cli_usage_error(prog,
                                 "no command (status, stats, flows, top, filters or capture)");
    cmd = words[0];
    if (strcmp(cmd, "capture") == 0) /* found by the scan above unless something odd came first */
      return toe_cli_usage_error(prog, "capture: give its options after the word capture");
  }
  static const char *const cmds[] = {"status", "stats", "flows", "top", "filters", "capture"};
  bool known = false;
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
    known = known || strcmp(cmd, cmds[i]) == 0;
  if (!known)
    return toe_cli_usage_error(prog,
                               "unknown command %s (status, stats, flows, top, filters or "
                               "capture)",
                               cmd);
  bool is_stats = strcmp(cmd, "stats") == 0, is_top = strcmp(cmd, "top") == 0,
       is_flows = strcmp(cmd, "flows") == 0;
  /* What each command takes: patterns (stats), flow filters (flows, top), nothing (others). */
  struct tc_patterns pat = {words + 1, nwords > 0 ? nwords - 1 : 0};
  struct tc_flow_filter flt;
  char ferr[256];
  if ((is_flows || is_top) && tc_flow_filter_parse(pat.n, pat.v, &flt, ferr, sizeof ferr) < 0)
    return toe_cli_usage_error(prog, "%s", ferr);
  if (!is_stats && !is_flows && !is_top && pat.n > 0)
    return toe_cli_usage_error(prog, "%s takes no arguments (got %s)", cmd, pat.v[0]);
  if (count && !(is_stats && interval > 0))
    return toe_cli_usage_error(prog, "-c goes with stats -i SECS");
  if (interval > 0 && !is_stats && !is_top)
    return toe_cli_usage_error(prog, "-i goes with stats or top");
  if (iterations && !is_top)
    return toe_cli_usage_error(prog, "-n goes with top");
  if (prometheus && (!is_stats || interval > 0 || json))
    return toe_cli_usage_error(prog, "--prometheus goes with stats (without -i and --json)");
  if (ctl_arg && !*ctl_arg)
    return toe_cli_usage_error(prog, "--ctl needs a PATH");

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
  struct tc_live_opts lo = {.interval = interval > 0 ? interval : 1,
                            .count = is_top ? iterations : count,
                            .json = json,
                            .zeros = zeros,
                            .pat = pat,
                            .filter = &flt};
  if (is_top || (is_stats && interval > 0)) {
    int st = is_top ? tc_top(&dev, ctl, &lo) : tc_stats_live(&dev, ctl, &lo);
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
  char *devinfo = NULL;
  if (is_stats || strcmp(cmd, "status") == 0) {
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
  if (strcmp(cmd, "status") == 0 || prometheus)
    devinfo = fetch_devinfo(&dev);
  if (is_flows || strcmp(cmd, "status") == 0) {
    rc = flows_fetch(&dev, &fl);
    if (rc < 0) {
      fprintf(stderr, "%s: STATS FLOWS: %s\n", prog, strerror(-rc));
      goto out;
    }
    if (!fl.granted && is_flows) {
      fprintf(stderr,
              "%s: the device at %s does not show its flow table to this user (needs root or "
              "toed's user)\n",
              prog, ctl);
      goto out;
    }
  }
  if (prometheus) {
    status = tc_prometheus(ctl, &cs, &pat, devinfo);
    goto out;
  }
  if (is_stats) {
    counters_select(&cs, &pat);
    if (pat.n && cs.n == 0) {
      fprintf(stderr, "%s: no counter matches %s%s\n", prog, pat.v[0], pat.n > 1 ? " ..." : "");
      goto out;
    }
    rc = cmd_stats(&dev, ctl, &cs, json, zeros);
  } else if (is_flows) {
    flows_select(&fl, &flt);
    rc = cmd_flows(&dev, ctl, &fl, json);
  } else {
    rc = cmd_status(&dev, ctl, &cs, &fl, devinfo, json);
  }
  if (rc < 0)
    fprintf(stderr, "%s: %s\n", prog, strerror(-rc));
  else if (fflush(stdout) != 0 || ferror(stdout))
    fprintf(stderr, "%s: write error on standard output\n", prog);
  else
    status = 0;
out:
  free(devinfo);
  free(cs.v);
  free(fl.v);
  free(words);
  tc_detach(&dev);
  return status;
}
