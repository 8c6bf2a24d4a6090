/*
 * The transport ABI as a hostile host client drives it (src/transport/abi_layout.c,
 * abi_validate.c, region.c, ring.h): the hello and its negotiation, the layout check, the region's
 * set-up, then a stream of submission entries, fill-ring returns and ring indices scribbled by the
 * client, against the device's private per-client state.
 *
 * Input:
 *   u8 m | 136 bytes of hello | u8 region pages | u8 caps mask | then records
 * The hello is m & 15 + 120 bytes long (short, exact or a later minor's longer one); with m & 0x80
 * its magic, major, size and reserved fields are made right, so the fuzzer spends its time on the
 * geometry. The device's limits are the ABI's, with the region capped at (pages + 1) * 16 KiB
 * (the region is really allocated and initialised) and the offered caps masked.
 * Records (tag byte, then its arguments):
 *   0: 64-byte SQE, validated; an accepted one moves the model's socket state the way the device
 *      would (OPEN allocates, BIND binds, LISTEN, CONNECT, SHUTDOWN, CLOSE frees)
 *   1: u16 buffer id returned on the fill ring (toe_abi_fill_take)
 *   2: u16 buffer id, u8 handle slot: the device lends the buffer for that socket
 *   3: u16 buffer id handed over with no socket (capture)
 *   4: u16 count: fill-ring entries written by the host (ids from the input), then taken by the
 *      device through the ring as the session does
 *   5: u32 raw producer index the host writes into the SQ's or FQ's control block, then the device
 *      reads the ring (it must refuse a bad index, never read out of bounds)
 *   6: 96-byte layout checked on its own; 128-byte reply checked as the host does
 * Checked: a negotiated layout passes the host's reply check and fits the region; an accepted SQE
 * names a socket of this client and a range inside the buffer area; each socket's lent count
 * equals the buffers lent for it; the handle count equals the open slots.
 */
#include "toe/abi.h"
#include "toe/engine.h"
#include "transport/abi_validate.h"
#include "transport/region.h"
#include "transport/ring.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HELLO_BUF 136
#define MAX_REGION_PAGES 64 /* 1 MiB: the region is allocated for real */

struct in {
  const uint8_t *p;
  size_t n;
};

static int take(struct in *in, void *dst, size_t len)
{
  if (in->n < len)
    return -1;
  memcpy(dst, in->p, len);
  in->p += len;
  in->n -= len;
  return 0;
}

static uint32_t u16(struct in *in)
{
  uint8_t b[2] = {0, 0};
  (void)take(in, b, 2);
  return (uint32_t)b[0] | (uint32_t)b[1] << 8;
}

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    fprintf(stderr, "fuzz_abi: " __VA_ARGS__);                                                     \
    fprintf(stderr, "\n");                                                                         \
    abort();                                                                                       \
  } while (0)

/* The ownership table and the handle table agree (every lent buffer counts on an open socket's
 * rx_lent, or on a socket that closed since, whose count went with it). */
static void check_accounting(const struct toe_abi_client *c, uint32_t *lent)
{
  memset(lent, 0, c->layout.max_handles * sizeof *lent);
  for (uint32_t b = 0; b < c->layout.buf_count; b++) {
    uint32_t i, st = c->bufs[b];
    if (st != TOE_ABI_BUF_HOST && st != TOE_ABI_BUF_DEVICE && toe_abi_handle_lookup(c, st, &i) == 0)
      lent[i]++;
  }
  uint32_t open = 0;
  for (uint32_t i = 0; i < c->layout.max_handles; i++) {
    const struct toe_abi_hslot *s = &c->slots[i];
    if (s->state == TOE_ABI_HS_FREE)
      continue;
    open++;
    if (lent[i] != s->rx_lent)
      FAIL("slot %u: rx_lent %u but %u buffers lent for it", i, s->rx_lent, lent[i]);
  }
  if (open != c->handles_inuse)
    FAIL("%u open slots, handles_inuse %u", open, c->handles_inuse);
}

/* What the device does with an SQE the validation accepted, as far as the transport's state
 * goes (the engine's answer is taken to be success). */
