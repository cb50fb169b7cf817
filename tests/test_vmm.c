// SPDX-License-Identifier: MIT
/*
 * test_vmm.c - gmem-vmm end to end: guest programs (guest/tests/) run in
 * real KVM VMs, checked by exit status, console, --stats counters and the
 * disk image on the host.  Without /dev/kvm every case says SKIP.
 *
 * GMEM_VMM names the binary and GUEST_DIR the guest programs (make check
 * sets both).  Every file the cases make is in one directory of the run's
 * own (mkdtemp() in $TMPDIR or /tmp), removed with all in it as the run
 * ends: runs side by side share no name, and a failed case leaves nothing.
 *
 * The device cases run with the devices on views (--device-io map) and
 * on copies (copy, which hugetlbfs needs), and again on hugetlb-2m when
 * the pool can give the pages; the demo runs on every huge backing.  The
 * hugetlb pool and shmem_enabled are changed for a case only, and put back
 * as it ends (sysfs.c).
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "sysfs.h"

#define OUT_MAX 65536

struct run {
	int status;
	double seconds; /* wall time, start to exit */
	char out[OUT_MAX], err[OUT_MAX];
};

/* Where a case runs the devices: a backing and how devices reach RAM there. */
struct mode {
	const char *backing, *io;
};
static const struct mode map_mode = { "shmem", "map" };
static const struct mode copy_mode = { "shmem", "copy" };
static const struct mode hugetlb_mode = { "hugetlb-2m", "copy" };

static bool copies(const struct mode *m)
{
	return !strcmp(m->io, "copy");
}

static const char *vmm_path(void)
{
	const char *p = getenv("GMEM_VMM");

	return p ? p : "build/vmm/gmem-vmm";
}

static const char *guest(const char *name)
{
	static char path[4][512];
	static int next;
	const char *dir = getenv("GUEST_DIR");
	char *p = path[next++ % 4];

	snprintf(p, 512, "%s/%s.elf", dir ? dir : "build/guest/tests", name);
	return p;
}

static char scratch_dir[PATH_MAX];
static pid_t scratch_owner;

__attribute__((constructor)) static void scratch_make(void)
{
	const char *tmp = getenv("TMPDIR");
	int n = snprintf(scratch_dir, sizeof(scratch_dir), "%s/gmem-test-vmm-XXXXXX",
			 tmp && *tmp ? tmp : "/tmp");

	if (n < 0 || (size_t)n >= sizeof(scratch_dir) || !mkdtemp(scratch_dir))
		scratch_dir[0] = '\0';
	scratch_owner = getpid();
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	remove(path);
	return 0;
}

__attribute__((destructor)) static void scratch_remove(void)
{
	/* each case's child exits through here too: only the run removes it */
	if (scratch_dir[0] && getpid() == scratch_owner)
		nftw(scratch_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* path = `name` in the run's directory. */
static char *scratch(char path[PATH_MAX], const char *name)
{
	if (!scratch_dir[0])
		test_fail(__FILE__, __LINE__, "no directory of the run's own: mkdtemp failed");
	if (snprintf(path, PATH_MAX, "%s/%s", scratch_dir, name) >= PATH_MAX)
		test_fail(__FILE__, __LINE__, "%s/%s: too long", scratch_dir, name);
	return path;
}

static void need_kvm(void)
{
	if (access("/dev/kvm", R_OK | W_OK))
		SKIP("no usable /dev/kvm: %s", strerror(errno));
	if (access(vmm_path(), X_OK))
		SKIP("%s not built", vmm_path());
}

static void slurp(int fd, char *buf)
{
	ssize_t n = pread(fd, buf, OUT_MAX - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	close(fd);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A gmem-vmm started and not yet waited for: its output goes to files. */
struct started {
	pid_t pid;
	int out, err;
	double t0;
};

static void vmm_start(struct started *st, const char *const args[])
{
	char out_name[PATH_MAX], err_name[PATH_MAX];
	const char *argv[32] = { vmm_path() };
	int n = 1;

	st->t0 = now_s();
	st->out = mkstemp(scratch(out_name, "out-XXXXXX"));
	st->err = mkstemp(scratch(err_name, "err-XXXXXX"));
	CHECK(st->out >= 0 && st->err >= 0);
	unlink(out_name);
	unlink(err_name);
	for (; args[n - 1] && n < 31; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	st->pid = fork();
	CHECK(st->pid >= 0);
	if (st->pid == 0) {
		dup2(st->out, 1);
		dup2(st->err, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
}

/* Wait for it - killed after limit_s seconds from its start, if limit_s - and collect r. */
static void vmm_finish(struct started *st, struct run *r, unsigned int limit_s)
{
	int status;

	if (limit_s) {
		pid_t done;

		while ((done = waitpid(st->pid, &status, WNOHANG)) == 0) {
			if (now_s() - st->t0 > limit_s)
				kill(st->pid, SIGKILL);
			usleep(10000);
		}
		CHECK(done == st->pid);
	} else {
		CHECK(waitpid(st->pid, &status, 0) == st->pid);
	}
	r->seconds = now_s() - st->t0;
	r->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	slurp(st->out, r->out);
	slurp(st->err, r->err);
	if (r->err[0])
		printf("  stderr: %s", r->err);
}

/*
 * Run gmem-vmm with args (NULL-terminated).  With limit_s, kill it after
 * that many seconds (status 128 + SIGKILL): a case that measures how long
 * the VMM takes to end need not wait for it to hang.
 */
static void vmm_run(struct run *r, unsigned int limit_s, const char *const args[])
{
	struct started st;

	vmm_start(&st, args);
	vmm_finish(&st, r, limit_s);
}

#define VMM(r, ...) vmm_run(r, 0, (const char *const[]){ __VA_ARGS__, NULL })
#define VMM_WITHIN(r, limit_s, ...) vmm_run(r, limit_s, (const char *const[]){ __VA_ARGS__, NULL })
#define VMM_START(st, ...) vmm_start(st, (const char *const[]){ __VA_ARGS__, NULL })
/* The same in mode m: its backing and device path first. */
#define VMM_IN(m, r, ...)                                                                \
	vmm_run(r, 0, (const char *const[]){ "--backing", (m)->backing, "--device-io", (m)->io, \
					     __VA_ARGS__, NULL })
#define VMM_IN_WITHIN(m, r, limit_s, ...)                                                \
	vmm_run(r, limit_s, (const char *const[]){ "--backing", (m)->backing, "--device-io",  \
						   (m)->io, __VA_ARGS__, NULL })

static int lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* The value of "key": N in a --stats file. */
static long long stat_of(const char *path, const char *key)
{
	static char buf[8192];
	char pat[64], *p;
	FILE *f = fopen(path, "r");
	size_t n;

	CHECK(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = strstr(buf, pat);
	if (!p)
		test_fail(__FILE__, __LINE__, "no %s in %s", key, path);
	return atoll(p + strlen(pat));
}

/* A disk image of `sectors` 512-byte sectors; sector s filled with byte f(s). */
static void make_image(const char *path, int sectors, int fill)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	char sec[512];

	CHECK(fd >= 0);
	for (int s = 0; s < sectors; s++) {
		memset(sec, fill < 0 ? (char)s : fill, sizeof(sec));
		CHECK(write(fd, sec, sizeof(sec)) == sizeof(sec));
	}
	close(fd);
}

TEST_ONCE(vmm_boot_one_vcpu)
{
	struct run r;

	need_kvm();
	VMM(&r, guest("boot"));
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "hello from vCPU 0 of 1, 256 MiB"));
}

TEST_ONCE(vmm_boot_four_vcpus)
{
	struct run r;

	need_kvm();
	VMM(&r, "--cpus", "4", "--mem", "64M", guest("boot"));
	CHECK_EQ(r.status, 0);
	for (int i = 0; i < 4; i++) {
		char line[64];

		snprintf(line, sizeof(line), "hello from vCPU %d of 4, 64 MiB", i);
		CHECK(strstr(r.out, line));
	}
}

TEST_ONCE(vmm_exit_status_propagates)
{
	struct run r;

	need_kvm();
	VMM(&r, guest("exit_status"));
	CHECK_EQ(r.status, 42);
	CHECK(!r.err[0]);
}

TEST_ONCE(vmm_share_unshare_round_trip)
{
	const char *init[] = { "private", "shared" };
	char stats[PATH_MAX];
	struct run r;

	need_kvm();
	scratch(stats, "stats.json");
	for (int i = 0; i < 2; i++) {
		VMM(&r, "--init", init[i], "--stats", stats, guest("convert"));
		CHECK_EQ(r.status, 0);
		CHECK(strstr(r.out, "contents preserved"));
		CHECK(stat_of(stats, "to_private") >= 5);
		CHECK(stat_of(stats, "to_shared") >= 5);
	}
	unlink(stats);
}

TEST_ONCE(vmm_hypercall_invalid_args)
{
	char stats[PATH_MAX];
	struct run r;

	need_kvm();
	VMM(&r, "--stats", scratch(stats, "stats.json"), guest("hypercall_args"));
	CHECK_EQ(r.status, 0);
	CHECK_EQ(stat_of(stats, "einval"), 9);
	unlink(stats);
}

/* RAM past 3 GiB sits above the hole at 4 GiB and converts like the rest. */
TEST_ONCE(vmm_high_ram)
{
	struct run r;

	need_kvm();
	VMM(&r, "--mem", "4G", guest("high_ram"));
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "1024 MiB above 4 GiB converts in place"));
}

/* Host touches of private memory are refused while the guest runs on. */
static void check_host_touch_denied(const struct mode *m)
{
	const char *sig[] = { "bus", "segv" };
	char stats[PATH_MAX];
	struct run r;

	scratch(stats, "stats.json");
	for (int i = 0; i < 2; i++) {
		VMM_IN(m, &r, "--snoop", "--fault-signal", sig[i], "--stats", stats,
		       guest("snoop_target"));
		CHECK_EQ(r.status, 0);
		CHECK(strstr(r.out, "snoop_target: done"));
		CHECK(stat_of(stats, "denied") > 0);
		CHECK_EQ(stat_of(stats, "secrets_seen"), 0);
		CHECK_EQ(stat_of(stats, "audit_failures"), 0);
	}
	unlink(stats);
}

TEST_ONCE(vmm_host_touch_denied)
{
	need_kvm();
	check_host_touch_denied(&map_mode);
}

/* The snoop's check can fail: a secret left in shared memory is seen. */
static void check_snoop_sees_leaked_secret(const struct mode *m)
{
	struct run r;

	VMM_IN(m, &r, "--snoop", guest("leak"));
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "secret"));
}

TEST_ONCE(vmm_snoop_sees_leaked_secret)
{
	need_kvm();
	check_snoop_sees_leaked_secret(&map_mode);
}

/*
 * A buffer in flight cannot be made private; the rings are held long-term
 * with views (-EBUSY), not at all with copies (0).
 */
static void check_inflight(const struct mode *m)
{
	char stats[PATH_MAX];
	struct run r;

	VMM_IN(m, &r, "--disk-latency", "200", "--stats", scratch(stats, "stats.json"),
	       guest("inflight"));
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "converting the in-flight buffer: -11"));
	CHECK(strstr(r.out, "after completion: 0"));
	CHECK(strstr(r.out, copies(m) ? "converting a ring page: 0\n" : "converting a ring page: -16\n"));
	CHECK_EQ(stat_of(stats, "eagain"), 2);
	unlink(stats);
}

