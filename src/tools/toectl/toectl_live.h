/*
 * toectl's live views (like nstat -d, vma_stats -d and top) and the Prometheus exposition:
 *
 *   toectl stats [PATTERN...] -i SECS [-c N]   every SECS seconds, the counters that changed:
 *                                              value, change and rate per second
 *   toectl top [-i SECS] [-n N] [FILTER...]    the flows by rate (bytes/s both ways), refreshed
 *   toectl stats --prometheus [PATTERN...]     text exposition format 0.0.4
 */
#ifndef TOECTL_LIVE_H
#define TOECTL_LIVE_H

#include "toectl_data.h"
#include "toectl_dev.h"
#include "toectl_select.h"

#include <stdbool.h>

struct tc_live_opts {
  double interval; /* seconds between reports (> 0) */
  long count;      /* reports (stats -c, top -n); 0 = until Ctrl-C */
  bool json;       /* one JSON object per report, one per line */
  bool zeros;      /* stats: unchanged counters too */
  struct tc_patterns pat;
  const struct tc_flow_filter *filter; /* top */
};

/* Returns the exit status: 0, or 1 with a message printed (the device went away). */
int tc_stats_live(struct tc_dev *d, const char *ctl, const struct tc_live_opts *o);
int tc_top(struct tc_dev *d, const char *ctl, const struct tc_live_opts *o);

/* Prints the counters matching `pat` as Prometheus metrics (counters as toekit_LAYER_NAME_total,
 * gauges as toekit_LAYER_NAME), every sample labelled with the device's control socket, and
 * toekit_info with the versions. devinfo: the STATS DEVICE text, or NULL. */
int tc_prometheus(const char *ctl, const struct counters *cs, const struct tc_patterns *pat,
                  const char *devinfo);

#endif
