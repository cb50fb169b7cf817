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
#include <time.h>

#include "compat.h"
#include "internal.h"
#include "os/maps.h"
#include "os/uffd.h"

#define PAGE_ADDR(v, p) ((v)->addr + (((p) - (v)->first) << PAGE_SHIFT))

/* Where page 0 of the object would be in view v's mapping (an address to count from). */
static inline uintptr_t view_base(const struct view *v)
{
	return (uintptr_t)v->addr - (v->first << PAGE_SHIFT);
}

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

struct view *views_next(struct gmem *g, size_t *i, uint64_t first, uint64_t end, uint64_t *s,
			uint64_t *e)
{
	while (*i < g->nviews) {
		struct view *v = g->views[(*i)++];

		*s = first;
		*e = end;
		if (clip(v, s, e))
			return v;
	}
	return NULL;
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
	uint64_t lowest = UINT64_MAX, s, e;
	struct view *v;

	for (size_t i = 0; (v = views_next(g, &i, first, end, &s, &e));)
		if ((v->flags & GMEM_VIEW_STRICT) && s < lowest)
			lowest = s;
	return lowest;
}

/*
 * madvise() over a view's pages for a zap.  MADV_DONTNEED_LOCKED zaps
 * mlock()ed pages too (plain MADV_DONTNEED refuses them), so a process that
 * locks its memory can still convert.  ENOMEM means part of the range is
 * not mapped: the process unmapped or moved the view and the fault thread
 * has not yet applied it (fault.c).  Where the zap must reach whatever the
 * view maps (`strict`), that is -ESTALE, for the caller to wait for the
 * records and try again: a moved view took its page-table entries along.
 * Elsewhere nothing is mapped there to zap.
 */
static int zap_range(char *a, uint64_t len, bool strict)
{
	if (!madvise(a, len, MADV_DONTNEED_LOCKED))
		return 0;
	if (errno == ENOMEM)
		return strict ? -ESTALE : 0;
	return sys_result(-errno);
}

/*
 * On hugetlbfs the kernel maps, zaps and marks whole pages only (it even
 * takes a part-page MADV_DONTNEED as a no-op): [*s, *e) rounded out to
 * them.  Views of it cover whole pages (gmem_view_map()), so the result
 * stays inside the view.
 */
static void round_to_blocks(const struct gmem *g, uint64_t *s, uint64_t *e)
{
	uint64_t bp = g->b.align >> PAGE_SHIFT;

	if (!g->b.hugetlb)
		return;
	*s &= ~(bp - 1);
	*e = (*e + bp - 1) & ~(bp - 1);
}

/*
 * Tracking writes: count every page view v may map in [s, e) as written.
 * A zap takes the page-table entries that say what was written, and a
 * write can land between any look at them and the zap (the writer needs
 * no lock: the entry is mapped), so what is mapped counts, read or written
 * (track.c; a conversion's false positives, which the benchmark counts).
 */
static void track_mapped(struct gmem *g, struct view *v, uint64_t s, uint64_t e)
{
	struct runmap_iter it;
	struct run r;

	if (!g->tracking)
		return;
	if (v->mapped_lost) {
		track_mark(g, s, e);
		return;
	}
	runmap_iter_start(&it, &v->mapped, s, e);
	while (runmap_iter_next(&it, &r)) {
		uint64_t rs = r.start, re = r.end;

		if (!r.val)
			continue;
		round_to_blocks(g, &rs, &re); /* a huge page is mapped whole */
		track_mark(g, rs, re);
	}
}

/* Unmap [s, e) of view v (both clipped to it), skipping what it cannot map. */
static int zap_view(struct gmem *g, struct view *v, uint64_t s, uint64_t e, bool strict,
		    bool *zapped)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	struct runmap_iter it;
	struct run r;
	int err;

	/*
	 * A huge page is mapped whole, whichever of its pieces carry the
	 * marks: look for them over the whole of it.
	 */
	round_to_blocks(g, &s, &e);
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
	round_to_blocks(g, &s, &e);
	track_mapped(g, v, s, e);
	err = zap_range(PAGE_ADDR(v, s), (e - s) << PAGE_SHIFT, strict);
	if (err)
		return err;
	track_after_zap(g, view_base(v), s, e);
	*zapped = true;
	/*
	 * Cleared only after the zap (if clearing fails the marks stay a
	 * superset), and by the caller if it must first know the zap reached
	 * what the view maps (strict: views_zap()).
	 */
	if (!strict)
		runmap_set(&v->mapped, s, e, 0);
	return 0;
}

