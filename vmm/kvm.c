// SPDX-License-Identifier: MIT
/*
 * kvm.c - creating the VM and its vCPUs, and the state they boot in.
 *
 * No firmware: each vCPU starts in 64-bit mode at the program's entry, with
 * paging on over identity page tables the VMM wrote into RAM (2 MiB pages
 * covering RAM, the MMIO window and the hole), a flat GDT, interrupts off.
 */
#define _GNU_SOURCE
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define CR0_PE (1ULL << 0)
#define CR0_MP (1ULL << 1)
#define CR0_ET (1ULL << 4)
#define CR0_NE (1ULL << 5)
#define CR0_WP (1ULL << 16)
#define CR0_AM (1ULL << 18)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define CR4_OSFXSR (1ULL << 9)
#define CR4_OSXMMEXCPT (1ULL << 10)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)

#define PTE_P 1ULL
#define PTE_W 2ULL
#define PTE_PS (1ULL << 7)

#define GDT_CODE64 0x00af9a000000ffffULL
#define GDT_DATA 0x00cf92000000ffffULL
#define SEL_CODE 0x08
#define SEL_DATA 0x10

int kvm_create(struct vm *vm)
{
	int version, run_size, err;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		err = -errno;
		fprintf(stderr, "gmem-vmm: cannot open /dev/kvm: %s\n", strerror(-err));
		return err;
	}
	version = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (version < 0) {
		err = -errno;
		fprintf(stderr, "gmem-vmm: /dev/kvm is not KVM: %s\n", strerror(-err));
		goto err_kvm;
	}
	if (version != KVM_API_VERSION) {
		fprintf(stderr, "gmem-vmm: /dev/kvm speaks KVM API %d, gmem-vmm needs %d\n", version,
			KVM_API_VERSION);
		err = -ENOTSUP;
		goto err_kvm;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		err = -errno;
		fprintf(stderr, "gmem-vmm: KVM_CREATE_VM: %s\n", strerror(-err));
		goto err_kvm;
	}
	run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0) {
		err = run_size ? -errno : -EINVAL;
		fprintf(stderr, "gmem-vmm: KVM_GET_VCPU_MMAP_SIZE: %s\n", strerror(-err));
		goto err_vm;
	}
	vm->run_size = (size_t)run_size;
	/*
	 * Where KVM can hand a guest's vmcall to user space, take
	 * KVM_HC_MAP_GPA_RANGE that way too (KVM_EXIT_HYPERCALL); port 0xf1
	 * works everywhere.
	 */
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_HYPERCALL) & (1 << HC_MAP_GPA_RANGE)) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_HYPERCALL,
					      .args = { 1ULL << HC_MAP_GPA_RANGE } };

		ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap); /* optional: failure leaves port I/O */
	}
	return 0;

err_vm:
	close(vm->vm_fd);
	vm->vm_fd = -1;
err_kvm:
	close(vm->kvm_fd);
	vm->kvm_fd = -1;
	return err;
}

/* RAM region r's memslot, with flags: 0 or -errno. */
static int set_ram_slot(struct vm *vm, const struct region *r, uint32_t flags)
{
	void *guest;
	struct kvm_userspace_memory_region mr;

	gmem_guest_map(vm->mem, &guest);
	mr = (struct kvm_userspace_memory_region){
		.slot = r->slot,
		.flags = flags,
		.guest_phys_addr = r->gpa,
		.memory_size = r->size,
		.userspace_addr = (uintptr_t)guest + r->offset,
	};
	return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) ? -errno : 0;
}

int kvm_map_ram(struct vm *vm)
{
	for (int i = 0, slot = 0; i < vm->map.n; i++) {
		struct region *r = &vm->map.r[i];
		int err;

		if (r->kind != REGION_RAM)
			continue;
		r->slot = (uint32_t)slot++;
		err = set_ram_slot(vm, r, 0);
		if (err) {
			fprintf(stderr, "gmem-vmm: KVM_SET_USER_MEMORY_REGION: %s\n", strerror(-err));
			return err;
		}
	}
	return 0;
}

