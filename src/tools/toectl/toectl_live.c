/*
 * toectl's live views and the Prometheus exposition (toectl_live.h).
 *
 * A live view samples the device every interval on an absolute schedule (so reports do not drift)
 * and reports differences between consecutive samples over the time that really passed between
 * them. SIGINT and SIGTERM end it after the report in progress.
 */
#include "toectl_live.h"

#include "toectl_out.h"
#include "tools/common/toe_cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
  (void)sig;
  stop_requested = 1;
}

static void catch_signals(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: the sleep returns at once */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

static double mono_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sleeps until the monotonic time `when` (seconds). False if a signal asked us to stop. */
static bool sleep_until(double when)
{
  struct timespec ts;
  ts.tv_sec = (time_t)when;
  ts.tv_nsec = (long)((when - (double)ts.tv_sec) * 1e9);
  while (!stop_requested) {
    int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    if (rc == 0)
      return !stop_requested;
    if (rc != EINTR)
      return false;
  }
  return false;
}

static int sample_counters(struct tc_dev *d, struct counters *cs)
{
  char *text;
  size_t full;
  bool trunc;
  ssize_t n = fetch(d, TOE_ABI_STATS_ENGINE, &text, &full, &trunc);
  if (n < 0)
    return (int)n;
  int rc = counters_parse(text, (size_t)n, cs);
  free(text);
  return rc;
}

static void wall_clock(char *buf, size_t len)
{
  time_t t = time(NULL);
  struct tm tm;
  localtime_r(&t, &tm);
  strftime(buf, len, "%H:%M:%S", &tm);
}

/* ---- stats -i ---------------------------------------------------------------------------- */

static void report_counters(const char *ctl, const struct tc_live_opts *o,
                            const struct counters *prev, const struct counters *cur, double dt)
{
  struct tc_json j;
  struct tc_table t;
  if (o->json) {
    tc_json_init(&j, stdout);
    tc_json_obj(&j, NULL);
    tc_json_now(&j);
    tc_json_str(&j, "ctl", ctl);
    tc_json_f64(&j, "interval_s", dt);
    tc_json_obj(&j, "counters");
  } else {
    const char *hdr[] = {"counter", ">value", ">change", ">per second"};
    if (tc_table_init(&t, 4, hdr) < 0)
      return;
  }
  size_t shown = 0;
  for (size_t i = 0; i < cur->n; i++) {
    const struct counter *c = &cur->v[i];
    if (!tc_pattern_match(&o->pat, c->layer, c->name))
      continue;
    const struct counter *p = counter_find(prev, c->layer, c->name);
    int64_t delta = (int64_t)(c->value - (p ? p->value : 0));
    if (delta == 0 && !o->zeros)
      continue;
    /* A gauge's change is not a rate of anything: only counters get one. */
    bool gauge = is_gauge(c);
    double rate = dt > 0 ? (double)delta / dt : 0;
    char name[100];
    snprintf(name, sizeof name, "%s.%s", c->layer, c->name);
    if (o->json) {
      tc_json_obj(&j, name);
      tc_json_u64(&j, "value", c->value);
      tc_json_i64(&j, "delta", delta);
      if (gauge)
        tc_json_null(&j, "rate");
      else
        tc_json_f64(&j, "rate", rate);
      tc_json_obj_end(&j);
    } else {
      char v[24], dl[24], r[32];
      snprintf(v, sizeof v, "%llu", (unsigned long long)c->value);
      snprintf(dl, sizeof dl, "%+lld", (long long)delta);
      if (gauge)
        snprintf(r, sizeof r, "(gauge)");
      else
        snprintf(r, sizeof r, "%.1f", rate);
      tc_table_add(&t, (const char *const[]){name, v, dl, r});
    }
    shown++;
  }
  if (o->json) {
    tc_json_obj_end(&j);
    tc_json_obj_end(&j);
    tc_json_end(&j);
  } else {
    char now[16];
    wall_clock(now, sizeof now);
    printf("%s  %.2f s, %zu counter%s changed\n", now, dt, shown, shown == 1 ? "" : "s");
    if (shown)
      tc_table_print(&t, stdout, 2);
    tc_table_free(&t);
  }
  fflush(stdout);
}

int tc_stats_live(struct tc_dev *d, const char *ctl, const struct tc_live_opts *o)
{
  catch_signals();
  struct counters prev, cur;
  int rc = sample_counters(d, &prev);
  if (rc < 0) {
    fprintf(stderr, "toectl: STATS ENGINE: %s\n", strerror(-rc));
    return TOE_CLI_EXIT_FAIL;
  }
  double start = mono_s(), last = start;
  if (!o->json)
    printf("counters of the device at %s every %.2f s (change since the last report; Ctrl-C "
           "ends)\n",
           ctl, o->interval);
  int status = TOE_CLI_EXIT_OK;
  for (long i = 1; o->count == 0 || i <= o->count; i++) {
    if (!sleep_until(start + (double)i * o->interval))
      break;
    rc = sample_counters(d, &cur);
    if (rc < 0) {
      fprintf(stderr, "toectl: STATS ENGINE: %s\n", strerror(-rc));
      status = TOE_CLI_EXIT_FAIL;
      break;
    }
    double now = mono_s();
    report_counters(ctl, o, &prev, &cur, now - last);
    last = now;
    free(prev.v);
    prev = cur;
    if (ferror(stdout)) {
      status = TOE_CLI_EXIT_FAIL;
      break;
    }
  }
  free(prev.v);
  return status;
}

/* ---- top --------------------------------------------------------------------------------- */

struct top_row {
  const struct flow *f;
  double rx_rate, tx_rate;
};

static int top_cmp(const void *a, const void *b)
{
  const struct top_row *x = a, *y = b;
  double rx = x->rx_rate + x->tx_rate, ry = y->rx_rate + y->tx_rate;
  return rx < ry ? 1 : rx > ry ? -1 : 0;
}

/* The same flow in the previous sample: same protocol, ends and owner. */
static const struct flow *flow_before(const struct flows *prev, const struct toe_abi_flow *f)
{
  for (size_t i = 0; i < prev->n; i++) {
    const struct toe_abi_flow *p = &prev->v[i].f;
    if (p->proto == f->proto && p->client_id == f->client_id &&
        memcmp(&p->local, &f->local, sizeof p->local) == 0 &&
        memcmp(&p->remote, &f->remote, sizeof p->remote) == 0)
      return &prev->v[i];
  }
  return NULL;
}

static void rate_str(double bps, char *out, size_t len)
{
  if (bps >= 1e9)
    snprintf(out, len, "%.2fG", bps / 1e9);
  else if (bps >= 1e6)
    snprintf(out, len, "%.2fM", bps / 1e6);
  else if (bps >= 1e3)
    snprintf(out, len, "%.1fk", bps / 1e3);
  else
    snprintf(out, len, "%.0f", bps);
}

static void report_top(const char *ctl, const struct tc_live_opts *o, const struct flows *prev,
                       const struct flows *cur, double dt, bool clear)
{
  struct top_row *rows = calloc(cur->n ? cur->n : 1, sizeof *rows);
  if (!rows)
    return;
  size_t n = 0;
  for (size_t i = 0; i < cur->n; i++) {
    const struct flow *f = &cur->v[i];
    if (o->filter && !tc_flow_match(o->filter, &f->f, flow_state(&f->f), f->comm))
      continue;
    const struct flow *p = flow_before(prev, &f->f);
    uint64_t rx0 = p ? p->f.rx_bytes : 0, tx0 = p ? p->f.tx_bytes : 0;
    rows[n].f = f;
    rows[n].rx_rate = dt > 0 && f->f.rx_bytes >= rx0 ? (double)(f->f.rx_bytes - rx0) / dt : 0;
    rows[n].tx_rate = dt > 0 && f->f.tx_bytes >= tx0 ? (double)(f->f.tx_bytes - tx0) / dt : 0;
    n++;
  }
  qsort(rows, n, sizeof *rows, top_cmp);
  if (o->json) {
    struct tc_json j;
    tc_json_init(&j, stdout);
    tc_json_obj(&j, NULL);
    tc_json_now(&j);
    tc_json_str(&j, "ctl", ctl);
    tc_json_f64(&j, "interval_s", dt);
    tc_json_u64(&j, "count", cur->count);
    tc_json_arr(&j, "flows");
    for (size_t i = 0; i < n; i++) {
      const struct toe_abi_flow *f = &rows[i].f->f;
      char loc[80], rem[80];
      endpoint_str(&f->local, loc, sizeof loc);
      endpoint_str(&f->remote, rem, sizeof rem);
      tc_json_obj(&j, NULL);
      tc_json_str(&j, "proto", proto_name(f->proto));
      tc_json_str(&j, "state", flow_state(f));
      tc_json_str(&j, "local", loc);
      tc_json_str(&j, "remote", rem);
      tc_json_f64(&j, "rx_bytes_per_s", rows[i].rx_rate);
      tc_json_f64(&j, "tx_bytes_per_s", rows[i].tx_rate);
      tc_json_u64(&j, "rx_bytes", f->rx_bytes);
      tc_json_u64(&j, "tx_bytes", f->tx_bytes);
      tc_json_u64(&j, "pid", f->pid);
      tc_json_str(&j, "comm", rows[i].f->comm);
      tc_json_obj_end(&j);
    }
    tc_json_arr_end(&j);
    tc_json_obj_end(&j);
    tc_json_end(&j);
  } else {
    if (clear)
      fputs("\033[H\033[2J", stdout); /* home, clear screen */
    char now[16];
    wall_clock(now, sizeof now);
    printf("toectl top - %s - %s - %u flows, %zu shown, over %.2f s\n\n", now, ctl, cur->count, n,
           dt);
    struct tc_table t;
    const char *hdr[] = {"Proto",       "State",       "Local Address:Port", "Peer Address:Port",
                         ">RX bytes/s", ">TX bytes/s", ">RX total",          ">TX total",
                         ">PID",        "Command"};
    if (tc_table_init(&t, 10, hdr) == 0) {
      for (size_t i = 0; i < n; i++) {
        const struct toe_abi_flow *f = &rows[i].f->f;
        char loc[80], rem[80], rr[24], tr[24], rt[24], tt[24], pid[16];
        endpoint_str(&f->local, loc, sizeof loc);
        endpoint_str(&f->remote, rem, sizeof rem);
        rate_str(rows[i].rx_rate, rr, sizeof rr);
        rate_str(rows[i].tx_rate, tr, sizeof tr);
        rate_str((double)f->rx_bytes, rt, sizeof rt);
        rate_str((double)f->tx_bytes, tt, sizeof tt);
        snprintf(pid, sizeof pid, f->pid ? "%u" : "-", f->pid);
        const char *comm = f->client_id == 0    ? "(device)"
                           : rows[i].f->comm[0] ? rows[i].f->comm
                                                : "-";
        tc_table_add(&t, (const char *const[]){proto_name(f->proto), flow_state(f), loc, rem, rr,
                                               tr, rt, tt, pid, comm});
      }
      tc_table_print(&t, stdout, 0);
      tc_table_free(&t);
    }
  }
  fflush(stdout);
  free(rows);
}

int tc_top(struct tc_dev *d, const char *ctl, const struct tc_live_opts *o)
{
  catch_signals();
  struct flows prev, cur;
  int rc = flows_fetch(d, &prev);
  if (rc < 0 || !prev.granted) {
    if (rc < 0)
      fprintf(stderr, "toectl: STATS FLOWS: %s\n", strerror(-rc));
    else
      fprintf(stderr,
              "toectl: the device at %s does not show its flow table to this user (needs root "
              "or toed's user)\n",
              ctl);
    free(prev.v);
    return TOE_CLI_EXIT_FAIL;
  }
  /* Refresh in place only on a terminal; piped output gets one report after another. */
  bool clear = !o->json && isatty(STDOUT_FILENO);
  double start = mono_s(), last = start;
  int status = TOE_CLI_EXIT_OK;
  for (long i = 1; o->count == 0 || i <= o->count; i++) {
    if (!sleep_until(start + (double)i * o->interval))
      break;
    rc = flows_fetch(d, &cur);
    if (rc < 0) {
      fprintf(stderr, "toectl: STATS FLOWS: %s\n", strerror(-rc));
      status = TOE_CLI_EXIT_FAIL;
      break;
    }
    double now = mono_s();
    report_top(ctl, o, &prev, &cur, now - last, clear);
    last = now;
    free(prev.v);
    prev = cur;
    if (ferror(stdout)) {
      status = TOE_CLI_EXIT_FAIL;
      break;
    }
  }
  free(prev.v);
  return status;
}

/* ---- Prometheus -------------------------------------------------------------------------- */

/* A metric name: [a-zA-Z_:][a-zA-Z0-9_:]*, anything else becomes '_'. */
static void metric_name(char *out, size_t len, const char *layer, const char *name, bool counter)
{
  int n = snprintf(out, len, "toekit_%s_%s%s", layer, name, counter ? "_total" : "");
  for (int i = 0; i < n && (size_t)i < len; i++) {
    char c = out[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok)
      out[i] = '_';
  }
}

/* A label value: backslash, double quote and newline escaped. */
static void label_value(FILE *f, const char *s)
{
  for (; *s; s++) {
    if (*s == '\\' || *s == '"')
      fputc('\\', f);
    if (*s == '\n')
      fputs("\\n", f);
    else
      fputc(*s, f);
  }
}

/* The value of key in "key value\n" text, copied into out ("" when absent). */
static void devinfo_get(const char *text, const char *key, char *out, size_t len)
{
  out[0] = 0;
  size_t k = strlen(key);
  for (const char *l = text; l && *l;) {
    const char *nl = strchr(l, '\n');
    size_t ll = nl ? (size_t)(nl - l) : strlen(l);
    if (ll > k && strncmp(l, key, k) == 0 && l[k] == ' ') {
      size_t v = ll - k - 1;
      if (v >= len)
        v = len - 1;
      memcpy(out, l + k + 1, v);
      out[v] = 0;
      return;
    }
    l = nl ? nl + 1 : NULL;
  }
}

int tc_prometheus(const char *ctl, const struct counters *cs, const struct tc_patterns *pat,
                  const char *devinfo)
{
  FILE *f = stdout;
  fputs("# HELP toekit_info The toekit device and this toectl: versions (value always 1).\n"
        "# TYPE toekit_info gauge\n",
        f);
  fputs("toekit_info{ctl=\"", f);
  label_value(f, ctl);
  fprintf(f, "\",toectl_version=\"%s\"", TOE_VERSION);
  if (devinfo) {
    static const char *const keys[] = {"version", "abi", "wire", "mac", "addr"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
      char v[128];
      devinfo_get(devinfo, keys[i], v, sizeof v);
      if (!v[0])
        continue;
      fprintf(f, ",%s%s=\"", strcmp(keys[i], "version") == 0 ? "device_" : "", keys[i]);
      label_value(f, v);
      fputc('"', f);
    }
  }
  fputs("} 1\n", f);
  if (devinfo) {
    char up[32];
    devinfo_get(devinfo, "uptime_ms", up, sizeof up);
    if (up[0]) {
      fputs("# HELP toekit_uptime_seconds How long the device has run.\n"
            "# TYPE toekit_uptime_seconds gauge\ntoekit_uptime_seconds{ctl=\"",
            f);
      label_value(f, ctl);
      fprintf(f, "\"} %.3f\n", strtod(up, NULL) / 1000.0);
    }
  }
  for (size_t i = 0; i < cs->n; i++) {
    const struct counter *c = &cs->v[i];
    if (!tc_pattern_match(pat, c->layer, c->name))
      continue;
    bool gauge = is_gauge(c);
    char m[160];
    metric_name(m, sizeof m, c->layer, c->name, !gauge);
    /* Two device names could map to one metric name ('-' and '_'): print each family once. */
    bool dup = false;
    for (size_t k = 0; k < i && !dup; k++) {
      char m2[160];
      if (!tc_pattern_match(pat, cs->v[k].layer, cs->v[k].name))
        continue;
      metric_name(m2, sizeof m2, cs->v[k].layer, cs->v[k].name, !is_gauge(&cs->v[k]));
      dup = strcmp(m, m2) == 0;
    }
    if (dup)
      continue;
    fprintf(f, "# HELP %s The device's %s.%s %s.\n# TYPE %s %s\n%s{ctl=\"", m, c->layer, c->name,
            gauge ? "gauge" : "counter", m, gauge ? "gauge" : "counter", m);
    label_value(f, ctl);
    fprintf(f, "\"} %llu\n", (unsigned long long)c->value);
  }
  return fflush(f) == 0 && !ferror(f) ? TOE_CLI_EXIT_OK : TOE_CLI_EXIT_FAIL;
}
