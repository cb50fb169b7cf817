/* SPDX-License-Identifier: MIT */
/*
 * compat.h - kernel ABI values newer than Debian 12's 6.1 uapi headers.
 *
 * The one place such values live; each says which kernel added it.  The
 * values are ABI: they never change once a kernel ships them.  It sits in
 * src/, not src/os/, because view.c marks and zaps views itself (guards,
 * MADV_DONTNEED_LOCKED), beside the OS edge that uses the rest.
 */
#ifndef GMEM_COMPAT_H
#define GMEM_COMPAT_H

#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/userfaultfd.h>
#include <sys/mman.h>

/* memfd_create(2) hugetlb page sizes, Linux 4.14 (in <linux/memfd.h>, which
 * clashes with glibc's <sys/mman.h>; glibc 2.36 does not define them) */
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21U << 26)
#define MFD_HUGE_1GB (30U << 26)
#endif

/* madvise(2) */
#ifndef MADV_DONTNEED_LOCKED
#define MADV_DONTNEED_LOCKED 24 /* Linux 5.18: MADV_DONTNEED that also zaps mlock()ed pages */
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 (glibc 2.36 lacks it) */
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 (file-backed mappings since 6.15) */
#define MADV_GUARD_REMOVE 103
#endif

/* userfaultfd: UFFDIO_POISON, Linux 6.6 */
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON 0x08
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

/* userfaultfd: UFFDIO_MOVE, Linux 6.8 (gmem uses it only to ask whether
 * mappings are changing: it answers EAGAIN then, before looking at them) */
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE 0x05
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

/* /dev/userfaultfd, Linux 6.1 (the header has it; kept for older ones) */
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC 0xAA
#define USERFAULTFD_IOC_NEW _IO(USERFAULTFD_IOC, 0x00)
#endif

/* userfaultfd write-protect: unpopulated entries (Linux 6.4), asynchronous (6.7) */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1) /* Linux 6.4 */
#endif

/* /proc/PID/pagemap PAGEMAP_SCAN ioctl, Linux 6.7 */
#ifndef PAGEMAP_SCAN
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4) /* a swap entry or a marker */
#define PAGE_IS_HUGE (1 << 6) /* a PMD or PUD entry (hugetlb: every entry, present or not) */
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};
struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif

/* /proc/PID/maps PROCMAP_QUERY ioctl, Linux 6.11 */
#ifndef PROCMAP_QUERY
struct procmap_query {
	__u64 size;
	__u64 query_flags;
	__u64 query_addr;
	__u64 vma_start;
	__u64 vma_end;
	__u64 vma_flags;
	__u64 vma_page_size;
	__u64 vma_offset;
	__u64 inode;
	__u32 dev_major;
	__u32 dev_minor;
	__u32 vma_name_size;
	__u32 build_id_size;
	__u64 vma_name_addr;
	__u64 build_id_addr;
};
#define PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#define PROCMAP_QUERY_VMA_SHARED 0x08
#endif

#endif /* GMEM_COMPAT_H */