static void apply(struct toe_abi_client *c, const struct toe_abi_sqe *e, uint32_t idx)
{
  struct toe_abi_hslot *s = idx < c->layout.max_handles ? &c->slots[idx] : NULL;
  uint32_t h;
  switch (e->opcode) {
  case TOE_ABI_OP_OPEN:
    if (toe_abi_handle_alloc(c, e->u.open.proto, e->u.open.family, &h) == 0) {
      uint32_t i2;
      if (toe_abi_handle_lookup(c, h, &i2) != 0)
        FAIL("a new handle %#x does not look up", h);
    }
    break;
  case TOE_ABI_OP_BIND:
    s->state = TOE_ABI_HS_BOUND;
    break;
  case TOE_ABI_OP_LISTEN:
    s->state = TOE_ABI_HS_LISTENING;
    break;
  case TOE_ABI_OP_CONNECT:
    s->state = s->proto == TOE_ABI_PROTO_TCP && (e->user_data & 1) ? TOE_ABI_HS_CONNECTING
                                                                   : TOE_ABI_HS_CONNECTED;
    break;
  case TOE_ABI_OP_ACCEPT:
    if (toe_abi_handle_alloc(c, TOE_ABI_PROTO_TCP, s->family, &h) == 0) {
      uint32_t i2;
      if (toe_abi_handle_lookup(c, h, &i2) == 0)
        c->slots[i2].state = TOE_ABI_HS_CONNECTED;
    }
    break;
  case TOE_ABI_OP_SHUTDOWN:
    s->flags |= (uint8_t)(e->u.shutdown.how & 3u);
    break;
  case TOE_ABI_OP_CLOSE:
    toe_abi_handle_free(c, idx);
    break;
  default:
    break;
  }
}

