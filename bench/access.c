// SPDX-License-Identifier: MIT
/*
 * access.c - (h4) what gmem_read() and gmem_write() cost beside memcpy()
 * from and to a plain shared memfd mapping: the same lengths at the same
 * offsets over memory of the same size, every page of both already there,
 * in blocks alternating with the baseline.  On the 4 KiB backing, and at
 * 1 MiB on THP too, where the kernel takes a 2 MiB folio at a time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../tests/sysfs.h"
#include "bench.h"

#define REGION (16 * MiB)

/* NULL, the figure marked not measured, where the backing is unavailable. */
static struct gmem *create(struct figure *f, uint64_t size, uint32_t backing)
{
	struct gmem_config cfg = { .size = size, .backing = backing };
	struct gmem *g;
	int err;

	if (backing == GMEM_BACKING_THP)
		thp_enable(); /* for the run, where it may (put back at exit) */
	err = gmem_create(&cfg, &g);
	if (err == -EOPNOTSUPP && backing == GMEM_BACKING_THP) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "no shmem huge pages (shmem_enabled)");
		return NULL;
	}
	if (err)
		die("gmem_create", err);
	return g;
}

static int copy(struct gmem *g, uint64_t off, char *buf, uint64_t len, bool write)
{
	return write ? gmem_write(g, off, buf, len, NULL) : gmem_read(g, off, buf, len, NULL);
}

/* len-byte copies walking the region, gmem's and memcpy()'s in turn. */
static void copies(struct figure *f, int r, uint64_t len, bool write, uint32_t backing)
{
	const uint64_t per_block = len >= MiB ? 8 : 1024, blocks = len >= MiB ? 32 : 64;
	struct gmem *g = create(f, REGION, backing);
	double tg = 0, tb = 0, t0;
	char *p, *buf;
	int fd, err;

	if (!g)
		return;
	p = plain_map(REGION, &fd);
	if (backing == GMEM_BACKING_THP) /* the baseline on huge pages as well */
		madvise(p, REGION, MADV_HUGEPAGE);
	buf = aligned_alloc(PS, len);
	if (!buf)
		die("aligned_alloc", 12);
	memset(buf, 0x5a, len);
	memset(p, 0x5a, REGION);
	for (uint64_t off = 0; off < REGION; off += len) /* gmem's pages, and its guest mapping's */
		if ((err = gmem_write(g, off, buf, len, NULL)))
			die("gmem_write", err);
	for (uint64_t b = 0; b < blocks; b++) {
		uint64_t first = b * per_block;

		for (int order = 0; order < 2; order++) {
			if ((order + b + (uint64_t)r) % 2 == 0) {
				t0 = now_ns();
				for (uint64_t i = first; i < first + per_block; i++)
					if ((err = copy(g, i * len % REGION, buf, len, write)))
						die(write ? "gmem_write" : "gmem_read", err);
				tg += now_ns() - t0;
			} else {
				t0 = now_ns();
				for (uint64_t i = first; i < first + per_block; i++) {
					if (write)
						memcpy(p + i * len % REGION, buf, len);
					else
						memcpy(buf, p + i * len % REGION, len);
					__asm__ volatile("" ::: "memory");
				}
				tb += now_ns() - t0;
			}
		}
	}
	f->value[r] = tg / (double)(blocks * per_block);
	f->base[r] = tb / (double)(blocks * per_block);
	free(buf);
	gmem_destroy(g);
	plain_unmap(p, REGION, fd);
}

static void read_4k(struct figure *f, int r)
{
	copies(f, r, 4 * KiB, false, GMEM_BACKING_SHMEM);
}

static void write_4k(struct figure *f, int r)
{
	copies(f, r, 4 * KiB, true, GMEM_BACKING_SHMEM);
}

static void read_1m(struct figure *f, int r)
{
	copies(f, r, MiB, false, GMEM_BACKING_SHMEM);
}

static void write_1m(struct figure *f, int r)
{
	copies(f, r, MiB, true, GMEM_BACKING_SHMEM);
}

static void read_1m_thp(struct figure *f, int r)
{
	copies(f, r, MiB, false, GMEM_BACKING_THP);
}

static void write_1m_thp(struct figure *f, int r)
{
	copies(f, r, MiB, true, GMEM_BACKING_THP);
}

struct bench_entry access_figures[] = {
	{ { .id = "access_read_4k", .what = "(h4) gmem_read() of 4 KiB", .unit = "ns",
	    .baseline_what = "memcpy() of 4 KiB from a plain memfd mapping", .target = 1.5 },
	  read_4k },
	{ { .id = "access_write_4k", .what = "(h4) gmem_write() of 4 KiB", .unit = "ns",
	    .baseline_what = "memcpy() of 4 KiB to a plain memfd mapping", .target = 1.5 },
	  write_4k },
	{ { .id = "access_read_1m", .what = "(h4) gmem_read() of 1 MiB", .unit = "ns",
	    .baseline_what = "memcpy() of 1 MiB from a plain memfd mapping", .target = 1.1 },
	  read_1m },
	{ { .id = "access_write_1m", .what = "(h4) gmem_write() of 1 MiB", .unit = "ns",
	    .baseline_what = "memcpy() of 1 MiB to a plain memfd mapping", .target = 1.1 },
	  write_1m },
	{ { .id = "access_read_1m_thp", .what = "(h4) gmem_read() of 1 MiB, THP backing",
	    .unit = "ns", .baseline_what = "memcpy() of 1 MiB from a plain MADV_HUGEPAGE mapping",
	    .target = 1.1 },
	  read_1m_thp },
	{ { .id = "access_write_1m_thp", .what = "(h4) gmem_write() of 1 MiB, THP backing",
	    .unit = "ns", .baseline_what = "memcpy() of 1 MiB to a plain MADV_HUGEPAGE mapping",
	    .target = 1.1 },
	  write_1m_thp },
};
const size_t n_access_figures = sizeof(access_figures) / sizeof(access_figures[0]);