/*
 * The gate.  The reader reads the userfaultfd holding events_mu (reader.c),
 * and the kernel holds a process that unmaps or moves a view - and keeps
 * its "mappings changing" count raised (uffd_changing()) - until its event
 * is read.  So while the gate is held, a change the process makes to its
 * mappings stays visible as under way, and an address whose records are
 * current cannot quietly become someone else's: check the records, act on
 * an address, check again; if a change began meanwhile, the act may have
 * hit the process's own memory, and the caller knows it before anyone can
 * use that memory (the process's call has not returned).
 */
void views_gate_enter(struct gmem *g)
{
	pthread_mutex_lock(&g->events_mu);
}

void views_gate_leave(struct gmem *g)
{
	pthread_mutex_unlock(&g->events_mu);
}

bool records_current(struct gmem *g)
{
	if (g->can_probe && uffd_changing(g->uffd, (uintptr_t)g->b.guest))
		return false;
	return atomic_load(&g->events_read) == atomic_load(&g->events_seq);
}

int views_zap(struct gmem *g, uint64_t first, uint64_t end, bool strict)
{
	bool zapped = false;
	struct view *v;
	uint64_t s, e;
	int err = 0;

	assert_exclusive(g);
	if (strict) {
		/*
		 * A notice read but not applied: not here yet.  (One under way
		 * is caught by the check after the zaps, which the gate keeps
		 * true: asking the kernel here as well cost a conversion of one
		 * page a sixth more, for an instant of a few microseconds.)
		 */
		views_gate_enter(g);
		if (atomic_load(&g->events_read) != atomic_load(&g->events_seq))
			err = -ESTALE;
	}
	for (size_t i = 0; !err && (v = views_next(g, &i, first, end, &s, &e));)
		err = zap_view(g, v, s, e, strict, &zapped);
	if (!strict)
		return err;
	/*
	 * After the zaps, the gate still held: a move begun meanwhile is seen
	 * here.  Then the zaps may have hit an address the view left: its
	 * marks stay as they were, to be zapped again where it is now.
	 */
	if (!err && zapped && !records_current(g))
		err = -ESTALE;
	views_gate_leave(g);
	if (err)
		return err;
	views_forget_mapped(g, first, end);
	return 0;
}

bool views_wait_records(struct gmem *g, struct timespec *deadline)
{
	struct timespec now, until;
	uint64_t seq = atomic_load(&g->events_seq);
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!deadline->tv_sec && !deadline->tv_nsec) {
		*deadline = now;
		deadline->tv_sec += 1;
	}
	if (now.tv_sec > deadline->tv_sec ||
	    (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec))
		return false;
	/* the event may not be posted yet: look again every 10 ms */
	until = now;
	until.tv_nsec += 10000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&g->wait_mu);
	while (atomic_load(&g->events_seq) == seq && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&g->wait_cv, &g->wait_mu, &until);
	pthread_mutex_unlock(&g->wait_mu);
	return true;
}

void views_forget_mapped(struct gmem *g, uint64_t first, uint64_t end)
{
	struct view *v;
	uint64_t s, e;

	/* a clear that finds no room leaves the marks as they were: a superset */
	for (size_t i = 0; (v = views_next(g, &i, first, end, &s, &e));)
		if (!v->mapped_lost)
			runmap_set(&v->mapped, s, e, 0);
}

void views_protect_again(struct gmem *g, uint64_t first, uint64_t end)
{
	struct view *v;
	uint64_t s, e;

	for (size_t i = 0; g->tracking && (v = views_next(g, &i, first, end, &s, &e));)
		track_after_zap(g, view_base(v), s, e);
}

/*
 * Undo a refusal's marks on [s, e) of view v: remove guard markers and
 * restore access (the SIGSEGV policy), zap poison markers.
 */
