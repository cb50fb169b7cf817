// SPDX-License-Identifier: MIT
/*
 * test_fault.c - host touches of private memory, as the kernel's
 * guest_memfd test_fault_private: a clean signal at the exact address,
 * under either policy, for resident, never-touched and discarded pages,
 * counted, and never sticky.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "harness.h"

TEST_OPTS(fault_private, .subset = B_HUGETLB_1G)
{
	struct gmem *g = tg_create(env, 8 * PS, 0, 0);
	char *v = tg_view(g, 0);
	struct gmem_stats st;
	siginfo_t si;
	uint8_t b = 0x5a;

	/* page 1 resident, page 2 never touched, page 3 discarded */
	fill_page(v + PS, 1, 1);
	fill_page(v + 3 * PS, 3, 3);
	CHECK_OK(gmem_discard(g, 3 * PS, PS));
	CHECK_OK(gmem_convert(g, PS, 3 * PS, GMEM_PRIVATE, 0, NULL));

	for (uint64_t p = 1; p <= 3; p++) {
		for (int wr = 0; wr < 2; wr++) {
			volatile char *a = v + p * PS + 100 * (uint64_t)(wr + 1);

			memset(&si, 0, sizeof(si));
			CHECK_EQ(touch(a, wr, &b, &si), env->sig);
			CHECK(env_refusal(env, &si, false));
			CHECK(si.si_addr == (void *)a);
		}
	}
	if (env_hugetlb(env)) {
		/* a shared piece of the huge page: refused with it, at its own address */
		volatile char *a = v + 5 * PS + 9;

		memset(&si, 0, sizeof(si));
		CHECK_EQ(touch(a, false, NULL, &si), env->sig);
		CHECK(env_refusal(env, &si, false));
		CHECK(si.si_addr == (void *)a);
	}
	gmem_get_stats(g, &st);
	/* the kernel refuses repeats by itself: once a page, or once the huge page */
	CHECK_EQ(st.host_faults_denied, env_hugetlb(env) ? 1 : 3);
	CHECK_OK(gmem_audit(g));

	/* not sticky: shared again, each page is touchable and in place */
	CHECK_OK(gmem_convert(g, PS, 3 * PS, GMEM_SHARED, 0, NULL));
	CHECK(page_has(v + PS, 1, 1));
	CHECK(page_zero(v + 2 * PS));
	CHECK(page_zero(v + 3 * PS));
	CHECK_OK(touch(v + 2 * PS, true, &b, NULL));
	CHECK_EQ((uint8_t)v[2 * PS], 0x5a);
	CHECK_OK(gmem_destroy(g));
}

/* The default policy, 0, is SIGBUS. */
TEST_OPTS(fault_private_default_signal, .skip = B_ANY | S_SIGSEGV,
	  .why = "creates with fault_signal 0, the library's default, whatever the environment's")
{
	struct gmem_config cfg = tg_config(env, PS, GMEM_F_INIT_PRIVATE, 0);
	struct gmem *g;
	siginfo_t si;
	char *v;

	cfg.fault_signal = 0;
	CHECK_OK(gmem_create(&cfg, &g));
	v = tg_view(g, 0);

	CHECK_EQ(touch(v, false, NULL, &si), SIGBUS);
	CHECK(sigbus_refusal(si.si_code));
	CHECK_OK(gmem_destroy(g));
}

/* Denial repeats after every re-privatization, in every view. */
TEST(fault_denied_again_after_round_trip)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	char *v1 = tg_view(g, 0), *v2 = tg_view(g, 0);
	struct gmem_stats st;

	for (int round = 0; round < 5; round++) {
		CHECK_OK(gmem_convert(g, 0, PS, GMEM_PRIVATE, 0, NULL));
		CHECK_EQ(touch(v1, false, NULL, NULL), env->sig);
		CHECK_EQ(touch(v2, true, NULL, NULL), env->sig);
		CHECK_OK(gmem_convert(g, 0, PS, GMEM_SHARED, 0, NULL));
		CHECK_OK(touch(v1, true, NULL, NULL));
		CHECK_OK(touch(v2, false, NULL, NULL));
	}
	gmem_get_stats(g, &st);
	CHECK_EQ(st.host_faults_denied, 10);
	CHECK(st.host_faults >= 10);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/* A shared page is coherent between the guest mapping and every view. */
TEST(shared_pages_coherent)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	char *v1 = tg_view(g, 0), *v2 = tg_view(g, 0);
	void *guest;

	CHECK_OK(gmem_guest_map(g, &guest));
	fill_page(v1 + PS, 1, 9);
	CHECK(page_has(v2 + PS, 1, 9));
	CHECK(page_has((char *)guest + PS, 1, 9));
	fill_page((char *)guest + 2 * PS, 2, 4);
	CHECK(page_has(v1 + 2 * PS, 2, 4));
	CHECK_OK(gmem_destroy(g));
}

