// SPDX-License-Identifier: MIT
/*
 * strategy.c - gmem and the strategies VMMs use today, behind one interface
 * (see strategy.h for what each one is).
 */
#define _GNU_SOURCE
#include "strategy.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

/* Per-page pin counts for the baselines: a pinned page refuses conversion. */
struct pins {
	_Atomic uint32_t *count;
};

static int pins_init(struct pins *p, uint64_t size)
{
	p->count = calloc(size / PS, sizeof(p->count[0]));
	return p->count ? 0 : -ENOMEM;
}

static int pins_add(struct pins *p, uint64_t off, uint64_t len, int delta)
{
	for (uint64_t i = off / PS; i < (off + len) / PS; i++)
		atomic_fetch_add(&p->count[i], (uint32_t)delta);
	return 0;
}

static bool pins_any(struct pins *p, uint64_t off, uint64_t len)
{
	for (uint64_t i = off / PS; i < (off + len) / PS; i++)
		if (atomic_load(&p->count[i]))
			return true;
	return false;
}

static uint64_t fd_resident(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : (uint64_t)st.st_blocks * 512;
}

static int memfd(uint64_t size, const char *name)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int map_fd(int fd, uint64_t size, char **addr)
{
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	*addr = p;
	return 0;
}

/* ---- gmem ---- */

struct gm {
	struct gmem *g;
	size_t heap0;
};

static int gm_create(struct strat *s, uint64_t size)
{
	struct gmem_config cfg = { .size = size, .backing = GMEM_BACKING_SHMEM };
	struct gm *m = calloc(1, sizeof(*m));
	int err;

	if (!m)
		return -ENOMEM;
	m->heap0 = mallinfo2().uordblks;
	err = gmem_create(&cfg, &m->g);
	if (err) {
		free(m);
		return err;
	}
	s->impl = m;
	return 0;
}

static void gm_destroy(struct strat *s)
{
	struct gm *m = s->impl;

	gmem_destroy(m->g);
	free(m);
}

static int gm_view(struct strat *s, char **addr)
{
	return gmem_view_map(((struct gm *)s->impl)->g, 0, s->size, 0, (void **)addr);
}

static int gm_guest(struct strat *s, char **addr)
{
	return gmem_guest_map(((struct gm *)s->impl)->g, (void **)addr);
}

static int gm_convert(struct strat *s, uint64_t off, uint64_t len, bool to_private)
{
	return gmem_convert(((struct gm *)s->impl)->g, off, len,
			    to_private ? GMEM_PRIVATE : GMEM_SHARED, 0, NULL);
}

static int gm_pin(struct strat *s, uint64_t off, uint64_t len)
{
	return gmem_pin(((struct gm *)s->impl)->g, off, len, 0);
}

static int gm_unpin(struct strat *s, uint64_t off, uint64_t len)
{
	return gmem_unpin(((struct gm *)s->impl)->g, off, len, 0);
}

static uint64_t gm_state(struct strat *s)
{
	return mallinfo2().uordblks - ((struct gm *)s->impl)->heap0;
}

static uint64_t gm_resident(struct strat *s)
{
	void *guest;
	unsigned char *vec = malloc(s->size / PS);
	uint64_t n = 0;

	gmem_guest_map(((struct gm *)s->impl)->g, &guest);
	if (vec && !mincore(guest, s->size, vec))
		for (uint64_t i = 0; i < s->size / PS; i++)
			n += vec[i] & 1;
	free(vec);
	return n * PS;
}

const struct strat_ops strat_gmem = {
	.name = "gmem", .keeps_contents = true, .enforces = true,
	.create = gm_create, .destroy = gm_destroy, .map_view = gm_view, .map_guest = gm_guest,
	.convert = gm_convert,
	.pin = gm_pin, .unpin = gm_unpin, .state_bytes = gm_state, .resident_bytes = gm_resident,
};

/* ---- discard: a shared file and a private one ---- */

struct discard {
	int shared_fd, private_fd;
	uint8_t *private_bits; /* the VMM's record of which pages are private */
	struct pins pins;
};

