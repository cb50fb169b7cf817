/*
 * gmem.pml - libgmem's conversion protocol, for the spin model checker.
 *
 * Two pages, one host view, and the actors that race over them: a
 * converter making two conversions (to shared; to private with no flag,
 * WAIT or DEFER; each cancels an overlapping deferred one), two pinners
 * (short-term, and either kind for the second) doing I/O through the view
 * while they hold their pins, a toucher whose first touches the fault
 * thread decides (a touch of a waiting conversion's page waits for its
 * outcome), and a discarder.  -DCONVERTERS=2 puts a second
 * converter in the discarder's place (lock_range(), and cancels across
 * threads).  `make verify` explores every interleaving (model/verify.sh).
 *
 * Each step names the C it stands for as "C: <file> <function>() #<hash>", the
 * hash of that function's code (without comments and white space) as the
 * model was last read against it: tests/model_refs.sh fails when one of
 * those functions is renamed away or its code changes, so the model cannot
 * drift from the code silently.
 *
 * Memory ordering.  Shared variables here are sequentially consistent, as
 * the C's atomics are (seq_cst read-modify-writes).  The C fuses each
 * "publish, then check" into one read-modify-write of the page's pin word
 * (core/pinword.h): a pin's fetch_add returns the state it raced with, a
 * conversion's compare-exchange returns the counts it found.  The model
 * splits each into two steps, publish then check, which allows every
 * interleaving of the fused form and more, so proving the split protocol
 * proves the C's.  -DMUTANT swaps the converter's steps (check the counts,
 * then publish CONVERTING): seed 002's speculative-reference race, which
 * must break invariant 2.  -DNOPARK refuses the touches a waiting
 * conversion's transit meets instead of parking them, and so leaves a
 * marker on a page a timed-out WAIT gives back to shared (the fuzzer's
 * second finding, docs/VERIFY.md), which must break invariant 1.
 *
 * Granularity.  A step is atomic here when nothing another thread does
 * could tell it apart from the same step split: a section under g->lock
 * held shared is one step guarded by "no writer" (what it reads under the
 * lock cannot change, and the lock-free operations that can run beside it
 * touch other variables or commute with it); under g->lock exclusive,
 * steps are split exactly where lock-free actors (pins, unpins, host
 * accesses) could observe the difference: each word's publish and check,
 * each zap, each undeny.  With tracking a collect holds g->lock shared
 * across steps, one a page; a fault's record-then-map stays one step
 * (split, its middle state - recorded, the entry as it was - only lets a
 * collect find the write in both places), and so does a zap's record,
 * zap and protection again (a write after the record lands on a page
 * recorded already, one after the zap faults and waits for the lock),
 * except where the record makes pin words a pin could find before the
 * state changes: the commit of a conversion to private.
 *
 * Failing zaps.  -DZAPFAIL lets the kernel refuse any zap a release or a
 * completion makes (the one the C must survive: a completion then must
 * not commit, and reports failure).  Invariant 1 then weakens to "no PTE
 * maps a private page"; -DIGNOREZAP commits anyway, as the first version
 * did, and must break it.
 *
 * Write tracking.  -DTRACK adds it (docs/DESIGN.md, "Write tracking"):
 * the view's entries are write-protected in the kernel's asynchronous
 * mode, every touch is a write, and a collector and the kernel join the
 * cast.  Per page, whether the view's entry reads written (a write lifts
 * the protection; the fault thread maps write-protected; a collect's scan
 * reports and protects again in one step; a zap takes the entry and the
 * range is protected again after it; the kernel may take an entry behind
 * the library's back, which then reads written if it was, until the page
 * faults again), and the library's own record (PW_WRITTEN, in the pin
 * word, which recording makes): every page a zap takes that the view may
 * map, every discard, every page that faults again while the view is
 * marked as mapping it.  A ghost bit per page says "written, not yet
 * reported"; a collect must report every page written before its first
 * step on the page, and a write that lands while it works on the page is
 * either reported by it or left for the next; once every actor is done,
 * a collect would report every page still owed.  -DMUTANT_NORECORD drops
 * the zap's record, -DMUTANT_SPLITSCAN reads the written entries and
 * protects them again in a second step, -DMUTANT_TAKEFIRST takes the
 * records before the scans: each must lose a write.  -DNOPUBLISH
 * converts pages no pin ever held without a transit, as conversions did
 * before tracking made the zap's record make pin words: a first pin finds
 * such a word without the lock and must break invariant 2.
 *
 * A lazy restore.  -DLAZY starts from one (docs/SNAPSHOT.md, section 4):
 * each page is data or a hole of the snapshot, none in the page cache
 * yet, the guest mapping registered for missing faults.  Per page, whether
 * it is in the page cache, l->filled (settled) and l->rec_of (a hole), and
 * a ghost bit, its contents in place.  Fills (fill_locked()) are steps
 * under l->mu: UFFDIO_COPY puts a page in the page cache with its contents
 * at once; a hole is settled as one, and given memory (a zero page) when a
 * toucher needs it.  Joining the cast: a filler (the background thread,
 * and finish(): the registration goes under g->lock exclusive, then every
 * guest fault is woken); the guest, touching the guest mapping - a page
 * not in the page cache is a missing fault that waits until the fault
 * thread fills and wakes it, then is tried again; and the fault thread's
 * guest faults (lazy_guest_fault(): no g->lock).  A view's fault fills its
 * window with g->lock held shared, then maps it; a pin fills its range
 * first; a discard settles its range as holes (lazy_forget()) before the
 * punch, which takes the pages out of the page cache.  -DTHP makes the two
 * pages one THP block, filled whole (a copy of the block from its first
 * page, each page already there skipped).  Checked: no view maps a page
 * before its contents are in place (at the map, and in the monitor); no
 * access of the guest's reaches one either; every guest fault is answered
 * - the fill the fault thread wakes it after leaves its page there - and
 * none is left waiting at the end.
 *
 * Post-copy: -DREMOTE (with -DLAZY) has the caller, not a file, bring a
 * data page's contents (lazy.c's LAZY_REMOTE): a receiver takes the
 * filler's place, bringing pages in any order - pushed, or answering a
 * fetch - each filled once its unit's pages have all come, waking the
 * guest's fault on it and every parked view touch; or, with -DABORT,
 * giving up at any moment (gmem_postcopy_abort(): every page still
 * missing settled bad - poisoned for the guest, refused to views, an
 * error for a pin).  Holes are settled from the start (no file to read
 * them from).  A fill of a unit whose pages have not all come does
 * nothing (-EINPROGRESS): the guest's fault is then left unanswered
 * (lazy_guest_fault(): its fill's UFFDIO_COPY wakes it), a view's touch
 * parks (lazy_park(): woken when pages settle), a pin waits.  Checked
 * besides the above: no view maps a page that has not come, no guest
 * access reads one, and no touch or fault is left waiting - neither when
 * every page comes nor after an abort.  -DMUTANT_PARK_LATE records a
 * view's touch as parked in a step of its own after finding its page
 * missing (no l->mu across the two): a receive between them wakes
 * nobody, and the touch waits for ever (an invalid end state).
 * -DMUTANT_FORGET_NOWAKE has a discard settle a page that has not come
 * without waking a guest fault left waiting on it, as lazy_forget() did
 * first: an abort then poisons and wakes only the pages still missing,
 * and the fault waits for ever.  -DMUTANT_ABORT_RUN wakes, as lazy_abort()
 * did first, only the pages it poisons, not their whole unit: on THP a
 * fault on a page a discard settled, waiting for the rest of its block,
 * is never woken.  -DMUTANT_COPY_NOWAKE (with -DTHP) has a block's fill wake
 * nobody unless the receive made it, as fill_unit() did first: a block
 * completed by a discard and filled by the merger leaves the fault on
 * its other page waiting.
 * -DMUTANT_MAP_BEFORE_FILL maps a view's
 * window, then fills it; -DMUTANT_GUEST_NOALLOC answers a guest's fault
 * without giving a hole memory; -DMUTANT_SKIP_BLOCK skips the rest of a THP
 * block at a page already there, as the first version of fill_unit() did:
 * each must fail.  Not modelled: records that do not check (poison, a
 * step like a fill), the hint, units of more pages than a THP block,
 * merging blocks, hugetlbfs (a discard there fills partial huge pages
 * first, then the same), write tracking beside a restore.
 *
 * Not modelled: allocation and other syscall failure (the fuzzer's fault
 * injection covers them), strict views (a check under the exclusive
 * lock), several views (each is zapped and undenied in the same lock hold,
 * the same way), the rwlock's writer preference (nobody waits for anything
 * while holding g->lock shared, so it cannot add a deadlock).  Of
 * tracking: its start and stop (exclusive, before and after everything
 * here), peeking collects (they clear nothing), collects that fail (they
 * record what they protected again), two collects at once (each write
 * goes to one of them), gmem_write() (a record after its copy, as a
 * discard's, but under the lock shared: the fetch-or and the collect's
 * fetch-and-clear are ordered either way), the guest mapping (no zap
 * takes its entries but a discard's, which records them), hugetlbfs
 * (scanned and recorded a huge page whole: more pages, the same steps),
 * and views unmapped (recorded whole before they go).
 *
 * Checked (../../shared/DESIGN.md's invariants; docs/VERIFY.md):
 *  1. whenever g->lock is free, no PTE maps a private page or an unpinned
 *     in-transit one (what gmem_audit() checks); no host access ever reaches
 *     a page while it is private; refusals (markers) only on pages not shared;
 *  2. no page a pin holds is ever private, and a conversion commits only
 *     when no pin holds its range;
 *  3. a conversion that fails leaves every page of its range as it found it;
 *  4, 5. contents and the guest mapping: no conversion step touches them
 *     (the model has no such step, as convert.c has no such call; zaps drop
 *     page-table entries, never contents), so they are not variables here;
 *  6. with -DTRACK, no write is lost: at every moment each page written
 *     and not yet reported is where the next collect looks (its view entry
 *     reads written and it is not private, or its record is set), and a
 *     collect reports every page written before its first step on the page;
 *  7. with -DLAZY, no view maps a page before its contents are in place,
 *     the guest reaches none either, and every guest fault is answered;
 * and: each deferred conversion ends (completes or is cancelled) exactly
 * once, its callback runs with no lock held; every actor finishes (no
 * deadlock; with -DNOTIMEOUT a WAIT returns only when its pins drop, so a
 * lost wakeup would hang it); with -DLIVENESS, "every actor eventually
 * finishes" holds under weak fairness (no livelock).
 */

