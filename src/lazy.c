// SPDX-License-Identifier: MIT
/*
 * lazy.c - a lazy restore's fills: pages get their contents from the
 * snapshot on first touch, and from a background thread meanwhile.
 *
 * A page is filled once, before anything sees it, by UFFDIO_COPY into the
 * guest mapping: the kernel puts the page in the page cache with its
 * contents already there, atomically, so no mapping - the guest's, a
 * view, KVM's - can meet it half filled.  Until every page is filled the
 * guest mapping is registered for missing faults: the guest's touches
 * (KVM faults through that mapping) come to the fault thread, which fills
 * the page and wakes them.  The library's own paths that would give a page
 * memory - a view's fault, gmem_read() and gmem_write(), a discard, a
 * collapse - fill first.  Fills take l->mu alone, below g->lock: the
 * fault thread fills holding g->lock shared, the background thread holds
 * nothing else.  The background thread holds l->mu from unit to unit, but
 * gives it up between two to anyone waiting for it (lazy_mu_lock()): a
 * fault waits for one unit at most, not for the whole file.
 *
 * Units: a page on shmem, its record's run of pages at a time; a whole
 * huge page on THP and hugetlbfs.  A THP block is filled whole with 4 KiB
 * pages (its holes with zeroes) and merged into a huge page only then, so
 * the guest mapping never maps it huge half filled; hugetlbfs takes a
 * huge page only whole anyway.  Holes of the snapshot stay holes on
 * shmem, and a huge page with nothing in it stays one.
 *
 * A record that does not check when its pages are filled (the file
 * changed or rotted since the restore read it) is never used: its pages
 * are poisoned in the guest mapping (a touch is SIGBUS; a view's touch is
 * refused), reads of them fail, and gmem_restore_wait() reports the error.
 *
 * Post-copy (postcopy.c) is the same with the caller as the source: pages
 * named LAZY_REMOTE get their contents when gmem_postcopy_receive() brings
 * them, into an inbox the object's size (anonymous memory, given back as
 * units fill), and a unit fills once every page of it has come.  A touch
 * that needs one asks the caller (pc.fetch, never under l->mu) and waits:
 * the guest's fault is left unanswered - the fill's UFFDIO_COPY wakes it -
 * and the library's own paths wait on l->cv.  The receiver fills under
 * l->mu alone, never g->lock, so a toucher may wait holding g->lock
 * shared.  There is no background fill (the source pushes); a thread
 * merges THP blocks as they fill and finishes.  An abort settles every
 * page still missing as a rotten record's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "snapshot.h"

/* rec_of: the page's contents come from gmem_postcopy_receive() */
#define LAZY_REMOTE UINT32_MAX
/* views' touches parked at once (each a thread's); more wait on the fault thread */
#define LAZY_PARKED_MAX 64

struct lazy_rec {
	uint64_t off;         /* where its payload is in the file */
	uint64_t first, count;
	struct snap_record r; /* as read: to check it again */
	uint64_t id, index;   /* its file's id and its index there: the seed */
};

struct lazy {
	/* built by snapshot.c's reader before lazy_start(), then read-only */
	int fd;
	struct lazy_rec *recs;
	size_t nrecs, cap;
	/* per page: index into recs + 1; 0: a hole.  After the start, under mu */
	uint32_t *rec_of;

	pthread_mutex_t mu; /* everything below, but waiting and what thread_started says */
	pthread_cond_t cv;  /* done, or a fault for the filler to start near; waiting back to 0 */
	_Atomic unsigned int waiting; /* threads but the filler about to take mu */
	uint64_t *filled;   /* a bit a page: its contents are settled */
	uint64_t *bad;      /* a bit a page: its record did not check */
	uint64_t *merge;    /* THP: a bit a block filled with data, to merge (the filler does) */
	uint64_t merges;    /* bits set in merge */
	uint64_t left;      /* pages not filled */
	uint64_t hint;      /* the filler goes on from here: near the last fault */
	int err;            /* the first record that did not check: -EBADMSG */
	bool stop, done;
	pthread_t thread;
	bool thread_started; /* set by lazy_start(), cleared by lazy_stop(): the owner's */

	char *unit_buf;     /* a fill unit's contents */
	char *rec_buf;      /* the record last read, checked */
	size_t rec_cached;  /* its index + 1, or 0 */

	/* post-copy (remote): the caller is the source */
	bool remote;
	struct gmem_postcopy pc;
	uint64_t id;        /* the post-copy file's: its records' seed */
	char *inbox;        /* the object's size: contents come, their unit not filled yet */
	uint64_t *arrived;  /* a bit a page: its contents are in the inbox */
	uint64_t *asked;    /* a bit a page: pc.fetch was called for it */
	uint64_t ask_s, ask_e; /* pages to ask for, gathered under mu, asked without it */
	size_t inbox_len;
	/* views' touches left waiting for pages to come: woken when any unit settles */
	uintptr_t parked[LAZY_PARKED_MAX];
	unsigned int nparked;
	bool refill; /* a unit whose pages all came could not be filled: the merger retries */
};

