// SPDX-License-Identifier: MIT
/*
 * core.c - libgmem's own figures, each beside the kernel operation it should
 * cost about as much as.  Workloads run in small blocks alternating with
 * their baseline's, so that whatever else the machine does lands on both.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

static struct gmem *create(uint64_t size, uint32_t backing)
{
	struct gmem_config cfg = { .size = size, .backing = backing };
	struct gmem *g;
	int err = gmem_create(&cfg, &g);

	if (err)
		die("gmem_create", err);
	return g;
}

static char *view(struct gmem *g, uint64_t off, uint64_t len)
{
	void *v;
	int err = gmem_view_map(g, off, len, 0, &v);

	if (err)
		die("gmem_view_map", err);
	return v;
}

/* (a) first touch of 64 MiB of shared memory through a view vs a plain memfd mapping */
#define TOUCH_BLOCK (1 * MiB)
static void first_touch(struct figure *f, int r)
{
	const uint64_t size = 64 * MiB;
	struct gmem *g = create(size, GMEM_BACKING_SHMEM);
	char *v = view(g, 0, size), *p;
	double tg = 0, tb = 0, t0;
	int fd;

	p = plain_map(size, &fd);
	for (uint64_t o = 0; o < size; o += TOUCH_BLOCK) {
		t0 = now_ns();
		touch_pages(v + o, TOUCH_BLOCK);
		tg += now_ns() - t0;
		t0 = now_ns();
		touch_pages(p + o, TOUCH_BLOCK);
		tb += now_ns() - t0;
	}
	f->value[r] = tg / (size / PS);
	f->base[r] = tb / (size / PS);
	gmem_destroy(g);
	plain_unmap(p, size, fd);
}

/* (b) converting a fully touched 256 MiB range to private vs one MADV_DONTNEED of it */
static void convert_range(struct figure *f, int r)
{
	const uint64_t size = 256 * MiB;
	struct gmem *g = create(size, GMEM_BACKING_SHMEM);
	char *v = view(g, 0, size), *p;
	double t0, tg = 0, tb = 0;
	int fd, err;

	p = plain_map(size, &fd);
	touch_pages(v, size);
	touch_pages(p, size);
	for (int i = 0; i < 2; i++) { /* both orders: neither always goes first */
		if ((i + r) % 2 == 0) {
			t0 = now_ns();
			err = gmem_convert(g, 0, size, GMEM_PRIVATE, 0, NULL);
			tg = now_ns() - t0;
			if (err)
				die("gmem_convert", err);
		} else {
			t0 = now_ns();
			madvise(p, size, MADV_DONTNEED);
			tb = now_ns() - t0;
		}
	}
	f->value[r] = tg;
	f->base[r] = tb;
	gmem_destroy(g);
	plain_unmap(p, size, fd);
}

/*
 * (c) single-page conversions, page by page, vs one MADV_DONTNEED of one
 * mapped page of a plain mapping.  To private, each page is mapped in a
 * view first (the conversion zaps it); to shared, each was private.
 */
#define SINGLE_PAGES 10000
static void single_pages(struct figure *f, int r, unsigned int to)
{
	const uint64_t size = SINGLE_PAGES * PS;
	struct gmem *g = create(size, GMEM_BACKING_SHMEM);
	double tg = 0, tb = 0, t0;
	char *p;
	int fd;

	if (to == GMEM_PRIVATE)
		touch_pages(view(g, 0, size), size);
	else if (gmem_convert(g, 0, size, GMEM_PRIVATE, 0, NULL))
		die("gmem_convert", EIO);
	p = plain_map(size, &fd);
	touch_pages(p, size);
	for (uint64_t i = 0; i < SINGLE_PAGES; i++) {
		int err;

		t0 = now_ns();
		err = gmem_convert(g, i * PS, PS, to, 0, NULL);
		tg += now_ns() - t0;
		if (err)
			die("gmem_convert", err);
		t0 = now_ns();
		madvise(p + i * PS, PS, MADV_DONTNEED);
		tb += now_ns() - t0;
	}
	f->value[r] = tg / SINGLE_PAGES;
	f->base[r] = tb / SINGLE_PAGES;
	gmem_destroy(g);
	plain_unmap(p, size, fd);
}

static void single_page(struct figure *f, int r)
{
	single_pages(f, r, GMEM_PRIVATE);
}

/* The way back: a page gmem never refused to the host needs no zap. */
static void single_page_shared(struct figure *f, int r)
{
	single_pages(f, r, GMEM_SHARED);
}

