// SPDX-License-Identifier: MIT
/*
 * migrate_pattern.c - a guest that keeps writing a known pattern while it
 * is migrated (or saved and restored), then checks its memory holds what
 * it wrote last.  Round r writes, in every page i with i % 7 == r % 7, the
 * word r << 32 | i at both ends (two words, not the page: a guest at CPL 0
 * is emulated here, and a round of words goes ~100 times faster than a
 * round of pages, so that every moment of a migration meets writes); every
 * 16th round converts a stretch of pages the other way (private pages
 * and shared ones, states changing under the rounds).  It goes on until
 * port PORT_MOVED says the VM came into this process from elsewhere, and
 * checks at once - before any write here could cover a write lost on the
 * way - every page against the round that wrote it last: "migrate_pattern:
 * N pages hold what was written last", exit 0; a page that does not: exit
 * 1; never moved: exit 3.
 */
#include "rt.h"

#define PAGES 1024
#define CONVERTED 64      /* pages [0, CONVERTED) go shared and private by turns */
#define MAX_ROUNDS 200000 /* never moved: give up */

static char *mem;

static void write_round(uint32_t r)
{
	for (int i = (int)(r % 7); i < PAGES; i += 7) {
		volatile uint64_t *p = (volatile uint64_t *)(mem + (uint64_t)i * PAGE_SIZE);

		p[0] = (uint64_t)r << 32 | (uint32_t)i;
		p[PAGE_SIZE / 8 - 1] = (uint64_t)r << 32 | (uint32_t)i;
	}
	if (!(r % 16)) {
		long err = (r / 16) % 2 ? share(mem, CONVERTED * PAGE_SIZE, NULL)
					: unshare(mem, CONVERTED * PAGE_SIZE, NULL);

		CHECK(err == 0);
	}
}

/* The last round up to r that wrote page i (0: none did). */
static uint32_t last_round(uint32_t r, int i)
{
	while (r && r % 7 != (uint32_t)i % 7)
		r--;
	return r;
}

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint32_t r = 0, until = MAX_ROUNDS;
	int bad = 0;

	(void)ncpus, (void)ram_size;
	if (cpu)
		return 0;
	mem = alloc_pages(PAGES);
	CHECK(unshare(mem, PAGES * PAGE_SIZE, NULL) == 0);
	while (++r < until) {
		write_round(r);
		if (inl(PORT_MOVED) == 1)
			until = r + 1;
	}
	if (until == MAX_ROUNDS) {
		printf("migrate_pattern: never moved in %u rounds\n", r);
		exit(3);
	}
	r--; /* the last round written */
	for (int i = 0; i < PAGES; i++) {
		const volatile uint64_t *p = (const volatile uint64_t *)(mem + (uint64_t)i * PAGE_SIZE);
		uint32_t w = last_round(r, i);
		uint64_t want = (uint64_t)w << 32 | (uint32_t)i;

		if (w && (p[0] != want || p[PAGE_SIZE / 8 - 1] != want) && bad++ < 8)
			printf("migrate_pattern: page %d holds rounds %llu and %llu, not %u\n", i,
			       (unsigned long long)(p[0] >> 32),
			       (unsigned long long)(p[PAGE_SIZE / 8 - 1] >> 32), w);
	}
	if (bad) {
		printf("migrate_pattern: %d pages lost a write\n", bad);
		exit(1);
	}
	printf("migrate_pattern: %d pages hold what was written last (%u rounds)\n", PAGES, r);
	return 0;
}
