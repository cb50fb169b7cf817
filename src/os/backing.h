/* SPDX-License-Identifier: MIT */
/*
 * backing.h - the backing file and the guest mapping of it.
 *
 * Knows how each backing type gets pages into the page cache: shmem and
 * hugetlbfs by fallocate(), THP by populating the guest mapping
 * (MADV_HUGEPAGE), because with shmem_enabled=advise only a fault in a
 * huge-page VMA allocates a huge folio; fallocate() would fill the file
 * with 4 KiB pages.  A hugetlbfs file takes its pages from the kernel's
 * pool: mapping it reserves them all, so a short pool is -ENOMEM at
 * creation, never a SIGBUS later.
 */
#ifndef GMEM_OS_BACKING_H
#define GMEM_OS_BACKING_H

#include <stdbool.h>
#include <stdint.h>

struct backing {
	int fd;
	uint32_t type;  /* GMEM_BACKING_* */
	bool hugetlb;   /* hugetlbfs: the kernel maps, zaps and refuses whole pages only */
	uint64_t size;  /* bytes */
	uint64_t align; /* the backing page: 4 KiB, 2 MiB or 1 GiB */
	char *guest;    /* the guest mapping of the whole file */
	uint64_t dev, ino; /* the file's identity, as /proc/self/maps names it */
};

/* The backing page of a GMEM_BACKING_* type, or 0 for none. */
uint64_t backing_page_size(uint32_t type);

/* 0 when shmem can be given huge pages at fault time, else -EOPNOTSUPP. */
int backing_thp_available(void);

int backing_open(struct backing *b, uint32_t type, uint64_t size);
void backing_close(struct backing *b);

/* Put [off, off + len) in the page cache (rounded out to b->align). */
int backing_allocate(const struct backing *b, uint64_t off, uint64_t len);

/*
 * Put [off, off + len) in the page cache and map it nowhere: hugetlbfs
 * pages a discard gave back to the pool, taken again so that their
 * reservation stays (they read zero; a save finds them holes).
 */
int backing_take_back(const struct backing *b, uint64_t off, uint64_t len);
/* Punch [off, off + len) out of the file: every mapping then reads zero. */
int backing_punch(const struct backing *b, uint64_t off, uint64_t len);

/*
 * A shared mapping of [off, off + len), not inherited by fork(), made
 * PROT_NONE: the caller opens it (mprotect) once it is ready for touches.
 */
int backing_map(const struct backing *b, uint64_t off, uint64_t len, char **addr);

#endif /* GMEM_OS_BACKING_H */