TEST_ONCE(vmm_inflight_buffer_eagain)
{
	need_kvm();
	check_inflight(&map_mode);
	check_inflight(&copy_mode);
}

static void check_private_buffer(const struct mode *m)
{
	char img[PATH_MAX], stats[PATH_MAX], buf[512];
	struct run r;
	int fd;

	make_image(scratch(img, "disk-priv.img"), 2048, -1);
	VMM_IN(m, &r, "--disk", img, "--stats", scratch(stats, "stats.json"), guest("private_buffer"));
	CHECK_EQ(r.status, 0);
	CHECK_EQ(stat_of(stats, "errors"), 4);
	CHECK_EQ(stat_of(stats, "bytes_written"), 0);
	fd = open(img, O_RDONLY);
	CHECK(fd >= 0);
	for (int s = 0; s < 2048; s++) { /* not a byte of it changed */
		CHECK(read(fd, buf, sizeof(buf)) == sizeof(buf));
		for (int i = 0; i < 512; i++)
			CHECK_EQ(buf[i], (char)s);
	}
	close(fd);
	unlink(img);
	unlink(stats);
}

TEST_ONCE(vmm_private_buffer_ioerr)
{
	need_kvm();
	check_private_buffer(&map_mode);
	check_private_buffer(&copy_mode);
}

static void check_disk_round_trip(const struct mode *m)
{
	char img[PATH_MAX];
	uint64_t words[64];
	struct run r;
	int fd;

	make_image(scratch(img, "disk-rt.img"), 4096, 0);
	VMM_IN(m, &r, "--disk", img, guest("disk_io"));
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "4096 sectors, round trip ok"));
	fd = open(img, O_RDONLY);
	CHECK(fd >= 0);
	for (uint64_t s = 0; s < 4096; s++) {
		CHECK(read(fd, words, sizeof(words)) == sizeof(words));
		for (uint64_t i = 0; i < 64; i++)
			CHECK_EQ(words[i], s >= 64 && s < 80 ? (s << 32 | i) : 0);
	}
	close(fd);
	unlink(img);
}

TEST_ONCE(vmm_disk_round_trip)
{
	need_kvm();
	check_disk_round_trip(&map_mode);
	check_disk_round_trip(&copy_mode);
}

TEST_ONCE(vmm_triple_fault_is_an_error)
{
	struct run r;

	need_kvm();
	VMM(&r, guest("triple_fault"));
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "triple fault"));
	CHECK_EQ(lines(r.err), 1);
}

TEST_ONCE(vmm_timeout)
{
	struct run r;

	need_kvm();
	VMM(&r, "--timeout", "1", "--cpus", "2", guest("spin"));
	CHECK_EQ(r.status, 124);
	CHECK(strstr(r.err, "timed out"));
}

/* Write a copy of boot.elf with its first PT_LOAD moved to paddr. */
static const char *elf_moved(uint64_t paddr)
{
	static char out[PATH_MAX];
	static char buf[1 << 20];
	int fd = open(guest("boot"), O_RDONLY);
	ssize_t n = read(fd, buf, sizeof(buf));
	Elf64_Ehdr *eh = (Elf64_Ehdr *)buf;

	CHECK(fd >= 0 && n > (ssize_t)sizeof(*eh));
	close(fd);
	for (int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr *ph = (Elf64_Phdr *)(buf + eh->e_phoff) + i;

		if (ph->p_type == PT_LOAD) {
			ph->p_paddr = paddr;
			break;
		}
	}
	fd = open(scratch(out, "moved.elf"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, buf, (size_t)n) == n);
	close(fd);
	return out;
}

TEST_ONCE(vmm_bad_elf_is_an_error)
{
	char text[PATH_MAX], missing[PATH_MAX];
	struct {
		const char *file, *says;
	} bad[] = {
		{ scratch(text, "not.elf"), "not an ELF file" },
		{ scratch(missing, "no-such.elf"), "No such file" },
		{ NULL, "below 1 MiB" },
		{ NULL, "not in RAM" },
	};
	const char *moved = NULL;
	struct run r;
	FILE *f = fopen(text, "w");

	need_kvm();
	CHECK(f);
	fputs("#!/bin/sh\necho not a guest\n", f);
	fclose(f);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *file = bad[i].file;

		if (i == 2)
			file = moved = elf_moved(0x10000);
		if (i == 3)
			file = moved = elf_moved(0x7ff00000000ULL);
		VMM(&r, file);
		CHECK_EQ(r.status, 1);
		if (!strstr(r.err, bad[i].says))
			test_fail(__FILE__, __LINE__, "want \"%s\" in: %s", bad[i].says, r.err);
		CHECK_EQ(lines(r.err), 1);
	}
	unlink(text);
	unlink(moved);
}

TEST_ONCE(vmm_missing_disk_is_an_error)
{
	char disk[PATH_MAX], says[PATH_MAX + 32];
	struct run r;

	need_kvm();
	VMM(&r, "--disk", scratch(disk, "no-such-disk.img"), guest("boot"));
	CHECK_EQ(r.status, 1);
	snprintf(says, sizeof(says), "cannot open disk %s", disk);
	CHECK(strstr(r.err, says));
	CHECK_EQ(lines(r.err), 1);
}

TEST_ONCE(vmm_command_line_errors)
{
	const char *bad[][2] = {
		{ "--mem", "3" }, { "--mem", "1T" }, { "--mem", "5M" }, { "--cpus", "0" },
		{ "--cpus", "65" }, { "--init", "secret" }, { "--fault-signal", "kill" },
		{ "--timeout", "-1" }, { "--disk-latency", "x" }, { "--bogus", NULL },
		{ "--backing", "hugetlb" }, { "--device-io", "mmap" }, { "--track", "ept" },
		{ "--dirty-rounds", "3" }, { "--dirty-map", "x" }, { "--lazy", NULL },
		{ "--save-after", "1" }, { "--save-continue", NULL }, { "--save-interval", "5" },
		{ "--save-after", "0" },
	};
	struct run r;

	need_kvm();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (bad[i][1])
			VMM(&r, bad[i][0], bad[i][1], guest("boot"));
		else
			VMM(&r, bad[i][0], guest("boot"));
		CHECK_EQ(r.status, 1);
		CHECK_EQ(lines(r.err), 1);
	}
	VMM(&r, guest("boot"), guest("boot"));
	CHECK_EQ(r.status, 1);
	VMM(&r, "--backing", "hugetlb-2m", "--device-io", "map", guest("boot"));
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "needs copy"));
	CHECK_EQ(lines(r.err), 1);
	VMM(&r, "--help");
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "usage: gmem-vmm"));
}

/* Without KVM: a clean error.  /dev/kvm is hidden in a private mount namespace. */
TEST_ONCE(vmm_without_kvm_is_an_error)
{
	char cmd[3 * PATH_MAX], out[PATH_MAX], err_path[PATH_MAX];
	int status;

	need_kvm();
	if (geteuid() != 0 || system("unshare --mount true 2>/dev/null"))
		SKIP("cannot make a mount namespace to hide /dev/kvm");
	snprintf(cmd, sizeof(cmd),
		 "unshare --mount sh -c 'mount --bind /dev/null /dev/kvm && exec %s %s' "
		 ">'%s' 2>'%s'",
		 vmm_path(), guest("boot"), scratch(out, "out"), scratch(err_path, "err"));
	status = system(cmd);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 1);
	{
		char err[512] = { 0 };
		FILE *f = fopen(err_path, "r");

		CHECK(f && fread(err, 1, sizeof(err) - 1, f) > 0);
		fclose(f);
		CHECK(strstr(err, "/dev/kvm"));
		CHECK_EQ(lines(err), 1);
	}
	unlink(out);
	unlink(err_path);
}

