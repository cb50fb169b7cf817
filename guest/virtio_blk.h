/* SPDX-License-Identifier: MIT */
/*
 * virtio_blk.h - the guest's polling virtio-blk driver.
 *
 * Requests go through slots: each slot owns three descriptors, a request
 * header and a status byte, in pages the driver shares with the host at
 * init (with the rings).  A caller uses one slot at a time (vCPU i can use
 * slot i), so several vCPUs may have requests in flight at once.  Data
 * buffers are the caller's and must be shared: a private buffer fails its
 * request with VIRTIO_BLK_S_IOERR.
 */
#ifndef GMEM_GUEST_VIRTIO_BLK_H
#define GMEM_GUEST_VIRTIO_BLK_H

#include "rt.h"
#include "virtio.h"

#define VBLK_SLOTS 16

struct vblk_slot {
	struct virtio_blk_req_hdr hdr;
	volatile uint8_t status;
	uint8_t pad[7];
};

struct vblk {
	volatile uint32_t *mmio;
	uint16_t qsize;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	struct vblk_slot *slot;
	volatile uint8_t done[VBLK_SLOTS];
	uint16_t avail_idx, used_idx; /* under lock */
	spinlock_t lock;
	uint64_t capacity; /* sectors */
	uint64_t requests, bytes; /* under lock */
};

/* 0, or -1 with a message if the device is absent or refuses the driver. */
int vblk_init(struct vblk *d, uint64_t mmio_base);

/* Start a request in slot s (< VBLK_SLOTS); buf/len may be 0 for a flush. */
void vblk_submit(struct vblk *d, int s, uint32_t type, uint64_t sector, void *buf, uint32_t len);

/*
 * Issue slot s's last request again at another sector, same type and
 * buffer: the short path for streaming I/O (its slot must be complete).
 */
void vblk_resubmit(struct vblk *d, int s, uint64_t sector);

/*
 * The same for slots first .. first + n - 1 at sector, sector + step, ...,
 * published together: one ring update and at most one notify.
 */
void vblk_resubmit_batch(struct vblk *d, int first, int n, uint64_t sector, uint64_t step);

/* Poll for slot s's completion; the request's VIRTIO_BLK_S_* status. */
int vblk_wait(struct vblk *d, int s);

/* submit + wait */
int vblk_rw(struct vblk *d, int s, uint32_t type, uint64_t sector, void *buf, uint32_t len);

#endif /* GMEM_GUEST_VIRTIO_BLK_H */
