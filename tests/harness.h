/* SPDX-License-Identifier: MIT */
/*
 * harness.h - gmem's test harness: every case on every backing under every
 * fault signal.
 *
 * A TEST() case runs once per environment - a backing (harness.c's table)
 * and the signal its objects refuse host touches with - named
 * "<case> on <backing>/<signal>" ("fault_private on shmem/sigbus") as the
 * kernel's userfaultfd selftests name theirs, each in a forked child with a
 * deadline so that a crash or a hang fails that case alone.  A case passes
 * by returning, fails through CHECK*(), and skips with SKIP("why").
 *
 * A case that does not apply to some environments says so when it is
 * declared, with a mask and a reason (TEST_OPTS(.skip, .why)); the harness
 * reports each of those as "SKIP <case> on <env>: <why>", never silently,
 * and the same for every case on a backing the system cannot provide.
 * TEST_ONCE() cases depend on neither backing nor signal and run once.
 */
#ifndef GMEM_TEST_HARNESS_H
#define GMEM_TEST_HARNESS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gmem.h"
#include "touch.h"

#define PS GMEM_PAGE_SIZE
#define MiB (1ULL << 20)

/*
 * Environment bits, for skip masks.  A mask holds backing bits and signal
 * bits; an environment is excluded when both its backing's bit and its
 * signal's bit are in the mask: B_ANY | S_SIGBUS is every backing under
 * SIGBUS, B_THP | S_ANY is THP under either signal.  A backing added to
 * harness.c's table takes the next B_ bit.
 */
#define B_SHMEM (1u << 0)
#define B_THP (1u << 1)
#define B_HUGETLB_2M (1u << 2)
#define B_HUGETLB_1G (1u << 3)
#define B_HUGETLB (B_HUGETLB_2M | B_HUGETLB_1G)
#define B_ANY 0xffffu
#define S_SIGBUS (1u << 16)
#define S_SIGSEGV (1u << 17)
#define S_ANY 0xff0000u
/* Not a set: each backing runs under one signal, SIGBUS and SIGSEGV in turn
 * down the table (shmem/sigbus, thp/sigsegv, ...) - both signals and every
 * backing, for a case too slow to run on all of them. */
#define ONE_SIGNAL_EACH (1u << 31)

struct env {
	uint32_t backing;         /* GMEM_BACKING_* */
	uint64_t unit;            /* the backing's page: sizes are multiples of it */
	int sig;                  /* the signal objects refuse host touches with */
	const char *name;         /* "shmem/sigbus" */
	const char *backing_name; /* "shmem" */
	unsigned int bits;        /* its backing's B_ bit | its signal's S_ bit */
};

struct test_opts {
	bool once;              /* one run, in the first environment: TEST_ONCE */
	unsigned int timeout_s; /* 0: 60 */
	unsigned int skip;      /* environments the case does not apply to (above) */
	const char *why;        /* ... and why: required with skip */
	unsigned int skip2;     /* more of them, for another reason ... */
	const char *why2;       /* ... this one */
	/*
	 * B_ bits of the backings that run a subset of the cases (hugetlb-1g:
	 * an object is at least 1 GiB) which this case belongs to; the others
	 * are reported SKIP there with the backing's reason (harness.c).
	 */
	unsigned int subset;
};

typedef void (*test_fn)(const struct env *e);
typedef void (*test_row_fn)(const struct env *e, const void *row);
void harness_register(const char *name, test_fn fn, const struct test_opts *o);
/* One case per row of a table: fn(env, row), named `name` (kept, not copied). */
void harness_register_row(const char *name, test_row_fn fn, const void *row,
			  const struct test_opts *o);

