// SPDX-License-Identifier: MIT
/*
 * uffd.c - the userfaultfd operations gmem's host views are built on.
 */
#define _GNU_SOURCE
#include "uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../compat.h"

#define UFFD_FEATURES (UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_POISON)
/*
 * The non-cooperative events that let the library's records follow what
 * the process does to its views behind its back (fault.c).  Not REMOVE:
 * it would make every zap the library does wait for the fault thread.
 */
#define UFFD_EVENTS (UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP)

/*
 * A userfaultfd: from the system call, or else from /dev/userfaultfd (Linux
 * 6.1), which anyone who may open the node may use.  The system call fails
 * with EPERM when vm.unprivileged_userfaultfd is 0 and the process lacks
 * CAP_SYS_PTRACE, and with ENOSYS on a kernel without userfaultfd or under
 * a seccomp filter that refuses it so (ENOSYS is how a filter says "not
 * here": callers look for another way); after either, the device is tried.
 * (UFFD_USER_MODE_ONLY would get past the sysctl, but the kernel's own
 * accesses to views - read(2) into one - would then fail with EFAULT
 * instead of reaching the fault thread.)
 *
 * Returns the descriptor, or: -EOPNOTSUPP when the process has no
 * userfaultfd at all (ENOSYS and no device node); -EPERM when it is
 * refused (the system call refused, and the device node absent, not
 * openable, or not the device - a jail's /dev/null bound over it answers
 * the ioctl with ENOTTY); -EMFILE, -ENFILE or -ENOMEM as they come.
 */
static int uffd_new(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int dev, why;

	if (fd >= 0)
		return fd;
	why = errno;
	if (why != EPERM && why != ENOSYS)
		return -why;
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOMEM)
			return -errno;
		return why == ENOSYS && errno == ENOENT ? -EOPNOTSUPP : -EPERM;
	}
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		fd = errno == EMFILE || errno == ENFILE || errno == ENOMEM ? -errno : -EPERM;
	close(dev);
	return fd;
}

/* A userfaultfd with `features`, or -errno (-EOPNOTSUPP if the kernel lacks some). */
static int uffd_with(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = uffd_new(), err;

	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api)) {
		err = errno == EPERM ? -EPERM : -EOPNOTSUPP;
		close(fd);
		return err;
	}
	if ((api.features & features) != features) {
		close(fd);
		return -EOPNOTSUPP; /* kernel older than 6.6 or built without shmem support */
	}
	return fd;
}

/*
 * Write tracking (track.c): write-protect resolved by the kernel itself,
 * unpopulated entries protected too, on shmem and hugetlbfs.
 */
#define UFFD_TRACKING (UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED | \
		       UFFD_FEATURE_WP_HUGETLBFS_SHMEM)

int uffd_open(int *out, unsigned int *have, bool hugetlb)
{
	const uint64_t base = UFFD_FEATURES | UFFD_EVENTS |
			      (hugetlb ? UFFD_FEATURE_MISSING_HUGETLBFS | UFFD_FEATURE_MINOR_HUGETLBFS : 0);
	/*
	 * EVENT_FORK needs CAP_SYS_PTRACE: without it, fork is not followed.
	 * MOVE (6.8) only answers uffd_changing(): without it, that says no.
	 */
	static const uint64_t wishes[] = {
		UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_MOVE,
		UFFD_FEATURE_EVENT_FORK,
		UFFD_FEATURE_MOVE,
		0,
	};
	int fd = -EOPNOTSUPP;

	for (size_t i = 0; i < 2 * sizeof(wishes) / sizeof(wishes[0]); i++) {
		/* each wish with tracking first, then without */
		uint64_t wish = wishes[i / 2] | (i % 2 ? 0 : UFFD_TRACKING);

		fd = uffd_with(base | wish);
		if (fd >= 0) {
			*have = (wish & UFFD_FEATURE_EVENT_FORK ? UFFD_HAVE_FORK : 0) |
				(wish & UFFD_FEATURE_MOVE ? UFFD_HAVE_PROBE : 0) |
				(wish & UFFD_TRACKING ? UFFD_HAVE_WP : 0);
			break;
		}
		if (fd != -EPERM && fd != -EOPNOTSUPP)
			return fd;
	}
	if (fd < 0)
		return fd;
	*out = fd;
	return 0;
}

