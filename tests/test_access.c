// SPDX-License-Identifier: MIT
/*
 * test_access.c - gmem_read() and gmem_write(): byte ranges across pages,
 * all or nothing under the rule of a view (private and in-transit pages
 * refused, the first one reported), holes read without being allocated,
 * bad arguments refused with nothing changed, and the promise kept
 * against conversions running beside the copies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "harness.h"
#include "pagecheck.h"

#define NPAGES 8
#define UNSET 0xdeadbeefULL /* an error offset no call should write */

static char *guest_of(struct gmem *g)
{
	void *p;

	CHECK_OK(gmem_guest_map(g, &p));
	return p;
}

/* What a test writes at object offset off: distinct per offset and seed. */
static uint8_t wbyte(uint64_t off, uint8_t seed)
{
	return (uint8_t)(off * 7 + (off >> 12) * 13 + seed * 31 + 1);
}

static char *buffer(uint64_t len, uint8_t fill)
{
	char *b = malloc(len ? len : 1);

	CHECK(b);
	memset(b, fill, len);
	return b;
}

static bool all(const char *p, uint64_t len, uint8_t v)
{
	for (uint64_t i = 0; i < len; i++)
		if ((uint8_t)p[i] != v)
			return false;
	return true;
}

/* Pages of [p, p + n pages) in the page cache, by mincore(). */
static uint64_t resident(const char *p, uint64_t n)
{
	unsigned char vec[NPAGES];
	uint64_t count = 0;

	CHECK(n <= NPAGES);
	CHECK_OK(mincore((void *)p, n * PS, vec));
	for (uint64_t i = 0; i < n; i++)
		count += vec[i] & 1;
	return count;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Write [off, off + len) with seed's bytes, mirror it in shadow, and check
 * that the object (through the guest mapping) holds exactly the shadow -
 * the bytes written, and nothing around them - and reads back the same.
 */
static void write_and_check(struct gmem *g, char *shadow, uint64_t size, uint64_t off,
			    uint64_t len, uint8_t seed)
{
	char *w = buffer(len, 0), *r = buffer(len, 0x5a);
	const char *guest = guest_of(g);
	uint64_t eoff = UNSET;

	for (uint64_t i = 0; i < len; i++)
		w[i] = (char)wbyte(off + i, seed);
	CHECK_OK(gmem_write(g, off, w, len, &eoff));
	memcpy(shadow + off, w, len);
	CHECK(!memcmp(guest, shadow, size));
	CHECK_OK(gmem_read(g, off, r, len, &eoff));
	CHECK(!memcmp(r, w, len));
	CHECK_EQ(eoff, UNSET); /* written on -EACCES only */
	free(w);
	free(r);
}

/* Round trips at byte offsets, across page boundaries, of every length. */
TEST(round_trips_at_byte_offsets)
{
	static const struct {
		uint64_t off, len;
	} ranges[] = {
		{ 0, 1 },
		{ PS - 1, 2 },
		{ PS - 3, 7 },
		{ 1, 3 * PS - 2 },
		{ 2 * PS + 100, PS },
		{ 5 * PS - 17, 2 * PS + 34 },
		{ 3 * PS, PS },
		{ 7 * PS + PS - 1, 1 },
		{ 0, NPAGES * PS },
		{ 6 * PS + 5, 2 * PS - 5 }, /* to the end */
	};
	struct gmem *g = tg_create(env, NPAGES * PS, 0, 0);
	char *shadow = buffer(NPAGES * PS, 0), *r;

	for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		write_and_check(g, shadow, NPAGES * PS, ranges[i].off, ranges[i].len,
				(uint8_t)(i + 1));
	/* reads of ranges other than those written see the same bytes */
	r = buffer(NPAGES * PS, 0x5a);
	CHECK_OK(gmem_read(g, PS / 2, r, 5 * PS + 3, NULL));
	CHECK(!memcmp(r, shadow + PS / 2, 5 * PS + 3));
	CHECK_OK(gmem_read(g, NPAGES * PS - 1, r, 1, NULL));
	CHECK_EQ(r[0], shadow[NPAGES * PS - 1]);
	free(r);
	free(shadow);
	CHECK_OK(gmem_destroy(g));
}

/* Across the backing's own pages (2 MiB with THP): one copy, both pages. */
TEST(round_trip_across_backing_pages)
{
	uint64_t size = 2 * env->unit;
	struct gmem *g = tg_create(env, size, 0, 0);
	char *shadow = buffer(size, 0);

	write_and_check(g, shadow, size, env->unit - 100, 200, 9);
	write_and_check(g, shadow, size, env->unit - 2000, 4000, 10);
	free(shadow);
	CHECK_OK(gmem_destroy(g));
}

/*
 * A range touching a private page is refused whole: -EACCES at the first
 * page that is not shared, the buffer untouched on a read, the object
 * untouched on a write - the private page's contents above all.
 */
TEST(private_page_refuses_the_whole_range)
{
	static const struct {
		uint64_t off, len, want; /* want: UNSET for success, else the error offset */
	} cases[] = {
		{ 2 * PS + 10, PS, 3 * PS },         /* pages 2 and 3 */
		{ 3 * PS + PS - 1, 1, 3 * PS },      /* the private page's last byte */
		{ 3 * PS, 1, 3 * PS },               /* ... and its first */
		{ PS, 6 * PS, 3 * PS },              /* 3 and 5 in it: the first */
		{ 4 * PS, 3 * PS, 5 * PS },          /* 5 alone */
		{ 0, NPAGES * PS, 3 * PS },          /* everything */
		{ 3 * PS - 1, 1, UNSET },            /* page 2's last byte: fine */
		{ 4 * PS, PS, UNSET },               /* page 4, between them */
		{ 2 * PS + 1, PS - 1, UNSET },       /* up to page 3, not into it */
	};
	struct gmem *g = tg_create(env, NPAGES * PS, 0, 0);
	char *guest = guest_of(g), *shadow = buffer(NPAGES * PS, 0);

	for (uint64_t i = 0; i < NPAGES * PS; i++)
		shadow[i] = (char)wbyte(i, 1);
	CHECK_OK(gmem_write(g, 0, shadow, NPAGES * PS, NULL));
	CHECK_OK(gmem_convert(g, 3 * PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_convert(g, 5 * PS, PS, GMEM_PRIVATE, 0, NULL));
	/* the guest's own writes to its private pages */
	memset(guest + 3 * PS, 0x33, PS);
	memset(guest + 5 * PS, 0x55, PS);
	memset(shadow + 3 * PS, 0x33, PS);
	memset(shadow + 5 * PS, 0x55, PS);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t off = cases[i].off, len = cases[i].len, eoff = UNSET;
		int want = cases[i].want == UNSET ? 0 : -EACCES;
		char *r = buffer(len, 0x5a), *w = buffer(len, 0);

		CHECK_EQ(gmem_read(g, off, r, len, &eoff), want);
		CHECK_EQ(eoff, cases[i].want);
		if (want)
			CHECK(all(r, len, 0x5a)); /* nothing copied */
		else
			CHECK(!memcmp(r, shadow + off, len));

		for (uint64_t j = 0; j < len; j++)
			w[j] = (char)wbyte(off + j, (uint8_t)(i + 2));
		eoff = UNSET;
		CHECK_EQ(gmem_write(g, off, w, len, &eoff), want);
		CHECK_EQ(eoff, cases[i].want);
		if (!want)
			memcpy(shadow + off, w, len);
		CHECK(!memcmp(guest, shadow, NPAGES * PS)); /* the refused write wrote nothing */

		/* error_offset may be NULL */
		CHECK_EQ(gmem_read(g, off, r, len, NULL), want);
		CHECK_EQ(gmem_write(g, off, w, len, NULL), want);
		CHECK(!memcmp(guest, shadow, NPAGES * PS));
		free(r);
		free(w);
	}
	for (uint64_t p = 0; p < NPAGES; p++)
		CHECK_EQ(gmem_state(g, p * PS), p == 3 || p == 5 ? GMEM_PRIVATE : GMEM_SHARED);
	CHECK_OK(gmem_audit(g));
	/* shared again, the guest's contents in place, readable */
	CHECK_OK(gmem_convert(g, 0, NPAGES * PS, GMEM_SHARED, 0, NULL));
	{
		char *r = buffer(NPAGES * PS, 0x5a);

		CHECK_OK(gmem_read(g, 0, r, NPAGES * PS, NULL));
		CHECK(!memcmp(r, shadow, NPAGES * PS));
		free(r);
	}
	free(shadow);
	CHECK_OK(gmem_destroy(g));
}

/*
 * A page in transit is refused like a private one, even pinned - though
 * its pin keeps it reachable through a view for the I/O holding it.
 */
TEST_OPTS(in_transit_page_refused_even_pinned, .skip = B_HUGETLB | S_ANY,
	  .why = "hugetlbfs has no transits: a pin refuses the conversion")
{
	struct gmem *g = tg_create(env, NPAGES * PS, 0, 0);
	char *v = tg_view(g, 0), *guest = guest_of(g);
	char w[16], r[16];
	uint64_t eoff = UNSET;

	memset(w, 0x77, sizeof(w));
	for (uint64_t p = 0; p < 4; p++)
		fill_page(v + p * PS, p, 4);
	CHECK_OK(gmem_pin(g, 2 * PS, PS, 0));
	CHECK_EQ(gmem_convert(g, PS, 2 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL), -EINPROGRESS);
	CHECK_EQ(gmem_state(g, PS), GMEM_CONVERTING);
	CHECK_EQ(gmem_state(g, 2 * PS), GMEM_CONVERTING);

	memset(r, 0x5a, sizeof(r));
	CHECK_EQ(gmem_read(g, 2 * PS + 5, r, sizeof(r), &eoff), -EACCES);
	CHECK_EQ(eoff, 2 * PS);
	CHECK(all(r, sizeof(r), 0x5a));
	eoff = UNSET;
	CHECK_EQ(gmem_write(g, 2 * PS + 5, w, sizeof(w), &eoff), -EACCES);
	CHECK_EQ(eoff, 2 * PS);
	CHECK(page_has(guest + 2 * PS, 2, 4));
	/* the unpinned page in transit too, and first in a range over both */
	CHECK_EQ(gmem_read(g, PS - 1, r, 2, &eoff), -EACCES);
	CHECK_EQ(eoff, PS);
	CHECK_EQ(gmem_write(g, PS + 100, w, PS, &eoff), -EACCES);
	CHECK_EQ(eoff, PS);
	CHECK(page_has(guest + PS, 1, 4));
	/* the pages beside the transit are shared */
	CHECK_OK(gmem_read(g, 3 * PS, r, sizeof(r), NULL));
	CHECK(!memcmp(r, guest + 3 * PS, sizeof(r)));
	/* the pin's I/O goes through the view, as before */
	CHECK_OK(touch(v + 2 * PS, false, NULL, NULL));

	CHECK_OK(gmem_unpin(g, 2 * PS, PS, 0)); /* completes the conversion */
	CHECK_EQ(gmem_state(g, 2 * PS), GMEM_PRIVATE);
	CHECK_EQ(gmem_read(g, 2 * PS, r, sizeof(r), &eoff), -EACCES);
	CHECK_EQ(eoff, 2 * PS);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/* Holes read as zero, and a read leaves them holes; a write fills its pages. */
TEST(holes_read_zero_and_stay_holes)
{
	struct gmem *g = tg_create(env, NPAGES * PS, 0, 0);
	char *guest = guest_of(g), *r = buffer(NPAGES * PS, 0x5a);
	char one = 0x42;

	CHECK_EQ(resident(guest, NPAGES), 0);
	CHECK_OK(gmem_read(g, 0, r, NPAGES * PS, NULL));
	CHECK(all(r, NPAGES * PS, 0));
	memset(r, 0x5a, NPAGES * PS);
	CHECK_OK(gmem_read(g, PS - 3, r, 2 * PS + 6, NULL));
	CHECK(all(r, 2 * PS + 6, 0));
	CHECK_EQ(resident(guest, NPAGES), 0); /* nothing allocated */

	CHECK_OK(gmem_write(g, 3 * PS + 7, &one, 1, NULL));
	CHECK(resident(guest + 3 * PS, 1) == 1);
	if (env->backing == GMEM_BACKING_SHMEM)
		CHECK_EQ(resident(guest, NPAGES), 1); /* that page alone */
	memset(r, 0x5a, NPAGES * PS);
	CHECK_OK(gmem_read(g, 0, r, NPAGES * PS, NULL));
	CHECK_EQ(r[3 * PS + 7], 0x42);
	r[3 * PS + 7] = 0;
	CHECK(all(r, NPAGES * PS, 0));

	/* discarded: a hole again, read as zero */
	CHECK_OK(gmem_discard(g, 0, gmem_size(g)));
	CHECK_EQ(resident(guest, NPAGES), 0);
	memset(r, 0x5a, NPAGES * PS);
	CHECK_OK(gmem_read(g, 3 * PS, r, PS, NULL));
	CHECK(all(r, PS, 0));
	CHECK_EQ(resident(guest, NPAGES), 0);
	free(r);
	CHECK_OK(gmem_destroy(g));
}

/* What gmem_write() puts there a view reads, and the other way round. */
TEST(copies_and_views_agree)
{
	struct gmem *g = tg_create(env, NPAGES * PS, 0, 0);
	char *v = tg_view(g, 0), *w = buffer(3 * PS, 0), *r = buffer(3 * PS, 0x5a);

	for (uint64_t i = 0; i < 3 * PS; i++)
		w[i] = (char)wbyte(PS - 100 + i, 5);
	CHECK_OK(gmem_write(g, PS - 100, w, 3 * PS, NULL));
	CHECK(!memcmp(v + PS - 100, w, 3 * PS));
	CHECK_EQ(v[PS - 101], 0);
	CHECK_EQ(v[4 * PS - 100], 0);

	fill_page(v + 5 * PS, 5, 6);
	v[6 * PS] = 0x66;
	CHECK_OK(gmem_read(g, 5 * PS, r, PS + 1, NULL));
	CHECK(page_has(r, 5, 6));
	CHECK_EQ(r[PS], 0x66);

	/* a view's page mapped before the write sees it at once */
	CHECK_OK(gmem_write(g, 5 * PS + 10, "copied", 6, NULL));
	CHECK(!memcmp(v + 5 * PS + 10, "copied", 6));
	CHECK_OK(gmem_audit(g));
	free(w);
	free(r);
	CHECK_OK(gmem_destroy(g));
}

/* -EINVAL for each bad argument, and nothing changed: object, buffer, error offset. */
TEST(bad_arguments_change_nothing)
{
	struct gmem *g = tg_create(env, NPAGES * PS, 0, 0);
	uint64_t size = gmem_size(g), eoff = UNSET;
	char *guest = guest_of(g), *v, *shadow = buffer(size, 0), *r = buffer(64, 0x5a);
	char w[64];
	void *vp;
	/* views of whole huge pages on hugetlbfs: the first one starts at 0 there */
	uint64_t vu = env_view_unit(env), voff = vu > PS ? 0 : 2 * PS;
	uint64_t vlen = vu > 2 * PS ? vu : 2 * PS, wlen = vu > 4 * PS ? vu : 4 * PS;

	memset(w, 0x11, sizeof(w));
	for (uint64_t i = 0; i < NPAGES * PS; i++)
		shadow[i] = (char)wbyte(i, 3);
	CHECK_OK(gmem_write(g, 0, shadow, NPAGES * PS, NULL));
	CHECK_OK(gmem_convert(g, PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_view_map(g, voff, vlen, 0, &vp));
	v = vp;

#define BOTH_EINVAL(off, rbuf, wbuf, len)                                                  \
	do {                                                                               \
		CHECK_EQ(gmem_read(g, off, rbuf, len, &eoff), -EINVAL);                    \
		CHECK_EQ(gmem_write(g, off, wbuf, len, &eoff), -EINVAL);                   \
	} while (0)
	CHECK_EQ(gmem_read(NULL, 0, r, 1, &eoff), -EINVAL);
	CHECK_EQ(gmem_write(NULL, 0, w, 1, &eoff), -EINVAL);
	BOTH_EINVAL(0, NULL, NULL, 1);
	BOTH_EINVAL(PS, NULL, NULL, 1);         /* bad argument first, private page second */
	BOTH_EINVAL(size, r, w, 1);             /* past the end */
	BOTH_EINVAL(size - 1, r, w, 2);         /* ending past it */
	BOTH_EINVAL(size + 1, r, w, 0);         /* starting past it, even with nothing to copy */
	BOTH_EINVAL(UINT64_MAX, r, w, 0);
	BOTH_EINVAL(1, r, w, UINT64_MAX);       /* overflowing */
	BOTH_EINVAL(UINT64_MAX - 1, r, w, 4);
	BOTH_EINVAL(0, (void *)(UINTPTR_MAX - 10), (void *)(UINTPTR_MAX - 10), 64); /* buf wraps */
	BOTH_EINVAL(0, v + 10, v + 10, 64);     /* buf in a view of g */
	BOTH_EINVAL(0, v - 32, v - 32, 64);     /* ... or running into one */
	BOTH_EINVAL(0, v + vlen - 1, v + vlen - 1, 1); /* its last byte */
	CHECK_EQ(eoff, UNSET);
	CHECK(all(r, 64, 0x5a));
	CHECK(!memcmp(guest, shadow, size));
	CHECK_EQ(gmem_state(g, PS), GMEM_PRIVATE);

	/* nothing to copy: 0, nothing done, buf may be NULL; at the very end too */
	CHECK_OK(gmem_read(g, 0, NULL, 0, &eoff));
	CHECK_OK(gmem_write(g, 0, NULL, 0, &eoff));
	CHECK_OK(gmem_read(g, size, r, 0, &eoff));
	CHECK_OK(gmem_write(g, size, w, 0, &eoff));
	CHECK_OK(gmem_read(g, PS, r, 0, &eoff)); /* a private page, but no byte of it */
	CHECK_EQ(eoff, UNSET);
	CHECK(all(r, 64, 0x5a));
	CHECK(!memcmp(guest, shadow, size));

	/*
	 * A view's place is no view once it is unmapped, by the library or
	 * behind its back: memory mapped there next takes copies.
	 */
	CHECK_OK(gmem_view_unmap(g, v));
	CHECK(mmap(v, vlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		   -1, 0) == v);
	CHECK_OK(gmem_read(g, 2 * PS, v, 64, NULL));
	CHECK(!memcmp(v, shadow + 2 * PS, 64));
	CHECK_OK(munmap(v, vlen));
	CHECK_OK(gmem_view_map(g, 0, wlen, 0, &vp));
	v = vp;
	CHECK_OK(munmap(v, wlen));
	CHECK(mmap(v, wlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		   -1, 0) == v);
	CHECK_OK(gmem_write(g, 2 * PS, w, 64, NULL));
	CHECK_OK(gmem_read(g, 2 * PS, v, 64, NULL));
	CHECK(all(v, 64, 0x11));
	CHECK_OK(munmap(v, wlen));
	free(r);
	free(shadow);
	CHECK_OK(gmem_destroy(g));
}

/*
 * The promise against a guest converting beside the copies: it makes a
 * page private, writes its secret through the guest mapping, checks a
 * moment later that it is still there (no host write landed), scrubs it
 * with public data and shares it again, as a guest does - round and round.
 * The host copies in a loop: the page alone, or long ranges that end with
 * it, so that a copy not covered by its decision would reach the page well
 * after a conversion could have slipped in.  A read must never see the
 * secret or a torn page; a copy is refused while the page is not shared.
 */
#define RACE_PAGES 64
#define RACE_PAGE (RACE_PAGES - 1)

struct race {
	struct gmem *g;
	char *guest;
	_Atomic bool stop;
	_Atomic uint64_t rounds, copied, refused, violations;
	uint64_t gen;
};

static void *guest_converts(void *arg)
{
	struct race *s = arg;
	char *page = s->guest + RACE_PAGE * PS;

	while (!atomic_load(&s->stop)) {
		struct pc_check c;

		if (gmem_convert(s->g, RACE_PAGE * PS, PS, GMEM_PRIVATE, 0, NULL))
			atomic_fetch_add(&s->violations, 1);
		pc_fill(page, pc_secret(RACE_PAGE));
		for (int i = 0; i < 2000; i++) /* a moment, for a stray write to land */
			__asm__ volatile("" ::: "memory");
		c = pc_check(page, RACE_PAGE);
		if (c.verdict != PC_SECRET) {
			printf("  a host write reached the private page (word %#llx)\n",
			       (unsigned long long)c.word);
			atomic_fetch_add(&s->violations, 1);
		}
		pc_fill(page, pc_public(RACE_PAGE, ++s->gen)); /* scrub before sharing */
		if (gmem_convert(s->g, RACE_PAGE * PS, PS, GMEM_SHARED, 0, NULL))
			atomic_fetch_add(&s->violations, 1);
		atomic_fetch_add(&s->rounds, 1);
		for (int i = 0; i < 2000; i++) /* shared as long, for copies to succeed */
			__asm__ volatile("" ::: "memory");
	}
	return NULL;
}

/* Until both outcomes have been seen often (or time is up), at most a few seconds. */
static bool race_done(struct race *s, double t0)
{
	double t = now_s() - t0;

	return t > 5 || (t > 0.3 && atomic_load(&s->copied) > 100 && atomic_load(&s->refused) > 100);
}

static void race_start(const struct env *e, struct race *s, pthread_t *tid)
{
	memset(s, 0, sizeof(*s));
	s->g = tg_create(e, RACE_PAGES * PS, 0, 0);
	s->guest = guest_of(s->g);
	for (uint64_t p = 0; p < RACE_PAGES; p++)
		pc_fill(s->guest + p * PS, pc_public(p, 0));
	CHECK_OK(pthread_create(tid, NULL, guest_converts, s));
}

static void race_end(struct race *s, pthread_t tid)
{
	atomic_store(&s->stop, true);
	CHECK_OK(pthread_join(tid, NULL));
	printf("  %llu conversion rounds, %llu copies, %llu refused\n",
	       (unsigned long long)s->rounds, (unsigned long long)s->copied,
	       (unsigned long long)s->refused);
	CHECK_EQ(s->violations, 0);
	CHECK(s->copied > 0 && s->refused > 0);
	CHECK_OK(gmem_audit(s->g));
	CHECK_OK(gmem_destroy(s->g));
}

/* The i-th copy: the page alone, all the pages up to it, or from mid-page 0 to its middle. */
static void race_range(uint64_t i, uint64_t *off, uint64_t *len)
{
	switch (i % 3) {
	case 0:
		*off = RACE_PAGE * PS;
		*len = PS;
		break;
	case 1:
		*off = 0;
		*len = RACE_PAGES * PS;
		break;
	default:
		*off = PS / 2;
		*len = RACE_PAGE * PS;
		break;
	}
}

/* Whether a copy's outcome is one the contract allows (a refusal counted). */
static bool race_outcome(struct race *s, const char *what, int err, uint64_t eoff)
{
	if (err == -EACCES && eoff == RACE_PAGE * PS) {
		atomic_fetch_add(&s->refused, 1);
		return true;
	}
	if (err) {
		printf("  %s: %d, error offset %#llx\n", what, err, (unsigned long long)eoff);
		atomic_fetch_add(&s->violations, 1);
		return false;
	}
	atomic_fetch_add(&s->copied, 1);
	return true;
}

TEST(reads_never_see_a_secret)
{
	struct race s;
	pthread_t tid;
	double t0 = now_s();
	char *r = buffer(RACE_PAGES * PS, 0);

	race_start(env, &s, &tid);
	for (uint64_t i = 0; !race_done(&s, t0); i++) {
		uint64_t off, len, eoff = UNSET;
		int err;

		race_range(i, &off, &len);
		err = gmem_read(s.g, off, r, len, &eoff);
		if (!race_outcome(&s, "gmem_read", err, eoff))
			break;
		if (!err) {
			/* what it read of the page: whole public data (or its first half) */
			char page[PS], why[128];
			uint64_t n = off + len - RACE_PAGE * PS;
			struct pc_check c;

			memcpy(page, r + RACE_PAGE * PS - off, n);
			memcpy(page + n, page, PS - n); /* a half page checked as a page */
			c = pc_check(page, RACE_PAGE);
			if (!pc_ok(&c)) {
				printf("  %s\n", pc_describe(&c, RACE_PAGE, why, sizeof(why)));
				atomic_fetch_add(&s.violations, 1);
				break;
			}
		}
	}
	race_end(&s, tid);
	free(r);
}

TEST(writes_never_land_on_a_private_page)
{
	struct race s;
	pthread_t tid;
	double t0 = now_s();
	char *w = buffer(RACE_PAGES * PS, 0);

	race_start(env, &s, &tid);
	for (uint64_t i = 0; !race_done(&s, t0); i++) {
		uint64_t off, len, eoff = UNSET;
		int err;

		race_range(i, &off, &len);
		/* each page's own public data */
		for (uint64_t b = 0; b < len; b += 8) {
			uint64_t word = pc_public((off + b) / PS, 1000 + i);

			memcpy(w + b, &word, 8);
		}
		err = gmem_write(s.g, off, w, len, &eoff);
		if (!race_outcome(&s, "gmem_write", err, eoff))
			break;
	}
	race_end(&s, tid);
	free(w);
}
