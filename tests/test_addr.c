// SPDX-License-Identifier: MIT
/*
 * test_addr.c - gmem_addr_offset(): a fault address back to its object and
 * offset, from inside a signal handler, while views come and go.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/*
 * Views cover multiples of U, the view unit: 4 KiB, or a hugetlbfs page
 * (sizes and offsets below count in it).
 */
#define U env_view_unit(env)

TEST(addr_offset_guest_and_views)
{
	struct gmem *g = tg_create(env, 8 * U, 0, 0);
	char *guest, *v1, *v2, other[16];
	uint64_t off = 0;
	int kind = 0;

	CHECK_OK(gmem_guest_map(g, (void **)&guest));
	CHECK_OK(gmem_view_map(g, 2 * U, 4 * U, 0, (void **)&v1));
	CHECK_OK(gmem_view_map(g, 0, gmem_size(g), 0, (void **)&v2));

	CHECK_OK(gmem_addr_offset(g, guest + 5 * U + 7, &off, &kind));
	CHECK_EQ(off, 5 * U + 7);
	CHECK_EQ(kind, GMEM_ADDR_GUEST);
	CHECK_OK(gmem_addr_offset(g, v1 + U + 3, &off, &kind));
	CHECK_EQ(off, 3 * U + 3);
	CHECK_EQ(kind, GMEM_ADDR_VIEW);
	CHECK_OK(gmem_addr_offset(g, v1 + 4 * U - 1, &off, &kind));
	CHECK_EQ(off, 6 * U - 1);
	CHECK_OK(gmem_addr_offset(g, v2 + gmem_size(g) - 1, &off, &kind));
	CHECK_EQ(off, gmem_size(g) - 1);

	CHECK_EQ(gmem_addr_offset(g, other, &off, &kind), -ENOENT);
	CHECK_EQ(gmem_addr_offset(g, guest + gmem_size(g), &off, &kind), -ENOENT);
	CHECK_EQ(gmem_addr_offset(g, NULL, &off, &kind), -ENOENT);
	CHECK_EQ(gmem_addr_offset(NULL, guest, &off, &kind), -EINVAL);
	CHECK_EQ(gmem_addr_offset(g, guest, NULL, &kind), -EINVAL);
	CHECK_EQ(gmem_addr_offset(g, guest, &off, NULL), -EINVAL);

	/* gone with the view */
	CHECK_OK(gmem_view_unmap(g, v1));
	CHECK_EQ(gmem_addr_offset(g, v1 + U, &off, &kind), -ENOENT);
	CHECK_OK(gmem_destroy(g));
}

static struct gmem *handler_g;
static __thread sigjmp_buf *volatile handler_jmp;
static __thread int handler_err, handler_kind;
static __thread uint64_t handler_off;
static __thread void *handler_addr;

/* What a VMM's handler does: is this ours, and where? */
static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	handler_addr = si->si_addr;
	handler_err = gmem_addr_offset(handler_g, si->si_addr, &handler_off, &handler_kind);
	siglongjmp(*handler_jmp, sig);
}

/* Touch a; the signal it raised (0 if none), with the handler's answer in handler_*. */
static int touch_asking(volatile char *a)
{
	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO }, old_bus, old_segv;
	sigjmp_buf jb;
	int sig;

	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	sig = sigsetjmp(jb, 1);
	if (!sig) {
		handler_jmp = &jb;
		(void)*a;
	}
	handler_jmp = NULL;
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
	return sig;
}

/*
 * A refused touch, asked about in the handler, under the environment's
 * fault signal.  On hugetlbfs the view is the second huge page, and a
 * shared piece of it is refused as well as the private one.
 */
TEST_OPTS(addr_offset_in_handler, .subset = B_HUGETLB_1G)
{
	const uint64_t base = env_hugetlb(env) ? U : 4 * PS; /* the view's offset */
	struct gmem *g = tg_create(env, base + 4 * PS, 0, 0);
	char *v;

	CHECK_OK(gmem_view_map(g, base, gmem_size(g) - base, 0, (void **)&v));
	CHECK_OK(gmem_convert(g, base + 2 * PS, PS, GMEM_PRIVATE, 0, NULL));
	handler_g = g;
	CHECK_EQ(touch_asking(v + 2 * PS + 9), env->sig);
	CHECK(handler_addr == v + 2 * PS + 9);
	CHECK_OK(handler_err);
	CHECK_EQ(handler_kind, GMEM_ADDR_VIEW);
	CHECK_EQ(handler_off, base + 2 * PS + 9);
	if (env_hugetlb(env)) {
		CHECK_EQ(touch_asking(v + 3 * PS + 1), env->sig);
		CHECK(handler_addr == v + 3 * PS + 1);
		CHECK_OK(handler_err);
		CHECK_EQ(handler_off, base + 3 * PS + 1);
	}
	CHECK_OK(gmem_destroy(g));
}

