// SPDX-License-Identifier: MIT
/*
 * vmm.c - gmem-vmm's figures.  A benchmark guest (guest/bench/) times itself
 * with rdtsc; the host's baselines are converted to the same units with the
 * TSC rate measured in the same run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

/*
 * Run gmem-vmm on a benchmark guest; its standard output in out.
 * GMEM_VMM_ARGS, if set, goes first on its command line (--device-io copy,
 * --backing hugetlb-2m: the figures on another configuration).
 */
static bool run_guest(struct figure *f, const char *name, const char *extra, char *out, size_t len)
{
	const char *args = getenv("GMEM_VMM_ARGS");
	char cmd[1024], elf[512];
	size_t n = 0;
	FILE *p;

	if (access("/dev/kvm", R_OK | W_OK)) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "no usable /dev/kvm");
		return false;
	}
	snprintf(cmd, sizeof(cmd), "%s %s %s %s", bench_vmm_path(), args ? args : "", extra,
		 bench_guest_path(name, elf, sizeof(elf)));
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
	f->allowance = zap_cycles() / f->base[r];
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

/* ---- (s4) a restored guest's first instruction ---- */

#define RESUME_FILE "/var/tmp/gmem-bench-resume.snap"

/*
 * The resume guest (1 GiB, 254 MiB populated) saved to RESUME_FILE once a
 * run: started, saved with SIGUSR1 when it says it is ready (gmem-vmm
 * pauses it and exits 0).  false, and f skipped, if that fails.
 */
static bool resume_saved(struct figure *f)
{
	static int state; /* 0 not yet, 1 saved, -1 failed */
	struct vmm_child c;
	char elf[512];

	if (!state) {
		state = -1;
		if (!access("/dev/kvm", R_OK | W_OK) &&
		    vmm_child_start(&c, (const char *const[]){ "--mem", "1G", "--save", RESUME_FILE,
							    "--timeout", "300",
							    bench_guest_path("resume", elf, sizeof(elf)),
							    NULL })) {
			/* ~1.5 s to populate here; two minutes is a stuck guest */
			bool ready = vmm_child_wait_line(&c, "resume: ready", 120);

			if (ready)
				kill(c.pid, SIGUSR1);
			if (vmm_child_end(&c, ready ? 0 : SIGKILL) == 0 && ready)
				state = 1;
		}
	}
	if (state < 0) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "no usable /dev/kvm, or the resume guest's save failed");
	}
	return state > 0;
}

/* gmem-vmm --restore RESUME_FILE [--lazy] for a second: its --stats' times, ms. */
static bool restore_times(bool lazy, double *first_ms, double *filled_ms)
{
	char cmd[1024], json[8192], *p;
	const char *stats = "/var/tmp/gmem-bench-resume.json";
	FILE *fp;
	size_t n;

	snprintf(cmd, sizeof(cmd), "%s --restore %s %s --timeout 1 --stats %s >/dev/null 2>&1",
		 bench_vmm_path(), RESUME_FILE, lazy ? "--lazy" : "", stats);
	if (WEXITSTATUS(system(cmd)) != 124) /* the guest reads for ever: the timeout ends it */
		return false;
	fp = fopen(stats, "r");
	if (!fp)
		return false;
	n = fread(json, 1, sizeof(json) - 1, fp);
	fclose(fp);
	unlink(stats);
	json[n] = '\0';
	p = strstr(json, "\"first_instruction_ms\": ");
	return p && sscanf(p, "\"first_instruction_ms\": %lf, \"filled_ms\": %lf", first_ms,
			   filled_ms) == 2;
}

/* (s4) lazy vs eager: gmem-vmm's start to the restored guest's first instruction. */
static void restore_first_instruction(struct figure *f, int r)
{
	double lazy_first, lazy_filled, eager_first, eager_filled;

	if (!resume_saved(f))
		return;
	for (int i = 0; i < 2; i++) { /* both orders: neither always first */
		bool ok = (i + r) % 2 ? restore_times(true, &lazy_first, &lazy_filled)
				      : restore_times(false, &eager_first, &eager_filled);

		if (!ok) {
			f->skipped = true;
			snprintf(f->why, sizeof(f->why), "gmem-vmm --restore failed");
			break;
		}
	}
	if (!f->skipped) {
		f->value[r] = lazy_first * 1e6;
		f->base[r] = eager_first * 1e6;
		series("vmm_restore", "\"rep\": %d, \"lazy_first_ms\": %.1f, "
				      "\"lazy_filled_ms\": %.1f, \"eager_first_ms\": %.1f",
		       r, lazy_first, lazy_filled, eager_first);
	}
	if (f->skipped || r == f->reps - 1)
		unlink(RESUME_FILE);
}

struct bench_entry vmm_figures[] = {
	{ { .id = "vmm_convert", .what = "(vmm) guest conversion of a page, round trip",
	    .unit = "cycles", .baseline_what = "a null hypercall round trip; target 1.5x plus the zap",
	    .target = 1.5 },
	  hc_convert },
	{ { .id = "vmm_blk_write", .what = "(vmm) virtio-blk sequential 1 MiB writes",
	    .unit = "MiB/s", .baseline_what = "the same pwrite()s on the host", .target = 0.5,
	    .at_least = true },
	  blk_write },
	{ { .id = "vmm_blk_read", .what = "(vmm) virtio-blk sequential 1 MiB reads", .unit = "MiB/s",
	    .baseline_what = "the same pread()s on the host", .target = 0.5, .at_least = true },
	  blk_read },
	{ { .id = "snapshot_vmm_first_instruction",
	    .what = "(s4) gmem-vmm --restore --lazy: start to first instruction", .unit = "ns",
	    .baseline_what = "the eager --restore of the same 1 GiB guest (254 MiB populated)",
	    .target = 0.25 },
	  restore_first_instruction },
};
const size_t n_vmm_figures = sizeof(vmm_figures) / sizeof(vmm_figures[0]);
