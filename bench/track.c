// SPDX-License-Identifier: MIT
/*
 * track.c - write tracking (gmem_track_*) beside the ways a VMM learns
 * today which pages were written.
 *
 * (t1) A collect over 1 GiB with 0 %, 1 % and 100 % of its pages written
 * through a view since the last one, beside the same rounds on a plain
 * memfd mapping of 1 GiB:
 *  - soft-dirty: read bit 55 of /proc/self/pagemap over the range, then
 *    write "4" to /proc/self/clear_refs (the figures' baseline).  A kernel
 *    built without CONFIG_MEM_SOFT_DIRTY keeps no bit and protects
 *    nothing, but still walks: there the rounds measure soft-dirty's
 *    floor - the pagemap read and clear_refs' page-table walk, without
 *    the write-protection of every entry or the fault of every first
 *    write that soft-dirty adds;
 *  - synchronous userfaultfd write-protect: a thread answers each write
 *    fault by lifting the protection of its page (UFFDIO_WRITEPROTECT),
 *    and a collect protects the range again;
 *  - mprotect(PROT_READ), a SIGSEGV handler that records the page and
 *    makes it writable, and a collect that protects the range again;
 *  - KVM_GET_DIRTY_LOG of a 1 GiB memslot (KVM_MEM_LOG_DIRTY_PAGES) of a
 *    VM with no vCPU: nothing can dirty its log, so it is the floor of
 *    the guest side's harvest - what KVM pays to hand over an empty
 *    bitmap of 1 GiB, write-protecting nothing.
 * Writes are timed apart from the collect: for the synchronous methods
 * they are where the cost is (a fault answered per page).
 * (t2) The first write to a page after a collect (the kernel's
 * asynchronous write-protect fault), beside a first write with tracking
 * off: a minor write fault on a plain memfd mapping (the page cached, not
 * mapped).
 * (t3) False positives of a read-mostly host workload: between collects a
 * view reads 10 % of the pages and writes 0.1 %, at random, and now and
 * then a few pages go private and back; what is reported, by cause.
 * (t4) GMEM_TRACK_GUEST: a collect over 1 GiB written through the guest
 * mapping, and what tracking it does to a THP backing's huge mappings.
 *
 * Each baseline runs in a process of its own - this program again, as
 * "gmem-bench --track-baseline ..." - holding only its mapping:
 * clear_refs walks the whole process, so beside gmem's 1 GiB view it
 * would pay for both.  That is soft-dirty's best case: in a VMM it walks
 * every mapping the VMM has.  The methods take their rounds in turns,
 * each first in turn, so the machine's drift lands on all of them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tests/sysfs.h"
#include "bench.h"

#define BIG GiB

/* ---- the pages a round writes, the same on every side ---- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * The pages a round with seed writes of npages: all in order at 1000 per
 * mille, else that many per mille of them (at least one if any), distinct,
 * in the order drawn.  out holds npages entries; the count is returned.
 */
static uint64_t pick(uint64_t npages, int permille, uint64_t seed, uint64_t *out)
{
	uint64_t want = npages * (uint64_t)permille / 1000, n = 0, s = seed | 1;
	uint64_t *seen;

	if (permille >= 1000) {
		for (uint64_t p = 0; p < npages; p++)
			out[p] = p;
		return npages;
	}
	if (permille > 0 && !want)
		want = 1;
	seen = calloc((npages + 63) / 64, sizeof(*seen));
	if (!seen)
		die("calloc", ENOMEM);
	while (n < want) {
		uint64_t p = rnd(&s) % npages;

		if (seen[p / 64] >> (p % 64) & 1)
			continue;
		seen[p / 64] |= 1ULL << (p % 64);
		out[n++] = p;
	}
	free(seen);
	return n;
}

static int64_t popcount(const uint64_t *b, uint64_t npages)
{
	int64_t n = 0;

	for (uint64_t w = 0; w < (npages + 63) / 64; w++)
		n += __builtin_popcountll(b[w]);
	return n;
}

/* ---- the baselines' processes ---- */

enum method { M_GMEM, M_SOFT_DIRTY, M_UFFD, M_MPROTECT, M_KVM, M_N };
static const char *const method_name[M_N] = { "gmem", "soft-dirty", "uffd-sync", "mprotect",
					       "kvm-dirty-log" };

enum { OP_SETUP, OP_ROUND };

struct request {
	uint32_t op, permille; /* OP_ROUND: the share of pages written */
	uint64_t pages, seed;
};

/* reply.flags */
#define SD_FLOOR 1u /* soft-dirty: the kernel keeps no bits (CONFIG_MEM_SOFT_DIRTY off) */

struct reply {
	int32_t err; /* -errno: the method is unavailable (why says why) */
	uint32_t flags;
	int64_t reported; /* pages the collect reported */
	double write_ns, collect_ns;
	char why[88];
};

/* In the baseline's process: its one mapping, and what its method keeps. */
static struct {
	enum method m;
	int memfd, pagemap, clear_refs, uffd, kvm, vm;
	char *area;
	uint64_t pages;
	uint64_t *written, *out, *ent, *order;
	pthread_t handler;
	bool handler_running, sd_floor;
} bl = { .pagemap = -1, .clear_refs = -1, .uffd = -1, .kvm = -1, .vm = -1 };

static void fail(struct reply *rp, int err, const char *what)
{
	rp->err = -err;
	snprintf(rp->why, sizeof(rp->why), "%s: %s", what, strerror(err));
}

