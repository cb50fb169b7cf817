// SPDX-License-Identifier: MIT
/*
 * compare.c - gmem beside the strategies VMMs use today, on the same
 * workloads in the same run: conversion latency by range size and number
 * of views, host access cost, fragmentation scaling, pins on one and two
 * threads, and whether contents survive.  Each prints a table and writes
 * series rows for the JSON (bench/report.py turns them into the tables and
 * plots of docs/PERFORMANCE.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"
#include "strategy.h"

/* min, median and max of n samples */
static void spread(const double *v, int n, double out[3])
{
	out[0] = out[2] = v[0];
	for (int i = 1; i < n; i++) {
		out[0] = v[i] < out[0] ? v[i] : out[0];
		out[2] = v[i] > out[2] ? v[i] : out[2];
	}
	out[1] = median(v, n);
}

static void open_or_die(struct strat *s, const struct strat_ops *ops, uint64_t size, int views)
{
	int err = strat_open(s, ops, size, views);

	if (err)
		die(ops->name, err);
}

/* The kernel's floor for "no view maps this range": one MADV_DONTNEED per view. */
static double zap_floor(uint64_t len, int views)
{
	char *p[MAX_VIEWS];
	double t0, t;
	int fd = memfd_create("floor", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)len))
		die("memfd", errno);
	for (int v = 0; v < views; v++) {
		p[v] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p[v] == MAP_FAILED)
			die("mmap", errno);
		touch_pages(p[v], len);
	}
	t0 = now_ns();
	for (int v = 0; v < views; v++)
		madvise(p[v], len, MADV_DONTNEED);
	t = now_ns() - t0;
	for (int v = 0; v < views; v++)
		munmap(p[v], len);
	close(fd);
	return t;
}

/* Conversion latency against range size, the range touched through 1 and 4 views. */
static void conversion_latency(void)
{
	static const uint64_t sizes[] = { 4 * KiB, 64 * KiB, MiB, 16 * MiB, 256 * MiB, GiB };
	static const int views[] = { 1, 4 };

	printf("\nconversion latency (median of %d; the range touched through every view first)\n",
	       bench_reps);
	printf("%-9s %5s %8s %14s %14s %14s %8s\n", "strategy", "views", "size", "to private ns",
	       "to shared ns", "zap floor ns", "x floor");
	for (size_t vi = 0; vi < 2; vi++) {
		for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
			const uint64_t size = sizes[si], obj = size < 2 * MiB ? 2 * MiB : size;
			double floor[MAX_REPS];

			for (int r = 0; r < bench_reps; r++)
				floor[r] = zap_floor(size, views[vi]);
			for (const struct strat_ops *const *o = strategies; *o; o++) {
				double priv[MAX_REPS], shared[MAX_REPS], fl = median(floor, bench_reps);
				struct strat s;

				open_or_die(&s, *o, obj, views[vi]);
				for (int r = 0; r < bench_reps; r++) {
					double t0;

					for (int v = 0; v < s.nviews; v++)
						touch_pages(s.view[v], size);
					t0 = now_ns();
					if (s.ops->convert(&s, 0, size, true))
						die("convert", EIO);
					priv[r] = now_ns() - t0;
					t0 = now_ns();
					if (s.ops->convert(&s, 0, size, false))
						die("convert", EIO);
					shared[r] = now_ns() - t0;
				}
				strat_close(&s);
				printf("%-9s %5d %7lluK %14.0f %14.0f %14.0f %8.2f\n", (*o)->name, views[vi],
				       (unsigned long long)(size >> 10), median(priv, bench_reps),
				       median(shared, bench_reps), fl, median(priv, bench_reps) / fl);
				{
					double p3[3], s3[3];

					spread(priv, bench_reps, p3);
					spread(shared, bench_reps, s3);
					series("conversion_latency",
					       "\"strategy\": \"%s\", \"views\": %d, \"bytes\": %llu, "
					       "\"to_private_ns\": %.0f, \"to_private_min\": %.0f, "
					       "\"to_private_max\": %.0f, \"to_shared_ns\": %.0f, "
					       "\"to_shared_min\": %.0f, \"to_shared_max\": %.0f, "
					       "\"zap_floor_ns\": %.0f",
					       (*o)->name, views[vi], (unsigned long long)size, p3[1], p3[0],
					       p3[2], s3[1], s3[0], s3[2], fl);
				}
			}
		}
	}
}

