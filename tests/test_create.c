// SPDX-License-Identifier: MIT
/*
 * test_create.c - creating and destroying: invalid configurations (the
 * kernel's create_guest_memfd_invalid_sizes and flags cases), lazy
 * allocation, THP availability and mappings, destroy with pins.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"
#include "sysfs.h"

#define SHMEM_ENABLED "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define PMD_SHMEM_ENABLED "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled"

static int create(uint64_t size, uint32_t backing, uint32_t flags, int sig)
{
	struct gmem_config cfg = { .size = size, .backing = backing, .flags = flags, .fault_signal = sig };
	struct gmem *g = (struct gmem *)1;
	int err = gmem_create(&cfg, &g);

	if (!err)
		gmem_destroy(g);
	else if (g != (struct gmem *)1)
		return -1000; /* an error must leave *out alone */
	return err;
}

TEST(create_invalid_sizes)
{
	const uint64_t bad[] = { 0, 1, env->unit - 1, env->unit + PS / 2, env->unit + PS * (env->unit > PS),
				 (1ULL << 46) + env->unit, UINT64_MAX - PS + 1 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bad[i] == env->unit)
			continue;
		CHECK_EQ(create(bad[i], env->backing, 0, env->sig), -EINVAL);
	}
	if (create(env->unit, env->backing, 0, env->sig) == -EOPNOTSUPP)
		SKIP("shmem huge pages unavailable");
	CHECK_OK(create(env->unit, env->backing, 0, env->sig));
	CHECK_OK(create(3 * env->unit, env->backing, 0, env->sig));
}

TEST(create_invalid_flags)
{
	struct gmem_config cfg = tg_config(env, env->unit, 0, 0);
	struct gmem *g = NULL;

	for (unsigned int bit = 2; bit < 32; bit++)
		CHECK_EQ(create(env->unit, env->backing, 1u << bit, env->sig), -EINVAL);
	/* fresh pages need 4 KiB backing pages */
	if (env->backing != GMEM_BACKING_SHMEM)
		CHECK_EQ(create(env->unit, env->backing, GMEM_F_FRESH_PRIVATE, env->sig), -EINVAL);
	CHECK_EQ(create(env->unit, 2, 0, env->sig), -EINVAL);
	CHECK_EQ(create(env->unit, UINT32_MAX, 0, env->sig), -EINVAL);
	CHECK_EQ(create(env->unit, env->backing, 0, SIGKILL), -EINVAL);
	CHECK_EQ(create(env->unit, env->backing, 0, -1), -EINVAL);
	for (size_t i = 0; i < 6; i++) {
		cfg.reserved[i] = 1;
		CHECK_EQ(gmem_create(&cfg, &g), -EINVAL);
		cfg.reserved[i] = 0;
	}
	CHECK(g == NULL);
	CHECK_EQ(gmem_create(NULL, &g), -EINVAL);
	CHECK_EQ(gmem_create(&cfg, NULL), -EINVAL);
	CHECK_OK(gmem_destroy(NULL));
}

TEST(create_accessors)
{
	struct gmem *g = tg_create(env, 4 * env->unit, 0, 0);
	struct gmem_stats st;
	void *a, *b;

	CHECK_EQ(gmem_size(g), 4 * env->unit);
	CHECK_EQ(gmem_page_size(g), GMEM_PAGE_SIZE);
	CHECK_EQ(gmem_size(NULL), 0);
	CHECK_OK(gmem_guest_map(g, &a));
	CHECK_OK(gmem_guest_map(g, &b));
	CHECK(a == b && a != NULL);
	CHECK_EQ((uintptr_t)a % env->unit, 0);
	CHECK_EQ(gmem_guest_map(g, NULL), -EINVAL);
	CHECK_EQ(gmem_guest_map(NULL, &a), -EINVAL);
	gmem_get_stats(g, &st);
	CHECK_EQ(st.conversions + st.host_faults + st.pins_active, 0);
	gmem_get_stats(NULL, &st);
	CHECK_EQ(st.conversions, 0);
	gmem_get_stats(g, NULL);
	CHECK_OK(gmem_destroy(g));
}

static long long status_kb(const char *key)
{
	char line[256];
	long long kb = -1;
	FILE *f = fopen("/proc/self/status", "re");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key)))
			kb = atoll(line + strlen(key) + 1);
	if (f)
		fclose(f);
	return kb;
}

#if defined(__SANITIZE_THREAD__)
#define TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN 1
#endif
#endif
#ifdef TSAN
#define LAZY_SIZE (1ULL << 37) /* ThreadSanitizer's layout has no room for two 1 TiB mappings */
#else
#define LAZY_SIZE (1ULL << 40)
#endif

