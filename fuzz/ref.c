// SPDX-License-Identifier: MIT
/*
 * ref.c - gmem's contract as a plain page array: the reference model.
 *
 * Written from include/gmem.h, not from the library: every rule here is a
 * sentence of the header, applied page by page in the most obvious way.
 */
#include "ref.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gmem.h"

#define NONE UINT64_MAX

int ref_init(struct ref *r, uint64_t npages, bool init_private)
{
	memset(r, 0, sizeof(*r));
	r->pages = calloc(npages, sizeof(*r->pages));
	if (!r->pages)
		return -ENOMEM;
	r->npages = npages;
	for (uint64_t p = 0; p < npages; p++)
		r->pages[p].state = init_private ? GMEM_PRIVATE : GMEM_SHARED;
	return 0;
}

void ref_fini(struct ref *r)
{
	free(r->pages);
	r->pages = NULL;
}

int ref_copy(struct ref *dst, const struct ref *src)
{
	*dst = *src;
	dst->pages = malloc(src->npages * sizeof(*src->pages));
	if (!dst->pages)
		return -ENOMEM;
	memcpy(dst->pages, src->pages, src->npages * sizeof(*src->pages));
	return 0;
}

static bool has_transit(const struct ref *r, const struct ref_transit *t)
{
	for (size_t i = 0; i < REF_MAX_TRANSITS; i++)
		if (r->transits[i].used && r->transits[i].first == t->first && r->transits[i].end == t->end)
			return true;
	return false;
}

bool ref_equal(const struct ref *a, const struct ref *b)
{
	if (a->npages != b->npages || memcmp(a->pages, b->pages, a->npages * sizeof(*a->pages)))
		return false;
	for (size_t i = 0; i < REF_MAX_VIEWS; i++)
		if (a->views[i].used != b->views[i].used ||
		    (a->views[i].used && (a->views[i].first != b->views[i].first ||
					  a->views[i].end != b->views[i].end ||
					  a->views[i].strict != b->views[i].strict)))
			return false;
	for (size_t i = 0; i < REF_MAX_TRANSITS; i++)
		if ((a->transits[i].used && !has_transit(b, &a->transits[i])) ||
		    (b->transits[i].used && !has_transit(a, &b->transits[i])))
			return false;
	return true;
}

bool ref_range_ok(const struct ref *r, uint64_t first, uint64_t n)
{
	return n && first <= r->npages && n <= r->npages - first;
}

static void event(struct ref *r, const struct ref_transit *t, int result)
{
	if (r->nevents < REF_MAX_EVENTS)
		r->events[r->nevents++] = (struct ref_event){ t->first, t->end, result };
}

static bool overlaps(const struct ref_transit *t, uint64_t first, uint64_t end)
{
	return t->used && t->first < end && first < t->end;
}

/* "A pending deferred conversion overlapping the range is cancelled first." */
static void cancel_overlapping(struct ref *r, uint64_t first, uint64_t end)
{
	for (size_t i = 0; i < REF_MAX_TRANSITS; i++) {
		struct ref_transit *t = &r->transits[i];

		if (!overlaps(t, first, end))
			continue;
		for (uint64_t p = t->first; p < t->end; p++)
			if (r->pages[p].state == GMEM_CONVERTING)
				r->pages[p].state = GMEM_SHARED;
		/* "... cancels it, with no second callback" */
		if (!t->failed)
			event(r, t, -ECANCELED);
		t->used = t->failed = false;
	}
}

static uint64_t first_strict(const struct ref *r, uint64_t first, uint64_t end)
{
	uint64_t lowest = NONE;

	for (size_t i = 0; i < REF_MAX_VIEWS; i++) {
		const struct ref_view *v = &r->views[i];
		uint64_t s = first > v->first ? first : v->first;
		uint64_t e = end < v->end ? end : v->end;

		if (v->used && v->strict && s < e && s < lowest)
			lowest = s;
	}
	return lowest;
}

/*
 * "Pages views had mapped when a conversion zapped them" may be reported,
 * and with fresh private pages "a conversion rewrites pages": [first, end)
 * is about to be zapped (or, refused, may have been in part).
 */
static void zapping(struct ref *r, uint64_t first, uint64_t end)
{
	for (uint64_t p = first; r->tracking && p < end; p++) {
		if (r->pages[p].mapped)
			r->pages[p].maybe |= 1u << REF_FP_ZAP;
		if (r->fresh)
			r->pages[p].maybe |= 1u << REF_FP_FRESH;
	}
}

