/* SPDX-License-Identifier: MIT */
/*
 * internal.h - the gmem object, and what the library's modules share.
 *
 * Locking, in one place:
 *  - g->lock is the kernel's invalidate_lock.  The fault path decides and
 *    maps under it shared; anything that changes page states, views or
 *    transits holds it exclusive, so a conversion's "publish the state, zap
 *    every view" cannot interleave with a fault's "look up, then map".
 *  - Pins take no lock: their race with conversions is decided per page in
 *    one atomic word (core/pinword.h).  Leaves of words are created with
 *    g->lock shared and their states changed with it exclusive, so a word
 *    always agrees with g->states.
 *  - g->wait_mu only guards sleeping: converters waiting for pins to drop
 *    and conversions waiting for a waiting conversion to end.  Nobody takes
 *    g->lock while holding it.
 *  - User callbacks run with no lock held.
 */
#ifndef GMEM_INTERNAL_H
#define GMEM_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "compat.h"

#include "core/pinmap.h"
#include "core/runmap.h"
#include "gmem.h"
#include "os/backing.h"
#include "os/uffd.h"

#define PAGE_SHIFT 12
#define GMEM_MAX_SIZE (1ULL << 46) /* 64 TiB: the guest mapping must fit in user VA */
#define STATE_MASK(s) RUNMAP_MASK(s)

/* Children with views the reader watches at once (forked.c). */
#define FORKED_MAX 65536
/* Messages the reader can hand the fault thread before it waits (reader.c). */
#define QUEUE_MSGS 65536

/* Messages in order, QUEUE_MSGS of them, mapped: the reader must not need malloc. */
struct msg_ring {
	struct uffd_event *msgs;
	uint64_t head, tail;
};

/* What the reader thread hands the fault thread (reader.c). */
struct fault_queue {
	struct msg_ring events, faults; /* under mu */
	bool stop;                      /* under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;              /* with mu: a ring or stop moved */
};

struct view {
	char *addr;
	uint64_t first, end; /* the pages of the object it maps: [first, end) */
	unsigned int flags;  /* GMEM_VIEW_* */
	/*
	 * Pages refused through this view, where its page tables hold a poison
	 * marker or PROT_NONE that a re-share must clear; a superset is fine.
	 * Written by the fault thread holding g->lock shared (the only writer on
	 * that side) or by others holding it exclusive.
	 */
	struct runmap denied;
	bool denied_lost; /* a refusal could not be recorded: treat all as refused */
	/*
	 * Pages this view may map: every PTE in a view comes from the fault
	 * thread's UFFDIO_CONTINUE, which marks its window first; only a zap
	 * clears marks, after the zap.  So the marks are a superset of what is
	 * mapped: zaps skip what is unmarked, fault-around skips what is
	 * marked.  Same writers as `denied`.
	 */
	struct runmap mapped;
	bool mapped_lost; /* a mapping could not be recorded: zap everything */
	bool prot_used;   /* a refusal fell back to PROT_NONE: re-sharing restores access */
};

/* A deferred conversion whose completion failed: its pages stay in transit. */
#define TRANSIT_FAILED (1u << 8)

/* A conversion to private in transit: its shared pages are CONVERTING. */
struct transit {
	struct transit *next;
	uint64_t first, end;
	unsigned int mode;        /* GMEM_CONVERT_WAIT, GMEM_CONVERT_DEFER or TRANSIT_FAILED */
	int result;               /* for the callback, once it has ended */
	struct transit *report;   /* DEFER: room to report a failed end while it stays */
};

/* Where the views are, for gmem_addr_offset() in signal handlers (addr.c). */
struct addr_slot {
	_Atomic uintptr_t addr;
	_Atomic uint64_t first, end;
};
struct addr_table {
	struct addr_slot *slots; /* mapped for the object's life, sorted by addr */
	_Atomic size_t n;
	_Atomic uint64_t seq; /* odd while addr_publish() rewrites it */
	_Atomic pid_t writer; /* the thread rewriting it (gettid), for a reader that interrupted it */
};

