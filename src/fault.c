// SPDX-License-Identifier: MIT
/*
 * fault.c - the fault thread: decides every first touch of a host view.
 *
 * Each view is registered with the object's userfaultfd for missing and
 * minor faults, so a touch of a page the view does not map waits here.
 * Under g->lock held shared the thread looks the page up and either maps it
 * or refuses it; a conversion changes states and zaps views with the lock
 * exclusive, so no mapping made here can outlive the state that allowed it.
 *
 * Mapping batches: the faulting page is mapped together with its shared
 * neighbours in one UFFDIO_CONTINUE (allocating them first on a missing
 * fault), a fault-around that never crosses into a page of another state
 * because the window is clipped to the faulting page's run, and never
 * re-maps what the view already maps (view->mapped).
 *
 * An in-transit page is mapped if pinned: the pin is I/O the conversion is
 * waiting for, and it must be able to finish.  Else, in a waiting
 * conversion's transit the touch is parked - left unwoken, to fault again
 * when the conversion ends (views_wake()), at most wait_timeout_ms away -
 * and in a deferred one it is refused, like a private page's.  Refusing
 * leaves a mark the kernel enforces by itself from then on: a poison
 * marker (SIGBUS, BUS_ADRERR at the exact address), or PROT_NONE on that
 * page of that view (SIGSEGV, SEGV_ACCERR).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "compat.h"
#include "internal.h"
#include "os/uffd.h"

/* Pages mapped around a fault: with one round trip ~3 us and a CONTINUE
 * ~75 ns a page, 256 puts the round trip at ~12 ns a page. */
#define FAULT_AROUND_PAGES 256ULL
#define MSG_BATCH 16

/* What the fault thread wakes once it has released g->lock. */
struct wake {
	uintptr_t addr;
	uint64_t len;
};

/* Map [s, e) of view v, the faulting page among them. */
static void map_around(struct gmem *g, struct view *v, uint64_t s, uint64_t e, bool missing,
		       struct wake *wake)
{
	uintptr_t base = (uintptr_t)v->addr - (v->first << PAGE_SHIFT);
	uintptr_t a = base + (s << PAGE_SHIFT), end = base + (e << PAGE_SHIFT);
	bool allocated = false;

	/* whoever waits on the window (the faulter, and any neighbour) */
	*wake = (struct wake){ a, end - a };
	if (missing && !backing_allocate(&g->b, s << PAGE_SHIFT, (e - s) << PAGE_SHIFT))
		allocated = true;
	while (a < end) {
		uint64_t done;
		int err = uffd_continue(g->uffd, a, end - a, &done);

		a += done;
		if (!err)
			break;
		if (err == -EAGAIN)
			continue; /* progress; ask again to learn what stopped it */
		if (err == -EEXIST) {
			a += GMEM_PAGE_SIZE; /* mapped already (an earlier fault) */
			continue;
		}
		if (err == -EFAULT && !allocated) {
			/* a hole in the window: allocate the rest, then go on */
			allocated = !backing_allocate(&g->b, (a - base), end - a);
			if (allocated)
				continue;
		}
		break; /* out of memory or gone: the faulter retries */
	}
}

/*
 * Map the stretch of [s, e) around page that view v does not map yet,
 * marking it in v->mapped first (the marks must cover every PTE).
 */
static void map_window(struct gmem *g, struct view *v, uint64_t page, uint64_t s, uint64_t e,
		       bool missing, struct wake *wake)
{
	uint64_t ms, me;

	if (!v->mapped_lost) {
		if (runmap_get(&v->mapped, page, &ms, &me)) {
			/* marked, yet it faulted: the kernel unmapped it (reclaim); just it */
			s = page;
			e = page + 1;
		} else {
			s = s > ms ? s : ms;
			e = e < me ? e : me;
		}
		if (runmap_reserve(&v->mapped, 2))
			v->mapped_lost = true; /* from now on zaps cover the whole range */
		else
			runmap_set(&v->mapped, s, e, 1);
	}
	map_around(g, v, s, e, missing, wake);
}

