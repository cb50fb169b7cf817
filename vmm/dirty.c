// SPDX-License-Identifier: MIT
/*
 * dirty.c - dirty tracking for gmem-vmm: a round's written guest-physical
 * pages, from gmem's write tracking and, in DIRTY_KVM, KVM's dirty log.
 *
 * Where each writer is seen (dirty.h has the modes):
 *
 *   writer                                  DIRTY_KVM            DIRTY_GMEM
 *   the guest, KVM on its behalf            KVM's dirty log      gmem (guest mapping)
 *   devices through the device view         gmem (the view)      gmem (the view)
 *   devices copying (gmem_write()), loader  gmem (its record)    gmem (its record)
 *
 * KVM logs what goes through its own page tables, which map the memslots'
 * userspace addresses - gmem's guest mapping - and nothing else: a host
 * write to the same memory through a view or gmem_write() never reaches
 * its log.  Hence the union in DIRTY_KVM, and gmem_track_start(0) there:
 * gmem need not watch the guest mapping when KVM does.
 *
 * Both trackers clear what they report in the call that reports it: gmem's
 * collect re-protects the pages it finds written (PAGEMAP_SCAN with
 * PM_SCAN_WP_MATCHING), and KVM_GET_DIRTY_LOG - without
 * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 enabled, as here - write-protects the
 * pages it reports before it returns.  So a write racing a collect is in
 * this round or the next, and KVM_CLEAR_DIRTY_LOG is not needed.  (That
 * capability would let a VMM clear the log piece by piece after copying
 * each piece, and skip write-protecting everything as logging starts; this
 * module has no use for it.)
 *
 * A round's bitmap is indexed by guest-physical page.  The GPA map's RAM
 * regions start and end on 2 MiB boundaries, so each region's bits start
 * at a word of the bitmap: gmem_track_collect() writes them in place, and
 * KVM's log for the region's memslot is ORed in word by word.
 */
#define _GNU_SOURCE
#include "dirty.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvm.h"

/* gmem's -EAGAIN (the process moving views behind its back) is asked again this often */
#define COLLECT_TRIES 8

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

const char *dirty_mode_name(enum dirty_mode mode)
{
	return mode == DIRTY_KVM ? "kvm" : mode == DIRTY_GMEM ? "gmem" : "none";
}

int dirty_mode_parse(const char *name, enum dirty_mode *mode)
{
	if (!strcmp(name, "kvm"))
		*mode = DIRTY_KVM;
	else if (!strcmp(name, "gmem"))
		*mode = DIRTY_GMEM;
	else
		return -EINVAL;
	return 0;
}

/* A RAM region's first bit in a round's bitmap, and how many it has. */
static uint64_t region_first(const struct region *r)
{
	return r->gpa / GMEM_PAGE_SIZE;
}

static uint64_t region_pages(const struct region *r)
{
	return r->size / GMEM_PAGE_SIZE;
}

int dirty_start(struct dirty *d, struct vm *vm, enum dirty_mode mode)
{
	uint64_t top = 0, most = 0;
	int err;

	*d = (struct dirty){ .vm = vm, .mode = mode, .failed = "the GPA map" };
	for (int i = 0; i < vm->map.n; i++) {
		const struct region *r = &vm->map.r[i];

		if (r->kind != REGION_RAM)
			continue;
		if (region_first(r) % 64 || region_pages(r) % 64)
			return -EINVAL;
		if (r->gpa + r->size > top)
			top = r->gpa + r->size;
		if (region_pages(r) > most)
			most = region_pages(r);
	}
	d->pages = top / GMEM_PAGE_SIZE;
	d->failed = "calloc";
	d->log = calloc(most / 64, sizeof(uint64_t));
	if (!d->log)
		return -ENOMEM;
	d->failed = "gmem_track_start";
	err = gmem_track_start(vm->mem, mode == DIRTY_GMEM ? GMEM_TRACK_GUEST : 0);
	if (err)
		goto err_log;
	if (mode == DIRTY_KVM) {
		d->failed = "KVM_SET_USER_MEMORY_REGION with KVM_MEM_LOG_DIRTY_PAGES";
		err = kvm_dirty_log(vm, true);
		if (err)
			goto err_track;
	}
	d->on = true;
	d->failed = NULL;
	return 0;

err_track:
	gmem_track_stop(vm->mem);
err_log:
	free(d->log);
	d->log = NULL;
	return err;
}

