/*
 * STATS ENGINE (docs/transport.md "Who may read what"): the engine's and the transport's
 * counters as "layer.name value" lines.
 *
 * Who sees what: root and toed's own user (a privileged session) get every line. Any other
 * client gets the engine's protocol counters (link, arp, ipv4, icmp, udp, tcp, pbuf: the whole
 * device's totals, as Linux shows every user /proc/net/snmp) and the transport's capacity
 * gauges (sessions and sockets in use, the per-uid limits); not the transport's event counters,
 * which tell what other clients do and fail at (refused hellos, bad descriptors, captures, shares).
 *
 * Cost: the text (~300 lines) is built at most once per CTL_STATS_MAX_AGE and served from the
 * cache in between, so a client asking in a loop costs a copy, not a rebuild; the values are
 * then at most that old.
 */
#include "device/ctl_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The transport's counters any client may read. */
static bool public_transport(const char *name)
{
  static const char *const names[] = {
      "clients_attached",  "clients_max",          "socks_inuse",           "limit_tcp_per_uid",
      "limit_udp_per_uid", "limit_tokens_per_uid", "limit_sessions_per_uid"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(names[i], name) == 0)
      return true;
  return false;
}

struct stats_text {
  struct toed_ctl_dev *dev;
  bool failed;
  int pass; /* transport lines: 0 the public ones, 1 the others */
};

static void add(void *arg, const char *layer, const char *name, uint64_t value)
{
  struct stats_text *t = arg;
  struct ctl_stats_cache *c = &t->dev->stats_cache;
  char line[160];
  int n = snprintf(line, sizeof line, "%s.%s %llu\n", layer, name, (unsigned long long)value);
  if (n <= 0 || (size_t)n >= sizeof line) {
    t->failed = true;
    return;
  }
  if (c->len + (size_t)n > c->cap) {
    size_t cap = c->cap ? c->cap : 32768;
    while (cap < c->len + (size_t)n)
      cap *= 2;
    char *p = realloc(c->text, cap);
    if (!p) {
      t->failed = true;
      return;
    }
    c->text = p;
    c->cap = cap;
  }
  memcpy(c->text + c->len, line, (size_t)n);
  c->len += (size_t)n;
}

static void add_transport(struct stats_text *t, const char *name, uint64_t value)
{
  if (public_transport(name) == (t->pass == 0))
    add(t, "transport", name, value);
}

static void add_quota(void *arg, const char *name, uint64_t value)
{
  add_transport(arg, name, value);
}

size_t ctl_engine_stats(struct toed_ctl_dev *dev, bool privileged, toe_time_t now,
                        const char **text)
{
  struct ctl_stats_cache *c = &dev->stats_cache;
  if (!c->valid || now >= c->built + CTL_STATS_MAX_AGE || now < c->built) {
    struct stats_text t = {dev, false, 0};
    c->len = 0;
    toe_counters_visit(toe_stack_counters(dev->st), add, &t);
    for (t.pass = 0; t.pass < 2; t.pass++) {
#define STATS_LINE_(name) add_transport(&t, #name, dev->stats.name);
      TOED_CTL_STATS(STATS_LINE_)
#undef STATS_LINE_
      ctl_quota_visit(dev, add_quota, &t);
      if (t.pass == 0)
        c->public_len = c->len; /* everything before is for any client */
    }
    c->valid = !t.failed;
    c->built = now;
    if (t.failed)
      return SIZE_MAX;
  }
  *text = c->text;
  return privileged ? c->len : c->public_len;
}

void ctl_engine_stats_free(struct toed_ctl_dev *dev)
{
  free(dev->stats_cache.text);
  memset(&dev->stats_cache, 0, sizeof dev->stats_cache);
}
