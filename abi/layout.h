/* SPDX-License-Identifier: MIT */
/*
 * layout.h - the boot protocol's fixed addresses, shared by gmem-vmm and
 * the guest runtime (docs/BOOT.md says the same in prose).
 *
 * Guest-physical memory:
 *   [0, LOW_RAM_END)          RAM (at most 3 GiB of it)
 *   [MMIO_BASE, +MMIO_SIZE)   virtio-mmio devices, one per VIRTIO_MMIO_STRIDE
 *   [4 GiB, 4 GiB + rest)     the rest of RAM, when there is more than 3 GiB
 * In low RAM the VMM places the GDT and the identity page tables below
 * 1 MiB, and each vCPU's 64 KiB stack at the top: vCPU i's stack is
 * [low_end - (i + 1) * 64 KiB, low_end - i * 64 KiB).  Programs load at or
 * above 1 MiB, below the stacks.
 */
#ifndef GMEM_ABI_LAYOUT_H
#define GMEM_ABI_LAYOUT_H

#define BOOT_GDT 0x1000ULL
#define BOOT_PML4 0x2000ULL
#define BOOT_PDPT 0x3000ULL
#define BOOT_PD 0x4000ULL /* one page of 2 MiB entries per GiB mapped */
#define BOOT_TABLES_END 0x100000ULL
#define BOOT_LOAD_MIN 0x100000ULL /* programs load at or above this */

#define LOW_RAM_MAX 0xc0000000ULL /* 3 GiB */
#define HIGH_RAM_BASE 0x100000000ULL /* 4 GiB */
#define MMIO_BASE 0xd0000000ULL
#define MMIO_SIZE 0x10000000ULL
#define VIRTIO_MMIO_STRIDE 0x1000ULL
#define VIRTIO_BLK_MMIO (MMIO_BASE) /* the first device: virtio-blk */

#define STACK_SIZE 0x10000ULL

/* Port I/O */
#define PORT_SERIAL 0x3f8  /* out: a byte to the console */
#define PORT_SERIAL_LSR 0x3fd /* in: line status, transmitter always empty */
#define PORT_EXIT 0x501    /* out: end the VM with this status */
/* in (32-bit): dirty-tracking rounds collected so far; all ones while gmem-vmm tracks nothing */
#define PORT_DIRTY_ROUNDS 0x502
/* in (32-bit): 1 once the VM came into this process from elsewhere (a restore, a migration) */
#define PORT_MOVED 0x503
/* out: the vCPU idles a millisecond in the VMM (no interrupts here to wait for with hlt) */
#define PORT_IDLE 0x504
#define PORT_HYPERCALL 0xf1 /* out: RAX = nr, RBX, RCX, RDX = args; result in RAX */

/* The conversion hypercall: KVM_HC_MAP_GPA_RANGE's number and meaning */
#define HC_MAP_GPA_RANGE 12
#define HC_MAP_GPA_RANGE_PAGE_SZ_MASK 0xfULL /* size hint: 0 4K, 1 2M, 2 1G */
#define HC_MAP_GPA_RANGE_ENCRYPTED (1ULL << 4) /* set: private; clear: shared */

#endif /* GMEM_ABI_LAYOUT_H */
