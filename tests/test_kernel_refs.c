// SPDX-License-Identifier: MIT
/*
 * test_kernel_refs.c - references the kernel takes to a view's pages and
 * keeps past a zap: a pipe filled by vmsplice(), io_uring registered
 * buffers, O_DIRECT in flight.  With GMEM_F_FRESH_PRIVATE a conversion to
 * private leaves each of them holding the old page: they neither read what
 * the guest writes next nor write into its private page, and the guest
 * finds the contents it had.  Without it (and on THP, which refuses the
 * flag) such I/O must be bracketed by gmem_pin()/gmem_unpin(), and then
 * the conversion is refused while it lasts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "sysfs.h"

/* Page fill seeds: what the host put there while shared, the guest's
 * secret once private, and data a host read brings in. */
#define SHARED 'S'
#define SECRET 'X'
#define HOST 'H'

/* What a kernel reference carried (page `page`'s worth at buf): the old shared contents. */
#define CHECK_OLD_CONTENTS(buf, page, what)                                          \
	do {                                                                         \
		if (page_has(buf, page, SECRET))                                     \
			test_fail(__FILE__, __LINE__, "%s carried the guest's secret", \
				  what);                                             \
		if (!page_has(buf, page, SHARED))                                    \
			test_fail(__FILE__, __LINE__, "%s: not the shared contents", \
				  what);                                             \
	} while (0)

/* The guest's private page holds its secret, whatever the kernel did with the old page. */
#define CHECK_GUEST_SECRET(guest, page)                                              \
	do {                                                                         \
		if (page_has((guest) + (page) * PS, page, HOST))                     \
			test_fail(__FILE__, __LINE__,                                \
				  "a host write landed in the guest's private page");  \
		if (!page_has((guest) + (page) * PS, page, SECRET))                  \
			test_fail(__FILE__, __LINE__, "the guest's secret is gone"); \
	} while (0)

/*
 * A GMEM_F_FRESH_PRIVATE object.  The flag needs 4 KiB backing pages: on
 * THP, check that gmem_create() refuses it and skip the rest (the pinned
 * bracket cases below cover THP).
 */
static struct gmem *create_fresh(const struct env *e, uint64_t min)
{
	if (e->backing != GMEM_BACKING_SHMEM) {
		struct gmem_config cfg = tg_config(e, e->unit, GMEM_F_FRESH_PRIVATE, 0);
		struct gmem *g = NULL;

		CHECK_EQ(gmem_create(&cfg, &g), -EINVAL);
		SKIP("GMEM_F_FRESH_PRIVATE is shmem-only: gmem_create() refused it (-EINVAL)");
	}
	return tg_create(e, min, GMEM_F_FRESH_PRIVATE, 0);
}

static char *guest_of(struct gmem *g)
{
	void *guest;

	CHECK_OK(gmem_guest_map(g, &guest));
	return guest;
}

/*
 * Convert page `page` to private with fresh pages and play the guest: it
 * finds what the host left there (the conversion kept the contents), then
 * writes its secret.
 */
static void privatize_and_write_secret(struct gmem *g, char *guest, uint64_t page)
{
	CHECK_OK(gmem_convert(g, page * PS, PS, GMEM_PRIVATE, 0, NULL));
	CHECK_EQ(gmem_state(g, page * PS), GMEM_PRIVATE);
	if (!page_has(guest + page * PS, page, SHARED))
		test_fail(__FILE__, __LINE__, "the conversion lost the page's contents");
	fill_page(guest + page * PS, page, SECRET);
}

/* ---- vmsplice() ---- */

/* vmsplice() page `page` of view v into a new pipe (a reference, not a copy). */
static void splice_page(char *v, uint64_t page, int fds[2])
{
	struct iovec iov = { .iov_base = v + page * PS, .iov_len = PS };

	CHECK_OK(pipe(fds));
	CHECK_EQ(vmsplice(fds[1], &iov, 1, 0), PS);
}

static void read_pipe(int fd, char *buf)
{
	size_t got = 0;

	while (got < PS) {
		ssize_t n = read(fd, buf + got, PS - got);

		CHECK(n > 0);
		got += (size_t)n;
	}
}

