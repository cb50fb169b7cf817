// SPDX-License-Identifier: MIT
/*
 * test_hugetlb.c - hugetlbfs backings: 2 MiB and 1 GiB pages from the
 * kernel's pool, mapped, zapped and refused whole, converted 4 KiB at a time.
 *
 * Each case makes its own objects, on both page sizes where the pool can
 * be given the pages (the 1 GiB ones are skipped with a reason otherwise),
 * under the environment's fault signal; it runs once per signal.  The pool
 * is raised for the case and put back when it ends (tests/sysfs.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "harness.h"
#include "sysfs.h"

#define GiB (1ULL << 30)
#define ONCE_PER_SIGNAL                                                                  \
	.skip = B_THP | B_HUGETLB | S_ANY, .why = "hugetlb objects of its own, both sizes: once per signal"

static const struct {
	uint32_t backing;
	uint64_t page;
	const char *name;
} sizes[] = {
	{ GMEM_BACKING_HUGETLB_2M, 2 * MiB, "2 MiB" },
	{ GMEM_BACKING_HUGETLB_1G, GiB, "1 GiB" },
};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/* An object of `pages` huge pages of size i, or NULL (and a note) if the pool cannot have them. */
static struct gmem *huge_create(const struct env *env, size_t i, unsigned long pages,
				uint32_t flags)
{
	struct gmem_config cfg = { .size = pages * sizes[i].page, .backing = sizes[i].backing,
				   .flags = flags, .fault_signal = env->sig };
	struct gmem *g = NULL;
	int err;

	if (!hugetlb_reserve(sizes[i].page, pages)) {
		printf("  note: no %lu free %s pages in the pool: that size not tried\n", pages,
		       sizes[i].name);
		return NULL;
	}
	err = gmem_create(&cfg, &g);
	if (err)
		test_fail(__FILE__, __LINE__, "gmem_create (%s): %s", sizes[i].name, strerror(-err));
	return g;
}

/* A signal of the environment's kind at exactly a, and nothing read or written. */
static void refused_at(const struct env *env, volatile char *a)
{
	siginfo_t si;
	uint8_t b = 0x5a;

	memset(&si, 0, sizeof(si));
	CHECK_EQ(touch(a, false, NULL, &si), env->sig);
	CHECK(si.si_addr == (void *)a);
	if (env->sig == SIGBUS)
		CHECK(sigbus_refusal(si.si_code));
	else
		CHECK_EQ(si.si_code, SEGV_ACCERR); /* hugetlbfs takes no guard markers */
	CHECK_EQ(touch(a, true, &b, NULL), env->sig);
}

TEST_OPTS(hugetlb_create_rules, ONCE_PER_SIGNAL)
{
	for (size_t i = 0; i < NSIZES; i++) {
		struct gmem_config cfg = { .size = sizes[i].page, .backing = sizes[i].backing };
		unsigned long free_now;
		struct gmem *g;

		if (!hugetlb_reserve(sizes[i].page, 1))
			continue;
		/* sizes are whole huge pages */
		cfg.size = sizes[i].page / 2;
		CHECK_EQ(gmem_create(&cfg, &g), -EINVAL);
		cfg.size = sizes[i].page + GMEM_PAGE_SIZE;
		CHECK_EQ(gmem_create(&cfg, &g), -EINVAL);
		/* fresh pages are for 4 KiB shmem only */
		cfg.size = sizes[i].page;
		cfg.flags = GMEM_F_FRESH_PRIVATE;
		CHECK_EQ(gmem_create(&cfg, &g), -EINVAL);
		/* more pages than the pool has free: -ENOMEM, nothing kept */
		cfg.flags = 0;
		free_now = hugetlb_free(sizes[i].page);
		cfg.size = (free_now + 1) * sizes[i].page;
		CHECK_EQ(gmem_create(&cfg, &g), -ENOMEM);
		CHECK_EQ(hugetlb_free(sizes[i].page), free_now);
		/* views: whole huge pages only */
		g = huge_create(env, i, 1, 0);
		if (g) {
			void *v;

			CHECK_EQ(gmem_view_map(g, GMEM_PAGE_SIZE, sizes[i].page - GMEM_PAGE_SIZE, 0, &v),
				 -EINVAL);
			CHECK_EQ(gmem_view_map(g, 0, GMEM_PAGE_SIZE, 0, &v), -EINVAL);
			CHECK_OK(gmem_view_map(g, 0, sizes[i].page, 0, &v));
			CHECK_OK(gmem_view_unmap(g, v));
			CHECK_OK(gmem_destroy(g));
		}
	}
}

