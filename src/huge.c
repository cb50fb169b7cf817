// SPDX-License-Identifier: MIT
/*
 * huge.c - the backing's huge pages: which blocks have memory, which the
 * guest mapping maps huge, which a discard split, and merging them back.
 *
 * A block is one backing page, g->b.align bytes (a 4 KiB page for the
 * 4 KiB backing).  gmem keeps states and pins per 4 KiB page, so nothing
 * but a discard splits a block: conversions zap 4 KiB pieces of views and
 * never touch the guest mapping, which keeps its huge entries (the
 * kernel's guest_memfd splits a huge folio at the first conversion of a
 * page in it).  A hole punch in part of a THP block splits its folio - and
 * a later touch of the hole allocates a 4 KiB page there, so the block
 * stays split - until MADV_COLLAPSE on the guest mapping merges it back.
 * Hugetlb blocks never split.
 *
 * What is reported is read from the kernel without faulting anything in:
 * mincore() of the guest mapping for memory (for shmem, the page cache),
 * PAGEMAP_SCAN for its huge entries.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "os/pagemap.h"

#define MINCORE_PAGES 4096 /* one mincore() vector, on the stack: 16 MiB a call */
#define SCAN_REGIONS 64    /* PAGEMAP_SCAN regions a call */
#define PM_BATCH 512       /* /proc/self/pagemap entries a read */
#define PM_PRESENT (1ULL << 63)
#define COLLAPSE_TRIES 3   /* MADV_COLLAPSE's EAGAIN is worth a second look */

static uint64_t block_pages(const struct gmem *g)
{
	return g->b.align >> PAGE_SHIFT;
}

static uint64_t nblocks(const struct gmem *g)
{
	return g->b.size / g->b.align;
}

int huge_init(struct gmem *g)
{
	g->huge.pagemap_fd = -1;
	if (g->b.type != GMEM_BACKING_THP)
		return 0;
	g->huge.on = true;
	return runmap_init(&g->huge.split, nblocks(g), 0);
}

void huge_fini(struct gmem *g)
{
	if (g->huge.pagemap_fd >= 0)
		close(g->huge.pagemap_fd);
	g->huge.pagemap_fd = -1;
	runmap_fini(&g->huge.split);
	g->huge.on = false;
}

uint64_t gmem_backing_page_size(const struct gmem *g)
{
	return g ? g->b.align : 0;
}

/*
 * *n: how many blocks of [b, e) have a page in memory; 0 or -errno.
 * lseek(SEEK_DATA) first skips the file's holes whole (mincore() looks up
 * every page of what the guest mapping does not map: ~65 ns a page here,
 * 18 s for an empty TiB); hugetlbfs takes the whole file for data, which
 * only skips nothing.
 */
static int populated(struct gmem *g, uint64_t b, uint64_t e, uint64_t *n)
{
	unsigned char vec[MINCORE_PAGES];
	uint64_t bp = block_pages(g), p = b * bp, end = e * bp;

	*n = 0;
	while (p < end) {
		uint64_t len, i = 0;
		off_t data = lseek(g->b.fd, (off_t)(p << PAGE_SHIFT), SEEK_DATA);

		if (data < 0)
			return errno == ENXIO ? 0 : -errno; /* no data from p on */
		if ((uint64_t)data >> PAGE_SHIFT > p)
			p = (uint64_t)data >> PAGE_SHIFT;
		if (p >= end)
			break;
		len = end - p < MINCORE_PAGES ? end - p : MINCORE_PAGES;

		if (mincore(g->b.guest + (p << PAGE_SHIFT), len << PAGE_SHIFT, vec))
			return -errno;
		while (i < len) {
			if (!(vec[i] & 1)) {
				i++;
				continue;
			}
			(*n)++;
			i = ((p + i) / bp + 1) * bp - p; /* on at the next block */
		}
		p += i; /* the chunk's end, or past it to the next block */
	}
	return 0;
}

