/* SPDX-License-Identifier: MIT */
/*
 * strategy.h - ways to hold a VM's memory, compared side by side.
 *
 *   gmem      libgmem: one file, in-place conversion, views, pins
 *   discard   today's guest_memfd VMMs: a shared file and a private one; a
 *             conversion punches the page out of one and allocates it in
 *             the other.  Contents are lost, and a host touch of a private
 *             offset allocates a fresh shared page: memory can double.
 *   mprotect  the obvious user-space way: one file, PROT_NONE over the
 *             private ranges of every view.  Contents kept; each boundary
 *             splits a VMA, up to vm.max_map_count.
 *   none      a plain shared mapping, no enforcement: the floor for host
 *             access cost.
 * The baselines do the same work as gmem for the same inputs: the same
 * views, the same conversions, pins that make a conversion of a pinned
 * page fail (counted per page, checked before converting).
 */
#ifndef GMEM_BENCH_STRATEGY_H
#define GMEM_BENCH_STRATEGY_H

#include <stdbool.h>
#include <stdint.h>

#define MAX_VIEWS 4

struct strat;

struct strat_ops {
	const char *name;
	bool keeps_contents; /* conversions preserve data */
	bool enforces;       /* a host touch of a private page is refused */
	int (*create)(struct strat *s, uint64_t size);
	void (*destroy)(struct strat *s);
	int (*map_view)(struct strat *s, char **addr); /* a host view of all of it */
	int (*map_guest)(struct strat *s, char **addr); /* what the guest's memslot maps */
	int (*convert)(struct strat *s, uint64_t off, uint64_t len, bool to_private);
	int (*pin)(struct strat *s, uint64_t off, uint64_t len);
	int (*unpin)(struct strat *s, uint64_t off, uint64_t len);
	uint64_t (*state_bytes)(struct strat *s); /* memory spent on who-is-private */
	uint64_t (*resident_bytes)(struct strat *s); /* pages held by the backing(s) */
};

struct strat {
	const struct strat_ops *ops;
	uint64_t size;
	char *view[MAX_VIEWS];
	int nviews;
	char *guest; /* mapped by strat_open too */
	void *impl;
};

extern const struct strat_ops strat_gmem, strat_discard, strat_mprotect, strat_none;
extern const struct strat_ops *const strategies[]; /* NULL-terminated */

/* Create, with nviews views (at most MAX_VIEWS); 0 or -errno. */
int strat_open(struct strat *s, const struct strat_ops *ops, uint64_t size, int nviews);
void strat_close(struct strat *s);

#endif /* GMEM_BENCH_STRATEGY_H */
