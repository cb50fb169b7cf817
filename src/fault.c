// SPDX-License-Identifier: MIT
/*
 * fault.c - the fault thread: decides every first touch of a host view.
 *
 * Each view is registered with the object's userfaultfd for missing and
 * minor faults, so a touch of a page the view does not map waits here,
 * handed over by the reader thread (reader.c), which also brings the
 * process's unmaps and moves of views for the records to follow.
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
 * leaves a mark the kernel enforces by itself from then on (views_deny()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "os/maps.h"
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

/*
 * Map [s, e) of view v, the faulting page among them.  0 (the faulter
 * retries whatever was not mapped), -ENOMEM when the backing could not
 * give a page for it (the faulter retries - except on hugetlbfs,
 * handle_huge_fault()), or -EIO for a page the kernel cannot map.
 */
static int map_around(struct gmem *g, struct view *v, uint64_t s, uint64_t e, bool missing,
		      struct wake *wake)
{
	uintptr_t base = (uintptr_t)v->addr - (v->first << PAGE_SHIFT);
	uintptr_t a = base + (s << PAGE_SHIFT), end = base + (e << PAGE_SHIFT);
	/* the kernel maps a hugetlbfs page only whole */
	uint64_t step = g->b.hugetlb ? g->b.align : GMEM_PAGE_SIZE;
	bool allocated = false;

	/* whoever waits on the window (the faulter, and any neighbour) */
	*wake = (struct wake){ a, end - a };
	/* a lazy restore's pages first, whose record may not check: refused then */
	if (lazy_active(g)) {
		int err = lazy_fill(g, s, e, true);

		if (err)
			return err == -EBADMSG ? -EIO : -ENOMEM;
	}
	if (missing && !backing_allocate(&g->b, s << PAGE_SHIFT, (e - s) << PAGE_SHIFT))
		allocated = true;
	while (a < end) {
		uint64_t done;
		/* write-protected while tracking: a read is not a write */
		int err = uffd_continue(g->uffd, a, end - a, g->tracking, &done);

		a += done;
		if (!err)
			break;
		if (err == -EAGAIN && done)
			continue; /* progress; ask again to learn what stopped it */
		if (err == -EAGAIN)
			break; /* the process is unmapping, moving or forking: its
				* event is next in the queue, and the woken faulter
				* faults again after it */
		if (err == -EEXIST) {
			a += step; /* mapped already (an earlier fault) */
			continue;
		}
		if (err == -EFAULT && !allocated) {
			/* a hole in the window: allocate the rest, then go on */
			allocated = !backing_allocate(&g->b, (a - base), end - a);
			if (allocated)
				continue;
			return -ENOMEM;
		}
		/*
		 * EIO: a page the hardware poisoned (the kernel's own fault would
		 * SIGBUS): the caller refuses it, or the faulter would retry for
		 * ever.  Anything else: gone; the faulter retries.
		 */
		return err == -EIO ? -EIO : 0;
	}
	return 0;
}

/*
 * Map the stretch of [s, e) around page that view v does not map yet;
 * a page the kernel cannot map (hardware poison) is refused instead.
 * Tracking writes, a page v mapped already faults only if the kernel took
 * its entry behind the library's back - with it, maybe, a write not yet
 * collected, which the entry mapped again write-protected would hide: it
 * counts as written (track.c).
 */
static void map_window(struct gmem *g, struct view *v, uint64_t page, uint64_t s, uint64_t e,
		       bool missing, struct wake *wake)
{
	lazy_narrow(g, page, &s, &e);
	if (view_mark_mapped(v, page, &s, &e) && g->tracking)
		track_mark(g, s, e);
	/* the poisoned page may be a neighbour: ask for the faulting one alone */
	if (map_around(g, v, s, e, missing, wake) == -EIO &&
	    map_around(g, v, page, page + 1, missing, wake) == -EIO)
		views_deny(g, v, page, page + 1);
}