/*
 * A huge page with one private 4 KiB piece is refused whole through views,
 * its shared pieces too, at the exact address; its neighbour maps; after
 * the piece is shared again the page maps and every byte is where it was.
 */
TEST_OPTS(hugetlb_mixed_page_refused_whole, ONCE_PER_SIGNAL)
{
	for (size_t i = 0; i < NSIZES; i++) {
		uint64_t hp = sizes[i].page, secret_at = hp / 2;
		struct gmem *g = huge_create(env, i, 2, 0);
		char *v, *guest;

		if (!g)
			continue;
		CHECK_OK(gmem_guest_map(g, (void **)&guest));
		v = tg_view(g, 0);
		fill_page(v + PS, 1, 3);
		fill_page(v + hp + PS, 9, 3);
		CHECK_OK(gmem_convert(g, secret_at, PS, GMEM_PRIVATE, 0, NULL));
		memset(guest + secret_at, 0x77, PS); /* the guest's secret */
		CHECK_OK(gmem_audit(g));

		refused_at(env, v + PS + 7);                   /* a shared piece of the mixed page */
		refused_at(env, v + secret_at + 5);            /* the private piece */
		CHECK(page_has(v + hp + PS, 9, 3));            /* the other huge page maps */
		CHECK_OK(gmem_audit(g));

		CHECK_OK(gmem_convert(g, secret_at, PS, GMEM_SHARED, 0, NULL));
		CHECK(page_has(v + PS, 1, 3));
		CHECK_EQ((uint8_t)v[secret_at + 100], 0x77); /* in place */
		CHECK_OK(gmem_audit(g));

		/* and back: a mapped huge page is zapped whole by a 4 KiB conversion */
		CHECK_OK(gmem_convert(g, hp - PS, PS, GMEM_PRIVATE, 0, NULL));
		CHECK_OK(gmem_audit(g));
		refused_at(env, v);
		CHECK_OK(gmem_destroy(g));
	}
}

/* A pin anywhere on a huge page refuses converting any piece of it, whatever the flags. */
TEST_OPTS(hugetlb_pin_on_page_refuses_conversion, ONCE_PER_SIGNAL)
{
	static const unsigned int modes[] = { 0, GMEM_CONVERT_WAIT, GMEM_CONVERT_DEFER };

	for (size_t i = 0; i < NSIZES; i++) {
		uint64_t hp = sizes[i].page, at = 0;
		struct gmem *g = huge_create(env, i, 2, 0);

		if (!g)
			continue;
		CHECK_OK(gmem_pin(g, 3 * PS, PS, 0));
		CHECK_OK(gmem_pin(g, 9 * PS, PS, GMEM_PIN_LONGTERM));
		for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
			at = 0;
			CHECK_EQ(gmem_convert(g, 5 * PS, PS, GMEM_PRIVATE, modes[m], &at), -EBUSY);
			CHECK_EQ(at, 9 * PS); /* the long-term pin decides */
			CHECK_EQ(gmem_state(g, 5 * PS), GMEM_SHARED);
		}
		CHECK_OK(gmem_unpin(g, 9 * PS, PS, GMEM_PIN_LONGTERM));
		for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
			at = 0;
			CHECK_EQ(gmem_convert(g, 5 * PS, PS, GMEM_PRIVATE, modes[m], &at), -EAGAIN);
			CHECK_EQ(at, 3 * PS);
			CHECK_EQ(gmem_state(g, 5 * PS), GMEM_SHARED);
		}
		/* the other huge page converts */
		CHECK_OK(gmem_convert(g, hp + 5 * PS, PS, GMEM_PRIVATE, 0, NULL));
		/* a pinned shared piece of a mixed page still pins and unpins */
		CHECK_OK(gmem_pin(g, hp + 6 * PS, PS, 0));
		CHECK_OK(gmem_unpin(g, hp + 6 * PS, PS, 0));
		CHECK_OK(gmem_unpin(g, 3 * PS, PS, 0));
		CHECK_OK(gmem_convert(g, 5 * PS, PS, GMEM_PRIVATE, 0, &at));
		CHECK_EQ(gmem_state(g, 5 * PS), GMEM_PRIVATE);
		CHECK_OK(gmem_destroy(g));
	}
}

