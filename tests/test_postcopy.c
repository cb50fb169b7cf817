// SPDX-License-Identifier: MIT
/*
 * test_postcopy.c - post-copy: gmem_save(GMEM_SAVE_POSTCOPY) names the
 * pages, gmem_postcopy_send() makes their records, gmem_postcopy_restore()
 * puts the states in force at the destination and gmem_postcopy_receive()
 * fills the pages as their records come, in any order; a touch of a page
 * that has not come asks pc->fetch() and waits; gmem_postcopy_abort() fails
 * what is still missing.  Round trips (full and as a layer on a pre-copy),
 * touches of every kind answered through the fetch path, private pages
 * refused through views, aborts with waiters, garbage refused with nothing
 * applied, discards before arrival, bad arguments, and touches racing the
 * source's push; a view's wait holds up no other touch.  Every case on
 * every backing (hugetlb-1g: none of them).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "touch.h"

/* Pages one backing page apart: every case holds on hugetlbfs too. */
#define U (env->unit)

/* One page's record, as the header puts it: a 32-byte header and the page. */
#define REC1 (32 + PS)

static char *guest_of(struct gmem *g)
{
	void *p;

	CHECK_OK(gmem_guest_map(g, &p));
	return p;
}

static int memfile(void)
{
	int fd = memfd_create("postcopy", 0);

	CHECK(fd >= 0);
	return fd;
}

static uint64_t file_size(int fd)
{
	struct stat st;

	CHECK_OK(fstat(fd, &st));
	return (uint64_t)st.st_size;
}

static void rewind_fd(int fd)
{
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
}

/* Backing pages in an object: two objects at a time fit the hugetlb-2m pool (16). */
#define N 6

/*
 * As test_snapshot.c's: page 0 written and shared, 2 written and private,
 * 3 private and never written, 5 written in its last 4 KiB, the rest holes.
 */
static struct gmem *sample(const struct env *env)
{
	struct gmem *g = tg_create(env, N * U, 0, 0);
	char *guest = guest_of(g);

	fill_page(guest, 0, 1);
	fill_page(guest + 2 * U, 2 * U / PS, 2);
	fill_page(guest + 6 * U - PS, 6 * U / PS - 1, 5);
	CHECK_OK(gmem_convert(g, 2 * U, 2 * U, GMEM_PRIVATE, 0, NULL));
	return g;
}

/* Same states and contents (through each guest mapping). */
static void check_contents(struct gmem *a, struct gmem *b)
{
	for (uint64_t off = 0; off < gmem_size(a); off += PS)
		CHECK_EQ(gmem_state(b, off), gmem_state(a, off) == GMEM_SHARED ? GMEM_SHARED
									       : GMEM_PRIVATE);
	CHECK(!memcmp(guest_of(a), guest_of(b), gmem_size(a)));
}

/* Same states, contents and populated blocks (holes read before the contents). */
static void check_same(struct gmem *a, struct gmem *b)
{
	struct gmem_huge_info ha, hb;

	CHECK_OK(gmem_huge_info(a, &ha));
	CHECK_OK(gmem_huge_info(b, &hb));
	CHECK_EQ(hb.blocks_populated, ha.blocks_populated);
	check_contents(a, b);
}

/* Whether the object is as created: every page shared, no memory. */
static bool untouched(struct gmem *g)
{
	struct gmem_huge_info hi;

	CHECK_OK(gmem_huge_info(g, &hi));
	for (uint64_t off = 0; off < gmem_size(g); off += PS)
		if (gmem_state(g, off) != GMEM_SHARED)
			return false;
	return hi.blocks_populated == 0;
}

static void track(struct gmem *g)
{
	int err = gmem_track_start(g, 0);

	if (err == -EOPNOTSUPP)
		SKIP("no asynchronous userfaultfd write-protect in this kernel");
	CHECK_OK(err);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Join t, failing the case (not hanging it) if it has not ended within secs. */
static void join_within(pthread_t t, int secs, const char *what)
{
	struct timespec ts;
	int err;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += secs;
	err = pthread_timedjoin_np(t, NULL, &ts);
	if (err == ETIMEDOUT)
		test_fail(__FILE__, __LINE__, "%s: still blocked after %d s", what, secs);
	CHECK_OK(err);
}

/* ---- the fetch path: a log of requests, and a source that answers them ---- */

#define LOG_MAX 4096

struct range {
	uint64_t off, len;
};

/*
 * pc->arg.  fetch() only logs the request (it must not call into the
 * object); log[served..n) is the queue a server thread answers, if one
 * runs, with gmem_postcopy_send(src, range) + gmem_postcopy_receive(dst).
 */
struct pcq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct range log[LOG_MAX];
	size_t n, served;
	unsigned long overflow;
	bool stop, running;
	pthread_t thread;
	struct gmem *src, *dst;
	uint64_t size;
	int err;               /* the server's first error */
	unsigned long empty;   /* requests whose answer held no record */
	struct gmem_postcopy pc;
};

static void fetch(void *arg, uint64_t offset, uint64_t len)
{
	struct pcq *q = arg;

	pthread_mutex_lock(&q->mu);
	if (q->n < LOG_MAX)
		q->log[q->n++] = (struct range){ offset, len };
	else
		q->overflow++;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

static void pcq_init(struct pcq *q, struct gmem *src, struct gmem *dst)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->src = src;
	q->dst = dst;
	q->size = gmem_size(src);
	q->pc = (struct gmem_postcopy){ .fetch = fetch, .arg = q };
}

/* The chunk a server asks for at a time, and room for its records. */
#define CHUNK (256 * PS)
#define CHUNK_CAP (CHUNK / PS * (REC1 + 32) + 64 * 1024)

/* Send the records of [off, off + len) from src and receive them at dst: 0 or -errno. */
static int answer(struct gmem *src, struct gmem *dst, uint64_t off, uint64_t len, char *buf,
		  bool *any)
{
	for (uint64_t at = off; at < off + len; at += CHUNK) {
		uint64_t l = off + len - at < CHUNK ? off + len - at : CHUNK;
		int64_t n = gmem_postcopy_send(src, at, l, buf, CHUNK_CAP, 0);
		int err;

		if (n < 0)
			return (int)n;
		if (n == 0)
			continue;
		*any = true;
		if ((uint64_t)n > CHUNK_CAP)
			return -E2BIG;
		err = gmem_postcopy_receive(dst, buf, (size_t)n);
		if (err)
			return err;
	}
	return 0;
}

