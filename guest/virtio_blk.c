// SPDX-License-Identifier: MIT
/*
 * virtio_blk.c - the guest's polling virtio-blk driver over virtio-mmio.
 */
#include "virtio_blk.h"

#define QSIZE 64 /* a power of two holding every slot's three descriptors */
_Static_assert(3 * VBLK_SLOTS <= QSIZE, "slots outgrow the queue");

static uint32_t reg_read(struct vblk *d, uint32_t off)
{
	return d->mmio[off / 4];
}

static void reg_write(struct vblk *d, uint32_t off, uint32_t v)
{
	d->mmio[off / 4] = v;
}

static void set_addr(struct vblk *d, uint32_t low, void *p)
{
	reg_write(d, low, (uint32_t)(uintptr_t)p);
	reg_write(d, low + 4, (uint32_t)((uintptr_t)p >> 32));
}

int vblk_init(struct vblk *d, uint64_t mmio_base)
{
	char *mem;
	uint32_t max;

	memset(d, 0, sizeof(*d));
	d->mmio = (volatile uint32_t *)(uintptr_t)mmio_base;
	if (reg_read(d, VIRTIO_MMIO_MAGIC) != VIRTIO_MMIO_MAGIC_VALUE ||
	    reg_read(d, VIRTIO_MMIO_VERSION) != 2 ||
	    reg_read(d, VIRTIO_MMIO_DEVICE_ID) != VIRTIO_ID_BLOCK) {
		printf("vblk: no virtio-blk device at %p\n", (void *)d->mmio);
		return -1;
	}
	reg_write(d, VIRTIO_MMIO_STATUS, 0);
	reg_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	reg_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	reg_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	if (!(reg_read(d, VIRTIO_MMIO_DEVICE_FEATURES) & (1u << (VIRTIO_F_VERSION_1 - 32)))) {
		printf("vblk: device is not virtio 1.x\n");
		return -1;
	}
	reg_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	reg_write(d, VIRTIO_MMIO_DRIVER_FEATURES, 1u << (VIRTIO_F_VERSION_1 - 32));
	reg_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	reg_write(d, VIRTIO_MMIO_DRIVER_FEATURES, 1u << VIRTIO_BLK_F_FLUSH);
	reg_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
						 VIRTIO_STATUS_FEATURES_OK);
	if (!(reg_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK)) {
		printf("vblk: features refused\n");
		return -1;
	}

	/* The rings and the slots live in memory the host may touch. */
	mem = alloc_pages(2);
	if (share(mem, 2 * PAGE_SIZE, NULL)) {
		printf("vblk: cannot share the ring pages\n");
		return -1;
	}
	memset(mem, 0, 2 * PAGE_SIZE);
	reg_write(d, VIRTIO_MMIO_QUEUE_SEL, 0);
	max = reg_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
	if (max < QSIZE) {
		printf("vblk: queue of %u, need %u\n", max, QSIZE);
		return -1;
	}
	d->qsize = QSIZE;
	d->desc = (struct vring_desc *)mem;           /* QSIZE * 16 bytes */
	d->avail = (struct vring_avail *)(mem + 1024); /* 6 + QSIZE * 2 */
	d->used = (struct vring_used *)(mem + 2048);   /* 6 + QSIZE * 8 */
	d->slot = (struct vblk_slot *)(mem + PAGE_SIZE);
	reg_write(d, VIRTIO_MMIO_QUEUE_NUM, d->qsize);
	set_addr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, d->desc);
	set_addr(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, d->avail);
	set_addr(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, d->used);
	reg_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
	reg_write(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
						 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	if (reg_read(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET) {
		printf("vblk: device refused the queue\n");
		return -1;
	}
	d->capacity = (uint64_t)reg_read(d, VIRTIO_MMIO_CONFIG) |
		      (uint64_t)reg_read(d, VIRTIO_MMIO_CONFIG + 4) << 32;
	return 0;
}

void vblk_submit(struct vblk *d, int s, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	struct vblk_slot *sl = &d->slot[s];
	uint16_t first = (uint16_t)(3 * s), n = first;

	sl->hdr = (struct virtio_blk_req_hdr){ type, 0, sector };
	sl->status = 0xff;
	d->done[s] = 0;
	d->desc[n] = (struct vring_desc){ (uintptr_t)&sl->hdr, sizeof(sl->hdr), VRING_DESC_F_NEXT,
					  (uint16_t)(n + 1) };
	n++;
	if (len) {
		d->desc[n] = (struct vring_desc){ (uintptr_t)buf, len,
						  VRING_DESC_F_NEXT |
							  (type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0),
						  (uint16_t)(n + 1) };
		n++;
	}
	d->desc[n] = (struct vring_desc){ (uintptr_t)&sl->status, 1, VRING_DESC_F_WRITE, 0 };
	spin_lock(&d->lock);
	d->avail->ring[d->avail_idx % d->qsize] = first;
	d->avail_idx++;
	__atomic_store_n(&d->avail->idx, d->avail_idx, __ATOMIC_RELEASE);
	d->requests++;
	d->bytes += len;
	spin_unlock(&d->lock);
	reg_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

int vblk_wait(struct vblk *d, int s)
{
	for (unsigned int spins = 0; !d->done[s]; spins++) {
		spin_lock(&d->lock);
		while (__atomic_load_n(&d->used->idx, __ATOMIC_ACQUIRE) != d->used_idx) {
			uint32_t id = d->used->ring[d->used_idx % d->qsize].id;

			if (id % 3 == 0 && id / 3 < VBLK_SLOTS)
				d->done[id / 3] = 1;
			d->used_idx++;
		}
		spin_unlock(&d->lock);
		if (spins % 16 == 15) {
			/* a while without completion: poll the device, ack what it says */
			uint32_t isr = reg_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);

			if (isr)
				reg_write(d, VIRTIO_MMIO_INTERRUPT_ACK, isr);
		}
		cpu_relax();
	}
	return d->slot[s].status;
}

int vblk_rw(struct vblk *d, int s, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	vblk_submit(d, s, type, sector, buf, len);
	return vblk_wait(d, s);
}
