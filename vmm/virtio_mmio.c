// SPDX-License-Identifier: MIT
/*
 * virtio_mmio.c - the virtio-mmio transport and split virtqueues.
 */
#include "virtio_mmio.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "snapshot.h"

#define VENDOR_ID 0x6d656d67 /* "gmem" */
#define ISR_WAIT_NS 200000L

static void queue_release(struct virtio_mmio *t)
{
	struct virtq *q = &t->q;

	for (int i = 0; i < 3; i++)
		gpa_unpin(t->vm, &q->pins[i]);
	q->ready = false;
	q->desc = NULL;
	q->avail = NULL;
	q->used = NULL;
}

/* Whether the copy path can read all of RAM [gpa, gpa + len): in RAM and shared. */
static bool ring_readable(struct virtio_mmio *t, uint64_t gpa, uint64_t len)
{
	char buf[16 * 256]; /* the largest ring: a descriptor table of queue_max entries */

	return len <= sizeof(buf) && !gpa_read(t->vm, gpa, buf, len);
}

/* The rings of the queue, pinned long-term (not with copy_io); false if they cannot be. */
/* 0, or gpa_pin()'s error (-EACCES: a ring in private RAM) with nothing pinned. */
static int queue_pin(struct virtio_mmio *t)
{
	struct virtq *q = &t->q;
	const uint64_t n = q->num;
	void *desc, *avail, *used;
	int err;

	if ((err = gpa_pin(t->vm, q->desc_gpa, 16 * n, true, &q->pins[0], &desc)) ||
	    (err = gpa_pin(t->vm, q->avail_gpa, 6 + 2 * n, true, &q->pins[1], &avail)) ||
	    (err = gpa_pin(t->vm, q->used_gpa, 6 + 8 * n, true, &q->pins[2], &used))) {
		queue_release(t);
		return err;
	}
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	return 0;
}

/*
 * Take up the rings of a queue the driver marked ready - pinned long-term,
 * or with copy_io checked to be shared RAM now; false if it cannot be used.
 */
static bool queue_enable(struct virtio_mmio *t)
{
	struct virtq *q = &t->q;
	const uint64_t n = q->num;

	if (!n || n > t->ops->queue_max || (n & (n - 1)) || q->desc_gpa % 16 || q->avail_gpa % 2 ||
	    q->used_gpa % 4)
		return false;
	if (t->vm->copy_io) {
		if (!ring_readable(t, q->desc_gpa, 16 * n) || !ring_readable(t, q->avail_gpa, 6 + 2 * n) ||
		    !ring_readable(t, q->used_gpa, 6 + 8 * n))
			return false;
	} else if (queue_pin(t)) {
		return false;
	}
	q->last_avail = 0;
	q->used_idx = 0;
	q->ready = true;
	return true;
}

static void device_reset(struct virtio_mmio *t)
{
	t->ops->reset(t->dev); /* drains requests in flight first */
	pthread_mutex_lock(&t->mu);
	queue_release(t);
	memset(&t->q, 0, sizeof(t->q));
	t->status = t->dev_features_sel = t->drv_features_sel = t->queue_sel = 0;
	t->interrupt_status = 0;
	t->driver_features = 0;
	pthread_mutex_unlock(&t->mu);
}

static uint64_t mmio_read(void *opaque, uint64_t off, unsigned int len)
{
	struct virtio_mmio *t = opaque;
	uint64_t v = 0;

	if (off >= VIRTIO_MMIO_CONFIG)
		return t->ops->config_read(t->dev, off - VIRTIO_MMIO_CONFIG, len);
	if (len != 4)
		return 0; /* registers are 32-bit */
	pthread_mutex_lock(&t->mu);
	switch (off) {
	case VIRTIO_MMIO_MAGIC:
		v = VIRTIO_MMIO_MAGIC_VALUE;
		break;
	case VIRTIO_MMIO_VERSION:
		v = 2;
		break;
	case VIRTIO_MMIO_DEVICE_ID:
		v = t->ops->device_id;
		break;
	case VIRTIO_MMIO_VENDOR_ID:
		v = VENDOR_ID;
		break;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		v = t->dev_features_sel > 1 ? 0 : (uint32_t)(t->ops->features >> (32 * t->dev_features_sel));
		break;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		v = t->queue_sel == 0 ? t->ops->queue_max : 0;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		v = t->queue_sel == 0 && t->q.ready;
		break;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		/*
		 * No interrupts here: a driver waiting for completions polls
		 * this register.  Finding nothing, it would ask again at once:
		 * rather let its vCPU sleep until the device returns a chain
		 * (bounded), so that a waiting guest leaves the host CPU to the
		 * device (halt-polling, from the host's side).
		 */
		if (!t->interrupt_status && t->q.ready) {
			struct timespec deadline;

			clock_gettime(CLOCK_MONOTONIC, &deadline);
			deadline.tv_nsec += ISR_WAIT_NS;
			if (deadline.tv_nsec >= 1000000000L) {
				deadline.tv_sec++;
				deadline.tv_nsec -= 1000000000L;
			}
			while (!t->interrupt_status && !atomic_load(&t->vm->stopping) &&
			       pthread_cond_timedwait(&t->used_cv, &t->mu, &deadline) == 0)
				;
		}
		v = t->interrupt_status;
		break;
	case VIRTIO_MMIO_STATUS:
		v = t->status;
		break;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		v = 0;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&t->mu);
	return v;
}