static void *server(void *arg)
{
	struct pcq *q = arg;
	char *buf = malloc(CHUNK_CAP);

	if (!buf) {
		q->err = -ENOMEM;
		return NULL;
	}
	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct range r;
		bool any = false;
		int err;

		while (q->served == q->n && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->served == q->n)
			break;
		r = q->log[q->served++];
		pthread_mutex_unlock(&q->mu);
		if (r.off >= q->size || r.len > q->size - r.off || !r.len)
			err = -ERANGE; /* a request outside the object: checked below */
		else
			err = answer(q->src, q->dst, r.off, r.len, buf, &any);
		pthread_mutex_lock(&q->mu);
		if (err && !q->err)
			q->err = err;
		if (!err && !any)
			q->empty++;
	}
	pthread_mutex_unlock(&q->mu);
	free(buf);
	return NULL;
}

static void pcq_serve(struct pcq *q)
{
	CHECK(!q->running);
	q->stop = false;
	CHECK_OK(pthread_create(&q->thread, NULL, server, q));
	q->running = true;
}

/* Every request a range of whole pages inside the object. */
static void pcq_check_requests(struct pcq *q)
{
	pthread_mutex_lock(&q->mu);
	for (size_t i = 0; i < q->n; i++) {
		struct range r = q->log[i];

		if (r.off % PS || r.len % PS || !r.len || r.off >= q->size ||
		    r.len > q->size - r.off) {
			pthread_mutex_unlock(&q->mu);
			test_fail(__FILE__, __LINE__, "fetch(%#llx, %#llx): not whole pages inside "
				  "an object of %#llx bytes", (unsigned long long)r.off,
				  (unsigned long long)r.len, (unsigned long long)q->size);
		}
	}
	CHECK_EQ(q->overflow, 0);
	pthread_mutex_unlock(&q->mu);
}

/* Stop the server (answering what was asked first); its answers all went in. */
static void pcq_stop(struct pcq *q)
{
	if (q->running) {
		pthread_mutex_lock(&q->mu);
		q->stop = true;
		pthread_cond_broadcast(&q->cv);
		pthread_mutex_unlock(&q->mu);
		join_within(q->thread, 20, "the fetch server");
		q->running = false;
	}
	pcq_check_requests(q);
	CHECK_OK(q->err);
}

/* Whether one request covered [off, off + len) whole. */
static bool covered(struct pcq *q, uint64_t off, uint64_t len)
{
	bool yes = false;

	pthread_mutex_lock(&q->mu);
	for (size_t i = 0; i < q->n && !yes; i++)
		yes = q->log[i].off <= off && off + len <= q->log[i].off + q->log[i].len;
	pthread_mutex_unlock(&q->mu);
	return yes;
}

/* Whether any request overlapped [off, off + len). */
static bool asked_any(struct pcq *q, uint64_t off, uint64_t len)
{
	bool yes = false;

	pthread_mutex_lock(&q->mu);
	for (size_t i = 0; i < q->n && !yes; i++)
		yes = q->log[i].off < off + len && off < q->log[i].off + q->log[i].len;
	pthread_mutex_unlock(&q->mu);
	return yes;
}

/* Wait up to secs for a request covering [off, off + len). */
static bool wait_covered(struct pcq *q, uint64_t off, uint64_t len, double secs)
{
	double end = now_s() + secs;

	while (!covered(q, off, len)) {
		if (now_s() > end)
			return false;
		usleep(1000);
	}
	return true;
}

/* ---- the stream ---- */

#define NEXT_CAP (256 * 1024)

static void postcopy_save(struct gmem *g, int fd, unsigned int flags)
{
	CHECK_OK(gmem_save(g, fd, GMEM_SAVE_POSTCOPY | flags));
}

/* The destination from fd (read from its start) with q's fetch. */
static void postcopy_restore(struct gmem *dst, int fd, struct pcq *q)
{
	rewind_fd(fd);
	CHECK_OK(gmem_postcopy_restore(dst, fd, &q->pc));
}

/*
 * Every page not sent yet, GMEM_POSTCOPY_NEXT after NEXT, received as it
 * comes; each page is sent once, so the calls end.  The bytes sent.
 */
static uint64_t stream_rest(struct gmem *src, struct gmem *dst)
{
	char *buf = malloc(NEXT_CAP);
	uint64_t total = 0, calls = 0;
	int64_t n;

	CHECK(buf);
	while ((n = gmem_postcopy_send(src, 0, 0, buf, NEXT_CAP, GMEM_POSTCOPY_NEXT)) > 0) {
		CHECK((uint64_t)n <= NEXT_CAP);
		CHECK_OK(gmem_postcopy_receive(dst, buf, (size_t)n));
		total += (uint64_t)n;
		CHECK(++calls <= gmem_size(src) / PS + 1); /* no page sent twice */
	}
	CHECK_EQ(n, 0);
	/* and nothing after the end */
	CHECK_EQ(gmem_postcopy_send(src, 0, 0, buf, NEXT_CAP, GMEM_POSTCOPY_NEXT), 0);
	free(buf);
	return total;
}

/* ---- touches from threads: they wait for the pages they touch ---- */

enum how { BY_GUEST, BY_VIEW, BY_READ };

struct toucher {
	enum how how;
	struct gmem *g;
	char *base; /* the guest mapping or a view, for BY_GUEST and BY_VIEW */
	uint64_t off, len;
	char buf[PS];
	int result; /* the signal (BY_GUEST, BY_VIEW) or gmem_read()'s result */
	atomic_bool done;
	pthread_t t;
};

static void *toucher_run(void *arg)
{
	struct toucher *x = arg;

	if (x->how == BY_READ)
		x->result = gmem_read(x->g, x->off, x->buf, x->len, NULL);
	else
		x->result = touch_copy(x->buf, x->base + x->off, x->len);
	atomic_store(&x->done, true);
	return NULL;
}

static void touch_start(struct toucher *x, enum how how, struct gmem *g, char *base, uint64_t off,
			uint64_t len)
{
	CHECK(len <= PS);
	memset(x, 0, sizeof(*x));
	x->how = how;
	x->g = g;
	x->base = base;
	x->off = off;
	x->len = len;
	CHECK_OK(pthread_create(&x->t, NULL, toucher_run, x));
}

static int touch_end(struct toucher *x, const char *what)
{
	join_within(x->t, 20, what);
	return x->result;
}

/* ---- the cases ---- */

