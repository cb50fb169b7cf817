// SPDX-License-Identifier: MIT
/*
 * virtio_blk.c - a virtio-blk device backed by a disk image file.
 *
 * The notify handler (in the vCPU thread that rang) takes each new chain
 * off the available ring, copies its descriptors (the guest may rewrite
 * them), and pins every buffer through gpa_pin() before it returns to the
 * guest: from then until completion the buffers are in flight and the
 * guest cannot make them private (-EAGAIN).  A worker thread does the file
 * I/O into the pinned host-view memory, writes the status, unpins, and
 * returns the chain on the used ring: the kernel's I/O on view pages is
 * bracketed by pins, as gmem.h asks.  With copy_io (hugetlbfs, where a view
 * refuses a huge page holding any private piece) the device dereferences
 * no view: it copies descriptors, header and status with gpa_read() and
 * gpa_write(), and does the file I/O into a bounce buffer of its own, then
 * gmem_write()s it to the guest (IN) or gmem_read()s the guest's data into
 * it first (OUT).  The pins are the same on both paths: the buffers of a
 * request in flight stay shared until it completes.
 *
 * While the worker is busy the driver need not ring
 * (VRING_USED_F_NO_NOTIFY); a conversion hypercall then first has the
 * device take what is on its ring (its sync hook), so that a request
 * published before a conversion is pinned before it.  A buffer that is
 * private, not RAM, or MMIO fails its request with VIRTIO_BLK_S_IOERR: the
 * device never touches such memory and the disk is not written.  A request
 * whose status byte the device cannot write is not executed at all: it is
 * returned with length 0 and nothing else of it read.
 *
 * The guest is not trusted to bound the work: the device takes no more
 * chains than the queue has entries (more is a driver error: NEEDS_RESET,
 * and nothing more taken until the driver resets the device), and when the
 * VM ends, the requests queued but not started are dropped, so that the
 * end waits for one request's I/O at most, whatever the guest queued.
 */
#define _GNU_SOURCE
#include "virtio_blk.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "device.h"
#include "snapshot.h"

#define QUEUE_MAX 256
/* after its last request, the worker watches the ring this long before sleeping */
#define BUSY_POLL_NS 200000
#define MAX_SEGS 32
#define DEFAULT_IMAGE_SIZE (64ULL << 20)
#define BOUNCE_SIZE (1ULL << 20) /* copy_io: the file I/O goes through this much at a time */
#define BLK_ID "gmem-vmm-blk"

struct vblk_req {
	struct vblk_req *next;
	uint16_t head;
	uint32_t type;
	uint64_t sector;
	int nseg;
	struct {
		uint64_t gpa;
		void *host; /* in the device view; NULL with copy_io */
		uint32_t len;
	} seg[MAX_SEGS];
	struct gpa_pin pin[MAX_SEGS + 2];
	int npin;
	bool has_status; /* false: the status byte could not be reached; not executed */
	uint64_t status_gpa;
	uint8_t *status; /* in the device view; NULL with copy_io */
	uint8_t result;  /* VIRTIO_BLK_S_*, decided at parse time if not OK */
};

struct vblk_dev {
	struct vm *vm;
	struct vm_device vdev; /* its place in the VM's devices */
	struct virtio_mmio t;
	uint64_t gpa; /* where the transport's registers are */
	int fd;
	uint64_t capacity; /* sectors */
	unsigned int latency_ms;
	char *bounce; /* copy_io: BOUNCE_SIZE bytes, the worker's */

	pthread_t worker;
	pthread_mutex_t mu;  /* guards the queue below and the counters */
	pthread_cond_t cv;   /* with mu, on CLOCK_MONOTONIC: the queue or cancel changed */
	struct vblk_req *head, *tail;
	int inflight;
	bool cancel; /* the VM ended: what is queued is dropped, not done */
	bool stop;   /* the worker exits once the queue is empty */
	bool paused; /* under the transport's lock: a snapshot is being taken */
	struct vblk_stats st;
};