/*
 * l->mu for anyone but the filler, which lets those waiting for it go
 * first between two units (filler_main()).
 */
static void lazy_mu_lock(struct lazy *l)
{
	atomic_fetch_add_explicit(&l->waiting, 1, memory_order_relaxed);
	pthread_mutex_lock(&l->mu);
	if (atomic_fetch_sub_explicit(&l->waiting, 1, memory_order_relaxed) == 1)
		pthread_cond_broadcast(&l->cv);
}

static bool test_bit(const uint64_t *b, uint64_t p)
{
	return b[p / 64] >> (p % 64) & 1;
}

static void set_bit(uint64_t *b, uint64_t p)
{
	b[p / 64] |= 1ULL << (p % 64);
}

/* What lazy_new() got, given back: its lock and condition only if it made them. */
static void release(struct lazy *l, bool locks)
{
	if (l->fd >= 0)
		close(l->fd);
	if (locks) {
		pthread_cond_destroy(&l->cv);
		pthread_mutex_destroy(&l->mu);
	}
	if (l->inbox)
		munmap(l->inbox, l->inbox_len);
	free(l->asked);
	free(l->arrived);
	free(l->unit_buf);
	free(l->rec_buf);
	free(l->merge);
	free(l->bad);
	free(l->filled);
	free(l->rec_of);
	free(l->recs);
	free(l);
}

struct lazy *lazy_new(struct gmem *g, int fd)
{
	struct lazy *l = calloc(1, sizeof(*l));
	uint64_t words = (g->npages + 63) / 64;
	uint64_t unit = g->b.align > SNAP_DATA_MAX * GMEM_PAGE_SIZE ? g->b.align
								     : SNAP_DATA_MAX * GMEM_PAGE_SIZE;

