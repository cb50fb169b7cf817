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

int gmem_discard(struct gmem *g, uint64_t offset, uint64_t len)
{
	uint64_t first, end;
	int err;

	if (!g || !range_ok(g, offset, len))
		return -EINVAL;
	first = offset >> PAGE_SHIFT;
	end = first + (len >> PAGE_SHIFT);
	lock_exclusive(g);
	err = pins_hold(g, first, end) ? -EBUSY : sys_result(huge_punch(g, first, end));
	if (!err)
		views_forget_mapped(g, first, end); /* the punch unmapped them everywhere */
	pins_release_hold(g, first, end);
	unlock(g);
	return err;
}
