// SPDX-License-Identifier: MIT
/*
 * private_buffer.c - a request whose buffer is private, outside RAM or in
 * MMIO fails with VIRTIO_BLK_S_IOERR, and the device neither reads nor
 * writes it: the host checks the disk image is unchanged.
 */
#include "rt.h"
#include "virtio_blk.h"

static struct vblk blk;

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint64_t *secret = alloc_pages(1), *shared = alloc_pages(1);

	(void)cpu, (void)ncpus;
	CHECK(vblk_init(&blk, VIRTIO_BLK_MMIO) == 0);
	CHECK(unshare(secret, PAGE_SIZE, NULL) == 0);
	for (int i = 0; i < 512; i++)
		secret[i] = 0x5ec4e75ec4e7ULL;
	CHECK(vblk_rw(&blk, 0, VIRTIO_BLK_T_OUT, 0, secret, PAGE_SIZE) == VIRTIO_BLK_S_IOERR);
	CHECK(vblk_rw(&blk, 0, VIRTIO_BLK_T_IN, 0, secret, PAGE_SIZE) == VIRTIO_BLK_S_IOERR);
	CHECK(secret[0] == 0x5ec4e75ec4e7ULL); /* not overwritten by the read */
	CHECK(vblk_rw(&blk, 0, VIRTIO_BLK_T_OUT, 8, (void *)(uintptr_t)MMIO_BASE, 512) ==
	      VIRTIO_BLK_S_IOERR);
	CHECK(vblk_rw(&blk, 0, VIRTIO_BLK_T_OUT, 8, (void *)(uintptr_t)(HIGH_RAM_BASE + ram_size),
		      512) == VIRTIO_BLK_S_IOERR);
	/* a shared buffer still works afterwards */
	CHECK(share(shared, PAGE_SIZE, NULL) == 0);
	CHECK(vblk_rw(&blk, 0, VIRTIO_BLK_T_IN, 0, shared, PAGE_SIZE) == VIRTIO_BLK_S_OK);
	printf("private_buffer: refused with IOERR\n");
	return 0;
}
