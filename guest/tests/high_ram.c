// SPDX-License-Identifier: MIT
/*
 * high_ram.c - RAM beyond 3 GiB lives at 4 GiB: it converts in place like
 * the rest, and a range spanning the hole below it is refused.
 */
#include "rt.h"

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint64_t *high = (uint64_t *)(uintptr_t)HIGH_RAM_BASE;
	uint64_t last = HIGH_RAM_BASE + (ram_size - LOW_RAM_MAX) - PAGE_SIZE;

	(void)cpu, (void)ncpus;
	CHECK(ram_size > LOW_RAM_MAX);
	high[0] = 0x4849474852414dULL;
	*(volatile uint64_t *)(uintptr_t)last = 7;
	CHECK(share(high, 2 * PAGE_SIZE, NULL) == 0);
	CHECK(high[0] == 0x4849474852414dULL);
	CHECK(unshare(high, 2 * PAGE_SIZE, NULL) == 0);
	CHECK(high[0] == 0x4849474852414dULL);
	CHECK(map_gpa_range(last, 1, 0) == 0);
	CHECK(*(volatile uint64_t *)(uintptr_t)last == 7);
	CHECK(map_gpa_range(last, 2, 0) == -EINVAL);             /* past the end */
	CHECK(map_gpa_range(LOW_RAM_MAX - PAGE_SIZE, 2, 0) == -EINVAL); /* into the hole */
	CHECK(map_gpa_range(HIGH_RAM_BASE - PAGE_SIZE, 2, 0) == -EINVAL); /* out of it */
	printf("high_ram: %llu MiB above 4 GiB converts in place\n",
	       (unsigned long long)((ram_size - LOW_RAM_MAX) >> 20));
	return 0;
}
