// SPDX-License-Identifier: MIT
/*
 * track.c - write tracking: which pages were written since last asked.
 *
 * The kernel does the fast part.  Views (and, with GMEM_TRACK_GUEST, the
 * guest mapping) are write-protected through userfaultfd in asynchronous
 * mode: the first write to a page lifts the protection in the kernel, with
 * no fault for anyone to answer, and PAGEMAP_SCAN reports the pages whose
 * protection was lifted - and protects them again in the same step.  The
 * fault thread maps pages write-protected (UFFDIO_CONTINUE_MODE_WP), so a
 * read through a view is not a write.
 *
 * What the page tables cannot keep, the library records itself, in a bit
 * of each page's pin word (PW_WRITTEN).  A zap takes a view's entries away,
 * write-protected or written, and a write through a mapped entry needs no
 * lock, so it can land between any look at the entry and the zap: every
 * page a zap may take (what the view may map: view->mapped) is recorded as
 * written, and after the zap the range is protected again (an entry the
 * zap left empty would otherwise read as written) - a conversion's false
 * positives are the pages views had mapped.  A view unmapped through the
 * library is recorded the same way; one the process unmaps behind its back
 * takes its entries before the library hears of it, so all of its pages
 * are.  gmem_write() and gmem_discard() (a discard's zeroing is a write)
 * record theirs.  I/O under a pin writes through the kernel's own reference
 * (a registered buffer), which no entry shows: a pinned page counts as
 * written, and its release records it (pin.c).  A collect reports the scans and the record together, and
 * clears both.
 *
 * No write is missed: a write either lands before a scan's visit of its
 * entry (the scan reports it), or after it (the entry is protected again,
 * so the write lifts the protection and the next scan reports it); a page
 * whose entry a zap takes was recorded before the zap; a record bit is set
 * after the write it stands for and cleared by an atomic exchange, so a
 * collect racing it reports it or leaves it for the next.  A collect that
 * fails records what its scans protected again (and all a failed scan
 * covered) before it returns, for the next.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "os/pagemap.h"
#include "os/uffd.h"

void track_mark(struct gmem *g, uint64_t first, uint64_t end)
{
	if (!pages_mark(g, first, end, PW_WRITTEN))
		atomic_store(&g->track_all, true); /* no false negative, ever */
}

void track_after_zap(struct gmem *g, uintptr_t base, uint64_t s, uint64_t e)
{
	if (g->tracking)
		uffd_writeprotect(g->uffd, base + (s << PAGE_SHIFT), (e - s) << PAGE_SHIFT, true);
}

/* Every view's registration, with write-protect or without; the first error. */
static int views_track(struct gmem *g, bool on)
{
	struct view *v;
	uint64_t s, e;
	int err = 0;

	for (size_t i = 0; (v = views_next(g, &i, 0, g->npages, &s, &e));) {
		uint64_t len = (v->end - v->first) << PAGE_SHIFT;
		int r = 0;

		if (!on)
			uffd_writeprotect(g->uffd, (uintptr_t)v->addr, len, false);
		r = uffd_register(g->uffd, v->addr, len, on);
		if (!r && on)
			r = uffd_writeprotect(g->uffd, (uintptr_t)v->addr, len, true);
		if (r && !err)
			err = r;
	}
	return err;
}

/*
 * g->lock exclusive, with no change to views under way: registering a
 * range the process has just given to its own memory would make that
 * memory fault to the library.  A second at most, as conversions wait.
 */
static void lock_records_current(struct gmem *g)
{
	struct timespec deadline = { 0, 0 };

	for (;;) {
		bool current;

		views_lock(g, true);
		views_gate_enter(g);
		current = records_current(g);
		views_gate_leave(g);
		if (current)
			return;
		unlock(g);
		if (!views_wait_records(g, &deadline)) {
			views_lock(g, true);
			return;
		}
	}
}

/*
 * The two readers' records (g->track_mu): what the collects reported that
 * no layer has yet, and the other way round.  calloc()'s memory for a big
 * object is mapped zero pages: a bit costs where it is set.
 */
static int records_alloc(struct gmem *g)
{
	size_t words = (g->npages + 63) / 64;

	g->track_unsaved = calloc(words, sizeof(uint64_t));
	g->track_uncollected = calloc(words, sizeof(uint64_t));
	if (g->track_unsaved && g->track_uncollected)
		return 0;
	track_records_free(g);
	return -ENOMEM;
}

void track_records_free(struct gmem *g)
{
	free(g->track_unsaved);
	free(g->track_uncollected);
	g->track_unsaved = g->track_uncollected = NULL;
}

