// SPDX-License-Identifier: MIT
/*
 * save.c - checkpoints of a running VM, and a VM made again from one.
 *
 * A checkpoint is taken with the VM still: every vCPU parked at an
 * instruction boundary (vcpus_pause()), the disk's requests drained so
 * that its ring's indices tell everything (a request is either done, its
 * chain on the used ring, or not yet taken, its chain on the available
 * ring, which the restored device takes up), and nothing else writes guest
 * memory - the snoop only reads.  Then the VMM's state goes into sections,
 * the memory through gmem_save(), and the VM runs on or ends.
 */
#define _GNU_SOURCE
#include "save.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vcpu.h"

_Static_assert(sizeof(struct vm_counters) == sizeof(((struct snapv_counters *)0)->vm),
	       "the counters section holds struct vm_counters");
_Static_assert(sizeof(struct snoop_stats) == sizeof(((struct snapv_counters *)0)->snoop),
	       "the counters section holds struct snoop_stats");
_Static_assert(sizeof(struct gmem_stats) == sizeof(((struct snapv_counters *)0)->gmem),
	       "the counters section holds struct gmem_stats");
_Static_assert(sizeof(struct vblk_stats) == sizeof(((struct snapv_vblk *)0)->blk),
	       "the virtio-blk section holds struct vblk_stats");

#define DISK_CHUNK (1ULL << 20)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void add_u64s(void *dst, const void *src, size_t bytes)
{
	uint64_t *d = dst;
	const uint64_t *s = src;

	for (size_t i = 0; i < bytes / 8; i++)
		d[i] += s[i];
}

/* A temporary disk's data, extent by extent (SEEK_DATA: its holes stay holes). */
static int put_disk(struct sbuf *b, int fd, uint64_t size)
{
	char *buf = malloc(DISK_CHUNK);
	off_t at = 0;
	int err = 0;

	if (!buf)
		return -ENOMEM;
	while ((uint64_t)at < size && !err) {
		off_t d = lseek(fd, at, SEEK_DATA), h;

		if (d < 0) {
			err = errno == ENXIO ? 0 : -errno;
			break;
		}
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0) {
			err = -errno;
			break;
		}
		for (at = d; at < h && !err;) {
			uint64_t off = (uint64_t)at;
			size_t n = (uint64_t)(h - at) < DISK_CHUNK ? (size_t)(h - at) : DISK_CHUNK;
			ssize_t got = pread(fd, buf, n, at);

			if (got <= 0) {
				err = got < 0 ? -errno : -EIO;
				break;
			}
			sbuf_section2(b, SEC_DISK_DATA, 0, &off, sizeof(off), buf, (uint64_t)got);
			at += got;
		}
	}
	free(buf);
	return err;
}

int snap_config(struct snap_run *s, struct sbuf *b, char *msg, size_t msg_len)
{
	struct vm *vm = s->vm;
	struct snapv_config cfg = {
		.ram_size = vm->ram_size, .ncpus = (uint32_t)vm->ncpus, .backing = vm->backing,
		.flags = (vm->init_private ? CFG_INIT_PRIVATE : 0) | (vm->copy_io ? CFG_COPY_IO : 0) |
			 (s->demo ? CFG_DEMO : 0) | (s->snoop ? CFG_SNOOP : 0),
		.fault_signal = vm->fault_signal, .disk_gpa = VIRTIO_BLK_MMIO,
	};
	off_t disk_size = lseek(vblk_disk_fd(s->blk), 0, SEEK_END);

	if (disk_size < 0) {
		int err = -errno;

		snprintf(msg, msg_len, "the disk: %s", strerror(errno));
		return err;
	}
	cfg.disk_sectors = (uint64_t)disk_size / VIRTIO_BLK_SECTOR;
	sbuf_section(b, SEC_CONFIG, 0, &cfg, sizeof(cfg));
	return 0;
}

