// SPDX-License-Identifier: MIT
/*
 * test_audit.c - the audit reads the kernel's page tables: it passes on
 * what gmem builds and catches a host mapping of a private page that is
 * planted behind gmem's back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>

#include "harness.h"

TEST(audit_clean_after_conversions)
{
	struct gmem *g = tg_create(env, 32 * PS, 0, 0);
	char *v = tg_view(g, 0);

	for (uint64_t p = 0; p < 32; p++)
		fill_page(v + p * PS, p, 1);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_convert(g, 0, 32 * PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_convert(g, 8 * PS, 8 * PS, GMEM_SHARED, 0, NULL));
	CHECK(page_has(v + 9 * PS, 9, 1));
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/* Plant a present page-table entry over a private page of a view. */
TEST(audit_catches_planted_mapping)
{
	struct gmem *g = tg_create(env, 8 * PS, 0, 0);
	char *v = tg_view(g, 0), *other = tg_view(g, 0);

	fill_page(v + 3 * PS, 3, 1);
	CHECK_OK(gmem_convert(g, 3 * PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_audit(g));
	CHECK(mmap(other + 3 * PS, PS, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS,
		   -1, 0) == other + 3 * PS);
	CHECK_OK(gmem_audit(g)); /* not present until touched */
	other[3 * PS] = 1;
	CHECK_EQ(gmem_audit(g), -EIO);
	CHECK_OK(gmem_convert(g, 3 * PS, PS, GMEM_SHARED, 0, NULL));
	CHECK_OK(gmem_audit(g)); /* a shared page may be present */
	CHECK_OK(gmem_convert(g, 2 * PS, 2 * PS, GMEM_PRIVATE, 0, NULL));
	/* gmem zaps what it mapped; a mapping it did not make stays reported */
	CHECK_EQ(gmem_audit(g), -EIO);
	CHECK_OK(munmap(other + 3 * PS, PS));
	CHECK_OK(gmem_audit(g));
	CHECK_EQ(gmem_audit(NULL), -EINVAL);
	CHECK_OK(gmem_destroy(g));
}
