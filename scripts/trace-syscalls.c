// SPDX-License-Identifier: MIT
/*
 * trace-syscalls.c - drives every path of libgmem's two threads, for
 * scripts/trace-syscalls.sh to record which system calls each one makes
 * (docs/INTEGRATION.md lists them for seccomp filters).
 *
 * Shared and private first touches, SIGBUS and SIGSEGV refusals (the latter
 * in a locked view too), a touch parked by a waiting conversion, a deferred
 * conversion's refusals and completion, views unmapped and moved behind the
 * library's back, forks that inherit views (one with no descriptor free),
 * THP and GMEM_F_FRESH_PRIVATE objects.  Exits 0 if every step behaved.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gmem.h"

#define PS GMEM_PAGE_SIZE
#define PAGES 64

static int failures;

#define EXPECT(cond)                                                                  \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "trace-syscalls: %s:%d: %s\n", __FILE__, __LINE__, \
				#cond);                                               \
			failures++;                                                   \
		}                                                                     \
	} while (0)

static __thread sigjmp_buf *volatile guard;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)si, (void)uc;
	if (guard)
		siglongjmp(*guard, sig);
	signal(sig, SIG_DFL);
}

/* Read one byte; 0, or the signal the touch raised. */
static int touch(volatile char *p)
{
	sigjmp_buf jb;
	int sig = sigsetjmp(jb, 1);

	if (!sig) {
		guard = &jb;
		(void)*p;
	}
	guard = NULL;
	return sig;
}

/* A mark in the trace: a write to no descriptor, for the script to find. */
static void mark(const char *what)
{
	(void)!write(-1, what, strlen(what));
}