TEST(vmsplice_reference_fresh_private)
{
	struct gmem *g = create_fresh(env, 4 * PS);
	char *v = tg_view(g, 0), *guest = guest_of(g);
	char *buf = malloc(PS);
	int fds[2];

	CHECK(buf);
	fill_page(v + PS, 1, SHARED);
	splice_page(v, 1, fds); /* the pipe now holds page 1, unread */
	privatize_and_write_secret(g, guest, 1);
	read_pipe(fds[0], buf);
	CHECK_OLD_CONTENTS(buf, 1, "the pipe");
	CHECK_GUEST_SECRET(guest, 1);
	CHECK_EQ(touch(v + PS, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_audit(g));
	close(fds[0]);
	close(fds[1]);
	free(buf);
	CHECK_OK(gmem_destroy(g));
}

/*
 * In place (the default, and THP): a pin held as long as the pipe holds the
 * page refuses the conversion.
 */
TEST(vmsplice_reference_pinned_refuses_conversion)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	char *v = tg_view(g, 0), *guest = guest_of(g);
	char *buf = malloc(PS);
	uint64_t eoff = 0;
	int fds[2];

	CHECK(buf);
	fill_page(v + PS, 1, SHARED);
	CHECK_OK(gmem_pin(g, PS, PS, 0));
	splice_page(v, 1, fds);
	CHECK_EQ(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, 0, &eoff), -EAGAIN);
	CHECK_EQ(eoff, PS);
	CHECK_EQ(gmem_state(g, PS), GMEM_SHARED);
	read_pipe(fds[0], buf); /* the reference ends ... */
	CHECK(page_has(buf, 1, SHARED));
	CHECK_EQ(gmem_convert(g, PS, PS, GMEM_PRIVATE, 0, NULL), -EAGAIN); /* ... the pin decides */
	CHECK_OK(gmem_unpin(g, PS, PS, 0));
	CHECK_OK(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, 0, NULL));
	CHECK(page_has(guest + PS, 1, SHARED));
	CHECK_EQ(touch(v + PS, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_audit(g));
	close(fds[0]);
	close(fds[1]);
	free(buf);
	CHECK_OK(gmem_destroy(g));
}

/*
 * A deferred conversion completes on the last unpin with fresh pages too:
 * a pipe reference taken under the pin (and outliving it) keeps the old page.
 */
TEST(vmsplice_reference_fresh_private_deferred)
{
	struct gmem *g = create_fresh(env, 4 * PS);
	char *v = tg_view(g, 0), *guest = guest_of(g);
	char *buf = malloc(PS);
	int fds[2];

	CHECK(buf);
	fill_page(v + PS, 1, SHARED);
	CHECK_OK(gmem_pin(g, PS, PS, 0));
	splice_page(v, 1, fds);
	CHECK_EQ(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL), -EINPROGRESS);
	CHECK_OK(gmem_unpin(g, PS, PS, 0)); /* completes the conversion */
	CHECK_EQ(gmem_state(g, PS), GMEM_PRIVATE);
	if (!page_has(guest + PS, 1, SHARED))
		test_fail(__FILE__, __LINE__, "the conversion lost the page's contents");
	fill_page(guest + PS, 1, SECRET);
	read_pipe(fds[0], buf);
	CHECK_OLD_CONTENTS(buf, 1, "the pipe");
	CHECK_GUEST_SECRET(guest, 1);
	CHECK_OK(gmem_audit(g));
	close(fds[0]);
	close(fds[1]);
	free(buf);
	CHECK_OK(gmem_destroy(g));
}

/*
 * Where the system hands shmem huge pages out at will (shmem_enabled
 * "always"), a 4 KiB object's pages can sit in a huge folio.  A punch of
 * part of a huge folio that something references zeroes it in place - the
 * same page - instead of freeing it, so the reference would see what the
 * guest writes next.  The conversion must see that and refuse (-EBUSY at
 * the page, nothing changed, contents kept), not pretend; once the
 * reference is gone it succeeds.
 */
