// SPDX-License-Identifier: MIT
/*
 * test_huge.c - huge backing pages through 4 KiB conversions: the guest
 * mapping keeps its huge entries whatever converts or is pinned, a
 * discard in part of a huge page splits it, and gmem_collapse() merges it
 * back with contents, states and views as they were.  gmem_huge_info()
 * says so from the kernel's page tables.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define THP_ONLY (B_ANY & ~B_THP) | S_ANY
#define THP_WHY "only a THP block splits and merges"

static struct gmem_huge_info info(struct gmem *g)
{
	struct gmem_huge_info i;

	memset(&i, 0xa5, sizeof(i));
	CHECK_OK(gmem_huge_info(g, &i));
	for (size_t r = 0; r < sizeof(i.reserved) / sizeof(i.reserved[0]); r++)
		CHECK_EQ(i.reserved[r], 0);
	return i;
}

static char *guest_of(struct gmem *g)
{
	void *p;

	CHECK_OK(gmem_guest_map(g, &p));
	return p;
}

/* Every backing: the shape of the answer, and the first touch of a block. */
TEST(huge_info_counts_blocks)
{
	struct gmem *g = tg_create(env, 4 * env->unit, 0, 0);
	char *guest = guest_of(g);
	struct gmem_huge_info i = info(g);
	uint64_t eoff = 7;

	CHECK_EQ(gmem_backing_page_size(g), env->unit);
	CHECK_EQ(i.page_size, env->unit);
	CHECK_EQ(i.blocks, 4);
	CHECK_EQ(i.blocks_populated, 0);
	CHECK_EQ(i.blocks_guest_huge, 0);
	CHECK_EQ(i.splits, 0);
	CHECK_EQ(i.merges, 0);

	/* the guest's first touch: one block, mapped huge if its page is */
	guest[env->unit + 5] = 1;
	i = info(g);
	CHECK_EQ(i.blocks_populated, 1);
	CHECK_EQ(i.blocks_guest_huge, env->unit > PS ? 1 : 0);

	/* nothing to merge: a huge block stays as it is, a hole stays a hole */
	CHECK_OK(gmem_collapse(g, 0, gmem_size(g), &eoff));
	CHECK_EQ(eoff, 7);
	i = info(g);
	CHECK_EQ(i.blocks_populated, 1);
	CHECK_EQ(i.blocks_guest_huge, env->unit > PS ? 1 : 0);
	CHECK_EQ(i.merges, 0);
	CHECK_EQ(guest[env->unit + 5], 1);
	CHECK_OK(gmem_destroy(g));
}

/* A large object that holds little: counted exactly, and at once (holes skipped whole). */
TEST_OPTS(huge_info_sparse, .skip = (B_ANY & ~(B_SHMEM | B_THP)) | S_ANY,
	  .why = "64 GiB of address space backed by a few pages: hugetlb reserves at mapping")
{
	struct gmem *g = tg_create(env, 64ULL << 30, 0, 0);
	char *guest = guest_of(g);
	uint64_t blocks = (64ULL << 30) / env->unit;
	struct gmem_huge_info i;

	guest[0] = 1;
	guest[(blocks / 3) * env->unit + PS] = 1;
	guest[(blocks - 1) * env->unit] = 1;
	i = info(g);
	CHECK_EQ(i.blocks, blocks);
	CHECK_EQ(i.blocks_populated, 3);
	CHECK_EQ(i.blocks_guest_huge, env->unit > PS ? 3 : 0);
	CHECK_OK(gmem_discard(g, 0, env->unit));
	CHECK_EQ(info(g).blocks_populated, 2);
	CHECK_OK(gmem_destroy(g));
}

