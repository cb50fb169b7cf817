// SPDX-License-Identifier: MIT
/*
 * blk.c - benchmark guest: sequential 1 MiB virtio-blk writes, then reads,
 * through shared bounce buffers: sixteen requests in flight (a queue depth
 * streaming drivers use), refilled eight at a time.  Prints
 * "blk <bytes> <write cycles> <read cycles>".
 */
#include "rt.h"
#include "virtio_blk.h"

#define REQ (1u << 20)
#define BATCH 8     /* requests published together */
#define INFLIGHT 16 /* two batches: the device works on one while the guest refills the other */
#define TOTAL (64ULL << 20)

static struct vblk blk;

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

/* Stream TOTAL bytes from sector 0, INFLIGHT requests in flight. */
static uint64_t stream(uint32_t type, uint8_t *buf[INFLIGHT])
{
	const uint64_t step = REQ / VIRTIO_BLK_SECTOR;
	uint64_t t0 = rdtsc(), sector = 0;
	int s;

	for (s = 0; s < INFLIGHT; s++, sector += step)
		vblk_submit(&blk, s, type, sector, buf[s], REQ);
	for (s = 0; sector < TOTAL / VIRTIO_BLK_SECTOR; sector += BATCH * step, s = (s + BATCH) % INFLIGHT) {
		for (int i = s; i < s + BATCH; i++) /* the batch's previous requests */
			CHECK(vblk_wait(&blk, i) == VIRTIO_BLK_S_OK);
		vblk_resubmit_batch(&blk, s, BATCH, sector, step);
	}
	for (s = 0; s < INFLIGHT; s++)
		CHECK(vblk_wait(&blk, s) == VIRTIO_BLK_S_OK);
	return rdtsc() - t0;
}

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint8_t *buf[INFLIGHT];
	uint64_t w, r;

	(void)ncpus, (void)ram_size;
	if (cpu)
		return 0;
	CHECK(vblk_init(&blk, VIRTIO_BLK_MMIO) == 0);
	CHECK(blk.capacity * VIRTIO_BLK_SECTOR >= TOTAL);
	for (int i = 0; i < INFLIGHT; i++) {
		buf[i] = alloc_pages(REQ / PAGE_SIZE);
		CHECK(share(buf[i], REQ, NULL) == 0);
	}
	/*
	 * Warm up: the first touches allocate.  Both ways: a device that
	 * copies (--device-io copy) reads holes as zeros without allocating,
	 * and would allocate in the timed reads instead.
	 */
	stream(VIRTIO_BLK_T_OUT, buf);
	stream(VIRTIO_BLK_T_IN, buf);
	w = stream(VIRTIO_BLK_T_OUT, buf);
	r = stream(VIRTIO_BLK_T_IN, buf);
	printf("blk %llu %llu %llu\n", (unsigned long long)TOTAL, (unsigned long long)w,
	       (unsigned long long)r);
	return 0;
}