TEST(vmsplice_reference_into_huge_folio_refused)
{
	char buf[PS], *guest, *v;
	struct gmem *g;
	uint64_t off = 0;
	int fds[2];

	g = create_fresh(env, 2 * MiB);
	if (test_write_file("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "always"))
		SKIP("shmem_enabled cannot be set (not root?)");
	guest = guest_of(g);
	v = tg_view(g, 0);
	/* a missing fault allocates the window: under "always", one huge folio */
	for (uint64_t p = 0; p < 512; p++)
		fill_page(v + p * PS, p, SHARED);
	splice_page(v, 7, fds);
	CHECK_EQ(gmem_convert(g, 7 * PS, PS, GMEM_PRIVATE, 0, &off), -EBUSY);
	CHECK_EQ(off, 7 * PS);
	CHECK_EQ(gmem_state(g, 7 * PS), GMEM_SHARED);
	CHECK(page_has(guest + 7 * PS, 7, SHARED));
	CHECK(page_has(v + 7 * PS, 7, SHARED));
	read_pipe(fds[0], buf);
	CHECK(page_has(buf, 7, SHARED));
	close(fds[0]);
	close(fds[1]);
	privatize_and_write_secret(g, guest, 7);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
}

/* ---- io_uring, by its system calls ---- */

struct ring {
	int fd;
	void *sq, *cq;
	size_t sq_len, cq_len, sqes_len;
	unsigned int *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

/* Set up a small ring, or skip saying why io_uring is unavailable. */
static void ring_init(struct ring *r)
{
	struct io_uring_params p = { 0 };
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
	int disabled = 0;

	if (f) {
		if (fscanf(f, "%d", &disabled) != 1)
			disabled = 0;
		fclose(f);
	}
	if (disabled)
		SKIP("io_uring disabled (kernel.io_uring_disabled=%d)", disabled);
	r->fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (r->fd < 0 && (errno == ENOSYS || errno == EPERM))
		SKIP("io_uring_setup: %s", strerror(errno));
	CHECK(r->fd >= 0);
	r->sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned int);
	r->cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	r->sqes_len = p.sq_entries * sizeof(struct io_uring_sqe);
	r->sq = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
		     IORING_OFF_SQ_RING);
	r->cq = mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
		     IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
		       IORING_OFF_SQES);
	CHECK(r->sq != MAP_FAILED && r->cq != MAP_FAILED && r->sqes != MAP_FAILED);
	r->sq_tail = (unsigned int *)((char *)r->sq + p.sq_off.tail);
	r->sq_mask = (unsigned int *)((char *)r->sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned int *)((char *)r->sq + p.sq_off.array);
	r->cq_head = (unsigned int *)((char *)r->cq + p.cq_off.head);
	r->cq_tail = (unsigned int *)((char *)r->cq + p.cq_off.tail);
	r->cq_mask = (unsigned int *)((char *)r->cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)((char *)r->cq + p.cq_off.cqes);
}

static void ring_fini(struct ring *r)
{
	munmap(r->sqes, r->sqes_len);
	munmap(r->cq, r->cq_len);
	munmap(r->sq, r->sq_len);
	close(r->fd);
}

