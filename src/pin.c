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

void pins_scan(struct gmem *g, uint64_t first, uint64_t end, uint32_t states,
	       struct pin_scan *scan)
{
	pinword_t *w;

	scan->short_first = scan->long_first = UINT64_MAX;
	for (uint64_t p = first; (w = pinmap_next(&g->pins, &p, end)); p++) {
		uint64_t x = atomic_load(w);

		if (!(states & STATE_MASK(pw_state(x))))
			continue;
		if (pw_count(x, false) && scan->short_first == UINT64_MAX)
			scan->short_first = p;
		if (pw_count(x, true) && scan->long_first == UINT64_MAX)
			scan->long_first = p;
	}
}

/* A new leaf's words take their states from the run map (g->lock held shared). */
static void init_words(void *arg, uint64_t first, uint64_t n, pinword_t *w)
{
	struct gmem *g = arg;
	struct runmap_iter it;
	struct run r;

	runmap_iter_start(&it, &g->states, first, first + n);
	while (runmap_iter_next(&it, &r))
		for (uint64_t p = r.start; p < r.end; p++)
			atomic_init(&w[p - first], pw_make(r.val));
}

/* Page's word, made if it has none yet; NULL without memory. */
static pinword_t *pin_word(struct gmem *g, uint64_t page)
{
	pinword_t *w = pinmap_word(&g->pins, page);

	if (w)
		return w;
	lock_shared(g);
	w = pinmap_word_create(&g->pins, page, init_words, g);
	unlock(g);
	return w;
}

bool page_pinned(struct gmem *g, uint64_t page)
{
	pinword_t *w = pinmap_word(&g->pins, page);

	return w && (atomic_load(w) & PW_COUNTS);
}

uint64_t pins_total(struct gmem *g)
{
	uint64_t n = 0;
	pinword_t *w;

	for (uint64_t p = 0; (w = pinmap_next(&g->pins, &p, g->npages)); p++) {
		uint64_t x = atomic_load(w);

		n += pw_count(x, false) + pw_count(x, true);
	}
	return n;
}

void pins_wake_waiters(struct gmem *g)
{
	if (!atomic_load(&g->pin_waiters))
		return;
	pthread_mutex_lock(&g->wait_mu);
	pthread_cond_broadcast(&g->wait_cv);
	pthread_mutex_unlock(&g->wait_mu);
}

bool pages_all(struct gmem *g, uint64_t first, uint64_t end, uint64_t bit)
{
	pinword_t *w = NULL;

	for (uint64_t p = first; p < end; p++) {
		w = p == first || !(p & (PINMAP_LEAF_PAGES - 1)) ? pinmap_word(&g->pins, p) : w + 1;
		if (!w || !(atomic_load_explicit(w, memory_order_relaxed) & bit))
			return false;
	}
	return true;
}

bool pages_mark(struct gmem *g, uint64_t first, uint64_t end, uint64_t bit)
{
	pinword_t *w = NULL;

	for (uint64_t p = first; p < end; p++) {
		w = p == first || !(p & (PINMAP_LEAF_PAGES - 1))
			    ? pinmap_word_create(&g->pins, p, init_words, g)
			    : w + 1;
		if (!w)
			return false;
		atomic_fetch_or(w, bit);
	}
	return true;
}

void pages_clear(struct gmem *g, uint64_t first, uint64_t end, uint64_t bit)
{
	pinword_t *w;

	for (uint64_t p = first; (w = pinmap_next(&g->pins, &p, end)); p++)
		atomic_fetch_and(w, ~bit);
}

void pages_take(struct gmem *g, uint64_t first, uint64_t end, uint64_t bit, uint64_t also,
		bool peek, uint64_t *bitmap)
{
	pinword_t *w;

	for (uint64_t p = first; (w = pinmap_next(&g->pins, &p, end));) {
		uint64_t stop = (p | (PINMAP_LEAF_PAGES - 1)) + 1;

		for (stop = stop < end ? stop : end; p < stop; p++, w++) {
			uint64_t x = atomic_load(w);

			if (!(x & (bit | also)))
				continue; /* a bit set after this load is the next caller's */
			if (!peek && (x & bit))
				x = atomic_fetch_and(w, ~bit);
			if (x & (bit | also))
				bitmap[(p - first) / 64] |= 1ULL << ((p - first) % 64);
		}
	}
}

bool pins_hold(struct gmem *g, uint64_t first, uint64_t end)
{
	bool pinned = false;
	pinword_t *w;

	for (uint64_t p = first; (w = pinmap_next(&g->pins, &p, end)); p++)
		pinned |= (atomic_fetch_or(w, PW_HELD) & PW_COUNTS) != 0;
	return pinned;
}

void pins_release_hold(struct gmem *g, uint64_t first, uint64_t end)
{
	pinword_t *w;

	for (uint64_t p = first; (w = pinmap_next(&g->pins, &p, end)); p++)
		atomic_fetch_and(w, ~PW_HELD);
	pins_wake_waiters(g);
}