/* mprotect: a write to a read-only page of the area records it and makes it writable. */
static void on_write_fault(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr, base = (uintptr_t)bl.area;
	uint64_t p = (a - base) / PS;

	(void)uc;
	if (!bl.area || a < base || p >= bl.pages) {
		signal(sig, SIG_DFL);
		return;
	}
	bl.written[p / 64] |= 1ULL << (p % 64);
	mprotect(bl.area + p * PS, PS, PROT_READ | PROT_WRITE);
}

/* uffd-sync: each write fault's page recorded and un-protected, which wakes the writer. */
static void *uffd_handler(void *arg)
{
	struct uffd_msg msg[64];

	(void)arg;
	for (;;) {
		ssize_t n = read(bl.uffd, msg, sizeof(msg));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++) {
			uintptr_t a = (uintptr_t)msg[i].arg.pagefault.address & ~(PS - 1);
			uint64_t p = (a - (uintptr_t)bl.area) / PS;
			struct uffdio_writeprotect wp = { .range = { a, PS }, .mode = 0 };

			if (msg[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			bl.written[p / 64] |= 1ULL << (p % 64);
			if (ioctl(bl.uffd, UFFDIO_WRITEPROTECT, &wp))
				die("UFFDIO_WRITEPROTECT", errno);
		}
	}
}

static int uffd_open_wp(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

	if (fd < 0) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev < 0)
			return -errno;
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
		close(dev);
		if (fd < 0)
			return -errno;
	}
	if (ioctl(fd, UFFDIO_API, &api) || !(api.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)) {
		close(fd);
		return -EOPNOTSUPP;
	}
	return fd;
}

static void teardown(void)
{
	uint64_t len = bl.pages * PS;

	if (!bl.area)
		return;
	if (bl.m == M_KVM) {
		struct kvm_userspace_memory_region mr = { .slot = 0 };

		ioctl(bl.vm, KVM_SET_USER_MEMORY_REGION, &mr);
	}
	if (bl.m == M_UFFD) {
		struct uffdio_range r = { (uintptr_t)bl.area, len };

		ioctl(bl.uffd, UFFDIO_UNREGISTER, &r);
	}
	munmap(bl.area, len);
	free(bl.written);
	free(bl.out);
	free(bl.ent);
	free(bl.order);
	bl.area = NULL;
}

static void setup(const struct request *rq, struct reply *rp)
{
	uint64_t len = rq->pages * PS;

	teardown();
	bl.pages = rq->pages;
	bl.written = calloc((bl.pages + 63) / 64, 8);
	bl.out = calloc((bl.pages + 63) / 64, 8);
	bl.order = calloc(bl.pages, 8);
	bl.ent = calloc(bl.pages, 8);
	if (!bl.written || !bl.out || !bl.order || !bl.ent)
		die("calloc", ENOMEM);
	bl.area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, bl.memfd, 0);
	if (bl.area == MAP_FAILED) {
		bl.area = NULL;
		return fail(rp, errno, "mmap");
	}
	if (bl.m != M_KVM)
		touch_pages(bl.area, len); /* every page mapped, as gmem's view maps them */
	switch (bl.m) {
	case M_SOFT_DIRTY:
		if (bl.pagemap < 0 && (bl.pagemap = open("/proc/self/pagemap", O_RDONLY)) < 0)
			return fail(rp, errno, "/proc/self/pagemap");
		if (bl.clear_refs < 0 && (bl.clear_refs = open("/proc/self/clear_refs", O_WRONLY)) < 0)
			return fail(rp, errno, "/proc/self/clear_refs");
		if (write(bl.clear_refs, "4", 1) != 1)
			return fail(rp, errno, "clear_refs");
		/* does the kernel keep the bit?  Without it the rounds still pay the walks */
		bl.area[0] = 1;
		if (pread(bl.pagemap, bl.ent, 8, (off_t)((uintptr_t)bl.area / PS * 8)) != 8)
			return fail(rp, errno, "pagemap");
		bl.sd_floor = !(bl.ent[0] >> 55 & 1);
		if (write(bl.clear_refs, "4", 1) != 1)
			return fail(rp, errno, "clear_refs");
		break;
	case M_UFFD: {
		struct uffdio_register reg = { .range = { (uintptr_t)bl.area, len },
					       .mode = UFFDIO_REGISTER_MODE_WP };
		struct uffdio_writeprotect wp = { .range = { (uintptr_t)bl.area, len },
						  .mode = UFFDIO_WRITEPROTECT_MODE_WP };

		if (bl.uffd < 0 && (bl.uffd = uffd_open_wp()) < 0)
			return fail(rp, -bl.uffd, "userfaultfd write-protect of shmem");
		if (ioctl(bl.uffd, UFFDIO_REGISTER, &reg) || ioctl(bl.uffd, UFFDIO_WRITEPROTECT, &wp))
			return fail(rp, errno, "UFFDIO_REGISTER");
		if (!bl.handler_running && pthread_create(&bl.handler, NULL, uffd_handler, NULL))
			return fail(rp, errno, "pthread_create");
		bl.handler_running = true;
		break;
	}
	case M_MPROTECT: {
		struct sigaction sa = { .sa_sigaction = on_write_fault, .sa_flags = SA_SIGINFO };

		sigaction(SIGSEGV, &sa, NULL);
		if (mprotect(bl.area, len, PROT_READ))
			return fail(rp, errno, "mprotect");
		break;
	}
	case M_KVM: {
		struct kvm_userspace_memory_region mr = { .slot = 0, .flags = KVM_MEM_LOG_DIRTY_PAGES,
							  .guest_phys_addr = 0, .memory_size = len,
							  .userspace_addr = (uintptr_t)bl.area };

		if (bl.kvm < 0 && (bl.kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC)) < 0)
			return fail(rp, errno, "/dev/kvm");
		if (bl.vm < 0 && (bl.vm = ioctl(bl.kvm, KVM_CREATE_VM, 0)) < 0)
			return fail(rp, errno, "KVM_CREATE_VM");
		if (ioctl(bl.vm, KVM_SET_USER_MEMORY_REGION, &mr))
			return fail(rp, errno, "KVM_SET_USER_MEMORY_REGION");
		break;
	}
	default:
		break;
	}
}

