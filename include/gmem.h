/* SPDX-License-Identifier: MIT */
/*
 * gmem.h - guest memory that converts in place between shared and private.
 *
 * One gmem object holds all of a virtual machine's memory in one backing
 * file.  The guest reaches it through one mapping (gmem_guest_map(), for KVM
 * memslots); host components reach it through host views (gmem_view_map()).
 * Every 4 KiB page is SHARED (guest and host may touch it) or PRIVATE (guest
 * only), and converts in place: contents survive, only gmem_discard() zeroes.
 * The backing page may be larger (2 MiB or 1 GiB huge pages); conversions
 * stay 4 KiB on every backing and never touch the guest mapping, so a huge
 * page the guest maps whole stays mapped whole through them.
 *
 * Conventions (liburing's): every function returns 0, a documented
 * non-negative value, or a negative errno; errno is never the result.  A call
 * rejected with -EINVAL changes nothing.  When a system call the library
 * needs fails, the call fails with its errno - or -EIO where that errno
 * means something else here - and, unless it says otherwise, changes
 * nothing.  Every function may be called from any thread concurrently with
 * any other, except gmem_destroy(), which must be the last call on an
 * object.  Library functions must not be called from signal handlers (but
 * gmem_addr_offset()).  A gmem is not usable in a child process after
 * fork(): its views and guest mapping are not inherited.  There, the calls
 * that would change, map or punch memory the parent shares with it
 * (gmem_destroy(), gmem_convert(), gmem_discard(), gmem_view_map(),
 * gmem_write(), gmem_collapse()) return -ECHILD and do nothing; the
 * child's copy of the object is simply left behind.
 *
 * The process around it (docs/SECURITY.md has the whole threat model):
 *  - Locked memory works: mlockall() (any flags) or mlock() of a view never
 *    populates a private page, and conversions zap locked views.
 *  - Core dumps leave out the guest mapping (MADV_DONTDUMP); a view's dump
 *    holds only the shared pages it maps at the time.
 *  - Views unmapped (munmap, mmap over them), moved or shrunk (mremap)
 *    behind the library's back are followed: the pieces left stay views
 *    (gmem_view_unmap() takes a piece's first address), a moved view works
 *    at its new address, and a touch of what no view covers any more (a
 *    part a view was grown by) gets SIGBUS.  Undoing MADV_DONTFORK and
 *    forking gives the child copies of views whose every touch is SIGBUS
 *    (when the process has CAP_SYS_PTRACE and is not tracking writes, whose
 *    registration makes the kernel copy a view's entries into the child;
 *    otherwise outside the model).
 *    Views are MADV_NOHUGEPAGE: MADV_COLLAPSE on one is refused.  Outside
 *    the model: MADV_HUGEPAGE or remap_file_pages() on a view, MADV_REMOVE
 *    through one (it destroys guest memory, though it reads nothing), and
 *    closing the library's file descriptors behind its back.
 *  - I/O that the kernel performs on a view's pages by reference - O_DIRECT,
 *    io_uring (registered buffers above all), vmsplice(), AIO - keeps using
 *    those pages after a zap.  Bracket it with gmem_pin()/gmem_unpin()
 *    (GMEM_PIN_LONGTERM for registered buffers) so that no conversion can
 *    happen under it, or create the object with GMEM_F_FRESH_PRIVATE.
 */
#ifndef GMEM_H
#define GMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The version of this header; gmem_version() gives the library's at run
 * time, in the same encoding, so a program can tell which it runs against.
 */
#define GMEM_VERSION_MAJOR 0
#define GMEM_VERSION_MINOR 1
#define GMEM_VERSION_PATCH 0
#define GMEM_VERSION ((GMEM_VERSION_MAJOR << 16) | (GMEM_VERSION_MINOR << 8) | GMEM_VERSION_PATCH)

/*
 * Marks what the library exports.  It is built with every other symbol
 * hidden, and src/libgmem.map must list each function declared with it.
 */
#ifdef __GNUC__
#define GMEM_API __attribute__((visibility("default")))
#else
#define GMEM_API
#endif

struct gmem; /* opaque: one guest memory object */