/*
 * Changing only a memslot's KVM_MEM_LOG_DIRTY_PAGES is allowed while vCPUs
 * run (KVM_MR_FLAGS_ONLY): KVM write-protects the slot's pages as logging
 * starts (and maps them 4 KiB at a time while it lasts), and lets huge
 * mappings come back as it stops.
 */
int kvm_dirty_log(struct vm *vm, bool on)
{
	int first_err = 0;

	for (int i = 0; i < vm->map.n; i++) {
		const struct region *r = &vm->map.r[i];
		int err;

		if (r->kind != REGION_RAM)
			continue;
		err = set_ram_slot(vm, r, on ? KVM_MEM_LOG_DIRTY_PAGES : 0);
		if (err && on) {
			/* whole or undone */
			while (i-- > 0)
				if (vm->map.r[i].kind == REGION_RAM)
					set_ram_slot(vm, &vm->map.r[i], 0);
			return err;
		}
		if (err && !first_err)
			first_err = err;
	}
	return first_err;
}

int kvm_dirty_log_get(struct vm *vm, const struct region *r, uint64_t *bitmap)
{
	struct kvm_dirty_log log = { .slot = r->slot, .dirty_bitmap = bitmap };

	return ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) ? -errno : 0;
}

/* The highest guest-physical address the identity map must cover. */
static uint64_t map_top(const struct vm *vm)
{
	uint64_t top = MMIO_BASE + MMIO_SIZE;

	for (int i = 0; i < vm->map.n; i++)
		if (vm->map.r[i].gpa + vm->map.r[i].size > top)
			top = vm->map.r[i].gpa + vm->map.r[i].size;
	return top;
}

void boot_tables_build(const struct vm *vm, void *buf)
{
#define AT(gpa) ((uint64_t *)((char *)buf + ((gpa) - BOOT_GDT))) /* gpa's place in buf */
	uint64_t *gdt = AT(BOOT_GDT), *pml4 = AT(BOOT_PML4), *pdpt = AT(BOOT_PDPT);
	uint64_t gibs = (map_top(vm) + (1ULL << 30) - 1) >> 30;

	gdt[1] = GDT_CODE64;
	gdt[2] = GDT_DATA;
	pml4[0] = BOOT_PDPT | PTE_P | PTE_W;
	for (uint64_t g = 0; g < gibs; g++) {
		uint64_t *pd = AT(BOOT_PD + g * 4096);

		pdpt[g] = (BOOT_PD + g * 4096) | PTE_P | PTE_W;
		for (uint64_t i = 0; i < 512; i++)
			pd[i] = ((g << 30) + (i << 21)) | PTE_P | PTE_W | PTE_PS;
	}
#undef AT
}

uint64_t boot_stacks_base(const struct vm *vm)
{
	return vm->map.r[0].size - (uint64_t)vm->ncpus * STACK_SIZE;
}

static int set_cpuid(struct vm *vm, int fd)
{
	int n = 128, err;
	struct kvm_cpuid2 *c;

	for (;;) {
		c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return -ENOMEM;
		c->nent = (uint32_t)n;
		if (!ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c))
			break;
		err = -errno;
		free(c);
		if (err != -E2BIG)
			return err;
		n *= 2;
	}
	err = ioctl(fd, KVM_SET_CPUID2, c) ? -errno : 0;
	free(c);
	return err;
}

static int setup_vcpu(struct vm *vm, struct vcpu *v, uint64_t entry)
{
	struct kvm_segment code = { .base = 0, .limit = 0xffffffff, .selector = SEL_CODE, .type = 11,
				    .present = 1, .s = 1, .l = 1, .g = 1 };
	struct kvm_segment data = { .base = 0, .limit = 0xffffffff, .selector = SEL_DATA, .type = 3,
				    .present = 1, .s = 1, .db = 1, .g = 1 };
	struct kvm_sregs sregs;
	struct kvm_regs regs = {
		.rip = entry,
		.rflags = 2, /* interrupts off */
		.rdi = (uint64_t)v->index,
		.rsi = (uint64_t)vm->ncpus,
		.rdx = vm->ram_size,
		.rsp = vm->map.r[0].size - (uint64_t)v->index * STACK_SIZE,
	};
	int err = set_cpuid(vm, v->fd);

	if (err)
		return err;
	if (ioctl(v->fd, KVM_GET_SREGS, &sregs))
		return -errno;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
	sregs.cr3 = BOOT_PML4;
	sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	sregs.efer = EFER_LME | EFER_LMA;
	sregs.cs = code;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	sregs.gdt.base = BOOT_GDT;
	sregs.gdt.limit = 3 * 8 - 1;
	if (ioctl(v->fd, KVM_SET_SREGS, &sregs) || ioctl(v->fd, KVM_SET_REGS, &regs))
		return -errno;
	/* Let the registers travel in kvm_run: a hypercall then costs no extra ioctls. */
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS) & KVM_SYNC_X86_REGS) {
		v->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
		v->sync_regs = true;
	}
	return 0;
}

