/*
 * Fair shares of the device-wide tables (docs/transport.md "Limits"): TCP sockets, UDP sockets,
 * SHARE tokens and sessions. Root and toed's own user take only what the table has; every other
 * uid may hold at most a quarter of the TCP, UDP and token tables and half of the sessions
 * (--max-clients), and none of them may take a table's last sixteenth (the reserve): the
 * device's own services (which open and accept engine sockets themselves) and root always find
 * one. Over its share a client gets -EMFILE (as a process over RLIMIT_NOFILE); when only the
 * reserve is left, -ENOBUFS (as the kernel when its tables are full). Both are counted and shown
 * by STATS ENGINE (transport.limit_*) and `toectl status`.
 */
#include "device/ctl_client.h"

#include <string.h>
#include <unistd.h>

static bool exempt(uid_t uid)
{
  return uid == 0 || uid == geteuid();
}

void ctl_quota_init(struct toed_ctl_dev *dev, uint32_t max_sessions)
{
  struct ctl_quota *q = &dev->quota;
  memset(q, 0, sizeof(*q));
  const struct toe_config *ec = toe_stack_config(dev->st);
  q->size[CTL_Q_TCP] = ec->tcp_socks;
  q->size[CTL_Q_UDP] = ec->udp_socks;
  q->size[CTL_Q_TOKEN] = CTL_TOKENS;
  q->size[CTL_Q_SESSION] = max_sessions;
  for (int k = 0; k < CTL_Q_KINDS; k++) {
    uint32_t n = q->size[k];
    q->per_uid[k] = k == CTL_Q_SESSION ? n / 2 : n / 4;
    if (q->per_uid[k] == 0)
      q->per_uid[k] = 1;
    q->reserve[k] = n / 16 ? n / 16 : 1;
  }
}

/* What the whole device holds of a table now (the engine's own count for sockets: it includes
 * the services' and the listeners' backlogs). */
static uint32_t table_used(const struct toed_ctl_dev *dev, enum ctl_quota_kind k)
{
  const struct toe_counters *c = toe_stack_counters(dev->st);
  switch (k) {
  case CTL_Q_TCP:
    return (uint32_t)c->tcp.socks_inuse;
  case CTL_Q_UDP:
    return (uint32_t)c->udp.socks_inuse;
  case CTL_Q_TOKEN:
    return dev->tokens_live;
  default:
    return dev->quota.sessions;
  }
}

static struct ctl_uid_use *uid_slot(struct ctl_quota *q, uid_t uid, bool make)
{
  struct ctl_uid_use *free_slot = NULL;
  for (uint32_t i = 0; i < CTL_QUOTA_UIDS; i++) {
    struct ctl_uid_use *u = &q->uids[i];
    if (u->refs && u->uid == uid)
      return u;
    if (!u->refs && !free_slot)
      free_slot = u;
  }
  if (make && free_slot) {
    memset(free_slot, 0, sizeof(*free_slot));
    free_slot->uid = uid;
  }
  return make ? free_slot : NULL;
}

int ctl_quota_take(struct toed_ctl_dev *dev, uid_t uid, enum ctl_quota_kind k, bool takes_entry)
{
  struct ctl_quota *q = &dev->quota;
  if (!exempt(uid)) {
    struct ctl_uid_use *u = uid_slot(q, uid, true);
    if (!u || u->use[k] >= q->per_uid[k]) {
      q->refused_uid++;
      return -TOE_EMFILE;
    }
    uint32_t used = table_used(dev, k);
    if (takes_entry && used + q->reserve[k] >= q->size[k]) {
      q->refused_reserve++;
      return -TOE_ENOBUFS;
    }
    u->use[k]++;
    u->refs++;
  }
  if (k == CTL_Q_SESSION)
    q->sessions++;
  return 0;
}

void ctl_quota_give(struct toed_ctl_dev *dev, uid_t uid, enum ctl_quota_kind k)
{
  struct ctl_quota *q = &dev->quota;
  if (k == CTL_Q_SESSION && q->sessions)
    q->sessions--;
  if (exempt(uid))
    return;
  struct ctl_uid_use *u = uid_slot(q, uid, false);
  if (u && u->use[k]) {
    u->use[k]--;
    u->refs--;
  }
}

void ctl_quota_visit(const struct toed_ctl_dev *dev, void (*fn)(void *, const char *, uint64_t),
                     void *arg)
{
  const struct ctl_quota *q = &dev->quota;
  fn(arg, "limit_tcp_per_uid", q->per_uid[CTL_Q_TCP]);
  fn(arg, "limit_udp_per_uid", q->per_uid[CTL_Q_UDP]);
  fn(arg, "limit_tokens_per_uid", q->per_uid[CTL_Q_TOKEN]);
  fn(arg, "limit_sessions_per_uid", q->per_uid[CTL_Q_SESSION]);
  fn(arg, "limit_refused_uid", q->refused_uid);
  fn(arg, "limit_refused_reserve", q->refused_reserve);
}
