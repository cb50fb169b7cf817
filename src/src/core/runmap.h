/* SPDX-License-Identifier: MIT */
/*
 * runmap.h - a map from page index to a small value, kept as merged runs.
 *
 * gmem keeps page states (and each view's denied pages) as runs because a
 * VM's memory is converted in ranges: a 1 TiB object with 10,000 private
 * ranges must cost kilobytes, and a lookup must stay O(log runs).  Runs are
 * stored as their start pages, 8 bytes each, in sorted chunks of up to
 * RUNMAP_CHUNK entries with an index of each chunk's first start.
 *
 * Not thread-safe: the owner serialises access.  Modifications may need
 * memory; runmap_reserve() obtains it in advance so that the modifications
 * that follow (each needing at most two new run boundaries) cannot fail.
 */
#ifndef GMEM_CORE_RUNMAP_H
#define GMEM_CORE_RUNMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RUNMAP_CHUNK 64

struct runmap_chunk;

struct runmap {
	uint64_t npages;
	struct runmap_chunk **chunks; /* in page order */
	uint64_t *keys;               /* keys[i]: first start in chunks[i] */
	size_t nchunks, cap;
	struct runmap_chunk *spare; /* reserved chunks, linked through their first entry */
	size_t nspare;
	size_t want; /* spares the last runmap_reserve() asked to keep */
	size_t nruns;
};

/* One run, clipped to the range an iterator walks. */
struct run {
	uint64_t start, end;
	uint8_t val;
};

struct runmap_iter {
	const struct runmap *m;
	size_t ci, ei;
	uint64_t start, end; /* runs are clipped to [start, end) */
};

/* A set of values, for the calls that match several. */
#define RUNMAP_MASK(v) (1u << (v))
#define RUNMAP_ANY 0xffffffffu

int runmap_init(struct runmap *m, uint64_t npages, uint8_t val);
void runmap_fini(struct runmap *m);

/* Make the next `insertions` run boundaries need no allocation; -ENOMEM. */
int runmap_reserve(struct runmap *m, size_t insertions);

/* The value at page p, and (if not NULL) the run holding it. */
uint8_t runmap_get(const struct runmap *m, uint64_t p, uint64_t *start, uint64_t *end);

/*
 * In [s, e), give every page whose value is in from_mask the value to.
 * Returns the number of pages changed, or -ENOMEM (nothing changed) when a
 * needed boundary could not be allocated; never fails after a
 * runmap_reserve(m, 2) that succeeded.
 */
int64_t runmap_replace(struct runmap *m, uint64_t s, uint64_t e, uint32_t from_mask, uint8_t to);

static inline int64_t runmap_set(struct runmap *m, uint64_t s, uint64_t e, uint8_t to)
{
	return runmap_replace(m, s, e, RUNMAP_ANY, to);
}

/* The first page in [s, e) whose value is in mask, or e. */
uint64_t runmap_find(const struct runmap *m, uint64_t s, uint64_t e, uint32_t mask);

/* How many pages in [s, e) have a value in mask. */
uint64_t runmap_count(const struct runmap *m, uint64_t s, uint64_t e, uint32_t mask);

void runmap_iter_start(struct runmap_iter *it, const struct runmap *m, uint64_t s, uint64_t e);
bool runmap_iter_next(struct runmap_iter *it, struct run *r);

static inline size_t runmap_runs(const struct runmap *m)
{
	return m->nruns;
}

/* Heap bytes the map holds, spares included. */
size_t runmap_bytes(const struct runmap *m);

/* Check the representation's invariants (tests): 0 or -EUCLEAN. */
int runmap_check(const struct runmap *m);

#endif /* GMEM_CORE_RUNMAP_H */