/* Host first touch and steady-state access of 64 MiB of shared memory. */
static void host_access(void)
{
	static const struct strat_ops *const all[] = { &strat_none, &strat_gmem, &strat_mprotect,
						       &strat_discard };
	const uint64_t size = 64 * MiB;
	double floor_first = 0, floor_steady = 0;

	printf("\nhost access to shared memory, 64 MiB (median of %d)\n", bench_reps);
	printf("%-9s %16s %8s %16s %8s\n", "strategy", "first ns/page", "x none", "steady ns/page",
	       "x none");
	for (size_t i = 0; i < 4; i++) {
		double first[MAX_REPS], steady[MAX_REPS];

		for (int r = 0; r < bench_reps; r++) {
			struct strat s;
			double t0;

			open_or_die(&s, all[i], size, 1);
			t0 = now_ns();
			touch_pages(s.view[0], size);
			first[r] = (now_ns() - t0) / (size / PS);
			t0 = now_ns();
			for (int pass = 0; pass < 4; pass++)
				touch_pages(s.view[0], size);
			steady[r] = (now_ns() - t0) / (4 * size / PS);
			strat_close(&s);
		}
		if (i == 0) {
			floor_first = median(first, bench_reps);
			floor_steady = median(steady, bench_reps);
		}
		printf("%-9s %16.0f %8.2f %16.1f %8.2f\n", all[i]->name, median(first, bench_reps),
		       median(first, bench_reps) / floor_first, median(steady, bench_reps),
		       median(steady, bench_reps) / floor_steady);
		{
			double f3[3], s3[3];

			spread(first, bench_reps, f3);
			spread(steady, bench_reps, s3);
			series("host_access",
			       "\"strategy\": \"%s\", \"first_touch_ns_per_page\": %.1f, "
			       "\"first_min\": %.1f, \"first_max\": %.1f, \"steady_ns_per_page\": %.2f, "
			       "\"steady_min\": %.2f, \"steady_max\": %.2f, \"first_vs_none\": %.3f, "
			       "\"steady_vs_none\": %.3f",
			       all[i]->name, f3[1], f3[0], f3[2], s3[1], s3[0], s3[2],
			       f3[1] / floor_first, s3[1] / floor_steady);
		}
	}
}

/*
 * Fragmentation: N private single pages alternating with shared ones in a
 * 1 GiB object with one view: the cost of making them, one more conversion
 * among them, the memory the state takes, and where a strategy gives up.
 */
static void fragmentation(void)
{
	static const uint64_t runs[] = { 1, 10, 100, 1000, 10000, 100000 };
	const uint64_t size = GiB;

	printf("\nfragmentation: N private pages alternating with shared ones, 1 GiB, one view\n");
	printf("%-9s %7s %18s %18s %14s  %s\n", "strategy", "runs", "ns per conversion",
	       "one more, ns", "state bytes", "");
	for (const struct strat_ops *const *o = strategies; *o; o++) {
		for (size_t ri = 0; ri < sizeof(runs) / sizeof(runs[0]); ri++) {
			const uint64_t n = runs[ri], stride = size / PS / n / 2 * 2 * PS;
			struct strat s;
			double t0, build, one;
			uint64_t made = 0;
			int err = 0;

			open_or_die(&s, *o, size, 1);
			t0 = now_ns();
			for (; made < n && !err; made++)
				err = s.ops->convert(&s, made * stride + PS, PS, true);
			build = (now_ns() - t0) / (double)made;
			if (err) {
				printf("%-9s %7llu %18s %18s %14s  fails at %llu runs: %s\n", (*o)->name,
				       (unsigned long long)n, "-", "-", "-",
				       (unsigned long long)made - 1, strerror(-err));
				series("fragmentation",
				       "\"strategy\": \"%s\", \"runs\": %llu, \"failed_at\": %llu, "
				       "\"error\": \"%s\"",
				       (*o)->name, (unsigned long long)n, (unsigned long long)made - 1,
				       strerror(-err));
				strat_close(&s);
				break; /* more runs fail the same way */
			}
			t0 = now_ns();
			for (int i = 0; i < 200; i++) { /* a page among them, there and back */
				s.ops->convert(&s, n / 2 * stride + 2 * PS, PS, true);
				s.ops->convert(&s, n / 2 * stride + 2 * PS, PS, false);
			}
			one = (now_ns() - t0) / 400;
			printf("%-9s %7llu %18.0f %18.0f %14llu\n", (*o)->name, (unsigned long long)n, build,
			       one, (unsigned long long)s.ops->state_bytes(&s));
			series("fragmentation",
			       "\"strategy\": \"%s\", \"runs\": %llu, \"ns_per_conversion\": %.0f, "
			       "\"one_more_ns\": %.0f, \"state_bytes\": %llu",
			       (*o)->name, (unsigned long long)n, build, one,
			       (unsigned long long)s.ops->state_bytes(&s));
			strat_close(&s);
		}
	}
}

