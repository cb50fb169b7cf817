// SPDX-License-Identifier: MIT
/*
 * leak.c - a guest that puts the demo's secret marker in shared memory:
 * the host snoop must see it and gmem-vmm must fail the run (the snoop's
 * check can fail).
 */
#include "rt.h"
#include "secret.h"

int main(int cpu, int ncpus, uint64_t ram_size)
{
	static const unsigned char encoded[SECRET_LEN] = SECRET_ENCODED;
	uint8_t *page = alloc_pages(1);
	volatile uint64_t spin = 0;

	(void)cpu, (void)ncpus, (void)ram_size;
	CHECK(share(page, PAGE_SIZE, NULL) == 0);
	for (int i = 0; i < SECRET_LEN; i++)
		page[i] = encoded[i] ^ SECRET_XOR;
	while (spin < 200000) /* give the snoop time to look */
		spin++;
	return 0;
}