static void check_sqe(struct toe_abi_client *c, const struct toe_abi_sqe *e)
{
  uint32_t idx = 0x5a5a5a5au;
  int rc = toe_abi_validate_sqe(c, e, &idx);
  if (rc < 0) {
    struct toe_abi_cqe cqe;
    toe_abi_cqe_error(&cqe, e, rc);
    if (cqe.res != rc || cqe.user_data != e->user_data || cqe.opcode != e->opcode)
      FAIL("error completion does not carry the SQE's fields");
    if (toe_abi_client_strike(c, e->user_data & 0xffffffffu) && c->strikes <= c->strike_limit)
      FAIL("strike limit reported below the limit");
    return;
  }
  if (rc > 0)
    FAIL("validate returned %d", rc);
  bool names_sock = e->opcode != TOE_ABI_OP_NOP && e->opcode != TOE_ABI_OP_OPEN &&
                    e->opcode != TOE_ABI_OP_STATS && e->opcode != TOE_ABI_OP_ADOPT &&
                    e->opcode != TOE_ABI_OP_CAPTURE;
  if (names_sock) {
    uint32_t i2;
    if (idx >= c->layout.max_handles || toe_abi_handle_lookup(c, e->handle, &i2) != 0 || i2 != idx)
      FAIL("op %u accepted on handle %#x (index %u) that is not open", e->opcode, e->handle, idx);
  } else if (idx != UINT32_MAX && idx >= c->layout.max_handles) {
    FAIL("op %u accepted with index %u", e->opcode, idx);
  }
  if (e->opcode == TOE_ABI_OP_SEND &&
      (e->u.send.buf_off < c->layout.buf_off ||
       e->u.send.buf_off + e->u.send.len >
           c->layout.buf_off + (uint64_t)c->layout.buf_count * c->layout.buf_size))
    FAIL("SEND accepted outside the buffer area: off %llu len %u",
         (unsigned long long)e->u.send.buf_off, e->u.send.len);
  apply(c, e, idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct in in = {data, size};
  uint8_t m = 0, pages = 0, capmask = 0xff;
  if (take(&in, &m, 1) < 0)
    return 0;
  union {
    struct toe_abi_hello h;
    uint8_t b[HELLO_BUF];
  } hb;
  memset(&hb, 0, sizeof hb);
  (void)take(&in, hb.b, sizeof hb.b);
  (void)take(&in, &pages, 1);
  (void)take(&in, &capmask, 1);
  size_t hlen = 120u + (m & 15u);
  if (m & 0x80) {
    hb.h.magic = TOE_ABI_HELLO_MAGIC;
    hb.h.abi_major = TOE_ABI_MAJOR;
    hb.h.size = (uint32_t)hlen;
    hb.h.flags = 0;
    hb.h.reserved1 = 0;
    memset(hb.h.reserved2, 0, sizeof hb.h.reserved2);
    if (m & 0x40)
      hb.h.origin = 0;
  }

  struct toe_abi_limits lim;
  toe_abi_limits_default(&lim);
  lim.region_max = (uint64_t)(pages % MAX_REGION_PAGES + 1) * 4 * TOE_ABI_PAGE;
  lim.handles_max = 1024; /* the tables are walked after every record */
  lim.caps &= (uint64_t)capmask | ~0xffull;
  struct toe_abi_hello_reply rep;
  int rc = toe_abi_negotiate(&hb.h, hlen, &lim, 7, &rep);
  if (rc != rep.status)
    FAIL("negotiate returned %d, status %d", rc, rep.status);
  if (rc < 0) {
    if (toe_abi_reply_check(&rep, sizeof rep, hb.h.caps) != rc)
      FAIL("the host does not see the refusal %d", rc);
    return 0;
  }
  if (toe_abi_hello_check(&hb.h, hlen) != 0)
    FAIL("negotiated a hello that does not check");
  int hc = toe_abi_reply_check(&rep, sizeof rep, hb.h.caps);
  if (hc != 0)
    FAIL("the host refuses the device's own reply: %d", hc);
  const struct toe_abi_layout *L = &rep.layout;
  if (L->region_size > lim.region_max || (rep.caps & ~lim.caps) || (rep.caps & ~hb.h.caps))
    FAIL("reply beyond the limits: region %llu of %llu, caps %#llx",
         (unsigned long long)L->region_size, (unsigned long long)lim.region_max,
         (unsigned long long)rep.caps);

  uint8_t *region = malloc(L->region_size);
  struct toe_abi_hslot *slots = calloc(L->max_handles, sizeof *slots);
  uint32_t *bufs = calloc(L->buf_count, sizeof *bufs);
  uint32_t *ids = calloc(L->fq_entries, sizeof *ids);
  uint32_t *lent = calloc(L->max_handles, sizeof *lent);
  if (!region || !slots || !bufs || !ids || !lent)
    abort();
  toe_abi_region_init(region, L, rep.caps, rep.client_id, (uint32_t)0 - (m & 0x30u));
  struct toe_region_rings dev, host;
  if (toe_region_rings_device(&dev, region, L) != 0 || toe_region_rings_host(&host, region, L) != 0)
    FAIL("a fresh region's rings do not attach");
  struct toe_abi_client c;
  if (toe_abi_client_init(&c, L, rep.caps, slots, bufs) != 0)
    FAIL("client_init refuses a negotiated layout");

  uint8_t tag;
  while (take(&in, &tag, 1) == 0) {
    switch (tag % 7) {
    case 0: {
      struct toe_abi_sqe e;
      memset(&e, 0, sizeof e);
      (void)take(&in, &e, sizeof e);
      /* Half the time aim at a live handle, so state checks are reached. */
      if ((tag & 0x80) && c.handles_inuse) {
        for (uint32_t i = 0; i < L->max_handles; i++)
          if (slots[(i + e.handle) % L->max_handles].state != TOE_ABI_HS_FREE) {
            uint32_t j = (i + e.handle) % L->max_handles;
            e.handle = TOE_ABI_HANDLE(j, slots[j].gen);
            break;
          }
      }
      check_sqe(&c, &e);
      break;
    }
    case 1: {
      uint32_t id = u16(&in) % (L->buf_count + 2);
      uint32_t before = id < L->buf_count ? bufs[id] : 0;
      int r = toe_abi_fill_take(&c, id);
      int want = id >= L->buf_count             ? -TOE_EFAULT
                 : before == TOE_ABI_BUF_DEVICE ? -TOE_EALREADY
                                                : 0;
      if (r != want)
        FAIL("fill_take(%u) = %d, want %d", id, r, want);
      if (r == 0 && bufs[id] != TOE_ABI_BUF_DEVICE)
        FAIL("fill_take(%u) left the buffer the host's", id);
      break;
    }
    case 2: {
      uint32_t id = u16(&in) % L->buf_count;
      uint8_t si = 0;
      (void)take(&in, &si, 1);
      uint32_t j = si % L->max_handles;
      uint32_t h = TOE_ABI_HANDLE(j, slots[j].gen);
      bool ok = bufs[id] == TOE_ABI_BUF_DEVICE && slots[j].state != TOE_ABI_HS_FREE;
      if ((toe_abi_buf_lend(&c, id, h) == 0) != ok)
        FAIL("buf_lend(%u, %#x) disagrees with the tables", id, h);
      break;
    }
    case 3: {
      uint32_t id = u16(&in) % L->buf_count;
      bool ok = bufs[id] == TOE_ABI_BUF_DEVICE;
      if ((toe_abi_buf_give(&c, id) == 0) != ok)
        FAIL("buf_give(%u) disagrees with the table", id);
      break;
    }
    case 4: {
      /* The host returns ids on the fill ring; the device takes them as ses_take_fill does. */
      uint32_t n = u16(&in) % (L->fq_entries + 1);
      for (uint32_t i = 0; i < n; i++)
        ids[i] = u16(&in) % (L->buf_count + 1);
      int w = toe_ring_prod_write(&host.fq, ids, n);
      if (w < 0)
        break;
      toe_ring_publish(&host.fq);
      for (;;) {
        uint32_t got[64];
        int r = toe_ring_cons_read(&dev.fq, got, 64);
        if (r <= 0)
          break;
        for (int i = 0; i < r; i++)
          (void)toe_abi_fill_take(&c, got[i]);
        toe_ring_cons_release(&dev.fq, (uint32_t)r);
      }
      break;
    }
    case 5: {
      uint32_t p = u16(&in) | u16(&in) << 16;
      struct toe_ring *r = (tag & 0x80) ? &dev.sq : &dev.fq;
      r->ctl->prod = (tag & 0x40) ? r->local + (p % (2 * r->size + 2)) : p;
      uint8_t tmp[TOE_ABI_SQE_SIZE * 8];
      int k = toe_ring_cons_read(r, tmp, 8 * TOE_ABI_SQE_SIZE / r->esize);
      if (k > 0)
        toe_ring_cons_release(r, (uint32_t)k);
      if (k < 0 && toe_ring_cons_read(r, tmp, 1) != k)
        FAIL("a broken ring recovered");
      /* The host's view of the CQ: a consumer index it made up. */
      dev.cq.ctl->cons = p ^ 0x5555u;
      (void)toe_ring_prod_reserve(&dev.cq, 1);
      break;
    }
    case 6: {
      struct toe_abi_layout l2;
      memset(&l2, 0, sizeof l2);
      (void)take(&in, &l2, sizeof l2);
      if (toe_abi_layout_check(&l2) == 0) {
        struct toe_abi_client c2;
        static struct toe_abi_hslot s2[TOE_ABI_HANDLES_MAX];
        static uint32_t b2[TOE_ABI_BUF_COUNT_MAX];
        if (toe_abi_client_init(&c2, &l2, 0, s2, b2) != 0)
          FAIL("client_init refuses a checked layout");
      }
      struct toe_abi_hello_reply r2;
      memset(&r2, 0, sizeof r2);
      (void)take(&in, &r2, sizeof r2);
      (void)toe_abi_reply_check(&r2, sizeof r2, hb.h.caps);
      break;
    }
    }
    check_accounting(&c, lent);
  }
  free(lent);
  free(ids);
  free(bufs);
  free(slots);
  free(region);
  return 0;
}
