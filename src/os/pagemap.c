// SPDX-License-Identifier: MIT
/*
 * pagemap.c - which pages of this process have present page-table entries.
 */
#define _GNU_SOURCE
#include "pagemap.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../compat.h"
#include "gmem.h"

#define PM_PRESENT (1ULL << 63)
#define PM_BATCH 512

int pagemap_open(int *fd)
{
	*fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	return *fd < 0 ? -errno : 0;
}

static int scan_ioctl(int fd, uintptr_t start, uintptr_t end, uintptr_t *found)
{
	struct page_region r;
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = start,
		.end = end,
		.vec = (uintptr_t)&r,
		.vec_len = 1,
		.max_pages = 1,
		.category_mask = PAGE_IS_PRESENT,
		.return_mask = PAGE_IS_PRESENT,
	};
	int n = ioctl(fd, PAGEMAP_SCAN, &arg);

	if (n < 0)
		return -errno;
	if (n > 0)
		*found = (uintptr_t)r.start;
	return n > 0;
}

static int scan_read(int fd, uintptr_t start, uintptr_t end, uintptr_t *found)
{
	uint64_t ent[PM_BATCH];

	for (uintptr_t a = start; a < end;) {
		size_t n = (end - a) / GMEM_PAGE_SIZE;
		ssize_t got;

		if (n > PM_BATCH)
			n = PM_BATCH;
		got = pread(fd, ent, n * sizeof(ent[0]), (off_t)(a / GMEM_PAGE_SIZE * sizeof(ent[0])));
		if (got < (ssize_t)sizeof(ent[0]))
			return got < 0 ? -errno : -EIO;
		n = (size_t)got / sizeof(ent[0]);
		for (size_t i = 0; i < n; i++) {
			if (ent[i] & PM_PRESENT) {
				*found = a + i * GMEM_PAGE_SIZE;
				return 1;
			}
		}
		a += n * GMEM_PAGE_SIZE;
	}
	return 0;
}

int pagemap_first_present(int fd, uintptr_t start, uintptr_t end, uintptr_t *found)
{
	int r = scan_ioctl(fd, start, end, found);

	if (r == -ENOTTY || r == -EINVAL)
		r = scan_read(fd, start, end, found);
	return r;
}

#define WRITTEN_VEC 64

/* The runs of [start, end) whose entries match (categories ^ inverted) & mask == mask. */
static int scan_runs(int fd, uintptr_t start, uintptr_t end, uint64_t flags, uint64_t mask,
		     uint64_t inverted, void (*fn)(void *arg, uintptr_t s, uintptr_t e), void *arg)
{
	struct page_region r[WRITTEN_VEC];

	while (start < end) {
		struct pm_scan_arg a = {
			.size = sizeof(a),
			.flags = flags,
			.start = start,
			.end = end,
			.vec = (uintptr_t)r,
			.vec_len = WRITTEN_VEC,
			.category_inverted = inverted,
			.category_mask = mask,
			.return_mask = mask,
		};
		int n = ioctl(fd, PAGEMAP_SCAN, &a);

		if (n < 0)
			return errno == ENOTTY ? -EOPNOTSUPP : -errno;
		for (int i = 0; i < n; i++)
			fn(arg, (uintptr_t)r[i].start, (uintptr_t)r[i].end);
		/* the walk stops where the vector filled up: go on from there */
		if (a.walk_end <= start)
			return -EIO;
		start = (uintptr_t)a.walk_end;
	}
	return 0;
}

int pagemap_written(int fd, uintptr_t start, uintptr_t end, bool reprotect,
		    void (*fn)(void *arg, uintptr_t s, uintptr_t e), void *arg)
{
	return scan_runs(fd, start, end, reprotect ? PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC : 0,
			 PAGE_IS_WRITTEN, 0, fn, arg);
}

int pagemap_empty(int fd, uintptr_t start, uintptr_t end,
		  void (*fn)(void *arg, uintptr_t s, uintptr_t e), void *arg)
{
	return scan_runs(fd, start, end, 0, PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
			 PAGE_IS_PRESENT | PAGE_IS_SWAPPED, fn, arg);
}
