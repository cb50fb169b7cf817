// SPDX-License-Identifier: MIT
/*
 * fuzz_gmem.c - libgmem against its reference model, call by call.
 *
 * An input is a small program: a configuration byte, then operations
 * (convert, pin, unpin, discard, views, host and guest touches, state
 * queries, callbacks, injected failures, locked views, copies in and out,
 * collapses, write tracking, views unmapped behind the library's back).
 * Each runs on the library and on
 * the reference model (ref.c); the two must agree on every return value,
 * error offset, callback, page state, pin count and byte of contents, and
 * gmem_audit() must find no view mapping a page it must not, after every
 * step.  Every page the model says was written must be in the bitmap a
 * collect returns; pages there that nobody wrote are false positives,
 * which the contract allows: counted by cause, printed at exit with
 * GMEM_FUZZ_STATS=1.  A disagreement aborts with a description (libFuzzer saves the
 * input).  Built with libFuzzer (make fuzz) and, for make check, with
 * replay.c, which runs the seed corpus.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../tests/sysfs.h"
#include "../tests/memlock.h"
#include "../tests/touch.h"
#include "gmem.h"
#include "inject.h"
#include "ref.h"

#define PS GMEM_PAGE_SIZE
#define MAX_OPS 96

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The bytes of an input, read front to back; zeros once they run out. */
struct input {
	const uint8_t *p, *end;
};

static uint8_t u8(struct input *in)
{
	return in->p < in->end ? *in->p++ : 0;
}

static uint16_t u16(struct input *in)
{
	return (uint16_t)(u8(in) | u8(in) << 8);
}

enum op {
	OP_CONVERT,
	OP_PIN,
	OP_UNPIN,
	OP_DISCARD,
	OP_VIEW_MAP,
	OP_VIEW_UNMAP,
	OP_HOST_TOUCH,
	OP_GUEST_TOUCH,
	OP_STATE,
	OP_CALLBACK,
	OP_INJECT,
	OP_LOCK,
	OP_FIRST_COUNT, /* the operations of the first inputs: op bytes name them modulo this */
	OP_READ = OP_FIRST_COUNT,
	OP_WRITE,
	OP_COLLAPSE,
	OP_TRACK_START,
	OP_TRACK_STOP,
	OP_TRACK_COLLECT,
	OP_VIEW_MUNMAP,
	OP_COUNT
};

/*
 * An operation byte names byte % OP_FIRST_COUNT, as it always has, except
 * the bytes listed here, which name the operations added since: no input
 * in fuzz/corpus used them as an operation, so every input there keeps its
 * meaning.  An operation added later takes bytes that still hold for.
 */
static const struct {
	uint8_t first, last;
	enum op op;
} added_ops[] = {
	{ 12, 35, OP_READ },
	{ 36, 59, OP_WRITE },
	{ 60, 71, OP_COLLAPSE },
	{ 72, 79, OP_TRACK_START },
	{ 80, 83, OP_TRACK_STOP },
	{ 84, 107, OP_TRACK_COLLECT },
	{ 108, 113, OP_VIEW_MUNMAP },
};

static enum op decode_op(uint8_t b)
{
	for (size_t i = 0; i < sizeof(added_ops) / sizeof(added_ops[0]); i++)
		if (b >= added_ops[i].first && b <= added_ops[i].last)
			return added_ops[i].op;
	return (enum op)(b % OP_FIRST_COUNT);
}

#define REF_MAX_PAGES 512 /* the largest object: one 2 MiB huge page */

struct run {
	struct gmem *g;
	struct ref ref;
	char *guest;
	int fault_signal;
	bool callback;
	uint64_t inject_nth; /* fail the nth fallible call of the next operation */
	uint64_t block;      /* pages in a block that splits and merges (THP), or 0 */
	struct ref_event got[REF_MAX_EVENTS];
	size_t ngot;
	int step;
	/*
	 * Pages an unpin's failed zap may have left mapped in transit: the
	 * audit reports them (it must: audit_catches_mapped_idle_transit_page)
	 * until their transit ends, when they are zapped again.
	 */
	bool excused[REF_MAX_PAGES];
};

/* What collects reported over the whole run (GMEM_FUZZ_STATS=1 prints them at exit). */
static struct {
	uint64_t collects, reported, false_pos[REF_FP_COUNT];
} track_stats;

static bool thp_ok;
static bool trace; /* GMEM_FUZZ_TRACE=1: print each call, for reading a saved input */

#define TRACE(...)                                                                   \
	do {                                                                         \
		if (trace)                                                           \
			fprintf(stderr, __VA_ARGS__);                                \
	} while (0)