static uint64_t config_read(void *opaque, uint64_t off, unsigned int len)
{
	struct vblk_dev *d = opaque;
	uint64_t v = 0;

	if (off < 8 && off + len <= 8) /* capacity, in 512-byte sectors */
		v = d->capacity >> (8 * off);
	return len == 8 ? v : v & ((1ULL << (8 * len)) - 1);
}

/*
 * Pin [gpa, gpa + len) for the request; false if it is not shared RAM.
 * *host: where it is in the device view (NULL with copy_io).
 */
static bool req_pin(struct vblk_dev *d, struct vblk_req *r, uint64_t gpa, uint32_t len, void **host)
{
	if (r->npin == MAX_SEGS + 2 || gpa_pin(d->vm, gpa, len, false, &r->pin[r->npin], host))
		return false;
	r->npin++;
	return true;
}

/* Take the chain at head apart (transport lock held): copy, check, pin. */
static struct vblk_req *parse(struct vblk_dev *d, struct virtq *q, uint16_t head)
{
	struct vring_desc desc[MAX_SEGS + 2];
	struct virtio_blk_req_hdr hdr;
	struct vblk_req *r = calloc(1, sizeof(*r));
	int n = 0;
	void *p;

	if (!r)
		return NULL;
	r->head = head;
	r->result = VIRTIO_BLK_S_OK;
	for (uint16_t i = head;; i = desc[n - 1].next) {
		if (i >= q->num || n == MAX_SEGS + 2 || !virtq_desc(&d->t, i, &desc[n++]))
			return r; /* a loop, too long, or the table unreachable: no status byte */
		if (!(desc[n - 1].flags & VRING_DESC_F_NEXT))
			break;
	}
	/*
	 * The status byte, first: the last descriptor, device-writable.  A
	 * request that cannot say how it went must not happen at all (a
	 * driver that sees no status cannot tell an OUT that wrote the disk
	 * from one that did not), so without it nothing more is read.
	 */
	if (!(desc[n - 1].flags & VRING_DESC_F_WRITE) || !desc[n - 1].len ||
	    !req_pin(d, r, desc[n - 1].addr, 1, &p))
		return r;
	r->has_status = true;
	r->status_gpa = desc[n - 1].addr;
	r->status = p;
	if (n < 2 || (desc[0].flags & VRING_DESC_F_WRITE) || desc[0].len < sizeof(hdr) ||
	    !req_pin(d, r, desc[0].addr, sizeof(hdr), &p) ||
	    (d->vm->copy_io && gpa_read(d->vm, desc[0].addr, &hdr, sizeof(hdr)))) {
		r->result = VIRTIO_BLK_S_IOERR;
		return r;
	}
	if (!d->vm->copy_io)
		memcpy(&hdr, p, sizeof(hdr));
	r->type = hdr.type;
	r->sector = hdr.sector;
	for (int i = 1; i < n - 1; i++) {
		bool writable = desc[i].flags & VRING_DESC_F_WRITE;

		/* data flows device-to-guest for reads only */
		if (writable != (r->type == VIRTIO_BLK_T_IN || r->type == VIRTIO_BLK_T_GET_ID) ||
		    !req_pin(d, r, desc[i].addr, desc[i].len, &p)) {
			r->result = VIRTIO_BLK_S_IOERR;
			return r;
		}
		r->seg[r->nseg].gpa = desc[i].addr;
		r->seg[r->nseg].host = p;
		r->seg[r->nseg++].len = desc[i].len;
	}
	return r;
}