/*
 * Whether the file holds data (whence SEEK_DATA: a page in memory) or a
 * hole (SEEK_HOLE) in bytes [s, e): 1, 0 or -errno.  Two lookups in the
 * page cache, where mincore() of a block the guest mapping maps with 4 KiB
 * entries or not at all looks each of its pages up: for one THP block at
 * a time, in discards and collapses.
 */
static int file_has(const struct gmem *g, uint64_t s, uint64_t e, int whence)
{
	off_t o = lseek(g->b.fd, (off_t)s, whence);

	if (o < 0)
		return errno == ENXIO ? 0 : -errno; /* SEEK_DATA: none from s on */
	return (uint64_t)o < e;
}

/* The blocks wholly inside [s, e), addresses in the guest mapping. */
static uint64_t blocks_inside(const struct gmem *g, uintptr_t s, uintptr_t e)
{
	uintptr_t base = (uintptr_t)g->b.guest;
	uint64_t first = (s - base + g->b.align - 1) / g->b.align, last = (e - base) / g->b.align;

	return last > first ? last - first : 0;
}

/*
 * *n: the blocks of [b, e) that the guest mapping maps with one present
 * huge entry (a hugetlb VMA reports every entry huge, present or not).
 * Adjacent huge entries come back as one region: a block counts when a
 * run of them covers it.  -ENOTTY or -EINVAL without PAGEMAP_SCAN.
 */
static int guest_huge_scan(struct gmem *g, int fd, uint64_t b, uint64_t e, uint64_t *n)
{
	struct page_region r[SCAN_REGIONS];
	uintptr_t at = (uintptr_t)g->b.guest + b * g->b.align;
	uintptr_t end = (uintptr_t)g->b.guest + e * g->b.align;
	uintptr_t rs = 0, re = 0; /* the run being gathered */

	*n = 0;
	while (at < end) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.start = at,
			.end = end,
			.vec = (uintptr_t)r,
			.vec_len = SCAN_REGIONS,
			.category_mask = PAGE_IS_HUGE | PAGE_IS_PRESENT,
			.return_mask = PAGE_IS_HUGE | PAGE_IS_PRESENT,
		};
		int k = ioctl(fd, PAGEMAP_SCAN, &arg);

		if (k < 0)
			return -errno;
		for (int i = 0; i < k; i++) {
			if (r[i].start != re) {
				if (re > rs)
					*n += blocks_inside(g, rs, re);
				rs = r[i].start;
			}
			re = r[i].end;
		}
		if (arg.walk_end <= at)
			return -EIO; /* no progress: the kernel broke its word */
		at = arg.walk_end;
	}
	if (re > rs)
		*n += blocks_inside(g, rs, re);
	return 0;
}

/*
 * Without PAGEMAP_SCAN, /proc/self/pagemap does not tell a huge entry
 * from 4 KiB ones: *n is the blocks of [b, e) whose every page the guest
 * mapping maps, huge or not.
 */
static int guest_full_read(struct gmem *g, int fd, uint64_t b, uint64_t e, uint64_t *n)
{
	uint64_t ent[PM_BATCH], bp = block_pages(g);
	uint64_t base = (uintptr_t)g->b.guest >> PAGE_SHIFT;

	*n = 0;
	for (uint64_t blk = b; blk < e; blk++) {
		uint64_t p = blk * bp, end = p + bp;
		bool full = true;

		while (full && p < end) {
			size_t cnt = end - p < PM_BATCH ? (size_t)(end - p) : PM_BATCH;
			ssize_t got = pread(fd, ent, cnt * sizeof(ent[0]),
					    (off_t)((base + p) * sizeof(ent[0])));

			if (got < (ssize_t)(cnt * sizeof(ent[0])))
				return got < 0 ? -errno : -EIO;
			for (size_t i = 0; i < cnt && full; i++)
				full = ent[i] & PM_PRESENT;
			p += cnt;
		}
		*n += full;
	}
	return 0;
}

