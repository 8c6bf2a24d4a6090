/*
 * The handshake of the transport ABI: checking a hello, choosing the region's geometry, checking
 * it, and initialising a region (docs/transport.md "Handshake" and "The region").
 */
#include "transport/abi_validate.h"
#include "transport/region.h"
#include "transport/ring.h"

#include <string.h>

/* Where the three ring control blocks sit in the first page (after the 256-byte header). */
#define SQ_CTL_OFF 1024u
#define CQ_CTL_OFF 1536u
#define FQ_CTL_OFF 2048u
#define FIRST_ARRAY_OFF TOE_ABI_PAGE

static bool is_pow2(uint64_t x)
{
  return x != 0 && (x & (x - 1)) == 0;
}

/* Smallest power of two >= x, for 1 <= x <= 2^31. */
static uint32_t round_pow2(uint32_t x)
{
  uint32_t p = 1;
  while (p < x)
    p <<= 1;
  return p;
}

static uint32_t clamp_u32(uint32_t v, uint32_t lo, uint32_t hi)
{
  return v < lo ? lo : v > hi ? hi : v;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
  return (v + a - 1) & ~(a - 1);
}

static bool all_zero(const void *p, size_t n)
{
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i])
      return false;
  return true;
}

void toe_abi_limits_default(struct toe_abi_limits *lim)
{
  lim->sq_max = TOE_ABI_SQ_MAX;
  lim->cq_max = TOE_ABI_CQ_MAX;
  lim->buf_count_max = TOE_ABI_BUF_COUNT_MAX;
  lim->buf_size_max = TOE_ABI_BUF_SIZE_MAX;
  lim->handles_max = TOE_ABI_HANDLES_MAX;
  lim->region_max = TOE_ABI_REGION_MAX;
  lim->caps = TOE_ABI_CAPS_1_7;
}

int toe_abi_hello_check(const struct toe_abi_hello *h, size_t len)
{
  if (!h || len < sizeof(*h) || h->magic != TOE_ABI_HELLO_MAGIC || h->size != len)
    return -TOE_EPROTO;
  if (h->abi_major != TOE_ABI_MAJOR)
    return -TOE_EPROTONOSUPPORT;
  if (h->flags || h->reserved1 || !all_zero(h->reserved2, sizeof(h->reserved2)))
    return -TOE_EINVAL;
  /* 1.2: the origin (0 = native is what every earlier client sends in this field). */
  if (h->origin > TOE_ABI_ORIGIN_MAX)
    return -TOE_EINVAL;
  /* Ring sizes and the buffer size are powers of two by definition: a client asking for
   * anything else has a bug worth reporting rather than silently rounding. */
  const uint32_t pow2_fields[] = {h->sq_entries, h->cq_entries, h->fq_entries, h->buf_size};
  for (size_t i = 0; i < sizeof(pow2_fields) / sizeof(pow2_fields[0]); i++)
    if (pow2_fields[i] && !is_pow2(pow2_fields[i]))
      return -TOE_EINVAL;
  return 0;
}

static bool limits_ok(const struct toe_abi_limits *lim)
{
  return is_pow2(lim->sq_max) && lim->sq_max >= TOE_ABI_RING_MIN && lim->sq_max <= TOE_ABI_SQ_MAX &&
         is_pow2(lim->cq_max) && lim->cq_max <= TOE_ABI_CQ_MAX && lim->cq_max >= 2 * lim->sq_max &&
         lim->buf_count_max >= TOE_ABI_BUF_COUNT_MIN &&
         lim->buf_count_max <= TOE_ABI_BUF_COUNT_MAX && is_pow2(lim->buf_size_max) &&
         lim->buf_size_max >= TOE_ABI_BUF_SIZE_MIN && lim->buf_size_max <= TOE_ABI_BUF_SIZE_MAX &&
         lim->handles_max >= 1 && lim->handles_max <= TOE_ABI_HANDLES_MAX &&
         lim->region_max <= TOE_ABI_REGION_MAX && lim->region_max % TOE_ABI_PAGE == 0;
}

int toe_abi_layout_compute(const struct toe_abi_hello *h, const struct toe_abi_limits *lim,
                           struct toe_abi_layout *out)
{
  memset(out, 0, sizeof(*out));
  if (!limits_ok(lim))
    return -TOE_EINVAL;

