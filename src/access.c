// SPDX-License-Identifier: MIT
/*
 * access.c - gmem_read() and gmem_write(): copies between a caller's buffer
 * and shared pages.
 *
 * Why copies: a device model that moves descriptors and buffers at byte
 * granularity has no use for a view and its page-sized decisions; and on
 * hugetlb backings a view of a huge page with any private 4 KiB piece in it
 * is refused whole, so devices there must copy.  The rule is a view's:
 * every page the bytes touch must be shared, all or nothing.
 *
 * The decision and the copy happen under g->lock held shared, as the fault
 * path decides and maps: conversions change states holding it exclusive,
 * so none commits between the check and the last byte copied.  A page in
 * transit is refused even when pinned: its pin's I/O goes through a view.
 *
 * Copies go through the guest mapping where the pages are known to be in
 * the backing file (pages_populated(): the library put or saw them there),
 * with no system call at all - a 4 KiB copy costs about a memcpy() that
 * way, and several times that with one.  Otherwise a read asks mincore()
 * which pages are there, copies those through the guest mapping (noting
 * them) and pread()s the rest - a hole reads as zero without getting a
 * page; and a write first makes the pages exist (backing_allocate():
 * fallocate, or MADV_POPULATE_WRITE on the guest mapping for THP, so that
 * 2 MiB pages stay huge), which fails with an errno where a store would get
 * SIGBUS, then copies through the guest mapping: pwrite() does not work on
 * hugetlbfs, and stores through a huge mapping keep a THP folio whole.  A
 * page the hardware poisoned raises SIGBUS in the copying thread, as it
 * would through a view.
 *
 * The caller's buffer is touched with the lock held, so it must not be in a
 * view of the object: a first touch there waits for the fault thread, which
 * waits for the lock behind any conversion queued for it (writers go
 * first), which waits for this copy.  Such a buffer is refused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define NOT_SHARED (STATE_MASK(GMEM_PRIVATE) | STATE_MASK(GMEM_CONVERTING))

/*
 * Guest memory is shared with the guest, KVM and other host components,
 * which write it when they will: a copy of it races them by nature, as a
 * device's DMA would, and takes whatever the bytes are.  That is no data
 * race of the library's, so ThreadSanitizer is told to look away.
 */
#if defined(__SANITIZE_THREAD__)
#define GMEM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GMEM_TSAN 1
#endif
#endif
#ifdef GMEM_TSAN
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);
#endif

void copy_shared(void *dst, const void *src, size_t len)
{
#ifdef GMEM_TSAN
	AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
	AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
	memcpy(dst, src, len);
#ifdef GMEM_TSAN
	AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
	AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
#endif
}

/* The arguments name bytes of the object and a buffer for them (len may be 0). */
static bool args_ok(const struct gmem *g, uint64_t offset, const void *buf, uint64_t len)
{
	return g && offset <= g->b.size && len <= g->b.size - offset && (buf || !len) &&
	       len <= UINTPTR_MAX - (uintptr_t)buf;
}