static int undeny_run(struct gmem *g, struct view *v, uint64_t s, uint64_t e)
{
	char *a;
	size_t len;

	round_to_blocks(g, &s, &e);
	a = PAGE_ADDR(v, s);
	len = (e - s) << PAGE_SHIFT;
	if (g->fault_signal == SIGSEGV) {
		/* hugetlbfs takes no guards (views_deny()) */
		if (!g->b.hugetlb && madvise(a, len, MADV_GUARD_REMOVE) && errno != ENOMEM)
			return sys_result(-errno);
		if (v->prot_used && mprotect(a, len, PROT_READ | PROT_WRITE) && errno != ENOMEM)
			return sys_result(-errno);
	}
	/*
	 * On hugetlbfs the marks cleared are a huge page's, whole, and a view
	 * may map it again by now (an earlier clearing of a piece of it gave
	 * it back) and have written it: what the zap may take counts
	 */
	track_mapped(g, v, s, e);
	int err = zap_range(a, len, false);

	if (!err)
		track_after_zap(g, view_base(v), s, e); /* the marks were no writes */
	return err;
}

int views_undeny(struct gmem *g, uint64_t first, uint64_t end, bool strict)
{
	struct view *v;
	uint64_t s, e;
	int err = 0;

	/*
	 * Marks are cleared where the records say the views are: through the
	 * gate, and not while a change is under way or unapplied (strict:
	 * -ESTALE, as views_zap() does), or the clearing - a zap, access
	 * given back - would land on what the process mapped there since.
	 */
	views_gate_enter(g);
	if (strict && !records_current(g))
		err = -ESTALE;
	for (size_t i = 0; !err && (v = views_next(g, &i, first, end, &s, &e));) {
		struct runmap_iter it;
		struct run r;

		if (v->denied_lost) {
			err = undeny_run(g, v, s, e);
			continue;
		}
		runmap_iter_start(&it, &v->denied, s, e);
		while (!err && runmap_iter_next(&it, &r))
			if (r.val)
				err = undeny_run(g, v, r.start, r.end);
		/* state_reserve() made room: clearing cannot fail */
		if (!err)
			GMEM_WARN_ON(g, runmap_set(&v->denied, s, e, 0) < 0);
	}
	views_gate_leave(g);
	return err;
}

void views_zap_idle(struct gmem *g, uint64_t first, uint64_t end)
{
	bool current;

	views_gate_enter(g);
	current = records_current(g);
	views_gate_leave(g);
	if (current)
		views_zap(g, first, end, false);
}

bool view_mark_mapped(struct view *v, uint64_t page, uint64_t *s, uint64_t *e)
{
	uint64_t ms, me;
	bool marked;

	if (v->mapped_lost)
		return true;
	marked = runmap_get(&v->mapped, page, &ms, &me);
	if (marked) {
		/*
		 * Marked, yet it faulted: the kernel unmapped it (reclaim, a
		 * huge page split by a discard or merged by a collapse); just it
		 */
		*s = page;
		*e = page + 1;
	} else {
		*s = *s > ms ? *s : ms;
		*e = *e < me ? *e : me;
	}
	if (runmap_reserve(&v->mapped, 2))
		v->mapped_lost = true; /* from now on zaps cover the whole range */
	else
		runmap_set(&v->mapped, *s, *e, 1);
	return marked;
}

/*
 * Refuse a touch of [first, end) (a page, or a hugetlbfs page's pieces)
 * through view v, leaving a mark the kernel enforces from then on.  The
 * SIGSEGV policy places a guard marker (MADV_GUARD_INSTALL: SEGV_MAPERR, no
 * VMA of its own); the kernel refuses guards in mlock()ed mappings and on
 * hugetlbfs, and there PROT_NONE does (SEGV_ACCERR, a VMA split each).
 * Otherwise, or if that fails too, a poison marker (SIGBUS).  If the page
 * is marked already, by an earlier fault, the woken toucher meets that mark.
 *
 * A guard or PROT_NONE lands on whatever is mapped at the address, so it
 * goes through the gate: not placed while an unmap or move is under way or
 * unapplied (the woken toucher faults again, after it), and taken back if
 * one began while it was placed - the process's call that put its own
 * memory there has not returned yet.  A poison marker needs no gate: the
 * kernel refuses UFFDIO_POISON itself while mappings are changing.
 */
