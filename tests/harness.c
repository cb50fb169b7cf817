// SPDX-License-Identifier: MIT
/*
 * harness.c - runs each case in a child per environment and reports.
 *
 * Environments: every backing of the table below under each fault signal.
 * A backing is one entry: its name, GMEM_BACKING_* value, unit, B_ bit
 * (harness.h) and, if the system must be set up for it, a prepare()
 * called once, before its first case, that says why it is unavailable
 * when it is (then its cases are reported SKIP with that reason).  THP
 * needs shmem huge pages: thp_enable() (sysfs.c) makes them available for
 * the run where it may and restores the setting at exit.  hugetlbfs needs
 * pages in the kernel's pool: hugetlb_reserve() raises nr_hugepages for
 * the run, as far as the largest object a case makes (below), and puts it
 * back at exit.  Both are set by this process, before it forks a case;
 * the cases leave restoring to it (sysfs_forget()).
 *
 * A backing may run a subset of the cases only (hugetlb-1g: each object
 * is at least a 1 GiB page, which the kernel clears on first touch): those
 * that name its bit in .subset; the others are reported SKIP with its
 * reason.
 *
 * Output: one line per case and environment ("ok", "FAIL" or
 * "SKIP ...: why"), then a summary line "# N passed, N failed, N skipped"
 * that tests/run.sh adds up.  An argument runs only the cases whose full
 * name ("<case> on <env>") contains it.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "sysfs.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CASES 512
#define EXIT_SKIP 77
#define REASON_LEN 512

struct backing {
	const char *name;
	uint32_t type;  /* GMEM_BACKING_* */
	uint64_t unit;  /* its page */
	unsigned int bit; /* B_* */
	/* NULL, or set the system up: NULL when usable, else why not */
	const char *(*prepare)(void);
	/* NULL, or it runs only the cases whose .subset has its bit: why */
	const char *subset_why;
};

static const char *thp_prepare(void)
{
	return thp_enable() ? NULL : "shmem huge pages unavailable (shmem_enabled, and not root)";
}

/*
 * Pool pages for the run: the most a case holds at once (cases run one at
 * a time, each a process whose objects go with it).  On 2 MiB pages that
 * is 16, 32 MiB: create_many_objects' 16 objects of a page; then
 * test_tamper's slow discard (15), many_views (12), the 8-unit objects of
 * test_tamper, test_view, test_addr and create_is_lazy.  A case of the
 * 1 GiB subset holds at most two pages.
 */
#define HUGETLB_2M_PAGES 16
#define HUGETLB_1G_PAGES 2

static const char *hugetlb_prepare(uint64_t page, unsigned long pages, char *why, size_t len)
{
	char pool[96];

	snprintf(pool, sizeof(pool), "/sys/kernel/mm/hugepages/hugepages-%llukB",
		 (unsigned long long)(page >> 10));
	if (access(pool, F_OK)) {
		snprintf(why, len, "no hugetlb pool of %llu kB pages on this system",
			 (unsigned long long)(page >> 10));
		return why;
	}
	if (hugetlb_reserve(page, pages))
		return NULL;
	if (geteuid() != 0)
		snprintf(why, len, "%lu free hugetlb pages of %llu kB needed, %lu free, and not root "
			 "to raise nr_hugepages", pages, (unsigned long long)(page >> 10),
			 hugetlb_free(page));
	else
		snprintf(why, len, "%lu free hugetlb pages of %llu kB needed, the kernel gave %lu "
			 "(memory too fragmented for pages this size?)", pages,
			 (unsigned long long)(page >> 10), hugetlb_free(page));
	return why;
}

static const char *hugetlb_2m_prepare(void)
{
	static char why[200];

	return hugetlb_prepare(2 * MiB, HUGETLB_2M_PAGES, why, sizeof(why));
}

static const char *hugetlb_1g_prepare(void)
{
	static char why[200];

	return hugetlb_prepare(1024 * MiB, HUGETLB_1G_PAGES, why, sizeof(why));
}

static const struct backing backings[] = {
	{ "shmem", GMEM_BACKING_SHMEM, PS, B_SHMEM, NULL, NULL },
	{ "thp", GMEM_BACKING_THP, 2 * MiB, B_THP, thp_prepare, NULL },
	{ "hugetlb-2m", GMEM_BACKING_HUGETLB_2M, 2 * MiB, B_HUGETLB_2M, hugetlb_2m_prepare, NULL },
	{ "hugetlb-1g", GMEM_BACKING_HUGETLB_1G, 1024 * MiB, B_HUGETLB_1G, hugetlb_1g_prepare,
	  "a 1 GiB page costs 0.1-0.4 s to clear: hugetlb-2m runs this case, hugetlb-1g the "
	  "subset that differs by page size" },
};
#define NBACKINGS (sizeof(backings) / sizeof(backings[0]))

