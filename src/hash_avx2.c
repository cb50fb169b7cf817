// SPDX-License-Identifier: MIT
/*
 * hash_avx2.c - XXH3-64 built for AVX2 (this file alone is compiled with
 * -mavx2); hash.c calls it only where the processor has AVX2.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "internal.h"

uint64_t snap_hash_avx2(const void *p, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(p, len, seed);
}