/* Submit one fixed-buffer read or write (buffer 0) and wait for it: its result. */
static int ring_rw_fixed(struct ring *r, uint8_t op, int fd, void *addr, uint32_t len, uint64_t off)
{
	unsigned int tail = *r->sq_tail, idx = tail & *r->sq_mask, head;
	struct io_uring_sqe *sqe = &r->sqes[idx];
	int res;

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = op;
	sqe->fd = fd;
	sqe->addr = (uint64_t)(uintptr_t)addr;
	sqe->len = len;
	sqe->off = off;
	sqe->buf_index = 0;
	r->sq_array[idx] = idx;
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	CHECK_EQ(syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0), 1);
	head = *r->cq_head;
	while (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
		CHECK(syscall(__NR_io_uring_enter, r->fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0)
		      >= 0);
	res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

static void ring_register(struct ring *r, void *addr, size_t len)
{
	struct iovec iov = { .iov_base = addr, .iov_len = len };

	CHECK_OK(syscall(__NR_io_uring_register, r->fd, IORING_REGISTER_BUFFERS, &iov, 1));
}

static void ring_unregister(struct ring *r)
{
	CHECK_OK(syscall(__NR_io_uring_register, r->fd, IORING_UNREGISTER_BUFFERS, NULL, 0));
}

/* An unlinked temporary file holding page `page`'s worth of `seed`. */
static int temp_file(uint64_t page, uint8_t seed)
{
	char path[] = "/tmp/gmem-kernel-refs-XXXXXX", *buf = malloc(PS);
	int fd = mkstemp(path);

	CHECK(fd >= 0 && buf);
	CHECK_OK(unlink(path));
	fill_page(buf, page, seed);
	CHECK_EQ(pwrite(fd, buf, PS, 0), PS);
	free(buf);
	return fd;
}

TEST(io_uring_registered_buffer_fresh_private)
{
	struct gmem *g = create_fresh(env, 4 * PS);
	char *v = tg_view(g, 0), *guest = guest_of(g), *buf = malloc(PS);
	int out = temp_file(1, 0), in = temp_file(1, HOST);
	struct ring r;

	CHECK(buf);
	ring_init(&r);
	fill_page(v + PS, 1, SHARED);
	ring_register(&r, v + PS, PS); /* long-term references to page 1, unknown to gmem */
	privatize_and_write_secret(g, guest, 1);

	/* out of the buffer: the old page, never the secret */
	CHECK_EQ(ring_rw_fixed(&r, IORING_OP_WRITE_FIXED, out, v + PS, PS, 0), PS);
	CHECK_EQ(pread(out, buf, PS, 0), PS);
	CHECK_OLD_CONTENTS(buf, 1, "WRITE_FIXED from the registered buffer");
	/* into the buffer: the old page, never the guest's */
	CHECK_EQ(ring_rw_fixed(&r, IORING_OP_READ_FIXED, in, v + PS, PS, 0), PS);
	CHECK_GUEST_SECRET(guest, 1);

	CHECK_OK(gmem_audit(g));
	ring_unregister(&r);
	ring_fini(&r);
	close(in);
	close(out);
	free(buf);
	CHECK_OK(gmem_destroy(g));
}

/* In place: a long-term pin around the registration refuses the conversion with -EBUSY. */
TEST(io_uring_registered_buffer_longterm_pin_refuses_conversion)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	char *v = tg_view(g, 0), *guest = guest_of(g), *buf = malloc(PS);
	const unsigned int flags[] = { 0, GMEM_CONVERT_WAIT, GMEM_CONVERT_DEFER };
	int out = temp_file(1, 0), in = temp_file(1, HOST);
	struct ring r;

	CHECK(buf);
	ring_init(&r);
	fill_page(v + PS, 1, SHARED);
	CHECK_OK(gmem_pin(g, PS, PS, GMEM_PIN_LONGTERM));
	ring_register(&r, v + PS, PS);
	for (size_t i = 0; i < 3; i++) {
		uint64_t eoff = 0;

		CHECK_EQ(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, flags[i], &eoff), -EBUSY);
		CHECK_EQ(eoff, PS);
		CHECK_EQ(gmem_state(g, PS), GMEM_SHARED);
	}
	/* the buffer works both ways meanwhile, on the page the host sees */
	CHECK_EQ(ring_rw_fixed(&r, IORING_OP_WRITE_FIXED, out, v + PS, PS, 0), PS);
	CHECK_EQ(pread(out, buf, PS, 0), PS);
	CHECK(page_has(buf, 1, SHARED));
	CHECK_EQ(ring_rw_fixed(&r, IORING_OP_READ_FIXED, in, v + PS, PS, 0), PS);
	CHECK(page_has(v + PS, 1, HOST));
	CHECK(page_has(guest + PS, 1, HOST));
	ring_unregister(&r);
	CHECK_EQ(gmem_convert(g, PS, PS, GMEM_PRIVATE, 0, NULL), -EBUSY); /* the pin decides */
	CHECK_OK(gmem_unpin(g, PS, PS, GMEM_PIN_LONGTERM));
	CHECK_OK(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, 0, NULL));
	CHECK(page_has(guest + PS, 1, HOST));
	CHECK_EQ(touch(v + PS, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_audit(g));
	ring_fini(&r);
	close(in);
	close(out);
	free(buf);
	CHECK_OK(gmem_destroy(g));
}

/*
 * Write tracking and a registered buffer: the registration faults the page
 * writable once, and then the kernel writes through its own reference,
 * never through the view's entry.  A read into the buffer after a collect
 * is still reported by the next - the buffer pinned long-term, as gmem.h
 * asks: a collect counts a pinned page as written, and the one after the
 * unpin what was written before it.
 */
TEST(io_uring_registered_buffer_writes_tracked)
{
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	char *v = tg_view(g, 0);
	uint64_t b[1] = { 0 };
	int in = temp_file(1, HOST);
	struct ring r;
	int err;

	ring_init(&r);
	err = gmem_track_start(g, 0);
	if (err == -EOPNOTSUPP)
		SKIP("no asynchronous userfaultfd write-protect in this kernel");
	CHECK_OK(err);
	CHECK_OK(gmem_pin(g, PS, PS, GMEM_PIN_LONGTERM));
	ring_register(&r, v + PS, PS);
	CHECK(gmem_track_collect(g, 0, 4 * PS, b, 0) >= 0); /* whatever the registration did */
	CHECK_EQ(ring_rw_fixed(&r, IORING_OP_READ_FIXED, in, v + PS, PS, 0), PS);
	CHECK(page_has(v + PS, 1, HOST));
	CHECK(gmem_track_collect(g, 0, 4 * PS, b, 0) >= 1);
	CHECK(b[0] >> 1 & 1);
	/* written again, then released: the collect after the unpin reports it */
	CHECK_EQ(ring_rw_fixed(&r, IORING_OP_READ_FIXED, in, v + PS, PS, 0), PS);
	ring_unregister(&r);
	CHECK_OK(gmem_unpin(g, PS, PS, GMEM_PIN_LONGTERM));
	CHECK(gmem_track_collect(g, 0, 4 * PS, b, 0) >= 1);
	CHECK(b[0] >> 1 & 1);
	CHECK_EQ(gmem_track_collect(g, 0, 4 * PS, b, 0), 0); /* no pin, nothing written */
	ring_fini(&r);
	close(in);
	CHECK_OK(gmem_destroy(g));
}