/*
 * The guest mapping's write-protect, on or off, and g->track_guest with
 * it.  A lazy restore's fills are held off meanwhile (lazy.c): they map
 * what they fill write-protected while the guest is tracked, and its
 * registration for missing faults stays.
 */
static int guest_track(struct gmem *g, bool on)
{
	bool missing;
	int err;

	lazy_lock(g);
	missing = lazy_active(g);
	if (!on) {
		uffd_writeprotect(g->uffd, (uintptr_t)g->b.guest, g->b.size, false);
		err = uffd_register_guest(g->uffd, g->b.guest, g->b.size, missing, false);
	} else {
		err = uffd_register_guest(g->uffd, g->b.guest, g->b.size, missing, true) ?:
		      uffd_writeprotect(g->uffd, (uintptr_t)g->b.guest, g->b.size, true);
	}
	g->track_guest = on && !err;
	lazy_unlock(g);
	return err;
}

int gmem_track_start(struct gmem *g, unsigned int flags)
{
	int err;

	if (!g || (flags & ~GMEM_TRACK_GUEST))
		return -EINVAL;
	if (forked_child(g))
		return -ECHILD;
	if (!g->can_track)
		return -EOPNOTSUPP;
	pthread_mutex_lock(&g->track_mu);
	lock_records_current(g);
	if (g->tracking) {
		err = -EBUSY;
		goto err_unlock;
	}
	err = records_alloc(g);
	if (err)
		goto err_unlock;
	if (g->track_pm < 0) {
		err = pagemap_open(&g->track_pm);
		if (err)
			goto err_records;
	}
	err = views_track(g, true);
	if (err)
		goto err_views;
	if (flags & GMEM_TRACK_GUEST) {
		err = guest_track(g, true);
		if (err)
			goto err_guest;
	}
	pages_clear(g, 0, g->npages, PW_WRITTEN);
	atomic_store(&g->track_all, false);
	g->tracking = true;
	atomic_fetch_add(&g->track_gen, 1);
	unlock(g);
	pthread_mutex_unlock(&g->track_mu);
	return 0;

err_guest:
	guest_track(g, false);
err_views:
	views_track(g, false);
err_records:
	track_records_free(g);
err_unlock:
	unlock(g);
	pthread_mutex_unlock(&g->track_mu);
	return err == -EBUSY ? err : sys_result(err);
}

int gmem_track_stop(struct gmem *g)
{
	if (!g)
		return -EINVAL;
	pthread_mutex_lock(&g->track_mu);
	lock_records_current(g);
	if (!g->tracking) {
		unlock(g);
		pthread_mutex_unlock(&g->track_mu);
		return -EINVAL;
	}
	/* best effort: a registration left behind costs a spurious protection, nothing else */
	views_track(g, false);
	if (g->track_guest)
		guest_track(g, false);
	g->tracking = g->track_guest = false;
	pages_clear(g, 0, g->npages, PW_WRITTEN);
	track_records_free(g);
	unlock(g);
	pthread_mutex_unlock(&g->track_mu);
	return 0;
}

struct scan_to_bitmap {
	struct gmem *g;
	uint64_t *bitmap;
	uint64_t first, end; /* the pages the bitmap covers */
	uintptr_t base;      /* the address of page 0 in the mapping scanned */
	bool view;           /* the mapping scanned is a view */
	bool reprotect;      /* the scans protect what they report again */
};

/* Set bits [s, e) of bitmap, a word at a time. */
static void bits_set(uint64_t *bitmap, uint64_t s, uint64_t e)
{
	while (s < e) {
		uint64_t n = 64 - s % 64 < e - s ? 64 - s % 64 : e - s;

		bitmap[s / 64] |= (n == 64 ? ~0ULL : ((1ULL << n) - 1)) << (s % 64);
		s += n;
	}
}

static void bitmap_run(void *arg, uintptr_t s, uintptr_t e)
{
	struct scan_to_bitmap *b = arg;
	uint64_t ps = (s - b->base) >> PAGE_SHIFT, pe = (e - b->base) >> PAGE_SHIFT;
	struct runmap_iter it;
	struct run r;

	/*
	 * No view writes a private page: an entry a view holds for one is a
	 * refusal's mark, which the kernel counts as written (not a
	 * write-protected entry).  The guest mapping's count.
	 */
	runmap_iter_start(&it, &b->g->states, ps, pe);
	while (runmap_iter_next(&it, &r)) {
		uint64_t rs = r.start > b->first ? r.start : b->first;
		uint64_t re = r.end < b->end ? r.end : b->end;

		if (b->view && r.val == GMEM_PRIVATE)
			continue;
		/* a hugetlbfs page is scanned whole: what lies past the range is its collect's */
		if (b->reprotect && r.start < rs)
			track_mark(b->g, r.start, rs < r.end ? rs : r.end);
		if (b->reprotect && re < r.end)
			track_mark(b->g, re > r.start ? re : r.start, r.end);
		if (rs < re)
			bits_set(b->bitmap, rs - b->first, re - b->first);
	}
}

