// SPDX-License-Identifier: MIT
/*
 * thp.c - huge pages kept and merged back, on THP backing.
 *
 * (h2) after 10,000 random 4 KiB conversions over 1 GiB, how many of the
 * populated 2 MiB blocks the guest mapping still maps huge, beside how
 * many a split-on-share design would keep - one that splits a huge page
 * at the first conversion of a page in it, as the kernel's guest_memfd
 * RFC does: the blocks no conversion touched.
 * (h3) gmem_collapse() of one block split by a discard, beside a bare
 * MADV_COLLAPSE of the same kind of block on a plain shmem THP mapping.
 *
 * Both need shmem huge pages: as root the benchmark sets shmem_enabled to
 * "advise" for the run (tests/sysfs.c, which puts it back at exit);
 * without them the figures are reported as not measured.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../tests/sysfs.h"
#include "bench.h"

#define BLOCK (2 * MiB)
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

static bool thp_usable(struct figure *f)
{
	static int ok = -1;

	if (ok < 0)
		ok = thp_enable();
	if (!ok) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "shmem huge pages unavailable (shmem_enabled, not root)");
	}
	return ok;
}

static struct gmem *create_thp(uint64_t size)
{
	struct gmem_config cfg = { .size = size, .backing = GMEM_BACKING_THP };
	struct gmem *g;
	int err = gmem_create(&cfg, &g);

	if (err)
		die("gmem_create", err);
	return g;
}

static struct gmem_huge_info huge_info(struct gmem *g)
{
	struct gmem_huge_info i;
	int err = gmem_huge_info(g, &i);

	if (err)
		die("gmem_huge_info", err);
	return i;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* (h2) */
#define KEPT_SIZE GiB
#define KEPT_CONVERSIONS 10000
static void huge_kept(struct figure *f, int r)
{
	uint64_t npages = KEPT_SIZE / PS, nblocks = KEPT_SIZE / BLOCK, untouched = nblocks;
	uint64_t seed = 0x9e3779b97f4a7c15ULL + (uint64_t)r;
	uint8_t *priv = calloc(npages, 1), *touched = calloc(nblocks, 1);
	struct gmem_huge_info i;
	struct gmem *g;
	void *v;
	int err;

	if (!priv || !touched)
		die("calloc", ENOMEM);
	if (!thp_usable(f))
		goto out;
	g = create_thp(KEPT_SIZE);
	err = gmem_view_map(g, 0, KEPT_SIZE, 0, &v);
	if (err)
		die("gmem_view_map", err);
	touch_pages(v, KEPT_SIZE); /* the host writes all of it: every block populated */
	for (int n = 0; n < KEPT_CONVERSIONS; n++) {
		uint64_t p = rnd(&seed) % npages;

		err = gmem_convert(g, p * PS, PS, priv[p] ? GMEM_SHARED : GMEM_PRIVATE, 0, NULL);
		if (err)
			die("gmem_convert", err);
		priv[p] ^= 1;
		untouched -= !touched[p * PS / BLOCK];
		touched[p * PS / BLOCK] = 1;
	}
	i = huge_info(g);
	if (i.blocks_populated != nblocks)
		die("populating 1 GiB of huge pages", ENOMEM);
	f->value[r] = 100.0 * (double)i.blocks_guest_huge / (double)i.blocks_populated;
	f->base[r] = 100.0 * (double)untouched / (double)i.blocks_populated;
	if (r == 0)
		printf("%-54s %llu of %llu blocks huge; split-on-share: %llu untouched\n", "(h2)",
		       (unsigned long long)i.blocks_guest_huge, (unsigned long long)nblocks,
		       (unsigned long long)untouched);
	gmem_view_unmap(g, v);
	gmem_destroy(g);
out:
	free(priv);
	free(touched);
}

/* (h3) */
#define MERGE_BLOCKS 32
#define MERGE_SIZE (MERGE_BLOCKS * BLOCK)

/*
 * gmem: every block of an object written (as the guest would), one page of
 * each discarded, which splits it.
 */
static struct gmem *split_gmem(void)
{
	struct gmem *g = create_thp(MERGE_SIZE);
	struct gmem_huge_info i;
	void *guest;
	int err;

