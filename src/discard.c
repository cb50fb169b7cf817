// SPDX-License-Identifier: MIT
/*
 * discard.c - punching pages out of the backing file.
 *
 * The hole punch unmaps the pages from every mapping, so afterwards every
 * view and the guest mapping read zeros; states stay, and refusal marks in
 * views survive the punch (the kernel keeps poison markers across it), so
 * a discarded private page is still refused.  Pinned pages are refused:
 * the pin protocol runs here too, with a hold (pins_hold()) in place of a
 * state, so that a pin cannot slip in between the check and the punch.
 */
#include <errno.h>

#include "internal.h"

/*
 * After the punch on hugetlbfs: pieces of a huge page were zeroed in place
 * (the kernel splits no hugetlb page), and whole pages went back to the
 * pool - their reservation with them, so that a later touch could find the
 * pool empty and fail (SIGBUS, in the guest too).  Take them back at once:
 * -ENOMEM if the pool has none to give (the range reads zero all the same).
 */
static int discard_huge(struct gmem *g, uint64_t first, uint64_t end)
{
	uint64_t bp = g->b.align >> PAGE_SHIFT;
	uint64_t ws = (first + bp - 1) & ~(bp - 1), we = end & ~(bp - 1);
	int err;

	if (ws >= we)
		return 0;
	views_forget_mapped(g, ws, we); /* the punch unmapped them everywhere */
	views_protect_again(g, ws, we);
	err = backing_take_back(&g->b, ws << PAGE_SHIFT, (we - ws) << PAGE_SHIFT);
	return err == -ENOSPC ? -ENOMEM : sys_result(err);
}

int gmem_discard(struct gmem *g, uint64_t offset, uint64_t len)
{
	uint64_t first, end;
	int err;

	if (!g || !range_ok(g, offset, len))
		return -EINVAL;
	if (forked_child(g))
		return -ECHILD;
	first = offset >> PAGE_SHIFT;
	end = first + (len >> PAGE_SHIFT);
	lock_exclusive(g);
	err = pins_hold(g, first, end) ? -EBUSY : lazy_forget(g, first, end);
	if (!err)
		err = sys_result(huge_punch(g, first, end));
	if (!err) {
		atomic_fetch_add_explicit(&g->discard_gen, 1, memory_order_relaxed);
		pages_clear(g, first, end, PW_POPULATED);
		if (g->tracking)
			track_mark(g, first, end); /* the zeroing is a write */
	}
	if (!err && g->b.hugetlb)
		err = discard_huge(g, first, end);
	else if (!err) {
		views_forget_mapped(g, first, end); /* the punch unmapped them everywhere */
		views_protect_again(g, first, end);
	}
	pins_release_hold(g, first, end);
	unlock(g);
	return err;
}
