// SPDX-License-Identifier: MIT
/*
 * test_tamper.c - views changed behind the library's back: munmap, mmap
 * over them, mremap (moved, shrunk, grown), MADV_DOFORK and fork,
 * MADV_REMOVE.  The library follows what the process does (userfaultfd's
 * unmap, remap and fork events), refuses what it cannot place, and the
 * one thing it cannot stop - a hole punched through a view - is shown
 * doing what docs/SECURITY.md says it does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static const char SECRET[] = "the guest's, never the host's";

/*
 * Pages are U apart, the view unit: on hugetlbfs each is a huge page,
 * which views map, move, unmap and refuse whole; a private 4 KiB piece
 * (at its start) makes the whole page refused.
 */
#define U env_view_unit(env)

/* 8 pages, page p filled with seed 1; page 5 private, holding SECRET. */
static struct gmem *setup(const struct env *env, char **guest)
{
	struct gmem *g = tg_create(env, 8 * U, 0, 0);

	CHECK_OK(gmem_guest_map(g, (void **)guest));
	for (uint64_t p = 0; p < 8; p++)
		fill_page(*guest + p * U, p, 1);
	CHECK_OK(gmem_convert(g, 5 * U, PS, GMEM_PRIVATE, 0, NULL));
	memcpy(*guest + 5 * U, SECRET, sizeof(SECRET));
	return g;
}

/* The page at a is refused with sig at the exact address. */
static void refused_with(char *a, int sig)
{
	siginfo_t si;

	CHECK_EQ(touch(a + 17, false, NULL, &si), sig);
	CHECK(si.si_addr == a + 17);
}

/* A private page of a view: refused with the object's signal. */
static void refused(const struct env *e, char *a)
{
	refused_with(a, e->sig);
}

/* What no view covers (a part a view was grown by): SIGBUS, whatever the policy. */
static void refused_unplaced(char *a)
{
	refused_with(a, SIGBUS);
}

/*
 * mremap() moving a view kept its pages but lost the registration: the
 * moved view read private pages.  Now it is followed: refusals and
 * conversions work at the new address, and it unmaps from there.
 */
TEST(mremap_moved_view_is_followed)
{
	char *guest, *v, *w, *dst;
	struct gmem *g = setup(env, &guest);

	v = tg_view(g, 0);
	CHECK(page_has(v + 4 * U, 4, 1)); /* mapped before the move */
	dst = tg_reserve(env, 8 * U);
	w = mremap(v, 8 * U, 8 * U, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	CHECK(w == dst);
	refused(env, w + 5 * U);
	CHECK(page_has(w + 4 * U, 4, 1));
	CHECK(page_has(w + 6 * U, 6, 1));
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_convert(g, 4 * U, PS, GMEM_PRIVATE, 0, NULL));
	refused(env, w + 4 * U);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_convert(g, 4 * U, 2 * U, GMEM_SHARED, 0, NULL));
	CHECK(!memcmp(w + 5 * U, SECRET, sizeof(SECRET))); /* shared now: the host may */
	CHECK_EQ(gmem_view_unmap(g, v), -EINVAL);
	CHECK_OK(gmem_view_unmap(g, w));
	CHECK_OK(gmem_destroy(g));
}

/*
 * After munmap() of a view, a new view at the same address was served from
 * the stale record - the old view's offsets - and mapped a private page.
 */
TEST(munmap_then_new_view_at_same_address)
{
	char *guest, *a, *b;
	struct gmem *g = setup(env, &guest);

	CHECK_OK(gmem_view_map(g, 0, 4 * U, 0, (void **)&a));
	CHECK(page_has(a + U, 1, 1));
	CHECK_OK(munmap(a, 4 * U));
	CHECK_OK(gmem_view_map(g, 4 * U, 4 * U, 0, (void **)&b));
	if (b != a)
		SKIP("the kernel placed the new view elsewhere");
	refused(env, b + U);
	CHECK(page_has(b, 4, 1));
	CHECK(page_has(b + 2 * U, 6, 1));
	CHECK_OK(gmem_audit(g));
	CHECK_EQ(gmem_view_unmap(g, a + 4 * U), -EINVAL);
	CHECK_OK(gmem_view_unmap(g, b));
	CHECK_OK(gmem_destroy(g));
}

/*
 * What takes the address of a view unmapped behind the library's back is
 * not the library's: a conversion did MADV_DONTNEED over it (an anonymous
 * mapping's data was lost), and gmem_view_unmap() of that address unmapped
 * it.  Both by munmap() and by mmap(MAP_FIXED) over the view.
 */
