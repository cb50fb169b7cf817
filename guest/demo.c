// SPDX-License-Identifier: MIT
/*
 * demo.c - gmem-vmm's built-in demo guest.
 *
 * Every vCPU keeps a secret in a private page and moves data through the
 * disk with a bounce buffer it shares for each write and makes private
 * again while its read is still in flight - retrying, as SNP and TDX
 * guests do, while the device's pin holds a page (-EAGAIN).  The data read
 * back is checked in the now-private buffer (converted in place), and the
 * secret after every round.  Meanwhile the host's snoop reads all of RAM.
 * Data moves in 64-bit words: guest instructions can be costly here.
 */
#include "rt.h"
#include "secret.h"
#include "virtio_blk.h"

#define BOUNCE_PAGES 4
#define ROUNDS 40
#define WORDS (BOUNCE_PAGES * PAGE_SIZE / 8)

static struct vblk blk;
static volatile int blk_ready;
static uint64_t retries[64], conversions[64], failures;

static uint64_t data_word(int cpu, int round, uint64_t i)
{
	return ((uint64_t)cpu << 56) ^ ((uint64_t)round << 40) ^ (i * 0x9e3779b97f4a7c15ULL);
}

static uint64_t sum(const uint64_t *p, uint64_t n)
{
	uint64_t s = 0;

	for (uint64_t i = 0; i < n; i++)
		s = s * 31 + p[i];
	return s;
}

static void fail(int cpu, const char *what, int round)
{
	printf("demo: vCPU %d: %s (round %d)\n", cpu, what, round);
	__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
}

static void run(int cpu)
{
	static const unsigned char encoded[SECRET_LEN] = SECRET_ENCODED;
	const uint32_t len = BOUNCE_PAGES * PAGE_SIZE;
	uint64_t *secret = alloc_pages(1), *bounce = alloc_pages(BOUNCE_PAGES), check;
	int slot = cpu % VBLK_SLOTS;

	/* the secret: private before a byte of it is written */
	if (unshare(secret, PAGE_SIZE, &retries[cpu])) {
		fail(cpu, "cannot make the secret page private", 0);
		return;
	}
	for (int i = 0; i < SECRET_LEN; i++)
		((uint8_t *)secret)[i] = encoded[i] ^ SECRET_XOR;
	for (uint64_t i = SECRET_LEN / 8; i < PAGE_SIZE / 8; i++)
		secret[i] = data_word(cpu, -1, i);
	check = sum(secret, PAGE_SIZE / 8);

	for (int round = 0; round < ROUNDS; round++) {
		uint64_t sector = ((uint64_t)cpu * ROUNDS + round) * (len / VIRTIO_BLK_SECTOR) %
				  (blk.capacity - len / VIRTIO_BLK_SECTOR);

		if (share(bounce, len, &retries[cpu])) {
			fail(cpu, "share failed", round);
			return;
		}
		for (uint64_t i = 0; i < WORDS; i++)
			bounce[i] = data_word(cpu, round, i);
		if (vblk_rw(&blk, slot, VIRTIO_BLK_T_OUT, sector, bounce, len) != VIRTIO_BLK_S_OK)
			fail(cpu, "disk write failed", round);
		memset(bounce, 0, len);
		vblk_submit(&blk, slot, VIRTIO_BLK_T_IN, sector, bounce, len);
		/* privatize while the read may still be in flight: the pin says wait */
		if (unshare(bounce, len, &retries[cpu]))
			fail(cpu, "unshare failed", round);
		conversions[cpu] += 2;
		if (vblk_wait(&blk, slot) != VIRTIO_BLK_S_OK)
			fail(cpu, "disk read failed", round);
		for (uint64_t i = 0; i < WORDS; i++) {
			if (bounce[i] != data_word(cpu, round, i)) {
				fail(cpu, "data read back differs", round);
				break;
			}
		}
		if (sum(secret, PAGE_SIZE / 8) != check)
			fail(cpu, "the secret changed", round);
	}
}

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint64_t total_retries = 0, total_conversions = 0;

	if (cpu == 0) {
		printf("demo guest: %d vCPUs, %llu MiB of RAM\n", ncpus,
		       (unsigned long long)(ram_size >> 20));
		if (vblk_init(&blk, VIRTIO_BLK_MMIO))
			return 1;
		__atomic_store_n(&blk_ready, 1, __ATOMIC_RELEASE);
	}
	while (!__atomic_load_n(&blk_ready, __ATOMIC_ACQUIRE))
		cpu_relax();
	run(cpu);
	barrier();
	if (cpu)
		return 0;
	for (int i = 0; i < ncpus; i++) {
		total_retries += retries[i];
		total_conversions += conversions[i];
	}
	printf("demo guest: %llu conversions, %llu -EAGAIN retries, %llu disk requests (%llu bytes), "
	       "%llu failures\n",
	       (unsigned long long)total_conversions, (unsigned long long)total_retries,
	       (unsigned long long)blk.requests, (unsigned long long)blk.bytes,
	       (unsigned long long)failures);
	return failures ? 1 : 0;
}
