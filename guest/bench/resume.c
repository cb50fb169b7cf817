// SPDX-License-Identifier: MIT
/*
 * resume.c - benchmark guest for restores: writes every fourth 2 MiB
 * region of the first quarter of its RAM (a sixteenth of it: a guest's
 * writes cost ~0.3 ms a page at CPL 0 on nested KVM, 64 MiB take ~6 s),
 * says "resume: ready", then reads those pages round and round for ever.  The benchmark saves it on the line and
 * times restores of the file to the guest's first instruction; the
 * reads after it are a guest's first touches of a lazily restored RAM.
 */
#include "rt.h"

#define REGION (2ULL << 20)

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint64_t n = ram_size / REGION / 16;
	char *p;
	volatile char sink;

	(void)ncpus;
	if (cpu)
		return 0;
	p = alloc_pages(n * 4 * REGION / PAGE_SIZE);
	for (uint64_t i = 0; i < n; i++)
		memset(p + i * 4 * REGION, (int)(i | 1), REGION);
	printf("resume: ready %llu MiB\n", (unsigned long long)(n * REGION >> 20));
	for (;;)
		for (uint64_t i = 0; i < n; i++)
			for (uint64_t o = 0; o < REGION; o += PAGE_SIZE)
				sink = p[i * 4 * REGION + o];
	(void)sink;
	return 0;
}