TEST(stale_view_address_left_alone)
{
	for (int how = 0; how < 2; how++) {
		char *guest, *v, *anon;
		struct gmem *g = setup(env, &guest);

		v = tg_view(g, 0);
		CHECK(page_has(v + 4 * U, 4, 1));
		if (how == 0) {
			CHECK_OK(munmap(v, 8 * U));
			anon = mmap(v, 8 * U, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		} else {
			anon = mmap(v, 8 * U, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		}
		CHECK(anon == v);
		for (uint64_t p = 0; p < 8; p++)
			fill_page(anon + p * U, p, 9);
		CHECK_OK(gmem_convert(g, 0, 8 * U, GMEM_PRIVATE, 0, NULL));
		CHECK_OK(gmem_convert(g, 0, 8 * U, GMEM_SHARED, 0, NULL));
		CHECK_EQ(gmem_view_unmap(g, v), -EINVAL);
		for (uint64_t p = 0; p < 8; p++)
			CHECK(page_has(anon + p * U, p, 9));
		CHECK_OK(gmem_audit(g));
		CHECK_OK(munmap(anon, 8 * U));
		CHECK_OK(gmem_destroy(g));
	}
}

/* munmap() of the middle of a view leaves two views, each working. */
TEST(partial_munmap_leaves_pieces)
{
	char *guest, *v;
	struct gmem *g = setup(env, &guest);

	v = tg_view(g, 0);
	CHECK(page_has(v + U, 1, 1));
	CHECK(page_has(v + 6 * U, 6, 1));
	CHECK_OK(munmap(v + 2 * U, 2 * U));
	refused(env, v + 5 * U);
	CHECK_OK(gmem_convert(g, 0, 8 * U, GMEM_PRIVATE, 0, NULL));
	refused(env, v + U);
	refused(env, v + 6 * U);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_convert(g, 0, 8 * U, GMEM_SHARED, 0, NULL));
	CHECK(page_has(v, 0, 1));
	CHECK(page_has(v + 7 * U, 7, 1));
	CHECK_EQ(gmem_view_unmap(g, v + 2 * U), -EINVAL);
	CHECK_OK(gmem_view_unmap(g, v + 4 * U));
	CHECK_OK(gmem_view_unmap(g, v));
	CHECK_OK(gmem_destroy(g));
}

/*
 * A view moved while a conversion runs: mremap() moves the page-table
 * entries at once and the library hears of it a moment later.  A
 * conversion in that moment zapped the old address only, returned 0, and
 * the moved view read what the guest then wrote (a few rounds in a
 * hundred).  Now a zap that finds the view gone waits for the move to be
 * applied and zaps the new address.  Three threads a round: one moves,
 * one converts and then writes the secret as the guest, this one reads
 * the page at the destination throughout.
 */
struct move_race {
	int flags; /* mremap()'s, beside MAYMOVE | FIXED */
	uint64_t unit; /* U */
	struct gmem *g;
	char *guest;
	char *volatile from, *volatile to;
	_Atomic int go_move, go_convert, moved, converted;
	_Atomic bool stop;
};

static void *race_mover(void *arg)
{
	struct move_race *m = arg;

	while (!atomic_load(&m->stop)) {
		if (!atomic_exchange(&m->go_move, 0))
			continue;
		if (mremap(m->from, 8 * m->unit, 8 * m->unit,
			   MREMAP_MAYMOVE | MREMAP_FIXED | m->flags, m->to) != m->to)
			abort();
		atomic_store(&m->moved, 1);
	}
	return NULL;
}

static void *race_converter(void *arg)
{
	struct move_race *m = arg;

	while (!atomic_load(&m->stop)) {
		if (!atomic_exchange(&m->go_convert, 0))
			continue;
		if (gmem_convert(m->g, 3 * m->unit, PS, GMEM_PRIVATE, 0, NULL))
			abort();
		memcpy(m->guest + 3 * m->unit, SECRET, sizeof(SECRET));
		atomic_store(&m->converted, 1);
	}
	return NULL;
}

static void move_during_conversion(const struct env *env, int flags)
{
	struct move_race m = { .flags = flags, .unit = U };
	char *v, buf[sizeof(SECRET)];
	struct timespec t0, t;
	pthread_t th[2];
	int rounds = 0;

	m.g = setup(env, &m.guest);
	v = tg_view(m.g, 0);
	CHECK_OK(gmem_convert(m.g, 5 * U, PS, GMEM_SHARED, 0, NULL));
	CHECK_OK(pthread_create(&th[0], NULL, race_mover, &m));
	CHECK_OK(pthread_create(&th[1], NULL, race_converter, &m));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		/*
		 * A new place each round, reserved: an address given back may be
		 * taken at once by another thread (a sanitizer's allocator), and a
		 * move there with MREMAP_FIXED would replace what it put there.
		 */
		char *to = tg_reserve(env, 8 * U);

		fill_page(m.guest + 3 * U, 3, 1);
		CHECK(page_has(v + 3 * U, 3, 1)); /* mapped when the move begins */
		m.from = v;
		m.to = to;
		atomic_store(&m.moved, 0);
		atomic_store(&m.converted, 0);
		atomic_store(&m.go_convert, 1);
		atomic_store(&m.go_move, 1);
		while (!atomic_load(&m.moved) || !atomic_load(&m.converted)) {
			if (!touch_copy(buf, to + 3 * U, sizeof(buf)) && !memcmp(buf, SECRET, sizeof(buf)))
				test_fail(__FILE__, __LINE__, "round %d: the moved view read the secret",
					  rounds);
		}
		CHECK_OK(gmem_audit(m.g));
		refused(env, to + 3 * U);
		CHECK_OK(gmem_convert(m.g, 3 * U, PS, GMEM_SHARED, 0, NULL));
		if (flags & MREMAP_DONTUNMAP)
			CHECK_OK(munmap(v, 8 * U)); /* what the move left there */
		v = to;
		rounds++;
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while (rounds < 600 && t.tv_sec - t0.tv_sec < 4);
	atomic_store(&m.stop, true);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	CHECK_OK(gmem_view_unmap(m.g, v));
	CHECK_OK(gmem_destroy(m.g));
}

TEST_OPTS(mremap_during_conversion, .skip = ONE_SIGNAL_EACH,
	  .why = "4 s of moves racing conversions: each backing under one signal, both in turn")
{
	move_during_conversion(env, 0);
}

/*
 * The same with MREMAP_DONTUNMAP, which leaves the old address mapped:
 * the zap there succeeded, found nothing, and the conversion committed
 * (nineteen rounds in twenty).  Now a conversion checks, after its zaps,
 * that no move was under way or unapplied.
 */
TEST_OPTS(mremap_dontunmap_during_conversion, .skip = ONE_SIGNAL_EACH,
	  .why = "4 s of moves racing conversions: each backing under one signal, both in turn",
	  .skip2 = B_HUGETLB | S_ANY,
	  .why2 = "mremap(MREMAP_DONTUNMAP) refuses hugetlbfs mappings (EINVAL: VM_DONTEXPAND)")
{
	move_during_conversion(env, MREMAP_DONTUNMAP);
}

/*
 * Unmapping, moving or forking views while another thread first-touches a
 * view: the kernel refuses to map while such a change is under way (the
 * userfaultfd's "mappings changing"), and the change waits for the fault
 * thread to read its event.  The fault thread retried the refused map for
 * ever: everyone hung within a second.  And a fork holds the C library's
 * malloc locks while it waits: a fault thread that allocated (or waited
 * for g->lock held by a thread that did) never read the event.  Each way
 * for half a second.
 */
struct churn {
	const struct env *env;
	struct gmem *g;
	char *slots, *touched;
	int how; /* 0 move, 1 unmap, 2 fork */
	_Atomic bool stop;
	_Atomic long changes, touches;
};

static void *churner(void *arg)
{
	struct churn *c = arg;
	char *v = c->slots;

	for (int i = 0; !atomic_load(&c->stop); i++) {
		if (c->how == 0) {
			/* a new place each time (see move_during_conversion()) */
			const struct env *env = c->env;
			char *to = tg_reserve(env, 8 * U);

			if (mremap(v, 8 * U, 8 * U, MREMAP_MAYMOVE | MREMAP_FIXED, to) != to)
				abort();
			v = to;
		} else if (c->how == 1) {
			void *w;

			if (gmem_view_map(c->g, 0, 8 * env_view_unit(c->env), 0, &w))
				abort();
			munmap(w, 8 * env_view_unit(c->env));
		} else {
			pid_t pid = fork();

			if (pid == 0)
				_exit(0);
			waitpid(pid, NULL, 0);
		}
		atomic_fetch_add(&c->changes, 1);
	}
	return NULL;
}

static void *first_toucher(void *arg)
{
	struct churn *c = arg;
	const struct env *env = c->env;

	while (!atomic_load(&c->stop)) {
		for (int p = 0; p < 8; p++)
			if (p != 5) /* the private one */
				(void)*(volatile char *)(c->touched + p * U);
		madvise(c->touched, 8 * U, MADV_DONTNEED); /* first touches again */
		atomic_fetch_add(&c->touches, 1);
	}
	return NULL;
}

TEST_OPTS(views_changed_while_touched, .timeout_s = 30, .skip = ONE_SIGNAL_EACH,
	  .why = "1.5 s of races over shared pages, which no signal refuses: one signal a backing")
{
	for (int how = 0; how < 3; how++) {
		struct churn c = { .env = env, .how = how };
		char *guest, *v;
		pthread_t th[2];

		c.g = setup(env, &guest);
		CHECK_OK(gmem_view_map(c.g, 0, 8 * U, 0, (void **)&v));
		CHECK_OK(gmem_view_map(c.g, 0, 8 * U, 0, (void **)&c.touched));
		c.slots = tg_reserve(env, 8 * U);
		CHECK(mremap(v, 8 * U, 8 * U, MREMAP_MAYMOVE | MREMAP_FIXED, c.slots) == c.slots);
		if (how == 2 && geteuid())
			SKIP("following fork needs CAP_SYS_PTRACE");
		if (how == 2)
			CHECK_OK(madvise(c.slots, 8 * U, MADV_DOFORK));
		CHECK_OK(pthread_create(&th[0], NULL, churner, &c));
		CHECK_OK(pthread_create(&th[1], NULL, first_toucher, &c));
		usleep(500000);
		atomic_store(&c.stop, true);
		pthread_join(th[0], NULL);
		pthread_join(th[1], NULL);
		CHECK(atomic_load(&c.changes) > 0 && atomic_load(&c.touches) > 0);
		CHECK_OK(gmem_audit(c.g));
		CHECK_OK(gmem_destroy(c.g));
	}
}

static bool page_has_byte(const char *p, uint8_t b)
{
	for (size_t i = 0; i < PS; i++)
		if ((uint8_t)p[i] != b)
			return false;
	return true;
}

struct convert_args {
	struct gmem *g;
	int err;
};

/* A waiting conversion of [0, 2 pages) to private. */
static void *wait_convert(void *arg)
{
	struct convert_args *a = arg;

	a->err = gmem_convert(a->g, 0, 2 * PS, GMEM_PRIVATE, GMEM_CONVERT_WAIT, NULL);
	return NULL;
}

/* Moving the middle of a view leaves three views: two in place, one moved. */
TEST(mremap_middle_of_view)
{
	char *guest, *v, *w, *dst;
	struct gmem *g = setup(env, &guest);

	v = tg_view(g, 0);
	CHECK(page_has(v + 4 * U, 4, 1));
	dst = tg_reserve(env, 3 * U);
	w = mremap(v + 4 * U, 3 * U, 3 * U, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	CHECK(w == dst);
	CHECK(page_has(w, 4, 1));
	refused(env, w + U);
	CHECK(page_has(w + 2 * U, 6, 1));
	CHECK(page_has(v + 3 * U, 3, 1));
	CHECK(page_has(v + 7 * U, 7, 1));
	CHECK_OK(gmem_convert(g, 0, 8 * U, GMEM_PRIVATE, 0, NULL));
	refused(env, v + 3 * U);
	refused(env, w);
	refused(env, v + 7 * U);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_convert(g, 0, 8 * U, GMEM_SHARED, 0, NULL));
	CHECK(!memcmp(w + U, SECRET, sizeof(SECRET)));
	CHECK_OK(gmem_view_unmap(g, v));
	CHECK_OK(gmem_view_unmap(g, w));
	CHECK_OK(gmem_view_unmap(g, v + 7 * U));
	CHECK_OK(gmem_destroy(g));
}

/*
 * A view grown with mremap(): the new part is registered with the library
 * but is no view of it.  A touch there spun for ever (woken unresolved);
 * now it is refused, like every touch the library cannot place.
 */
TEST_OPTS(mremap_grown_view_refuses_new_part, .timeout_s = 15, .skip = B_HUGETLB | S_ANY,
	  .why = "mremap() cannot grow a hugetlbfs mapping (EINVAL): no part to refuse")
{
	char *guest, *v, *w;
	struct gmem *g = setup(env, &guest);

	CHECK_OK(gmem_view_map(g, 0, 4 * U, 0, (void **)&v));
	CHECK(page_has(v + 3 * U, 3, 1));
	w = mremap(v, 4 * U, 8 * U, MREMAP_MAYMOVE);
	CHECK(w != MAP_FAILED);
	CHECK(page_has(w + 3 * U, 3, 1)); /* the view, moved */
	for (uint64_t p = 4; p < 8; p++)
		refused_unplaced(w + p * U);
	CHECK_OK(gmem_audit(g));
	/* in place, where the address space allows it */
	if (mremap(w, 8 * U, 8 * U, 0) == w && !munmap(w + 4 * U, 4 * U) &&
	    mremap(w, 4 * U, 6 * U, 0) == w)
		refused_unplaced(w + 5 * U);
	CHECK_OK(gmem_view_unmap(g, w));
	CHECK_OK(gmem_destroy(g));
}

/*
 * MADV_DOFORK undoes the library's MADV_DONTFORK; the child's copies were
 * plain mappings of the file and read private pages.  Every touch in the
 * child is refused now; the parent's view is unchanged.
 */
TEST(dofork_child_views_refused)
{
	char *guest, *v;
	struct gmem *g = setup(env, &guest);
	int status;
	pid_t pid;

	if (geteuid())
		SKIP("following fork needs CAP_SYS_PTRACE");
	v = tg_view(g, 0);
	CHECK(page_has(v + 4 * U, 4, 1));
	CHECK_OK(madvise(v, 8 * U, MADV_DOFORK));
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		siginfo_t si;

		/* shared or private, mapped in the parent or not: refused, and with
		 * SIGBUS whatever the object's policy (gmem.h) */
		if (touch(v + 5 * U, false, NULL, &si) != SIGBUS || si.si_addr != v + 5 * U)
			_exit(1);
		if (touch(v + 4 * U, false, NULL, &si) != SIGBUS)
			_exit(2);
		if (touch(v + 7 * U, true, &(uint8_t){ 1 }, &si) != SIGBUS)
			_exit(3);
		_exit(0);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK(page_has(v + 7 * U, 7, 1));
	refused(env, v + 5 * U);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/*
 * MADV_REMOVE through a view punches the file: the kernel lets any writable
 * shared mapping do it, and no user-space library can stop it.  Outside
 * the model (docs/SECURITY.md): the host can destroy guest memory, private
 * or pinned, but it still cannot read it.
 */
TEST(madvise_remove_outside_the_model)
{
	char *guest, *v;
	struct gmem *g = setup(env, &guest);

	v = tg_view(g, 0);
	CHECK_OK(gmem_pin(g, 6 * U, PS, 0));
	CHECK_OK(madvise(v + 4 * U, 3 * U, MADV_REMOVE));
	CHECK(page_zero(guest + 5 * U)); /* the private page, gone */
	CHECK(page_zero(guest + 6 * U)); /* the pinned one too */
	CHECK_EQ(gmem_state(g, 5 * U), GMEM_PRIVATE);
	refused(env, v + 5 * U);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_unpin(g, 6 * U, PS, 0));
	CHECK_OK(gmem_destroy(g));
}

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

/*
 * MADV_COLLAPSE on a view built a huge page and mapped it into the view
 * whole - no fault for the library to decide - private pages and all.
 * Views are MADV_NOHUGEPAGE: the collapse is refused, and the private page
 * stays refused.  (MADV_HUGEPAGE on a view undoes that: outside the model,
 * docs/SECURITY.md.)  A hugetlbfs view maps huge pages already, and refuses
 * the one holding the private page whole: the collapse changes nothing.
 */
TEST(collapse_on_view_refused)
{
	struct gmem *g = tg_create(env, 4 * MiB, 0, 0);
	char *guest, *v, *dst, *aligned;
	siginfo_t si;

	CHECK_OK(gmem_guest_map(g, (void **)&guest));
	for (uint64_t p = 0; p < 512; p++)
		fill_page(guest + p * PS, p, 1);
	CHECK_OK(gmem_convert(g, 5 * PS, PS, GMEM_PRIVATE, 0, NULL));
	memcpy(guest + 5 * PS, SECRET, sizeof(SECRET));
	CHECK_OK(gmem_view_map(g, 0, 2 * MiB, 0, (void **)&v));
	dst = mmap(NULL, 4 * MiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(dst != MAP_FAILED);
	aligned = (char *)(((uintptr_t)dst + 2 * MiB - 1) & ~(uintptr_t)(2 * MiB - 1));
	CHECK(mremap(v, 2 * MiB, 2 * MiB, MREMAP_MAYMOVE | MREMAP_FIXED, aligned) == aligned);
	/* mapped - or on hugetlbfs refused, the huge page holding page 5 */
	if (env_hugetlb(env))
		CHECK_EQ(touch(aligned, false, NULL, NULL), env->sig);
	else
		CHECK(page_has(aligned, 0, 1));
	CHECK(madvise(aligned, 2 * MiB, MADV_COLLAPSE) != 0);
	CHECK_EQ(touch(aligned + 5 * PS, false, NULL, &si), env->sig);
	CHECK_OK(gmem_audit(g));
	if (env_hugetlb(env)) /* a shared piece of the mixed huge page: refused with it */
		CHECK_EQ(touch(aligned + 6 * PS, false, NULL, &si), env->sig);
	else
		CHECK(page_has(aligned + 6 * PS, 6, 1));
	CHECK_OK(gmem_view_unmap(g, aligned));
	CHECK_OK(gmem_destroy(g));
}

/*
 * remap_file_pages() re-points part of a view at another offset of the
 * file by making a new mapping, populated, that the kernel reports to no
 * one: the library cannot see it, and it maps whatever it points at.
 * Outside the model (docs/SECURITY.md); shown here as it is.
 */
TEST(remap_file_pages_outside_the_model)
{
	char *guest, *v;
	struct gmem *g = setup(env, &guest);

	v = tg_view(g, 0);
	if (remap_file_pages(v, PS, 0, 5, 0))
		SKIP("remap_file_pages: %s", strerror(errno));
	CHECK(!memcmp(v, SECRET, sizeof(SECRET))); /* the private page, through what was a view */
	CHECK_OK(gmem_audit(g)); /* and the audit, which follows the records, cannot tell */
	CHECK_OK(gmem_destroy(g));
}

/*
 * Many children at once with copies of a view (MADV_DOFORK): each touch in
 * each of them is refused.  Children past the 64th hung in the touch, and
 * their userfaultfds outlived gmem_destroy().
 */
TEST(dofork_many_children_refused)
{
	const int n = 80;
	int res[2], go[2], refused_n = 0;
	char *guest, *v;
	struct gmem *g = setup(env, &guest);
	pid_t pids[80];

	if (geteuid())
		SKIP("following fork needs CAP_SYS_PTRACE");
	v = tg_view(g, 0);
	CHECK(page_has(v, 0, 1));
	CHECK_OK(madvise(v, 8 * U, MADV_DOFORK));
	CHECK_OK(pipe(res));
	CHECK_OK(pipe(go));
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		CHECK(pids[i] >= 0);
		if (pids[i] == 0) {
			char c, b;

			close(go[1]); /* the parent's close is the go */
			alarm(10);
			c = touch(v, false, NULL, NULL) == SIGBUS ? 'B' : 'X';
			(void)!write(res[1], &c, 1);
			(void)!read(go[0], &b, 1); /* all alive at once */
			_exit(0);
		}
	}
	for (int i = 0; i < n; i++) {
		char c;

		CHECK_EQ(read(res[0], &c, 1), 1);
		refused_n += c == 'B';
	}
	CHECK_OK(close(go[1]));
	for (int i = 0; i < n; i++)
		CHECK_EQ(waitpid(pids[i], NULL, 0), pids[i]);
	CHECK_EQ(refused_n, n);
	CHECK_OK(gmem_destroy(g));
	CHECK_EQ(test_uffd_fd(), -1);
	close(res[0]);
	close(res[1]);
	close(go[0]);
}

/*
 * A forked child touching its copy of a view while the parent destroys
 * the object: the children's userfaultfds were closed before the file was
 * punched, and the child's copy - a plain mapping then - read the guest's
 * private pages still there.  The child drops its refusal marks as it goes
 * (MADV_DONTNEED), so that every touch asks.
 */
TEST_OPTS(destroy_while_forked_child_touches, .skip = ONE_SIGNAL_EACH,
	  .why = "1 s of a child's touches, refused with SIGBUS under either policy: one signal a backing")
{
	const uint64_t size = env_hugetlb(env) ? 8 * env->unit : 64 * MiB; /* pool pages */
	struct gmem *g = tg_create(env, size, GMEM_F_INIT_PRIVATE, 0);
	int res[2], status;
	char *guest, *v;
	pid_t pid;

	if (geteuid())
		SKIP("following fork needs CAP_SYS_PTRACE");
	CHECK_OK(gmem_guest_map(g, (void **)&guest));
	memset(guest, 'P', size); /* the guest's private memory, all of it */
	v = tg_view(g, 0);
	CHECK_OK(madvise(v, size, MADV_DOFORK));
	CHECK_OK(pipe(res));
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		struct timespec t0, t;

		close(res[0]);
		(void)!write(res[1], "r", 1);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		do { /* until well after the parent's destroy */
			madvise(v, size, MADV_DONTNEED);
			for (int64_t off = (int64_t)(size - PS); off >= 0; off -= 97 * PS) {
				uint8_t b = 0;

				if (!touch(v + off, false, &b, NULL) && b == 'P')
					_exit(1);
			}
			clock_gettime(CLOCK_MONOTONIC, &t);
		} while (t.tv_sec - t0.tv_sec < 1);
		_exit(0);
	}
	CHECK_EQ(read(res[0], &(char){ 0 }, 1), 1);
	usleep(50000);
	CHECK_OK(gmem_destroy(g));
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0); /* 1: the child read a private page */
	close(res[0]);
	close(res[1]);
}

