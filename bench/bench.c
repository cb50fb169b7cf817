// SPDX-License-Identifier: MIT
/*
 * bench.c - gmem's costs as ratios against baselines measured in the same run.
 *
 * These machines are shared and noisy, so no figure is an absolute time on
 * its own: each workload is timed next to the kernel operation it should
 * cost about as much as, both repeated, and the report gives the ratio's
 * min / median / max over the repetitions with the target it must meet.
 *
 *   gmem-bench [--reps N] [--only SUBSTRING] [--json FILE] [--check]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "gmem.h"

#define PS GMEM_PAGE_SIZE
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define TiB (1ULL << 40)
#define MAX_REPS 64

struct figure {
	const char *id, *what, *unit, *baseline_what;
	double target;   /* the ratio must be <= target (>= with at_least) */
	bool at_least;   /* a throughput: higher is better */
	bool skipped;    /* what it needs is missing; why says what */
	char why[96];
	double value[MAX_REPS], base[MAX_REPS];
	int reps;
};

static int reps = 5;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	double s[MAX_REPS];

	memcpy(s, v, n * sizeof(*v));
	qsort(s, n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "gmem-bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static struct gmem *create(uint64_t size, uint32_t backing)
{
	struct gmem_config cfg = { .size = size, .backing = backing };
	struct gmem *g;
	int err = gmem_create(&cfg, &g);

	if (err)
		die("gmem_create", err);
	return g;
}

static char *view(struct gmem *g, uint64_t off, uint64_t len)
{
	void *v;
	int err = gmem_view_map(g, off, len, 0, &v);

	if (err)
		die("gmem_view_map", err);
	return v;
}

/* A plain shared memfd mapping: the no-enforcement floor. */
static char *plain_map(uint64_t size, int *fd)
{
	char *p;

	*fd = memfd_create("bench", MFD_CLOEXEC);
	if (*fd < 0 || ftruncate(*fd, (off_t)size))
		die("memfd", errno);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	if (p == MAP_FAILED)
		die("mmap", errno);
	return p;
}

static void plain_unmap(char *p, uint64_t size, int fd)
{
	munmap(p, size);
	close(fd);
}

static void touch_pages(volatile char *p, uint64_t len)
{
	for (uint64_t o = 0; o < len; o += PS)
		p[o] = 1;
}

/*
 * Each workload below runs in small blocks alternating with its baseline's,
 * so that whatever else the machine does lands on both alike.
 */

/* (a) first touch of 64 MiB of shared memory through a view vs a plain memfd mapping */
#define TOUCH_BLOCK (1 * MiB)
static void first_touch(struct figure *f, int r)
{
	const uint64_t size = 64 * MiB;
	struct gmem *g = create(size, GMEM_BACKING_SHMEM);
	char *v = view(g, 0, size), *p;
	double tg = 0, tb = 0, t0;
	int fd;

	p = plain_map(size, &fd);
	for (uint64_t o = 0; o < size; o += TOUCH_BLOCK) {
		t0 = now_ns();
		touch_pages(v + o, TOUCH_BLOCK);
		tg += now_ns() - t0;
		t0 = now_ns();
		touch_pages(p + o, TOUCH_BLOCK);
		tb += now_ns() - t0;
	}
	f->value[r] = tg / (size / PS);
	f->base[r] = tb / (size / PS);
	gmem_destroy(g);
	plain_unmap(p, size, fd);
}

/* (b) converting a fully touched 256 MiB range to private vs one MADV_DONTNEED of it */
static void convert_range(struct figure *f, int r)
{
	const uint64_t size = 256 * MiB;
	struct gmem *g = create(size, GMEM_BACKING_SHMEM);
	char *v = view(g, 0, size), *p;
	double t0, tg = 0, tb = 0;
	int fd, err;

	p = plain_map(size, &fd);
	touch_pages(v, size);
	touch_pages(p, size);
	for (int i = 0; i < 2; i++) { /* both orders: neither always goes first */
		if ((i + r) % 2 == 0) {
			t0 = now_ns();
			err = gmem_convert(g, 0, size, GMEM_PRIVATE, 0, NULL);
			tg = now_ns() - t0;
			if (err)
				die("gmem_convert", err);
		} else {
			t0 = now_ns();
			madvise(p, size, MADV_DONTNEED);
			tb = now_ns() - t0;
		}
	}
	f->value[r] = tg;
	f->base[r] = tb;
	gmem_destroy(g);
	plain_unmap(p, size, fd);
}

/*
 * (c) single-page conversions, page by page, vs one MADV_DONTNEED of one
 * mapped page of a plain mapping.  To private, each page is mapped in a
 * view first (the conversion zaps it); to shared, each was private.
 */
#define SINGLE_PAGES 10000
static void single_pages(struct figure *f, int r, unsigned int to)
{
	const uint64_t size = SINGLE_PAGES * PS;
	struct gmem *g = create(size, GMEM_BACKING_SHMEM);
	double tg = 0, tb = 0, t0;
	char *p;
	int fd;

	if (to == GMEM_PRIVATE)
		touch_pages(view(g, 0, size), size);
	else if (gmem_convert(g, 0, size, GMEM_PRIVATE, 0, NULL))
		die("gmem_convert", EIO);
	p = plain_map(size, &fd);
	touch_pages(p, size);
	for (uint64_t i = 0; i < SINGLE_PAGES; i++) {
		int err;

		t0 = now_ns();
		err = gmem_convert(g, i * PS, PS, to, 0, NULL);
		tg += now_ns() - t0;
		if (err)
			die("gmem_convert", err);
		t0 = now_ns();
		madvise(p + i * PS, PS, MADV_DONTNEED);
		tb += now_ns() - t0;
	}
	f->value[r] = tg / SINGLE_PAGES;
	f->base[r] = tb / SINGLE_PAGES;
	gmem_destroy(g);
	plain_unmap(p, size, fd);
}

static void single_page(struct figure *f, int r)
{
	single_pages(f, r, GMEM_PRIVATE);
}

/* The way back: a page gmem never refused to the host needs no zap. */
static void single_page_shared(struct figure *f, int r)
{
	single_pages(f, r, GMEM_SHARED);
}

/* (d) pin + unpin of one page, vs the floor: an atomic increment and decrement. */
#define PIN_PAIRS 2000000
#define PIN_BLOCK 10000
static void pin_pair(struct figure *f, int r)
{
	struct gmem *g = create(2 * MiB, GMEM_BACKING_SHMEM);
	static _Atomic uint64_t word;
	double tg = 0, tb = 0, t0;

	gmem_pin(g, 0, PS, 0); /* the first pin builds the page's table leaf */
	gmem_unpin(g, 0, PS, 0);
	for (int b = 0; b < PIN_PAIRS / PIN_BLOCK; b++) {
		t0 = now_ns();
		for (int i = 0; i < PIN_BLOCK; i++) {
			gmem_pin(g, PS, PS, 0);
			gmem_unpin(g, PS, PS, 0);
		}
		tg += now_ns() - t0;
		t0 = now_ns();
		for (int i = 0; i < PIN_BLOCK; i++) {
			atomic_fetch_add(&word, 1);
			atomic_fetch_sub(&word, 1);
		}
		tb += now_ns() - t0;
	}
	f->value[r] = tg / PIN_PAIRS;
	f->base[r] = tb / PIN_PAIRS;
	gmem_destroy(g);
}

/* 10,000 private single pages spread over the object. */
static void fragment(struct gmem *g, uint64_t size)
{
	for (uint64_t i = 0; i < 10000; i++) {
		int err = gmem_convert(g, i * (size / 10000) / PS * PS, PS, GMEM_PRIVATE, 0, NULL);

		if (err)
			die("gmem_convert", err);
	}
}

/* (e1) the library's heap for a 1 TiB object holding 10,000 private runs, vs 1 MiB */
static void big_memory(struct figure *f, int r)
{
	size_t heap0 = mallinfo2().uordblks;
	struct gmem *g = create(TiB, GMEM_BACKING_SHMEM);

	fragment(g, TiB);
	f->value[r] = (double)(mallinfo2().uordblks - heap0);
	f->base[r] = (double)MiB;
	gmem_destroy(g);
}

/* Time n single-page conversion pairs in the middle of a fragmented object. */
static double conversion_pairs(struct gmem *g, int n)
{
	uint64_t off = gmem_size(g) / 2 + PS;
	double t0 = now_ns();

	for (int i = 0; i < n; i++) {
		gmem_convert(g, off, PS, GMEM_PRIVATE, 0, NULL);
		gmem_convert(g, off, PS, GMEM_SHARED, 0, NULL);
	}
	return now_ns() - t0;
}

/* (e2) one conversion at 1 TiB vs one at 1 GiB, both holding 10,000 private runs */
static void big_convert(struct figure *f, int r)
{
	struct gmem *big = create(TiB, GMEM_BACKING_SHMEM), *small = create(GiB, GMEM_BACKING_SHMEM);
	double tg = 0, tb = 0;
	const int blocks = 20, n = 1000;

	fragment(big, TiB);
	fragment(small, GiB);
	for (int b = 0; b < blocks; b++) {
		tg += conversion_pairs(big, n);
		tb += conversion_pairs(small, n);
	}
	f->value[r] = tg / (2.0 * blocks * n);
	f->base[r] = tb / (2.0 * blocks * n);
	gmem_destroy(big);
	gmem_destroy(small);
}

/*
 * gmem-vmm figures: a guest program times itself with rdtsc and prints its
 * cycles; the host's baselines are converted with the TSC rate measured here.
 */
static double tsc_ghz(void)
{
	static double ghz;
	uint32_t lo, hi;
	uint64_t c0, c1;
	double t0;

	if (ghz)
		return ghz;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	c0 = (uint64_t)hi << 32 | lo;
	t0 = now_ns();
	usleep(200000);
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	c1 = (uint64_t)hi << 32 | lo;
	ghz = (double)(c1 - c0) / (now_ns() - t0);
	return ghz;
}

/* Run gmem-vmm on a benchmark guest; its standard output in out. */
static bool run_guest(struct figure *f, const char *name, const char *extra, char *out, size_t len)
{
	const char *vmm = getenv("GMEM_VMM"), *dir = getenv("GUEST_BENCH_DIR");
	char cmd[1024];
	size_t n = 0;
	FILE *p;

	if (access("/dev/kvm", R_OK | W_OK)) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "no usable /dev/kvm");
		return false;
	}
	snprintf(cmd, sizeof(cmd), "%s %s %s/%s.elf", vmm ? vmm : "build/vmm/gmem-vmm", extra,
		 dir ? dir : "build/guest/bench", name);
	p = popen(cmd, "r");
	if (p) {
		n = fread(out, 1, len - 1, p);
		if (pclose(p))
			n = 0;
	}
	out[n] = '\0';
	if (!n) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "%s failed", name);
	}
	return n > 0;
}

