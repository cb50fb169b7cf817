// SPDX-License-Identifier: MIT
/*
 * harness.c - runs each case in a child per backing type and reports.
 *
 * Output: one line per case ("ok", "FAIL" or "SKIP"), then a summary line
 * "# N passed, N failed, N skipped" that tests/run.sh adds up.  THP cases
 * need shmem huge pages: when the kernel refuses them and we may, the
 * harness sets shmem_enabled to "advise" for the run and restores it.
 */
#define _GNU_SOURCE
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CASES 256
#define EXIT_SKIP 77
#define SHMEM_ENABLED "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

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

/* volatile: the stores around the access must stay where they are */
static __thread sigjmp_buf *volatile touch_jmp;
static __thread siginfo_t touch_si;

static void touch_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!touch_jmp) {
		char msg[96];
		int n = snprintf(msg, sizeof(msg), "  unexpected signal %d (code %d) at %p\n", sig,
				 si->si_code, si->si_addr);

		(void)!write(1, msg, (size_t)n);
		signal(sig, SIG_DFL); /* not ours: die of it */
		return;
	}
	touch_si = *si;
	siglongjmp(*touch_jmp, sig);
}

static void touch_install(void)
{
	static __thread bool installed;

	if (!installed) {
		struct sigaction sa = { .sa_sigaction = touch_handler, .sa_flags = SA_SIGINFO };

		sigaction(SIGBUS, &sa, NULL);
		sigaction(SIGSEGV, &sa, NULL);
		installed = true;
	}
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

struct saved_file {
	char path[128];
	char value[64];
};
static struct saved_file saved[8];
static size_t nsaved;

static int read_choice(const char *path, char *out, size_t outlen)
{
	char buf[256], *lb, *rb;
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	lb = strchr(buf, '[');
	rb = lb ? strchr(lb, ']') : NULL;
	if (!rb || (size_t)(rb - lb) >= outlen) {
		/* not a multiple-choice file: the whole first line */
		size_t len = strcspn(buf, "\n");

		if (len >= outlen)
			return -1;
		memcpy(out, buf, len);
		out[len] = '\0';
		return 0;
	}
	memcpy(out, lb + 1, (size_t)(rb - lb - 1));
	out[rb - lb - 1] = '\0';
	return 0;
}

static int write_raw(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, value, strlen(value));
	close(fd);
	return n == (ssize_t)strlen(value) ? 0 : -EIO;
}

int test_write_file(const char *path, const char *value)
{
	if (nsaved < sizeof(saved) / sizeof(saved[0])) {
		bool known = false;

		for (size_t i = 0; i < nsaved; i++)
			known |= !strcmp(saved[i].path, path);
		if (!known && !read_choice(path, saved[nsaved].value, sizeof(saved[0].value))) {
			snprintf(saved[nsaved].path, sizeof(saved[0].path), "%s", path);
			nsaved++;
		}
	}
	return write_raw(path, value);
}

static void restore_files(void)
{
	while (nsaved--)
		write_raw(saved[nsaved].path, saved[nsaved].value);
	nsaved = 0;
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
		nsaved = 0; /* the parent restores what it set, not each case */
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

static bool thp_usable(void)
{
	struct gmem_config cfg = { .size = 2 * MiB, .backing = GMEM_BACKING_THP };
	struct gmem *g;

	if (gmem_create(&cfg, &g))
		return false;
	gmem_destroy(g);
	return true;
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
	if (!thp_usable() && geteuid() == 0)
		test_write_file(SHMEM_ENABLED, "advise");
	atexit(restore_files);

	for (size_t i = 0; i < ncases; i++) {
		if (filter && !strstr(cases[i].name, filter))
			continue;
		for (size_t j = 0; j < (cases[i].once ? 1 : sizeof(envs) / sizeof(envs[0])); j++)
			counts[run_case(&cases[i], &envs[j])]++;
	}
	printf("# %u passed, %u failed, %u skipped\n", counts[0], counts[1], counts[2]);
	return counts[1] ? 1 : 0;
}