/* Take the new chains off the available ring (transport lock held); how many. */
static int take_avail(struct vblk_dev *d, struct virtq *q)
{
	uint16_t avail, out = q->last_avail - q->used_idx; /* taken and not yet returned */
	int n = 0;

	if ((d->t.status & VIRTIO_STATUS_NEEDS_RESET) || atomic_load(&d->vm->stopping) ||
	    d->paused || !virtq_avail_idx(&d->t, &avail))
		return 0;
	/*
	 * Each chain out holds a descriptor the driver may not reuse until the
	 * chain comes back, so a driver never has more chains out than the
	 * queue has entries.  An index further ahead (or behind: it went back)
	 * is garbage or hostile, and walking it would take the ring over and
	 * over, up to 65,535 chains at a time.  A driver error: NEEDS_RESET.
	 */
	if ((uint16_t)(avail - q->last_avail) > q->num - out) {
		d->t.status |= VIRTIO_STATUS_NEEDS_RESET;
		return 0;
	}
	for (; q->last_avail != avail && !(d->t.status & VIRTIO_STATUS_NEEDS_RESET); n++) {
		uint16_t head;
		struct vblk_req *r;

		if (!virtq_avail_ring(&d->t, q->last_avail, &head))
			break; /* the ring went private: NEEDS_RESET */
		q->last_avail++;
		r = parse(d, q, head);
		if (!r) {
			virtq_push_used_locked(&d->t, head, 0); /* out of memory: unprocessed */
			continue;
		}
		pthread_mutex_lock(&d->mu);
		if (d->tail)
			d->tail->next = r;
		else
			d->head = r;
		d->tail = r;
		d->inflight++;
		pthread_cond_broadcast(&d->cv);
		pthread_mutex_unlock(&d->mu);
	}
	return n;
}

/*
 * The driver rang: take what it queued.  The worker is busy from now until
 * it finds the ring empty, so the driver need not ring again meanwhile
 * (VRING_USED_F_NO_NOTIFY: virtio's notification suppression).
 */
static void notify(void *opaque, struct virtq *q)
{
	struct vblk_dev *d = opaque;

	if (take_avail(d, q))
		virtq_set_used_flags(&d->t, VRING_USED_F_NO_NOTIFY, false);
}

/*
 * The worker's look at the ring, between requests: with `idle`, it is about
 * to sleep, so it asks for notifications first and looks once more after
 * (the driver publishes, then reads the flag: one of the two sees the other).
 */
static bool poll_ring(struct vblk_dev *d, bool idle)
{
	struct virtq *q = &d->t.q;
	bool got = false;

	pthread_mutex_lock(&d->t.mu);
	if (q->ready && (d->t.status & VIRTIO_STATUS_DRIVER_OK)) {
		if (idle) /* with a full barrier: the flag store is seen before the ring is read */
			virtq_set_used_flags(&d->t, 0, true);
		got = take_avail(d, q) > 0;
		if (got && idle)
			virtq_set_used_flags(&d->t, VRING_USED_F_NO_NOTIFY, false);
	}
	pthread_mutex_unlock(&d->t.mu);
	return got;
}

/*
 * One segment's file I/O at file offset off, through the bounce buffer
 * (copy_io): IN reads the file into it and writes it to the guest, OUT
 * the other way.  Whether all of it went.
 */
static bool bounce_io(struct vblk_dev *d, bool in, uint64_t gpa, uint64_t len, uint64_t off)
{
	for (uint64_t done = 0; done < len;) {
		size_t n = len - done < BOUNCE_SIZE ? len - done : BOUNCE_SIZE;

		if (in ? pread(d->fd, d->bounce, n, (off_t)(off + done)) != (ssize_t)n ||
				 gpa_write(d->vm, gpa + done, d->bounce, n)
		       : gpa_read(d->vm, gpa + done, d->bounce, n) ||
				 pwrite(d->fd, d->bounce, n, (off_t)(off + done)) != (ssize_t)n)
			return false;
		done += n;
	}
	return true;
}

