// SPDX-License-Identifier: MIT
/*
 * test_mlock.c - locked memory: what a VMM's mem-lock does (mlockall), and
 * mlock() of a view, must neither let a view map a private page nor stop
 * conversions from unmapping it.
 *
 * mlockall() without MCL_ONFAULT populates every mapping the process has
 * or makes, including a sanitizer's terabytes of shadow: those cases skip
 * under ASan and TSan.  Locking goes by system call (memlock.h): the
 * sanitizers make the C library's versions do nothing.
 *
 * Pages are U apart, the view unit: on hugetlbfs each in a huge page of its
 * own, which a view maps or refuses whole (and mlock() takes whole).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "harness.h"
#include "memlock.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

static const char SECRET[] = "guest secret, never the host's";

#define U env_view_unit(e)

static void lock_all(int flags)
{
#ifdef SANITIZED
	if (!(flags & MCL_ONFAULT))
		SKIP("mlockall() would populate the sanitizer's shadow memory");
#endif
	if (sys_mlockall(flags))
		SKIP("mlockall: %s", strerror(errno));
}

/* A guest secret in private page 1; pages 0 and 2 shared, filled. */
static struct gmem *secret_setup(const struct env *e, char **guest)
{
	struct gmem *g = tg_create(e, 4 * U, GMEM_F_INIT_PRIVATE, 0);

	CHECK_OK(gmem_guest_map(g, (void **)guest));
	memcpy(*guest + U, SECRET, sizeof(SECRET));
	CHECK_OK(gmem_convert(g, 0, U, GMEM_SHARED, 0, NULL));
	CHECK_OK(gmem_convert(g, 2 * U, U, GMEM_SHARED, 0, NULL));
	fill_page(*guest, 0, 1);
	fill_page(*guest + 2 * U, 2, 1);
	return g;
}

/* The view maps shared pages, refuses the private one, and the audit agrees. */
static void view_keeps_secret(const struct env *e, struct gmem *g, char *v)
{
	char buf[sizeof(SECRET)] = { 0 };
	siginfo_t si;

	CHECK_OK(gmem_audit(g));
	CHECK_EQ(touch_copy(buf, v + U, sizeof(buf)), e->sig);
	CHECK(memcmp(buf, SECRET, sizeof(buf)));
	CHECK_EQ(touch(v + U, false, NULL, &si), e->sig);
	CHECK(si.si_addr == v + U);
	CHECK(page_has(v, 0, 1));
	CHECK(page_has(v + 2 * U, 2, 1));
	CHECK_OK(gmem_audit(g));
}

/*
 * Shared pages touched through a view go private, by each mode, and are
 * unmapped.  (On hugetlbfs page 0's piece goes private and its huge page
 * is refused whole; a deferral under a pin is refused there, and done
 * after the unpin.)
 */
static void conversions_unmap(const struct env *e, struct gmem *g, char *v)
{
	const unsigned int modes[] = { 0, GMEM_CONVERT_WAIT, GMEM_CONVERT_DEFER };
	siginfo_t si;

	for (size_t i = 0; i < 3; i++) {
		CHECK_OK(gmem_convert(g, 0, 3 * U, GMEM_SHARED, 0, NULL));
		CHECK(page_has(v, 0, 1)); /* mapped now */
		CHECK_OK(gmem_convert(g, 0, PS, GMEM_PRIVATE, modes[i], NULL));
		CHECK_EQ(gmem_state(g, 0), GMEM_PRIVATE);
		CHECK_OK(gmem_audit(g));
		CHECK_EQ(touch(v, false, NULL, &si), e->sig);
	}
	/* deferred, completed by the last unpin after the pinned I/O touched it */
	CHECK_OK(gmem_convert(g, 0, PS, GMEM_SHARED, 0, NULL));
	CHECK_OK(gmem_pin(g, 0, PS, 0));
	CHECK_EQ(gmem_convert(g, 0, PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL),
		 env_hugetlb(e) ? -EAGAIN : -EINPROGRESS);
	CHECK(page_has(v, 0, 1));
	CHECK_OK(gmem_unpin(g, 0, PS, 0));
	if (env_hugetlb(e))
		CHECK_OK(gmem_convert(g, 0, PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL));
	CHECK_EQ(gmem_state(g, 0), GMEM_PRIVATE);
	CHECK_OK(gmem_audit(g));
	CHECK_EQ(touch(v, false, NULL, &si), e->sig);
}

/*
 * mem-lock as VMMs do it: everything locked, now and later.  A view mapped
 * afterwards must not be populated before gmem decides each page (it was:
 * the secret read back and the audit failed), and conversions of locked
 * pages must unmap them (they returned 0 and left the page mapped).
 */