	if (!l)
		return NULL;
	l->fd = -1;
	l->rec_of = calloc(g->npages, sizeof(*l->rec_of));
	l->filled = calloc(words, sizeof(uint64_t));
	l->bad = calloc(words, sizeof(uint64_t));
	l->merge = calloc(words, sizeof(uint64_t));
	l->rec_buf = malloc(SNAP_DATA_MAX * GMEM_PAGE_SIZE);
	l->unit_buf = malloc(unit);
	if (!l->rec_of || !l->filled || !l->bad || !l->merge || !l->rec_buf || !l->unit_buf)
		goto err_free;
	if (pthread_mutex_init(&l->mu, NULL))
		goto err_free;
	if (pthread_cond_init(&l->cv, NULL))
		goto err_mutex;
	/* none for post-copy: its contents come from the caller */
	if (fd >= 0 && (l->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
		goto err_locks;
	l->left = g->npages;
	return l;

err_mutex:
	pthread_mutex_destroy(&l->mu);
err_free:
	release(l, false);
	return NULL;
err_locks:
	release(l, true);
	return NULL;
}

struct lazy *lazy_new_remote(struct gmem *g, const struct gmem_postcopy *pc)
{
	uint64_t words = (g->npages + 63) / 64;
	struct lazy *l = lazy_new(g, -1);

	if (!l)
		return NULL;
	l->remote = true;
	l->pc = *pc;
	l->arrived = calloc(words, sizeof(uint64_t));
	l->asked = calloc(words, sizeof(uint64_t));
	l->inbox_len = g->b.size;
	l->inbox = mmap(NULL, l->inbox_len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (l->inbox == MAP_FAILED)
		l->inbox = NULL;
	if (!l->arrived || !l->asked || !l->inbox) {
		lazy_free(l);
		return NULL;
	}
	return l;
}

void lazy_free(struct lazy *l)
{
	if (l)
		release(l, true);
}

int lazy_add_data(struct lazy *l, const struct snap_record *r, uint64_t off, uint64_t id,
		  uint64_t index)
{
	if (l->nrecs == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct lazy_rec *recs = cap < SIZE_MAX / sizeof(*recs)
						? realloc(l->recs, cap * sizeof(*recs))
						: NULL;

		if (!recs)
			return -ENOMEM;
		l->recs = recs;
		l->cap = cap;
	}
	if (l->nrecs >= UINT32_MAX - 1)
		return -EFBIG;
	l->recs[l->nrecs] = (struct lazy_rec){ off, r->first, r->count, *r, id, index };
	l->nrecs++;
	for (uint64_t p = r->first; p < r->first + r->count; p++)
		l->rec_of[p] = (uint32_t)l->nrecs;
	return 0;
}

void lazy_add_hole(struct lazy *l, uint64_t first, uint64_t count)
{
	memset(l->rec_of + first, 0, count * sizeof(*l->rec_of));
}

void lazy_add_later(struct lazy *l, uint64_t first, uint64_t count)
{
	for (uint64_t p = first; p < first + count; p++)
		l->rec_of[p] = LAZY_REMOTE;
}

/* Record i's payload in l->rec_buf, checked; -EBADMSG if it does not check. */
static int load_record(struct lazy *l, size_t i)
{
	const struct lazy_rec *r = &l->recs[i];
	uint64_t len = r->count << PAGE_SHIFT, h;
	int err;

	if (l->rec_cached == i + 1)
		return 0;
	l->rec_cached = 0;
	err = file_pread(l->fd, l->rec_buf, len, r->off);
	if (err)
		return err == -EIO ? -EBADMSG : err; /* the file got shorter */
	h = snap_hash(&r->r, offsetof(struct snap_record, hash),
				 snap_seed(r->id, r->index));
	if (snap_hash(l->rec_buf, len, h) != r->r.hash)
		return -EBADMSG;
	l->rec_cached = i + 1;
	return 0;
}

/*
 * The views' touches parked (l->mu held), woken to fault again: their
 * pages may be here now; those still missing park again.
 */
static void wake_parked(struct gmem *g)
{
	struct lazy *l = g->lazy;
	uint64_t len = g->b.hugetlb ? g->b.align : GMEM_PAGE_SIZE;

	for (unsigned int i = 0; i < l->nparked; i++)
		uffd_wake(g->uffd, l->parked[i], len);
	l->nparked = 0;
}

/* The fill unit around page p: [*s, *e). */
static void unit_of(const struct gmem *g, uint64_t p, uint64_t *s, uint64_t *e)
{
	const struct lazy *l = g->lazy;
	uint32_t r = l->rec_of[p];

	if (g->b.align > GMEM_PAGE_SIZE) {
		uint64_t bp = g->b.align >> PAGE_SHIFT;

		*s = p & ~(bp - 1);
		*e = *s + bp;
		return;
	}
	/* shmem: the stretch of p's record (or hole) around it */
	*s = p;
	*e = p + 1;
	while (*s > 0 && *s > p - (p % SNAP_DATA_MAX) && l->rec_of[*s - 1] == r &&
	       !test_bit(l->filled, *s - 1))
		(*s)--;
	while (*e < g->npages && *e < p - (p % SNAP_DATA_MAX) + SNAP_DATA_MAX &&
	       l->rec_of[*e] == r && !test_bit(l->filled, *e))
		(*e)++;
}

static void settle(struct gmem *g, uint64_t s, uint64_t e, bool bad)
{
	struct lazy *l = g->lazy;

	for (uint64_t p = s; p < e; p++) {
		if (test_bit(l->filled, p))
			continue;
		set_bit(l->filled, p);
		if (bad)
			set_bit(l->bad, p);
		l->left--;
	}
}

/*
 * Fill the unit [s, e) (l->mu held): its contents gathered in unit_buf
 * from the records and copied in at once; *copied says whether it was (a
 * unit of holes stays a hole).
 */
static int fill_unit(struct gmem *g, uint64_t s, uint64_t e, bool *copied)
{
	struct lazy *l = g->lazy;
	uintptr_t addr = (uintptr_t)g->b.guest + (s << PAGE_SHIFT);
	uint64_t len = (e - s) << PAGE_SHIFT;
	uint64_t from_file = 0;
	bool any = false;
	int err = 0;

	*copied = false;
	for (uint64_t p = s; p < e && !err; p++) {
		char *dst = l->unit_buf + ((p - s) << PAGE_SHIFT);
		uint32_t r = l->rec_of[p];

		if (test_bit(l->filled, p) || !r) {
			/* a hole, or settled as one (a discard's) */
			memset(dst, 0, GMEM_PAGE_SIZE);
			continue;
		}
		if (r == LAZY_REMOTE) {
			if (!test_bit(l->arrived, p))
				return -EINPROGRESS; /* not all here yet: nothing done */
			memcpy(dst, l->inbox + (p << PAGE_SHIFT), GMEM_PAGE_SIZE);
			any = true;
			from_file++;
			continue;
		}
		err = load_record(l, r - 1);
		if (!err)
			memcpy(dst, l->rec_buf + ((p - l->recs[r - 1].first) << PAGE_SHIFT),
			       GMEM_PAGE_SIZE);
		any = true;
		from_file++;
	}
	if (err == -EBADMSG) {
		if (!l->err)
			l->err = err;
		uffd_poison_over_wp(g->uffd, addr, len);
		settle(g, s, e, true);
		return err;
	}
	if (err)
		return err;
	/* write-protected while the guest is tracked: a fill is not a write */
	for (uint64_t off = 0, done; any && off < len; off += done) {
		err = uffd_copy(g->uffd, addr + off, l->unit_buf + off, len - off, g->track_guest,
				&done);
		if (err == -EEXIST)
			/* a hole's page a toucher got: its own now; on THP the
			 * block's other pages still come from the file */
			done += g->b.hugetlb ? g->b.align : GMEM_PAGE_SIZE;
		else if (err)
			return err;
		*copied = true;
	}
	count(&g->stats.pages_restored, from_file);
	if (l->remote) {
		/* what came for the unit is in place: its memory goes back */
		madvise(l->inbox + (s << PAGE_SHIFT), len, MADV_DONTNEED);
		/* whoever was left waiting on the unit, whichever path filled it */
		if (*copied) {
			uffd_wake(g->uffd, addr, len);
			wake_parked(g);
		}
	}
	if (*copied && g->b.type == GMEM_BACKING_THP) {
		set_bit(l->merge, s); /* the filler merges it: a collapse takes g->lock */
		l->merges++;
	}
	settle(g, s, e, false);
	return 0;
}

/* A hole settled as one gets memory for a toucher (l->mu held): page p's unit. */
static int allocate_hole(struct gmem *g, uint64_t p)
{
	struct lazy *l = g->lazy;
	uint64_t bp = g->b.hugetlb ? g->b.align >> PAGE_SHIFT : 1, s = p & ~(bp - 1);
	uintptr_t addr = (uintptr_t)g->b.guest + (s << PAGE_SHIFT);
	int err;

	if (g->b.hugetlb) {
		/* no zero page for hugetlbfs: a copy of zeroes, whole */
		memset(l->unit_buf, 0, g->b.align);
		uint64_t done;

		err = uffd_copy(g->uffd, addr, l->unit_buf, g->b.align, g->track_guest, &done);
	} else {
		err = uffd_zeropage(g->uffd, addr, GMEM_PAGE_SIZE);
	}
	return err == -EEXIST ? 0 : err; /* it has memory already */
}

/*
 * Post-copy: the pages of [s, e) still to come, to ask for (l->mu held) -
 * once each: the caller's connection loses nothing.
 */
static void note_ask(struct lazy *l, uint64_t s, uint64_t e)
{
	for (uint64_t p = s; p < e; p++) {
		if (l->rec_of[p] != LAZY_REMOTE || test_bit(l->filled, p) ||
		    test_bit(l->arrived, p) || test_bit(l->asked, p))
			continue;
		set_bit(l->asked, p);
		if (l->ask_e == l->ask_s) {
			l->ask_s = p;
			l->ask_e = p + 1;
		} else {
			l->ask_s = p < l->ask_s ? p : l->ask_s;
			l->ask_e = p + 1 > l->ask_e ? p + 1 : l->ask_e;
		}
	}
}

/* The pages noted to ask for, taken (l->mu held): whether there are any. */
static bool take_ask(struct lazy *l, uint64_t *s, uint64_t *e)
{
	*s = l->ask_s;
	*e = l->ask_e;
	l->ask_s = l->ask_e = 0;
	return *e > *s;
}

/* Ask the caller for pages [s, e): never under l->mu, which its receiver takes. */
static void ask(struct lazy *l, uint64_t s, uint64_t e)
{
	l->pc.fetch(l->pc.arg, s << PAGE_SHIFT, (e - s) << PAGE_SHIFT);
}

bool lazy_active(const struct gmem *g)
{
	return atomic_load_explicit(&g->lazy_active, memory_order_acquire);
}

/*
 * Fill [first, end) (l->mu held); allocate: holes get memory too (a
 * toucher needs it).  The first error, after trying all.
 */
static int fill_locked(struct gmem *g, uint64_t first, uint64_t end, bool allocate)
{
	struct lazy *l = g->lazy;
	int ret = 0;

	for (uint64_t p = first; p < end;) {
		uint64_t s, e;
		bool copied;
		int err = 0;

		if (!test_bit(l->filled, p)) {
			unit_of(g, p, &s, &e);
			err = fill_unit(g, s, e, &copied);
			if (err == -EINPROGRESS)
				note_ask(l, s, e);
			if (err && !test_bit(l->filled, p)) {
				ret = ret ?: err;
				p = e; /* not settled: the next fill tries again */
				continue;
			}
		}
		/* settled: filled, a hole, or bad */
		if (test_bit(l->bad, p))
			err = -EBADMSG;
		else if (allocate && !l->rec_of[p])
			err = allocate_hole(g, p);
		ret = ret ?: err;
		p = g->b.hugetlb ? (p | ((g->b.align >> PAGE_SHIFT) - 1)) + 1 : p + 1;
	}
	return ret;
}

/*
 * fill_locked(), waiting for post-copy's pages to come (l->mu held,
 * dropped to ask and while waiting).  The receiver fills under l->mu
 * alone, so waiting with g->lock held cannot keep it out.
 */
static int fill_waiting(struct gmem *g, uint64_t first, uint64_t end, bool allocate)
{
	struct lazy *l = g->lazy;

	for (;;) {
		int err = fill_locked(g, first, end, allocate);
		uint64_t s, e;

		if (err != -EINPROGRESS)
			return err;
		if (take_ask(l, &s, &e)) {
			pthread_mutex_unlock(&l->mu);
			ask(l, s, e);
			lazy_mu_lock(l);
			continue; /* they may have come meanwhile */
		}
		pthread_cond_wait(&l->cv, &l->mu);
	}
}

int lazy_fill(struct gmem *g, uint64_t first, uint64_t end, bool allocate)
{
	struct lazy *l;
	int err;

	if (!lazy_active(g))
		return 0;
	l = g->lazy; /* set before lazy_active (release): read after it */
	if (g->b.align > GMEM_PAGE_SIZE) {
		first &= ~((g->b.align >> PAGE_SHIFT) - 1);
		end = (end + (g->b.align >> PAGE_SHIFT) - 1) & ~((g->b.align >> PAGE_SHIFT) - 1);
	}
	lazy_mu_lock(l);
	err = fill_waiting(g, first, end, allocate);
	l->hint = end;
	pthread_mutex_unlock(&l->mu);
	return err;
}

void lazy_guest_fault(struct gmem *g, uintptr_t addr)
{
	uint64_t page = (addr - (uintptr_t)g->b.guest) >> PAGE_SHIFT;
	uint64_t bp = g->b.align >> PAGE_SHIFT, s = page & ~(bp - 1), as, ae;
	struct lazy *l = g->lazy;
	bool asking;
	int err;

	if (!lazy_active(g)) {
		uffd_wake(g->uffd, (uintptr_t)g->b.guest + (s << PAGE_SHIFT), g->b.align);
		return;
	}
	/*
	 * Filled, or poisoned if its record did not check: either way the
	 * toucher has its answer; woken whatever happened, never left waiting
	 * (an error other than a bad record: it faults again, and we retry).
	 * Post-copy pages not come yet: asked for, and the toucher left
	 * waiting - the fill that brings them wakes it; the fault thread
	 * goes on meanwhile.
	 */
	lazy_mu_lock(l);
	err = fill_locked(g, s, s + bp, true);
	l->hint = s + bp;
	asking = take_ask(l, &as, &ae);
	if (err == -EBADMSG && test_bit(l->bad, page))
		/* its poison again, in case putting it there failed (the touch would spin) */
		uffd_poison_over_wp(g->uffd, (uintptr_t)g->b.guest +
				    ((g->b.hugetlb ? s : page) << PAGE_SHIFT),
				    g->b.hugetlb ? g->b.align : GMEM_PAGE_SIZE);
	pthread_mutex_unlock(&l->mu);
	if (asking)
		ask(l, as, ae);
	if (err != -EINPROGRESS)
		uffd_wake(g->uffd, (uintptr_t)g->b.guest + (s << PAGE_SHIFT), g->b.align);
}

int lazy_forget(struct gmem *g, uint64_t first, uint64_t end)
{
	struct lazy *l;
	uint64_t bp = g->b.align >> PAGE_SHIFT;
	int err = 0;

	if (!lazy_active(g))
		return 0;
	l = g->lazy; /* set before lazy_active (release): read after it */
	lazy_mu_lock(l);
	/* hugetlbfs zeroes part of a huge page in place: the rest must be there */
	if (g->b.hugetlb && first % bp)
		err = fill_waiting(g, first & ~(bp - 1), (first & ~(bp - 1)) + bp, false);
	if (!err && g->b.hugetlb && end % bp)
		err = fill_waiting(g, end & ~(bp - 1), (end & ~(bp - 1)) + bp, false);
	if (!err) {
		memset(l->rec_of + first, 0, (end - first) * sizeof(*l->rec_of));
		settle(g, first, end, false);
		for (uint64_t p = first; p < end; p++)
			l->bad[p / 64] &= ~(1ULL << (p % 64)); /* a hole now, as asked */
		wake_parked(g);
		if (l->remote) {
			/* a guest fault left waiting for one of them: answered now (a hole) */
			uffd_wake(g->uffd, (uintptr_t)g->b.guest + (first << PAGE_SHIFT),
				  (end - first) << PAGE_SHIFT);
			/* a THP block whose other pages all came: the merger fills it */
			l->refill = true;
		}
		pthread_cond_broadcast(&l->cv); /* maybe the last pages: waiters, the merger */
	}
	pthread_mutex_unlock(&l->mu);
	return err;
}

/*
 * Every page settled: the guest mapping back to what tracking wants of it
 * - unless a record did not check, whose pages must go on failing every
 * touch and copy (the file has no page for them to read as zero).
 */
static void finish(struct gmem *g)
{
	struct lazy *l = g->lazy;

	lazy_mu_lock(l);
	if (l->err) {
		l->done = true;
		pthread_cond_broadcast(&l->cv);
		pthread_mutex_unlock(&l->mu);
		return;
	}
	pthread_mutex_unlock(&l->mu);
	views_lock(g, true);
	uffd_register_guest(g->uffd, g->b.guest, g->b.size, false, g->track_guest);
	atomic_store_explicit(&g->lazy_active, false, memory_order_release);
	unlock(g);
	/* faults that raced the unregistration: answered by the kernel now */
	uffd_wake(g->uffd, (uintptr_t)g->b.guest, g->b.size);
	lazy_mu_lock(l);
	l->done = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/* The next unsettled page from l->hint on, wrapping; npages for none. */
static uint64_t next_unsettled(const struct gmem *g)
{
	const struct lazy *l = g->lazy;
	uint64_t n = g->npages;

	for (uint64_t i = 0, p = l->hint % n; i < n; i++, p = p + 1 < n ? p + 1 : 0) {
		if (!(p % 64) && l->filled[p / 64] == ~0ULL && n - p >= 64) {
			i += 63;
			p += 63;
			continue;
		}
		if (!test_bit(l->filled, p))
			return p;
	}
	return n;
}

/*
 * THP blocks filled whole since the last call, merged into huge pages as
 * the guest mapping had them (l->mu held, dropped around each merge).  A
 * merge the kernel refuses (a pin, a loaded machine) leaves the block
 * mapped small; gmem_collapse() can merge it later.
 */
static void merge_filled(struct gmem *g)
{
	struct lazy *l = g->lazy;

	for (uint64_t w = 0; l->merges && w < (g->npages + 63) / 64 && !l->stop; w++) {
		while (l->merge[w]) {
			uint64_t p = w * 64 + (uint64_t)__builtin_ctzll(l->merge[w]);

			l->merge[w] &= l->merge[w] - 1;
			l->merges--;
			pthread_mutex_unlock(&l->mu);
			gmem_collapse(g, p << PAGE_SHIFT, g->b.align, NULL);
			pthread_mutex_lock(&l->mu);
		}
	}
}

static void *filler_main(void *arg)
{
	struct gmem *g = arg;
	struct lazy *l = g->lazy;

	pthread_mutex_lock(&l->mu);
	while (!l->stop && l->left) {
		uint64_t p = next_unsettled(g), s, e;
		bool copied;

		if (p >= g->npages)
			break;
		/* a fault (or anyone) waiting for mu goes first: one unit at most */
		if (atomic_load_explicit(&l->waiting, memory_order_relaxed)) {
			while (atomic_load_explicit(&l->waiting, memory_order_relaxed) && !l->stop)
				pthread_cond_wait(&l->cv, &l->mu);
			continue; /* the page may be filled now */
		}
		unit_of(g, p, &s, &e);
		if (fill_unit(g, s, e, &copied) && !test_bit(l->filled, p)) {
			/* not a record's fault (no memory?): a moment, then again */
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 10 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&l->cv, &l->mu, &ts);
			continue;
		}
		l->hint = e;
		merge_filled(g);
	}
	merge_filled(g);
	pthread_mutex_unlock(&l->mu);
	if (!l->stop)
		finish(g);
	return NULL;
}

/*
 * Units whose pages have all come but whose fill failed (l->mu held):
 * filled now, their touchers woken - or, failing again, tried again in
 * 10 ms (the filler's back-off), so that the restore ends without a touch.
 */
static void refill(struct gmem *g)
{
	struct lazy *l = g->lazy;
	bool again = false;

	l->refill = false;
	for (uint64_t p = 0; p < g->npages;) {
		uint64_t s, e;
		bool copied;
		int err;

		if (test_bit(l->filled, p)) {
			p++;
			continue;
		}
		unit_of(g, p, &s, &e);
		err = fill_unit(g, s, e, &copied);
		if (err && err != -EINPROGRESS)
			again = true;
		if (err != -EINPROGRESS) {
			uffd_wake(g->uffd, (uintptr_t)g->b.guest + (s << PAGE_SHIFT),
				  (e - s) << PAGE_SHIFT);
			wake_parked(g);
		}
		p = e > p ? e : p + 1;
	}
	if (again) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&l->cv, &l->mu, &ts);
		l->refill = true;
	}
	pthread_cond_broadcast(&l->cv); /* the waiters: pages settled */
}

/*
 * Post-copy's thread: no fill of its own (the source pushes), but THP
 * blocks merged as they fill, and the end once every page has come.
 */
static void *merger_main(void *arg)
{
	struct gmem *g = arg;
	struct lazy *l = g->lazy;

	pthread_mutex_lock(&l->mu);
	while (!l->stop && l->left) {
		if (l->merges)
			merge_filled(g);
		else if (l->refill)
			refill(g);
		else
			pthread_cond_wait(&l->cv, &l->mu);
	}
	merge_filled(g);
	pthread_mutex_unlock(&l->mu);
	if (!l->stop)
		finish(g);
	return NULL;
}

int lazy_start(struct gmem *g, struct lazy *l)
{
	int err;

	g->lazy = l;
	err = uffd_register_guest(g->uffd, g->b.guest, g->b.size, true, g->track_guest);
	if (err)
		goto err_detach;
	atomic_store_explicit(&g->lazy_active, true, memory_order_release);
	/*
	 * GMEM_DEBUG=1 GMEM_LAZY_FILLER=0 (tests): no background fill - pages
	 * come on touch alone, and what a touch filled is seen before anything
	 * else could have.
	 */
	if (!l->remote && g->debug && getenv("GMEM_LAZY_FILLER") &&
	    !strcmp(getenv("GMEM_LAZY_FILLER"), "0"))
		return 0;
	err = -pthread_create(&l->thread, NULL, l->remote ? merger_main : filler_main, g);
	if (err)
		goto err_register;
	l->thread_started = true;
	return 0;

err_register:
	atomic_store_explicit(&g->lazy_active, false, memory_order_release);
	uffd_register_guest(g->uffd, g->b.guest, g->b.size, false, g->track_guest);
err_detach:
	g->lazy = NULL;
	return err;
}

int lazy_wait(struct gmem *g, int timeout_ms)
{
	struct lazy *l = g->lazy;
	struct timespec ts;
	int err = 0;

	if (!l)
		return 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	lazy_mu_lock(l);
	/* post-copy: done once every page came (the merges and the end follow on their own) */
	while (!l->done && !(l->remote && !l->left) && !err) {
		if (timeout_ms < 0)
			pthread_cond_wait(&l->cv, &l->mu);
		else if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT)
			err = l->done || (l->remote && !l->left) ? 0 : -ETIMEDOUT;
	}
	if (!err)
		err = l->err;
	pthread_mutex_unlock(&l->mu);
	return err;
}