#define NP 2 /* pages */
#define NT 2 /* transit slots: transits are disjoint and hold a page each */

#define SHARED 0
#define PRIVATE 1
#define CONV 2 /* GMEM_CONVERTING */

#define F_NONE 0
#define F_WAIT 1
#define F_DEFER 2
#define F_FAILED 3 /* a deferred one whose completion failed: TRANSIT_FAILED */

#define E_OK 0
#define E_BUSY 1
#define E_AGAIN 2
#define E_INPROGRESS 3
#define E_ACCES 4
#define E_BADMSG 5

#define NONE 255
#ifndef NOPS
#define NOPS 2 /* conversions the (first) converter makes */
#endif
#ifndef TOUCHES
#define TOUCHES 1
#endif
#ifndef CONVERTERS
#define CONVERTERS 1
#endif
#ifndef PINNERS
#define PINNERS 2
#endif
#ifndef DISCARDER
#define DISCARDER 1
#endif
#if TOUCHES > 0
#define TOUCHER 1
#else
#define TOUCHER 0
#endif
#ifndef COLLECTOR
#define COLLECTOR 0
#endif
#ifndef RECLAIM
#define RECLAIM 0
#endif
#ifndef TRACK
#undef COLLECTOR
#define COLLECTOR 0
#undef RECLAIM
#define RECLAIM 0
#endif
#ifdef LAZY
#ifndef GTOUCHES
#define GTOUCHES 1
#endif
#else
#undef GTOUCHES
#define GTOUCHES 0
#endif
#if GTOUCHES > 0
#define GUEST 2 /* the guest, and the fault thread's guest faults */
#else
#define GUEST 0
#endif
#ifdef LAZY
#define FILLER 1
#else
#define FILLER 0
#endif
#define NACTORS (CONVERTERS + PINNERS + TOUCHER + DISCARDER + COLLECTOR + RECLAIM + FILLER + GUEST)

/* ---- g->lock (the kernel's invalidate_lock); shared holders are single steps ---- */
bool writer;
byte owner = NONE; /* ghost: the pid holding it exclusive */
#if defined(TRACK) || defined(LAZY)
byte rd; /* holders of it shared across steps: a collect, a view's fault that fills */
#define NO_READER (rd == 0)
#else
#define NO_READER 1
#endif

inline wrlock()
{
	atomic { !writer && NO_READER -> writer = 1; owner = _pid }
}
inline wrunlock()
{
	atomic { owner = NONE; writer = 0 }
}

/* ---- g->wait_mu and g->wait_cv ---- */
bool mu;
bool asleep[2];   /* converters asleep on wait_cv */
byte pin_waiters;
byte transit_gen;

inline mutex_lock()
{
	atomic { !mu -> mu = 1 }
}
inline mutex_unlock()
{
	mu = 0
}
inline broadcast()
{
	asleep[0] = 0;
	asleep[1] = 0
}
/*
 * pthread_cond_(timed)wait: release the mutex and sleep in one step; wake
 * on a broadcast, spuriously, or (timedwait, unless -DNOTIMEOUT) at the
 * deadline; then take the mutex again.
 */
inline cond_wait(me, timed, timedout)
{
	atomic { asleep[me] = 1; mu = 0 };
	atomic {
		if
		:: !asleep[me] && !mu -> mu = 1
#ifndef NOSPURIOUS
		:: asleep[me] && !mu -> asleep[me] = 0; mu = 1
#endif
#ifndef NOTIMEOUT
		:: timed && asleep[me] && !mu -> asleep[me] = 0; mu = 1; timedout = 1
#endif
		fi
	}
}

/* ---- page states and pin words ---- */
byte st[NP];   /* g->states, the run map (under g->lock) */
bool leaf[NP]; /* the page's pin word exists */
byte ws[NP];   /* word: state */
byte sc[NP];   /* word: short-term pins */
byte lc[NP];   /* word: long-term pins */
bool disc[NP]; /* word: PW_DISCARDING */
byte held[NP]; /* ghost: pins their owners hold (not speculative counts) */

/* ---- the host view ---- */
bool pte[NP];    /* a present page-table entry */
bool mapped[NP]; /* view->mapped */
bool marker[NP]; /* the kernel's poison marker (or PROT_NONE, for SIGSEGV) */
bool denied[NP]; /* view->denied */

/* ---- a lazy restore (-DLAZY): struct lazy, and the page cache ---- */
#ifdef LAZY
bool present[NP]; /* the page is in the page cache */
bool hole[NP];    /* l->rec_of[p] == 0: a hole of the snapshot, or settled as one by a discard */
bool lz[NP];      /* l->filled: its contents are settled */
bool filled[NP];  /* ghost: its contents are in place - what it holds (or, not present,
		   * reads: zero) is what it must; a hole's from the start */
bool lactive = 1; /* g->lazy_active: the guest mapping registered for missing faults */
byte gq = NONE;   /* the guest's missing fault, queued for the fault thread */
bool gblk;        /* the guest's touch waits to be woken */
bool gdone;       /* the guest touches no more */
#ifdef REMOTE
bool arrived[NP]; /* l->arrived: its contents came, its unit not filled yet */
bool bad[NP];     /* l->bad: settled as never to come (an abort) */
bool vpark;       /* l->parked not empty: a view's touch waits to be woken */
byte gw = NONE;   /* the page the guest's fault waits on, left unanswered */
bool aborted;
bool refill;      /* l->refill: a unit may be complete with nothing to fill it */
/* a data page whose contents have not come: its fill would do nothing */
#define PENDING(p) (!lz[p] && !hole[p] && !arrived[p])
#ifdef THP
#define UNIT_PENDING(p) (PENDING(0) || PENDING(1))
#else
#define UNIT_PENDING(p) PENDING(p)
#endif
#define WPENDING(w) ((((w) & 1) && UNIT_PENDING(0)) || (((w) & 2) && UNIT_PENDING(1)))
#define WBAD(w) ((((w) & 1) && bad[0]) || (((w) & 2) && bad[1]))
/* lazy_forget(): parked view touches woken, and a guest fault on the pages */
#ifndef MUTANT_FORGET_NOWAKE
#define VWAKE vpark = 0; refill = 1; if :: gw != NONE && IN(gw, f, e) -> gblk = 0; gw = NONE :: else fi
#else
#define VWAKE vpark = 0; refill = 1
#endif
#define PARKED (parked || vparked)
#define NEVER_CAME(p) bad[p] /* a shared page refused: its contents never came */
#endif

/*
 * fill_locked() of page p, l->mu held: an unsettled page is filled by
 * UFFDIO_COPY - into the page cache with its contents at once - unless it
 * is a hole (then settled as one) or in the page cache already (-EEXIST:
 * it keeps what it has); then, if allocate, a hole gets memory
 * (UFFDIO_ZEROPAGE, -EEXIST if it has some).  One step: what others see
 * without l->mu is the page cache, each page of which a copy changes
 * atomically.
 * C: src/lazy.c fill_locked() #f8211f47
 * C: src/lazy.c fill_unit() #ba35d2fa
 * C: src/lazy.c allocate_hole() #88ffa925
 */
#ifndef THP
#ifndef REMOTE
#define FILL(p, alloc) \
	if :: !lz[p] && !hole[p] && !present[p] -> present[p] = 1; filled[p] = 1 :: else fi; \
	lz[p] = 1; \
	if :: (alloc) && hole[p] -> present[p] = 1 :: else fi
