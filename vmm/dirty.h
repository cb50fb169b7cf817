/* SPDX-License-Identifier: MIT */
/*
 * dirty.h - dirty tracking: which guest-physical pages were written, a
 * round at a time, as live migration asks after each pass.
 *
 * Guest memory is written by the guest (and KVM on its behalf) through the
 * memslots, by the devices through their view or gmem_write(), and by the
 * VMM itself (gmem_write(), gmem_discard()).  KVM's dirty log sees only the
 * first kind; gmem sees the host's writes always, and the guest's too when
 * asked to track the guest mapping.  The two modes:
 *
 *   DIRTY_KVM   gmem_track_start(0) for the host's writes, and KVM's dirty
 *               log (KVM_MEM_LOG_DIRTY_PAGES on every RAM memslot,
 *               KVM_GET_DIRTY_LOG per slot each round) for the guest's:
 *               a round is the union of the two.
 *   DIRTY_GMEM  gmem_track_start(GMEM_TRACK_GUEST): gmem alone sees every
 *               writer, through the guest mapping the memslots point at.
 *               On a THP backing the guest mapping is mapped 4 KiB at a
 *               time while it lasts: dirty_rehuge() after dirty_stop().
 *
 * A round's bitmap covers guest-physical pages [0, top of RAM): bit g is
 * the page at g * 4 KiB.  Only RAM regions of the GPA map can have bits
 * set (the MMIO window and the hole below 4 GiB stay clear).  No write is
 * missed: a write lands in the round whose collect comes after it, or - if
 * it races that collect - in the next.  A page may be reported that was
 * not written: gmem's false positives (gmem.h), of which a VMM meets two -
 * a conversion to private counts the pages views had mapped, and
 * hugetlbfs reports whole huge pages.
 */
#ifndef GMEM_VMM_DIRTY_H
#define GMEM_VMM_DIRTY_H

#include "vm.h"

enum dirty_mode { DIRTY_KVM = 1, DIRTY_GMEM };

/* What one round found, and what it cost. */
struct dirty_round {
	uint64_t pages;      /* bits set in the round's bitmap */
	uint64_t gmem_pages; /* ... that gmem reported */
	uint64_t kvm_pages;  /* ... that KVM's dirty log reported (DIRTY_KVM) */
	uint64_t gmem_ns, kvm_ns; /* time in gmem_track_collect(), in KVM_GET_DIRTY_LOG */
	uint64_t ns;              /* the whole collect */
};

struct dirty {
	struct vm *vm;
	enum dirty_mode mode;
	uint64_t pages; /* bits in a round's bitmap: guest-physical pages below the top of RAM */
	uint64_t *log;  /* one memslot's log, as KVM_GET_DIRTY_LOG fills it; gmem's retries */
	bool on;
	const char *failed; /* after an error: the call that failed, for the message */
};

/* "kvm" or "gmem"; parse: 0, or -EINVAL for another name. */
const char *dirty_mode_name(enum dirty_mode mode);
int dirty_mode_parse(const char *name, enum dirty_mode *mode);

/*
 * Start tracking vm's RAM in mode, with vCPUs running or not: writes from
 * now on are reported by the collects that follow.  0, or -errno with
 * nothing left on (d->failed names the call that failed): -EOPNOTSUPP
 * from gmem_track_start() (the kernel lacks asynchronous userfaultfd
 * write-protect), -EBUSY (gmem already tracks), another -errno from
 * KVM_SET_USER_MEMORY_REGION (DIRTY_KVM: KVM cannot log), -ENOMEM,
 * -EINVAL if a RAM region does not start and end on 64 pages (the GPA
 * map's are 2 MiB multiples).
 */
int dirty_start(struct dirty *d, struct vm *vm, enum dirty_mode mode);

/* 64-bit words in a round's bitmap. */
static inline uint64_t dirty_bitmap_words(const struct dirty *d)
{
	return (d->pages + 63) / 64;
}

/*
 * Collect a round: bitmap (dirty_bitmap_words() words) gets the pages
 * written since the last collect (or the start), and the trackers forget
 * them.  0 and *round filled, or -errno (d->failed names the call):
 * then the pages this round had already taken from the trackers are lost,
 * and the caller must count every page written (a migration sends them
 * all again).
 */
int dirty_collect(struct dirty *d, uint64_t *bitmap, struct dirty_round *round);

/*
 * Stop tracking; what was not collected is forgotten.  Every step is
 * tried: 0 or the first -errno.  Does nothing when not started.
 */
int dirty_stop(struct dirty *d);

/*
 * On a THP backing, merge every 2 MiB block of RAM that the guest mapping
 * no longer maps huge (gmem_collapse()), as DIRTY_GMEM leaves them after
 * dirty_stop(); does nothing on other backings.  Blocks a pin holds (a
 * request in flight, a running virtqueue's rings) are left, and counted in
 * *busy.  0 or -errno.
 */
int dirty_rehuge(struct vm *vm, uint64_t *busy);

#endif /* GMEM_VMM_DIRTY_H */