static __attribute__((noreturn, format(printf, 2, 3))) void disagree(struct run *r, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_gmem: step %d: ", r->step);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* The model's pages after a step: S/P/C for the state, then pins if any. */
static void trace_pages(const struct run *r)
{
	if (!trace)
		return;
	fprintf(stderr, "   pages");
	for (uint64_t p = 0; p < r->ref.npages; p++) {
		const struct ref_page *pg = &r->ref.pages[p];

		fprintf(stderr, " %c", "SPC"[pg->state]);
		if (pg->shortp || pg->longp)
			fprintf(stderr, "%u/%u", pg->shortp, pg->longp);
	}
	fputc('\n', stderr);
}

static void on_convert(struct gmem *g, uint64_t offset, uint64_t len, unsigned int to, int result,
		       void *arg)
{
	struct run *r = arg;

	(void)g;
	if (to != GMEM_PRIVATE)
		disagree(r, "callback for a conversion to %u", to);
	if (r->ngot < REF_MAX_EVENTS)
		r->got[r->ngot++] = (struct ref_event){ offset / PS, (offset + len) / PS, result };
}

static int event_cmp(const void *a, const void *b)
{
	const struct ref_event *x = a, *y = b;

	if (x->first != y->first)
		return x->first < y->first ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return x->result - y->result;
}

/* The callbacks the library made in this step are those the model expects. */
static void check_events(struct run *r)
{
	size_t want = r->callback ? r->ref.nevents : 0;

	if (r->ngot != want)
		disagree(r, "%zu callbacks, the model expects %zu", r->ngot, want);
	qsort(r->got, r->ngot, sizeof(r->got[0]), event_cmp);
	qsort(r->ref.events, want, sizeof(r->ref.events[0]), event_cmp);
	for (size_t i = 0; i < want; i++)
		if (event_cmp(&r->got[i], &r->ref.events[i]))
			disagree(r, "callback [%llu, %llu) result %d, the model expects [%llu, %llu) %d",
				 (unsigned long long)r->got[i].first, (unsigned long long)r->got[i].end,
				 r->got[i].result, (unsigned long long)r->ref.events[i].first,
				 (unsigned long long)r->ref.events[i].end, r->ref.events[i].result);
	r->ngot = 0;
	r->ref.nevents = 0;
}

/* Every page's state and contents, the pins, and the audit. */
static void check_all(struct run *r)
{
	struct gmem_stats st;
	int err;

	for (uint64_t p = 0; p < r->ref.npages; p++) {
		int s = gmem_state(r->g, p * PS);

		if (s != r->ref.pages[p].state)
			disagree(r, "page %llu is %d, the model says %u", (unsigned long long)p, s,
				 r->ref.pages[p].state);
		if ((uint8_t)r->guest[p * PS] != r->ref.pages[p].data)
			disagree(r, "page %llu holds %u, the model says %u", (unsigned long long)p,
				 (uint8_t)r->guest[p * PS], r->ref.pages[p].data);
	}
	gmem_get_stats(r->g, &st);
	if (st.pins_active != ref_pins_total(&r->ref))
		disagree(r, "%llu pins active, the model holds %llu",
			 (unsigned long long)st.pins_active,
			 (unsigned long long)ref_pins_total(&r->ref));
	err = gmem_audit(r->g);
	for (uint64_t p = 0; p < r->ref.npages; p++) {
		r->excused[p] &= r->ref.pages[p].state == GMEM_CONVERTING;
		if (err == -EIO && r->excused[p])
			err = 0;
	}
	if (err)
		disagree(r, "gmem_audit() = %d", err);
}

/* A range from the input: usually pages inside the object, sometimes not. */
static void range(struct input *in, const struct ref *ref, uint64_t *first, uint64_t *n)
{
	uint8_t len = u8(in);

	*first = u16(in) % (ref->npages + 1);
	if (len >= 0xf0) /* to the end, or past it */
		*n = ref->npages - *first + (len & 1);
	else if (len >= 0xc0) /* larger, in steps of 8 */
		*n = (uint64_t)(len - 0xc0) * 8;
	else
		*n = len % 17; /* 0 is invalid */
}

static void check_ret(struct run *r, const char *what, int got, int want)
{
	if (got != want)
		disagree(r, "%s returned %d, the model says %d", what, got, want);
}

/*
 * After a call that may have had a failure injected: false when none was,
 * or the library absorbed it (it returned what the model says: check it as
 * usual).  Else the call must have failed with a negative errno and
 * changed nothing - a conversion may have cancelled the deferred ones it
 * overlaps first, as the contract says it does - and the model takes its
 * call back.
 */
static bool injected(struct run *r, const char *what, int ret, int want, const struct ref *before)
{
	if (!inject_disarm() || ret == want)
		return false;
	if (ret >= 0 || ret == -EINVAL)
		disagree(r, "%s with %s failing returned %d", what, inject_fired_in(), ret);
	ref_fini(&r->ref);
	if (ref_copy(&r->ref, before))
		abort();
	return true;
}

static void do_convert(struct run *r, struct input *in)
{
	static const unsigned int flagset[] = { 0, GMEM_CONVERT_WAIT, GMEM_CONVERT_DEFER,
						GMEM_CONVERT_WAIT | GMEM_CONVERT_DEFER, 8 };
	uint8_t b = u8(in);
	unsigned int to = b & 1 ? GMEM_PRIVATE : GMEM_SHARED, flags = flagset[(b >> 1) % 5];
	uint64_t first, n, eoff = UINT64_MAX, epage = 0;
	struct ref before;
	bool eset;
	int want, got;

	range(in, &r->ref, &first, &n);
	if (b & 0x80)
		to = 7; /* invalid */
	if (ref_copy(&before, &r->ref))
		abort();
	want = ref_convert(&r->ref, first, n, to, flags, &epage, &eset);
	if (want == -ENOSPC) { /* beyond the model's table: skip the call */
		ref_fini(&r->ref);
		r->ref = before;
		return;
	}
	/* with no callback the cancels a failure left behind could not be seen */
	inject_arm(r->callback ? r->inject_nth : 0);
	got = gmem_convert(r->g, first * PS, n * PS, to, flags, &eoff);
	TRACE("%d: convert [%llu, +%llu) to %u flags %u inject %llu%s%s: %d (model %d)\n", r->step,
	      (unsigned long long)first, (unsigned long long)n, to, flags,
	      (unsigned long long)r->inject_nth, r->inject_nth ? " in " : "",
	      r->inject_nth ? inject_fired_in() : "", got, want);
	if (injected(r, "gmem_convert", got, want, &before)) {
		/* a cancel that happened before the failure: the model does it too */
		for (size_t i = 0; i < r->ngot; i++)
			if (r->got[i].result == -ECANCELED)
				for (size_t t = 0; t < REF_MAX_TRANSITS; t++)
					if (r->ref.transits[t].used &&
					    r->ref.transits[t].first == r->got[i].first) {
						for (uint64_t p = r->got[i].first; p < r->got[i].end; p++)
							if (r->ref.pages[p].state == GMEM_CONVERTING)
								r->ref.pages[p].state = GMEM_SHARED;
						r->ref.transits[t].used = false;
						r->ref.events[r->ref.nevents++] = r->got[i];
					}
		ref_fini(&before);
		return;
	}
	ref_fini(&before);
	check_ret(r, "gmem_convert", got, want);
	if (eset && eoff != epage * PS)
		disagree(r, "gmem_convert: error offset %llu, the model says page %llu",
			 (unsigned long long)eoff, (unsigned long long)epage);
	if (!eset && eoff != UINT64_MAX)
		disagree(r, "gmem_convert: error offset set to %llu on %d", (unsigned long long)eoff,
			 got);
}

static void do_pin(struct run *r, struct input *in, bool pin)
{
	uint8_t b = u8(in);
	unsigned int flags = (b & 1 ? GMEM_PIN_LONGTERM : 0) | (b & 0x80 ? 4 : 0);
	uint64_t first, n;
	struct ref before;
	int want, got;

	range(in, &r->ref, &first, &n);
	if (ref_copy(&before, &r->ref))
		abort();
	want = pin ? ref_pin(&r->ref, first, n, flags) : ref_unpin(&r->ref, first, n, flags);
	/*
	 * An unpin reports no failure of its own, but the completion it makes
	 * can fail: the callback says so (with no callback it goes unseen).
	 */
	inject_arm(pin || r->callback ? r->inject_nth : 0);
	got = pin ? gmem_pin(r->g, first * PS, n * PS, flags)
		  : gmem_unpin(r->g, first * PS, n * PS, flags);
	TRACE("%d: %s [%llu, +%llu) flags %u: %d (model %d)\n", r->step, pin ? "pin" : "unpin",
	      (unsigned long long)first, (unsigned long long)n, flags, got, want);
	if (pin) {
		if (!injected(r, "gmem_pin", got, want, &before))
			check_ret(r, "gmem_pin", got, want);
		ref_fini(&before);
		return;
	}
	if (inject_disarm())
		for (uint64_t p = first; p < first + n && p < r->ref.npages; p++)
			r->excused[p] = r->ref.pages[p].state == GMEM_CONVERTING;
	check_ret(r, "gmem_unpin", got, want);
	for (size_t i = 0; i < r->ngot; i++)
		if (r->got[i].result < 0 && r->got[i].result != -ECANCELED &&
		    !ref_completion_failed(&r->ref, &before, r->got[i].first, r->got[i].end,
					   r->got[i].result))
			disagree(r, "an unpin reported [%llu, %llu) failing with %d; the model "
				    "completed no such conversion", (unsigned long long)r->got[i].first,
				 (unsigned long long)r->got[i].end, r->got[i].result);
	ref_fini(&before);
}

static void do_discard(struct run *r, struct input *in)
{
	uint64_t first, n;
	struct ref before;
	int want, got;

	range(in, &r->ref, &first, &n);
	if (ref_copy(&before, &r->ref))
		abort();
	want = ref_discard(&r->ref, first, n);
	inject_arm(r->inject_nth);
	got = gmem_discard(r->g, first * PS, n * PS);
	TRACE("%d: discard [%llu, +%llu): %d (model %d)\n", r->step, (unsigned long long)first,
	      (unsigned long long)n, got, want);
	if (!injected(r, "gmem_discard", got, want, &before))
		check_ret(r, "gmem_discard", got, want);
	ref_fini(&before);
}

static void do_view_map(struct run *r, struct input *in)
{
	uint8_t b = u8(in);
	unsigned int flags = (b & 1 ? GMEM_VIEW_STRICT : 0) | (b & 0x80 ? 2 : 0);
	uint64_t first, n;
	struct ref before;
	void *addr = NULL;
	int want, got;

	range(in, &r->ref, &first, &n);
	if (ref_copy(&before, &r->ref))
		abort();
	want = ref_view_map(&r->ref, first, n, flags);
	if (want == -ENOSPC) {
		ref_fini(&r->ref);
		r->ref = before;
		return;
	}
	inject_arm(r->inject_nth);
	got = gmem_view_map(r->g, first * PS, n * PS, flags, &addr);
	TRACE("%d: view [%llu, +%llu) flags %u: %d (model %d)\n", r->step,
	      (unsigned long long)first, (unsigned long long)n, flags, got, want);
	if (injected(r, "gmem_view_map", got, want < 0 ? want : 0, &before)) {
		ref_fini(&before);
		return;
	}
	ref_fini(&before);
	check_ret(r, "gmem_view_map", got, want < 0 ? want : 0);
	if (want >= 0)
		r->ref.views[want].addr = addr;
}

static void do_collapse(struct run *r, struct input *in)
{
	uint64_t first, n, eoff = UINT64_MAX, epage = 0;
	struct gmem_huge_info hi;
	struct ref before;
	int want, got;

	range(in, &r->ref, &first, &n);
	if (ref_copy(&before, &r->ref))
		abort();
	want = ref_collapse(&r->ref, first, n, r->block, &epage);
	inject_arm(r->inject_nth);
	got = gmem_collapse(r->g, first * PS, n * PS, &eoff);
	TRACE("%d: collapse [%llu, +%llu): %d (model %d)\n", r->step, (unsigned long long)first,
	      (unsigned long long)n, got, want);
	if (injected(r, "gmem_collapse", got, want, &before)) {
		ref_fini(&before);
		return;
	}
	ref_fini(&before);
	/*
	 * A tracked guest mapping is split "while it lasts": the kernel will
	 * not map it huge (MADV_COLLAPSE: EINVAL), and the library says it
	 * cannot make huge pages of this memory
	 */
	if (r->ref.track_guest && r->block && want == 0 && got == -EOPNOTSUPP)
		want = got;
	/*
	 * "or the kernel found a page of a block in use and left it
	 * (*error_offset: the block)": MADV_COLLAPSE's EAGAIN, which a loaded
	 * machine gives now and then even here, where no I/O is in flight
	 */
	if (r->block && want == 0 && got == -EAGAIN && eoff % (r->block * PS) == 0 &&
	    eoff / PS + r->block > first && eoff / PS < first + n) {
		TRACE("   the kernel left block %llu\n", (unsigned long long)(eoff / PS / r->block));
		want = got;
		epage = eoff / PS;
	}
	check_ret(r, "gmem_collapse", got, want);
	if (want == -EAGAIN && eoff != epage * PS)
		disagree(r, "gmem_collapse: error offset %llu, the model says page %llu",
			 (unsigned long long)eoff, (unsigned long long)epage);
	if (want != -EAGAIN && eoff != UINT64_MAX)
		disagree(r, "gmem_collapse: error offset set to %llu on %d", (unsigned long long)eoff,
			 got);
	/*
	 * What it is for: the block, if it has memory, mapped huge again -
	 * unless the guest mapping is tracked, which splits it "while it
	 * lasts" (gmem.h)
	 */
	if (!got && r->block && !r->ref.track_guest) {
		if (gmem_huge_info(r->g, &hi))
			disagree(r, "gmem_huge_info failed");
		if (hi.blocks_guest_huge != hi.blocks_populated)
			disagree(r, "after gmem_collapse %llu of %llu populated blocks mapped huge",
				 (unsigned long long)hi.blocks_guest_huge,
				 (unsigned long long)hi.blocks_populated);
	}
}

static int pick_view(struct run *r, uint8_t b)
{
	for (int i = 0; i < REF_MAX_VIEWS; i++) {
		int v = (b + i) % REF_MAX_VIEWS;

		if (r->ref.views[v].used)
			return v;
	}
	return -1;
}

static void do_view_unmap(struct run *r, struct input *in)
{
	uint8_t b = u8(in);
	int v = pick_view(r, b);
	int got;

	if (v < 0 || (b & 0x80)) {
		/* not a view's address: refused, nothing changes */
		got = gmem_view_unmap(r->g, v < 0 ? r->guest : (char *)r->ref.views[v].addr + 1);
		check_ret(r, "gmem_view_unmap", got, -EINVAL);
		return;
	}
	got = gmem_view_unmap(r->g, r->ref.views[v].addr);
	check_ret(r, "gmem_view_unmap", got, 0);
	ref_view_unmap(&r->ref, v);
}

static void do_host_touch(struct run *r, struct input *in)
{
	uint8_t b = u8(in), token = u8(in);
	int v = pick_view(r, b);
	const struct ref_view *rv;
	volatile char *a;
	uint64_t p, off;
	siginfo_t si;
	uint8_t val = token;
	bool write = b & 0x80;
	int sig;

	if (v < 0)
		return;
	rv = &r->ref.views[v];
	p = rv->first + u16(in) % (rv->end - rv->first);
	off = (p - rv->first) * PS;
	a = (volatile char *)rv->addr + off;
	sig = touch(a, write, &val, &si);
	TRACE("%d: host %s of page %llu through view %d: signal %d\n", r->step,
	      write ? "write" : "read", (unsigned long long)p, v, sig);
	ref_view_touched(&r->ref, v, p);
	if (!sig && write)
		ref_track_write(&r->ref, p, false);
	if (ref_host_may_touch(&r->ref, p)) {
		if (sig)
			disagree(r, "a host touch of page %llu (state %u) got signal %d",
				 (unsigned long long)p, r->ref.pages[p].state, sig);
		if (write)
			r->ref.pages[p].data = token;
		else if (val != r->ref.pages[p].data)
			disagree(r, "a host read of page %llu got %u, the model says %u",
				 (unsigned long long)p, val, r->ref.pages[p].data);
		return;
	}
	if (!sig && r->excused[p]) {
		/* left mapped by a zap that failed (injected): nothing could unmap it */
		if (write)
			r->ref.pages[p].data = token;
		return;
	}
	if (sig != r->fault_signal)
		disagree(r, "a host touch of page %llu (state %u) got signal %d, not %d",
			 (unsigned long long)p, r->ref.pages[p].state, sig, r->fault_signal);
	/* SIGBUS: a poison marker; SIGSEGV: a guard, or in a locked view maybe PROT_NONE (gmem.h) */
	if (si.si_addr != (void *)a ||
	    (r->fault_signal == SIGBUS ? !sigbus_refusal(si.si_code)
				       : si.si_code != SEGV_MAPERR &&
						 !(rv->locked && si.si_code == SEGV_ACCERR)))
		disagree(r, "the refusal of page %llu said %p code %d, not %p", (unsigned long long)p,
			 si.si_addr, si.si_code, (void *)a);
}

static void do_guest_touch(struct run *r, struct input *in)
{
	uint8_t token = u8(in);
	uint64_t p = u16(in) % r->ref.npages;

	/* the guest's view of its memory: always there, whatever the state */
	if (token & 1) {
		r->guest[p * PS] = (char)token;
		r->ref.pages[p].data = token;
		ref_track_write(&r->ref, p, true);
	}
}

/*
 * mlock() a view (which faults its shared pages in through the library),
 * lock it on fault, or unlock it: the process around the library locking
 * its memory must change nothing the model sees.
 */
static void do_lock(struct run *r, struct input *in)
{
	uint8_t b = u8(in);
	int v = pick_view(r, b);
	struct ref_view *rv;
	size_t len;

	if (v < 0)
		return;
	rv = &r->ref.views[v];
	len = (rv->end - rv->first) * PS;
	TRACE("%d: %s view %d\n", r->step, (b & 0x60) == 0x60 ? "munlock" : "mlock", v);
	switch (b & 0x60) {
	case 0x00:
	case 0x20:
		rv->locked = true;
		(void)!sys_mlock(rv->addr, len); /* fails on the pages it may not bring in */
		for (uint64_t p = rv->first; p < rv->end; p++)
			r->ref.pages[p].mapped |= (uint8_t)(1u << v); /* faulted in */
		break;
	case 0x40:
		rv->locked = true;
		(void)!sys_mlock2(rv->addr, len, MLOCK_ONFAULT);
		break;
	default:
		(void)!sys_munlock(rv->addr, len);
		break;
	}
}

static void do_state(struct run *r, struct input *in)
{
	uint64_t p = u16(in) % (r->ref.npages + 2);
	int got = gmem_state(r->g, p * PS + (p & 1 ? 17 : 0));

	check_ret(r, "gmem_state", got, p < r->ref.npages ? r->ref.pages[p].state : -EINVAL);
}

/*
 * A byte range for a copy: from a page boundary give or take 127 bytes,
 * a few bytes, about two pages in odd steps, whole half pages, to the end
 * (or a byte past it), or overflowing.
 */
static void byte_range(struct input *in, const struct ref *ref, uint64_t *offset, uint64_t *len)
{
	uint64_t size = ref->npages * PS;
	uint8_t l = u8(in);
	int8_t d = (int8_t)u8(in);
	int64_t o = (int64_t)(u16(in) % (ref->npages + 1) * PS) + d;

	*offset = (uint64_t)(o < 0 ? -o : o);
	if (l < 0x40)
		*len = l;
	else if (l < 0x80)
		*len = (uint64_t)(l - 0x40) * 131;
	else if (l < 0xe0)
		*len = (uint64_t)(l - 0x80) * (PS / 2);
	else if (l < 0xf0)
		*len = UINT64_MAX - (uint64_t)(l & 0xf) * PS;
	else
		*len = (*offset <= size ? size - *offset : 0) + (l & 1);
}

/*
 * The buffer for a copy's arguments from the input's flags byte: bit 0 a
 * NULL buffer, bit 2 a view's address (if there is a view); else one of
 * len bytes (one of 16 if len is more than any object holds: the library
 * must refuse before touching it, and ASan says if it does not).  Whether
 * the model must refuse it is *bad.
 */
static uint8_t *copy_buffer(struct run *r, uint8_t flags, uint64_t len, bool *bad)
{
	int v = pick_view(r, flags >> 3);
	uint8_t *buf;

	*bad = true;
	if (flags & 1)
		return NULL;
	if ((flags & 4) && v >= 0)
		return r->ref.views[v].addr;
	*bad = false;
	buf = malloc(len && len <= REF_MAX_PAGES * PS ? len : 16);
	if (!buf)
		abort();
	return buf;
}

static void free_buffer(struct run *r, uint8_t *buf)
{
	for (int i = 0; i < REF_MAX_VIEWS; i++)
		if (r->ref.views[i].used && buf == r->ref.views[i].addr)
			return;
	free(buf);
}

/* The error offset a copy reported against the model's page (set on -EACCES only). */
static void check_error_offset(struct run *r, const char *what, int got, uint64_t eoff,
			       const uint64_t *want_eoff, uint64_t epage)
{
	if (got == -EACCES && want_eoff && eoff != epage * PS)
		disagree(r, "%s: error offset %llu, the model says page %llu", what,
			 (unsigned long long)eoff, (unsigned long long)epage);
	if ((got != -EACCES || !want_eoff) && eoff != UINT64_MAX)
		disagree(r, "%s: error offset set to %llu on %d", what, (unsigned long long)eoff,
			 got);
}

/*
 * gmem_read(): the result and error offset the model says; on 0 the buffer
 * holds what the guest mapping does (and the model's byte at each page
 * start); refused, the buffer is untouched.
 */
static void do_read(struct run *r, struct input *in)
{
	uint8_t flags = u8(in);
	uint64_t offset, len, eoff = UINT64_MAX, epage = 0;
	uint64_t *eoffp = flags & 2 ? NULL : &eoff;
	struct ref before;
	uint8_t *buf;
	bool bad, fits;
	int want, got;

	byte_range(in, &r->ref, &offset, &len);
	buf = copy_buffer(r, flags, len, &bad);
	fits = !bad && len <= REF_MAX_PAGES * PS;
	if (fits)
		memset(buf, 0xa5, len);
	if (ref_copy(&before, &r->ref))
		abort();
	want = ref_read(&r->ref, offset, len, bad, &epage);
	inject_arm(r->inject_nth);
	got = gmem_read(r->g, offset, buf, len, eoffp);
	TRACE("%d: read [%llu, +%llu) flags %#x: %d (model %d)\n", r->step,
	      (unsigned long long)offset, (unsigned long long)len, flags, got, want);
	if (injected(r, "gmem_read", got, want, &before)) {
		ref_fini(&before);
		free_buffer(r, buf);
		return; /* the buffer may hold part of the range */
	}
	ref_fini(&before);
	check_ret(r, "gmem_read", got, want);
	check_error_offset(r, "gmem_read", got, eoff, eoffp, epage);
	for (uint64_t i = 0; fits && got && i < len; i++)
		if (buf[i] != 0xa5)
			disagree(r, "gmem_read returned %d but wrote byte %llu", got,
				 (unsigned long long)i);
	if (fits && !got && len) {
		if (memcmp(buf, r->guest + offset, len))
			disagree(r, "gmem_read of [%llu, +%llu) differs from the guest mapping",
				 (unsigned long long)offset, (unsigned long long)len);
		for (uint64_t p = (offset + PS - 1) / PS; p * PS < offset + len; p++)
			if (buf[p * PS - offset] != r->ref.pages[p].data)
				disagree(r, "gmem_read: page %llu starts with %u, the model says %u",
					 (unsigned long long)p, buf[p * PS - offset],
					 r->ref.pages[p].data);
	}
	free_buffer(r, buf);
}

/*
 * gmem_write(): the result and error offset the model says; the bytes it
 * wrote, and none around them, through the guest mapping; nothing at all
 * when it fails.  The model learns the bytes at page starts.
 */
static void do_write(struct run *r, struct input *in)
{
	uint8_t flags = u8(in);
	uint64_t size = r->ref.npages * PS, offset, len, eoff = UINT64_MAX, epage = 0, lo = 0, hi = 0;
	uint64_t *eoffp = flags & 2 ? NULL : &eoff;
	uint8_t *buf, *around = NULL;
	struct ref before;
	bool bad, fits;
	int want, got;

	byte_range(in, &r->ref, &offset, &len);
	buf = copy_buffer(r, flags, len, &bad);
	fits = !bad && len <= size && offset <= size - len;
	if (fits) {
		for (uint64_t i = 0; i < len; i++)
			buf[i] = (uint8_t)((offset + i) * 11 + ((offset + i) >> 12) * 5 + flags * 37);
		/* the range and a byte either side, as they were */
		lo = offset ? offset - 1 : 0;
		hi = offset + len < size ? offset + len + 1 : size;
		around = malloc(hi - lo + 1);
		if (!around)
			abort();
		memcpy(around, r->guest + lo, hi - lo);
	}
	if (ref_copy(&before, &r->ref))
		abort();
	want = ref_write(&r->ref, offset, buf, len, bad, &epage);
	inject_arm(r->inject_nth);
	got = gmem_write(r->g, offset, buf, len, eoffp);
	TRACE("%d: write [%llu, +%llu) flags %#x: %d (model %d)\n", r->step,
	      (unsigned long long)offset, (unsigned long long)len, flags, got, want);
	if (!injected(r, "gmem_write", got, want, &before)) {
		check_ret(r, "gmem_write", got, want);
		check_error_offset(r, "gmem_write", got, eoff, eoffp, epage);
	}
	ref_fini(&before);
	if (fits) {
		if (!got)
			memcpy(around + (offset - lo), buf, len);
		if (memcmp(around, r->guest + lo, hi - lo))
			disagree(r, "gmem_write of [%llu, +%llu) returned %d and left %s",
				 (unsigned long long)offset, (unsigned long long)len, got,
				 got ? "bytes changed" : "other bytes than it was given");
	}
	free(around);
	free_buffer(r, buf);
}

/*
 * gmem_track_start(): GMEM_TRACK_GUEST or not, an invalid flag, or a NULL
 * object; -EBUSY while tracking.  A kernel without asynchronous
 * write-protect answers -EOPNOTSUPP: then nothing is tracked (the model
 * does not start either).
 */
static void do_track_start(struct run *r, struct input *in)
{
	uint8_t b = u8(in);
	unsigned int flags = (b & 1 ? GMEM_TRACK_GUEST : 0) | (b & 0x80 ? 2 : 0);
	bool null = (b & 0x60) == 0x60;
	struct ref before;
	int want, got;

	if (ref_copy(&before, &r->ref))
		abort();
	want = null ? -EINVAL : ref_track_start(&r->ref, flags);
	inject_arm(r->inject_nth);
	got = gmem_track_start(null ? NULL : r->g, flags);
	TRACE("%d: track start flags %u%s: %d (model %d)\n", r->step, flags, null ? " (NULL)" : "",
	      got, want);
	if (got == -EOPNOTSUPP && want == 0) {
		inject_disarm();
		ref_fini(&r->ref);
		r->ref = before;
		return;
	}
	if (!injected(r, "gmem_track_start", got, want, &before))
		check_ret(r, "gmem_track_start", got, want);
	ref_fini(&before);
}

static void do_track_stop(struct run *r, struct input *in)
{
	uint8_t b = u8(in);
	bool null = b & 0x80;
	struct ref before;
	int want, got;

	if (ref_copy(&before, &r->ref))
		abort();
	want = null ? -EINVAL : ref_track_stop(&r->ref);
	inject_arm(r->inject_nth);
	got = gmem_track_stop(null ? NULL : r->g);
	TRACE("%d: track stop%s: %d (model %d)\n", r->step, null ? " (NULL)" : "", got, want);
	if (!injected(r, "gmem_track_stop", got, want, &before))
		check_ret(r, "gmem_track_stop", got, want);
	ref_fini(&before);
}

static const char *const fp_name[REF_FP_COUNT] = {
	[REF_FP_ZAP] = "zapped by a conversion",
	[REF_FP_UNMAP] = "view unmapped",
	[REF_FP_MUNMAP] = "view unmapped behind its back",
	[REF_FP_FRESH] = "fresh private copy",
	[REF_FP_FAILED] = "collect failed",
	[REF_FP_OTHER] = "unexplained",
};

#define BITMAP_WORDS (REF_MAX_PAGES / 64 + 2) /* a page past the end, and a guard word */
#define BITMAP_GUARD 0x5a5a5a5a5a5a5a5aULL

/*
 * gmem_track_collect() of a range (bad ones too), peeking or not, or with
 * a bad argument: a NULL bitmap, an offset or a length not page-aligned,
 * an invalid flag.  The result must be the model's; on success the count
 * of bits set, every page the model says was written among them, no bit
 * past the range and no word past its words touched.  Refused, the
 * bitmap is untouched.
 */
static void do_track_collect(struct run *r, struct input *in)
{
	uint64_t bitmap[BITMAP_WORDS], first, n, offset, len, words, set = 0;
	uint8_t f = u8(in);
	unsigned int flags = f & 1 ? GMEM_TRACK_PEEK : 0, bad = (f >> 1) & 15;
	int64_t got;
	int want;

	range(in, &r->ref, &first, &n);
	offset = first * PS;
	len = n * PS;
	if (bad == 12)
		flags |= 2;
	else if (bad == 14)
		offset += PS / 2;
	else if (bad == 15)
		len += 1;
	for (size_t i = 0; i < BITMAP_WORDS; i++)
		bitmap[i] = BITMAP_GUARD;
	want = ref_track_collect(&r->ref, first, n, flags, bad >= 13);
	inject_arm(r->inject_nth);
	got = gmem_track_collect(r->g, offset, len, bad == 13 ? NULL : bitmap, flags);
	TRACE("%d: track collect [%llu, +%llu) flags %u bad %u: %lld (model %d)\n", r->step,
	      (unsigned long long)first, (unsigned long long)n, flags, bad, (long long)got, want);
	/* failed, it changed nothing: what it did not report the next collect must */
	if (inject_disarm() && got < 0 && want == 0) {
		if (got == -EINVAL)
			disagree(r, "gmem_track_collect with %s failing returned -EINVAL",
				 inject_fired_in());
		ref_track_failed(&r->ref, first, n);
		return;
	}
	if (want < 0) {
		if (got != want)
			disagree(r, "gmem_track_collect returned %lld, the model says %d",
				 (long long)got, want);
		for (size_t i = 0; i < BITMAP_WORDS; i++)
			if (bitmap[i] != BITMAP_GUARD)
				disagree(r, "gmem_track_collect returned %d but wrote word %zu", want, i);
		return;
	}
	words = (n + 63) / 64;
	for (size_t i = words; i < BITMAP_WORDS; i++)
		if (bitmap[i] != BITMAP_GUARD)
			disagree(r, "gmem_track_collect of %llu pages wrote word %zu",
				 (unsigned long long)n, i);
	if (n % 64 && bitmap[words - 1] >> (n % 64))
		disagree(r, "gmem_track_collect of %llu pages set bits past them: %#llx",
			 (unsigned long long)n, (unsigned long long)bitmap[words - 1]);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t p = first + i;
		bool bit = bitmap[i / 64] >> (i % 64) & 1;
		enum ref_fp cause;

		set += bit;
		if (ref_track_expect(&r->ref, p, &cause)) {
			if (!bit)
				disagree(r, "gmem_track_collect: page %llu was written and is not "
					    "reported", (unsigned long long)p);
		} else if (bit) {
			track_stats.false_pos[cause]++;
			TRACE("   page %llu reported, not written: %s\n", (unsigned long long)p,
			      fp_name[cause]);
		}
	}
	if (got != (int64_t)set)
		disagree(r, "gmem_track_collect returned %lld with %llu bits set", (long long)got,
			 (unsigned long long)set);
	track_stats.collects++;
	track_stats.reported += set;
	if (!(flags & GMEM_TRACK_PEEK))
		ref_track_reported(&r->ref, first, n);
}