#else
/* post-copy: a page whose contents have not come stays as it is; a copy
 * wakes whoever waits on its unit (fill_unit()), whichever path made it */
#define FILL(p, alloc) \
	if :: !PENDING(p) -> \
		if :: !lz[p] && !hole[p] && !present[p] -> present[p] = 1; filled[p] = 1; \
			if :: gw == p -> gblk = 0; gw = NONE :: else fi; vpark = 0 \
		:: else fi; \
		lz[p] = 1; \
		if :: (alloc) && hole[p] && !bad[p] -> present[p] = 1 :: else fi \
	:: else fi
#endif
#else
/*
 * -DTHP: the two pages are one THP block, filled whole: if any of its
 * pages has data to come, one UFFDIO_COPY of the block from its first
 * page (the settled ones and holes as zeros), each page already there
 * skipped (-EEXIST: a hole's page a toucher got); then the block settled.
 * -DMUTANT_SKIP_BLOCK skips the rest of the block at a page already
 * there, as the first version did: the pages after it are settled unfilled.
 */
#define COPY_PAGE(q) present[q] = 1; if :: !lz[q] && !hole[q] -> filled[q] = 1 :: else fi
#ifndef MUTANT_SKIP_BLOCK
#define COPY_BLOCK \
	if :: !present[0] -> COPY_PAGE(0) :: else fi; \
	if :: !present[1] -> COPY_PAGE(1) :: else fi
#else
#define COPY_BLOCK \
	if :: !present[0] -> COPY_PAGE(0); if :: !present[1] -> COPY_PAGE(1) :: else fi \
	   :: else fi
#endif
#ifndef REMOTE
#define UNIT_READY 1
#define COPY_WAKE skip
#else
#define UNIT_READY (!UNIT_PENDING(0))
#ifndef MUTANT_COPY_NOWAKE
#define COPY_WAKE if :: gw != NONE -> gblk = 0; gw = NONE :: else fi; vpark = 0
#else
#define COPY_WAKE skip
#endif
#endif
#define FILL(p, alloc) \
	if :: !lz[p] && UNIT_READY -> \
		if :: (!lz[0] && !hole[0]) || (!lz[1] && !hole[1]) -> COPY_BLOCK; COPY_WAKE :: else fi; \
		lz[0] = 1; lz[1] = 1 \
	:: else fi; \
	if :: (alloc) && hole[p] && lz[p] -> present[p] = 1 :: else fi
#endif
/* lazy_fill() of the pages in bitmask w (on THP: their blocks, so both):
 * nothing once the restore is done
 * C: src/lazy.c lazy_fill() #ae1a8bb0 */
#ifdef THP
#define UNITS(w) 3
#else
#define UNITS(w) (w)
#endif
#define FILL_SET(w, alloc) if :: lactive -> \
	if :: UNITS(w) & 1 -> FILL(0, alloc) :: else fi; \
	if :: UNITS(w) & 2 -> FILL(1, alloc) :: else fi \
	:: else fi
#define RANGE_SET(f, e) ((IN(0, f, e) -> 1 : 0) + (IN(1, f, e) -> 2 : 0))
/* The fault thread maps the pages of bitmask w (UFFDIO_CONTINUE; on a
 * missing fault the backing allocates those with no page yet): each must
 * have its contents in place by then (the monitor checks it too). */
#define MAP_PAGE(q) assert(filled[q]); REFAULT(q); present[q] = 1; mapped[q] = 1; pte[q] = 1; MAP_WP(q)
#define MAP_SET(w) if :: (w) & 1 -> MAP_PAGE(0) :: else fi; if :: (w) & 2 -> MAP_PAGE(1) :: else fi
#endif

#ifndef REMOTE
#define VWAKE skip
#define PARKED parked
#define NEVER_CAME(p) 0
#endif

/* ---- g->transits ---- */
bool t_used[NT];
byte t_first[NT], t_end[NT], t_mode[NT], t_id[NT];
byte ids;      /* ghost: deferred conversions made */
byte reported; /* ghost: one bit per deferred conversion whose callback ran */
byte finished;

/* ---- write tracking (-DTRACK) ---- */
#ifdef TRACK
bool wr[NP];      /* the view's entry reads written: not write-protected (or empty after a write) */
bool rec[NP];     /* the library's record: PW_WRITTEN in the page's pin word */
bool written[NP]; /* ghost: written, and owed to a collect (see collector()) */

/*
 * Record page p as written: its pin word made (from the run map) if it
 * has none, then the bit.
 * C: src/track.c track_mark() #1333acfd
 * C: src/pin.c pages_mark() #56156f8f
 */
#define RECORD(p) if :: !leaf[p] -> leaf[p] = 1; ws[p] = st[p] :: else fi; rec[p] = 1
/*
 * What a zap takes that the view may map counts as written, before the
 * zap; the range is protected again after it.
 * C: src/view.c track_mapped() #c6f746cb
 * C: src/track.c track_after_zap() #7d305cbf
 */
#ifdef MUTANT_NORECORD
#define ZAP_RECORD(p) skip
#else
#define ZAP_RECORD(p) RECORD(p)
#endif
#define REPROTECT(p) wr[p] = 0
/* A write through the view's entry: it lifts the protection. */
#define WRITE(p) wr[p] = 1; written[p] = 1
/*
 * The fault thread maps write-protected (UFFDIO_CONTINUE_MODE_WP); a page
 * the view was marked as mapping faults only if the kernel took its entry,
 * maybe written: it counts as written first.
 * C: src/fault.c map_around() #54f4533f
 */
#define REFAULT(p) if :: mapped[p] -> RECORD(p) :: else fi
#define MAP_WP(p) wr[p] = 0
#else
#define WRITE(p) skip
#define REFAULT(p) skip
#define MAP_WP(p) skip
#endif

#define IN(p, f, e) ((p) >= (f) && (p) < (e))
#define COUNTS(p) (sc[p] + lc[p])
/* Invariant 1 at page p: gmem_audit()'s check. */
#define AUDIT_OK(p) (!pte[p] || st[p] == SHARED || (st[p] == CONV && COUNTS(p) > 0))

/*
 * One MADV_DONTNEED over the span of the marked pages of [f, e): clears
 * PTEs and markers alike, then the marks.
 * C: src/view.c views_zap() #250257dc
 * C: src/view.c zap_view() #09ff86de
 */
#ifdef TRACK
#define ZAP_PAGE(p) ZAP_RECORD(p); pte[p] = 0; marker[p] = 0; mapped[p] = 0; REPROTECT(p)
#else
#define ZAP_PAGE(p) pte[p] = 0; marker[p] = 0; mapped[p] = 0
#endif
#define ZAP_BODY(f, e) if \
	:: IN(0, f, e) && IN(1, f, e) && mapped[0] && mapped[1] -> ZAP_PAGE(0); ZAP_PAGE(1) \
	:: else -> \
		if :: IN(0, f, e) && mapped[0] -> ZAP_PAGE(0) :: else fi; \
		if :: IN(1, f, e) && mapped[1] -> ZAP_PAGE(1) :: else fi \
	fi
inline views_zap(f, e)
{
	d_step { ZAP_BODY(f, e) }
}

/* Tracking, what the view may map of the marked run counts as written first.
 * C: src/view.c views_undeny() #5cc64d74
 * C: src/view.c undeny_run() #ee68f59c */
#ifdef TRACK
#define UNDENY_PAGE(p) if :: mapped[p] -> ZAP_RECORD(p) :: else fi; \
	pte[p] = 0; marker[p] = 0; denied[p] = 0; REPROTECT(p)
#else
#define UNDENY_PAGE(p) pte[p] = 0; marker[p] = 0; denied[p] = 0
#endif
#define UNDENY_BODY(f, e) \
	if :: IN(0, f, e) && denied[0] -> UNDENY_PAGE(0) :: else fi; \
	if :: IN(1, f, e) && denied[1] -> UNDENY_PAGE(1) :: else fi

/*
 * state_replace(): the run map, then each existing word of [f, e) whose
 * state is from1 or from2: publish `to`, then check its counts.
 * Pages other threads could see between are separate steps.
 * C: src/state.c state_replace() #498dbadb
 */
#ifndef MUTANT
#define WORD_FIRST(p) if :: leaf[p] && (ws[p] == from1 || ws[p] == from2) -> sel = sel | (1 << p); ws[p] = to :: else fi
#define WORD_SECOND(p) if :: sel & (1 << p) -> \
	if :: sc[p] > 0 && s1 == NONE -> s1 = p :: else fi; \
	if :: lc[p] > 0 && s2 == NONE -> s2 = p :: else fi \
	:: else fi
#else
#define WORD_FIRST(p) if :: leaf[p] && (ws[p] == from1 || ws[p] == from2) -> sel = sel | (1 << p); \
	if :: sc[p] > 0 && s1 == NONE -> s1 = p :: else fi; \
	if :: lc[p] > 0 && s2 == NONE -> s2 = p :: else fi \
	:: else fi