#define GMEM_PAGE_SIZE 4096ULL

/* Page states, as returned by gmem_state(). */
#define GMEM_SHARED 0
#define GMEM_PRIVATE 1
#define GMEM_CONVERTING 2 /* in transit to private: no new host faults or pins */

/* gmem_config.backing */
#define GMEM_BACKING_SHMEM 0      /* 4 KiB pages */
#define GMEM_BACKING_THP 1        /* 2 MiB transparent huge pages */
/*
 * hugetlbfs pages come from the kernel's pool (nr_hugepages, which the
 * library never changes): creating an object reserves all of its pages, and
 * is -ENOMEM when the pool has too few free.  The kernel maps a hugetlb page
 * only whole, so views cover whole huge pages, a view maps one only while
 * all of its 4 KiB pieces are shared, and a conversion of any piece is
 * refused while any piece is pinned (below).
 */
#define GMEM_BACKING_HUGETLB_2M 2 /* hugetlbfs 2 MiB pages (memfd MFD_HUGETLB) */
#define GMEM_BACKING_HUGETLB_1G 3 /* hugetlbfs 1 GiB pages */

/* gmem_config.flags */
#define GMEM_F_INIT_PRIVATE (1u << 0) /* every page starts private (default: shared) */
/*
 * A conversion to private gives each populated page a fresh backing page
 * with the same contents, so that no reference the kernel took while it
 * was shared (see above) can read or write it once private.  It copies
 * what it converts (docs/PERFORMANCE.md has the cost), and re-points the
 * guest mapping at the new pages (KVM refaults them).  The guest must not
 * touch a page while converting it, as under SEV-SNP and TDX: a touch
 * between the copy and the write-back fails the conversion with -EBUSY at
 * that page (a deferred one ends with it), and a write there is lost.
 * GMEM_BACKING_SHMEM only (-EINVAL otherwise): a huge page cannot be
 * replaced in part.  Where one turns up anyway (shmem_enabled "always")
 * and something holds it, the conversion fails with -EBUSY at that page.
 */
#define GMEM_F_FRESH_PRIVATE (1u << 1)

/* gmem_view_map() flags */
#define GMEM_VIEW_STRICT (1u << 0) /* refuse private pages at map time, block conversions */

/* gmem_convert() flags */
#define GMEM_CONVERT_WAIT (1u << 0)  /* wait (bounded) for short-term pins to drop */
#define GMEM_CONVERT_DEFER (1u << 1) /* complete when the last pin drops */

/* gmem_pin() / gmem_unpin() flags */
#define GMEM_PIN_LONGTERM (1u << 0)

struct gmem_config {
	uint64_t size;            /* bytes: > 0, a multiple of the backing page */
	uint32_t backing;         /* GMEM_BACKING_* */
	uint32_t flags;           /* GMEM_F_* */
	int32_t fault_signal;     /* 0 or SIGBUS -> SIGBUS; SIGSEGV -> SIGSEGV */
	uint32_t wait_timeout_ms; /* bound for GMEM_CONVERT_WAIT; 0 -> 1000 */
	uint64_t reserved[6];     /* must be zero */
};

/*
 * The size never changes: a counter added later takes the first reserved
 * slot.  A program compiled against an older header gets every field it
 * knows, with their meanings, and the newer counters in what it calls
 * reserved (zero from a library that has none).
 */
struct gmem_stats {
	uint64_t conversions;        /* conversions that completed (immediately or deferred) */
	uint64_t pages_to_private;   /* pages that became private */
	uint64_t pages_to_shared;    /* pages that became shared */
	uint64_t convert_eagain;     /* conversions answered -EAGAIN */
	uint64_t convert_deferred;   /* conversions answered -EINPROGRESS */
	uint64_t host_faults;        /* host-view faults gmem decided */
	uint64_t host_faults_denied; /* ... of which refused (private or in transit) */
	uint64_t pins_active;        /* page references held by pins right now */
	uint64_t warnings;           /* steps that cannot fail that failed (logged: a bug) */
	uint64_t pages_saved;        /* pages gmem_save() wrote out as data */
	uint64_t pages_restored;     /* pages gmem_restore() filled (eagerly or lazily) */
	uint64_t reserved[21];       /* zero until later counters take them (above) */
};