/* A 1 TiB object costs no memory until touched, and little with 10,000 private runs. */
TEST(create_is_lazy)
{
	size_t heap0 = mallinfo2().uordblks;
	long long rss0 = status_kb("VmRSS");
	struct gmem *g = tg_create(env, LAZY_SIZE, 0, 0);
	char *v = tg_view(g, 0);
	size_t heap;

	CHECK(status_kb("VmRSS") - rss0 < 4096);
	CHECK(mallinfo2().uordblks - heap0 < 64 * 1024);
	for (uint64_t i = 0; i < 10000; i++) {
		uint64_t off = i * (LAZY_SIZE / 10000) / PS * PS;

		CHECK_OK(gmem_convert(g, off, PS, GMEM_PRIVATE, 0, NULL));
	}
	heap = mallinfo2().uordblks - heap0;
	CHECK(heap < 1024 * 1024);
	fill_page(v + LAZY_SIZE / 2, 0, 1); /* one touch maps and allocates little */
	CHECK(status_kb("VmRSS") - rss0 < 16384);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
	CHECK(mallinfo2().uordblks - heap0 < 16 * 1024);
}

/* shmem_enabled=never: THP backing is refused, not silently downgraded. */
TEST_ONCE(create_thp_unsupported)
{
	struct gmem_config cfg = { .size = 2 * MiB, .backing = GMEM_BACKING_THP };
	struct gmem *g = NULL;

	if (test_write_file(SHMEM_ENABLED, "never"))
		SKIP("cannot set %s (not root?)", SHMEM_ENABLED);
	/* Linux 6.11+: make the per-size control defer to the global one */
	test_write_file(PMD_SHMEM_ENABLED, "inherit");
	CHECK_EQ(gmem_create(&cfg, &g), -EOPNOTSUPP);
	CHECK(g == NULL);
	CHECK_OK(test_write_file(SHMEM_ENABLED, "deny"));
	CHECK_EQ(gmem_create(&cfg, &g), -EOPNOTSUPP);
	CHECK_OK(test_write_file(SHMEM_ENABLED, "advise"));
	CHECK_OK(gmem_create(&cfg, &g));
	CHECK_OK(gmem_destroy(g));
}

/* kB of the guest mapping mapped with PMDs, from /proc/self/smaps. */
static long long pmd_mapped_kb(void *addr)
{
	char line[256], want[32];
	long long kb = -1;
	bool in = false;
	FILE *f = fopen("/proc/self/smaps", "re");

	snprintf(want, sizeof(want), "%lx-", (unsigned long)addr);
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, want, strlen(want)))
			in = true;
		else if (in && (!strncmp(line, "ShmemPmdMapped:", 15) || !strncmp(line, "FilePmdMapped:", 14)))
			kb = (kb < 0 ? 0 : kb) + atoll(strchr(line, ':') + 1);
		else if (in && !strncmp(line, "VmFlags:", 8))
			break;
	}
	if (f)
		fclose(f);
	return kb;
}

/* THP: the guest mapping uses huge pages; a 4 KiB conversion leaves them whole. */
TEST_OPTS(guest_mapping_huge_pages, .skip = (B_ANY & ~B_THP) | S_ANY,
	  .why = "huge pages in the guest mapping: THP backing only")
{
	struct gmem *g = tg_create(env, 4 * MiB, 0, 0);
	char *guest, *v;
	void *gp;

	CHECK_OK(gmem_guest_map(g, &gp));
	guest = gp;
	v = tg_view(g, 0);
	fill_page(v + 5 * PS, 5, 1); /* the host's first touch allocates a huge page */
	guest[0] = 1;
	guest[2 * MiB] = 1;
	CHECK_EQ(pmd_mapped_kb(guest), 4096);
	CHECK_OK(gmem_convert(g, 5 * PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_EQ(touch(v + 5 * PS, false, NULL, NULL), env->sig);
	CHECK(page_has(guest + 5 * PS, 5, 1));
	CHECK_EQ(pmd_mapped_kb(guest), 4096);
	CHECK_OK(gmem_convert(g, 5 * PS, PS, GMEM_SHARED, 0, NULL));
	CHECK_EQ(pmd_mapped_kb(guest), 4096);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

TEST(destroy_refused_with_pins)
{
	struct gmem *g = tg_create(env, 2 * PS, 0, 0);
	char *v = tg_view(g, 0);

	CHECK_OK(gmem_pin(g, PS, PS, 0));
	CHECK_EQ(gmem_destroy(g), -EBUSY);
	fill_page(v, 0, 1); /* nothing was freed */
	CHECK_OK(gmem_unpin(g, PS, PS, 0));
	CHECK_OK(gmem_destroy(g));
}

TEST(create_many_objects)
{
	struct gmem *g[16];

	for (int i = 0; i < 16; i++) {
		char *v;

		g[i] = tg_create(env, env->unit, i % 2 ? GMEM_F_INIT_PRIVATE : 0, 0);
		v = tg_view(g[i], 0);
		CHECK_EQ(touch(v, true, NULL, NULL), i % 2 ? env->sig : 0);
	}
	for (int i = 0; i < 16; i++)
		CHECK_OK(gmem_destroy(g[i]));
}