#define WORD_SECOND(p) if :: sel & (1 << p) -> ws[p] = to :: else fi
#endif
#define RUNMAP(f, e, from1, from2, to) \
	if :: IN(0, f, e) && (st[0] == from1 || st[0] == from2) -> st[0] = to :: else fi; \
	if :: IN(1, f, e) && (st[1] == from1 || st[1] == from2) -> st[1] = to :: else fi
inline state_replace(f, e, from1, from2, to)
{
	atomic {
		RUNMAP(f, e, from1, from2, to);
		s1 = NONE; s2 = NONE; sel = 0;
		WORD_FIRST(f)
	};
	atomic {
		WORD_SECOND(f);
		if :: f + 1 < e -> WORD_FIRST(f + 1) :: else fi
	};
	atomic {
		if :: f + 1 < e -> WORD_SECOND(f + 1) :: else fi;
		sel = 0
	}
}
/* The same without learning the counts (the C passes no scan): a step a word. */
inline state_set(f, e, from1, from2, to)
{
	atomic {
		RUNMAP(f, e, from1, from2, to);
		if :: leaf[f] && (ws[f] == from1 || ws[f] == from2) -> ws[f] = to :: else fi
	};
	atomic {
		if :: f + 1 < e && leaf[f + 1] && (ws[f + 1] == from1 || ws[f + 1] == from2) -> ws[f + 1] = to :: else fi
	}
}

/* Pins on the in-transit pages of [f, e): s1 short, s2 long (first page, or NONE).
 * C: src/pin.c pins_scan() #703f2eb4 */
#define SCAN_PAGE(f, e, p) if :: IN(p, f, e) && leaf[p] && ws[p] == CONV -> \
	if :: sc[p] > 0 && s1 == NONE -> s1 = p :: else fi; \
	if :: lc[p] > 0 && s2 == NONE -> s2 = p :: else fi \
	:: else fi
#define SCAN(f, e) s1 = NONE; s2 = NONE; SCAN_PAGE(f, e, 0); SCAN_PAGE(f, e, 1)
inline pins_scan(f, e)
{
	d_step { SCAN(f, e) }
}

/*
 * Complete the deferred transits overlapping [cf, ce) that no pin holds:
 * the release that drops the last pin (the kernel's folio_put callback).
 * C: src/convert.c convert_complete_locked() #7ae199cc
 */
#define DEFER_OVERLAPS(t, f, e) (t_used[t] && t_mode[t] == F_DEFER && t_first[t] < (e) && (f) < t_end[t])
/* what a conversion cancels: a deferred transit, or one whose completion failed */
#define CANCEL_OVERLAPS(t, f, e) (t_used[t] && (t_mode[t] == F_DEFER || t_mode[t] == F_FAILED) && \
	t_first[t] < (e) && (f) < t_end[t])
/*
 * A zap the kernel may refuse (-DZAPFAIL): then nothing is unmapped, and
 * zf says so.  Without ZAPFAIL zaps always hold.
 */
#ifdef ZAPFAIL
#define MAY_ZAP(f, e) if :: d_step { ZAP_BODY(f, e); zf = 0 } :: zf = 1 fi
#else
#define MAY_ZAP(f, e) views_zap(f, e); zf = 0
#endif
inline complete_locked(cf, ce, done)
{
	ti = 0;
	do
	:: d_step {
		/* the next deferred transit overlapping [cf, ce), and its pins */
		if :: ti == 0 && !DEFER_OVERLAPS(0, cf, ce) -> ti = 1 :: else fi;
		if :: ti == 1 && !DEFER_OVERLAPS(1, cf, ce) -> ti = 2 :: else fi;
		if
		:: ti < NT ->
			tf = t_first[ti]; te = t_end[ti];
			s1 = NONE; s2 = NONE; SCAN_PAGE(tf, te, 0); SCAN_PAGE(tf, te, 1)
		:: else -> ti = 0
		fi
	   };
	   if
	   :: ti == 0 && tf == te -> break
	   :: tf != te && (s1 != NONE || s2 != NONE) ->
		d_step { ti++; tf = 0; te = 0; s1 = 0; s2 = 0 } /* not the last pin */
	   :: tf != te && s1 == NONE && s2 == NONE ->
		MAY_ZAP(tf, te);
		if
#ifndef IGNOREZAP
		:: zf ->
			/* never PRIVATE over a failed zap: reported, it stays, failed */
			d_step {
				done = done | (1 << t_id[ti]); t_mode[ti] = F_FAILED;
				ti++; tf = 0; te = 0; s1 = 0; s2 = 0; zf = 0
			}
#endif
		:: else ->
			state_set(tf, te, CONV, CONV, PRIVATE);
			d_step { done = done | (1 << t_id[ti]); t_used[ti] = 0; ti++; tf = 0; te = 0; s1 = 0; s2 = 0; zf = 0 }
		fi
	   fi
	od
}

/* The deferred conversions' callbacks, with no lock held.
 * C: src/convert.c convert_report() #a119955d */
#define REPORT(done) \
	assert(owner != _pid); \
	assert((reported & done) == 0); /* each ends once */ \
	reported = reported | done; \
	done = 0

/*
 * Drop one pin of a kind from [rf, re): a compare-exchange per word unless
 * the word is in transit; from there on under g->lock exclusive, zapping
 * pages its drop left idle and completing what the drop finished.  own:
 * the pages whose pin the caller held (the rest were speculative raises).
 * Ends the pinner: its last step is the release's last.
 * C: src/pin.c release() #bfc145af
 * C: src/pin.c release_fast() #df08776a
 */
#define DROP(p) if :: longterm -> lc[p]-- :: else -> sc[p]-- fi; \
	if :: own & (1 << p) -> held[p]-- :: else fi
inline release(rf, re, longterm)
{
	rp = rf;
	do
	:: atomic { rp < re && ws[rp] != CONV -> DROP(rp); rp++ }
	:: atomic { rp < re && ws[rp] == CONV -> slow = 1 }; break
	:: atomic { rp >= re }; break
	od;
	if
	:: slow ->
		/* C: src/pin.c release_locked() #c3240cea */
		wrlock();
		do
		:: atomic { rp < re ->
			DROP(rp);
			if :: ws[rp] == CONV && COUNTS(rp) == 0 -> idle = idle | (1 << rp) :: else fi;
			rp++ }
		:: atomic { rp >= re ->
			/* no pin left on an in-transit page: its I/O is over, unmap it */
			if
			:: idle == 3 -> ZAP_BODY(0, 2)
			:: idle == 1 -> ZAP_BODY(0, 1)
			:: idle == 2 -> ZAP_BODY(1, 2)
			:: else
			fi;
			idle = 0 }; break
#ifdef ZAPFAIL
		:: atomic { rp >= re -> idle = 0 }; break /* that zap refused (its error is ignored) */
#endif
		od;
		if
		:: t_used[0] || t_used[1] -> complete_locked(rf, re, done)
		:: else
		fi;
		wrunlock()
	:: else
	fi;
	/* wake converters waiting for pins, then run the callbacks, lock-free
	 * C: src/pin.c pins_wake_waiters() #6b37ecdd */
	atomic {
		if
		:: pin_waiters == 0
		:: pin_waiters > 0 && !mu -> broadcast()
		fi;
		REPORT(done);
		finished++
	}
}

/* A waiting conversion (WAIT) holds page p in transit. */
#define WAIT_HOLDS(t, p) (t_used[t] && t_mode[t] == F_WAIT && IN(p, t_first[t], t_end[t]))
#define WAITED(p) (WAIT_HOLDS(0, p) || WAIT_HOLDS(1, p))

/*
 * One touch of page p through the view: the kernel lets through what has
 * a PTE, signals where a marker is, and otherwise hands the fault to the
 * fault thread, which decides under g->lock shared.  mine: the toucher
 * holds a pin on p (its I/O must go through).  parked: the fault thread
 * left the touch unwoken until the waiting conversion ends (views_wake()).
 * C: src/fault.c handle_fault() #d54d92f4
 * C: src/convert.c transit_waiting_at() #425a77de
 */