/*
 * A full post-copy save: the file names the pages and carries none; the
 * destination has its states at once, and its contents once every record
 * has come - received in the reverse of the order they were sent, as
 * records sent apart may come - with holes left holes.  Nothing touched
 * it, so nothing was fetched.  A record that comes again changes nothing:
 * a write the guest made since stays.
 */
TEST(postcopy_round_trip)
{
	struct gmem *src = sample(env), *dst;
	int fd = memfile(), full = memfile();
	struct pcq *q = malloc(sizeof(*q));
	char *bufs[4096];
	int64_t lens[4096];
	size_t nbufs = 0;
	int64_t n;

	CHECK(q);
	CHECK_OK(gmem_save(src, full, 0));
	postcopy_save(src, fd, 0);
	/* pages named, not carried */
	CHECK(file_size(fd) < file_size(full) / 2);
	dst = tg_create(env, N * U, 0, 0);
	pcq_init(q, src, dst);
	postcopy_restore(dst, fd, q);
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), (off_t)file_size(fd)); /* just past the file */
	/* states in force at once */
	for (uint64_t off = 0; off < N * U; off += PS)
		CHECK_EQ(gmem_state(dst, off), gmem_state(src, off));
	CHECK_EQ(gmem_restore_wait(dst, 0), -ETIMEDOUT);

	do {
		CHECK(nbufs < 4096);
		bufs[nbufs] = malloc(NEXT_CAP);
		CHECK(bufs[nbufs]);
		n = gmem_postcopy_send(src, 0, 0, bufs[nbufs], NEXT_CAP, GMEM_POSTCOPY_NEXT);
		CHECK(n >= 0 && (uint64_t)n <= NEXT_CAP);
		lens[nbufs++] = n;
	} while (n > 0);
	nbufs--; /* the last answered 0 */
	CHECK(nbufs >= 1);
	for (size_t i = nbufs; i-- > 0;) {
		CHECK_EQ(gmem_restore_wait(dst, 0), -ETIMEDOUT); /* something still to come */
		CHECK_OK(gmem_postcopy_receive(dst, bufs[i], (size_t)lens[i]));
	}
	CHECK_OK(gmem_restore_wait(dst, 5000));
	CHECK_OK(gmem_restore_wait(dst, 0));
	pthread_mutex_lock(&q->mu);
	CHECK_EQ(q->n, 0); /* nothing touched, nothing fetched */
	pthread_mutex_unlock(&q->mu);
	check_same(src, dst);
	CHECK_OK(gmem_audit(dst));

	/* page 0 written by the guest, then its record again: the write stays */
	{
		char *gd = guest_of(dst);

		fill_page(gd, 0, 9);
		for (size_t i = 0; i < nbufs; i++)
			CHECK_OK(gmem_postcopy_receive(dst, bufs[i], (size_t)lens[i]));
		CHECK(page_has(gd, 0, 9));
		CHECK(!memcmp(gd + PS, guest_of(src) + PS, N * U - PS));
	}
	pcq_stop(q);
	for (size_t i = 0; i <= nbufs; i++)
		free(bufs[i]);
	free(q);
	CHECK_OK(gmem_destroy(dst));
	close(full);
	close(fd);
	CHECK_OK(gmem_destroy(src));
}

/*
 * Pre-copy, then post-copy: a full save restored (GMEM_RESTORE_ONE), then
 * pages rewritten, a hole written, a block discarded and pages converted
 * both ways, saved as a post-copy layer.  At the destination the layer's
 * pages are missing, not stale: a read of a rewritten page before its
 * record comes waits for it and reads the new contents; what the layer
 * does not name is there already (no fetch); at the end the object is
 * the source.
 */
TEST_OPTS(postcopy_after_precopy_layers, .timeout_s = 60)
{
	struct gmem *src = sample(env), *dst = tg_create(env, N * U, 0, 0);
	int fd = memfile(), fd2 = memfile();
	struct pcq *q = malloc(sizeof(*q));
	char page[PS], buf[PS];
	struct toucher t;

	CHECK(q);
	track(src);
	CHECK_OK(gmem_save(src, fd, 0));
	rewind_fd(fd);
	CHECK_OK(gmem_restore(dst, fd, GMEM_RESTORE_ONE));
	CHECK_OK(gmem_read(dst, 0, buf, PS, NULL)); /* the pre-copy's page 0 (read: holes stay) */
	CHECK(page_has(buf, 0, 1));

	fill_page(page, 0, 7);
	CHECK_OK(gmem_write(src, 0, page, PS, NULL));          /* rewritten */
	fill_page(page, U / PS, 8);
	CHECK_OK(gmem_write(src, U, page, PS, NULL));          /* a hole written */
	CHECK_OK(gmem_discard(src, 5 * U, U));                 /* a block punched */
	CHECK_OK(gmem_convert(src, 2 * U, U, GMEM_SHARED, 0, NULL));  /* private data shared */
	CHECK_OK(gmem_convert(src, 4 * U, U, GMEM_PRIVATE, 0, NULL)); /* a hole made private */
	postcopy_save(src, fd2, GMEM_SAVE_DIRTY);

	pcq_init(q, src, dst);
	postcopy_restore(dst, fd2, q);
	for (uint64_t off = 0; off < N * U; off += PS)
		CHECK_EQ(gmem_state(dst, off), gmem_state(src, off));
	CHECK_EQ(gmem_restore_wait(dst, 0), -ETIMEDOUT);
	pcq_serve(q);

	/* the layer's hole applied at once, a page it does not name read without a fetch */
	CHECK_OK(gmem_read(dst, 6 * U - PS, buf, PS, NULL));
	CHECK(page_zero(buf));
	CHECK_OK(gmem_read(dst, 2 * U, buf, PS, NULL));
	CHECK(page_has(buf, 2 * U / PS, 2));
	CHECK(!asked_any(q, 5 * U, U));

	/* the rewritten page: the new contents, fetched, never the pre-copy's */
	CHECK_OK(gmem_read(dst, 0, buf, PS, NULL));
	CHECK(page_has(buf, 0, 7));
	CHECK(covered(q, 0, PS));
	/* the written hole, through the guest mapping */
	touch_start(&t, BY_GUEST, dst, guest_of(dst), U, PS);
	CHECK_OK(touch_end(&t, "a guest touch of a page the layer names"));
	CHECK(page_has(t.buf, U / PS, 8));
	CHECK(covered(q, U, PS));

	stream_rest(src, dst);
	CHECK_OK(gmem_restore_wait(dst, 5000));
	pcq_stop(q);
	CHECK(page_has(guest_of(dst), 0, 7));
	check_same(src, dst);
	CHECK_OK(gmem_audit(dst));
	free(q);
	CHECK_OK(gmem_destroy(dst));
	close(fd2);
	close(fd);
	CHECK_OK(gmem_destroy(src));
}

