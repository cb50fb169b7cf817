// SPDX-License-Identifier: MIT
/*
 * backing.c - the backing file and the guest mapping of it.
 */
#define _GNU_SOURCE
#include "backing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../compat.h"
#include "gmem.h"

#define THP_DIR "/sys/kernel/mm/transparent_hugepage"
#define PMD_SIZE_2M (2ULL << 20)

/* The bracketed word of a sysfs multiple-choice file, e.g. "[advise]". */
static int sysfs_choice(const char *path, char *out, size_t outlen)
{
	char buf[256], *lb, *rb;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	lb = strchr(buf, '[');
	rb = lb ? strchr(lb, ']') : NULL;
	if (!rb || (size_t)(rb - lb - 1) >= outlen)
		return -EIO;
	memcpy(out, lb + 1, (size_t)(rb - lb - 1));
	out[rb - lb - 1] = '\0';
	return 0;
}

int backing_thp_available(void)
{
	char mode[32], path[128], buf[32];
	unsigned long long pmd = 0;
	FILE *f = fopen(THP_DIR "/hpage_pmd_size", "re");

	if (!f)
		return -EOPNOTSUPP;
	if (!fgets(buf, sizeof(buf), f) || sscanf(buf, "%llu", &pmd) != 1)
		pmd = 0;
	fclose(f);
	if (pmd != PMD_SIZE_2M)
		return -EOPNOTSUPP;
	/* Linux 6.11+: a per-size control that may defer to the global one */
	snprintf(path, sizeof(path), THP_DIR "/hugepages-%llukB/shmem_enabled", pmd >> 10);
	if (sysfs_choice(path, mode, sizeof(mode)) || !strcmp(mode, "inherit"))
		if (sysfs_choice(THP_DIR "/shmem_enabled", mode, sizeof(mode)))
			return -EOPNOTSUPP;
	if (!strcmp(mode, "always") || !strcmp(mode, "within_size") || !strcmp(mode, "advise") ||
	    !strcmp(mode, "force"))
		return 0;
	return -EOPNOTSUPP;
}

uint64_t backing_page_size(uint32_t type)
{
	switch (type) {
	case GMEM_BACKING_SHMEM:
		return GMEM_PAGE_SIZE;
	case GMEM_BACKING_THP:
	case GMEM_BACKING_HUGETLB_2M:
		return PMD_SIZE_2M;
	case GMEM_BACKING_HUGETLB_1G:
		return 1ULL << 30;
	default:
		return 0;
	}
}

