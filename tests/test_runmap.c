// SPDX-License-Identifier: MIT
/*
 * test_runmap.c - the run map against a plain array of values.
 */
#include <stdlib.h>
#include <string.h>

#include "core/runmap.h"
#include "harness.h"

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* Compare every page and run boundary of m with ref[]. */
static void same(const struct runmap *m, const uint8_t *ref, uint64_t n)
{
	size_t runs = 1;

	CHECK_OK(runmap_check(m));
	for (uint64_t p = 0; p < n; p++) {
		uint64_t s, e;

		CHECK_EQ(runmap_get(m, p, &s, &e), ref[p]);
		CHECK(s <= p && p < e && e <= n);
		CHECK(s == 0 || ref[s - 1] != ref[s]);
		CHECK(e == n || ref[e] != ref[e - 1]);
		if (p && ref[p] != ref[p - 1])
			runs++;
	}
	CHECK_EQ(runmap_runs(m), runs);
}

TEST_ONCE(runmap_random_against_array)
{
	const uint64_t n = 4096;
	uint8_t *ref = calloc(n, 1);
	struct runmap m;

	CHECK_OK(runmap_init(&m, n, 0));
	for (int iter = 0; iter < 20000; iter++) {
		uint64_t s = rnd() % n, len = 1 + rnd() % (iter % 3 ? 8 : 300);
		uint64_t e = s + len > n ? n : s + len;
		uint32_t from = (uint32_t)(rnd() % 7 + 1); /* a non-empty subset of {0,1,2} */
		uint8_t to = (uint8_t)(rnd() % 3);
		int64_t changed = 0, got;

		for (uint64_t p = s; p < e; p++) {
			if ((from & RUNMAP_MASK(ref[p])) && ref[p] != to) {
				ref[p] = to;
				changed++;
			}
		}
		got = runmap_replace(&m, s, e, from, to);
		CHECK_EQ(got, changed);
		if (iter % 500 == 0)
			same(&m, ref, n);
	}
	same(&m, ref, n);

	/* find and count agree with the array */
	for (int iter = 0; iter < 2000; iter++) {
		uint64_t s = rnd() % n, e = s + rnd() % (n - s + 1), first = e, cnt = 0;
		uint32_t mask = (uint32_t)(rnd() % 7 + 1);

		for (uint64_t p = s; p < e; p++) {
			if (mask & RUNMAP_MASK(ref[p])) {
				if (first == e)
					first = p;
				cnt++;
			}
		}
		CHECK_EQ(runmap_find(&m, s, e, mask), first);
		CHECK_EQ(runmap_count(&m, s, e, mask), cnt);
	}
	runmap_fini(&m);
	free(ref);
}

TEST_ONCE(runmap_iterator_clips_runs)
{
	struct runmap m;
	struct runmap_iter it;
	struct run r;
	uint64_t expect[][3] = { { 5, 10, 0 }, { 10, 20, 1 }, { 20, 25, 0 } };
	size_t i = 0;

	CHECK_OK(runmap_init(&m, 100, 0));
	CHECK_EQ(runmap_set(&m, 10, 20, 1), 10);
	runmap_iter_start(&it, &m, 5, 25);
	while (runmap_iter_next(&it, &r)) {
		CHECK(i < 3);
		CHECK_EQ(r.start, expect[i][0]);
		CHECK_EQ(r.end, expect[i][1]);
		CHECK_EQ(r.val, expect[i][2]);
		i++;
	}
	CHECK_EQ(i, 3);
	runmap_iter_start(&it, &m, 100, 120);
	CHECK(!runmap_iter_next(&it, &r));
	runmap_fini(&m);
}

TEST_ONCE(runmap_merges_back_to_one_run)
{
	struct runmap m;

	CHECK_OK(runmap_init(&m, 1ULL << 28, 0)); /* 1 TiB of pages */
	for (uint64_t i = 0; i < 10000; i++)
		CHECK_EQ(runmap_set(&m, i * 1000 + 7, i * 1000 + 9, 1), 2);
	CHECK_EQ(runmap_runs(&m), 20001);
	CHECK_OK(runmap_check(&m));
	CHECK(runmap_bytes(&m) < 1024 * 1024);
	CHECK_EQ(runmap_set(&m, 0, 1ULL << 28, 0), 20000);
	CHECK_EQ(runmap_runs(&m), 1);
	CHECK_OK(runmap_check(&m));
	CHECK(runmap_bytes(&m) < 64 * 1024);
	runmap_fini(&m);
}

TEST_ONCE(runmap_reserved_changes_need_no_memory)
{
	struct runmap m;

	CHECK_OK(runmap_init(&m, 1 << 20, 0));
	for (uint64_t i = 0; i < 5000; i++) {
		size_t chunks_before;

		CHECK_OK(runmap_reserve(&m, 2));
		chunks_before = m.nchunks + m.nspare;
		/* a change splitting two runs draws only on the reserve */
		runmap_set(&m, i * 200 + 3, i * 200 + 5, (uint8_t)(1 + i % 2));
		CHECK(m.nchunks + m.nspare <= chunks_before);
	}
	CHECK_OK(runmap_check(&m));
	runmap_fini(&m);
}