  uint32_t sq = h->sq_entries ? h->sq_entries : TOE_ABI_DEFAULT_SQ;
  sq = clamp_u32(sq, TOE_ABI_RING_MIN, lim->sq_max);
  uint32_t cq = h->cq_entries ? h->cq_entries : TOE_ABI_DEFAULT_CQ;
  /* Completions owed to taken SQEs are reserved in the CQ; at least as much room again is left
   * for events, so a full SQ never starves event delivery. */
  cq = clamp_u32(cq, 2 * sq, lim->cq_max); /* cq_max >= 2 * sq_max >= 2 * sq */
  /* 1.6: a client that takes any buffer size gets large ones by default (fewer SQEs, EV_DATAs and
   * doorbells per byte); an older client keeps the 8 KiB it may have assumed. */
  bool large = (h->caps & lim->caps & TOE_ABI_CAP_LARGE_BUFS) != 0;
  uint32_t bsize = h->buf_size ? h->buf_size
                   : large     ? TOE_ABI_DEFAULT_BUF_SIZE_LARGE
                               : TOE_ABI_DEFAULT_BUF_SIZE;
  bsize = clamp_u32(bsize, TOE_ABI_BUF_SIZE_MIN, lim->buf_size_max);
  uint32_t bcount = h->buf_count ? h->buf_count
                    : large      ? TOE_ABI_DEFAULT_BUF_COUNT_LARGE
                                 : TOE_ABI_DEFAULT_BUF_COUNT;
  bcount = clamp_u32(bcount, TOE_ABI_BUF_COUNT_MIN, lim->buf_count_max);
  /* The fill ring holds every buffer at once, so returning a buffer never waits for room. */
  uint32_t fq = round_pow2(h->fq_entries > bcount ? h->fq_entries : bcount);
  uint32_t handles = h->max_handles ? h->max_handles : TOE_ABI_DEFAULT_HANDLES;
  handles = clamp_u32(handles, 1, lim->handles_max);

  out->sq_entries = sq;
  out->cq_entries = cq;
  out->fq_entries = fq;
  out->max_handles = handles;
  out->sq_ctl_off = SQ_CTL_OFF;
  out->cq_ctl_off = CQ_CTL_OFF;
  out->fq_ctl_off = FQ_CTL_OFF;
  out->sq_off = FIRST_ARRAY_OFF;
  out->cq_off = align_up(out->sq_off + (uint64_t)sq * TOE_ABI_SQE_SIZE, TOE_ABI_PAGE);
  out->fq_off = align_up(out->cq_off + (uint64_t)cq * TOE_ABI_CQE_SIZE, TOE_ABI_PAGE);
  out->buf_off = align_up(out->fq_off + (uint64_t)fq * TOE_ABI_FQE_SIZE, TOE_ABI_PAGE);
  /* Where the region limit is small, the large default trades size for count: a session needs
   * enough buffers for its sockets more than it needs each to be 64 KiB. */
  if (large && !h->buf_size)
    while (bsize > TOE_ABI_DEFAULT_BUF_SIZE &&
           out->buf_off + (uint64_t)TOE_ABI_LARGE_MIN_BUFS * bsize > lim->region_max)
      bsize >>= 1;
  out->buf_size = bsize;
  if (out->buf_off + (uint64_t)TOE_ABI_BUF_COUNT_MIN * bsize > lim->region_max)
    return -TOE_ENOMEM;
  uint64_t fit = (lim->region_max - out->buf_off) / bsize;
  if (bcount > fit)
    bcount = (uint32_t)fit;
  out->buf_count = bcount;
  /* region_max is a whole number of pages, so rounding up to a page cannot pass it. */
  out->region_size = align_up(out->buf_off + (uint64_t)bcount * bsize, TOE_ABI_PAGE);
  return toe_abi_layout_check(out);
}

struct part {
  uint64_t off, len, align;
};