int backing_open(struct backing *b, uint32_t type, uint64_t size)
{
	unsigned int mfd = MFD_CLOEXEC;
	char *reserve, *guest;
	struct stat st;
	size_t extra;
	int err;

	memset(b, 0, sizeof(*b));
	b->type = type;
	b->size = size;
	b->align = backing_page_size(type);
	b->hugetlb = type == GMEM_BACKING_HUGETLB_2M || type == GMEM_BACKING_HUGETLB_1G;
	if (b->hugetlb)
		mfd |= MFD_HUGETLB | (type == GMEM_BACKING_HUGETLB_2M ? MFD_HUGE_2MB : MFD_HUGE_1GB);
	b->fd = memfd_create("gmem", mfd);
	if (b->fd < 0)
		return errno == EINVAL && b->hugetlb ? -EOPNOTSUPP : -errno; /* no such pool size */
	if (ftruncate(b->fd, (off_t)size) || fstat(b->fd, &st)) {
		err = -errno;
		goto err_close;
	}
	b->dev = st.st_dev;
	b->ino = st.st_ino;

	/* Reserve room to align the guest mapping to the allocation unit. */
	extra = b->align > GMEM_PAGE_SIZE ? b->align : 0;
	reserve = mmap(NULL, size + extra, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (reserve == MAP_FAILED) {
		err = -errno;
		goto err_close;
	}
	guest = (char *)(((uintptr_t)reserve + extra) & ~(uintptr_t)(b->align - 1));
	if (guest > reserve)
		munmap(reserve, (size_t)(guest - reserve));
	if (guest + size < reserve + size + extra)
		munmap(guest + size, (size_t)(reserve + size + extra - (guest + size)));
	/*
	 * Mapped inaccessible and opened once it is marked: under
	 * mlockall(MCL_FUTURE) an accessible mapping is populated at once -
	 * before MADV_HUGEPAGE, with small pages.  MADV_DONTDUMP: a core dump
	 * must not carry the guest's private memory.  The 4 KiB backing keeps
	 * 4 KiB pages whatever shmem_enabled says (GMEM_F_FRESH_PRIVATE needs
	 * them).
	 */
	if (mmap(guest, size, PROT_NONE, MAP_SHARED | MAP_FIXED, b->fd, 0) == MAP_FAILED) {
		/* hugetlbfs: the pool cannot reserve the file's pages (ENOMEM) */
		err = -errno;
		munmap(guest, size); /* what is left of the reservation */
		goto err_close;
	}
	if (madvise(guest, size, MADV_DONTFORK) || madvise(guest, size, MADV_DONTDUMP) ||
	    (!b->hugetlb &&
	     madvise(guest, size, type == GMEM_BACKING_THP ? MADV_HUGEPAGE : MADV_NOHUGEPAGE)) ||
	    mprotect(guest, size, PROT_READ | PROT_WRITE)) {
		err = -errno;
		goto err_unmap;
	}
	b->guest = guest;
	return 0;

err_unmap:
	munmap(guest, size);
err_close:
	close(b->fd);
	b->fd = -1;
	return err;
}

void backing_close(struct backing *b)
{
	if (b->guest)
		munmap(b->guest, b->size);
	if (b->fd >= 0)
		close(b->fd);
	b->guest = NULL;
	b->fd = -1;
}

int backing_allocate(const struct backing *b, uint64_t off, uint64_t len)
{
	uint64_t s = off & ~(b->align - 1);
	uint64_t e = (off + len + b->align - 1) & ~(b->align - 1);

	if (e > b->size)
		e = b->size;
	if (b->type == GMEM_BACKING_THP)
		return madvise(b->guest + s, e - s, MADV_POPULATE_WRITE) ? -errno : 0;
	/*
	 * hugetlbfs cannot say which of its pages exist (SEEK_DATA calls the
	 * whole file data, cachestat() refuses it, mincore() looks at page
	 * tables): through the guest mapping, they are where it maps them.  A
	 * read does not count as a write to a tracked guest mapping.
	 */
	if (b->hugetlb)
		return madvise(b->guest + s, e - s, MADV_POPULATE_READ) ? -errno : 0;
	return fallocate(b->fd, FALLOC_FL_KEEP_SIZE, (off_t)s, (off_t)(e - s)) ? -errno : 0;
}

int backing_take_back(const struct backing *b, uint64_t off, uint64_t len)
{
	return fallocate(b->fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) ? -errno : 0;
}

int backing_punch(const struct backing *b, uint64_t off, uint64_t len)
{
	if (fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return -errno;
	return 0;
}

int backing_map(const struct backing *b, uint64_t off, uint64_t len, char **addr)
{
	char *p = mmap(NULL, len, PROT_NONE, MAP_SHARED, b->fd, (off_t)off);
	int err;

	if (p == MAP_FAILED)
		return -errno;
	/*
	 * Views of shmem map 4 KiB pages, one decision each: a huge page
	 * mapped into a view (MADV_COLLAPSE, khugepaged) would map its private
	 * pages too, with no fault for the library to decide.  A hugetlbfs
	 * view maps whole pages, each decided whole (fault.c).
	 */
	if (madvise(p, len, MADV_DONTFORK) || (!b->hugetlb && madvise(p, len, MADV_NOHUGEPAGE))) {
		err = -errno;
		munmap(p, len);
		return err;
	}
	*addr = p;
	return 0;
}