int snap_state(struct snap_run *s, struct sbuf *b, char *msg, size_t msg_len)
{
	struct vm *vm = s->vm;
	struct snapv_counters c = { .dirty_rounds = atomic_load(&vm->dirty_rounds) };
	struct snapv_vblk blk = { 0 };
	struct gmem_stats gm;
	int fd = vblk_disk_fd(s->blk), err;
	off_t disk_size;

	err = snap_config(s, b, msg, msg_len);
	if (err)
		return err;
	disk_size = lseek(fd, 0, SEEK_END);
	for (int i = 0; i < vm->map.n; i++) {
		const struct region *r = &vm->map.r[i];
		struct snapv_region sr = { .gpa = r->gpa, .size = r->size, .offset = r->offset,
					   .kind = r->kind, .slot = r->slot };

		sbuf_section(b, SEC_REGION, (uint32_t)i, &sr, sizeof(sr));
	}
	if (s->disk) {
		/* a named disk stays where it is: on its medium now, as the guest left it */
		char *abs = realpath(s->disk, NULL);

		if (!abs || fdatasync(fd)) {
			err = -errno;
			snprintf(msg, msg_len, "the disk %s: %s", s->disk, strerror(errno));
			free(abs);
			return err;
		}
		sbuf_section(b, SEC_DISK_PATH, 0, abs, strlen(abs));
		free(abs);
	} else if ((err = put_disk(b, fd, (uint64_t)disk_size))) {
		snprintf(msg, msg_len, "copying the temporary disk: %s", strerror(-err));
		return err;
	}
	vblk_save(s->blk, &blk);
	sbuf_section(b, SEC_VIRTIO_BLK, 0, &blk, sizeof(blk));

	for (size_t i = 0; i < 8; i++)
		c.vm[i] = atomic_load(&((_Atomic uint64_t *)&vm->n)[i]);
	c.run_ns = (uint64_t)((s->run_base + now_s() - s->run_start) * 1e9);
	memcpy(c.snoop, &s->snoop_base, sizeof(c.snoop));
	gmem_get_stats(vm->mem, &gm);
	add_u64s(&gm, &s->gm_base, sizeof(gm));
	gm.pins_active = 0; /* a count of now, not of the run */
	memcpy(c.gmem, &gm, sizeof(c.gmem));
	sbuf_section(b, SEC_COUNTERS, 0, &c, sizeof(c));

	for (int i = 0; i < vm->ncpus; i++) {
		err = cpu_state_save(vm, &vm->vcpus[i], b);
		if (err) {
			snprintf(msg, msg_len, "vCPU %d's state: %s", i, strerror(-err));
			return err;
		}
	}
	return 0;
}

int snap_pause(struct snap_run *s)
{
	struct snoop_stats st;

	if (vcpus_pause(s->vm))
		return -ECANCELED;
	vblk_pause(s->blk);
	/* its counts so far go into the state (and on, if the VM goes on) */
	if (s->snoop) {
		snoop_stop(s->vm, &st);
		add_u64s(&s->snoop_base, &st, sizeof(st));
	}
	fflush(stdout); /* the console so far, before anything of the save's */
	return 0;
}

int snap_resume(struct snap_run *s, char *msg, size_t msg_len)
{
	int err = s->snoop ? snoop_start(s->vm) : 0;

	vblk_resume(s->blk);
	vcpus_resume(s->vm);
	if (err)
		snprintf(msg, msg_len, "snoop: %s", strerror(-err));
	return err;
}

int snap_checkpoint(struct snap_run *s, bool final, char *msg, size_t msg_len)
{
	struct sbuf b = { 0 };
	bool layer = s->dirty && s->saves;
	double t0 = now_s(), t1;
	uint64_t id, seq = layer ? s->seq + 1 : 0;
	int err;

	if (snap_pause(s))
		return -ECANCELED;
	if (layer)
		snprintf(s->last, sizeof(s->last), "%s.%llu", s->save, (unsigned long long)seq);
	else
		snprintf(s->last, sizeof(s->last), "%s", s->save);
	t1 = now_s();
	err = snap_state(s, &b, msg, msg_len);
	if (!err)
		err = snapv_write(s->last, &b, s->vm->mem, layer ? SNAPV_LAYER : SNAPV_FULL,
				  layer ? s->last_id : 0, seq, &id, &s->bytes, msg, msg_len);
	sbuf_free(&b);
	if (!err) {
		s->seq = seq;
		s->last_id = id;
		s->saves++;
		s->write_ms = (now_s() - t1) * 1e3;
	}
	if (!final) {
		char rmsg[128];
		int rerr = snap_resume(s, rmsg, sizeof(rmsg));

		if (rerr && !err) {
			snprintf(msg, msg_len, "%s", rmsg);
			err = rerr;
		}
	}
	s->pause_ms = (now_s() - t0) * 1e3;
	return err;
}

