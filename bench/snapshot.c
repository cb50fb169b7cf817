// SPDX-License-Identifier: MIT
/*
 * snapshot.c - gmem_save() and gmem_restore() beside the plain system
 * calls a VMM without gmem would make for the same bytes.
 *
 * The object: 1 GiB of 4 KiB shmem, 25 % populated, clustered - every
 * fourth 2 MiB region written whole (128 regions, 256 MiB), as a guest's
 * memory mostly is; every page holds its own pattern.  The plain side: a
 * 1 GiB memfd mapping populated the same.  Files are memfds (tmpfs); the
 * _disk figures use an unlinked regular file (O_TMPFILE) in
 * $GMEM_BENCH_DISK_DIR or /var/tmp - buffered, never fsync()ed: the page
 * cache of a disk file system - and are not measured where that is tmpfs
 * or cannot be created.
 *
 * (s1) gmem_save() to a fresh file / write() of each populated region
 *      from the plain mapping to a fresh file of the same kind.
 * (s2) eager gmem_restore() of that file into a fresh object / read() of
 *      the plain file's regions into a fresh plain mapping, in place.
 * (s3) a lazy restore's first touch of a page, through a view and through
 *      the guest mapping (as the guest's, which KVM's faults take), per
 *      fault / the same touch of a plain memfd mapping registered with
 *      userfaultfd for missing faults, whose handler thread answers with
 *      one UFFDIO_COPY of 4 KiB: the least a lazy restore can pay.
 * (s4) the restore call that stands before a VM's first instruction:
 *      gmem_restore(GMEM_RESTORE_LAZY) until it returns / the eager one.
 *      gmem-vmm has no --restore yet: this is the library's call, not the
 *      VMM's time to the guest's first instruction.
 * (s5) a GMEM_SAVE_DIRTY layer after 1 % of the object's pages (random
 *      4 KiB pages among the populated ones) were written through a view,
 *      tracking started before the full save / that full save.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#define OBJ GiB
#define REGION (2 * MiB)
#define EVERY 4 /* every 4th region populated: 25 % */
#define NREGIONS (OBJ / REGION / EVERY)
#define RECORD (1 * MiB) /* the library's data record: its lazy fill unit on shmem */
#define FAULTS 48        /* touches timed per lazy restore */

static uint64_t region_off(uint64_t i)
{
	return i * EVERY * REGION;
}

/* Each page its own bytes, so that nothing compresses or dedupes. */
static void fill(char *p, uint64_t off, uint64_t len)
{
	for (uint64_t o = 0; o < len; o += PS) {
		uint64_t *w = (uint64_t *)(p + o);
		uint64_t x = ((off + o) / PS) * 0x9e3779b97f4a7c15ULL | 1;

		for (size_t i = 0; i < PS / 8; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			w[i] = x;
		}
	}
}

static struct gmem *create(void)
{
	struct gmem_config cfg = { .size = OBJ, .backing = GMEM_BACKING_SHMEM };
	struct gmem *g;
	int err = gmem_create(&cfg, &g);

	if (err)
		die("gmem_create", err);
	return g;
}

/*
 * The object populated by the guest (through the guest mapping, as KVM's
 * faults write it: the pages are mapped there, as the plain side's are in
 * its mapping) or by host code through a view.
 */
static struct gmem *populated(bool by_guest)
{
	struct gmem *g = create();
	void *v;
	int err = by_guest ? gmem_guest_map(g, &v) : gmem_view_map(g, 0, OBJ, 0, &v);

	if (err)
		die(by_guest ? "gmem_guest_map" : "gmem_view_map", err);
	for (uint64_t i = 0; i < NREGIONS; i++)
		fill((char *)v + region_off(i), region_off(i), REGION);
	if (!by_guest)
		gmem_view_unmap(g, v);
	return g;
}

static char *plain_populated(int *fd)
{
	char *p = plain_map(OBJ, fd);

	for (uint64_t i = 0; i < NREGIONS; i++)
		fill(p + region_off(i), region_off(i), REGION);
	return p;
}

static const char *disk_dir(void)
{
	const char *d = getenv("GMEM_BENCH_DISK_DIR");

	return d && *d ? d : "/var/tmp";
}