/* The single-page zap gmem does on a conversion to private, in TSC cycles. */
static double zap_cycles(void)
{
	int fd;
	char *p = plain_map(1024 * PS, &fd);
	double t = 0, t0;

	touch_pages(p, 1024 * PS);
	for (int i = 0; i < 1024; i++) {
		t0 = now_ns();
		madvise(p + i * PS, PS, MADV_DONTNEED);
		t += now_ns() - t0;
	}
	plain_unmap(p, 1024 * PS, fd);
	return t / 1024 * tsc_ghz();
}

/*
 * Guest-initiated conversion of one 4 KiB page (hypercall, convert, resume)
 * vs a null hypercall round trip; the target allows 1.5x plus the zap.
 */
static void hc_convert(struct figure *f, int r)
{
	char out[4096], *line;
	double null[16], conv[16];
	int n = 0;

	if (!run_guest(f, "hypercall", "--mem 64M", out, sizeof(out)))
		return;
	for (line = strstr(out, "hc "); line && n < 16; line = strstr(line + 1, "hc ")) {
		if (sscanf(line, "hc %lf %lf", &null[n], &conv[n]) == 2)
			n++;
	}
	if (!n) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "no figures from the guest");
		return;
	}
	f->value[r] = median(conv, n);
	f->base[r] = median(null, n);
	f->target = 1.5 + zap_cycles() / f->base[r];
}