static void soft_dirty_collect(struct reply *rp)
{
	size_t want = bl.pages * 8;
	uint64_t len = (bl.pages + 63) / 64 * 8;
	off_t at = (off_t)((uintptr_t)bl.area / PS * 8);

	memset(bl.out, 0, len);
	for (size_t got = 0; got < want;) {
		ssize_t n = pread(bl.pagemap, (char *)bl.ent + got, want - got, at + (off_t)got);

		if (n <= 0)
			return fail(rp, n < 0 ? errno : EIO, "pagemap");
		got += (size_t)n;
	}
	for (uint64_t p = 0; p < bl.pages; p++)
		bl.out[p / 64] |= (bl.ent[p] >> 55 & 1) << (p % 64);
	if (write(bl.clear_refs, "4", 1) != 1)
		fail(rp, errno, "clear_refs");
}

static void round_(const struct request *rq, struct reply *rp)
{
	uint64_t len = bl.pages * PS, words = (bl.pages + 63) / 64;
	uint64_t n = bl.m == M_KVM ? 0 : pick(bl.pages, (int)rq->permille, rq->seed, bl.order);
	double t0 = now_ns();

	for (uint64_t i = 0; i < n; i++)
		((volatile char *)bl.area)[bl.order[i] * PS] = (char)rq->seed;
	rp->write_ns = now_ns() - t0;
	t0 = now_ns();
	switch (bl.m) {
	case M_SOFT_DIRTY:
		soft_dirty_collect(rp);
		break;
	case M_UFFD: {
		struct uffdio_writeprotect wp = { .range = { (uintptr_t)bl.area, len },
						  .mode = UFFDIO_WRITEPROTECT_MODE_WP };

		/* one writer, waiting for each fault's answer: nothing races the copy */
		if (ioctl(bl.uffd, UFFDIO_WRITEPROTECT, &wp))
			fail(rp, errno, "UFFDIO_WRITEPROTECT");
		memcpy(bl.out, bl.written, words * 8);
		memset(bl.written, 0, words * 8);
		break;
	}
	case M_MPROTECT:
		if (mprotect(bl.area, len, PROT_READ))
			fail(rp, errno, "mprotect");
		memcpy(bl.out, bl.written, words * 8);
		memset(bl.written, 0, words * 8);
		break;
	case M_KVM: {
		struct kvm_dirty_log log = { .slot = 0, .dirty_bitmap = bl.out };

		if (ioctl(bl.vm, KVM_GET_DIRTY_LOG, &log))
			fail(rp, errno, "KVM_GET_DIRTY_LOG");
		break;
	}
	default:
		break;
	}
	rp->collect_ns = now_ns() - t0;
	rp->reported = popcount(bl.out, bl.pages);
	rp->flags = bl.sd_floor ? SD_FLOOR : 0;
}

/* gmem-bench --track-baseline METHOD REQUEST_FD REPLY_FD MEMFD */
int track_baseline_main(int argc, char **argv)
{
	struct request rq;
	int in, out;

	if (argc != 6)
		return 2;
	for (bl.m = M_SOFT_DIRTY; bl.m < M_N && strcmp(method_name[bl.m], argv[2]); bl.m++)
		;
	in = atoi(argv[3]);
	out = atoi(argv[4]);
	bl.memfd = atoi(argv[5]);
	if (bl.m == M_N)
		return 2;
	while (read(in, &rq, sizeof(rq)) == (ssize_t)sizeof(rq)) {
		struct reply rp = { 0 };

		if (rq.op == OP_SETUP) {
			setup(&rq, &rp);
			rp.flags = bl.sd_floor ? SD_FLOOR : 0;
		}
		else
			round_(&rq, &rp);
		if (write(out, &rp, sizeof(rp)) != (ssize_t)sizeof(rp))
			return 1;
	}
	return 0;
}

/* ---- the parent's side of them ---- */

struct server {
	pid_t pid;
	int req, rep;
	struct reply last; /* the setup's: err and why */
};

static struct server servers[M_N];
static int shared_memfd = -1;

static void server_call(enum method m, const struct request *rq, struct reply *rp)
{
	struct server *s = &servers[m];

	if (write(s->req, rq, sizeof(*rq)) != (ssize_t)sizeof(*rq) ||
	    read(s->rep, rp, sizeof(*rp)) != (ssize_t)sizeof(*rp))
		die(method_name[m], EPIPE);
}

