// SPDX-License-Identifier: MIT
/*
 * unreachable_status.c - a request whose status byte the device cannot
 * write is returned unexecuted: used length 0, its data buffer untouched,
 * no status written and (the host checks) the disk unchanged.  One OUT and
 * one IN per kind of unreachable status; kind k uses sector 16 + k, whose
 * bytes on the host's image all read 16 + k.
 */
#include "rt.h"
#include "virtio_blk.h"

#define FIRST 16
#define MINE 0x77  /* the guest's bytes in its data buffer */
#define UNTOUCHED 0xee /* a status byte the device must leave alone */

static struct vblk blk;
static int failures;

/* Report every broken promise, not just the first. */
static void expect(bool ok, const char *kind, const char *what)
{
	if (!ok) {
		printf("unreachable_status: %s: %s\n", kind, what);
		failures++;
	}
}

/* The length the device returned the last chain with (one chain at a time). */
static uint32_t last_used_len(void)
{
	return blk.used->ring[(uint16_t)(blk.used_idx - 1) & (blk.qsize - 1)].len;
}

static bool all(const uint8_t *p, uint8_t v, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint8_t *secret = alloc_pages(1), *buf = alloc_pages(1), *ro = alloc_pages(1);
	struct vring_desc *status, good;
	const struct {
		const char *name;
		uint64_t addr;
		uint32_t len;
		uint16_t flags;
	} kind[] = {
		{ "private", (uintptr_t)secret, 1, VRING_DESC_F_WRITE },
		{ "mmio", VIRTIO_BLK_MMIO, 1, VRING_DESC_F_WRITE },
		{ "hole below mmio", machine.low_end, 1, VRING_DESC_F_WRITE },
		{ "past the end of RAM", HIGH_RAM_BASE + ram_size, 1, VRING_DESC_F_WRITE },
		{ "not device-writable", (uintptr_t)ro, 1, 0 },
		{ "zero length", (uintptr_t)ro, 0, VRING_DESC_F_WRITE },
	};
	const int nkinds = sizeof(kind) / sizeof(kind[0]);

	(void)cpu, (void)ncpus;
	CHECK(vblk_init(&blk, VIRTIO_BLK_MMIO) == 0);
	CHECK(blk.capacity >= FIRST + nkinds);
	status = &blk.desc[2]; /* slot 0's status descriptor */
	good = *status;
	CHECK(unshare(secret, PAGE_SIZE, NULL) == 0);
	CHECK(share(buf, PAGE_SIZE, NULL) == 0);
	CHECK(share(ro, PAGE_SIZE, NULL) == 0);
	memset(secret, UNTOUCHED, PAGE_SIZE);
	memset(ro, UNTOUCHED, PAGE_SIZE);
	for (int k = 0; k < nkinds; k++) {
		const char *name = kind[k].name;

		*status = (struct vring_desc){ kind[k].addr, kind[k].len, kind[k].flags, 0 };

		memset(buf, 0x3c, VIRTIO_BLK_SECTOR);
		vblk_rw(&blk, 0, VIRTIO_BLK_T_OUT, FIRST + k, buf, VIRTIO_BLK_SECTOR);
		expect(last_used_len() == 0, name, "OUT: used length not 0");

		memset(buf, MINE, VIRTIO_BLK_SECTOR);
		vblk_rw(&blk, 0, VIRTIO_BLK_T_IN, FIRST + k, buf, VIRTIO_BLK_SECTOR);
		expect(last_used_len() == 0, name, "IN: used length not 0");
		expect(all(buf, MINE, VIRTIO_BLK_SECTOR), name, "IN: the data buffer was written");

		expect(blk.slot[0].status == 0xff && secret[0] == UNTOUCHED && ro[0] == UNTOUCHED,
		       name, "a status byte was written");
		printf("unreachable_status: %s: checked\n", name);
	}

	/* the same chain with a reachable status byte is executed */
	*status = good;
	memset(buf, MINE, VIRTIO_BLK_SECTOR);
	CHECK(vblk_rw(&blk, 0, VIRTIO_BLK_T_IN, FIRST, buf, VIRTIO_BLK_SECTOR) == VIRTIO_BLK_S_OK);
	CHECK(last_used_len() == VIRTIO_BLK_SECTOR + 1);
	CHECK(all(buf, FIRST, VIRTIO_BLK_SECTOR));
	if (failures)
		return 1;
	printf("unreachable_status: %d kinds returned unexecuted\n", nkinds);
	return 0;
}
