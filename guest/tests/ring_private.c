// SPDX-License-Identifier: MIT
/*
 * ring_private.c - the guest makes its running queue's ring page private.
 *
 * With --device-io map the device holds the rings long-term: the
 * conversion fails with -EBUSY and nothing else happens.  With copy (the
 * only way on hugetlbfs, where a long-term pin would refuse every
 * conversion in the rings' huge page) the device holds nothing between
 * accesses: the conversion succeeds, and the next request finds the rings
 * unreachable - a driver error: the device sets NEEDS_RESET, completes
 * nothing, and works again once the driver resets it and sets up rings in
 * shared memory.
 */
#include "rt.h"
#include "virtio_blk.h"

static struct vblk blk;

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint8_t *buf = alloc_pages(1);
	uint32_t status = 0;
	uint16_t used;
	long r;

	(void)cpu, (void)ncpus, (void)ram_size;
	CHECK(vblk_init(&blk, VIRTIO_BLK_MMIO) == 0);
	CHECK(share(buf, PAGE_SIZE, NULL) == 0);
	memset(buf, 0xcd, VIRTIO_BLK_SECTOR);
	CHECK(vblk_rw(&blk, 0, VIRTIO_BLK_T_OUT, 7, buf, VIRTIO_BLK_SECTOR) == VIRTIO_BLK_S_OK);

	/* descriptors, available and used ring: the first page of the driver's two */
	r = map_gpa_range((uintptr_t)blk.desc, 1, HC_MAP_GPA_RANGE_ENCRYPTED);
	printf("ring_private: ring page made private: %ld\n", r);
	if (r == -EBUSY)
		return 0; /* held long-term */
	CHECK(r == 0);

	used = __atomic_load_n(&blk.used->idx, __ATOMIC_ACQUIRE);
	memset(buf, 0xee, VIRTIO_BLK_SECTOR);
	vblk_submit(&blk, 0, VIRTIO_BLK_T_OUT, 8, buf, VIRTIO_BLK_SECTOR);
	/* the device finds the ring at its next look: the notify, or its worker's poll */
	for (int i = 0; i < 100000 && !(status & VIRTIO_STATUS_NEEDS_RESET); i++)
		status = blk.mmio[VIRTIO_MMIO_STATUS / 4];
	printf("ring_private: device status 0x%x, %s; chains returned since: %u\n", status,
	       status & VIRTIO_STATUS_NEEDS_RESET ? "needs reset" : "no reset asked",
	       (uint16_t)(__atomic_load_n(&blk.used->idx, __ATOMIC_ACQUIRE) - used));

	/* vblk_init() resets the device and sets up new rings in pages it shares */
	CHECK(vblk_init(&blk, VIRTIO_BLK_MMIO) == 0);
	printf("ring_private: after a reset, a write: %s\n",
	       vblk_rw(&blk, 0, VIRTIO_BLK_T_OUT, 9, buf, VIRTIO_BLK_SECTOR) == VIRTIO_BLK_S_OK
		       ? "ok"
		       : "failed");
	return 0;
}
