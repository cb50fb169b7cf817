/* SPDX-License-Identifier: MIT */
/*
 * virtio_blk.h - a virtio-blk device backed by a disk image file.
 */
#ifndef GMEM_VMM_VIRTIO_BLK_H
#define GMEM_VMM_VIRTIO_BLK_H

#include "virtio_mmio.h"

struct vblk_dev;

struct vblk_stats {
	uint64_t requests;  /* executed, whatever their status */
	uint64_t bytes_read, bytes_written, errors;
	uint64_t no_status; /* returned unexecuted: the status byte was unreachable */
	uint64_t cancelled; /* dropped unexecuted: queued when the VM ended */
};

/*
 * Open the image at path (NULL: a temporary 64 MiB image), place the
 * device at gpa and add it to the VM's devices.  latency_ms delays every
 * request while its buffers are pinned (a slow disk, for testing).  0 and
 * the device in *out, or -errno with a message printed.
 */
int vblk_create(struct vm *vm, const char *path, uint64_t gpa, unsigned int latency_ms,
		struct vblk_dev **out);

/* Cancel, wait for the request in progress, and free; st (if set): the final counters. */
void vblk_destroy(struct vblk_dev *d, struct vblk_stats *st);

#endif /* GMEM_VMM_VIRTIO_BLK_H */