int snap_check_map(const struct vm *vm, const struct snapv_in *in, char *msg, size_t msg_len)
{
	unsigned int n = 0;
	const struct snapv_region *sr;
	uint64_t len;

	for (; (sr = snapv_nth(in, SEC_REGION, n, NULL, &len)); n++) {
		const struct region *r = &vm->map.r[n];

		if (len != sizeof(*sr) || (int)n >= vm->map.n || r->gpa != sr->gpa ||
		    r->size != sr->size || r->kind != sr->kind ||
		    (r->kind == REGION_RAM && (r->offset != sr->offset || r->slot != sr->slot)))
			break;
	}
	if (sr || (int)n != vm->map.n) {
		snprintf(msg, msg_len, "%s: corrupted: its memory map is not this machine's", in->path);
		return -EBADMSG;
	}
	return 0;
}

int snap_restore_machine(struct snap_run *s, const struct snapv_in *in, char *msg,
			 size_t msg_len)
{
	struct vm *vm = s->vm;
	const struct snapv_counters *c;
	const struct snapv_config *cfg;
	const struct snapv_vblk *blk;
	off_t disk_size;
	const char *data;
	uint64_t len;
	int halted = 0, err;

	c = snapv_find(in, SEC_COUNTERS, 0, &len);
	if (!c || len != sizeof(*c)) {
		snprintf(msg, msg_len, "%s: corrupted: no counters", in->path);
		return -EBADMSG;
	}
	blk = snapv_find(in, SEC_VIRTIO_BLK, 0, &len);
	if (!blk || len != sizeof(*blk)) {
		snprintf(msg, msg_len, "%s: corrupted: no virtio-blk state", in->path);
		return -EBADMSG;
	}
	cfg = snapv_find(in, SEC_CONFIG, 0, &len);
	disk_size = lseek(vblk_disk_fd(s->blk), 0, SEEK_END);
	if (!cfg || len != sizeof(*cfg) || disk_size < 0 ||
	    (uint64_t)disk_size / VIRTIO_BLK_SECTOR != cfg->disk_sectors) {
		snprintf(msg, msg_len, "the disk %s has %llu sectors; the guest saved in %s had %llu",
			 s->disk ? s->disk : "(temporary)",
			 (unsigned long long)(disk_size < 0 ? 0 : disk_size / VIRTIO_BLK_SECTOR),
			 in->path, cfg ? (unsigned long long)cfg->disk_sectors : 0ULL);
		return -EINVAL;
	}
	/* a temporary disk: its contents, as the guest left them */
	for (unsigned int n = 0; !s->disk && (data = snapv_nth(in, SEC_DISK_DATA, n, NULL, &len));
	     n++) {
		int fd = vblk_disk_fd(s->blk);
		uint64_t off;

		if (len >= sizeof(off))
			memcpy(&off, data, sizeof(off));
		if (len < sizeof(off) || pwrite(fd, data + sizeof(off), len - sizeof(off),
						 (off_t)off) != (ssize_t)(len - sizeof(off))) {
			err = len < sizeof(off) ? -EBADMSG : -errno;
			snprintf(msg, msg_len, "restoring the temporary disk: %s",
				 len < sizeof(off) ? "corrupted" : strerror(errno));
			return err;
		}
	}
	err = vblk_restore(s->blk, blk);
	if (err) {
		snprintf(msg, msg_len, "%s: the disk's rings: %s", in->path,
			 err == -EINVAL || err == -EACCES || err == -EFAULT
				 ? "not a queue in shared RAM"
				 : strerror(-err));
		return err == -EINVAL || err == -EACCES || err == -EFAULT ? -EBADMSG : err;
	}
	for (int i = 0; i < vm->ncpus; i++) {
		err = cpu_state_restore(vm, &vm->vcpus[i], in, msg, msg_len);
		if (err)
			return err;
		halted += vm->vcpus[i].halted;
	}
	if (halted == vm->ncpus) {
		snprintf(msg, msg_len, "%s: corrupted: every vCPU halted", in->path);
		return -EBADMSG;
	}
	atomic_store(&vm->halted, halted);
	s->restored_halted = halted;
	for (size_t i = 0; i < 8; i++)
		atomic_store(&((_Atomic uint64_t *)&vm->n)[i], c->vm[i]);
	atomic_store(&vm->dirty_rounds, c->dirty_rounds);
	s->run_base = c->run_ns / 1e9;
	memcpy(&s->snoop_base, c->snoop, sizeof(s->snoop_base));
	memcpy(&s->gm_base, c->gmem, sizeof(s->gm_base));
	return 0;
}