/*
 * Called when a deferred conversion ends: result 0 when it completed (the
 * last pin in the range dropped), -ECANCELED when a later conversion
 * overlapping it cancelled it (its in-transit pages went back to shared),
 * another negative errno when it could not complete (the kernel refused to
 * unmap a view, or a page could not be copied for GMEM_F_FRESH_PRIVATE):
 * then its pages stay GMEM_CONVERTING - refused to host touches and pins -
 * until a conversion overlapping them cancels it, with no second callback.
 * Runs once per deferred conversion, in the thread that ended it, with no
 * library lock held: it may call any gmem function but gmem_destroy().
 */
typedef void (*gmem_convert_cb)(struct gmem *g, uint64_t offset, uint64_t len,
				unsigned int to, int result, void *arg);

/*
 * Create a gmem.  Backing memory is allocated lazily (hugetlbfs pages are
 * reserved from the pool at once).  -EINVAL for a bad config (a size that
 * is not a multiple of the backing page; GMEM_F_FRESH_PRIVATE on any
 * backing but GMEM_BACKING_SHMEM), -EOPNOTSUPP when the kernel cannot
 * provide what is asked (shmem huge pages for GMEM_BACKING_THP, a hugetlb
 * pool of that size, userfaultfd minor faults or poison, or
 * userfaultfd at all: the system call missing or filtered with ENOSYS and
 * no /dev/userfaultfd), -EPERM when userfaultfd is not permitted (the
 * system call refused - vm.unprivileged_userfaultfd=0 without
 * CAP_SYS_PTRACE, or a filter - and /dev/userfaultfd absent or not
 * accessible), -ENOMEM (for hugetlbfs: the pool has too few free pages).
 */
GMEM_API int gmem_create(const struct gmem_config *cfg, struct gmem **out);

/*
 * Unmap every view and the guest mapping and free the object.  -EBUSY, and
 * nothing freed, while any pin is held.  NULL is accepted (returns 0).
 */
GMEM_API int gmem_destroy(struct gmem *g);

GMEM_API uint64_t gmem_size(const struct gmem *g);
GMEM_API uint64_t gmem_page_size(const struct gmem *g); /* conversion granularity: GMEM_PAGE_SIZE */
/*
 * The backing's page, the unit the kernel allocates the memory in:
 * GMEM_PAGE_SIZE for GMEM_BACKING_SHMEM, 2 MiB for GMEM_BACKING_THP, the
 * huge page's size (2 MiB or 1 GiB) for a hugetlb backing; 0 for NULL.
 */
GMEM_API uint64_t gmem_backing_page_size(const struct gmem *g);

/*
 * The one mapping of the whole memory meant for KVM memslots; the same
 * address on every call.  Conversions never change it; discard does.  With
 * a huge backing it is aligned to the backing page and mapped with huge
 * pages.  Host code must not touch it: use a view.
 */
GMEM_API int gmem_guest_map(struct gmem *g, void **addr);

/*
 * Map [offset, offset + len) read-write for host code.  Shared pages are
 * mapped on first touch; touching a private or in-transit page delivers the
 * configured signal to the touching thread with si_addr in that page
 * (SIGBUS: BUS_ADRERR, or BUS_MCEERR_AR with si_addr_lsb 12 on kernels
 * built with CONFIG_MEMORY_FAILURE, which report a userfaultfd poison
 * marker like a hardware-poisoned page; SIGSEGV: SEGV_MAPERR - a guard marker, no mapping
 * of its own - or SEGV_ACCERR in a view the process has mlock()ed, where
 * the kernel refuses guards and each refused page costs a mapping, up to
 * vm.max_map_count, then SIGBUS) and never reads or writes it; in-kernel
 * accesses (read(2) into a view, ...) fail with EFAULT instead.
 * On hugetlbfs, offset and len must be multiples of the backing page
 * (-EINVAL): the kernel maps a huge page whole, so one is mapped only when
 * all of its 4 KiB pieces are shared, and a touch anywhere in a huge page
 * with a piece that is not is refused at the exact address, its shared
 * pieces too (si_addr_lsb is the huge page's; SIGSEGV is SEGV_ACCERR, as
 * hugetlbfs takes no guards, and each refused huge page may cost up to two
 * mappings of vm.max_map_count).  gmem_read() and gmem_write() reach the
 * shared pieces of such pages.
 * GMEM_VIEW_STRICT: -EACCES if any page in range is not shared; while the
 * view exists, converting a page it covers to private fails with -EBUSY.
 * Views are not inherited across fork().
 */