/*
 * ---- O_DIRECT in flight ----
 *
 * A registered buffer holds its pages from registration on, whether or not
 * a request is in flight, so the case above already covers an io_uring
 * READ_FIXED that waits on an empty pipe.  What it does not cover is a
 * reference that lives only as long as one request: O_DIRECT, which pins
 * the user pages when the request is made and reads or writes them when
 * the device gets to it.  To hold such a request in flight for as long as
 * the test likes, the file is on a FUSE file system the test serves itself
 * (opened FOPEN_DIRECT_IO, so the kernel hands the pinned pages straight to
 * the request): a FUSE_READ is answered - its data copied into the pinned
 * page - only when the test replies, and a FUSE_WRITE's data is copied out
 * of the pinned page only when the test reads the request from /dev/fuse.
 * Both happen after the conversion and the guest's secret, every time.
 */

#define FUSE_FILE_INO 2
#define FUSE_BUF (FUSE_MIN_READ_BUFFER + 128 * 1024)

struct fuse_fs {
	int dev;
	char dir[64];
	char path[80];
	char *req;       /* the request last read */
	pid_t watchdog; /* aborts the connection if this process dies */
};

static void fuse_reply(struct fuse_fs *fs, uint64_t unique, int error, const void *body, size_t len)
{
	struct fuse_out_header oh = { .len = (uint32_t)(sizeof(oh) + len), .error = error,
				      .unique = unique };
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { (void *)body, len } };

	CHECK_EQ(writev(fs->dev, iov, len ? 2 : 1), sizeof(oh) + len);
}

static void fuse_attr_of(uint64_t ino, struct fuse_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->mode = ino == FUSE_ROOT_ID ? S_IFDIR | 0755 : S_IFREG | 0600;
	a->nlink = ino == FUSE_ROOT_ID ? 2 : 1;
	a->size = ino == FUSE_ROOT_ID ? 0 : 1 * MiB;
	a->blksize = (uint32_t)PS;
}

/* Answer a request that is not a READ or a WRITE. */
static void fuse_answer(struct fuse_fs *fs, const struct fuse_in_header *h)
{
	const char *arg = (const char *)(h + 1);

	switch (h->opcode) {
	case FUSE_INIT: {
		const struct fuse_init_in *in = (const void *)arg;
		struct fuse_init_out out = { .major = FUSE_KERNEL_VERSION,
					     .minor = FUSE_KERNEL_MINOR_VERSION,
					     .max_readahead = in->max_readahead,
					     .max_background = 16,
					     .congestion_threshold = 12,
					     .max_write = 128 * 1024,
					     .time_gran = 1 };

		fuse_reply(fs, h->unique, 0, &out, sizeof(out));
		break;
	}
	case FUSE_LOOKUP: {
		struct fuse_entry_out out = { .nodeid = FUSE_FILE_INO, .entry_valid = 3600,
					      .attr_valid = 3600 };

		if (h->nodeid != FUSE_ROOT_ID || strcmp(arg, "f")) {
			fuse_reply(fs, h->unique, -ENOENT, NULL, 0);
			break;
		}
		fuse_attr_of(FUSE_FILE_INO, &out.attr);
		fuse_reply(fs, h->unique, 0, &out, sizeof(out));
		break;
	}
	case FUSE_GETATTR: {
		struct fuse_attr_out out = { .attr_valid = 3600 };

		fuse_attr_of(h->nodeid, &out.attr);
		fuse_reply(fs, h->unique, 0, &out, sizeof(out));
		break;
	}
	case FUSE_OPEN: {
		/* no FLUSH at close: an exit must never wait for us */
		struct fuse_open_out out = { .fh = 1,
					     .open_flags = FOPEN_DIRECT_IO | FOPEN_NOFLUSH };

		fuse_reply(fs, h->unique, 0, &out, sizeof(out));
		break;
	}
	case FUSE_FLUSH:
	case FUSE_RELEASE:
	case FUSE_FSYNC:
		fuse_reply(fs, h->unique, 0, NULL, 0);
		break;
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_INTERRUPT:
		break; /* no reply */
	default:
		fuse_reply(fs, h->unique, -ENOSYS, NULL, 0);
	}
}

