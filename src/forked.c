// SPDX-License-Identifier: MIT
/*
 * forked.c - views a child process inherited: every touch refused.
 *
 * Views are MADV_DONTFORK, but the process may undo that (MADV_DOFORK).
 * A child's copy of a view is a mapping the library cannot zap (nothing
 * can zap another process's mapping without its help), so it must never
 * map anything.  The kernel reports such a fork (UFFD_EVENT_FORK) with a
 * userfaultfd of the child's own, registered over its copies; the reader
 * thread (reader.c) keeps it and answers every touch it reports with a
 * poison marker (SIGBUS in the child) - no lock, no allocation.  A fork does not copy page-table entries of
 * shared mappings, so the child starts with nothing mapped.  Without the
 * event (no CAP_SYS_PTRACE) the kernel drops the child's registration
 * instead, and such a child reads whatever its copies cover: outside the
 * model (docs/SECURITY.md).
 */
#include <errno.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "os/uffd.h"

/* An address to probe a child's userfaultfd with: a live child answers
 * "nothing registered here" (or marks a page of a view it cannot use),
 * a gone one -ESRCH. */
#define PROBE_ADDR (1ULL << 30)

/*
 * The children's userfaultfds and the reader's poll set, in memory mapped
 * (not allocated: reader.c) and reserved for FORKED_MAX children; only
 * what is used is ever touched.
 */
#define FORKED_BYTES (FORKED_MAX * sizeof(int))
#define PFD_BYTES ((2 + FORKED_MAX) * sizeof(struct pollfd))

int forked_init(struct gmem *g)
{
	void *p = mmap(NULL, FORKED_BYTES + PFD_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	g->forked = p;
	g->pfd = (struct pollfd *)((char *)p + FORKED_BYTES);
	g->nforked = 0;
	return 0;
}

void forked_fini(struct gmem *g)
{
	if (!g->forked)
		return;
	while (g->nforked)
		close(g->forked[--g->nforked]);
	munmap(g->forked, FORKED_BYTES + PFD_BYTES);
	g->forked = NULL;
	g->pfd = NULL;
}

void forked_reap(struct gmem *g)
{
	for (size_t i = 0; i < g->nforked;) {
		if (uffd_poison(g->forked[i], PROBE_ADDR, GMEM_PAGE_SIZE) == -ESRCH) {
			close(g->forked[i]);
			g->forked[i] = g->forked[--g->nforked];
		} else {
			i++;
		}
	}
}

void forked_add(struct gmem *g, int fd)
{
	if (g->nforked == FORKED_MAX)
		forked_reap(g);
	/*
	 * Past FORKED_MAX live children at once the fd stays open but
	 * unwatched: their touches wait for ever, which is better than closing
	 * it, which would hand them the memory.
	 */
	if (g->nforked < FORKED_MAX)
		g->forked[g->nforked++] = fd;
}

void forked_serve(struct gmem *g, int fd)
{
	struct uffd_event ev[16];
	ssize_t n = uffd_read(fd, ev, 16);

	for (ssize_t i = 0; i < n; i++) {
		switch (ev[i].kind) {
		case UFFD_EV_FAULT: {
			/* hugetlbfs copies take marks of whole pages only */
			uint64_t unit = g->b.hugetlb ? g->b.align : GMEM_PAGE_SIZE;
			uintptr_t a = ev[i].addr & ~(uintptr_t)(unit - 1);

			/*
			 * Over a write-protect marker too: a fork while tracking
			 * copies the parent's markers, which a poison will not
			 * replace (EEXIST) - the child would fault for ever.
			 */
			uffd_poison_over_wp(fd, a, unit);
			uffd_wake(fd, a, unit);
			break;
		}
		case UFFD_EV_FORK: /* a grandchild: the same rule */
			forked_add(g, ev[i].fd);
			break;
		default: /* the child unmapped or moved its copies: nothing to follow */
			break;
		}
	}
}
