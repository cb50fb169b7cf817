// SPDX-License-Identifier: MIT
/*
 * snapshot.c - gmem_save() and gmem_restore(): an object's size, page
 * states and populated contents to a file descriptor and back, in the
 * format of docs/SNAPSHOT.md.
 *
 * A save copies the pages that hold memory through the guest mapping, a
 * page at a time under g->lock shared (copy_page()): a conversion waits
 * one page's copy at most, and no discard makes a hole of a page while it
 * is read there (which would give it memory).  The guest may write
 * meanwhile (a consistent copy is the caller's: pause it); what a page
 * holds when its record is copied is what the record checks.
 *
 * Holes stay holes.  shmem says where its data is (SEEK_DATA counts
 * swapped pages as data); hugetlbfs does not (it calls the whole file data,
 * and cachestat() refuses it), so a huge page is data when the guest
 * mapping maps it, or when what it holds is not all zero, until as many
 * huge pages were found as the file has (st_blocks).
 *
 * A layer (GMEM_SAVE_DIRTY) saves the pages written since the save it
 * follows, as write tracking records them (track.c keeps a layer's reading
 * of the record apart from the collects'), and every page's state: a
 * conversion changes no contents, so states travel whole in every file.
 *
 * A restore fills an object nothing has used yet, holding g->lock
 * exclusive throughout, so no view, pin or conversion sees it half done;
 * a file that does not check - torn, corrupted, out of order - leaves it
 * as it was: every page punched out again and every state back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"
#include "snapshot.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the snapshot format is little-endian, as is every host gmem runs on"
#endif

#define DATA_BYTES (SNAP_DATA_MAX * GMEM_PAGE_SIZE)
/*
 * Data records a save writes in one system call: 256 KiB of pages, copied,
 * hashed and written while they are in the cache (half a core's L2 here).
 * Written in place (GMEM_SAVE_PAUSED) they are hashed and written, and
 * more at once pay: a file system's page cache takes larger writes in
 * larger folios (ext4 here: 1 MiB batches, 10 % less than 256 KiB).
 */
#define BATCH_RECORDS 4
#define BATCH_BYTES (BATCH_RECORDS * DATA_BYTES)
#define BATCH_IN_PLACE 16

/* ---- the writer ---- */

struct writer {
	struct gmem *g;
	int fd;
	uint64_t id, index, data_pages;
	char *buf; /* BATCH_BYTES: data records' payloads, waiting to be written */
	/* the records waiting: their headers, and header/payload pairs to write */
	struct snap_record hdr[BATCH_IN_PLACE];
	struct iovec iov[2 * BATCH_IN_PLACE];
	size_t nrec, batch; /* records waiting, and how many go at once */
	uint64_t used;  /* bytes of buf taken */
	bool paused;    /* GMEM_SAVE_PAUSED: records straight from the guest mapping */
	bool locked;    /* g->lock held shared until the records waiting are out */
	uint64_t discard_gen; /* g->discard_gen when the pages were found */
	uint64_t *bitmap; /* a bit a page: the layer's pages, or scratch */
	struct postcopy_source *later; /* GMEM_SAVE_POSTCOPY: the pages named, sent apart */
	/* hugetlbfs: huge pages found so far, how many the file has, and discard_gen then */
	uint64_t huge_found, huge_total, huge_gen;
	unsigned char *vec; /* mincore() of one huge page */
	/* shmem: the stretch of data the last lseek()s found, [data_s, data_e) */
	uint64_t data_s, data_e;
};