/* fn(...) between marks: the script sorts what it does under fn's name. */
#define T(fn, ...)                                   \
	({                                           \
		int r_;                              \
		mark("begin:" #fn);                  \
		r_ = fn(__VA_ARGS__);                \
		mark("end");                         \
		r_;                                  \
	})

static struct gmem *create(uint32_t backing, uint32_t flags, int sig, uint64_t size)
{
	struct gmem_config cfg = { .size = size, .backing = backing, .flags = flags,
				   .fault_signal = sig, .wait_timeout_ms = 5000 };
	struct gmem *g = NULL;
	int err;

	mark(backing == GMEM_BACKING_THP ? "begin:gmem_create (THP)" : "begin:gmem_create");
	err = gmem_create(&cfg, &g);
	mark("end");

	if (err) {
		fprintf(stderr, "trace-syscalls: gmem_create: %s\n", strerror(-err));
		return NULL;
	}
	return g;
}

static char *view(struct gmem *g, uint64_t off, uint64_t len)
{
	void *v = NULL;

	EXPECT(!T(gmem_view_map, g, off, len, 0, &v));
	return v;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

struct waiter {
	struct gmem *g;
	char *addr;
	int result;
};

static void *convert_waiting(void *arg)
{
	struct waiter *w = arg;

	w->result = T(gmem_convert, w->g, 8 * PS, 2 * PS, GMEM_PRIVATE, GMEM_CONVERT_WAIT, NULL);
	return NULL;
}

static void *touch_parked(void *arg)
{
	struct waiter *w = arg;

	w->result = touch(w->addr);
	return NULL;
}

/* A waiting conversion parks a touch of an unpinned page; its end refuses it. */
static void parked_touch(struct gmem *g, char *v)
{
	struct waiter conv = { g, NULL, 1 }, toucher = { g, v + 9 * PS, -1 };
	pthread_t a, b;

	EXPECT(!T(gmem_pin, g, 8 * PS, PS, 0));
	pthread_create(&a, NULL, convert_waiting, &conv);
	while (gmem_state(g, 9 * PS) != GMEM_CONVERTING)
		sleep_ms(1);
	pthread_create(&b, NULL, touch_parked, &toucher);
	sleep_ms(50);
	EXPECT(!T(gmem_unpin, g, 8 * PS, PS, 0));
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	EXPECT(conv.result == 0);
	EXPECT(toucher.result == SIGBUS);
}

/* A deferred conversion: the pinned page stays reachable, the others are refused. */
static void deferred(struct gmem *g, char *v)
{
	uint64_t at = 0;

	EXPECT(!T(gmem_pin, g, 16 * PS, PS, 0));
	EXPECT(T(gmem_convert, g, 16 * PS, 2 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, &at) ==
	       -EINPROGRESS);
	EXPECT(touch(v + 17 * PS) == SIGBUS);
	EXPECT(touch(v + 16 * PS) == 0);
	EXPECT(!T(gmem_unpin, g, 16 * PS, PS, 0)); /* completes here */
	EXPECT(gmem_state(g, 16 * PS) == GMEM_PRIVATE);
}

/* Views unmapped in part and moved behind the library's back. */
static void tamper(struct gmem *g)
{
	char *a = view(g, 0, 8 * PS), *b = view(g, 0, 8 * PS), *to;

	EXPECT(touch(a) == 0);
	EXPECT(!munmap(a + 2 * PS, PS));
	to = mmap(NULL, 8 * PS, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	EXPECT(mremap(b, 8 * PS, 8 * PS, MREMAP_MAYMOVE | MREMAP_FIXED, to) == to);
	EXPECT(touch(to + PS) == 0);
	EXPECT(!T(gmem_view_unmap, g, a));
	EXPECT(!T(gmem_view_unmap, g, a + 3 * PS));
	EXPECT(!T(gmem_view_unmap, g, to));
}

/* A child that inherits a view (MADV_DOFORK): its touches are refused. */
static void forked(struct gmem *g, bool no_fd_free)
{
	char *v = view(g, 0, 8 * PS);
	struct rlimit old, rl;
	int fds[64], n = 0, status;
	pid_t pid;

	EXPECT(!madvise(v, 8 * PS, MADV_DOFORK));
	getrlimit(RLIMIT_NOFILE, &old);
	if (no_fd_free) {
		rl = (struct rlimit){ 64, old.rlim_max };
		setrlimit(RLIMIT_NOFILE, &rl);
		while (n < 64 && (fds[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
			n++;
	}
	pid = fork();
	if (pid == 0)
		_exit(touch(v + PS) == SIGBUS ? 0 : 1);
	while (n)
		close(fds[--n]);
	setrlimit(RLIMIT_NOFILE, &old);
	EXPECT(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0);
	sleep_ms(1500); /* the reader notices the child's end within a second */
	EXPECT(!T(gmem_view_unmap, g, v));
}

int main(void)
{
	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO };
	struct gmem *g;
	char *v;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);

	/* 4 KiB backing, SIGBUS */
	g = create(GMEM_BACKING_SHMEM, 0, 0, PAGES * PS);
	if (!g)
		return 1;
	v = view(g, 0, PAGES * PS);
	for (int i = 0; i < PAGES; i += 4)
		EXPECT(touch(v + i * PS) == 0); /* missing faults: allocate, map around */
	EXPECT(!T(gmem_convert, g, 0, PS, GMEM_PRIVATE, 0, NULL));
	EXPECT(touch(v) == SIGBUS);
	EXPECT(!T(gmem_convert, g, 0, PS, GMEM_SHARED, 0, NULL));
	EXPECT(touch(v) == 0); /* a minor fault */
	{
		char buf[100] = "copied";

		EXPECT(!T(gmem_write, g, PS - 50, buf, sizeof(buf), NULL));
		EXPECT(!T(gmem_read, g, PS - 50, buf, sizeof(buf), NULL));
	}
	parked_touch(g, v);
	deferred(g, v);
	tamper(g);
	forked(g, false);
	forked(g, true);
	EXPECT(!T(gmem_audit, g));
	EXPECT(!T(gmem_view_unmap, g, v));
	EXPECT(!T(gmem_destroy, g));

	/* SIGSEGV: a guard marker; in a locked view, PROT_NONE */
	g = create(GMEM_BACKING_SHMEM, GMEM_F_INIT_PRIVATE, SIGSEGV, PAGES * PS);
	if (!g)
		return 1;
	v = view(g, 0, PAGES * PS);
	EXPECT(touch(v) == SIGSEGV);
	EXPECT(!mlock2(v + 8 * PS, 8 * PS, MLOCK_ONFAULT));
	EXPECT(touch(v + 9 * PS) == SIGSEGV);
	EXPECT(!T(gmem_convert, g, 0, 16 * PS, GMEM_SHARED, 0, NULL));
	EXPECT(touch(v + 9 * PS) == 0);
	EXPECT(!T(gmem_destroy, g));

	/* THP: a missing fault populates the guest mapping's huge page first */
	g = create(GMEM_BACKING_THP, 0, 0, 4ULL << 20);
	if (g) {
		v = view(g, 0, 4ULL << 20);
		EXPECT(touch(v + 5 * PS) == 0);
		EXPECT(!T(gmem_write, g, 3ULL << 20, "x", 1, NULL)); /* a huge page of its own */
		EXPECT(!T(gmem_destroy, g));
	}

	/* GMEM_F_FRESH_PRIVATE: the copies happen in the converting thread */
	g = create(GMEM_BACKING_SHMEM, GMEM_F_FRESH_PRIVATE, 0, PAGES * PS);
	if (!g)
		return 1;
	v = view(g, 0, PAGES * PS);
	EXPECT(touch(v) == 0);
	EXPECT(!T(gmem_convert, g, 0, PAGES * PS, GMEM_PRIVATE, 0, NULL));
	EXPECT(touch(v) == SIGBUS);
	EXPECT(!T(gmem_destroy, g));

	if (failures)
		fprintf(stderr, "trace-syscalls: %d step(s) misbehaved\n", failures);
	return failures ? 1 : 0;
}
