// SPDX-License-Identifier: MIT
/*
 * pagecheck.c - the one check of page contents the stress test and the
 * soak share (pagecheck.h).
 */
#include "pagecheck.h"

#include <stdio.h>

void pc_fill(volatile void *p, uint64_t word)
{
	for (size_t i = 0; i < PC_WORDS; i++)
		((volatile uint64_t *)p)[i] = word;
}

struct pc_check pc_check(const void *p, uint64_t page)
{
	const uint64_t *w = p;
	struct pc_check c = { .verdict = PC_PUBLIC, .word = w[0] };

	for (size_t i = 1; i < PC_WORDS; i++) {
		if (w[i] != w[0]) {
			c.verdict = PC_TORN;
			c.torn_at = i;
			c.torn_word = w[i];
			return c;
		}
	}
	if (pc_is_secret(c.word))
		c.verdict = PC_SECRET;
	else if (!c.word)
		c.verdict = PC_ZERO;
	else if (c.word >> 40 != page)
		c.verdict = PC_FOREIGN;
	return c;
}

const char *pc_describe(const struct pc_check *c, uint64_t page, char *buf, size_t len)
{
	unsigned long long pg = (unsigned long long)page;

	switch (c->verdict) {
	case PC_TORN:
		snprintf(buf, len, "page %llu is torn (word %zu %#llx, word 0 %#llx)", pg,
			 c->torn_at, (unsigned long long)c->torn_word, (unsigned long long)c->word);
		break;
	case PC_SECRET:
		snprintf(buf, len, "the host read page %llu's guest secret", pg);
		break;
	case PC_FOREIGN:
		snprintf(buf, len, "page %llu holds page %llu's data", pg,
			 (unsigned long long)(c->word >> 40));
		break;
	default:
		snprintf(buf, len, "page %llu holds %#llx", pg, (unsigned long long)c->word);
		break;
	}
	return buf;
}
