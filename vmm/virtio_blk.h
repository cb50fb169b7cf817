/* SPDX-License-Identifier: MIT */
/*
 * virtio_blk.h - a virtio-blk device backed by a disk image file.
 */
#ifndef GMEM_VMM_VIRTIO_BLK_H
#define GMEM_VMM_VIRTIO_BLK_H

#include "virtio_mmio.h"

struct vblk_stats {
	uint64_t requests;  /* executed, whatever their status */
	uint64_t bytes_read, bytes_written, errors;
	uint64_t no_status; /* returned unexecuted: the status byte was unreachable */
	uint64_t cancelled; /* dropped unexecuted: queued when the VM ended */
};

/*
 * Open the image at path (NULL: a temporary 64 MiB image) and place the
 * device at gpa.  latency_ms delays every request while its buffers are
 * pinned (a slow disk, for testing).  0 or -errno with a message printed.
 */
int vblk_create(struct vm *vm, const char *path, uint64_t gpa, unsigned int latency_ms);

/*
 * The VM has ended: take nothing more from the ring, drop the requests
 * queued but not started, cut the latency of the one waiting it out.
 */
void vblk_cancel(struct vm *vm);

/* Cancel, wait for the request in progress, and free; st (if set): the final counters. */
void vblk_destroy(struct vm *vm, struct vblk_stats *st);

/* Take (and pin) the requests the driver has published but not announced. */
void vblk_sync(struct vm *vm);

#endif /* GMEM_VMM_VIRTIO_BLK_H */
