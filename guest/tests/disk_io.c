// SPDX-License-Identifier: MIT
/*
 * disk_io.c - write sectors 64..79 with a known pattern through a shared
 * bounce buffer, read them back and compare; the host then checks the
 * image file.  Sector s holds 64-bit words (s << 32 | i).
 */
#include "rt.h"
#include "virtio_blk.h"

#define SECTORS 16
#define FIRST 64

static struct vblk blk;

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint64_t *buf = alloc_pages(2);
	const uint64_t words = SECTORS * VIRTIO_BLK_SECTOR / 8;

	(void)cpu, (void)ncpus, (void)ram_size;
	CHECK(vblk_init(&blk, VIRTIO_BLK_MMIO) == 0);
	CHECK(blk.capacity >= FIRST + SECTORS);
	CHECK(share(buf, 2 * PAGE_SIZE, NULL) == 0);
	for (uint64_t i = 0; i < words; i++)
		buf[i] = (FIRST + i / 64) << 32 | (i % 64);
	CHECK(vblk_rw(&blk, 0, VIRTIO_BLK_T_OUT, FIRST, buf, SECTORS * VIRTIO_BLK_SECTOR) ==
	      VIRTIO_BLK_S_OK);
	CHECK(vblk_rw(&blk, 0, VIRTIO_BLK_T_FLUSH, 0, NULL, 0) == VIRTIO_BLK_S_OK);
	memset(buf, 0, SECTORS * VIRTIO_BLK_SECTOR);
	CHECK(vblk_rw(&blk, 0, VIRTIO_BLK_T_IN, FIRST, buf, SECTORS * VIRTIO_BLK_SECTOR) ==
	      VIRTIO_BLK_S_OK);
	for (uint64_t i = 0; i < words; i++)
		CHECK(buf[i] == ((FIRST + i / 64) << 32 | (i % 64)));
	/* past the end of the disk */
	CHECK(vblk_rw(&blk, 0, VIRTIO_BLK_T_IN, blk.capacity, buf, VIRTIO_BLK_SECTOR) ==
	      VIRTIO_BLK_S_IOERR);
	printf("disk_io: %llu sectors, round trip ok\n", (unsigned long long)blk.capacity);
	return 0;
}