TEST_OPTS(vmm_demo, .once = true, .timeout_s = 120)
{
	char stats[PATH_MAX];
	struct run r;

	need_kvm();
	VMM(&r, "--stats", scratch(stats, "stats.json"));
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "every check held"));
	CHECK(stat_of(stats, "requests") > 0);
	CHECK(stat_of(stats, "denied") > 0);
	CHECK_EQ(stat_of(stats, "secrets_seen"), 0);
	CHECK_EQ(stat_of(stats, "pins_active"), 0);
	unlink(stats);
}

/* Whether every byte of sector s of the image at path is `byte`. */
static bool sector_is(const char *path, int s, char byte)
{
	char buf[512];
	int fd = open(path, O_RDONLY);
	bool same = true;

	CHECK(fd >= 0);
	CHECK(pread(fd, buf, sizeof(buf), (off_t)s * 512) == sizeof(buf));
	close(fd);
	for (int i = 0; i < 512; i++)
		same &= buf[i] == byte;
	return same;
}

/*
 * A request whose status byte the device cannot write (private, MMIO, a
 * hole, past RAM, not device-writable, zero length) is not executed: the
 * guest gets the chain back with length 0 and its IN buffer untouched,
 * and no OUT reaches the image.
 */
static void check_unreachable_status(const struct mode *m)
{
	char img[PATH_MAX], stats[PATH_MAX];
	struct run r;
	int written = 0;

	scratch(stats, "stats.json");
	make_image(scratch(img, "disk-nostatus.img"), 64, -1);
	VMM_IN(m, &r, "--disk", img, "--stats", stats, guest("unreachable_status"));
	if (r.status)
		printf("%s", r.out);
	for (int s = 0; s < 64; s++) {
		if (!sector_is(img, s, (char)s)) {
			printf("  sector %d of the image was written\n", s);
			written++;
		}
	}
	CHECK_EQ(written, 0);
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "6 kinds returned unexecuted"));
	CHECK_EQ(stat_of(stats, "no_status"), 12);
	CHECK_EQ(stat_of(stats, "requests"), 1); /* the guest's last read, status reachable */
	CHECK_EQ(stat_of(stats, "bytes_written"), 0);
	CHECK_EQ(stat_of(stats, "bytes_read"), 512);
	unlink(img);
	unlink(stats);
}

TEST_ONCE(vmm_unreachable_status_not_executed)
{
	need_kvm();
	check_unreachable_status(&map_mode);
	check_unreachable_status(&copy_mode);
}

/*
 * A driver 65,535 chains ahead on a 64-entry queue: the device asks for a
 * reset, executes none of them, takes nothing until the reset and works
 * after it, and --timeout still ends the VM on time.
 */
static void check_avail_overrun(const struct mode *m)
{
	char img[PATH_MAX], stats[PATH_MAX];
	struct run r;

	scratch(stats, "stats.json");
	make_image(scratch(img, "disk-overrun.img"), 256, -1);
	/* 1 ms a request: taking every chain would hold the exit for over a minute */
	VMM_IN_WITHIN(m, &r, 30, "--timeout", "3", "--disk-latency", "1", "--disk", img, "--stats",
		      stats, guest("avail_overrun"));
	printf("  %s  exit status %d after %.2f s\n", r.out, r.status, r.seconds);
	CHECK(strstr(r.out, "device status"));
	CHECK(strstr(r.out, "needs reset"));
	CHECK(strstr(r.out, "rung again, chains returned: 1\n")); /* the first write's */
	CHECK(strstr(r.out, "after a reset, a write: ok"));
	CHECK_EQ(r.status, 124);
	CHECK(r.seconds < 6);
	CHECK_EQ(stat_of(stats, "requests"), 2); /* the writes before the overrun, after the reset */
	CHECK(sector_is(img, 99, (char)0xab));
	CHECK(sector_is(img, 100, 100));
	CHECK(sector_is(img, 101, (char)0xab));
	unlink(img);
	unlink(stats);
}

TEST_ONCE(vmm_avail_overrun_needs_reset)
{
	need_kvm();
	check_avail_overrun(&map_mode);
	check_avail_overrun(&copy_mode);
}

/*
 * Ending the VM - the guest exits, or the timeout - drops the requests the
 * device has queued but not started, instead of waiting out each one.
 */
static void check_end_cancels(const struct mode *m)
{
	char img[PATH_MAX], stats[PATH_MAX];
	const struct {
		const char *how, *cpus, *timeout;
		int status;
		double within;
	} end[] = {
		{ "guest exit", "1", "60", 0, 4 },
		{ "timeout", "2", "1", 124, 5 },
	};
	struct run r;

	scratch(stats, "stats.json");
	scratch(img, "disk-slow.img");
	for (int i = 0; i < 2; i++) {
		long long executed, cancelled;
		int written = 0;

		make_image(img, 64, 0);
		/* 16 requests of 1 s each: waiting for them would take 16 s */
		VMM_IN_WITHIN(m, &r, 30, "--disk-latency", "1000", "--cpus", end[i].cpus, "--timeout",
			      end[i].timeout, "--disk", img, "--stats", stats, guest("slow_queue"));
		printf("  %s: exit status %d after %.2f s\n", end[i].how, r.status, r.seconds);
		CHECK(strstr(r.out, "16 writes queued"));
		CHECK_EQ(r.status, end[i].status);
		CHECK(r.seconds < end[i].within);
		executed = stat_of(stats, "requests");
		cancelled = stat_of(stats, "cancelled");
		CHECK(cancelled >= 15);
		CHECK_EQ(executed + cancelled, 16);
		for (int s = 32; s < 48; s++)
			written += sector_is(img, s, (char)0xc5);
		CHECK_EQ(written, executed);
		CHECK_EQ(stat_of(stats, "pins_active"), 0);
		CHECK(!strstr(r.err, "still pinned"));
	}
	unlink(img);
	unlink(stats);
}

TEST_OPTS(vmm_end_cancels_queued_requests, .once = true, .timeout_s = 120)
{
	need_kvm();
	check_end_cancels(&map_mode);
	check_end_cancels(&copy_mode);
}

/*
 * The guest makes its running queue's ring page private: refused while
 * views hold the rings; with copies it goes through, and the queue is
 * broken (NEEDS_RESET, nothing executed) until the driver resets it.
 */
static void check_ring_private(const struct mode *m)
{
	char img[PATH_MAX], stats[PATH_MAX];
	struct run r;

	scratch(stats, "stats.json");
	make_image(scratch(img, "disk-ring.img"), 64, 0);
	VMM_IN(m, &r, "--disk", img, "--stats", stats, guest("ring_private"));
	if (r.status)
		printf("%s", r.out);
	CHECK_EQ(r.status, 0);
	CHECK(sector_is(img, 7, (char)0xcd));
	if (!copies(m)) {
		CHECK(strstr(r.out, "ring page made private: -16\n"));
		CHECK_EQ(stat_of(stats, "requests"), 1);
	} else {
		CHECK(strstr(r.out, "ring page made private: 0\n"));
		CHECK(strstr(r.out, "needs reset; chains returned since: 0\n"));
		CHECK(strstr(r.out, "after a reset, a write: ok"));
		CHECK(sector_is(img, 8, 0)); /* the request on the private ring: never taken */
		CHECK(sector_is(img, 9, (char)0xee));
		CHECK_EQ(stat_of(stats, "requests"), 2);
	}
	CHECK_EQ(stat_of(stats, "pins_active"), 0);
	unlink(img);
	unlink(stats);
}

TEST_ONCE(vmm_ring_made_private)
{
	need_kvm();
	check_ring_private(&map_mode);
	check_ring_private(&copy_mode);
}

/*
 * Dirty tracking (--track): dirty_pattern writes private and shared pages
 * and has the device write others, each after a round it names, and every
 * one of them must be reported by a later round (the end's included) -
 * with KVM's dirty log for the guest's writes and gmem for the host's, and
 * with gmem for both.  The guest's untouched pages reported are false
 * positives: counted, and the same in both modes, whose guest-side
 * trackers differ but whose host side is the same.
 */
#define DIRTY_GFNS (256 * MiB / 4096) /* gmem-vmm's default RAM, in pages */

struct dirty_run {
	uint16_t last[DIRTY_GFNS]; /* the last round that reported each page; 0: none */
	int written, missed;      /* the guest's page writes; those no later round reported */
	int untouched, false_pos; /* its untouched pages; those a round reported */
	int rounds;               /* the last round's number */
	long long union_pages;
};

/* Read a --dirty-map file into d->last. */
static void dirty_map_read(const char *path, struct dirty_run *d)
{
	unsigned long long gpa, n;
	unsigned int round;
	FILE *f = fopen(path, "r");

	CHECK(f);
	while (fscanf(f, "%u %llx %llu", &round, &gpa, &n) == 3) {
		CHECK(gpa % 4096 == 0 && gpa / 4096 + n <= DIRTY_GFNS);
		for (unsigned long long g = gpa / 4096; g < gpa / 4096 + n; g++)
			if (round > d->last[g])
				d->last[g] = (uint16_t)round;
		if ((int)round > d->rounds)
			d->rounds = (int)round;
	}
	fclose(f);
}