/*
 * munmap() a whole view behind the library's back.  The library follows
 * its notice "a moment after": wait for that (gmem_addr_offset() no longer
 * finds the address), so that the next step meets its records current.
 */
static void do_view_munmap(struct run *r, struct input *in)
{
	int v = pick_view(r, u8(in));
	struct ref_view *rv;
	uint64_t off;
	int kind, err = 0;

	if (v < 0)
		return;
	rv = &r->ref.views[v];
	if (munmap(rv->addr, (rv->end - rv->first) * PS))
		abort();
	for (int i = 0; i < 100000; i++) {
		err = gmem_addr_offset(r->g, rv->addr, &off, &kind);
		if (err == -ENOENT)
			break;
		usleep(10);
	}
	TRACE("%d: munmap view %d behind the library's back: lookup %d\n", r->step, v, err);
	if (err != -ENOENT)
		disagree(r, "a view unmapped behind the library's back is still found (%d)", err);
	ref_view_munmap(&r->ref, v);
}

static int create(struct run *r, struct input *in)
{
	uint8_t b = u8(in);
	struct gmem_config cfg = {
		.backing = (b & 1) && thp_ok ? GMEM_BACKING_THP : GMEM_BACKING_SHMEM,
		.flags = (b & 2 ? GMEM_F_INIT_PRIVATE : 0) | (b & 0x20 ? GMEM_F_FRESH_PRIVATE : 0),
		.fault_signal = b & 4 ? SIGSEGV : SIGBUS,
		.wait_timeout_ms = 1,
	};
	static const uint64_t pages[] = { 4, 16, 64, 9 };
	int err;

	cfg.size = cfg.backing == GMEM_BACKING_THP ? 2ULL << 20 : pages[(b >> 3) & 3] * PS;
	r->block = cfg.backing == GMEM_BACKING_THP ? (2ULL << 20) / PS : 0;
	if (cfg.backing != GMEM_BACKING_SHMEM)
		cfg.flags &= ~GMEM_F_FRESH_PRIVATE; /* 4 KiB backing pages only */
	r->fault_signal = cfg.fault_signal;
	if (ref_init(&r->ref, cfg.size / PS, cfg.flags & GMEM_F_INIT_PRIVATE))
		abort();
	r->ref.fresh = cfg.flags & GMEM_F_FRESH_PRIVATE;
	err = gmem_create(&cfg, &r->g);
	if (err == -EOPNOTSUPP && cfg.backing == GMEM_BACKING_THP) {
		/* shmem_enabled changed under the run (another process's tests): skip */
		ref_fini(&r->ref);
		return -1;
	}
	if (err) {
		fprintf(stderr, "fuzz_gmem: gmem_create: %s\n", strerror(-err));
		abort();
	}
	if (gmem_guest_map(r->g, (void **)&r->guest))
		abort();
	r->callback = true;
	gmem_set_convert_callback(r->g, on_convert, r);
	return 0;
}

