/*
 * The session region's set-up, shared by both sides of the transport and free of OS calls
 * (docs/transport.md "The region", "Region and doorbell kinds"): the device writes a new region's
 * header and ring indices, and each side attaches its three rings. What backs the region and the
 * doorbells (a memfd and eventfds, a POSIX shm object and pipes, device memory) is the OS layer's
 * business (transport/os/region_os.h); a firmware or DriverKit device links only this part.
 */
#ifndef TOE_TRANSPORT_REGION_H
#define TOE_TRANSPORT_REGION_H

#include "toe/abi.h"
#include "transport/ring.h"

#include <stdint.h>

/*
 * Writes the header and the three ring control blocks of a region that already reads as zeros
 * (a new memfd, shm object or zeroed device memory). Unlike toe_abi_region_init it does not clear
 * the region, so that a large region is not made resident all at once. `ring_start` is every
 * ring's initial index (0, or near UINT32_MAX in tests of index wrap-around).
 */
void toe_region_init_fresh(void *region, const struct toe_abi_layout *layout, uint64_t caps,
                           uint32_t client_id, uint32_t ring_start);

/* The three rings of a session, as one side sees them. */
struct toe_region_rings {
  struct toe_ring sq, cq, fq;
};

/*
 * Attaches the device's ends: consumer of the SQ and the FQ, producer of the CQ. `region` is the
 * device's mapping of a region laid out as `layout` (checked by toe_abi_layout_check).
 * Returns 0, or -TOE_EPROTO if the ring control blocks do not describe empty rings of the
 * layout's sizes (a host wrote into them before the device attached).
 */
int toe_region_rings_device(struct toe_region_rings *r, uint8_t *region,
                            const struct toe_abi_layout *layout);

/* Attaches the host's ends: producer of the SQ and the FQ, consumer of the CQ. Returns 0 or
 * -TOE_EPROTO (as toe_region_rings_device). */
int toe_region_rings_host(struct toe_region_rings *r, uint8_t *region,
                          const struct toe_abi_layout *layout);

#endif