void views_deny(struct gmem *g, struct view *v, uint64_t first, uint64_t end)
{
	char *a = PAGE_ADDR(v, first);
	uint64_t len = (end - first) << PAGE_SHIFT;
	bool marked = false;

	if (g->fault_signal == SIGSEGV && g->can_probe) {
		/* a guard will not replace a write-protect marker either (see uffd_poison_over_wp()) */
		if (g->tracking)
			uffd_writeprotect(g->uffd, (uintptr_t)a, len, false);
		views_gate_enter(g);
		if (!records_current(g)) {
			views_gate_leave(g);
			return;
		}
		marked = !g->b.hugetlb && !madvise(a, len, MADV_GUARD_INSTALL);
		if (!marked && !mprotect(a, len, PROT_NONE))
			marked = v->prot_used = true;
		if (marked && !records_current(g)) {
			/* not ours any more: undo, and let the toucher fault again */
			if (!g->b.hugetlb)
				madvise(a, len, MADV_GUARD_REMOVE);
			if (v->prot_used)
				mprotect(a, len, PROT_READ | PROT_WRITE);
			views_gate_leave(g);
			return;
		}
		views_gate_leave(g);
	}
	count(&g->stats.host_faults_denied, 1);
	if (!marked)
		uffd_poison_over_wp(g->uffd, (uintptr_t)a, len);
	if (!runmap_reserve(&v->denied, 2))
		runmap_set(&v->denied, first, end, 1);
	else
		v->denied_lost = true;
}

void views_wake(struct gmem *g, uint64_t first, uint64_t end)
{
	struct view *v;
	uint64_t s, e;

	/* a valid range: UFFDIO_WAKE has nothing else to fail on */
	for (size_t i = 0; (v = views_next(g, &i, first, end, &s, &e));)
		uffd_wake(g->uffd, (uintptr_t)PAGE_ADDR(v, s), (e - s) << PAGE_SHIFT);
}

static void view_free(struct view *v)
{
	runmap_fini(&v->mapped);
	runmap_fini(&v->denied);
	free(v);
}

static uint64_t view_len(const struct view *v)
{
	return (v->end - v->first) << PAGE_SHIFT;
}

static struct view *view_new(uint64_t npages, uint64_t first, uint64_t end, unsigned int flags)
{
	struct view *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->first = first;
	v->end = end;
	v->flags = flags;
	if (runmap_init(&v->denied, npages, 0) || runmap_init(&v->mapped, npages, 0)) {
		view_free(v);
		return NULL;
	}
	return v;
}

/* Room for `more` views in g->views. */
static int views_reserve(struct gmem *g, size_t more)
{
	size_t cap = g->views_cap ? g->views_cap : 8;
	struct view **views;

	while (cap < g->nviews + more)
		cap *= 2;
	if (cap == g->views_cap)
		return 0;
	views = realloc(g->views, cap * sizeof(*views));
	if (!views)
		return -ENOMEM;
	g->views = views;
	g->views_cap = cap;
	return 0;
}

/* Insert v in address order; views_reserve() made room. */
static void view_insert(struct gmem *g, struct view *v)
{
	size_t i = view_index(g, (uintptr_t)v->addr);


	memmove(&g->views[i + 1], &g->views[i], (g->nviews - i) * sizeof(g->views[0]));
	g->views[i] = v;
	g->nviews++;
}

static void view_remove(struct gmem *g, struct view *v)
{
	size_t i = view_index(g, (uintptr_t)v->addr);


	memmove(&g->views[i], &g->views[i + 1], (g->nviews - i - 1) * sizeof(g->views[0]));
	g->nviews--;
}

/* Copy v's marks on [s, e) to w; if that fails, w treats everything as marked. */
static void marks_copy(struct view *w, const struct view *v, uint64_t s, uint64_t e)
{
	struct runmap_iter it;
	struct run r;

	w->denied_lost = v->denied_lost;
	w->mapped_lost = v->mapped_lost;
	w->prot_used = v->prot_used;
	runmap_iter_start(&it, &v->denied, s, e);
	while (!w->denied_lost && runmap_iter_next(&it, &r))
		if (r.val && (runmap_reserve(&w->denied, 2) || runmap_set(&w->denied, r.start, r.end, 1) < 0))
			w->denied_lost = true;
	runmap_iter_start(&it, &v->mapped, s, e);
	while (!w->mapped_lost && runmap_iter_next(&it, &r))
		if (r.val && (runmap_reserve(&w->mapped, 2) || runmap_set(&w->mapped, r.start, r.end, 1) < 0))
			w->mapped_lost = true;
}

