/*
 * STATS DEVICE (ABI 1.3, TOE_ABI_CAP_DEVICE): what the device is, for `toectl status`.
 *
 * The fixed part (version, port, driver, addresses, MAC, MTU) is the text toed_main prepared at
 * start-up (toed_ctl_config.identity, toed_ops_identity); this adds what changes: the uptime, the
 * number of sessions and, for a privileged session (one granted FLOWS: root or toed's user), a
 * line per attached client. Built in dev->scratch like the other STATS texts.
 */
#include "device/ctl_client.h"
#include "device/ctl_server.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct info_text {
  struct toed_ctl_dev *dev;
  size_t len;
  bool failed;
};

static void add(struct info_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct info_text *t, const char *fmt, ...)
{
  if (t->failed)
    return;
  for (;;) {
    size_t room = t->dev->scratch_cap - t->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->dev->scratch ? t->dev->scratch + t->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->failed = true;
      return;
    }
    if ((size_t)n < room) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = t->dev->scratch_cap ? t->dev->scratch_cap * 2 : 65536;
    while (cap < t->len + (size_t)n + 1)
      cap *= 2;
    char *p = realloc(t->dev->scratch, cap);
    if (!p) {
      t->failed = true;
      return;
    }
    t->dev->scratch = p;
    t->dev->scratch_cap = cap;
  }
}

static const char *origin_name(uint8_t o)
{
  switch (o) {
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

size_t ctl_device_text(struct toed_ctl_dev *dev, bool with_clients)
{
  /* The device record is the first member of the control module's state. */
  struct toed_ctl *c = (struct toed_ctl *)(void *)((char *)dev - offsetof(struct toed_ctl, dev));
  struct info_text t = {dev, 0, false};
  toe_time_t now = toe_stack_now(dev->st);
  if (c->cfg.identity)
    add(&t, "%s", c->cfg.identity);
  /* toed's own clock: the engine's may start anywhere */
  if (c->cfg.uptime_ms)
    add(&t, "uptime_ms %llu\n", c->cfg.uptime_ms());
  add(&t, "clients %u\n", c->sessions);
  for (uint32_t i = 0; with_clients && i < c->nslots; i++) {
    const struct ctl_client *cl = &c->clients[i];
    if (cl->state != CTL_CS_ACTIVE)
      continue;
    char comm[sizeof cl->comm + 1];
    size_t k = 0;
    for (; k < sizeof cl->comm && cl->comm[k]; k++)
      comm[k] = (cl->comm[k] > ' ' && cl->comm[k] < 0x7f) ? cl->comm[k] : '?';
    comm[k] = 0;
    add(&t, "client %u %d %u %s %u %llu %s\n", cl->client_id, (int)cl->pid, (unsigned)cl->uid,
        origin_name(cl->origin), cl->abi.handles_inuse,
        (unsigned long long)((now - cl->since) / TOE_MSEC(1)), k ? comm : "-");
  }
  return t.failed ? SIZE_MAX : t.len;
}