/* Wait (bounded) until a request is pending. */
static void fuse_wait_pending(struct fuse_fs *fs)
{
	struct pollfd pfd = { .fd = fs->dev, .events = POLLIN };

	if (poll(&pfd, 1, 10000) != 1)
		test_fail(__FILE__, __LINE__, "no FUSE request within 10 s");
}

static struct fuse_in_header *fuse_next(struct fuse_fs *fs)
{
	ssize_t n;

	fuse_wait_pending(fs);
	n = read(fs->dev, fs->req, FUSE_BUF);
	CHECK(n >= (ssize_t)sizeof(struct fuse_in_header));
	return (struct fuse_in_header *)fs->req;
}

/* One system call on the FUSE file, in a thread of its own while the test serves it. */
struct fuse_call {
	struct fuse_fs *fs;
	enum { CALL_OPEN, CALL_READ, CALL_WRITE } what;
	int fd;
	char *buf;
	ssize_t ret;
	int err;
	atomic_bool done;
	pthread_t tid;
};

static void *fuse_call_run(void *arg)
{
	struct fuse_call *c = arg;

	switch (c->what) {
	case CALL_OPEN:
		c->ret = open(c->fs->path, O_RDWR | O_DIRECT);
		break;
	case CALL_READ:
		c->ret = pread(c->fd, c->buf, PS, 0);
		break;
	case CALL_WRITE:
		c->ret = pwrite(c->fd, c->buf, PS, 0);
		break;
	}
	c->err = errno;
	atomic_store(&c->done, true);
	return NULL;
}

static void fuse_call_start(struct fuse_call *c)
{
	atomic_init(&c->done, false);
	CHECK_OK(pthread_create(&c->tid, NULL, fuse_call_run, c));
}

static ssize_t fuse_call_join(struct fuse_call *c)
{
	CHECK_OK(pthread_join(c->tid, NULL));
	errno = c->err;
	return c->ret;
}

/*
 * Serve requests until one with this opcode arrives (returned unanswered),
 * or, for opcode 0, until the call is done.
 */
static struct fuse_in_header *fuse_serve_until(struct fuse_fs *fs, uint32_t opcode,
					       struct fuse_call *c)
{
	for (int spins = 0; spins < 10000; spins++) {
		struct pollfd pfd = { .fd = fs->dev, .events = POLLIN };
		struct fuse_in_header *h;

		if (!opcode && atomic_load(&c->done))
			return NULL;
		if (poll(&pfd, 1, 1) != 1)
			continue;
		h = fuse_next(fs);
		if (h->opcode == opcode)
			return h;
		fuse_answer(fs, h);
	}
	test_fail(__FILE__, __LINE__, "FUSE: opcode %u never came", opcode);
}

/*
 * A thread waiting for an answer to a request we have already read cannot
 * be killed, and it keeps this process's descriptors - /dev/fuse among
 * them - open: a case that fails (or times out) while it holds a request
 * would hang for good.  So a child process of its own waits for this
 * process's main thread to die and then aborts the connection through the
 * FUSE control file system, which ends every request.
 */
static void fuse_watchdog(struct fuse_fs *fs)
{
	char abort_path[96], line[512];
	unsigned int conn = 0, major, minor;
	FILE *f = fopen("/proc/self/mountinfo", "r");
	pid_t parent = getpid();
	sigset_t set;
	int sig;

	/* the connection's number is the mount's device (a stat() would ask us) */
	CHECK(f);
	while (fgets(line, sizeof(line), f)) {
		char mnt[256];

		if (sscanf(line, "%*u %*u %u:%u %*s %255s", &major, &minor, mnt) == 3 &&
		    !strcmp(mnt, fs->dir))
			conn = major << 20 | minor;
	}
	fclose(f);
	CHECK(conn);
	snprintf(abort_path, sizeof(abort_path), "/sys/fs/fuse/connections/%u/abort", conn);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	CHECK_OK(sigprocmask(SIG_BLOCK, &set, NULL));
	fs->watchdog = fork();
	CHECK(fs->watchdog >= 0);
	if (fs->watchdog == 0) {
		int fd;

		/* fusectl, mounted in this case's own mount namespace */
		if (mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL) &&
		    errno != EBUSY)
			_exit(1);
		if (prctl(PR_SET_PDEATHSIG, SIGUSR1) || getppid() != parent)
			_exit(1);
		if (sigwait(&set, &sig) == 0 && (fd = open(abort_path, O_WRONLY)) >= 0) {
			(void)!write(fd, "1", 1);
			close(fd);
		}
		_exit(0);
	}
	CHECK_OK(sigprocmask(SIG_UNBLOCK, &set, NULL));
}