/* *n: the blocks of [b, e) mapped huge by the guest mapping; *exact: false for guest_full_read(). */
static int guest_huge(struct gmem *g, int fd, uint64_t b, uint64_t e, uint64_t *n, bool *exact)
{
	int err = guest_huge_scan(g, fd, b, e, n);

	*exact = true;
	if (err == -ENOTTY || err == -EINVAL) {
		*exact = false;
		err = guest_full_read(g, fd, b, e, n);
	}
	return err;
}

int gmem_huge_info(struct gmem *g, struct gmem_huge_info *info)
{
	struct gmem_huge_info out = { 0 };
	bool exact;
	int fd, err;

	if (!g || !info)
		return -EINVAL;
	out.page_size = g->b.align;
	out.blocks = nblocks(g);
	err = populated(g, 0, out.blocks, &out.blocks_populated);
	/* the guest mapping maps 4 KiB pages with 4 KiB entries: none huge */
	if (!err && g->b.align > GMEM_PAGE_SIZE) {
		err = pagemap_open(&fd);
		if (!err) {
			err = guest_huge(g, fd, 0, out.blocks, &out.blocks_guest_huge, &exact);
			close(fd);
		}
	}
	if (err)
		return sys_result(err);
	out.splits = atomic_load_explicit(&g->huge.splits, memory_order_relaxed);
	out.merges = atomic_load_explicit(&g->huge.merges, memory_order_relaxed);
	*info = out;
	return 0;
}

int huge_punch(struct gmem *g, uint64_t first, uint64_t end)
{
	uint64_t bp = block_pages(g), cand[2];
	bool split[2] = { false, false }, empty[2] = { false, false };
	size_t nc = 0;
	int err;

	assert_exclusive(g);
	if (g->huge.on) {
		/* the blocks the range covers in part: at most its first and its last */
		uint64_t head = first / bp, tail = (end - 1) / bp;

		if (head * bp < first || (head + 1) * bp > end)
			cand[nc++] = head;
		if (tail != head && (tail + 1) * bp > end)
			cand[nc++] = tail;
		err = runmap_reserve(&g->huge.split, 2 * (nc + 1));
		if (err)
			return err;
		for (size_t i = 0; i < nc; i++) {
			int mem = file_has(g, cand[i] * g->b.align, (cand[i] + 1) * g->b.align, SEEK_DATA);

			if (mem < 0)
				return mem;
			/* an empty block is a huge page again at its next touch */
			empty[i] = !mem;
			split[i] = mem && !runmap_get(&g->huge.split, cand[i], NULL, NULL);
		}
	}
	err = backing_punch(&g->b, first << PAGE_SHIFT, (end - first) << PAGE_SHIFT);
	if (err || !g->huge.on)
		return err;
	/* whole blocks punched out: likewise */
	if ((first + bp - 1) / bp < end / bp)
		runmap_set(&g->huge.split, (first + bp - 1) / bp, end / bp, 0);
	for (size_t i = 0; i < nc; i++) {
		if (empty[i])
			runmap_set(&g->huge.split, cand[i], cand[i] + 1, 0);
		if (split[i]) {
			runmap_set(&g->huge.split, cand[i], cand[i] + 1, 1);
			count(&g->huge.splits, 1);
		}
	}
	return 0;
}

/*
 * Whether block b has memory the guest mapping does not map huge: 1, 0 or
 * -errno (a library result).  Without PAGEMAP_SCAN a block whose every
 * page is mapped counts as huge unless a discard split it.
 */
static int needs_merge(struct gmem *g, int fd, uint64_t b)
{
	uint64_t huge;
	bool exact;
	int err = file_has(g, b * g->b.align, (b + 1) * g->b.align, SEEK_DATA);

	if (err <= 0) /* no memory: nothing to merge */
		return sys_result(err);
	err = guest_huge(g, fd, b, b + 1, &huge, &exact);
	if (err)
		return sys_result(err);
	if (!huge)
		return 1;
	return !exact && runmap_get(&g->huge.split, b, NULL, NULL);
}