/* A fresh file: a memfd, or an unlinked regular file on disk; -1 and f skipped if none. */
static int out_file(struct figure *f, bool disk)
{
	struct statfs sf;
	int fd;

	if (!disk) {
		fd = memfd_create("snap", MFD_CLOEXEC);
		if (fd < 0)
			die("memfd_create", errno);
		return fd;
	}
	fd = open(disk_dir(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 || fstatfs(fd, &sf) || sf.f_type == TMPFS_MAGIC) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "no regular file on disk in %s (GMEM_BENCH_DISK_DIR)",
			 disk_dir());
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void write_all(int fd, const char *p, uint64_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("write", n ? errno : EIO);
		p += n;
		len -= (uint64_t)n;
	}
}

static void read_all(int fd, char *p, uint64_t len)
{
	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("read", n ? errno : EIO);
		p += n;
		len -= (uint64_t)n;
	}
}

/* The baselines: the populated regions, one write() or read() each. */
static void plain_save(const char *p, int fd)
{
	for (uint64_t i = 0; i < NREGIONS; i++)
		write_all(fd, p + region_off(i), REGION);
}

static void plain_restore(char *p, int fd)
{
	for (uint64_t i = 0; i < NREGIONS; i++)
		read_all(fd, p + region_off(i), REGION);
}

static void rewind_fd(int fd)
{
	if (lseek(fd, 0, SEEK_SET))
		die("lseek", errno);
}

static uint64_t file_size(int fd)
{
	struct stat st;

	if (fstat(fd, &st))
		die("fstat", errno);
	return (uint64_t)st.st_size;
}

static double timed_save(struct gmem *g, int fd, unsigned int flags)
{
	double t0 = now_ns();
	int err = gmem_save(g, fd, flags);

	if (err)
		die("gmem_save", err);
	return now_ns() - t0;
}

/* The file a populated object saves to (and, if plain_fd, the plain file). */
static int saved_file(struct figure *f, bool disk, int *plain_fd)
{
	struct gmem *g = populated(true);
	int fd = out_file(f, disk);

	if (fd >= 0)
		timed_save(g, fd, 0);
	gmem_destroy(g);
	if (fd >= 0 && plain_fd && (*plain_fd = out_file(f, disk)) >= 0) {
		int pfd;
		char *p = plain_populated(&pfd);

		plain_save(p, *plain_fd);
		plain_unmap(p, OBJ, pfd);
	}
	return fd;
}

/* The pages of region 0 and the last one as the pattern wants them, through gmem_read(). */
static void verify(struct gmem *g)
{
	static char want[PS], got[PS];
	uint64_t offs[] = { region_off(0), region_off(NREGIONS - 1) + REGION - PS };

	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		fill(want, offs[i], PS);
		if (gmem_read(g, offs[i], got, PS, NULL) || memcmp(want, got, PS))
			die("restored contents", EBADMSG);
	}
}

/* ---- s1, s2 ---- */

static double s_bytes[2][2][MAX_REPS]; /* [save/restore][memfd/disk]: the file's size */

static void series_rate(const struct figure *f, int which, bool disk)
{
	double gb = s_bytes[which][disk][0] / 1e9;

	series("snapshot", "\"figure\": \"%s\", \"file\": \"%s\", \"bytes\": %.0f, "
			   "\"gmem_ms\": %.2f, \"baseline_ms\": %.2f, \"gmem_gbps\": %.2f, "
			   "\"baseline_gbps\": %.2f, \"ratio\": %.3f",
	       f->id, disk ? "disk" : "memfd", s_bytes[which][disk][0],
	       median(f->value, f->reps) / 1e6, median(f->base, f->reps) / 1e6,
	       gb / (median(f->value, f->reps) / 1e9), (NREGIONS * REGION / 1e9) /
	       (median(f->base, f->reps) / 1e9), median(f->value, f->reps) / median(f->base, f->reps));
}

static void save(struct figure *f, int r, bool disk, unsigned int flags)
{
	struct gmem *g = populated(true);
	int pfd, gfd = -1, bfd = -1;
	char *p = plain_populated(&pfd);

	for (int i = 0; i < 2 && !f->skipped; i++) { /* both orders: neither always first */
		if ((i + r) % 2 == 0) {
			if ((gfd = out_file(f, disk)) >= 0)
				f->value[r] = timed_save(g, gfd, flags);
		} else if ((bfd = out_file(f, disk)) >= 0) {
			double t0 = now_ns();

			plain_save(p, bfd);
			f->base[r] = now_ns() - t0;
		}
	}
	if (!f->skipped)
		s_bytes[0][disk][r] = (double)file_size(gfd);
	if (gfd >= 0)
		close(gfd);
	if (bfd >= 0)
		close(bfd);
	gmem_destroy(g);
	plain_unmap(p, OBJ, pfd);
	if (!f->skipped && r == f->reps - 1)
		series_rate(f, 0, disk);
}