/* Do the request's I/O into its pinned buffers: a VIRTIO_BLK_S_* status. */
static uint8_t execute(struct vblk_dev *d, struct vblk_req *r, uint32_t *written)
{
	uint64_t off = r->sector * VIRTIO_BLK_SECTOR, total = 0;
	bool in = r->type == VIRTIO_BLK_T_IN;

	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		for (int i = 0; i < r->nseg; i++)
			total += r->seg[i].len;
		if (total % VIRTIO_BLK_SECTOR || r->sector > d->capacity ||
		    total / VIRTIO_BLK_SECTOR > d->capacity - r->sector)
			return VIRTIO_BLK_S_IOERR;
		for (int i = 0; i < r->nseg; i++) {
			if (d->vm->copy_io) {
				if (!bounce_io(d, in, r->seg[i].gpa, r->seg[i].len, off))
					return VIRTIO_BLK_S_IOERR;
			} else if ((in ? pread(d->fd, r->seg[i].host, r->seg[i].len, (off_t)off)
				       : pwrite(d->fd, r->seg[i].host, r->seg[i].len, (off_t)off)) !=
				   (ssize_t)r->seg[i].len) {
				return VIRTIO_BLK_S_IOERR;
			}
			off += r->seg[i].len;
		}
		if (r->type == VIRTIO_BLK_T_IN)
			*written = (uint32_t)total;
		pthread_mutex_lock(&d->mu);
		*(r->type == VIRTIO_BLK_T_IN ? &d->st.bytes_read : &d->st.bytes_written) += total;
		pthread_mutex_unlock(&d->mu);
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_FLUSH:
		return fdatasync(d->fd) ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		if (r->nseg != 1)
			return VIRTIO_BLK_S_IOERR;
		*written = r->seg[0].len < sizeof(BLK_ID) ? r->seg[0].len : sizeof(BLK_ID);
		if (!d->vm->copy_io)
			memcpy(r->seg[0].host, BLK_ID, *written);
		else if (gpa_write(d->vm, r->seg[0].gpa, BLK_ID, *written))
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

static bool busy_poll(struct vblk_dev *d)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		if (poll_ring(d, false))
			return true;
		sched_yield();
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) < BUSY_POLL_NS &&
		 !atomic_load(&d->vm->stopping));
	return false;
}

/* Before a conversion: take (and pin) the requests published but not announced. */
static void sync_hook(void *opaque)
{
	poll_ring(opaque, false);
}

/*
 * Wait out the configured latency (the slow disk's), before the request
 * starts; false if the VM ended meanwhile.
 */
static bool hold(struct vblk_dev *d)
{
	struct timespec end;
	bool ended;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += d->latency_ms / 1000;
	end.tv_nsec += (long)(d->latency_ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&d->mu);
	while (!d->cancel && pthread_cond_timedwait(&d->cv, &d->mu, &end) != ETIMEDOUT)
		;
	ended = d->cancel;
	pthread_mutex_unlock(&d->mu);
	return !ended;
}

static void unpin_all(struct vblk_dev *d, struct vblk_req *r)
{
	for (int i = 0; i < r->npin; i++)
		gpa_unpin(d->vm, &r->pin[i]);
}

/* Do the request, if it can say how it went, and return its chain. */
static void complete(struct vblk_dev *d, struct vblk_req *r)
{
	bool executed = r->has_status;
	uint32_t written = 0;
	uint8_t result = VIRTIO_BLK_S_OK;

	if (executed) {
		result = r->result == VIRTIO_BLK_S_OK ? execute(d, r, &written) : r->result;
		if (!d->vm->copy_io)
			*r->status = result;
		else
			gpa_write(d->vm, r->status_gpa, &result, 1); /* pinned: shared */
		written++;
	}
	unpin_all(d, r); /* before the driver sees the chain: it may convert the buffers at once */
	virtq_push_used(&d->t, r->head, written);

	pthread_mutex_lock(&d->mu);
	if (executed) {
		d->st.requests++;
		d->st.errors += result != VIRTIO_BLK_S_OK;
	} else {
		d->st.no_status++;
	}
	d->inflight--;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	free(r);
}