TEST(huge_bad_arguments)
{
	struct gmem *g = tg_create(env, 2 * env->unit, 0, 0);
	uint64_t size = gmem_size(g), eoff = 7;
	struct gmem_huge_info i;

	CHECK_EQ(gmem_backing_page_size(NULL), 0);
	CHECK_EQ(gmem_huge_info(NULL, &i), -EINVAL);
	CHECK_EQ(gmem_huge_info(g, NULL), -EINVAL);
	CHECK_EQ(gmem_collapse(NULL, 0, PS, &eoff), -EINVAL);
	CHECK_EQ(gmem_collapse(g, 0, 0, &eoff), -EINVAL);
	CHECK_EQ(gmem_collapse(g, 1, PS, &eoff), -EINVAL);
	CHECK_EQ(gmem_collapse(g, 0, PS + 1, &eoff), -EINVAL);
	CHECK_EQ(gmem_collapse(g, size, PS, &eoff), -EINVAL);
	CHECK_EQ(gmem_collapse(g, 0, size + PS, &eoff), -EINVAL);
	CHECK_EQ(gmem_collapse(g, PS, UINT64_MAX - PS + 1, &eoff), -EINVAL);
	CHECK_EQ(eoff, 7);
	CHECK_OK(gmem_collapse(g, size - PS, PS, NULL));
	CHECK_OK(gmem_destroy(g));
}

/* The 4 KiB backing: a block is a page, nothing splits, nothing merges. */
TEST_OPTS(shmem_blocks_are_pages, .skip = (B_ANY & ~B_SHMEM) | S_ANY,
	  .why = "the 4 KiB backing's answers")
{
	struct gmem *g = tg_create(env, 64 * PS, 0, 0);
	char *guest = guest_of(g), *v = tg_view(g, 0);
	struct gmem_huge_info i;

	for (uint64_t p = 3; p < 64; p += 20)
		guest[p * PS] = (char)p;
	i = info(g);
	CHECK_EQ(i.page_size, PS);
	CHECK_EQ(i.blocks, 64);
	CHECK_EQ(i.blocks_populated, 4);
	CHECK_EQ(i.blocks_guest_huge, 0);
	CHECK_OK(gmem_pin(g, 23 * PS, PS, 0));
	CHECK_OK(gmem_collapse(g, 0, 64 * PS, NULL)); /* pins or not: nothing to do */
	CHECK_OK(gmem_unpin(g, 23 * PS, PS, 0));
	CHECK_OK(gmem_discard(g, 40 * PS, 8 * PS));
	i = info(g);
	CHECK_EQ(i.blocks_populated, 3);
	CHECK_EQ(i.splits, 0);
	CHECK_EQ(i.merges, 0);
	CHECK_EQ(v[23 * PS], 23);
	CHECK_OK(gmem_destroy(g));
}

/* A small random generator of the test's own, for repeatable runs. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * (1) 10,000 random 4 KiB conversions over 1 GiB, the guest mapping fully
 * populated first, a view touching shared pages all along: every block
 * stays mapped huge by the guest mapping.
 */
#define BIG (1ULL << 30)
#define CONVERSIONS 10000
TEST_OPTS(thp_conversions_keep_guest_huge, .timeout_s = 120,
	  .skip = THP_ONLY | ONE_SIGNAL_EACH, .why = THP_WHY "; the fault signal plays no part")
{
	struct gmem *g = tg_create(env, BIG, 0, 0);
	char *guest = guest_of(g), *v = tg_view(g, 0);
	uint64_t npages = BIG / PS, seed = 0x9e3779b97f4a7c15ULL, touched = 0;
	uint8_t *priv = calloc(npages, 1);
	struct gmem_huge_info i;

	CHECK(priv);
	for (uint64_t o = 0; o < BIG; o += PS)
		guest[o] = (char)(o >> 12);
	i = info(g);
	CHECK_EQ(i.blocks, 512);
	CHECK_EQ(i.blocks_populated, 512);
	CHECK_EQ(i.blocks_guest_huge, 512);

	for (int n = 0; n < CONVERSIONS; n++) {
		uint64_t p = rnd(&seed) % npages;

		CHECK_OK(gmem_convert(g, p * PS, PS, priv[p] ? GMEM_SHARED : GMEM_PRIVATE, 0, NULL));
		priv[p] ^= 1;
		if (n % 4 == 0) {
			/* the host at work on a shared page meanwhile */
			uint64_t q = rnd(&seed) % npages;
			uint8_t val = 0;

			if (priv[q])
				continue;
			CHECK_OK(touch(v + q * PS, false, &val, NULL));
			CHECK_EQ(val, (uint8_t)q);
			CHECK_OK(touch(v + q * PS + 1, true, &(uint8_t){ 0x5a }, NULL));
			touched++;
		}
	}
	CHECK(touched > CONVERSIONS / 8);
	i = info(g);
	CHECK_EQ(i.blocks_populated, 512);
	CHECK_EQ(i.blocks_guest_huge, 512);
	CHECK_EQ(i.splits, 0);
	for (uint64_t p = 0; p < npages; p += 97)
		CHECK_EQ(gmem_state(g, p * PS), priv[p] ? GMEM_PRIVATE : GMEM_SHARED);
	CHECK_OK(gmem_audit(g));
	free(priv);
	CHECK_OK(gmem_destroy(g));
}