int ref_convert(struct ref *r, uint64_t first, uint64_t n, unsigned int to, unsigned int flags,
		uint64_t *error_page, bool *error_set)
{
	const unsigned int modes = GMEM_CONVERT_WAIT | GMEM_CONVERT_DEFER;
	uint64_t end = first + n, busy, short_first = NONE;

	r->nevents = 0;
	*error_set = false;
	if (!ref_range_ok(r, first, n) || (to != GMEM_SHARED && to != GMEM_PRIVATE) ||
	    (flags & ~modes) || (flags & modes) == modes)
		return -EINVAL;
	cancel_overlapping(r, first, end);
	if (to == GMEM_PRIVATE)
		zapping(r, first, end);
	if (to == GMEM_SHARED) {
		/* "To shared: immediate, whatever the pins." */
		for (uint64_t p = first; p < end; p++)
			r->pages[p].state = GMEM_SHARED;
		return 0;
	}
	/* "-EBUSY: a long-term pin or a strict view covers a page, whatever the flags" */
	busy = first_strict(r, first, end);
	for (uint64_t p = first; p < end && p < busy; p++)
		if (r->pages[p].longp)
			busy = p;
	if (busy != NONE) {
		*error_page = busy;
		*error_set = true;
		return -EBUSY;
	}
	for (uint64_t p = first; p < end && short_first == NONE; p++)
		if (r->pages[p].shortp)
			short_first = p;
	if (short_first != NONE && !(flags & GMEM_CONVERT_DEFER)) {
		/* with WAIT: one thread calls at a time, so the pins cannot drop */
		*error_page = short_first;
		*error_set = true;
		return -EAGAIN;
	}
	if (short_first != NONE) {
		for (size_t i = 0; i < REF_MAX_TRANSITS; i++) {
			if (r->transits[i].used)
				continue;
			r->transits[i] = (struct ref_transit){ true, false, first, end };
			for (uint64_t p = first; p < end; p++)
				if (r->pages[p].state == GMEM_SHARED)
					r->pages[p].state = GMEM_CONVERTING;
			/* "-EINPROGRESS ... *error_offset: the lowest page still pinned" */
			*error_page = short_first;
			*error_set = true;
			return -EINPROGRESS;
		}
		return -ENOSPC; /* the model's own limit: the caller avoids it */
	}
	for (uint64_t p = first; p < end; p++) {
		r->pages[p].state = GMEM_PRIVATE;
		r->pages[p].mapped = 0; /* zapped from every view */
	}
	return 0;
}

int ref_pin(struct ref *r, uint64_t first, uint64_t n, unsigned int flags)
{
	bool longterm = flags & GMEM_PIN_LONGTERM;
	uint64_t end = first + n;

	r->nevents = 0;
	if (!ref_range_ok(r, first, n) || (flags & ~GMEM_PIN_LONGTERM))
		return -EINVAL;
	for (uint64_t p = first; p < end; p++) {
		const struct ref_page *pg = &r->pages[p];

		/* "-EACCES if a page is private, -EAGAIN if one is in transit" */
		if (pg->state == GMEM_PRIVATE)
			return -EACCES;
		if (pg->state == GMEM_CONVERTING) {
			for (uint64_t q = p + 1; q < end; q++)
				if (r->pages[q].state == GMEM_PRIVATE)
					return -EACCES;
			return -EAGAIN;
		}
		if (longterm ? pg->longp >= 0x7fffff : pg->shortp >= 0x7fffffff)
			return -EOVERFLOW;
	}
	for (uint64_t p = first; p < end; p++) {
		if (longterm)
			r->pages[p].longp++;
		else
			r->pages[p].shortp++;
	}
	return 0;
}

int ref_unpin(struct ref *r, uint64_t first, uint64_t n, unsigned int flags)
{
	bool longterm = flags & GMEM_PIN_LONGTERM;
	uint64_t end = first + n;

	r->nevents = 0;
	if (!ref_range_ok(r, first, n) || (flags & ~GMEM_PIN_LONGTERM))
		return -EINVAL;
	for (uint64_t p = first; p < end; p++)
		if (!(longterm ? r->pages[p].longp : r->pages[p].shortp))
			return -EINVAL;
	for (uint64_t p = first; p < end; p++) {
		if (longterm)
			r->pages[p].longp--;
		else
			r->pages[p].shortp--;
	}
	/* "Dropping the last pin of a deferred conversion's range completes it." */
	for (size_t i = 0; i < REF_MAX_TRANSITS; i++) {
		struct ref_transit *t = &r->transits[i];
		bool pinned = false;

		if (!overlaps(t, first, end) || t->failed)
			continue;
		for (uint64_t p = t->first; p < t->end; p++)
			pinned |= r->pages[p].state == GMEM_CONVERTING &&
				  (r->pages[p].shortp || r->pages[p].longp);
		if (pinned)
			continue;
		zapping(r, t->first, t->end);
		for (uint64_t p = t->first; p < t->end; p++) {
			if (r->pages[p].state == GMEM_CONVERTING) {
				r->pages[p].state = GMEM_PRIVATE;
				r->pages[p].mapped = 0;
			}
		}
		event(r, t, 0);
		t->used = false;
	}
	return 0;
}