/* The baseline processes, each set up with `pages` pages mapped; each's setup reply in last. */
static void servers_start(uint64_t pages, const bool *want)
{
	if (shared_memfd < 0) {
		signal(SIGPIPE, SIG_IGN); /* a baseline that died: its pipe says EPIPE */
		shared_memfd = memfd_create("bench-track", MFD_CLOEXEC);
		if (shared_memfd < 0 || ftruncate(shared_memfd, (off_t)BIG))
			die("memfd", errno);
	}
	for (enum method m = M_SOFT_DIRTY; m < M_N; m++) {
		struct server *s = &servers[m];
		int rq[2], rp[2];
		struct request setup_rq = { .op = OP_SETUP, .pages = pages };

		if (!want[m])
			continue;
		if (!s->pid) {
			if (pipe2(rq, O_CLOEXEC) || pipe2(rp, O_CLOEXEC))
				die("pipe", errno);
			s->pid = fork();
			if (s->pid < 0)
				die("fork", errno);
			if (!s->pid) {
				char a[3][16];

				snprintf(a[0], sizeof(a[0]), "%d", dup(rq[0]));
				snprintf(a[1], sizeof(a[1]), "%d", dup(rp[1]));
				snprintf(a[2], sizeof(a[2]), "%d", dup(shared_memfd));
				execl("/proc/self/exe", "gmem-bench", "--track-baseline", method_name[m],
				      a[0], a[1], a[2], (char *)NULL);
				_exit(127);
			}
			close(rq[0]);
			close(rp[1]);
			s->req = rq[1];
			s->rep = rp[0];
		}
		server_call(m, &setup_rq, &s->last);
	}
}

/*
 * A kernel built without CONFIG_MEM_SOFT_DIRTY keeps no bits, and its
 * clear_refs protects nothing: what is left is soft-dirty's floor, the
 * pagemap read and the page-table walk.
 */
static const char *label_of(enum method m)
{
	return m == M_SOFT_DIRTY && (servers[m].last.flags & SD_FLOOR) ? "soft-dirty floor"
								     : method_name[m];
}

static void servers_stop(void)
{
	for (enum method m = M_SOFT_DIRTY; m < M_N; m++) {
		struct server *s = &servers[m];

		if (!s->pid)
			continue;
		close(s->req);
		close(s->rep);
		waitpid(s->pid, NULL, 0);
		*s = (struct server){ 0 };
	}
	if (shared_memfd >= 0)
		close(shared_memfd);
	shared_memfd = -1;
}

/* ---- gmem's side ---- */

struct tracked {
	struct gmem *g;
	char *view, *guest;
	uint64_t pages;
	bool through_guest; /* rounds write through the guest mapping */
	uint64_t *bitmap, *order;
};


/*
 * An object of `pages` pages with a view of all of it, every page written
 * through the view (and the guest mapping, with GMEM_TRACK_GUEST), tracking
 * started with flags and collected once: the gmem side of a round.
 */
static int tracked_setup(struct tracked *t, uint64_t pages, uint32_t backing, unsigned int flags)
{
	struct gmem_config cfg = { .size = pages * PS, .backing = backing };
	void *v, *guest;
	int err;

	*t = (struct tracked){ .pages = pages, .through_guest = flags & GMEM_TRACK_GUEST };
	if ((err = gmem_create(&cfg, &t->g)))
		die("gmem_create", err);
	if ((err = gmem_view_map(t->g, 0, pages * PS, 0, &v)) || (err = gmem_guest_map(t->g, &guest)))
		die("gmem_view_map", err);
	t->view = v;
	t->guest = guest;
	t->bitmap = calloc((pages + 63) / 64, 8);
	t->order = calloc(pages, 8);
	if (!t->bitmap || !t->order)
		die("calloc", ENOMEM);
	touch_pages(t->view, pages * PS);
	if (t->through_guest)
		touch_pages(t->guest, pages * PS); /* as the guest would: its mapping populated */
	err = gmem_track_start(t->g, flags);
	if (!err && gmem_track_collect(t->g, 0, pages * PS, t->bitmap, 0) < 0)
		die("gmem_track_collect", EIO);
	return err;
}

static void tracked_free(struct tracked *t)
{
	if (t->g)
		gmem_destroy(t->g);
	free(t->bitmap);
	free(t->order);
	*t = (struct tracked){ 0 };
}

static void gmem_round(struct tracked *t, int permille, uint64_t seed, struct reply *rp)
{
	uint64_t n = pick(t->pages, permille, seed, t->order);
	volatile char *to = t->through_guest ? t->guest : t->view;
	double t0 = now_ns();
	int64_t got;

	for (uint64_t i = 0; i < n; i++)
		to[t->order[i] * PS] = (char)seed;
	rp->write_ns = now_ns() - t0;
	t0 = now_ns();
	got = gmem_track_collect(t->g, 0, t->pages * PS, t->bitmap, 0);
	rp->collect_ns = now_ns() - t0;
	if (got < 0)
		die("gmem_track_collect", (int)got);
	rp->reported = got;
}

/* ---- (t1), (t4): collects beside the baselines ---- */

static void spread(const double *v, int n, double out[3])
{
	out[0] = out[2] = v[0];
	for (int i = 1; i < n; i++) {
		out[0] = v[i] < out[0] ? v[i] : out[0];
		out[2] = v[i] > out[2] ? v[i] : out[2];
	}
	out[1] = median(v, n);
}

static struct {
	struct tracked t;
	bool on[M_N];
	double write[M_N][MAX_REPS], collect[M_N][MAX_REPS];
	int n[M_N][MAX_REPS]; /* rounds measured */
	uint64_t written;     /* pages a round writes */
} cr;