/*
 * Split view v at page p (inside it): v keeps [first, p), and the piece
 * [p, end) becomes a view of its own, inserted.  NULL when there is no
 * memory for it: the caller then orphans that piece (orphan()).
 */
static struct view *view_split(struct gmem *g, struct view *v, uint64_t p)
{
	struct view *w;

	if (views_reserve(g, 1) || !(w = view_new(g->npages, p, v->end, v->flags)))
		return NULL;
	w->addr = PAGE_ADDR(v, p);
	marks_copy(w, v, p, v->end);
	v->end = p;
	view_insert(g, w);
	return w;
}

/*
 * A stretch of a registered mapping no view describes any more (there was
 * no memory to keep its record): zap it, so that each touch faults, and
 * fault.c refuses touches it cannot place.  Only while the notice being
 * applied is the last one and none is under way: after a later unmap or
 * move the address may hold the process's own memory.
 */
static void orphan(struct gmem *g, uintptr_t a, uint64_t len)
{
	views_gate_enter(g);
	if (atomic_load(&g->events_read) - atomic_load(&g->events_seq) <= 1 &&
	    !(g->can_probe && uffd_changing(g->uffd, (uintptr_t)g->b.guest)))
		zap_range((char *)a, len, false);
	views_gate_leave(g);
}

/* A view overlapping [s, e), or NULL. */
static struct view *view_overlapping(struct gmem *g, uintptr_t s, uintptr_t e)
{
	size_t i = view_index(g, s + 1);

	if (s >= e)
		return NULL;
	if (i > 0 && (uintptr_t)g->views[i - 1]->addr + view_len(g->views[i - 1]) > s)
		return g->views[i - 1];
	return i < g->nviews && (uintptr_t)g->views[i]->addr < e ? g->views[i] : NULL;
}

/*
 * The piece of view v (which overlaps [s, e)) inside [s, e), split from
 * what lies outside, which stays a view; NULL if there was no memory to
 * split: the piece is then out of the records (v keeps what lies before
 * s), and what lay past e, still mapped but unrecorded, is orphaned -
 * never [s, e) itself, which the process may be reusing.
 */
static struct view *view_isolate(struct gmem *g, struct view *v, uintptr_t s, uintptr_t e)
{
	uintptr_t a = (uintptr_t)v->addr, b = a + view_len(v);


	if (a < s) {
		struct view *w = view_split(g, v, v->first + ((s - a) >> PAGE_SHIFT));

		if (!w) {
			v->end = v->first + ((s - a) >> PAGE_SHIFT);
			if (b > e)
				orphan(g, e, b - e);
			return NULL;
		}
		v = w;
		a = s;
	}
	if (b > e && !view_split(g, v, v->first + ((e - a) >> PAGE_SHIFT))) {
		orphan(g, e, b - e);
		v->end = v->first + ((e - a) >> PAGE_SHIFT);
	}
	return v;
}

/*
 * Where the stretch of view v from address a on is still mapped from the
 * object's file at its own offsets: the end of that stretch, or a itself
 * if it is not (or the kernel cannot say).
 */
static uintptr_t view_live_until(struct gmem *g, const struct view *v, uintptr_t a)
{
	uint64_t off = (v->first << PAGE_SHIFT) + (a - (uintptr_t)v->addr);
	int64_t end;

	if (g->maps_fd < 0)
		return a;
	end = maps_file_end(g->maps_fd, a, g->b.dev, g->b.ino, off);
	if (end <= 0)
		return a;
	return (uintptr_t)end < (uintptr_t)v->addr + view_len(v) ? (uintptr_t)end
								  : (uintptr_t)v->addr + view_len(v);
}

void views_unmapped(struct gmem *g, uintptr_t s, uintptr_t e, bool notice)
{
	uintptr_t cur = s;
	struct view *v;

	while ((v = view_overlapping(g, cur, e))) {
		uintptr_t ps = (uintptr_t)v->addr > cur ? (uintptr_t)v->addr : cur, live;

		/*
		 * A notice read late: the range was freed, and another thread
		 * moved a view into it before the notice came (a moving mremap()
		 * posts the old range's unmap after its move).  The view there now
		 * is the kernel's answer.
		 */
		if (notice && (live = view_live_until(g, v, ps)) > ps) {
			cur = live;
			continue;
		}
		if ((v = view_isolate(g, v, ps, e))) {
			/* its entries went with it, written ones too: count it all written */
			if (notice && g->tracking)
				track_mark(g, v->first, v->end);
			view_remove(g, v);
			view_free(v);
		}
	}
	addr_publish(g);
}

