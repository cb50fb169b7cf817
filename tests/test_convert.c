// SPDX-License-Identifier: MIT
/*
 * test_convert.c - in-place conversion, mirroring the kernel's
 * guest_memfd_conversions_test: init_shared, init_private, indexing,
 * before_allocation_*, unallocated_folios, plus all-or-nothing and bad input.
 *
 * The test plays the guest through the guest mapping and the host through
 * a view: contents written by one side must be found by the other after
 * each conversion, in place.  On hugetlbfs the host reaches a page only
 * while every 4 KiB piece of its huge page is shared: a shared page beside
 * a private one is refused to the host, and the guest finds it in place.
 */
#include <errno.h>
#include <string.h>

#include "harness.h"

struct fixture {
	struct gmem *g;
	char *guest, *view;
	uint64_t npages;
	uint64_t hp; /* pages in a view unit: 1, or a hugetlbfs page's */
	int sig;     /* how the host is refused */
	bool huge;   /* hugetlbfs */
};

static struct fixture setup(const struct env *env, uint64_t min, uint32_t flags)
{
	struct fixture f;
	void *guest;

	f.g = tg_create(env, min, flags, 0);
	CHECK_OK(gmem_guest_map(f.g, &guest));
	f.guest = guest;
	f.view = tg_view(f.g, 0);
	f.npages = gmem_size(f.g) / PS;
	f.hp = env_view_unit(env) / PS;
	f.sig = env->sig;
	f.huge = env_hugetlb(env);
	return f;
}

static void teardown(struct fixture *f)
{
	CHECK_OK(gmem_audit(f->g));
	CHECK_OK(gmem_destroy(f->g));
}

static void convert(struct fixture *f, uint64_t page, uint64_t n, unsigned int to)
{
	CHECK_OK(gmem_convert(f->g, page * PS, n * PS, to, 0, NULL));
	for (uint64_t p = page; p < page + n; p++)
		CHECK_EQ(gmem_state(f->g, p * PS), to);
}

/* The host finds `seed` in page p through its view, then writes `next`. */
static void host_rmw(struct fixture *f, uint64_t p, int seed, uint8_t next)
{
	if (seed >= 0)
		CHECK(page_has(f->view + p * PS, p, (uint8_t)seed));
	fill_page(f->view + p * PS, p, next);
}

/* The host cannot touch page p, for read or write. */
static void host_denied(struct fixture *f, uint64_t p)
{
	siginfo_t si;

	CHECK_EQ(touch(f->view + p * PS + 17, false, NULL, &si), f->sig);
	CHECK(si.si_addr == f->view + p * PS + 17);
	CHECK_EQ(touch(f->view + p * PS, true, NULL, NULL), f->sig);
}

static void guest_rmw(struct fixture *f, uint64_t p, int seed, uint8_t next)
{
	if (seed >= 0)
		CHECK(page_has(f->guest + p * PS, p, (uint8_t)seed));
	fill_page(f->guest + p * PS, p, next);
}

TEST(init_shared)
{
	struct fixture f = setup(env, PS, 0);

	CHECK_EQ(gmem_state(f.g, 0), GMEM_SHARED);
	host_rmw(&f, 0, -1, 'A');
	convert(&f, 0, 1, GMEM_PRIVATE);
	host_denied(&f, 0);
	guest_rmw(&f, 0, 'A', 'B');
	convert(&f, 0, 1, GMEM_SHARED);
	host_rmw(&f, 0, 'B', 'C');
	guest_rmw(&f, 0, 'C', 'D');
	teardown(&f);
}

/* (The host reaches page 0 once its whole huge page is shared.) */
TEST(init_private)
{
	struct fixture f = setup(env, PS, GMEM_F_INIT_PRIVATE);

	CHECK_EQ(gmem_state(f.g, 0), GMEM_PRIVATE);
	host_denied(&f, 0);
	guest_rmw(&f, 0, -1, 'A');
	convert(&f, 0, f.hp, GMEM_SHARED);
	host_rmw(&f, 0, 'A', 'B');
	convert(&f, 0, 1, GMEM_PRIVATE);
	guest_rmw(&f, 0, 'B', 'C');
	host_denied(&f, 0);
	teardown(&f);
}

/*
 * Converting one page changes that page alone, whichever it is: the other
 * pages stay shared, in place - on hugetlbfs refused to the host with it.
 */