/* One vCPU, whole or not at all: 0, or -errno with a message printed. */
static int create_vcpu(struct vm *vm, struct vcpu *v, uint64_t entry)
{
	int err;

	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, v->index);
	if (v->fd < 0) {
		err = -errno;
		fprintf(stderr, "gmem-vmm: KVM_CREATE_VCPU %d: %s\n", v->index, strerror(-err));
		return err;
	}
	v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		err = -errno;
		fprintf(stderr, "gmem-vmm: mmap kvm_run: %s\n", strerror(-err));
		goto err_close;
	}
	err = setup_vcpu(vm, v, entry);
	if (err) {
		fprintf(stderr, "gmem-vmm: setting up vCPU %d: %s\n", v->index, strerror(-err));
		goto err_unmap;
	}
	return 0;

err_unmap:
	munmap(v->run, vm->run_size);
err_close:
	close(v->fd);
	v->run = NULL;
	v->fd = -1;
	return err;
}

static void destroy_vcpu(struct vm *vm, struct vcpu *v)
{
	munmap(v->run, vm->run_size);
	close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

int kvm_create_vcpus(struct vm *vm, uint64_t entry)
{
	int i, err;

	for (i = 0; i < vm->ncpus; i++) {
		vm->vcpus[i].vm = vm;
		vm->vcpus[i].index = i;
		err = create_vcpu(vm, &vm->vcpus[i], entry);
		if (err)
			goto err_created;
	}
	return 0;

err_created:
	while (i-- > 0)
		destroy_vcpu(vm, &vm->vcpus[i]);
	return err;
}

void kvm_destroy_vcpus(struct vm *vm)
{
	for (int i = vm->ncpus - 1; i >= 0; i--)
		destroy_vcpu(vm, &vm->vcpus[i]);
}

void kvm_destroy(struct vm *vm)
{
	close(vm->vm_fd);
	close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
}

void kvm_page_stats(struct vm *vm, int64_t pages[3])
{
	static const char *const names[3] = { "pages_4k", "pages_2m", "pages_1g" };
	struct kvm_stats_header h;
	char *descs = NULL;
	size_t desc_size;
	int fd;

	pages[0] = pages[1] = pages[2] = -1;
	fd = ioctl(vm->vm_fd, KVM_GET_STATS_FD, NULL);
	if (fd < 0)
		return; /* a KVM older than 5.14 */
	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || !h.name_size || h.num_desc > 4096)
		goto out;
	desc_size = sizeof(struct kvm_stats_desc) + h.name_size;
	descs = malloc(desc_size * h.num_desc);
	if (!descs || pread(fd, descs, desc_size * h.num_desc, h.desc_offset) !=
			      (ssize_t)(desc_size * h.num_desc))
		goto out;
	for (uint32_t i = 0; i < h.num_desc; i++) {
		char *at = descs + i * desc_size, *name = at + sizeof(struct kvm_stats_desc);
		struct kvm_stats_desc d;

		memcpy(&d, at, sizeof(d)); /* the name's size is KVM's: no alignment promised */
		name[h.name_size - 1] = '\0';
		for (int k = 0; k < 3; k++) {
			uint64_t v;

			if (strcmp(name, names[k]) || !d.size ||
			    pread(fd, &v, sizeof(v), (off_t)h.data_offset + d.offset) != (ssize_t)sizeof(v))
				continue;
			pages[k] = (int64_t)v;
		}
	}
out:
	free(descs);
	close(fd);
}
