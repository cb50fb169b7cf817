/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what gmem-bench's parts share: figures, series, timing helpers.
 *
 * A *figure* is one measurement next to its baseline from the same run,
 * repeated; its ratio is judged against a budget (docs/PERFORMANCE.md).
 * A *series* row is a data point of a comparison (conversion latency by
 * size and strategy, cost by number of runs, ...), written to the JSON for
 * the tables and plots.
 */
#ifndef GMEM_BENCH_H
#define GMEM_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "gmem.h"

#define PS GMEM_PAGE_SIZE
#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define TiB (1ULL << 40)
#define MAX_REPS 64

struct figure {
	const char *id, *what, *unit, *baseline_what;
	double target;  /* the ratio must be <= target (>= with at_least) */
	double allowance; /* added to the target, measured in the run (vmm_convert's zap) */
	bool at_least;  /* a throughput: higher is better */
	bool absolute;  /* judged on the value itself (target in `unit`), not the ratio */
	bool skipped;   /* what it needs is missing; why says what */
	char why[96];
	double value[MAX_REPS], base[MAX_REPS];
	int reps;
};

struct bench_entry {
	struct figure f;
	void (*run)(struct figure *f, int rep);
};

extern struct bench_entry core_figures[], harden_figures[], vmm_figures[], access_figures[],
	thp_figures[], hugeconv_figures[], track_figures[], snapshot_figures[], migrate_figures[];
extern const size_t n_core_figures, n_harden_figures, n_vmm_figures, n_access_figures,
	n_thp_figures, n_hugeconv_figures, n_track_figures, n_snapshot_figures, n_migrate_figures;

/* The comparisons (compare.c): each writes series rows and prints a table. */
void compare_all(int reps, const char *only);

/*
 * track.c: write tracking beside other methods at the published anchor's
 * sizes (a comparison), and the baselines' own processes: main() hands
 * "--track-baseline ..." to track_baseline_main().
 */
void track_sizes(void);
int track_baseline_main(int argc, char **argv);

/* helpers.c */
extern int bench_reps;
double now_ns(void);
double median(const double *v, int n);
double tsc_ghz(void);
void die(const char *what, int err) __attribute__((noreturn));
void touch_pages(volatile char *p, uint64_t len);
char *plain_map(uint64_t size, int *fd);
void plain_unmap(char *p, uint64_t size, int fd);

/* child.c: gmem-vmm ($GMEM_VMM) and the benchmark guests ($GUEST_BENCH_DIR/NAME.elf) */
const char *bench_vmm_path(void);
const char *bench_guest_path(const char *name, char *buf, size_t len);

/* gmem-vmm in a process of its own, its standard output piped, stderr dropped. */
struct vmm_child {
	pid_t pid;
	int out;
	char buf[8192]; /* its output so far */
	size_t got;
};

bool vmm_child_start(struct vmm_child *c, const char *const argv[]); /* argv after its name */
/* Until its output holds line, timeout_s at most. */
bool vmm_child_wait_line(struct vmm_child *c, const char *line, int timeout_s);
/* Its exit status (killed first with sig, if sig); -1 for a signal's end. */
int vmm_child_end(struct vmm_child *c, int sig);

/* A series row: table name, then a JSON object's members, printf-style. */
void series(const char *table, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void series_write_json(void *file);

#endif /* GMEM_BENCH_H */
