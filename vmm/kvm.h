/* SPDX-License-Identifier: MIT */
/*
 * kvm.h - the VM and vCPUs as KVM sees them, and the boot state.
 */
#ifndef GMEM_VMM_KVM_H
#define GMEM_VMM_KVM_H

#include "vm.h"

/*
 * Each create or map below is whole or undone: 0, or -errno with a message
 * printed and nothing left to release.
 */

/* Open /dev/kvm and create a VM of the default type. */
int kvm_create(struct vm *vm);
/*
 * One memslot per RAM region, backed by the gmem guest mapping; they go with
 * the VM.  Each region's slot number goes to its `slot`.
 */
int kvm_map_ram(struct vm *vm);

/*
 * KVM's dirty log (KVM_MEM_LOG_DIRTY_PAGES) on every RAM memslot, or off:
 * 0 or -errno, with nothing printed.  Turning it on is whole or undone;
 * turning it off tries every slot and returns the first error.
 */
int kvm_dirty_log(struct vm *vm, bool on);
/*
 * KVM_GET_DIRTY_LOG of RAM region r's memslot: bit i of bitmap (r->size /
 * 4 KiB bits, rounded up to 64) set when the guest - or KVM on its behalf -
 * wrote the page at r->gpa + i * 4 KiB since the last call; KVM clears
 * the log and write-protects those pages again in the same call.  0 or
 * -errno.
 */
int kvm_dirty_log_get(struct vm *vm, const struct region *r, uint64_t *bitmap);
/* Create the vCPUs, each in 64-bit mode at entry with the boot protocol's registers. */
int kvm_create_vcpus(struct vm *vm, uint64_t entry);
void kvm_destroy_vcpus(struct vm *vm);
void kvm_destroy(struct vm *vm);

/*
 * KVM's own count of the VM's guest mappings by page size (x86's VM stats
 * pages_4k, pages_2m, pages_1g, in that order), read from its binary
 * statistics (KVM_GET_STATS_FD): -1 for each that KVM does not report.
 */
void kvm_page_stats(struct vm *vm, int64_t pages[3]);

/*
 * Build the GDT and identity page tables in buf, which stands for guest
 * RAM [BOOT_GDT, BOOT_TABLES_END) and is zeroed: the loader writes it.
 */
void boot_tables_build(const struct vm *vm, void *buf);
/* Bytes of low RAM the boot tables and stacks take: [0, 1 MiB) and the top. */
uint64_t boot_stacks_base(const struct vm *vm);

#endif /* GMEM_VMM_KVM_H */
