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

/*
 * For a snapshot: take nothing more from the ring and wait until every
 * request taken has completed (its chain returned, its pins dropped), so
 * that the ring's indices say all; resume takes up the ring again.  Call
 * with the vCPUs paused, so that no notify comes meanwhile.
 */
void vblk_pause(struct vblk_dev *d);
void vblk_resume(struct vblk_dev *d);
/* The paused device's state, and the disk's descriptor (to copy or sync it). */
void vblk_save(struct vblk_dev *d, struct snapv_vblk *s);
int vblk_disk_fd(struct vblk_dev *d);
/*
 * Before the vCPUs start: the device as saved (registers, the queue, the
 * counters so far): 0, or -EINVAL when the saved rings cannot be taken up.
 */
int vblk_restore(struct vblk_dev *d, const struct snapv_vblk *s);

/* Cancel, wait for the request in progress, and free; st (if set): the final counters. */
void vblk_destroy(struct vblk_dev *d, struct vblk_stats *st);

#endif /* GMEM_VMM_VIRTIO_BLK_H */