/* Each page the guest names in out: written ones checked, untouched ones counted. */
static void dirty_check_pattern(const char *out, struct dirty_run *d)
{
	for (const char *l = out; (l = strstr(l, "dirty_pattern: ")); l++) {
		unsigned long long gpa, n;
		unsigned int after;
		char kind[16];

		if (sscanf(l, "dirty_pattern: wrote %15s %llx %llu after round %u", kind, &gpa, &n,
			   &after) == 4) {
			for (unsigned long long g = gpa / 4096; g < gpa / 4096 + n; g++) {
				CHECK(g < DIRTY_GFNS);
				d->written++;
				if (d->last[g] > after)
					continue;
				printf("  %s page %#llx written after round %u: last reported by round %u\n",
				       kind, g * 4096, after, d->last[g]);
				d->missed++;
			}
		} else if (sscanf(l, "dirty_pattern: untouched %15s %llx %llu", kind, &gpa, &n) == 3) {
			for (unsigned long long g = gpa / 4096; g < gpa / 4096 + n; g++) {
				CHECK(g < DIRTY_GFNS);
				d->untouched++;
				d->false_pos += d->last[g] > 0;
			}
		}
	}
}

/* dirty_pattern tracked as track says, in mode m with RAM first init, its rounds in *d. */
static void dirty_pattern_run(const struct mode *m, const char *init, const char *track,
			      struct dirty_run *d)
{
	char img[PATH_MAX], map[PATH_MAX], stats[PATH_MAX];
	struct run r;

	memset(d, 0, sizeof(*d));
	make_image(scratch(img, "disk-dirty.img"), 2048, -1); /* sector s holds byte s */
	/* rounds enough for the slowest guest: they stop when it ends */
	VMM_IN(m, &r, "--init", init, "--cpus", "2", "--track", track, "--dirty-rounds", "500", "--dirty-interval",
	       "20", "--disk", img, "--dirty-map", scratch(map, "dirty.map"), "--stats",
	       scratch(stats, "stats.json"), guest("dirty_pattern"));
	if (r.status == 1 && strstr(r.err, "KVM's dirty log unavailable"))
		SKIP("%s", r.err);
	if (r.status == 1 && strstr(r.err, "write tracking unavailable"))
		SKIP("%s", r.err);
	if (r.status)
		printf("%s", r.out);
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "dirty_pattern: done"));
	CHECK(!strstr(r.out, "never came"));
	dirty_map_read(map, d);
	dirty_check_pattern(r.out, d);
	d->union_pages = stat_of(stats, "union_pages");
	printf("  --track %s on %s, devices %s, RAM %s: %d rounds, %lld pages reported; %d page "
	       "writes, %d missed; %d untouched, %d reported\n",
	       track, m->backing, m->io, init, d->rounds, d->union_pages, d->written, d->missed,
	       d->untouched, d->false_pos);
	CHECK(d->written >= 30);
	CHECK_EQ(d->missed, 0);
	CHECK(d->untouched >= 10);
	unlink(img);
	unlink(map);
	unlink(stats);
}

static void check_dirty_tracking(const struct mode *m, const char *init, bool same_false_positives)
{
	static struct dirty_run kvm, gm;
	int only_kvm = 0, only_gmem = 0;

	dirty_pattern_run(m, init, "kvm", &kvm);
	dirty_pattern_run(m, init, "gmem", &gm);
	for (size_t g = 0; g < DIRTY_GFNS; g++) {
		only_kvm += kvm.last[g] && !gm.last[g];
		only_gmem += gm.last[g] && !kvm.last[g];
	}
	printf("  pages reported by one mode only: %d kvm, %d gmem\n", only_kvm, only_gmem);
	if (same_false_positives)
		CHECK_EQ(kvm.false_pos, gm.false_pos);
}

TEST_OPTS(vmm_dirty_tracking, .once = true, .timeout_s = 120)
{
	struct run r;

	need_kvm();
	check_dirty_tracking(&map_mode, "private", true);
	check_dirty_tracking(&copy_mode, "private", true);
	/*
	 * RAM shared first: the guest makes its private pages private, and
	 * those the device view had mapped (its fault-around maps shared
	 * neighbours) count as written - gmem's false positives, in both modes
	 */
	check_dirty_tracking(&map_mode, "shared", true);
	/* without --track the guest is told so (port 0x502 reads all ones) */
	VMM(&r, guest("dirty_pattern"));
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "nothing tracked"));
}

/* Skip unless `pages` pages of page_size are free in the pool (raised for the case if root). */
static void need_hugetlb(uint64_t page_size, unsigned long pages)
{
	if (!hugetlb_reserve(page_size, pages))
		SKIP("%lu free hugetlb pages of %llu kB needed, %lu free%s", pages,
		     (unsigned long long)(page_size >> 10), hugetlb_free(page_size),
		     geteuid() ? ", and not root to raise nr_hugepages" : " after raising nr_hugepages");
}

/* Every device case again on hugetlb-2m, where a view refuses any huge page in part private. */
TEST_OPTS(vmm_devices_on_hugetlb_2m, .once = true, .timeout_s = 240)
{
	need_kvm();
	need_hugetlb(2 * MiB, 256 * MiB / (2 * MiB)); /* gmem-vmm's default RAM */
	check_inflight(&hugetlb_mode);
	check_private_buffer(&hugetlb_mode);
	check_disk_round_trip(&hugetlb_mode);
	check_unreachable_status(&hugetlb_mode);
	check_avail_overrun(&hugetlb_mode);
	check_end_cancels(&hugetlb_mode);
	check_ring_private(&hugetlb_mode);
	check_host_touch_denied(&hugetlb_mode);
	check_snoop_sees_leaked_secret(&hugetlb_mode);
	sysfs_restore();
}

/* Whether a --stats file holds text. */
static bool stats_has(const char *path, const char *text)
{
	char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n;

	CHECK(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, text);
}

/*
 * The built-in demo on a huge backing: every check held, and the guest
 * mapping holds huge pages whole afterwards (gmem_huge_info()).  KVM's own
 * counts are printed; where it reports any mapping at all, some of them
 * must be huge (this machine's KVM reports 0 even for 4 KiB ones).
 */
static void demo_on(const char *backing, const char *mem, uint64_t page_size)
{
	static const char *const kvm[] = { "pages_4k", "pages_2m", "pages_1g" };
	long long mapped = 0, huge = 0;
	char stats[PATH_MAX], text[64];
	struct run r;

	VMM_WITHIN(&r, 110, "--backing", backing, "--mem", mem, "--stats",
		   scratch(stats, "stats.json"));
	if (r.status)
		printf("%s", r.out);
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "every check held"));
	snprintf(text, sizeof(text), "\"backing\": \"%s\"", backing);
	CHECK(stats_has(stats, text));
	CHECK(stats_has(stats, "\"device_io\": \"copy\"") == !strncmp(backing, "hugetlb", 7));
	CHECK(stat_of(stats, "requests") > 0);
	CHECK(stat_of(stats, "denied") > 0);
	CHECK_EQ(stat_of(stats, "secrets_seen"), 0);
	CHECK_EQ(stat_of(stats, "audit_failures"), 0);
	CHECK_EQ(stat_of(stats, "pins_active"), 0);
	CHECK_EQ(stat_of(stats, "page_size"), page_size);
	CHECK(stat_of(stats, "blocks_populated") > 0);
	CHECK(stat_of(stats, "blocks_guest_huge") > 0);
	printf("  %s: %lld of %lld blocks populated, %lld mapped huge by the guest mapping; KVM:",
	       backing, stat_of(stats, "blocks_populated"), stat_of(stats, "blocks"),
	       stat_of(stats, "blocks_guest_huge"));
	for (int k = 0; k < 3; k++) {
		long long v;

		snprintf(text, sizeof(text), "\"%s\": null", kvm[k]);
		if (stats_has(stats, text)) {
			printf(" %s null", kvm[k]);
			continue;
		}
		v = stat_of(stats, kvm[k]);
		printf(" %s %lld", kvm[k], v);
		mapped += v;
		huge += k ? v : 0;
	}
	printf("\n");
	if (mapped)
		CHECK(huge > 0);
	unlink(stats);
}

TEST_OPTS(vmm_demo_on_thp, .once = true, .timeout_s = 120)
{
	need_kvm();
	if (!thp_enable())
		SKIP("shmem huge pages unavailable (shmem_enabled, and not root)");
	demo_on("thp", "64M", 2 * MiB);
	sysfs_restore();
}

TEST_OPTS(vmm_demo_on_hugetlb_2m, .once = true, .timeout_s = 120)
{
	need_kvm();
	need_hugetlb(2 * MiB, 32);
	demo_on("hugetlb-2m", "64M", 2 * MiB);
	sysfs_restore();
}

TEST_OPTS(vmm_demo_on_hugetlb_1g, .once = true, .timeout_s = 120)
{
	need_kvm();
	need_hugetlb(1024 * MiB, 1);
	demo_on("hugetlb-1g", "1G", 1024 * MiB);
	sysfs_restore();
}

/*
 * Dirty tracking on huge backings.  hugetlb-2m: every written page is
 * reported in both modes; gmem reports a written guest page's whole huge
 * page, KVM's log only the page.  thp: tracking the guest mapping
 * (--track gmem) maps its huge pages 4 KiB at a time while it lasts, and
 * gmem_collapse() after the stop gives them back; KVM's log leaves the
 * guest mapping alone.
 */
