/* SPDX-License-Identifier: MIT */
/*
 * uffd.h - the userfaultfd operations gmem's host views are built on.
 *
 * Views register for missing and minor faults together: with minor alone a
 * touch of a hole (never allocated, or discarded) would let the kernel
 * allocate a page and map it without asking gmem, into a private range.
 * Every call returns 0 or -errno.  Mapping and marking do not wake the
 * faulters: the caller wakes them (uffd_wake()) once it has released what
 * a woken thread may need next.
 */
#ifndef GMEM_OS_UFFD_H
#define GMEM_OS_UFFD_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * A userfaultfd for this process with the features views need (of
 * hugetlbfs files too, with hugetlb), and the
 * events that report unmapping and moving them: from userfaultfd(2), or
 * from /dev/userfaultfd when the system call is refused (EPERM, or ENOSYS
 * from a seccomp filter).  *have says what else the kernel gives:
 * UFFD_HAVE_FORK, fork() reported too (it needs CAP_SYS_PTRACE);
 * UFFD_HAVE_PROBE, uffd_changing() answers.  -EOPNOTSUPP when the process
 * has no userfaultfd (neither the system call nor the device) or it lacks
 * a feature, -EPERM when one exists but is refused to it.
 */
#define UFFD_HAVE_FORK (1u << 0)
#define UFFD_HAVE_PROBE (1u << 1)
#define UFFD_HAVE_WP (1u << 2) /* asynchronous write-protect: write tracking */
int uffd_open(int *fd, unsigned int *have, bool hugetlb);

/*
 * Whether the process is unmapping, moving or forking a registered range
 * right now, its event not yet read (the kernel's "mappings changing").
 * probe: any page-aligned address of a shared mapping.
 */
bool uffd_changing(int fd, uintptr_t probe);

/* For missing and minor faults, and write-protect too with wp (tracking). */
int uffd_register(int fd, void *addr, uint64_t len, bool wp);
/*
 * The guest mapping: for missing faults (a lazy restore fills pages on
 * first touch: snapshot.c) and write-protect with wp; neither: unregistered.
 */
int uffd_register_guest(int fd, void *addr, uint64_t len, bool missing, bool wp);
/*
 * Put a copy of src in the page cache behind [addr, addr + len), mapped
 * there (write-protected with wp), without waking the faults waiting on
 * it: 0, or -errno for the page at *done bytes (-EEXIST: a page is there
 * already), those before it copied.
 */
int uffd_copy(int fd, uintptr_t addr, const void *src, uint64_t len, bool wp, uint64_t *done);
/* The same with zeroes (UFFDIO_ZEROPAGE). */
int uffd_zeropage(int fd, uintptr_t addr, uint64_t len);
/*
 * Write-protect [addr, addr + len) (protect), entries not yet populated
 * too, or lift it; the kernel lifts it itself on the next write, which
 * PAGEMAP_SCAN then reports as written (os/pagemap.h).
 */
int uffd_writeprotect(int fd, uintptr_t addr, uint64_t len, bool protect);
/* Also wakes the faults waiting in the range. */
int uffd_unregister(int fd, void *addr, uint64_t len);

/*
 * Map the page-cache pages behind [addr, addr + len), write-protected with
 * wp (a read is not a write: tracking counts only what writes after).
 * The first page that is already mapped (-EEXIST) or has no page in the
 * cache (-EFAULT) stops it: -EAGAIN when pages before it were mapped (ask
 * again from there to learn which), and *done says how many bytes were.
 */
int uffd_continue(int fd, uintptr_t addr, uint64_t len, bool wp, uint64_t *done);

/* Mark [addr, addr + len) so that a touch gets SIGBUS. */
int uffd_poison(int fd, uintptr_t addr, uint64_t len);
/* The same over write-protect markers (write tracking) too. */
int uffd_poison_over_wp(int fd, uintptr_t addr, uint64_t len);

int uffd_wake(int fd, uintptr_t addr, uint64_t len);

/* What a userfaultfd reports, decoded (the library's threads see no raw uffd_msg). */
enum uffd_event_kind {
	UFFD_EV_FAULT, /* a touch of a page nothing maps yet */
	UFFD_EV_UNMAP, /* the process unmapped [addr, addr + len) */
	UFFD_EV_MOVE,  /* the process moved [addr, addr + len) to `to` */
	UFFD_EV_FORK,  /* a child inherited registered mappings: fd is its userfaultfd */
	UFFD_EV_OTHER, /* nothing gmem acts on */
	UFFD_EV_GONE,  /* not the kernel's: the reader's word that the descriptor is gone */
};
struct uffd_event {
	uint8_t kind;   /* enum uffd_event_kind */
	bool minor;     /* FAULT: the page is in the page cache (else missing) */
	int fd;         /* FORK */
	uintptr_t addr; /* FAULT: the page touched (aligned down); UNMAP, MOVE: where */
	uintptr_t to;   /* MOVE */
	uint64_t len;   /* UNMAP, MOVE */
};

/*
 * Read up to max events without waiting: how many, or -errno (-EAGAIN:
 * none; -EMFILE: a fork's event needs a free descriptor; -EBADF: closed).
 */
ssize_t uffd_read(int fd, struct uffd_event *ev, size_t max);

/* Whether an event is an unmap or a move: what the records must follow. */
static inline bool uffd_event_changes_views(const struct uffd_event *ev)
{
	return ev->kind == UFFD_EV_UNMAP || ev->kind == UFFD_EV_MOVE;
}

/*
 * A descriptor to stop a poll with (an eventfd): stopfd_open() gives it,
 * or -errno; after stopfd_fire() it polls readable for good.
 */
int stopfd_open(void);
void stopfd_fire(int fd);

/* poll(2), retried on EINTR: the number of ready descriptors (0 on timeout). */
int fds_wait(struct pollfd *pfd, size_t n, int timeout_ms);

#endif /* GMEM_OS_UFFD_H */