/*
 * A touch of a hugetlbfs view: the kernel maps the huge page whole or not
 * at all, so the library decides for the whole page.  Mapped only when
 * every 4 KiB piece of it is shared; refused whole otherwise, its shared
 * pieces too (gmem_read()/gmem_write() reach those).  There are no pages
 * in transit here: a conversion of any piece waits for no pin of the huge
 * page (convert.c).  A huge page the pool cannot give is refused too, as
 * the kernel's own hugetlb faults answer SIGBUS then.
 */
static void handle_huge_fault(struct gmem *g, struct view *v, uint64_t page, bool missing,
			      struct wake *wake)
{
	uint64_t bp = g->b.align >> PAGE_SHIFT, bs = page & ~(bp - 1), be = bs + bp;
	const uint32_t unshared = STATE_MASK(GMEM_PRIVATE) | STATE_MASK(GMEM_CONVERTING);
	uint64_t s = bs, e = be;

	*wake = (struct wake){ (uintptr_t)v->addr + ((bs - v->first) << PAGE_SHIFT),
			       g->b.align };
	if (runmap_find(&g->states, bs, be, unshared) < be) {
		views_deny(g, v, bs, be);
		return;
	}
	if (lazy_park(g, page, wake->addr)) {
		wake->len = 0; /* post-copy's page, asked for: its fill wakes the touch */
		return;
	}
	if (view_mark_mapped(v, bs, &s, &e) && g->tracking)
		track_mark(g, bs, be); /* as map_window(): the kernel took its entry */
	if (map_around(g, v, bs, be, missing, wake) < 0)
		views_deny(g, v, bs, be);
}

static void handle_event(struct gmem *g, const struct uffd_event *ev);

/* Apply the unmaps and moves the reader has queued. */
static void drain_events(struct gmem *g)
{
	struct uffd_event msg[MSG_BATCH];
	size_t n;

	while ((n = queue_pop(&g->q, msg, MSG_BATCH, true)))
		for (size_t i = 0; i < n; i++)
			handle_event(g, &msg[i]);
}

static void handle_fault(struct gmem *g, const struct uffd_event *ev)
{
	uintptr_t addr = ev->addr;
	bool missing = !ev->minor;
	struct wake wake = { addr, GMEM_PAGE_SIZE };
	uint64_t page, rs, re, ws, we, unit;
	struct view *v;
	bool current;

	/* the guest mapping faults here only while a lazy restore fills it */
	if (addr - (uintptr_t)g->b.guest < g->b.size) {
		lazy_guest_fault(g, addr);
		return;
	}
	/*
	 * Decide on records that hold every unmap and move read so far: one
	 * not yet applied could mean this address is another view now, or not
	 * the library's at all (views_lock() does the same for other threads).
	 */
	for (;;) {
		drain_events(g);
		lock_shared(g);
		views_gate_enter(g);
		current = atomic_load(&g->events_read) == atomic_load(&g->events_seq);
		views_gate_leave(g);
		if (current)
			break;
		unlock(g);
	}
	v = view_find(g, addr);
	if (!v) {
		/*
		 * Registered with us, yet no view: a part the process grew a view
		 * by (mremap), a piece the records could not keep, or a view
		 * unmapped since the touch (then the mark lands nowhere).  It maps
		 * nothing it may not: refuse, never wake it unanswered.
		 */
		addr &= ~(uintptr_t)(g->b.hugetlb ? g->b.align - 1 : 0);
		uffd_poison_over_wp(g->uffd, addr, g->b.hugetlb ? g->b.align : GMEM_PAGE_SIZE);
		goto out;
	}
	count(&g->stats.host_faults, 1);
	page = v->first + ((addr - (uintptr_t)v->addr) >> PAGE_SHIFT);
	if (g->b.hugetlb) {
		handle_huge_fault(g, v, page, missing, &wake);
		goto out;
	}
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
		views_deny(g, v, page, page + 1);
		goto out;
	}
	if (lazy_park(g, page, addr)) {
		wake.len = 0; /* post-copy's page, asked for: its fill wakes the touch */
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
	unlock(g);
	/* after the unlock: a woken toucher that converts next finds the lock free */
	if (wake.len)
		uffd_wake(g->uffd, wake.addr, wake.len);
}

