// SPDX-License-Identifier: MIT
/*
 * reader.c - the reader thread: reads the userfaultfds, and never waits.
 *
 * The kernel holds a thread that unmaps, moves or forks a view until its
 * event has been *read*, and a fork holds the C library's locks (malloc's
 * among them) while it waits.  So whatever reads the userfaultfd must take
 * no lock that code can hold across a fork or a library call: not g->lock
 * (a conversion holding it may be waiting on malloc, held by the fork),
 * not malloc.  This thread only reads, answers what needs no lock (a
 * forked child's touches, forked.c) and hands the rest - faults, unmaps
 * and moves - to the fault thread (fault.c) through a queue in memory it
 * mapped itself.  Counting unmaps and moves as they are read
 * (events_read, views_lock()) happens here.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "os/uffd.h"

#define READ_BATCH 16

static int ring_init(struct msg_ring *r)
{
	/* mapped, not allocated: the reader must not need malloc (see above) */
	r->msgs = mmap(NULL, QUEUE_MSGS * sizeof(*r->msgs), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->msgs == MAP_FAILED) {
		r->msgs = NULL;
		return -errno;
	}
	r->head = r->tail = 0;
	return 0;
}

static void ring_fini(struct msg_ring *r)
{
	if (r->msgs)
		munmap(r->msgs, QUEUE_MSGS * sizeof(*r->msgs));
	r->msgs = NULL;
}

int queue_init(struct fault_queue *q)
{
	pthread_condattr_t ca;
	int err;

	memset(q, 0, sizeof(*q));
	err = ring_init(&q->events);
	if (!err)
		err = ring_init(&q->faults);
	if (err)
		goto err_rings;
	err = -pthread_mutex_init(&q->mu, NULL);
	if (err)
		goto err_rings;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	err = -pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (err)
		goto err_mutex;
	return 0;

err_mutex:
	pthread_mutex_destroy(&q->mu);
err_rings:
	ring_fini(&q->faults);
	ring_fini(&q->events);
	return err;
}

void queue_fini(struct fault_queue *q)
{
	if (!q->events.msgs)
		return;
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	ring_fini(&q->faults);
	ring_fini(&q->events);
}

/*
 * Hand n messages to the fault thread: unmaps and moves on one ring,
 * faults on the other (the fault thread takes the first ahead of the
 * second).  A ring holds what threads are waiting on (each faulter or
 * unmapper waits for its answer), so it fills only if the fault thread
 * stops for that long: then wait for room.
 */
static void queue_push(struct fault_queue *q, const struct uffd_event *msg, size_t n)
{
	pthread_mutex_lock(&q->mu);
	for (size_t i = 0; i < n; i++) {
		struct msg_ring *r = msg[i].kind == UFFD_EV_FAULT ? &q->faults : &q->events;

		while (r->tail - r->head == QUEUE_MSGS && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->stop)
			break;
		r->msgs[r->tail++ % QUEUE_MSGS] = msg[i];
	}
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

size_t queue_pop(struct fault_queue *q, struct uffd_event *msg, size_t max, bool events_only)
{
	struct msg_ring *r;
	size_t n = 0;

	pthread_mutex_lock(&q->mu);
	while (!events_only && q->events.head == q->events.tail &&
	       q->faults.head == q->faults.tail && !q->stop)
		pthread_cond_wait(&q->cv, &q->mu);
	r = q->events.head != q->events.tail || events_only ? &q->events : &q->faults;
	while (n < max && r->head != r->tail)
		msg[n++] = r->msgs[r->head++ % QUEUE_MSGS];
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return n;
}

void queue_stop(struct fault_queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

/*
 * A fork's event installs a userfaultfd for the child as it is read: with
 * no descriptor free, the read fails (EMFILE) and the event stays - and
 * the fork with it, and every unmap behind it.  The spare descriptor kept
 * for this makes room; without one, wait a moment rather than spin.
 */
static ssize_t read_with_spare_fd(struct gmem *g, struct uffd_event *ev, size_t max)
{
	struct timespec ms = { 0, 1000000 };
	ssize_t n;

	if (g->spare_fd < 0) {
		nanosleep(&ms, NULL);
		return -EMFILE;
	}
	close(g->spare_fd);
	n = uffd_read(g->uffd, ev, max);
	g->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	return n;
}

/* Read what the object's userfaultfd holds; false if it is gone. */
static bool read_main(struct gmem *g)
{
	struct uffd_event ev[READ_BATCH], pass[READ_BATCH];
	size_t npass = 0;
	ssize_t n;

	/*
	 * The kernel lets an unmapping or moving thread go on as the event is
	 * read, before it is applied; counting it in the same critical section
	 * lets that thread's next call wait for it (views_lock()).
	 */
	pthread_mutex_lock(&g->events_mu);
	n = uffd_read(g->uffd, ev, READ_BATCH);
	if (n == -EMFILE || n == -ENFILE)
		n = read_with_spare_fd(g, ev, READ_BATCH);
	for (ssize_t i = 0; i < n; i++) {
		if (ev[i].kind == UFFD_EV_FORK) {
			forked_add(g, ev[i].fd);
			continue;
		}
		if (uffd_event_changes_views(&ev[i]))
			atomic_fetch_add(&g->events_read, 1);
		pass[npass++] = ev[i];
	}
	/* counted and queued together: a count the fault thread sees is on its ring */
	if (npass)
		queue_push(&g->q, pass, npass);
	pthread_mutex_unlock(&g->events_mu);
	return n != -EBADF;
}

/*
 * The object's userfaultfd was closed behind the library's back (a double
 * close in the process): its views are registered no more.  Tell the
 * fault thread, which closes them (fault.c), and stop reading it.
 */
static void uffd_gone(struct gmem *g)
{
	struct uffd_event lost = { .kind = UFFD_EV_GONE, .fd = -1 };

	queue_push(&g->q, &lost, 1);
}

void *reader_main(void *arg)
{
	struct gmem *g = arg;
	bool reading = true;

	for (;;) {
		size_t children = g->nforked;
		struct pollfd *pfd = g->pfd;
		int n;

		pfd[0] = (struct pollfd){ .fd = reading ? g->uffd : -1, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = g->stopfd, .events = POLLIN };
		for (size_t i = 0; i < children; i++)
			pfd[2 + i] = (struct pollfd){ .fd = g->forked[i], .events = POLLIN };
		/* children's ends are noticed by probing, once a second while any live */
		n = fds_wait(pfd, 2 + children, children ? 1000 : -1);
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & POLLNVAL || (pfd[0].revents && !read_main(g))) {
			reading = false;
			uffd_gone(g);
		}
		for (size_t i = 0; i < children; i++)
			if (pfd[2 + i].revents)
				forked_serve(g, pfd[2 + i].fd);
		if (!n)
			forked_reap(g);
	}
	return NULL;
}