/*
 * Touches of pages that have not come, each answered through the fetch
 * path (fetch logs, a source thread sends and receives): the guest
 * mapping, gmem_read(), gmem_write() of part of a page (the rest of it
 * fetched first), gmem_pin() and gmem_collapse() (THP: it fills the
 * block); each fetch covers the page touched, and each toucher sees the
 * source's contents.  A hole the file does not name reads zero without a
 * fetch.
 */
TEST_OPTS(postcopy_touch_fetches, .timeout_s = 60)
{
	struct gmem *src = sample(env), *dst;
	char *gs = guest_of(src), *gd, buf[PS];
	int fd = memfile();
	struct pcq *q = malloc(sizeof(*q));
	struct toucher t;

	CHECK(q);
	/* more shared pages with data: blocks 1 and 4 */
	fill_page(gs + U, U / PS, 3);
	fill_page(gs + 4 * U, 4 * U / PS, 4);
	postcopy_save(src, fd, 0);
	dst = tg_create(env, N * U, 0, 0);
	gd = guest_of(dst);
	pcq_init(q, src, dst);
	postcopy_restore(dst, fd, q);
	pcq_serve(q);

	/* the guest mapping, from a thread: the touch waits for the page */
	touch_start(&t, BY_GUEST, dst, gd, 0, PS);
	CHECK_OK(touch_end(&t, "a guest touch of a missing page"));
	CHECK(page_has(t.buf, 0, 1));
	CHECK(covered(q, 0, PS));

	/* gmem_read() waits too */
	CHECK(!covered(q, 6 * U - PS, PS));
	CHECK_OK(gmem_read(dst, 6 * U - PS, buf, PS, NULL));
	CHECK(page_has(buf, 6 * U / PS - 1, 5));
	CHECK(covered(q, 6 * U - PS, PS));

	/* gmem_write() of part of a page: the rest is the source's */
	CHECK_OK(gmem_write(dst, U + 100, "written", 8, NULL));
	CHECK(covered(q, U, PS));
	CHECK_OK(gmem_read(dst, U, buf, PS, NULL));
	CHECK(!memcmp(buf + 100, "written", 8));
	memcpy(buf + 100, gs + U + 100, 8);
	CHECK(page_has(buf, U / PS, 3));

	/* gmem_pin() */
	CHECK_OK(gmem_pin(dst, 4 * U, PS, 0));
	CHECK(covered(q, 4 * U, PS));
	CHECK_OK(gmem_unpin(dst, 4 * U, PS, 0));
	CHECK_OK(gmem_read(dst, 4 * U, buf, PS, NULL));
	CHECK(page_has(buf, 4 * U / PS, 4));

	/* gmem_collapse() of block 2 (private, not come): on THP it fills the block first */
	CHECK_OK(gmem_collapse(dst, 2 * U, U, NULL));
	if (env->backing == GMEM_BACKING_THP)
		CHECK(covered(q, 2 * U, PS));

	/* block 3, private and never written, is named by nothing: the guest reads zero, unasked */
	touch_start(&t, BY_GUEST, dst, gd, 3 * U, PS);
	CHECK_OK(touch_end(&t, "a guest touch of a hole"));
	CHECK(page_zero(t.buf));
	CHECK(!asked_any(q, 3 * U, U));

	stream_rest(src, dst);
	CHECK_OK(gmem_restore_wait(dst, 5000));
	pcq_stop(q);
	/* the object is the source's, but for the bytes written */
	CHECK(!memcmp(gd + U + 100, "written", 8));
	CHECK_OK(gmem_write(dst, U + 100, gs + U + 100, 8, NULL));
	check_contents(src, dst);
	CHECK_OK(gmem_audit(dst));
	free(q);
	CHECK_OK(gmem_destroy(dst));
	close(fd);
	CHECK_OK(gmem_destroy(src));
}

/*
 * A view's touch of a page that has not come waits for it without holding
 * up the library's fault thread: a guest touch of another page meanwhile
 * is asked for at once, and both get their pages once the source answers.
 */
TEST_OPTS(postcopy_view_touch_holds_up_no_other, .timeout_s = 60)
{
	struct gmem *src = sample(env), *dst;
	int fd = memfile();
	struct pcq *q = malloc(sizeof(*q));
	struct toucher tv, tg;
	void *view;

	CHECK(q);
	postcopy_save(src, fd, 0);
	dst = tg_create(env, N * U, 0, 0);
	pcq_init(q, src, dst);
	postcopy_restore(dst, fd, q);
	CHECK_OK(gmem_view_map(dst, 0, N * U, 0, &view));
	/* nobody answers yet: the view's touch of page 0 waits */
	touch_start(&tv, BY_VIEW, dst, view, 0, PS);
	CHECK(wait_covered(q, 0, PS, 10));
	/* the guest's touch of the last page is asked for while the view's still waits */
	touch_start(&tg, BY_GUEST, dst, guest_of(dst), 6 * U - PS, PS);
	CHECK(wait_covered(q, 6 * U - PS, PS, 5));
	CHECK(!atomic_load(&tv.done));
	CHECK(!atomic_load(&tg.done));
	pcq_serve(q);
	CHECK_OK(touch_end(&tv, "a view's touch of a missing page"));
	CHECK(page_has(tv.buf, 0, 1));
	CHECK_OK(touch_end(&tg, "a guest touch of a missing page"));
	CHECK(page_has(tg.buf, 6 * U / PS - 1, 5));
	stream_rest(src, dst);
	CHECK_OK(gmem_restore_wait(dst, 5000));
	pcq_stop(q);
	check_contents(src, dst);
	CHECK_OK(gmem_view_unmap(dst, view));
	CHECK_OK(gmem_audit(dst));
	free(q);
	CHECK_OK(gmem_destroy(dst));
	close(fd);
	CHECK_OK(gmem_destroy(src));
}

/*
 * A page private at the restore: a view refuses it with the object's
 * signal, and asks nothing for it - missing or not; the guest's touch
 * fetches it and sees its contents.  A shared page that has not come is
 * fetched for a view's touch like any other.
 */
