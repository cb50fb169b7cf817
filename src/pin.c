// SPDX-License-Identifier: MIT
/*
 * pin.c - pins: counted references host I/O holds on shared pages.
 *
 * No lock on the way in or out: a pin raises each page's word and reads
 * the state it found in the same atomic step; any page not plainly shared
 * makes it back out of every page it raised.  Dropping a reference - an
 * unpin, or a pin backing out - that leaves an in-transit page unpinned
 * may be the last one a deferred conversion waits for, so it tries to
 * complete it (convert_try_complete()).
 */
#include <errno.h>

#include "internal.h"

/* Complete the deferred conversions whose last pin in [first, end) is gone. */
static void complete_range(struct gmem *g, uint64_t first, uint64_t end)
{
	pinword_t *w;

	for (uint64_t p = first; (w = pinmap_next(&g->pins, &p, end));) {
		if (pw_wants_completion(atomic_load(w)))
			p = convert_try_complete(g, p);
		else
			p++;
	}
}

/* Drop the references a pin took on [first, end). */
static void back_out(struct gmem *g, uint64_t first, uint64_t end, bool longterm)
{
	bool complete = false;

	for (uint64_t p = first; p < end; p++)
		complete |= pw_wants_completion(pw_drop(pinmap_word(&g->pins, p), longterm));
	pins_wake_waiters(g);
	if (complete)
		complete_range(g, first, end);
}

int gmem_pin(struct gmem *g, uint64_t offset, uint64_t len, unsigned int flags)
{
	bool longterm = flags & GMEM_PIN_LONGTERM;
	uint64_t first, end, p;
	int err = 0;

	if (!g || !range_ok(g, offset, len) || (flags & ~GMEM_PIN_LONGTERM))
		return -EINVAL;
	first = offset >> PAGE_SHIFT;
	end = first + (len >> PAGE_SHIFT);
	for (p = first; p < end; p++) {
		pinword_t *w = pin_word(g, p);

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
	back_out(g, first, p, longterm);
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
	bool longterm = flags & GMEM_PIN_LONGTERM, complete = false;
	uint64_t first, end;
	int err = 0;

	if (!g || !range_ok(g, offset, len) || (flags & ~GMEM_PIN_LONGTERM))
		return -EINVAL;
	first = offset >> PAGE_SHIFT;
	end = first + (len >> PAGE_SHIFT);
	for (uint64_t p = first; p < end; p++) {
		pinword_t *w = pinmap_word(&g->pins, p);

		if (!w || !pw_count(atomic_load(w), longterm))
			return -EINVAL;
	}
	for (uint64_t p = first; p < end; p++) {
		uint64_t after;

		/* fails only if another thread unpins the same pins at once */
		if (!pw_unpin(pinmap_word(&g->pins, p), longterm, &after))
			err = -EINVAL;
		else
			complete |= pw_wants_completion(after);
	}
	pins_wake_waiters(g);
	if (complete)
		complete_range(g, first, end);
	return err;
}
