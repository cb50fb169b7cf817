// SPDX-License-Identifier: MIT
/*
 * hugeconv.c - conversions on huge backings, beside the same on 4 KiB shmem.
 *
 * (h1) one 4 KiB conversion to private of a page a view maps, on THP,
 * hugetlb 2 MiB and hugetlb 1 GiB, against the same on shmem, in turns: a
 * conversion never splits a huge page, so it should cost what it costs on
 * shmem - on hugetlbfs its zap unmaps the whole huge page from the view.
 * (h5) a 256 MiB conversion to private of pages a view maps, likewise.
 *
 * The huge backings need the kernel's help: shmem huge pages (as root the
 * benchmark sets shmem_enabled to "advise" for the run) and hugetlb pool
 * pages (as root it raises nr_hugepages for the run); tests/sysfs.c puts
 * both back at exit.  Without them a figure is reported as not measured.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "../tests/sysfs.h"
#include "bench.h"

#define ONE_PAGE_ROUNDS 5000 /* a 1 GiB page's runs are noisy: more of them */
#define BIG (256 * MiB)

struct huge {
	uint32_t backing;
	uint64_t page;
	const char *name;
};

static const struct huge thp = { GMEM_BACKING_THP, 2 * MiB, "THP" };
static const struct huge h2m = { GMEM_BACKING_HUGETLB_2M, 2 * MiB, "hugetlb 2 MiB" };
static const struct huge h1g = { GMEM_BACKING_HUGETLB_1G, GiB, "hugetlb 1 GiB" };

/* An object of size bytes on h (or on shmem, for NULL); NULL and f skipped if it cannot be. */
static struct gmem *make(struct figure *f, const struct huge *h, uint64_t size)
{
	struct gmem_config cfg = { .size = size, .backing = h ? h->backing : GMEM_BACKING_SHMEM };
	bool ok = true;
	struct gmem *g;
	int err;

	if (h && h->backing == GMEM_BACKING_THP)
		ok = thp_enable();
	else if (h)
		ok = hugetlb_reserve(h->page, size / h->page);
	if (!ok || (err = gmem_create(&cfg, &g))) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "no %s pages for %llu MiB (shmem_enabled, the pool)",
			 h ? h->name : "shmem", (unsigned long long)(size >> 20));
		return NULL;
	}
	return g;
}

static char *view_all(struct gmem *g)
{
	void *v;
	int err = gmem_view_map(g, 0, gmem_size(g), 0, &v);

	if (err)
		die("gmem_view_map", err);
	return v;
}

/* One conversion to private of page `off` a view v of g maps, in ns. */
static double one_page(struct gmem *g, char *v, uint64_t off, int i)
{
	double t0, t;
	int err;

	v[off] = (char)i; /* mapped: the conversion must zap it */
	t0 = now_ns();
	err = gmem_convert(g, off, PS, GMEM_PRIVATE, 0, NULL);
	t = now_ns() - t0;
	if (err || (err = gmem_convert(g, off, PS, GMEM_SHARED, 0, NULL)))
		die("gmem_convert", err);
	return t;
}

/* The two backings in turns, conversion by conversion: the machine's drift hits both alike. */
static void h1(struct figure *f, int r, const struct huge *h)
{
	struct gmem *hg = make(f, h, h->page), *sg;
	double th = 0, ts = 0;
	char *hv, *sv;

	if (!hg)
		return;
	sg = make(f, NULL, 64 * MiB);
	hv = view_all(hg);
	sv = view_all(sg);
	for (int i = 0; i < ONE_PAGE_ROUNDS; i++) {
		uint64_t off = (uint64_t)(i % 256) * PS;

		if ((i + r) % 2) {
			ts += one_page(sg, sv, off, i);
			th += one_page(hg, hv, off, i);
		} else {
			th += one_page(hg, hv, off, i);
			ts += one_page(sg, sv, off, i);
		}
	}
	f->value[r] = th / ONE_PAGE_ROUNDS;
	f->base[r] = ts / ONE_PAGE_ROUNDS;
	gmem_destroy(hg);
	gmem_destroy(sg);
}

static void h1_thp(struct figure *f, int r)
{
	h1(f, r, &thp);
}

static void h1_2m(struct figure *f, int r)
{
	h1(f, r, &h2m);
}

static void h1_1g(struct figure *f, int r)
{
	h1(f, r, &h1g);
}

/* ns to convert BIG bytes to private, every page mapped in a view first. */
static double big(struct gmem *g)
{
	char *v = view_all(g);
	double t0, t;
	int err;

	for (uint64_t o = 0; o < BIG; o += PS)
		v[o] = 1;
	t0 = now_ns();
	err = gmem_convert(g, 0, BIG, GMEM_PRIVATE, 0, NULL);
	t = now_ns() - t0;
	if (err)
		die("gmem_convert", err);
	gmem_view_unmap(g, v);
	return t;
}

static void h5(struct figure *f, int r, const struct huge *h)
{
	struct gmem *hg = make(f, h, h->page > BIG ? h->page : BIG), *sg;

	if (!hg)
		return;
	sg = make(f, NULL, BIG);
	if (r % 2) {
		f->base[r] = big(sg);
		f->value[r] = big(hg);
	} else {
		f->value[r] = big(hg);
		f->base[r] = big(sg);
	}
	gmem_destroy(hg);
	gmem_destroy(sg);
}

static void h5_thp(struct figure *f, int r)
{
	h5(f, r, &thp);
}

static void h5_2m(struct figure *f, int r)
{
	h5(f, r, &h2m);
}

static void h5_1g(struct figure *f, int r)
{
	h5(f, r, &h1g);
}

#define H1(id_, what_, fn)                                                             \
	{ { .id = id_, .what = what_, .unit = "ns",                                     \
	    .baseline_what = "the same on 4 KiB shmem", .target = 1.1 },                \
	  fn }
#define H5(id_, what_, fn)                                                             \
	{ { .id = id_, .what = what_, .unit = "ns",                                     \
	    .baseline_what = "the same on 4 KiB shmem" },                               \
	  fn }

struct bench_entry hugeconv_figures[] = {
	H1("huge_convert_page_thp", "(h1) one 4 KiB page to private, THP", h1_thp),
	H1("huge_convert_page_2m", "(h1) one 4 KiB page to private, hugetlb 2 MiB", h1_2m),
	H1("huge_convert_page_1g", "(h1) one 4 KiB page to private, hugetlb 1 GiB", h1_1g),
	H5("huge_convert_256m_thp", "(h5) 256 MiB to private, THP", h5_thp),
	H5("huge_convert_256m_2m", "(h5) 256 MiB to private, hugetlb 2 MiB", h5_2m),
	H5("huge_convert_256m_1g", "(h5) 256 MiB to private, hugetlb 1 GiB", h5_1g),
};
const size_t n_hugeconv_figures = sizeof(hugeconv_figures) / sizeof(hugeconv_figures[0]);