/* Drop what the input left behind, as a caller must before destroying. */
static void teardown(struct run *r)
{
	for (uint64_t p = 0; p < r->ref.npages; p++) {
		while (r->ref.pages[p].shortp--)
			gmem_unpin(r->g, p * PS, PS, 0);
		while (r->ref.pages[p].longp--)
			gmem_unpin(r->g, p * PS, PS, GMEM_PIN_LONGTERM);
	}
	if (gmem_destroy(r->g))
		abort();
	ref_fini(&r->ref);
}

static void print_track_stats(void)
{
	uint64_t fp = 0;

	if (!track_stats.collects)
		return;
	for (int c = 0; c < REF_FP_COUNT; c++)
		fp += track_stats.false_pos[c];
	fprintf(stderr, "fuzz_gmem: %llu collects reported %llu pages, %llu of them not written",
		(unsigned long long)track_stats.collects, (unsigned long long)track_stats.reported,
		(unsigned long long)fp);
	for (int c = 0; c < REF_FP_COUNT; c++)
		fprintf(stderr, "%s %s %llu", c ? "," : ":", fp_name[c],
			(unsigned long long)track_stats.false_pos[c]);
	fputc('\n', stderr);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (getenv("GMEM_FUZZ_STATS"))
		atexit(print_track_stats); /* in each child of replay's that runs an input */
	thp_ok = thp_enable();
	trace = getenv("GMEM_FUZZ_TRACE") != NULL;
	setenv("GMEM_DEBUG", "1", 1); /* a step that cannot fail and does is a finding */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, data + size };
	struct run r = { 0 };

	if (create(&r, &in))
		return 0;
	check_all(&r);
	for (r.step = 1; r.step <= MAX_OPS && in.p < in.end; r.step++) {
		enum op op = decode_op(u8(&in));

		TRACE("%d: op %u\n", r.step, op);
		switch (op) {
		case OP_CONVERT:
			do_convert(&r, &in);
			break;
		case OP_PIN:
			do_pin(&r, &in, true);
			break;
		case OP_UNPIN:
			do_pin(&r, &in, false);
			break;
		case OP_DISCARD:
			do_discard(&r, &in);
			break;
		case OP_VIEW_MAP:
			do_view_map(&r, &in);
			break;
		case OP_VIEW_UNMAP:
			do_view_unmap(&r, &in);
			break;
		case OP_HOST_TOUCH:
			do_host_touch(&r, &in);
			break;
		case OP_GUEST_TOUCH:
			do_guest_touch(&r, &in);
			break;
		case OP_STATE:
			do_state(&r, &in);
			break;
		case OP_CALLBACK:
			r.callback = !r.callback;
			gmem_set_convert_callback(r.g, r.callback ? on_convert : NULL, &r);
			break;
		case OP_INJECT:
			r.inject_nth = 1 + u8(&in) % 12;
			continue; /* for the next operation */
		case OP_LOCK:
			do_lock(&r, &in);
			break;
		case OP_READ:
			do_read(&r, &in);
			break;
		case OP_WRITE:
			do_write(&r, &in);
			break;
		case OP_COLLAPSE:
			do_collapse(&r, &in);
			break;
		case OP_TRACK_START:
			do_track_start(&r, &in);
			break;
		case OP_TRACK_STOP:
			do_track_stop(&r, &in);
			break;
		case OP_TRACK_COLLECT:
			do_track_collect(&r, &in);
			break;
		case OP_VIEW_MUNMAP:
			do_view_munmap(&r, &in);
			break;
		case OP_COUNT:
			break; /* not an operation: decode_op() never gives it */
		}
		r.inject_nth = 0;
		check_events(&r);
		check_all(&r);
		trace_pages(&r);
	}
	teardown(&r);
	return 0;
}
