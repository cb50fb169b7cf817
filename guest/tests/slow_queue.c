// SPDX-License-Identifier: MIT
/*
 * slow_queue.c - queue a write in every slot, make sure the device has
 * taken them all, and end the VM without waiting for any: by returning,
 * or, with more than one vCPU, by spinning until --timeout ends it.  Run
 * with a long --disk-latency: the VM's end must not wait for the queue.
 * Slot s writes sector 32 + s with bytes 0xc5.
 */
#include "rt.h"
#include "virtio_blk.h"

#define FIRST 32

static struct vblk blk;

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint8_t *buf;

	(void)ram_size;
	if (cpu != 0)
		return 0;
	buf = alloc_pages(VBLK_SLOTS * VIRTIO_BLK_SECTOR / PAGE_SIZE);
	CHECK(vblk_init(&blk, VIRTIO_BLK_MMIO) == 0);
	CHECK(share(buf, VBLK_SLOTS * VIRTIO_BLK_SECTOR, NULL) == 0);
	memset(buf, 0xc5, VBLK_SLOTS * VIRTIO_BLK_SECTOR);
	for (int s = 0; s < VBLK_SLOTS; s++)
		vblk_submit(&blk, s, VIRTIO_BLK_T_OUT, FIRST + s, buf + s * VIRTIO_BLK_SECTOR,
			    VIRTIO_BLK_SECTOR);
	/* the device is busy and asked not to be told: tell it anyway, so it takes them all */
	blk.mmio[VIRTIO_MMIO_QUEUE_NOTIFY / 4] = 0;
	printf("slow_queue: %d writes queued, %s\n", VBLK_SLOTS,
	       ncpus > 1 ? "spinning" : "exiting");
	while (ncpus > 1)
		cpu_relax();
	return 0;
}
