// SPDX-License-Identifier: MIT
/*
 * postcopy.c - post-copy's records sent apart (docs/MIGRATION.md): the
 * source's gmem_postcopy_send(), the destination's gmem_postcopy_receive()
 * and gmem_postcopy_abort().  The file that names the pages is a save's
 * (snapshot.c); the destination's fills are a lazy restore's (lazy.c).
 *
 * A record sent apart is a data record of the file that named its pages,
 * seeded as if its index were SNAP_LOOSE plus its first page: it checks
 * only as that file's, for those pages, whatever order it comes in, and
 * one sent twice (asked for while on its way) is the same record.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "snapshot.h"

struct postcopy_source {
	uint64_t id;          /* the post-copy file's */
	uint64_t *later;      /* a bit a page: named there */
	uint64_t *sent;       /* a bit a page: sent at least once */
	uint64_t unsent;      /* pages named and not sent */
	uint64_t next;        /* GMEM_POSTCOPY_NEXT goes on from here */
	uint64_t discard_gen; /* g->discard_gen when the pages were named */
};

static bool bit(const uint64_t *b, uint64_t p)
{
	return b[p / 64] >> (p % 64) & 1;
}


static void source_free(struct postcopy_source *pc)
{
	if (!pc)
		return;
	free(pc->sent);
	free(pc->later);
	free(pc);
}

struct postcopy_source *postcopy_source_new(struct gmem *g)
{
	struct postcopy_source *pc = calloc(1, sizeof(*pc));
	uint64_t words = (g->npages + 63) / 64;

	if (!pc)
		return NULL;
	pc->later = calloc(words, sizeof(uint64_t));
	pc->sent = calloc(words, sizeof(uint64_t));
	if (!pc->later || !pc->sent) {
		source_free(pc);
		return NULL;
	}
	return pc;
}

void postcopy_source_name(struct postcopy_source *pc, uint64_t first, uint64_t end)
{
	for (uint64_t p = first; p < end; p++)
		pc->later[p / 64] |= 1ULL << (p % 64);
	pc->unsent += end - first;
}

void postcopy_source_set(struct gmem *g, struct postcopy_source **pc, uint64_t id,
			 uint64_t discard_gen)
{
	postcopy_source_free(g);
	if (!*pc)
		return; /* a save of another kind: nothing to send from now on */
	(*pc)->id = id;
	(*pc)->discard_gen = discard_gen;
	g->postcopy = *pc;
	*pc = NULL;
}

void postcopy_source_drop(struct postcopy_source *pc)
{
	source_free(pc);
}

void postcopy_source_free(struct gmem *g)
{
	source_free(g->postcopy);
	g->postcopy = NULL;
}


/*
 * Pages [first, first + n) into dst.  Through the guest mapping while no
 * discard came since they were named (the lock keeps one off meanwhile);
 * else read from the file, which reads a hole as zeroes and gives it no
 * memory.
 */
static int copy_pages(struct gmem *g, const struct postcopy_source *pc, uint64_t first,
		      uint64_t n, char *dst)
{
	int err = 0;

	lock_shared(g);
	if (atomic_load_explicit(&g->discard_gen, memory_order_relaxed) == pc->discard_gen)
		copy_shared(dst, g->b.guest + (first << PAGE_SHIFT), n << PAGE_SHIFT);
	else
		err = file_pread(g->b.fd, dst, n << PAGE_SHIFT, first << PAGE_SHIFT);
	unlock(g);
	return err;
}

/* A record of pages [first, first + n) at buf (room checked): its size. */
static int put(struct gmem *g, struct postcopy_source *pc, uint64_t first, uint64_t n,
	       char *buf, size_t *size)
{
	struct snap_record r = { .type = REC_DATA, .first = first, .count = n };
	char *payload = buf + sizeof(r);
	int err = copy_pages(g, pc, first, n, payload);

	if (err)
		return err;
	r.hash = snap_record_hash(pc->id, SNAP_LOOSE | first, &r, payload, n << PAGE_SHIFT);
	memcpy(buf, &r, sizeof(r));
	*size = sizeof(r) + (n << PAGE_SHIFT);
	for (uint64_t p = first; p < first + n; p++) {
		if (!bit(pc->sent, p)) {
			pc->sent[p / 64] |= 1ULL << (p % 64);
			pc->unsent--;
		}
	}
	count(&g->stats.pages_saved, n);
	return 0;
}

/*
 * The next run of named pages (not sent yet, if unsent) in [from, end),
 * at most SNAP_DATA_MAX and what room allows: [*s, *s + *n), *n 0 for none.
 */