TEST_OPTS(vmm_dirty_tracking_on_hugetlb_2m, .once = true, .timeout_s = 120)
{
	need_kvm();
	need_hugetlb(2 * MiB, 256 * MiB / (2 * MiB));
	check_dirty_tracking(&hugetlb_mode, "private", false);
	sysfs_restore();
}

TEST_OPTS(vmm_dirty_tracking_thp_huge_pages, .once = true, .timeout_s = 120)
{
	static const char *const track[] = { "kvm", "gmem" };
	char stats[PATH_MAX];
	struct run r;

	need_kvm();
	if (!thp_enable())
		SKIP("shmem huge pages unavailable (shmem_enabled, and not root)");
	for (int i = 0; i < 2; i++) {
		long long start, fewest, stopped, collapsed;

		/* the demo, tracked from a second in: its guest mapping is huge by then */
		VMM_WITHIN(&r, 110, "--backing", "thp", "--mem", "64M", "--track", track[i],
			   "--dirty-delay", "1000", "--dirty-rounds", "5", "--stats",
			   scratch(stats, "stats.json"));
		if (r.status == 1 && strstr(r.err, "unavailable"))
			SKIP("%s", r.err);
		CHECK_EQ(r.status, 0);
		CHECK(strstr(r.out, "every check held"));
		start = stat_of(stats, "at_start");
		fewest = stat_of(stats, "fewest");
		stopped = stat_of(stats, "stopped");
		collapsed = stat_of(stats, "collapsed");
		printf("  --track %s: guest mapping's huge blocks %lld as tracking started, %lld at "
		       "fewest, %lld after the stop, %lld after gmem_collapse()\n",
		       track[i], start, fewest, stopped, collapsed);
		if (!start)
			SKIP("the guest mapping held no huge page when tracking started");
		if (!strcmp(track[i], "kvm")) {
			CHECK(fewest == start && stopped >= start);
		} else {
			CHECK(fewest < start);
			CHECK(collapsed >= start);
		}
		CHECK_EQ(stat_of(stats, "pinned"), 0);
	}
	unlink(stats);
	sysfs_restore();
}

/*
 * A hugetlb pool without the pages: one line naming the file to raise and
 * how many pages RAM needs.  64 GiB is more than this kind of machine has,
 * so no pool holds it.
 */
TEST_ONCE(vmm_hugetlb_pool_short_is_an_error)
{
	static const struct {
		const char *backing, *kb, *needed;
		uint64_t page_size;
		unsigned long pages;
	} pools[] = {
		{ "hugetlb-2m", "2048", "32768 needed (64 GiB of RAM / 2 MiB)", 2 * MiB, 32768 },
		{ "hugetlb-1g", "1048576", "64 needed (64 GiB of RAM / 1 GiB)", 1024 * MiB, 64 },
	};
	int checked = 0;

	need_kvm();
	for (size_t i = 0; i < sizeof(pools) / sizeof(pools[0]); i++) {
		char dir[128], file[160];
		struct run r;

		snprintf(dir, sizeof(dir), "/sys/kernel/mm/hugepages/hugepages-%skB", pools[i].kb);
		if (access(dir, F_OK) || hugetlb_free(pools[i].page_size) >= pools[i].pages) {
			printf("  %s: no such pool, or it has the pages: not checked\n", pools[i].backing);
			continue;
		}
		VMM(&r, "--backing", pools[i].backing, "--mem", "64G", guest("boot"));
		CHECK_EQ(r.status, 1);
		CHECK_EQ(lines(r.err), 1);
		snprintf(file, sizeof(file), "raise %s/nr_hugepages", dir);
		if (!strstr(r.err, file) || !strstr(r.err, pools[i].needed))
			test_fail(__FILE__, __LINE__, "want \"%s\" and \"%s\" in: %s", file,
				  pools[i].needed, r.err);
		checked++;
	}
	if (!checked)
		SKIP("no hugetlb pool to be short of");
}

/* RAM must be whole backing pages; the default grows to one 1 GiB page. */
TEST_ONCE(vmm_mem_not_a_multiple_of_the_backing_page)
{
	struct run r;

	need_kvm();
	VMM(&r, "--backing", "hugetlb-1g", "--mem", "512M", guest("boot"));
	CHECK_EQ(r.status, 1);
	CHECK_EQ(lines(r.err), 1);
	CHECK(strstr(r.err, "--mem 512 MiB: --backing hugetlb-1g wants a multiple of its 1 GiB page"));
	VMM(&r, "--backing", "hugetlb-1g", "--mem", "1536M", guest("boot"));
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "multiple of its 1 GiB page"));
	VMM(&r, "--backing", "thp", "--mem", "5M", guest("boot"));
	CHECK_EQ(r.status, 1);
	CHECK_EQ(lines(r.err), 1);
}

/*
 * Snapshots.  The demo is saved at a random moment of its run (printed, to
 * be replayed) and exits 0 with no summary; restored - eagerly, then
 * lazily, each from a copy of the disk image as the save left it - it
 * ends as a whole run of it does: every check held, the whole run's
 * requests counted (the demo's 320), the secret never seen.
 */
static double random_moment(double lo, double hi)
{
	static bool seeded;

	if (!seeded) {
		srand((unsigned int)(time(NULL) ^ getpid()));
		seeded = true;
	}
	return lo + (hi - lo) * rand() / (double)RAND_MAX;
}

static void copy_file(const char *from, const char *to)
{
	char buf[1 << 16];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ssize_t n;

	CHECK(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		CHECK(write(out, buf, (size_t)n) == n);
	CHECK(n == 0);
	close(in);
	close(out);
}

/* Restore snap (with the disk image at disk_saved, copied first) and check the whole run. */
static void restore_demo(const char *snap, const char *disk_saved, bool lazy)
{
	char disk[PATH_MAX], stats[PATH_MAX];
	struct run r;

	if (disk_saved)
		copy_file(disk_saved, scratch(disk, "disk-restored.img"));
	scratch(stats, "restore.json");
	if (disk_saved && lazy)
		VMM_WITHIN(&r, 200, "--restore", snap, "--lazy", "--disk", disk, "--stats", stats);
	else if (disk_saved)
		VMM_WITHIN(&r, 200, "--restore", snap, "--disk", disk, "--stats", stats);
	else if (lazy)
		VMM_WITHIN(&r, 200, "--restore", snap, "--lazy", "--stats", stats);
	else
		VMM_WITHIN(&r, 200, "--restore", snap, "--stats", stats);
	if (r.status)
		printf("%s", r.out);
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "every check held"));
	CHECK(strstr(r.out, lazy ? "(lazily)" : "(eagerly)"));
	CHECK(strstr(r.out, " 0 failures"));
	CHECK(stats_has(stats, lazy ? "\"restore_mode\": \"lazy\"" : "\"restore_mode\": \"eager\""));
	CHECK_EQ(stat_of(stats, "requests"), 320);
	CHECK_EQ(stat_of(stats, "errors"), 0);
	CHECK_EQ(stat_of(stats, "secrets_seen"), 0);
	CHECK_EQ(stat_of(stats, "audit_failures"), 0);
	CHECK_EQ(stat_of(stats, "pins_active"), 0);
	CHECK(stat_of(stats, "denied") > 0);
	CHECK_EQ(stat_of(stats, "fill_error"), 0);
	CHECK(!stats_has(stats, "\"filled_ms\": null"));
	printf("  restored %s: first instruction %lld ms, filled %lld ms in\n",
	       lazy ? "lazily" : "eagerly", stat_of(stats, "first_instruction_ms"),
	       stat_of(stats, "filled_ms"));
	unlink(stats);
}

/*
 * Save the demo on a backing at a random moment and restore it both ways;
 * with a named disk when `named_disk`, else the temporary one the file holds.
 */
static void snapshot_demo(const char *backing, const char *mem, bool named_disk)
{
	char snap[PATH_MAX], disk[PATH_MAX], disk_saved[PATH_MAX], when[32];
	double at = random_moment(0.5, 3.0);
	struct run r;

	scratch(snap, "demo.snap");
	/* a demo that ran faster than the moment drawn ends first: an earlier one, then */
	for (int attempt = 0;; attempt++, at /= 2) {
		snprintf(when, sizeof(when), "%.2f", at);
		printf("  %s: saved %s s into the run\n", backing, when);
		if (named_disk) {
			make_image(scratch(disk, "disk.img"), 64 * 2048, 0);
			VMM_WITHIN(&r, 200, "--backing", backing, "--mem", mem, "--disk", disk,
				   "--save", snap, "--save-after", when);
			copy_file(disk, scratch(disk_saved, "disk-saved.img"));
		} else {
			VMM_WITHIN(&r, 200, "--backing", backing, "--mem", mem, "--save", snap,
				   "--save-after", when);
		}
		if (attempt == 3 || !strstr(r.err, "the VM ended before a save"))
			break;
	}
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "gmem-vmm: saved "));
	CHECK(!strstr(r.out, "every check held")); /* the run's summary is the restore's */
	CHECK(!access(snap, R_OK));
	restore_demo(snap, named_disk ? disk_saved : NULL, false);
	restore_demo(snap, named_disk ? disk_saved : NULL, true);
	unlink(snap);
}

TEST_OPTS(vmm_snapshot_demo_restores_eager_and_lazy, .once = true, .timeout_s = 600)
{
	need_kvm();
	snapshot_demo("shmem", "256M", false);
	snapshot_demo("shmem", "64M", true);
}