GMEM_API int gmem_view_map(struct gmem *g, uint64_t offset, uint64_t len, unsigned int flags,
			   void **addr);

/*
 * Unmap the view mapped at addr (exactly; or the first address of a piece
 * left of it, see above); -EINVAL if none is.
 */
GMEM_API int gmem_view_unmap(struct gmem *g, void *addr);

/*
 * Convert [offset, offset + len) to GMEM_SHARED or GMEM_PRIVATE, all or
 * nothing; pages already in the target state are fine.  A pending deferred
 * conversion overlapping the range is cancelled first (its callback gets
 * -ECANCELED); a waiting one (GMEM_CONVERT_WAIT in another thread) is waited
 * for.  To private, on 0, no view maps a page of the range and no pin holds
 * one.  Errors, with *error_offset (if not NULL) set to the lowest offending
 * page's offset:
 *   -EBUSY   a long-term pin or a strict view covers a page, whatever the flags;
 *   -EAGAIN  a short-term pin holds a page (with GMEM_CONVERT_WAIT: still
 *            after wait_timeout_ms);
 *   -EINPROGRESS  (GMEM_CONVERT_DEFER) short-term pins remain (*error_offset:
 *            the lowest page pinned): the range's shared pages are
 *            GMEM_CONVERTING until the last pin drops, then the conversion
 *            completes and the callback runs with 0.
 * While a range is in transit (WAIT or DEFER), new pins there fail with
 * -EAGAIN.  Host touches of a page that is still pinned go through: that
 * is the I/O the conversion waits for, and it must be able to finish (its
 * last unpin unmaps it from every view).  Other host touches wait for a
 * WAIT conversion's outcome (at most wait_timeout_ms) and are refused in a
 * DEFER transit.
 * On hugetlbfs a conversion to private zaps the whole huge page of each
 * page it converts from every view, so a pin on any 4 KiB piece of such a
 * huge page refuses it, whatever the flags: -EBUSY for a long-term pin,
 * else -EAGAIN, *error_offset at the lowest pinned piece (there is no
 * transit: it would have to keep the whole huge page mapped for the I/O).
 * To shared: immediate, whatever the pins.
 */
GMEM_API int gmem_convert(struct gmem *g, uint64_t offset, uint64_t len, unsigned int to,
			  unsigned int flags, uint64_t *error_offset);

/* Set (or with NULL clear) the deferred-conversion callback. */
GMEM_API int gmem_set_convert_callback(struct gmem *g, gmem_convert_cb cb, void *arg);

/*
 * Count a reference on every page in range for host I/O; pins nest.  All or
 * nothing: -EACCES if a page is private, -EAGAIN if one is in transit (or,
 * for a moment, being discarded or merged into a huge page - by
 * gmem_collapse(), or by a lazy restore's fill), -EOVERFLOW past 2^31 short
 * or 2^23 long pins on a page.
 */
GMEM_API int gmem_pin(struct gmem *g, uint64_t offset, uint64_t len, unsigned int flags);

/*
 * Drop one pin of the given kind from every page in range.  -EINVAL, nothing
 * changed, if a page holds no pin of that kind.  Dropping the last pin of a
 * deferred conversion's range completes it in this thread.
 */
GMEM_API int gmem_unpin(struct gmem *g, uint64_t offset, uint64_t len, unsigned int flags);

/*
 * Punch the range out: afterwards it reads as zero through every view and
 * the guest mapping; states are unchanged.  -EBUSY if a page is pinned.
 * A part of a huge page is zeroed in place; whole huge pages go back to
 * the kernel.  On hugetlbfs those are taken back from the pool at once, so
 * that no later touch can find it empty: -ENOMEM if it has none to give
 * (the range reads zero all the same).
 */
