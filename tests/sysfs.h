/* SPDX-License-Identifier: MIT */
/*
 * sysfs.h - kernel settings a test run changes, and puts back at exit.
 */
#ifndef GMEM_TEST_SYSFS_H
#define GMEM_TEST_SYSFS_H

#include <stdbool.h>

/* Set a sysfs-like file, remembering the old value to restore at exit. */
int test_write_file(const char *path, const char *value);
/* In a forked child: leave restoring to the parent. */
void sysfs_forget(void);
/* Put back now what this process set (a failing case exits without atexit). */
void sysfs_restore(void);
/* Make shmem THP available if we may (restored at exit); whether it is. */
bool thp_enable(void);

#endif /* GMEM_TEST_SYSFS_H */
