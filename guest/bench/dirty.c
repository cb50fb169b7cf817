// SPDX-License-Identifier: MIT
/*
 * dirty.c - benchmark guest for migrations that meet writes: populates a
 * quarter of its RAM as resume.c does, says "dirty: ready", then writes a
 * word into every page of its first 64 MiB round and round for ever, as
 * fast as a guest at CPL 0 writes here (~100k pages a second): pre-copy
 * must send them again, round after round, and pause the VM to send the
 * last of them.
 */
#include "rt.h"

#define REGION (2ULL << 20)
#define HOT (64ULL << 20) /* the pages written again and again */

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint64_t n = ram_size / REGION / 4 - 1, hot;
	char *p;

	(void)ncpus;
	if (cpu)
		return 0;
	p = alloc_pages(n * 4 * REGION / PAGE_SIZE);
	for (uint64_t i = 0; i < n; i++)
		for (uint64_t o = 0; o < REGION; o += PAGE_SIZE)
			*(volatile uint64_t *)(p + i * 4 * REGION + o) = (i * 4 * REGION + o) | 1;
	hot = HOT < n * 4 * REGION ? HOT : n * 4 * REGION;
	printf("dirty: ready %llu MiB, %llu MiB written on\n",
	       (unsigned long long)(n * REGION >> 20), (unsigned long long)(hot >> 20));
	for (uint64_t round = 1;; round++)
		for (uint64_t o = 0; o < hot; o += PAGE_SIZE)
			*(volatile uint64_t *)(p + o) = round;
	return 0;
}