struct pinner {
	struct strat *s;
	uint64_t page;
	int pairs;
	_Atomic int *go;
	double ns;
	_Atomic uint64_t *counter; /* the baseline: an atomic on this */
};

static void *pin_loop(void *arg)
{
	struct pinner *p = arg;
	double t0;

	while (!atomic_load(p->go))
		;
	t0 = now_ns();
	for (int i = 0; i < p->pairs; i++) {
		if (p->counter) {
			atomic_fetch_add(p->counter, 1);
			atomic_fetch_sub(p->counter, 1);
		} else {
			p->s->ops->pin(p->s, p->page * PS, PS);
			p->s->ops->unpin(p->s, p->page * PS, PS);
		}
	}
	p->ns = (now_ns() - t0) / p->pairs;
	return NULL;
}

/* ns per pin+unpin pair on each of `threads` threads, on the pages given. */
static double pin_rate(struct strat *s, int threads, const uint64_t *pages, bool baseline)
{
	static _Atomic uint64_t counters[2][16]; /* two cache lines apart */
	struct pinner p[2];
	pthread_t t[2];
	_Atomic int go = 0;
	double worst = 0;

	for (int i = 0; i < threads; i++) {
		p[i] = (struct pinner){ s, pages[i], 1000000, &go, 0,
					baseline ? &counters[pages[i] == pages[0] ? 0 : i][0] : NULL };
		if (pthread_create(&t[i], NULL, pin_loop, &p[i]))
			die("pthread_create", errno);
	}
	atomic_store(&go, 1);
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		if (p[i].ns > worst)
			worst = p[i].ns;
	}
	return worst;
}

static void pins(void)
{
	static const struct {
		const char *what;
		int threads;
		uint64_t pages[2];
	} cases[] = {
		{ "1 thread", 1, { 1, 1 } },
		{ "2 threads, own pages", 2, { 1, 4096 } },
		{ "2 threads, one page", 2, { 1, 1 } },
	};

	printf("\npin + unpin of one page, ns per pair (median of %d)\n", bench_reps);
	printf("%-24s %10s %10s %10s %12s\n", "", "gmem", "mprotect", "discard", "atomic floor");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		double v[4][MAX_REPS];

		for (int r = 0; r < bench_reps; r++) {
			for (int k = 0; k < 3; k++) {
				struct strat s;

				open_or_die(&s, strategies[k], 64 * MiB, 0);
				v[k][r] = pin_rate(&s, cases[c].threads, cases[c].pages, false);
				strat_close(&s);
			}
			v[3][r] = pin_rate(NULL, cases[c].threads, cases[c].pages, true);
		}
		printf("%-24s %10.1f %10.1f %10.1f %12.1f\n", cases[c].what, median(v[0], bench_reps),
		       median(v[1], bench_reps), median(v[2], bench_reps), median(v[3], bench_reps));
		{
			double g3[3];

			spread(v[0], bench_reps, g3);
			series("pins",
			       "\"case\": \"%s\", \"gmem_ns\": %.1f, \"gmem_min\": %.1f, "
			       "\"gmem_max\": %.1f, \"mprotect_ns\": %.1f, \"discard_ns\": %.1f, "
			       "\"atomic_ns\": %.1f",
			       cases[c].what, g3[1], g3[0], g3[2], median(v[1], bench_reps),
			       median(v[2], bench_reps), median(v[3], bench_reps));
		}
	}
}

