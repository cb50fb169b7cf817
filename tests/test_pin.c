// SPDX-License-Identifier: MIT
/*
 * test_pin.c - pins against conversions: the kernel's elevated_refcount
 * case, long-term pins, GMEM_CONVERT_WAIT and GMEM_CONVERT_DEFER.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* For the cases about transits, which hugetlbfs has none of. */
#define NO_TRANSIT_WAIT                                                                    \
	.skip2 = B_HUGETLB | S_ANY,                                                          \
	.why2 = "no transit to wait in: hugetlbfs refuses a conversion under a pin at once (gmem.h)"
#define NO_TRANSIT_DEFER                                                                   \
	.skip2 = B_HUGETLB | S_ANY,                                                          \
	.why2 = "deferred transits: hugetlbfs refuses conversions under pins, whatever the flags (gmem.h)"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/*
 * A pinned page refuses conversion, in bulk and alone, with its offset -
 * on hugetlbfs so does every page of its huge page.
 */
TEST_OPTS(elevated_refcount, .subset = B_HUGETLB_1G)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	char *v = tg_view(g, 0);
	void *guest;

	CHECK_OK(gmem_guest_map(g, &guest));
	for (uint64_t test_page = 0; test_page < 4; test_page++) {
		uint64_t eoff = 0;

		CHECK_OK(gmem_convert(g, 0, 4 * PS, GMEM_SHARED, 0, NULL));
		for (uint64_t p = 0; p < 4; p++)
			fill_page(v + p * PS, p, 'A');
		CHECK_OK(gmem_pin(g, test_page * PS, PS, 0));
		CHECK_EQ(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, 0, &eoff), -EAGAIN);
		CHECK_EQ(eoff, test_page * PS);
		for (uint64_t p = 0; p < 4; p++) {
			eoff = 0;
			if (env_pin_blocks(env, test_page * PS, p * PS)) {
				CHECK_EQ(gmem_convert(g, p * PS, PS, GMEM_PRIVATE, 0, &eoff), -EAGAIN);
				CHECK_EQ(eoff, test_page * PS);
				CHECK_EQ(gmem_state(g, p * PS), GMEM_SHARED);
			} else {
				CHECK_OK(gmem_convert(g, p * PS, PS, GMEM_PRIVATE, 0, NULL));
			}
		}
		/* the pinned page stays shared and touchable */
		CHECK(page_has(v + test_page * PS, test_page, 'A'));
		CHECK_OK(gmem_unpin(g, test_page * PS, PS, 0));
		CHECK_OK(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, 0, NULL));
		for (uint64_t p = 0; p < 4; p++)
			CHECK(page_has((char *)guest + p * PS, p, 'A'));
	}
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/*
 * The lowest pinned page is reported, whatever the order of pinning: on
 * hugetlbfs the lowest of the huge pages the range touches, outside the
 * range too.
 */
TEST(elevated_refcount_lowest_offset)
{
	struct gmem *g = tg_create(env, 16 * PS, 0, 0);
	uint64_t eoff = 0;

	CHECK_OK(gmem_pin(g, 11 * PS, PS, 0));
	CHECK_OK(gmem_pin(g, 6 * PS, 2 * PS, 0));
	CHECK_EQ(gmem_convert(g, 2 * PS, 12 * PS, GMEM_PRIVATE, 0, &eoff), -EAGAIN);
	CHECK_EQ(eoff, 6 * PS);
	CHECK_EQ(gmem_convert(g, 8 * PS, 8 * PS, GMEM_PRIVATE, 0, &eoff), -EAGAIN);
	CHECK_EQ(eoff, env_hugetlb(env) ? 6 * PS : 11 * PS);
	CHECK_EQ(gmem_convert(g, 8 * PS, 8 * PS, GMEM_PRIVATE, 0, NULL), -EAGAIN); /* NULL is fine */
	CHECK_OK(gmem_unpin(g, 11 * PS, PS, 0));
	CHECK_OK(gmem_unpin(g, 6 * PS, 2 * PS, 0));
	CHECK_OK(gmem_destroy(g));
}

