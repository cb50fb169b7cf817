/* SPDX-License-Identifier: MIT */
/*
 * harness.h - gmem's test harness: every case against every backing type.
 *
 * A TEST() case runs once per backing type, named "<case> on <backing>" as
 * the kernel's userfaultfd selftests do, each in a forked child with a
 * deadline so that a crash or a hang fails that case alone.  A case passes
 * by returning, fails through CHECK*(), and skips with SKIP("why").
 * TEST_ONCE() cases do not depend on the backing and run once.
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

struct env {
	uint32_t backing;
	const char *name; /* "shmem", "thp" */
	uint64_t unit;    /* the backing's page: sizes are multiples of it */
};

typedef void (*test_fn)(const struct env *e);
void harness_register(const char *name, test_fn fn, bool once, unsigned int timeout_s);

#define TEST_FULL(fn, once, timeout)                                                 \
	static void fn(const struct env *env);                                         \
	__attribute__((constructor)) static void register_##fn(void)               \
	{                                                                            \
		harness_register(#fn, fn, once, timeout);                            \
	}                                                                            \
	static void fn(__attribute__((unused)) const struct env *env)
#define TEST(fn) TEST_FULL(fn, false, 60)
#define TEST_ONCE(fn) TEST_FULL(fn, true, 60)

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

/* A gmem of at least `min` bytes (rounded up to the backing's unit); fails the case on error. */
struct gmem *tg_create(const struct env *e, uint64_t min, uint32_t flags, int fault_signal);
/* A view of the whole object. */
char *tg_view(struct gmem *g, unsigned int flags);

/* Byte i of a page's fill pattern: distinct per page and seed. */
static inline uint8_t pattern(uint64_t page, uint8_t seed, size_t i)
{
	return (uint8_t)(page * 131 + seed * 7 + i * 3 + 1);
}
void fill_page(char *p, uint64_t page, uint8_t seed);
bool page_has(const char *p, uint64_t page, uint8_t seed);
bool page_zero(const char *p);


#endif /* GMEM_TEST_HARNESS_H */