int toe_abi_layout_check(const struct toe_abi_layout *l)
{
  if (!l || l->reserved || l->region_size > TOE_ABI_REGION_MAX ||
      l->region_size % TOE_ABI_PAGE != 0)
    return -TOE_EINVAL;
  if (!is_pow2(l->sq_entries) || l->sq_entries < TOE_ABI_RING_MIN || l->sq_entries > TOE_ABI_SQ_MAX)
    return -TOE_EINVAL;
  if (!is_pow2(l->cq_entries) || l->cq_entries < 2 * l->sq_entries ||
      l->cq_entries > TOE_ABI_CQ_MAX)
    return -TOE_EINVAL;
  if (l->buf_count < TOE_ABI_BUF_COUNT_MIN || l->buf_count > TOE_ABI_BUF_COUNT_MAX)
    return -TOE_EINVAL;
  if (!is_pow2(l->fq_entries) || l->fq_entries < l->buf_count)
    return -TOE_EINVAL;
  if (!is_pow2(l->buf_size) || l->buf_size < TOE_ABI_BUF_SIZE_MIN ||
      l->buf_size > TOE_ABI_BUF_SIZE_MAX)
    return -TOE_EINVAL;
  if (l->max_handles < 1 || l->max_handles > TOE_ABI_HANDLES_MAX)
    return -TOE_EINVAL;

  /* Every length below is bounded (at most 2^32 bytes) and every offset is compared with the
   * region size before it is added to, so nothing here can overflow 64 bits. */
  const struct part parts[] = {
      {0, sizeof(struct toe_abi_region_hdr), 1},
      {l->sq_ctl_off, sizeof(struct toe_abi_ring_ctl), TOE_ABI_CACHELINE},
      {l->cq_ctl_off, sizeof(struct toe_abi_ring_ctl), TOE_ABI_CACHELINE},
      {l->fq_ctl_off, sizeof(struct toe_abi_ring_ctl), TOE_ABI_CACHELINE},
      {l->sq_off, (uint64_t)l->sq_entries * TOE_ABI_SQE_SIZE, TOE_ABI_PAGE},
      {l->cq_off, (uint64_t)l->cq_entries * TOE_ABI_CQE_SIZE, TOE_ABI_PAGE},
      {l->fq_off, (uint64_t)l->fq_entries * TOE_ABI_FQE_SIZE, TOE_ABI_PAGE},
      {l->buf_off, (uint64_t)l->buf_count * l->buf_size, TOE_ABI_PAGE},
  };
  const size_t n = sizeof(parts) / sizeof(parts[0]);
  for (size_t i = 0; i < n; i++) {
    if (parts[i].off % parts[i].align != 0 || parts[i].off > l->region_size ||
        parts[i].len > l->region_size - parts[i].off)
      return -TOE_EINVAL;
    for (size_t j = 0; j < i; j++) /* [a, a + la) and [b, b + lb) overlap */
      if (parts[i].off < parts[j].off + parts[j].len && parts[j].off < parts[i].off + parts[i].len)
        return -TOE_EINVAL;
  }
  return 0;
}

int toe_abi_negotiate(const struct toe_abi_hello *h, size_t len, const struct toe_abi_limits *lim,
                      uint32_t client_id, struct toe_abi_hello_reply *rep)
{
  memset(rep, 0, sizeof(*rep));
  rep->magic = TOE_ABI_REPLY_MAGIC;
  rep->abi_major = TOE_ABI_MAJOR;
  rep->abi_minor = TOE_ABI_MINOR;
  rep->size = sizeof(*rep);
  rep->client_id = client_id;

  int rc = toe_abi_hello_check(h, len);
  if (rc == 0) {
    if (h->abi_minor < rep->abi_minor)
      rep->abi_minor = h->abi_minor;
    /* Unknown bits are ignored, not refused: a newer client offers features this device lacks
     * and simply does not get them. */
    rep->caps = h->caps & lim->caps;
    if (!(rep->caps & (TOE_ABI_CAP_TCP | TOE_ABI_CAP_UDP)))
      rc = -TOE_EPROTONOSUPPORT;
  }
  if (rc == 0)
    rc = toe_abi_layout_compute(h, lim, &rep->layout);
  if (rc < 0) {
    rep->caps = 0;
    memset(&rep->layout, 0, sizeof(rep->layout));
    rep->status = rc;
    return rc;
  }
  rep->nfds = TOE_ABI_NFDS(rep->caps);
  return 0;
}

int toe_abi_reply_check(const struct toe_abi_hello_reply *rep, size_t len, uint64_t offered_caps)
{
  if (!rep || len < sizeof(*rep) || rep->magic != TOE_ABI_REPLY_MAGIC || rep->size != len)
    return -TOE_EPROTO;
  if (rep->abi_major != TOE_ABI_MAJOR)
    return -TOE_EPROTONOSUPPORT;
  if (rep->status > 0)
    return -TOE_EPROTO;
  if (rep->status < 0)
    return rep->status;
  if ((rep->caps & ~offered_caps) || rep->nfds != TOE_ABI_NFDS(rep->caps))
    return -TOE_EPROTO;
  return toe_abi_layout_check(&rep->layout);
}

void toe_abi_region_init(void *region, const struct toe_abi_layout *layout, uint64_t caps,
                         uint32_t client_id, uint32_t ring_start)
{
  memset(region, 0, layout->region_size);
  toe_region_init_fresh(region, layout, caps, client_id, ring_start);
}