TEST(mlockall_view_never_maps_private)
{
	struct gmem *g;
	char *guest, *v;

	lock_all(MCL_CURRENT | MCL_FUTURE);
	g = secret_setup(env, &guest);
	v = tg_view(g, 0);
	view_keeps_secret(env, g, v);
	conversions_unmap(env, g, v);
	CHECK_OK(gmem_destroy(g));
	sys_munlockall();
}

/* Locked on fault: conversions must still unmap (they failed with -EIO). */
TEST(mlockall_onfault_conversions_unmap)
{
	struct gmem *g;
	char *guest, *v;

	lock_all(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT);
	g = secret_setup(env, &guest);
	v = tg_view(g, 0);
	view_keeps_secret(env, g, v);
	conversions_unmap(env, g, v);
	CHECK_OK(gmem_destroy(g));
	sys_munlockall();
}

/* mlock() of a view faults its shared pages in and refuses the private one. */
TEST(mlock_view_range)
{
	const struct env *e = env;
	char *guest, *v;
	struct gmem *g = secret_setup(env, &guest);

	v = tg_view(g, 0);
	CHECK(sys_mlock(v, 3 * U) != 0); /* page 1 cannot be brought in */
	CHECK_OK(sys_mlock(v, U));
	CHECK_OK(sys_mlock(v + 2 * U, U));
	view_keeps_secret(env, g, v);
	conversions_unmap(env, g, v);
	CHECK_OK(sys_munlock(v, 3 * U));
	CHECK_OK(gmem_destroy(g));
}

/*
 * A deferred conversion whose pinned I/O's page gets locked before the last
 * unpin: the completion must unmap it (it committed PRIVATE over a failed
 * zap, and the host kept reading the page).
 */
TEST_OPTS(deferred_completion_unmaps_locked_page, .skip = B_HUGETLB | S_ANY,
	  .why = "deferred transits: hugetlbfs refuses conversions under pins, whatever the "
		 "flags (gmem.h)")
{
	struct gmem *g = tg_create(env, 2 * PS, 0, 0);
	char *v = tg_view(g, 0), *guest;
	siginfo_t si;

	CHECK_OK(gmem_guest_map(g, (void **)&guest));
	fill_page(v, 0, 3);
	CHECK_OK(gmem_pin(g, 0, PS, 0));
	CHECK_EQ(gmem_convert(g, 0, PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL), -EINPROGRESS);
	CHECK(page_has(v, 0, 3)); /* the pinned I/O */
	CHECK_OK(sys_mlock(v, PS));
	CHECK_OK(gmem_unpin(g, 0, PS, 0));
	CHECK_EQ(gmem_state(g, 0), GMEM_PRIVATE);
	CHECK_OK(gmem_audit(g));
	memcpy(guest, SECRET, sizeof(SECRET));
	CHECK_EQ(touch(v, false, NULL, &si), env->sig);
	CHECK_OK(gmem_destroy(g));
}

/*
 * Refusals in a locked view, at the exact address, undone by re-sharing.
 * Under the SIGSEGV policy the kernel refuses guard markers there, so a
 * refusal costs the page a mapping of its own (PROT_NONE, SEGV_ACCERR);
 * under SIGBUS a poison marker does, as in any view.  hugetlbfs mappings
 * take no lock, and the kernel populates them despite MLOCK_ONFAULT: the
 * private pages refuse that, and mlock2() fails.
 */
TEST(mlock_view_refusals)
{
	const struct env *e = env;
	struct gmem *g = tg_create(env, 4 * U, GMEM_F_INIT_PRIVATE, 0);
	char *v = tg_view(g, 0);
	siginfo_t si;

	if (env_hugetlb(env))
		CHECK(sys_mlock2(v, 4 * U, MLOCK_ONFAULT) != 0);
	else
		CHECK_OK(sys_mlock2(v, 4 * U, MLOCK_ONFAULT));
	for (int p = 0; p < 4; p++) {
		CHECK_EQ(touch(v + p * U + 8, p & 1, &(uint8_t){ 1 }, &si), env->sig);
		CHECK(env_refusal(env, &si, true));
		CHECK(si.si_addr == v + p * U + 8);
	}
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_convert(g, 0, 4 * U, GMEM_SHARED, 0, NULL));
	for (int p = 0; p < 4; p++)
		fill_page(v + p * U, (uint64_t)p, 4);
	CHECK_OK(gmem_convert(g, U, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_EQ(touch(v + U, false, NULL, &si), env->sig);
	CHECK(page_has(v + 2 * U, 2, 4));
	CHECK_OK(gmem_audit(g));
	CHECK_OK(sys_munlock(v, 4 * U));
	CHECK_OK(gmem_destroy(g));
}