static void collect_end(void)
{
	tracked_free(&cr.t);
	servers_stop();
}

/* A method's collect reported what the round wrote, or the benchmark is wrong. */
static void check_reported(enum method m, const struct reply *rp, uint64_t written)
{
	/* no vCPU: nothing dirties KVM's log; soft-dirty's floor keeps no bits */
	uint64_t want = m == M_KVM || (rp->flags & SD_FLOOR) ? 0 : written;

	if (rp->err) {
		fprintf(stderr, "gmem-bench: %s: %s\n", method_name[m], rp->why);
		exit(1);
	}
	if ((uint64_t)rp->reported != want) {
		fprintf(stderr, "gmem-bench: %s reported %lld pages of %llu written\n", method_name[m],
			(long long)rp->reported, (unsigned long long)want);
		exit(1);
	}
}

/*
 * Rounds over BIG: each writes pct % of the pages (gmem's through the guest
 * mapping with GMEM_TRACK_GUEST in gflags) and collects, for gmem and each
 * baseline, in turns.  The figure: gmem's collect / soft-dirty's.
 */
static void collect_figure(struct figure *f, int r, int pct, unsigned int gflags, const char *label)
{
	static const bool want[M_N] = { false, true, true, true, true };
	const int rounds = pct == 100 ? 2 : 8;
	/* a fault answered per page: at 100 % a round of these takes seconds, one a repetition */
	const bool slow_once = pct == 100;

	if (r == 0) {
		int err;

		memset(&cr, 0, sizeof(cr));
		servers_start(BIG / PS, want);
		if (servers[M_SOFT_DIRTY].last.err) {
			f->skipped = true;
			snprintf(f->why, sizeof(f->why), "%s", servers[M_SOFT_DIRTY].last.why);
			return collect_end();
		}
		for (enum method m = M_SOFT_DIRTY; m < M_N; m++)
			if (!(cr.on[m] = !servers[m].last.err))
				series("track_collect", "\"figure\": \"%s\", \"method\": \"%s\", \"error\": \"%s\"",
				       f->id, method_name[m], servers[m].last.why);
		err = tracked_setup(&cr.t, BIG / PS, GMEM_BACKING_SHMEM, gflags);
		if (err) {
			f->skipped = true;
			snprintf(f->why, sizeof(f->why), "gmem_track_start: %s", strerror(-err));
			return collect_end();
		}
		cr.on[M_GMEM] = true;
		if (servers[M_SOFT_DIRTY].last.flags & SD_FLOOR)
			f->baseline_what = "soft-dirty's floor (no CONFIG_MEM_SOFT_DIRTY): the pagemap "
					   "read + clear_refs walk, plain memfd 1 GiB";
	}
	for (int i = 0; i < rounds; i++) {
		uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(r * rounds + i + 1);

		cr.written = pick(BIG / PS, pct * 10, seed, cr.t.order);
		for (int k = 0; k < M_N; k++) {
			enum method m = (enum method)((k + i + r) % M_N);
			struct request rq = { .op = OP_ROUND, .permille = (uint32_t)pct * 10, .seed = seed };
			struct reply rp = { 0 };

			if (!cr.on[m] || (slow_once && i && (m == M_UFFD || m == M_MPROTECT)))
				continue;
			if (m == M_GMEM)
				gmem_round(&cr.t, pct * 10, seed, &rp);
			else
				server_call(m, &rq, &rp);
			check_reported(m, &rp, cr.written);
			cr.write[m][r] += rp.write_ns;
			cr.collect[m][r] += rp.collect_ns;
			cr.n[m][r]++;
		}
	}
	for (enum method m = M_GMEM; m < M_N; m++) {
		cr.write[m][r] /= cr.n[m][r] ? cr.n[m][r] : 1;
		cr.collect[m][r] /= cr.n[m][r] ? cr.n[m][r] : 1;
	}
	f->value[r] = cr.collect[M_GMEM][r];
	f->base[r] = cr.collect[M_SOFT_DIRTY][r];
	if (r < bench_reps - 1)
		return;
	for (enum method m = M_GMEM; m < M_N; m++) {
		double c3[3], w = median(cr.write[m], bench_reps);

		if (!cr.on[m])
			continue;
		spread(cr.collect[m], bench_reps, c3);
		series("track_collect",
		       "\"figure\": \"%s\", \"method\": \"%s\", \"pct\": %d, \"pages_written\": %llu, "
		       "\"collect_ns\": %.0f, \"collect_min\": %.0f, \"collect_max\": %.0f, "
		       "\"write_ns\": %.0f, \"round_ns\": %.0f, \"vs_soft_dirty\": %.3f",
		       f->id, m == M_GMEM ? label : label_of(m), pct,
		       (unsigned long long)(m == M_KVM ? 0 : cr.written), c3[1], c3[0], c3[2], w, c3[1] + w,
		       c3[1] / median(cr.collect[M_SOFT_DIRTY], bench_reps));
	}
	collect_end();
}

static void collect_0(struct figure *f, int r)
{
	collect_figure(f, r, 0, 0, "gmem");
}

static void collect_1(struct figure *f, int r)
{
	collect_figure(f, r, 1, 0, "gmem");
}

static void collect_100(struct figure *f, int r)
{
	collect_figure(f, r, 100, 0, "gmem");
}

static void collect_guest_1(struct figure *f, int r)
{
	collect_figure(f, r, 1, GMEM_TRACK_GUEST, "gmem, GMEM_TRACK_GUEST (written by the guest)");
}