void lazy_stop(struct gmem *g)
{
	struct lazy *l = g->lazy;

	if (!l || !l->thread_started)
		return;
	lazy_mu_lock(l);
	l->stop = true;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thread, NULL);
	l->thread_started = false;
}

void lazy_fini(struct gmem *g)
{
	lazy_stop(g);
	lazy_free(g->lazy);
	g->lazy = NULL;
}

void lazy_lock(struct gmem *g)
{
	if (g->lazy)
		lazy_mu_lock(g->lazy);
}

void lazy_unlock(struct gmem *g)
{
	if (g->lazy)
		pthread_mutex_unlock(&g->lazy->mu);
}

void lazy_narrow(struct gmem *g, uint64_t page, uint64_t *s, uint64_t *e)
{
	struct lazy *l;

	if (!lazy_active(g))
		return;
	l = g->lazy; /* set before lazy_active (release): read after it */
	lazy_fill(g, page, page + 1, false);
	pthread_mutex_lock(&l->mu);
	for (uint64_t p = page; p < *e; p++) {
		if (!test_bit(l->filled, p)) {
			*e = p > page ? p : page + 1;
			break;
		}
	}
	for (uint64_t p = page; p > *s; p--) {
		if (!test_bit(l->filled, p - 1)) {
			*s = p;
			break;
		}
	}
	pthread_mutex_unlock(&l->mu);
}