TEST_OPTS(postcopy_private_pages_refused_through_views, .timeout_s = 60)
{
	struct gmem *src = sample(env), *dst;
	int fd = memfile();
	struct pcq *q = malloc(sizeof(*q));
	struct toucher t;
	char *v, buf[16];
	siginfo_t si;

	CHECK(q);
	postcopy_save(src, fd, 0);
	dst = tg_create(env, N * U, 0, 0);
	pcq_init(q, src, dst);
	postcopy_restore(dst, fd, q);
	pcq_serve(q);
	v = tg_view(dst, 0);

	/* private: missing (2) or a hole (3), refused, nothing asked */
	CHECK_EQ(touch(v + 2 * U, false, NULL, &si), env->sig);
	CHECK(env_refusal(env, &si, false));
	CHECK(si.si_addr == v + 2 * U);
	CHECK_EQ(touch_copy(buf, v + 3 * U, sizeof(buf)), env->sig);
	CHECK_EQ(touch_copy(buf, v + 2 * U + U - 16, sizeof(buf)), env->sig);
	CHECK(!asked_any(q, 2 * U, 2 * U));
	CHECK_OK(gmem_audit(dst));

	/* the guest's touch gets it */
	touch_start(&t, BY_GUEST, dst, guest_of(dst), 2 * U, PS);
	CHECK_OK(touch_end(&t, "a guest touch of a missing private page"));
	CHECK(page_has(t.buf, 2 * U / PS, 2));
	CHECK(covered(q, 2 * U, PS));
	/* and views refuse it still */
	CHECK_EQ(touch_copy(buf, v + 2 * U, sizeof(buf)), env->sig);

	/* a shared page not come yet, through the view: fetched */
	touch_start(&t, BY_VIEW, dst, v, 6 * U - PS, PS);
	CHECK_OK(touch_end(&t, "a view's touch of a missing shared page"));
	CHECK(page_has(t.buf, 6 * U / PS - 1, 5));
	CHECK(covered(q, 6 * U - PS, PS));

	stream_rest(src, dst);
	CHECK_OK(gmem_restore_wait(dst, 5000));
	pcq_stop(q);
	CHECK_EQ(touch_copy(buf, v + 2 * U, sizeof(buf)), env->sig);
	CHECK_OK(gmem_audit(dst));
	check_contents(src, dst); /* a view's fault-around may give holes memory */
	free(q);
	CHECK_OK(gmem_destroy(dst));
	close(fd);
	CHECK_OK(gmem_destroy(src));
}

/*
 * Block 0 received, then the source lost (nothing answers fetches): the
 * abort fails every page still missing - the waiters on them (a
 * gmem_read() and a guest touch, blocked when it comes) and every touch
 * after (SIGBUS through the guest mapping, the object's signal through a
 * view, -EBADMSG from the calls) - and the wait reports its error; what
 * came before it reads as it should.
 */
TEST_OPTS(postcopy_abort_fails_missing_pages, .timeout_s = 60)
{
	struct gmem *src = sample(env), *dst;
	int fd = memfile();
	struct pcq *q = malloc(sizeof(*q));
	struct toucher rd, gt;
	char *gd, *v, *buf = malloc(CHUNK_CAP), small[16];
	bool any = false;

	CHECK(q && buf);
	postcopy_save(src, fd, 0);
	dst = tg_create(env, N * U, 0, 0);
	gd = guest_of(dst);
	pcq_init(q, src, dst);
	postcopy_restore(dst, fd, q);
	CHECK_OK(answer(src, dst, 0, U, buf, &any)); /* block 0 comes */
	CHECK(any);

	/* two waiters on missing pages, nobody answering */
	touch_start(&rd, BY_READ, dst, NULL, 6 * U - PS, PS);
	touch_start(&gt, BY_GUEST, dst, gd, 2 * U, PS);
	CHECK(wait_covered(q, 6 * U - PS, PS, 10));
	CHECK(wait_covered(q, 2 * U, PS, 10));
	usleep(100 * 1000);
	CHECK(!atomic_load(&rd.done) && !atomic_load(&gt.done));
	CHECK_EQ(gmem_restore_wait(dst, 0), -ETIMEDOUT);

	CHECK_OK(gmem_postcopy_abort(dst, -ECONNRESET));
	CHECK_EQ(touch_end(&rd, "a gmem_read() waiting when the abort came"), -EBADMSG);
	CHECK_EQ(touch_end(&gt, "a guest touch waiting when the abort came"), SIGBUS);
	CHECK_EQ(gmem_restore_wait(dst, 5000), -ECONNRESET);
	CHECK_EQ(gmem_restore_wait(dst, -1), -ECONNRESET);

	/* touches after it */
	CHECK_EQ(gmem_read(dst, 6 * U - PS, small, sizeof(small), NULL), -EBADMSG);
	CHECK_EQ(gmem_write(dst, 6 * U - PS, "x", 1, NULL), -EBADMSG);
	CHECK_EQ(gmem_pin(dst, 6 * U - PS, PS, 0), -EBADMSG);
	CHECK_EQ(touch_copy(small, gd + 6 * U - PS, sizeof(small)), SIGBUS);
	CHECK_EQ(touch_copy(small, gd + 2 * U, sizeof(small)), SIGBUS);
	v = tg_view(dst, 0);
	CHECK_EQ(touch_copy(small, v + 6 * U - PS, sizeof(small)), env->sig);
	CHECK_EQ(touch_copy(small, v + 2 * U, sizeof(small)), env->sig);

	/* what came before it */
	CHECK_OK(gmem_read(dst, 0, buf, PS, NULL));
	CHECK(page_has(buf, 0, 1));
	CHECK(page_has(gd, 0, 1));
	CHECK_OK(touch_copy(small, v, sizeof(small)));
	CHECK(!memcmp(small, guest_of(src), sizeof(small)));
	CHECK_OK(gmem_audit(dst));
	pcq_stop(q);
	free(buf);
	free(q);
	CHECK_OK(gmem_destroy(dst));
	close(fd);
	CHECK_OK(gmem_destroy(src));
}

/* The records of [off, off + len) from src into *buf (malloc'ed): their length. */
static size_t records_of(struct gmem *src, uint64_t off, uint64_t len, char **buf)
{
	size_t cap = (size_t)(len / PS * (REC1 + 32) + 64 * 1024);
	int64_t n;

	*buf = malloc(cap);
	CHECK(*buf);
	n = gmem_postcopy_send(src, off, len, *buf, cap, 0);
	CHECK(n > 0 && (uint64_t)n <= cap);
	return (size_t)n;
}

/*
 * Garbage: records of another post-copy save (another object with the very
 * same contents), a byte flipped anywhere in a buffer whose first record
 * is good, the buffer cut short: -EBADMSG each time, and nothing applied -
 * the good record's page is still missing (a read of it asks for it and
 * waits), until the records come whole.
 */
