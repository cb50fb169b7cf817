// SPDX-License-Identifier: MIT
/*
 * resume.c - benchmark guest for restores and migrations: populates a
 * quarter of its RAM - every fourth 2 MiB region, each 4 KiB page given
 * its own number in its first word (a word, not the page: a guest at
 * CPL 0 is emulated on this nested KVM, and filling pages would take it
 * ~25 s for 256 MiB) - says "resume: ready", then idles for ever, a
 * millisecond at a time in the VMM (port PORT_IDLE): an idle guest, on
 * the host's processors too.  The benchmark saves or migrates it once it
 * is ready.
 */
#include "rt.h"

#define REGION (2ULL << 20)

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint64_t n = ram_size / REGION / 4 - 1; /* what the program and the stacks leave */
	char *p;

	(void)ncpus;
	if (cpu)
		return 0;
	p = alloc_pages(n * 4 * REGION / PAGE_SIZE);
	for (uint64_t i = 0; i < n; i++)
		for (uint64_t o = 0; o < REGION; o += PAGE_SIZE)
			*(volatile uint64_t *)(p + i * 4 * REGION + o) = (i * 4 * REGION + o) | 1;
	printf("resume: ready %llu MiB\n", (unsigned long long)(n * REGION >> 20));
	for (;;)
		outb(PORT_IDLE, 0);
	return 0;
}
