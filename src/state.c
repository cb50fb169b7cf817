// SPDX-License-Identifier: MIT
/*
 * state.c - page states: the run map and the pin words, kept equal.
 *
 * g->states answers the fault path and every range question; the pin words
 * answer pins without a lock.  Both change here, together, under g->lock
 * held exclusive; a word's state is published with a read-modify-write that
 * also returns the pins it held at that instant (see core/pinword.h).
 */
#include <errno.h>

#include "internal.h"

int state_reserve(struct gmem *g)
{
	size_t transits = 0;
	int r;

	assert_exclusive(g);
	for (struct transit *t = g->transits; t; t = t->next)
		transits++;
	/*
	 * Each state change splits at most two runs.  A conversion makes at
	 * most four (cancel, publish, revert or commit...), and every transit
	 * still pending must find room for its own completion, which runs in
	 * an unpin that cannot fail.
	 */
	r = runmap_reserve(&g->states, 2 * (4 + transits));
	if (!r)
		r = views_reserve_denied(g, 2 * (2 + transits));
	return r;
}

int64_t state_replace(struct gmem *g, uint64_t first, uint64_t end, uint32_t from, unsigned int to,
		      struct pin_scan *scan)
{
	int64_t changed;
	pinword_t *w;

	assert_exclusive(g);
	changed = runmap_replace(&g->states, first, end, from, (uint8_t)to);
	if (scan)
		scan->short_first = scan->long_first = UINT64_MAX;
	if (changed < 0)
		return changed;
	for (uint64_t p = first; (w = pinmap_next(&g->pins, &p, end)); p++) {
		uint64_t old;

		if (!(from & STATE_MASK(pw_state(atomic_load(w)))))
			continue;
		old = pw_set_state(w, to);
		if (!scan)
			continue;
		if (pw_count(old, false) && scan->short_first == UINT64_MAX)
			scan->short_first = p;
		if (pw_count(old, true) && scan->long_first == UINT64_MAX)
			scan->long_first = p;
	}
	return changed;
}