static void deny(struct gmem *g, struct view *v, uint64_t page)
{
	uintptr_t a = (uintptr_t)v->addr + ((page - v->first) << PAGE_SHIFT);
	bool recorded = !runmap_reserve(&v->denied, 2);

	count(&g->stats.host_faults_denied, 1);
	/* SIGSEGV: PROT_NONE; SIGBUS (or SIGSEGV out of VMAs): a poison marker.  If
	 * marked already, by an earlier fault, the woken toucher meets that mark. */
	if (g->fault_signal != SIGSEGV || !recorded || mprotect((void *)a, GMEM_PAGE_SIZE, PROT_NONE))
		uffd_poison(g->uffd, a, GMEM_PAGE_SIZE);
	if (recorded)
		runmap_set(&v->denied, page, page + 1, 1);
	else
		v->denied_lost = true;
}

static void handle_fault(struct gmem *g, const struct uffd_msg *msg)
{
	uintptr_t addr = (uintptr_t)msg->arg.pagefault.address & ~(uintptr_t)(GMEM_PAGE_SIZE - 1);
	bool missing = !(msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR);
	struct wake wake = { addr, GMEM_PAGE_SIZE };
	uint64_t page, rs, re, ws, we, unit;
	struct view *v;

	pthread_rwlock_rdlock(&g->lock);
	v = view_find(g, addr);
	if (!v)
		goto out; /* unmapped since it faulted: the woken toucher finds out */
	count(&g->stats.host_faults, 1);
	page = v->first + ((addr - (uintptr_t)v->addr) >> PAGE_SHIFT);
	switch (runmap_get(&g->states, page, &rs, &re)) {
	case GMEM_SHARED:
		break;
	case GMEM_CONVERTING:
		if (page_pinned(g, page)) {
			/* the I/O the transit waits for: this page alone */
			map_window(g, v, page, page, page + 1, missing, &wake);
			goto out;
		}
		if (transit_waiting_at(g, page)) {
			wake.len = 0; /* parked: the conversion's end wakes it */
			goto out;
		}
		/* fall through */
	default:
		deny(g, v, page);
		goto out;
	}
	unit = g->b.type == GMEM_BACKING_THP ? g->b.align >> PAGE_SHIFT : FAULT_AROUND_PAGES;
	ws = page & ~(unit - 1);
	we = ws + unit;
	if (ws < rs)
		ws = rs;
	if (ws < v->first)
		ws = v->first;
	if (we > re)
		we = re;
	if (we > v->end)
		we = v->end;
	map_window(g, v, page, ws, we, missing, &wake);
out:
	pthread_rwlock_unlock(&g->lock);
	/* after the unlock: a woken toucher that converts next finds the lock free */
	if (wake.len)
		uffd_wake(g->uffd, wake.addr, wake.len);
}

static void *fault_main(void *arg)
{
	struct gmem *g = arg;
	struct pollfd pfd[2] = {
		{ .fd = g->uffd, .events = POLLIN },
		{ .fd = g->stopfd, .events = POLLIN },
	};
	struct uffd_msg msg[MSG_BATCH];

	for (;;) {
		ssize_t n;

		if (poll(pfd, 2, -1) < 0)
			continue; /* EINTR; nothing else is possible with valid fds */
		if (pfd[1].revents)
			break;
		n = read(g->uffd, msg, sizeof(msg));
		if (n <= 0)
			continue; /* EAGAIN: another wakeup took it */
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msg[0]); i++)
			if (msg[i].event == UFFD_EVENT_PAGEFAULT)
				handle_fault(g, &msg[i]);
	}
	return NULL;
}

int fault_start(struct gmem *g)
{
	sigset_t all, old;
	int err;

	g->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->stopfd < 0)
		return -errno;
	/* The thread must never take the process's signals. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&g->fault_thread, NULL, fault_main, g);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		close(g->stopfd);
		g->stopfd = -1;
	}
	return err;
}

void fault_stop(struct gmem *g)
{
	uint64_t one = 1;

	/* an eventfd write fails only at counter overflow, 2^64 - 2 writes away */
	(void)!write(g->stopfd, &one, sizeof(one));
	pthread_join(g->fault_thread, NULL);
	close(g->stopfd);
	g->stopfd = -1;
}
