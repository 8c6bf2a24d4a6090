/*
 * bench_engine_mem: the engine's memory per TCP connection, exactly, from the engine's own sizing
 * (toe_stack_mem_size): the difference between a configuration with 2N and one with N TCP
 * sockets, divided by N, with everything else equal. bench/scale.sh prints it beside the RSS of a
 * toed that holds the connections (which also counts the services' own state and the pages the
 * packet pool touched).
 *
 *   bench_engine_mem [N]      (N defaults to 1048576)
 */
#include "toe/engine.h"

#include <stdio.h>
#include <stdlib.h>

static void no_tx(void *ctx, struct toe_pbuf *frame)
{
  (void)ctx;
  (void)frame;
}

/* What a configuration needs to be accepted (the sizing ignores the address). */
static void base_config(struct toe_config *c)
{
  toe_config_defaults(c);
  c->tx = no_tx;
  c->addr = 0xc6120001u; /* 198.18.0.1 */
  c->prefix_len = 24;
  c->mac.b[0] = 0x02;
  c->mac.b[5] = 0x01;
}

int main(int argc, char **argv)
{
  unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1048576ul;
  if (n == 0 || n > 4194304ul) {
    fprintf(stderr, "usage: bench_engine_mem [N], 1..4194304\n");
    return 2;
  }
  struct toe_config a, b;
  base_config(&a);
  base_config(&b);
  a.tcp_socks = (uint32_t)n;
  b.tcp_socks = (uint32_t)(2 * n);
  size_t ma = toe_stack_mem_size(&a), mb = toe_stack_mem_size(&b);
  if (ma == 0 || mb <= ma) {
    fprintf(stderr, "bench_engine_mem: the engine refused the configuration\n");
    return 1;
  }
  printf("engine_bytes_per_tcp_socket %.1f\n", (double)(mb - ma) / (double)n);
  printf("engine_bytes_total_for_%lu %zu\n", n, ma);
  return 0;
}