static void save_memfd(struct figure *f, int r)
{
	save(f, r, false, GMEM_SAVE_PAUSED);
}

static void save_disk(struct figure *f, int r)
{
	save(f, r, true, GMEM_SAVE_PAUSED);
}

static void save_running(struct figure *f, int r)
{
	save(f, r, false, 0);
}

static void restore(struct figure *f, int r, bool disk)
{
	int bfd = -1, gfd = saved_file(f, disk, &bfd);

	if (f->skipped)
		goto out;
	for (int i = 0; i < 2; i++) {
		if ((i + r) % 2 == 0) {
			struct gmem *g = create();
			double t0;
			int err;

			rewind_fd(gfd);
			t0 = now_ns();
			err = gmem_restore(g, gfd, 0);
			f->value[r] = now_ns() - t0;
			if (err)
				die("gmem_restore", err);
			verify(g);
			gmem_destroy(g);
		} else {
			int pfd;
			char *p = plain_map(OBJ, &pfd);
			double t0;

			rewind_fd(bfd);
			t0 = now_ns();
			plain_restore(p, bfd);
			f->base[r] = now_ns() - t0;
			plain_unmap(p, OBJ, pfd);
		}
	}
	s_bytes[1][disk][r] = (double)file_size(gfd);
	if (r == f->reps - 1)
		series_rate(f, 1, disk);
out:
	if (gfd >= 0)
		close(gfd);
	if (bfd >= 0)
		close(bfd);
}

static void restore_memfd(struct figure *f, int r)
{
	restore(f, r, false);
}

static void restore_disk(struct figure *f, int r)
{
	restore(f, r, true);
}

/* ---- s3: a lazy restore's faults beside a bare userfaultfd handler ---- */

struct bare {
	int uffd, stopfd;
	char *src;       /* what the handler copies in */
	uint64_t unit;   /* bytes a fault gets: 4 KiB, or the library's record */
	pthread_t thread;
};

static void *bare_handler(void *arg)
{
	struct bare *b = arg;
	struct pollfd pfd[2] = { { b->uffd, POLLIN, 0 }, { b->stopfd, POLLIN, 0 } };

	for (;;) {
		struct uffd_msg msg;
		struct uffdio_copy copy;

		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			die("poll", errno);
		if (pfd[1].revents)
			return NULL;
		if (!(pfd[0].revents & POLLIN))
			continue;
		if (read(b->uffd, &msg, sizeof(msg)) != sizeof(msg)) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			die("read uffd", errno);
		}
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		copy = (struct uffdio_copy){ .dst = msg.arg.pagefault.address & ~(b->unit - 1),
					     .src = (uintptr_t)b->src, .len = b->unit };
		if (ioctl(b->uffd, UFFDIO_COPY, &copy) && errno != EEXIST)
			die("UFFDIO_COPY", errno);
	}
}

/*
 * ns per first touch of FAULTS pages, one in each RECORD-sized unit
 * from the top of the populated memory down, of a plain memfd mapping whose
 * missing faults a handler thread answers with UFFDIO_COPY of unit bytes.
 */
