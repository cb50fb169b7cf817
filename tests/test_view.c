// SPDX-License-Identifier: MIT
/*
 * test_view.c - host views: strict views (refuse at map time, block
 * conversions), partial views, unmapping, and fork (the kernel's
 * forked_accesses: views are not inherited).  On hugetlbfs views cover
 * whole huge pages: ranges count in the view unit, U.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define U env_view_unit(env)

/* Page 5 private: no strict view over it (on hugetlbfs, over its huge page, the second). */
TEST(strict_view_refuses_private_at_map_time)
{
	const uint64_t base = env_hugetlb(env) ? U : 0; /* the huge page holding page 5 */
	struct gmem *g = tg_create(env, base + 8 * PS, 0, 0);
	void *v = NULL;

	CHECK_OK(gmem_convert(g, base + 5 * PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_EQ(gmem_view_map(g, 0, gmem_size(g), GMEM_VIEW_STRICT, &v), -EACCES);
	CHECK_EQ(gmem_view_map(g, base ? base : 5 * PS, U, GMEM_VIEW_STRICT, &v), -EACCES);
	CHECK(v == NULL);
	CHECK_OK(gmem_view_map(g, 0, base ? base : 5 * PS, GMEM_VIEW_STRICT, &v));
	CHECK_OK(gmem_view_unmap(g, v));
	CHECK_OK(gmem_destroy(g));
}

TEST(strict_view_blocks_conversion)
{
	struct gmem *g = tg_create(env, 4 * U, 0, 0);
	const unsigned int flags[] = { 0, GMEM_CONVERT_WAIT, GMEM_CONVERT_DEFER };
	char *v = NULL;
	void *sv;

	CHECK_OK(gmem_view_map(g, U, 2 * U, GMEM_VIEW_STRICT, &sv));
	v = sv;
	fill_page(v, 1, 1);
	for (size_t i = 0; i < 3; i++) {
		uint64_t eoff = 0;

		CHECK_EQ(gmem_convert(g, 0, 4 * U, GMEM_PRIVATE, flags[i], &eoff), -EBUSY);
		CHECK_EQ(eoff, U);
		CHECK_EQ(gmem_convert(g, 2 * U, 2 * U, GMEM_PRIVATE, flags[i], &eoff), -EBUSY);
		CHECK_EQ(eoff, 2 * U);
	}
	/* pages outside it convert; the strict view still works */
	CHECK_OK(gmem_convert(g, 3 * U, U, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_convert(g, 0, U, GMEM_PRIVATE, 0, NULL));
	CHECK(page_has(v, 1, 1));
	CHECK_OK(gmem_view_unmap(g, sv));
	CHECK_OK(gmem_convert(g, 0, 4 * U, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_destroy(g));
}

/*
 * A strict view cannot be mapped over a deferred conversion in transit.
 * On hugetlbfs there is none: the pin refuses the conversion, and a strict
 * view of the pages, all shared, maps.
 */
TEST(strict_view_refuses_converting)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	void *v;

	CHECK_OK(gmem_pin(g, 0, PS, 0));
	if (env_hugetlb(env)) {
		CHECK_EQ(gmem_convert(g, 0, 2 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL), -EAGAIN);
		CHECK_EQ(gmem_state(g, PS), GMEM_SHARED);
		CHECK_OK(gmem_view_map(g, 0, U, GMEM_VIEW_STRICT, &v));
	} else {
		CHECK_EQ(gmem_convert(g, 0, 2 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL),
			 -EINPROGRESS);
		CHECK_EQ(gmem_view_map(g, PS, PS, GMEM_VIEW_STRICT, &v), -EACCES);
		CHECK_OK(gmem_view_map(g, 2 * PS, PS, GMEM_VIEW_STRICT, &v));
	}
	CHECK_OK(gmem_unpin(g, 0, PS, 0));
	CHECK_OK(gmem_destroy(g));
}

/*
 * A view of part of the object maps exactly that part.  On hugetlbfs a
 * shared piece of its private page's huge page is refused with it.
 */
TEST(partial_views_map_their_range)
{
	struct gmem *g = tg_create(env, 8 * U, 0, 0);
	char *whole = tg_view(g, 0);
	void *pv;
	char *part;

	for (uint64_t p = 0; p < 8; p++)
		fill_page(whole + p * U, p, 2);
	CHECK_OK(gmem_view_map(g, 3 * U, 2 * U, 0, &pv));
	part = pv;
	CHECK(page_has(part, 3, 2));
	CHECK(page_has(part + U, 4, 2));
	CHECK_OK(gmem_convert(g, 4 * U, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_EQ(touch(part + U, false, NULL, NULL), env->sig);
	if (env_hugetlb(env))
		CHECK_EQ(touch(part + 2 * U - PS, false, NULL, NULL), env->sig);
	CHECK(page_has(part, 3, 2));
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/* (And on hugetlbfs, ranges not of whole huge pages.) */
TEST_OPTS(view_map_invalid_args, .subset = B_HUGETLB_1G)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	uint64_t size = gmem_size(g);
	void *v = (void *)1;

	if (env_hugetlb(env)) {
		CHECK_EQ(gmem_view_map(g, PS, size - PS, 0, &v), -EINVAL);
		CHECK_EQ(gmem_view_map(g, 0, size - PS, 0, &v), -EINVAL);
		CHECK_EQ(gmem_view_map(g, 0, PS, 0, &v), -EINVAL);
		CHECK_EQ(gmem_view_map(g, 0, PS, GMEM_VIEW_STRICT, &v), -EINVAL);
	}

	CHECK_EQ(gmem_view_map(g, 0, 0, 0, &v), -EINVAL);
	CHECK_EQ(gmem_view_map(g, 1, PS, 0, &v), -EINVAL);
	CHECK_EQ(gmem_view_map(g, 0, size + PS, 0, &v), -EINVAL);
	CHECK_EQ(gmem_view_map(g, size, PS, 0, &v), -EINVAL);
	CHECK_EQ(gmem_view_map(g, PS, UINT64_MAX - PS + 1, 0, &v), -EINVAL);
	CHECK_EQ(gmem_view_map(g, 0, PS, 1u << 4, &v), -EINVAL);
	CHECK_EQ(gmem_view_map(g, 0, PS, 0, NULL), -EINVAL);
	CHECK_EQ(gmem_view_map(NULL, 0, PS, 0, &v), -EINVAL);
	CHECK(v == (void *)1);
	CHECK_OK(gmem_destroy(g));
}

TEST(view_unmap_takes_only_view_addresses)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	char *v = tg_view(g, 0);
	void *guest;

	CHECK_OK(gmem_guest_map(g, &guest));
	CHECK_EQ(gmem_view_unmap(g, v + PS), -EINVAL);
	CHECK_EQ(gmem_view_unmap(g, guest), -EINVAL);
	CHECK_EQ(gmem_view_unmap(g, NULL), -EINVAL);
	CHECK_EQ(gmem_view_unmap(NULL, v), -EINVAL);
	fill_page(v, 0, 1); /* still mapped */
	CHECK_OK(gmem_view_unmap(g, v));
	CHECK_EQ(gmem_view_unmap(g, v), -EINVAL);
	CHECK_EQ(touch(v, false, NULL, NULL), SIGSEGV); /* gone */
	CHECK_OK(gmem_destroy(g));
}

/*
 * Views and the guest mapping are not inherited; the parent's keep working.
 * (Pages 0 and 1 are U apart: on hugetlbfs, in two huge pages.)
 */
TEST(forked_accesses)
{
	struct gmem *g = tg_create(env, 2 * U, 0, 0);
	char *v = tg_view(g, 0);
	void *guest;
	int status;
	pid_t pid;

	CHECK_OK(gmem_guest_map(g, &guest));
	fill_page(v, 0, 1);
	CHECK_OK(gmem_convert(g, U, PS, GMEM_PRIVATE, 0, NULL));
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		siginfo_t si;

		/* nothing is mapped here, shared or not */
		if (touch(v, false, NULL, &si) != SIGSEGV || si.si_code != SEGV_MAPERR)
			_exit(1);
		if (touch(v + U, false, NULL, &si) != SIGSEGV || si.si_code != SEGV_MAPERR)
			_exit(2);
		if (touch(guest, false, NULL, &si) != SIGSEGV || si.si_code != SEGV_MAPERR)
			_exit(3);
		_exit(0);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK(page_has(v, 0, 1));
	CHECK_EQ(touch(v + U, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_convert(g, U, PS, GMEM_SHARED, 0, NULL));
	fill_page(v + U, 1, 1);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/*
 * 40 views overlapping in every way: view i covers pages [i % 8, i % 8 + 4)
 * of 12, and page 5 refuses in every view covering it.
 */
TEST(many_views)
{
	struct gmem *g = tg_create(env, 12 * U, 0, 0);
	char *views[40];

	for (int i = 0; i < 40; i++) {
		void *v;

		CHECK_OK(gmem_view_map(g, (uint64_t)(i % 8) * U, 4 * U, 0, &v));
		views[i] = v;
	}
	fill_page(views[5], 5, 5);
	for (int i = 0; i < 40; i++)
		if (i % 8 >= 2 && i % 8 <= 5)
			CHECK(page_has(views[i] + (uint64_t)(5 - i % 8) * U, 5, 5));
	CHECK_OK(gmem_convert(g, 5 * U, PS, GMEM_PRIVATE, 0, NULL));
	for (int i = 0; i < 40; i++)
		if (i % 8 >= 2 && i % 8 <= 5)
			CHECK_EQ(touch(views[i] + (uint64_t)(5 - i % 8) * U, false, NULL, NULL),
				 env->sig);
	CHECK_OK(gmem_audit(g));
	for (int i = 0; i < 40; i += 2)
		CHECK_OK(gmem_view_unmap(g, views[i]));
	CHECK_OK(gmem_convert(g, 5 * U, PS, GMEM_SHARED, 0, NULL));
	CHECK(page_has(views[3] + 2 * U, 5, 5));
	CHECK_OK(gmem_destroy(g)); /* unmaps the rest */
}

/*
 * The address gmem_view_map() returns may be stored in a view (a page of
 * shared memory a device reads its queue from, say): the store faults.  It
 * was made with the object's lock held, which the fault needs: the call
 * never returned.
 */
TEST_OPTS(view_map_result_stored_in_a_view, .timeout_s = 15)
{
	struct gmem *g = tg_create(env, 8 * PS, 0, 0);
	char *v = tg_view(g, 0);
	void **slot = (void **)(v + 3 * PS); /* shared, never touched */

	CHECK_OK(gmem_view_map(g, 0, env_hugetlb(env) ? U : 2 * PS, 0, slot));
	CHECK(*slot != NULL && *slot != v);
	CHECK_OK(gmem_view_unmap(g, *slot));
	CHECK_OK(gmem_destroy(g));
}

/*
 * A strict view's check and its insertion, with other threads unmapping
 * views behind the library's back (so that a new view may have to wait for
 * their notices, the lock dropped) and converting the page: a strict view
 * was returned over a private page about once in seven hundred.
 */
struct strict_race {
	struct gmem *g;
	uint64_t len; /* of the views: 16 pages, or a hugetlbfs page */
	_Atomic bool stop;
};

static void *unmap_behind(void *arg)
{
	struct strict_race *r = arg;

	while (!atomic_load(&r->stop)) {
		void *p;

		if (!gmem_view_map(r->g, gmem_size(r->g) / 2, r->len, 0, &p))
			munmap(p, r->len);
	}
	return NULL;
}

static void *flip_page(void *arg)
{
	struct strict_race *r = arg;

	while (!atomic_load(&r->stop)) {
		gmem_convert(r->g, 0, PS, GMEM_PRIVATE, 0, NULL);
		gmem_convert(r->g, 0, PS, GMEM_SHARED, 0, NULL);
	}
	return NULL;
}

TEST_OPTS(strict_view_never_over_private, .timeout_s = 30, .skip = ONE_SIGNAL_EACH,
	  .why = "2 s of strict views racing conversions, no host touch: one signal a backing")
{
	const uint64_t len = env_hugetlb(env) ? U : 16 * PS;
	struct strict_race r = { .g = tg_create(env, 8 * len, 0, 0), .len = len };
	struct timespec t0, t;
	long maps = 0;
	pthread_t th[3];

	CHECK_OK(pthread_create(&th[0], NULL, unmap_behind, &r));
	CHECK_OK(pthread_create(&th[1], NULL, unmap_behind, &r));
	CHECK_OK(pthread_create(&th[2], NULL, flip_page, &r));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		void *p;

		if (!gmem_view_map(r.g, 0, r.len, GMEM_VIEW_STRICT, &p)) {
			maps++;
			/* while it exists, the page cannot turn private */
			if (gmem_state(r.g, 0) != GMEM_SHARED)
				test_fail(__FILE__, __LINE__, "a strict view over a %s page",
					  gmem_state(r.g, 0) == GMEM_PRIVATE ? "private" : "converting");
			CHECK_OK(gmem_view_unmap(r.g, p));
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (t.tv_sec - t0.tv_sec < 2);
	atomic_store(&r.stop, true);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	CHECK(maps > 0);
	CHECK_OK(gmem_destroy(r.g));
}
