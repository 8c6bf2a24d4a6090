/*
 * Fuzzes the software TSO cut (toe_gso_segment): any bytes handed over as a super-segment, with
 * any gso_size, are cut or refused without a crash or a leaked buffer; a cut's pieces carry the
 * payload in order, each at most gso_size bytes, and with sw_csum each piece's checksums verify.
 * Input: 2 bytes gso_size, 1 byte of mode bits, then the frame.
 */
#include "toe/engine.h"
#include "wire/checksum.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct toe_stack *st;

static void tx_drop(void *ctx, struct toe_pbuf *frame)
{
  (void)ctx;
  toe_pbuf_free(st, frame);
}

static uint8_t flat[70000];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!st) {
    struct toe_config cfg;
    toe_config_defaults(&cfg);
    cfg.mac.b[0] = 2;
    cfg.addr = 0xc6120001u;
    cfg.prefix_len = 24;
    cfg.pbuf_count = 512;
    cfg.pbuf_size = TOE_PBUF_HEADROOM + 1518; /* the smallest: long frames become chains */
    cfg.tx = tx_drop;
    if (toe_stack_new(&cfg, &st) != 0)
      abort();
  }
  if (size < 3)
    return 0;
  uint16_t gso = (uint16_t)(data[0] << 8 | data[1]);
  uint8_t mode = data[2]; /* 0x3f: headroom (moves the buffer boundaries), 0x40: sw_csum */
  data += 3;
  size -= 3;
  uint32_t free0 = toe_pbuf_pool_free_count(st);
  struct toe_pbuf *f = toe_pbuf_from_bytes(st, data, size, (uint16_t)(mode & 0x3f));
  if (!f)
    return 0;
  f->flags = TOE_PBUF_F_GSO_TCPV4 | TOE_PBUF_F_CSUM_PARTIAL;
  f->gso_size = gso;
  bool sw = (mode & 0x40) != 0;
  struct toe_pbuf *list = NULL;
  int rc = toe_gso_segment(st, f, sw, &list);
  if (rc != 0 && (list != NULL || (rc != -TOE_EINVAL && rc != -TOE_ENOBUFS)))
    abort();
  uint32_t pieces = 0;
  while (list) {
    struct toe_pbuf *n = list->qnext;
    list->qnext = NULL;
    size_t len = toe_pbuf_copy_out(list, 0, flat, sizeof(flat));
    if (len != list->tot_len || len > size)
      abort();
    /* each piece: headers as the input's, payload at most gso_size */
    uint32_t l2 = (flat[12] == 0x81 && flat[13] == 0x00) ? 18u : 14u;
    uint32_t ihl = (uint32_t)(flat[l2] & 15u) * 4u;
    uint32_t thl = (uint32_t)(flat[l2 + ihl + 12] >> 4) * 4u;
    if (len < l2 + ihl + thl || len - (l2 + ihl + thl) > gso)
      abort();
    if ((uint32_t)(flat[l2 + 2] << 8 | flat[l2 + 3]) != len - l2)
      abort();
    if (toe_csum(flat + l2, ihl) != 0)
      abort(); /* the IPv4 header checksum verifies */
    if (sw) {
      const uint8_t *a = flat + l2 + 12;
      uint32_t src = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
      uint32_t dst = (uint32_t)a[4] << 24 | (uint32_t)a[5] << 16 | (uint32_t)a[6] << 8 | a[7];
      uint32_t ps = toe_csum_pseudo_v4(src, dst, 6, (uint16_t)(len - l2 - ihl));
      if (toe_csum_fold(toe_csum_partial(flat + l2 + ihl, len - l2 - ihl, ps)) != 0)
        abort(); /* the TCP checksum verifies */
    }
    toe_pbuf_free(st, list);
    list = n;
    pieces++;
  }
  if (rc == 0 && pieces == 0)
    abort();
  if (toe_pbuf_pool_free_count(st) != free0)
    abort(); /* every buffer (views included) came back */
  return 0;
}