/* Drop a request the VM's end caught before it started: nobody will look at the used ring. */
static void cancel(struct vblk_dev *d, struct vblk_req *r)
{
	unpin_all(d, r);
	pthread_mutex_lock(&d->mu);
	d->st.cancelled++;
	d->inflight--;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	free(r);
}

static void *worker(void *arg)
{
	struct vblk_dev *d = arg;

	for (;;) {
		struct vblk_req *r;
		bool cancelled;

		pthread_mutex_lock(&d->mu);
		while (!d->head && !d->stop) {
			pthread_mutex_unlock(&d->mu);
			/*
			 * Busy-poll a moment before asking to be notified: a
			 * streaming driver's next request is usually close, and
			 * it saves the guest an exit and the worker a wake-up.
			 */
			if (busy_poll(d) || poll_ring(d, true)) {
				pthread_mutex_lock(&d->mu);
				continue;
			}
			pthread_mutex_lock(&d->mu);
			if (!d->head && !d->stop)
				pthread_cond_wait(&d->cv, &d->mu);
		}
		if (!d->head) {
			pthread_mutex_unlock(&d->mu);
			return NULL;
		}
		r = d->head;
		d->head = r->next;
		if (!d->head)
			d->tail = NULL;
		cancelled = d->cancel;
		pthread_mutex_unlock(&d->mu);

		if (!cancelled && r->has_status && d->latency_ms)
			cancelled = !hold(d);
		if (cancelled) {
			cancel(d, r);
			continue;
		}
		complete(d, r);
		poll_ring(d, false); /* what the driver queued meanwhile, unannounced */
	}
}

static void reset(void *opaque)
{
	struct vblk_dev *d = opaque;

	pthread_mutex_lock(&d->mu);
	while (d->inflight) /* the rings must outlive the requests using them */
		pthread_cond_wait(&d->cv, &d->mu);
	pthread_mutex_unlock(&d->mu);
}

void vblk_pause(struct vblk_dev *d)
{
	pthread_mutex_lock(&d->t.mu);
	d->paused = true;
	pthread_mutex_unlock(&d->t.mu);
	reset(d); /* the requests taken, done */
}

void vblk_resume(struct vblk_dev *d)
{
	pthread_mutex_lock(&d->t.mu);
	d->paused = false;
	pthread_mutex_unlock(&d->t.mu);
	/* the worker asked for notifies as it went idle, but chains may wait unannounced */
	pthread_mutex_lock(&d->mu);
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

void vblk_save(struct vblk_dev *d, struct snapv_vblk *s)
{
	virtio_mmio_save(&d->t, s);
	pthread_mutex_lock(&d->mu);
	memcpy(s->blk, &d->st, sizeof(s->blk));
	pthread_mutex_unlock(&d->mu);
}

int vblk_disk_fd(struct vblk_dev *d)
{
	return d->fd;
}

int vblk_restore(struct vblk_dev *d, const struct snapv_vblk *s)
{
	int err = virtio_mmio_restore(&d->t, s);

	pthread_mutex_lock(&d->mu);
	memcpy(&d->st, s->blk, sizeof(s->blk));
	pthread_cond_broadcast(&d->cv); /* the worker looks at the ring the guest left */
	pthread_mutex_unlock(&d->mu);
	return err;
}

static const struct virtio_dev_ops vblk_ops = {
	.device_id = VIRTIO_ID_BLOCK,
	.features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_BLK_F_FLUSH),
	.queue_max = QUEUE_MAX,
	.config_read = config_read,
	.notify = notify,
	.reset = reset,
};

/*
 * The VM has ended: take nothing more from the ring, drop the requests
 * queued but not started, cut the latency of the one waiting it out.
 */