/* Whether [p, p + len) meets a view of g (g->lock held, records current). */
static bool in_view(struct gmem *g, uintptr_t p, uint64_t len)
{
	size_t lo = 0, hi = g->nviews;

	/* the first view that ends past p: views are sorted and disjoint */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct view *v = g->views[mid];

		if ((uintptr_t)v->addr + ((v->end - v->first) << PAGE_SHIFT) <= p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < g->nviews && (uintptr_t)g->views[lo]->addr < p + len;
}

/*
 * Take g->lock shared for a copy of [offset, offset + len) (len > 0) to or
 * from buf, and decide it: 0 with the lock held; else the lock released and
 * -EINVAL (buf in a view) or -EACCES (*error_offset set).
 */
static int begin(struct gmem *g, uint64_t offset, const void *buf, uint64_t len,
		 uint64_t *error_offset)
{
	uint64_t first = offset >> PAGE_SHIFT;
	uint64_t end = (offset + len + GMEM_PAGE_SIZE - 1) >> PAGE_SHIFT;
	uint64_t bad;

	/* the records must hold every view the caller has moved or unmapped */
	views_lock(g, false);
	if (in_view(g, (uintptr_t)buf, len)) {
		unlock(g);
		return -EINVAL;
	}
	bad = runmap_find(&g->states, first, end, NOT_SHARED);
	if (bad < end) {
		unlock(g);
		if (error_offset)
			*error_offset = bad << PAGE_SHIFT;
		return -EACCES;
	}
	return 0;
}

/* All of [off, off + len) of the file into buf; -errno. */
int file_pread(int fd, char *buf, uint64_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file is as long as the object: not ours to shrink */
		buf += n;
		len -= (uint64_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Backing pages for [off, off + len), or -errno: running out is -ENOMEM. */
static int allocate(struct gmem *g, uint64_t off, uint64_t len)
{
	int err;

	do
		err = backing_allocate(&g->b, off, len);
	while (err == -EINTR);
	/* ENOSPC: a file system's word for it; EFAULT: a populate that would SIGBUS */
	if (err == -ENOSPC || err == -EFAULT)
		return -ENOMEM;
	return sys_result(err);
}

#define VEC_PAGES 256 /* mincore()'s answer, a stretch at a time */

/*
 * Copy bytes [off, off + len) to buf: through the guest mapping where the
 * page cache holds them (noted as populated), pread() where it does not.
 */
static int read_slow(struct gmem *g, char *buf, uint64_t off, uint64_t len)
{
	unsigned char vec[VEC_PAGES];

	while (len) {
		uint64_t pg = off & ~(GMEM_PAGE_SIZE - 1), n = 0;
		uint64_t chunk = (VEC_PAGES << PAGE_SHIFT) - (off - pg);
		bool resident;
		int err;

		chunk = chunk < len ? chunk : len;
		if (mincore(g->b.guest + pg, off + chunk - pg, vec))
			return file_pread(g->b.fd, buf, len, off);
		/* runs of pages alike */
		while (n < chunk) {
			uint64_t a = off + n, i = (a - pg) >> PAGE_SHIFT, run;

			resident = vec[i] & 1;
			run = ((a | (GMEM_PAGE_SIZE - 1)) + 1) - a;
			while (n + run < chunk && !!(vec[((a + run) - pg) >> PAGE_SHIFT] & 1) == resident)
				run += GMEM_PAGE_SIZE;
			run = n + run < chunk ? run : chunk - n;
			if (resident) {
				copy_shared(buf + n, g->b.guest + a, run);
				pages_mark(g, a >> PAGE_SHIFT,
						     (a + run + GMEM_PAGE_SIZE - 1) >> PAGE_SHIFT, PW_POPULATED);
			} else if ((err = file_pread(g->b.fd, buf + n, run, a))) {
				return err;
			}
			n += run;
		}
		buf += chunk;
		off += chunk;
		len -= chunk;
	}
	return 0;
}

int gmem_read(struct gmem *g, uint64_t offset, void *buf, uint64_t len, uint64_t *error_offset)
{
	uint64_t first = offset >> PAGE_SHIFT, end = (offset + len + GMEM_PAGE_SIZE - 1) >> PAGE_SHIFT;
	int err = 0;

	if (!args_ok(g, offset, buf, len))
		return -EINVAL;
	if (!len)
		return 0;
	err = begin(g, offset, buf, len, error_offset);
	if (err)
		return err;
	/* a lazy restore's pages first: the file reads zero where they are not yet */
	err = lazy_fill(g, first, end, false);
	if (err) {
		unlock(g);
		return err;
	}
	if (pages_all(g, first, end, PW_POPULATED))
		copy_shared(buf, g->b.guest + offset, len);
	else
		err = read_slow(g, buf, offset, len);
	unlock(g);
	return sys_result(err);
}

int gmem_write(struct gmem *g, uint64_t offset, const void *buf, uint64_t len,
	       uint64_t *error_offset)
{
	uint64_t first, end;
	int err;

	if (!args_ok(g, offset, buf, len))
		return -EINVAL;
	if (forked_child(g))
		return -ECHILD;
	if (!len)
		return 0;
	err = begin(g, offset, buf, len, error_offset);
	if (err)
		return err;
	first = offset >> PAGE_SHIFT;
	end = (offset + len + GMEM_PAGE_SIZE - 1) >> PAGE_SHIFT;
	err = lazy_fill(g, first, end, true);
	if (!err && !pages_all(g, first, end, PW_POPULATED) && !(err = allocate(g, offset, len)))
		pages_mark(g, first, end, PW_POPULATED);
	if (!err) {
		copy_shared(g->b.guest + offset, buf, len);
		if (g->tracking)
			track_mark(g, first, end); /* after the write it stands for: track.c */
	}
	unlock(g);
	return err;
}
