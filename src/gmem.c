// SPDX-License-Identifier: MIT
/*
 * gmem.c - the object's life: creation, destruction, what it reports; the
 * library's version.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "os/uffd.h"

static int config_check(const struct gmem_config *cfg)
{
	uint64_t unit = backing_page_size(cfg->backing);

	if (!unit)
		return -EINVAL;
	if (!cfg->size || cfg->size % unit || cfg->size > GMEM_MAX_SIZE)
		return -EINVAL;
	if (cfg->flags & ~(GMEM_F_INIT_PRIVATE | GMEM_F_FRESH_PRIVATE))
		return -EINVAL;
	/* a huge folio cannot be replaced in part (fresh.c) */
	if ((cfg->flags & GMEM_F_FRESH_PRIVATE) && cfg->backing != GMEM_BACKING_SHMEM)
		return -EINVAL;
	if (cfg->fault_signal && cfg->fault_signal != SIGBUS && cfg->fault_signal != SIGSEGV)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(cfg->reserved) / sizeof(cfg->reserved[0]); i++)
		if (cfg->reserved[i])
			return -EINVAL;
	return 0;
}

/* The page forked_child() reads (internal.h). */
static int fork_probe_init(struct gmem *g)
{
	void *p = mmap(NULL, GMEM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	if (madvise(p, GMEM_PAGE_SIZE, MADV_WIPEONFORK)) {
		int err = -errno;

		munmap(p, GMEM_PAGE_SIZE);
		return err == -EINVAL ? -EOPNOTSUPP : err; /* Linux 4.14 */
	}
	g->fork_probe = p;
	atomic_store(g->fork_probe, 1);
	return 0;
}

static void fork_probe_fini(struct gmem *g)
{
	if (g->fork_probe)
		munmap((void *)g->fork_probe, GMEM_PAGE_SIZE);
}

static int locks_init(struct gmem *g)
{
	pthread_rwlockattr_t ra;
	pthread_condattr_t ca;
	int err;

	/* Writers first: a stream of faults must not starve a conversion. */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	err = pthread_rwlock_init(&g->lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	if (err)
		return -err;
	err = pthread_mutex_init(&g->wait_mu, NULL);
	if (err)
		goto err_rwlock;
	err = pthread_mutex_init(&g->events_mu, NULL);
	if (err)
		goto err_wait_mu;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	err = pthread_cond_init(&g->wait_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (err)
		goto err_events_mu;
	err = pthread_mutex_init(&g->track_mu, NULL);
	if (err)
		goto err_cv;
	err = pthread_mutex_init(&g->save_mu, NULL);
	if (err)
		goto err_track_mu;
	return 0;

err_track_mu:
	pthread_mutex_destroy(&g->track_mu);
err_cv:
	pthread_cond_destroy(&g->wait_cv);
err_events_mu:
	pthread_mutex_destroy(&g->events_mu);
err_wait_mu:
	pthread_mutex_destroy(&g->wait_mu);
err_rwlock:
	pthread_rwlock_destroy(&g->lock);
	return -err;
}

static void locks_fini(struct gmem *g)
{
	pthread_mutex_destroy(&g->save_mu);
	pthread_mutex_destroy(&g->track_mu);
	pthread_cond_destroy(&g->wait_cv);
	pthread_mutex_destroy(&g->events_mu);
	pthread_mutex_destroy(&g->wait_mu);
	pthread_rwlock_destroy(&g->lock);
}

int gmem_create(const struct gmem_config *cfg, struct gmem **out)
{
	unsigned int have;
	struct gmem *g;
	int err;

	if (!cfg || !out)
		return -EINVAL;
	err = config_check(cfg);
	if (err)
		return err;
	if (cfg->backing == GMEM_BACKING_THP && backing_thp_available())
		return -EOPNOTSUPP;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->npages = cfg->size >> PAGE_SHIFT;
	g->fault_signal = cfg->fault_signal ? cfg->fault_signal : SIGBUS;
	g->wait_timeout_ms = cfg->wait_timeout_ms ? cfg->wait_timeout_ms : 1000;
	g->uffd = g->stopfd = g->spare_fd = g->maps_fd = g->track_pm = -1;
	g->debug = getenv("GMEM_DEBUG") && !strcmp(getenv("GMEM_DEBUG"), "1");

	err = fork_probe_init(g);
	if (err)
		goto err_free;
	g->initial_state = cfg->flags & GMEM_F_INIT_PRIVATE ? GMEM_PRIVATE : GMEM_SHARED;
	err = runmap_init(&g->states, g->npages, g->initial_state);
	if (err)
		goto err_probe;
	err = pinmap_init(&g->pins, g->npages);
	if (err)
		goto err_states;
	err = locks_init(g);
	if (err)
		goto err_pins;
	err = addr_init(g);
	if (err)
		goto err_locks;
	err = backing_open(&g->b, cfg->backing, cfg->size);
	if (err)
		goto err_addr;
	err = huge_init(g);
	if (err)
		goto err_backing;
	if (cfg->flags & GMEM_F_FRESH_PRIVATE) {
		err = fresh_init(g);
		if (err)
			goto err_backing;
	}
	err = uffd_open(&g->uffd, &have, g->b.hugetlb);
	if (err)
		goto err_fresh;
	g->follows_fork = have & UFFD_HAVE_FORK;
	g->can_probe = have & UFFD_HAVE_PROBE;
	g->can_track = have & UFFD_HAVE_WP;
	err = fault_start(g);
	if (err)
		goto err_uffd;
	*out = g;
	return 0;

err_uffd:
	close(g->uffd);
err_fresh:
	fresh_fini(g);
err_backing:
	huge_fini(g);
	backing_close(&g->b);
err_addr:
	addr_fini(g);
err_locks:
	locks_fini(g);
err_pins:
	pinmap_fini(&g->pins);
err_states:
	runmap_fini(&g->states);
err_probe:
	fork_probe_fini(g);
err_free:
	free(g);
	return err;
}

int gmem_destroy(struct gmem *g)
{
	if (!g)
		return 0;
	if (forked_child(g))
		return -ECHILD; /* the parent's: nothing here is the child's to free */
	if (pins_total(g))
		return -EBUSY;
	lazy_stop(g); /* its thread fills through the guest mapping */
	/*
	 * Every page punched out first, while the threads still answer: a
	 * mapping of the file the library does not know of (a part the process
	 * grew a view by, a forked child's copy) loses its registration when
	 * the userfaultfds close below, and must find nothing of the guest's.
	 */
	backing_punch(&g->b, 0, g->b.size);
	fault_stop(g);
	lazy_fini(g); /* the fault thread filled through it to the last */
	/*
	 * Closed before the views go: unregistered, their unmaps post no
	 * events.  Not if the process closed it already (a double close): the
	 * number may be another file's by now.
	 */
	if (!g->uffd_gone)
		close(g->uffd);
	views_destroy(g);
	while (g->transits) { /* none can be left without pins; kept for safety */
		struct transit *t = g->transits;

		g->transits = t->next;
		free(t->report);
		free(t);
	}
	if (g->track_pm >= 0)
		close(g->track_pm);
	track_records_free(g);
	postcopy_source_free(g);
	fresh_fini(g);
	huge_fini(g);
	backing_close(&g->b);
	addr_fini(g);
	locks_fini(g);
	pinmap_fini(&g->pins);
	runmap_fini(&g->states);
	fork_probe_fini(g);
	free(g);
	return 0;
}

void gmem_warn(struct gmem *g, const char *file, int line, const char *what)
{
	if (g->debug) {
		fprintf(stderr, "gmem: %s:%d: cannot happen, yet did: %s\n", file, line, what);
		abort();
	}
	if (atomic_fetch_add(&g->stats.warnings, 1) == 0)
		fprintf(stderr, "gmem: %s:%d: cannot happen, yet did: %s (counted in warnings)\n",
			file, line, what);
}

uint64_t gmem_size(const struct gmem *g)
{
	return g ? g->b.size : 0;
}

uint64_t gmem_page_size(const struct gmem *g)
{
	return g ? GMEM_PAGE_SIZE : 0;
}

int gmem_guest_map(struct gmem *g, void **addr)
{
	if (!g || !addr)
		return -EINVAL;
	*addr = g->b.guest;
	return 0;
}

int gmem_state(struct gmem *g, uint64_t offset)
{
	int st;

	if (!g || offset >= g->b.size)
		return -EINVAL;
	lock_shared(g);
	st = runmap_get(&g->states, offset >> PAGE_SHIFT, NULL, NULL);
	unlock(g);
	return st;
}

/* Programs compiled against any release pass this size: it is ABI. */
_Static_assert(sizeof(struct gmem_stats) == 32 * sizeof(uint64_t),
	       "struct gmem_stats changed size: new counters must take reserved slots");

void gmem_get_stats(struct gmem *g, struct gmem_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!g)
		return;
	st->conversions = atomic_load(&g->stats.conversions);
	st->pages_to_private = atomic_load(&g->stats.pages_to_private);
	st->pages_to_shared = atomic_load(&g->stats.pages_to_shared);
	st->convert_eagain = atomic_load(&g->stats.convert_eagain);
	st->convert_deferred = atomic_load(&g->stats.convert_deferred);
	st->host_faults = atomic_load(&g->stats.host_faults);
	st->host_faults_denied = atomic_load(&g->stats.host_faults_denied);
	st->pins_active = pins_total(g);
	st->warnings = atomic_load(&g->stats.warnings);
	st->pages_saved = atomic_load(&g->stats.pages_saved);
	st->pages_restored = atomic_load(&g->stats.pages_restored);
}

unsigned int gmem_version(void)
{
	return GMEM_VERSION;
}