#define BLK_FILE "/tmp/gmem-bench-disk.img"
#define BLK_REQ (1ULL << 20)
#define BLK_TOTAL (64ULL << 20)

/*
 * The host doing the guest's I/O pattern on the same file, in TSC cycles:
 * sequential 1 MiB requests rotating through as many buffers as the guest
 * has requests in flight (guest/bench/blk.c).
 */
#define BLK_BUFFERS 16 /* = INFLIGHT in guest/bench/blk.c */
static void raw_io(double *write_cycles, double *read_cycles)
{
	char *buf = aligned_alloc(4096, BLK_BUFFERS * BLK_REQ);
	int fd = open(BLK_FILE, O_RDWR);
	double t0;

	memset(buf, 0, BLK_BUFFERS * BLK_REQ);
	t0 = now_ns();
	for (uint64_t o = 0, i = 0; o < BLK_TOTAL; o += BLK_REQ, i = (i + 1) % BLK_BUFFERS)
		if (pwrite(fd, buf + i * BLK_REQ, BLK_REQ, (off_t)o) != (ssize_t)BLK_REQ)
			die("pwrite", errno);
	*write_cycles = (now_ns() - t0) * tsc_ghz();
	t0 = now_ns();
	for (uint64_t o = 0, i = 0; o < BLK_TOTAL; o += BLK_REQ, i = (i + 1) % BLK_BUFFERS)
		if (pread(fd, buf + i * BLK_REQ, BLK_REQ, (off_t)o) != (ssize_t)BLK_REQ)
			die("pread", errno);
	*read_cycles = (now_ns() - t0) * tsc_ghz();
	close(fd);
	free(buf);
}