TEST_OPTS(vmm_snapshot_demo_restores_on_thp, .once = true, .timeout_s = 600)
{
	need_kvm();
	if (!thp_enable())
		SKIP("shmem huge pages unavailable (shmem_enabled, and not root)");
	snapshot_demo("thp", "64M", false);
	sysfs_restore();
}

TEST_OPTS(vmm_snapshot_demo_restores_on_hugetlb_2m, .once = true, .timeout_s = 600)
{
	need_kvm();
	need_hugetlb(2 * MiB, 16);
	snapshot_demo("hugetlb-2m", "32M", false);
	sysfs_restore();
}

/*
 * One 1 GiB page of RAM: the save holds it whole, the lazy restore fills
 * it whole on the first touch.  The pool needs one page: the restores run
 * after the saving process is gone, one at a time.
 */
TEST_OPTS(vmm_snapshot_demo_restores_on_hugetlb_1g, .once = true, .timeout_s = 600)
{
	need_kvm();
	need_hugetlb(1024 * MiB, 1);
	snapshot_demo("hugetlb-1g", "1G", false);
	sysfs_restore();
}

/* --save-continue: the run saves, goes on to its own end, and the file restores too. */
TEST_OPTS(vmm_snapshot_save_continue, .once = true, .timeout_s = 600)
{
	char snap[PATH_MAX];
	struct run r;

	need_kvm();
	VMM_WITHIN(&r, 200, "--mem", "64M", "--save", scratch(snap, "cont.snap"), "--save-after",
		   "1.5", "--save-continue");
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "gmem-vmm: saved "));
	CHECK(strstr(r.out, "every check held")); /* it ran on to its end */
	restore_demo(snap, NULL, false);
	unlink(snap);
}

/*
 * --save-dirty: FILE whole, then FILE.1, FILE.2, ... each a layer of what
 * changed; the last restores eagerly, one in the middle lazily.
 */
TEST_OPTS(vmm_snapshot_dirty_layers, .once = true, .timeout_s = 600)
{
	char snap[PATH_MAX], layer[PATH_MAX + 16], stats[PATH_MAX];
	struct run r;
	int n = 0;

	need_kvm();
	VMM_WITHIN(&r, 200, "--mem", "64M", "--save", scratch(snap, "dirty.snap"), "--save-dirty",
		   "--save-interval", "400", "--save-after", "2.5", "--stats",
		   scratch(stats, "save.json"));
	CHECK_EQ(r.status, 0);
	CHECK(!access(snap, R_OK));
	for (;; n++) {
		snprintf(layer, sizeof(layer), "%s.%d", snap, n + 1);
		if (access(layer, R_OK))
			break;
	}
	printf("  %d layers after the full checkpoint\n", n);
	CHECK(n >= 2);
	CHECK_EQ(stat_of(stats, "saves"), n + 1);
	snprintf(layer, sizeof(layer), "%s.%d", snap, n);
	restore_demo(layer, NULL, false);
	snprintf(layer, sizeof(layer), "%s.%d", snap, n / 2);
	restore_demo(layer, NULL, true);
	/* a layer without the one before it is refused, naming it */
	snprintf(layer, sizeof(layer), "%s.%d", snap, 1);
	unlink(layer);
	snprintf(layer, sizeof(layer), "%s.%d", snap, n);
	VMM(&r, "--restore", layer);
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "needs"));
	CHECK_EQ(lines(r.err), 1);
	CHECK_EQ(r.out[0], '\0');
}

/* Flip one byte of a file at off. */
static void flip_byte(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	unsigned char c;

	CHECK(fd >= 0);
	CHECK(pread(fd, &c, 1, off) == 1);
	c ^= 0xff;
	CHECK(pwrite(fd, &c, 1, off) == 1);
	close(fd);
}

/* A restore refused: status 1, one line naming the file and saying why, nothing run. */
static void check_refused(const char *snap, const char *why, bool lazy)
{
	struct run r;

	if (lazy)
		VMM(&r, "--restore", snap, "--lazy");
	else
		VMM(&r, "--restore", snap);
	CHECK_EQ(r.status, 1);
	CHECK_EQ(lines(r.err), 1);
	CHECK(strstr(r.err, snap));
	CHECK(strstr(r.err, why));
	CHECK_EQ(r.out[0], '\0');
}

/*
 * A snapshot damaged anywhere is refused before anything runs: its header,
 * the VMM's state (its own checksum), the memory (gmem's -EBADMSG), or cut
 * short at any of them.
 */
TEST_OPTS(vmm_snapshot_corrupted_or_truncated_refused, .once = true, .timeout_s = 300)
{
	char snap[PATH_MAX], bad[PATH_MAX];
	struct run r;
	struct stat st;

	need_kvm();
	VMM_WITHIN(&r, 200, "--mem", "64M", "--save", scratch(snap, "good.snap"), "--save-after",
		   "1");
	CHECK_EQ(r.status, 0);
	CHECK(!stat(snap, &st));
	scratch(bad, "bad.snap");
	/* the header's checksum */
	copy_file(snap, bad);
	flip_byte(bad, 20);
	check_refused(bad, "corrupted", false);
	/* the VMM's state: a byte in the middle of it */
	copy_file(snap, bad);
	flip_byte(bad, 200);
	check_refused(bad, "corrupted: its VMM state does not check", false);
	/* the memory, in its last record (past the state and the disk) */
	copy_file(snap, bad);
	flip_byte(bad, st.st_size - 100);
	check_refused(bad, "corrupted: its memory does not check", false);
	/* cut short: in the state, in the memory */
	copy_file(snap, bad);
	CHECK(!truncate(bad, 1000));
	check_refused(bad, "truncated", false);
	copy_file(snap, bad);
	CHECK(!truncate(bad, st.st_size - 10));
	check_refused(bad, "corrupted: its memory does not check", false);
	check_refused(bad, "corrupted: its memory does not check", true);
	unlink(bad);
	unlink(snap);
}

/* --restore of a file that is not a snapshot: an ELF, text, an empty file, a directory. */
TEST_ONCE(vmm_restore_of_a_non_snapshot_refused)
{
	char text[PATH_MAX], empty[PATH_MAX];
	FILE *f;
	struct run r;

	need_kvm();
	f = fopen(scratch(text, "text"), "w");
	CHECK(f);
	fputs("GMEMVMM but not really\n", f);
	fclose(f);
	f = fopen(scratch(empty, "empty"), "w");
	CHECK(f);
	fclose(f);
	check_refused(guest("boot"), "not a gmem-vmm snapshot", false);
	check_refused(text, "not a gmem-vmm snapshot", false);
	check_refused(empty, "not a gmem-vmm snapshot", true);
	check_refused(scratch_dir, "not a gmem-vmm snapshot", false);
	/* and the machine is the snapshot's: no guest, no --mem */
	VMM(&r, "--restore", text, guest("boot"));
	CHECK_EQ(r.status, 1);
	CHECK_EQ(lines(r.err), 1);
	unlink(text);
	unlink(empty);
}

/*
 * vCPUs that executed hlt before the save (all but vCPU 0 of halt_early)
 * are saved halted and stay so: the save does not wait for them to park,
 * and the restored VM runs vCPU 0 to its end and exit status.
 */
TEST_OPTS(vmm_snapshot_keeps_halted_vcpus_halted, .once = true, .timeout_s = 120)
{
	char snap[PATH_MAX], stats[PATH_MAX];
	struct run r;

	need_kvm();
	VMM_WITHIN(&r, 60, "--cpus", "4", "--save", scratch(snap, "halt.snap"), "--save-after",
		   "0.3", guest("halt_early"));
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.out, "gmem-vmm: saved "));
	CHECK(!strstr(r.out, "vCPU 0 done"));
	VMM_WITHIN(&r, 60, "--restore", snap, "--stats", scratch(stats, "halt.json"));
	CHECK_EQ(r.status, 7);
	CHECK(strstr(r.out, "halt_early: vCPU 0 done"));
	CHECK_EQ(r.err[0], '\0');
	CHECK_EQ(stat_of(stats, "restored_halted"), 3);
	unlink(snap);
	unlink(stats);
}

/* ---- live migration ---- */

/* An address of the run's own for a migration (another run on the machine picks another port). */
static const char *mig_addr(char buf[64])
{
	static unsigned int n;

	snprintf(buf, 64, "tcp:127.0.0.1:%u", 20000 + (unsigned int)(getpid() * 131 + n++ * 17) % 40000);
	return buf;
}

/*
 * Migrate a run of `args` (the source's options but --migrate-to/-after
 * and --stats) to a destination started first, `when` seconds in: the
 * source's run in src, the destination's in dst, their --stats files at
 * src_stats and dst_stats.  false if the guest ended before the moment.
 */
static bool migrate_pair(const char *const *args, const char *when, struct run *src,
			 struct run *dst, char *src_stats, char *dst_stats)
{
	const char *argv[32];
	char addr[64];
	struct started st;
	int n = 0;

	scratch(src_stats, "mig-src.json");
	scratch(dst_stats, "mig-dst.json");
	mig_addr(addr);
	VMM_START(&st, "--incoming", addr, "--timeout", "200", "--stats", dst_stats);
	for (; args[n]; n++)
		argv[n] = args[n];
	argv[n++] = "--migrate-to";
	argv[n++] = addr;
	argv[n++] = "--migrate-after";
	argv[n++] = when;
	argv[n++] = "--stats";
	argv[n++] = src_stats;
	argv[n] = NULL;
	vmm_run(src, 200, argv);
	if (!strstr(src->out, "gmem-vmm: migrated to ")) {
		kill(st.pid, SIGKILL); /* it waits for a source that went its own way */
		vmm_finish(&st, dst, 0);
		return false;
	}
	vmm_finish(&st, dst, 200);
	return true;
}