static int dc_create(struct strat *s, uint64_t size)
{
	struct discard *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->shared_fd = memfd(size, "shared");
	d->private_fd = memfd(size, "private");
	d->private_bits = calloc(size / PS / 8 + 1, 1);
	if (d->shared_fd < 0 || d->private_fd < 0 || !d->private_bits || pins_init(&d->pins, size)) {
		if (d->shared_fd >= 0)
			close(d->shared_fd);
		if (d->private_fd >= 0)
			close(d->private_fd);
		free(d->private_bits);
		free(d);
		return -ENOMEM;
	}
	s->impl = d;
	return 0;
}

static void dc_destroy(struct strat *s)
{
	struct discard *d = s->impl;

	close(d->shared_fd);
	close(d->private_fd);
	free(d->private_bits);
	free(d->pins.count);
	free(d);
}

static int dc_view(struct strat *s, char **addr)
{
	return map_fd(((struct discard *)s->impl)->shared_fd, s->size, addr);
}

/* The guest reaches its private pages in the private file (guest_memfd). */
static int dc_guest(struct strat *s, char **addr)
{
	return map_fd(((struct discard *)s->impl)->private_fd, s->size, addr);
}

/* Punch the range out of the side it leaves: the data goes with it. */
static int dc_convert(struct strat *s, uint64_t off, uint64_t len, bool to_private)
{
	struct discard *d = s->impl;

	if (to_private && pins_any(&d->pins, off, len))
		return -EAGAIN;
	if (fallocate(to_private ? d->shared_fd : d->private_fd,
		      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		return -errno;
	for (uint64_t i = off / PS; i < (off + len) / PS; i++) {
		if (to_private)
			d->private_bits[i / 8] |= (uint8_t)(1u << (i % 8));
		else
			d->private_bits[i / 8] &= (uint8_t)~(1u << (i % 8));
	}
	return 0;
}

static int dc_pin(struct strat *s, uint64_t off, uint64_t len)
{
	return pins_add(&((struct discard *)s->impl)->pins, off, len, 1);
}

static int dc_unpin(struct strat *s, uint64_t off, uint64_t len)
{
	return pins_add(&((struct discard *)s->impl)->pins, off, len, -1);
}

static uint64_t dc_state(struct strat *s)
{
	return s->size / PS / 8 + 1;
}

static uint64_t dc_resident(struct strat *s)
{
	struct discard *d = s->impl;

	return fd_resident(d->shared_fd) + fd_resident(d->private_fd);
}

const struct strat_ops strat_discard = {
	.name = "discard", .keeps_contents = false, .enforces = false,
	.create = dc_create, .destroy = dc_destroy, .map_view = dc_view, .map_guest = dc_guest,
	.convert = dc_convert,
	.pin = dc_pin, .unpin = dc_unpin, .state_bytes = dc_state, .resident_bytes = dc_resident,
};

/* ---- mprotect: one file, PROT_NONE over private ranges ---- */

struct mprot {
	int fd;
	struct pins pins;
	uint64_t vma_size; /* the kernel's vm_area_struct, from /proc/slabinfo */
};

static uint64_t vma_object_size(void)
{
	char line[512];
	unsigned long objsize = 0;
	FILE *f = fopen("/proc/slabinfo", "re");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "vm_area_struct ", 15) &&
		    sscanf(line, "%*s %*u %*u %lu", &objsize) == 1)
			break;
	if (f)
		fclose(f);
	return objsize ? objsize : 192;
}

static int mp_create(struct strat *s, uint64_t size)
{
	struct mprot *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->fd = memfd(size, "mprotect");
	if (m->fd < 0 || pins_init(&m->pins, size)) {
		if (m->fd >= 0)
			close(m->fd);
		free(m);
		return -ENOMEM;
	}
	m->vma_size = vma_object_size();
	s->impl = m;
	return 0;
}

static void mp_destroy(struct strat *s)
{
	struct mprot *m = s->impl;

	close(m->fd);
	free(m->pins.count);
	free(m);
}