/* virtio-blk sequential 1 MiB writes and reads vs raw file I/O: MB/s, higher is better. */
static void blk_throughput(struct figure *f, int r, bool read)
{
	char out[4096], *line;
	double bytes, w, rd, raw_w, raw_r;
	int fd = open(BLK_FILE, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || ftruncate(fd, 128 << 20))
		die(BLK_FILE, errno);
	close(fd);
	if (run_guest(f, "blk", "--mem 64M --disk " BLK_FILE, out, sizeof(out)) &&
	    (line = strstr(out, "blk ")) && sscanf(line, "blk %lf %lf %lf", &bytes, &w, &rd) == 3) {
		raw_io(&raw_w, &raw_r);
		/* MiB/s from cycles */
		f->value[r] = bytes / ((read ? rd : w) / tsc_ghz()) * 1e9 / (1 << 20);
		f->base[r] = bytes / ((read ? raw_r : raw_w) / tsc_ghz()) * 1e9 / (1 << 20);
	}
	unlink(BLK_FILE);
}

static void blk_write(struct figure *f, int r)
{
	blk_throughput(f, r, false);
}

static void blk_read(struct figure *f, int r)
{
	blk_throughput(f, r, true);
}

static struct {
	struct figure f;
	void (*run)(struct figure *f, int r);
} figures[] = {
	{ { .id = "first_touch", .what = "(a) first touch of 64 MiB through a host view", .unit = "ns/page",
	    .baseline_what = "plain MAP_SHARED memfd mapping", .target = 1.5 }, first_touch },
	{ { .id = "convert_256m", .what = "(b) convert a touched 256 MiB range to private", .unit = "ns",
	    .baseline_what = "one MADV_DONTNEED of the range", .target = 1.2 }, convert_range },
	{ { .id = "convert_page", .what = "(c) single-page conversion to private (mapped page)", .unit = "ns",
	    .baseline_what = "one MADV_DONTNEED of one mapped page", .target = 1.5 }, single_page },
	{ { .id = "convert_page_shared", .what = "(c') single-page conversion back to shared", .unit = "ns",
	    .baseline_what = "one MADV_DONTNEED of one mapped page", .target = 1.5 }, single_page_shared },
	{ { .id = "pin_unpin", .what = "(d) pin + unpin of one page", .unit = "ns/pair",
	    .baseline_what = "atomic increment + decrement", .target = 0 }, pin_pair },
	{ { .id = "memory_1t", .what = "(e) library heap, 1 TiB with 10,000 private runs", .unit = "bytes",
	    .baseline_what = "1 MiB", .target = 1.0 }, big_memory },
	{ { .id = "convert_1t", .what = "(e) one conversion at 1 TiB (10,000 runs)", .unit = "ns",
	    .baseline_what = "the same at 1 GiB", .target = 2.0 }, big_convert },
	{ { .id = "vmm_convert", .what = "(vmm) guest conversion of a page, round trip", .unit = "cycles",
	    .baseline_what = "a null hypercall round trip; target 1.5x plus the zap", .target = 1.5 },
	  hc_convert },
	{ { .id = "vmm_blk_write", .what = "(vmm) virtio-blk sequential 1 MiB writes", .unit = "MiB/s",
	    .baseline_what = "the same pwrite()s on the host", .target = 0.5, .at_least = true },
	  blk_write },
	{ { .id = "vmm_blk_read", .what = "(vmm) virtio-blk sequential 1 MiB reads", .unit = "MiB/s",
	    .baseline_what = "the same pread()s on the host", .target = 0.5, .at_least = true },
	  blk_read },
};
#define NFIG (sizeof(figures) / sizeof(figures[0]))
#define PIN_TARGET_NS 50.0 /* (d) is an absolute budget: ns per pair */