/* (d) pin + unpin of one page, vs the floor: an atomic increment and decrement. */
#define PIN_PAIRS 2000000
#define PIN_BLOCK 10000
static void pin_pair(struct figure *f, int r)
{
	struct gmem *g = create(2 * MiB, GMEM_BACKING_SHMEM);
	static _Atomic uint64_t word;
	double tg = 0, tb = 0, t0;

	gmem_pin(g, 0, PS, 0); /* the first pin builds the page's table leaf */
	gmem_unpin(g, 0, PS, 0);
	for (int b = 0; b < PIN_PAIRS / PIN_BLOCK; b++) {
		t0 = now_ns();
		for (int i = 0; i < PIN_BLOCK; i++) {
			gmem_pin(g, PS, PS, 0);
			gmem_unpin(g, PS, PS, 0);
		}
		tg += now_ns() - t0;
		t0 = now_ns();
		for (int i = 0; i < PIN_BLOCK; i++) {
			atomic_fetch_add(&word, 1);
			atomic_fetch_sub(&word, 1);
		}
		tb += now_ns() - t0;
	}
	f->value[r] = tg / PIN_PAIRS;
	f->base[r] = tb / PIN_PAIRS;
	gmem_destroy(g);
}

/* 10,000 private single pages spread over the object. */
static void fragment(struct gmem *g, uint64_t size)
{
	for (uint64_t i = 0; i < 10000; i++) {
		int err = gmem_convert(g, i * (size / 10000) / PS * PS, PS, GMEM_PRIVATE, 0, NULL);

		if (err)
			die("gmem_convert", err);
	}
}

/* (e1) the library's heap for a 1 TiB object holding 10,000 private runs, vs 1 MiB */
static void big_memory(struct figure *f, int r)
{
	size_t heap0 = mallinfo2().uordblks;
	struct gmem *g = create(TiB, GMEM_BACKING_SHMEM);

	fragment(g, TiB);
	f->value[r] = (double)(mallinfo2().uordblks - heap0);
	f->base[r] = (double)MiB;
	gmem_destroy(g);
}

/* Time n single-page conversion pairs in the middle of a fragmented object. */
static double conversion_pairs(struct gmem *g, int n)
{
	uint64_t off = gmem_size(g) / 2 + PS;
	double t0 = now_ns();

	for (int i = 0; i < n; i++) {
		gmem_convert(g, off, PS, GMEM_PRIVATE, 0, NULL);
		gmem_convert(g, off, PS, GMEM_SHARED, 0, NULL);
	}
	return now_ns() - t0;
}

/* (e2) one conversion at 1 TiB vs one at 1 GiB, both holding 10,000 private runs */
static void big_convert(struct figure *f, int r)
{
	struct gmem *big = create(TiB, GMEM_BACKING_SHMEM), *small = create(GiB, GMEM_BACKING_SHMEM);
	double tg = 0, tb = 0;
	const int blocks = 20, n = 1000;

	fragment(big, TiB);
	fragment(small, GiB);
	for (int b = 0; b < blocks; b++) {
		tg += conversion_pairs(big, n);
		tb += conversion_pairs(small, n);
	}
	f->value[r] = tg / (2.0 * blocks * n);
	f->base[r] = tb / (2.0 * blocks * n);
	gmem_destroy(big);
	gmem_destroy(small);
}

struct bench_entry core_figures[] = {
	{ { .id = "first_touch", .what = "(a) first touch of 64 MiB through a host view",
	    .unit = "ns/page", .baseline_what = "plain MAP_SHARED memfd mapping", .target = 1.5 },
	  first_touch },
	{ { .id = "convert_256m", .what = "(b) convert a touched 256 MiB range to private",
	    .unit = "ns", .baseline_what = "one MADV_DONTNEED of the range", .target = 1.2 },
	  convert_range },
	{ { .id = "convert_page", .what = "(c) single-page conversion to private (mapped page)",
	    .unit = "ns", .baseline_what = "one MADV_DONTNEED of one mapped page", .target = 1.5 },
	  single_page },
	{ { .id = "convert_page_shared", .what = "(c') single-page conversion back to shared",
	    .unit = "ns", .baseline_what = "one MADV_DONTNEED of one mapped page", .target = 1.5 },
	  single_page_shared },
	{ { .id = "pin_unpin", .what = "(d) pin + unpin of one page", .unit = "ns/pair",
	    .baseline_what = "atomic increment + decrement", .target = 50, .absolute = true },
	  pin_pair },
	{ { .id = "memory_1t", .what = "(e) library heap, 1 TiB with 10,000 private runs",
	    .unit = "bytes", .baseline_what = "1 MiB", .target = 1.0 },
	  big_memory },
	{ { .id = "convert_1t", .what = "(e) one conversion at 1 TiB (10,000 runs)", .unit = "ns",
	    .baseline_what = "the same at 1 GiB", .target = 2.0 },
	  big_convert },
};
const size_t n_core_figures = sizeof(core_figures) / sizeof(core_figures[0]);
