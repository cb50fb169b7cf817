/* SPDX-License-Identifier: MIT */
/*
 * rounds.h - gmem-vmm's --track run: dirty-tracking rounds taken while the
 * guest runs and once at its end, what each found and cost, and what
 * tracking did to the guest mapping's huge pages.
 */
#ifndef GMEM_VMM_ROUNDS_H
#define GMEM_VMM_ROUNDS_H

#include <stdio.h>

#include "dirty.h"

struct rounds_config {
	enum dirty_mode mode;
	unsigned int rounds;      /* taken while the guest runs */
	unsigned int interval_ms; /* before each of them */
	unsigned int delay_ms;    /* 0: tracking starts before the guest; else this long after */
	const char *map;          /* NULL, or a file for every round's pages */
};

struct rounds {
	struct rounds_config cfg;
	struct dirty d;
	uint64_t *bitmap, *seen; /* the last round's pages; every round's */
	struct dirty_round *r;   /* each round's figures */
	unsigned int n;          /* rounds taken, the end's included */
	bool at_end;             /* the last of them is the end's */
	FILE *map;
	/*
	 * gmem_huge_info()'s blocks_guest_huge - measured on backings with
	 * huge pages only (else -1): as tracking started, the fewest after a
	 * round, after it stopped, and after dirty_rehuge(), which left
	 * `busy` blocks pinned.
	 */
	int64_t huge_start, huge_min, huge_stopped, huge_rehuged;
	uint64_t busy;
};

/* Set up (nothing tracked yet): 0, or -errno with a message printed. */
int rounds_init(struct rounds *t, const struct rounds_config *cfg);
/* Start tracking vm: 0, or -errno with why in msg. */
int rounds_start(struct rounds *t, struct vm *vm, char *msg, size_t len);
/*
 * Run the guest to its end, taking the rounds on the way (and starting
 * tracking first if cfg.delay_ms says so); a failure ends the VM with an
 * error, the timeout (timeout_s, 0: none) with 124.
 */
void rounds_run(struct rounds *t, struct vm *vm, unsigned int timeout_s);
/*
 * Once the vCPUs and devices have stopped: the end's round, then stop
 * tracking and give the guest mapping its huge pages back.  0, or -errno
 * with why in msg.  Does nothing if tracking never started.
 */
int rounds_end(struct rounds *t, struct vm *vm, char *msg, size_t len);
/* What the rounds found: a table on f; a JSON object (no newline after it). */
void rounds_print(const struct rounds *t, const struct vm *vm, FILE *f);
void rounds_json(const struct rounds *t, FILE *f);
void rounds_fini(struct rounds *t);

#endif /* GMEM_VMM_ROUNDS_H */
