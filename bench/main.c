// SPDX-License-Identifier: MIT
/*
 * main.c - gmem-bench: every figure beside its baseline from the same run,
 * then gmem beside the strategies VMMs use today.
 *
 *   gmem-bench [--reps N] [--only SUBSTRING] [--json FILE] [--check]
 *              [--budgets FILE] [--figures-only]
 *
 * --check judges each figure's median against its budget in the budgets
 * file (docs/PERFORMANCE.md, section "Budgets") and exits 1 on a miss, on
 * a figure it could not measure (what that needs is missing: a figure
 * not measured is not within its budget), and when --only leaves no
 * figure to judge.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"

#define MAX_BUDGETS 64

struct budget {
	char id[48];
	bool at_least;
	double limit;
};

static struct budget budgets[MAX_BUDGETS];
static int nbudgets;

/*
 * Budget rows look like "| first_touch | <= 1.5 |" (or ≤ / ≥, and an
 * absolute figure's unit after the number, "<= 50 ns").
 */
static int load_budgets(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "re");

	if (!f) {
		fprintf(stderr, "gmem-bench: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) && nbudgets < MAX_BUDGETS) {
		char id[48], op[8];
		double limit;

		if (sscanf(line, "| %47[a-z0-9_] | %7[<>=\xe2\x89\xa4\xa5] %lf", id, op, &limit) != 3)
			continue;
		snprintf(budgets[nbudgets].id, sizeof(budgets[0].id), "%s", id);
		budgets[nbudgets].at_least = op[0] == '>' || !strcmp(op, "\xe2\x89\xa5");
		budgets[nbudgets].limit = limit;
		nbudgets++;
	}
	fclose(f);
	return 0;
}

static const struct budget *budget_of(const char *id)
{
	for (int i = 0; i < nbudgets; i++)
		if (!strcmp(budgets[i].id, id))
			return &budgets[i];
	return NULL;
}

static void ratios(const struct figure *f, double *lo, double *mid, double *hi)
{
	double r[MAX_REPS];

	for (int i = 0; i < f->reps; i++)
		r[i] = f->absolute ? f->value[i] : f->value[i] / f->base[i];
	*mid = median(r, f->reps);
	*lo = *hi = r[0];
	for (int i = 1; i < f->reps; i++) {
		*lo = r[i] < *lo ? r[i] : *lo;
		*hi = r[i] > *hi ? r[i] : *hi;
	}
}

static void machine_json(FILE *out)
{
	char model[128] = "unknown", line[256];
	unsigned long long mem_kb = 0;
	struct utsname u;
	FILE *f = fopen("/proc/cpuinfo", "re");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
			snprintf(model, sizeof(model), "%s", strchr(line, ':') + 2);
			model[strcspn(model, "\n")] = '\0';
			break;
		}
	if (f)
		fclose(f);
	f = fopen("/proc/meminfo", "re");
	if (f && fscanf(f, "MemTotal: %llu kB", &mem_kb) != 1)
		mem_kb = 0;
	if (f)
		fclose(f);
	uname(&u);
	fprintf(out, "  \"machine\": {\"cpus\": %ld, \"cpu\": \"%s\", \"memory_gib\": %.0f, "
		     "\"kernel\": \"%s\"},\n",
		sysconf(_SC_NPROCESSORS_ONLN), model, mem_kb / 1048576.0, u.release);
}

/* The figures that could not be measured, and why, for the report. */
static void not_measured_json(FILE *out, struct bench_entry *const *sets, const size_t *set_len,
			      size_t nsets)
{
	int n = 0;

	for (size_t set = 0; set < nsets; set++)
		for (size_t i = 0; i < set_len[set]; i++) {
			const struct figure *f = &sets[set][i].f;

			if (f->skipped)
				fprintf(out, "%s\n    {\"id\": \"%s\", \"what\": \"%s\", \"why\": \"%s\"}",
					n++ ? "," : "", f->id, f->what, f->why);
		}
}