TEST_OPTS(indexing, .subset = B_HUGETLB_1G)
{
	struct fixture f = setup(env, 4 * PS, 0);
	const uint64_t n = f.npages < 8 ? f.npages : 8;

	for (uint64_t p = 0; p < n; p++)
		host_rmw(&f, p, -1, 'A');
	for (uint64_t t = 0; t < n; t++) {
		convert(&f, t, 1, GMEM_PRIVATE);
		for (uint64_t p = 0; p < n; p++) {
			if (p == t) {
				host_denied(&f, p);
				guest_rmw(&f, p, 'A', 'B');
			} else if (f.huge && p / f.hp == t / f.hp) {
				CHECK_EQ(gmem_state(f.g, p * PS), GMEM_SHARED);
				host_denied(&f, p);
				guest_rmw(&f, p, 'A', 'A');
			} else {
				CHECK_EQ(gmem_state(f.g, p * PS), GMEM_SHARED);
				host_rmw(&f, p, 'A', 'A');
			}
		}
		convert(&f, t, 1, GMEM_SHARED);
		host_rmw(&f, t, 'B', 'A');
	}
	teardown(&f);
}

/* A conversion is recorded even when no page of the range exists yet. */
TEST(before_allocation_shared)
{
	struct fixture f = setup(env, PS, 0);

	convert(&f, 0, 1, GMEM_PRIVATE);
	host_denied(&f, 0);
	guest_rmw(&f, 0, -1, 'A');
	teardown(&f);
}

TEST(before_allocation_private)
{
	struct fixture f = setup(env, PS, GMEM_F_INIT_PRIVATE);

	convert(&f, 0, f.hp, GMEM_SHARED);
	CHECK(page_zero(f.view));
	host_rmw(&f, 0, -1, 'A');
	guest_rmw(&f, 0, 'A', 'B');
	teardown(&f);
}

/* Ranges mixing allocated and never-allocated pages convert whole. */
TEST(unallocated_folios)
{
	struct fixture f = setup(env, 8 * PS, 0);

	for (uint64_t t = 0; t < 8; t++) {
		for (uint64_t p = 0; p < 8; p++)
			CHECK_OK(gmem_discard(f.g, p * PS, PS));
		host_rmw(&f, t, -1, 'A');
		convert(&f, 0, 8, GMEM_PRIVATE);
		for (uint64_t p = 0; p < 8; p++) {
			host_denied(&f, p);
			if (p == t)
				guest_rmw(&f, p, 'A', 'B');
			else
				CHECK(page_zero(f.guest + p * PS));
		}
		convert(&f, 0, 8, GMEM_SHARED);
		host_rmw(&f, t, 'B', 'C');
	}
	teardown(&f);
}

/* Contents survive many round trips, over a range spanning huge pages. */
TEST(contents_survive_round_trips)
{
	struct fixture f = setup(env, 4 * MiB, 0);
	uint64_t n = f.npages;

	for (uint64_t p = 0; p < n; p++)
		host_rmw(&f, p, -1, 'A');
	for (int round = 0; round < 10; round++) {
		uint64_t s = (uint64_t)round * 37 % n, len = 1 + (uint64_t)round * 101 % (n - s);

		convert(&f, s, len, GMEM_PRIVATE);
		convert(&f, s, len, GMEM_SHARED);
	}
	for (uint64_t p = 0; p < n; p++)
		CHECK(page_has(f.view + p * PS, p, 'A'));
	teardown(&f);
}

/* Pages already in the target state are fine, and counted once. */
TEST(convert_to_same_state)
{
	struct fixture f = setup(env, 8 * PS, 0);
	struct gmem_stats st;

	convert(&f, 2, 2, GMEM_PRIVATE);
	convert(&f, 0, 8, GMEM_PRIVATE);
	convert(&f, 0, 8, GMEM_PRIVATE);
	convert(&f, 0, 4, GMEM_SHARED);
	convert(&f, 0, 4, GMEM_SHARED);
	gmem_get_stats(f.g, &st);
	CHECK_EQ(st.pages_to_private, f.npages < 8 ? 0 : 2 + 6);
	CHECK_EQ(st.pages_to_shared, 4);
	CHECK_EQ(st.conversions, 5);
	teardown(&f);
}

