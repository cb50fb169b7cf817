// SPDX-License-Identifier: MIT
/*
 * convert.c - share and privatize through the hypercall: contents stay in
 * place across every conversion, the program image included.
 */
#include "rt.h"

#define PAGES 8

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint64_t *p = alloc_pages(PAGES);
	const uint64_t words = PAGES * PAGE_SIZE / 8;

	(void)cpu, (void)ncpus, (void)ram_size;
	for (uint64_t i = 0; i < words; i++)
		p[i] = i * 0x9e3779b97f4a7c15ULL;
	for (int round = 0; round < 4; round++) {
		CHECK(share(p, PAGES * PAGE_SIZE, NULL) == 0);
		for (uint64_t i = 0; i < words; i += 97)
			CHECK(p[i] == i * 0x9e3779b97f4a7c15ULL);
		CHECK(unshare(p, PAGES * PAGE_SIZE, NULL) == 0);
		for (uint64_t i = 0; i < words; i += 89)
			CHECK(p[i] == i * 0x9e3779b97f4a7c15ULL);
	}
	/* one page alone, and a range already in the target state */
	CHECK(share(p + 512, PAGE_SIZE, NULL) == 0);
	CHECK(share(p, PAGES * PAGE_SIZE, NULL) == 0);
	CHECK(unshare(p, PAGES * PAGE_SIZE, NULL) == 0);
	CHECK(unshare(p, PAGES * PAGE_SIZE, NULL) == 0);
	CHECK(p[words - 1] == (words - 1) * 0x9e3779b97f4a7c15ULL);
	printf("convert: contents preserved\n");
	return 0;
}
