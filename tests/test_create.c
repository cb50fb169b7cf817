// SPDX-License-Identifier: MIT
/*
 * test_create.c - creating and destroying: invalid configurations (the
 * kernel's create_guest_memfd_invalid_sizes and flags cases), lazy
 * allocation, THP availability and mappings, destroy with pins, the
 * version, and where the userfaultfd comes from in a jailed process: a
 * seccomp filter that hides the system call, no CAP_SYS_PTRACE under
 * vm.unprivileged_userfaultfd=0, /dev/userfaultfd missing or refused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <malloc.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* A size of whole backing pages is valid, and only that: on every page size. */
TEST_OPTS(create_invalid_sizes, .subset = B_HUGETLB_1G)
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
	CHECK_OK(create(2 * env->unit, env->backing, 0, env->sig));
}

TEST_OPTS(create_invalid_flags, .subset = B_HUGETLB_1G)
{
	struct gmem_config cfg = tg_config(env, env->unit, 0, 0);
	struct gmem *g = NULL;

	for (unsigned int bit = 2; bit < 32; bit++)
		CHECK_EQ(create(env->unit, env->backing, 1u << bit, env->sig), -EINVAL);
	/* fresh pages need 4 KiB backing pages */
	if (env->backing != GMEM_BACKING_SHMEM)
		CHECK_EQ(create(env->unit, env->backing, GMEM_F_FRESH_PRIVATE, env->sig), -EINVAL);
	CHECK_EQ(create(env->unit, GMEM_BACKING_HUGETLB_1G + 1, 0, env->sig), -EINVAL);
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

TEST_OPTS(create_accessors, .subset = B_HUGETLB_1G)
{
	struct gmem *g = tg_create(env, 2 * env->unit, 0, 0);
	struct gmem_stats st;
	void *a, *b;

	CHECK_EQ(gmem_size(g), 2 * env->unit);
	CHECK_EQ(gmem_page_size(g), GMEM_PAGE_SIZE);
	CHECK_EQ(gmem_size(NULL), 0);
	CHECK_OK(gmem_guest_map(g, &a));
	CHECK_OK(gmem_guest_map(g, &b));
	CHECK(a == b && a != NULL);
	CHECK_EQ((uintptr_t)a % env->unit, 0);
	CHECK_EQ(gmem_guest_map(g, NULL), -EINVAL);
	CHECK_EQ(gmem_guest_map(NULL, &a), -EINVAL);
	memset(&st, 0xff, sizeof(st));
	gmem_get_stats(g, &st);
	CHECK_EQ(st.conversions + st.host_faults + st.pins_active, 0);
	for (size_t i = 0; i < sizeof(st.reserved) / sizeof(st.reserved[0]); i++)
		CHECK_EQ(st.reserved[i], 0);
	gmem_get_stats(NULL, &st);
	CHECK_EQ(st.conversions, 0);
	gmem_get_stats(g, NULL);
	CHECK_OK(gmem_destroy(g));
}

/* The library a program runs against says which it is, as the header does. */
TEST_ONCE(create_version)
{
	CHECK_EQ(gmem_version(), GMEM_VERSION);
	CHECK_EQ(GMEM_VERSION >> 16, GMEM_VERSION_MAJOR);
	CHECK_EQ((GMEM_VERSION >> 8) & 0xff, GMEM_VERSION_MINOR);
	CHECK_EQ(GMEM_VERSION & 0xff, GMEM_VERSION_PATCH);
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

/*
 * A 1 TiB object costs no memory until touched, and little with 10,000
 * private runs.  On hugetlbfs creating reserves every page from the pool,
 * which has no terabyte: 8 huge pages then, costing the process no memory
 * until touched either, with a private run in every other 4 KiB page of
 * all but the last, which the touch maps.
 */
TEST(create_is_lazy)
{
	const bool huge = env_hugetlb(env);
	const uint64_t size = huge ? 8 * env->unit : LAZY_SIZE;
	const uint64_t span = huge ? size - env->unit : size; /* where the private runs go */
	const uint64_t runs = huge ? span / PS / 2 : 10000;
	size_t heap0 = mallinfo2().uordblks;
	long long rss0 = status_kb("VmRSS");
	struct gmem *g = tg_create(env, size, 0, 0);
	char *v = tg_view(g, 0);
	size_t heap;

	CHECK(status_kb("VmRSS") - rss0 < 4096);
	CHECK(mallinfo2().uordblks - heap0 < 64 * 1024);
	for (uint64_t i = 0; i < runs; i++) {
		uint64_t off = i * (span / runs) / PS * PS;

		CHECK_OK(gmem_convert(g, off, PS, GMEM_PRIVATE, 0, NULL));
	}
	heap = mallinfo2().uordblks - heap0;
	CHECK(heap < 1024 * 1024);
	fill_page(v + (huge ? span : size / 2), 0, 1); /* one touch maps and allocates little */
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

/* kB of the guest mapping mapped with huge pages (PMDs, or hugetlb's), from /proc/self/smaps. */
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
		else if (in && (!strncmp(line, "ShmemPmdMapped:", 15) || !strncmp(line, "FilePmdMapped:", 14) ||
				!strncmp(line, "Shared_Hugetlb:", 15) || !strncmp(line, "Private_Hugetlb:", 16)))
			kb = (kb < 0 ? 0 : kb) + atoll(strchr(line, ':') + 1);
		else if (in && !strncmp(line, "VmFlags:", 8))
			break;
	}
	if (f)
		fclose(f);
	return kb;
}

/*
 * THP and hugetlbfs: the guest mapping uses huge pages; a 4 KiB conversion
 * leaves them whole.
 */
TEST_OPTS(guest_mapping_huge_pages, .skip = B_SHMEM | S_ANY,
	  .why = "huge pages in the guest mapping: huge backings only", .subset = B_HUGETLB_1G)
{
	struct gmem *g = tg_create(env, 2 * env->unit, 0, 0);
	const long long whole = (long long)(2 * env->unit >> 10);
	char *guest, *v;
	void *gp;

	CHECK_OK(gmem_guest_map(g, &gp));
	guest = gp;
	v = tg_view(g, 0);
	fill_page(v + 5 * PS, 5, 1); /* the host's first touch allocates a huge page */
	guest[0] = 1;
	guest[env->unit] = 1;
	CHECK_EQ(pmd_mapped_kb(guest), whole);
	CHECK_OK(gmem_convert(g, 5 * PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_EQ(touch(v + 5 * PS, false, NULL, NULL), env->sig);
	CHECK(page_has(guest + 5 * PS, 5, 1));
	CHECK_EQ(pmd_mapped_kb(guest), whole);
	CHECK_OK(gmem_convert(g, 5 * PS, PS, GMEM_SHARED, 0, NULL));
	CHECK_EQ(pmd_mapped_kb(guest), whole);
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

/* 16 objects at once (on hugetlb-2m 16 pool pages: hugetlb-1g has not that many). */
/*
 * A child that calls gmem_destroy() - from an atexit() handler, say - must
 * not punch the backing file it shares with its parent, nor wait for
 * threads it does not have: -ECHILD, and the parent's memory as it was.
 * The other calls that would change shared memory refuse too.
 */
TEST(destroy_in_forked_child_refused)
{
	struct gmem *g = tg_create(env, 2 * env->unit, 0, 0);
	char *v = tg_view(g, 0), *guest;
	int status;
	pid_t pid;

	CHECK_OK(gmem_guest_map(g, (void **)&guest));
	fill_page(v, 0, 9);
	fill_page(v + env->unit, 1, 9);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		int bad = 0;
		void *w;

		bad |= gmem_discard(g, 0, PS) != -ECHILD;
		bad |= gmem_convert(g, 0, PS, GMEM_PRIVATE, 0, NULL) != -ECHILD;
		bad |= gmem_view_map(g, 0, env->unit, 0, &w) != -ECHILD;
		bad |= gmem_write(g, 0, "x", 1, NULL) != -ECHILD;
		bad |= gmem_collapse(g, 0, env->unit, NULL) != -ECHILD;
		bad |= gmem_destroy(g) != -ECHILD;
		_exit(bad);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(page_has(v, 0, 9));
	CHECK(page_has(v + env->unit, 1, 9));
	CHECK_EQ(gmem_state(g, 0), GMEM_SHARED);
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

/*
 * Where the userfaultfd comes from.  A jailed VMM may have the system call
 * refused - EPERM under vm.unprivileged_userfaultfd=0 without
 * CAP_SYS_PTRACE, ENOSYS from a seccomp filter - and only /dev/userfaultfd
 * (Linux 6.1) to fall back on, or not even that.  Each setting below runs
 * in a child of its own: filters, dropped capabilities and mount
 * namespaces cannot be undone.
 */
#define UFFD_DEV "/dev/userfaultfd"
#define UNPRIV_UFFD "/proc/sys/vm/unprivileged_userfaultfd"

enum uffd_dev_setting {
	DEV_AS_IS,
	DEV_NULL_OVER, /* /dev/null bound over the node: open works, the ioctl says ENOTTY */
	DEV_MISSING,   /* an empty /dev: ENOENT */
	DEV_NO_ACCESS, /* a mode-0 node and no CAP_DAC_OVERRIDE: EACCES */
};

/* Run fn in a child; its failure fails the case, its skip skips it. */
static void in_child(void (*fn)(int), int arg)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		sysfs_forget(); /* the case restores what it set, not this child */
		fn(arg);
		_exit(0);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
		SKIP("see the reason above");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* userfaultfd(2) answers ENOSYS from now on, as a sandbox's filter makes it. */
static void hide_uffd_syscall(void)
{
#if defined(__x86_64__)
	const unsigned int arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
	const unsigned int arch = AUDIT_ARCH_AARCH64;
#else
	const unsigned int arch = 0;
#endif
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };

	if (!arch)
		SKIP("no seccomp filter written for this architecture");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0))
		SKIP("seccomp filter: %s", strerror(errno));
	errno = 0;
	CHECK(syscall(SYS_userfaultfd, O_CLOEXEC) == -1 && errno == ENOSYS);
}

/* Drop capabilities (CAP_* bits below 32) from every set of this process. */
static void drop_caps(uint32_t caps)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	CHECK_OK(syscall(SYS_capget, &hdr, data));
	data[0].effective &= ~caps;
	data[0].permitted &= ~caps;
	data[0].inheritable &= ~caps;
	CHECK_OK(syscall(SYS_capset, &hdr, data));
}

/* Set /dev/userfaultfd up as `how` says, in a mount namespace of this process's own. */
static void set_uffd_dev(enum uffd_dev_setting how)
{
	struct stat st;

	if (how == DEV_AS_IS)
		return;
	if (stat(UFFD_DEV, &st) || !S_ISCHR(st.st_mode))
		SKIP("no %s (Linux 6.1)", UFFD_DEV);
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		SKIP("mount namespace: %s", strerror(errno));
	if (how == DEV_NULL_OVER) {
		CHECK_OK(mount("/dev/null", UFFD_DEV, NULL, MS_BIND, NULL));
		return;
	}
	CHECK_OK(mount("tmpfs", "/dev", "tmpfs", 0, "mode=755"));
	CHECK_OK(mknod("/dev/null", S_IFCHR | 0666, makedev(1, 3)));
	if (how == DEV_NO_ACCESS) {
		CHECK_OK(mknod(UFFD_DEV, S_IFCHR, st.st_rdev));
		CHECK_OK(chmod(UFFD_DEV, 0));
		drop_caps(1u << CAP_DAC_OVERRIDE | 1u << CAP_DAC_READ_SEARCH);
		CHECK(open(UFFD_DEV, O_RDWR) == -1 && errno == EACCES);
	}
}

/* The library works: a page made private refuses a host touch at its address. */
static void create_convert_refuse(void)
{
	struct gmem_config cfg = { .size = 4 * PS };
	struct gmem *g = NULL;
	siginfo_t si;
	void *v;

	CHECK_OK(gmem_create(&cfg, &g));
	CHECK_OK(gmem_view_map(g, 0, 4 * PS, 0, &v));
	fill_page((char *)v + PS, 1, 3);
	CHECK_OK(gmem_convert(g, PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_EQ(touch((char *)v + PS, false, NULL, &si), SIGBUS);
	CHECK(si.si_addr == (char *)v + PS);
	CHECK_EQ(touch(v, true, NULL, NULL), 0);
	CHECK_OK(gmem_convert(g, PS, PS, GMEM_SHARED, 0, NULL));
	CHECK(page_has((char *)v + PS, 1, 3));
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

static int open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) != -1;
	return n;
}

static long long threads(void)
{
	return status_kb("Threads");
}

/* gmem_create fails with `want`, cleanly: nothing stored, leaked or left running. */
static void create_fails(int want)
{
	struct gmem_config cfg = { .size = 4 * PS };
	struct gmem *g = NULL;
	long long nthreads = threads();
	int fds = open_fds();

	CHECK_EQ(gmem_create(&cfg, &g), want);
	CHECK(g == NULL);
	CHECK_EQ(open_fds(), fds);
	CHECK_EQ(threads(), nthreads);
}

static void seccomp_enosys_child(int how)
{
	set_uffd_dev((enum uffd_dev_setting)how);
	hide_uffd_syscall();
	switch (how) {
	case DEV_AS_IS:
		if (access(UFFD_DEV, R_OK | W_OK))
			SKIP("%s: %s (Linux 6.1)", UFFD_DEV, strerror(errno));
		create_convert_refuse();
		break;
	case DEV_MISSING: /* no userfaultfd at all for this process */
		create_fails(-EOPNOTSUPP);
		break;
	default: /* one there, not for this process */
		create_fails(-EPERM);
		break;
	}
}

/* A seccomp filter answering userfaultfd(2) with ENOSYS: the library uses the device. */
TEST_ONCE(create_with_uffd_syscall_filtered)
{
	in_child(seccomp_enosys_child, DEV_AS_IS);
	in_child(seccomp_enosys_child, DEV_NULL_OVER);
	in_child(seccomp_enosys_child, DEV_MISSING);
	in_child(seccomp_enosys_child, DEV_NO_ACCESS);
}

static void no_ptrace_child(int how)
{
	set_uffd_dev((enum uffd_dev_setting)how);
	drop_caps(1u << CAP_SYS_PTRACE);
	errno = 0;
	CHECK(syscall(SYS_userfaultfd, O_CLOEXEC) == -1 && errno == EPERM);
	if (how == DEV_AS_IS) {
		if (access(UFFD_DEV, R_OK | W_OK))
			SKIP("%s: %s (Linux 6.1)", UFFD_DEV, strerror(errno));
		create_convert_refuse();
	} else {
		create_fails(-EPERM);
	}
}

/*
 * vm.unprivileged_userfaultfd=0 and no CAP_SYS_PTRACE: the system call is
 * refused and /dev/userfaultfd serves; without the device, -EPERM.
 */
TEST_ONCE(create_without_ptrace_uses_dev_userfaultfd)
{
	if (test_write_file(UNPRIV_UFFD, "0"))
		SKIP("cannot set %s (not root?)", UNPRIV_UFFD);
	in_child(no_ptrace_child, DEV_AS_IS);
	in_child(no_ptrace_child, DEV_NULL_OVER);
	in_child(no_ptrace_child, DEV_MISSING);
	in_child(no_ptrace_child, DEV_NO_ACCESS);
}