inline touch(p, mine)
{
	do
#ifdef TRACK
	:: atomic { !PARKED && pte[p] -> assert(st[p] != PRIVATE); WRITE(p) }; break /* the access: a write */
#else
	:: atomic { !PARKED && pte[p] -> assert(st[p] != PRIVATE) }; break /* the access */
#endif
	:: atomic { !PARKED && !pte[p] && marker[p] ->
		assert(st[p] != SHARED || NEVER_CAME(p)); /* refused: only a page not shared */
		assert(!mine)            /* pinned I/O is never refused */
	   }; break
	:: atomic { parked && !WAITED(p) -> parked = 0 } /* woken: the access again */
#ifdef REMOTE
	:: atomic { vparked && !vpark -> vparked = 0 } /* woken: pages settled */
#endif
	:: atomic { !PARKED && !pte[p] && !marker[p] && !writer ->
		if
		:: st[p] == SHARED ->
			/* fault-around: the faulting page's run, minus what the view maps */
			/* C: src/fault.c map_window() #31733baf
			 * C: src/view.c view_mark_mapped() #4a5ccb6b */
#ifdef REMOTE
			/*
			 * post-copy: a page that has not come is asked for and the
			 * touch parked, in the step that found it missing (l->mu);
			 * else the window narrowed to the pages settled around it
			 * C: src/lazy.c lazy_park() #20ddc2bb
			 */
#ifndef MUTANT_PARK_LATE
			if
			:: UNIT_PENDING(p) -> vparked = 1; vpark = 1
			:: else ->
#else
			if
			:: UNIT_PENDING(p) -> late = 1
			:: else ->
#endif
				win = 1 << p;
				if :: !mapped[p] && st[1 - p] == SHARED && !mapped[1 - p] &&
				      !UNIT_PENDING(1 - p) -> win = 3 :: else fi;
				rd++
			fi
#elif defined(LAZY)
			/* the window now; filled, then mapped, below */
			win = 1 << p;
			if :: !mapped[p] && st[1 - p] == SHARED && !mapped[1 - p] -> win = 3 :: else fi;
			rd++
#elif defined(TRACK)
			/* write-protected; a marked page that faulted counts as written first */
			if
			:: !mapped[p] && st[1 - p] == SHARED && !mapped[1 - p] -> mapped[1 - p] = 1; pte[1 - p] = 1; MAP_WP(1 - p)
			:: else /* a marked page that faulted anyway (reclaimed): it alone */
			fi;
			REFAULT(p);
			mapped[p] = 1; pte[p] = 1; MAP_WP(p)
#else
			if
			:: !mapped[p] && st[1 - p] == SHARED && !mapped[1 - p] -> mapped[1 - p] = 1; pte[1 - p] = 1
			:: else /* a marked page that faulted anyway (reclaimed): it alone */
			fi;
			mapped[p] = 1; pte[p] = 1
#endif
		:: st[p] == CONV && leaf[p] && COUNTS(p) > 0 ->
			/* the I/O a transit waits for: this page alone */
			/* C: src/fault.c handle_fault() #d54d92f4 */
#ifdef LAZY
			win = 1 << p; rd++
#elif defined(TRACK)
			REFAULT(p);
			mapped[p] = 1; pte[p] = 1; MAP_WP(p)
#else
			mapped[p] = 1; pte[p] = 1
#endif
#ifndef NOPARK
		:: st[p] == CONV && !(leaf[p] && COUNTS(p) > 0) && WAITED(p) ->
			/* C: src/fault.c handle_fault() #d54d92f4 */
			assert(!mine);
			parked = 1 /* no mark: the outcome decides */
#endif
		:: else ->
			/* C: src/view.c views_deny() #4995f66f */
			marker[p] = 1; denied[p] = 1
		fi
	   };
#ifdef LAZY
	   /*
	    * A lazy restore's pages of the window are filled first, with
	    * g->lock still held shared (no conversion, no discard meanwhile),
	    * then mapped (UFFDIO_CONTINUE; on a missing fault the backing
	    * allocates what has no page yet).  -DMUTANT_MAP_BEFORE_FILL maps
	    * first: a page not yet filled is given memory (zeros) and mapped,
	    * and the fill after it finds the page there (-EEXIST).
	    * C: src/fault.c map_around() #54f4533f
	    */
#ifdef MUTANT_PARK_LATE
	   if :: late -> atomic { late = 0; vparked = 1; vpark = 1 } :: else fi;
#endif
	   if
	   :: win != 0 ->
#ifndef MUTANT_MAP_BEFORE_FILL
		atomic { FILL_SET(win, 1) };
#ifdef REMOTE
		/* a page that never came (an abort): refused, never mapped - the
		 * touched one alone if a neighbour in the window is the bad one */
		atomic {
			if
			:: bad[p] -> marker[p] = 1; denied[p] = 1
			:: !bad[p] && WBAD(win) -> MAP_SET(1 << p)
			:: else -> MAP_SET(win)
			fi;
			win = 0; rd-- }
#else
		atomic { MAP_SET(win); win = 0; rd-- }
#endif
#else
		atomic { MAP_SET(win) };
		atomic { FILL_SET(win, 1); win = 0; rd-- }
#endif
	   :: else
	   fi
#endif
	od
}

/*
 * gmem_pin(): per page, make the word (under g->lock shared), raise the
 * count (publish), then check the state; on a refusal back out of every
 * page raised.
 * C: src/pin.c gmem_pin() #8cec7152
 * C: src/pin.c pin_word() #4243772d
 */
#define RAISE(p) if :: longterm -> lc[p]++ :: else -> sc[p]++ fi
#define VERDICT(p) if \
	:: ws[p] == PRIVATE -> err = E_ACCES \
	:: ws[p] == CONV || disc[p] -> err = E_AGAIN \
	:: else -> held[p]++ \
	fi
inline pin(f, e, longterm, err)
{
#ifdef REMOTE
	/* post-copy: the pin waits for its pages (fill_waiting()); one that never came fails it */
	atomic { !WPENDING(RANGE_SET(f, e)) -> FILL_SET(RANGE_SET(f, e), 0);
		 if :: WBAD(RANGE_SET(f, e)) -> err = E_BADMSG :: else fi };
#elif defined(LAZY)
	/* a lazy restore's pages are in place before any I/O under the pin */
	atomic { FILL_SET(RANGE_SET(f, e), 0) };
#endif
	pp = f;
	do
	:: atomic { pp < e && err == E_OK && !leaf[pp] && !writer -> leaf[pp] = 1; ws[pp] = st[pp] }
	:: atomic { pp < e && err == E_OK && leaf[pp] -> RAISE(pp) };
	   atomic { VERDICT(pp); if :: err == E_OK -> own = own | (1 << pp) :: else fi; pp++ }
	:: atomic { pp >= e || err != E_OK }; break
	od
}

proctype pinner(byte f, e; bool longterm)
{
	byte err, pp, rp, ti, tf, te, s1, s2, sel, done, idle, own;
	bool slow, parked, zf;
#ifdef LAZY
	byte win;
#endif
#ifdef REMOTE
	bool vparked, late;
#endif

	pin(f, e, longterm, err);
	if
	:: err == E_OK ->
		touch(f, 1); /* the I/O */
		pp = e
	:: else /* back out of the pages raised, the refused one included */
	fi;
	release(f, pp, longterm)
}

proctype toucher(byte p1, p2)
{
	bool parked;
#ifdef LAZY
	byte win;
#endif
#ifdef REMOTE
	bool vparked, late;
#endif

	touch(p1, 0);
#if TOUCHES > 1
	touch(p2, 0);
#endif
	finished++
}

#ifdef LAZY
/*
 * The background filler: l->mu from unit to unit, each unit an unsettled
 * page (from the hint on in the C; any here), filled as a fault would,
 * without allocating holes.  Once every page is settled, finish(): under
 * g->lock exclusive the guest mapping's registration for missing faults
 * goes (the kernel answers them from then on), then every guest fault
 * that raced it is woken.
 * C: src/lazy.c filler_main() #87985bff
 * C: src/lazy.c finish() #0aa968c3
 */
proctype filler()
{
	do
	:: atomic { !lz[0] -> FILL(0, 0) }
	:: atomic { !lz[1] -> FILL(1, 0) }
	:: atomic { lz[0] && lz[1] }; break
	od;
	atomic { !writer && NO_READER -> lactive = 0 };
	atomic { gblk = 0; finished++ }
}


/*
 * The guest's touches of the guest mapping (KVM's on its behalf are the
 * same): a page in the page cache is reached at once; a missing one,
 * while the restore fills, is a missing fault that waits until the fault
 * thread wakes it, then is tried again; after the restore, the kernel
 * gives a missing page memory itself.
 */
#ifdef REMOTE
#define NOT_BAD(p) !bad[p]
#else
#define NOT_BAD(p) 1
#endif
inline gtouch(p)
{
	do
	:: atomic { !gblk && present[p] -> assert(filled[p]) }; break /* the access */
	:: atomic { !gblk && !present[p] && NOT_BAD(p) && lactive -> assert(gq == NONE); gq = p; gblk = 1 }
	:: atomic { !gblk && !present[p] && !lactive -> present[p] = 1; assert(filled[p]) }; break
#ifdef REMOTE
	:: atomic { !gblk && !present[p] && bad[p] }; break /* poisoned: SIGBUS, nothing read */
#endif
	od
}
proctype guest(byte p1, p2)
{
	gtouch(p1);
#if GTOUCHES > 1
	gtouch(p2);
#endif
	atomic { gdone = 1; finished++ }
}

/*
 * The fault thread's guest faults: lazy_guest_fault() fills the page's
 * unit, holes given memory, with no g->lock - and the page is there then:
 * the fault is answered (a discard may take the page again before the
 * touch is tried again; it faults again, and is answered again) - then
 * wakes the touch, whatever happened.  -DMUTANT_GUEST_NOALLOC fills
 * without giving holes memory: a touch of a hole faults for as long as
 * the restore lasts.
 * C: src/fault.c handle_fault() #d54d92f4
 * C: src/lazy.c lazy_guest_fault() #ae0d45cc
 */
