// SPDX-License-Identifier: MIT
/*
 * uffd.c - the userfaultfd operations gmem's host views are built on.
 */
#define _GNU_SOURCE
#include "uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../compat.h"

#define UFFD_FEATURES (UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_POISON)

static int uffd_new(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int dev, err;

	if (fd >= 0 || errno != EPERM)
		return fd >= 0 ? fd : -errno;
	/* Without vm.unprivileged_userfaultfd, /dev/userfaultfd may still allow it. */
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -EPERM;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	err = fd < 0 ? -errno : 0;
	close(dev);
	return fd >= 0 ? fd : err;
}

int uffd_open(int *out)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURES };
	int fd = uffd_new();

	if (fd < 0)
		return fd == -ENOSYS ? -EOPNOTSUPP : fd;
	if (ioctl(fd, UFFDIO_API, &api) || (api.features & UFFD_FEATURES) != UFFD_FEATURES) {
		close(fd);
		return -EOPNOTSUPP; /* kernel older than 6.6 or built without shmem support */
	}
	*out = fd;
	return 0;
}

int uffd_register(int fd, void *addr, uint64_t len)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR,
	};
	const uint64_t need = (1ULL << _UFFDIO_CONTINUE) | (1ULL << _UFFDIO_POISON) |
			      (1ULL << _UFFDIO_WAKE);

	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		return -errno;
	return (reg.ioctls & need) == need ? 0 : -EOPNOTSUPP;
}

int uffd_continue(int fd, uintptr_t addr, uint64_t len, uint64_t *done)
{
	struct uffdio_continue c = { .range = { .start = addr, .len = len },
				     .mode = UFFDIO_CONTINUE_MODE_DONTWAKE };
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

int uffd_wake(int fd, uintptr_t addr, uint64_t len)
{
	struct uffdio_range r = { .start = addr, .len = len };

	return ioctl(fd, UFFDIO_WAKE, &r) ? -errno : 0;
}