/*
 * Mount a FUSE file system of one file, "f", in a mount namespace of this
 * case's own, on a tmpfs there (both gone with the process, whatever
 * happens), and open it O_DIRECT: the descriptor.  Call before anything
 * starts a thread.
 */
static int fuse_mount_open(struct fuse_fs *fs)
{
	struct fuse_call open_call = { .fs = fs, .what = CALL_OPEN };
	char opts[128];
	int fd;

	if (unshare(CLONE_NEWNS))
		SKIP("unshare(CLONE_NEWNS): %s", strerror(errno));
	CHECK_OK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
	CHECK_OK(mount("gmem-test", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m"));
	fs->dev = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fs->dev < 0)
		SKIP("/dev/fuse: %s", strerror(errno));
	snprintf(fs->dir, sizeof(fs->dir), "/tmp/gmem-fuse");
	CHECK_OK(mkdir(fs->dir, 0700));
	snprintf(fs->path, sizeof(fs->path), "%s/f", fs->dir);
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u", fs->dev,
		 getuid(), getgid());
	if (mount("gmem-test", fs->dir, "fuse.gmem-test", MS_NOSUID | MS_NODEV, opts))
		SKIP("mounting a FUSE file system: %s", strerror(errno));
	fs->req = malloc(FUSE_BUF);
	CHECK(fs->req);
	fuse_watchdog(fs);
	fuse_call_start(&open_call);
	fuse_serve_until(fs, 0, &open_call);
	fd = (int)fuse_call_join(&open_call);
	if (fd < 0)
		test_fail(__FILE__, __LINE__, "open(O_DIRECT) on FUSE: %s", strerror(errno));
	return fd;
}

static void fuse_unmount(struct fuse_fs *fs, int fd)
{
	close(fs->dev); /* aborts the connection: nothing below waits for us */
	close(fd);
	CHECK_OK(umount2(fs->dir, MNT_DETACH));
	free(fs->req);
	kill(fs->watchdog, SIGKILL);
	CHECK_EQ(waitpid(fs->watchdog, NULL, 0), fs->watchdog);
}

/* Hold an O_DIRECT read into page `page` of view v in flight: its thread, and the request. */
static struct fuse_in_header *direct_read_start(struct fuse_fs *fs, struct fuse_call *c, int fd,
						 char *v, uint64_t page)
{
	struct fuse_in_header *h;

	*c = (struct fuse_call){ .fs = fs, .what = CALL_READ, .fd = fd, .buf = v + page * PS };
	fuse_call_start(c);
	h = fuse_serve_until(fs, FUSE_READ, c);
	CHECK_EQ(((struct fuse_read_in *)(h + 1))->size, PS);
	return h; /* the page is pinned until we answer */
}

/* Answer the read held in flight with host data, and let its call return. */
static void direct_read_finish(struct fuse_fs *fs, struct fuse_call *c, struct fuse_in_header *h,
			       uint64_t page)
{
	char *data = malloc(PS);

	CHECK(data);
	fill_page(data, page, HOST);
	fuse_reply(fs, h->unique, 0, data, PS);
	free(data);
	if (fuse_call_join(c) != (ssize_t)PS)
		test_fail(__FILE__, __LINE__, "O_DIRECT read: %s", strerror(errno));
}

/* The FUSE file system, then (its threads after the mount) a GMEM_F_FRESH_PRIVATE object. */
static struct gmem *create_fresh_on_fuse(const struct env *e, struct fuse_fs *fs, int *fd)
{
	if (e->backing != GMEM_BACKING_SHMEM)
		create_fresh(e, PS); /* skips */
	*fd = fuse_mount_open(fs);
	return create_fresh(e, 4 * PS);
}

