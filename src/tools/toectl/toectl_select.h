/*
 * What toectl shows of a device: counter name patterns (`toectl stats tcp.* link.rx_*`) and
 * ss-style flow filters (`toectl flows state established dport 80 dst 198.18.0.0/24`).
 */
#ifndef TOECTL_SELECT_H
#define TOECTL_SELECT_H

#include "toe/abi.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Shell globs (fnmatch) on "layer.name". A pattern that names no counter ("tcp") stands for its
 * whole layer ("tcp.*"). No pattern: everything. */
struct tc_patterns {
  char *const *v;
  int n;
};
bool tc_pattern_match(const struct tc_patterns *p, const char *layer, const char *name);

#define TC_FILTER_MAX_STATES 16

/* A flow filter: every given condition must hold (and). */
struct tc_flow_filter {
  uint8_t proto;    /* 0 any, TOE_ABI_PROTO_TCP or _UDP */
  uint32_t states;  /* bit per state index of tc_flow_state_index(); 0 any */
  int sport, dport; /* -1 any */
  int port;         /* either end; -1 any */
  bool src, dst;    /* address conditions given */
  uint32_t src_addr, src_mask, dst_addr, dst_mask; /* host order */
  const char *comm;                                /* the owning program's name, or NULL */
};

/*
 * Parses ss-like words: "tcp", "udp", "state S" (ss's names: established, syn-sent, listen,
 * time-wait, ..., or "connected": every state but listen and closed, "all"), "sport N",
 * "dport N", "port N" (N, ":N", "= :N"), "src A[/P]", "dst A[/P]", "comm NAME". Returns 0, or -1
 * with a one-line message in err.
 */
int tc_flow_filter_parse(int n, char *const *w, struct tc_flow_filter *f, char *err, size_t errlen);

/* True if the flow (and its printable comm) passes the filter. `state` is flow_state()'s name. */
bool tc_flow_match(const struct tc_flow_filter *f, const struct toe_abi_flow *fl, const char *state,
                   const char *comm);

#endif