/* Page p's word: the one after prev's inside a leaf, else looked up (or made). */
static inline pinword_t *word_after(struct gmem *g, uint64_t p, pinword_t *prev, bool make)
{
	if (prev && (p & (PINMAP_LEAF_PAGES - 1)))
		return prev + 1;
	return make ? pin_word(g, p) : pinmap_word(&g->pins, p);
}

/*
 * Drop one pin of the kind from the pages of [first, end) without a lock,
 * up to the first page in transit, whose count falls only under the lock.
 * Returns that page, or end.  *missing: a page held no such pin.
 */
static uint64_t release_fast(struct gmem *g, uint64_t first, uint64_t end, bool longterm,
			     bool *missing)
{
	pinword_t *w = NULL;
	uint64_t after;

	for (uint64_t p = first; p < end; p++) {
		w = word_after(g, p, w, false);
		switch (pw_unpin(w, longterm, GMEM_CONVERTING, &after)) {
		case PW_KEPT:
			return p;
		case PW_NOT_HELD:
			*missing = true;
			break;
		case PW_DROPPED:
			break;
		}
	}
	return end;
}

/*
 * Drop the pins of [p, end) with g->lock exclusive: an in-transit page
 * left with no pin has finished its I/O and is unmapped, and a deferred
 * conversion whose last pin this was completes.  Returns the conversions
 * that ended, for the caller to report once unlocked.
 */
static struct transit *release_locked(struct gmem *g, uint64_t p, uint64_t end, bool longterm,
				      bool *missing)
{
	struct timespec stale_deadline = { 0, 0 };
	uint64_t first = p, zap_from = UINT64_MAX;
	struct transit *done = NULL;
	pinword_t *w = NULL;

	for (; p < end; p++) {
		uint64_t after = 0;
		bool idle = false;

		w = word_after(g, p, w, false);
		switch (pw_unpin(w, longterm, -1, &after)) {
		case PW_NOT_HELD:
			*missing = true;
			break;
		case PW_DROPPED:
			idle = pw_state(after) == GMEM_CONVERTING && !(after & PW_COUNTS);
			break;
		case PW_KEPT:
			break;
		}
		if (idle && zap_from == UINT64_MAX)
			zap_from = p;
		if (!idle && zap_from != UINT64_MAX) {
			views_zap_idle(g, zap_from, p);
			zap_from = UINT64_MAX;
		}
	}
	/* best effort: the completion zaps the whole range again, and checks */
	if (zap_from != UINT64_MAX)
		views_zap_idle(g, zap_from, end);
	/* as gmem_convert() does for a view moved or unmapped just now */
	for (bool strict = true; convert_complete_locked(g, first, end, &done, strict);) {
		unlock(g);
		strict = views_wait_records(g, &stale_deadline);
		views_lock(g, true);
	}
	return done;
}

/*
 * Write tracking (track.c): I/O under a pin writes through the kernel's own
 * reference to the page (a registered buffer, O_DIRECT), which no scan of
 * an entry sees, so a collect counts every pinned page as written
 * (pages_take()), and a release notes its pages for the next - before
 * their counts fall, so that no collect in between finds neither.  Noted
 * tracking or not: a start clears the notes, and there is no lock here to
 * read g->tracking under.
 */
static void release_note_written(struct gmem *g, uint64_t first, uint64_t end)
{
	pinword_t *w = NULL;

	for (uint64_t p = first; p < end; p++) {
		w = word_after(g, p, w, false);
		if (w)
			atomic_fetch_or(w, PW_WRITTEN);
	}
}

/* Release one pin of the kind from every page in [first, end); -EINVAL if one held none. */
static int release(struct gmem *g, uint64_t first, uint64_t end, bool longterm)
{
	struct transit *done = NULL;
	gmem_convert_cb cb = NULL;
	bool missing = false;
	void *cb_arg = NULL;
	uint64_t p;

	release_note_written(g, first, end);
	p = release_fast(g, first, end, longterm, &missing);

	if (p < end) {
		views_lock(g, true);
		done = release_locked(g, p, end, longterm, &missing);
		cb = g->cb;
		cb_arg = g->cb_arg;
		unlock(g);
	}
	pins_wake_waiters(g);
	convert_report(g, done, cb, cb_arg);
	return missing ? -EINVAL : 0;
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
	/* a lazy restore's pages are in place before any I/O under the pin reaches them */
	if (lazy_active(g) && (err = lazy_fill(g, first, end, false)))
		return err == -EBADMSG ? err : sys_result(err); /* -EAGAIN is a pin's word */
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
	release(g, first, p, longterm);
	if (err == -EAGAIN && p < end) {
		/* a private page further on is the lasting reason: say so */
		lock_shared(g);
		if (runmap_find(&g->states, p, end, STATE_MASK(GMEM_PRIVATE)) < end)
			err = -EACCES;
		unlock(g);
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
	return release(g, first, end, longterm);
}
