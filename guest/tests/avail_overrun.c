// SPDX-License-Identifier: MIT
/*
 * avail_overrun.c - a driver that publishes avail->idx 65,535 entries
 * ahead of the device on its 64-entry queue.  The device must flag
 * NEEDS_RESET and take none of them.  Every ring entry names the same
 * valid chain, an OUT of sector 100, so a device that took them would
 * write the disk 65,535 times.  Rung again, the device must still take
 * nothing; reset and set up again, it must work (a write of sector 101).
 * Then the guest spins: only --timeout ends the VM, and that must not wait
 * for the chains.
 */
#include "rt.h"
#include "virtio_blk.h"

#define OVERRUN 65535

static struct vblk blk;

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint8_t *buf = alloc_pages(1);
	uint32_t status;

	(void)cpu, (void)ncpus, (void)ram_size;
	CHECK(vblk_init(&blk, VIRTIO_BLK_MMIO) == 0);
	CHECK(share(buf, PAGE_SIZE, NULL) == 0);
	memset(buf, 0xab, VIRTIO_BLK_SECTOR);
	/* the queue works: sector 99 */
	CHECK(vblk_rw(&blk, 0, VIRTIO_BLK_T_OUT, 99, buf, VIRTIO_BLK_SECTOR) == VIRTIO_BLK_S_OK);

	blk.slot[0].hdr.sector = 100;
	for (uint16_t i = 0; i < blk.qsize; i++)
		blk.avail->ring[i] = 0;
	__atomic_store_n(&blk.avail->idx, (uint16_t)(blk.avail_idx + OVERRUN), __ATOMIC_RELEASE);
	blk.mmio[VIRTIO_MMIO_QUEUE_NOTIFY / 4] = 0;

	status = blk.mmio[VIRTIO_MMIO_STATUS / 4];
	printf("avail_overrun: %u ahead on a queue of %u: device status 0x%x, %s\n", OVERRUN,
	       blk.qsize, status,
	       status & VIRTIO_STATUS_NEEDS_RESET ? "needs reset" : "no reset asked");
	blk.mmio[VIRTIO_MMIO_QUEUE_NOTIFY / 4] = 0;
	printf("avail_overrun: rung again, chains returned: %u\n",
	       __atomic_load_n(&blk.used->idx, __ATOMIC_ACQUIRE));

	/* vblk_init() resets the device first, and fails if it still needs a reset */
	CHECK(vblk_init(&blk, VIRTIO_BLK_MMIO) == 0);
	printf("avail_overrun: after a reset, a write: %s\n",
	       vblk_rw(&blk, 0, VIRTIO_BLK_T_OUT, 101, buf, VIRTIO_BLK_SECTOR) == VIRTIO_BLK_S_OK
		       ? "ok"
		       : "failed");
	for (;;)
		cpu_relax();
}