/* ---- post-copy ---- */

void lazy_set_id(struct lazy *l, uint64_t id)
{
	l->id = id;
}

bool lazy_remote(const struct gmem *g, uint64_t *id)
{
	if (!g->lazy || !g->lazy->remote)
		return false;
	*id = g->lazy->id;
	return true;
}

/*
 * Before lazy_start(), g->lock exclusive: what the object holds for the
 * pages named to come, out of the way - a page rewritten on the source
 * since an earlier round must not be read as it was.  shmem: those pages
 * punched.  A huge page: punched whole, its other pages' contents kept in
 * the inbox to fill with it (the kernel maps a huge page whole, and a
 * THP block split by a punch inside it may stay whole, zeroed there).
 * Every other page settled as it is.  fresh: the object holds nothing.
 */
int lazy_remote_prepare(struct gmem *g, struct lazy *l, bool fresh)
{
	uint64_t bp = g->b.align >> PAGE_SHIFT, n = g->npages;

	for (uint64_t s = 0; s < n; s += bp) {
		uint64_t e = s + bp, named = 0, run;
		int err;

		for (uint64_t p = s; p < e; p++)
			named += l->rec_of[p] == LAZY_REMOTE;
		if (bp == 1 && !named) {
			set_bit(l->filled, s);
			l->left--;
			continue;
		}
		if (!named) {
			for (uint64_t p = s; p < e; p++)
				set_bit(l->filled, p);
			l->left -= bp;
			continue;
		}
		if (fresh)
			continue; /* a unit's holes fill with zeroes */
		if (bp == 1) {
			/* the run of named pages from here, punched at once */
			for (run = 1; s + run < n && l->rec_of[s + run] == LAZY_REMOTE; run++)
				;
			err = backing_punch(&g->b, s << PAGE_SHIFT, run << PAGE_SHIFT);
			if (err)
				return err;
			pages_clear(g, s, s + run, PW_POPULATED);
			s += run - 1;
			continue;
		}
		err = file_pread(g->b.fd, l->inbox + (s << PAGE_SHIFT), g->b.align,
				 s << PAGE_SHIFT);
		if (!err)
			err = backing_punch(&g->b, s << PAGE_SHIFT, g->b.align);
		if (err)
			return err;
		pages_clear(g, s, e, PW_POPULATED);
		for (uint64_t p = s; p < e; p++) {
			if (l->rec_of[p] == LAZY_REMOTE)
				continue;
			l->rec_of[p] = LAZY_REMOTE;
			set_bit(l->arrived, p);
		}
	}
	return 0;
}

