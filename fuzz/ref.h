/* SPDX-License-Identifier: MIT */
/*
 * ref.h - gmem's contract as a plain page array: the reference model.
 *
 * No kernel, no locks, no run maps: each call of the contract (gmem.h) as
 * the header says it behaves, for one thread calling at a time.  The
 * fuzzer runs the library and this side by side and compares every
 * result, error offset, callback and page.  Ranges are in pages here.
 */
#ifndef GMEM_FUZZ_REF_H
#define GMEM_FUZZ_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REF_MAX_VIEWS 8
#define REF_MAX_TRANSITS 64
#define REF_MAX_EVENTS 64

/*
 * Why write tracking may report a page nobody wrote (gmem.h, DESIGN.md
 * "Write tracking"): the contract allows these false positives.  A page
 * reported unwritten is counted under the first cause it has, or as
 * unexplained.
 */
enum ref_fp {
	REF_FP_ZAP,     /* a conversion to private zapped it from a view that may map it */
	REF_FP_UNMAP,   /* a view that may map it was unmapped through the library */
	REF_FP_MUNMAP,  /* a view of it was unmapped behind the library's back */
	REF_FP_FRESH,   /* a GMEM_F_FRESH_PRIVATE conversion rewrote it */
	REF_FP_FAILED,  /* a collect of it failed (what its scans found is kept: DESIGN.md) */
	REF_FP_OTHER,   /* none of the above */
	REF_FP_COUNT
};

struct ref_page {
	uint8_t state;           /* GMEM_SHARED, GMEM_PRIVATE, GMEM_CONVERTING */
	uint8_t data;            /* what the page holds (a token; 0 after discard) */
	uint32_t shortp, longp;  /* pins held */
	/* write tracking */
	bool written;            /* written since tracking started or a collect reported it */
	uint8_t maybe;           /* 1 << REF_FP_*: why it may be reported unwritten */
	uint8_t mapped;          /* 1 << view slot: views that may map it (a superset) */
};

struct ref_view {
	bool used;
	bool strict;
	bool locked; /* ever mlock()ed: a SIGSEGV refusal may be SEGV_ACCERR (gmem.h) */
	uint64_t first, end;
	void *addr; /* the library's address for it, kept by the caller */
};

/* A deferred conversion still in transit. */
struct ref_transit {
	bool used;
	bool failed; /* its completion failed: reported, its pages stay in transit */
	uint64_t first, end;
};

/* A callback the last call must have made. */
struct ref_event {
	uint64_t first, end;
	int result; /* 0 completed, -ECANCELED */
};

struct ref {
	uint64_t npages;
	struct ref_page *pages;
	struct ref_view views[REF_MAX_VIEWS];
	struct ref_transit transits[REF_MAX_TRANSITS];
	struct ref_event events[REF_MAX_EVENTS]; /* made by the last call */
	size_t nevents;
	bool fresh;       /* GMEM_F_FRESH_PRIVATE (set by the caller after ref_init()) */
	bool tracking;    /* gmem_track_start() ... gmem_track_stop() */
	bool track_guest; /* ... with GMEM_TRACK_GUEST */
};

int ref_init(struct ref *r, uint64_t npages, bool init_private);
void ref_fini(struct ref *r);
/* A deep copy, for comparing after a call that must change nothing. */
int ref_copy(struct ref *dst, const struct ref *src);
/* Whether two models agree on every page, view and transit. */
bool ref_equal(const struct ref *a, const struct ref *b);

/* Whether [first, first + n) names pages of the object. */
bool ref_range_ok(const struct ref *r, uint64_t first, uint64_t n);

/*
 * The contract's calls.  Each returns what the library must return; on
 * -EBUSY/-EAGAIN *error_page is the page the library must report (and
 * *error_set says whether it reports one at all).
 */
int ref_convert(struct ref *r, uint64_t first, uint64_t n, unsigned int to, unsigned int flags,
		uint64_t *error_page, bool *error_set);
int ref_pin(struct ref *r, uint64_t first, uint64_t n, unsigned int flags);
int ref_unpin(struct ref *r, uint64_t first, uint64_t n, unsigned int flags);
/*
 * The completion of [first, end) that the last call made failed with
 * `result` (it could not unmap: only with failures injected): its pages
 * keep the states they had `before` the call, the transit stays, failed.
 * False if the call made no such completion.
 */
bool ref_completion_failed(struct ref *r, const struct ref *before, uint64_t first, uint64_t end,
			   int result);
int ref_discard(struct ref *r, uint64_t first, uint64_t n);
/*
 * gmem_collapse() where blocks of `block` pages split and merge (0: none
 * do): -EAGAIN with *error_page at the lowest pinned page of the blocks
 * the range touches; otherwise nothing changes.
 */
int ref_collapse(struct ref *r, uint64_t first, uint64_t n, uint64_t block, uint64_t *error_page);
/* A new view's slot (>= 0), or -errno. */
int ref_view_map(struct ref *r, uint64_t first, uint64_t n, unsigned int flags);
void ref_view_unmap(struct ref *r, int slot);

/*
 * gmem_read() and gmem_write() of the bytes [offset, offset + len) - bytes,
 * not pages - with bad_buf when the buffer given is NULL or lies in a view
 * of the object: 0, -EINVAL, or -EACCES with *error_page at the first page
 * touched that is not shared.  A write that succeeds gives each page whose
 * first byte it covers (the byte the model holds) buf's byte for it.
 */
int ref_read(struct ref *r, uint64_t offset, uint64_t len, bool bad_buf, uint64_t *error_page);
int ref_write(struct ref *r, uint64_t offset, const uint8_t *buf, uint64_t len, bool bad_buf,
	      uint64_t *error_page);

/*
 * Write tracking.  ref_track_start() and ref_track_stop() return what the
 * library must.  ref_track_collect() checks its arguments (bad_args: a
 * NULL bitmap, an offset or length not page-aligned) and returns 0 or
 * -EINVAL; on 0 the caller compares the library's bitmap with
 * ref_track_expect() page by page, then calls ref_track_reported() unless
 * it peeked.
 */
int ref_track_start(struct ref *r, unsigned int flags);
int ref_track_stop(struct ref *r);
int ref_track_collect(struct ref *r, uint64_t first, uint64_t n, unsigned int flags, bool bad_args);
/*
 * Whether page p must be reported (it was written); if not, *cause is the
 * REF_FP_* a report of it would be counted under.
 */
bool ref_track_expect(const struct ref *r, uint64_t p, enum ref_fp *cause);
/* A collect that cleared reported [first, first + n): nothing written there now. */
void ref_track_reported(struct ref *r, uint64_t first, uint64_t n);
/* A collect of [first, first + n) failed: changed nothing, but may cost false positives. */
void ref_track_failed(struct ref *r, uint64_t first, uint64_t n);

/*
 * A write the harness made to page p: through a view (`guest` false) or
 * the guest mapping; what tracking must report.
 */
void ref_track_write(struct ref *r, uint64_t p, bool guest);
/*
 * A touch of page p through view `slot` that may have mapped it: the
 * fault maps the run of pages around it that share its state (kept only
 * to name the cause of a false positive).
 */
void ref_view_touched(struct ref *r, int slot, uint64_t p);
/* The view in `slot` unmapped behind the library's back (munmap()). */
void ref_view_munmap(struct ref *r, int slot);

/* Whether a host touch of page p through a view completes (else it is refused). */
bool ref_host_may_touch(const struct ref *r, uint64_t p);
uint64_t ref_pins_total(const struct ref *r);

#endif /* GMEM_FUZZ_REF_H */