TEST_OPTS(postcopy_receive_refuses_garbage, .timeout_s = 60)
{
	struct gmem *other = sample(env), *src, *dst;
	int ofd = memfile(), fd = memfile();
	struct pcq *q = malloc(sizeof(*q));
	char *obuf, *a, *b, *ab, *bad;
	size_t on, an, bn, abn;
	struct toucher ra, rb;

	CHECK(q);
	/* the other save's first records; the other object goes (the pool holds two) */
	postcopy_save(other, ofd, 0);
	obuf = malloc(NEXT_CAP);
	CHECK(obuf);
	{
		int64_t n = gmem_postcopy_send(other, 0, 0, obuf, NEXT_CAP, GMEM_POSTCOPY_NEXT);

		CHECK(n > 0);
		on = (size_t)n;
	}
	CHECK_OK(gmem_destroy(other));

	src = sample(env);
	postcopy_save(src, fd, 0);
	dst = tg_create(env, N * U, 0, 0);
	pcq_init(q, src, dst);
	postcopy_restore(dst, fd, q);

	CHECK_EQ(gmem_postcopy_receive(dst, obuf, on), -EBADMSG);

	/* A: page 0's record; B: the last page's */
	an = records_of(src, 0, PS, &a);
	bn = records_of(src, 6 * U - PS, PS, &b);
	CHECK(an >= REC1 && bn >= REC1);
	abn = an + bn;
	ab = malloc(abn);
	bad = malloc(abn);
	CHECK(ab && bad);
	memcpy(ab, a, an);
	memcpy(ab + an, b, bn);
	/* another file's record after a good one */
	{
		char *mix = malloc(an + on);

		CHECK(mix);
		memcpy(mix, a, an);
		memcpy(mix + an, obuf, on);
		CHECK_EQ(gmem_postcopy_receive(dst, mix, an + on), -EBADMSG);
		free(mix);
	}
	/* a byte flipped: in B's header, B's page, B's end, and A's (then B is good) */
	{
		size_t at[] = { an, an + 4, an + 8, an + 16, an + 24, an + 31, an + 32,
				an + 32 + PS / 2, abn - 1, 0, 8, 16, 24, 31, 32, an / 2, an - 1 };

		for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
			memcpy(bad, ab, abn);
			bad[at[i]] ^= 0x01;
			if (gmem_postcopy_receive(dst, bad, abn) != -EBADMSG)
				test_fail(__FILE__, __LINE__, "byte %zu of %zu flipped: not -EBADMSG",
					  at[i], abn);
		}
	}
	/* cut short: inside B's page, inside B's header, and one byte of B */
	CHECK_EQ(gmem_postcopy_receive(dst, ab, abn - 1), -EBADMSG);
	CHECK_EQ(gmem_postcopy_receive(dst, ab, an + 16), -EBADMSG);
	CHECK_EQ(gmem_postcopy_receive(dst, ab, an + 1), -EBADMSG);
	CHECK_EQ(gmem_postcopy_receive(dst, ab, an - 1), -EBADMSG);
	CHECK_EQ(gmem_restore_wait(dst, 0), -ETIMEDOUT);

	/* nothing applied: A's page and B's still missing - a read asks for each, and waits */
	touch_start(&ra, BY_READ, dst, NULL, 0, PS);
	touch_start(&rb, BY_READ, dst, NULL, 6 * U - PS, PS);
	if (!wait_covered(q, 0, PS, 10))
		test_fail(__FILE__, __LINE__, "page 0 not asked for: a refused buffer applied it?");
	CHECK(wait_covered(q, 6 * U - PS, PS, 10));
	usleep(100 * 1000);
	CHECK(!atomic_load(&ra.done) && !atomic_load(&rb.done));
	/* the requests answered whole */
	pcq_serve(q);
	CHECK_OK(touch_end(&ra, "a read of page 0"));
	CHECK_OK(touch_end(&rb, "a read of the last page"));
	CHECK(page_has(ra.buf, 0, 1));
	CHECK(page_has(rb.buf, 6 * U / PS - 1, 5));

	stream_rest(src, dst);
	CHECK_OK(gmem_restore_wait(dst, 5000));
	pcq_stop(q);
	check_same(src, dst);
	free(bad);
	free(ab);
	free(a);
	free(b);
	free(obuf);
	free(q);
	CHECK_OK(gmem_destroy(dst));
	close(fd);
	close(ofd);
	CHECK_OK(gmem_destroy(src));
}

