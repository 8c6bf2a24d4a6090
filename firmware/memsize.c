/*
 * Prints the RAM toe_stack_mem_size() asks for, for the two configurations of docs/firmware.md's
 * size table: the defaults ("full") and a trimmed one for a small device (64 TCP sockets, 512
 * buffers, the other tables scaled down with them). The size depends on the target's struct
 * layout (pointer size, alignment of uint64_t), so firmware/size.sh builds this for each target:
 * natively for an LP64 target (RISC-V 64 has x86_64's layout), and for Cortex-M7 as a bare-metal
 * program run under qemu-system-arm with semihosting. Output: "full N\ntrimmed N\n".
 */
#include "toe/engine.h"

#include <stdio.h>

#ifdef TOE_MEMSIZE_SEMIHOST
/* ARM semihosting SYS_EXIT (0x18) with ADP_Stopped_ApplicationExit: ends the qemu run. */
static void semihost_exit(int code)
{
  register int r0 __asm__("r0") = 0x18;
  register int r1 __asm__("r1") = code ? 0x20024 : 0x20026;
  __asm__ volatile("bkpt 0xab" : : "r"(r0), "r"(r1) : "memory");
}
#endif

void toe_memsize_trim(struct toe_config *cfg);
void toe_memsize_trim(struct toe_config *cfg)
{
  cfg->tcp_socks = 64;
  cfg->tcp_syncache = 64;
  cfg->tcp_timewait = 64;
  cfg->tcp_max_backlog = 64;
  cfg->pbuf_count = 512;
  cfg->udp_socks = 16;
  cfg->udp_rcvq_len = 32;
  cfg->arp_entries = 32;
  cfg->reass_slots = 4;
  cfg->reass_max_bufs = 64;
  cfg->tcp_rcvbuf = 64u * 1024;
  cfg->tcp_sndbuf = 64u * 1024;
  cfg->tcp_rcvbuf_max = 256u * 1024;
  cfg->tcp_sndbuf_max = 256u * 1024;
}

static void no_tx(void *ctx, struct toe_pbuf *frame)
{
  (void)ctx;
  (void)frame;
}

int main(void)
{
  struct toe_config full, trim;
  toe_config_defaults(&full);
  toe_config_defaults(&trim);
  full.addr = trim.addr = 0xc6120002u; /* 198.18.0.2: a valid config needs an address */
  full.prefix_len = trim.prefix_len = 24;
  full.tx = trim.tx = no_tx;
  static const struct toe_mac mac = {{0x02, 0, 0, 0, 0, 1}}; /* locally administered */
  full.mac = trim.mac = mac;
  toe_memsize_trim(&trim);
  printf("full %lu\ntrimmed %lu\n", (unsigned long)toe_stack_mem_size(&full),
         (unsigned long)toe_stack_mem_size(&trim));
  fflush(stdout);
#ifdef TOE_MEMSIZE_SEMIHOST
  semihost_exit(0);
#endif
  return 0;
}