/*
 * The scans of a collect, with g->lock held shared and the records current.
 * A scan that fails may have protected part of its range again without
 * saying what it found there: all of it counts as written.
 */
static int collect_scans(struct gmem *g, struct scan_to_bitmap *b, bool reprotect)
{
	/* the kernel protects a hugetlbfs page only whole: a scan of a piece stops short */
	uint64_t bp = g->b.hugetlb ? g->b.align >> PAGE_SHIFT : 1;
	uint64_t first = b->first & ~(bp - 1), end = (b->end + bp - 1) & ~(bp - 1);
	struct view *v;
	uint64_t s, e;
	int err = 0;

	b->view = true;
	for (size_t i = 0; !err && (v = views_next(g, &i, first, end, &s, &e));) {
		b->base = (uintptr_t)v->addr - (v->first << PAGE_SHIFT);
		b->reprotect = reprotect;
		err = pagemap_written(g->track_pm, b->base + (s << PAGE_SHIFT),
				      b->base + (e << PAGE_SHIFT), reprotect, bitmap_run, b);
		/*
		 * The kernel reads an empty hugetlbfs entry as not written
		 * (fs/proc/task_mmu.c, pagemap_hugetlb_category(); a 4 KiB one
		 * as written), and a zap the process makes behind the
		 * library's back (MADV_DONTNEED) empties a written entry - a
		 * write-protected one keeps a marker.  The library leaves no
		 * entry of a tracked view empty (a zap or a punch is protected
		 * again), so an empty one was written: reported every time,
		 * until a touch maps the page again (it is recorded then).
		 */
		if (!err && g->b.hugetlb) {
			b->reprotect = false; /* none is protected: each collect finds its own */
			err = pagemap_empty(g->track_pm, b->base + (s << PAGE_SHIFT),
					    b->base + (e << PAGE_SHIFT), bitmap_run, b);
		}
		if (err && reprotect)
			track_mark(g, s, e);
	}
	b->reprotect = reprotect;
	if (!err && g->track_guest) {
		b->view = false;
		b->base = (uintptr_t)g->b.guest;
		err = pagemap_written(g->track_pm, b->base + (first << PAGE_SHIFT),
				      b->base + (end << PAGE_SHIFT), reprotect, bitmap_run, b);
		if (err && reprotect)
			track_mark(g, first, end);
	}
	return err;
}

/*
 * Scans failed after others had protected what they found again: keep it
 * in the records, for the next collect if this one gives up (a retry that
 * succeeds reports it here all the same: its bits are in the bitmap).
 */
static void keep_found(struct gmem *g, const struct scan_to_bitmap *b)
{
	uint64_t n = b->end - b->first;

	for (uint64_t i = 0; i < n;) {
		uint64_t s;

		if (!(b->bitmap[i / 64] >> (i % 64) & 1)) {
			i++;
			continue;
		}
		for (s = i; i < n && (b->bitmap[i / 64] >> (i % 64) & 1); i++)
			;
		track_mark(g, b->first + s, b->first + i);
	}
}

/*
 * The pages of [first, end) written since the last clearing collect of
 * either reader, into bitmap (bit i: page first + i), clearing them unless
 * peek; 0 or -errno.  With g->track_mu held.
 */
static int collect_raw(struct gmem *g, uint64_t first, uint64_t end, uint64_t *bitmap, bool peek)
{
	struct scan_to_bitmap b = { g, bitmap, first, end, 0, false, false };
	struct timespec deadline = { 0, 0 };
	bool cleared = false;
	int err;

	for (;;) {
		bool current;

		views_lock(g, false);
		if (!g->tracking) {
			unlock(g);
			return -EINVAL; /* the bitmap untouched */
		}
		/* once: a scan that protected pages again before a retry has reported them here */
		if (!cleared)
			memset(bitmap, 0, ((b.end - b.first + 63) / 64) * sizeof(*bitmap));
		cleared = true;
		/*
		 * Scans read views where the records say they are: not while a
		 * change is under way (a scan would meet the process's own
		 * memory, and the kernel refuses to scan that: EPERM).
		 */
		views_gate_enter(g);
		current = records_current(g);
		err = current ? collect_scans(g, &b, !peek) : -ESTALE;
		views_gate_leave(g);
		if (err && !peek)
			keep_found(g, &b);
		if (err != -ESTALE && err != -EPERM)
			break;
		unlock(g);
		if (!views_wait_records(g, &deadline))
			return -EAGAIN; /* the process kept changing its mappings for a second */
	}
	if (!err) {
		/* a note that could not be kept: everything, until a whole collect */
		bool all = b.first == 0 && b.end == g->npages && !peek
				   ? atomic_exchange(&g->track_all, false)
				   : atomic_load(&g->track_all);

		/* a pinned page may be written by the I/O holding it at any moment (pin.c) */
		pages_take(g, b.first, b.end, PW_WRITTEN, PW_COUNTS, peek, bitmap);
		if (all)
			bits_set(bitmap, 0, b.end - b.first);
	}
	unlock(g);
	return err ? sys_result(err) : 0;
}

