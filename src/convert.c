// SPDX-License-Identifier: MIT
/*
 * convert.c - conversions between shared and private, and their transits.
 *
 * A conversion to private follows pKVM's rule: check every party, then
 * commit with steps that cannot fail.  With g->lock exclusive it
 *   1. publishes CONVERTING on the range's shared pages, learning each
 *      page's pins in the same atomic step (core/pinword.h): from here no
 *      fault maps them and no pin keeps them;
 *   2. checks the parties: strict views and long-term pins refuse (-EBUSY),
 *      short-term pins refuse (-EAGAIN), are waited for (WAIT) or leave the
 *      range in transit (DEFER) - reverting step 1 on refusal;
 *   3. zaps every view over the range, then commits PRIVATE.
 * A transit (WAIT or DEFER) keeps its pages CONVERTING without the lock:
 * a waiting conversion sleeps until the pins drop, a deferred one is
 * completed by whichever release drops the last pin in its range
 * (convert_complete_locked(), the kernel's folio_put callback).  Until
 * then a pinned page of the range stays reachable to the I/O holding it:
 * the pin is what the conversion waits for, so the pinned work must be
 * able to finish (fault.c maps it; pin.c unmaps it with its last pin).
 *
 * Host touches of the other pages wait for a waiting conversion's outcome
 * (fault.c parks them; views_wake() here ends the wait), as the kernel's
 * faults wait on a conversion's invalidate lock, and are refused in a
 * deferred one, which may last.  So only a deferred transit leaves
 * refusal marks, and the one way it gives pages back, a cancel, clears
 * them before it changes a state: giving back never fails half-way.
 *
 * The state machine, once (tests/test_transitions.c walks it row by row
 * with every party; model/gmem.pml checks its interleavings):
 *
 *   from        to          done by                      holding g->lock
 *   SHARED      PRIVATE     to_private(): no pin         exclusive
 *   SHARED      CONVERTING  publish(): pins, WAIT/DEFER  exclusive
 *   CONVERTING  PRIVATE     to_private() after a WAIT;   exclusive
 *                           convert_complete_locked()
 *                           on the last unpin (DEFER)
 *   CONVERTING  SHARED      revert(): refused or timed   exclusive
 *                           out; cancel_deferred()
 *   PRIVATE     SHARED      to_shared()                  exclusive
 *   (any)       (same)      gmem_discard(): contents     exclusive
 *                           only
 *
 * Pins never change a state; they are refused by PRIVATE (-EACCES) and
 * CONVERTING (-EAGAIN) in their own atomic step (core/pinword.h), with
 * no lock.  Each state change is a state_replace() for which
 * state_reserve() made room first: it cannot fail (GMEM_WARN_ON).
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

#define IN_TRANSIT STATE_MASK(GMEM_CONVERTING)

/* Whether t (of one of the given modes, or any if 0) overlaps [first, end). */
static bool transit_overlaps(const struct transit *t, uint64_t first, uint64_t end,
			     unsigned int modes)
{
	return (!modes || (t->mode & modes)) && t->first < end && first < t->end;
}

static void transit_free(struct transit *t)
{
	free(t->report);
	free(t);
}

static struct transit **transit_find(struct gmem *g, uint64_t first, uint64_t end,
				     unsigned int mode)
{
	struct transit **pp;

	for (pp = &g->transits; *pp; pp = &(*pp)->next)
		if (transit_overlaps(*pp, first, end, mode))
			return pp;
	return NULL;
}

/* Take g->lock exclusive once no waiting conversion overlaps [first, end). */
static void lock_range(struct gmem *g, uint64_t first, uint64_t end)
{
	for (;;) {
		uint64_t gen;

		views_lock(g, true);
		if (!transit_find(g, first, end, GMEM_CONVERT_WAIT))
			return;
		gen = atomic_load(&g->transit_gen);
		unlock(g);
		pthread_mutex_lock(&g->wait_mu);
		while (atomic_load(&g->transit_gen) == gen)
			pthread_cond_wait(&g->wait_cv, &g->wait_mu);
		pthread_mutex_unlock(&g->wait_mu);
	}
}