#ifdef MUTANT_GUEST_NOALLOC
#define GUEST_ALLOC 0
#else
#define GUEST_ALLOC lactive
#endif
#ifdef THP
#define FILL_UNIT_OF(p, alloc) FILL(0, alloc); FILL(1, alloc)
#else
#define FILL_UNIT_OF(p, alloc) FILL(p, alloc)
#endif
proctype faulter()
{
	byte gp;

	do
#ifndef REMOTE
	:: atomic { gq != NONE ->
		gp = gq; gq = NONE;
		if :: lactive -> FILL_UNIT_OF(gp, GUEST_ALLOC); assert(present[gp]) :: else fi };
	   atomic { gblk = 0; gp = 0 } /* uffd_wake() */
#else
	/* a page that has not come: asked for, the fault left unanswered (its fill wakes it) */
	:: atomic { gq != NONE ->
		gp = gq; gq = NONE;
		if :: lactive -> FILL_UNIT_OF(gp, GUEST_ALLOC) :: else fi;
		if
		:: lactive && UNIT_PENDING(gp) -> gw = gp; gp = NONE
		:: else -> assert(present[gp] || bad[gp] || !lactive)
		fi };
	   if :: gp != NONE -> atomic { gblk = 0; gp = 0 } :: else -> gp = 0 fi /* uffd_wake() */
#endif
	:: atomic { gq == NONE && gdone -> finished++ }; break
	od
}
#endif

#ifdef REMOTE
/*
 * Post-copy's source and receiver: each data page's contents come once,
 * in any order, each in a step of l->mu - put in the inbox, the unit
 * filled if all of its pages have come (UFFDIO_COPY wakes a guest fault
 * on it), every parked view touch woken.  With -DABORT it may give up at
 * any moment instead: every page still missing settled bad, poisoned
 * and woken.  Then, every page settled, finish() as the filler's - but
 * not after an abort (the registration and the poison stay).
 * C: src/lazy.c lazy_receive() #9c8d03e6
 * C: src/lazy.c lazy_abort() #fbf8c087
 * C: src/lazy.c merger_main() #9fc60f1d
 * C: src/lazy.c refill() #5186d641
 */
#ifdef THP
#define UNIT_HAS(u, q) 1
#ifndef MUTANT_ABORT_RUN
#define UNIT_UNSETTLED(q) (!lz[0] || !lz[1])
#else
#define UNIT_UNSETTLED(q) !lz[q]
#endif
#else
#define UNIT_HAS(u, q) ((u) == (q))
#define UNIT_UNSETTLED(q) !lz[q]
#endif
#define RECEIVE(p) \
	arrived[p] = 1; \
	FILL_UNIT_OF(p, 0); \
	if :: gw != NONE && UNIT_HAS(p, gw) && lz[gw] -> gblk = 0; gw = NONE :: else fi; \
	vpark = 0
proctype receiver()
{
	do
	:: atomic { PENDING(0) && !aborted -> RECEIVE(0) }
	:: atomic { PENDING(1) && !aborted -> RECEIVE(1) }
	/* the merger's refill: a unit complete since (a discard) filled, its waiters woken */
	:: atomic { refill && !aborted -> refill = 0; FILL(0, 0); FILL(1, 0) }
#ifdef ABORT
	:: atomic { !aborted && (!lz[0] || !lz[1]) ->
		aborted = 1;
		/* the pages still missing poisoned, their units woken: a fault on one */
		if :: gw != NONE && UNIT_UNSETTLED(gw) -> gblk = 0; gw = NONE :: else fi;
		if :: !lz[0] -> lz[0] = 1; bad[0] = 1 :: else fi;
		if :: !lz[1] -> lz[1] = 1; bad[1] = 1 :: else fi;
		vpark = 0 }
#endif
	:: atomic { lz[0] && lz[1] }; break
	od;
	if
	:: !aborted ->
		atomic { !writer && NO_READER -> lactive = 0 };
		atomic { gblk = 0; gw = NONE; finished++ }
	:: else -> finished++
	fi
}
#endif

#ifdef TRACK
/*
 * gmem_track_collect() of [f, e), not peeking, with g->lock held shared
 * throughout (so no conversion, discard or unpin in transit runs beside
 * it; writers, pins and the fault thread do): PAGEMAP_SCAN over the view,
 * which reports each page's written entry and protects it again in one
 * step (PM_SCAN_WP_MATCHING; a private page's entry is a refusal's mark,
 * never reported), then each page's record taken (an atomic
 * fetch-and-clear).
 * C: src/track.c gmem_track_collect() #217a3d6f
 * C: src/track.c collect_scans() #bb1efa3d
 * C: src/track.c bitmap_run() #da51975b
 * C: src/pin.c pages_take() #a6861ad1
 * C: src/os/pagemap.c pagemap_written() #acdcd11c
 *
 * What it must report (the ghost written[]): every page written before the
 * collect's first step on that page; a write landing between its first
 * and last step on a page may be reported by it or left for the next
 * collect (then the next owes it: put back in written[] unless this one
 * reported the page); a write after its last step on the page is the
 * next collect's.
 */
#define FIRST(p) if :: written[p] -> owed = owed | (1 << (p)); written[p] = 0 :: else fi
#define LAST(p) if :: written[p] -> either = either | (1 << (p)); written[p] = 0 :: else fi
#define SCAN_READ(p) if :: wr[p] && st[p] != PRIVATE -> told = told | (1 << (p)) :: else fi
#define TAKE(p) if :: leaf[p] && rec[p] -> told = told | (1 << (p)); rec[p] = 0 :: else fi
#ifndef MUTANT_TAKEFIRST
#ifndef MUTANT_SPLITSCAN
/* scan and protect again in one step: the kernel does it entry by entry under its lock */
#define SCANS(p) atomic { FIRST(p); SCAN_READ(p); REPROTECT(p) }
#else
/* read the written entries, then protect them again: a write between is lost */
#define SCANS(p) atomic { FIRST(p); SCAN_READ(p) }
#endif
#define TAKES(p) atomic { LAST(p); TAKE(p) }
#else
/* the records taken before the scans */
#define TAKES(p) atomic { FIRST(p); TAKE(p) }
#define SCANS(p) atomic { LAST(p); SCAN_READ(p); REPROTECT(p) }
#endif
proctype collector(byte f, e)
{
	byte owed, either, told;

	atomic { !writer -> rd++ }; /* views_lock(g, false) */
#ifndef MUTANT_TAKEFIRST
	SCANS(f);
	if :: f + 1 < e -> SCANS(f + 1) :: else fi;
#ifdef MUTANT_SPLITSCAN
	atomic { REPROTECT(f); if :: f + 1 < e -> REPROTECT(f + 1) :: else fi };
#endif
	TAKES(f);
	if :: f + 1 < e -> TAKES(f + 1) :: else fi;
#else
	TAKES(f);
	if :: f + 1 < e -> TAKES(f + 1) :: else fi;
	SCANS(f);
	if :: f + 1 < e -> SCANS(f + 1) :: else fi;
#endif
	atomic {
		rd--;
		assert((owed & ~told) == 0); /* no write before it began is missed */
		if :: (either & 1) && !(told & 1) -> written[0] = 1 :: else fi;
		if :: (either & 2) && !(told & 2) -> written[1] = 1 :: else fi;
		owed = 0; either = 0; told = 0;
		finished++
	}
}

/*
 * The kernel takes a view's entry behind the library's back (reclaim, a
 * THP split by a discard, or merged by a collapse), once: a write-protected
 * entry leaves a marker, a written one an empty entry, which PAGEMAP_SCAN
 * reports as written - either way wr[] stays - and the library's
 * view->mapped still marks the page.
 */
proctype kernel()
{
	if
	:: atomic { pte[0] -> pte[0] = 0; finished++ }
	:: atomic { pte[1] -> pte[1] = 0; finished++ }
	:: atomic { finished++ }
	fi
}
#endif

/*
 * gmem_discard(): hold pins off the words (publish), learning their pins
 * in the same step (check; the model takes two steps, which is weaker),
 * punch only if none holds one (huge_punch(): a THP block's page-cache
 * lookup first, which touches no word).  The same hold
 * guards a conversion on hugetlbfs, whose zap of a whole huge page must
 * see every pin on it (to_private_huge(): not modelled apart, it is this
 * protocol with a state change in place of the punch).
 * C: src/discard.c gmem_discard() #419e8eba
 * C: src/pin.c pins_hold() #6728a0ac
 * C: src/pin.c pins_release_hold() #8c914cee
 * C: src/convert.c to_private_huge() #9286b0fc
 */