GMEM_API int gmem_discard(struct gmem *g, uint64_t offset, uint64_t len);

/*
 * Copy len bytes between buf and the object at byte offset, for host code
 * that copies rather than maps (device models; backings whose views are
 * refused whole over a huge page in part private).  Neither offset nor len
 * need be page-aligned.  The rule is a view's, all or nothing: every 4 KiB
 * page the bytes [offset, offset + len) touch must be GMEM_SHARED, else
 * -EACCES and *error_offset (if not NULL) = the offset of the first page
 * that is not (page-aligned), nothing copied, buf and the object untouched.
 * A page in transit (GMEM_CONVERTING) is refused like a private one, even
 * if pinned.  The decision and the copy are one step: conversions and
 * discards wait for a copy in progress, so no page changes state during
 * it, and a private page is never read or written by these calls.
 * len 0 returns 0 and does nothing, buf may then be NULL (like read(2)),
 * unless offset > size.  -EINVAL, nothing changed: g NULL; offset > size;
 * offset + len past the end or overflowing; buf NULL, or buf + len past the
 * top of the address space, with len > 0; buf overlapping a view of g (the
 * copy holds the object's lock, which a first touch of its views may wait
 * for).  A buf in a view of another object is not detected: it deadlocks
 * if that object's copies in turn copy into views of g.  *error_offset is
 * written on -EACCES only.
 * gmem_read: holes read as zero and stay holes (nothing is allocated).  Any
 * other error (a failed read of the backing file; -EFAULT for a buf not
 * writable) may leave buf partly written, never the object changed.
 * gmem_write: backing memory for the pages written is allocated first
 * (with THP backing the whole 2 MiB pages holding them): -ENOMEM, nothing
 * written, when there is none.  Pages in memory are copied through the
 * library's own mapping: one the hardware poisoned raises SIGBUS
 * (BUS_MCEERR_AR) in the calling thread, as a touch through a view would.
 */
GMEM_API int gmem_read(struct gmem *g, uint64_t offset, void *buf, uint64_t len,
		       uint64_t *error_offset);
GMEM_API int gmem_write(struct gmem *g, uint64_t offset, const void *buf, uint64_t len,
			uint64_t *error_offset);

/* The GMEM_* state of the page holding byte offset; -EINVAL past the end. */
GMEM_API int gmem_state(struct gmem *g, uint64_t offset);

/*
 * Check invariant 1 against the kernel's page tables (/proc/self/pagemap),
 * without faulting anything in: 0 when no view has a present page-table
 * entry for a private or in-transit page, -EIO when one does.
 */
GMEM_API int gmem_audit(struct gmem *g);

/*
 * The object's huge pages as the kernel holds them now.  A block is one
 * backing page (gmem_backing_page_size(); a 4 KiB page for
 * GMEM_BACKING_SHMEM).  The size never changes: later fields take
 * reserved slots.
 */
struct gmem_huge_info {
	uint64_t page_size;         /* == gmem_backing_page_size() */
	uint64_t blocks;            /* blocks in the object */
	uint64_t blocks_populated;  /* blocks with any memory allocated */
	uint64_t blocks_guest_huge; /* blocks the guest mapping maps with one huge entry now */
	uint64_t splits;            /* blocks a discard split (in part) since creation */
	uint64_t merges;            /* blocks gmem_collapse() merged since creation */
	uint64_t reserved[10];      /* zero */
};

/*
 * Fill *info from the kernel's page tables and page cache, without
 * faulting anything in or allocating memory: 0, or -EINVAL for a NULL
 * argument.  Without PAGEMAP_SCAN (Linux 6.7) blocks_guest_huge counts
 * the blocks whose every page the guest mapping maps, huge or not.  Each
 * count is read as the call goes: exact while nothing changes the memory.
 */
GMEM_API int gmem_huge_info(struct gmem *g, struct gmem_huge_info *info);