/* TEST_OPTS(fn, .timeout_s = 120, .skip = B_ANY | S_SIGBUS, .why = "...") */
#define TEST_OPTS(fn, ...)                                                           \
	static void fn(const struct env *env);                                       \
	__attribute__((constructor)) static void register_##fn(void)               \
	{                                                                            \
		harness_register(#fn, fn, &(struct test_opts){ __VA_ARGS__ });       \
	}                                                                            \
	static void fn(__attribute__((unused)) const struct env *env)
#define TEST(fn) TEST_OPTS(fn, .timeout_s = 0)
#define TEST_ONCE(fn) TEST_OPTS(fn, .once = true)

__attribute__((noreturn, format(printf, 3, 4))) void test_fail(const char *file, int line,
							      const char *fmt, ...);
__attribute__((noreturn, format(printf, 1, 2))) void test_skip(const char *fmt, ...);

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond))                                                         \
			test_fail(__FILE__, __LINE__, "%s", #cond);                  \
	} while (0)
#define CHECK_EQ(a, b)                                                               \
	do {                                                                         \
		long long a_ = (long long)(a), b_ = (long long)(b);                  \
		if (a_ != b_)                                                        \
			test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a,  \
				  #b, a_, b_);                                       \
	} while (0)
#define CHECK_OK(expr) CHECK_EQ(expr, 0)
#define SKIP(...) test_skip(__VA_ARGS__)

/*
 * A config for a gmem of at least `min` bytes (rounded up to the backing's
 * unit) on e's backing, refusing with e's signal - or with fault_signal,
 * when a case asks for its own (0: e's).
 */
struct gmem_config tg_config(const struct env *e, uint64_t min, uint32_t flags, int fault_signal);
/* That gmem; fails the case on error (skips it if the backing is unavailable). */
struct gmem *tg_create(const struct env *e, uint64_t min, uint32_t flags, int fault_signal);
/*
 * The descriptor of the process's (first) userfaultfd - the object's, in a
 * case with one object - as /proc/self/fd names it; -1 if there is none.
 */
int test_uffd_fd(void);

/* A view of the whole object. */
char *tg_view(struct gmem *g, unsigned int flags);

/*
 * len bytes of address space reserved (PROT_NONE) at an address aligned to
 * e's view unit, for a view to be moved to (mremap() moves a hugetlbfs
 * mapping only to an address aligned to its page); fails the case if none.
 */
char *tg_reserve(const struct env *e, uint64_t len);

/* Whether e's backing is hugetlbfs (2 MiB or 1 GiB pages). */
static inline bool env_hugetlb(const struct env *e)
{
	return e->backing == GMEM_BACKING_HUGETLB_2M || e->backing == GMEM_BACKING_HUGETLB_1G;
}

/*
 * The smallest range a view may cover, and so the distance between two
 * pages a case wants mapped or refused apart: a 4 KiB page, or on
 * hugetlbfs a huge page, which views cover, map and refuse whole.
 */
static inline uint64_t env_view_unit(const struct env *e)
{
	return env_hugetlb(e) ? e->unit : PS;
}

/*
 * Whether a pin at byte offset `pinned` refuses converting the page at
 * `conv` to private (a different page, else it always does): on hugetlbfs
 * when both are in one huge page.
 */
static inline bool env_pin_blocks(const struct env *e, uint64_t pinned, uint64_t conv)
{
	return env_hugetlb(e) ? pinned / e->unit == conv / e->unit : pinned / PS == conv / PS;
}

/*
 * Whether si is how a refused touch arrives in environment e: e's signal,
 * with its code (refusal_code(), touch.h).  locked: in a view the process
 * has mlock()ed.  hugetlbfs takes no guard markers, locked or not.
 */
static inline bool env_refusal(const struct env *e, const siginfo_t *si, bool locked)
{
	return si->si_signo == e->sig && refusal_code(e->sig, si->si_code, locked || env_hugetlb(e));
}

/* Byte i of a page's fill pattern: distinct per page and seed. */
static inline uint8_t pattern(uint64_t page, uint8_t seed, size_t i)
{
	return (uint8_t)(page * 131 + seed * 7 + i * 3 + 1);
}
void fill_page(char *p, uint64_t page, uint8_t seed);
bool page_has(const char *p, uint64_t page, uint8_t seed);
bool page_zero(const char *p);


#endif /* GMEM_TEST_HARNESS_H */
