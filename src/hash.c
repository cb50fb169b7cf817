// SPDX-License-Identifier: MIT
/*
 * hash.c - the snapshot format's checksum, XXH3-64 (docs/SNAPSHOT.md),
 * in its AVX2 build where the processor has AVX2: twice as fast here, and
 * a save hashes every byte it writes.  Both builds give the same hashes.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "internal.h"

uint64_t snap_hash(const void *p, size_t len, uint64_t seed)
{
#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx2"))
		return snap_hash_avx2(p, len, seed);
#endif
	return XXH3_64bits_withSeed(p, len, seed);
}