/* ---- (t2) the first write after a collect ---- */

#define FW_SIZE (64 * MiB)
#define FW_BLOCK MiB

/*
 * Every page of a view mapped and protected again by a collect, then
 * written once: an asynchronous write-protect fault each.  Beside it, in
 * blocks alternating with it, a first write to each page of a plain memfd
 * mapping whose pages are cached but not mapped: a minor write fault
 * (write faults map one page: no fault-around).
 */
static void first_write(struct figure *f, int r)
{
	struct tracked t;
	double tg = 0, tb = 0, t0;
	int fd, err = tracked_setup(&t, FW_SIZE / PS, GMEM_BACKING_SHMEM, 0);
	char *p;

	if (err) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "gmem_track_start: %s", strerror(-err));
		tracked_free(&t);
		return;
	}
	p = plain_map(FW_SIZE, &fd);
	touch_pages(p, FW_SIZE);
	madvise(p, FW_SIZE, MADV_DONTNEED); /* cached, not mapped */
	for (uint64_t o = 0; o < FW_SIZE; o += FW_BLOCK) {
		for (int k = 0; k < 2; k++) {
			if ((k + o / FW_BLOCK + (uint64_t)r) % 2 == 0) {
				t0 = now_ns();
				touch_pages(t.view + o, FW_BLOCK);
				tg += now_ns() - t0;
			} else {
				t0 = now_ns();
				touch_pages(p + o, FW_BLOCK);
				tb += now_ns() - t0;
			}
		}
	}
	if (gmem_track_collect(t.g, 0, FW_SIZE, t.bitmap, 0) != (int64_t)(FW_SIZE / PS))
		die("gmem_track_collect: not every page written reported", EIO);
	f->value[r] = tg / (FW_SIZE / PS);
	f->base[r] = tb / (FW_SIZE / PS);
	tracked_free(&t);
	plain_unmap(p, FW_SIZE, fd);
}

/* ---- (t3) false positives of a read-mostly host workload ---- */

#define FP_SIZE GiB
#define FP_ROUNDS 20
#define FP_CONVERT_EVERY 4 /* rounds */
#define FP_CONVERT_PAGES 16

struct fp_result {
	uint64_t written, read, converted; /* pages, each counted under its first cause */
	uint64_t reported, by_write, by_conversion, by_read, by_nothing;
};

static struct fp_result fp_res[MAX_REPS];
static bool fp_done[MAX_REPS];

static bool bit(const uint64_t *b, uint64_t p)
{
	return b[p / 64] >> (p % 64) & 1;
}

static void set_bit(uint64_t *b, uint64_t p)
{
	b[p / 64] |= 1ULL << (p % 64);
}

/*
 * Between collects the host reads 10 % of the pages through its view and
 * writes 0.1 %, at random; every FP_CONVERT_EVERY rounds FP_CONVERT_PAGES
 * pages go private and back one by one, between the reads and the writes.
 * Each page reported is put down to its first cause: written, converted
 * (a conversion zaps what the view maps and counts it written), read, or
 * none.  A page written and not reported is a bug: the run stops.
 */
static int fp_run(int r, struct fp_result *res)
{
	const uint64_t npages = FP_SIZE / PS, words = (npages + 63) / 64;
	uint64_t *wr = calloc(words, 8), *rd = calloc(words, 8), *cv = calloc(words, 8);
	uint64_t *order = calloc(npages, 8), s = 0x2545f4914f6cdd1dULL + (uint64_t)r;
	struct tracked t;
	int err;

	if (!wr || !rd || !cv || !order)
		die("calloc", ENOMEM);
	*res = (struct fp_result){ 0 };
	err = tracked_setup(&t, npages, GMEM_BACKING_SHMEM, 0);
	for (int round = 0; !err && round < FP_ROUNDS; round++) {
		uint64_t n;
		int64_t got;

		memset(wr, 0, words * 8);
		memset(rd, 0, words * 8);
		memset(cv, 0, words * 8);
		n = pick(npages, 100, rnd(&s), order);
		for (uint64_t i = 0; i < n; i++) {
			(void)*(volatile char *)(t.view + order[i] * PS);
			set_bit(rd, order[i]);
		}
		if (round % FP_CONVERT_EVERY == FP_CONVERT_EVERY - 1) {
			for (int i = 0; i < FP_CONVERT_PAGES; i++) {
				uint64_t p = rnd(&s) % npages;

				if ((err = gmem_convert(t.g, p * PS, PS, GMEM_PRIVATE, 0, NULL)) ||
				    (err = gmem_convert(t.g, p * PS, PS, GMEM_SHARED, 0, NULL)))
					die("gmem_convert", err);
				set_bit(cv, p);
			}
		}
		n = pick(npages, 1, rnd(&s), order);
		for (uint64_t i = 0; i < n; i++) {
			t.view[order[i] * PS] = (char)round;
			set_bit(wr, order[i]);
		}
		got = gmem_track_collect(t.g, 0, FP_SIZE, t.bitmap, 0);
		if (got < 0)
			die("gmem_track_collect", (int)got);
		res->reported += (uint64_t)got;
		for (uint64_t p = 0; p < npages; p++) {
			bool rep = bit(t.bitmap, p);

			if (bit(wr, p)) {
				if (!rep)
					die("a page written was not reported", EIO);
				res->written++;
				res->by_write++;
			} else if (bit(cv, p)) {
				res->converted++;
				res->by_conversion += rep;
			} else if (bit(rd, p)) {
				res->read++;
				res->by_read += rep;
			} else {
				res->by_nothing += rep;
			}
		}
	}
	tracked_free(&t);
	free(wr);
	free(rd);
	free(cv);
	free(order);
	return err;
}

