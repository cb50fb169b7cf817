// SPDX-License-Identifier: MIT
/*
 * runmap.c - a map from page index to a small value, kept as merged runs.
 *
 * Each run is one 64-bit entry, (start << 8 | value); a run ends where the
 * next one starts.  Entries live in sorted chunks; keys[] indexes the first
 * start of every chunk so that a lookup is two binary searches.  Adjacent
 * runs never hold the same value, so the number of runs is the number of
 * value changes and nothing else.
 */
#include "runmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define E_START(x) ((x) >> 8)
#define E_VAL(x) ((uint8_t)(x))
#define E_MAKE(s, v) (((uint64_t)(s) << 8) | (uint8_t)(v))
#define SPARE_KEEP 16

struct runmap_chunk {
	uint32_t n;
	struct runmap_chunk *next_spare;
	uint64_t e[RUNMAP_CHUNK];
};

static struct runmap_chunk *take_spare(struct runmap *m)
{
	struct runmap_chunk *c = m->spare;

	/* runmap_reserve() guarantees one; callers go through it */
	m->spare = c->next_spare;
	m->nspare--;
	c->n = 0;
	return c;
}

static void give_spare(struct runmap *m, struct runmap_chunk *c)
{
	if (m->nspare >= SPARE_KEEP && m->nspare >= m->want) {
		free(c);
		return;
	}
	c->next_spare = m->spare;
	m->spare = c;
	m->nspare++;
}

static int ensure(struct runmap *m, size_t insertions)
{
	if (m->cap < m->nchunks + insertions) {
		size_t cap = m->cap ? m->cap : 4;
		uint64_t *keys;
		struct runmap_chunk **chunks;

		while (cap < m->nchunks + insertions)
			cap *= 2;
		keys = realloc(m->keys, cap * sizeof(*keys));
		if (!keys)
			return -ENOMEM;
		m->keys = keys;
		chunks = realloc(m->chunks, cap * sizeof(*chunks));
		if (!chunks)
			return -ENOMEM;
		m->chunks = chunks;
		m->cap = cap;
	}
	while (m->nspare < insertions) {
		struct runmap_chunk *c = malloc(sizeof(*c));

		if (!c)
			return -ENOMEM;
		c->next_spare = m->spare;
		m->spare = c;
		m->nspare++;
	}
	return 0;
}

int runmap_reserve(struct runmap *m, size_t insertions)
{
	m->want = insertions;
	return ensure(m, insertions);
}

int runmap_init(struct runmap *m, uint64_t npages, uint8_t val)
{
	memset(m, 0, sizeof(*m));
	m->npages = npages;
	if (ensure(m, 1)) {
		runmap_fini(m);
		return -ENOMEM;
	}
	m->chunks[0] = take_spare(m);
	m->chunks[0]->e[0] = E_MAKE(0, val);
	m->chunks[0]->n = 1;
	m->keys[0] = 0;
	m->nchunks = 1;
	m->nruns = 1;
	return 0;
}

void runmap_fini(struct runmap *m)
{
	for (size_t i = 0; i < m->nchunks; i++)
		free(m->chunks[i]);
	while (m->spare) {
		struct runmap_chunk *c = m->spare;

		m->spare = c->next_spare;
		free(c);
	}
	free(m->chunks);
	free(m->keys);
	memset(m, 0, sizeof(*m));
}

/* The position of the run holding page p. */
static void pos_find(const struct runmap *m, uint64_t p, size_t *ci, size_t *ei)
{
	size_t lo = 0, hi = m->nchunks;
	const struct runmap_chunk *c;

	while (hi - lo > 1) { /* last chunk whose key <= p; keys[0] == 0 */
		size_t mid = lo + (hi - lo) / 2;

		if (m->keys[mid] <= p)
			lo = mid;
		else
			hi = mid;
	}
	c = m->chunks[lo];
	*ci = lo;
	lo = 0;
	hi = c->n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (E_START(c->e[mid]) <= p)
			lo = mid;
		else
			hi = mid;
	}
	*ei = lo;
}

/* Start of the run after position (ci, ei), or npages. */
static uint64_t next_start(const struct runmap *m, size_t ci, size_t ei)
{
	if (ei + 1 < m->chunks[ci]->n)
		return E_START(m->chunks[ci]->e[ei + 1]);
	if (ci + 1 < m->nchunks)
		return m->keys[ci + 1];
	return m->npages;
}

static void top_insert(struct runmap *m, size_t idx, struct runmap_chunk *c)
{
	memmove(&m->keys[idx + 1], &m->keys[idx], (m->nchunks - idx) * sizeof(m->keys[0]));
	memmove(&m->chunks[idx + 1], &m->chunks[idx], (m->nchunks - idx) * sizeof(m->chunks[0]));
	m->chunks[idx] = c;
	m->keys[idx] = E_START(c->e[0]);
	m->nchunks++;
}

