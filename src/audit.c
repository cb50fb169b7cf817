// SPDX-License-Identifier: MIT
/*
 * audit.c - invariant 1 proved from the kernel's own page tables.
 *
 * For every view, every run of pages that are not shared is looked up in
 * the process's page tables; a present entry there is a host mapping of a
 * page the guest owns - or, for a page in transit, of one that no pin
 * holds (a pinned in-transit page may stay mapped for the I/O the
 * conversion waits for).  Nothing is faulted in.  Holding g->lock shared
 * keeps states, views and in-transit pins still; the fault thread may map
 * shared pages meanwhile, which the audit does not look at.
 */
#include <errno.h>
#include <unistd.h>

#include "internal.h"
#include "os/pagemap.h"

int gmem_audit(struct gmem *g)
{
	const struct view *v;
	uint64_t s, e;
	int fd, err;

	if (!g)
		return -EINVAL;
	err = pagemap_open(&fd);
	if (err)
		return err;
	views_lock(g, false);
	for (size_t i = 0; !err && (v = views_next(g, &i, 0, g->npages, &s, &e));) {
		uintptr_t base = (uintptr_t)v->addr - (v->first << PAGE_SHIFT), found;
		struct runmap_iter it;
		struct run r;

		runmap_iter_start(&it, &g->states, s, e);
		while (!err && runmap_iter_next(&it, &r)) {
			uintptr_t a = base + (r.start << PAGE_SHIFT), end = base + (r.end << PAGE_SHIFT);

			while (r.val != GMEM_SHARED && a < end &&
			       (err = pagemap_first_present(fd, a, end, &found)) > 0) {
				err = 0;
				if (r.val != GMEM_CONVERTING ||
				    !page_pinned(g, (found - base) >> PAGE_SHIFT)) {
					err = -EIO;
					break;
				}
				a = found + GMEM_PAGE_SIZE;
			}
		}
	}
	unlock(g);
	close(fd);
	return err;
}
