// SPDX-License-Identifier: MIT
/*
 * helpers.c - timing, statistics, plain mappings and the series log.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

int bench_reps = 5;

double now_ns(void)
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

double median(const double *v, int n)
{
	double s[MAX_REPS * 4];

	if (n > (int)(sizeof(s) / sizeof(s[0])))
		n = (int)(sizeof(s) / sizeof(s[0]));
	memcpy(s, v, (size_t)n * sizeof(*v));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

void die(const char *what, int err)
{
	fprintf(stderr, "gmem-bench: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

void touch_pages(volatile char *p, uint64_t len)
{
	for (uint64_t o = 0; o < len; o += PS)
		p[o] = 1;
}

/* A plain shared memfd mapping: the no-enforcement floor. */
char *plain_map(uint64_t size, int *fd)
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

void plain_unmap(char *p, uint64_t size, int fd)
{
	munmap(p, size);
	close(fd);
}

double tsc_ghz(void)
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

/* The series rows, kept as JSON text until written. */
struct row {
	struct row *next;
	char table[32];
	char *json;
};

static struct row *rows, **rows_tail = &rows;

void series(const char *table, const char *fmt, ...)
{
	struct row *r = calloc(1, sizeof(*r));
	va_list ap;

	if (!r)
		die("series", ENOMEM);
	snprintf(r->table, sizeof(r->table), "%s", table);
	va_start(ap, fmt);
	if (vasprintf(&r->json, fmt, ap) < 0)
		die("series", ENOMEM);
	va_end(ap);
	*rows_tail = r;
	rows_tail = &r->next;
}

/* Each table once, its rows in the order they came, wherever they came between others'. */
void series_write_json(void *file)
{
	FILE *f = file;
	bool any = false;

	fprintf(f, "  \"series\": {");
	for (struct row *t = rows; t; t = t->next) {
		bool seen = false, first = true;

		for (struct row *e = rows; e != t && !seen; e = e->next)
			seen = !strcmp(e->table, t->table);
		if (seen)
			continue; /* written with its table's first row */
		fprintf(f, "%s\n    \"%s\": [", any ? "," : "", t->table);
		any = true;
		for (struct row *r = t; r; r = r->next) {
			if (strcmp(r->table, t->table))
				continue;
			fprintf(f, "%s\n      {%s}", first ? "" : ",", r->json);
			first = false;
		}
		fprintf(f, "\n    ]");
	}
	fprintf(f, "\n  }\n");
}