bool ref_completion_failed(struct ref *r, const struct ref *before, uint64_t first, uint64_t end,
			   int result)
{
	for (size_t i = 0; i < r->nevents; i++) {
		struct ref_event *e = &r->events[i];

		if (e->first != first || e->end != end || e->result != 0)
			continue;
		for (size_t t = 0; t < REF_MAX_TRANSITS; t++) {
			if (r->transits[t].used)
				continue;
			r->transits[t] = (struct ref_transit){ true, true, first, end };
			for (uint64_t p = first; p < end; p++)
				r->pages[p].state = before->pages[p].state;
			e->result = result;
			return true;
		}
	}
	return false;
}

int ref_discard(struct ref *r, uint64_t first, uint64_t n)
{
	r->nevents = 0;
	if (!ref_range_ok(r, first, n))
		return -EINVAL;
	for (uint64_t p = first; p < first + n; p++)
		if (r->pages[p].shortp || r->pages[p].longp)
			return -EBUSY;
	for (uint64_t p = first; p < first + n; p++) {
		r->pages[p].data = 0;
		/* "a discard (its zeroing is a write)"; the punch unmaps it everywhere */
		ref_track_write(r, p, false);
		r->pages[p].mapped = 0;
	}
	return 0;
}

int ref_collapse(struct ref *r, uint64_t first, uint64_t n, uint64_t block, uint64_t *error_page)
{
	uint64_t s, e;

	r->nevents = 0;
	if (!ref_range_ok(r, first, n))
		return -EINVAL;
	if (!block)
		return 0; /* nothing splits */
	s = first / block * block;
	e = (first + n + block - 1) / block * block;
	for (uint64_t p = s; p < e && p < r->npages; p++) {
		if (r->pages[p].shortp || r->pages[p].longp) {
			*error_page = p;
			return -EAGAIN;
		}
	}
	return 0; /* states, contents and pins as they were */
}

int ref_view_map(struct ref *r, uint64_t first, uint64_t n, unsigned int flags)
{
	r->nevents = 0;
	if (!ref_range_ok(r, first, n) || (flags & ~GMEM_VIEW_STRICT))
		return -EINVAL;
	if (flags & GMEM_VIEW_STRICT)
		for (uint64_t p = first; p < first + n; p++)
			if (r->pages[p].state != GMEM_SHARED)
				return -EACCES;
	for (int i = 0; i < REF_MAX_VIEWS; i++) {
		if (r->views[i].used)
			continue;
		r->views[i] = (struct ref_view){ true, flags & GMEM_VIEW_STRICT, false, first, first + n,
						 NULL };
		return i;
	}
	return -ENOSPC; /* the model's own limit: the caller avoids it */
}

/* View `slot` goes: what it may map may be reported, for `cause`. */
static void view_gone(struct ref *r, int slot, uint8_t mapped_mask, enum ref_fp cause)
{
	const struct ref_view *v = &r->views[slot];

	for (uint64_t p = v->first; p < v->end; p++) {
		struct ref_page *pg = &r->pages[p];

		if (r->tracking && (pg->mapped & mapped_mask))
			pg->maybe |= 1u << cause;
		pg->mapped &= (uint8_t)~(1u << slot);
	}
	r->views[slot].used = false;
}

void ref_view_unmap(struct ref *r, int slot)
{
	r->nevents = 0;
	/* "a view unmapped through the library": what it may map counts */
	view_gone(r, slot, (uint8_t)(1u << slot), REF_FP_UNMAP);
}

void ref_view_munmap(struct ref *r, int slot)
{
	r->nevents = 0;
	/* "a view the process unmapped behind the library's back counts all its pages written" */
	for (uint64_t p = r->views[slot].first; r->tracking && p < r->views[slot].end; p++)
		r->pages[p].maybe |= 1u << REF_FP_MUNMAP;
	view_gone(r, slot, 0, REF_FP_MUNMAP);
}

void ref_view_touched(struct ref *r, int slot, uint64_t p)
{
	const struct ref_view *v = &r->views[slot];
	uint64_t s = p, e = p + 1;
	uint8_t st = r->pages[p].state;

	/* the fault maps its neighbours too, as far as they share its state */
	while (s > v->first && r->pages[s - 1].state == st)
		s--;
	while (e < v->end && r->pages[e].state == st)
		e++;
	for (uint64_t q = s; q < e; q++)
		r->pages[q].mapped |= (uint8_t)(1u << slot);
}

void ref_track_write(struct ref *r, uint64_t p, bool guest)
{
	if (r->tracking && (!guest || r->track_guest))
		r->pages[p].written = true;
}

