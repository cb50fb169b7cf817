// SPDX-License-Identifier: MIT
/*
 * hypercall.c - the guest's conversion hypercall.
 *
 * KVM_HC_MAP_GPA_RANGE's number (12) and meaning, as SEV and TDX guests
 * use it, carried by port I/O because this KVM cannot take vmcall: the
 * guest executes `outb %al, $0xf1` with RAX = 12, RBX = gpa, RCX = number
 * of 4 KiB pages, RDX = attributes (bits 0-3 a page-size hint, bit 4 set:
 * private, clear: shared); the result goes back in RAX.  Every argument is
 * checked here: the guest is not trusted.
 */
#include <errno.h>
#include <sched.h>
#include <sys/ioctl.h>

#include "device.h"
#include "vcpu.h"

long map_gpa_range(struct vm *vm, uint64_t gpa, uint64_t npages, uint64_t attrs)
{
	bool private = attrs & HC_MAP_GPA_RANGE_ENCRYPTED;
	uint64_t off;
	long r;

	if (!npages || gpa % GMEM_PAGE_SIZE || npages > UINT64_MAX / GMEM_PAGE_SIZE ||
	    (attrs & ~(HC_MAP_GPA_RANGE_PAGE_SZ_MASK | HC_MAP_GPA_RANGE_ENCRYPTED)) ||
	    (attrs & HC_MAP_GPA_RANGE_PAGE_SZ_MASK) > 2 ||
	    gpa_ram_offset(&vm->map, gpa, npages * GMEM_PAGE_SIZE, &off)) {
		atomic_fetch_add(&vm->n.hc_einval, 1);
		return -EINVAL; /* zero pages, unaligned, overflowing, or not all RAM */
	}
	if (private)
		vm_devices_sync(vm); /* I/O already published is in flight: pin it first */
	r = gmem_convert(vm->mem, off, npages * GMEM_PAGE_SIZE,
			 private ? GMEM_PRIVATE : GMEM_SHARED, 0, NULL);
	if (r == -EAGAIN) {
		/* the guest retries at once: let the I/O holding the pin run first */
		sched_yield();
		atomic_fetch_add(&vm->n.hc_eagain, 1);
	} else if (r) {
		atomic_fetch_add(&vm->n.hc_other_errors, 1);
	} else {
		atomic_fetch_add(private ? &vm->n.hc_to_private : &vm->n.hc_to_shared, 1);
		atomic_fetch_add(&vm->n.hc_pages, npages);
	}
	return r;
}

void hypercall(struct vcpu *v)
{
	struct kvm_regs regs, *r = &v->run->s.regs.regs;

	if (!v->sync_regs) {
		if (ioctl(v->fd, KVM_GET_REGS, &regs)) {
			vm_end(v->vm, 1, "vCPU %d: KVM_GET_REGS failed", v->index);
			return;
		}
		r = &regs;
	}
	atomic_fetch_add(&v->vm->n.hypercalls, 1);
	if (r->rax == HC_MAP_GPA_RANGE)
		r->rax = (uint64_t)map_gpa_range(v->vm, r->rbx, r->rcx, r->rdx);
	else
		r->rax = (uint64_t)-ENOSYS;
	if (v->sync_regs)
		v->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS;
	else if (ioctl(v->fd, KVM_SET_REGS, &regs))
		vm_end(v->vm, 1, "vCPU %d: KVM_SET_REGS failed", v->index);
}