/*
 * A discard of part of a huge page zeroes those pieces in place, its
 * neighbours kept; a whole huge page reads zero afterwards and keeps its
 * page from the pool, so a later touch cannot find the pool empty.
 */
TEST_OPTS(hugetlb_discard_in_place_and_whole, ONCE_PER_SIGNAL)
{
	for (size_t i = 0; i < NSIZES; i++) {
		uint64_t hp = sizes[i].page;
		struct gmem *g = huge_create(env, i, 2, 0);
		unsigned long free_before;
		char *v;

		if (!g)
			continue;
		v = tg_view(g, 0);
		fill_page(v + PS, 1, 5);
		fill_page(v + 2 * PS, 2, 5);
		fill_page(v + 3 * PS, 3, 5);
		fill_page(v + hp, 7, 5);
		free_before = hugetlb_free(hp);
		CHECK_OK(gmem_discard(g, 2 * PS, PS));
		CHECK(page_has(v + PS, 1, 5));
		CHECK(page_zero(v + 2 * PS));
		CHECK(page_has(v + 3 * PS, 3, 5));
		CHECK_OK(gmem_discard(g, hp, hp));
		CHECK(page_zero(v + hp));
		CHECK(page_zero(v + hp + hp - PS));
		CHECK_EQ(hugetlb_free(hp), free_before);
		/* a discarded private piece is still refused */
		CHECK_OK(gmem_convert(g, 3 * PS, PS, GMEM_PRIVATE, 0, NULL));
		CHECK_OK(gmem_discard(g, 0, hp));
		refused_at(env, v + 3 * PS);
		CHECK_OK(gmem_audit(g));
		CHECK_OK(gmem_destroy(g));
	}
}

/* The audit sees a huge entry mapping a mixed page in a view, planted behind gmem's back. */
TEST_OPTS(hugetlb_audit_catches_huge_entry, ONCE_PER_SIGNAL)
{
	for (size_t i = 0; i < NSIZES; i++) {
		uint64_t hp = sizes[i].page;
		struct gmem *g = huge_create(env, i, 1, 0);
		struct uffdio_continue c;
		char *v;
		int uffd;

		if (!g)
			continue;
		v = tg_view(g, 0);
		v[0] = 1; /* in the page cache, mapped */
		CHECK_OK(gmem_convert(g, hp - PS, PS, GMEM_PRIVATE, 0, NULL));
		CHECK_OK(gmem_audit(g));
		uffd = test_uffd_fd();
		CHECK(uffd >= 0);
		c = (struct uffdio_continue){ .range = { (uintptr_t)v, hp } };
		CHECK_OK(ioctl(uffd, UFFDIO_CONTINUE, &c));
		CHECK_EQ(gmem_audit(g), -EIO);
		CHECK_OK(gmem_destroy(g));
	}
}