/* A refused conversion changes no page. */
TEST(convert_all_or_nothing)
{
	struct fixture f = setup(env, 16 * PS, 0);
	uint64_t eoff = 0;

	convert(&f, 5, 1, GMEM_PRIVATE);
	CHECK_OK(gmem_pin(f.g, 9 * PS, PS, 0));
	CHECK_EQ(gmem_convert(f.g, 0, 16 * PS, GMEM_PRIVATE, 0, &eoff), -EAGAIN);
	CHECK_EQ(eoff, 9 * PS);
	for (uint64_t p = 0; p < 16; p++)
		CHECK_EQ(gmem_state(f.g, p * PS), p == 5 ? GMEM_PRIVATE : GMEM_SHARED);
	if (f.huge)
		host_denied(&f, 0); /* as before: a piece of page 5's huge page */
	else
		host_rmw(&f, 0, -1, 'A');
	CHECK_OK(gmem_unpin(f.g, 9 * PS, PS, 0));
	convert(&f, 0, 16, GMEM_PRIVATE);
	teardown(&f);
}

TEST(convert_invalid_args)
{
	struct fixture f = setup(env, 4 * PS, 0);
	uint64_t size = gmem_size(f.g), eoff = 12345;
	struct gmem_stats before, after;
	const struct {
		uint64_t off, len;
		unsigned int to, flags;
	} bad[] = {
		{ 0, 0, GMEM_PRIVATE, 0 },
		{ 1, PS, GMEM_PRIVATE, 0 },
		{ 0, PS + 1, GMEM_PRIVATE, 0 },
		{ 0, size + PS, GMEM_PRIVATE, 0 },
		{ size, PS, GMEM_PRIVATE, 0 },
		{ PS, UINT64_MAX - PS + 1, GMEM_PRIVATE, 0 },
		{ UINT64_MAX - PS + 1, PS, GMEM_PRIVATE, 0 },
		{ 0, PS, GMEM_CONVERTING, 0 },
		{ 0, PS, 7, 0 },
		{ 0, PS, GMEM_PRIVATE, 1u << 5 },
		{ 0, PS, GMEM_PRIVATE, GMEM_CONVERT_WAIT | GMEM_CONVERT_DEFER },
	};

	gmem_get_stats(f.g, &before);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ(gmem_convert(f.g, bad[i].off, bad[i].len, bad[i].to, bad[i].flags, &eoff),
			 -EINVAL);
	CHECK_EQ(gmem_convert(NULL, 0, PS, GMEM_PRIVATE, 0, NULL), -EINVAL);
	gmem_get_stats(f.g, &after);
	CHECK(!memcmp(&before, &after, sizeof(before)));
	CHECK_EQ(eoff, 12345);
	for (uint64_t p = 0; p < f.npages; p++)
		CHECK_EQ(gmem_state(f.g, p * PS), GMEM_SHARED);
	CHECK_EQ(gmem_state(f.g, size), -EINVAL);
	CHECK_EQ(gmem_state(f.g, UINT64_MAX), -EINVAL);
	CHECK_EQ(gmem_state(NULL, 0), -EINVAL);
	CHECK_EQ(gmem_state(f.g, PS + 5), GMEM_SHARED); /* any byte offset */
	teardown(&f);
}

/*
 * A page mapped again after a round trip is unmapped by the next
 * conversion.  On hugetlbfs the view maps the huge page whole after a
 * touch of another piece: a conversion of the piece that went and came
 * back found no mark of its own, skipped the zap, and the host read the
 * guest's secret there.
 */
TEST_OPTS(convert_after_round_trip_unmaps, .subset = B_HUGETLB_1G)
{
	struct fixture f = setup(env, 8 * PS, 0);

	host_rmw(&f, 0, -1, 'A'); /* maps page 0 (and on hugetlbfs, the huge page) */
	convert(&f, 5, 1, GMEM_PRIVATE);
	convert(&f, 5, 1, GMEM_SHARED);
	host_rmw(&f, 7, -1, 'A'); /* maps it again, through another page */
	convert(&f, 5, 1, GMEM_PRIVATE);
	guest_rmw(&f, 5, -1, 'S');
	CHECK_OK(gmem_audit(f.g));
	host_denied(&f, 5);
	if (f.huge)
		host_denied(&f, 7);
	else
		host_rmw(&f, 7, 'A', 'B');
	teardown(&f);
}
