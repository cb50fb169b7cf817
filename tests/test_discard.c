// SPDX-License-Identifier: MIT
/*
 * test_discard.c - discard zeroes every mapping and keeps states (the
 * kernel's "truncate" case), refuses pinned pages, and a discarded private
 * page is still refused to the host (the missing-fault path).
 */
#include <errno.h>

#include "harness.h"

/*
 * On hugetlbfs the range is part of one huge page, zeroed in place; its
 * shared pages are refused to the views while pages 4 and 5 are private.
 */
TEST_OPTS(truncate, .subset = B_HUGETLB_1G)
{
	struct gmem *g = tg_create(env, 8 * PS, 0, 0);
	char *v1 = tg_view(g, 0), *v2 = tg_view(g, 0);
	char *guest;
	void *gp;

	CHECK_OK(gmem_guest_map(g, &gp));
	guest = gp;
	for (uint64_t p = 0; p < 8; p++)
		fill_page(v1 + p * PS, p, 3);
	CHECK_OK(gmem_convert(g, 4 * PS, 2 * PS, GMEM_PRIVATE, 0, NULL));
	CHECK_EQ(touch(v2 + 4 * PS, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_discard(g, 2 * PS, 4 * PS)); /* two shared, two private */
	for (uint64_t p = 0; p < 8; p++) {
		CHECK_EQ(gmem_state(g, p * PS), p == 4 || p == 5 ? GMEM_PRIVATE : GMEM_SHARED);
		if (p >= 2 && p < 6)
			CHECK(page_zero(guest + p * PS));
		else
			CHECK(page_has(guest + p * PS, p, 3));
	}
	if (env_hugetlb(env)) {
		CHECK_EQ(touch(v1 + 2 * PS, false, NULL, NULL), env->sig);
		CHECK_EQ(touch(v2 + 6 * PS, false, NULL, NULL), env->sig);
	} else {
		CHECK(page_zero(v1 + 2 * PS));
		CHECK(page_zero(v2 + 3 * PS));
		CHECK(page_has(v2 + 6 * PS, 6, 3));
	}
	/* discarded private pages: still refused, touched before or never */
	CHECK_EQ(touch(v2 + 4 * PS, false, NULL, NULL), env->sig);
	CHECK_EQ(touch(v1 + 5 * PS, true, NULL, NULL), env->sig);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_convert(g, 4 * PS, 2 * PS, GMEM_SHARED, 0, NULL));
	CHECK(page_zero(v1 + 4 * PS));
	CHECK(page_zero(v2 + 5 * PS));
	CHECK(page_zero(v1 + 2 * PS));
	CHECK(page_zero(v2 + 3 * PS));
	CHECK(page_has(v2 + 6 * PS, 6, 3));
	CHECK(page_has(v1 + PS, 1, 3));
	CHECK_OK(gmem_destroy(g));
}

TEST(discard_refuses_pinned_pages)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	char *v = tg_view(g, 0);

	fill_page(v + PS, 1, 8);
	CHECK_OK(gmem_pin(g, PS, PS, 0));
	CHECK_EQ(gmem_discard(g, 0, 4 * PS), -EBUSY);
	CHECK(page_has(v + PS, 1, 8));
	CHECK_OK(gmem_unpin(g, PS, PS, 0));
	CHECK_OK(gmem_pin(g, PS, PS, GMEM_PIN_LONGTERM));
	CHECK_EQ(gmem_discard(g, PS, PS), -EBUSY);
	CHECK_OK(gmem_discard(g, 2 * PS, 2 * PS)); /* the others may go */
	CHECK_OK(gmem_unpin(g, PS, PS, GMEM_PIN_LONGTERM));
	/* a page being discarded cannot be pinned: nothing was left flagged */
	CHECK_OK(gmem_pin(g, 0, 4 * PS, 0));
	CHECK_OK(gmem_unpin(g, 0, 4 * PS, 0));
	CHECK_OK(gmem_discard(g, PS, PS));
	CHECK(page_zero(v + PS));
	CHECK_OK(gmem_destroy(g));
}

TEST(discard_invalid_args)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	char *v = tg_view(g, 0);
	uint64_t size = gmem_size(g);

	fill_page(v, 0, 1);
	CHECK_EQ(gmem_discard(g, 0, 0), -EINVAL);
	CHECK_EQ(gmem_discard(g, 1, PS), -EINVAL);
	CHECK_EQ(gmem_discard(g, 0, size + PS), -EINVAL);
	CHECK_EQ(gmem_discard(g, PS, UINT64_MAX - PS + 1), -EINVAL);
	CHECK_EQ(gmem_discard(NULL, 0, PS), -EINVAL);
	CHECK(page_has(v, 0, 1));
	CHECK_OK(gmem_destroy(g));
}