/*
 * Merge every block of [offset, offset + len), rounded out to blocks, that
 * has memory and is not mapped huge by the guest mapping back into one
 * huge page (MADV_COLLAPSE): a discard splits the huge page it frees part
 * of, and the guest mapping then maps the block with 4 KiB entries.
 * Contents, states, pins and views are unchanged; pages discarded in the
 * block are backed again and read zero.  GMEM_BACKING_THP only: on other
 * backings, whose pages never split, it checks its arguments and returns
 * 0.  Conversions, faults and discards wait while it runs.  Errors, with
 * *error_offset (if not NULL) set:
 *   -EAGAIN  a pin holds a page of a block (*error_offset: the lowest such
 *            page), and nothing was merged; or the kernel found a page of
 *            a block in use (I/O in flight on it) and left it
 *            (*error_offset: the block), blocks before it merged;
 *   -EOPNOTSUPP  the kernel cannot make huge pages of this memory;
 *   -ENOMEM  no huge page could be allocated.
 */
GMEM_API int gmem_collapse(struct gmem *g, uint64_t offset, uint64_t len, uint64_t *error_offset);

/*
 * Write tracking: which pages were written since tracking started, or since
 * the collect that last reported them.  No write is ever missed - by a host
 * view (whenever mapped), gmem_write(), a discard (its zeroing is a write),
 * and with GMEM_TRACK_GUEST the guest through the guest mapping and KVM on
 * its behalf - across conversions, view unmaps and moves, and concurrent
 * collects (a write racing a collect is reported by it or the next).  A
 * page may be reported that was not written (false positives): a view the
 * process unmapped behind the library's back counts all its pages written,
 * hugetlbfs reports whole huge pages, a discard or fresh-private
 * conversion rewrites pages, and a pinned page (gmem_pin(): I/O may write
 * it through the kernel's own reference) counts as written while pinned
 * and once after its release.  A read through a view is not a write.
 * Private pages stay unreadable to views throughout.  Tracking the guest
 * mapping splits the huge mappings of a THP guest mapping into 4 KiB ones
 * while it lasts (gmem_collapse() merges them after gmem_track_stop()).
 */
#define GMEM_TRACK_GUEST (1u << 0) /* gmem_track_start(): writes through the guest mapping too */
#define GMEM_TRACK_PEEK (1u << 0)  /* gmem_track_collect(): report without clearing */

/*
 * Start tracking: -EBUSY if already tracking, -EOPNOTSUPP without the
 * kernel's asynchronous userfaultfd write-protect (Linux 6.7).
 */
GMEM_API int gmem_track_start(struct gmem *g, unsigned int flags);
/* Stop tracking, forgetting what was not collected; -EINVAL if not tracking. */
GMEM_API int gmem_track_stop(struct gmem *g);
/*
 * Bit i of bitmap (len / 4 KiB bits, the words' low bits first) set when
 * the page at offset + i * 4 KiB was written; returns how many bits it
 * set, or -errno (-EINVAL when not tracking or for a bad range).  Clears
 * what it reports, atomically with respect to writers, unless
 * GMEM_TRACK_PEEK.  -EAGAIN if the process kept moving or unmapping views
 * behind the library's back for a second (nothing is lost: ask again).
 */
GMEM_API int64_t gmem_track_collect(struct gmem *g, uint64_t offset, uint64_t len,
				    uint64_t *bitmap, unsigned int flags);

