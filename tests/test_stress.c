// SPDX-License-Identifier: MIT
/*
 * test_stress.c - converting, pinning, touching and discarding at random
 * from several threads at once, for a bounded time, checking throughout:
 *  - gmem_audit() is always 0 (no view maps a private page);
 *  - a pinned page is never private, and always touchable (in transit it
 *    waits for this very pin) - on hugetlbfs, where a view maps a huge page
 *    only while every piece is shared, when its huge page had no piece
 *    but shared ones once pinned (a pin refuses converting any of them);
 *  - contents survive every conversion: each page holds the word its last
 *    writer recorded, or zeros after a discard - whole and its own, as
 *    tests/pagecheck.c checks for the soak too;
 *  - every deferred conversion ends in exactly one callback.
 * Writers, checkers and discarders serialise on a per-page test mutex
 * (contents are the test's to track); conversions and audits run free.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "pagecheck.h"

#define SECONDS 2

struct stress {
	struct gmem *g;
	char *view[2];
	uint64_t npages;
	uint64_t hp; /* pages in a huge page, on hugetlbfs; else 0 */
	int sig; /* how the host is refused */
	pthread_mutex_t *page_mu;
	uint64_t *word; /* under page_mu: the page's pagecheck.h word, 0 once discarded */
	_Atomic bool stop;
	_Atomic uint64_t deferred, callbacks, ops, denied, violations;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void on_convert(struct gmem *g, uint64_t off, uint64_t len, unsigned int to, int result,
		       void *arg)
{
	struct stress *s = arg;

	(void)g, (void)off, (void)len, (void)to;
	if (result != 0 && result != -ECANCELED)
		atomic_fetch_add(&s->violations, 1);
	atomic_fetch_add(&s->callbacks, 1);
}

static void violation(struct stress *s, const char *what, uint64_t page)
{
	printf("  violation: %s (page %llu)\n", what, (unsigned long long)page);
	atomic_fetch_add(&s->violations, 1);
}

/* Whole, well-formed, its own, and what its last writer wrote. */
static bool content_ok(struct stress *s, const void *p, uint64_t page)
{
	struct pc_check c = pc_check(p, page);

	return pc_ok(&c) && c.word == s->word[page];
}

static void *converter(void *arg)
{
	struct stress *s = arg;
	uint64_t r = (uint64_t)pthread_self() | 1;

	while (!atomic_load(&s->stop)) {
		uint64_t first = rnd(&r) % s->npages, n = 1 + rnd(&r) % 16;
		unsigned int to = rnd(&r) % 2 ? GMEM_PRIVATE : GMEM_SHARED;
		unsigned int flags = (const unsigned int[]){ 0, GMEM_CONVERT_WAIT, GMEM_CONVERT_DEFER }[rnd(&r) % 3];
		int err;

		if (first + n > s->npages)
			n = s->npages - first;
		err = gmem_convert(s->g, first * PS, n * PS, to, flags, NULL);
		if (err == -EINPROGRESS)
			atomic_fetch_add(&s->deferred, 1);
		else if (err && err != -EAGAIN && err != -EBUSY) /* long-term pins refuse */
			violation(s, "unexpected conversion error", first);
		atomic_fetch_add(&s->ops, 1);
	}
	return NULL;
}

/*
 * Whether every page of page's huge page is shared (on hugetlbfs; true
 * otherwise): then, with page pinned, none can turn private and a view
 * maps it.
 */
static bool huge_page_shared(struct stress *s, uint64_t page)
{
	if (!s->hp)
		return true;
	for (uint64_t p = page / s->hp * s->hp; p < (page / s->hp + 1) * s->hp; p++)
		if (gmem_state(s->g, p * PS) != GMEM_SHARED)
			return false;
	return true;
}

/* Pin, check the pinned page is shared and holds its contents, maybe rewrite it. */
static void *pinner(void *arg)
{
	struct stress *s = arg;
	uint64_t r = (uint64_t)pthread_self() | 3;

	while (!atomic_load(&s->stop)) {
		uint64_t page = rnd(&r) % s->npages;
		unsigned int kind = rnd(&r) % 4 == 0 ? GMEM_PIN_LONGTERM : 0;
		char *p = s->view[rnd(&r) % 2] + page * PS;
		int err;

		pthread_mutex_lock(&s->page_mu[page]);
		err = gmem_pin(s->g, page * PS, PS, kind);
		if (!err) {
			bool reachable = huge_page_shared(s, page);
			int sig;

			/* shared, or in transit waiting for this very pin: never private */
			if (gmem_state(s->g, page * PS) == GMEM_PRIVATE)
				violation(s, "pinned page private", page);
			sig = touch(p, false, NULL, NULL);
			if (sig && (reachable || sig != s->sig))
				violation(s, "pinned page not touchable", page);
			else if (!sig && !content_ok(s, p, page))
				violation(s, "contents changed", page);
			if (!sig && rnd(&r) % 2) {
				s->word[page] = pc_public(page, rnd(&r) | 1);
				pc_fill(p, s->word[page]);
			}
			if (gmem_unpin(s->g, page * PS, PS, kind))
				violation(s, "unpin failed", page);
		} else if (err != -EACCES && err != -EAGAIN) {
			violation(s, "unexpected pin error", page);
		}
		pthread_mutex_unlock(&s->page_mu[page]);
		atomic_fetch_add(&s->ops, 1);
	}
	return NULL;
}

