/* SPDX-License-Identifier: MIT */
/*
 * sysfs.h - kernel settings a test run changes, and puts back at exit.
 */
#ifndef GMEM_TEST_SYSFS_H
#define GMEM_TEST_SYSFS_H

#include <stdbool.h>
#include <stdint.h>

/* Set a sysfs-like file, remembering the old value to restore at exit. */
int test_write_file(const char *path, const char *value);
/* In a forked child: leave restoring to the parent. */
void sysfs_forget(void);
/* Put back now what this process set (a failing case exits without atexit). */
void sysfs_restore(void);
/* Make shmem THP available if we may (restored at exit); whether it is. */
bool thp_enable(void);
/*
 * Make at least `pages` free pages of page_size (2 MiB or 1 GiB) in the
 * kernel's hugetlb pool, raising nr_hugepages if we may (restored at exit);
 * whether there are.
 */
bool hugetlb_reserve(uint64_t page_size, unsigned long pages);
/*
 * Pages of page_size a new mapping could reserve from the hugetlb pool now
 * (free and not reserved by others; 0 if there is no such pool).
 */
unsigned long hugetlb_free(uint64_t page_size);

#endif /* GMEM_TEST_SYSFS_H */
