// SPDX-License-Identifier: MIT
/*
 * inflight.c - a buffer in flight in virtio-blk cannot be made private:
 * -EAGAIN while the device holds it, success once the request completes.
 * Run with --disk-latency so that the request stays in flight.  The host
 * checks what converting a ring page answered, which depends on
 * --device-io.
 */
#include "rt.h"
#include "virtio_blk.h"

static struct vblk blk;

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint64_t *buf = alloc_pages(2);
	long r;

	(void)cpu, (void)ncpus, (void)ram_size;
	CHECK(vblk_init(&blk, VIRTIO_BLK_MMIO) == 0);
	CHECK(share(buf, 2 * PAGE_SIZE, NULL) == 0);
	buf[0] = 0xfeedface;
	vblk_submit(&blk, 0, VIRTIO_BLK_T_OUT, 0, buf, 2 * PAGE_SIZE);
	r = map_gpa_range((uintptr_t)buf, 2, HC_MAP_GPA_RANGE_ENCRYPTED);
	printf("inflight: converting the in-flight buffer: %ld\n", r);
	CHECK(r == -EAGAIN);
	CHECK(map_gpa_range((uintptr_t)buf + PAGE_SIZE, 1, HC_MAP_GPA_RANGE_ENCRYPTED) == -EAGAIN);
	CHECK(vblk_wait(&blk, 0) == VIRTIO_BLK_S_OK);
	r = map_gpa_range((uintptr_t)buf, 2, HC_MAP_GPA_RANGE_ENCRYPTED);
	printf("inflight: after completion: %ld\n", r);
	CHECK(r == 0);
	CHECK(buf[0] == 0xfeedface);
	/*
	 * The rings are the device's while the queue runs: long-term pinned
	 * (-EBUSY) with --device-io map; with copy they are read at each access
	 * and nothing holds them (0: the queue is then broken, ring_private.c).
	 */
	r = map_gpa_range((uintptr_t)blk.desc, 1, HC_MAP_GPA_RANGE_ENCRYPTED);
	printf("inflight: converting a ring page: %ld\n", r);
	CHECK(r == -EBUSY || r == 0);
	return 0;
}
