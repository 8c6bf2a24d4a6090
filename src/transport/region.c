/*
 * The session region's set-up (region.h).
 */
#include "transport/region.h"

#include "toe/errno.h"

void toe_region_init_fresh(void *region, const struct toe_abi_layout *layout, uint64_t caps,
                           uint32_t client_id, uint32_t ring_start)
{
  uint8_t *base = region;
  struct toe_abi_region_hdr *hdr = region;
  hdr->magic = TOE_ABI_REGION_MAGIC;
  hdr->abi_major = TOE_ABI_MAJOR;
  hdr->abi_minor = TOE_ABI_MINOR;
  hdr->hdr_size = sizeof(*hdr);
  hdr->client_id = client_id;
  hdr->caps = caps;
  hdr->layout = *layout;
  hdr->dev_state = TOE_ABI_DEV_RUNNING;
  toe_ring_ctl_reset((struct toe_abi_ring_ctl *)(void *)(base + layout->sq_ctl_off), ring_start);
  toe_ring_ctl_reset((struct toe_abi_ring_ctl *)(void *)(base + layout->cq_ctl_off), ring_start);
  toe_ring_ctl_reset((struct toe_abi_ring_ctl *)(void *)(base + layout->fq_ctl_off), ring_start);
}

static struct toe_abi_ring_ctl *ctl_at(uint8_t *region, uint64_t off)
{
  return (struct toe_abi_ring_ctl *)(void *)(region + off);
}

int toe_region_rings_device(struct toe_region_rings *r, uint8_t *region,
                            const struct toe_abi_layout *l)
{
  int rc = toe_ring_init_cons(&r->sq, ctl_at(region, l->sq_ctl_off), region + l->sq_off,
                              l->sq_entries, TOE_ABI_SQE_SIZE);
  if (rc == 0)
    rc = toe_ring_init_prod(&r->cq, ctl_at(region, l->cq_ctl_off), region + l->cq_off,
                            l->cq_entries, TOE_ABI_CQE_SIZE);
  if (rc == 0)
    rc = toe_ring_init_cons(&r->fq, ctl_at(region, l->fq_ctl_off), region + l->fq_off,
                            l->fq_entries, TOE_ABI_FQE_SIZE);
  return rc < 0 ? -TOE_EPROTO : 0;
}

int toe_region_rings_host(struct toe_region_rings *r, uint8_t *region,
                          const struct toe_abi_layout *l)
{
  int rc = toe_ring_init_prod(&r->sq, ctl_at(region, l->sq_ctl_off), region + l->sq_off,
                              l->sq_entries, TOE_ABI_SQE_SIZE);
  if (rc == 0)
    rc = toe_ring_init_cons(&r->cq, ctl_at(region, l->cq_ctl_off), region + l->cq_off,
                            l->cq_entries, TOE_ABI_CQE_SIZE);
  if (rc == 0)
    rc = toe_ring_init_prod(&r->fq, ctl_at(region, l->fq_ctl_off), region + l->fq_off,
                            l->fq_entries, TOE_ABI_FQE_SIZE);
  return rc < 0 ? -TOE_EPROTO : 0;
}
