/* SPDX-License-Identifier: MIT */
/*
 * pagecheck.h - the page contents the stress test and the soak write, and
 * the one check of what a host reads back.
 *
 * A page holds zeros (discarded, or never written) or one 64-bit word
 * repeated: public data, naming its page and a generation, or - written by
 * the guest into private pages only - a guest secret, naming its page.  A
 * page read back must be whole (every word the same: a conversion moves
 * or zeroes whole pages, never part of one), well-formed, its own (the
 * page it names is the page it was read from), and never a secret.
 */
#ifndef GMEM_TEST_PAGECHECK_H
#define GMEM_TEST_PAGECHECK_H

#include <stddef.h>
#include <stdint.h>

#include "gmem.h"

#define PC_WORDS (GMEM_PAGE_SIZE / 8)
#define PC_SECRET_MARK 0x5ec4e7000000000ULL /* a secret word, less its page's low 12 bits */

/* Public data of page `page` (below 2^24), generation `gen` (its low 40 bits). */
static inline uint64_t pc_public(uint64_t page, uint64_t gen)
{
	return page << 40 | (gen & 0xffffffffffULL);
}

/* The guest's secret in page `page`. */
static inline uint64_t pc_secret(uint64_t page)
{
	return PC_SECRET_MARK | (page & 0xfff);
}

static inline int pc_is_secret(uint64_t word)
{
	return (word & ~0xfffULL) == PC_SECRET_MARK;
}

/* Store `word` over a page at p (plain stores: where no signal can come). */
void pc_fill(volatile void *p, uint64_t word);

enum pc_verdict {
	PC_ZERO,    /* all zero */
	PC_PUBLIC,  /* whole public data of this page */
	PC_TORN,    /* words differ */
	PC_SECRET,  /* a guest secret */
	PC_FOREIGN, /* another page's data */
};

struct pc_check {
	enum pc_verdict verdict;
	uint64_t word;      /* word 0 */
	size_t torn_at;     /* PC_TORN: the first word that differs ... */
	uint64_t torn_word; /* ... and what it holds */
};

/* Check a page's worth of contents at p, read from page `page`. */
struct pc_check pc_check(const void *p, uint64_t page);

/* Whether the verdict is one a host read may give: zero or public data. */
static inline int pc_ok(const struct pc_check *c)
{
	return c->verdict == PC_ZERO || c->verdict == PC_PUBLIC;
}

/* What is wrong with a page that is not pc_ok(), in words, into buf. */
const char *pc_describe(const struct pc_check *c, uint64_t page, char *buf, size_t len);

#endif /* GMEM_TEST_PAGECHECK_H */