static double bare_faults(uint64_t unit)
{
	struct bare b = { .unit = unit };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	double t = 0;
	int fd;
	char *p = plain_map(OBJ, &fd);

	b.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	b.stopfd = eventfd(0, EFD_CLOEXEC);
	if (b.uffd < 0 || b.stopfd < 0 || ioctl(b.uffd, UFFDIO_API, &api))
		die("userfaultfd", errno);
	reg = (struct uffdio_register){ .range = { (uintptr_t)p, OBJ },
					.mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(b.uffd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER", errno);
	b.src = aligned_alloc(PS, unit);
	if (!b.src)
		die("malloc", ENOMEM);
	fill(b.src, 0, unit);
	if ((errno = pthread_create(&b.thread, NULL, bare_handler, &b)))
		die("pthread_create", errno);
	for (int i = 0; i < FAULTS; i++) {
		uint64_t off = region_off(NREGIONS - 1 - i / 2) + (i % 2 ? 0 : RECORD) + 100 * PS;
		double t0 = now_ns();

		(void)*(volatile char *)(p + off);
		t += now_ns() - t0;
	}
	if (eventfd_write(b.stopfd, 1))
		die("eventfd_write", errno);
	pthread_join(b.thread, NULL);
	close(b.uffd);
	close(b.stopfd);
	free(b.src);
	plain_unmap(p, OBJ, fd);
	return t / FAULTS;
}

/*
 * ns per first touch of the same FAULTS pages of an object lazily restored
 * from fd, through a view or the guest mapping.  The background filler
 * starts from page 0 and, after each fault, from just past it: touched from
 * the top down, the pages are reached before it gets there.
 */
static double lazy_faults(int fd, bool guest)
{
	struct gmem *g = create();
	double t = 0;
	void *base;
	int err;

	rewind_fd(fd);
	err = gmem_restore(g, fd, GMEM_RESTORE_LAZY);
	if (err)
		die("gmem_restore lazy", err);
	err = guest ? gmem_guest_map(g, &base) : gmem_view_map(g, 0, OBJ, 0, &base);
	if (err)
		die(guest ? "gmem_guest_map" : "gmem_view_map", err);
	for (int i = 0; i < FAULTS; i++) {
		uint64_t off = region_off(NREGIONS - 1 - i / 2) + (i % 2 ? 0 : RECORD) + 100 * PS;
		double t0 = now_ns();

		(void)*(volatile char *)((char *)base + off);
		t += now_ns() - t0;
	}
	gmem_destroy(g);
	return t / FAULTS;
}

static int lazy_file = -1; /* one file for s3 and s4, saved once */
static double s3_bare_unit[MAX_REPS], s3_view[MAX_REPS], s3_guest[MAX_REPS];

static int lazy_source(struct figure *f)
{
	if (lazy_file < 0)
		lazy_file = saved_file(f, false, NULL);
	return lazy_file;
}

static void s3_series(const struct figure *f)
{
	series("snapshot_faults", "\"figure\": \"%s\", \"gmem_us\": %.2f, \"bare_4k_us\": %.2f, "
				  "\"bare_record_us\": %.2f, \"record_bytes\": %llu",
	       f->id, median(f->value, f->reps) / 1e3, median(f->base, f->reps) / 1e3,
	       median(s3_bare_unit, f->reps) / 1e3, (unsigned long long)RECORD);
}

static void lazy_fault(struct figure *f, int r, bool guest)
{
	int fd = lazy_source(f);

	if ((r % 2) == 0) {
		f->value[r] = lazy_faults(fd, guest);
		f->base[r] = bare_faults(PS);
	} else {
		f->base[r] = bare_faults(PS);
		f->value[r] = lazy_faults(fd, guest);
	}
	/* what a bare handler pays to copy in as much as the library fills a fault */
	s3_bare_unit[r] = bare_faults(RECORD);
	(guest ? s3_guest : s3_view)[r] = f->value[r];
	if (r == f->reps - 1)
		s3_series(f);
}

static void lazy_fault_view(struct figure *f, int r)
{
	lazy_fault(f, r, false);
}

static void lazy_fault_guest(struct figure *f, int r)
{
	lazy_fault(f, r, true);
}

/* ---- s4 ---- */

static double s4_touch[MAX_REPS];

static void restore_call(struct figure *f, int r)
{
	int fd = lazy_source(f);

	for (int i = 0; i < 2; i++) {
		bool lazy = (i + r) % 2 == 0;
		struct gmem *g = create();
		double t0, t;
		int err;

		rewind_fd(fd);
		t0 = now_ns();
		err = gmem_restore(g, fd, lazy ? GMEM_RESTORE_LAZY : 0);
		t = now_ns() - t0;
		if (err)
			die("gmem_restore", err);
		if (lazy) {
			void *guest;

			f->value[r] = t;
			/* and a first touch at the top, which the fill reaches last, as a guest's first fetch */
			if ((err = gmem_guest_map(g, &guest)))
				die("gmem_guest_map", err);
			t0 = now_ns();
			(void)*(volatile char *)((char *)guest + region_off(NREGIONS - 1) + RECORD + 100 * PS);
			s4_touch[r] = now_ns() - t0;
		} else {
			f->base[r] = t;
		}
		gmem_destroy(g);
	}
	if (r == f->reps - 1)
		series("snapshot_restore_call", "\"lazy_ms\": %.3f, \"eager_ms\": %.2f, "
						"\"first_touch_us\": %.1f, \"ratio\": %.4f",
		       median(f->value, f->reps) / 1e6, median(f->base, f->reps) / 1e6,
		       median(s4_touch, f->reps) / 1e3,
		       median(f->value, f->reps) / median(f->base, f->reps));
}

/* ---- s5 ---- */

static double s5_layer_bytes[MAX_REPS], s5_full_bytes[MAX_REPS];

static void layer(struct figure *f, int r)
{
	struct gmem *g = populated(false);
	uint64_t pages = OBJ / PS / 100, x = 0x2545f4914f6cdd1dULL + (uint64_t)r;
	int full = out_file(f, false), lay = out_file(f, false), err;
	void *v;

	err = gmem_track_start(g, 0);
	if (err == -EOPNOTSUPP) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "no write tracking (Linux 6.7's async uffd-wp)");
		goto out;
	}
	if (err)
		die("gmem_track_start", err);
	f->base[r] = timed_save(g, full, 0);
	if ((err = gmem_view_map(g, 0, OBJ, 0, &v)))
		die("gmem_view_map", err);
	for (uint64_t i = 0; i < pages; i++) {
		uint64_t page;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		page = x % (NREGIONS * REGION / PS);
		((volatile char *)v)[region_off(page / (REGION / PS)) + page % (REGION / PS) * PS + 8]++;
	}
	f->value[r] = timed_save(g, lay, GMEM_SAVE_DIRTY);
	s5_full_bytes[r] = (double)file_size(full);
	s5_layer_bytes[r] = (double)file_size(lay);
	if (r == f->reps - 1)
		series("snapshot_layer", "\"pages_written\": %llu, \"layer_bytes\": %.0f, "
					 "\"full_bytes\": %.0f, \"layer_ms\": %.3f, \"full_ms\": %.2f, "
					 "\"ratio\": %.4f",
		       (unsigned long long)pages, median(s5_layer_bytes, f->reps),
		       median(s5_full_bytes, f->reps), median(f->value, f->reps) / 1e6,
		       median(f->base, f->reps) / 1e6,
		       median(f->value, f->reps) / median(f->base, f->reps));
out:
	close(full);
	close(lay);
	gmem_destroy(g);
}

