// SPDX-License-Identifier: MIT
/*
 * pin.c - pins: counted references host I/O holds on shared pages.
 *
 * No lock on the way in: a pin raises each page's word and reads the state
 * it found in the same atomic step; any page not plainly shared makes it
 * back out of every page it raised.  No lock on the way out either, except
 * for in-transit pages: their counts fall only with g->lock exclusive,
 * because a pinned in-transit page may still be mapped for the I/O that
 * holds it (fault.c), and the release that leaves it unpinned must zap it
 * and, when the whole range is free, complete the deferred conversion (the
 * kernel's folio_put callback) - atomically with respect to faults and
 * conversions.
 */
#include <errno.h>

#include "internal.h"

/* Page p's word: the one after prev's inside a leaf, else looked up (or made). */
static inline pinword_t *word_after(struct gmem *g, uint64_t p, pinword_t *prev, bool make)
{
	if (prev && (p & (PINMAP_LEAF_PAGES - 1)))
		return prev + 1;
	return make ? pin_word(g, p) : pinmap_word(&g->pins, p);
}

/*
 * Release one pin of the given kind from every page in [first, end).
 * With `held`, a page without such a pin is a caller's error (-EINVAL),
 * possible here only if another thread releases the same pins at once.
 */
static int release(struct gmem *g, uint64_t first, uint64_t end, bool longterm, bool held)
{
	const uint64_t one = pw_one(longterm);
	struct timespec stale_deadline = { 0, 0 };
	struct transit *done = NULL;
	gmem_convert_cb cb = NULL;
	uint64_t p, zap_from = UINT64_MAX;
	pinword_t *w = NULL;
	void *cb_arg = NULL;
	int err = 0;

	for (p = first; p < end; p++) {
		uint64_t old;

		w = word_after(g, p, w, false);
		old = atomic_load(w);

		do {
			if (!pw_count(old, longterm))
				goto next;
			if (pw_state(old) == GMEM_CONVERTING)
				goto slow;
		} while (!atomic_compare_exchange_weak(w, &old, old - one));
		continue;
next:
		if (held)
			err = -EINVAL;
	}
	pins_wake_waiters(g);
	return err;

slow:
	views_lock(g, true);
	for (w = NULL; p < end; p++) {
		uint64_t old;
		bool dropped = false, idle;

		w = word_after(g, p, w, false);
		old = atomic_load(w);

		while (!dropped && pw_count(old, longterm))
			dropped = atomic_compare_exchange_weak(w, &old, old - one);
		if (!dropped && held)
			err = -EINVAL;
		/* no pin left on an in-transit page: its I/O is over, unmap it */
		old -= dropped ? one : 0;
		idle = dropped && pw_state(old) == GMEM_CONVERTING && !(old & PW_COUNTS);
		if (idle) {
			if (zap_from == UINT64_MAX)
				zap_from = p;
		} else if (zap_from != UINT64_MAX) {
			views_zap(g, zap_from, p, false);
			zap_from = UINT64_MAX;
		}
	}
	/* the completion zaps the whole range again: these may fail */
	if (zap_from != UINT64_MAX)
		views_zap(g, zap_from, end, false);
	/* as gmem_convert() does for a view moved or unmapped just now */
	for (bool strict = true; convert_complete_locked(g, first, end, &done, strict);) {
		pthread_rwlock_unlock(&g->lock);
		strict = views_wait_records(g, &stale_deadline);
		views_lock(g, true);
	}
	cb = g->cb;
	cb_arg = g->cb_arg;
	pthread_rwlock_unlock(&g->lock);
	pins_wake_waiters(g);
	convert_report(g, done, cb, cb_arg);
	return err;
}

int gmem_pin(struct gmem *g, uint64_t offset, uint64_t len, unsigned int flags)
{
	bool longterm = flags & GMEM_PIN_LONGTERM;
	uint64_t first, end, p;
	pinword_t *w = NULL;
	int err = 0;

	if (!g || !range_ok(g, offset, len) || (flags & ~GMEM_PIN_LONGTERM))
		return -EINVAL;
	first = offset >> PAGE_SHIFT;
	end = first + (len >> PAGE_SHIFT);
	for (p = first; p < end; p++) {
		w = word_after(g, p, w, true);
		if (!w) {
			err = -ENOMEM;
			break;
		}
		err = pw_pin_verdict(pw_pin(w, longterm), longterm);
		if (err) {
			p++; /* this one was raised too */
			break;
		}
	}
	if (!err)
		return 0;
	release(g, first, p, longterm, false);
	if (err == -EAGAIN && p < end) {
		/* a private page further on is the lasting reason: say so */
		pthread_rwlock_rdlock(&g->lock);
		if (runmap_find(&g->states, p, end, STATE_MASK(GMEM_PRIVATE)) < end)
			err = -EACCES;
		pthread_rwlock_unlock(&g->lock);
	}
	return err;
}

int gmem_unpin(struct gmem *g, uint64_t offset, uint64_t len, unsigned int flags)
{
	bool longterm = flags & GMEM_PIN_LONGTERM;
	uint64_t first, end;
	pinword_t *w = NULL;

	if (!g || !range_ok(g, offset, len) || (flags & ~GMEM_PIN_LONGTERM))
		return -EINVAL;
	first = offset >> PAGE_SHIFT;
	end = first + (len >> PAGE_SHIFT);
	for (uint64_t p = first; p < end; p++) {
		w = word_after(g, p, w, false);
		if (!w || !pw_count(atomic_load(w), longterm))
			return -EINVAL;
	}
	return release(g, first, end, longterm, true);
}
