// SPDX-License-Identifier: MIT
/*
 * addr.c - which gmem address a fault came from, answerable in a signal handler.
 *
 * A VMM's SIGBUS/SIGSEGV handler must tell a gmem refusal from any other
 * fault (a machine check's BUS_MCEERR_*, a bug) without taking a lock: the
 * thread it interrupted may hold any of them.  The guest mapping never
 * moves.  Views do - the process may move or unmap them, and the records
 * follow (view.c) - so the records are copied here, whenever they change
 * and with g->lock held exclusive, into memory mapped once for the life of
 * the object, under a sequence count that readers check around the copy
 * they read: no lock, no allocation, nothing freed under a reader.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define ADDR_SLOTS (1u << 20) /* far past vm.max_map_count: views are mappings */
#define ADDR_BYTES (ADDR_SLOTS * sizeof(struct addr_slot))
/* A rewrite takes microseconds; a rewriter descheduled meanwhile, a timeslice or so. */
#define READ_TRIES 1000000

int addr_init(struct gmem *g)
{
	void *p = mmap(NULL, ADDR_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	g->addrs.slots = p;
	return 0;
}

void addr_fini(struct gmem *g)
{
	if (g->addrs.slots)
		munmap(g->addrs.slots, ADDR_BYTES);
	g->addrs.slots = NULL;
}

void addr_publish(struct gmem *g)
{
	struct addr_table *t = &g->addrs;
	uint64_t seq = atomic_load_explicit(&t->seq, memory_order_relaxed);
	size_t n = g->nviews < ADDR_SLOTS ? g->nviews : ADDR_SLOTS;

	assert_exclusive(g);
	atomic_store_explicit(&t->writer, gettid(), memory_order_relaxed);
	atomic_store_explicit(&t->seq, seq + 1, memory_order_release);
	atomic_thread_fence(memory_order_release);
	for (size_t i = 0; i < n; i++) {
		const struct view *v = g->views[i];

		atomic_store_explicit(&t->slots[i].addr, (uintptr_t)v->addr, memory_order_relaxed);
		atomic_store_explicit(&t->slots[i].first, v->first, memory_order_relaxed);
		atomic_store_explicit(&t->slots[i].end, v->end, memory_order_relaxed);
	}
	atomic_store_explicit(&t->n, n, memory_order_relaxed);
	atomic_store_explicit(&t->seq, seq + 2, memory_order_release);
}

/* Look a up in one reading of the table: 0 found, -ENOENT not there. */
static int lookup(const struct addr_table *t, uintptr_t a, uint64_t *offset)
{
	size_t lo = 0, hi = atomic_load_explicit(&t->n, memory_order_relaxed);

	if (hi > ADDR_SLOTS)
		return -ENOENT; /* torn: the sequence check will say so */
	/* the last slot whose address is at or below a */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (atomic_load_explicit(&t->slots[mid].addr, memory_order_relaxed) <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo) {
		const struct addr_slot *s = &t->slots[lo - 1];
		uintptr_t base = atomic_load_explicit(&s->addr, memory_order_relaxed);
		uint64_t first = atomic_load_explicit(&s->first, memory_order_relaxed);
		uint64_t end = atomic_load_explicit(&s->end, memory_order_relaxed);

		if (end > first && a - base < ((end - first) << PAGE_SHIFT)) {
			*offset = (first << PAGE_SHIFT) + (a - base);
			return 0;
		}
	}
	return -ENOENT;
}

int gmem_addr_offset(struct gmem *g, const void *addr, uint64_t *offset, int *kind)
{
	uintptr_t a = (uintptr_t)addr;
	struct addr_table *t;

	if (!g || !offset || !kind)
		return -EINVAL;
	if (a - (uintptr_t)g->b.guest < g->b.size) {
		*offset = a - (uintptr_t)g->b.guest;
		*kind = GMEM_ADDR_GUEST;
		return 0;
	}
	t = &g->addrs;
	for (int i = 0; i < READ_TRIES; i++) {
		uint64_t seq = atomic_load_explicit(&t->seq, memory_order_acquire), at;
		int err;

		if (seq & 1) {
			/* the thread this handler interrupted can never finish: say so */
			if (atomic_load_explicit(&t->writer, memory_order_relaxed) == gettid())
				return -EAGAIN;
			if (i % 64 == 63)
				sched_yield(); /* the rewriter may be waiting for this CPU */
			else
				__builtin_ia32_pause();
			continue;
		}
		err = lookup(t, a, &at);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&t->seq, memory_order_relaxed) != seq)
			continue;
		if (err)
			return err;
		*offset = at;
		*kind = GMEM_ADDR_VIEW;
		return 0;
	}
	return -EAGAIN;
}
