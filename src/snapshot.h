/* SPDX-License-Identifier: MIT */
/*
 * snapshot.h - the snapshot file format (docs/SNAPSHOT.md), shared by the
 * writer and the reader: little-endian, every record checksummed.
 */
#ifndef GMEM_SNAPSHOT_H
#define GMEM_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define SNAP_MAGIC "GMEMSNAP"
#define SNAP_VERSION 1

/* kind */
#define SNAP_FULL 0
#define SNAP_LAYER 1

/* record types */
#define REC_STATES 1 /* count runs of snap_run: every page's state */
#define REC_DATA 2   /* count pages from first: their contents */
#define REC_HOLE 3   /* count pages from first: no memory (layers only) */
#define REC_END 4    /* count: the records before it; first: the data (or named) pages */
#define REC_LATER 5  /* count pages from first: contents sent apart (post-copy files only) */

/* header flags */
#define SNAP_F_POSTCOPY 1u /* names pages (REC_LATER) whose records are sent apart */

/*
 * Pages in one data record at most: what a reader must buffer, and what a
 * lazy restore reads and checks to fill a page (64 KiB: tens of
 * microseconds a fault).
 */
#define SNAP_DATA_MAX 16

struct snap_header {
	char magic[8];
	uint32_t version;
	uint32_t kind;
	uint32_t backing;
	uint32_t flags; /* SNAP_F_*: a reader refuses any other */
	uint64_t size;
	uint64_t id;     /* this file's, random, never 0 */
	uint64_t parent; /* a layer: the id of the file it applies on; a full: 0 */
	uint64_t seq;    /* a full: 0; a layer: its parent's + 1 */
	uint64_t hash;   /* XXH3-64 of the bytes above */
};

struct snap_record {
	uint32_t type;
	uint32_t flags; /* none defined */
	uint64_t first;
	uint64_t count;
	/*
	 * XXH3-64 of the payload, seeded with the XXH3-64 of the bytes above,
	 * itself seeded with the file's id plus the record's index: a record
	 * moved, dropped or taken from another file does not check.
	 */
	uint64_t hash;
};

struct snap_run {
	uint64_t first, count;
	uint32_t state; /* GMEM_SHARED or GMEM_PRIVATE */
	uint32_t pad;   /* 0 */
};

_Static_assert(sizeof(struct snap_header) == 64, "snapshot header layout");
_Static_assert(sizeof(struct snap_record) == 32, "snapshot record layout");
_Static_assert(sizeof(struct snap_run) == 24, "snapshot run layout");

static inline uint64_t snap_seed(uint64_t id, uint64_t index)
{
	return id + index * 0x9e3779b97f4a7c15ULL;
}

/*
 * A post-copy file's records sent apart have no place in it: each is
 * seeded as if its index were this plus its first page, so it checks only
 * as that file's record for those pages.
 */
#define SNAP_LOOSE (1ULL << 63)

/* A record's hash: its fields, then its payload seeded with theirs (snapshot.c). */
uint64_t snap_record_hash(uint64_t id, uint64_t index, const struct snap_record *r,
			  const void *payload, size_t len);

#endif /* GMEM_SNAPSHOT_H */