/*
 * MADV_COLLAPSE of block b; its result as gmem_collapse() gives it.
 *
 * Holes first: the kernel refuses to fill a hole in a range that a
 * userfaultfd registered for missing faults maps (every view; the fault
 * would go unreported), so the block's holes get zeroed 4 KiB pages of
 * their own, which the collapse then copies as it copies the rest.
 * Nothing can see the difference: a hole reads zero, and a view's touch
 * of it is decided by the fault thread either way.
 */
static int merge(struct gmem *g, uint64_t b)
{
	char *a = g->b.guest + b * g->b.align;
	int err = file_has(g, b * g->b.align, (b + 1) * g->b.align, SEEK_HOLE);

	if (err > 0 && fallocate(g->b.fd, FALLOC_FL_KEEP_SIZE, (off_t)(b * g->b.align),
				 (off_t)g->b.align))
		err = -errno;
	if (err < 0)
		return sys_result(err);
	for (int i = 0; i < COLLAPSE_TRIES; i++) {
		err = madvise(a, g->b.align, MADV_COLLAPSE) ? errno : 0;
		if (err != EAGAIN)
			break;
	}
	switch (err) {
	case 0:
		break;
	case EAGAIN: /* a page in use: I/O in flight on a view, say */
		return -EAGAIN;
	case EINVAL: /* no MADV_COLLAPSE, or not for this memory (shmem_enabled "deny") */
		return -EOPNOTSUPP;
	case ENOMEM:
	case EBUSY: /* the memory cgroup refused the charge (or a hole: only a punch
		     * behind the library's back, the holes were filled above) */
		return -ENOMEM;
	default:
		return sys_result(-err);
	}
	runmap_set(&g->huge.split, b, b + 1, 0); /* reserved: cannot fail */
	count(&g->huge.merges, 1);
	return 0;
}

int gmem_collapse(struct gmem *g, uint64_t offset, uint64_t len, uint64_t *error_offset)
{
	uint64_t bp, b, e, first, end;
	struct pin_scan scan;
	int err = 0;

	if (!g || !range_ok(g, offset, len))
		return -EINVAL;
	if (forked_child(g))
		return -ECHILD;
	if (!g->huge.on)
		return 0; /* 4 KiB pages, or hugetlb's, which never split */
	bp = block_pages(g);
	b = (offset >> PAGE_SHIFT) / bp;
	e = (((offset + len) >> PAGE_SHIFT) + bp - 1) / bp;
	first = b * bp;
	end = e * bp;
	/* a lazy restore's pages first: the kernel fills no hole of a block being restored */
	err = lazy_fill(g, first, end, true);
	if (err)
		return err;
	/*
	 * Exclusive: no conversion, fault or discard interleaves.  The kernel
	 * unmaps the old small pages from every view as it copies them into
	 * the new folio; views refault its pieces through the fault thread
	 * once this returns (their marks stay a superset of what they map).
	 */
	views_lock(g, true);
	/* kept open: an open and a close would cost a few percent of a merge */
	if (g->huge.pagemap_fd < 0 && (err = pagemap_open(&g->huge.pagemap_fd))) {
		g->huge.pagemap_fd = -1;
		unlock(g);
		return sys_result(err);
	}
	/* every block's pins first, then merge: all or nothing as far as pins go */
	if (pins_hold(g, first, end)) {
		pins_scan(g, first, end, RUNMAP_ANY, &scan);
		if (scan.long_first < scan.short_first)
			scan.short_first = scan.long_first;
		if (scan.short_first != UINT64_MAX) { /* else a pin that backed out */
			err = -EAGAIN;
			if (error_offset)
				*error_offset = scan.short_first << PAGE_SHIFT;
		}
	}
	for (; !err && b < e; b++) {
		int need = needs_merge(g, g->huge.pagemap_fd, b);

		if (need > 0)
			need = runmap_reserve(&g->huge.split, 2) ? -ENOMEM : merge(g, b);
		if (need < 0) {
			err = need;
			if (err == -EAGAIN && error_offset)
				*error_offset = b * g->b.align;
		}
	}
	pins_release_hold(g, first, end);
	unlock(g);
	return err;
}