void views_moved(struct gmem *g, uintptr_t from, uintptr_t to, uint64_t len)
{
	struct view *v;

	/*
	 * The page-table entries moved with the pages, and the marks move
	 * with the records: they stay true.  Nothing is zapped - the process
	 * may have put something else at `to` since - because no conversion
	 * commits while a move is under way or unapplied (views_zap()).  The
	 * destination cannot overlap the source, so a piece moved is not met
	 * again; the room a moved piece takes is the room it left.  Whatever
	 * the records still say lies at the destination is gone - the kernel
	 * unmapped it before the move - though its unmap's notice may have
	 * found another view there already and left it (views_unmapped()).
	 */
	views_unmapped(g, to, to + len, false);
	while ((v = view_overlapping(g, from, from + len))) {
		uintptr_t ps = (uintptr_t)v->addr > from ? (uintptr_t)v->addr : from;
		uintptr_t pe = (uintptr_t)v->addr + view_len(v);

		pe = pe < from + len ? pe : from + len;
		v = view_isolate(g, v, from, from + len);
		if (!v) {
			orphan(g, ps + (to - from), pe - ps); /* moved, but not recorded */
			continue;
		}
		view_remove(g, v);
		v->addr += to - from;
		view_insert(g, v);
	}
	addr_publish(g);
}

/*
 * Before a new view at [s, e) is recorded, the records must hold every
 * unmap and move the process has made - one under way too.  Its notice
 * may name the very range the new mapping took: the kernel frees a range
 * before it posts the unmap's notice, and a moving mremap() posts the old
 * range's unmap after the move.  Applied after the new view is recorded,
 * such a notice would cut the new view's record, or a move would record a
 * second view at its address.  So wait (a second at most) until no change
 * is under way and every notice read is applied; whatever the records then
 * still say lies at [s, e) is gone - the kernel gave us that range - and
 * is forgotten.
 */
static void views_wait_current(struct gmem *g, uintptr_t s, uintptr_t e)
{
	struct timespec deadline = { 0, 0 };

	for (;;) {
		bool current;

		views_gate_enter(g);
		current = records_current(g);
		views_gate_leave(g);
		if (current)
			break;
		unlock(g);
		current = !views_wait_records(g, &deadline); /* past the deadline: go on */
		lock_exclusive(g);
		if (current)
			break;
	}
	if (view_overlapping(g, s, e))
		views_unmapped(g, s, e, false);
}

void views_lock(struct gmem *g, bool exclusive)
{
	for (;;) {
		uint64_t read;

		if (exclusive)
			lock_exclusive(g);
		else
			lock_shared(g);
		pthread_mutex_lock(&g->events_mu);
		read = atomic_load(&g->events_read);
		pthread_mutex_unlock(&g->events_mu);
		if (atomic_load(&g->events_seq) >= read)
			return;
		unlock(g);
		pthread_mutex_lock(&g->wait_mu);
		while (atomic_load(&g->events_seq) < read)
			pthread_cond_wait(&g->wait_cv, &g->wait_mu);
		pthread_mutex_unlock(&g->wait_mu);
	}
}

/* A strict view may cover shared pages only. */
static bool strict_refused(struct gmem *g, const struct view *v)
{
	return (v->flags & GMEM_VIEW_STRICT) &&
	       runmap_find(&g->states, v->first, v->end,
			   STATE_MASK(GMEM_PRIVATE) | STATE_MASK(GMEM_CONVERTING)) < v->end;
}

