// SPDX-License-Identifier: MIT
/*
 * dirty_pattern.c - a known pattern of writes for gmem-vmm's dirty
 * tracking (--track): the guest writes private and shared pages, and the
 * virtio-blk device writes others (the guest's reads, and the used ring
 * and status bytes), in three phases.  Each phase starts after reading how
 * many rounds the VMM has collected (port PORT_DIRTY_ROUNDS), and ends by
 * waiting until two more are, so that the next phase's writes come after
 * a round that took this one's.  Every page written is printed as
 *
 *     dirty_pattern: wrote KIND 0xGPA PAGES after round R
 *
 * and some round numbered above R must report it (phase 3 writes again
 * pages phase 1 wrote: a tracker that forgot to protect them again after
 * reporting them would miss it).  Pages the guest allocates and never
 * writes, nor has the device write, are printed as
 *
 *     dirty_pattern: untouched KIND 0xGPA PAGES
 *
 * and a round that reports one is a false positive.  The disk must hold
 * byte s in sector s (the device's reads are checked).  With more vCPUs,
 * the others keep writing four pages each (two private, two shared) from
 * the first phase to the end.
 */
#include "rt.h"
#include "virtio_blk.h"

#define NONE 0xffffffffu   /* the port without tracking */
#define WAIT_POLLS 2000000 /* about 15 s of port reads: then go on without the round */
#define HAMMER 4           /* pages each other vCPU writes */
#define DISK_SECTOR 8      /* where the reads start */

static struct vblk blk;
static uint64_t *volatile hammer;
static volatile int stop;

static uint32_t rounds(void)
{
	return inl(PORT_DIRTY_ROUNDS);
}

/* Until the VMM has collected two rounds after now. */
static void settle(void)
{
	uint32_t want = rounds() + 2, n = 0;

	for (uint64_t i = 0; i < WAIT_POLLS && (n = rounds()) < want; i++)
		cpu_relax();
	if (n < want)
		printf("dirty_pattern: round %u never came (%u)\n", want, n);
}

static char *page(char *base, int i)
{
	return base + (uint64_t)i * PAGE_SIZE;
}

static void say(const char *what, const char *kind, const void *p, uint64_t pages, uint32_t after)
{
	if (after == NONE)
		printf("dirty_pattern: %s %s 0x%llx %llu\n", what, kind,
		       (unsigned long long)(uintptr_t)p, (unsigned long long)pages);
	else
		printf("dirty_pattern: %s %s 0x%llx %llu after round %u\n", what, kind,
		       (unsigned long long)(uintptr_t)p, (unsigned long long)pages, after);
}

/* Write a word into each page listed, and say so. */
static void write_pages(const char *kind, char *base, const int *idx, int n, uint32_t after)
{
	for (int i = 0; i < n; i++) {
		*(volatile uint64_t *)(page(base, idx[i]) + 8 * (uint64_t)idx[i]) = 0xd1e7ULL << 16 | after;
		say("wrote", kind, page(base, idx[i]), 1, after);
	}
}

/* A device read of pages pages of disk into base; the device writes them, the ring and a status byte. */
static void device_read(char *base, int first, int pages, uint32_t after)
{
	uint64_t sector = DISK_SECTOR + (uint64_t)first * (PAGE_SIZE / VIRTIO_BLK_SECTOR);

	CHECK(vblk_rw(&blk, 0, VIRTIO_BLK_T_IN, sector, page(base, first),
		      (uint32_t)(pages * PAGE_SIZE)) == VIRTIO_BLK_S_OK);
	CHECK(*(volatile uint8_t *)page(base, first) == (uint8_t)sector);
	say("wrote", "device", page(base, first), (uint64_t)pages, after);
	say("wrote", "device", (void *)((uintptr_t)blk.used & ~(PAGE_SIZE - 1)), 1, after);
	say("wrote", "device", (void *)((uintptr_t)&blk.slot[0] & ~(PAGE_SIZE - 1)), 1, after);
}

