// SPDX-License-Identifier: MIT
/*
 * maps.c - what the kernel maps at an address, asked of /proc/self/maps.
 */
#define _GNU_SOURCE
#include "maps.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../compat.h"

int maps_open(void)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int64_t maps_file_end(int fd, uintptr_t addr, uint64_t dev, uint64_t ino, uint64_t off)
{
	struct procmap_query q = { .size = sizeof(q), .query_addr = addr };

	if (ioctl(fd, PROCMAP_QUERY, &q))
		return errno == ENOENT ? 0 : errno == ENOTTY || errno == EINVAL ? -EOPNOTSUPP : -errno;
	if (!(q.vma_flags & PROCMAP_QUERY_VMA_SHARED) || q.inode != ino ||
	    makedev(q.dev_major, q.dev_minor) != dev || q.vma_offset + (addr - q.vma_start) != off)
		return 0;
	return (int64_t)q.vma_end;
}