/*
 * Snapshots (docs/SNAPSHOT.md): the object's size, every page's state and
 * the contents of its populated pages, to any file descriptor (a file, a
 * pipe, a socket) and back.  Holes stay holes; every record is checksummed.
 *
 * gmem_save() reads the pages through the library's own mapping, never
 * a view, and holds up a conversion for one page's copy at most: the
 * guest may run (a consistent copy is the caller's: pause the writers).
 * With GMEM_SAVE_PAUSED the caller says nothing writes the object's
 * pages meanwhile (vCPUs paused, devices quiet; discards and conversions
 * may go on): records are hashed and written from where the pages are,
 * not copied first, and a conversion or discard waits for up to 1 MiB
 * being written.  A page written anyway can leave a record that does not
 * check, which a restore refuses (-EBADMSG), never restores.  A page in
 * transit is saved private.  With GMEM_SAVE_DIRTY it writes a layer: the pages
 * written since the save or restore it follows (which must have been made
 * while tracking, as tracking is now: -EINVAL otherwise), and every
 * page's state.  The collects of gmem_track_collect() report the same
 * writes all the same.  A layer that fails goes again into the next.
 *
 * gmem_restore() fills an object nothing has used (-EBUSY: a view, a pin,
 * a conversion or memory) of the same size (-EINVAL) from a full save and
 * the layers after it, in order, until the end of the stream; states are
 * in force when it returns.  A file that does not check is -EBADMSG (torn,
 * corrupted, truncated), a layer that does not follow what came before it
 * -EXDEV; either way the object is left as it was.  Layers saved after a
 * restore (made while tracking) apply on it.
 *
 * With GMEM_RESTORE_LAZY (fd seekable: -ESPIPE otherwise; it is duplicated,
 * and must stay as it is until the restore is done) it returns once the
 * file's structure is read and the states are in force; each page gets its
 * contents from the file on first touch - by the guest through the guest
 * mapping (KVM faults through it), a view, gmem_read(), gmem_write() or
 * gmem_pin() - before anyone sees it, and a background thread fills the
 * rest, going on from the latest touches.  A huge page is filled whole; a
 * THP block is mapped huge again only once it is.  A record found corrupt
 * then is never used: its pages read as SIGBUS (refused through views;
 * -EBADMSG from gmem_read(), gmem_write(), gmem_pin()), and
 * gmem_restore_wait() reports it.  gmem_save() waits for the restore to be
 * done.
 *
 * With GMEM_RESTORE_ONE (not with LAZY) it reads one file of the stream and
 * returns with fd just past it, so that a stream can carry other things
 * between files (a migration's frames): a full save into an untouched
 * object, then, call after call, each layer on what the calls before it
 * restored (-EXDEV for one that does not follow; -EBUSY while a view is
 * mapped, a page pinned or in transit).  Each record is checked before it
 * is applied; a layer refused part-way leaves the records before it in,
 * and no layer applies on the object after that.  Nothing may write the
 * object between the calls (its pages would hold a mix).
 */
#define GMEM_SAVE_DIRTY (1u << 0)   /* gmem_save(): a layer on the last save */
#define GMEM_SAVE_PAUSED (1u << 1)  /* gmem_save(): nothing writes the object meanwhile */
#define GMEM_RESTORE_LAZY (1u << 0) /* gmem_restore(): contents on first touch */
#define GMEM_RESTORE_ONE (1u << 1)  /* gmem_restore(): one file of the stream, then return */

GMEM_API int gmem_save(struct gmem *g, int fd, unsigned int flags);
GMEM_API int gmem_restore(struct gmem *g, int fd, unsigned int flags);
/*
 * Wait up to timeout_ms (-1: for ever) for a lazy restore to fill every
 * page: 0 (also when there is none), -ETIMEDOUT, or -EBADMSG if a record
 * did not check.
 */
GMEM_API int gmem_restore_wait(struct gmem *g, int timeout_ms);