/*
 * The demo migrated at a random moment - pre-copy, or with postcopy_rounds
 * post-copy after that many rounds: every check holds at the destination,
 * none lost.
 */
static void migrate_demo(const char *backing, const char *mem, const char *postcopy_rounds)
{
	const char *args[] = { "--backing", backing, "--mem", mem,
			       postcopy_rounds ? "--postcopy" : NULL, "--postcopy-rounds",
			       postcopy_rounds, NULL };
	char src_stats[PATH_MAX], dst_stats[PATH_MAX], when[32];
	double at = random_moment(0.5, 2.5);
	struct run s, d;
	bool moved = false;

	for (int attempt = 0; attempt < 4 && !moved; attempt++, at /= 2) {
		snprintf(when, sizeof(when), "%.2f", at);
		printf("  %s: migrated %s s into the run\n", backing, when);
		moved = migrate_pair(args, when, &s, &d, src_stats, dst_stats);
	}
	CHECK(moved);
	CHECK_EQ(s.status, 0);
	CHECK(!strstr(s.out, "every check held")); /* the run's summary is the destination's */
	if (d.status)
		printf("%s", d.out);
	CHECK_EQ(d.status, 0);
	CHECK(strstr(d.out, "every check held"));
	CHECK(strstr(d.out, " 0 failures"));
	CHECK(strstr(d.out, "migrated         from"));
	CHECK(stats_has(src_stats, "\"role\": \"source\", \"done\": true"));
	CHECK(stats_has(dst_stats, "\"role\": \"destination\", \"done\": true"));
	/* no secret seen by either side's snoop; the disk's requests all there */
	CHECK_EQ(stat_of(src_stats, "secrets_seen"), 0);
	CHECK_EQ(stat_of(dst_stats, "secrets_seen"), 0);
	CHECK_EQ(stat_of(dst_stats, "audit_failures"), 0);
	CHECK_EQ(stat_of(dst_stats, "requests"), 320);
	CHECK_EQ(stat_of(dst_stats, "errors"), 0);
	CHECK(stat_of(dst_stats, "denied") > 0);
	printf("  %lld pages sent for %lld populated, the vCPUs paused %lld ms\n",
	       stat_of(src_stats, "pages_sent"), stat_of(src_stats, "pages_populated"),
	       stat_of(src_stats, "downtime_ms"));
	if (postcopy_rounds) {
		/* the pages followed, every one, and the source knew when */
		CHECK(stats_has(src_stats, "\"postcopy\": {"));
		CHECK(stats_has(src_stats, "\"complete\": true"));
		CHECK(strstr(s.out, "(post-copy)"));
		CHECK(strstr(d.out, "its pages follow"));
		CHECK_EQ(stat_of(src_stats, "pages_sent"),
			 stat_of(src_stats, "pages_fetched") + stat_of(src_stats, "pages_pushed") +
				 stat_of(src_stats, "pages_populated"));
		printf("  post-copy: %lld pages fetched on touch, %lld pushed\n",
		       stat_of(src_stats, "pages_fetched"), stat_of(src_stats, "pages_pushed"));
	}
}

TEST_OPTS(vmm_migrate_demo_precopy, .once = true, .timeout_s = 600)
{
	need_kvm();
	migrate_demo("shmem", "256M", NULL);
}

TEST_OPTS(vmm_migrate_demo_precopy_on_thp, .once = true, .timeout_s = 600)
{
	need_kvm();
	if (!thp_enable())
		SKIP("shmem huge pages unavailable (shmem_enabled, and not root)");
	migrate_demo("thp", "64M", NULL);
	sysfs_restore();
}

/* Both ends hold the RAM at the hand-over: the pool needs two guests' pages. */
TEST_OPTS(vmm_migrate_demo_precopy_on_hugetlb_2m, .once = true, .timeout_s = 600)
{
	need_kvm();
	need_hugetlb(2 * MiB, 2 * 32);
	migrate_demo("hugetlb-2m", "64M", NULL);
	sysfs_restore();
}

/*
 * Post-copy: the VM moves after one round (its pages written since follow)
 * and after none (every page follows) - the guest fetches what it touches
 * first, a private page too, which no snoop ever sees.
 */
TEST_OPTS(vmm_migrate_demo_postcopy, .once = true, .timeout_s = 600)
{
	need_kvm();
	migrate_demo("shmem", "256M", "1");
	migrate_demo("shmem", "256M", "0");
}

TEST_OPTS(vmm_migrate_demo_postcopy_on_thp, .once = true, .timeout_s = 600)
{
	need_kvm();
	if (!thp_enable())
		SKIP("shmem huge pages unavailable (shmem_enabled, and not root)");
	migrate_demo("thp", "64M", "1");
	migrate_demo("thp", "64M", "0");
	sysfs_restore();
}

TEST_OPTS(vmm_migrate_demo_postcopy_on_hugetlb_2m, .once = true, .timeout_s = 600)
{
	need_kvm();
	need_hugetlb(2 * MiB, 2 * 32);
	migrate_demo("hugetlb-2m", "64M", "0");
	sysfs_restore();
}

/*
 * A guest that keeps writing a known pattern (and converting pages) while
 * it is migrated: at the destination, every page holds what it wrote last.
 */
static void migrate_pattern_on(const char *backing, const char *postcopy_rounds)
{
	const char *pre[] = { "--backing", backing, "--mem", "64M", guest("migrate_pattern"), NULL };
	const char *post[] = { "--backing", backing, "--mem", "64M", "--postcopy",
			       "--postcopy-rounds", postcopy_rounds, guest("migrate_pattern"), NULL };
	const char *const *args = postcopy_rounds ? post : pre;
	char src_stats[PATH_MAX], dst_stats[PATH_MAX], when[32];
	struct run s, d;

	snprintf(when, sizeof(when), "%.2f", random_moment(0.5, 1.5));
	printf("  %s: migrated %s s into the run%s%s\n", backing, when,
	       postcopy_rounds ? ", post-copy after rounds: " : "",
	       postcopy_rounds ? postcopy_rounds : "");
	CHECK(migrate_pair(args, when, &s, &d, src_stats, dst_stats));
	CHECK_EQ(s.status, 0);
	if (d.status)
		printf("%s", d.out);
	CHECK_EQ(d.status, 0);
	CHECK(strstr(d.out, "pages hold what was written last"));
	/* it wrote during the rounds (or all of it came after): more went than the full copy */
	CHECK(stat_of(src_stats, "pages_sent") > stat_of(src_stats, "pages_populated"));
	if (postcopy_rounds)
		CHECK(stats_has(src_stats, "\"complete\": true"));
}

TEST_OPTS(vmm_migrate_keeps_what_the_guest_wrote, .once = true, .timeout_s = 600)
{
	need_kvm();
	migrate_pattern_on("shmem", NULL);
	migrate_pattern_on("shmem", "1");
	migrate_pattern_on("shmem", "0");
	if (thp_enable()) {
		migrate_pattern_on("thp", NULL);
		migrate_pattern_on("thp", "1");
		sysfs_restore();
	}
}

/* The test's own end of a migration's connection: what it does with the one it takes. */
struct fake_end {
	int lfd;
	unsigned int port;
	size_t read_first; /* bytes read before closing (a destination that dies mid-way) */
	atomic_int done;   /* the case is done with it */
};

static void fake_listen(struct fake_end *f)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(f->lfd >= 0);
	CHECK_OK(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)));
	CHECK_OK(listen(f->lfd, 1));
	CHECK_OK(getsockname(f->lfd, (struct sockaddr *)&a, &len));
	f->port = ntohs(a.sin_port);
}

/* A connection to the destination listening at addr (tcp:127.0.0.1:PORT), once it does. */
static int connect_destination(const char *addr)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				 .sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1)) };
	int fd = -1;

	for (int i = 0; i < 200 && fd < 0; i++) { /* it listens once it has started */
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		CHECK(fd >= 0);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
			close(fd);
			fd = -1;
			usleep(20000);
		}
	}
	CHECK(fd >= 0);
	return fd;
}