static void track_forget(struct ref *r)
{
	for (uint64_t p = 0; p < r->npages; p++) {
		r->pages[p].written = false;
		r->pages[p].maybe = 0;
	}
}

int ref_track_start(struct ref *r, unsigned int flags)
{
	r->nevents = 0;
	if (flags & ~GMEM_TRACK_GUEST)
		return -EINVAL;
	/* "-EBUSY if already tracking" */
	if (r->tracking)
		return -EBUSY;
	r->tracking = true;
	r->track_guest = flags & GMEM_TRACK_GUEST;
	track_forget(r);
	return 0;
}

int ref_track_stop(struct ref *r)
{
	r->nevents = 0;
	if (!r->tracking)
		return -EINVAL;
	/* "forgetting what was not collected" */
	r->tracking = r->track_guest = false;
	track_forget(r);
	return 0;
}

int ref_track_collect(struct ref *r, uint64_t first, uint64_t n, unsigned int flags, bool bad_args)
{
	r->nevents = 0;
	/* "-EINVAL when not tracking or for a bad range" */
	if (bad_args || !r->tracking || !ref_range_ok(r, first, n) || (flags & ~GMEM_TRACK_PEEK))
		return -EINVAL;
	return 0;
}

bool ref_track_expect(const struct ref *r, uint64_t p, enum ref_fp *cause)
{
	const struct ref_page *pg = &r->pages[p];

	*cause = REF_FP_OTHER;
	for (int c = 0; c < REF_FP_OTHER; c++) {
		if (pg->maybe & (1u << c)) {
			*cause = (enum ref_fp)c;
			break;
		}
	}
	return pg->written;
}

void ref_track_failed(struct ref *r, uint64_t first, uint64_t n)
{
	for (uint64_t p = first; p < first + n; p++)
		r->pages[p].maybe |= 1u << REF_FP_FAILED;
}

void ref_track_reported(struct ref *r, uint64_t first, uint64_t n)
{
	for (uint64_t p = first; p < first + n; p++) {
		r->pages[p].written = false;
		r->pages[p].maybe = 0;
	}
}

/* The rule both copies share: "every page the bytes touch must be GMEM_SHARED". */
static int ref_access(struct ref *r, uint64_t offset, uint64_t len, bool bad_buf,
		      uint64_t *error_page)
{
	uint64_t size = r->npages * GMEM_PAGE_SIZE;

	r->nevents = 0;
	/* "len 0 returns 0 and does nothing" - but "offset past the end" is -EINVAL */
	if (offset > size)
		return -EINVAL;
	if (!len)
		return 0;
	/* "offset + len past the end or overflowing, buf NULL with len > 0, or buf
	 * overlapping a view of g" */
	if (len > size - offset || bad_buf)
		return -EINVAL;
	for (uint64_t p = offset / GMEM_PAGE_SIZE; p * GMEM_PAGE_SIZE < offset + len; p++) {
		/* "A page in transit (GMEM_CONVERTING) is refused like a private one, even if pinned." */
		if (r->pages[p].state != GMEM_SHARED) {
			*error_page = p;
			return -EACCES;
		}
	}
	return 0;
}

int ref_read(struct ref *r, uint64_t offset, uint64_t len, bool bad_buf, uint64_t *error_page)
{
	return ref_access(r, offset, len, bad_buf, error_page);
}

int ref_write(struct ref *r, uint64_t offset, const uint8_t *buf, uint64_t len, bool bad_buf,
	      uint64_t *error_page)
{
	int err = ref_access(r, offset, len, bad_buf, error_page);

	if (err)
		return err;
	for (uint64_t p = (offset + GMEM_PAGE_SIZE - 1) / GMEM_PAGE_SIZE;
	     len && p * GMEM_PAGE_SIZE < offset + len; p++)
		r->pages[p].data = buf[p * GMEM_PAGE_SIZE - offset];
	/* every page the bytes touch was written, the first byte of it or not */
	for (uint64_t p = offset / GMEM_PAGE_SIZE; len && p * GMEM_PAGE_SIZE < offset + len; p++)
		ref_track_write(r, p, false);
	return 0;
}

bool ref_host_may_touch(const struct ref *r, uint64_t p)
{
	const struct ref_page *pg = &r->pages[p];

	/* in transit, a page still pinned stays reachable for the I/O holding it */
	return pg->state == GMEM_SHARED ||
	       (pg->state == GMEM_CONVERTING && (pg->shortp || pg->longp));
}

uint64_t ref_pins_total(const struct ref *r)
{
	uint64_t n = 0;

	for (uint64_t p = 0; p < r->npages; p++)
		n += r->pages[p].shortp + r->pages[p].longp;
	return n;
}