/*
 * The backing's huge pages (huge.c): blocks of g->b.align bytes.  THP
 * only: which blocks a discard split, in runs (a 1 TiB object has half a
 * million blocks), changed with g->lock exclusive; the counters are read
 * without it.
 */
struct huge_track {
	bool on;              /* GMEM_BACKING_THP: blocks can split */
	struct runmap split;  /* per block: 1 once a discard split it, 0 again once merged */
	_Atomic uint64_t splits, merges;
	int pagemap_fd;       /* gmem_collapse()'s, opened at its first call (g->lock exclusive), or -1 */
};

struct gmem_counters {
	_Atomic uint64_t conversions, pages_to_private, pages_to_shared, convert_eagain,
		convert_deferred, host_faults, host_faults_denied, warnings, pages_saved,
		pages_restored;
};

struct gmem {
	/* Set by gmem_create(), then read-only. */
	struct backing b;
	uint64_t npages;
	int fault_signal;
	uint32_t wait_timeout_ms;
	int uffd;
	bool follows_fork; /* the kernel reports forks (UFFD_EVENT_FORK): forked.c */
	bool can_probe;    /* uffd_changing() answers (UFFDIO_MOVE) */
	bool debug;        /* GMEM_DEBUG=1 at creation: GMEM_WARN_ON() aborts, locks are checked */
	/*
	 * A page of its own holding 1, MADV_WIPEONFORK: a child forked since
	 * reads 0 there (forked_child()), with no system call to ask.
	 */
	_Atomic uint8_t *fork_probe;
	int stopfd;
	pthread_t reader_thread, fault_thread;
	struct fault_queue q;

	pthread_rwlock_t lock;
	_Atomic unsigned long lock_owner; /* debug: the thread holding lock exclusive, or 0 */
	struct runmap states;     /* under lock */
	struct view **views;      /* under lock; sorted by address */
	size_t nviews, views_cap; /* under lock */
	struct addr_table addrs;  /* a copy of the views' places: written under lock, read by anyone */
	/* written with g->lock exclusive; read holding it either way (the
	 * fault thread's transit_waiting_at() holds it shared) */
	struct transit *transits;
	gmem_convert_cb cb;       /* under lock */
	void *cb_arg;             /* under lock */

	struct pinmap pins; /* lock-free words, see above */

	pthread_mutex_t wait_mu;
	pthread_cond_t wait_cv;            /* with wait_mu; CLOCK_MONOTONIC */
	_Atomic unsigned int pin_waiters;  /* converters sleeping until pins drop */
	_Atomic uint64_t transit_gen;      /* bumped when a waiting conversion ends */
	/*
	 * The process's unmaps and moves of views, as reader.c reads them from
	 * the userfaultfd (events_read, under events_mu, counted in the same
	 * breath as the read) and once it has applied them to the records
	 * (events_seq, bumped with wait_cv).  views_lock() waits for the two
	 * to meet.
	 */
	pthread_mutex_t events_mu;
	_Atomic uint64_t events_read; /* written under events_mu */
	_Atomic uint64_t events_seq;

	struct gmem_counters stats; /* relaxed atomics */
	struct huge_track huge;     /* huge.c */

	char *fresh_buf; /* GMEM_F_FRESH_PRIVATE: the copy-out buffer (fresh.c), under lock */

	/* write tracking (track.c): set and cleared with g->lock exclusive */
	bool can_track;    /* the userfaultfd has asynchronous write-protect */
	bool tracking, track_guest;
	int track_pm;      /* /proc/self/pagemap, for the scans */
	/*
	 * A written note could not be kept (no memory for a pin word): every
	 * page counts as written until a collect of the whole object reports
	 * them.  Set by anyone tracking, read and cleared by collects.
	 */
	_Atomic bool track_all;
	/*
	 * Two readers of the record, collects and snapshot layers (snapshot.c),
	 * each clearing what it takes: what one took and the other has not seen
	 * yet, a bit a page, under track_mu.  track_gen counts the starts: a
	 * layer follows only a save of the same tracking.
	 */
	pthread_mutex_t track_mu;
	uint64_t *track_unsaved, *track_uncollected;
	_Atomic uint64_t track_gen;

