// SPDX-License-Identifier: MIT
/*
 * discard.c - punching pages out of the backing file.
 *
 * The hole punch unmaps the pages from every mapping, so afterwards every
 * view and the guest mapping read zeros; states stay, and refusal marks in
 * views survive the punch (the kernel keeps poison markers across it), so
 * a discarded private page is still refused.  Pinned pages are refused:
 * the pin protocol runs here too, with a "discarding" bit in place of a
 * state, so that a pin cannot slip in between the check and the punch.
 */
#include <errno.h>

#include "internal.h"

/* Set or clear the discarding bit on [first, end); true if a page was pinned. */
static bool mark(struct gmem *g, uint64_t first, uint64_t end, bool on)
{
	bool pinned = false;
	pinword_t *w;

	for (uint64_t p = first; (w = pinmap_next(&g->pins, &p, end)); p++) {
		if (on)
			pinned |= (atomic_fetch_or(w, PW_DISCARDING) & PW_COUNTS) != 0;
		else
			atomic_fetch_and(w, ~PW_DISCARDING);
	}
	return pinned;
}

int gmem_discard(struct gmem *g, uint64_t offset, uint64_t len)
{
	uint64_t first, end;
	int err;

	if (!g || !range_ok(g, offset, len))
		return -EINVAL;
	first = offset >> PAGE_SHIFT;
	end = first + (len >> PAGE_SHIFT);
	lock_exclusive(g);
	err = mark(g, first, end, true) ? -EBUSY : sys_result(backing_punch(&g->b, offset, len));
	if (!err)
		views_forget_mapped(g, first, end); /* the punch unmapped them everywhere */
	mark(g, first, end, false);
	unlock(g);
	return err;
}