/*
 * Pages [first, first + count) came, checked, with their contents in
 * data: kept until their unit's pages have all come, which fills it and
 * wakes its touchers.  A page discarded meanwhile, or come before, is
 * left as it is.  A unit that cannot be filled now (no memory) is left
 * for its touchers to try again, woken to.
 */
void lazy_receive(struct gmem *g, uint64_t first, uint64_t count, const char *data)
{
	struct lazy *l = g->lazy;
	uint64_t end = first + count;

	lazy_mu_lock(l);
	for (uint64_t p = first; p < end; p++) {
		if (l->rec_of[p] != LAZY_REMOTE || test_bit(l->filled, p) ||
		    test_bit(l->arrived, p))
			continue;
		memcpy(l->inbox + (p << PAGE_SHIFT), data + ((p - first) << PAGE_SHIFT),
		       GMEM_PAGE_SIZE);
		set_bit(l->arrived, p);
	}
	for (uint64_t p = first; p < end;) {
		uint64_t s, e;
		bool copied;
		int err;

		if (l->rec_of[p] != LAZY_REMOTE || test_bit(l->filled, p)) {
			p++;
			continue;
		}
		unit_of(g, p, &s, &e);
		err = fill_unit(g, s, e, &copied);
		if (err && err != -EINPROGRESS && !test_bit(l->filled, p))
			l->refill = true; /* all here, not filled (no memory?): the merger tries again */
		if (err != -EINPROGRESS)
			uffd_wake(g->uffd, (uintptr_t)g->b.guest + (s << PAGE_SHIFT),
				  (e - s) << PAGE_SHIFT);
		p = e;
	}
	wake_parked(g);
	pthread_cond_broadcast(&l->cv); /* the waiters, and the merger */
	pthread_mutex_unlock(&l->mu);
}