/* One run per repetition, shared by the figures that read it. */
static const struct fp_result *fp_get(struct figure *f, int r)
{
	int err;

	if (fp_done[r])
		return &fp_res[r];
	err = fp_run(r, &fp_res[r]);
	if (err) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "gmem_track_start: %s", strerror(-err));
		return NULL;
	}
	fp_done[r] = true;
	if (r == bench_reps - 1) {
		const struct fp_result *x = &fp_res[r];

		series("track_false_positives",
		       "\"rounds\": %d, \"pages\": %llu, \"written\": %llu, \"read_only\": %llu, "
		       "\"converted\": %llu, \"reported\": %llu, \"by_write\": %llu, "
		       "\"by_conversion\": %llu, \"by_read\": %llu, \"by_nothing\": %llu",
		       FP_ROUNDS, (unsigned long long)(FP_SIZE / PS), (unsigned long long)x->written,
		       (unsigned long long)x->read, (unsigned long long)x->converted,
		       (unsigned long long)x->reported, (unsigned long long)x->by_write,
		       (unsigned long long)x->by_conversion, (unsigned long long)x->by_read,
		       (unsigned long long)x->by_nothing);
		printf("%-54s %llu written, %llu reported: %llu converted (of %llu), %llu read (of "
		       "%llu), %llu untouched\n",
		       "(t3)", (unsigned long long)x->written, (unsigned long long)x->reported,
		       (unsigned long long)x->by_conversion, (unsigned long long)x->converted,
		       (unsigned long long)x->by_read, (unsigned long long)x->read,
		       (unsigned long long)x->by_nothing);
	}
	return &fp_res[r];
}

/* Reported / what the documented causes account for: written, or converted while mapped. */
static void false_positive(struct figure *f, int r)
{
	const struct fp_result *x = fp_get(f, r);

	if (!x)
		return;
	f->value[r] = (double)x->reported;
	f->base[r] = (double)(x->written + x->converted);
}

/* Pages reported that were only read, or not touched: none. */
static void false_reads(struct figure *f, int r)
{
	const struct fp_result *x = fp_get(f, r);

	if (!x)
		return;
	f->value[r] = (double)(x->by_read + x->by_nothing);
	f->base[r] = (double)x->read;
}

/* ---- (t4) GMEM_TRACK_GUEST on a THP backing ---- */

#define THP_SIZE (256 * MiB)
#define THP_BLOCK (2 * MiB)

static uint64_t guest_huge(struct gmem *g)
{
	struct gmem_huge_info i;
	int err = gmem_huge_info(g, &i);

	if (err)
		die("gmem_huge_info", err);
	return i.blocks_guest_huge;
}

/*
 * The guest mapping of a THP object written whole (every block mapped
 * huge), then tracked: blocks the guest mapping maps huge before, right
 * after gmem_track_start(), after the guest wrote 1 % of the pages and a
 * collect, after gmem_track_stop(), and after a gmem_collapse() of the
 * whole object.  The figure: the share huge again at the end.
 */
static void thp_guest(struct figure *f, int r)
{
	struct gmem_config cfg = { .size = THP_SIZE, .backing = GMEM_BACKING_THP };
	const uint64_t blocks = THP_SIZE / THP_BLOCK, npages = THP_SIZE / PS;
	uint64_t before, started, during, stopped, after, *order, *b;
	struct gmem *g;
	double t0, collapse;
	char *guest;
	int err;

	if (!thp_enable() || gmem_create(&cfg, &g)) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "shmem huge pages unavailable (shmem_enabled, not root)");
		return;
	}
	order = calloc(npages, 8);
	b = calloc(npages / 64, 8);
	if (!order || !b)
		die("calloc", ENOMEM);
	gmem_guest_map(g, (void **)&guest);
	touch_pages(guest, THP_SIZE);
	before = guest_huge(g);
	if ((err = gmem_track_start(g, GMEM_TRACK_GUEST))) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "gmem_track_start: %s", strerror(-err));
		goto out;
	}
	started = guest_huge(g);
	for (uint64_t i = 0, n = pick(npages, 10, 7 + (uint64_t)r, order); i < n; i++)
		guest[order[i] * PS] = 2;
	if (gmem_track_collect(g, 0, THP_SIZE, b, 0) < 0)
		die("gmem_track_collect", EIO);
	during = guest_huge(g);
	gmem_track_stop(g);
	stopped = guest_huge(g);
	t0 = now_ns();
	err = gmem_collapse(g, 0, THP_SIZE, NULL);
	collapse = now_ns() - t0;
	if (err)
		die("gmem_collapse", err);
	after = guest_huge(g);
	f->value[r] = 100.0 * (double)after / (double)blocks;
	f->base[r] = 100.0 * (double)before / (double)blocks;
	if (r == bench_reps - 1) {
		series("track_thp",
		       "\"blocks\": %llu, \"huge_before\": %llu, \"huge_started\": %llu, "
		       "\"huge_during\": %llu, \"huge_stopped\": %llu, \"huge_collapsed\": %llu, "
		       "\"collapse_ns_per_block\": %.0f",
		       (unsigned long long)blocks, (unsigned long long)before,
		       (unsigned long long)started, (unsigned long long)during,
		       (unsigned long long)stopped, (unsigned long long)after,
		       collapse / (double)blocks);
		printf("%-54s blocks guest-huge of %llu: %llu before, %llu started, %llu during, %llu "
		       "stopped, %llu collapsed (%.0f us a block)\n",
		       "(t4)", (unsigned long long)blocks, (unsigned long long)before,
		       (unsigned long long)started, (unsigned long long)during,
		       (unsigned long long)stopped, (unsigned long long)after,
		       collapse / (double)blocks / 1e3);
	}
