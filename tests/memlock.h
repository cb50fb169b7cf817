/* SPDX-License-Identifier: MIT */
/*
 * memlock.h - mlock(2) and its kin by system call.  The sanitizers replace
 * the C library's mlock(), munlock(), mlockall() and munlockall() with
 * calls that do nothing (they cannot lock their shadow memory), which
 * would make every test of locked memory pass vacuously under them.
 */
#ifndef GMEM_TEST_MEMLOCK_H
#define GMEM_TEST_MEMLOCK_H

#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif

static inline int sys_mlock(const void *addr, size_t len)
{
	return (int)syscall(SYS_mlock, addr, len);
}

static inline int sys_mlock2(const void *addr, size_t len, unsigned int flags)
{
	return (int)syscall(SYS_mlock2, addr, len, flags);
}

static inline int sys_munlock(const void *addr, size_t len)
{
	return (int)syscall(SYS_munlock, addr, len);
}

static inline int sys_mlockall(int flags)
{
	return (int)syscall(SYS_mlockall, flags);
}

static inline int sys_munlockall(void)
{
	return (int)syscall(SYS_munlockall);
}

#endif /* GMEM_TEST_MEMLOCK_H */
