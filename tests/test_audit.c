// SPDX-License-Identifier: MIT
/*
 * test_audit.c - the audit reads the kernel's page tables: it passes on
 * what gmem builds.  That it catches a view mapping a page it must not is
 * shown where such a mapping can be made: a zap made to fail
 * (test_inject.c, audit_catches_mapped_idle_transit_page).
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

