/* SPDX-License-Identifier: MIT */
/*
 * maps.h - what the kernel maps at an address, asked of /proc/self/maps.
 *
 * The kernel's notice of an unmap can be read after another thread has
 * moved a view into the range that unmap freed; the records must not drop
 * that view.  Asking the kernel what is mapped there now settles it.
 */
#ifndef GMEM_OS_MAPS_H
#define GMEM_OS_MAPS_H

#include <stdint.h>

/* A descriptor for maps_file_end(), or -errno. */
int maps_open(void);

/*
 * If a shared mapping of the file (dev, ino) maps addr at file offset off,
 * the end of that mapping; else 0.  -EOPNOTSUPP without PROCMAP_QUERY
 * (Linux 6.11), another -errno if the kernel cannot answer.
 */
int64_t maps_file_end(int fd, uintptr_t addr, uint64_t dev, uint64_t ino, uint64_t off);

#endif /* GMEM_OS_MAPS_H */
