/* SPDX-License-Identifier: MIT */
/*
 * migration.h - a running VM moved to another gmem-vmm (docs/MIGRATION.md):
 * the source's pre-copy rounds and hand-over, the destination's side.
 */
#ifndef GMEM_VMM_MIGRATION_H
#define GMEM_VMM_MIGRATION_H

#include <stdio.h>

#include "migrate.h"
#include "postcopy.h"
#include "save.h"

#define MIG_ROUNDS_MAX 32 /* pre-copy rounds before the last one, whatever they come to */

struct mig_round {
	uint64_t pages; /* pages sent (a round's data records) */
	double ms;      /* how long it took */
};

/* What a migration did: printed as it goes on a terminal, and in --stats. */
struct mig_report {
	const char *addr;
	bool incoming;     /* the destination's report */
	bool done;         /* the destination took over (source), or runs the VM (destination) */
	unsigned int nrounds; /* rounds sent or received, the full copy first, the last one last */
	struct mig_round rounds[MIG_ROUNDS_MAX + 2];
	uint64_t pages_populated; /* the source's, when the full copy began */
	uint64_t pages_sent;
	double downtime_ms; /* source: the vCPUs paused to the hand-over sent */
	double total_ms;    /* source: connecting to the hand-over; destination: HELLO to GO */
	bool postcopy;      /* the VM moved before its pages: they followed */
	struct pc_stats pc; /* ... and how */
	struct pc_in *pin;  /* destination: the post-copy phase, until pc_in_finish() */
};

struct mig_options {
	const char *addr;
	unsigned int max_downtime_ms;
	bool postcopy; /* after postcopy_rounds pre-copy rounds: the VM moves, its pages follow */
	unsigned int postcopy_rounds;
};

/*
 * Source: migrate the running VM of s (pre-copy, or post-copy).  0 once
 * the destination has taken over (post-copy: and has every page, or its
 * VM ended): the VM stays paused for good, for the caller to end.
 * -ECANCELED if the VM ended meanwhile.  -ENOTRECOVERABLE, with why in
 * msg, when post-copy failed after the hand-over: the VM is lost (neither
 * side holds all of it).  Another -errno, with why in msg, when the
 * migration failed: the VM runs on as if it had not been tried.
 */
int migrate_out(struct snap_run *s, const struct mig_options *o, struct mig_report *r,
		char *msg, size_t msg_len);

/*
 * Destination, in three steps around making the machine: the source's
 * HELLO into `in` (its SEC_CONFIG, for the options); the memory into the
 * VM's (post-copy: what it names, the pages to follow) and the VMM's
 * state into `in`; then READY, and 0 once the source says GO - run the
 * VM.  Each: 0, or -errno with why in msg (the source runs on, unless it
 * had said GO).  After a post-copy, once the VM ended: migrate_in_end(),
 * whatever came before it - 0, or -errno with why in msg when pages
 * never came.
 */
int migrate_in_hello(struct mig_conn *c, struct snapv_in *in, struct mig_report *r, char *msg,
		     size_t msg_len);
int migrate_in_memory(struct mig_conn *c, struct vm *vm, struct snapv_in *in,
		      struct mig_report *r, char *msg, size_t msg_len);
int migrate_in_commit(struct mig_conn *c, struct mig_report *r, char *msg, size_t msg_len);
int migrate_in_end(struct mig_report *r, char *msg, size_t msg_len);

/* The report as a JSON object (--stats). */
void migration_json(const struct mig_report *r, FILE *f);

#endif /* GMEM_VMM_MIGRATION_H */
