/* SPDX-License-Identifier: MIT */
/*
 * virtio_mmio.h - the virtio-mmio transport (virtio 1.x, version 2 layout)
 * with split virtqueues, for devices that poll: no interrupts are raised;
 * drivers watch the used ring.
 *
 * While a queue is ready its three rings are long-term pinned: the device
 * may read them at any time, so the guest cannot make them private (its
 * conversion fails with -EBUSY) until it resets the device.  Not with
 * copy_io (hugetlbfs): there a long-term pin would refuse every conversion
 * in the rings' huge page, the guest's private pages beside them included.
 * The rings are then read and written with gpa_read()/gpa_write() at each
 * access, and a ring the guest made private is a driver error: the device
 * sets NEEDS_RESET and takes nothing more until the driver resets it.
 */
#ifndef GMEM_VMM_VIRTIO_MMIO_H
#define GMEM_VMM_VIRTIO_MMIO_H

#include "virtio.h"
#include "vm.h"

struct virtq {
	uint32_t num;
	bool ready;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* while ready, without copy_io: the rings through the device view, and their pins */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	struct gpa_pin pins[3];
	uint16_t last_avail; /* the next available entry to take */
	uint16_t used_idx;
};

struct virtio_dev_ops {
	uint32_t device_id;
	uint64_t features;
	uint32_t queue_max;
	uint64_t (*config_read)(void *dev, uint64_t off, unsigned int len);
	void (*notify)(void *dev, struct virtq *q); /* transport lock held */
	void (*reset)(void *dev);                   /* transport lock not held */
};

struct virtio_mmio {
	struct vm *vm;
	const struct virtio_dev_ops *ops;
	void *dev;
	pthread_mutex_t mu; /* guards everything below, and the queue's rings */
	pthread_cond_t used_cv; /* with mu: signalled when a chain is returned */
	uint32_t status, dev_features_sel, drv_features_sel, queue_sel, interrupt_status;
	uint64_t driver_features;
	struct virtq q;
};

extern const struct mmio_ops virtio_mmio_ops;

void virtio_mmio_init(struct virtio_mmio *t, struct vm *vm, const struct virtio_dev_ops *ops,
		      void *dev);
void virtio_mmio_fini(struct virtio_mmio *t);

/*
 * The rings of the ready queue, transport lock held: through the view, or
 * copied (copy_io).  false when a ring cannot be reached (copy_io: the
 * guest made a ring page private): the device then has NEEDS_RESET set.
 */
bool virtq_avail_idx(struct virtio_mmio *t, uint16_t *idx);
bool virtq_avail_ring(struct virtio_mmio *t, uint16_t i, uint16_t *head); /* entry i % num */
bool virtq_desc(struct virtio_mmio *t, uint16_t i, struct vring_desc *d); /* i < num */
/* Set used->flags; `fence`: a full barrier after it, before the rings are read again. */
bool virtq_set_used_flags(struct virtio_mmio *t, uint16_t flags, bool fence);

/*
 * A snapshot's view of the transport (snapshot.h's struct snapv_vblk):
 * its registers and the queue's, taken while the device has nothing in
 * flight; restore puts them back on a new transport, pinning the rings of
 * a ready queue again (copy_io: nothing to pin).  restore: 0, or -EINVAL
 * when the rings cannot be taken up (not shared RAM).
 */
struct snapv_vblk;
void virtio_mmio_save(struct virtio_mmio *t, struct snapv_vblk *s);
int virtio_mmio_restore(struct virtio_mmio *t, const struct snapv_vblk *s);

/* Return a finished chain to the driver (takes the transport lock; _locked: held). */
void virtq_push_used(struct virtio_mmio *t, uint16_t head, uint32_t len);
void virtq_push_used_locked(struct virtio_mmio *t, uint16_t head, uint32_t len);

#endif /* GMEM_VMM_VIRTIO_MMIO_H */
