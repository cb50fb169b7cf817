// SPDX-License-Identifier: MIT
/*
 * device.c - the VM's device list and the hooks generic code calls on it.
 */
#include "device.h"

void vm_device_add(struct vm *vm, struct vm_device *dev)
{
	struct vm_device **p = &vm->devices;

	while (*p)
		p = &(*p)->next;
	dev->next = NULL;
	*p = dev;
}

void vm_device_remove(struct vm *vm, struct vm_device *dev)
{
	for (struct vm_device **p = &vm->devices; *p; p = &(*p)->next) {
		if (*p == dev) {
			*p = dev->next;
			dev->next = NULL;
			return;
		}
	}
}

void vm_devices_sync(struct vm *vm)
{
	for (struct vm_device *d = vm->devices; d; d = d->next)
		if (d->ops->sync)
			d->ops->sync(d->dev);
}

void vm_devices_cancel(struct vm *vm)
{
	for (struct vm_device *d = vm->devices; d; d = d->next)
		if (d->ops->cancel)
			d->ops->cancel(d->dev);
}