static void top_remove(struct runmap *m, size_t idx)
{
	memmove(&m->keys[idx], &m->keys[idx + 1], (m->nchunks - idx - 1) * sizeof(m->keys[0]));
	memmove(&m->chunks[idx], &m->chunks[idx + 1], (m->nchunks - idx - 1) * sizeof(m->chunks[0]));
	m->nchunks--;
}

/* Insert entry x so that it becomes entry ei of chunk ci. */
static void insert_entry(struct runmap *m, size_t ci, size_t ei, uint64_t x)
{
	struct runmap_chunk *c = m->chunks[ci];

	if (c->n == RUNMAP_CHUNK && ei == RUNMAP_CHUNK) {
		/*
		 * Appending past a full chunk: start the next one with the entry
		 * alone rather than halving this one, so that runs made in
		 * ascending order (the common case) leave chunks full.
		 */
		struct runmap_chunk *nc = take_spare(m);

		nc->e[0] = x;
		nc->n = 1;
		top_insert(m, ci + 1, nc);
		m->nruns++;
		return;
	}
	if (c->n == RUNMAP_CHUNK) {
		struct runmap_chunk *nc = take_spare(m);
		size_t half = RUNMAP_CHUNK / 2;

		nc->n = RUNMAP_CHUNK - half;
		memcpy(nc->e, &c->e[half], nc->n * sizeof(c->e[0]));
		c->n = half;
		top_insert(m, ci + 1, nc);
		if (ei > half) {
			ci++;
			ei -= half;
			c = nc;
		}
	}
	memmove(&c->e[ei + 1], &c->e[ei], (c->n - ei) * sizeof(c->e[0]));
	c->e[ei] = x;
	c->n++;
	if (ei == 0)
		m->keys[ci] = E_START(x);
	m->nruns++;
}

/* Delete entry (ci, ei); an emptied chunk leaves the index. */
static void delete_entry(struct runmap *m, size_t ci, size_t ei)
{
	struct runmap_chunk *c = m->chunks[ci];

	memmove(&c->e[ei], &c->e[ei + 1], (c->n - ei - 1) * sizeof(c->e[0]));
	c->n--;
	m->nruns--;
	if (c->n == 0) {
		top_remove(m, ci);
		give_spare(m, c);
	} else if (ei == 0) {
		m->keys[ci] = E_START(c->e[0]);
	}
}

/* Fold an underfull chunk into a neighbour so that memory tracks the runs. */
static void rebalance(struct runmap *m, size_t ci)
{
	struct runmap_chunk *c, *d;

	if (ci >= m->nchunks || m->chunks[ci]->n >= RUNMAP_CHUNK / 4)
		return;
	if (ci + 1 < m->nchunks &&
	    m->chunks[ci]->n + m->chunks[ci + 1]->n <= RUNMAP_CHUNK * 3 / 4) {
		c = m->chunks[ci];
		d = m->chunks[ci + 1];
		memcpy(&c->e[c->n], d->e, d->n * sizeof(d->e[0]));
		c->n += d->n;
		top_remove(m, ci + 1);
		give_spare(m, d);
	} else if (ci > 0 && m->chunks[ci - 1]->n + m->chunks[ci]->n <= RUNMAP_CHUNK * 3 / 4) {
		c = m->chunks[ci - 1];
		d = m->chunks[ci];
		memcpy(&c->e[c->n], d->e, d->n * sizeof(d->e[0]));
		c->n += d->n;
		top_remove(m, ci);
		give_spare(m, d);
	}
}

/* Start a run at page p (if none does) when the run holding it matches mask. */
static void split_at(struct runmap *m, uint64_t p, uint32_t mask)
{
	size_t ci, ei;
	uint64_t x;

	if (p >= m->npages)
		return;
	pos_find(m, p, &ci, &ei);
	x = m->chunks[ci]->e[ei];
	if (E_START(x) < p && (mask & RUNMAP_MASK(E_VAL(x))))
		insert_entry(m, ci, ei + 1, E_MAKE(p, E_VAL(x)));
}