bool uffd_changing(int fd, uintptr_t probe)
{
	/*
	 * The kernel checks "mappings changing" before it looks at the
	 * addresses, which here can never be moved (one shared page onto
	 * itself): EAGAIN, or EINVAL and nothing done.  Any other answer says
	 * nothing: take it as a change under way, the side that waits.
	 */
	struct uffdio_move m = { .dst = probe, .src = probe, .len = 4096 };

	return !ioctl(fd, UFFDIO_MOVE, &m) || errno != EINVAL;
}

int uffd_register(int fd, void *addr, uint64_t len, bool wp)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR |
			(wp ? UFFDIO_REGISTER_MODE_WP : 0),
	};
	const uint64_t need = (1ULL << _UFFDIO_CONTINUE) | (1ULL << _UFFDIO_POISON) |
			      (1ULL << _UFFDIO_WAKE) | (wp ? 1ULL << _UFFDIO_WRITEPROTECT : 0);

	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		return -errno;
	return (reg.ioctls & need) == need ? 0 : -EOPNOTSUPP;
}

int uffd_unregister(int fd, void *addr, uint64_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	return ioctl(fd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

int uffd_register_guest(int fd, void *addr, uint64_t len, bool missing, bool wp)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = (missing ? UFFDIO_REGISTER_MODE_MISSING : 0) |
			(wp ? UFFDIO_REGISTER_MODE_WP : 0),
	};

	/* a registration replaces the modes of the one before */
	if (!reg.mode)
		return uffd_unregister(fd, addr, len);
	return ioctl(fd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

/*
 * EAGAIN with nothing done: the process is mapping, unmapping or forking
 * and the reader has not yet read the kernel's notice of it, which it does
 * on its own thread.  A moment, then again: true while a second has not
 * passed (*tries counts the moments).
 */
static bool changing_wait(unsigned int *tries)
{
	struct timespec ts = { 0, 1000 * 1000 };

	if (++*tries > 1000)
		return false;
	nanosleep(&ts, NULL);
	return true;
}

int uffd_copy(int fd, uintptr_t addr, const void *src, uint64_t len, bool wp, uint64_t *done)
{
	unsigned int tries = 0;

	*done = 0;
	while (*done < len) {
		struct uffdio_copy c = { .dst = addr + *done, .src = (uintptr_t)src + *done,
					 .len = len - *done,
					 .mode = UFFDIO_COPY_MODE_DONTWAKE |
						 (wp ? UFFDIO_COPY_MODE_WP : 0) };
		int err = ioctl(fd, UFFDIO_COPY, &c) ? -errno : 0;

		if (!err) {
			*done = len;
			break;
		}
		if (c.copy > 0)
			*done += (uint64_t)c.copy;
		if (err == -EAGAIN && (c.copy > 0 || changing_wait(&tries)))
			continue;
		return err;
	}
	return 0;
}

int uffd_zeropage(int fd, uintptr_t addr, uint64_t len)
{
	unsigned int tries = 0;

	while (len) {
		struct uffdio_zeropage z = { .range = { .start = addr, .len = len },
					     .mode = UFFDIO_ZEROPAGE_MODE_DONTWAKE };
		int err = ioctl(fd, UFFDIO_ZEROPAGE, &z) ? -errno : 0;
		uint64_t done = err ? (z.zeropage > 0 ? (uint64_t)z.zeropage : 0) : len;

		if (err && !(err == -EAGAIN && (done || changing_wait(&tries))))
			return err;
		addr += done;
		len -= done;
	}
	return 0;
}

int uffd_writeprotect(int fd, uintptr_t addr, uint64_t len, bool protect)
{
	struct uffdio_writeprotect w = {
		.range = { .start = addr, .len = len },
		/* the kernel takes DONTWAKE only with WP off; in async mode no one waits */
		.mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(fd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}

int uffd_continue(int fd, uintptr_t addr, uint64_t len, bool wp, uint64_t *done)
{
	struct uffdio_continue c = { .range = { .start = addr, .len = len },
				     .mode = UFFDIO_CONTINUE_MODE_DONTWAKE |
					     (wp ? UFFDIO_CONTINUE_MODE_WP : 0) };
	int err = ioctl(fd, UFFDIO_CONTINUE, &c) ? -errno : 0;

	*done = err == 0 ? len : c.mapped > 0 ? (uint64_t)c.mapped : 0;
	return err;
}

int uffd_poison(int fd, uintptr_t addr, uint64_t len)
{
	struct uffdio_poison p = { .range = { .start = addr, .len = len },
				   .mode = UFFDIO_POISON_MODE_DONTWAKE };

	return ioctl(fd, UFFDIO_POISON, &p) ? -errno : 0;
}

int uffd_poison_over_wp(int fd, uintptr_t addr, uint64_t len)
{
	int err = uffd_poison(fd, addr, len);

	/*
	 * A write-protect marker (tracking: an entry protected before it was
	 * populated) is an entry UFFDIO_POISON will not overwrite (EEXIST),
	 * though the page has none: lift it first.  No write is lost - a page
	 * refused is written through no view until it is shared again, and
	 * re-sharing protects it again (track.c).
	 */
	if (err == -EEXIST && !uffd_writeprotect(fd, addr, len, false))
		err = uffd_poison(fd, addr, len);
	return err;
}

int uffd_wake(int fd, uintptr_t addr, uint64_t len)
{
	struct uffdio_range r = { .start = addr, .len = len };

	return ioctl(fd, UFFDIO_WAKE, &r) ? -errno : 0;
}

static void decode(const struct uffd_msg *m, struct uffd_event *ev)
{
	*ev = (struct uffd_event){ .kind = UFFD_EV_OTHER, .fd = -1 };
	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		ev->kind = UFFD_EV_FAULT;
		ev->addr = (uintptr_t)m->arg.pagefault.address & ~(uintptr_t)4095;
		ev->minor = m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR;
		break;
	case UFFD_EVENT_UNMAP:
		ev->kind = UFFD_EV_UNMAP;
		ev->addr = (uintptr_t)m->arg.remove.start;
		ev->len = m->arg.remove.end - m->arg.remove.start;
		break;
	case UFFD_EVENT_REMAP:
		ev->kind = UFFD_EV_MOVE;
		ev->addr = (uintptr_t)m->arg.remap.from;
		ev->to = (uintptr_t)m->arg.remap.to;
		ev->len = m->arg.remap.len;
		break;
	case UFFD_EVENT_FORK:
		ev->kind = UFFD_EV_FORK;
		ev->fd = (int)m->arg.fork.ufd;
		break;
	default:
		break;
	}
}

ssize_t uffd_read(int fd, struct uffd_event *ev, size_t max)
{
	struct uffd_msg msg[16]; /* on the stack: the reader must not allocate */
	size_t want = max < 16 ? max : 16;
	ssize_t n = read(fd, msg, want * sizeof(msg[0]));

	if (n < 0)
		return -errno;
	n /= (ssize_t)sizeof(msg[0]);
	for (ssize_t i = 0; i < n; i++)
		decode(&msg[i], &ev[i]);
	return n;
}

int stopfd_open(void)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	return fd < 0 ? -errno : fd;
}

void stopfd_fire(int fd)
{
	uint64_t one = 1;

	/* an eventfd write fails only at counter overflow, 2^64 - 2 writes away */
	(void)!write(fd, &one, sizeof(one));
}

int fds_wait(struct pollfd *pfd, size_t n, int timeout_ms)
{
	int r;

	while ((r = poll(pfd, n, timeout_ms)) < 0 && errno == EINTR)
		;
	return r < 0 ? 0 : r; /* nothing else can fail with valid descriptors */
}
