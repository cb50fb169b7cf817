// SPDX-License-Identifier: MIT
/*
 * hypercall.c - benchmark guest: a null hypercall round trip against a
 * guest-initiated conversion of one 4 KiB page, in alternating blocks.
 * Prints one line per block: "hc <null cycles> <conversion cycles>" per call.
 */
#include "rt.h"

#define BLOCKS 9
#define CALLS 200

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint64_t *page = alloc_pages(1);

	(void)ncpus, (void)ram_size;
	if (cpu)
		return 0;
	CHECK(share(page, PAGE_SIZE, NULL) == 0);
	for (int b = 0; b < BLOCKS; b++) {
		uint64_t t0 = rdtsc(), t1, t2;

		for (int i = 0; i < CALLS; i++)
			hypercall3(0, 0, 0, 0); /* not a hypercall: -ENOSYS, the round trip alone */
		t1 = rdtsc();
		for (int i = 0; i < CALLS / 2; i++) {
			CHECK(map_gpa_range((uintptr_t)page, 1, HC_MAP_GPA_RANGE_ENCRYPTED) == 0);
			CHECK(map_gpa_range((uintptr_t)page, 1, 0) == 0);
		}
		t2 = rdtsc();
		printf("hc %llu %llu\n", (unsigned long long)((t1 - t0) / CALLS),
		       (unsigned long long)((t2 - t1) / CALLS));
	}
	return 0;
}