TEST(postcopy_invalid_args)
{
	struct gmem *src = sample(env), *dst = tg_create(env, N * U, 0, 0);
	int fd = memfile(), plain = memfile();
	struct pcq *q = malloc(sizeof(*q));
	char *buf = malloc(NEXT_CAP), *v;
	struct gmem_postcopy nofetch = { .fetch = NULL };
	int64_t n;

	CHECK(q && buf);
	pcq_init(q, src, dst);
	nofetch.arg = q;

	/* no post-copy save: not on a fresh object, nor after a plain save */
	CHECK_EQ(gmem_postcopy_send(src, 0, PS, buf, NEXT_CAP, 0), -EINVAL);
	CHECK_EQ(gmem_postcopy_send(src, 0, 0, buf, NEXT_CAP, GMEM_POSTCOPY_NEXT), -EINVAL);
	CHECK_OK(gmem_save(src, plain, 0));
	CHECK_EQ(gmem_postcopy_send(src, 0, PS, buf, NEXT_CAP, 0), -EINVAL);
	CHECK_EQ(gmem_postcopy_send(src, 0, 0, buf, NEXT_CAP, GMEM_POSTCOPY_NEXT), -EINVAL);

	postcopy_save(src, fd, 0);
	/* outside the object */
	CHECK_EQ(gmem_postcopy_send(src, N * U, PS, buf, NEXT_CAP, 0), -EINVAL);
	CHECK_EQ(gmem_postcopy_send(src, N * U - PS, 2 * PS, buf, NEXT_CAP, 0), -EINVAL);
	CHECK_EQ(gmem_postcopy_send(src, PS, UINT64_MAX, buf, NEXT_CAP, 0), -EINVAL);
	CHECK_EQ(gmem_postcopy_send(src, UINT64_MAX - PS + 1, PS, buf, NEXT_CAP, 0), -EINVAL);
	/* no room for one page's record */
	CHECK_EQ(gmem_postcopy_send(src, 0, PS, buf, REC1 - 1, 0), -ENOSPC);
	CHECK_EQ(gmem_postcopy_send(src, 0, 0, buf, REC1 - 1, GMEM_POSTCOPY_NEXT), -ENOSPC);
	CHECK_EQ(gmem_postcopy_send(src, 0, 0, buf, 0, GMEM_POSTCOPY_NEXT), -ENOSPC);

	/* restores: no pc, no fetch, a used object, a post-copy file through gmem_restore() */
	rewind_fd(fd);
	CHECK_EQ(gmem_postcopy_restore(dst, fd, NULL), -EINVAL);
	rewind_fd(fd);
	CHECK_EQ(gmem_postcopy_restore(dst, fd, &nofetch), -EINVAL);
	CHECK(untouched(dst));
	v = tg_view(dst, 0);
	rewind_fd(fd);
	CHECK_EQ(gmem_postcopy_restore(dst, fd, &q->pc), -EBUSY);
	CHECK_OK(gmem_view_unmap(dst, v));
	CHECK(untouched(dst));
	rewind_fd(fd);
	CHECK_EQ(gmem_restore(dst, fd, 0), -EBADMSG);
	CHECK(untouched(dst));
	rewind_fd(fd);
	CHECK_EQ(gmem_restore(dst, fd, GMEM_RESTORE_ONE), -EBADMSG);
	CHECK(untouched(dst));
	rewind_fd(fd);
	CHECK_EQ(gmem_restore(dst, fd, GMEM_RESTORE_LAZY), -EBADMSG);
	CHECK(untouched(dst));

	/* a receive with no post-copy restore: good records, refused */
	n = gmem_postcopy_send(src, 0, PS, buf, NEXT_CAP, 0);
	CHECK(n > 0);
	CHECK_EQ(gmem_postcopy_receive(dst, buf, (size_t)n), -EINVAL);
	CHECK(untouched(dst));
	/* an abort with no error */
	CHECK_EQ(gmem_postcopy_abort(dst, 0), -EINVAL);
	CHECK_EQ(gmem_postcopy_abort(dst, 5), -EINVAL);

	/* none of that changed anything: the restore and the stream go whole (page 0
	 * was sent above, so NEXT passes it) */
	postcopy_restore(dst, fd, q);
	{
		bool any = false;
		char *b = malloc(CHUNK_CAP);

		CHECK(b);
		CHECK_OK(answer(src, dst, 0, PS, b, &any));
		CHECK(any);
		free(b);
	}
	CHECK_EQ(gmem_postcopy_abort(dst, 0), -EINVAL);
	CHECK_EQ(gmem_postcopy_abort(dst, EIO), -EINVAL);
	/* offset and len are ignored with NEXT */
	n = gmem_postcopy_send(src, UINT64_MAX, UINT64_MAX, buf, NEXT_CAP, GMEM_POSTCOPY_NEXT);
	CHECK(n > 0);
	CHECK_OK(gmem_postcopy_receive(dst, buf, (size_t)n));
	/* -ENOSPC sent nothing: the next pages still come */
	CHECK_EQ(gmem_postcopy_send(src, 0, 0, buf, REC1 - 1, GMEM_POSTCOPY_NEXT), -ENOSPC);
	stream_rest(src, dst);
	CHECK_OK(gmem_restore_wait(dst, 5000));
	pcq_stop(q);
	check_same(src, dst);
	free(buf);
	free(q);
	close(plain);
	close(fd);
	CHECK_OK(gmem_destroy(dst));
	CHECK_OK(gmem_destroy(src));
}

/*
 * A discard at the destination before the pages' records come: the range
 * reads zero at once and for good - the records that come after it are
 * taken (they check) and ignored - and the pages beside it, in the same
 * backing page, keep the source's contents.  Page 1 written on the source
 * so that block 0 holds two pages of data on every backing.
 */
TEST_OPTS(postcopy_discard_before_arrival, .timeout_s = 60)
{
	struct gmem *src = sample(env), *dst;
	char *gs = guest_of(src), *gd, *buf = malloc(CHUNK_CAP), page[PS];
	int fd = memfile();
	struct pcq *q = malloc(sizeof(*q));
	bool any = false;

	CHECK(q && buf);
	fill_page(gs + PS, 1, 8);
	postcopy_save(src, fd, 0);
	dst = tg_create(env, N * U, 0, 0);
	gd = guest_of(dst);
	pcq_init(q, src, dst);
	postcopy_restore(dst, fd, q);
	pcq_serve(q); /* a discard in part of a huge page may need the rest of it */

	CHECK_OK(gmem_discard(dst, 0, PS));     /* page 0: a piece of block 0 */
	CHECK_OK(gmem_discard(dst, 5 * U, U));  /* block 5 whole */
	CHECK_OK(gmem_read(dst, 0, page, PS, NULL));
	CHECK(page_zero(page));
	CHECK_OK(gmem_read(dst, 6 * U - PS, page, PS, NULL));
	CHECK(page_zero(page));

	/* their records, after */
	CHECK_OK(answer(src, dst, 0, PS, buf, &any));
	CHECK(any);
	any = false;
	CHECK_OK(answer(src, dst, 5 * U, U, buf, &any));
	CHECK(any);
	CHECK_OK(gmem_read(dst, 0, page, PS, NULL));
	CHECK(page_zero(page));
	CHECK_OK(gmem_read(dst, 6 * U - PS, page, PS, NULL));
	CHECK(page_zero(page));

	stream_rest(src, dst);
	CHECK_OK(gmem_restore_wait(dst, 5000));
	pcq_stop(q);
	CHECK(page_zero(gd));
	CHECK(page_has(gd + PS, 1, 8));
	CHECK(page_zero(gd + 6 * U - PS));
	for (uint64_t off = 5 * U; off < 6 * U; off += PS)
		CHECK(page_zero(gd + off));
	CHECK(!memcmp(gd + PS, gs + PS, 5 * U - PS));
	for (uint64_t off = 0; off < N * U; off += PS)
		CHECK_EQ(gmem_state(dst, off), gmem_state(src, off));
	CHECK_OK(gmem_audit(dst));
	free(buf);
	free(q);
	CHECK_OK(gmem_destroy(dst));
	close(fd);
	CHECK_OK(gmem_destroy(src));
}

/*
 * A guest touch waiting for a page that has not come, and the page
 * discarded meanwhile (its whole backing page): the touch is answered
 * at once - a hole, zeros - though nobody ever sends the page.
 */