#ifdef TRACK
#define DISCARD_RECORD(p) RECORD(p); written[p] = 1
#else
#define DISCARD_RECORD(p) skip
#endif
proctype discarder(byte f, e)
{
	byte zp;
	bool pinned;

	wrlock();
	zp = f;
	do
	:: atomic { zp < e && leaf[zp] -> disc[zp] = 1 };
	   atomic { if :: COUNTS(zp) > 0 -> pinned = 1 :: else fi; zp++ }
	:: atomic { zp < e && !leaf[zp] -> zp++ }
	:: atomic { zp >= e }; break
	od;
	if
	:: !pinned ->
#ifdef LAZY
		/* a lazy restore's pages settled as holes first, never filled
		 * from the file after (l->mu: a fill under way ends first)
		 * C: src/lazy.c lazy_forget() #f67301f7 */
		d_step {
			if :: lactive ->
				if :: IN(0, f, e) -> lz[0] = 1; hole[0] = 1; filled[0] = 1 :: else fi;
				if :: IN(1, f, e) -> lz[1] = 1; hole[1] = 1; filled[1] = 1 :: else fi;
				VWAKE
			:: else fi
		};
#define PUNCH(p) present[p] = 0
#else
#define PUNCH(p) skip
#endif
		/* every mapping loses the pages (markers stay); contents are zero:
		 * tracking, a write the discard records */
		d_step {
			if :: IN(0, f, e) -> pte[0] = 0; mapped[0] = 0; PUNCH(0); DISCARD_RECORD(0) :: else fi;
			if :: IN(1, f, e) -> pte[1] = 0; mapped[1] = 0; PUNCH(1); DISCARD_RECORD(1) :: else fi
		}
	:: else
	fi;
	d_step { disc[0] = 0; disc[1] = 0; zp = 0 };
	wrunlock();
	finished++
}

/*
 * gmem_convert().
 * C: src/convert.c gmem_convert() #e1b19edb
 */
#if defined(TRACK) && !defined(NOPUBLISH)
#define TRACKING 1
#else
#define TRACKING 0
#endif
proctype converter(byte me; byte nops)
{
	byte f, e, to, flags, err, busy, slot, gen, n, b0, b1;
	byte rp, ti, tf, te, s1, s2, sel, cancelled;
	bool timedout, from_transit, waiting;

	do
	:: atomic { n < nops ->
		if
		:: f = 0; e = 1
		:: f = 1; e = 2
		:: f = 0; e = 2
		fi;
		if
		:: to = SHARED; flags = F_NONE
		:: to = PRIVATE; flags = F_NONE
#ifndef PLAIN
		:: to = PRIVATE; flags = F_WAIT
		:: to = PRIVATE; flags = F_DEFER
#endif
		fi;
		err = E_OK; busy = NONE }

		/* g->lock exclusive, once no waiting conversion overlaps the range
		 * C: src/convert.c lock_range() #8a13195e */
		do
		:: atomic { !writer && NO_READER -> writer = 1; owner = _pid;
			waiting = (t_used[0] && t_mode[0] == F_WAIT && t_first[0] < e && f < t_end[0]) ||
				  (t_used[1] && t_mode[1] == F_WAIT && t_first[1] < e && f < t_end[1]);
			if :: waiting -> gen = transit_gen; owner = NONE; writer = 0 :: else fi };
		   if
		   :: !waiting -> break
		   :: waiting ->
			mutex_lock();
			do
			:: transit_gen == gen -> cond_wait(me, 0, timedout)
			:: else -> break
			od;
			atomic { mu = 0; gen = 0; waiting = 0 }
		   fi
		od;

		/* first what can fail: clear every overlapping deferred transit's
		 * marks; then give their pages back
		 * C: src/convert.c cancel_deferred() #8b558f56 */
		atomic { if :: CANCEL_OVERLAPS(0, f, e) -> UNDENY_BODY(t_first[0], t_end[0]) :: else fi };
		d_step { if :: CANCEL_OVERLAPS(1, f, e) -> UNDENY_BODY(t_first[1], t_end[1]) :: else fi };
		do
		:: d_step {
			if :: ti == 0 && !CANCEL_OVERLAPS(0, f, e) -> ti = 1 :: else fi;
			if :: ti == 1 && !CANCEL_OVERLAPS(1, f, e) -> ti = 2 :: else fi;
			if
			:: ti < NT ->
				/* C: src/convert.c revert() #d3ded392 */
				tf = t_first[ti]; te = t_end[ti];
				RUNMAP(tf, te, CONV, CONV, SHARED);
				if :: leaf[tf] && ws[tf] == CONV -> ws[tf] = SHARED :: else fi
			:: else -> ti = 0; b0 = st[0]; b1 = st[1] /* invariant 3 compares with these */
			fi
		   };
		   if
		   :: tf == te -> break
		   :: else ->
			d_step {
				if :: tf + 1 < te && leaf[tf + 1] && ws[tf + 1] == CONV -> ws[tf + 1] = SHARED :: else fi;
				/* a failed one reported its end already */
				if :: t_mode[ti] != F_FAILED -> cancelled = cancelled | (1 << t_id[ti]) :: else fi;
				t_used[ti] = 0; ti++; tf = 0; te = 0
			}
		   fi
		od;

		if
		:: to == SHARED ->
			/* C: src/convert.c to_shared() #b897deb4 */
			atomic {
				UNDENY_BODY(f, e);
				RUNMAP(f, e, PRIVATE, PRIVATE, SHARED);
				if :: leaf[f] && ws[f] == PRIVATE -> ws[f] = SHARED :: else fi
			};
			atomic { if :: f + 1 < e && leaf[f + 1] && ws[f + 1] == PRIVATE -> ws[f + 1] = SHARED :: else fi }
		:: to == PRIVATE && !leaf[f] && !(f + 1 < e && leaf[f + 1]) && !TRACKING ->
			/* no page was ever pinned, and none can be while we hold the lock
			 * C: src/convert.c to_private() #42875ece */
			skip
		:: to == PRIVATE && (leaf[f] || (f + 1 < e && leaf[f + 1]) || TRACKING) ->
			/* (tracking: always, for the zap's record makes words that
			 * a pin finds without the lock) */
			/* publish CONVERTING, then settle with the pins it found
			 * C: src/convert.c publish() #26b9a38f */
			from_transit = 1;
			state_replace(f, e, SHARED, SHARED, CONV);
			atomic {
				if
				:: s2 != NONE -> busy = s2; err = E_BUSY
				:: s2 == NONE && s1 != NONE && flags == F_NONE -> busy = s1; err = E_AGAIN
				:: else -> busy = s1
				fi;
				s1 = 0; s2 = 0;
				if
				:: err != E_OK -> /* revert, in the same steps as a publish */
					RUNMAP(f, e, CONV, CONV, SHARED);
					if :: leaf[f] && ws[f] == CONV -> ws[f] = SHARED :: else fi
				:: err == E_OK && busy != NONE ->
					/* in transit: only the pinned I/O may reach the pages now */
					ZAP_BODY(f, e);
					if :: !t_used[0] -> slot = 0 :: else -> assert(!t_used[1]); slot = 1 fi;
					t_used[slot] = 1; t_first[slot] = f; t_end[slot] = e; t_mode[slot] = flags;
					busy = NONE;
					if
					:: flags == F_DEFER -> t_id[slot] = ids; ids++; err = E_INPROGRESS
					:: else -> waiting = 1 /* WAIT: below */
					fi
				:: else
				fi
			};
			if
			:: err == E_BUSY || err == E_AGAIN ->
				atomic { if :: f + 1 < e && leaf[f + 1] && ws[f + 1] == CONV -> ws[f + 1] = SHARED :: else fi }
			:: waiting ->
				/* sleep, g->lock released, until no pin holds the range
				 * C: src/convert.c wait_for_pins() #d1c6355f */
				atomic { owner = NONE; writer = 0 };
				atomic { !mu -> mu = 1; pin_waiters++ };
				do
				:: pins_scan(f, e);
				   if
				   :: s1 == NONE || timedout -> break
				   :: else -> cond_wait(me, 1, timedout)
				   fi
				od;
				atomic { pin_waiters--; timedout = 0; waiting = 0; s1 = 0; s2 = 0; mu = 0 };
				atomic { !writer && NO_READER -> writer = 1; owner = _pid; t_used[slot] = 0 };
				/* C: src/convert.c transit_gen_bump() #e8fd2803 */
				atomic { !mu -> transit_gen++; broadcast(); SCAN(f, e) };
				if
				:: s1 == NONE
				:: else -> /* still pinned: give the range back */
					/* no marks to clear: touches meanwhile were parked,
					 * and the invariant's "no marker on a shared page"
					 * checks that none was made
					 * C: src/convert.c revert() #d3ded392 */
					atomic {
						busy = s1; err = E_AGAIN; s1 = 0; s2 = 0;
						RUNMAP(f, e, CONV, CONV, SHARED);
						if :: leaf[f] && ws[f] == CONV -> ws[f] = SHARED :: else fi
					};
					atomic { if :: f + 1 < e && leaf[f + 1] && ws[f + 1] == CONV -> ws[f + 1] = SHARED :: else fi }
				fi
			:: else
			fi
		fi;
		if
		:: to == PRIVATE && err == E_OK ->
			/* commit: zap (pinned pages may have been mapped for their I/O
			 * during a WAIT), then PRIVATE
			 * C: src/convert.c to_private() #42875ece */
#ifdef TRACK
			/* the zap's record first, a step of its own: it makes pin
			 * words, which pins find without the lock */
			d_step {
				if :: IN(0, f, e) && mapped[0] -> ZAP_RECORD(0) :: else fi;
				if :: IN(1, f, e) && mapped[1] -> ZAP_RECORD(1) :: else fi
			};
#endif
			atomic {
				ZAP_BODY(f, e);
				assert(!IN(0, f, e) || held[0] == 0); /* invariant 2: nothing holds it */
				assert(!IN(1, f, e) || held[1] == 0);
				if
				:: from_transit -> RUNMAP(f, e, CONV, CONV, PRIVATE)
				:: else -> RUNMAP(f, e, SHARED, SHARED, PRIVATE)
				fi;
				if :: leaf[f] && ws[f] == (from_transit -> CONV : SHARED) -> ws[f] = PRIVATE :: else fi
			};
			atomic { if :: f + 1 < e && leaf[f + 1] && ws[f + 1] == (from_transit -> CONV : SHARED) -> ws[f + 1] = PRIVATE :: else fi }
		:: else
		fi;

		/* invariant 3 and each answer's promise; unlock; callbacks lock-free */
		atomic {
			if
			:: err == E_OK ->
				assert(!IN(0, f, e) || st[0] == to);
				assert(!IN(1, f, e) || st[1] == to)
			:: err == E_INPROGRESS ->
				assert(!IN(0, f, e) || st[0] != SHARED);
				assert(!IN(1, f, e) || st[1] != SHARED)
			:: else ->
				assert(busy != NONE);
				assert(!IN(0, f, e) || st[0] == b0);
				assert(!IN(1, f, e) || st[1] == b1)
			fi;
			owner = NONE; writer = 0;
			REPORT(cancelled);
			n++;
			f = 0; e = 0; to = 0; flags = 0; err = 0; busy = 0; slot = 0;
			b0 = 0; b1 = 0; from_transit = 0
		}
	:: atomic { n >= nops -> finished++ }; break
	od
}