/*
 * (2) A long-term pin on one page of a huge page does not stop another
 * page of it from converting - the kernel's guest_memfd, which converts
 * whole folios, cannot - and the block stays huge.
 */
TEST_OPTS(thp_pin_does_not_hold_its_block, .skip = THP_ONLY, .why = THP_WHY)
{
	struct gmem *g = tg_create(env, 2 * MiB, 0, 0);
	char *guest = guest_of(g), *v = tg_view(g, 0);
	uint64_t eoff = 0;

	fill_page(v + 9 * PS, 9, 'p');
	fill_page(v + 300 * PS, 300, 'q');
	CHECK_EQ(info(g).blocks_guest_huge, 1);
	CHECK_OK(gmem_pin(g, 9 * PS, PS, GMEM_PIN_LONGTERM));
	CHECK_OK(gmem_convert(g, 300 * PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_convert(g, 10 * PS, 100 * PS, GMEM_PRIVATE, 0, NULL));
	CHECK_EQ(gmem_convert(g, 0, 2 * MiB, GMEM_PRIVATE, 0, &eoff), -EBUSY);
	CHECK_EQ(eoff, 9 * PS);
	CHECK_EQ(touch(v + 300 * PS, false, NULL, NULL), env->sig);
	CHECK(page_has(v + 9 * PS, 9, 'p')); /* the pinned page's I/O goes on */
	CHECK_EQ(info(g).blocks_guest_huge, 1);
	CHECK_OK(gmem_convert(g, 300 * PS, PS, GMEM_SHARED, 0, NULL));
	CHECK(page_has(v + 300 * PS, 300, 'q'));
	CHECK(page_has(guest + 300 * PS, 300, 'q'));
	CHECK_EQ(info(g).blocks_guest_huge, 1);
	CHECK_OK(gmem_unpin(g, 9 * PS, PS, GMEM_PIN_LONGTERM));
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/* Pages of a two-block object, their contents and states, to compare. */
#define TWO (4 * MiB / PS)
struct picture {
	uint8_t seed[TWO]; /* 0: reads zero */
	int state[TWO];
};

static void look(struct gmem *g, const char *guest, const struct picture *want)
{
	for (uint64_t p = 0; p < TWO; p++) {
		if (want->seed[p])
			CHECK(page_has(guest + p * PS, p, want->seed[p]));
		else
			CHECK(page_zero(guest + p * PS));
		CHECK_EQ(gmem_state(g, p * PS), want->state[p]);
	}
}

/* What view v shows of each page: the contents of shared ones, refusal of the others. */
static void look_through(const struct env *e, const char *v, const struct picture *want)
{
	static char buf[PS];

	for (uint64_t p = 0; p < TWO; p++) {
		if (want->state[p] != GMEM_SHARED) {
			CHECK_EQ(touch((volatile char *)v + p * PS, false, NULL, NULL), e->sig);
			continue;
		}
		CHECK_OK(touch_copy(buf, v + p * PS, PS));
		if (want->seed[p])
			CHECK(page_has(buf, p, want->seed[p]));
		else
			CHECK(page_zero(buf));
	}
}

/* Two blocks written through a view, a few private pages, the second block's refused. */
static struct gmem *two_blocks(const struct env *e, struct picture *pic, char **view)
{
	struct gmem *g = tg_create(e, 4 * MiB, 0, 0);
	char *v = tg_view(g, 0);

	for (uint64_t p = 0; p < TWO; p++) {
		pic->seed[p] = (uint8_t)(1 + p % 200);
		fill_page(v + p * PS, p, pic->seed[p]);
		pic->state[p] = GMEM_SHARED;
	}
	for (uint64_t p = 3; p < TWO; p += 61) {
		CHECK_OK(gmem_convert(g, p * PS, PS, GMEM_PRIVATE, 0, NULL));
		pic->state[p] = GMEM_PRIVATE;
		CHECK_EQ(touch(v + p * PS, false, NULL, NULL), e->sig);
	}
	CHECK_EQ(info(g).blocks_guest_huge, 2);
	*view = v;
	return g;
}

/*
 * (3) A discard in part of a huge page splits it (a later touch of the
 * hole does not bring it back), gmem_collapse() merges it: every page's
 * contents and state as before, the discarded ones zero, and a view
 * reads the same.
 */
TEST_OPTS(thp_discard_splits_collapse_merges, .skip = THP_ONLY, .why = THP_WHY)
{
	struct picture pic;
	char *v, *guest, *v2;
	struct gmem *g = two_blocks(env, &pic, &v);
	struct gmem_huge_info i;
	uint64_t eoff = 7;

	guest = guest_of(g);
	/* a shared page and a private one in the second block */
	CHECK_EQ(pic.state[TWO / 2 + 5], GMEM_SHARED);
	CHECK_EQ(pic.state[TWO / 2 + 40], GMEM_PRIVATE);
	CHECK_OK(gmem_discard(g, (TWO / 2 + 5) * PS, PS));
	CHECK_OK(gmem_discard(g, (TWO / 2 + 40) * PS, PS));
	pic.seed[TWO / 2 + 5] = pic.seed[TWO / 2 + 40] = 0;
	i = info(g);
	CHECK_EQ(i.splits, 1); /* one block, split once */
	CHECK_EQ(i.blocks_populated, 2);
	CHECK_EQ(i.blocks_guest_huge, 1);
	look(g, guest, &pic);
	look_through(env, v, &pic);
	/* the hole refilled through a view: still split */
	fill_page(v + (TWO / 2 + 5) * PS, TWO / 2 + 5, 'h');
	pic.seed[TWO / 2 + 5] = 'h';
	CHECK_EQ(info(g).blocks_guest_huge, 1);

	/* a second view over the split block, mapped in part before the merge */
	CHECK_OK(gmem_view_map(g, 2 * MiB, 2 * MiB, 0, (void **)&v2));
	CHECK(page_has(v2 + 7 * PS, TWO / 2 + 7, pic.seed[TWO / 2 + 7]));

	CHECK_OK(gmem_collapse(g, 0, gmem_size(g), &eoff));
	CHECK_EQ(eoff, 7);
	i = info(g);
	CHECK_EQ(i.splits, 1);
	CHECK_EQ(i.merges, 1);
	CHECK_EQ(i.blocks_populated, 2);
	CHECK_EQ(i.blocks_guest_huge, 2);
	look(g, guest, &pic);
	look_through(env, v, &pic);
	CHECK(page_has(v2 + 7 * PS, TWO / 2 + 7, pic.seed[TWO / 2 + 7]));
	CHECK_EQ(touch(v2 + 40 * PS, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_audit(g));

	/* the merged block works as any other: a conversion, a write, a refusal */
	CHECK_EQ(pic.state[TWO / 2 + 101], GMEM_PRIVATE);
	CHECK_OK(gmem_convert(g, (TWO / 2 + 101) * PS, PS, GMEM_SHARED, 0, NULL));
	CHECK(page_has(v2 + 101 * PS, TWO / 2 + 101, pic.seed[TWO / 2 + 101]));
	CHECK_OK(gmem_convert(g, (TWO / 2 + 7) * PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_EQ(touch(v + (TWO / 2 + 7) * PS, false, NULL, NULL), env->sig);
	CHECK_EQ(info(g).blocks_guest_huge, 2);
	CHECK_OK(gmem_audit(g));

	/* a discard of whole blocks: nothing left to merge, a new huge page at the next touch */
	CHECK_OK(gmem_discard(g, 2 * MiB, 2 * MiB));
	i = info(g);
	CHECK_EQ(i.blocks_populated, 1);
	CHECK_OK(gmem_collapse(g, 2 * MiB, PS, NULL));
	CHECK_EQ(info(g).merges, 1);
	guest[2 * MiB + 9 * PS] = 1;
	CHECK_EQ(info(g).blocks_guest_huge, 2);
	CHECK_OK(gmem_view_unmap(g, v2));
	CHECK_OK(gmem_destroy(g));
}

/*
 * (4) A pin in any block of the range refuses the whole collapse, at the
 * pinned page, merging nothing; without the pin it merges them all.
 */
TEST_OPTS(thp_collapse_refused_while_pinned, .skip = THP_ONLY, .why = THP_WHY)
{
	struct picture pic;
	char *v, *guest;
	struct gmem *g = two_blocks(env, &pic, &v);
	struct gmem_huge_info i;
	uint64_t eoff = 0;

	guest = guest_of(g);
	CHECK_OK(gmem_discard(g, 100 * PS, PS));
	CHECK_OK(gmem_discard(g, (TWO / 2 + 100) * PS, 2 * PS)); /* a shared page, a private one */
	pic.seed[100] = pic.seed[TWO / 2 + 100] = pic.seed[TWO / 2 + 101] = 0;
	i = info(g);
	CHECK_EQ(i.splits, 2);
	CHECK_EQ(i.blocks_guest_huge, 0);

	CHECK_OK(gmem_pin(g, (TWO / 2 + 41) * PS, 2 * PS, 0));
	CHECK_OK(gmem_pin(g, (TWO / 2 + 400) * PS, PS, GMEM_PIN_LONGTERM));
	CHECK_EQ(gmem_collapse(g, 0, gmem_size(g), &eoff), -EAGAIN);
	CHECK_EQ(eoff, (TWO / 2 + 41) * PS);
	/* the range rounds out to blocks: one page names its block */
	eoff = 0;
	CHECK_EQ(gmem_collapse(g, (TWO / 2 + 511) * PS, PS, &eoff), -EAGAIN);
	CHECK_EQ(eoff, (TWO / 2 + 41) * PS);
	i = info(g);
	CHECK_EQ(i.merges, 0);
	CHECK_EQ(i.blocks_guest_huge, 0);
	/* a block with no pin merges alone */
	CHECK_OK(gmem_collapse(g, 0, PS, &eoff));
	CHECK_EQ(info(g).blocks_guest_huge, 1);
	CHECK_EQ(info(g).merges, 1);

	/* the pinned pages' I/O went on, and nothing held the pins back */
	CHECK(page_has(v + (TWO / 2 + 41) * PS, TWO / 2 + 41, pic.seed[TWO / 2 + 41]));
	CHECK_OK(gmem_pin(g, (TWO / 2 + 41) * PS, PS, 0));
	CHECK_OK(gmem_unpin(g, (TWO / 2 + 41) * PS, PS, 0));
	CHECK_OK(gmem_unpin(g, (TWO / 2 + 41) * PS, 2 * PS, 0));
	eoff = 0;
	CHECK_EQ(gmem_collapse(g, 0, gmem_size(g), &eoff), -EAGAIN);
	CHECK_EQ(eoff, (TWO / 2 + 400) * PS);
	CHECK_OK(gmem_unpin(g, (TWO / 2 + 400) * PS, PS, GMEM_PIN_LONGTERM));

	CHECK_OK(gmem_collapse(g, 0, gmem_size(g), &eoff));
	i = info(g);
	CHECK_EQ(i.merges, 2);
	CHECK_EQ(i.blocks_guest_huge, 2);
	look(g, guest, &pic);
	look_through(env, v, &pic);
	/* a page being collapsed cannot be pinned: nothing was left held */
	for (uint64_t o = 0; o < gmem_size(g); o += 2 * MiB) {
		CHECK_OK(gmem_pin(g, o, 3 * PS, 0));
		CHECK_OK(gmem_unpin(g, o, 3 * PS, 0));
	}
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/* The host's traffic on every page but each eighth: conversions, and reads where shared. */
struct traffic {
	struct gmem *g;
	char *view;
	const struct env *env;
	int state[TWO];
	atomic_bool stop;
	pthread_t tid;
	unsigned long ops, bad;
};

static void *traffic_run(void *arg)
{
	struct traffic *t = arg;
	static __thread char buf[PS];
	uint64_t seed = 0x2545f4914f6cdd1dULL;

	while (!atomic_load(&t->stop)) {
		uint64_t p = rnd(&seed) % TWO;
		int to = t->state[p] == GMEM_SHARED ? GMEM_PRIVATE : GMEM_SHARED;

		if (p % 8 == 7)
			continue; /* the discards' */
		if (gmem_convert(t->g, p * PS, PS, (unsigned int)to, 0, NULL))
			t->bad++;
		t->state[p] = to;
		p = rnd(&seed) % TWO;
		if (p % 8 == 7)
			continue;
		if (t->state[p] == GMEM_SHARED)
			t->bad += touch_copy(buf, t->view + p * PS, PS) || !page_has(buf, p, 'T');
		else
			t->bad += touch(t->view + p * PS, false, NULL, NULL) != t->env->sig;
		t->ops++;
	}
	return NULL;
}

/*
 * Collapses while the host converts and reads the same blocks: no
 * conversion fails, no read sees wrong contents, no private page shows
 * through a view, and the blocks end huge.
 */
TEST_OPTS(thp_collapse_under_traffic, .skip = THP_ONLY, .why = THP_WHY)
{
	struct traffic *t = calloc(1, sizeof(*t));
	uint64_t seed = 0x853c49e6748fea9bULL, done = 0;
	char *guest;

	CHECK(t);
	t->g = tg_create(env, 4 * MiB, 0, 0);
	t->view = tg_view(t->g, 0);
	t->env = env;
	guest = guest_of(t->g);
	for (uint64_t p = 0; p < TWO; p++)
		fill_page(t->view + p * PS, p, 'T');
	CHECK_OK(pthread_create(&t->tid, NULL, traffic_run, t));
	for (int i = 0; i < 40; i++) {
		uint64_t p = (rnd(&seed) % (TWO / 8)) * 8 + 7, eoff = 0;
		int err;

		CHECK_OK(gmem_discard(t->g, p * PS, PS));
		err = gmem_collapse(t->g, 0, 4 * MiB, &eoff);
		CHECK(err == 0 || err == -EAGAIN); /* the kernel may find a page busy */
		done += !err;
		usleep(1000); /* the host's turn */
	}
	atomic_store(&t->stop, true);
	CHECK_OK(pthread_join(t->tid, NULL));
	CHECK_EQ(t->bad, 0);
	CHECK(t->ops > 0);
	CHECK(done > 0);
	CHECK_OK(gmem_audit(t->g));
	CHECK_OK(gmem_collapse(t->g, 0, 4 * MiB, NULL));
	CHECK_EQ(info(t->g).blocks_guest_huge, 2);
	for (uint64_t p = 0; p < TWO; p++) {
		if (p % 8 == 7)
			CHECK(page_zero(guest + p * PS) || page_has(guest + p * PS, p, 'T'));
		else
			CHECK(page_has(guest + p * PS, p, 'T'));
		CHECK_EQ(gmem_state(t->g, p * PS), t->state[p]);
	}
	CHECK_OK(gmem_audit(t->g));
	CHECK_OK(gmem_destroy(t->g));
	free(t);
}