	gmem_guest_map(g, &guest);
	touch_pages(guest, MERGE_SIZE);
	for (uint64_t b = 0; b < MERGE_BLOCKS; b++)
		if ((err = gmem_discard(g, b * BLOCK + (1 + b % 500) * PS, PS)))
			die("gmem_discard", err);
	i = huge_info(g);
	if (i.splits != MERGE_BLOCKS || i.blocks_guest_huge)
		die("splitting the blocks", EIO);
	return g;
}

/* The same on a plain memfd mapping, 2 MiB-aligned and MADV_HUGEPAGE, with bare system calls. */
struct plain_thp {
	int fd;
	char *reserve, *p;
};

static void split_plain(struct plain_thp *m)
{
	m->fd = memfd_create("bench-thp", MFD_CLOEXEC);
	if (m->fd < 0 || ftruncate(m->fd, MERGE_SIZE))
		die("memfd", errno);
	m->reserve = mmap(NULL, MERGE_SIZE + BLOCK, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m->reserve == MAP_FAILED)
		die("mmap", errno);
	m->p = (char *)(((uintptr_t)m->reserve + BLOCK - 1) & ~(uintptr_t)(BLOCK - 1));
	if (mmap(m->p, MERGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, m->fd, 0) ==
		    MAP_FAILED ||
	    madvise(m->p, MERGE_SIZE, MADV_HUGEPAGE))
		die("mmap", errno);
	touch_pages(m->p, MERGE_SIZE);
	for (uint64_t b = 0; b < MERGE_BLOCKS; b++)
		if (fallocate(m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(b * BLOCK + (1 + b % 500) * PS), PS))
			die("fallocate", errno);
}

static double time_gmem_collapse(struct gmem *g, uint64_t b)
{
	double t0 = now_ns();
	int err = gmem_collapse(g, b * BLOCK, BLOCK, NULL);

	t0 = now_ns() - t0;
	if (err)
		die("gmem_collapse", err);
	return t0;
}

static double time_raw_collapse(struct plain_thp *m, uint64_t b)
{
	double t0 = now_ns();
	int err = madvise(m->p + b * BLOCK, BLOCK, MADV_COLLAPSE) ? errno : 0;

	t0 = now_ns() - t0;
	if (err)
		die("MADV_COLLAPSE", err);
	return t0;
}

/* Block by block, the two in turn (each first every other block): noise lands on both. */
static void collapse_block(struct figure *f, int r)
{
	struct plain_thp m;
	struct gmem_huge_info i;
	double tg = 0, tb = 0;
	struct gmem *g;

	if (!thp_usable(f))
		return;
	g = split_gmem();
	split_plain(&m);
	for (uint64_t b = 0; b < MERGE_BLOCKS; b++) {
		if ((b + (uint64_t)r) % 2) {
			tg += time_gmem_collapse(g, b);
			tb += time_raw_collapse(&m, b);
		} else {
			tb += time_raw_collapse(&m, b);
			tg += time_gmem_collapse(g, b);
		}
	}
	i = huge_info(g);
	if (i.merges != MERGE_BLOCKS || i.blocks_guest_huge != MERGE_BLOCKS)
		die("merging the blocks", EIO);
	f->value[r] = tg / MERGE_BLOCKS;
	f->base[r] = tb / MERGE_BLOCKS;
	gmem_destroy(g);
	munmap(m.reserve, MERGE_SIZE + BLOCK);
	close(m.fd);
}

struct bench_entry thp_figures[] = {
	{ { .id = "thp_guest_huge",
	    .what = "(h2) populated blocks guest-huge after 10,000 conversions",
	    .unit = "%", .baseline_what = "split-on-share: blocks no conversion touched",
	    .target = 100, .at_least = true, .absolute = true },
	  huge_kept },
	{ { .id = "thp_collapse", .what = "(h3) gmem_collapse() of one split 2 MiB block",
	    .unit = "ns", .baseline_what = "bare MADV_COLLAPSE of such a block, plain shmem THP",
	    .target = 1.1 },
	  collapse_block },
};
const size_t n_thp_figures = sizeof(thp_figures) / sizeof(thp_figures[0]);
