/* SPDX-License-Identifier: MIT */
/*
 * device.h - what the VM asks of every device, whichever it is.
 *
 * Generic code - the conversion hypercall, the VM's end - never names a
 * device: it walks the VM's device list and calls the hooks each device
 * set.  The list changes only while no vCPU runs, so walking it takes no
 * lock.
 */
#ifndef GMEM_VMM_DEVICE_H
#define GMEM_VMM_DEVICE_H

#include "vm.h"

struct vm_device_ops {
	/*
	 * Before the guest makes memory private: take in, and pin, the work
	 * the driver published without a notify, so that I/O it asked for
	 * before the conversion holds its buffers before the conversion
	 * looks at them.  Called from vCPU threads, concurrently.
	 */
	void (*sync)(void *dev);
	/*
	 * The VM is ending: take no more work and drop what is queued but not
	 * started, so that the end does not wait out the guest's backlog.
	 * Called from any thread, maybe more than once.
	 */
	void (*cancel)(void *dev);
};

struct vm_device {
	const struct vm_device_ops *ops; /* either hook may be NULL */
	void *dev;
	struct vm_device *next;
};

/* Add dev to the end of the list (sync runs in the order devices came). */
void vm_device_add(struct vm *vm, struct vm_device *dev);
void vm_device_remove(struct vm *vm, struct vm_device *dev);

void vm_devices_sync(struct vm *vm);
void vm_devices_cancel(struct vm *vm);

#endif /* GMEM_VMM_DEVICE_H */
