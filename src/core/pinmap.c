// SPDX-License-Identifier: MIT
/*
 * pinmap.c - a sparse table of per-page pin words.
 *
 * Leaves and mids are published with a compare-and-swap so that two
 * pinners creating the same leaf agree on one; the loser frees its copy.
 */
#include "pinmap.h"

#include <stdlib.h>
#include <string.h>

#define MID_INDEX(p) ((p) >> (PINMAP_LEAF_SHIFT + PINMAP_MID_SHIFT))
#define LEAF_INDEX(p) (((p) >> PINMAP_LEAF_SHIFT) & ((1u << PINMAP_MID_SHIFT) - 1))

int pinmap_init(struct pinmap *pm, uint64_t npages)
{
	memset(pm, 0, sizeof(*pm));
	pm->npages = npages;
	pm->ntop = (size_t)((npages + PINMAP_MID_PAGES - 1) / PINMAP_MID_PAGES);
	pm->top = calloc(pm->ntop, sizeof(pm->top[0]));
	return pm->top ? 0 : -ENOMEM;
}

void pinmap_fini(struct pinmap *pm)
{
	for (size_t i = 0; i < pm->ntop; i++) {
		struct pinmap_mid *mid = atomic_load(&pm->top[i]);

		if (!mid)
			continue;
		for (size_t j = 0; j < (1u << PINMAP_MID_SHIFT); j++)
			free(atomic_load(&mid->leaf[j]));
		free(mid);
	}
	free(pm->top);
	memset(pm, 0, sizeof(*pm));
}

pinword_t *pinmap_word_create(struct pinmap *pm, uint64_t p, pinmap_init_fn init, void *arg)
{
	struct pinmap_mid *mid = atomic_load_explicit(&pm->top[MID_INDEX(p)], memory_order_acquire);
	struct pinmap_leaf *leaf, *expect = NULL;
	uint64_t first, n;

	if (!mid) {
		struct pinmap_mid *fresh = calloc(1, sizeof(*fresh));
		struct pinmap_mid *none = NULL;

		if (!fresh)
			return NULL;
		if (atomic_compare_exchange_strong(&pm->top[MID_INDEX(p)], &none, fresh)) {
			mid = fresh;
		} else {
			free(fresh);
			mid = none;
		}
	}
	leaf = atomic_load_explicit(&mid->leaf[LEAF_INDEX(p)], memory_order_acquire);
	if (leaf)
		return &leaf->w[p & (PINMAP_LEAF_PAGES - 1)];

	leaf = malloc(sizeof(*leaf));
	if (!leaf)
		return NULL;
	first = p & ~(PINMAP_LEAF_PAGES - 1);
	n = pm->npages - first < PINMAP_LEAF_PAGES ? pm->npages - first : PINMAP_LEAF_PAGES;
	for (uint64_t i = n; i < PINMAP_LEAF_PAGES; i++)
		atomic_init(&leaf->w[i], pw_make(GMEM_PRIVATE)); /* past the end: never pinnable */
	init(arg, first, n, leaf->w);
	if (!atomic_compare_exchange_strong(&mid->leaf[LEAF_INDEX(p)], &expect, leaf)) {
		free(leaf); /* another thread made it first */
		leaf = expect;
	}
	return &leaf->w[p & (PINMAP_LEAF_PAGES - 1)];
}

pinword_t *pinmap_next(const struct pinmap *pm, uint64_t *p, uint64_t end)
{
	uint64_t q = *p;

	while (q < end) {
		struct pinmap_mid *mid =
			atomic_load_explicit(&pm->top[MID_INDEX(q)], memory_order_acquire);
		struct pinmap_leaf *leaf;

		if (!mid) {
			q = (q | (PINMAP_MID_PAGES - 1)) + 1;
			continue;
		}
		leaf = atomic_load_explicit(&mid->leaf[LEAF_INDEX(q)], memory_order_acquire);
		if (!leaf) {
			q = (q | (PINMAP_LEAF_PAGES - 1)) + 1;
			continue;
		}
		*p = q;
		return &leaf->w[q & (PINMAP_LEAF_PAGES - 1)];
	}
	return NULL;
}
