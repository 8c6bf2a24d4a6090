/*
 * What toectl reads from a device: the counters (STATS ENGINE text) and the flow table (STATS
 * FLOWS records), fetched and parsed (toectl_data.c), for the commands of toectl_main.c and the
 * live views of toectl_live.c.
 */
#ifndef TOECTL_DATA_H
#define TOECTL_DATA_H

#include "toectl_dev.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/* Parses "layer.name value" lines into cs (zeroed first; free cs->v). 0 or -ENOMEM. */
int counters_parse(const char *text, size_t len, struct counters *cs);
/* The counter layer.name, or NULL. */
const struct counter *counter_find(const struct counters *cs, const char *layer, const char *name);
/* The layers in order of first appearance (names point into cs); how many. */
size_t layers_list(const struct counters *cs, const char **out, size_t max);
/* A gauge says how much of something is held now, as opposed to a counter that only grows. */
bool is_gauge(const struct counter *c);
/* Fetches a STATS answer of `kind` into a malloc'ed, NUL-terminated buffer, growing it until
 * it fits (else *truncated). Returns the bytes held (*out), or -errno. */
ssize_t fetch(struct tc_dev *d, uint32_t kind, char **out, size_t *full, bool *truncated);
/* True for an all-zero (absent) address. */
bool addr_zero(const struct toe_abi_sockaddr *a);
/* The state as ss(8) names it (UNCONN/ESTAB for UDP). */
const char *flow_state(const struct toe_abi_flow *f);
/* "tcp", "udp" or "?". */
const char *proto_name(uint8_t p);
/* The address part ("198.18.0.1", "0.0.0.0" when none). */
void addr_str(const struct toe_abi_sockaddr *a, char *out, size_t len);
/* "addr:port" like ss ("addr:*" for port 0). */
void endpoint_str(const struct toe_abi_sockaddr *a, char *out, size_t len);
/* The flow table, sorted. 0 (fl->granted false when the device refuses FLOWS), or -errno. */
int flows_fetch(struct tc_dev *d, struct flows *fl);
/* A TCP state's ss(8) name. */
const char *tcp_state_ss(uint8_t s);

#endif
