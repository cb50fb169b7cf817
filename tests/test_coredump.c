// SPDX-License-Identifier: MIT
/*
 * test_coredump.c - what a core dump of a process holding a gmem keeps:
 * the guest mapping is left out (MADV_DONTDUMP), so the guest's private
 * memory never reaches a core file, while views are dumped with the shared
 * pages they map.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sysfs.h"

#define CORE_PATTERN "/proc/sys/kernel/core_pattern"
#define MARK_LEN 48

/*
 * Byte i of a distinctive string derived from seed.  The dumping child
 * computes its strings from its pid and stores them byte by byte, so no
 * copy of them exists anywhere but where they are stored (no constant, no
 * buffer); the parent computes them again after the child is gone.
 */
static uint8_t mark_byte(uint32_t seed, size_t i)
{
	uint32_t x = seed * 2654435761u + (uint32_t)i * 40503u + 0x9e3779b9u;

	x ^= x >> 15;
	x *= 0x2c1b3c6du;
	x ^= x >> 12;
	return (uint8_t)(x ^ x >> 24);
}

static uint32_t secret_seed(pid_t pid)
{
	return (uint32_t)pid ^ 0x5ec12e7u;
}

static uint32_t marker_seed(pid_t pid)
{
	return (uint32_t)pid ^ 0x5a12edu;
}

static void store_mark(volatile char *p, uint32_t seed)
{
	for (size_t i = 0; i < MARK_LEN; i++)
		p[i] = (char)mark_byte(seed, i);
}

/* Child exit codes besides the harness's own (1 failed, 77 skipped). */
#define CHILD_NO_RLIMIT 10
#define CHILD_NOT_DUMPABLE 11
#define CHILD_UNDUMPABLE_AFTER 12

/*
 * In the child: a gmem with the guest's secret in a private page and the
 * host's marker in a shared one, seen through a view; then abort().  The
 * pages are a view unit apart: on hugetlbfs each in a huge page of its
 * own, of which the view maps the shared one whole - and dumps it, once
 * coredump_filter asks for shared hugetlb mappings (bit 6, not among the
 * kernel's defaults).
 */
#define COREDUMP_FILTER "/proc/self/coredump_filter"
#define DUMP_HUGETLB_SHARED 0x40

static __attribute__((noreturn)) void hold_secret_and_abort(const struct env *e)
{
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	const uint64_t unit = env_view_unit(e);
	struct gmem *g;
	char *v, *guest;
	void *gp;

	if (setrlimit(RLIMIT_CORE, &unlimited))
		_exit(CHILD_NO_RLIMIT);
	if (prctl(PR_SET_DUMPABLE, 1))
		_exit(CHILD_NOT_DUMPABLE);
	if (env_hugetlb(e)) {
		char buf[32] = "";
		int fd = open(COREDUMP_FILTER, O_RDWR);
		unsigned long filter;

		CHECK(fd >= 0 && read(fd, buf, sizeof(buf) - 1) > 0);
		filter = strtoul(buf, NULL, 16) | DUMP_HUGETLB_SHARED;
		snprintf(buf, sizeof(buf), "%#lx", filter);
		CHECK(pwrite(fd, buf, strlen(buf), 0) == (ssize_t)strlen(buf));
		close(fd);
	}
	g = tg_create(e, 2 * unit, GMEM_F_INIT_PRIVATE, 0);
	v = tg_view(g, 0);
	CHECK_OK(gmem_guest_map(g, &gp));
	guest = gp;

	store_mark(guest + 100, secret_seed(getpid())); /* the guest's, in private page 0 */
	CHECK_OK(gmem_convert(g, unit, unit, GMEM_SHARED, 0, NULL));
	store_mark(v + unit + 200, marker_seed(getpid())); /* the host's, in a view */
	CHECK_EQ(touch(v, false, NULL, NULL), e->sig);    /* the view refuses page 0 */
	CHECK_OK(gmem_audit(g));
	if (prctl(PR_GET_DUMPABLE) != 1)
		_exit(CHILD_UNDUMPABLE_AFTER);
	abort();
}

/* Whether the file at fd holds needle (len bytes), reading only its data. */
static bool file_has(int fd, const uint8_t *needle, size_t len)
{
	const size_t chunk = 1 << 20;
	char *buf = malloc(chunk + len);
	off_t d = 0, h;
	bool found = false;

	CHECK(buf);
	while (!found && (d = lseek(fd, d, SEEK_DATA)) >= 0) {
		CHECK((h = lseek(fd, d, SEEK_HOLE)) >= 0);
		for (off_t at = d; !found && at < h; at += (off_t)chunk) {
			/* len - 1 bytes past the chunk: a needle across the seam is found */
			size_t want = chunk + len - 1;
			ssize_t n;

			if ((size_t)(h - at) < want)
				want = (size_t)(h - at);
			n = pread(fd, buf, want, at);
			CHECK_EQ(n, want);
			found = memmem(buf, (size_t)n, needle, len) != NULL;
		}
		d = h;
	}
	free(buf);
	return found;
}

static bool plain_name(const char *s)
{
	return *s && !strpbrk(s, "|/%");
}