static void set_addr_half(uint64_t *a, bool high, uint32_t v)
{
	*a = high ? (*a & 0xffffffffULL) | ((uint64_t)v << 32) : (*a & ~0xffffffffULL) | v;
}

static void mmio_write(void *opaque, uint64_t off, unsigned int len, uint64_t val)
{
	struct virtio_mmio *t = opaque;
	struct virtq *q = &t->q;
	uint32_t v = (uint32_t)val;

	if (len != 4 || off >= VIRTIO_MMIO_CONFIG)
		return; /* 32-bit registers; the config space is read-only */
	if (off == VIRTIO_MMIO_STATUS && v == 0) {
		device_reset(t);
		return;
	}
	pthread_mutex_lock(&t->mu);
	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		t->dev_features_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		t->drv_features_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (t->drv_features_sel < 2 && !(t->status & VIRTIO_STATUS_FEATURES_OK))
			t->driver_features = (t->driver_features &
					      ~(0xffffffffULL << (32 * t->drv_features_sel))) |
					     ((uint64_t)v << (32 * t->drv_features_sel));
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		t->queue_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (t->queue_sel == 0 && !q->ready)
			q->num = v;
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (t->queue_sel == 0 && !q->ready)
			set_addr_half(&q->desc_gpa, off == VIRTIO_MMIO_QUEUE_DESC_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
		if (t->queue_sel == 0 && !q->ready)
			set_addr_half(&q->avail_gpa, off == VIRTIO_MMIO_QUEUE_DRIVER_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		if (t->queue_sel == 0 && !q->ready)
			set_addr_half(&q->used_gpa, off == VIRTIO_MMIO_QUEUE_DEVICE_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (t->queue_sel != 0)
			break;
		if (v && !q->ready && !queue_enable(t))
			t->status |= VIRTIO_STATUS_NEEDS_RESET; /* rings not in shared RAM */
		else if (!v && q->ready)
			queue_release(t);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		if (v == 0 && q->ready && (t->status & VIRTIO_STATUS_DRIVER_OK))
			t->ops->notify(t->dev, q);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		t->interrupt_status &= ~v;
		break;
	case VIRTIO_MMIO_STATUS:
		/* FEATURES_OK sticks only for features the device offers, VERSION_1 among them */
		if ((v & VIRTIO_STATUS_FEATURES_OK) &&
		    ((t->driver_features & ~t->ops->features) ||
		     !(t->driver_features & (1ULL << VIRTIO_F_VERSION_1))))
			v &= ~VIRTIO_STATUS_FEATURES_OK;
		t->status = v | (t->status & VIRTIO_STATUS_NEEDS_RESET);
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&t->mu);
}

const struct mmio_ops virtio_mmio_ops = { .read = mmio_read, .write = mmio_write };

void virtio_mmio_init(struct virtio_mmio *t, struct vm *vm, const struct virtio_dev_ops *ops,
		      void *dev)
{
	memset(t, 0, sizeof(*t));
	t->vm = vm;
	t->ops = ops;
	t->dev = dev;
	pthread_mutex_init(&t->mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&t->used_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
}

void virtio_mmio_fini(struct virtio_mmio *t)
{
	pthread_mutex_lock(&t->mu);
	queue_release(t);
	pthread_mutex_unlock(&t->mu);
	pthread_cond_destroy(&t->used_cv);
	pthread_mutex_destroy(&t->mu);
}

void virtio_mmio_save(struct virtio_mmio *t, struct snapv_vblk *s)
{
	pthread_mutex_lock(&t->mu);
	s->status = t->status;
	s->dev_features_sel = t->dev_features_sel;
	s->drv_features_sel = t->drv_features_sel;
	s->queue_sel = t->queue_sel;
	s->interrupt_status = t->interrupt_status;
	s->driver_features = t->driver_features;
	s->num = t->q.num;
	s->ready = t->q.ready;
	s->desc_gpa = t->q.desc_gpa;
	s->avail_gpa = t->q.avail_gpa;
	s->used_gpa = t->q.used_gpa;
	s->last_avail = t->q.last_avail;
	s->used_idx = t->q.used_idx;
	pthread_mutex_unlock(&t->mu);
}

int virtio_mmio_restore(struct virtio_mmio *t, const struct snapv_vblk *s)
{
	struct virtq *q = &t->q;
	int err = 0;

	pthread_mutex_lock(&t->mu);
	t->status = s->status;
	t->dev_features_sel = s->dev_features_sel;
	t->drv_features_sel = s->drv_features_sel;
	t->queue_sel = s->queue_sel;
	t->interrupt_status = s->interrupt_status;
	t->driver_features = s->driver_features;
	q->num = s->num;
	q->desc_gpa = s->desc_gpa;
	q->avail_gpa = s->avail_gpa;
	q->used_gpa = s->used_gpa;
	q->last_avail = s->last_avail;
	q->used_idx = s->used_idx;
	if (s->ready) {
		/* as queue_enable() took it, the indices where the guest left them */
		if (!q->num || q->num > t->ops->queue_max || (q->num & (q->num - 1)))
			err = -EINVAL;
		else if (!t->vm->copy_io)
			err = queue_pin(t);
		if (!err)
			q->ready = true;
	}
	pthread_mutex_unlock(&t->mu);
	return err;
}

/* A ring the copy path could not reach: the driver made it private.  A driver error. */
static bool ring_lost(struct virtio_mmio *t)
{
	t->status |= VIRTIO_STATUS_NEEDS_RESET;
	return false;
}

bool virtq_avail_idx(struct virtio_mmio *t, uint16_t *idx)
{
	struct virtq *q = &t->q;

	if (!t->vm->copy_io) {
		*idx = __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
		return true;
	}
	/*
	 * The acquire: the ring entries are read after this, each by a system
	 * call (no compiler reordering across it), and x86 keeps loads in order.
	 */
	return !gpa_read(t->vm, q->avail_gpa + offsetof(struct vring_avail, idx), idx, 2) ||
	       ring_lost(t);
}

bool virtq_avail_ring(struct virtio_mmio *t, uint16_t i, uint16_t *head)
{
	struct virtq *q = &t->q;

	if (!t->vm->copy_io) {
		*head = q->avail->ring[i % q->num];
		return true;
	}
	return !gpa_read(t->vm, q->avail_gpa + offsetof(struct vring_avail, ring) + 2 * (i % q->num),
			 head, 2) ||
	       ring_lost(t);
}

bool virtq_desc(struct virtio_mmio *t, uint16_t i, struct vring_desc *d)
{
	struct virtq *q = &t->q;

	if (!t->vm->copy_io) {
		memcpy(d, &q->desc[i], sizeof(*d));
		return true;
	}
	return !gpa_read(t->vm, q->desc_gpa + (uint64_t)i * sizeof(*d), d, sizeof(*d)) ||
	       ring_lost(t);
}

bool virtq_set_used_flags(struct virtio_mmio *t, uint16_t flags, bool fence)
{
	struct virtq *q = &t->q;

	if (!t->vm->copy_io) {
		if (fence) /* a full barrier: the flag store is seen before the ring is read */
			__atomic_exchange_n(&q->used->flags, flags, __ATOMIC_SEQ_CST);
		else
			__atomic_store_n(&q->used->flags, flags, __ATOMIC_RELAXED);
		return true;
	}
	if (gpa_write(t->vm, q->used_gpa + offsetof(struct vring_used, flags), &flags, 2))
		return ring_lost(t);
	if (fence) { /* a locked instruction: on x86 a full barrier (and TSan takes no fences) */
		static int barrier;

		__atomic_fetch_add(&barrier, 0, __ATOMIC_SEQ_CST);
	}
	return true;
}

void virtq_push_used_locked(struct virtio_mmio *t, uint16_t head, uint32_t len)
{
	struct virtq *q = &t->q;
	struct vring_used_elem e = { head, len };
	uint16_t idx = q->used_idx + 1;

	if (!q->ready)
		return;
	if (!t->vm->copy_io) {
		q->used->ring[q->used_idx % q->num] = e;
		__atomic_store_n(&q->used->idx, idx, __ATOMIC_RELEASE);
	} else if (gpa_write(t->vm, q->used_gpa + offsetof(struct vring_used, ring) +
					    sizeof(e) * (q->used_idx % q->num), &e, sizeof(e)) ||
		   /* the release: x86 keeps stores in order, and each copy is a system call */
		   gpa_write(t->vm, q->used_gpa + offsetof(struct vring_used, idx), &idx, 2)) {
		ring_lost(t);
		return;
	}
	q->used_idx = idx;
	t->interrupt_status |= 1;
	pthread_cond_broadcast(&t->used_cv);
}

void virtq_push_used(struct virtio_mmio *t, uint16_t head, uint32_t len)
{
	pthread_mutex_lock(&t->mu);
	virtq_push_used_locked(t, head, len);
	pthread_mutex_unlock(&t->mu);
}
