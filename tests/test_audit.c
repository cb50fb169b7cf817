// SPDX-License-Identifier: MIT
/*
 * test_audit.c - the audit reads the kernel's page tables: it passes on
 * what gmem builds, and catches a view mapping a private page - planted
 * here through the object's own userfaultfd, in each of several views in
 * turn; and a zap made to fail leaves one (test_inject.c,
 * audit_catches_mapped_idle_transit_page).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"

/* On hugetlbfs the shared pages are pieces of a mixed huge page: refused, until all are shared. */
TEST_OPTS(audit_clean_after_conversions, .subset = B_HUGETLB_1G)
{
	struct gmem *g = tg_create(env, 32 * PS, 0, 0);
	char *v = tg_view(g, 0);

	for (uint64_t p = 0; p < 32; p++)
		fill_page(v + p * PS, p, 1);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_convert(g, 0, 32 * PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_convert(g, 8 * PS, 8 * PS, GMEM_SHARED, 0, NULL));
	if (env_hugetlb(env)) {
		CHECK_EQ(touch(v + 9 * PS, false, NULL, NULL), env->sig);
		CHECK_OK(gmem_audit(g));
		CHECK_OK(gmem_convert(g, 0, 32 * PS, GMEM_SHARED, 0, NULL));
	}
	CHECK(page_has(v + 9 * PS, 9, 1));
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}


/*
 * A present page-table entry for a private page, planted in each view in
 * turn: UFFDIO_CONTINUE maps the page the file holds, as the fault thread
 * does for a shared one, behind gmem's back.  The audit must report it
 * whichever view holds it - the first, the last or one between, by
 * address or by age - and be clean again once it is gone.  On hugetlbfs
 * the views' spans count in huge pages, and the entry planted maps a huge
 * page with one private piece.
 */
TEST(audit_catches_planted_mapping_in_every_view)
{
	static const struct {
		uint64_t first, npages;
	} spans[] = { { 0, 8 }, { 2, 4 }, { 0, 8 }, { 3, 1 }, { 1, 6 } };
	enum { NV = sizeof(spans) / sizeof(spans[0]), SECRET_PAGE = 3 };
	const uint64_t unit = env_view_unit(env);
	struct gmem *g = tg_create(env, 8 * unit, 0, 0);
	char *views[NV], *guest;
	int uffd;

	for (int i = 0; i < NV; i++)
		CHECK_OK(gmem_view_map(g, spans[i].first * unit, spans[i].npages * unit, 0,
				       (void **)&views[i]));
	CHECK_OK(gmem_guest_map(g, (void **)&guest));
	CHECK_OK(gmem_convert(g, SECRET_PAGE * unit, PS, GMEM_PRIVATE, 0, NULL));
	fill_page(guest + SECRET_PAGE * unit, SECRET_PAGE, 1); /* in the file: a page to map */
	uffd = test_uffd_fd();
	CHECK(uffd >= 0);
	CHECK_OK(gmem_audit(g));

	for (int i = 0; i < NV; i++) {
		char *a = views[i] + (SECRET_PAGE - spans[i].first) * unit;
		struct uffdio_continue c = {
			.range = { .start = (uintptr_t)a, .len = unit },
			.mode = UFFDIO_CONTINUE_MODE_DONTWAKE,
		};

		if (ioctl(uffd, UFFDIO_CONTINUE, &c))
			test_fail(__FILE__, __LINE__, "view %d: UFFDIO_CONTINUE: %s", i, strerror(errno));
		CHECK(page_has(a, SECRET_PAGE, 1)); /* planted: it reads the private page */
		if (gmem_audit(g) != -EIO)
			test_fail(__FILE__, __LINE__, "view %d of %d: the audit missed a private page mapped",
				  i, NV);
		CHECK_OK(madvise(a, unit, MADV_DONTNEED));
		CHECK_OK(gmem_audit(g));
	}
	CHECK_EQ(gmem_audit(NULL), -EINVAL);
	CHECK_OK(gmem_destroy(g));
}