TEST(core_dump_leaves_out_private_memory)
{
	char dir[] = "/tmp/gmem-core-XXXXXX", pattern[256] = "", old[256] = "";
	bool secret_found = false, marker_found = false;
	uint8_t secret[MARK_LEN], marker[MARK_LEN];
	int status, fd, ncores = 0;
	struct dirent *de;
	DIR *d;
	pid_t pid;

	fd = open(CORE_PATTERN, O_RDONLY);
	CHECK(fd >= 0);
	CHECK(read(fd, old, sizeof(old) - 1) > 0);
	close(fd);
	old[strcspn(old, "\n")] = '\0';
	snprintf(pattern, sizeof(pattern), "%s", old);
	if (!plain_name(pattern)) {
		/* a pipe to a handler, or a path elsewhere: a plain "core" here, for this case */
		if (test_write_file(CORE_PATTERN, "core"))
			SKIP("core_pattern is \"%s\" and cannot be set to \"core\"", old);
		snprintf(pattern, sizeof(pattern), "core");
	}
	CHECK(mkdtemp(dir));

	fflush(stdout);
	pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		if (chdir(dir))
			_exit(1);
		hold_secret_and_abort(env);
	}
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	if (strcmp(pattern, old))
		test_write_file(CORE_PATTERN, old); /* now: a failing case skips atexit */

	/* look, then clean up, then judge */
	for (size_t i = 0; i < MARK_LEN; i++) {
		secret[i] = mark_byte(secret_seed(pid), i);
		marker[i] = mark_byte(marker_seed(pid), i);
	}
	CHECK((d = opendir(dir)));
	while ((de = readdir(d))) {
		char path[sizeof(dir) + 256];

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (!strncmp(de->d_name, pattern, strlen(pattern))) {
			CHECK((fd = open(path, O_RDONLY)) >= 0);
			ncores++;
			secret_found |= file_has(fd, secret, MARK_LEN);
			marker_found |= file_has(fd, marker, MARK_LEN);
			close(fd);
		}
		CHECK_OK(unlink(path));
	}
	closedir(d);
	CHECK_OK(rmdir(dir));

	if (WIFEXITED(status)) {
		switch (WEXITSTATUS(status)) {
		case CHILD_NO_RLIMIT:
			SKIP("RLIMIT_CORE cannot be raised");
		case CHILD_NOT_DUMPABLE:
			SKIP("prctl(PR_SET_DUMPABLE) failed");
		case CHILD_UNDUMPABLE_AFTER:
			test_fail(__FILE__, __LINE__, "a process holding a gmem is not dumpable");
		case 77:
			SKIP("the dumping child skipped");
		default:
			test_fail(__FILE__, __LINE__, "the dumping child exited %d",
				  WEXITSTATUS(status));
		}
	}
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
	if (!ncores)
		SKIP("no core file (the kernel %s one; core_pattern \"%s\"): the dump is not "
		     "ours to see here", WCOREDUMP(status) ? "reported" : "did not write", pattern);
	if (secret_found)
		test_fail(__FILE__, __LINE__, "the core dump holds the guest's private secret");
	if (!marker_found)
		test_fail(__FILE__, __LINE__, "the core dump lacks the view's shared marker");
}

/*
 * Of the mappings overlapping [start, end) in /proc/self/smaps: how many,
 * and how many have "dd" (VM_DONTDUMP) in their VmFlags.
 */
static void count_dontdump(uintptr_t start, uintptr_t end, int *vmas, int *dd)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[1024];
	bool inside = false;

	CHECK(f);
	*vmas = *dd = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		int n = 0;

		if (sscanf(line, "%lx-%lx %n", &s, &e, &n) == 2 && n > 0) {
			inside = s < end && e > start;
			continue;
		}
		if (!inside || strncmp(line, "VmFlags:", 8))
			continue;
		(*vmas)++;
		for (char *save, *tok = strtok_r(line + 8, " \n", &save); tok;
		     tok = strtok_r(NULL, " \n", &save))
			*dd += !strcmp(tok, "dd");
	}
	fclose(f);
}

/*
 * The mechanism: the guest mapping is VM_DONTDUMP ("dd"), views are not.
 * (The strict view is of the second view unit, away from page 0.)
 */
TEST(dump_flags_guest_mapping_dontdump_views_not)
{
	const uint64_t unit = env_view_unit(env);
	struct gmem *g = tg_create(env, env_hugetlb(env) ? 2 * unit : 4 * PS, 0, 0);
	char *v = tg_view(g, 0), *strict;
	void *guest, *part;
	int vmas, dd;

	CHECK_OK(gmem_guest_map(g, &guest));
	CHECK_OK(gmem_convert(g, 0, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_OK(gmem_view_map(g, unit, unit, GMEM_VIEW_STRICT, &part));
	strict = part;
	fill_page(v + unit + PS, 2, 1);

	count_dontdump((uintptr_t)guest, (uintptr_t)guest + gmem_size(g), &vmas, &dd);
	CHECK(vmas > 0);
	CHECK_EQ(dd, vmas);
	count_dontdump((uintptr_t)v, (uintptr_t)v + gmem_size(g), &vmas, &dd);
	CHECK(vmas > 0);
	CHECK_EQ(dd, 0);
	count_dontdump((uintptr_t)strict, (uintptr_t)strict + unit, &vmas, &dd);
	CHECK(vmas > 0);
	CHECK_EQ(dd, 0);
	CHECK_OK(gmem_destroy(g));
}
