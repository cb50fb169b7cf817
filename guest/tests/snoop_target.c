// SPDX-License-Identifier: MIT
/*
 * snoop_target.c - a guest that keeps converting pages while the host's
 * snoop reads all of RAM: the guest runs on unaffected, its private data
 * stays intact, the host is refused.
 */
#include "rt.h"
#include "secret.h"

int main(int cpu, int ncpus, uint64_t ram_size)
{
	static const unsigned char encoded[SECRET_LEN] = SECRET_ENCODED;
	uint64_t *secret = alloc_pages(1), *buf = alloc_pages(4);

	(void)cpu, (void)ncpus, (void)ram_size;
	CHECK(unshare(secret, PAGE_SIZE, NULL) == 0);
	for (int i = 0; i < SECRET_LEN; i++)
		((uint8_t *)secret)[i] = encoded[i] ^ SECRET_XOR;
	for (int round = 0; round < 300; round++) {
		CHECK(share(buf, 4 * PAGE_SIZE, NULL) == 0);
		buf[round % 2048] = (uint64_t)round;
		CHECK(unshare(buf, 4 * PAGE_SIZE, NULL) == 0);
		CHECK(buf[round % 2048] == (uint64_t)round);
	}
	CHECK(((uint8_t *)secret)[0] == (encoded[0] ^ SECRET_XOR));
	printf("snoop_target: done\n");
	return 0;
}