/* A waiting conversion ended: wake the conversions lock_range() holds back. */
static void transit_gen_bump(struct gmem *g)
{
	pthread_mutex_lock(&g->wait_mu);
	atomic_fetch_add(&g->transit_gen, 1);
	pthread_cond_broadcast(&g->wait_cv);
	pthread_mutex_unlock(&g->wait_mu);
}

/* Give [first, end)'s in-transit pages back to shared. */
static void revert(struct gmem *g, uint64_t first, uint64_t end)
{
	GMEM_WARN_ON(g, state_replace(g, first, end, IN_TRANSIT, GMEM_SHARED, NULL) < 0);
}

bool transit_waiting_at(struct gmem *g, uint64_t page)
{
	return transit_find(g, page, page + 1, GMEM_CONVERT_WAIT) != NULL;
}

static void transit_unlink(struct gmem *g, struct transit *t)
{
	struct transit **pp = &g->transits;

	while (*pp != t)
		pp = &(*pp)->next;
	*pp = t->next;
}

/*
 * Cancel the deferred conversions overlapping [first, end), collecting
 * them: all or none.  First what can fail, for every one: clear the marks
 * refused touches left (while the pages stay in transit, a mark cleared
 * early only lets the next touch be refused again), then give the pages
 * back, which cannot fail.  A failed one (TRANSIT_FAILED) goes the same
 * way, but reported its end already.
 */
static int cancel_deferred(struct gmem *g, uint64_t first, uint64_t end, struct transit **out,
			   bool strict)
{
	const unsigned int modes = GMEM_CONVERT_DEFER | TRANSIT_FAILED;
	struct transit **pp;
	int err;

	assert_exclusive(g);
	for (struct transit *t = g->transits; t; t = t->next)
		if (transit_overlaps(t, first, end, modes) &&
		    (err = views_undeny(g, t->first, t->end, strict)))
			return err;
	while ((pp = transit_find(g, first, end, modes))) {
		struct transit *t = *pp;

		revert(g, t->first, t->end);
		*pp = t->next;
		if (t->mode == TRANSIT_FAILED) {
			transit_free(t);
			continue;
		}
		t->result = -ECANCELED;
		t->next = *out;
		*out = t;
	}
	return 0;
}

void convert_report(struct gmem *g, struct transit *list, gmem_convert_cb cb, void *arg)
{
	while (list) {
		struct transit *t = list;

		list = t->next;
		if (cb)
			cb(g, t->first << PAGE_SHIFT, (t->end - t->first) << PAGE_SHIFT, GMEM_PRIVATE,
			   t->result, arg);
		transit_free(t);
	}
}

static int to_shared(struct gmem *g, uint64_t first, uint64_t end, bool strict)
{
	int64_t n;
	int err;

	assert_exclusive(g);
	err = views_undeny(g, first, end, strict);
	if (err)
		return err;
	n = state_replace(g, first, end, STATE_MASK(GMEM_PRIVATE), GMEM_SHARED, NULL);
	if (GMEM_WARN_ON(g, n < 0))
		return (int)n; /* no room after all: nothing changed */
	count(&g->stats.pages_to_shared, (uint64_t)n);
	count(&g->stats.conversions, 1);
	return 0;
}

/* Sleep, g->lock released, until no pin holds an in-transit page of [first, end). */
static void wait_for_pins(struct gmem *g, uint64_t first, uint64_t end)
{
	struct timespec deadline;
	struct pin_scan scan;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += g->wait_timeout_ms / 1000;
	deadline.tv_nsec += (long)(g->wait_timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&g->wait_mu);
	/* Announce before looking: an unpin drops, then looks for waiters. */
	atomic_fetch_add(&g->pin_waiters, 1);
	for (;;) {
		pins_scan(g, first, end, IN_TRANSIT, &scan);
		if (scan.short_first == UINT64_MAX ||
		    pthread_cond_timedwait(&g->wait_cv, &g->wait_mu, &deadline) == ETIMEDOUT)
			break;
	}
	atomic_fetch_sub(&g->pin_waiters, 1);
	pthread_mutex_unlock(&g->wait_mu);
}

