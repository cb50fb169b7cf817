/* SPDX-License-Identifier: MIT */
/*
 * pinword.h - one page's pin counts and state in one atomic word.
 *
 * This is where the pin-vs-conversion race (seed 002's speculative
 * reference) is decided.  A pin raises its count and learns the state in one
 * read-modify-write; a conversion publishes its state and learns the counts
 * in one read-modify-write of the same word.  RMWs of one location are
 * totally ordered, so either the pin came first and the conversion sees it,
 * or the conversion came first and the pin sees the new state and backs out.
 * A pin that backs out, like an unpin, may drop the last reference of an
 * in-transit page; the owner decides what that takes (gmem: the lock, so
 * that the page can be unmapped and the conversion completed, pin.c).
 *
 *   bits  0..31  short-term pins (at most PW_SHORT_MAX; the rest is headroom
 *                for concurrent pins that find the limit and back out)
 *   bits 32..55  long-term pins (at most PW_LONG_MAX, likewise)
 *   bits 56..57  state: GMEM_SHARED, GMEM_PRIVATE or GMEM_CONVERTING
 *   bit  58      held: pins back out with -EAGAIN (a discard, or a change
 *                that must see every pin of a huge page: pins_hold())
 *   bit  59      populated: the page is in the backing file, as far as the
 *                library knows (a copy may go through the guest mapping
 *                without a system call: access.c); cleared by a discard
 *   bit  60      written: recorded by the library while tracking writes,
 *                where the page tables cannot keep it (track.c)
 */
#ifndef GMEM_CORE_PINWORD_H
#define GMEM_CORE_PINWORD_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gmem.h"

typedef _Atomic uint64_t pinword_t;

#define PW_SHORT_MASK 0xffffffffULL
#define PW_SHORT_MAX 0x7fffffffULL
#define PW_LONG_SHIFT 32
#define PW_LONG_MASK (0xffffffULL << PW_LONG_SHIFT)
#define PW_LONG_MAX 0x7fffffULL
#define PW_STATE_SHIFT 56
#define PW_STATE_MASK (3ULL << PW_STATE_SHIFT)
#define PW_HELD (1ULL << 58)
#define PW_POPULATED (1ULL << 59)
#define PW_WRITTEN (1ULL << 60)
#define PW_COUNTS (PW_SHORT_MASK | PW_LONG_MASK)

static inline unsigned int pw_state(uint64_t w)
{
	return (unsigned int)((w & PW_STATE_MASK) >> PW_STATE_SHIFT);
}

static inline uint64_t pw_make(unsigned int state)
{
	return (uint64_t)state << PW_STATE_SHIFT;
}

static inline uint64_t pw_one(bool longterm)
{
	return longterm ? 1ULL << PW_LONG_SHIFT : 1ULL;
}

static inline uint64_t pw_count(uint64_t w, bool longterm)
{
	return longterm ? (w & PW_LONG_MASK) >> PW_LONG_SHIFT : w & PW_SHORT_MASK;
}

/* Raise the count; returns the word as the pin found it. */
static inline uint64_t pw_pin(pinword_t *w, bool longterm)
{
	return atomic_fetch_add(w, pw_one(longterm));
}

/* Whether a pin that found word `old` may keep its reference: 0 or -errno. */
static inline int pw_pin_verdict(uint64_t old, bool longterm)
{
	if (pw_state(old) == GMEM_PRIVATE)
		return -EACCES;
	if (pw_state(old) != GMEM_SHARED || (old & PW_HELD))
		return -EAGAIN;
	if (pw_count(old, longterm) >= (longterm ? PW_LONG_MAX : PW_SHORT_MAX))
		return -EOVERFLOW;
	return 0;
}

/* What pw_unpin() did. */
enum pw_unpin_result {
	PW_DROPPED,    /* one reference dropped; *after is the word after */
	PW_NOT_HELD,   /* no reference of that kind: nothing changed */
	PW_KEPT,       /* the word is in state `keep`: nothing changed */
};

/*
 * Drop one held reference of the kind, unless the word's state is `keep`
 * (pass -1 for none): the owner may want some states' counts to fall only
 * where it can act on the last one (gmem: in-transit pages, under its lock).
 */
static inline enum pw_unpin_result pw_unpin(pinword_t *w, bool longterm, int keep, uint64_t *after)
{
	uint64_t old = atomic_load(w);

	do {
		if (pw_count(old, longterm) == 0)
			return PW_NOT_HELD;
		if ((int)pw_state(old) == keep)
			return PW_KEPT;
	} while (!atomic_compare_exchange_weak(w, &old, old - pw_one(longterm)));
	*after = old - pw_one(longterm);
	return PW_DROPPED;
}

/* Publish a state, keeping counts and flags; returns the word before. */
static inline uint64_t pw_set_state(pinword_t *w, unsigned int state)
{
	uint64_t old = atomic_load(w);

	while (!atomic_compare_exchange_weak(w, &old, (old & ~PW_STATE_MASK) | pw_make(state)))
		;
	return old;
}

#endif /* GMEM_CORE_PINWORD_H */
