// SPDX-License-Identifier: MIT
/*
 * halt_early.c - every vCPU but 0 halts at once; vCPU 0 runs on for about
 * 4e9 TSC ticks, then exits with 7.  A snapshot taken meanwhile holds
 * halted vCPUs, which the restore must leave halted.
 */
#include "rt.h"

static inline uint64_t tsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint64_t t0;

	(void)ncpus, (void)ram_size;
	if (cpu)
		return 0; /* halts */
	t0 = tsc();
	while (tsc() - t0 < 4000000000ULL)
		cpu_relax();
	printf("halt_early: vCPU 0 done\n");
	return 7;
}