/* A destination that takes the connection, reads read_first bytes and goes away. */
static void *dying_destination(void *arg)
{
	struct fake_end *f = arg;
	char buf[4096];
	size_t got = 0;
	int fd = accept(f->lfd, NULL, NULL);

	while (fd >= 0 && got < f->read_first) {
		ssize_t n = read(fd, buf, sizeof(buf) < f->read_first - got ? sizeof(buf)
									      : f->read_first - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/*
 * The destination going away in the middle of pre-copy (after the machine
 * and part of the memory): the source says so, and the demo runs on to its
 * end as if nothing had been tried - every check held, status 0.
 */
TEST_OPTS(vmm_migrate_destination_lost_mid_precopy, .once = true, .timeout_s = 300)
{
	struct fake_end f = { .read_first = 64 * 1024 };
	char addr[64], stats[PATH_MAX];
	pthread_t t;
	struct run r;

	need_kvm();
	fake_listen(&f);
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", f.port);
	CHECK_OK(pthread_create(&t, NULL, dying_destination, &f));
	VMM_WITHIN(&r, 200, "--migrate-to", addr, "--migrate-after", "1", "--stats",
		   scratch(stats, "lost.json"));
	CHECK_OK(pthread_join(t, NULL));
	close(f.lfd);
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.err, "the VM runs on"));
	CHECK(strstr(r.out, "every check held"));
	CHECK(!strstr(r.out, "gmem-vmm: migrated to"));
	CHECK(stats_has(stats, "\"role\": \"source\", \"done\": false"));
	CHECK_EQ(stat_of(stats, "requests"), 320);
}

/* Bytes on a destination's socket that are no migration: refused at once, status 1. */
static void garbage_to_destination(const char *bytes, size_t len)
{
	char addr[64];
	struct started st;
	struct run d;
	int fd;

	mig_addr(addr);
	VMM_START(&st, "--incoming", addr, "--timeout", "60");
	fd = connect_destination(addr);
	CHECK(write(fd, bytes, len) == (ssize_t)len);
	vmm_finish(&st, &d, 30);
	close(fd);
	CHECK_EQ(d.status, 1);
	CHECK(strstr(d.err, "not a gmem-vmm migration"));
	CHECK_EQ(lines(d.err), 1);
	CHECK(d.seconds < 10); /* refused at once, not after a timeout */
}

TEST_OPTS(vmm_migrate_garbage_refused, .once = true, .timeout_s = 120)
{
	static char junk[4096];

	need_kvm();
	garbage_to_destination("GET / HTTP/1.1\r\nHost: gmem\r\n\r\n" "0123456789abcdefghijklmnop", 56);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	memcpy(junk, "GMEMMIG\n", 8); /* the magic, and nothing that checks after it */
	garbage_to_destination(junk, sizeof(junk));
}

/* Whether a started run's output has text, waiting for it up to limit_s seconds. */
static bool output_has(const struct started *st, const char *text, double limit_s)
{
	static char buf[OUT_MAX];
	double t0 = now_s();

	do {
		ssize_t n = pread(st->out, buf, sizeof(buf) - 1, 0);

		buf[n > 0 ? n : 0] = '\0';
		if (strstr(buf, text))
			return true;
		usleep(20000);
	} while (now_s() - t0 < limit_s);
	return false;
}

/*
 * Post-copy cut short: once the destination runs the VM and its pages
 * still come (pushed a frame a second here: GMEM_VMM_PUSH_DELAY_MS), one
 * side is killed.  Neither holds the whole VM: the other says post-copy
 * failed, with pages missing, and exits 1 within seconds.
 */
static void postcopy_cut(bool kill_destination)
{
	struct started src, dst, *victim, *other;
	struct run vr, r;
	char addr[64];
	double t;

	mig_addr(addr);
	VMM_START(&dst, "--incoming", addr, "--timeout", "200");
	setenv("GMEM_VMM_PUSH_DELAY_MS", "1000", 1);
	VMM_START(&src, "--cpus", "4", "--migrate-to", addr, "--migrate-after", "0.5",
		  "--postcopy", "--postcopy-rounds", "0", "--timeout", "200");
	unsetenv("GMEM_VMM_PUSH_DELAY_MS");
	victim = kill_destination ? &dst : &src;
	other = kill_destination ? &src : &dst;
	CHECK(output_has(&dst, "its pages follow", 60));
	usleep((useconds_t)(random_moment(0.1, 0.6) * 1e6));
	t = now_s();
	kill(victim->pid, SIGKILL);
	vmm_finish(victim, &vr, 0);
	vmm_finish(other, &r, 120);
	printf("  the %s killed: the other ended %.2f s later, status %d\n",
	       kill_destination ? "destination" : "source", now_s() - t, r.status);
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "post-copy"));
	CHECK(strstr(r.err, kill_destination ? "not sent" : "still there"));
	CHECK(now_s() - t < 10);
}

TEST_OPTS(vmm_migrate_killed_mid_postcopy, .once = true, .timeout_s = 300)
{
	need_kvm();
	postcopy_cut(true);
	postcopy_cut(false);
}

/*
 * The connection ending the moment GO went (GMEM_VMM_CUT_AFTER_GO: the
 * source shuts it then), before the destination has run anything: the VM
 * is the destination's and cannot go on - it ends, status 1, at once.
 */
TEST_OPTS(vmm_migrate_cut_at_the_hand_over, .once = true, .timeout_s = 120)
{
	struct started dst;
	struct run s, d;
	char addr[64];

	need_kvm();
	for (int i = 0; i < 3; i++) {
		mig_addr(addr);
		VMM_START(&dst, "--incoming", addr, "--timeout", "100");
		setenv("GMEM_VMM_CUT_AFTER_GO", "1", 1);
		VMM_WITHIN(&s, 100, "--cpus", "4", "--migrate-to", addr, "--migrate-after", "0.5",
			   "--postcopy", "--postcopy-rounds", i == 2 ? "1" : "0");
		unsetenv("GMEM_VMM_CUT_AFTER_GO");
		vmm_finish(&dst, &d, 100);
		CHECK_EQ(s.status, 1);
		CHECK(strstr(s.err, "the VM is lost"));
		CHECK_EQ(d.status, 1);
		CHECK(strstr(d.err, "post-copy"));
		CHECK(d.seconds < 30);
	}
}

TEST_ONCE(vmm_migrate_options_checked)
{
	struct run r;
	char addr[64];

	need_kvm();
	mig_addr(addr);
	VMM(&r, "--migrate-after", "1");
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "--migrate-after: needs --migrate-to"));
	VMM(&r, "--postcopy");
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "--postcopy: needs --migrate-to"));
	VMM(&r, "--migrate-to", addr, "--postcopy-rounds", "0");
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "--postcopy-rounds: needs --postcopy"));
	VMM(&r, "--migrate-to", addr, "--postcopy", "--postcopy-rounds", "33");
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "want 0 to 32 rounds"));
	CHECK_EQ(lines(r.err), 1);
	VMM(&r, "--migrate-to", addr, "--save", "x.snap");
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "one at a time"));
	VMM(&r, "--incoming", addr, guest("boot"));
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "runs the source's guest"));
	VMM(&r, "--incoming", addr, "--mem", "64M");
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "takes the machine from the source"));
	VMM(&r, "--incoming", "tcp:127.0.0.1");
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "want tcp:HOST:PORT"));
	VMM(&r, "--migrate-to", addr, "--max-downtime", "0");
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "want 1 to 60000"));
	/* nobody comes: --timeout bounds the wait */
	VMM(&r, "--incoming", addr, "--timeout", "1");
	CHECK_EQ(r.status, 1);
	CHECK(strstr(r.err, "none came"));
	CHECK_EQ(lines(r.err), 1);
}

/* A destination that takes the connection and the HELLO, then never reads again. */
static void *deaf_destination(void *arg)
{
	struct fake_end *f = arg;
	int small = 4096, fd = accept(f->lfd, NULL, NULL);
	char buf[256];

	if (fd < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (read(fd, buf, sizeof(buf)) < 0)
		buf[0] = 0;
	/* until the case is done (the source's FIN waits behind the bytes it could not send) */
	while (!atomic_load(&f->done))
		usleep(10000);
	close(fd);
	return NULL;
}

/*
 * A destination that stops reading: the watch on the connection (3 s
 * here, GMEM_VMM_STALL_S) shuts it down, and the demo runs on to its end.
 */
TEST_OPTS(vmm_migrate_destination_that_stops_reading, .once = true, .timeout_s = 300)
{
	struct fake_end f = { 0 };
	char addr[64];
	pthread_t t;
	struct run r;

	need_kvm();
	fake_listen(&f);
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", f.port);
	CHECK_OK(pthread_create(&t, NULL, deaf_destination, &f));
	setenv("GMEM_VMM_STALL_S", "3", 1);
	VMM_WITHIN(&r, 200, "--mem", "64M", "--migrate-to", addr, "--migrate-after", "0.5");
	unsetenv("GMEM_VMM_STALL_S");
	atomic_store(&f.done, 1);
	CHECK_OK(pthread_join(t, NULL));
	close(f.lfd);
	CHECK_EQ(r.status, 0);
	CHECK(strstr(r.err, "stalled"));
	CHECK(strstr(r.err, "the VM runs on"));
	CHECK(strstr(r.out, "every check held"));
	CHECK(r.seconds < 60);
}

/* A source that trickles its first frame a byte at a time: the destination gives up, status 1. */
TEST_OPTS(vmm_migrate_source_that_trickles, .once = true, .timeout_s = 120)
{
	char addr[64];
	struct started st;
	struct run d;
	int fd, status = -1;

	need_kvm();
	mig_addr(addr);
	setenv("GMEM_VMM_STALL_S", "3", 1);
	VMM_START(&st, "--incoming", addr, "--timeout", "60");
	unsetenv("GMEM_VMM_STALL_S");
	fd = connect_destination(addr);
	/* "GMEMMIG\n", a byte every half second, never a whole frame */
	for (int i = 0; i < 40 && waitpid(st.pid, &status, WNOHANG) == 0; i++) {
		if (send(fd, &"GMEMMIG\n"[i % 8], 1, MSG_NOSIGNAL) != 1)
			break;
		usleep(500000);
	}
	if (status != -1) { /* it ended while we trickled: collect it as vmm_finish() would */
		d.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		d.seconds = now_s() - st.t0;
		slurp(st.out, d.out);
		slurp(st.err, d.err);
	} else {
		vmm_finish(&st, &d, 30);
	}
	close(fd);
	CHECK_EQ(d.status, 1);
	CHECK(strstr(d.err, "stalled"));
	CHECK_EQ(lines(d.err), 1);
	CHECK(d.seconds < 15);
}