/* Not gmem's fault: the handler learns -ENOENT and can pass it on. */
TEST(addr_offset_other_fault_in_handler)
{
	struct gmem *g = tg_create(env, PS, 0, 0);
	char *p = mmap(NULL, PS, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(p != MAP_FAILED);
	handler_g = g;
	CHECK_EQ(touch_asking(p + 1), SIGSEGV);
	CHECK_EQ(handler_err, -ENOENT);
	CHECK_OK(munmap(p, PS));
	CHECK_OK(gmem_destroy(g));
}

/* Moved or unmapped by the process: found where it is once the library has read it. */
TEST(addr_offset_follows_mremap_and_munmap)
{
	struct gmem *g = tg_create(env, 8 * U, 0, 0);
	char *v, *dst, *w;
	uint64_t off = 0;
	int kind = 0, err = -ENOENT;
	struct timespec ms = { 0, 1000000 };

	CHECK_OK(gmem_view_map(g, 0, 8 * U, 0, (void **)&v));
	dst = tg_reserve(env, 8 * U);
	w = mremap(v, 8 * U, 8 * U, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	CHECK(w == dst);
	for (int i = 0; i < 1000 && err; i++) {
		err = gmem_addr_offset(g, w + 3 * U, &off, &kind);
		if (err)
			nanosleep(&ms, NULL);
	}
	CHECK_OK(err);
	CHECK_EQ(off, 3 * U);
	CHECK_EQ(kind, GMEM_ADDR_VIEW);
	CHECK_EQ(gmem_addr_offset(g, v + 3 * U, &off, &kind), -ENOENT);

	CHECK_OK(munmap(w + 4 * U, 4 * U));
	for (int i = 0; i < 1000 && !err; i++) {
		err = gmem_addr_offset(g, w + 5 * U, &off, &kind);
		if (!err)
			nanosleep(&ms, NULL);
	}
	CHECK_EQ(err, -ENOENT);
	CHECK_OK(gmem_addr_offset(g, w + U, &off, &kind));
	CHECK_EQ(off, U);
	CHECK_OK(gmem_destroy(g));
}

struct churn {
	struct gmem *g;
	uint64_t unit; /* the view unit */
	atomic_bool stop;
	atomic_ulong rounds;
};

static void *map_unmap(void *arg)
{
	struct churn *c = arg;

	while (!atomic_load(&c->stop)) {
		void *a, *b;

		if (gmem_view_map(c->g, c->unit, c->unit, 0, &a) ||
		    gmem_view_map(c->g, 0, 2 * c->unit, 0, &b))
			break;
		gmem_view_unmap(c->g, a);
		gmem_view_unmap(c->g, b);
		atomic_fetch_add(&c->rounds, 1);
	}
	return NULL;
}

/* A lookup racing views made and unmapped in another thread is never wrong. */
TEST(addr_offset_while_views_change)
{
	struct churn c = { .g = tg_create(env, 4 * U, 0, 0), .unit = U };
	struct timespec t0, t;
	pthread_t th;
	char *v;
	unsigned long looks = 0, again = 0;

	CHECK_OK(gmem_view_map(c.g, 2 * U, 2 * U, 0, (void **)&v));
	CHECK_OK(pthread_create(&th, NULL, map_unmap, &c));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		uint64_t off = 0;
		int kind = 0, err = gmem_addr_offset(c.g, v + U + 1, &off, &kind);

		looks++;
		if (err == -EAGAIN) {
			again++;
		} else {
			CHECK_OK(err);
			CHECK_EQ(off, 3 * U + 1);
			CHECK_EQ(kind, GMEM_ADDR_VIEW);
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 300);
	atomic_store(&c.stop, true);
	CHECK_OK(pthread_join(th, NULL));
	CHECK(atomic_load(&c.rounds) > 0);
	CHECK(again * 100 < looks); /* another thread's rewrite is brief */
	CHECK_OK(gmem_destroy(c.g));
}