static void cancel_hook(void *opaque)
{
	struct vblk_dev *d = opaque;

	pthread_mutex_lock(&d->mu);
	d->cancel = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static const struct vm_device_ops vblk_vm_ops = {
	.sync = sync_hook,
	.cancel = cancel_hook,
};

static int open_image(const char *path)
{
	char tmpl[] = "/tmp/gmem-vmm-disk-XXXXXX";
	int fd;

	if (path) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			int err = -errno;

			fprintf(stderr, "gmem-vmm: cannot open disk %s: %s\n", path, strerror(errno));
			return err;
		}
		return fd;
	}
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0 || unlink(tmpl) || ftruncate(fd, (off_t)DEFAULT_IMAGE_SIZE)) {
		int err = -errno;

		fprintf(stderr, "gmem-vmm: cannot make a temporary disk: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return err;
	}
	return fd;
}

int vblk_create(struct vm *vm, const char *path, uint64_t gpa, unsigned int latency_ms,
		struct vblk_dev **out)
{
	struct vblk_dev *d = calloc(1, sizeof(*d));
	struct stat st;
	int err;

	if (!d) {
		fprintf(stderr, "gmem-vmm: virtio-blk: %s\n", strerror(ENOMEM));
		return -ENOMEM;
	}
	d->vm = vm;
	d->gpa = gpa;
	d->latency_ms = latency_ms;
	if (vm->copy_io && !(d->bounce = malloc(BOUNCE_SIZE))) {
		fprintf(stderr, "gmem-vmm: virtio-blk: %s\n", strerror(ENOMEM));
		free(d);
		return -ENOMEM;
	}
	d->fd = open_image(path);
	if (d->fd < 0) {
		err = d->fd;
		goto err_free;
	}
	if (fstat(d->fd, &st)) {
		err = -errno;
		fprintf(stderr, "gmem-vmm: disk %s: %s\n", path ? path : "(temporary)", strerror(-err));
		goto err_close;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		fprintf(stderr, "gmem-vmm: disk %s is not a file\n", path);
		err = -EINVAL;
		goto err_close;
	}
	d->capacity = (uint64_t)st.st_size / VIRTIO_BLK_SECTOR;
	pthread_mutex_init(&d->mu, NULL);
	{
		pthread_condattr_t ca; /* hold() counts its deadline on CLOCK_MONOTONIC */

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&d->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	virtio_mmio_init(&d->t, vm, &vblk_ops, d);
	err = gpa_map_add_mmio(&vm->map, gpa, VIRTIO_MMIO_STRIDE, &virtio_mmio_ops, &d->t);
	if (err) {
		fprintf(stderr, "gmem-vmm: virtio-blk at %#llx: %s\n", (unsigned long long)gpa,
			strerror(-err));
		goto err_locks;
	}
	err = -pthread_create(&d->worker, NULL, worker, d);
	if (err) {
		fprintf(stderr, "gmem-vmm: virtio-blk: cannot start its worker: %s\n", strerror(-err));
		goto err_mmio;
	}
	d->vdev = (struct vm_device){ .ops = &vblk_vm_ops, .dev = d };
	vm_device_add(vm, &d->vdev);
	*out = d;
	return 0;

err_mmio:
	gpa_map_remove_mmio(&vm->map, gpa);
err_locks:
	virtio_mmio_fini(&d->t);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
err_close:
	close(d->fd);
err_free:
	free(d->bounce);
	free(d);
	return err;
}

void vblk_destroy(struct vblk_dev *d, struct vblk_stats *st)
{
	vm_device_remove(d->vm, &d->vdev);
	pthread_mutex_lock(&d->mu);
	d->cancel = true;
	d->stop = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->worker, NULL); /* after the request it is doing, if any */
	if (st)
		*st = d->st;
	gpa_map_remove_mmio(&d->vm->map, d->gpa);
	virtio_mmio_fini(&d->t);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	close(d->fd);
	free(d->bounce);
	free(d);
}