int gmem_view_map(struct gmem *g, uint64_t offset, uint64_t len, unsigned int flags, void **addr)
{
	struct view *v;
	void *mapped;
	int err;

	if (!g || !addr || !range_ok(g, offset, len) || (flags & ~GMEM_VIEW_STRICT))
		return -EINVAL;
	if (forked_child(g))
		return -ECHILD;
	/* the kernel maps a hugetlbfs page only whole */
	if (g->b.hugetlb && ((offset | len) & (g->b.align - 1)))
		return -EINVAL;
	v = view_new(g->npages, offset >> PAGE_SHIFT, (offset + len) >> PAGE_SHIFT, flags);
	if (!v)
		return -ENOMEM;

	views_lock(g, true);
	if (strict_refused(g, v)) {
		err = -EACCES;
		goto err_unlock;
	}
	err = views_reserve(g, 1);
	if (err)
		goto err_unlock;
	/*
	 * Mapped inaccessible, registered, then opened: nothing can populate
	 * it before every touch goes through the fault thread - not even
	 * mlockall(MCL_FUTURE), which populates new mappings as they are made.
	 * Opened last, once recorded: a touch meanwhile is a SIGSEGV, never a
	 * fault decided from records that may still name this address stale.
	 */
	err = sys_result(backing_map(&g->b, offset, len, &v->addr));
	if (err)
		goto err_unlock;
	err = sys_result(uffd_register(g->uffd, v->addr, len, g->tracking));
	if (err)
		goto err_unmap;
	/* tracking: nothing mapped in it is written yet */
	if (g->tracking && (err = sys_result(uffd_writeprotect(g->uffd, (uintptr_t)v->addr, len,
								true)))) {
		uffd_unregister(g->uffd, v->addr, len);
		goto err_unmap;
	}
	views_wait_current(g, (uintptr_t)v->addr, (uintptr_t)v->addr + len);
	/*
	 * Again: the wait may have let conversions and other views in.  And
	 * while it waited unlocked, the fault thread may have answered a stale
	 * fault message - one whose toucher a wake of its window let go, and
	 * whose address was unmapped since - with a poison marker in this
	 * new, not yet recorded mapping: clear it (nothing else can be mapped
	 * in it yet), with the lock held until the record is in.
	 */
	err = strict_refused(g, v) ? -EACCES : views_reserve(g, 1);
	if (!err)
		err = zap_range(v->addr, len, false);
	if (!err && mprotect(v->addr, len, PROT_READ | PROT_WRITE))
		err = sys_result(-errno);
	if (err) {
		uffd_unregister(g->uffd, v->addr, len);
		goto err_unmap;
	}
	mapped = v->addr; /* once unlocked, v is the fault thread's to move or free */
	view_insert(g, v);
	addr_publish(g);
	unlock(g);
	*addr = mapped; /* after: addr may lie in a view, whose fault needs the lock */
	return 0;

err_unmap:
	unlock(g);
	munmap(v->addr, len); /* no longer registered: no event for the fault thread */
	view_free(v);
	return err;
err_unlock:
	unlock(g);
	view_free(v);
	return err;
}

int gmem_view_unmap(struct gmem *g, void *addr)
{
	struct view *v;
	size_t i;

	if (!g || !addr)
		return -EINVAL;
	views_lock(g, true);
	i = view_index(g, (uintptr_t)addr);
	if (i == g->nviews || g->views[i]->addr != addr) {
		unlock(g);
		return -EINVAL;
	}
	v = g->views[i];
	/* what was written through it leaves with its entries: record it first */
	track_mapped(g, v, v->first, v->end);
	view_remove(g, v);
	addr_publish(g);
	/*
	 * Closed first, so that a touch meanwhile is a SIGSEGV, never a read;
	 * then unregistered, which wakes the touches fault.c left waiting on
	 * it (they meet the closed mapping) and means the unmap posts no event
	 * that the fault thread would have to read.
	 */
	mprotect(v->addr, view_len(v), PROT_NONE);
	uffd_unregister(g->uffd, v->addr, view_len(v));
	unlock(g);
	/* outside the lock: were it still registered, the unmap would wait for the fault thread */
	munmap(v->addr, view_len(v));
	view_free(v);
	return 0;
}

void views_close_all(struct gmem *g)
{
	for (size_t i = 0; i < g->nviews; i++)
		mprotect(g->views[i]->addr, view_len(g->views[i]), PROT_NONE);
}

void views_destroy(struct gmem *g)
{
	/* the userfaultfd is closed: these unmaps post no events */
	for (size_t i = 0; i < g->nviews; i++) {
		munmap(g->views[i]->addr, view_len(g->views[i]));
		view_free(g->views[i]);
	}
	free(g->views);
	g->views = NULL;
	g->nviews = g->views_cap = 0;
	atomic_store(&g->addrs.n, 0);
}
