/*
 * The device's regions on Linux (region_os.h): a sealed memfd for both kinds, with eventfd
 * doorbells (1.0) or the POSIX ones (1.3, shared with region_posix.c).
 *
 * toed backs the POSIX kind with a memfd as well: the host maps any mappable descriptor, and the
 * seals keep a host from shrinking the region under the device (SIGBUS in toed), which an shm
 * object cannot promise.
 */
#define _GNU_SOURCE

#include "toe/errno.h"
#include "transport/os/region_os.h"
#include "transport/region.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

int toe_region_os_posix_bells(struct toe_region_os *r); /* region_posix.c */

int toe_region_os_create_sealed(struct toe_region_os *r, const struct toe_abi_layout *layout,
                                uint64_t caps, uint32_t client_id)
{
  toe_region_os_clear(r);
  int rc = 0;
  int mfd = memfd_create("toekit-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mfd < 0)
    return errno ? -errno : -TOE_ENOMEM;
  r->host[TOE_ABI_FD_REGION] = mfd;
  if (ftruncate(mfd, (off_t)layout->region_size) < 0)
    rc = -errno;
  if (rc == 0) {
    void *m = mmap(NULL, (size_t)layout->region_size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (m == MAP_FAILED) {
      rc = -errno;
    } else {
      r->region = m;
      r->region_size = (size_t)layout->region_size;
    }
  }
  /* Without the seals the host could shrink the file and make the device fault on its next
   * access. */
  if (rc == 0 && fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
    rc = -errno;
  if (rc == 0 && (caps & TOE_ABI_CAP_POSIX_BELLS)) {
    rc = toe_region_os_posix_bells(r);
  } else if (rc == 0) {
    r->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r->notify = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->kick < 0 || r->notify < 0)
      rc = -errno;
    r->host[TOE_ABI_FD_KICK] = r->kick;
    r->host[TOE_ABI_FD_NOTIFY] = r->notify;
  }
  if (rc < 0) {
    toe_region_os_free(r);
    return rc;
  }
  toe_region_init_fresh(r->region, layout, caps, client_id, 0);
  r->nhost = TOE_ABI_NFDS(caps);
  return 0;
}
