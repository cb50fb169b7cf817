/* SPDX-License-Identifier: MIT */
/*
 * postcopy.h - a migration's post-copy phase (docs/MIGRATION.md): the VM
 * runs at the destination while its pages still come - the ones it
 * touches first, fetched, and the rest pushed by the source meanwhile.
 */
#ifndef GMEM_VMM_POSTCOPY_H
#define GMEM_VMM_POSTCOPY_H

#include <stdint.h>

#include "migrate.h"
#include "vm.h"

/* What a post-copy phase did, either side. */
struct pc_stats {
	uint64_t fetches;        /* MIG_FETCH frames: asked (destination) or answered (source) */
	uint64_t pages_fetched;  /* pages sent on those */
	uint64_t pages_pushed;   /* pages the source sent on its own */
	double ms;               /* GO to the last page here (or to the end, if the VM ended first) */
	bool complete;           /* every page came */
};

/*
 * The source, once the post-copy file and the VM's state are sent: a
 * thread answers the destination's fetches (and takes its READY and
 * DONE) from here on.  pc_out_ready() waits for READY; after GO,
 * pc_out_push() sends every page not sent yet and returns once the
 * destination needs no more (0) or the connection failed (-errno, why
 * in msg).  pc_out_stop() ends the thread (the connection is the
 * caller's, and stays open) and says what was sent.
 */
struct pc_out;
int pc_out_start(struct pc_out **po, struct mig_conn *c, struct gmem *g);
int pc_out_ready(struct pc_out *po, unsigned int timeout_s, char *msg, size_t msg_len);
int pc_out_send(struct pc_out *po, uint32_t type); /* beside the answers */
int pc_out_push(struct pc_out *po, char *msg, size_t msg_len);
void pc_out_stop(struct pc_out *po, struct pc_stats *st);

/*
 * The destination, at the MIG_POSTCOPY frame: the post-copy file read
 * into g (gmem_postcopy_restore()), and a thread that reads every frame
 * from then on: MIG_PAGES into g, the others handed to pc_in_next() (the
 * VM's state, GO).  pc_in_send() sends beside the fetches.  Once the VM
 * runs (pc_in_go()), a connection that fails before every page came ends
 * it (vm_end(), status 1: neither side holds all of it).  pc_in_finish(),
 * the VM ended: DONE if the source still waits, the thread ended, the
 * pages still missing failed (gmem_postcopy_abort()) so that nothing
 * waits for them; 0, or the connection's error.
 */
struct pc_in;
int pc_in_start(struct pc_in **pi, struct mig_conn *c, struct gmem *g, struct vm *vm);
int pc_in_next(struct pc_in *pi, unsigned int timeout_s, uint32_t *type, char **payload,
	       uint64_t *len);
int pc_in_send(struct pc_in *pi, uint32_t type);
void pc_in_go(struct pc_in *pi);
int pc_in_finish(struct pc_in *pi, struct pc_stats *st, char *msg, size_t msg_len);

#endif /* GMEM_VMM_POSTCOPY_H */