static int mp_view(struct strat *s, char **addr)
{
	return map_fd(((struct mprot *)s->impl)->fd, s->size, addr);
}

static int mp_convert(struct strat *s, uint64_t off, uint64_t len, bool to_private)
{
	struct mprot *m = s->impl;
	int prot = to_private ? PROT_NONE : PROT_READ | PROT_WRITE;

	if (to_private && pins_any(&m->pins, off, len))
		return -EAGAIN;
	for (int i = 0; i < s->nviews; i++) {
		if (mprotect(s->view[i] + off, len, prot)) {
			int err = -errno;

			while (i--) /* all or nothing */
				mprotect(s->view[i] + off, len,
					 to_private ? PROT_READ | PROT_WRITE : PROT_NONE);
			return err; /* -ENOMEM: out of VMAs (vm.max_map_count) */
		}
	}
	return 0;
}

static int mp_pin(struct strat *s, uint64_t off, uint64_t len)
{
	return pins_add(&((struct mprot *)s->impl)->pins, off, len, 1);
}

static int mp_unpin(struct strat *s, uint64_t off, uint64_t len)
{
	return pins_add(&((struct mprot *)s->impl)->pins, off, len, -1);
}

/* The VMAs the views are cut into, at the kernel's size for one. */
static uint64_t mp_state(struct strat *s)
{
	char line[512];
	uint64_t vmas = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	while (f && fgets(line, sizeof(line), f)) {
		uintptr_t start = (uintptr_t)strtoull(line, NULL, 16);

		for (int i = 0; i < s->nviews; i++)
			vmas += start >= (uintptr_t)s->view[i] &&
				start < (uintptr_t)s->view[i] + s->size;
	}
	if (f)
		fclose(f);
	return vmas * ((struct mprot *)s->impl)->vma_size;
}

static uint64_t mp_resident(struct strat *s)
{
	return fd_resident(((struct mprot *)s->impl)->fd);
}

const struct strat_ops strat_mprotect = {
	.name = "mprotect", .keeps_contents = true, .enforces = true,
	.create = mp_create, .destroy = mp_destroy, .map_view = mp_view, .map_guest = mp_view,
	.convert = mp_convert,
	.pin = mp_pin, .unpin = mp_unpin, .state_bytes = mp_state, .resident_bytes = mp_resident,
};

/* ---- none: a plain shared mapping ---- */

static int no_convert(struct strat *s, uint64_t off, uint64_t len, bool to_private)
{
	(void)s, (void)off, (void)len, (void)to_private;
	return 0; /* nothing to enforce */
}

static uint64_t no_state(struct strat *s)
{
	(void)s;
	return 0;
}

const struct strat_ops strat_none = {
	.name = "none", .keeps_contents = true, .enforces = false,
	.create = mp_create, .destroy = mp_destroy, .map_view = mp_view, .map_guest = mp_view,
	.convert = no_convert,
	.pin = mp_pin, .unpin = mp_unpin, .state_bytes = no_state, .resident_bytes = mp_resident,
};

const struct strat_ops *const strategies[] = { &strat_gmem, &strat_mprotect, &strat_discard, NULL };

int strat_open(struct strat *s, const struct strat_ops *ops, uint64_t size, int nviews)
{
	int err;

	memset(s, 0, sizeof(*s));
	s->ops = ops;
	s->size = size;
	err = ops->create(s, size);
	if (err)
		return err;
	err = ops->map_guest(s, &s->guest);
	if (err) {
		ops->destroy(s);
		return err;
	}
	for (; s->nviews < nviews; s->nviews++) {
		err = ops->map_view(s, &s->view[s->nviews]);
		if (err) {
			strat_close(s);
			return err;
		}
	}
	return 0;
}

void strat_close(struct strat *s)
{
	/* gmem unmaps its own views; the others are plain mappings */
	if (s->ops != &strat_gmem) {
		for (int i = 0; i < s->nviews; i++)
			munmap(s->view[i], s->size);
		if (s->guest)
			munmap(s->guest, s->size);
	}
	s->ops->destroy(s);
	memset(s, 0, sizeof(*s));
}
