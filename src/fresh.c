// SPDX-License-Identifier: MIT
/*
 * fresh.c - GMEM_F_FRESH_PRIVATE: pages turn private on fresh backing pages.
 *
 * The kernel keeps references to a page that gmem cannot see: a pipe that
 * vmsplice() filled from a view, an io_uring registered buffer, O_DIRECT
 * in flight.  Zapping views does not end them, so after an in-place
 * conversion they read what the guest writes next, and write into it.
 * Here a conversion's commit copies each populated page out, punches it
 * out of the file and writes it back: the file holds a new page with the
 * same contents, and every old reference is left holding the old page,
 * which nothing maps any more and which holds only what was there while
 * it was shared.
 *
 * A punch removes a whole small folio from the file whoever references
 * it, which is what makes the page new.  A huge folio punched in part is
 * split, or, if something references it, zeroed in place - the same
 * page.  So THP backing refuses the flag (gmem_create()), and where a huge
 * folio turns up anyway (shmem_enabled=always, a collapse) the punch is
 * checked: a page still in the file gets its contents back and the
 * conversion fails with -EBUSY rather than pretend.
 *
 * The copy-out (pread) is the step that can fail, and it comes before the
 * punch of its stretch; a failure there leaves the stretches already done
 * with fresh pages of the same contents, which no one can tell apart.  After a
 * punch, the write-back only needs the memory the punch just freed: it is
 * retried until it succeeds, as the kernel's __GFP_NOFAIL allocations are,
 * because giving up would lose the contents.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int fresh_init(struct gmem *g)
{
	void *p = mmap(NULL, FRESH_BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	/* it holds copies of pages on their way to private */
	if (madvise(p, FRESH_BUF, MADV_DONTDUMP) || madvise(p, FRESH_BUF, MADV_DONTFORK)) {
		int err = -errno;

		munmap(p, FRESH_BUF);
		return err;
	}
	g->fresh_buf = p;
	return 0;
}

void fresh_fini(struct gmem *g)
{
	if (g->fresh_buf)
		munmap(g->fresh_buf, FRESH_BUF);
	g->fresh_buf = NULL;
}

static int read_all(int fd, char *buf, uint64_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (uint64_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Cannot fail: see the top of the file. */
static void write_all(int fd, const char *buf, uint64_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);

		if (n < 0) {
			struct timespec ms = { 0, 1000000 };

			if (errno != EINTR)
				nanosleep(&ms, NULL); /* out of memory for a moment */
			continue;
		}
		buf += n;
		len -= (uint64_t)n;
		off += (uint64_t)n;
	}
}

/*
 * Whether a page of [off, off + len) is still in the file: a huge folio
 * punched in part and held by a reference is zeroed in place, not freed.
 * *page: the first such.
 */
static bool still_there(struct gmem *g, uint64_t off, uint64_t len, uint64_t *page)
{
	unsigned char vec[FRESH_BUF / GMEM_PAGE_SIZE];

	/* on failure, assume the worst */
	if (mincore(g->b.guest + off, len, vec)) {
		*page = off >> PAGE_SHIFT;
		return true;
	}
	for (uint64_t i = 0; i < len / GMEM_PAGE_SIZE; i++) {
		if (vec[i] & 1) {
			*page = (off >> PAGE_SHIFT) + i;
			return true;
		}
	}
	return false;
}

/*
 * Copy [off, off + len) out, punch it, write it back: fresh pages, same
 * contents.  -EBUSY, contents written back in place, if a page could not
 * be replaced (*page).
 */
static int renew(struct gmem *g, uint64_t off, uint64_t len, uint64_t *page)
{
	bool stayed;
	int err = read_all(g->b.fd, g->fresh_buf, len, off);

	if (err)
		return err;
	err = backing_punch(&g->b, off, len);
	if (err)
		return err; /* nothing punched: the pages are as they were */
	stayed = still_there(g, off, len, page);
	write_all(g->b.fd, g->fresh_buf, len, off);
	return stayed ? -EBUSY : 0;
}

/*
 * Give the pages of bytes [s, e) that are in memory fresh backing pages.
 * A page that is not (never written, discarded, or swapped out) is held
 * by no reference - a reference keeps a page in memory - and is left as
 * it is: a hole stays a hole.  mincore() on the guest mapping tells which
 * are, from the page cache, without faulting anything in.
 */
static int fresh_bytes(struct gmem *g, uint64_t s, uint64_t e, uint64_t *page)
{
	unsigned char vec[FRESH_BUF / GMEM_PAGE_SIZE];

	for (uint64_t c = s; c < e; c += FRESH_BUF) {
		uint64_t n = e - c < FRESH_BUF ? e - c : FRESH_BUF, run = 0;

		if (mincore(g->b.guest + c, n, vec))
			return -errno;
		for (uint64_t i = 0; i <= n / GMEM_PAGE_SIZE; i++) {
			bool resident = i < n / GMEM_PAGE_SIZE && (vec[i] & 1);
			int err;

			if (resident) {
				run++;
				continue;
			}
			if (run && (err = renew(g, c + (i - run) * GMEM_PAGE_SIZE,
						run * GMEM_PAGE_SIZE, page)))
				return err;
			run = 0;
		}
	}
	return 0;
}

int fresh_private(struct gmem *g, uint64_t first, uint64_t end, uint32_t from, uint64_t *busy)
{
	struct runmap_iter it;
	struct run r;

	runmap_iter_start(&it, &g->states, first, end);
	while (runmap_iter_next(&it, &r)) {
		int err;

		if (!(from & STATE_MASK(r.val)))
			continue; /* private already: nothing shared reached it since */
		err = fresh_bytes(g, r.start << PAGE_SHIFT, r.end << PAGE_SHIFT, busy);
		if (err)
			return err == -EBUSY ? err : sys_result(err);
	}
	return 0;
}