/*
 * gmem's pages of region r into its words of the bitmap (which it
 * overwrites): how many, or -errno.
 */
static int64_t collect_gmem(struct dirty *d, const struct region *r, uint64_t *at)
{
	int64_t n = gmem_track_collect(d->vm->mem, r->offset, r->size, at, 0);

	/*
	 * -EAGAIN: gmem lost nothing, but a retry overwrites its bitmap,
	 * which holds what the first try's scans took: retry into the
	 * scratch log, and OR.
	 */
	for (int tries = 1; n == -EAGAIN && tries < COLLECT_TRIES; tries++) {
		n = gmem_track_collect(d->vm->mem, r->offset, r->size, d->log, 0);
		if (n >= 0) {
			n = 0;
			for (uint64_t w = 0; w < region_pages(r) / 64; w++) {
				at[w] |= d->log[w];
				n += __builtin_popcountll(at[w]);
			}
		}
	}
	return n;
}

int dirty_collect(struct dirty *d, uint64_t *bitmap, struct dirty_round *round)
{
	uint64_t t0 = now_ns();

	if (!d->on)
		return -EINVAL;
	*round = (struct dirty_round){ 0 };
	memset(bitmap, 0, dirty_bitmap_words(d) * sizeof(*bitmap)); /* the hole stays clear */
	for (int i = 0; i < d->vm->map.n; i++) {
		const struct region *r = &d->vm->map.r[i];
		uint64_t *at = bitmap + region_first(r) / 64, t1, t2;
		int64_t n;

		if (r->kind != REGION_RAM)
			continue;
		t1 = now_ns();
		n = collect_gmem(d, r, at);
		t2 = now_ns();
		round->gmem_ns += t2 - t1;
		if (n < 0) {
			d->failed = "gmem_track_collect";
			return (int)n;
		}
		round->gmem_pages += (uint64_t)n;
		if (d->mode != DIRTY_KVM)
			continue;
		n = kvm_dirty_log_get(d->vm, r, d->log);
		round->kvm_ns += now_ns() - t2;
		if (n < 0) {
			d->failed = "KVM_GET_DIRTY_LOG";
			return (int)n;
		}
		for (uint64_t w = 0; w < region_pages(r) / 64; w++) {
			round->kvm_pages += (uint64_t)__builtin_popcountll(d->log[w]);
			at[w] |= d->log[w];
		}
	}
	for (uint64_t w = 0; w < dirty_bitmap_words(d); w++)
		round->pages += (uint64_t)__builtin_popcountll(bitmap[w]);
	round->ns = now_ns() - t0;
	return 0;
}

int dirty_stop(struct dirty *d)
{
	int err = 0, e;

	if (!d->on)
		return 0;
	if (d->mode == DIRTY_KVM)
		err = kvm_dirty_log(d->vm, false);
	e = gmem_track_stop(d->vm->mem);
	if (!err)
		err = e;
	free(d->log);
	d->log = NULL;
	d->on = false;
	return err;
}

int dirty_rehuge(struct vm *vm, uint64_t *busy)
{
	uint64_t block = gmem_backing_page_size(vm->mem);

	*busy = 0;
	if (vm->backing != GMEM_BACKING_THP)
		return 0; /* shmem has no huge pages; hugetlbfs never splits */
	/*
	 * A block at a time: gmem_collapse() of a range merges nothing when a
	 * pin holds any page of it, and the devices' pins must not keep the
	 * other blocks split.
	 */
	for (int i = 0; i < vm->map.n; i++) {
		const struct region *r = &vm->map.r[i];

		if (r->kind != REGION_RAM)
			continue;
		for (uint64_t off = r->offset; off < r->offset + r->size; off += block) {
			int err = gmem_collapse(vm->mem, off, block, NULL);

			if (err == -EAGAIN)
				(*busy)++;
			else if (err)
				return err;
		}
	}
	return 0;
}