	/* lazy.c: a lazy restore's fills, until every page is settled */
	struct lazy *lazy;        /* set at the restore, freed at destroy */
	_Atomic bool lazy_active; /* the guest mapping is registered for missing faults */
	/* discards so far (changed with g->lock exclusive): a save's copies check it */
	_Atomic uint64_t discard_gen;

	/* snapshot.c, under save_mu: the file the next layer applies on */
	pthread_mutex_t save_mu;
	uint64_t save_id, save_seq, save_gen; /* save_id 0: none */
	struct postcopy_source *postcopy;    /* a post-copy save's pages, to send (postcopy.c) */
	uint8_t initial_state;                /* GMEM_F_INIT_PRIVATE or not */

	bool uffd_gone; /* under lock: the userfaultfd was closed behind our back */
	int spare_fd;   /* the reader's: a descriptor to give up when none is free */
	int maps_fd;    /* the fault thread's: /proc/self/maps, to ask what is mapped (os/maps.c) */

	/* userfaultfds of children that inherited views (forked.c): the reader's */
	int *forked;
	size_t nforked;
	struct pollfd *pfd; /* the reader's poll set */
};

static inline void count(_Atomic uint64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/*
 * A step that cannot fail - the room for it was reserved, its arguments
 * checked - checked anyway, as pKVM's WARN_ON()s do: true when it did fail.
 * With GMEM_DEBUG=1 in the environment at gmem_create() (the tests, the
 * fuzzer and the soak set it) that aborts on the spot; otherwise it is
 * counted in gmem_stats.warnings, logged once per object, and the caller
 * takes its error path.
 */
#define GMEM_WARN_ON(g, cond) \
	(__builtin_expect(!!(cond), 0) ? gmem_warn((g), __FILE__, __LINE__, #cond), true : false)
void gmem_warn(struct gmem *g, const char *file, int line, const char *what);

/* g->lock, the kernel's invalidate_lock (see the top of this file). */
static inline void lock_exclusive(struct gmem *g)
{
	pthread_rwlock_wrlock(&g->lock);
	if (g->debug)
		atomic_store_explicit(&g->lock_owner, (unsigned long)pthread_self(),
				      memory_order_relaxed);
}

static inline void lock_shared(struct gmem *g)
{
	pthread_rwlock_rdlock(&g->lock);
}

static inline void unlock(struct gmem *g)
{
	if (g->debug && atomic_load_explicit(&g->lock_owner, memory_order_relaxed) ==
				(unsigned long)pthread_self())
		atomic_store_explicit(&g->lock_owner, 0, memory_order_relaxed);
	pthread_rwlock_unlock(&g->lock);
}

/* In functions that change states, views or transits: the caller holds g->lock exclusive. */
static inline void assert_exclusive(struct gmem *g)
{
	if (g->debug)
		GMEM_WARN_ON(g, atomic_load_explicit(&g->lock_owner, memory_order_relaxed) !=
					(unsigned long)pthread_self());
}

/*
 * A system call's failure as a library result: its -errno, except for the
 * codes the contract gives meanings of its own (gmem.h: -EAGAIN "a pin
 * holds a page", -EINVAL "bad arguments", ...), which would mislead the
 * caller; those become -EIO.
 */
static inline int sys_result(int err)
{
	switch (err) {
	case -EAGAIN:
	case -EBUSY:
	case -EINPROGRESS:
	case -EINVAL:
	case -EACCES:
	case -EOVERFLOW:
	case -ECANCELED:
		return -EIO;
	default:
		return err;
	}
}

/*
 * Whether this is a child the process forked since creating g: it shares
 * the backing file, but has no views, guest mapping or library threads of
 * its own, so calls that would change or punch shared memory are refused.
 */
static inline bool forked_child(const struct gmem *g)
{
	return !atomic_load_explicit(g->fork_probe, memory_order_relaxed);
}

/* offset and len name whole pages inside the object: the contract's "Ranges". */
static inline bool range_ok(const struct gmem *g, uint64_t offset, uint64_t len)
{
	return len && !(offset % GMEM_PAGE_SIZE) && !(len % GMEM_PAGE_SIZE) &&
	       offset <= g->b.size && len <= g->b.size - offset;
}

/* state.c: page states, the run map and the pin words kept equal */
struct pin_scan {
	uint64_t short_first, long_first; /* lowest page holding such a pin, or UINT64_MAX */
};
int state_reserve(struct gmem *g);
int64_t state_replace(struct gmem *g, uint64_t first, uint64_t end, uint32_t from, unsigned int to,
		      struct pin_scan *scan);

/* pin.c */
/* Pins on the pages of [first, end) whose state is in `states`. */
void pins_scan(struct gmem *g, uint64_t first, uint64_t end, uint32_t states,
	       struct pin_scan *scan);
/*
 * Whether page holds a pin.  An in-transit page's count falls only with
 * g->lock exclusive (pin.c): with the lock held shared, "pinned" stays true.
 */
bool page_pinned(struct gmem *g, uint64_t page);
uint64_t pins_total(struct gmem *g);
/*
 * Hold pins off [first, end) until pins_release_hold(): a pin meanwhile
 * backs out with -EAGAIN, and one raised as the hold went on is seen.
 * Whether a page of the range held a pin.  With g->lock exclusive, so that
 * no page gets its first pin word meanwhile (pin_word() takes it shared).
 */
bool pins_hold(struct gmem *g, uint64_t first, uint64_t end);
/*
 * Notes the library keeps in the pages' pin words, beside the counts
 * (core/pinword.h: PW_POPULATED, PW_WRITTEN), with g->lock held either
 * way: whether every page of [first, end) has the bit; set it (false if
 * there was no memory for a page's word: see track.c for what a written
 * note does then); clear it.
 */
bool pages_all(struct gmem *g, uint64_t first, uint64_t end, uint64_t bit);
bool pages_mark(struct gmem *g, uint64_t first, uint64_t end, uint64_t bit);
void pages_clear(struct gmem *g, uint64_t first, uint64_t end, uint64_t bit);
/*
 * Take bit from the pages of [first, end) that have it - clear it, unless
 * peek - and set bit p - first of bitmap for each page p taken, and for
 * each page whose word has any of `also` (not cleared).  Absent leaves are
 * skipped whole, and a word is read before it is written: where no page
 * has the bit, nothing is written.
 */
void pages_take(struct gmem *g, uint64_t first, uint64_t end, uint64_t bit, uint64_t also,
		bool peek, uint64_t *bitmap);
void pins_release_hold(struct gmem *g, uint64_t first, uint64_t end);
void pins_wake_waiters(struct gmem *g);

/*
 * Take g->lock, exclusive or shared, once the view records hold every
 * unmap and move of a view that the reader has read (reader.c):
 * for everything but the fault thread that acts on view addresses.
 */
void views_lock(struct gmem *g, bool exclusive);

/* view.c (g->lock held) */
struct view *view_find(struct gmem *g, uintptr_t addr);
/*
 * The next view from index *i on that overlaps [first, end), with the
 * overlap in [*s, *e); NULL past the last.  Walk them with
 *	for (size_t i = 0; (v = views_next(g, &i, first, end, &s, &e));)
 */
struct view *views_next(struct gmem *g, size_t *i, uint64_t first, uint64_t end, uint64_t *s,
			uint64_t *e);
int views_reserve_denied(struct gmem *g, size_t insertions);
uint64_t views_strict_first(struct gmem *g, uint64_t first, uint64_t end);
/*
 * Unmap [first, end) from every view.  strict: -ESTALE if a view is not
 * where its record says (moved or unmapped, not yet applied): wait with
 * views_wait_records() and try again.
 */
int views_zap(struct gmem *g, uint64_t first, uint64_t end, bool strict);
/*
 * With g->lock released: wait a moment for the fault thread to apply a
 * change to the view records.  *deadline (zero: set to a second from now)
 * bounds the retries: false once it has passed.
 */
bool views_wait_records(struct gmem *g, struct timespec *deadline);
/* The kernel unmapped [first, end) from every view itself (a zap, a hole punch). */
void views_forget_mapped(struct gmem *g, uint64_t first, uint64_t end);
/*
 * Tracking writes, write-protect [first, end) of every view again after the
 * kernel emptied its entries (a hole punch): an empty entry reads as
 * written (track.c).  g->lock exclusive.
 */
void views_protect_again(struct gmem *g, uint64_t first, uint64_t end);
/* Clear refusal marks over [first, end); strict: see views_zap(). */
int views_undeny(struct gmem *g, uint64_t first, uint64_t end, bool strict);
/*
 * A zap that may be left undone (the pages' conversion zaps them again,
 * strictly): skipped while the records may be stale.
 */
void views_zap_idle(struct gmem *g, uint64_t first, uint64_t end);
/*
 * Before the fault thread maps [*s, *e) around page in v: narrow the window
 * to what v does not map yet (just page if the kernel dropped it from a
 * marked stretch) and mark it, so that the marks cover every PTE.  Whether
 * page was marked already (or the marks are lost): then the kernel took
 * an entry v had for it, maybe a written one.
 */
bool view_mark_mapped(struct view *v, uint64_t page, uint64_t *s, uint64_t *e);
/* Refuse touches of [first, end) through v: a mark in v's page tables (g->lock shared or more). */
void views_deny(struct gmem *g, struct view *v, uint64_t first, uint64_t end);
/*
 * The gate (events_mu): while held, an unmap or move of a view cannot be
 * read, so one the process begins stays under way.  records_current(),
 * with it held: none is under way and every one read is applied.
 */
void views_gate_enter(struct gmem *g);
void views_gate_leave(struct gmem *g);
bool records_current(struct gmem *g);
/* Wake the touches of [first, end) the fault thread left waiting. */
void views_wake(struct gmem *g, uint64_t first, uint64_t end);
/*
 * The process itself unmapped [s, e) (munmap, mmap over it, a shrinking
 * mremap) or moved [from, from + len) to `to` (mremap): the records follow,
 * splitting views that were cut in pieces.  notice: the unmap is the
 * kernel's notice of it, which may be older than a view another thread
 * has moved there since: such a view, still mapped, stays.
 */
void views_unmapped(struct gmem *g, uintptr_t s, uintptr_t e, bool notice);
void views_moved(struct gmem *g, uintptr_t from, uintptr_t to, uint64_t len);
void views_destroy(struct gmem *g);
/* Make every view inaccessible (the userfaultfd is gone: fault.c). */
void views_close_all(struct gmem *g);

/* access.c: len bytes of fd at off, all of them (a short file is -EIO) */
int file_pread(int fd, char *buf, uint64_t len, uint64_t off);
/* A copy of guest memory, which others write as they will (ThreadSanitizer looks away). */
void copy_shared(void *dst, const void *src, size_t len);

/* hash.c: XXH3-64 of [p, p + len) with seed, the snapshot format's checksum */
uint64_t snap_hash(const void *p, size_t len, uint64_t seed);
uint64_t snap_hash_avx2(const void *p, size_t len, uint64_t seed); /* hash_avx2.c */

/* addr.c */
int addr_init(struct gmem *g);
void addr_fini(struct gmem *g);
/* Copy where the views are now for gmem_addr_offset() (g->lock exclusive). */
void addr_publish(struct gmem *g);

/* track.c (g->tracking read with g->lock held either way) */
/* The library's own record: [first, end) written (a copy, a discard, a zap's scan). */
void track_mark(struct gmem *g, uint64_t first, uint64_t end);
/*
 * After a zap of pages [s, e) of a mapping whose page 0 is at base: the
 * range protected again (an entry a zap left empty reads as written).  A
 * no-op when not tracking.
 */
void track_after_zap(struct gmem *g, uintptr_t base, uint64_t s, uint64_t e);
/*
 * For a save (g->tracking): the pages written since the last save, into
 * bitmap (bit p: page p, the whole object) - for a layer (*gen: its
 * parent's tracking, -EINVAL if tracking restarted since), or only to
 * start the next layer from here (a full save; the bitmap is scratch).
 * *gen becomes this tracking's.  The collects report them all the same.
 */
int track_take_for_save(struct gmem *g, uint64_t *bitmap, uint64_t *gen, bool layer);
/* A layer that could not be written: its pages go to the next. */
void track_untake(struct gmem *g, const uint64_t *bitmap);
void track_records_free(struct gmem *g);

/*
 * lazy.c: a lazy restore's fills.  lazy_new() (with the snapshot's
 * descriptor, duplicated), records and holes added by snapshot.c's reader
 * in file order, lazy_start() with g->lock exclusive; lazy_free() one that
 * never started, lazy_fini() at destroy.
 */
struct snap_record;
struct lazy *lazy_new(struct gmem *g, int fd);
int lazy_add_data(struct lazy *l, const struct snap_record *r, uint64_t off, uint64_t id,
		  uint64_t index);
void lazy_add_hole(struct lazy *l, uint64_t first, uint64_t count);
void lazy_free(struct lazy *l);
int lazy_start(struct gmem *g, struct lazy *l);
/* At destroy: the background fill stopped, then - once the fault thread is - freed. */
void lazy_stop(struct gmem *g);
void lazy_fini(struct gmem *g);
/* Whether pages remain to fill (the guest mapping is registered for missing faults). */
bool lazy_active(const struct gmem *g);
/*
 * Fill [first, end) (rounded out to huge pages) before a path that reads
 * the file or gives pages memory; allocate: holes get zero pages.  0,
 * -EBADMSG for a page whose record did not check, or -errno.
 */
int lazy_fill(struct gmem *g, uint64_t first, uint64_t end, bool allocate);
/*
 * A view's fault at page, whose window [*s, *e) would have filled its
 * neighbours' records too: page's unit filled, the window narrowed to the
 * filled pages around it (a fault costs one record's read, not a window's).
 */
void lazy_narrow(struct gmem *g, uint64_t page, uint64_t *s, uint64_t *e);
/* The fault thread: a touch of the guest mapping, filled and woken. */
void lazy_guest_fault(struct gmem *g, uintptr_t addr);
/* A discard's pages are settled as holes (g->lock exclusive, before the punch). */
int lazy_forget(struct gmem *g, uint64_t first, uint64_t end);
/* 0 once every page is settled (or no lazy restore), the error met, or -ETIMEDOUT. */
int lazy_wait(struct gmem *g, int timeout_ms);
/* Fills stopped and started again around a change of the guest mapping's registration. */
void lazy_lock(struct gmem *g);
void lazy_unlock(struct gmem *g);

/*
 * Post-copy (lazy.c's half, the destination's): pages named to come
 * (LAZY_REMOTE) as the reader meets them; what the object holds for them
 * out of the way before lazy_start() (g->lock exclusive); their contents
 * as they come, checked; an end to waiting for them.
 */
struct gmem_postcopy;
struct lazy *lazy_new_remote(struct gmem *g, const struct gmem_postcopy *pc);
void lazy_add_later(struct lazy *l, uint64_t first, uint64_t count);
void lazy_set_id(struct lazy *l, uint64_t id);
int lazy_remote_prepare(struct gmem *g, struct lazy *l, bool fresh);
/* Whether g's lazy restore is post-copy's, and *id its file's. */
bool lazy_remote(const struct gmem *g, uint64_t *id);
void lazy_receive(struct gmem *g, uint64_t first, uint64_t count, const char *data);
/*
 * The fault thread, a view's touch of page at addr (g->lock shared, the
 * page shared): true if it is post-copy's and has not come - asked for,
 * and the touch parked, to be woken when pages settle (not answered now).
 */
bool lazy_park(struct gmem *g, uint64_t page, uintptr_t addr);
void lazy_abort(struct gmem *g, int err);

/*
 * postcopy.c (the source's half): a post-copy save's pages, named as the
 * writer meets them (new() before the save writes anything, so that the
 * end cannot fail), then kept for gmem_postcopy_send() - or, for a save
 * of another kind (*pc NULL), nothing kept - by set() (g->save_mu held;
 * *pc taken over); drop() one a failed save made; free() at destroy.
 */
struct postcopy_source;
struct postcopy_source *postcopy_source_new(struct gmem *g);
void postcopy_source_name(struct postcopy_source *pc, uint64_t first, uint64_t end);
void postcopy_source_set(struct gmem *g, struct postcopy_source **pc, uint64_t id,
			 uint64_t discard_gen);
void postcopy_source_drop(struct postcopy_source *pc);
void postcopy_source_free(struct gmem *g);

/* fault.c: the reader and fault threads, started and stopped together */
int fault_start(struct gmem *g);
void fault_stop(struct gmem *g);

/* reader.c */
int queue_init(struct fault_queue *q);
void queue_fini(struct fault_queue *q);
/*
 * Up to max messages, unmaps and moves ahead of faults, waiting for one;
 * 0 once stopped and empty.  events_only: unmaps and moves, not waiting.
 */
size_t queue_pop(struct fault_queue *q, struct uffd_event *msg, size_t max, bool events_only);
void queue_stop(struct fault_queue *q);
void *reader_main(void *g);

/* fresh.c (g->lock exclusive) */
#define FRESH_BUF (2ULL << 20)
int fresh_init(struct gmem *g);
void fresh_fini(struct gmem *g);
/*
 * Fresh backing pages for the populated pages of [first, end) whose state
 * is in `from`.  -EBUSY with *busy at a page that could not be replaced
 * (part of a huge page something holds); its contents are kept.
 */
int fresh_private(struct gmem *g, uint64_t first, uint64_t end, uint32_t from, uint64_t *busy);

/* huge.c */
int huge_init(struct gmem *g);
void huge_fini(struct gmem *g);
/*
 * Punch pages [first, end) out of the backing (backing_punch()), counting
 * the huge pages it splits: 0 or -errno, nothing punched on error
 * (g->lock exclusive).
 */
int huge_punch(struct gmem *g, uint64_t first, uint64_t end);

/* forked.c (the reader thread, but init and fini) */
int forked_init(struct gmem *g);
void forked_fini(struct gmem *g);
void forked_add(struct gmem *g, int fd);
void forked_serve(struct gmem *g, int fd);
void forked_reap(struct gmem *g);

/* convert.c */
/* Whether a waiting conversion (GMEM_CONVERT_WAIT) has page in transit. */
bool transit_waiting_at(struct gmem *g, uint64_t page);
/*
 * End the deferred conversions overlapping [first, end) that no pin holds,
 * reporting onto *done: completed (result 0), or failed (-errno; it stays,
 * TRANSIT_FAILED, its pages in transit).  true if one could not end yet
 * because a view's record is stale (views_zap()): wait and call again.
 */
bool convert_complete_locked(struct gmem *g, uint64_t first, uint64_t end, struct transit **done,
			     bool strict);
/* Run the callback for each transit of list with its result, freeing them. */
void convert_report(struct gmem *g, struct transit *list, gmem_convert_cb cb, void *arg);

#endif /* GMEM_INTERNAL_H */
