// SPDX-License-Identifier: MIT
/*
 * touch.c - touching memory that may answer with a signal.
 *
 * A touch of a private page raises SIGBUS or SIGSEGV in the touching
 * thread; tests, the fuzzer and the soak run such touches under a guard
 * that turns the signal into a return value with its siginfo.
 */
#define _GNU_SOURCE
#include "touch.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <unistd.h>

/* volatile: the stores around the access must stay where they are */
static __thread sigjmp_buf *volatile touch_jmp;
static __thread siginfo_t touch_si;

static struct sigaction prev_bus, prev_segv;

static void touch_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!touch_jmp) {
		char msg[96];
		int n = snprintf(msg, sizeof(msg), "  unexpected signal %d (code %d) at %p\n", sig,
				 si->si_code, si->si_addr);

		(void)!write(2, msg, (size_t)n);
		/* not ours: whoever handled it before (a sanitizer, libFuzzer, the
		 * default) gets it when the access runs again */
		sigaction(sig, sig == SIGBUS ? &prev_bus : &prev_segv, NULL);
		return;
	}
	touch_si = *si;
	siglongjmp(*touch_jmp, sig);
}

static void install(void)
{
	struct sigaction sa = { .sa_sigaction = touch_handler, .sa_flags = SA_SIGINFO };

	sigaction(SIGBUS, &sa, &prev_bus);
	sigaction(SIGSEGV, &sa, &prev_segv);
}

static void touch_install(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, install);
}

/* Run fn(arg); 0 if it completed, else the signal that stopped it (info in *si). */
static int guarded(void (*fn)(void *arg), void *arg, siginfo_t *si)
{
	sigjmp_buf jb;
	int sig;

	touch_install();
	sig = sigsetjmp(jb, 1);
	if (sig == 0) {
		touch_jmp = &jb;
		fn(arg);
	} else if (si) {
		*si = touch_si;
	}
	touch_jmp = NULL;
	return sig;
}

struct access {
	volatile char *p;
	bool write;
	uint8_t *v;
	char *dst;
	size_t len;
};

static void do_copy(void *arg)
{
	struct access *a = arg;

	for (size_t i = 0; i < a->len; i++)
		a->dst[i] = a->p[i];
}

static void do_touch(void *arg)
{
	struct access *a = arg;

	if (a->write)
		*a->p = (char)(a->v ? *a->v : 0);
	else if (a->v)
		*a->v = (uint8_t)*a->p;
	else
		(void)*a->p;
}

static void do_fill(void *arg)
{
	struct access *a = arg;

	for (size_t i = 0; i < a->len / 8; i++)
		((volatile uint64_t *)a->p)[i] = *(const uint64_t *)a->dst;
}

int touch_fill(volatile char *dst, uint64_t word, size_t len)
{
	return touch_fill_si(dst, word, len, NULL);
}

int touch_fill_si(volatile char *dst, uint64_t word, size_t len, siginfo_t *si)
{
	struct access a = { .p = dst, .dst = (char *)&word, .len = len };

	return guarded(do_fill, &a, si);
}

int touch_copy(void *dst, const volatile char *src, size_t len)
{
	struct access a = { .p = (volatile char *)src, .dst = dst, .len = len };

	return guarded(do_copy, &a, NULL);
}

int touch(volatile char *p, bool write, uint8_t *v, siginfo_t *si)
{
	struct access a = { .p = p, .write = write, .v = v };

	return guarded(do_touch, &a, si);
}

