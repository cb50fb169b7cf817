// SPDX-License-Identifier: MIT
/*
 * test_track.c - write tracking: no write missed, reads not counted.
 *
 * Named after the kernel's userfaultfd write-protect selftests where they
 * fit (wp-unpopulated, wp-async, pagemap-scan), with gmem's own cases:
 * conversions that zap and refill views, views mapped after the start and
 * unmapped behind the library's back, copies, discards, the guest
 * mapping, writers racing collects, and first pins racing the conversions
 * whose records make their pin words.  Every case on every backing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* Pages one view unit apart: on hugetlbfs a huge page is tracked whole. */
#define U env_view_unit(env)

static uint64_t *bitmap_for(struct gmem *g)
{
	uint64_t *b = calloc((gmem_size(g) / PS + 63) / 64, sizeof(*b));

	CHECK(b);
	return b;
}

static bool bit(const uint64_t *b, uint64_t page)
{
	return b[page / 64] >> (page % 64) & 1;
}

/* Collect the whole object; the count it returned. */
static int64_t collect(struct gmem *g, uint64_t *b, unsigned int flags)
{
	int64_t n = gmem_track_collect(g, 0, gmem_size(g), b, flags);

	CHECK(n >= 0);
	return n;
}

/* Start tracking, or skip with the reason. */
static void start(struct gmem *g, unsigned int flags)
{
	int err = gmem_track_start(g, flags);

	if (err == -EOPNOTSUPP)
		SKIP("no asynchronous userfaultfd write-protect in this kernel");
	CHECK_OK(err);
}

/* A read through a view is not a write; a write is, once; a collect clears it. */
TEST(wp_async_write_reported_read_not)
{
	struct gmem *g = tg_create(env, 8 * U, 0, 0);
	char *v = tg_view(g, 0);
	uint64_t *b = bitmap_for(g);
	volatile char x;

	v[5 * U] = 1; /* before tracking: not reported */
	start(g, 0);
	CHECK_EQ(gmem_track_start(g, 0), -EBUSY);
	x = v[2 * U];
	x = v[5 * U];
	(void)x;
	v[3 * U + 7] = 2;
	CHECK_EQ(collect(g, b, GMEM_TRACK_PEEK), (int64_t)(U / PS));
	CHECK(bit(b, 3 * U / PS));
	CHECK(!bit(b, 2 * U / PS) && !bit(b, 5 * U / PS));
	CHECK_EQ(collect(g, b, 0), (int64_t)(U / PS)); /* peek left it */
	CHECK_EQ(collect(g, b, 0), 0);                 /* reported: cleared */
	v[3 * U] = 3;                                  /* written again */
	CHECK_EQ(collect(g, b, 0), (int64_t)(U / PS));
	CHECK_OK(gmem_track_stop(g));
	CHECK_EQ(gmem_track_stop(g), -EINVAL);
	CHECK_EQ(gmem_track_collect(g, 0, gmem_size(g), b, 0), -EINVAL);
	free(b);
	CHECK_OK(gmem_destroy(g));
}

/* Pages never mapped before the start (wp-unpopulated): their first write is reported. */
TEST(wp_unpopulated_first_write_reported)
{
	struct gmem *g = tg_create(env, 4 * U, 0, 0);
	uint64_t *b = bitmap_for(g);
	char *v;

	start(g, 0);
	v = tg_view(g, 0); /* mapped after the start, never touched */
	v[U + 1] = 1;
	CHECK_EQ(collect(g, b, 0), (int64_t)(U / PS));
	CHECK(bit(b, U / PS));
	free(b);
	CHECK_OK(gmem_destroy(g));
}

/*
 * Write, collect, convert private and back (the views are zapped and
 * refilled), write or not, collect: the conversion loses no write, and a
 * page not written after it is not reported.
 */
