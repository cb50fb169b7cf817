// SPDX-License-Identifier: MIT
/*
 * view.c - host views: mapping them, finding them, and clearing them.
 *
 * A view is a MAP_SHARED mapping of part of the backing file registered
 * with the object's userfaultfd, so that every first touch reaches the
 * fault thread (fault.c).  Conversions to private zap views (only where
 * view->mapped says the view may map something); re-sharing clears what
 * refusals left in their page tables (poison markers, or PROT_NONE under
 * the SIGSEGV policy), which each view remembers in view->denied.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"
#include "os/uffd.h"

#define PAGE_ADDR(v, p) ((v)->addr + (((p) - (v)->first) << PAGE_SHIFT))

/* The index of the first view at or above addr. */
static size_t view_index(struct gmem *g, uintptr_t addr)
{
	size_t lo = 0, hi = g->nviews;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if ((uintptr_t)g->views[mid]->addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct view *view_find(struct gmem *g, uintptr_t addr)
{
	size_t i = view_index(g, addr + 1);
	struct view *v;

	if (i == 0)
		return NULL;
	v = g->views[i - 1];
	return addr - (uintptr_t)v->addr < ((v->end - v->first) << PAGE_SHIFT) ? v : NULL;
}

/* Clip [first, end) to view v; false if they do not meet. */
static bool clip(const struct view *v, uint64_t *first, uint64_t *end)
{
	if (*first < v->first)
		*first = v->first;
	if (*end > v->end)
		*end = v->end;
	return *first < *end;
}

int views_reserve_denied(struct gmem *g, size_t insertions)
{
	for (size_t i = 0; i < g->nviews; i++)
		if (runmap_reserve(&g->views[i]->denied, insertions))
			return -ENOMEM;
	return 0;
}

uint64_t views_strict_first(struct gmem *g, uint64_t first, uint64_t end)
{
	uint64_t lowest = UINT64_MAX;

	for (size_t i = 0; i < g->nviews; i++) {
		const struct view *v = g->views[i];
		uint64_t s = first, e = end;

		if ((v->flags & GMEM_VIEW_STRICT) && clip(v, &s, &e) && s < lowest)
			lowest = s;
	}
	return lowest;
}

/* Unmap [s, e) of view v (both clipped to it), skipping what it cannot map. */
static int zap_view(struct view *v, uint64_t s, uint64_t e)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	struct runmap_iter it;
	struct run r;

	if (!v->mapped_lost) {
		/* one call over the span of the marked pages: runs of holes are cheap to zap */
		runmap_iter_start(&it, &v->mapped, s, e);
		while (runmap_iter_next(&it, &r)) {
			if (!r.val)
				continue;
			lo = r.start < lo ? r.start : lo;
			hi = r.end;
		}
		if (lo == UINT64_MAX)
			return 0; /* nothing there can be mapped */
		s = lo;
		e = hi;
	}
	if (madvise(PAGE_ADDR(v, s), (e - s) << PAGE_SHIFT, MADV_DONTNEED))
		return sys_result(-errno);
	/* cleared only after the zap; if clearing fails the marks stay a superset */
	runmap_set(&v->mapped, s, e, 0);
	return 0;
}

int views_zap(struct gmem *g, uint64_t first, uint64_t end)
{
	for (size_t i = 0; i < g->nviews; i++) {
		struct view *v = g->views[i];
		uint64_t s = first, e = end;
		int err;

		if (clip(v, &s, &e) && (err = zap_view(v, s, e)))
			return err;
	}
	return 0;
}

/* The kernel unmapped [first, end) from every view itself (a hole punch). */
void views_forget_mapped(struct gmem *g, uint64_t first, uint64_t end)
{
	for (size_t i = 0; i < g->nviews; i++) {
		struct view *v = g->views[i];
		uint64_t s = first, e = end;

		if (clip(v, &s, &e))
			runmap_set(&v->mapped, s, e, 0);
	}
}

/* Undo a refusal's marks on [s, e) of view v: zap the markers, restore access. */
static int undeny_run(struct gmem *g, struct view *v, uint64_t s, uint64_t e)
{
	char *a = PAGE_ADDR(v, s);
	size_t len = (e - s) << PAGE_SHIFT;

	if (g->fault_signal == SIGSEGV && mprotect(a, len, PROT_READ | PROT_WRITE))
		return sys_result(-errno);
	return madvise(a, len, MADV_DONTNEED) ? sys_result(-errno) : 0;
}

int views_undeny(struct gmem *g, uint64_t first, uint64_t end)
{
	for (size_t i = 0; i < g->nviews; i++) {
		struct view *v = g->views[i];
		uint64_t s = first, e = end;
		struct runmap_iter it;
		struct run r;
		int err;

		if (!clip(v, &s, &e))
			continue;
		if (v->denied_lost) {
			err = undeny_run(g, v, s, e);
			if (err)
				return err;
			continue;
		}
		runmap_iter_start(&it, &v->denied, s, e);
		while (runmap_iter_next(&it, &r)) {
			if (r.val && (err = undeny_run(g, v, r.start, r.end)))
				return err;
		}
		/* state_reserve() made room: clearing cannot fail */
		runmap_set(&v->denied, s, e, 0);
	}
	return 0;
}

void views_wake(struct gmem *g, uint64_t first, uint64_t end)
{
	for (size_t i = 0; i < g->nviews; i++) {
		struct view *v = g->views[i];
		uint64_t s = first, e = end;

		/* a valid range: UFFDIO_WAKE has nothing else to fail on */
		if (clip(v, &s, &e))
			uffd_wake(g->uffd, (uintptr_t)PAGE_ADDR(v, s), (e - s) << PAGE_SHIFT);
	}
}

static void view_free(struct view *v)
{
	runmap_fini(&v->mapped);
	runmap_fini(&v->denied);
	free(v);
}

int gmem_view_map(struct gmem *g, uint64_t offset, uint64_t len, unsigned int flags, void **addr)
{
	struct view *v;
	size_t i;
	int err;

	if (!g || !addr || !range_ok(g, offset, len) || (flags & ~GMEM_VIEW_STRICT))
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->first = offset >> PAGE_SHIFT;
	v->end = v->first + (len >> PAGE_SHIFT);
	v->flags = flags;
	err = runmap_init(&v->denied, g->npages, 0);
	if (!err)
		err = runmap_init(&v->mapped, g->npages, 0);
	if (err)
		goto err_free;

	pthread_rwlock_wrlock(&g->lock);
	if ((flags & GMEM_VIEW_STRICT) &&
	    runmap_find(&g->states, v->first, v->end,
			STATE_MASK(GMEM_PRIVATE) | STATE_MASK(GMEM_CONVERTING)) < v->end) {
		err = -EACCES;
		goto err_unlock;
	}
	if (g->nviews == g->views_cap) {
		size_t cap = g->views_cap ? 2 * g->views_cap : 8;
		struct view **views = realloc(g->views, cap * sizeof(*views));

		if (!views) {
			err = -ENOMEM;
			goto err_unlock;
		}
		g->views = views;
		g->views_cap = cap;
	}
	err = sys_result(backing_map(&g->b, offset, len, &v->addr));
	if (err)
		goto err_unlock;
	err = sys_result(uffd_register(g->uffd, v->addr, len));
	if (err)
		goto err_unmap;

	i = view_index(g, (uintptr_t)v->addr);
	memmove(&g->views[i + 1], &g->views[i], (g->nviews - i) * sizeof(g->views[0]));
	g->views[i] = v;
	g->nviews++;
	pthread_rwlock_unlock(&g->lock);
	*addr = v->addr;
	return 0;

err_unmap:
	munmap(v->addr, len);
err_unlock:
	pthread_rwlock_unlock(&g->lock);
err_free:
	view_free(v);
	return err;
}

int gmem_view_unmap(struct gmem *g, void *addr)
{
	struct view *v;
	size_t i;

	if (!g || !addr)
		return -EINVAL;
	pthread_rwlock_wrlock(&g->lock);
	i = view_index(g, (uintptr_t)addr);
	if (i == g->nviews || g->views[i]->addr != addr) {
		pthread_rwlock_unlock(&g->lock);
		return -EINVAL;
	}
	v = g->views[i];
	memmove(&g->views[i], &g->views[i + 1], (g->nviews - i - 1) * sizeof(g->views[0]));
	g->nviews--;
	/*
	 * Unmapped under the lock: no fault is being decided for it meanwhile.
	 * The kernel wakes no touch left waiting on it (fault.c parks some):
	 * wake them here, to meet the unmapped range like any late touch.
	 */
	munmap(v->addr, (v->end - v->first) << PAGE_SHIFT);
	uffd_wake(g->uffd, (uintptr_t)v->addr, (v->end - v->first) << PAGE_SHIFT);
	pthread_rwlock_unlock(&g->lock);
	view_free(v);
	return 0;
}

void views_destroy(struct gmem *g)
{
	for (size_t i = 0; i < g->nviews; i++) {
		munmap(g->views[i]->addr, (g->views[i]->end - g->views[i]->first) << PAGE_SHIFT);
		view_free(g->views[i]);
	}
	free(g->views);
	g->views = NULL;
	g->nviews = g->views_cap = 0;
}