static void next_run(const struct gmem *g, const struct postcopy_source *pc, uint64_t from,
		     uint64_t end, bool unsent, uint64_t room, uint64_t *s, uint64_t *n)
{
	uint64_t p = from;

	(void)g;
	*n = 0;
	while (p < end) {
		uint64_t want = pc->later[p / 64] & (unsent ? ~pc->sent[p / 64] : ~0ULL);

		if (!(want >> (p % 64))) {
			p = (p | 63) + 1; /* nothing in the rest of the word */
			continue;
		}
		if (!(want >> (p % 64) & 1)) {
			p++;
			continue;
		}
		*s = p;
		while (p < end && *n < SNAP_DATA_MAX && *n < room && bit(pc->later, p) &&
		       !(unsent && bit(pc->sent, p))) {
			(*n)++;
			p++;
		}
		return;
	}
}

int64_t gmem_postcopy_send(struct gmem *g, uint64_t offset, uint64_t len, void *buf,
			   size_t cap, unsigned int flags)
{
	const size_t rec = sizeof(struct snap_record);
	bool next = flags & GMEM_POSTCOPY_NEXT;
	struct postcopy_source *pc;
	uint64_t first = 0, end = 0;
	size_t used = 0;
	int err = 0;

	if (!g || !buf || (flags & ~GMEM_POSTCOPY_NEXT))
		return -EINVAL;
	if (!next) {
		if (!len || offset >= g->b.size || len > g->b.size - offset)
			return -EINVAL;
		first = offset >> PAGE_SHIFT;
		end = (offset + len + GMEM_PAGE_SIZE - 1) >> PAGE_SHIFT;
	}
	pthread_mutex_lock(&g->save_mu);
	pc = g->postcopy;
	if (!pc || cap < rec + GMEM_PAGE_SIZE) {
		err = pc ? -ENOSPC : -EINVAL;
		goto out;
	}
	if (next) {
		/* from the last page asked for on, then from the start */
		for (int pass = 0; pass < 2 && pc->unsent; pass++) {
			uint64_t from = pass ? 0 : pc->next, to = pass ? pc->next : g->npages;

			while (!err && cap - used >= rec + GMEM_PAGE_SIZE) {
				uint64_t s, n;
				size_t size;

				next_run(g, pc, from, to, true, (cap - used - rec) >> PAGE_SHIFT, &s, &n);
				if (!n)
					break;
				err = put(g, pc, s, n, (char *)buf + used, &size);
				used += err ? 0 : size;
				from = s + n;
				pc->next = from;
			}
		}
	} else {
		for (uint64_t from = first; !err && from < end;) {
			uint64_t s, n;
			size_t size;

			if (cap - used < rec + GMEM_PAGE_SIZE)
				break;
			next_run(g, pc, from, end, false, (cap - used - rec) >> PAGE_SHIFT, &s, &n);
			if (!n)
				break;
			err = put(g, pc, s, n, (char *)buf + used, &size);
			used += err ? 0 : size;
			from = s + n;
		}
		pc->next = end < g->npages ? end : 0;
	}
out:
	pthread_mutex_unlock(&g->save_mu);
	return used ? (int64_t)used : err;
}

int gmem_postcopy_receive(struct gmem *g, const void *buf, size_t len)
{
	const size_t rec = sizeof(struct snap_record);
	const char *p = buf;
	uint64_t id;
	size_t at;

	if (!g || !buf || !len || !lazy_remote(g, &id))
		return -EINVAL;
	/* every record checked before any is applied */
	for (at = 0; at < len;) {
		struct snap_record r;
		uint64_t plen;

		if (len - at < rec)
			return -EBADMSG;
		memcpy(&r, p + at, rec);
		if (r.type != REC_DATA || r.flags || !r.count || r.count > SNAP_DATA_MAX ||
		    r.first >= g->npages || r.count > g->npages - r.first)
			return -EBADMSG;
		plen = r.count << PAGE_SHIFT;
		if (len - at - rec < plen ||
		    snap_record_hash(id, SNAP_LOOSE | r.first, &r, p + at + rec, plen) != r.hash)
			return -EBADMSG;
		at += rec + plen;
	}
	for (at = 0; at < len;) {
		struct snap_record r;

		memcpy(&r, p + at, rec);
		if (lazy_active(g))
			lazy_receive(g, r.first, r.count, p + at + rec);
		at += rec + (r.count << PAGE_SHIFT);
	}
	return 0;
}

int gmem_postcopy_abort(struct gmem *g, int err)
{
	uint64_t id;

	if (!g || err >= 0 || !lazy_remote(g, &id))
		return -EINVAL;
	if (lazy_active(g))
		lazy_abort(g, err);
	return 0;
}
