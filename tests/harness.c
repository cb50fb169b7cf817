// SPDX-License-Identifier: MIT
/*
 * harness.c - runs each case in a child per backing type and reports.
 *
 * Output: one line per case ("ok", "FAIL" or "SKIP"), then a summary line
 * "# N passed, N failed, N skipped" that tests/run.sh adds up.  THP cases
 * need shmem huge pages: thp_enable() (sysfs.c) makes them available for
 * the run where it may and restores the setting at exit.
 */
#define _GNU_SOURCE
#include "harness.h"
#include "sysfs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CASES 256
#define EXIT_SKIP 77

struct tcase {
	const char *name;
	test_fn fn;
	bool once;
	unsigned int timeout_s;
};

static struct tcase cases[MAX_CASES];
static size_t ncases;

void harness_register(const char *name, test_fn fn, bool once, unsigned int timeout_s)
{
	if (ncases == MAX_CASES) {
		fprintf(stderr, "harness: too many cases\n");
		exit(2);
	}
	cases[ncases++] = (struct tcase){ name, fn, once, timeout_s };
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

	printf("  skip reason: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	sysfs_restore();
	_exit(EXIT_SKIP);
}

struct gmem *tg_create(const struct env *e, uint64_t min, uint32_t flags, int fault_signal)
{
	struct gmem_config cfg = {
		.size = (min + e->unit - 1) / e->unit * e->unit,
		.backing = e->backing,
		.flags = flags,
		.fault_signal = fault_signal,
	};
	struct gmem *g = NULL;
	int err = gmem_create(&cfg, &g);

	if (err == -EOPNOTSUPP && e->backing == GMEM_BACKING_THP)
		SKIP("shmem huge pages unavailable");
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

/* Run one case in a child; 0 pass, 1 fail, 2 skip. */
static int run_case(const struct tcase *c, const struct env *e)
{
	double t0 = now_ms();
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		sysfs_forget(); /* the parent restores what it set, not each case */
		alarm(c->timeout_s);
		c->fn(e);
		exit(0); /* not _exit: LeakSanitizer checks at exit */
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		printf("ok   %s%s%s (%.0f ms)\n", c->name, c->once ? "" : " on ", c->once ? "" : e->name,
		       now_ms() - t0);
		return 0;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SKIP) {
		printf("SKIP %s%s%s\n", c->name, c->once ? "" : " on ", c->once ? "" : e->name);
		return 2;
	}
	if (WIFSIGNALED(status))
		printf("FAIL %s%s%s: killed by signal %d%s\n", c->name, c->once ? "" : " on ",
		       c->once ? "" : e->name, WTERMSIG(status),
		       WTERMSIG(status) == SIGALRM ? " (timed out)" : "");
	else
		printf("FAIL %s%s%s: exit %d\n", c->name, c->once ? "" : " on ",
		       c->once ? "" : e->name, WEXITSTATUS(status));
	return 1;
}

int main(int argc, char **argv)
{
	static const struct env envs[] = {
		{ GMEM_BACKING_SHMEM, "shmem", PS },
		{ GMEM_BACKING_THP, "thp", 2 * MiB },
	};
	const char *filter = argc > 1 ? argv[1] : NULL;
	unsigned int counts[3] = { 0 };

	setvbuf(stdout, NULL, _IOLBF, 0);
	setenv("GMEM_DEBUG", "1", 1); /* a step that cannot fail and does aborts the case */
	thp_enable();

	for (size_t i = 0; i < ncases; i++) {
		if (filter && !strstr(cases[i].name, filter))
			continue;
		for (size_t j = 0; j < (cases[i].once ? 1 : sizeof(envs) / sizeof(envs[0])); j++)
			counts[run_case(&cases[i], &envs[j])]++;
	}
	printf("# %u passed, %u failed, %u skipped\n", counts[0], counts[1], counts[2]);
	return counts[1] ? 1 : 0;
}