/*
 * The fault thread decides on records that hold every unmap the process
 * made: a touch queued while a long discard holds the lock, the view then
 * replaced by the process's own anonymous memory (mmap MAP_FIXED, its
 * notice read), must not put a guard marker in that memory (SIGSEGV
 * policy), nor may a move applied late zero what the process put at the
 * destination since.
 */
struct slow_discard {
	struct gmem *g;
	uint64_t len;
	_Atomic int state;
};

static void *discard_all(void *arg)
{
	struct slow_discard *d = arg;

	atomic_store(&d->state, 1);
	gmem_discard(d->g, 0, d->len);
	atomic_store(&d->state, 2);
	return NULL;
}

static void *touch_one(void *arg)
{
	touch(arg, false, NULL, NULL);
	return NULL;
}

TEST_OPTS(stale_records_leave_process_memory_alone, .timeout_s = 120, .skip = B_ANY | S_SIGBUS,
	  .why = "guard markers and PROT_NONE land on whatever is mapped; poison markers cannot")
{
	/* on hugetlbfs as many pages as the pool holds, and views of a huge page */
	const uint64_t big = env_hugetlb(env) ? 14 * env->unit : 256 * MiB;
	const uint64_t vlen = env_view_unit(env);
	struct gmem_config cfg = tg_config(env, big + 2 * MiB, 0, SIGSEGV);
	struct slow_discard d = { .len = big };
	struct gmem *g;
	char *guest;
	int late = 0;

	if (gmem_create(&cfg, &g))
		SKIP("no object of %llu MiB", (unsigned long long)(big >> 20));
	d.g = g;
	CHECK_OK(gmem_guest_map(g, (void **)&guest));
	CHECK_OK(gmem_convert(g, big, PS, GMEM_PRIVATE, 0, NULL));
	for (int round = 0; round < 6; round++) {
		pthread_t dt, tt;
		void *va;
		char *p;

		CHECK_OK(gmem_view_map(g, big, vlen, 0, &va));
		memset(guest, 1, big); /* populated, so that the punch takes a while */
		atomic_store(&d.state, 0);
		CHECK_OK(pthread_create(&dt, NULL, discard_all, &d));
		while (!atomic_load(&d.state))
			;
		usleep(100);
		if (round % 2 == 0) {
			/* a refused touch waits for the lock; the view makes way */
			CHECK_OK(pthread_create(&tt, NULL, touch_one, va));
			usleep(200);
			p = mmap(va, vlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				 -1, 0);
		} else {
			/* moved away, unmapped there, the process's memory in its place */
			char *y = tg_reserve(env, vlen);

			CHECK(mremap(va, vlen, vlen, MREMAP_MAYMOVE | MREMAP_FIXED, y) == y);
			CHECK_OK(munmap(y, vlen));
			p = mmap(y, vlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				 -1, 0);
		}
		CHECK(p != MAP_FAILED);
		memset(p, 0x5a, PS);
		late += atomic_load(&d.state) != 2;
		pthread_join(dt, NULL);
		if (round % 2 == 0)
			pthread_join(tt, NULL);
		usleep(10000);
		CHECK_OK(touch(p, false, NULL, NULL));
		CHECK(page_has_byte(p, 0x5a));
		CHECK_OK(munmap(p, vlen));
	}
	if (!late)
		SKIP("the discard never outlasted the process's calls");
	CHECK_OK(gmem_destroy(g));
}