TEST(odirect_in_flight_fresh_private)
{
	struct fuse_in_header *h;
	struct fuse_call c;
	struct fuse_fs fs;
	int fd;
	struct gmem *g = create_fresh_on_fuse(env, &fs, &fd);
	char *v = tg_view(g, 0), *guest = guest_of(g), *warm = malloc(PS);

	CHECK(warm);

	/* a read in flight lands in the old page, not in the guest's */
	fill_page(v + PS, 1, SHARED);
	h = direct_read_start(&fs, &c, fd, v, 1);
	privatize_and_write_secret(g, guest, 1);
	direct_read_finish(&fs, &c, h, 1);
	CHECK_GUEST_SECRET(guest, 1);

	/*
	 * A write in flight carries the old page.  A first write, from plain
	 * memory, takes whatever else the kernel asks on a file's first write
	 * out of the way: the next request it queues is the WRITE itself.
	 */
	memset(warm, 0, PS);
	c = (struct fuse_call){ .fs = &fs, .what = CALL_WRITE, .fd = fd, .buf = warm };
	fuse_call_start(&c);
	h = fuse_serve_until(&fs, FUSE_WRITE, &c);
	fuse_reply(&fs, h->unique, 0, &(struct fuse_write_out){ .size = PS },
		   sizeof(struct fuse_write_out));
	CHECK_EQ(fuse_call_join(&c), PS);

	fill_page(v + 2 * PS, 2, SHARED);
	c = (struct fuse_call){ .fs = &fs, .what = CALL_WRITE, .fd = fd, .buf = v + 2 * PS };
	fuse_call_start(&c);
	fuse_wait_pending(&fs); /* queued: its page is pinned, its data not yet copied */
	privatize_and_write_secret(g, guest, 2);
	h = fuse_next(&fs);
	CHECK_EQ(h->opcode, FUSE_WRITE);
	CHECK_EQ(((struct fuse_write_in *)(h + 1))->size, PS);
	CHECK_OLD_CONTENTS((char *)(h + 1) + sizeof(struct fuse_write_in), 2,
			   "an O_DIRECT write in flight");
	fuse_reply(&fs, h->unique, 0, &(struct fuse_write_out){ .size = PS },
		   sizeof(struct fuse_write_out));
	CHECK_EQ(fuse_call_join(&c), PS);
	CHECK_GUEST_SECRET(guest, 2);

	CHECK_EQ(touch(v + PS, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
	fuse_unmount(&fs, fd);
	free(warm);
}

/* In place: a short-term pin around the O_DIRECT read refuses the conversion with -EAGAIN. */
TEST(odirect_in_flight_pinned_refuses_conversion)
{
	struct fuse_fs fs;
	int fd = fuse_mount_open(&fs);
	struct gmem *g = tg_create(env, 4 * PS, 0, 0);
	char *v = tg_view(g, 0), *guest = guest_of(g);
	struct fuse_in_header *h;
	struct fuse_call c;
	uint64_t eoff = 0;

	fill_page(v + PS, 1, SHARED);
	CHECK_OK(gmem_pin(g, PS, PS, 0));
	h = direct_read_start(&fs, &c, fd, v, 1);
	CHECK_EQ(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, 0, &eoff), -EAGAIN);
	CHECK_EQ(eoff, PS);
	CHECK_EQ(gmem_state(g, PS), GMEM_SHARED);
	direct_read_finish(&fs, &c, h, 1);
	CHECK(page_has(v + PS, 1, HOST)); /* the read landed while the page was shared */
	CHECK_OK(gmem_unpin(g, PS, PS, 0));
	CHECK_OK(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, 0, NULL));
	CHECK(page_has(guest + PS, 1, HOST));
	CHECK_EQ(touch(v + PS, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
	fuse_unmount(&fs, fd);
}

/*
 * Bracketed I/O under a deferred conversion: the read in flight lands
 * while the page is in transit, and the completion's fresh page (made on
 * the last unpin) holds what it read.
 */
TEST(odirect_in_flight_fresh_private_deferred_keeps_io)
{
	struct fuse_in_header *h;
	struct fuse_call c;
	struct fuse_fs fs;
	int fd;
	struct gmem *g = create_fresh_on_fuse(env, &fs, &fd);
	char *v = tg_view(g, 0), *guest = guest_of(g);

	fill_page(v + PS, 1, SHARED);
	CHECK_OK(gmem_pin(g, PS, PS, 0));
	h = direct_read_start(&fs, &c, fd, v, 1);
	CHECK_EQ(gmem_convert(g, 0, 4 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL), -EINPROGRESS);
	CHECK_EQ(gmem_state(g, PS), GMEM_CONVERTING);
	direct_read_finish(&fs, &c, h, 1);
	CHECK(page_has(v + PS, 1, HOST));
	CHECK_OK(gmem_unpin(g, PS, PS, 0)); /* completes the conversion */
	CHECK_EQ(gmem_state(g, PS), GMEM_PRIVATE);
	CHECK(page_has(guest + PS, 1, HOST));
	CHECK_EQ(touch(v + PS, false, NULL, NULL), env->sig);
	CHECK_OK(gmem_audit(g));
	CHECK_OK(gmem_destroy(g));
	fuse_unmount(&fs, fd);
}
