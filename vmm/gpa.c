// SPDX-License-Identifier: MIT
/*
 * gpa.c - the guest-physical address map.
 *
 * Every guest-physical range is RAM (a piece of the gmem object: pinnable,
 * convertible) or MMIO (a device's registers).  gpa_classify() is the one
 * place that decides which; gpa_pin() is the only way device code turns a
 * GPA into memory, and it answers only for RAM, with the pages pinned so
 * that they stay shared for as long as the device uses them; gpa_read()
 * and gpa_write() are the only way it copies guest memory, and they too
 * answer only for RAM.  Nothing else in the VMM infers "is this memory" on
 * its own (seed 003's lesson about VM_PFNMAP: one place decides, everyone
 * asks it).
 */
#include <errno.h>
#include <unistd.h>

#include "vm.h"

void gpa_map_init(struct gpa_map *m, uint64_t ram_size)
{
	uint64_t low = ram_size < LOW_RAM_MAX ? ram_size : LOW_RAM_MAX;

	m->n = 0;
	m->r[m->n++] = (struct region){ .gpa = 0, .size = low, .kind = REGION_RAM, .offset = 0 };
	if (ram_size > low)
		m->r[m->n++] = (struct region){ .gpa = HIGH_RAM_BASE, .size = ram_size - low,
						.kind = REGION_RAM, .offset = low };
}

int gpa_map_add_mmio(struct gpa_map *m, uint64_t gpa, uint64_t size, const struct mmio_ops *ops,
		     void *dev)
{
	if (m->n == MAX_REGIONS)
		return -ENOSPC;
	m->r[m->n++] = (struct region){ .gpa = gpa, .size = size, .kind = REGION_MMIO, .ops = ops,
					.dev = dev };
	return 0;
}

int gpa_map_remove_mmio(struct gpa_map *m, uint64_t gpa)
{
	for (int i = 0; i < m->n; i++) {
		if (m->r[i].kind != REGION_MMIO || m->r[i].gpa != gpa)
			continue;
		for (m->n--; i < m->n; i++)
			m->r[i] = m->r[i + 1];
		return 0;
	}
	return -ENOENT;
}

const struct region *gpa_classify(const struct gpa_map *m, uint64_t gpa)
{
	for (int i = 0; i < m->n; i++)
		if (gpa - m->r[i].gpa < m->r[i].size)
			return &m->r[i];
	return NULL;
}

/*
 * The gmem offset of RAM [gpa, gpa + len): -EINVAL unless the whole range,
 * without overflow, lies in one RAM region.
 */
int gpa_ram_offset(const struct gpa_map *m, uint64_t gpa, uint64_t len, uint64_t *offset)
{
	const struct region *r = gpa_classify(m, gpa);

	if (!r || r->kind != REGION_RAM || !len || len > r->size - (gpa - r->gpa))
		return -EINVAL;
	*offset = r->offset + (gpa - r->gpa);
	return 0;
}

int gpa_pin(struct vm *vm, uint64_t gpa, uint64_t len, bool longterm, struct gpa_pin *pin,
	    void **host)
{
	uint64_t off, first, end;
	int err = gpa_ram_offset(&vm->map, gpa, len, &off);

	if (err)
		return -EFAULT; /* not RAM: MMIO, a hole, or past the end */
	first = off & ~(GMEM_PAGE_SIZE - 1);
	end = (off + len + GMEM_PAGE_SIZE - 1) & ~(GMEM_PAGE_SIZE - 1);
	/*
	 * A ring's pin waits out a brief hold - a lazy restore merging the
	 * block into a huge page, a discard - for a second at most; a
	 * request's buffer in transit is the request's error.
	 */
	for (int tries = 0;; tries++) {
		err = gmem_pin(vm->mem, first, end - first, longterm ? GMEM_PIN_LONGTERM : 0);
		if (err != -EAGAIN || !longterm || tries == 1000)
			break;
		usleep(1000);
	}
	if (err)
		return err; /* -EACCES: private; -EAGAIN: in transit */
	*pin = (struct gpa_pin){ .offset = first, .len = end - first, .longterm = longterm };
	*host = vm->dev_view ? vm->dev_view + off : NULL;
	return 0;
}

void gpa_unpin(struct vm *vm, struct gpa_pin *pin)
{
	if (!pin->len)
		return;
	gmem_unpin(vm->mem, pin->offset, pin->len, pin->longterm ? GMEM_PIN_LONGTERM : 0);
	pin->len = 0;
}

int gpa_read(struct vm *vm, uint64_t gpa, void *buf, uint64_t len)
{
	uint64_t off;

	if (!len)
		return 0;
	if (gpa_ram_offset(&vm->map, gpa, len, &off))
		return -EFAULT;
	return gmem_read(vm->mem, off, buf, len, NULL);
}

int gpa_write(struct vm *vm, uint64_t gpa, const void *buf, uint64_t len)
{
	uint64_t off;

	if (!len)
		return 0;
	if (gpa_ram_offset(&vm->map, gpa, len, &off))
		return -EFAULT;
	return gmem_write(vm->mem, off, buf, len, NULL);
}