/*
 * Put the range's shared pages in transit and settle with the pins that
 * held them at that instant: 0 when none is left (commit), else the error
 * with the transit reverted - or kept, for DEFER (-EINPROGRESS).  WAIT
 * sleeps here with g->lock released.  *t is the transit to use (set to
 * NULL when the object keeps it); *busy the offending page of a refusal.
 */
static int publish(struct gmem *g, uint64_t first, uint64_t end, unsigned int flags,
		   struct transit **t, uint64_t *busy, bool strict)
{
	struct pin_scan scan;
	struct transit *tr;
	int64_t n;
	int err;

	assert_exclusive(g);
	n = state_replace(g, first, end, STATE_MASK(GMEM_SHARED), GMEM_CONVERTING, &scan);
	if (GMEM_WARN_ON(g, n < 0))
		return (int)n; /* no room after all: nothing published */
	if (scan.long_first < *busy)
		*busy = scan.long_first;
	if (*busy != UINT64_MAX) {
		revert(g, first, end);
		return -EBUSY;
	}
	if (scan.short_first == UINT64_MAX)
		return 0;
	if (!(flags & (GMEM_CONVERT_WAIT | GMEM_CONVERT_DEFER))) {
		revert(g, first, end);
		*busy = scan.short_first;
		count(&g->stats.convert_eagain, 1);
		return -EAGAIN;
	}
	/* In transit: only the pinned I/O may reach the pages from here on. */
	err = views_zap(g, first, end, strict);
	if (err) {
		revert(g, first, end);
		return err;
	}
	tr = *t;
	*t = NULL;
	tr->first = first;
	tr->end = end;
	tr->mode = flags & (GMEM_CONVERT_WAIT | GMEM_CONVERT_DEFER);
	tr->next = g->transits;
	g->transits = tr;
	if (flags & GMEM_CONVERT_DEFER) {
		*busy = scan.short_first; /* the lowest page its completion waits for */
		count(&g->stats.convert_deferred, 1);
		return -EINPROGRESS;
	}
	unlock(g);
	wait_for_pins(g, first, end);
	views_lock(g, true);
	transit_unlink(g, tr);
	*t = tr;
	transit_gen_bump(g);
	/* the touches parked meanwhile fault again, and wait for the lock */
	views_wake(g, first, end);
	pins_scan(g, first, end, IN_TRANSIT, &scan);
	if (scan.short_first == UINT64_MAX)
		return 0;
	revert(g, first, end); /* no marks to clear: touches were parked, not refused */
	*busy = scan.short_first;
	count(&g->stats.convert_eagain, 1);
	return -EAGAIN;
}

/*
 * To private on hugetlbfs.  A view maps a huge page whole, so a page's
 * conversion zaps its whole huge page from every view, and the I/O of a
 * pin anywhere on it would lose its mapping: with any piece pinned the
 * conversion is refused (-EBUSY for a long-term pin, else -EAGAIN, at the
 * lowest pinned page), whatever the flags - a transit would have to keep
 * the whole huge page mapped, private pieces and all.  Pins are held off
 * the huge pages from the check to the commit.
 */