/*
 * A touch parked by a waiting conversion whose view the process then moves
 * or unmaps: the conversion's end woke only the addresses the records
 * held, not the one the toucher slept on - it slept for ever.
 */
struct parked {
	char *addr;
	_Atomic int sig; /* 1 + the touch's signal, once it returns */
};

static void *touch_record(void *arg)
{
	struct parked *p = arg;

	atomic_store(&p->sig, 1 + touch(p->addr, false, NULL, NULL));
	return NULL;
}

TEST_OPTS(parked_touch_woken_after_view_moves, .timeout_s = 30, .skip = B_HUGETLB | S_ANY,
	  .why = "no transit to park in: hugetlbfs refuses a conversion under a pin at once (gmem.h)")
{
	for (int how = 0; how < 2; how++) {
		struct gmem_config cfg = tg_config(env, 16 * PS, 0, 0);
		struct parked rec = { NULL, 0 };
		struct gmem *g;
		pthread_t tt;
		char *v;

		cfg.wait_timeout_ms = 3000;
		CHECK_OK(gmem_create(&cfg, &g));
		CHECK_OK(gmem_view_map(g, 0, 4 * PS, 0, (void **)&v));
		CHECK_OK(gmem_pin(g, 0, PS, 0)); /* I/O in flight on page 0 */
		rec.addr = v + PS;
		/* the converter waits in this thread's stead: a second thread */
		{
			pthread_t ct;
			struct convert_args ca = { g, 1 };

			CHECK_OK(pthread_create(&ct, NULL, wait_convert, &ca));
			while (gmem_state(g, PS) != GMEM_CONVERTING)
				usleep(1000);
			CHECK_OK(pthread_create(&tt, NULL, touch_record, &rec));
			usleep(100000);
			CHECK_EQ(atomic_load(&rec.sig), 0); /* parked */
			if (how == 0) {
				char *dst = mmap(NULL, 4 * PS, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

				CHECK(mremap(v, 4 * PS, 4 * PS, MREMAP_MAYMOVE | MREMAP_FIXED, dst) == dst);
				v = dst;
			} else {
				CHECK_OK(munmap(v, 4 * PS));
				v = NULL;
			}
			CHECK_OK(gmem_unpin(g, 0, PS, 0)); /* the I/O ends: the conversion completes */
			pthread_join(ct, NULL);
			CHECK_OK(ca.err);
		}
		pthread_join(tt, NULL); /* hung here */
		CHECK_EQ(atomic_load(&rec.sig), SIGSEGV + 1); /* the old address: nothing there now */
		if (v)
			CHECK_OK(gmem_view_unmap(g, v));
		CHECK_OK(gmem_destroy(g));
	}
}

/*
 * A fork with copies of views when the process has no descriptor free: the
 * kernel installs the child's userfaultfd as its event is read, so the
 * read failed (EMFILE), the event stayed, the fork waited for ever and the
 * reader spun.  A spare descriptor makes room.
 */
TEST_OPTS(fork_with_no_descriptor_free, .timeout_s = 30)
{
	char *guest, *v;
	struct gmem *g = setup(env, &guest);
	struct rlimit rl, old;
	int fds[64], n = 0, status;
	pid_t pid;

	if (geteuid())
		SKIP("following fork needs CAP_SYS_PTRACE");
	v = tg_view(g, 0);
	CHECK_OK(madvise(v, 8 * U, MADV_DOFORK));
	CHECK_OK(getrlimit(RLIMIT_NOFILE, &old));
	rl = (struct rlimit){ 64, old.rlim_max };
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
	while (n < 64 && (fds[n] = open("/dev/null", O_RDONLY)) >= 0)
		n++;
	CHECK(n < 64); /* the table is full */
	pid = fork(); /* hung here */
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(touch(v + 5 * U, false, NULL, NULL) == SIGBUS ? 0 : 1);
	while (n)
		close(fds[--n]);
	CHECK_OK(setrlimit(RLIMIT_NOFILE, &old));
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK_OK(gmem_destroy(g));
}

/*
 * Views of consecutive pages made in descending order land next to each
 * other, and the kernel merges them into one mapping: one mremap() moves
 * a hundred views at once, in one notice.  The records kept 64 pieces of
 * one move and dropped the rest: those views read private pages after a
 * conversion, with a clean audit, and could not be unmapped.
 */
TEST_OPTS(merged_views_moved_at_once, .timeout_s = 30, .skip = B_HUGETLB | S_ANY,
	  .why = "a hundred adjacent views: a hundred huge pages on hugetlbfs")
{
	enum { M = 200, ENOUGH = 65 }; /* more than the 64 pieces the records once kept */
	struct gmem *g = tg_create(env, M * PS, 0, 0);
	char *all[M], *guest, *dst, *w;
	struct timespec ms = { 0, 1000000 };
	int b = 0, N = 1, found = 0;

	CHECK_OK(gmem_guest_map(g, (void **)&guest));
	for (int i = 0; i < M; i++)
		guest[i * PS] = (char)(i + 1);
	for (int i = M - 1; i >= 0; i--)
		CHECK_OK(gmem_view_map(g, (uint64_t)i * PS, PS, 0, (void **)&all[i]));
	/* the longest run of views the kernel placed next to each other */
	for (int s = 0, k = 1; s < M; s += k, k = 1) {
		while (s + k < M && all[s + k] == all[s + k - 1] + PS)
			k++;
		if (k > N) {
			b = s;
			N = k;
		}
	}
	if (N < ENOUGH)
		SKIP("the kernel placed no %d of the views next to each other (%d at most)", ENOUGH,
		     N);
	for (int i = 0; i < N; i++)
		CHECK_EQ(all[b + i][0], (char)(b + i + 1)); /* mapped before the move */
	dst = tg_reserve(env, N * PS);
	w = mremap(all[b], N * PS, N * PS, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	CHECK(w == dst);
	/* the records follow once the library has applied the notice */
	for (int tries = 0; tries < 1000 && found < N; tries++, nanosleep(&ms, NULL)) {
		found = 0;
		for (int i = 0; i < N; i++) {
			uint64_t off;
			int kind;

			found += !gmem_addr_offset(g, w + i * PS, &off, &kind) &&
				 off == (uint64_t)(b + i) * PS;
		}
	}
	CHECK_EQ(found, N);
	for (int i = 0; i < N; i++)
		CHECK_EQ(w[i * PS], (char)(b + i + 1));
	CHECK_OK(gmem_convert(g, 0, M * PS, GMEM_PRIVATE, 0, NULL));
	for (int i = 0; i < M; i++)
		memcpy(guest + i * PS, SECRET, sizeof(SECRET));
	CHECK_OK(gmem_audit(g));
	for (int i = 0; i < N; i++)
		refused(env, w + i * PS + 1);
	for (int i = 0; i < N; i++)
		CHECK_OK(gmem_view_unmap(g, w + i * PS));
	CHECK_OK(gmem_destroy(g));
}

struct viewrace {
	struct gmem *g;
	const struct env *env;
	atomic_bool stop;
	atomic_int bad;
	atomic_ulong made;
};

/* Views moved and then unmapped by the process, behind the library's back. */
static void *move_and_unmap(void *arg)
{
	struct viewrace *c = arg;

	while (!atomic_load(&c->stop)) {
		char *v, *dst, *w;

		if (gmem_view_map(c->g, 0, PS, 0, (void **)&v))
			break;
		(void)*(volatile char *)v;
		dst = mmap(NULL, PS, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		w = dst == MAP_FAILED ? MAP_FAILED
				      : mremap(v, PS, PS, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
		munmap(w == MAP_FAILED ? v : w, PS);
	}
	return NULL;
}

/* Views made, read and unmapped through the library, at addresses the movers free. */
static void *make_and_unmap(void *arg)
{
	struct viewrace *c = arg;

	while (!atomic_load(&c->stop)) {
		char *v;

		if (gmem_view_map(c->g, PS, PS, 0, (void **)&v)) {
			atomic_fetch_add(&c->bad, 1);
			break;
		}
		if (touch(v, false, NULL, NULL) || v[0] != 0x42)
			atomic_fetch_add(&c->bad, 1); /* a shared page refused: its record lost */
		if (gmem_view_unmap(c->g, v))
			atomic_fetch_add(&c->bad, 1); /* its record lost, or another's taken */
		atomic_fetch_add(&c->made, 1);
	}
	return NULL;
}

/*
 * A moving mremap() posts the old range's unmap after the move, and the
 * kernel frees a range before its unmap's notice is read: a view made in
 * between lands where a late notice points.  Its record was cut by that
 * notice, or recorded twice (then freed twice, in the fault thread).
 */
TEST_OPTS(new_views_where_moves_and_unmaps_land, .timeout_s = 30,
	  .skip = B_HUGETLB | S_ANY | ONE_SIGNAL_EACH,
	  .why = "one-page views; one signal each: a race that takes two seconds")
{
	struct viewrace c = { .g = tg_create(env, 2 * PS, 0, 0), .env = env };
	pthread_t t[4];
	char *guest;

	CHECK_OK(gmem_guest_map(c.g, (void **)&guest));
	memset(guest, 0x42, 2 * PS);
	for (int i = 0; i < 4; i++)
		CHECK_OK(pthread_create(&t[i], NULL, i < 2 ? move_and_unmap : make_and_unmap, &c));
	sleep(2);
	atomic_store(&c.stop, true);
	for (int i = 0; i < 4; i++)
		CHECK_OK(pthread_join(t[i], NULL));
	CHECK(atomic_load(&c.made) > 100);
	CHECK_EQ(atomic_load(&c.bad), 0);
	CHECK_OK(gmem_audit(c.g));
	CHECK_OK(gmem_destroy(c.g));
}