static void stats(const struct figure *f, double *ratio, double *lo, double *mid, double *hi)
{
	double r[MAX_REPS];

	for (int i = 0; i < f->reps; i++)
		r[i] = f->value[i] / f->base[i];
	qsort(r, f->reps, sizeof(r[0]), cmp_double);
	*lo = r[0];
	*hi = r[f->reps - 1];
	*mid = median(r, f->reps);
	*ratio = *mid;
}

static bool met(const struct figure *f, double ratio)
{
	if (!strcmp(f->id, "pin_unpin"))
		return median((double *)f->value, f->reps) <= PIN_TARGET_NS;
	return f->at_least ? ratio >= f->target : ratio <= f->target;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "only", required_argument, NULL, 'o' },
		{ "json", required_argument, NULL, 'j' },
		{ "check", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *only = NULL, *json = NULL;
	bool all_met = true, check = false;
	FILE *out = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "r:o:j:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			reps = atoi(optarg);
			if (reps < 1 || reps > MAX_REPS) {
				fprintf(stderr, "gmem-bench: --reps must be 1..%d\n", MAX_REPS);
				return 2;
			}
			break;
		case 'o':
			only = optarg;
			break;
		case 'j':
			json = optarg;
			break;
		case 'c':
			check = true;
			break;
		case 'h':
			printf("usage: gmem-bench [--reps N] [--only SUBSTRING] [--json FILE] [--check]\n"
			       "  --check: exit 1 if a figure misses its target\n");
			return 0;
		default:
			fprintf(stderr, "usage: gmem-bench [--reps N] [--only SUBSTRING] [--json FILE] [--check]\n");
			return 2;
		}
	}
	if (json && !(out = fopen(json, "w"))) {
		fprintf(stderr, "gmem-bench: %s: %s\n", json, strerror(errno));
		return 1;
	}

	printf("%-54s %10s %10s %-8s %17s %9s\n", "figure", "gmem", "baseline", "unit",
	       "ratio min/med/max", "target");
	if (out)
		fprintf(out, "{\n  \"reps\": %d,\n  \"figures\": [", reps);
	for (size_t i = 0, n = 0; i < NFIG; i++) {
		struct figure *f = &figures[i].f;
		bool absolute = !strcmp(f->id, "pin_unpin");
		double ratio, lo, mid, hi;
		char target[16];
		bool ok;

		if (only && !strstr(f->id, only))
			continue;
		f->reps = reps;
		for (int r = 0; r < reps && !f->skipped; r++)
			figures[i].run(f, r);
		if (f->skipped) {
			printf("%-54s skipped: %s\n", f->what, f->why);
			continue;
		}
		stats(f, &ratio, &lo, &mid, &hi);
		ok = met(f, ratio);
		all_met &= ok;
		if (absolute)
			snprintf(target, sizeof(target), "<=%.0fns", PIN_TARGET_NS);
		else
			snprintf(target, sizeof(target), "%s%.2fx", f->at_least ? ">=" : "<=", f->target);
		printf("%-54s %10.0f %10.0f %-8s %5.2f/%5.2f/%5.2f %9s %s\n", f->what,
		       median(f->value, reps), median(f->base, reps), f->unit, lo, mid, hi, target,
		       ok ? "met" : "MISSED");
		printf("%-54s baseline: %s\n", "", f->baseline_what);
		if (out) {
			fprintf(out, "%s\n    {\"id\": \"%s\", \"what\": \"%s\", \"unit\": \"%s\", "
				     "\"baseline\": \"%s\", \"value_median\": %.1f, \"baseline_median\": %.1f, "
				     "\"ratio_min\": %.4f, \"ratio_median\": %.4f, \"ratio_max\": %.4f, "
				     "\"target\": \"%s\", \"met\": %s}",
				n++ ? "," : "", f->id, f->what, f->unit, f->baseline_what,
				median(f->value, reps), median(f->base, reps), lo, mid, hi, target,
				ok ? "true" : "false");
		}
	}
	if (out) {
		fprintf(out, "\n  ]\n}\n");
		fclose(out);
	}
	printf("%s\n", all_met ? "all targets met" : "some targets MISSED");
	return check && !all_met ? 1 : 0;
}