out:
	gmem_destroy(g);
	free(order);
	free(b);
}

/* ---- the anchor's sizes: every page of 1, 1,000 and 10,000 written ---- */

/*
 * A comparison, not a figure: each method on areas of the published
 * anchor's sizes, every page written between collects, in thousands of
 * cycles (the time-stamp counter's), beside the anchor.
 */
void track_sizes(void)
{
	static const uint64_t sizes[] = { 1, 1000, 10000 };
	static const int rounds[] = { 200, 100, 20 };
	static const double anchor[M_N][3] = { [M_SOFT_DIRTY] = { 7, 1178, 17563 },
					       [M_UFFD] = { 5405, 55708, 621522 },
					       [M_MPROTECT] = { 35, 6646, 60149 } };
	static const bool want[M_N] = { false, true, true, true, false };
	static double coll[M_N][256], all[M_N][256];
	const double kc = tsc_ghz() / 1e3;

	printf("\nwrite tracking: every page of the area written between collects (median of "
	       "rounds), thousands of cycles\n");
	printf("%-16s %7s %12s %14s %12s\n", "method", "pages", "collect", "writes+collect",
	       "anchor");
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		struct tracked t;
		bool on[M_N] = { [M_GMEM] = true };
		int err;

		servers_start(sizes[si], want);
		for (enum method m = M_SOFT_DIRTY; m < M_N; m++)
			on[m] = want[m] && !servers[m].last.err;
		if ((err = tracked_setup(&t, sizes[si], GMEM_BACKING_SHMEM, 0))) {
			printf("gmem_track_start: %s\n", strerror(-err));
			tracked_free(&t);
			break;
		}
		for (int i = 0; i < rounds[si]; i++) {
			for (int k = 0; k < M_N; k++) {
				enum method m = (enum method)((k + i) % M_N);
				struct request rq = { .op = OP_ROUND, .permille = 1000, .seed = (uint64_t)i };
				struct reply rp = { 0 };

				if (!on[m])
					continue;
				if (m == M_GMEM)
					gmem_round(&t, 1000, (uint64_t)i, &rp);
				else
					server_call(m, &rq, &rp);
				check_reported(m, &rp, sizes[si]);
				coll[m][i] = rp.collect_ns * kc;
				all[m][i] = (rp.write_ns + rp.collect_ns) * kc;
			}
		}
		tracked_free(&t);
		for (enum method m = M_GMEM; m < M_N; m++) {
			double c = median(coll[m], rounds[si]), a = median(all[m], rounds[si]);

			if (!on[m])
				continue;
			printf("%-16s %7llu %12.1f %14.1f %12.0f\n", label_of(m),
			       (unsigned long long)sizes[si], c, a, anchor[m][si]);
			series("track_sizes",
			       "\"method\": \"%s\", \"pages\": %llu, \"collect_kcycles\": %.1f, "
			       "\"round_kcycles\": %.1f, \"anchor_kcycles\": %.0f",
			       label_of(m), (unsigned long long)sizes[si], c, a, anchor[m][si]);
		}
	}
	servers_stop();
}

#define T1(id_, what_, fn)                                                                   \
	{ { .id = id_, .what = what_, .unit = "ns",                                           \
	    .baseline_what = "soft-dirty: pagemap bit 55 + clear_refs, plain memfd 1 GiB",     \
	    .target = 1.0 },                                                                  \
	  fn }

struct bench_entry track_figures[] = {
	T1("track_collect_0", "(t1) collect over 1 GiB, nothing written", collect_0),
	T1("track_collect_1", "(t1) collect over 1 GiB, 1 % written through a view", collect_1),
	T1("track_collect_100", "(t1) collect over 1 GiB, all written through a view", collect_100),
	T1("track_collect_guest_1", "(t4) collect, GMEM_TRACK_GUEST, 1 GiB, 1 % written by guest",
	   collect_guest_1),
	{ { .id = "track_first_write", .what = "(t2) first write to a page after a collect",
	    .unit = "ns/page", .baseline_what = "minor write fault, plain memfd (cached, not mapped)",
	    .target = 2.0 },
	  first_write },
	{ { .id = "track_false_positive", .what = "(t3) pages reported, read-mostly host workload",
	    .unit = "pages", .baseline_what = "pages written, or converted (zapped: counted written)",
	    .target = 1.0 },
	  false_positive },
	{ { .id = "track_false_reads", .what = "(t3) pages reported only read (or untouched)",
	    .unit = "pages", .baseline_what = "pages only read", .target = 0, .absolute = true },
	  false_reads },
	{ { .id = "track_thp_guest", .what = "(t4) THP blocks guest-huge after stop + collapse",
	    .unit = "%", .baseline_what = "before gmem_track_start(GMEM_TRACK_GUEST)", .target = 100,
	    .at_least = true, .absolute = true },
	  thp_guest },
};
const size_t n_track_figures = sizeof(track_figures) / sizeof(track_figures[0]);
