// SPDX-License-Identifier: MIT
/*
 * hypercall_args.c - every malformed MAP_GPA_RANGE is refused with -EINVAL
 * and changes nothing; an unknown hypercall gets -ENOSYS.
 */
#include "rt.h"

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint64_t low = ram_size < LOW_RAM_MAX ? ram_size : LOW_RAM_MAX;
	uint64_t *p = alloc_pages(1);
	const uint64_t priv = HC_MAP_GPA_RANGE_ENCRYPTED;

	(void)cpu, (void)ncpus;
	*p = 0x1234;
	CHECK(map_gpa_range((uintptr_t)p, 0, priv) == -EINVAL);            /* zero pages */
	CHECK(map_gpa_range((uintptr_t)p + 8, 1, priv) == -EINVAL);        /* unaligned */
	CHECK(map_gpa_range((uintptr_t)p, ~0ULL, priv) == -EINVAL);        /* overflows */
	CHECK(map_gpa_range(~0ULL & ~4095ULL, 2, priv) == -EINVAL);        /* wraps */
	CHECK(map_gpa_range(low - PAGE_SIZE, 2, priv) == -EINVAL);         /* leaves RAM */
	CHECK(map_gpa_range(MMIO_BASE, 1, priv) == -EINVAL);               /* MMIO */
	CHECK(map_gpa_range(HIGH_RAM_BASE + ram_size, 1, 0) == -EINVAL);   /* past all RAM */
	CHECK(map_gpa_range((uintptr_t)p, 1, 1ULL << 5) == -EINVAL);       /* unknown attribute */
	CHECK(map_gpa_range((uintptr_t)p, 1, priv | 3) == -EINVAL);        /* bad size hint */
	CHECK(hypercall3(99, (uintptr_t)p, 1, 0) == -ENOSYS);              /* unknown call */
	CHECK(hypercall3(HC_MAP_GPA_RANGE + 1, (uintptr_t)p, 1, 0) == -ENOSYS);
	/* none of it changed the page: still private, still there */
	CHECK(*p == 0x1234);
	CHECK(map_gpa_range((uintptr_t)p, 1, 0) == 0);
	CHECK(map_gpa_range((uintptr_t)p, 1, priv | 1) == 0); /* 2M size hint is only a hint */
	CHECK(*p == 0x1234);
	printf("hypercall_args: every malformed call refused\n");
	return 0;
}