#define FIG(id_, what_, unit_, base_, fn) \
	{ { .id = id_, .what = what_, .unit = unit_, .baseline_what = base_ }, fn }

struct bench_entry snapshot_figures[] = {
	FIG("snapshot_save", "(s1) gmem_save PAUSED, 1 GiB 25 % populated, to a memfd", "ns",
	    "write() of the same regions from a plain mapping to a memfd", save_memfd),
	FIG("snapshot_save_disk", "(s1) gmem_save PAUSED, the same, to a file on disk", "ns",
	    "write() of the same regions to a file on disk (buffered)", save_disk),
	FIG("snapshot_save_running", "(s1) gmem_save, writers running, to a memfd", "ns",
	    "write() of the same regions from a plain mapping to a memfd", save_running),
	FIG("snapshot_restore", "(s2) eager gmem_restore of that memfd, fresh object", "ns",
	    "read() of the same regions from a memfd into a plain mapping", restore_memfd),
	FIG("snapshot_restore_disk", "(s2) eager gmem_restore from the file on disk", "ns",
	    "read() of the same regions from a file on disk (cached)", restore_disk),
	FIG("snapshot_lazy_fault_view", "(s3) lazy restore: first touch through a view", "ns/fault",
	    "the same touch, bare userfaultfd handler, UFFDIO_COPY 4 KiB", lazy_fault_view),
	FIG("snapshot_lazy_fault_guest", "(s3) lazy restore: first touch, guest mapping", "ns/fault",
	    "the same touch, bare userfaultfd handler, UFFDIO_COPY 4 KiB", lazy_fault_guest),
	FIG("snapshot_restore_call", "(s4) gmem_restore(LAZY) call (not the VMM's)", "ns",
	    "the eager gmem_restore() of the same file", restore_call),
	FIG("snapshot_layer", "(s5) GMEM_SAVE_DIRTY layer, 1 % of pages written", "ns",
	    "the full save of the same object (tracking on)", layer),
};
const size_t n_snapshot_figures = sizeof(snapshot_figures) / sizeof(snapshot_figures[0]);
