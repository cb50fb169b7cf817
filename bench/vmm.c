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
	const char *vmm = getenv("GMEM_VMM"), *dir = getenv("GUEST_BENCH_DIR");
	const char *args = getenv("GMEM_VMM_ARGS");
	char cmd[1024];
	size_t n = 0;
	FILE *p;

	if (access("/dev/kvm", R_OK | W_OK)) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "no usable /dev/kvm");
		return false;
	}
	snprintf(cmd, sizeof(cmd), "%s %s %s %s/%s.elf", vmm ? vmm : "build/vmm/gmem-vmm",
		 args ? args : "", extra, dir ? dir : "build/guest/bench", name);
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
};
const size_t n_vmm_figures = sizeof(vmm_figures) / sizeof(vmm_figures[0]);
