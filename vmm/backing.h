/* SPDX-License-Identifier: MIT */
/*
 * backing.h - what --backing names: the kernel memory guest RAM is made of.
 */
#ifndef GMEM_VMM_BACKING_H
#define GMEM_VMM_BACKING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backing {
	const char *name; /* as --backing takes it */
	uint32_t type;    /* GMEM_BACKING_* */
	uint64_t page;    /* its page: RAM is a multiple of it */
	bool hugetlb;     /* views refuse a huge page with any private piece: devices copy */
};

/* The backing called name, or NULL. */
const struct backing *backing_find(const char *name);
/* The backing of GMEM_BACKING_* type, or NULL (a snapshot names it so). */
const struct backing *backing_of_type(uint32_t type);
/* "shmem|thp|hugetlb-2m|hugetlb-1g" */
const char *backing_names(void);

/*
 * Why gmem_create() of ram_size bytes on b failed with err, in one line
 * for the user (no newline): what to change for the cases the kernel's
 * settings decide - a hugetlb pool too small (-ENOMEM) or missing, shmem
 * huge pages turned off (-EOPNOTSUPP for thp) - and strerror otherwise.
 * Only reads sysfs: gmem-vmm never changes the kernel's settings.
 */
void backing_explain(const struct backing *b, uint64_t ram_size, int err, char *buf, size_t len);

#endif /* GMEM_VMM_BACKING_H */