static __thread sigjmp_buf *volatile probe_jmp;

static void on_probe_fault(int sig, siginfo_t *si, void *uc)
{
	(void)si, (void)uc;
	if (probe_jmp)
		siglongjmp(*probe_jmp, sig);
	signal(sig, SIG_DFL);
}

/* Read one byte; false if the strategy refused the touch. */
static bool probe(volatile char *p)
{
	sigjmp_buf jb;
	bool ok = false;

	if (!sigsetjmp(jb, 1)) {
		probe_jmp = &jb;
		(void)*p;
		ok = true;
	}
	probe_jmp = NULL;
	return ok;
}

/*
 * Contents and memory: the host writes 16 MiB, the guest takes the range
 * private (and reads it) and gives it back; are the bytes still there?
 * And while it is private, what does a host read get, and what do the
 * backings then hold?
 */
static void contents(void)
{
	struct sigaction sa = { .sa_sigaction = on_probe_fault, .sa_flags = SA_SIGINFO }, old_bus,
			 old_segv;
	const uint64_t size = 16 * MiB;

	sigaction(SIGBUS, &sa, &old_bus);
	sigaction(SIGSEGV, &sa, &old_segv);
	printf("\ncontents and memory: 16 MiB written by the host, converted private and back\n");
	printf("%-9s %18s %26s %20s\n", "strategy", "contents", "host read while private",
	       "resident after (MiB)");
	for (const struct strat_ops *const *o = strategies; *o; o++) {
		struct strat s;
		uint64_t intact = 0, refused = 0, resident;

		open_or_die(&s, *o, size, 1);
		for (uint64_t i = 0; i < size; i += PS)
			s.view[0][i] = (char)(i / PS % 255 + 1); /* never 0: a lost page reads 0 */
		if (s.ops->convert(&s, 0, size, true))
			die("convert", EIO);
		for (uint64_t i = 0; i < size; i += PS) /* the guest reads its private memory */
			(void)*(volatile char *)(s.guest + i);
		for (uint64_t i = 0; i < size; i += PS)
			refused += !probe(s.view[0] + i);
		resident = s.ops->resident_bytes(&s);
		if (s.ops->convert(&s, 0, size, false))
			die("convert", EIO);
		for (uint64_t i = 0; i < size; i += PS)
			intact += s.view[0][i] == (char)(i / PS % 255 + 1);
		printf("%-9s %18s %26s %20.0f\n", (*o)->name,
		       intact == size / PS ? "kept" : intact ? "partly lost" : "lost",
		       refused == size / PS ? "refused (signal)" : refused ? "partly refused"
									  : "zeros, allocated",
		       (double)resident / MiB);
		series("contents",
		       "\"strategy\": \"%s\", \"pages_kept\": %llu, \"pages\": %llu, "
		       "\"host_reads_refused\": %llu, \"resident_bytes_while_private\": %llu",
		       (*o)->name, (unsigned long long)intact, (unsigned long long)(size / PS),
		       (unsigned long long)refused, (unsigned long long)resident);
		strat_close(&s);
	}
	sigaction(SIGBUS, &old_bus, NULL);
	sigaction(SIGSEGV, &old_segv, NULL);
}

void compare_all(int reps, const char *only)
{
	static const struct {
		const char *id;
		void (*run)(void);
	} parts[] = {
		{ "conversion_latency", conversion_latency },
		{ "host_access", host_access },
		{ "fragmentation", fragmentation },
		{ "pins", pins },
		{ "contents", contents },
		{ "track_sizes", track_sizes },
	};

	(void)reps;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (!only || strstr(parts[i].id, only))
			parts[i].run();
}