static const struct {
	int sig;
	const char *name;
	unsigned int bit;
} signals[] = {
	{ SIGBUS, "sigbus", S_SIGBUS },
	{ SIGSEGV, "sigsegv", S_SIGSEGV },
};
#define NSIGNALS (sizeof(signals) / sizeof(signals[0]))

struct tcase {
	const char *name;
	test_fn fn;
	test_row_fn row_fn;
	const void *row;
	struct test_opts o;
};

static struct tcase cases[MAX_CASES];
static size_t ncases;
/* shared with the forked case: the reason it gives for skipping */
static char *skip_reason;

static void add(const struct tcase *c)
{
	if (ncases == MAX_CASES) {
		fprintf(stderr, "harness: too many cases\n");
		exit(2);
	}
	if ((c->o.skip && !c->o.why) || (c->o.skip2 && !c->o.why2)) {
		fprintf(stderr, "harness: %s skips environments without saying why\n", c->name);
		exit(2);
	}
	cases[ncases++] = *c;
}

void harness_register(const char *name, test_fn fn, const struct test_opts *o)
{
	add(&(struct tcase){ .name = name, .fn = fn, .o = *o });
}

void harness_register_row(const char *name, test_row_fn fn, const void *row,
			  const struct test_opts *o)
{
	add(&(struct tcase){ .name = name, .row_fn = fn, .row = row, .o = *o });
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	printf("  %s:%d: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	sysfs_restore();
	_exit(1);
}

void test_skip(const char *fmt, ...)
{
	va_list ap;

	if (skip_reason) {
		va_start(ap, fmt);
		vsnprintf(skip_reason, REASON_LEN, fmt, ap);
		va_end(ap);
	}
	fflush(stdout);
	sysfs_restore();
	_exit(EXIT_SKIP);
}

struct gmem_config tg_config(const struct env *e, uint64_t min, uint32_t flags, int fault_signal)
{
	return (struct gmem_config){
		.size = (min + e->unit - 1) / e->unit * e->unit,
		.backing = e->backing,
		.flags = flags,
		.fault_signal = fault_signal ? fault_signal : e->sig,
	};
}

struct gmem *tg_create(const struct env *e, uint64_t min, uint32_t flags, int fault_signal)
{
	struct gmem_config cfg = tg_config(e, min, flags, fault_signal);
	struct gmem *g = NULL;
	int err = gmem_create(&cfg, &g);

	if (err == -EOPNOTSUPP && e->backing != GMEM_BACKING_SHMEM)
		SKIP("%s backing unavailable: gmem_create: %s", e->backing_name, strerror(-err));
	if (err == -ENOMEM && env_hugetlb(e))
		test_fail(__FILE__, __LINE__, "gmem_create of %llu MiB: -ENOMEM, %lu pages free in "
			  "the pool (harness.c reserves the largest object a case makes)",
			  (unsigned long long)(cfg.size >> 20), hugetlb_free(e->unit));
	if (err)
		test_fail(__FILE__, __LINE__, "gmem_create: %s", strerror(-err));
	return g;
}

char *tg_view(struct gmem *g, unsigned int flags)
{
	void *v = NULL;
	int err = gmem_view_map(g, 0, gmem_size(g), flags, &v);

	if (err)
		test_fail(__FILE__, __LINE__, "gmem_view_map: %s", strerror(-err));
	return v;
}

char *tg_reserve(const struct env *e, uint64_t len)
{
	uint64_t align = env_view_unit(e);
	char *p = mmap(NULL, len + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t at;

	if (p == MAP_FAILED)
		test_fail(__FILE__, __LINE__, "mmap of %llu bytes: %s",
			  (unsigned long long)(len + align), strerror(errno));
	at = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	/* the rest goes back */
	if (at > (uintptr_t)p)
		munmap(p, at - (uintptr_t)p);
	if ((uintptr_t)p + align > at)
		munmap((char *)at + len, (uintptr_t)p + align - at);
	return (char *)at;
}

int test_uffd_fd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int fd = -1;

	if (!d)
		return -1;
	while (fd < 0 && (e = readdir(d))) {
		char path[300], target[64];
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		if (n > 0 && (target[n] = '\0', !strcmp(target, "anon_inode:[userfaultfd]")))
			fd = atoi(e->d_name);
	}
	closedir(d);
	return fd;
}

void fill_page(char *p, uint64_t page, uint8_t seed)
{
	for (size_t i = 0; i < PS; i++)
		p[i] = (char)pattern(page, seed, i);
}

bool page_has(const char *p, uint64_t page, uint8_t seed)
{
	for (size_t i = 0; i < PS; i++)
		if ((uint8_t)p[i] != pattern(page, seed, i))
			return false;
	return true;
}

bool page_zero(const char *p)
{
	for (size_t i = 0; i < PS; i++)
		if (p[i])
			return false;
	return true;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void report(const char *what, const struct tcase *c, const struct env *e)
{
	printf("%s %s%s%s", what, c->name, c->o.once ? "" : " on ", c->o.once ? "" : e->name);
}

/* Run one case in a child; 0 pass, 1 fail, 2 skip. */
static int run_case(const struct tcase *c, const struct env *e)
{
	double t0 = now_ms();
	int status;
	pid_t pid;

	fflush(stdout);
	skip_reason[0] = '\0';
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		sysfs_forget(); /* the parent restores what it set, not each case */
		alarm(c->o.timeout_s ? c->o.timeout_s : 60);
		if (c->row_fn)
			c->row_fn(e, c->row);
		else
			c->fn(e);
		exit(0); /* not _exit: LeakSanitizer checks at exit */
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		report("ok  ", c, e);
		printf(" (%.0f ms)\n", now_ms() - t0);
		return 0;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SKIP) {
		report("SKIP", c, e);
		printf(": %s\n", skip_reason[0] ? skip_reason : "(no reason given)");
		return 2;
	}
	report("FAIL", c, e);
	if (WIFSIGNALED(status))
		printf(": killed by signal %d%s\n", WTERMSIG(status),
		       WTERMSIG(status) == SIGALRM ? " (timed out)" : "");
	else
		printf(": exit %d\n", WEXITSTATUS(status));
	return 1;
}

/* Why case c does not run in environment (b, s), or NULL. */
static const char *excluded(const struct tcase *c, size_t b, size_t s)
{
	unsigned int m = c->o.skip;

	if ((m & backings[b].bit) && (m & signals[s].bit))
		return c->o.why;
	if ((m & ONE_SIGNAL_EACH) && s != b % NSIGNALS)
		return c->o.why;
	m = c->o.skip2;
	if ((m & backings[b].bit) && (m & signals[s].bit))
		return c->o.why2;
	if ((m & ONE_SIGNAL_EACH) && s != b % NSIGNALS)
		return c->o.why2;
	if (backings[b].subset_why && !(c->o.subset & backings[b].bit))
		return backings[b].subset_why;
	return NULL;
}

/* Why backing b is unavailable, or NULL: its prepare(), called once. */
static const char *unavailable(size_t b)
{
	static bool prepared[NBACKINGS];
	static const char *why[NBACKINGS];

	if (!prepared[b]) {
		prepared[b] = true;
		why[b] = backings[b].prepare ? backings[b].prepare() : NULL;
	}
	return why[b];
}

int main(int argc, char **argv)
{
	const char *filter = argc > 1 ? argv[1] : NULL;
	/* make mutate's: a program that has failed once has said enough */
	bool first_fail = getenv("GMEM_TEST_FIRST_FAIL") && *getenv("GMEM_TEST_FIRST_FAIL");
	struct env envs[NBACKINGS][NSIGNALS];
	char names[NBACKINGS][NSIGNALS][64];
	unsigned int counts[3] = { 0 };

	setvbuf(stdout, NULL, _IOLBF, 0);
	setenv("GMEM_DEBUG", "1", 1); /* a step that cannot fail and does aborts the case */
	skip_reason = mmap(NULL, REASON_LEN, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (skip_reason == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	for (size_t b = 0; b < NBACKINGS; b++) {
		for (size_t s = 0; s < NSIGNALS; s++) {
			snprintf(names[b][s], sizeof(names[b][s]), "%s/%s", backings[b].name,
				 signals[s].name);
			envs[b][s] = (struct env){
				.backing = backings[b].type,
				.unit = backings[b].unit,
				.sig = signals[s].sig,
				.name = names[b][s],
				.backing_name = backings[b].name,
				.bits = backings[b].bit | signals[s].bit,
			};
		}
	}

	for (size_t i = 0; i < ncases; i++) {
		const struct tcase *c = &cases[i];
		size_t nb = c->o.once ? 1 : NBACKINGS, ns = c->o.once ? 1 : NSIGNALS;

		for (size_t b = 0; b < nb; b++) {
			for (size_t s = 0; s < ns; s++) {
				const struct env *e = &envs[b][s];
				const char *why = c->o.once ? NULL : excluded(c, b, s);
				char full[256];

				snprintf(full, sizeof(full), "%s%s%s", c->name, c->o.once ? "" : " on ",
					 c->o.once ? "" : e->name);
				if (filter && !strstr(full, filter))
					continue;
				if (!why)
					why = unavailable(b);
				if (why) {
					report("SKIP", c, e);
					printf(": %s\n", why);
					counts[2]++;
					continue;
				}
				counts[run_case(c, e)]++;
				if (first_fail && counts[1])
					goto out;
			}
		}
	}
out:
	printf("# %u passed, %u failed, %u skipped\n", counts[0], counts[1], counts[2]);
	return counts[1] ? 1 : 0;
}