/* A long-term pin refuses with -EBUSY whatever the flags; a short one beside it does not win. */
TEST(longterm_pin_busy_under_every_flag)
{
	const unsigned int flags[] = { 0, GMEM_CONVERT_WAIT, GMEM_CONVERT_DEFER };
	struct gmem *g = tg_create(env, 8 * PS, 0, 0);
	struct gmem_stats st;

	CHECK_OK(gmem_pin(g, 2 * PS, PS, 0));
	CHECK_OK(gmem_pin(g, 5 * PS, PS, GMEM_PIN_LONGTERM));
	for (size_t i = 0; i < 3; i++) {
		uint64_t eoff = 0;
		double t0 = now_ms();

		CHECK_EQ(gmem_convert(g, 0, 8 * PS, GMEM_PRIVATE, flags[i], &eoff), -EBUSY);
		CHECK_EQ(eoff, 5 * PS);
		CHECK(now_ms() - t0 < 500); /* refused at once, not waited for */
		for (uint64_t p = 0; p < 8; p++)
			CHECK_EQ(gmem_state(g, p * PS), GMEM_SHARED);
	}
	/* the kinds are separate: a short unpin cannot drop a long pin */
	CHECK_EQ(gmem_unpin(g, 5 * PS, PS, 0), -EINVAL);
	CHECK_EQ(gmem_unpin(g, 2 * PS, PS, GMEM_PIN_LONGTERM), -EINVAL);
	gmem_get_stats(g, &st);
	CHECK_EQ(st.pins_active, 2);
	CHECK_OK(gmem_unpin(g, 5 * PS, PS, GMEM_PIN_LONGTERM));
	CHECK_OK(gmem_unpin(g, 2 * PS, PS, 0));
	CHECK_OK(gmem_convert(g, 0, 8 * PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_destroy(g));
}

struct unpinner {
	struct gmem *g;
	uint64_t off, len;
	unsigned int delay_ms, flags;
	pthread_t tid;
};

static void *unpin_later(void *arg)
{
	struct unpinner *u = arg;

	usleep(u->delay_ms * 1000);
	CHECK_OK(gmem_unpin(u->g, u->off, u->len, u->flags));
	return NULL;
}

/*
 * On hugetlbfs nothing waits: the pins refuse the conversion at once, and
 * it goes through once they have dropped.
 */
TEST(convert_wait_succeeds_when_pins_drop)
{
	struct gmem *g = tg_create(env, 8 * PS, 0, 0);
	struct unpinner u = { .g = g, .off = 3 * PS, .len = 2 * PS, .delay_ms = 100 };
	char *v = tg_view(g, 0);
	double t0;

	fill_page(v + 3 * PS, 3, 1);
	CHECK_OK(gmem_pin(g, 3 * PS, 2 * PS, 0));
	CHECK_OK(pthread_create(&u.tid, NULL, unpin_later, &u));
	t0 = now_ms();
	if (env_hugetlb(env)) {
		uint64_t eoff = 0;

		CHECK_EQ(gmem_convert(g, 0, 8 * PS, GMEM_PRIVATE, GMEM_CONVERT_WAIT, &eoff), -EAGAIN);
		CHECK(now_ms() - t0 < 90);
		CHECK_EQ(eoff, 3 * PS);
		CHECK_EQ(gmem_state(g, 0), GMEM_SHARED);
		CHECK_OK(pthread_join(u.tid, NULL));
		CHECK_OK(gmem_convert(g, 0, 8 * PS, GMEM_PRIVATE, GMEM_CONVERT_WAIT, NULL));
	} else {
		CHECK_OK(gmem_convert(g, 0, 8 * PS, GMEM_PRIVATE, GMEM_CONVERT_WAIT, NULL));
		CHECK(now_ms() - t0 >= 90);
		CHECK_OK(pthread_join(u.tid, NULL));
	}
	for (uint64_t p = 0; p < 8; p++)
		CHECK_EQ(gmem_state(g, p * PS), GMEM_PRIVATE);
	CHECK_EQ(touch(v + 3 * PS, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/* A two-page object whose waiting conversions give up after timeout_ms; NULL
 * if the backing is unavailable. */
static struct gmem *create_timeout(const struct env *e, uint32_t timeout_ms)
{
	struct gmem_config cfg = tg_config(e, 2 * PS, 0, 0);
	struct gmem *g;

	cfg.wait_timeout_ms = timeout_ms;
	return gmem_create(&cfg, &g) ? NULL : g;
}

/* On hugetlbfs: refused at once, not after the timeout. */
TEST(convert_wait_times_out)
{
	struct gmem *g;
	char *v;
	uint64_t eoff = 0;
	double t0, took;

	if (!(g = create_timeout(env, 150)))
		SKIP("backing unavailable");
	v = tg_view(g, 0);
	CHECK_OK(gmem_pin(g, PS, PS, 0));
	t0 = now_ms();
	CHECK_EQ(gmem_convert(g, 0, 2 * PS, GMEM_PRIVATE, GMEM_CONVERT_WAIT, &eoff), -EAGAIN);
	took = now_ms() - t0;
	if (env_hugetlb(env))
		CHECK(took < 140);
	else
		CHECK(took >= 140 && took < 1000);
	CHECK_EQ(eoff, PS);
	CHECK_EQ(gmem_state(g, 0), GMEM_SHARED);
	CHECK_EQ(gmem_state(g, PS), GMEM_SHARED);
	CHECK_OK(touch(v, true, NULL, NULL)); /* the pages are shared again */
	CHECK_OK(touch(v + PS, true, NULL, NULL));
	CHECK_OK(gmem_unpin(g, PS, PS, 0));
	CHECK_OK(gmem_destroy(g));
}

/* A host touch of an unpinned page in a waiting conversion's transit. */
struct parked {
	struct gmem *g;
	volatile char *page;
	uint64_t offset;
	double at;   /* when the touch returned */
	int sig;
	pthread_t tid;
};

static void *touch_in_transit(void *arg)
{
	struct parked *t = arg;

	while (gmem_state(t->g, t->offset) != GMEM_CONVERTING)
		usleep(1000);
	t->sig = touch(t->page, true, &(uint8_t){ 7 }, NULL);
	t->at = now_ms();
	return NULL;
}

/*
 * A touch of a page a waiting conversion holds in transit waits for its
 * outcome, as a kernel fault waits on the conversion: refused once the
 * pins dropped and the page went private ...
 */
TEST_OPTS(convert_wait_parks_touches_until_private, NO_TRANSIT_WAIT)
{
	struct gmem *g = tg_create(env, 2 * PS, 0, 0);
	struct unpinner u = { .g = g, .off = PS, .len = PS, .delay_ms = 150 };
	struct parked t = { .g = g, .page = tg_view(g, 0), .offset = 0 };
	double done;

	CHECK_OK(gmem_pin(g, PS, PS, 0));
	CHECK_OK(pthread_create(&t.tid, NULL, touch_in_transit, &t));
	CHECK_OK(pthread_create(&u.tid, NULL, unpin_later, &u));
	CHECK_OK(gmem_convert(g, 0, 2 * PS, GMEM_PRIVATE, GMEM_CONVERT_WAIT, NULL));
	done = now_ms();
	CHECK_OK(pthread_join(u.tid, NULL));
	CHECK_OK(pthread_join(t.tid, NULL));
	CHECK_EQ(t.sig, env->sig);
	CHECK(t.at >= done - 1); /* not refused while the outcome was open */
	CHECK_EQ(gmem_state(g, 0), GMEM_PRIVATE);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/*
 * ... and let through once the wait timed out and gave the pages back,
 * with nothing left behind to refuse the next touch of the shared page.
 */
TEST_OPTS(convert_wait_parks_touches_until_shared, NO_TRANSIT_WAIT)
{
	struct parked t = { .offset = 0 };
	struct gmem *g;
	double done;

	if (!(g = create_timeout(env, 150)))
		SKIP("backing unavailable");
	t.g = g;
	t.page = tg_view(g, 0);
	CHECK_OK(gmem_pin(g, PS, PS, 0));
	CHECK_OK(pthread_create(&t.tid, NULL, touch_in_transit, &t));
	CHECK_EQ(gmem_convert(g, 0, 2 * PS, GMEM_PRIVATE, GMEM_CONVERT_WAIT, NULL), -EAGAIN);
	done = now_ms();
	CHECK_OK(pthread_join(t.tid, NULL));
	CHECK_EQ(t.sig, 0);
	CHECK(t.at >= done - 1);
	CHECK_EQ(gmem_state(g, 0), GMEM_SHARED);
	CHECK_OK(touch(t.page, false, NULL, NULL));
	CHECK_EQ(t.page[0], 7);
	CHECK_OK(gmem_unpin(g, PS, PS, 0));
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/* A conversion in a thread of its own. */
struct converter {
	struct gmem *g;
	uint64_t len;
	int ret;
	double at; /* when it returned */
	pthread_t tid;
};

static void *convert_waiting(void *arg)
{
	struct converter *c = arg;

	c->ret = gmem_convert(c->g, 0, c->len, GMEM_PRIVATE, GMEM_CONVERT_WAIT, NULL);
	c->at = now_ms();
	return NULL;
}

/* A touch parked on a view that is unmapped meanwhile meets the unmapped range. */
TEST_OPTS(convert_wait_parked_touch_view_unmapped, NO_TRANSIT_WAIT)
{
	struct parked t = { .offset = 0 };
	struct converter c = { .len = 2 * PS };
	struct gmem *g;
	void *v;

	if (!(g = create_timeout(env, 400)))
		SKIP("backing unavailable");
	CHECK_OK(gmem_view_map(g, 0, 2 * PS, 0, &v));
	t.g = c.g = g;
	t.page = v;
	CHECK_OK(gmem_pin(g, PS, PS, 0));
	CHECK_OK(pthread_create(&t.tid, NULL, touch_in_transit, &t));
	CHECK_OK(pthread_create(&c.tid, NULL, convert_waiting, &c));
	while (gmem_state(g, 0) != GMEM_CONVERTING)
		usleep(1000);
	usleep(50 * 1000); /* the touch is parked by now */
	CHECK_OK(gmem_view_unmap(g, v));
	CHECK_OK(pthread_join(t.tid, NULL));
	CHECK_OK(pthread_join(c.tid, NULL));
	CHECK_EQ(t.sig, SIGSEGV);
	CHECK(t.at < c.at); /* woken by the unmap, not by the conversion's end */
	CHECK_EQ(c.ret, -EAGAIN);
	CHECK_OK(gmem_unpin(g, PS, PS, 0));
	CHECK_OK(gmem_destroy(g));
}

struct cb_log {
	int calls;
	uint64_t off, len;
	unsigned int to;
	int result;
	pthread_t thread;
	int state_seen; /* gmem_state() from inside the callback */
};

static void record_cb(struct gmem *g, uint64_t off, uint64_t len, unsigned int to, int result,
		      void *arg)
{
	struct cb_log *log = arg;

	log->calls++;
	log->off = off;
	log->len = len;
	log->to = to;
	log->result = result;
	log->thread = pthread_self();
	log->state_seen = gmem_state(g, off); /* callbacks may call back in */
}

TEST_OPTS(convert_defer_completes_on_last_unpin, NO_TRANSIT_DEFER)
{
	struct gmem *g = tg_create(env, 8 * PS, 0, 0);
	struct cb_log log = { 0 };
	struct unpinner u = { .g = g, .off = 4 * PS, .len = PS };
	char *v = tg_view(g, 0);
	struct gmem_stats st;
	uint64_t at = UINT64_MAX;

	CHECK_OK(gmem_set_convert_callback(g, record_cb, &log));
	CHECK_OK(gmem_convert(g, 7 * PS, PS, GMEM_PRIVATE, 0, NULL));
	fill_page(v + 2 * PS, 2, 7);
	CHECK_OK(gmem_pin(g, 2 * PS, PS, 0));
	CHECK_OK(gmem_pin(g, 4 * PS, PS, 0));
	CHECK_OK(gmem_pin(g, 4 * PS, PS, 0)); /* nested */
	CHECK_EQ(gmem_convert(g, 0, 8 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, &at), -EINPROGRESS);
	CHECK_EQ(at, 2 * PS); /* the lowest page still pinned */
	for (uint64_t p = 0; p < 8; p++)
		CHECK_EQ(gmem_state(g, p * PS), p == 7 ? GMEM_PRIVATE : GMEM_CONVERTING);
	/* in transit: no new faults, no new pins */
	CHECK_EQ(touch(v + PS, false, NULL, NULL), env->sig);
	CHECK_EQ(gmem_pin(g, 0, PS, 0), -EAGAIN);
	CHECK_EQ(gmem_pin(g, 0, PS, GMEM_PIN_LONGTERM), -EAGAIN);
	CHECK_EQ(gmem_pin(g, 6 * PS, 2 * PS, 0), -EACCES); /* the private page decides */
	CHECK_OK(gmem_audit(g));

	CHECK_OK(gmem_unpin(g, 4 * PS, PS, 0));
	CHECK_OK(gmem_unpin(g, 2 * PS, PS, 0));
	CHECK_EQ(log.calls, 0);
	CHECK_EQ(gmem_state(g, 0), GMEM_CONVERTING);
	/* the last pin drops in another thread: the callback runs there, once */
	CHECK_OK(pthread_create(&u.tid, NULL, unpin_later, &u));
	CHECK_OK(pthread_join(u.tid, NULL));
	CHECK_EQ(log.calls, 1);
	CHECK(pthread_equal(log.thread, u.tid));
	CHECK_EQ(log.off, 0);
	CHECK_EQ(log.len, 8 * PS);
	CHECK_EQ(log.to, GMEM_PRIVATE);
	CHECK_EQ(log.result, 0);
	CHECK_EQ(log.state_seen, GMEM_PRIVATE);
	for (uint64_t p = 0; p < 8; p++)
		CHECK_EQ(gmem_state(g, p * PS), GMEM_PRIVATE);
	gmem_get_stats(g, &st);
	CHECK_EQ(st.convert_deferred, 1);
	CHECK_EQ(st.pages_to_private, 8);
	CHECK_EQ(st.pins_active, 0);
	/* the guest finds the contents in place */
	{
		void *guest;

		CHECK_OK(gmem_guest_map(g, &guest));
		CHECK(page_has((char *)guest + 2 * PS, 2, 7));
	}
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
	CHECK_EQ(log.calls, 1);
}

/*
 * Without pins DEFER converts at once; with no callback set nothing is
 * called.  (With a pin, on hugetlbfs, it is refused.)
 */
TEST(convert_defer_without_pins_is_immediate)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	struct cb_log log = { 0 };

	CHECK_OK(gmem_set_convert_callback(g, record_cb, &log));
	CHECK_OK(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL));
	CHECK_EQ(gmem_state(g, 0), GMEM_PRIVATE);
	CHECK_EQ(log.calls, 0);
	CHECK_OK(gmem_set_convert_callback(g, NULL, NULL));
	CHECK_OK(gmem_convert(g, 0, 4 * PS, GMEM_SHARED, 0, NULL));
	CHECK_OK(gmem_pin(g, 0, PS, 0));
	CHECK_EQ(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL),
		 env_hugetlb(env) ? -EAGAIN : -EINPROGRESS);
	CHECK_OK(gmem_unpin(g, 0, PS, 0));
	CHECK_EQ(gmem_state(g, 0), env_hugetlb(env) ? GMEM_SHARED : GMEM_PRIVATE);
	CHECK_EQ(log.calls, 0);
	CHECK_OK(gmem_destroy(g));
}

/* An overlapping conversion cancels the pending one first. */
TEST_OPTS(convert_defer_cancelled, NO_TRANSIT_DEFER)
{
	struct gmem *g = tg_create(env, 8 * PS, 0, 0);
	struct cb_log log = { 0 };
	char *v = tg_view(g, 0);

	CHECK_OK(gmem_set_convert_callback(g, record_cb, &log));
	CHECK_OK(gmem_convert(g, 6 * PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_pin(g, PS, PS, 0));
	CHECK_EQ(gmem_convert(g, 0, 8 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL), -EINPROGRESS);
	CHECK_EQ(touch(v + 3 * PS, true, NULL, NULL), env->sig); /* refused while in transit */

	/* to shared over part of it: the whole pending conversion is cancelled */
	CHECK_OK(gmem_convert(g, 2 * PS, PS, GMEM_SHARED, 0, NULL));
	CHECK_EQ(log.calls, 1);
	CHECK_EQ(log.result, -ECANCELED);
	CHECK_EQ(log.off, 0);
	CHECK_EQ(log.len, 8 * PS);
	CHECK(pthread_equal(log.thread, pthread_self()));
	for (uint64_t p = 0; p < 8; p++)
		CHECK_EQ(gmem_state(g, p * PS), p == 6 ? GMEM_PRIVATE : GMEM_SHARED);
	CHECK_OK(touch(v + 3 * PS, true, NULL, NULL)); /* the refusal did not stick */

	/* a second deferral over the same range cancels the first */
	CHECK_EQ(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL), -EINPROGRESS);
	CHECK_EQ(gmem_convert(g, 0, 2 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL), -EINPROGRESS);
	CHECK_EQ(log.calls, 2);
	CHECK_EQ(log.result, -ECANCELED);
	CHECK_EQ(log.len, 4 * PS);
	CHECK_EQ(gmem_state(g, 3 * PS), GMEM_SHARED);
	CHECK_EQ(gmem_state(g, 0), GMEM_CONVERTING);

	/* unpinning completes the surviving one only */
	CHECK_OK(gmem_unpin(g, PS, PS, 0));
	CHECK_EQ(log.calls, 3);
	CHECK_EQ(log.result, 0);
	CHECK_EQ(log.len, 2 * PS);
	CHECK_EQ(gmem_state(g, 0), GMEM_PRIVATE);
	CHECK_EQ(gmem_state(g, PS), GMEM_PRIVATE);
	CHECK_EQ(gmem_state(g, 2 * PS), GMEM_SHARED);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

TEST(pin_refused_pages)
{
	struct gmem *g = tg_create(env, 8 * PS, 0, 0);
	struct gmem_stats st;

	CHECK_OK(gmem_convert(g, 5 * PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_EQ(gmem_pin(g, 5 * PS, PS, 0), -EACCES);
	CHECK_EQ(gmem_pin(g, 5 * PS, PS, GMEM_PIN_LONGTERM), -EACCES);
	/* nothing is pinned when any page refuses */
	CHECK_EQ(gmem_pin(g, 0, 8 * PS, 0), -EACCES);
	gmem_get_stats(g, &st);
	CHECK_EQ(st.pins_active, 0);
	CHECK_EQ(gmem_unpin(g, 0, PS, 0), -EINVAL);
	CHECK_OK(gmem_convert(g, 0, 8 * PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_destroy(g));
}

TEST(pin_nests_and_unpins_all_or_nothing)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	struct gmem_stats st;

	CHECK_OK(gmem_pin(g, 0, 2 * PS, 0));
	CHECK_OK(gmem_pin(g, 0, PS, 0));
	CHECK_OK(gmem_pin(g, PS, PS, GMEM_PIN_LONGTERM));
	gmem_get_stats(g, &st);
	CHECK_EQ(st.pins_active, 4);
	/* page 2 holds no pin: the whole unpin is refused */
	CHECK_EQ(gmem_unpin(g, 0, 3 * PS, 0), -EINVAL);
	gmem_get_stats(g, &st);
	CHECK_EQ(st.pins_active, 4);
	CHECK_OK(gmem_unpin(g, 0, 2 * PS, 0));
	CHECK_OK(gmem_unpin(g, 0, PS, 0));
	CHECK_EQ(gmem_unpin(g, 0, PS, 0), -EINVAL);
	CHECK_EQ(gmem_destroy(g), -EBUSY); /* the long-term pin */
	CHECK_OK(gmem_unpin(g, PS, PS, GMEM_PIN_LONGTERM));
	gmem_get_stats(g, &st);
	CHECK_EQ(st.pins_active, 0);
	CHECK_OK(gmem_destroy(g));
}

TEST(pin_invalid_args)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	uint64_t size = gmem_size(g);
	struct gmem_stats st;

	CHECK_EQ(gmem_pin(g, 0, 0, 0), -EINVAL);
	CHECK_EQ(gmem_pin(g, 1, PS, 0), -EINVAL);
	CHECK_EQ(gmem_pin(g, 0, PS - 1, 0), -EINVAL);
	CHECK_EQ(gmem_pin(g, size, PS, 0), -EINVAL);
	CHECK_EQ(gmem_pin(g, PS, UINT64_MAX - PS + 1, 0), -EINVAL);
	CHECK_EQ(gmem_pin(g, 0, PS, 1u << 3), -EINVAL);
	CHECK_EQ(gmem_pin(NULL, 0, PS, 0), -EINVAL);
	CHECK_EQ(gmem_unpin(g, 0, PS, 1u << 3), -EINVAL);
	CHECK_EQ(gmem_unpin(NULL, 0, PS, 0), -EINVAL);
	CHECK_EQ(gmem_set_convert_callback(NULL, NULL, NULL), -EINVAL);
	gmem_get_stats(g, &st);
	CHECK_EQ(st.pins_active, 0);
	CHECK_OK(gmem_destroy(g));
}

/*
 * To shared is immediate, whatever the pins (the private pages made
 * first: on hugetlbfs the pins would refuse them, being on their huge
 * page).
 */
TEST(convert_to_shared_with_pins)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);

	CHECK_OK(gmem_convert(g, 2 * PS, 2 * PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_pin(g, 0, PS, GMEM_PIN_LONGTERM));
	CHECK_OK(gmem_pin(g, PS, PS, 0));
	CHECK_OK(gmem_convert(g, 0, 4 * PS, GMEM_SHARED, 0, NULL));
	CHECK_EQ(gmem_state(g, 3 * PS), GMEM_SHARED);
	CHECK_OK(gmem_unpin(g, 0, PS, GMEM_PIN_LONGTERM));
	CHECK_OK(gmem_unpin(g, PS, PS, 0));
	CHECK_OK(gmem_destroy(g));
}

/* The I/O a deferred conversion waits for can finish: its pinned page stays reachable. */
TEST_OPTS(convert_defer_pinned_io_completes, NO_TRANSIT_DEFER)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	char *v = tg_view(g, 0);
	void *guest;

	CHECK_OK(gmem_guest_map(g, &guest));
	fill_page(v, 0, 1);
	CHECK_OK(gmem_pin(g, PS, PS, 0));
	CHECK_EQ(gmem_convert(g, 0, 2 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL), -EINPROGRESS);
	CHECK_EQ(touch(v, false, NULL, NULL), env->sig); /* unpinned: refused */
	fill_page(v + PS, 1, 2);                        /* pinned: the I/O goes on */
	CHECK(page_has(v + PS, 1, 2));
	CHECK_OK(gmem_audit(g)); /* a pinned page in transit may be mapped */
	CHECK_OK(gmem_unpin(g, PS, PS, 0));
	CHECK_EQ(gmem_state(g, PS), GMEM_PRIVATE);
	CHECK_EQ(touch(v + PS, false, NULL, NULL), env->sig); /* unmapped with its last pin */
	CHECK(page_has((char *)guest + PS, 1, 2));
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

struct io {
	struct gmem *g;
	char *buf;
	pthread_t tid;
};

/* Pins a buffer, waits until a conversion has it in transit, writes it, unpins. */
static void *io_during_wait(void *arg)
{
	struct io *io = arg;

	while (gmem_state(io->g, 0) != GMEM_CONVERTING)
		usleep(1000);
	fill_page(io->buf, 0, 5); /* first touch after the conversion's zap */
	CHECK_OK(gmem_unpin(io->g, 0, PS, 0));
	return NULL;
}

TEST_OPTS(convert_wait_lets_pinned_io_finish, NO_TRANSIT_WAIT)
{
	struct gmem *g = tg_create(env, 2 * PS, 0, 0);
	struct io io = { .g = g, .buf = tg_view(g, 0) };
	void *guest;

	CHECK_OK(gmem_guest_map(g, &guest));
	CHECK_OK(gmem_pin(g, 0, PS, 0));
	CHECK_OK(pthread_create(&io.tid, NULL, io_during_wait, &io));
	CHECK_OK(gmem_convert(g, 0, 2 * PS, GMEM_PRIVATE, GMEM_CONVERT_WAIT, NULL));
	CHECK_OK(pthread_join(io.tid, NULL));
	CHECK(page_has(guest, 0, 5)); /* the I/O landed before the page went private */
	CHECK_EQ(touch(io.buf, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/*
 * A pin racing plain conversions of its page, aimed at the one ordering
 * that keeps them apart: a conversion publishes CONVERTING and learns the
 * pins in one step, a pin raises its count and learns the state in one.
 * A conversion that looked for pins before publishing (seed 002's
 * speculative reference) misses a pin taken in between, which found the
 * page still shared: the page ends private under the pin.  The pages have
 * pin words already (a page's first pin makes its word, under the lock
 * conversions take, which would keep the two apart), and each side checks
 * what the other did: a conversion that succeeded, that no pin was held;
 * a pinner, that its page is not private.  Each pin is held until the
 * conversion under way when it was taken has ended and checked, so that
 * neither side can miss the other.
 */
#define RACE_PAGES 4
#define RACE_SECONDS 2
#define RACE_SPINS 2000

struct pin_race {
	struct gmem *g;
	_Atomic int held[RACE_PAGES]; /* a pin the pinner holds on the page */
	_Atomic uint64_t attempts;     /* conversions to private ended (and checked) */
	_Atomic bool stop;
	_Atomic uint64_t pins, conversions, caught;
	char what[160];
};

static void race_caught(struct pin_race *r, const char *what, uint64_t page)
{
	if (atomic_fetch_add(&r->caught, 1) == 0)
		snprintf(r->what, sizeof(r->what), "%s (page %llu)", what, (unsigned long long)page);
	atomic_store(&r->stop, true);
}

static void *race_pinner(void *arg)
{
	struct pin_race *r = arg;

	for (uint64_t i = 0; !atomic_load(&r->stop); i++) {
		uint64_t p = i % RACE_PAGES, seen;
		int err = gmem_pin(r->g, p * PS, PS, 0);

		if (err) {
			if (err != -EAGAIN && err != -EACCES)
				race_caught(r, "unexpected pin error", p);
			continue;
		}
		atomic_store(&r->held[p], 1);
		/*
		 * Held until the conversion under way has ended: spinning, as
		 * the converter runs beside us; then gmem_state() waits for the
		 * lock a conversion holds, as when it was preempted mid-way.
		 */
		seen = atomic_load(&r->attempts);
		for (int spin = 0; spin < RACE_SPINS && atomic_load(&r->attempts) == seen; spin++)
			;
		if (gmem_state(r->g, p * PS) == GMEM_PRIVATE)
			race_caught(r, "a pinned page is private", p);
		atomic_store(&r->held[p], 0);
		if (gmem_unpin(r->g, p * PS, PS, 0))
			race_caught(r, "unpin failed", p);
		atomic_fetch_add(&r->pins, 1);
		/*
		 * As long again with no pin held: a converter sharing our CPU
		 * mostly finds none, and may be preempted between its steps,
		 * for us to pin right there.
		 */
		for (int spin = 0; spin < RACE_SPINS && !atomic_load(&r->stop); spin++)
			;
	}
	return NULL;
}

TEST_OPTS(pin_races_plain_conversion, .skip = ONE_SIGNAL_EACH,
	  .why = "2 s of pins racing conversions, no host touch: one signal a backing")
{
	struct pin_race r = { .g = tg_create(env, RACE_PAGES * PS, 0, 0) };
	double t0 = now_ms();
	pthread_t pinner;

	CHECK_OK(gmem_pin(r.g, 0, RACE_PAGES * PS, 0)); /* the pin words, made once */
	CHECK_OK(gmem_unpin(r.g, 0, RACE_PAGES * PS, 0));
	CHECK_OK(pthread_create(&pinner, NULL, race_pinner, &r));
	while (!atomic_load(&r.stop) && now_ms() - t0 < RACE_SECONDS * 1000) {
		int err = gmem_convert(r.g, 0, RACE_PAGES * PS, GMEM_PRIVATE, 0, NULL);

		if (!err) {
			for (uint64_t p = 0; p < RACE_PAGES; p++)
				if (atomic_load(&r.held[p]))
					race_caught(&r, "converted while pinned", p);
			atomic_fetch_add(&r.conversions, 1);
		} else if (err != -EAGAIN) {
			race_caught(&r, "unexpected conversion error", 0);
		}
		atomic_fetch_add(&r.attempts, 1);
		if (!err)
			CHECK_OK(gmem_convert(r.g, 0, RACE_PAGES * PS, GMEM_SHARED, 0, NULL));
	}
	atomic_store(&r.stop, true);
	CHECK_OK(pthread_join(pinner, NULL));
	printf("  %llu pins, %llu conversions in %.0f ms\n",
	       (unsigned long long)atomic_load(&r.pins),
	       (unsigned long long)atomic_load(&r.conversions), now_ms() - t0);
	if (atomic_load(&r.caught))
		test_fail(__FILE__, __LINE__, "%s", r.what);
	CHECK(atomic_load(&r.pins) > 0 && atomic_load(&r.conversions) > 0);
	CHECK_OK(gmem_destroy(r.g));
}