static int hammer_on(int cpu)
{
	volatile uint64_t *mine;

	barrier(); /* vCPU 0 has set them up */
	mine = hammer + (uint64_t)(cpu - 1) * HAMMER * (PAGE_SIZE / 8);
	for (uint64_t n = 0; !stop; n++)
		for (int i = 0; i < HAMMER; i++)
			mine[i * (PAGE_SIZE / 8) + 1] = n;
	barrier(); /* vCPU 0 prints after every write */
	return 0;
}

int main(int cpu, int ncpus, uint64_t ram_size)
{
	static const int p1[] = { 0, 2 }, s1[] = { 1, 3 }, all[] = { 0, 1, 2, 3 };
	static const int p2[] = { 4, 6 }, s2[] = { 5, 7 }, p3[] = { 0 }, s3[] = { 1 };
	char *priv, *shar, *conv, *disk;
	uint32_t r, start;

	(void)ram_size;
	if (cpu)
		return hammer_on(cpu);
	priv = alloc_pages(8);
	shar = alloc_pages(8);
	conv = alloc_pages(4);
	disk = alloc_pages(8);
	hammer = alloc_pages(HAMMER * (uint64_t)(ncpus - 1));
	CHECK(vblk_init(&blk, VIRTIO_BLK_MMIO) == 0);
	CHECK(unshare(priv, 8 * PAGE_SIZE, NULL) == 0);
	CHECK(share(shar, 8 * PAGE_SIZE, NULL) == 0);
	CHECK(share(conv, 4 * PAGE_SIZE, NULL) == 0);
	CHECK(share(disk, 8 * PAGE_SIZE, NULL) == 0);
	for (int c = 1; c < ncpus; c++) {
		char *h = (char *)hammer + (uint64_t)(c - 1) * HAMMER * PAGE_SIZE;

		CHECK(unshare(h, 2 * PAGE_SIZE, NULL) == 0);
		CHECK(share(h + 2 * PAGE_SIZE, 2 * PAGE_SIZE, NULL) == 0);
	}
	if (rounds() == NONE) {
		printf("dirty_pattern: nothing tracked (no --track)\n");
		stop = 1;
		barrier();
		barrier();
		return 0;
	}

	/* phase 1: private and shared pages, a page to be converted, a device read */
	start = r = rounds();
	barrier(); /* the other vCPUs start writing */
	write_pages("private", priv, p1, 2, r);
	write_pages("shared", shar, s1, 2, r);
	write_pages("shared", conv, all, 4, r);
	device_read(disk, 0, 4, r);
	settle();

	/* phase 2: the converted pages written again, now private; more of each */
	CHECK(unshare(conv, 4 * PAGE_SIZE, NULL) == 0);
	r = rounds();
	write_pages("private", priv, p2, 2, r);
	write_pages("shared", shar, s2, 2, r);
	write_pages("private", conv, all, 4, r);
	device_read(disk, 5, 2, r);
	settle();

	/* phase 3: pages phase 1 wrote, which a round has reported since */
	r = rounds();
	write_pages("private", priv, p3, 1, r);
	write_pages("shared", shar, s3, 1, r);

	stop = 1;
	barrier();
	for (int c = 1; c < ncpus; c++) {
		char *h = (char *)hammer + (uint64_t)(c - 1) * HAMMER * PAGE_SIZE;

		say("wrote", "private", h, 2, start);
		say("wrote", "shared", h + 2 * PAGE_SIZE, 2, start);
	}
	for (int i = 1; i < 8; i += 2)
		say("untouched", "private", page(priv, i), 1, NONE);
	for (int i = 0; i < 8; i += 2)
		say("untouched", "shared", page(shar, i), 1, NONE);
	say("untouched", "device", page(disk, 4), 1, NONE);
	say("untouched", "device", page(disk, 7), 1, NONE);
	printf("dirty_pattern: done after round %u\n", rounds());
	return 0;
}