static int to_private_huge(struct gmem *g, uint64_t first, uint64_t end, uint64_t *busy,
			   bool strict)
{
	const uint32_t any = STATE_MASK(GMEM_SHARED) | STATE_MASK(GMEM_PRIVATE) | IN_TRANSIT;
	uint64_t bp = g->b.align >> PAGE_SHIFT, bs = first & ~(bp - 1);
	uint64_t be = (end + bp - 1) & ~(bp - 1);
	struct pin_scan scan;
	int64_t n;
	int err;

	*busy = views_strict_first(g, first, end);
	if (*busy != UINT64_MAX)
		return -EBUSY;
	/*
	 * Tracking, the zap's record makes pin words (track_mapped()), and a
	 * pin finds a word without the lock: made before the hold, they are
	 * held too.
	 */
	if (g->tracking && !pages_mark(g, bs, be, 0))
		return -ENOMEM;
	if (pins_hold(g, bs, be)) {
		/* a pin raised as the hold went on has backed out by now, or holds */
		pins_scan(g, bs, be, any, &scan);
		if (scan.long_first != UINT64_MAX || scan.short_first != UINT64_MAX) {
			pins_release_hold(g, bs, be);
			if (scan.long_first != UINT64_MAX) {
				*busy = scan.long_first;
				return -EBUSY;
			}
			*busy = scan.short_first;
			count(&g->stats.convert_eagain, 1);
			return -EAGAIN;
		}
	}
	err = views_zap(g, first, end, strict);
	if (!err) {
		n = state_replace(g, first, end, STATE_MASK(GMEM_SHARED), GMEM_PRIVATE, NULL);
		if (GMEM_WARN_ON(g, n < 0)) {
			err = (int)n;
		} else {
			count(&g->stats.pages_to_private, (uint64_t)n);
			count(&g->stats.conversions, 1);
		}
	}
	pins_release_hold(g, bs, be);
	return err;
}

/*
 * With g->lock exclusive (released and retaken by a WAIT).  strict: see
 * views_zap(); -ESTALE means nothing changed and the caller tries again.
 */
static int to_private(struct gmem *g, uint64_t first, uint64_t end, unsigned int flags,
		      struct transit **t, uint64_t *busy, bool strict)
{
	uint32_t from = STATE_MASK(GMEM_SHARED);
	uint64_t p = first;
	int64_t n;
	int err;

	assert_exclusive(g);
	if (g->b.hugetlb)
		return to_private_huge(g, first, end, busy, strict);
	*busy = views_strict_first(g, first, end);
	/*
	 * If no page of the range was ever pinned, none can be while we hold
	 * the lock (a first pin builds its page's word under it): nothing to
	 * wait for, no transit to publish.  Not so while tracking: the zap's
	 * record makes words (track_mapped()), which a pin finds without the
	 * lock - published first, the range is in transit when it does, and
	 * the words it makes refuse pins.
	 */
	if (g->tracking || pinmap_next(&g->pins, &p, end)) {
		err = publish(g, first, end, flags, t, busy, strict);
		if (err)
			return err;
		from = IN_TRANSIT;
	} else if (*busy != UINT64_MAX) {
		return -EBUSY;
	}
	/* after a WAIT, pinned pages may have been mapped for their I/O */
	err = views_zap(g, first, end, strict);
	if (!err && g->fresh_buf)
		err = fresh_private(g, first, end, from, busy);
	if (err) {
		if (from == IN_TRANSIT)
			revert(g, first, end);
		return err;
	}
	n = state_replace(g, first, end, from, GMEM_PRIVATE, NULL);
	if (GMEM_WARN_ON(g, n < 0)) {
		if (from == IN_TRANSIT)
			revert(g, first, end);
		return (int)n;
	}
	count(&g->stats.pages_to_private, (uint64_t)n);
	count(&g->stats.conversions, 1);
	return 0;
}