static const char usage[] =
	"usage: gmem-bench [--reps N] [--only SUBSTRING] [--json FILE] [--check] [--budgets FILE]\n"
	"                  [--figures-only]\n"
	"  --check          exit 1 if a figure misses its budget (docs/PERFORMANCE.md), cannot be\n"
	"                   measured, or none matches --only\n"
	"  --figures-only   skip the comparison with other strategies\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "only", required_argument, NULL, 'o' },
		{ "json", required_argument, NULL, 'j' },
		{ "check", no_argument, NULL, 'c' },
		{ "budgets", required_argument, NULL, 'b' },
		{ "figures-only", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *only = NULL, *json = NULL, *budget_file = "docs/PERFORMANCE.md";
	struct bench_entry *sets[] = { core_figures, harden_figures, thp_figures, hugeconv_figures,
				       access_figures, track_figures, snapshot_figures, vmm_figures,
				       migrate_figures };
	const size_t set_len[] = { n_core_figures, n_harden_figures, n_thp_figures,
				   n_hugeconv_figures, n_access_figures, n_track_figures,
				   n_snapshot_figures, n_vmm_figures, n_migrate_figures };
	bool check = false, figures_only = false, missed = false, unbudgeted = false;
	int c, n = 0, matched = 0, unmeasured = 0;
	FILE *out = NULL;

	/* a baseline of the write-tracking figures, in a process of its own (track.c) */
	if (argc > 1 && !strcmp(argv[1], "--track-baseline"))
		return track_baseline_main(argc, argv);
	while ((c = getopt_long(argc, argv, "r:o:j:cb:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			bench_reps = atoi(optarg);
			if (bench_reps < 1 || bench_reps > MAX_REPS) {
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
		case 'b':
			budget_file = optarg;
			break;
		case 'f':
			figures_only = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (load_budgets(budget_file) && check)
		return 2;
	if (json && !(out = fopen(json, "w"))) {
		fprintf(stderr, "gmem-bench: %s: %s\n", json, strerror(errno));
		return 1;
	}
	if (out) {
		fprintf(out, "{\n  \"reps\": %d,\n", bench_reps);
		machine_json(out);
		fprintf(out, "  \"figures\": [");
	}

	printf("%-54s %10s %10s %-8s %17s %9s\n", "figure", "gmem", "baseline", "unit",
	       "ratio min/med/max", "budget");
	for (size_t set = 0; set < sizeof(sets) / sizeof(sets[0]); set++) {
		for (size_t i = 0; i < set_len[set]; i++) {
			struct figure *f = &sets[set][i].f;
			const struct budget *b = budget_of(f->id);
			double lo, mid, hi;
			char limit[24];
			bool ok;

			if (only && !strstr(f->id, only))
				continue;
			matched++;
			if (b) {
				f->target = b->limit;
				f->at_least = b->at_least;
			} else if (check) {
				fprintf(stderr, "gmem-bench: no budget for %s in %s\n", f->id, budget_file);
				unbudgeted = true;
			}
			f->reps = bench_reps;
			for (int r = 0; r < bench_reps && !f->skipped; r++)
				sets[set][i].run(f, r);
			if (f->skipped) {
				printf("%-54s NOT MEASURED: %s\n", f->what, f->why);
				unmeasured++;
				continue;
			}
			ratios(f, &lo, &mid, &hi);
			f->target += f->allowance;
			ok = f->at_least ? mid >= f->target : mid <= f->target;
			missed |= !ok;
			snprintf(limit, sizeof(limit), "%s%.*f%s", f->at_least ? ">=" : "<=",
				 f->absolute ? 0 : 2, f->target, f->absolute ? "" : "x");
			printf("%-54s %10.0f %10.0f %-8s %5.2f/%5.2f/%5.2f %9s %s\n", f->what,
			       median(f->value, bench_reps), median(f->base, bench_reps), f->unit, lo, mid,
			       hi, limit, ok ? "met" : "MISSED");
			printf("%-54s baseline: %s\n", "", f->baseline_what);
			if (out)
				fprintf(out,
					"%s\n    {\"id\": \"%s\", \"what\": \"%s\", \"unit\": \"%s\", "
					"\"baseline\": \"%s\", \"value_median\": %.1f, "
					"\"baseline_median\": %.1f, \"ratio_min\": %.4f, "
					"\"ratio_median\": %.4f, \"ratio_max\": %.4f, \"absolute\": %s, "
					"\"budget\": \"%s\", \"met\": %s}",
					n++ ? "," : "", f->id, f->what, f->unit, f->baseline_what,
					median(f->value, bench_reps), median(f->base, bench_reps), lo, mid,
					hi, f->absolute ? "true" : "false", limit, ok ? "true" : "false");
		}
	}
	if (!figures_only)
		compare_all(bench_reps, only);
	if (out) {
		fprintf(out, "\n  ],\n  \"not_measured\": [");
		not_measured_json(out, sets, set_len, sizeof(sets) / sizeof(sets[0]));
		fprintf(out, "\n  ],\n");
		series_write_json(out);
		fprintf(out, "}\n");
		fclose(out);
	}
	putchar('\n');
	if (!matched) {
		printf("no figure's id contains \"%s\" (--only): no figure was measured%s\n", only,
		       check ? ", so none is within its budget" : "");
		return check ? 1 : 0;
	}
	if (unmeasured)
		printf("%d of %d figures NOT MEASURED%s\n", unmeasured, matched,
		       check ? ": not within budget until measured" : "");
	if (missed)
		printf("some figures MISSED\n");
	if (unbudgeted)
		printf("some figures have no budget in %s\n", budget_file);
	if (!unmeasured && !missed && !unbudgeted)
		printf("every figure within its budget\n");
	return check && (unmeasured || missed || unbudgeted) ? 1 : 0;
}
