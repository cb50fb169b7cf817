// SPDX-License-Identifier: MIT
/*
 * inject.c - the allocator and system calls libgmem's test build calls.
 *
 * Each inject_X() stands in for X: it fails (NULL, or -1 with errno) when
 * the calling thread armed a failure and this is the call it named, else it
 * calls X.  The errno is one the real call can return for want of a
 * resource, so the library's error paths see what the kernel could give.
 */
#define _GNU_SOURCE
#include "inject.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* Declared here only: these are the library's renamed references. */
void *inject_malloc(size_t n);
void *inject_calloc(size_t n, size_t size);
void *inject_realloc(void *p, size_t n);
void inject_free(void *p);
void *inject_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int inject_madvise(void *addr, size_t len, int advice);
int inject_mprotect(void *addr, size_t len, int prot);
int inject_ioctl(int fd, unsigned long req, ...);
int inject_fallocate(int fd, int mode, off_t off, off_t len);
int inject_memfd_create(const char *name, unsigned int flags);
int inject_ftruncate(int fd, off_t len);
int inject_eventfd(unsigned int initval, int flags);
int inject_open(const char *path, int flags, ...);
ssize_t inject_pread(int fd, void *buf, size_t n, off_t off);
ssize_t inject_pwrite(int fd, const void *buf, size_t n, off_t off);
int inject_mincore(void *addr, size_t len, unsigned char *vec);
long inject_syscall(long nr, ...);
FILE *inject_fopen(const char *path, const char *mode);
int inject_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

static __thread uint64_t countdown; /* 0: disarmed */
static __thread bool fired;
static __thread bool sticky; /* once fired, every call fails until disarmed */
static __thread const char *fired_in; /* the call that failed */
static __thread uint64_t counted;
static _Atomic int64_t live;

void inject_arm(uint64_t nth)
{
	countdown = nth;
	fired = false;
	sticky = false;
}

void inject_arm_from(uint64_t nth)
{
	inject_arm(nth);
	sticky = true;
}

bool inject_disarm(void)
{
	bool f = fired;

	countdown = 0;
	sticky = false;
	fired = false;
	return f;
}

void inject_count_start(void)
{
	counted = 0;
}

uint64_t inject_count(void)
{
	return counted;
}

int64_t inject_live_allocs(void)
{
	return atomic_load(&live);
}

const char *inject_fired_in(void)
{
	return fired_in ? fired_in : "nothing";
}

/* Whether this call of fn fails; sets errno when it does. */
static bool fail_(const char *fn, int err)
{
	counted++;
	if (sticky && fired) {
		errno = err;
		return true;
	}
	if (!countdown || --countdown)
		return false;
	fired = true;
	fired_in = fn;
	errno = err;
	return true;
}
#define fail(err) fail_(__func__, err)

void *inject_malloc(size_t n)
{
	void *p = fail(ENOMEM) ? NULL : malloc(n);

	if (p)
		atomic_fetch_add(&live, 1);
	return p;
}

void *inject_calloc(size_t n, size_t size)
{
	void *p = fail(ENOMEM) ? NULL : calloc(n, size);

	if (p)
		atomic_fetch_add(&live, 1);
	return p;
}

void *inject_realloc(void *old, size_t n)
{
	void *p = fail(ENOMEM) ? NULL : realloc(old, n);

	if (p && !old)
		atomic_fetch_add(&live, 1);
	return p;
}

void inject_free(void *p)
{
	if (p)
		atomic_fetch_sub(&live, 1);
	free(p);
}

void *inject_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return fail(ENOMEM) ? MAP_FAILED : mmap(addr, len, prot, flags, fd, off);
}

int inject_madvise(void *addr, size_t len, int advice)
{
	return fail(EAGAIN) ? -1 : madvise(addr, len, advice);
}

int inject_mprotect(void *addr, size_t len, int prot)
{
	return fail(ENOMEM) ? -1 : mprotect(addr, len, prot);
}

int inject_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fail(ENOMEM) ? -1 : ioctl(fd, req, arg);
}

int inject_fallocate(int fd, int mode, off_t off, off_t len)
{
	return fail(ENOSPC) ? -1 : fallocate(fd, mode, off, len);
}

int inject_memfd_create(const char *name, unsigned int flags)
{
	return fail(EMFILE) ? -1 : memfd_create(name, flags);
}

int inject_ftruncate(int fd, off_t len)
{
	return fail(EINTR) ? -1 : ftruncate(fd, len);
}

int inject_eventfd(unsigned int initval, int flags)
{
	return fail(EMFILE) ? -1 : eventfd(initval, flags);
}

int inject_open(const char *path, int flags, ...)
{
	va_list ap;
	int mode;

	va_start(ap, flags);
	mode = (flags & O_CREAT) ? va_arg(ap, int) : 0;
	va_end(ap);
	return fail(EMFILE) ? -1 : open(path, flags, mode);
}

ssize_t inject_pread(int fd, void *buf, size_t n, off_t off)
{
	return fail(EIO) ? -1 : pread(fd, buf, n, off);
}

ssize_t inject_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return fail(ENOMEM) ? -1 : pwrite(fd, buf, n, off);
}

int inject_mincore(void *addr, size_t len, unsigned char *vec)
{
	return fail(EAGAIN) ? -1 : mincore(addr, len, vec);
}

long inject_syscall(long nr, ...)
{
	va_list ap;
	long a;

	/* the library makes one: userfaultfd(flags) */
	va_start(ap, nr);
	a = va_arg(ap, long);
	va_end(ap);
	return fail(EMFILE) ? -1 : syscall(nr, a);
}

FILE *inject_fopen(const char *path, const char *mode)
{
	return fail(EMFILE) ? NULL : fopen(path, mode);
}

int inject_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	counted++;
	if (countdown && !--countdown) {
		fired = true;
		fired_in = __func__;
		return EAGAIN;
	}
	return pthread_create(t, attr, fn, arg);
}
