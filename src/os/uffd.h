/* SPDX-License-Identifier: MIT */
/*
 * uffd.h - the userfaultfd operations gmem's host views are built on.
 *
 * Views register for missing and minor faults together: with minor alone a
 * touch of a hole (never allocated, or discarded) would let the kernel
 * allocate a page and map it without asking gmem, into a private range.
 * Every call returns 0 or -errno.  Mapping and marking do not wake the
 * faulters: the caller wakes them (uffd_wake()) once it has released what
 * a woken thread may need next.
 */
#ifndef GMEM_OS_UFFD_H
#define GMEM_OS_UFFD_H

#include <stdint.h>

/* A userfaultfd for this process with the features views need. */
int uffd_open(int *fd);

int uffd_register(int fd, void *addr, uint64_t len);

/*
 * Map the page-cache pages behind [addr, addr + len).
 * The first page that is already mapped (-EEXIST) or has no page in the
 * cache (-EFAULT) stops it: -EAGAIN when pages before it were mapped (ask
 * again from there to learn which), and *done says how many bytes were.
 */
int uffd_continue(int fd, uintptr_t addr, uint64_t len, uint64_t *done);

/* Mark [addr, addr + len) so that a touch gets SIGBUS. */
int uffd_poison(int fd, uintptr_t addr, uint64_t len);

int uffd_wake(int fd, uintptr_t addr, uint64_t len);

#endif /* GMEM_OS_UFFD_H */
