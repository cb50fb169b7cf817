// SPDX-License-Identifier: MIT
/*
 * harden.c - what the isolation promise costs where it costs something:
 * GMEM_F_FRESH_PRIVATE (a fresh backing page per page made private) beside
 * the in-place conversion it replaces, and the refusals of the SIGSEGV
 * policy (a guard marker; PROT_NONE in locked views) beside SIGBUS's
 * poison marker.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <sys/mman.h>

#include "../tests/memlock.h"
#include "../tests/touch.h"
#include "bench.h"

static struct gmem *create(uint64_t size, uint32_t flags, int fault_signal)
{
	struct gmem_config cfg = { .size = size, .backing = GMEM_BACKING_SHMEM, .flags = flags,
				   .fault_signal = fault_signal };
	struct gmem *g;
	int err = gmem_create(&cfg, &g);

	if (err)
		die("gmem_create", err);
	return g;
}

static char *view(struct gmem *g, uint64_t len)
{
	void *v;
	int err = gmem_view_map(g, 0, len, 0, &v);

	if (err)
		die("gmem_view_map", err);
	return v;
}

/* Time converting [0, len) of g to private, every page touched through a view first. */
static double time_to_private(struct gmem *g, char *v, uint64_t len, uint64_t step)
{
	double t = 0;

	touch_pages(v, len);
	for (uint64_t o = 0; o < len; o += step) {
		double t0 = now_ns();
		int err = gmem_convert(g, o, step, GMEM_PRIVATE, 0, NULL);

		t += now_ns() - t0;
		if (err)
			die("gmem_convert", err);
	}
	return t;
}

/* A touched range to private with fresh pages, vs in place; both orders alternate. */
static void fresh_vs_in_place(struct figure *f, int r, uint64_t len, uint64_t step)
{
	struct gmem *fresh = create(len, GMEM_F_FRESH_PRIVATE, 0), *plain = create(len, 0, 0);
	char *vf = view(fresh, len), *vp = view(plain, len);

	if (r % 2) {
		f->value[r] = time_to_private(fresh, vf, len, step) / (double)(len / step);
		f->base[r] = time_to_private(plain, vp, len, step) / (double)(len / step);
	} else {
		f->base[r] = time_to_private(plain, vp, len, step) / (double)(len / step);
		f->value[r] = time_to_private(fresh, vf, len, step) / (double)(len / step);
	}
	gmem_destroy(fresh);
	gmem_destroy(plain);
}

static void fresh_256m(struct figure *f, int r)
{
	fresh_vs_in_place(f, r, 256 * MiB, 256 * MiB);
}

#define FRESH_PAGES 4096
static void fresh_page(struct figure *f, int r)
{
	fresh_vs_in_place(f, r, FRESH_PAGES * PS, PS);
}

/* Time the first touch of each of n private pages through a view: each one refused. */
#define REFUSALS 20000
static double time_refusals(int fault_signal, bool locked)
{
	struct gmem *g = create(REFUSALS * PS, GMEM_F_INIT_PRIVATE, fault_signal);
	char *v = view(g, REFUSALS * PS);
	double t0;

	if (locked && sys_mlock2(v, REFUSALS * PS, MLOCK_ONFAULT))
		die("mlock2", errno);
	t0 = now_ns();
	for (uint64_t i = 0; i < REFUSALS; i++)
		if (touch(v + i * PS, false, NULL, NULL) != fault_signal)
			die("a refusal", EIO);
	t0 = (now_ns() - t0) / REFUSALS;
	gmem_destroy(g);
	return t0;
}

static void refusal_guard(struct figure *f, int r)
{
	f->value[r] = time_refusals(SIGSEGV, false);
	f->base[r] = time_refusals(SIGBUS, false);
}

static void refusal_prot_none(struct figure *f, int r)
{
	f->value[r] = time_refusals(SIGSEGV, true);
	f->base[r] = time_refusals(SIGBUS, false);
}

/* Re-sharing a range whose every page was refused: clearing the marks. */
static double time_reshare(int fault_signal, bool locked)
{
	struct gmem *g = create(REFUSALS * PS, GMEM_F_INIT_PRIVATE, fault_signal);
	char *v = view(g, REFUSALS * PS);
	double t0;
	int err;

	if (locked && sys_mlock2(v, REFUSALS * PS, MLOCK_ONFAULT))
		die("mlock2", errno);
	for (uint64_t i = 0; i < REFUSALS; i += 2) /* every other page: as many runs of marks */
		touch(v + i * PS, false, NULL, NULL);
	t0 = now_ns();
	err = gmem_convert(g, 0, REFUSALS * PS, GMEM_SHARED, 0, NULL);
	t0 = (now_ns() - t0) / (REFUSALS / 2);
	if (err)
		die("gmem_convert", err);
	gmem_destroy(g);
	return t0;
}

static void reshare_guard(struct figure *f, int r)
{
	f->value[r] = time_reshare(SIGSEGV, false);
	f->base[r] = time_reshare(SIGBUS, false);
}

static void reshare_prot_none(struct figure *f, int r)
{
	f->value[r] = time_reshare(SIGSEGV, true);
	f->base[r] = time_reshare(SIGBUS, false);
}

struct bench_entry harden_figures[] = {
	{ { .id = "fresh_256m", .what = "(f) a touched 256 MiB range to private, fresh pages",
	    .unit = "ns", .baseline_what = "the same conversion in place", .target = 40 },
	  fresh_256m },
	{ { .id = "fresh_page", .what = "(f) a touched page to private, fresh page",
	    .unit = "ns", .baseline_what = "the same conversion in place", .target = 10 },
	  fresh_page },
	{ { .id = "refusal_sigsegv", .what = "(g) a refused host touch, SIGSEGV (guard marker)",
	    .unit = "ns", .baseline_what = "the same, SIGBUS (poison marker)", .target = 1.5 },
	  refusal_guard },
	{ { .id = "refusal_sigsegv_locked",
	    .what = "(g) a refused host touch, SIGSEGV in a locked view (PROT_NONE)", .unit = "ns",
	    .baseline_what = "the same, SIGBUS (poison marker)", .target = 3 },
	  refusal_prot_none },
	{ { .id = "reshare_sigsegv", .what = "(g) re-sharing a refused page, SIGSEGV (guard)",
	    .unit = "ns/page", .baseline_what = "the same, SIGBUS (poison)", .target = 2 },
	  reshare_guard },
	{ { .id = "reshare_sigsegv_locked",
	    .what = "(g) re-sharing a refused page, SIGSEGV in a locked view (PROT_NONE)",
	    .unit = "ns/page", .baseline_what = "the same, SIGBUS (poison)", .target = 10 },
	  reshare_prot_none },
};
const size_t n_harden_figures = sizeof(harden_figures) / sizeof(harden_figures[0]);