/* n iovecs, all of them, in as few system calls as the descriptor takes. */
static int writev_all(int fd, struct iovec *v, int n)
{
	while (n) {
		ssize_t k = writev(fd, v, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		while (n && (size_t)k >= v->iov_len) {
			k -= (ssize_t)v->iov_len;
			v++;
			n--;
		}
		if (n) {
			v->iov_base = (char *)v->iov_base + k;
			v->iov_len -= (size_t)k;
		}
	}
	return 0;
}

/* The record's fields, then its payload seeded with theirs: docs/SNAPSHOT.md. */
uint64_t snap_record_hash(uint64_t id, uint64_t index, const struct snap_record *r,
			  const void *payload, size_t len)
{
	uint64_t h = snap_hash(r, offsetof(struct snap_record, hash), snap_seed(id, index));

	return snap_hash(payload, len, h);
}

/* The records waiting, written; then the pages they were read from may go. */
static int flush(struct writer *w)
{
	int err = writev_all(w->fd, w->iov, (int)(2 * w->nrec));

	w->nrec = 0;
	w->used = 0;
	if (w->locked) {
		w->locked = false;
		unlock(w->g);
	}
	return err;
}

/*
 * A record, hashed and queued; its payload must stay where it is until the
 * next flush() (data records' are in w->buf).  Queues of w->batch go
 * out in one writev().
 */
static int put_record(struct writer *w, uint32_t type, uint64_t first, uint64_t count,
		      const void *payload, size_t len)
{
	struct snap_record *r = &w->hdr[w->nrec];

	*r = (struct snap_record){ .type = type, .first = first, .count = count };
	r->hash = snap_record_hash(w->id, w->index, r, payload, len);
	w->iov[2 * w->nrec] = (struct iovec){ r, sizeof(*r) };
	w->iov[2 * w->nrec + 1] = (struct iovec){ (void *)payload, len };
	w->nrec++;
	w->index++;
	return w->nrec == w->batch || (type != REC_DATA && type != REC_LATER) ? flush(w) : 0;
}

/* Every page's state, in runs; in transit counts as private (it is going there). */
static int put_states(struct writer *w)
{
	struct gmem *g = w->g;
	struct snap_run *runs;
	struct runmap_iter it;
	struct run r;
	size_t n = 0, cap;
	int err;

	lock_shared(g);
	cap = runmap_runs(&g->states) + 1;
	runs = calloc(cap, sizeof(*runs));
	if (!runs) {
		unlock(g);
		return -ENOMEM;
	}
	runmap_iter_start(&it, &g->states, 0, g->npages);
	while (runmap_iter_next(&it, &r)) {
		uint32_t s = r.val == GMEM_SHARED ? GMEM_SHARED : GMEM_PRIVATE;

		if (n && runs[n - 1].state == s) {
			runs[n - 1].count += r.end - r.start;
			continue;
		}
		runs[n++] = (struct snap_run){ r.start, r.end - r.start, s, 0 };
	}
	unlock(g);
	err = put_record(w, REC_STATES, 0, n, runs, n * sizeof(*runs));
	free(runs);
	return err;
}

/*
 * Page p into dst.  Through the guest mapping, a memcpy(): a read of the
 * file costs several times that.  A page is read there only while it
 * holds memory, or the read would give it some: g->lock held shared, for
 * one page's copy, keeps discards off, and a discard since the page was
 * found sends the copy to pread(), which reads a hole as zeros.
 */
static int copy_page(struct writer *w, uint64_t p, char *dst)
{
	struct gmem *g = w->g;
	int err = 0;

	lock_shared(g);
	if (atomic_load_explicit(&g->discard_gen, memory_order_relaxed) == w->discard_gen)
		copy_shared(dst, g->b.guest + (p << PAGE_SHIFT), GMEM_PAGE_SIZE);
	else
		err = file_pread(g->b.fd, dst, GMEM_PAGE_SIZE, p << PAGE_SHIFT);
	unlock(g);
	return err;
}

/*
 * With the writers paused, a record's payload is where the guest mapping
 * has it: hashed there, and written from there by the next flush(), with
 * g->lock held shared until then so that no discard makes a hole of a
 * page the write reads (which would give it memory).  false if a discard
 * came since the pages were found: they are copied a page at a time.
 */
static bool payload_in_place(struct writer *w, uint64_t first, char **src)
{
	struct gmem *g = w->g;

	if (!w->locked) {
		lock_shared(g);
		if (atomic_load_explicit(&g->discard_gen, memory_order_relaxed) != w->discard_gen) {
			unlock(g);
			return false;
		}
		w->locked = true; /* and no discard comes until flush() */
	}
	*src = g->b.guest + (first << PAGE_SHIFT);
	return true;
}

/* Pages [first, end), which held memory when found, as data records. */
static int put_data(struct writer *w, uint64_t first, uint64_t end)
{
	if (w->later) {
		/* post-copy: named, their contents sent apart (postcopy.c) */
		postcopy_source_name(w->later, first, end);
		w->data_pages += end - first;
		return put_record(w, REC_LATER, first, end - first, NULL, 0);
	}
	while (first < end) {
		uint64_t n = end - first < SNAP_DATA_MAX ? end - first : SNAP_DATA_MAX;
		char *dst = w->buf + w->used;
		int err = 0;

		if (!w->paused || !payload_in_place(w, first, &dst)) {
			/* copies go to the buffer: the records there go out first if it is full */
			if (w->used + (n << PAGE_SHIFT) > BATCH_BYTES && (err = flush(w)))
				return err;
			dst = w->buf + w->used;
			for (uint64_t i = 0; i < n && !err; i++)
				err = copy_page(w, first + i, dst + (i << PAGE_SHIFT));
			if (err)
				return err;
			w->used += n << PAGE_SHIFT;
		}
		err = put_record(w, REC_DATA, first, n, dst, n << PAGE_SHIFT);
		if (err)
			return err;
		w->data_pages += n;
		first += n;
	}
	return 0;
}

static bool all_zero(const char *p, size_t len)
{
	return !p[0] && !memcmp(p, p + 1, len - 1);
}

/*
 * hugetlbfs: whether huge pages not found yet may hold memory.  The file
 * counts its pages (st_blocks), but the count may have changed since it
 * was read: pages found beside others the save passed before a discard
 * took them would add up to it with a page still ahead.  Only a count
 * read again, with no discard since it was first read, says there are no
 * more.
 */
static bool huge_more(struct writer *w)
{
	struct gmem *g = w->g;
	struct stat st;

	if (w->huge_found < w->huge_total)
		return true;
	if (fstat(g->b.fd, &st) ||
	    atomic_load_explicit(&g->discard_gen, memory_order_relaxed) != w->huge_gen) {
		w->huge_total = UINT64_MAX; /* look at every page */
		return true;
	}
	w->huge_total = (uint64_t)st.st_blocks * 512 / g->b.align;
	return w->huge_found < w->huge_total;
}

/* hugetlbfs: whether the huge page at byte off holds memory (see the top). */
static int huge_populated(struct writer *w, uint64_t off, bool *yes)
{
	const struct backing *b = &w->g->b;

	*yes = false;
	if (!huge_more(w))
		return 0; /* every huge page the file has is found */
	if (!mincore(b->guest + off, b->align, w->vec) && (w->vec[0] & 1)) {
		*yes = true;
	} else {
		/* read into the buffer: the records waiting there go out first */
		int err = flush(w);

		for (uint64_t o = off; o < off + b->align && !*yes && !err; o += BATCH_BYTES) {
			err = file_pread(b->fd, w->buf, BATCH_BYTES, o);
			*yes = !err && !all_zero(w->buf, BATCH_BYTES);
		}
		if (err)
			return err;
	}
	w->huge_found += *yes;
	return 0;
}

/*
 * The next stretch of populated pages in [from, end): [*s, *e), or *s ==
 * end for none.
 */
static int next_data(struct writer *w, uint64_t from, uint64_t end, uint64_t *s, uint64_t *e)
{
	const struct backing *b = &w->g->b;
	off_t d, h;

	*s = *e = end;
	if (b->hugetlb) {
		/* what a discard after this changes, the copies see (copy_page()) */
		w->discard_gen = atomic_load_explicit(&w->g->discard_gen, memory_order_relaxed);
		uint64_t bp = b->align >> PAGE_SHIFT;

		for (uint64_t p = from & ~(bp - 1); p < end; p += bp) {
			bool yes;
			int err = huge_populated(w, p << PAGE_SHIFT, &yes);

			if (err)
				return err;
			if (yes) {
				*s = p > from ? p : from;
				*e = p + bp < end ? p + bp : end;
				return 0;
			}
		}
		return 0;
	}
	if (from >= w->data_s && from < w->data_e) {
		/* in the stretch found last (a layer's runs are often in one) */
		*s = from;
		*e = w->data_e < end ? w->data_e : end;
		return 0;
	}
	w->discard_gen = atomic_load_explicit(&w->g->discard_gen, memory_order_relaxed);
	d = lseek(b->fd, (off_t)(from << PAGE_SHIFT), SEEK_DATA);
	if (d < 0)
		return errno == ENXIO ? 0 : -errno;
	h = lseek(b->fd, d, SEEK_HOLE);
	if (h < 0)
		return -errno;
	if ((uint64_t)d >> PAGE_SHIFT >= end)
		return 0;
	*s = w->data_s = (uint64_t)d >> PAGE_SHIFT;
	*e = w->data_e = ((uint64_t)h + GMEM_PAGE_SIZE - 1) >> PAGE_SHIFT;
	*e = *e < end ? *e : end;
	return 0;
}

/* [first, end): its populated stretches as data, the rest as holes if holes. */
static int put_range(struct writer *w, uint64_t first, uint64_t end, bool holes)
{
	while (first < end) {
		uint64_t s, e;
		int err = next_data(w, first, end, &s, &e);

		if (!err && holes && first < s)
			err = put_record(w, REC_HOLE, first, s - first, NULL, 0);
		if (!err && s < end)
			err = put_data(w, s, e);
		if (err)
			return err;
		first = s < end ? e : end;
	}
	return 0;
}

/* A layer's pages: runs of the bitmap's set bits. */
static int put_layer(struct writer *w)
{
	uint64_t n = w->g->npages;

	for (uint64_t p = 0; p < n;) {
		uint64_t s;
		int err;

		if (!(w->bitmap[p / 64] >> (p % 64))) {
			p = (p | 63) + 1; /* the rest of the word is clear */
			continue;
		}
		if (!(w->bitmap[p / 64] >> (p % 64) & 1)) {
			p++;
			continue;
		}
		for (s = p; p < n && (w->bitmap[p / 64] >> (p % 64) & 1); p++)
			;
		err = put_range(w, s, p, true);
		if (err)
			return err;
	}
	return 0;
}

static int writer_init(struct writer *w, struct gmem *g, int fd)
{
	struct stat st;

	*w = (struct writer){ .g = g, .fd = fd };
	while (getrandom(&w->id, sizeof(w->id), 0) != sizeof(w->id) || !w->id)
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	w->buf = malloc(BATCH_BYTES);
	w->bitmap = calloc((g->npages + 63) / 64, sizeof(uint64_t));
	if (!w->buf || !w->bitmap)
		goto err_nomem;
	if (g->b.hugetlb) {
		w->vec = malloc(g->b.align >> PAGE_SHIFT);
		if (!w->vec)
			goto err_nomem;
		if (fstat(g->b.fd, &st))
			return -errno;
		w->huge_gen = atomic_load_explicit(&g->discard_gen, memory_order_relaxed);
		w->huge_total = (uint64_t)st.st_blocks * 512 / g->b.align;
	}
	return 0;

err_nomem:
	return -ENOMEM;
}

static void writer_fini(struct writer *w)
{
	if (w->locked)
		unlock(w->g);
	free(w->vec);
	postcopy_source_drop(w->later);
	free(w->bitmap);
	free(w->buf);
}

int gmem_save(struct gmem *g, int fd, unsigned int flags)
{
	bool layer = flags & GMEM_SAVE_DIRTY;
	struct snap_header h = { .magic = SNAP_MAGIC, .version = SNAP_VERSION };
	struct writer w;
	uint64_t gen, named_gen;
	int err;

	if (!g || fd < 0 || (flags & ~(GMEM_SAVE_DIRTY | GMEM_SAVE_PAUSED | GMEM_SAVE_POSTCOPY)))
		return -EINVAL;
	if (forked_child(g))
		return -ECHILD;
	/* the file holds what a lazy restore has not filled yet */
	err = lazy_wait(g, -1);
	if (err)
		return err;
	pthread_mutex_lock(&g->save_mu);
	if (layer && !g->save_id) {
		err = -EINVAL; /* nothing saved or restored to apply on */
		goto out_unlock;
	}
	err = writer_init(&w, g, fd);
	if (err)
		goto out_fini;
	w.paused = flags & GMEM_SAVE_PAUSED;
	w.batch = w.paused ? BATCH_IN_PLACE : BATCH_RECORDS;
	if ((flags & GMEM_SAVE_POSTCOPY) && !(w.later = postcopy_source_new(g))) {
		err = -ENOMEM;
		goto out_fini;
	}
	/*
	 * Where the next layer starts: writes from here on.  A full save
	 * while not tracking starts none (gen 0 matches no tracking).
	 */
	gen = g->save_gen;
	err = track_take_for_save(g, w.bitmap, &gen, layer);
	if (err == -EINVAL && !layer)
		gen = 0, err = 0;
	if (err)
		goto out_fini;
	if (!layer && gen)
		g->save_id = 0; /* until it is done, as the records left the last save behind */
	h.kind = layer ? SNAP_LAYER : SNAP_FULL;
	h.flags = w.later ? SNAP_F_POSTCOPY : 0;
	h.backing = g->b.type;
	h.size = g->b.size;
	h.id = w.id;
	h.parent = layer ? g->save_id : 0;
	h.seq = layer ? g->save_seq + 1 : 0;
	h.hash = snap_hash(&h, offsetof(struct snap_header, hash), 0);
	/* a post-copy's pages are read where they are while no discard came since */
	named_gen = atomic_load_explicit(&g->discard_gen, memory_order_relaxed);
	err = writev_all(fd, &(struct iovec){ &h, sizeof(h) }, 1);
	if (!err)
		err = put_states(&w);
	if (!err)
		err = layer ? put_layer(&w) : put_range(&w, 0, g->npages, false);
	if (!err)
		err = put_record(&w, REC_END, w.data_pages, w.index, NULL, 0);
	if (!err) {
		/* a post-copy save's pages go when sent; any other save ends the last one's */
		postcopy_source_set(g, &w.later, h.id, named_gen);
		if (!(flags & GMEM_SAVE_POSTCOPY))
			count(&g->stats.pages_saved, w.data_pages);
		g->save_id = h.id;
		g->save_seq = h.seq;
		g->save_gen = gen;
	} else if (layer) {
		track_untake(g, w.bitmap); /* for the next try */
	}
out_fini:
	writer_fini(&w);
out_unlock:
	pthread_mutex_unlock(&g->save_mu);
	return err;
}

/* ---- the reader ---- */

struct reader {
	struct gmem *g;
	uint64_t pos; /* a lazy restore reads at its own offset: no lseek() a record */
	struct lazy *lazy; /* a lazy restore: records noted, not read */
	struct lazy *later; /* post-copy: pages named, their contents to come */
	int fd;
	uint64_t id, seq, index, data_pages;
	bool states_seen;
	char *buf;
	uint64_t *scratch; /* a bit a page, for the tracking's reading */
};

/*
 * The next len bytes of the stream, all of them (-EBADMSG for a file that
 * ends first; *got says how many came): read() for an eager restore (pipes
 * too), pread() at r->pos for a lazy one, which skips payloads by adding.
 */
static int reader_get(struct reader *r, void *p, size_t len, size_t *got)
{
	char *c = p;

	*got = 0;
	while (*got < len) {
		ssize_t n = r->lazy ? pread(r->fd, c + *got, len - *got, (off_t)(r->pos + *got))
				    : read(r->fd, c + *got, len - *got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG;
		*got += (size_t)n;
	}
	r->pos += len;
	return 0;
}

/* Every state as the record says: runs that tile the object, in order. */
static int apply_states(struct reader *r, const struct snap_run *runs, uint64_t n)
{
	struct gmem *g = r->g;
	const uint32_t any = STATE_MASK(GMEM_SHARED) | STATE_MASK(GMEM_PRIVATE) |
			     STATE_MASK(GMEM_CONVERTING);
	uint64_t p = 0;

	for (uint64_t i = 0; i < n; i++) {
		if (runs[i].first != p || !runs[i].count || runs[i].count > g->npages - p ||
		    runs[i].pad || (runs[i].state != GMEM_SHARED && runs[i].state != GMEM_PRIVATE))
			return -EBADMSG;
		p += runs[i].count;
	}
	if (p != g->npages)
		return -EBADMSG;
	for (uint64_t i = 0; i < n; i++) {
		int err = state_reserve(g);

		if (err)
			return err;
		if (state_replace(g, runs[i].first, runs[i].first + runs[i].count, any,
				  runs[i].state, NULL) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Pages [first, first + n) get the contents in buf. */
static int apply_data(struct reader *r, uint64_t first, uint64_t n)
{
	const struct backing *b = &r->g->b;
	uint64_t off = first << PAGE_SHIFT, len = n << PAGE_SHIFT;
	int err;

	if (b->type == GMEM_BACKING_SHMEM) {
		/* no page-table entries to make: straight into the page cache */
		for (uint64_t done = 0; done < len;) {
			ssize_t k = pwrite(b->fd, r->buf + done, len - done, (off_t)(off + done));

			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0)
				return k < 0 ? (errno == ENOSPC ? -ENOMEM : -errno) : -EIO;
			done += (uint64_t)k;
		}
	} else {
		/* whole huge pages, then the bytes through the guest mapping */
		err = backing_allocate(b, off, len);
		if (err)
			return err == -ENOSPC || err == -EFAULT ? -ENOMEM : err;
		memcpy(b->guest + off, r->buf, len);
	}
	pages_mark(r->g, first, first + n, PW_POPULATED);
	count(&r->g->stats.pages_restored, n);
	return 0;
}

/* One record: read, checked, applied.  *end once it was the file's last. */
static int read_record(struct reader *r, bool layer, bool *end)
{
	struct gmem *g = r->g;
	struct snap_record rec;
	size_t got, len = 0;
	int err = reader_get(r, &rec, sizeof(rec), &got);

	if (err)
		return err;
	if (rec.flags || (rec.type != REC_END &&
			  (rec.first > g->npages || rec.count > g->npages - rec.first)))
		return -EBADMSG;
	switch (rec.type) {
	case REC_STATES:
		if (rec.first || rec.count > g->npages || r->index)
			return -EBADMSG;
		len = rec.count * sizeof(struct snap_run);
		break;
	case REC_DATA:
		if (!rec.count || rec.count > SNAP_DATA_MAX || !r->states_seen || r->later)
			return -EBADMSG;
		len = rec.count << PAGE_SHIFT;
		break;
	case REC_HOLE:
		if (!rec.count || !layer || !r->states_seen)
			return -EBADMSG;
		break;
	case REC_END:
		if (rec.first != r->data_pages || rec.count != r->index || !r->states_seen)
			return -EBADMSG;
		break;
	case REC_LATER:
		if (!rec.count || !r->later || !r->states_seen)
			return -EBADMSG;
		break;
	default:
		return -EBADMSG;
	}
	if (len > DATA_BYTES) {
		/* a states record longer than a data record: room for it */
		char *bigger = realloc(r->buf, len);

		if (!bigger)
			return -ENOMEM;
		r->buf = bigger;
	}
	if (r->lazy && rec.type == REC_DATA) {
		/* noted where it is, checked when its pages are filled (lazy.c) */
		uint64_t at = r->pos;

		r->pos += len;
		err = lazy_add_data(r->lazy, &rec, at, r->id, r->index);
		r->index++;
		r->data_pages += rec.count;
		return err;
	}
	if (len && (err = reader_get(r, r->buf, len, &got)))
		return err;
	if (snap_record_hash(r->id, r->index, &rec, r->buf, len) != rec.hash)
		return -EBADMSG;
	r->index++;
	if (r->lazy && rec.type == REC_HOLE) {
		lazy_add_hole(r->lazy, rec.first, rec.count);
		return 0;
	}
	switch (rec.type) {
	case REC_LATER:
		lazy_add_later(r->later, rec.first, rec.count);
		r->data_pages += rec.count;
		return 0;
	case REC_STATES:
		r->states_seen = true;
		return apply_states(r, (const struct snap_run *)r->buf, rec.count);
	case REC_DATA:
		r->data_pages += rec.count;
		return apply_data(r, rec.first, rec.count);
	case REC_HOLE:
		err = backing_punch(&g->b, rec.first << PAGE_SHIFT, rec.count << PAGE_SHIFT);
		if (!err)
			pages_clear(g, rec.first, rec.first + rec.count, PW_POPULATED);
		return err;
	default:
		*end = true;
		return 0;
	}
}

/*
 * One file, a full save first and layers in order after it: 0, or 1 for
 * the end of the stream where a file would begin.
 */
static int read_file(struct reader *r, bool first)
{
	struct gmem *g = r->g;
	struct snap_header h;
	size_t got;
	bool end = false;
	int err = reader_get(r, &h, sizeof(h), &got);

	if (err == -EBADMSG && !got && !first)
		return 1;
	if (err)
		return err;
	if (memcmp(h.magic, SNAP_MAGIC, sizeof(h.magic)) || h.version != SNAP_VERSION ||
	    h.flags != (r->later ? SNAP_F_POSTCOPY : 0) ||
	    h.hash != snap_hash(&h, offsetof(struct snap_header, hash), 0) || !h.id ||
	    (h.kind != SNAP_FULL && h.kind != SNAP_LAYER))
		return -EBADMSG;
	if (h.size != g->b.size)
		return -EINVAL;
	/* a layer applies on the file before it, and on nothing else */
	if (first ? h.kind != SNAP_FULL
		  : h.kind != SNAP_LAYER || h.parent != r->id || h.seq != r->seq + 1)
		return -EXDEV;
	r->id = h.id;
	r->seq = h.seq;
	r->index = r->data_pages = 0;
	r->states_seen = false;
	while (!end) {
		err = read_record(r, h.kind == SNAP_LAYER, &end);
		if (err)
			return err;
	}
	return 0;
}

/* Nothing has used the object: no view, pin, transit, conversion or memory. */
static bool untouched(struct gmem *g)
{
	struct stat st;

	return !g->nviews && !g->transits && !pins_total(g) && !g->lazy &&
	       runmap_count(&g->states, 0, g->npages, STATE_MASK(g->initial_state)) == g->npages &&
	       !fstat(g->b.fd, &st) && !st.st_blocks;
}

/* Back to untouched, as it was before the restore began. */
static void restore_undo(struct gmem *g)
{
	const uint32_t any = STATE_MASK(GMEM_SHARED) | STATE_MASK(GMEM_PRIVATE) |
			     STATE_MASK(GMEM_CONVERTING);

	GMEM_WARN_ON(g, backing_punch(&g->b, 0, g->b.size));
	pages_clear(g, 0, g->npages, PW_POPULATED);
	/* one run for the whole object: no room needed */
	GMEM_WARN_ON(g, state_replace(g, 0, g->npages, any, g->initial_state, NULL) < 0);
}

/*
 * What a restore leaves for the files after it (g->save_mu held): layers
 * saved from here on apply on what was restored, and - with
 * GMEM_RESTORE_ONE - layers restored next apply on its last file.
 */
static void restored_from(struct gmem *g, struct reader *r)
{
	uint64_t gen = 0;

	if (track_take_for_save(g, r->scratch, &gen, false))
		gen = 0;
	g->save_id = r->id;
	g->save_seq = r->seq;
	g->save_gen = gen;
}

/*
 * GMEM_RESTORE_ONE on an object a restore or a save made: the next layer
 * of its stream, applied record by record, each checked before it is
 * (g->lock exclusive; -EBUSY while anything maps, pins or fills it).  A
 * layer that fails part-way cannot be taken back - its pages before the
 * failing record are in - and nothing applies on the object after it.
 */
static int restore_layer(struct reader *r)
{
	struct gmem *g = r->g;
	int err;

	if (g->nviews || g->transits || pins_total(g) || g->lazy)
		return -EBUSY;
	r->id = g->save_id;
	r->seq = g->save_seq;
	err = read_file(r, false);
	if (err > 0)
		err = -EBADMSG; /* the stream ended where the layer was to begin */
	if (err && r->index)
		g->save_id = 0; /* some of it is in: nothing follows that */
	return err;
}

int gmem_restore(struct gmem *g, int fd, unsigned int flags)
{
	struct reader r = { .g = g, .fd = fd };
	int err;

	if (!g || fd < 0 || (flags & ~(GMEM_RESTORE_LAZY | GMEM_RESTORE_ONE)) ||
	    (flags & GMEM_RESTORE_LAZY && flags & GMEM_RESTORE_ONE))
		return -EINVAL;
	if (forked_child(g))
		return -ECHILD;
	/* the pages are read when they are needed: from where the records said */
	if (flags & GMEM_RESTORE_LAZY) {
		off_t at = lseek(fd, 0, SEEK_CUR);

		if (at < 0)
			return errno == ESPIPE ? -ESPIPE : -errno;
		r.pos = (uint64_t)at;
	}
	r.buf = malloc(DATA_BYTES);
	r.scratch = calloc((g->npages + 63) / 64, sizeof(uint64_t));
	if (!r.buf || !r.scratch) {
		err = -ENOMEM;
		goto out_free;
	}
	if ((flags & GMEM_RESTORE_LAZY) && !(r.lazy = lazy_new(g, fd))) {
		err = -ENOMEM;
		goto out_free;
	}
	pthread_mutex_lock(&g->save_mu);
	views_lock(g, true);
	if ((flags & GMEM_RESTORE_ONE) && g->save_id) {
		err = restore_layer(&r);
		if (err)
			goto out_unlock;
	} else {
		if (!untouched(g)) {
			err = -EBUSY;
			goto out_unlock;
		}
		for (bool first = true;; first = false) {
			err = read_file(&r, first);
			if (err || (flags & GMEM_RESTORE_ONE))
				break;
		}
		if (err > 0 && r.lazy) {
			/* the descriptor where an eager restore would leave it: past the stream */
			lseek(fd, (off_t)r.pos, SEEK_SET);
			err = lazy_start(g, r.lazy);
		}
		if (err < 0) {
			restore_undo(g);
			goto out_unlock;
		}
	}
	r.lazy = NULL; /* the object's now */
	err = 0;
	unlock(g);
	restored_from(g, &r);
	goto out_mutex;

out_unlock:
	unlock(g);
out_mutex:
	pthread_mutex_unlock(&g->save_mu);
out_free:
	lazy_free(r.lazy);
	free(r.scratch);
	free(r.buf);
	return err;
}

int gmem_restore_wait(struct gmem *g, int timeout_ms)
{
	if (!g)
		return -EINVAL;
	return lazy_wait(g, timeout_ms);
}

int gmem_postcopy_restore(struct gmem *g, int fd, const struct gmem_postcopy *pc)
{
	struct reader r = { .g = g, .fd = fd };
	bool fresh = false;
	int err;

	if (!g || fd < 0 || !pc || !pc->fetch)
		return -EINVAL;
	if (forked_child(g))
		return -ECHILD;
	r.buf = malloc(DATA_BYTES);
	r.scratch = calloc((g->npages + 63) / 64, sizeof(uint64_t));
	r.later = r.buf && r.scratch ? lazy_new_remote(g, pc) : NULL;
	if (!r.later) {
		err = -ENOMEM;
		goto out_free;
	}
	pthread_mutex_lock(&g->save_mu);
	views_lock(g, true);
	if (g->save_id) {
		/* a layer on the rounds restored before it (left as it says if refused) */
		err = restore_layer(&r);
	} else if (!untouched(g)) {
		err = -EBUSY;
	} else {
		fresh = true;
		err = read_file(&r, true);
		if (err)
			restore_undo(g);
	}
	if (err)
		goto out_unlock;
	lazy_set_id(r.later, r.id);
	err = lazy_remote_prepare(g, r.later, fresh) ?: lazy_start(g, r.later);
	if (err) {
		if (fresh)
			restore_undo(g);
		else
			g->save_id = 0; /* its states are in: nothing follows that */
		goto out_unlock;
	}
	r.later = NULL; /* the object's now */
	unlock(g);
	restored_from(g, &r);
	goto out_mutex;

out_unlock:
	unlock(g);
out_mutex:
	pthread_mutex_unlock(&g->save_mu);
out_free:
	lazy_free(r.later);
	free(r.scratch);
	free(r.buf);
	return err;
}