/*
 * Post-copy (docs/MIGRATION.md): a file that names pages whose contents
 * come after it, as records sent apart, in any order.
 *
 * The source: gmem_save(GMEM_SAVE_POSTCOPY, with GMEM_SAVE_DIRTY for a
 * layer) writes a file like any other - states, holes - but names the
 * pages it would have saved (REC_LATER) instead of carrying them.  From
 * then on nothing may write the object (its pages are read when they are
 * sent); conversions and discards may go on.  gmem_postcopy_send() puts
 * the records of named pages into buf, up to cap bytes: those in [offset,
 * offset + len), sent before or not (a page asked for); or, with
 * GMEM_POSTCOPY_NEXT (offset and len ignored), the next pages not sent
 * yet, from the last one asked for on.  It returns the bytes put (the
 * records of the first pages, as many as fit), 0 when there are none;
 * -ENOSPC when cap cannot hold one page's record; -EINVAL without a
 * post-copy save (any other save since ends one), or for a range outside
 * the object.
 *
 * The destination: gmem_postcopy_restore() reads one such file from fd,
 * as gmem_restore(GMEM_RESTORE_ONE) would (a full one into an untouched
 * object, or a layer on what earlier gmem_restore(GMEM_RESTORE_ONE) calls
 * restored: -EXDEV otherwise; nothing restores on the object after it),
 * and returns with its states in force and fd just past it.  Pages it
 * names get their contents from gmem_postcopy_receive() (buf: one or more
 * records gmem_postcopy_send() made; -EBADMSG, and nothing applied, if
 * any does not check or is another file's; a page that came before, or
 * was discarded since, is left as it is: a record sent twice does no
 * harm).  A touch of a page whose contents have not come - by the guest
 * through the guest mapping, a view, gmem_read(), gmem_write(),
 * gmem_pin(), gmem_collapse(), a discard of part of a hugetlbfs page (a
 * discard makes the rest holes) - calls pc->fetch(pc->arg, offset, len)
 * for the pages of its fill unit not asked for before (on shmem up to 16
 * pages around it, on THP and hugetlbfs its huge page), once a page (the
 * caller must not lose an ask), and waits for them; a touch through the
 * guest mapping or a view waits without holding up the library's fault
 * thread.  fetch runs on that thread or the toucher's, maybe with the
 * object's lock held: it must return promptly and must not call into the
 * object.  A page private at the restore is fetched only by the guest's
 * touch: views refuse it as ever.  gmem_postcopy_abort(g, err), once the
 * contents can no longer come (err a negative errno): every page still
 * missing fails as a lazy restore's rotten record does (SIGBUS through
 * the guest mapping, refused through views, -EBADMSG from the calls),
 * waiters included.  gmem_restore_wait() returns 0 once every page has
 * come, or the abort's err.  gmem_restore() refuses a post-copy file
 * (-EBADMSG).
 */
#define GMEM_SAVE_POSTCOPY (1u << 2) /* gmem_save(): name the pages, send them apart */
#define GMEM_POSTCOPY_NEXT (1u << 0) /* gmem_postcopy_send(): the next pages not sent */

struct gmem_postcopy {
	void (*fetch)(void *arg, uint64_t offset, uint64_t len);
	void *arg;
};

GMEM_API int64_t gmem_postcopy_send(struct gmem *g, uint64_t offset, uint64_t len, void *buf,
				    size_t cap, unsigned int flags);
GMEM_API int gmem_postcopy_restore(struct gmem *g, int fd, const struct gmem_postcopy *pc);
GMEM_API int gmem_postcopy_receive(struct gmem *g, const void *buf, size_t len);
GMEM_API int gmem_postcopy_abort(struct gmem *g, int err);

/* gmem_addr_offset() kinds */
#define GMEM_ADDR_VIEW 1  /* a host view of the object */
#define GMEM_ADDR_GUEST 2 /* the guest mapping */

/*
 * The object's byte offset that addr refers to, and whether addr lies in a
 * view or the guest mapping: for SIGBUS/SIGSEGV handlers, to tell a gmem
 * refusal (si_addr) from any other fault.  Async-signal-safe: no lock, no
 * allocation.  0; -EINVAL for a NULL argument; -ENOENT if addr is in
 * neither; -EAGAIN if the library was updating its view records in the
 * thread the handler interrupted (ask again outside the handler).  A view
 * the process moves or unmaps behind the library's back (mremap(),
 * munmap()) is found where it is once the library has applied the kernel's
 * notice of it, a moment after the process's call returns: a lookup in
 * that moment may still answer from its old place.
 */
GMEM_API int gmem_addr_offset(struct gmem *g, const void *addr, uint64_t *offset, int *kind);

/*
 * A snapshot of the counters (reserved zeroed); st is zeroed for a NULL g.
 * A non-zero `warnings` means a step the library holds cannot fail did (a
 * bug: it logged where, once, to stderr, and the call took its error path).
 */
GMEM_API void gmem_get_stats(struct gmem *g, struct gmem_stats *st);

/* The library's version, encoded as GMEM_VERSION is: compare the two. */
GMEM_API unsigned int gmem_version(void);

#ifdef __cplusplus
}
#endif

#endif /* GMEM_H */