/* OR n bits (n <= 64, low bits of v) into bitmap from bit pos on. */
static void bits_or(uint64_t *bitmap, uint64_t pos, uint64_t v, uint64_t n)
{
	if (n < 64)
		v &= (1ULL << n) - 1;
	bitmap[pos / 64] |= v << (pos % 64);
	if (pos % 64 && pos % 64 + n > 64)
		bitmap[pos / 64 + 1] |= v >> (64 - pos % 64);
}

/*
 * Between rel (bit i: page first + i, n pages) and a record of the whole
 * object (bit p: page p): rel |= the record's bits, taking them out of it
 * when take; or, into, the record |= rel's.
 */
static void record_merge(uint64_t *rec, uint64_t first, uint64_t n, uint64_t *rel, bool take,
			 bool into)
{
	for (uint64_t p = first; p < first + n;) {
		uint64_t w = p / 64, lo = p % 64;
		uint64_t k = 64 - lo < first + n - p ? 64 - lo : first + n - p;
		uint64_t mask = (k == 64 ? ~0ULL : (1ULL << k) - 1) << lo;

		if (into) {
			uint64_t i = p - first, v = rel[i / 64] >> (i % 64);

			if (i % 64 && i % 64 + k > 64)
				v |= rel[i / 64 + 1] << (64 - i % 64);
			rec[w] |= (v << lo) & mask;
		} else if (rec[w] & mask) {
			bits_or(rel, p - first, (rec[w] & mask) >> lo, k);
			if (take)
				rec[w] &= ~mask;
		}
		p += k;
	}
}

int64_t gmem_track_collect(struct gmem *g, uint64_t offset, uint64_t len, uint64_t *bitmap,
			   unsigned int flags)
{
	uint64_t first, n, count = 0;
	bool peek = flags & GMEM_TRACK_PEEK;
	int err;

	if (!g || !bitmap || !range_ok(g, offset, len) || (flags & ~GMEM_TRACK_PEEK))
		return -EINVAL;
	first = offset >> PAGE_SHIFT;
	n = len >> PAGE_SHIFT;
	pthread_mutex_lock(&g->track_mu);
	err = collect_raw(g, first, first + n, bitmap, peek);
	if (!err && !peek)
		record_merge(g->track_unsaved, first, n, bitmap, false, true);
	/* what a layer took before this collect could see it */
	if (!err)
		record_merge(g->track_uncollected, first, n, bitmap, !peek, false);
	pthread_mutex_unlock(&g->track_mu);
	if (err)
		return err;
	for (uint64_t w = 0; w < (n + 63) / 64; w++)
		count += __builtin_popcountll(bitmap[w]);
	return (int64_t)count;
}

int track_take_for_save(struct gmem *g, uint64_t *bitmap, uint64_t *gen, bool layer)
{
	int err;

	pthread_mutex_lock(&g->track_mu);
	/* tracking stopped since the save a layer would follow: writes went unseen */
	if (layer && *gen != atomic_load(&g->track_gen)) {
		pthread_mutex_unlock(&g->track_mu);
		return -EINVAL;
	}
	*gen = atomic_load(&g->track_gen);
	err = collect_raw(g, 0, g->npages, bitmap, false);
	if (!err) {
		/* the collects still report them */
		record_merge(g->track_uncollected, 0, g->npages, bitmap, false, true);
		if (layer)
			record_merge(g->track_unsaved, 0, g->npages, bitmap, true, false);
		else
			memset(g->track_unsaved, 0, (g->npages + 63) / 64 * sizeof(uint64_t));
	}
	pthread_mutex_unlock(&g->track_mu);
	return err;
}

void track_untake(struct gmem *g, const uint64_t *bitmap)
{
	pthread_mutex_lock(&g->track_mu);
	if (g->track_unsaved)
		for (uint64_t w = 0; w < (g->npages + 63) / 64; w++)
			g->track_unsaved[w] |= bitmap[w];
	pthread_mutex_unlock(&g->track_mu);
}