int64_t runmap_replace(struct runmap *m, uint64_t s, uint64_t e, uint32_t from_mask, uint8_t to)
{
	size_t ci, ei, lo, hi;
	int64_t changed = 0;
	bool have_prev;
	uint8_t prev = 0;

	if (s >= e)
		return 0;
	if (ensure(m, 2))
		return -ENOMEM;
	split_at(m, s, from_mask);
	split_at(m, e, from_mask);

	/* Every matching run starting in [s, e) now ends by e. */
	pos_find(m, s, &ci, &ei);
	for (size_t i = ci, j = ei; i < m->nchunks;) {
		uint64_t *x = &m->chunks[i]->e[j];
		uint64_t st = E_START(*x);

		if (st >= e)
			break;
		if (st >= s && (from_mask & RUNMAP_MASK(E_VAL(*x))) && E_VAL(*x) != to) {
			changed += (int64_t)(next_start(m, i, j) - st);
			*x = E_MAKE(st, to);
		}
		if (++j == m->chunks[i]->n) {
			i++;
			j = 0;
		}
	}

	/* Merge equal neighbours from the run holding s through the one at e. */
	pos_find(m, s, &ci, &ei);
	have_prev = ci > 0 || ei > 0;
	if (have_prev)
		prev = ei > 0 ? E_VAL(m->chunks[ci]->e[ei - 1])
			      : E_VAL(m->chunks[ci - 1]->e[m->chunks[ci - 1]->n - 1]);
	while (ci < m->nchunks) {
		uint64_t x = m->chunks[ci]->e[ei];

		if (E_START(x) > e)
			break;
		if (have_prev && E_VAL(x) == prev) {
			size_t n = m->chunks[ci]->n;

			delete_entry(m, ci, ei);
			if (n == 1)
				continue; /* chunk gone: the next one is at ci */
			if (ei < m->chunks[ci]->n)
				continue;
		} else {
			prev = E_VAL(x);
			have_prev = true;
			if (ei + 1 < m->chunks[ci]->n) {
				ei++;
				continue;
			}
		}
		ci++;
		ei = 0;
	}

	pos_find(m, s, &lo, &ei);
	pos_find(m, e < m->npages ? e : m->npages - 1, &hi, &ei);
	for (size_t i = hi + 2; i-- > (lo ? lo - 1 : 0);)
		rebalance(m, i);
	return changed;
}

uint8_t runmap_get(const struct runmap *m, uint64_t p, uint64_t *start, uint64_t *end)
{
	size_t ci, ei;
	uint64_t x;

	pos_find(m, p, &ci, &ei);
	x = m->chunks[ci]->e[ei];
	if (start)
		*start = E_START(x);
	if (end)
		*end = next_start(m, ci, ei);
	return E_VAL(x);
}

void runmap_iter_start(struct runmap_iter *it, const struct runmap *m, uint64_t s, uint64_t e)
{
	it->m = m;
	it->start = s;
	it->end = e < m->npages ? e : m->npages;
	if (s >= it->end) {
		it->ci = m->nchunks;
		it->ei = 0;
		return;
	}
	pos_find(m, s, &it->ci, &it->ei);
}

bool runmap_iter_next(struct runmap_iter *it, struct run *r)
{
	const struct runmap *m = it->m;
	uint64_t x, st, en;

	if (it->ci >= m->nchunks)
		return false;
	x = m->chunks[it->ci]->e[it->ei];
	st = E_START(x);
	if (st >= it->end)
		return false;
	en = next_start(m, it->ci, it->ei);
	r->start = st > it->start ? st : it->start;
	r->end = en < it->end ? en : it->end;
	r->val = E_VAL(x);
	if (++it->ei == m->chunks[it->ci]->n) {
		it->ci++;
		it->ei = 0;
	}
	return true;
}

uint64_t runmap_find(const struct runmap *m, uint64_t s, uint64_t e, uint32_t mask)
{
	struct runmap_iter it;
	struct run r;

	runmap_iter_start(&it, m, s, e);
	while (runmap_iter_next(&it, &r))
		if (mask & RUNMAP_MASK(r.val))
			return r.start;
	return e;
}

uint64_t runmap_count(const struct runmap *m, uint64_t s, uint64_t e, uint32_t mask)
{
	struct runmap_iter it;
	struct run r;
	uint64_t n = 0;

	runmap_iter_start(&it, m, s, e);
	while (runmap_iter_next(&it, &r))
		if (mask & RUNMAP_MASK(r.val))
			n += r.end - r.start;
	return n;
}

size_t runmap_bytes(const struct runmap *m)
{
	return (m->nchunks + m->nspare) * sizeof(struct runmap_chunk) +
	       m->cap * (sizeof(m->keys[0]) + sizeof(m->chunks[0]));
}

int runmap_check(const struct runmap *m)
{
	size_t runs = 0;
	bool first = true;
	uint64_t last = 0;
	uint8_t lastv = 0;

	if (m->nchunks == 0 || m->nchunks > m->cap)
		return -EUCLEAN;
	for (size_t i = 0; i < m->nchunks; i++) {
		const struct runmap_chunk *c = m->chunks[i];

		if (c->n == 0 || c->n > RUNMAP_CHUNK || m->keys[i] != E_START(c->e[0]))
			return -EUCLEAN;
		for (size_t j = 0; j < c->n; j++) {
			uint64_t st = E_START(c->e[j]);

			if (first ? st != 0 : (st <= last || E_VAL(c->e[j]) == lastv))
				return -EUCLEAN;
			if (st >= m->npages)
				return -EUCLEAN;
			first = false;
			last = st;
			lastv = E_VAL(c->e[j]);
			runs++;
		}
	}
	return runs == m->nruns ? 0 : -EUCLEAN;
}