/*
 * The contents can no longer come: every page still missing settled as
 * a rotten record's - poisoned in the guest mapping, its touchers woken
 * to the SIGBUS, the library's waiters to -EBADMSG - and err for
 * gmem_restore_wait().
 */
void lazy_abort(struct gmem *g, int err)
{
	struct lazy *l = g->lazy;

	lazy_mu_lock(l);
	if (!l->err && l->left)
		l->err = err; /* nothing missing: nothing lost */
	for (uint64_t p = 0; p < g->npages;) {
		uintptr_t base = (uintptr_t)g->b.guest, addr;
		uint64_t s, e, q;

		if (test_bit(l->filled, p)) {
			p++;
			continue;
		}
		unit_of(g, p, &s, &e);
		/* hugetlbfs poisons a huge page whole; else the pages missing alone */
		for (q = g->b.hugetlb ? e : p + 1; q < e && !test_bit(l->filled, q); q++)
			;
		addr = base + ((g->b.hugetlb ? s : p) << PAGE_SHIFT);
		uffd_poison_over_wp(g->uffd, addr, base + (q << PAGE_SHIFT) - addr);
		settle(g, g->b.hugetlb ? s : p, q, true);
		/* the whole unit: a fault on a page of it a discard settled waits for the unit */
		uffd_wake(g->uffd, base + (s << PAGE_SHIFT), (e - s) << PAGE_SHIFT);
		p = q;
	}
	wake_parked(g);
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

bool lazy_park(struct gmem *g, uint64_t page, uintptr_t addr)
{
	struct lazy *l;
	uint64_t s, e, as, ae;
	bool copied, asking;
	int err;

	if (!lazy_active(g))
		return false;
	l = g->lazy; /* set before lazy_active (release): read after it */
	if (!l->remote)
		return false;
	lazy_mu_lock(l);
	if (l->nparked == LAZY_PARKED_MAX) {
		pthread_mutex_unlock(&l->mu);
		return false; /* too many parked: the fill waits on the fault thread */
	}
	/* its unit: a page settled in a THP block whose other pages have not come waits too */
	unit_of(g, page, &s, &e);
	err = fill_unit(g, s, e, &copied);
	if (err != -EINPROGRESS) {
		pthread_mutex_unlock(&l->mu);
		return false; /* filled now (or failed): mapped, or refused, as ever */
	}
	note_ask(l, s, e);
	asking = take_ask(l, &as, &ae);
	l->parked[l->nparked++] = addr & ~(uintptr_t)((g->b.hugetlb ? g->b.align : GMEM_PAGE_SIZE) - 1);
	pthread_mutex_unlock(&l->mu);
	if (asking)
		ask(l, as, ae);
	return true;
}