/*
 * What must hold in every state, checked as soon as it fails.  With zaps
 * that may fail, an in-transit page can stay mapped (nothing can unmap
 * it); what must still hold is that no private page is.
 */
#ifdef ZAPFAIL
#define MAPPED_OK(p) (!pte[p] || st[p] != PRIVATE)
#else
#define MAPPED_OK(p) AUDIT_OK(p)
#endif
#ifdef TRACK
/* A page written and owed to the next collect is where that collect looks:
 * its view entry reads written (and it is not private), or it is recorded. */
#define NOT_LOST(p) (!written[p] || (wr[p] && st[p] != PRIVATE) || (leaf[p] && rec[p]))
#else
#define NOT_LOST(p) 1
#endif
#ifdef LAZY
/* No view maps a page before its contents are in place. */
#define FILLED_OK(p) (!pte[p] || filled[p])
#else
#define FILLED_OK(p) 1
#endif
#define ALWAYS(p) ((writer || MAPPED_OK(p)) && FILLED_OK(p) && \
	(held[p] == 0 || st[p] != PRIVATE) && \
	(!marker[p] || st[p] != SHARED || NEVER_CAME(p)) && \
	(writer || !leaf[p] || ws[p] == st[p]) && \
	NOT_LOST(p))
active proctype monitor()
{
end:
	atomic { !(ALWAYS(0) && ALWAYS(1)) ->
		/* the clause that broke, named in the counterexample */
		assert(writer || !pte[0] || st[0] != PRIVATE);
		assert(writer || !pte[1] || st[1] != PRIVATE);
		assert(!marker[0] || st[0] != SHARED || NEVER_CAME(0));
		assert(!marker[1] || st[1] != SHARED || NEVER_CAME(1));
		assert(NOT_LOST(0));
		assert(NOT_LOST(1));
		assert(FILLED_OK(0)); /* !pte || filled */
		assert(FILLED_OK(1));
		assert(false)
	}
}

/* Once every actor is done: nothing pending, every deferral ended once. */
inline final()
{
	(finished == NACTORS);
	d_step {
		/* in transit at the end: only a failed deferral's pages, which wait
		 * for a conversion to cancel it */
#define FAILED_HOLDS(t, p) (t_used[t] && t_mode[t] == F_FAILED && IN(p, t_first[t], t_end[t]))
		assert(held[0] == 0 && sc[0] == 0 && lc[0] == 0);
		assert(held[1] == 0 && sc[1] == 0 && lc[1] == 0);
		assert(st[0] != CONV || FAILED_HOLDS(0, 0) || FAILED_HOLDS(1, 0));
		assert(st[1] != CONV || FAILED_HOLDS(0, 1) || FAILED_HOLDS(1, 1));
		assert((!t_used[0] || t_mode[0] == F_FAILED) && (!t_used[1] || t_mode[1] == F_FAILED));
		assert(reported == (1 << ids) - 1);
		assert(!writer && !mu && pin_waiters == 0);
#if defined(LAZY) && !defined(REMOTE)
		/* every page settled and in place, the restore done, and no
		 * guest fault left waiting */
		assert(lz[0] && lz[1] && filled[0] && filled[1] && !lactive);
		assert(!gblk && gq == NONE && rd == 0);
#endif
#ifdef REMOTE
		/* every page settled - in place, or (an abort) bad - and no fault
		 * or touch left waiting */
		assert(lz[0] && lz[1] && (aborted || (filled[0] && filled[1] && !lactive)));
		assert(!gblk && gq == NONE && gw == NONE && rd == 0 && !vpark);
#endif
#ifdef TRACK
		/* no write lost: a collect now would report every page still owed */
		assert(NOT_LOST(0) && NOT_LOST(1));
		assert(rd == 0)
#endif
	}
}

/*
 * The cast (verify.sh checks several; every one exhaustively):
 *   CONVERTERS 1 or 2: the first makes NOPS conversions, the second one;
 *   PINNERS 0..2: the first short-term, the second either kind;
 *   TOUCHES 0..2: host touches of pages chosen at will;
 *   DISCARDER 0 or 1;
 *   PLAIN: conversions without WAIT or DEFER;
 *   with TRACK, COLLECTOR 0 or 1: a collect of a range (and, once every
 *   actor is done, what a last one would report); RECLAIM 0 or 1: the
 *   kernel taking an entry;
 *   with LAZY, GTOUCHES 0..2: the guest's touches (both pages, in either
 *   order), with the fault thread for them; the filler always.
 * Every actor's range (and the pages touched) is chosen at will too.
 */
#define RANGE(f, e) if :: f = 0; e = 1 :: f = 1; e = 2 :: f = 0; e = 2 fi

init {
	byte f1, e1, f2, e2, f3, e3, p1, p2;
	bool lt;

	/* every actor's arguments, chosen in one step */
	atomic {
		RANGE(f1, e1);
		run converter(0, NOPS);
#if CONVERTERS > 1
		run converter(1, 1);
#endif
#if PINNERS > 0
		run pinner(f1, e1, 0);
#endif
#if PINNERS > 1
		RANGE(f2, e2);
		if :: lt = 0 :: lt = 1 fi;
		run pinner(f2, e2, lt);
#endif
#if TOUCHES > 0
		if :: p1 = 0 :: p1 = 1 fi;
#if TOUCHES > 1
		if :: p2 = 0 :: p2 = 1 fi;
#endif
		run toucher(p1, p2);
#endif
#if DISCARDER
		RANGE(f3, e3);
		run discarder(f3, e3);
#endif
#if COLLECTOR
		RANGE(f3, e3);
		run collector(f3, e3);
#endif
#if RECLAIM
		run kernel();
#endif
#ifdef LAZY
		/* a page of the snapshot is data or a hole */
		if :: skip :: hole[0] = 1; filled[0] = 1 fi;
		if :: skip :: hole[1] = 1; filled[1] = 1 fi;
#ifndef REMOTE
		run filler();
#else
		/* settled from the start: a hole (on THP: a block of holes) */
#ifdef THP
		if :: hole[0] && hole[1] -> lz[0] = 1; lz[1] = 1 :: else fi;
#else
		lz[0] = hole[0]; lz[1] = hole[1];
#endif
		run receiver();
#endif
#if GTOUCHES > 0
		if :: p1 = 0 :: p1 = 1 fi;
		p2 = 1 - p1;
		run guest(p1, p2);
		run faulter();
#endif
#endif
		f1 = 0; e1 = 0; f2 = 0; e2 = 0; f3 = 0; e3 = 0; p1 = 0; p2 = 0; lt = 0
	}
	final()
}

#ifdef LIVENESS
ltl done { <> (finished == NACTORS) }
#endif
