/* SPDX-License-Identifier: MIT */
/*
 * pagemap.h - which pages of this process have present page-table entries.
 *
 * The audit's evidence comes from the kernel's own page tables, read
 * without faulting anything in: PAGEMAP_SCAN (Linux 6.7) skips unpopulated
 * tables whole; older kernels fall back to reading /proc/self/pagemap.
 */
#ifndef GMEM_OS_PAGEMAP_H
#define GMEM_OS_PAGEMAP_H

#include <stdbool.h>
#include <stdint.h>

int pagemap_open(int *fd);

/* 1 and *found = its address if a page in [start, end) is present, 0 if none, -errno. */
int pagemap_first_present(int fd, uintptr_t start, uintptr_t end, uintptr_t *found);

/*
 * The pages of [start, end) written since they were last write-protected
 * (userfaultfd's asynchronous write-protect, PAGE_IS_WRITTEN), handed to
 * fn as runs [s, e); with reprotect, write-protected again in the same
 * step (PM_SCAN_WP_MATCHING): a write after it is reported next time.
 * 0 or -errno (-EOPNOTSUPP without PAGEMAP_SCAN).
 */
int pagemap_written(int fd, uintptr_t start, uintptr_t end, bool reprotect,
		    void (*fn)(void *arg, uintptr_t s, uintptr_t e), void *arg);

/*
 * The pages of [start, end) with empty entries - neither present nor
 * swapped, no marker either - handed to fn as runs [s, e).  0 or -errno.
 */
int pagemap_empty(int fd, uintptr_t start, uintptr_t end,
		  void (*fn)(void *arg, uintptr_t s, uintptr_t e), void *arg);

#endif /* GMEM_OS_PAGEMAP_H */
