// SPDX-License-Identifier: MIT
/*
 * test_view.c - host views: strict views (refuse at map time, block
 * conversions), partial views, unmapping, and fork (the kernel's
 * forked_accesses: views are not inherited).
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

TEST(strict_view_refuses_private_at_map_time)
{
	struct gmem *g = tg_create(env, 8 * PS, 0, 0);
	void *v = NULL;

	CHECK_OK(gmem_convert(g, 5 * PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_EQ(gmem_view_map(g, 0, 8 * PS, GMEM_VIEW_STRICT, &v), -EACCES);
	CHECK_EQ(gmem_view_map(g, 5 * PS, PS, GMEM_VIEW_STRICT, &v), -EACCES);
	CHECK(v == NULL);
	CHECK_OK(gmem_view_map(g, 0, 5 * PS, GMEM_VIEW_STRICT, &v));
	CHECK_OK(gmem_view_unmap(g, v));
	CHECK_OK(gmem_destroy(g));
}

TEST(strict_view_blocks_conversion)
{
	struct gmem *g = tg_create(env, 16 * PS, 0, 0);
	const unsigned int flags[] = { 0, GMEM_CONVERT_WAIT, GMEM_CONVERT_DEFER };
	char *v = NULL;
	void *sv;

	CHECK_OK(gmem_view_map(g, 4 * PS, 4 * PS, GMEM_VIEW_STRICT, &sv));
	v = sv;
	fill_page(v, 4, 1);
	for (size_t i = 0; i < 3; i++) {
		uint64_t eoff = 0;

		CHECK_EQ(gmem_convert(g, 0, 16 * PS, GMEM_PRIVATE, flags[i], &eoff), -EBUSY);
		CHECK_EQ(eoff, 4 * PS);
		CHECK_EQ(gmem_convert(g, 6 * PS, 4 * PS, GMEM_PRIVATE, flags[i], &eoff), -EBUSY);
		CHECK_EQ(eoff, 6 * PS);
	}
	/* pages outside it convert; the strict view still works */
	CHECK_OK(gmem_convert(g, 8 * PS, 8 * PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, 0, NULL));
	CHECK(page_has(v, 4, 1));
	CHECK_OK(gmem_view_unmap(g, sv));
	CHECK_OK(gmem_convert(g, 0, 16 * PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_destroy(g));
}

/* A strict view cannot be mapped over a deferred conversion in transit. */
TEST(strict_view_refuses_converting)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	void *v;

	CHECK_OK(gmem_pin(g, 0, PS, 0));
	CHECK_EQ(gmem_convert(g, 0, 2 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL), -EINPROGRESS);
	CHECK_EQ(gmem_view_map(g, PS, PS, GMEM_VIEW_STRICT, &v), -EACCES);
	CHECK_OK(gmem_view_map(g, 2 * PS, PS, GMEM_VIEW_STRICT, &v));
	CHECK_OK(gmem_unpin(g, 0, PS, 0));
	CHECK_OK(gmem_destroy(g));
}

/* A view of part of the object maps exactly that part. */
TEST(partial_views_map_their_range)
{
	struct gmem *g = tg_create(env, 8 * PS, 0, 0);
	char *whole = tg_view(g, 0);
	void *pv;
	char *part;

	for (uint64_t p = 0; p < 8; p++)
		fill_page(whole + p * PS, p, 2);
	CHECK_OK(gmem_view_map(g, 3 * PS, 2 * PS, 0, &pv));
	part = pv;
	CHECK(page_has(part, 3, 2));
	CHECK(page_has(part + PS, 4, 2));
	CHECK_OK(gmem_convert(g, 4 * PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_EQ(touch(part + PS, false, NULL, NULL), env->sig);
	CHECK(page_has(part, 3, 2));
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

TEST(view_map_invalid_args)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	uint64_t size = gmem_size(g);
	void *v = (void *)1;

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

/* Views and the guest mapping are not inherited; the parent's keep working. */
TEST(forked_accesses)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	char *v = tg_view(g, 0);
	void *guest;
	int status;
	pid_t pid;

	CHECK_OK(gmem_guest_map(g, &guest));
	fill_page(v, 0, 1);
	CHECK_OK(gmem_convert(g, PS, PS, GMEM_PRIVATE, 0, NULL));
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		siginfo_t si;

		/* nothing is mapped here, shared or not */
		if (touch(v, false, NULL, &si) != SIGSEGV || si.si_code != SEGV_MAPERR)
			_exit(1);
		if (touch(v + PS, false, NULL, &si) != SIGSEGV || si.si_code != SEGV_MAPERR)
			_exit(2);
		if (touch(guest, false, NULL, &si) != SIGSEGV || si.si_code != SEGV_MAPERR)
			_exit(3);
		_exit(0);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK(page_has(v, 0, 1));
	CHECK_EQ(touch(v + PS, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_convert(g, PS, PS, GMEM_SHARED, 0, NULL));
	fill_page(v + PS, 1, 1);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

TEST(many_views)
{
	struct gmem *g = tg_create(env, 64 * PS, 0, 0);
	char *views[40];

	for (int i = 0; i < 40; i++) {
		void *v;

		CHECK_OK(gmem_view_map(g, (uint64_t)i * PS, 8 * PS, 0, &v));
		views[i] = v;
	}
	fill_page(views[10], 10, 5);
	for (int i = 3; i <= 10; i++)
		CHECK(page_has(views[i] + (uint64_t)(10 - i) * PS, 10, 5));
	CHECK_OK(gmem_convert(g, 10 * PS, PS, GMEM_PRIVATE, 0, NULL));
	for (int i = 3; i <= 10; i++)
		CHECK_EQ(touch(views[i] + (uint64_t)(10 - i) * PS, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_audit(g));
	for (int i = 0; i < 40; i += 2)
		CHECK_OK(gmem_view_unmap(g, views[i]));
	CHECK_OK(gmem_convert(g, 10 * PS, PS, GMEM_SHARED, 0, NULL));
	CHECK(page_has(views[9] + PS, 10, 5));
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

	CHECK_OK(gmem_view_map(g, 0, 2 * PS, 0, slot));
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
	_Atomic bool stop;
};

static void *unmap_behind(void *arg)
{
	struct strict_race *r = arg;

	while (!atomic_load(&r->stop)) {
		void *p;

		if (!gmem_view_map(r->g, 64 * PS, 16 * PS, 0, &p))
			munmap(p, 16 * PS);
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
	struct strict_race r = { .g = tg_create(env, 128 * PS, 0, 0) };
	struct timespec t0, t;
	long maps = 0;
	pthread_t th[3];

	CHECK_OK(pthread_create(&th[0], NULL, unmap_behind, &r));
	CHECK_OK(pthread_create(&th[1], NULL, unmap_behind, &r));
	CHECK_OK(pthread_create(&th[2], NULL, flip_page, &r));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		void *p;

		if (!gmem_view_map(r.g, 0, 16 * PS, GMEM_VIEW_STRICT, &p)) {
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