TEST_OPTS(postcopy_discard_answers_a_waiting_touch, .timeout_s = 60)
{
	struct gmem *src = sample(env), *dst;
	int fd = memfile();
	struct pcq *q = malloc(sizeof(*q));
	struct toucher t;

	CHECK(q);
	postcopy_save(src, fd, 0);
	dst = tg_create(env, N * U, 0, 0);
	pcq_init(q, src, dst);
	postcopy_restore(dst, fd, q);
	touch_start(&t, BY_GUEST, dst, guest_of(dst), 6 * U - PS, PS);
	CHECK(wait_covered(q, 6 * U - PS, PS, 10));
	usleep(50000);
	CHECK(!atomic_load(&t.done));
	CHECK_OK(gmem_discard(dst, 5 * U, U));
	CHECK_OK(touch_end(&t, "a guest touch of a page discarded while it waited"));
	CHECK(page_zero(t.buf));
	pcq_serve(q);
	stream_rest(src, dst);
	CHECK_OK(gmem_restore_wait(dst, 5000));
	pcq_stop(q);
	CHECK_OK(gmem_audit(dst));
	free(q);
	CHECK_OK(gmem_destroy(dst));
	close(fd);
	CHECK_OK(gmem_destroy(src));
}

/*
 * THP: a guest touch of page 0 waits for its block (page 1 has not come
 * either); page 0 is discarded - a hole now, but the block is still to
 * come, so the touch waits on - and then the source is lost: the abort
 * answers the touch too (zeros: page 0 is a hole), not only those on the
 * pages it poisons.
 */
TEST_OPTS(postcopy_abort_answers_a_touch_on_a_discarded_page, .timeout_s = 60,
	  .skip = B_SHMEM | B_HUGETLB | S_ANY, .why = "a unit of one page (shmem), or a "
	  "discard that fills its huge page first (hugetlbfs): THP's block alone waits so")
{
	struct gmem *src = sample(env), *dst;
	int fd = memfile();
	struct pcq *q = malloc(sizeof(*q));
	struct toucher t;

	CHECK(q);
	fill_page(guest_of(src) + PS, 1, 8);
	postcopy_save(src, fd, 0);
	dst = tg_create(env, N * U, 0, 0);
	pcq_init(q, src, dst);
	postcopy_restore(dst, fd, q);
	touch_start(&t, BY_GUEST, dst, guest_of(dst), 0, PS);
	CHECK(wait_covered(q, 0, PS, 10));
	CHECK_OK(gmem_discard(dst, 0, PS));
	usleep(100000);
	CHECK(!atomic_load(&t.done)); /* its block's page 1 has not come */
	CHECK_OK(gmem_postcopy_abort(dst, -ECONNRESET));
	CHECK_OK(touch_end(&t, "a guest touch of a discarded page when the source is lost"));
	CHECK(page_zero(t.buf));
	CHECK_EQ(gmem_restore_wait(dst, 1000), -ECONNRESET);
	pcq_stop(q);
	free(q);
	CHECK_OK(gmem_destroy(dst));
	close(fd);
	CHECK_OK(gmem_destroy(src));
}

struct racer {
	struct gmem *g;
	char *guest, *view;
	unsigned int seed;
	uint64_t size, unit;
	atomic_int bad;
};

/* Touches of random pages every way - some come, some not yet - each checked. */
static void *race_touches(void *arg)
{
	struct racer *x = arg;
	char buf[64];

	for (int i = 0; i < 300; i++) {
		uint64_t page = (uint64_t)rand_r(&x->seed) % (x->size / PS), off = page * PS;
		bool priv = off / x->unit == 2;
		int how = rand_r(&x->seed) % 3;
		int err;

		if (how == 0 || priv)
			err = touch_copy(buf, x->guest + off, sizeof(buf));
		else if (how == 1)
			err = gmem_read(x->g, off, buf, sizeof(buf), NULL);
		else
			err = touch_copy(buf, x->view + off, sizeof(buf));
		if (err) {
			atomic_fetch_add(&x->bad, 1);
			continue;
		}
		for (size_t b = 0; b < sizeof(buf); b++)
			if ((uint8_t)buf[b] != pattern(page, 6, b)) {
				atomic_fetch_add(&x->bad, 1);
				break;
			}
	}
	return NULL;
}

/*
 * The source pushing every page (NEXT) while touches of every kind - the
 * guest mapping, views, gmem_read() - ask for pages from three threads:
 * answers and pushes cross, pages asked for come twice, and every touch
 * sees the source's contents.  Three rounds, a post-copy save each.
 */
TEST_OPTS(postcopy_touches_race_the_stream, .timeout_s = 60)
{
	struct gmem *src = tg_create(env, N * U, 0, 0), *dst;
	char *gs = guest_of(src);
	int fd = memfile();
	struct pcq *q = malloc(sizeof(*q));
	struct racer x[3];
	pthread_t t[3];

	CHECK(q);
	for (uint64_t off = 0; off < N * U; off += PS)
		fill_page(gs + off, off / PS, 6);
	CHECK_OK(gmem_convert(src, 2 * U, U, GMEM_PRIVATE, 0, NULL));
	for (int round = 0; round < 3; round++) {
		CHECK_OK(ftruncate(fd, 0));
		rewind_fd(fd);
		postcopy_save(src, fd, 0);
		dst = tg_create(env, N * U, 0, 0);
		pcq_init(q, src, dst);
		postcopy_restore(dst, fd, q);
		pcq_serve(q);
		for (int i = 0; i < 3; i++) {
			x[i] = (struct racer){ .g = dst, .guest = guest_of(dst), .view = tg_view(dst, 0),
					       .seed = (unsigned int)(round * 3 + i + 1),
					       .size = N * U, .unit = U };
			CHECK_OK(pthread_create(&t[i], NULL, race_touches, &x[i]));
		}
		/* some touches asked first, so that answers and pushes cross */
		for (double end = now_s() + 2; now_s() < end;) {
			size_t asked;

			pthread_mutex_lock(&q->mu);
			asked = q->n;
			pthread_mutex_unlock(&q->mu);
			if (asked >= 3)
				break;
			usleep(200);
		}
		stream_rest(src, dst);
		for (int i = 0; i < 3; i++) {
			join_within(t[i], 30, "a racing toucher");
			CHECK_EQ(atomic_load(&x[i].bad), 0);
		}
		CHECK_OK(gmem_restore_wait(dst, 5000));
		pcq_stop(q);
		check_contents(src, dst);
		CHECK_OK(gmem_audit(dst));
		CHECK_OK(gmem_destroy(dst));
	}
	free(q);
	close(fd);
	CHECK_OK(gmem_destroy(src));
}