/*
 * Touch without a pin: a shared page reads its contents, anything else is
 * refused - and without a pin the page may be converted mid-read.
 */
static void *toucher(void *arg)
{
	struct stress *s = arg;
	uint64_t r = (uint64_t)pthread_self() | 5;
	uint64_t copy[PC_WORDS];

	while (!atomic_load(&s->stop)) {
		uint64_t page = rnd(&r) % s->npages;
		char *p = s->view[rnd(&r) % 2] + page * PS;
		int sig;

		pthread_mutex_lock(&s->page_mu[page]);
		sig = touch_copy(copy, p, PS);
		if (sig == 0 && !content_ok(s, copy, page))
			violation(s, "contents changed", page);
		else if (sig && sig != s->sig)
			violation(s, "wrong signal", page);
		atomic_fetch_add(&s->denied, sig != 0);
		if (rnd(&r) % 8 == 0) {
			int err = gmem_discard(s->g, page * PS, PS);

			if (!err)
				s->word[page] = 0;
			else if (err != -EBUSY)
				violation(s, "unexpected discard error", page);
		}
		pthread_mutex_unlock(&s->page_mu[page]);
		atomic_fetch_add(&s->ops, 1);
	}
	return NULL;
}

static void *auditor(void *arg)
{
	struct stress *s = arg;

	while (!atomic_load(&s->stop)) {
		if (gmem_audit(s->g))
			violation(s, "audit found a private page mapped", 0);
		atomic_fetch_add(&s->ops, 1);
	}
	return NULL;
}

TEST_OPTS(stress_invariants, .skip = ONE_SIGNAL_EACH,
	  .why = "2 s of threads racing: each backing under one signal, both signals in turn")
{
	void *(*const roles[])(void *) = { converter, converter, pinner, pinner, toucher, auditor };
	const size_t nthreads = sizeof(roles) / sizeof(roles[0]);
	struct stress s = { 0 };
	pthread_t tid[6];

	/* on hugetlbfs four huge pages: pins refuse conversions a huge page at a time */
	s.g = tg_create(env, env_hugetlb(env) ? 4 * env->unit : 256 * PS, 0, 0);
	s.sig = env->sig;
	s.npages = gmem_size(s.g) / PS;
	s.hp = env_hugetlb(env) ? env->unit / PS : 0;
	s.view[0] = tg_view(s.g, 0);
	s.view[1] = tg_view(s.g, 0);
	s.page_mu = calloc(s.npages, sizeof(s.page_mu[0]));
	s.word = calloc(s.npages, sizeof(s.word[0]));
	CHECK(s.page_mu && s.word);
	for (uint64_t p = 0; p < s.npages; p++) {
		pthread_mutex_init(&s.page_mu[p], NULL);
		s.word[p] = pc_public(p, 1);
		pc_fill(s.view[0] + p * PS, s.word[p]);
	}
	CHECK_OK(gmem_set_convert_callback(s.g, on_convert, &s));

	for (size_t i = 0; i < nthreads; i++)
		CHECK_OK(pthread_create(&tid[i], NULL, roles[i], &s));
	sleep(SECONDS);
	atomic_store(&s.stop, true);
	for (size_t i = 0; i < nthreads; i++)
		CHECK_OK(pthread_join(tid[i], NULL));

	/* quiescent: no pins, so no conversion can still be in transit */
	for (uint64_t p = 0; p < s.npages; p++)
		CHECK(gmem_state(s.g, p * PS) != GMEM_CONVERTING);
	CHECK_EQ(atomic_load(&s.callbacks), atomic_load(&s.deferred));
	CHECK_OK(gmem_audit(s.g));
	CHECK_OK(gmem_convert(s.g, 0, s.npages * PS, GMEM_SHARED, 0, NULL));
	for (uint64_t p = 0; p < s.npages; p++)
		if (!content_ok(&s, s.view[1] + p * PS, p))
			violation(&s, "contents changed", p);
	printf("  %llu operations in %d s, %llu deferred, %llu touches refused\n",
	       (unsigned long long)atomic_load(&s.ops), SECONDS,
	       (unsigned long long)atomic_load(&s.deferred), (unsigned long long)atomic_load(&s.denied));
	CHECK_EQ(atomic_load(&s.violations), 0);
	CHECK_OK(gmem_destroy(s.g));
	free(s.page_mu);
	free(s.word);
}
