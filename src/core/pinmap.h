/* SPDX-License-Identifier: MIT */
/*
 * pinmap.h - a sparse table of per-page pin words (pinword.h).
 *
 * Pins are the hot path (a VMM pins every I/O buffer), so a pin must not
 * take a lock: the table is a radix of leaves of 512 words, found with two
 * acquire loads.  Leaves exist only where pages were ever pinned, so a
 * 1 TiB object that pins a few buffers holds a few leaves.  A leaf is
 * published once, initialised from the page states, and lives until
 * pinmap_fini(); the caller keeps the words' states equal to its own state
 * map (it creates leaves and changes states under its lock).
 */
#ifndef GMEM_CORE_PINMAP_H
#define GMEM_CORE_PINMAP_H

#include <stddef.h>
#include <stdint.h>

#include "pinword.h"

#define PINMAP_LEAF_SHIFT 9
#define PINMAP_LEAF_PAGES (1ULL << PINMAP_LEAF_SHIFT)
#define PINMAP_MID_SHIFT 9
#define PINMAP_MID_PAGES (1ULL << (PINMAP_LEAF_SHIFT + PINMAP_MID_SHIFT))

struct pinmap_leaf {
	pinword_t w[PINMAP_LEAF_PAGES];
};

struct pinmap_mid {
	struct pinmap_leaf *_Atomic leaf[1u << PINMAP_MID_SHIFT];
};

struct pinmap {
	uint64_t npages;
	size_t ntop;
	struct pinmap_mid *_Atomic *top;
};

/* Fills the words of pages [first, first + n) of a new leaf. */
typedef void (*pinmap_init_fn)(void *arg, uint64_t first, uint64_t n, pinword_t *w);

int pinmap_init(struct pinmap *pm, uint64_t npages);
void pinmap_fini(struct pinmap *pm);

/* The word of page p, or NULL if its leaf does not exist yet.  Lock-free. */
static inline pinword_t *pinmap_word(const struct pinmap *pm, uint64_t p)
{
	struct pinmap_mid *mid =
		atomic_load_explicit(&pm->top[p >> (PINMAP_LEAF_SHIFT + PINMAP_MID_SHIFT)],
				     memory_order_acquire);
	struct pinmap_leaf *leaf;

	if (!mid)
		return NULL;
	leaf = atomic_load_explicit(&mid->leaf[(p >> PINMAP_LEAF_SHIFT) &
					       ((1u << PINMAP_MID_SHIFT) - 1)],
				    memory_order_acquire);
	return leaf ? &leaf->w[p & (PINMAP_LEAF_PAGES - 1)] : NULL;
}

/*
 * The word of page p, creating its leaf with init if needed; NULL only for
 * -ENOMEM.  Concurrent callers agree on one leaf.
 */
pinword_t *pinmap_word_create(struct pinmap *pm, uint64_t p, pinmap_init_fn init, void *arg);

/*
 * The first existing word at a page in [*p, end), with *p set to its page;
 * NULL if none.  Skips absent leaves whole: walk a range with
 *	for (p = s; (w = pinmap_next(pm, &p, e)); p++)
 */
pinword_t *pinmap_next(const struct pinmap *pm, uint64_t *p, uint64_t end);

#endif /* GMEM_CORE_PINMAP_H */