TEST(writes_survive_conversions)
{
	struct gmem *g = tg_create(env, 8 * U, 0, 0);
	char *v = tg_view(g, 0), *w = tg_view(g, 0);
	uint64_t *b = bitmap_for(g);

	start(g, 0);
	v[U] = 1;
	v[2 * U] = 2;
	/* written through views, then zapped by the conversion: recorded before the zap */
	CHECK_OK(gmem_convert(g, U, U, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_convert(g, U, U, GMEM_SHARED, 0, NULL));
	CHECK_EQ(collect(g, b, 0), 2 * (int64_t)(U / PS));
	CHECK(bit(b, U / PS) && bit(b, 2 * U / PS));
	/*
	 * Refilled through a view by a read: no write.  A conversion counts
	 * what views map as written (a write may land up to its zap): a page
	 * read, then converted, is a false positive; one no view maps is not.
	 */
	CHECK_EQ(v[U], 1);
	CHECK_EQ(collect(g, b, 0), 0);
	CHECK_OK(gmem_convert(g, U, U, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_convert(g, U, U, GMEM_SHARED, 0, NULL));
	CHECK_EQ(collect(g, b, 0), (int64_t)(U / PS));
	CHECK_EQ(w[U], 1);
	/* a write after the round trip, through the other view */
	w[U + 5] = 5;
	CHECK_EQ(collect(g, b, 0), (int64_t)(U / PS));
	CHECK(bit(b, U / PS));
	/* with no view mapping anything, a round trip counts nothing */
	CHECK_OK(gmem_view_unmap(g, v));
	CHECK_OK(gmem_view_unmap(g, w));
	collect(g, b, 0);
	CHECK_OK(gmem_convert(g, 4 * U, U, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_convert(g, 4 * U, U, GMEM_SHARED, 0, NULL));
	CHECK_EQ(collect(g, b, 0), 0);
	free(b);
	CHECK_OK(gmem_destroy(g));
}

/*
 * The kernel takes a view's entries behind the library's back - a THP
 * block's, all of them, when a discard of part of it splits it, or a
 * collapse merges it - and a touch maps them again, write-protected: a
 * write made before must still be reported.
 */
TEST(writes_survive_huge_page_splits_and_merges)
{
	struct gmem *g = tg_create(env, 8 * U, 0, 0);
	char *v = tg_view(g, 0);
	uint64_t *b = bitmap_for(g);
	volatile char x;

	start(g, 0);
	v[0] = 1;
	CHECK_OK(gmem_discard(g, 5 * U, U)); /* splits the block (THP) */
	x = v[0];                            /* mapped again */
	CHECK(collect(g, b, 0) >= 2 * (int64_t)(U / PS));
	CHECK(bit(b, 0) && bit(b, 5 * U / PS));
	v[U] = 2;
	CHECK_OK(gmem_collapse(g, 0, gmem_size(g), NULL)); /* merges it (THP) */
	x = v[U];
	(void)x;
	CHECK(collect(g, b, 0) >= (int64_t)(U / PS));
	CHECK(bit(b, U / PS));
	free(b);
	CHECK_OK(gmem_destroy(g));
}

/*
 * A collect of a few pages: on hugetlbfs the scans take whole huge pages
 * (the kernel protects no piece of one), and what they find past the
 * range is left for the collect that covers it.
 */
TEST(collects_of_pieces_of_huge_pages)
{
	struct gmem *g = tg_create(env, 2 * U < 8 * PS ? 8 * PS : 2 * U, 0, 0);
	char *guest, *v = tg_view(g, 0);
	uint64_t *b = bitmap_for(g);

	CHECK_OK(gmem_guest_map(g, (void **)&guest));
	start(g, GMEM_TRACK_GUEST);
	v[0] = 1;
	guest[U + 2 * PS] = 2;
	CHECK(gmem_track_collect(g, PS, PS, b, 0) >= 0);
	CHECK(gmem_track_collect(g, U + PS, 3 * PS, b, GMEM_TRACK_PEEK) >= 1);
	CHECK(bit(b, 1));
	CHECK(gmem_track_collect(g, U + PS, 3 * PS, b, 0) >= 1);
	CHECK(bit(b, 1));
	CHECK(collect(g, b, 0) >= 1);
	CHECK(bit(b, 0));
	free(b);
	CHECK_OK(gmem_destroy(g));
}

/*
 * A conversion to shared clears what refused touches left in views - on
 * hugetlbfs over whole huge pages, which a view may map again by then and
 * have written: a write made before must still be reported.
 */
TEST(writes_survive_refusals_cleared)
{
	struct gmem *g = tg_create(env, 2 * U < 8 * PS ? 8 * PS : 2 * U, 0, 0);
	char *v = tg_view(g, 0);
	uint64_t *b = bitmap_for(g);

	start(g, 0);
	CHECK_OK(gmem_convert(g, PS, PS, GMEM_PRIVATE, 0, NULL));
	/* refused on hugetlbfs (its huge page has a private piece), mapped elsewhere */
	CHECK(touch(v + 5 * PS, false, NULL, NULL) == (env_hugetlb(env) ? env->sig : 0));
	CHECK_OK(gmem_convert(g, PS, PS, GMEM_SHARED, 0, NULL));
	v[5 * PS] = 5;
	CHECK_OK(gmem_convert(g, 3 * PS, PS, GMEM_SHARED, 0, NULL)); /* shared already */
	CHECK(collect(g, b, 0) >= 1);
	CHECK(bit(b, 5));
	free(b);
	CHECK_OK(gmem_destroy(g));
}

/*
 * The process zaps a view's entries behind the library's back
 * (MADV_DONTNEED): a written entry goes empty, a protected one keeps its
 * marker.  The kernel reads an empty 4 KiB entry as written, an empty
 * hugetlbfs one as not (fs/proc/task_mmu.c): the write is reported all the
 * same, before any touch maps the page again - and after one.  A discard
 * empties entries too, and leaves none behind that a collect would report
 * again and again.
 */
TEST(writes_survive_zaps_behind_the_librarys_back)
{
	struct gmem *g = tg_create(env, 8 * U, 0, 0);
	char *v = tg_view(g, 0);
	uint64_t *b = bitmap_for(g);
	volatile char x = v[2 * U];

	(void)x;
	start(g, 0);
	v[U] = 1;
	CHECK_OK(madvise(v, 8 * U, MADV_DONTNEED));
	CHECK(collect(g, b, 0) >= (int64_t)(U / PS));
	CHECK(bit(b, U / PS));
	CHECK(!bit(b, 2 * U / PS)); /* read, protected: its marker stays */
	v[3 * U] = 3;
	CHECK_OK(madvise(v, 8 * U, MADV_DONTNEED));
	v[3 * U + 1] = 4; /* mapped again */
	CHECK(collect(g, b, 0) >= (int64_t)(U / PS));
	CHECK(bit(b, 3 * U / PS));
	x = v[U]; /* mapped again: reported no more */
	collect(g, b, 0);
	v[5 * U] = 5;
	CHECK_OK(gmem_discard(g, 5 * U, U));
	CHECK_EQ(collect(g, b, 0), (int64_t)(U / PS));
	CHECK_EQ(collect(g, b, 0), 0);
	free(b);
	CHECK_OK(gmem_destroy(g));
}

/* gmem_write() and gmem_discard() write; gmem_read() does not. */
TEST(copies_and_discards_reported)
{
	struct gmem *g = tg_create(env, 8 * U, 0, 0);
	uint64_t *b = bitmap_for(g);
	char buf[16] = "written";

	start(g, 0);
	CHECK_OK(gmem_write(g, 4 * U + 3, buf, sizeof(buf), NULL));
	CHECK_OK(gmem_read(g, 6 * U, buf, sizeof(buf), NULL));
	CHECK_EQ(collect(g, b, 0), 1);
	CHECK(bit(b, 4 * U / PS));
	CHECK_OK(gmem_discard(g, 2 * U, U));
	CHECK_EQ(collect(g, b, 0), (int64_t)(U / PS));
	CHECK(bit(b, 2 * U / PS));
	free(b);
	CHECK_OK(gmem_destroy(g));
}

/*
 * A view unmapped - by the library or behind its back - takes its page
 * tables, written entries too, away: what was written through it is still
 * reported.
 */
TEST(writes_of_unmapped_views_reported)
{
	struct gmem *g = tg_create(env, 8 * U, 0, 0);
	uint64_t *b = bitmap_for(g);
	char *v, *w;

	start(g, 0);
	v = tg_view(g, 0);
	w = tg_view(g, 0);
	v[U] = 1;
	w[3 * U] = 3;
	CHECK_OK(gmem_view_unmap(g, v));
	CHECK_OK(munmap(w, gmem_size(g))); /* behind its back */
	CHECK(collect(g, b, 0) >= 2 * (int64_t)(U / PS));
	CHECK(bit(b, U / PS) && bit(b, 3 * U / PS));
	free(b);
	CHECK_OK(gmem_destroy(g));
}

/* GMEM_TRACK_GUEST: writes through the guest mapping, to private pages too. */
TEST(guest_writes_reported)
{
	struct gmem *g = tg_create(env, 8 * U, 0, 0);
	uint64_t *b = bitmap_for(g);
	char *guest, *v = tg_view(g, 0);

	CHECK_OK(gmem_guest_map(g, (void **)&guest));
	CHECK_OK(gmem_convert(g, 2 * U, U, GMEM_PRIVATE, 0, NULL));
	start(g, GMEM_TRACK_GUEST);
	guest[2 * U] = 7; /* private */
	guest[5 * U] = 5; /* shared */
	CHECK_EQ(collect(g, b, 0), 2 * (int64_t)(U / PS));
	CHECK(bit(b, 2 * U / PS) && bit(b, 5 * U / PS));
	/* still unreadable to views */
	CHECK_EQ(touch(v + 2 * U, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_track_stop(g));
	/* not tracked any more */
	start(g, 0);
	guest[6 * U] = 6;
	CHECK_EQ(collect(g, b, 0), 0);
	free(b);
	CHECK_OK(gmem_destroy(g));
}

TEST(track_invalid_args)
{
	struct gmem *g = tg_create(env, 4 * U, 0, 0);
	uint64_t *b = bitmap_for(g);

	CHECK_EQ(gmem_track_start(NULL, 0), -EINVAL);
	CHECK_EQ(gmem_track_start(g, 2), -EINVAL);
	CHECK_EQ(gmem_track_stop(NULL), -EINVAL);
	CHECK_EQ(gmem_track_collect(g, 0, PS, b, 0), -EINVAL); /* not tracking */
	start(g, 0);
	CHECK_EQ(gmem_track_collect(NULL, 0, PS, b, 0), -EINVAL);
	CHECK_EQ(gmem_track_collect(g, 0, PS, NULL, 0), -EINVAL);
	CHECK_EQ(gmem_track_collect(g, 1, PS, b, 0), -EINVAL);
	CHECK_EQ(gmem_track_collect(g, 0, 0, b, 0), -EINVAL);
	CHECK_EQ(gmem_track_collect(g, 0, gmem_size(g) + PS, b, 0), -EINVAL);
	CHECK_EQ(gmem_track_collect(g, 0, PS, b, 2), -EINVAL);
	free(b);
	CHECK_OK(gmem_destroy(g));
}

struct race {
	struct gmem *g;
	char *v;
	uint64_t npages;
	atomic_bool stop;
	atomic_ulong started[64]; /* per page: writes begun (and not refused) */
	atomic_ulong seq[64];     /* per page: writes done */
};

static void *writer(void *arg)
{
	struct race *r = arg;
	uint64_t x = 88172645463325252ULL;

	while (!atomic_load(&r->stop)) {
		uint64_t p;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		p = x % r->npages;
		atomic_fetch_add(&r->started[p], 1);
		/* a page converted private meanwhile refuses it: no write, not counted */
		if (!touch(r->v + p * PS, true, &(uint8_t){ (uint8_t)x }, NULL))
			atomic_fetch_add(&r->seq[p], 1);
		else
			atomic_fetch_sub(&r->started[p], 1); /* no write after all */
	}
	return NULL;
}

/*
 * A writer racing collects and conversions: a write done after one collect
 * ended and before the next began is reported by the next (writes during a
 * collect may be reported by it or the one after).  Begun after: more
 * writes done before the next collect than were begun when the last ended
 * (a write's count shows after its store, which the last collect may have
 * reported already).
 */
TEST_OPTS(writes_racing_collects_and_conversions, .timeout_s = 30,
	  .skip = B_HUGETLB | S_ANY | ONE_SIGNAL_EACH,
	  .why = "4 KiB pages written at random: one signal each, hugetlbfs tracks huge pages")
{
	struct race r = { .g = tg_create(env, 64 * PS, 0, 0), .npages = 64 };
	uint64_t *b = bitmap_for(r.g), after[64] = { 0 };
	pthread_t t;

	r.v = tg_view(r.g, 0);
	start(r.g, 0);
	CHECK_OK(pthread_create(&t, NULL, writer, &r));
	for (int round = 0; round < 2000; round++) {
		uint64_t before[64];

		for (int p = 0; p < 64; p++)
			before[p] = atomic_load(&r.seq[p]);
		collect(r.g, b, 0);
		for (int p = 0; p < 64; p++) {
			if (before[p] > after[p] && !bit(b, p))
				test_fail(__FILE__, __LINE__, "round %d page %d written (%llu writes done before the collect, %llu begun after the last) not reported", round, p, (unsigned long long)before[p], (unsigned long long)after[p]);
			after[p] = atomic_load(&r.started[p]);
		}
		if (round % 7 == 0) {
			/* a conversion zaps: what it zaps must not be lost */
			uint64_t p = (uint64_t)round % 64;

			if (!gmem_convert(r.g, p * PS, PS, GMEM_PRIVATE, 0, NULL))
				CHECK_OK(gmem_convert(r.g, p * PS, PS, GMEM_SHARED, 0, NULL));
		}
	}
	atomic_store(&r.stop, true);
	CHECK_OK(pthread_join(t, NULL));
	free(b);
	CHECK_OK(gmem_destroy(r.g));
}

/* A collect of part of the object reports and clears that part only (pagemap-scan's ranges). */
TEST(collect_covers_its_range_only)
{
	struct gmem *g = tg_create(env, 8 * U, 0, 0);
	char *v = tg_view(g, 0);
	uint64_t *b = bitmap_for(g);

	start(g, 0);
	v[U] = 1;
	v[5 * U] = 5;
	CHECK_EQ(gmem_track_collect(g, 4 * U, 4 * U, b, 0), (int64_t)(U / PS));
	CHECK(bit(b, U / PS)); /* page 5 is bit 1 of a bitmap from page 4 */
	CHECK_EQ(collect(g, b, 0), (int64_t)(U / PS));
	CHECK(bit(b, U / PS) && !bit(b, 5 * U / PS));
	free(b);
	CHECK_OK(gmem_destroy(g));
}

/*
 * Tracking the guest mapping of a THP backing may map its huge pages with
 * 4 KiB entries while it lasts (write-protect is per entry); after the
 * stop, gmem_collapse() gives them back.  hugetlbfs protects and reports
 * a huge page whole, and keeps its mappings.
 */
TEST_OPTS(track_guest_huge_mappings_given_back, .skip = B_SHMEM | S_ANY,
	  .why = "a 4 KiB backing has no huge mappings")
{
	struct gmem *g = tg_create(env, 8 * env->unit, 0, 0);
	struct gmem_huge_info hi;
	uint64_t *b = bitmap_for(g);
	char *guest;

	CHECK_OK(gmem_guest_map(g, (void **)&guest));
	memset(guest, 1, gmem_size(g));
	CHECK_OK(gmem_huge_info(g, &hi));
	CHECK_EQ(hi.blocks_guest_huge, 8);
	start(g, GMEM_TRACK_GUEST);
	guest[3 * env->unit + 5] = 2;
	CHECK(collect(g, b, 0) >= 1);
	CHECK(bit(b, 3 * env->unit / PS));
	CHECK_OK(gmem_track_stop(g));
	CHECK_OK(gmem_collapse(g, 0, gmem_size(g), NULL));
	CHECK_OK(gmem_huge_info(g, &hi));
	CHECK_EQ(hi.blocks_guest_huge, 8);
	CHECK_EQ((uint8_t)guest[3 * env->unit + 5], 2);
	free(b);
	CHECK_OK(gmem_destroy(g));
}

struct first_pin {
	struct gmem *g;
	char *v;
	int pagemap;
	atomic_uint_least64_t page; /* the page of the attempt posted */
	atomic_ulong posted, done;  /* attempts */
	atomic_int result;          /* the pin's, in the last attempt done */
	atomic_bool stop;
};

/* Whether the view's entry for page p is present (/proc/self/pagemap). */
static bool entry_present(struct first_pin *f, uint64_t p)
{
	uint64_t e = 0;
	off_t off = (off_t)(((uintptr_t)f->v + p * PS) / PS * sizeof(e));

	return pread(f->pagemap, &e, sizeof(e), off) == sizeof(e) && (e >> 63);
}

/*
 * For each attempt posted: wait for the view's entry of its page to go (the
 * conversion's zap), then pin the page at once - the lookup of its pin
 * word lands after the zap and, often, before the conversion commits.
 */
static void *first_pinner(void *arg)
{
	struct first_pin *f = arg;
	unsigned long seen = 0;

	while (!atomic_load(&f->stop)) {
		unsigned long n = atomic_load(&f->posted);
		uint64_t p = atomic_load(&f->page);

		if (n == seen || entry_present(f, p))
			continue;
		atomic_store(&f->result, gmem_pin(f->g, p * PS, PS, 0));
		seen = n;
		atomic_store(&f->done, n);
	}
	return NULL;
}

/*
 * A conversion to private of pages no pin ever held decides that no pin
 * can come while it holds the lock: a first pin makes its page's pin word
 * under the lock.  Tracking makes words too - a zap's record of what it
 * takes lives in them - and a pin that finds a word takes no lock: it
 * must be refused all the same, never granted on a page the conversion
 * then makes private.
 */
TEST_OPTS(first_pins_meet_conversions_of_tracked_pages, .timeout_s = 60,
	  .skip = B_HUGETLB_1G | S_ANY | ONE_SIGNAL_EACH,
	  .why = "an untouched leaf of pin words (2 MiB) per attempt: one signal each, not 1 GiB pages")
{
	/* a leaf of words covers 512 pages, a 2 MiB huge page on hugetlbfs */
	const uint64_t leaf = 512, attempts = env_hugetlb(env) ? 8 : 256;
	struct first_pin f = { .g = tg_create(env, attempts * leaf * PS, 0, 0) };
	pthread_t t;

	f.v = tg_view(f.g, 0);
	f.pagemap = open("/proc/self/pagemap", O_RDONLY);
	CHECK(f.pagemap >= 0);
	start(f.g, 0);
	CHECK_OK(pthread_create(&t, NULL, first_pinner, &f));
	for (unsigned long a = 1; a <= attempts; a++) {
		uint64_t p = (a - 1) * leaf; /* in a leaf no call has made yet */
		volatile char x = f.v[p * PS];
		int r;

		(void)x; /* mapped: the conversion zaps it */
		CHECK(entry_present(&f, p));
		atomic_store(&f.page, p);
		atomic_store(&f.posted, a);
		CHECK_OK(gmem_convert(f.g, p * PS, PS, GMEM_PRIVATE, 0, NULL));
		while (atomic_load(&f.done) != a)
			; /* the entry is gone: the pin comes */
		r = atomic_load(&f.result);
		if (!r)
			test_fail(__FILE__, __LINE__, "attempt %lu: a pin granted on page %llu, which the conversion made private (state %d)", a, (unsigned long long)p, gmem_state(f.g, p * PS));
		CHECK(r == -EAGAIN || r == -EACCES);
		CHECK_OK(gmem_convert(f.g, p * PS, PS, GMEM_SHARED, 0, NULL));
	}
	atomic_store(&f.stop, true);
	CHECK_OK(pthread_join(t, NULL));
	CHECK_OK(gmem_audit(f.g));
	close(f.pagemap);
	CHECK_OK(gmem_destroy(f.g));
}

/*
 * MADV_DOFORK undoes the library's MADV_DONTFORK.  A fork copies the page
 * tables of a mapping registered for write-protect (mm/memory.c,
 * vma_needs_copy()), write-protect markers included: while tracking, a
 * child's copy of a page no view maps holds the marker the start left
 * there, which a poison will not replace.  Its touch is refused all the
 * same, not faulted again for ever.
 */
TEST(dofork_child_touch_of_protected_hole_refused)
{
	struct gmem *g = tg_create(env, 8 * U, 0, 0);
	char *v = tg_view(g, 0);
	int status;
	pid_t pid;

	if (geteuid())
		SKIP("following fork needs CAP_SYS_PTRACE");
	start(g, 0);
	CHECK_OK(madvise(v, 8 * U, MADV_DOFORK));
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		alarm(5); /* a touch faulted for ever ends here */
		if (touch(v + 5 * U, false, NULL, NULL) != SIGBUS)
			_exit(1);
		if (touch(v + 6 * U, true, &(uint8_t){ 6 }, NULL) != SIGBUS)
			_exit(2);
		_exit(0);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		test_fail(__FILE__, __LINE__, "the child was killed by signal %d", WTERMSIG(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK_EQ(v[6 * U], 0);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}