/* The fault thread has applied the process's changes to views: tell those waiting for it. */
static void events_applied(struct gmem *g)
{
	pthread_mutex_lock(&g->wait_mu);
	atomic_fetch_add(&g->events_seq, 1);
	pthread_cond_broadcast(&g->wait_cv);
	pthread_mutex_unlock(&g->wait_mu);
}

/*
 * The object's userfaultfd was closed behind the library's back: its views
 * are plain mappings now, which map whatever they cover.  Close them all
 * (PROT_NONE): fail closed, since nothing can decide touches any more.
 */
static void close_views(struct gmem *g)
{
	lock_exclusive(g);
	g->uffd_gone = true;
	views_close_all(g);
	unlock(g);
}

/* What the process did to views behind the library's back (reader.c read it). */
static void handle_event(struct gmem *g, const struct uffd_event *ev)
{
	switch (ev->kind) {
	case UFFD_EV_UNMAP:
		lock_exclusive(g);
		views_unmapped(g, ev->addr, ev->addr + ev->len, true);
		unlock(g);
		events_applied(g);
		/* a touch parked there (a waiting conversion's) meets the unmapped range */
		uffd_wake(g->uffd, ev->addr, ev->len);
		break;
	case UFFD_EV_MOVE:
		lock_exclusive(g);
		views_moved(g, ev->addr, ev->to, ev->len);
		unlock(g);
		events_applied(g);
		uffd_wake(g->uffd, ev->addr, ev->len);
		break;
	case UFFD_EV_GONE:
		close_views(g);
		break;
	default:
		break;
	}
}

static void *fault_main(void *arg)
{
	struct gmem *g = arg;
	struct uffd_event msg[MSG_BATCH];
	size_t n;

	/* unmaps and moves come first (queue_pop()), and before each fault */
	while ((n = queue_pop(&g->q, msg, MSG_BATCH, false))) {
		for (size_t i = 0; i < n; i++) {
			if (msg[i].kind == UFFD_EV_FAULT)
				handle_fault(g, &msg[i]);
			else
				handle_event(g, &msg[i]);
		}
	}
	return NULL;
}

/* Start a thread with every signal blocked: the library's threads take none of the process's. */
static int start(pthread_t *t, void *(*fn)(void *), struct gmem *g, const char *name)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(t, NULL, fn, g);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!err)
		pthread_setname_np(*t, name); /* for ps, gdb and seccomp profiles (docs) */
	return err;
}

int fault_start(struct gmem *g)
{
	int err;

	g->stopfd = stopfd_open();
	if (g->stopfd < 0)
		return g->stopfd;
	err = queue_init(&g->q);
	if (err)
		goto err_stopfd;
	g->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC); /* reader.c; -1 is survivable */
	g->maps_fd = maps_open(); /* view.c; without it, unmap notices are taken as they come */
	err = forked_init(g);
	if (err)
		goto err_queue;
	err = start(&g->fault_thread, fault_main, g, "gmem-fault");
	if (err)
		goto err_forked;
	err = start(&g->reader_thread, reader_main, g, "gmem-uffd");
	if (err)
		goto err_fault;
	return 0;

err_fault:
	queue_stop(&g->q);
	pthread_join(g->fault_thread, NULL);
err_forked:
	forked_fini(g);
err_queue:
	if (g->spare_fd >= 0)
		close(g->spare_fd);
	if (g->maps_fd >= 0)
		close(g->maps_fd);
	g->maps_fd = -1;
	queue_fini(&g->q);
err_stopfd:
	close(g->stopfd);
	g->stopfd = -1;
	return err;
}

void fault_stop(struct gmem *g)
{
	stopfd_fire(g->stopfd);
	queue_stop(&g->q); /* the reader may be waiting for room in it */
	pthread_join(g->reader_thread, NULL);
	pthread_join(g->fault_thread, NULL);
	close(g->stopfd);
	g->stopfd = -1;
	forked_fini(g);
	if (g->spare_fd >= 0)
		close(g->spare_fd);
	if (g->maps_fd >= 0)
		close(g->maps_fd);
	queue_fini(&g->q);
}