/* In-kernel accesses to a private page fail with EFAULT instead of a signal. */
TEST(fault_private_in_kernel_access)
{
	struct gmem *g = tg_create(env, 2 * PS, 0, 0);
	char *v = tg_view(g, 0);
	struct iovec iov = { .iov_base = v, .iov_len = PS };
	int fds[2];

	fill_page(v, 0, 1);
	CHECK_OK(gmem_convert(g, 0, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(pipe(fds));
	CHECK_EQ(write(fds[1], v, 64), -1); /* the kernel reads the view */
	CHECK_EQ(errno, EFAULT);
	CHECK_EQ(write(fds[1], "x", 1), 1);
	CHECK_EQ(read(fds[0], v, 1), -1); /* the kernel writes the view */
	CHECK_EQ(errno, EFAULT);
	CHECK_EQ(vmsplice(fds[1], &iov, 1, 0), -1);
	close(fds[0]);
	close(fds[1]);
	CHECK_OK(gmem_convert(g, 0, PS, GMEM_SHARED, 0, NULL));
	CHECK(page_has(v, 0, 1));
	CHECK_OK(gmem_destroy(g));
}

/*
 * A shared neighbour of a private page maps; the private one never does.
 * On hugetlbfs the pages are huge ones, each with one private 4 KiB piece
 * or none, and a huge page with one is refused whole.
 */
TEST(fault_around_stops_at_private)
{
	const bool huge = env_hugetlb(env);
	const uint64_t step = env_view_unit(env), n = huge ? 4 : 64;
	struct gmem *g = tg_create(env, n * step, 0, 0);
	char *v = tg_view(g, 0);

	for (uint64_t p = 1; p < gmem_size(g) / step; p += 2)
		CHECK_OK(gmem_convert(g, p * step + (huge ? 3 * PS : 0), PS, GMEM_PRIVATE, 0, NULL));
	for (uint64_t p = 0; p < gmem_size(g) / step; p += 2)
		CHECK_OK(touch(v + p * step, true, NULL, NULL));
	CHECK_OK(gmem_audit(g));
	for (uint64_t p = 1; p < n; p += 2) {
		CHECK_EQ(touch(v + p * step, false, NULL, NULL), env->sig);
		if (huge)
			CHECK_EQ(touch(v + p * step + 3 * PS, false, NULL, NULL), env->sig);
	}
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

static int count_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, c;

	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/*
 * 100,000 refusals under the SIGSEGV policy: each a SIGSEGV at the exact
 * address, with no mapping of its own.  PROT_NONE per refused page split a
 * VMA each; past vm.max_map_count (~65,530) refusals turned into SIGBUS
 * and the process could no longer create mappings (malloc, threads).
 */
TEST_OPTS(fault_sigsegv_100k_refusals, .timeout_s = 120, .skip = B_ANY | S_SIGBUS,
	  .why = "the SIGSEGV policy's marks; a poison marker never took a mapping",
	  .skip2 = B_HUGETLB | S_SIGSEGV,
	  .why2 = "hugetlbfs takes no guard markers: each refused huge page may cost mappings (gmem.h)")
{
	const uint64_t n = 100000;
	struct gmem *g = tg_create(env, n * PS, GMEM_F_INIT_PRIVATE, SIGSEGV);
	char *v = tg_view(g, 0);
	struct gmem_stats st;
	siginfo_t si;
	int maps0;
	void *p;

	/* the first refusal gives the fault thread its malloc arena (mappings that stay) */
	CHECK_EQ(touch(v, false, NULL, NULL), SIGSEGV);
	maps0 = count_mappings();
	for (uint64_t i = 1; i < n; i++) {
		char *a = v + i * PS + (i % 64) * 8;

		if (touch(a, i & 1, &(uint8_t){ 1 }, &si) != SIGSEGV || si.si_code != SEGV_MAPERR ||
		    si.si_addr != a)
			test_fail(__FILE__, __LINE__, "refusal %llu: signal %d code %d at %p, not %p",
				  (unsigned long long)i, si.si_signo, si.si_code, si.si_addr, a);
	}
	CHECK_EQ(count_mappings(), maps0);
	gmem_get_stats(g, &st);
	CHECK_EQ(st.host_faults_denied, n);
	p = malloc(1 << 20); /* a fresh mapping still works */
	CHECK(p);
	free(p);
	CHECK_OK(gmem_audit(g));
	/* every mark goes with a re-share */
	CHECK_OK(gmem_convert(g, 0, n * PS, GMEM_SHARED, 0, NULL));
	for (uint64_t i = 0; i < n; i += 997)
		CHECK_OK(touch(v + i * PS, true, &(uint8_t){ 2 }, NULL));
	CHECK_OK(gmem_destroy(g));
}
