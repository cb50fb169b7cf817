// SPDX-License-Identifier: MIT
/*
 * virtio_blk.c - the guest's polling virtio-blk driver over virtio-mmio.
 */
#include "virtio_blk.h"

#define QSIZE 64 /* a power of two */
#define DESCS 4  /* descriptors a slot owns: its chain head is DESCS * slot */
_Static_assert(DESCS * VBLK_SLOTS <= QSIZE, "slots outgrow the queue");

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
	/* each slot's chain is built once: a request rewrites only what changes */
	for (uint16_t i = 0; i < VBLK_SLOTS; i++) {
		struct vring_desc *c = &d->desc[DESCS * i];

		c[0] = (struct vring_desc){ (uintptr_t)&d->slot[i].hdr, sizeof(d->slot[i].hdr),
					    VRING_DESC_F_NEXT, (uint16_t)(DESCS * i + 1) };
		c[1].next = (uint16_t)(DESCS * i + 2);
		c[2] = (struct vring_desc){ (uintptr_t)&d->slot[i].status, 1, VRING_DESC_F_WRITE, 0 };
	}
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

/*
 * The hot path is short on purpose: on a software-virtualized KVM each
 * guest instruction can cost a microsecond.
 */
/* Slot s's data length (0: none). */
static uint32_t slot_len(struct vblk *d, int s)
{
	return d->desc[DESCS * s].next == DESCS * s + 1 ? d->desc[DESCS * s + 1].len : 0;
}

/*
 * Put slots first .. first + n - 1 on the available ring and tell the
 * device if it needs telling.
 */
static void publish(struct vblk *d, int first, int n, uint64_t bytes)
{
	spin_lock(&d->lock);
	for (int s = first; s < first + n; s++)
		d->avail->ring[d->avail_idx++ & (QSIZE - 1)] = (uint16_t)(DESCS * s);
	__atomic_store_n(&d->avail->idx, d->avail_idx, __ATOMIC_RELEASE);
	d->requests += (uint64_t)n;
	d->bytes += bytes;
	spin_unlock(&d->lock);
	/* publish, then look: a busy device takes new requests without a notify */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!(__atomic_load_n(&d->used->flags, __ATOMIC_RELAXED) & VRING_USED_F_NO_NOTIFY))
		reg_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

void vblk_submit(struct vblk *d, int s, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	struct vblk_slot *sl = &d->slot[s];
	struct vring_desc *data = &d->desc[DESCS * s + 1];

	sl->hdr.type = type;
	sl->hdr.sector = sector;
	sl->status = 0xff;
	d->done[s] = 0;
	data->addr = (uintptr_t)buf;
	data->len = len;
	data->flags = VRING_DESC_F_NEXT | (type == VIRTIO_BLK_T_IN ? VRING_DESC_F_WRITE : 0);
	d->desc[DESCS * s].next = (uint16_t)(DESCS * s + (len ? 1 : 2)); /* a flush has no data */
	publish(d, s, 1, len);
}

void vblk_resubmit(struct vblk *d, int s, uint64_t sector)
{
	d->slot[s].hdr.sector = sector;
	d->done[s] = 0;
	publish(d, s, 1, slot_len(d, s));
}

void vblk_resubmit_batch(struct vblk *d, int first, int n, uint64_t sector, uint64_t step)
{
	uint64_t bytes = 0;

	for (int s = first; s < first + n; s++, sector += step) {
		d->slot[s].hdr.sector = sector;
		d->done[s] = 0;
		bytes += slot_len(d, s);
	}
	publish(d, first, n, bytes);
}

/* Take the completions the device has posted (lock held). */
static void reap(struct vblk *d)
{
	uint16_t idx = __atomic_load_n(&d->used->idx, __ATOMIC_ACQUIRE);

	while (d->used_idx != idx) {
		uint32_t id = d->used->ring[d->used_idx++ & (QSIZE - 1)].id;

		if (id < QSIZE)
			d->done[id / DESCS] = 1;
	}
}

/*
 * With nothing new on the used ring, ask the device (its interrupt status):
 * the VMM lets the vCPU wait there for a completion instead of spinning.
 */
int vblk_wait(struct vblk *d, int s)
{
	while (!d->done[s]) {
		if (__atomic_load_n(&d->used->idx, __ATOMIC_ACQUIRE) != d->used_idx) {
			spin_lock(&d->lock);
			reap(d);
			spin_unlock(&d->lock);
		} else if (reg_read(d, VIRTIO_MMIO_INTERRUPT_STATUS)) {
			reg_write(d, VIRTIO_MMIO_INTERRUPT_ACK, 1);
		}
	}
	return d->slot[s].status;
}

int vblk_rw(struct vblk *d, int s, uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	vblk_submit(d, s, type, sector, buf, len);
	return vblk_wait(d, s);
}