int gmem_convert(struct gmem *g, uint64_t offset, uint64_t len, unsigned int to,
		 unsigned int flags, uint64_t *error_offset)
{
	const unsigned int modes = GMEM_CONVERT_WAIT | GMEM_CONVERT_DEFER;
	uint64_t first, end, busy = UINT64_MAX;
	struct transit *t = NULL, *cancelled = NULL;
	struct timespec stale_deadline = { 0, 0 };
	gmem_convert_cb cb;
	void *cb_arg;
	int err;

	if (!g || !range_ok(g, offset, len) || (to != GMEM_SHARED && to != GMEM_PRIVATE) ||
	    (flags & ~modes) || (flags & modes) == modes)
		return -EINVAL;
	if (forked_child(g))
		return -ECHILD;
	first = offset >> PAGE_SHIFT;
	end = first + (len >> PAGE_SHIFT);
	if (to == GMEM_PRIVATE && (flags & modes)) {
		t = calloc(1, sizeof(*t));
		/* a deferred one may have to report a failed end while it stays */
		if (t && (flags & GMEM_CONVERT_DEFER) && !(t->report = calloc(1, sizeof(*t)))) {
			free(t);
			t = NULL;
		}
		if (!t)
			return -ENOMEM;
	}

	/*
	 * A view the process has just moved or unmapped makes the zap stale
	 * (-ESTALE): a moved view took its page-table entries along, which a
	 * zap of the old address misses.  Wait for the fault thread to apply
	 * it, then convert again; after a second, take the records as they are.
	 */
	for (bool strict = true;;) {
		lock_range(g, first, end);
		err = state_reserve(g);
		if (!err)
			err = cancel_deferred(g, first, end, &cancelled, strict);
		if (!err)
			err = to == GMEM_SHARED ? to_shared(g, first, end, strict)
						: to_private(g, first, end, flags, &t, &busy, strict);
		if (err != -ESTALE)
			break;
		unlock(g);
		strict = views_wait_records(g, &stale_deadline);
	}
	cb = g->cb;
	cb_arg = g->cb_arg;
	unlock(g);

	convert_report(g, cancelled, cb, cb_arg);
	if (t)
		transit_free(t);
	if (error_offset && busy != UINT64_MAX)
		*error_offset = busy << PAGE_SHIFT;
	return err;
}

bool convert_complete_locked(struct gmem *g, uint64_t first, uint64_t end, struct transit **done,
			     bool strict)
{
	struct transit **pp = &g->transits;
	bool stale = false;

	assert_exclusive(g);
	while (*pp) {
		struct transit *t = *pp;
		struct pin_scan scan;
		int64_t n = 0;
		int err;

		if (!transit_overlaps(t, first, end, GMEM_CONVERT_DEFER)) {
			pp = &t->next;
			continue;
		}
		pins_scan(g, t->first, t->end, IN_TRANSIT, &scan);
		if (scan.short_first != UINT64_MAX || scan.long_first != UINT64_MAX) {
			pp = &t->next; /* not the last pin: the last one completes it */
			continue;
		}
		/*
		 * Pinned pages may have been mapped for their I/O; each was zapped
		 * when its last pin went, but zap the range whole, and commit only
		 * if that held: never PRIVATE over a page a view may still map.
		 * Room for the commit was reserved when the transit was made
		 * (state_reserve()).
		 */
		err = views_zap(g, t->first, t->end, strict);
		if (err == -ESTALE) {
			stale = true; /* not yet: the caller waits for the records and comes back */
			pp = &t->next;
			continue;
		}
		if (!err && g->fresh_buf)
			err = fresh_private(g, t->first, t->end, IN_TRANSIT, &(uint64_t){ 0 });
		if (!err && GMEM_WARN_ON(g, (n = state_replace(g, t->first, t->end, IN_TRANSIT,
								      GMEM_PRIVATE, NULL)) < 0))
			err = (int)n; /* room was reserved with the transit (state_reserve()) */
		if (err) {
			/*
			 * It ends with that error, reported through the room kept
			 * for it, and its pages stay in transit - refused to host
			 * touches and pins, the guest's as before - until a
			 * conversion overlapping it cancels it (unreported).
			 */
			struct transit *r = t->report;

			t->report = NULL;
			t->mode = TRANSIT_FAILED;
			*r = (struct transit){ .first = t->first, .end = t->end, .result = err };
			r->next = *done;
			*done = r;
			pp = &t->next;
			continue;
		}
		*pp = t->next;
		t->result = 0;
		t->next = *done;
		*done = t;
		count(&g->stats.pages_to_private, (uint64_t)n);
		count(&g->stats.conversions, 1);
	}
	return stale;
}

int gmem_set_convert_callback(struct gmem *g, gmem_convert_cb cb, void *arg)
{
	if (!g)
		return -EINVAL;
	lock_exclusive(g);
	g->cb = cb;
	g->cb_arg = arg;
	unlock(g);
	return 0;
}
