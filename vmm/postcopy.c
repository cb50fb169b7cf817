// SPDX-License-Identifier: MIT
/*
 * postcopy.c - a migration's post-copy phase (docs/MIGRATION.md).
 *
 * The source has sent a gmem post-copy file (the pages' states and which
 * pages are still to come) and the VM's state; the destination runs the
 * VM once GO comes, and its pages come meanwhile as records
 * (gmem_postcopy_send() -> MIG_PAGES -> gmem_postcopy_receive()): those a
 * touch needs first - the library asks (gmem_postcopy's fetch), which
 * sends MIG_FETCH - and the rest as the source pushes them in order.
 *
 * One connection carries both ways.  Each side has one thread that reads
 * it for the whole phase, and sends go one at a time under a mutex: the
 * source's answers beside its pushes, the destination's fetches beside
 * READY and DONE.  From GO on, neither side holds the whole VM: a
 * connection that fails ends both, with status 1.  DONE (the destination
 * needs no more pages: all came, or its VM ended) ends the phase cleanly;
 * the source then closes, and the destination's reader sees the end.
 */
#define _GNU_SOURCE
#include "postcopy.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A push: this much at a time, so that an answer waits for one at most. */
#define PUSH_BYTES (256u * 1024)
/* An answer: a fetch's range this many pages at a time (each a record at worst). */
#define ANSWER_PAGES 64
#define RECORD_HEADER 32 /* gmem's record header (docs/SNAPSHOT.md) */
#define ANSWER_BYTES (ANSWER_PAGES * (GMEM_PAGE_SIZE + RECORD_HEADER))
/* The destination, the VM ended: how long DONE waits for the source to close. */
#define CLOSE_WAIT_S 5

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void deadline_in(struct timespec *ts, unsigned int s)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += s;
}

/* Pages in a buffer of gmem records (as gmem_postcopy_send() made it). */
static uint64_t records_pages(const char *buf, uint64_t len)
{
	uint64_t pages = 0;

	for (uint64_t at = 0; at + RECORD_HEADER <= len;) {
		uint64_t count;

		memcpy(&count, buf + at + 16, sizeof(count));
		pages += count;
		at += RECORD_HEADER + count * GMEM_PAGE_SIZE;
	}
	return pages;
}

static const char *why(const struct mig_conn *c, int err)
{
	const char *stalled = mig_stalled(c);

	if (stalled)
		return stalled;
	return err == -EPIPE ? "the connection broke" : err == -EBADMSG ? "garbage on the wire"
						       : strerror(-err);
}

/* GMEM_VMM_PUSH_DELAY_MS (1 to 1000): a pause between pushes, for tests of a phase cut short. */
static unsigned int push_delay_ms(void)
{
	const char *e = getenv("GMEM_VMM_PUSH_DELAY_MS");
	int v = e ? atoi(e) : 0;

	return v >= 1 && v <= 1000 ? (unsigned int)v : 0;
}

/* ---- the source ---- */

struct pc_out {
	struct mig_conn *c;
	struct gmem *g;
	pthread_t thread;
	pthread_mutex_t mu; /* sends, and everything below */
	pthread_cond_t cv;
	bool ready, done;   /* READY came; DONE came */
	bool go;            /* GO went: from here the destination may say DONE */
	int err;            /* the reader's end: the connection failed, or garbage */
	struct pc_stats st;
	double t_go;
	char *push_buf, *answer_buf;
};

/* A fetch, answered (mu held): the pages of its range, a chunk a frame. */
static int answer(struct pc_out *po, const char *p, uint64_t len)
{
	struct mig_fetch f;

	if (len != sizeof(f))
		return -EBADMSG;
	memcpy(&f, p, sizeof(f));
	if (!f.len || f.offset % GMEM_PAGE_SIZE || f.len % GMEM_PAGE_SIZE ||
	    f.offset >= gmem_size(po->g) || f.len > gmem_size(po->g) - f.offset)
		return -EBADMSG; /* not whole pages of the VM's RAM */
	po->st.fetches++;
	for (uint64_t off = f.offset; off < f.offset + f.len; off += ANSWER_PAGES * GMEM_PAGE_SIZE) {
		uint64_t chunk = f.offset + f.len - off;
		int64_t n;
		int err;

		chunk = chunk < ANSWER_PAGES * GMEM_PAGE_SIZE ? chunk : ANSWER_PAGES * GMEM_PAGE_SIZE;
		n = gmem_postcopy_send(po->g, off, chunk, po->answer_buf, ANSWER_BYTES, 0);
		if (n == -EINVAL)
			return -EBADMSG; /* a range outside the VM's memory */
		if (n < 0)
			return (int)n;
		if (!n)
			continue; /* none of them was to come */
		err = mig_send(po->c, MIG_PAGES, po->answer_buf, (uint64_t)n);
		if (err)
			return err;
		po->st.pages_fetched += records_pages(po->answer_buf, (uint64_t)n);
	}
	return 0;
}

static void *out_main(void *arg)
{
	struct pc_out *po = arg;
	bool end = false;

	while (!end) {
		uint32_t type;
		uint64_t len;
		char *p = NULL;
		int err = mig_recv(po->c, 0, sizeof(struct mig_fetch), &type, &p, &len);

		pthread_mutex_lock(&po->mu);
		if (!err) {
			if (type == MIG_FETCH)
				err = answer(po, p, len);
			else if (type == MIG_READY && !po->ready && !len)
				po->ready = true;
			else if (type == MIG_DONE && po->go && !len)
				po->done = true;
			else
				err = -EBADMSG;
		}
		free(p);
		if (err && !po->done)
			po->err = err;
		end = err || po->done;
		pthread_cond_broadcast(&po->cv);
		pthread_mutex_unlock(&po->mu);
	}
	return NULL;
}

int pc_out_start(struct pc_out **pop, struct mig_conn *c, struct gmem *g)
{
	struct pc_out *po = calloc(1, sizeof(*po));
	int err = -ENOMEM;

	if (!po)
		return err;
	po->c = c;
	po->g = g;
	po->push_buf = malloc(PUSH_BYTES);
	po->answer_buf = malloc(ANSWER_BYTES);
	if (!po->push_buf || !po->answer_buf)
		goto err_free;
	pthread_mutex_init(&po->mu, NULL);
	pthread_cond_init(&po->cv, NULL);
	/* the destination may be silent for long (no fetch): the watch judges */
	mig_set_timeout(c, 0);
	err = -pthread_create(&po->thread, NULL, out_main, po);
	if (err)
		goto err_locks;
	*pop = po;
	return 0;

err_locks:
	pthread_cond_destroy(&po->cv);
	pthread_mutex_destroy(&po->mu);
err_free:
	free(po->answer_buf);
	free(po->push_buf);
	free(po);
	return err;
}

int pc_out_ready(struct pc_out *po, unsigned int timeout_s, char *msg, size_t msg_len)
{
	struct timespec ts;
	int err = 0;

	deadline_in(&ts, timeout_s);
	pthread_mutex_lock(&po->mu);
	while (!po->ready && !po->err && !err)
		err = -pthread_cond_timedwait(&po->cv, &po->mu, &ts);
	if (po->ready)
		err = 0;
	else if (po->err)
		err = po->err;
	pthread_mutex_unlock(&po->mu);
	if (err)
		snprintf(msg, msg_len, "the destination did not take the VM: %s",
			 err == -ETIMEDOUT ? "no answer" : why(po->c, err));
	return err;
}

int pc_out_send(struct pc_out *po, uint32_t type)
{
	int err;

	pthread_mutex_lock(&po->mu);
	err = po->err ? po->err : mig_send(po->c, type, NULL, 0);
	if (type == MIG_GO && !err) {
		po->go = true;
		po->t_go = now_s();
	}
	pthread_mutex_unlock(&po->mu);
	return err;
}

int pc_out_push(struct pc_out *po, char *msg, size_t msg_len)
{
	unsigned int delay = push_delay_ms();
	int err = 0;

	if (getenv("GMEM_VMM_CUT_AFTER_GO")) {
		/* a test's source that dies at the hand-over: the connection ends with GO */
		shutdown(po->c->fd, SHUT_RDWR);
		snprintf(msg, msg_len, "cut after GO (GMEM_VMM_CUT_AFTER_GO)");
		return -EPIPE;
	}
	for (;;) {
		int64_t n;

		pthread_mutex_lock(&po->mu);
		if (po->err || po->done) {
			pthread_mutex_unlock(&po->mu);
			break;
		}
		n = gmem_postcopy_send(po->g, 0, 0, po->push_buf, PUSH_BYTES, GMEM_POSTCOPY_NEXT);
		if (n > 0) {
			err = mig_send(po->c, MIG_PAGES, po->push_buf, (uint64_t)n);
			if (!err)
				po->st.pages_pushed += records_pages(po->push_buf, (uint64_t)n);
		} else {
			err = (int)n;
		}
		pthread_mutex_unlock(&po->mu);
		if (err || !n)
			break;
		if (delay) {
			/* a test's slow push: cut short by the connection's end */
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)delay * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_mutex_lock(&po->mu);
			while (!po->err && !po->done &&
			       pthread_cond_timedwait(&po->cv, &po->mu, &ts) != ETIMEDOUT)
				;
			pthread_mutex_unlock(&po->mu);
		}
	}
	/* every page went: what the destination says now ends it */
	pthread_mutex_lock(&po->mu);
	while (!err && !po->done && !po->err)
		pthread_cond_wait(&po->cv, &po->mu);
	if (po->done) {
		err = 0;
		po->st.complete = true;
		po->st.ms = (now_s() - po->t_go) * 1e3;
	} else if (!err) {
		err = po->err;
	}
	pthread_mutex_unlock(&po->mu);
	if (err)
		snprintf(msg, msg_len, "%s", why(po->c, err));
	return err;
}

void pc_out_stop(struct pc_out *po, struct pc_stats *st)
{
	if (!po)
		return;
	shutdown(po->c->fd, SHUT_RDWR); /* the reader, out of its wait */
	pthread_join(po->thread, NULL);
	*st = po->st;
	pthread_cond_destroy(&po->cv);
	pthread_mutex_destroy(&po->mu);
	free(po->answer_buf);
	free(po->push_buf);
	free(po);
}

/* ---- the destination ---- */

struct pc_in {
	struct mig_conn *c;
	struct gmem *g;
	struct vm *vm;
	pthread_t thread;
	pthread_mutex_t mu; /* sends, and everything below */
	pthread_cond_t cv;
	/* a frame for the main thread (the VM's state, GO): one at a time */
	bool has;
	uint32_t type;
	char *payload;
	uint64_t len;
	bool go, complete, done_sent, finishing, ended;
	int err; /* the connection's, or the library's refusal of what came */
	double t_go;
	struct pc_stats st;
};

/* gmem_postcopy's fetch: the library's fault thread or a toucher's, asking. */
static void in_fetch(void *arg, uint64_t offset, uint64_t len)
{
	struct pc_in *pi = arg;
	struct mig_fetch f = { offset, len };

	pthread_mutex_lock(&pi->mu);
	if (!pi->err) {
		/* a failure here is the reader's too: it ends the VM */
		if (!mig_send(pi->c, MIG_FETCH, &f, sizeof(f))) {
			pi->st.fetches++;
			pi->st.pages_fetched += len / GMEM_PAGE_SIZE;
		}
	}
	pthread_mutex_unlock(&pi->mu);
}

/* Every page here (mu held): DONE, once the VM runs here. */
static void in_done(struct pc_in *pi)
{
	if (pi->go && !pi->done_sent && !pi->err) {
		pi->done_sent = true;
		if (pi->complete)
			pi->st.ms = (now_s() - pi->t_go) * 1e3;
		mig_send(pi->c, MIG_DONE, NULL, 0); /* if it fails, the source's watch ends it */
	}
}

static void *in_main(void *arg)
{
	struct pc_in *pi = arg;
	bool lost, early;
	int err;

	for (;;) {
		uint32_t type;
		uint64_t len;
		char *p = NULL;

		err = mig_recv(pi->c, 0, MIG_STATE_MAX, &type, &p, &len);
		if (!err && type == MIG_PAGES) {
			err = gmem_postcopy_receive(pi->g, p, len);
			free(p);
			if (err)
				break;
			if (!pi->complete && !gmem_restore_wait(pi->g, 0)) {
				pthread_mutex_lock(&pi->mu);
				pi->complete = pi->st.complete = true;
				in_done(pi);
				pthread_mutex_unlock(&pi->mu);
			}
			continue;
		}
		pthread_mutex_lock(&pi->mu);
		while (!err && pi->has && !pi->finishing)
			pthread_cond_wait(&pi->cv, &pi->mu);
		if (!err && !pi->go && !pi->has && (type == MIG_STATE || type == MIG_GO)) {
			pi->has = true;
			pi->type = type;
			pi->payload = p;
			pi->len = len;
			p = NULL;
			if (type == MIG_GO && !len) {
				/* the VM is this side's from now, whatever comes next */
				pi->go = true;
				pi->t_go = now_s();
				if (pi->complete)
					in_done(pi);
			}
		} else if (!err) {
			err = -EBADMSG;
		}
		pthread_cond_broadcast(&pi->cv);
		pthread_mutex_unlock(&pi->mu);
		free(p);
		if (err)
			break;
	}
	pthread_mutex_lock(&pi->mu);
	pi->err = err;
	pi->ended = true;
	lost = pi->go && !pi->complete && !pi->finishing;
	early = !pi->go && !pi->complete;
	pthread_cond_broadcast(&pi->cv);
	pthread_mutex_unlock(&pi->mu);
	if (lost)
		vm_end(pi->vm, 1, "post-copy: the migration's source: %s, with pages of the VM "
				  "still there: it cannot go on", why(pi->c, err));
	else if (early)
		/* before GO nothing runs the VM: a pin of the machine's making waiting
		 * for a page fails now, and the destination gives up */
		gmem_postcopy_abort(pi->g, err);
	return NULL;
}

int pc_in_start(struct pc_in **pip, struct mig_conn *c, struct gmem *g, struct vm *vm)
{
	struct pc_in *pi = calloc(1, sizeof(*pi));
	struct gmem_postcopy pc;
	int err;

	if (!pi)
		return -ENOMEM;
	pi->c = c;
	pi->g = g;
	pi->vm = vm;
	pthread_mutex_init(&pi->mu, NULL);
	pthread_cond_init(&pi->cv, NULL);
	pc = (struct gmem_postcopy){ .fetch = in_fetch, .arg = pi };
	err = gmem_postcopy_restore(g, c->fd, &pc);
	if (err)
		goto err_free;
	mig_set_timeout(c, 0); /* the source may be silent for long (pushing none): the watch judges */
	err = -pthread_create(&pi->thread, NULL, in_main, pi);
	if (err)
		goto err_abort;
	*pip = pi;
	return 0;

err_abort:
	gmem_postcopy_abort(g, -ECANCELED);
err_free:
	pthread_cond_destroy(&pi->cv);
	pthread_mutex_destroy(&pi->mu);
	free(pi);
	return err;
}

int pc_in_next(struct pc_in *pi, unsigned int timeout_s, uint32_t *type, char **payload,
	       uint64_t *len)
{
	struct timespec ts;
	int err = 0;

	deadline_in(&ts, timeout_s);
	pthread_mutex_lock(&pi->mu);
	while (!pi->has && !pi->ended && !err)
		err = -pthread_cond_timedwait(&pi->cv, &pi->mu, &ts);
	if (pi->has) {
		*type = pi->type;
		*payload = pi->payload;
		*len = pi->len;
		pi->has = false;
		pi->payload = NULL;
		err = 0;
		pthread_cond_broadcast(&pi->cv);
	} else if (pi->ended) {
		err = pi->err ? pi->err : -EPIPE;
	}
	pthread_mutex_unlock(&pi->mu);
	return err;
}

int pc_in_send(struct pc_in *pi, uint32_t type)
{
	int err;

	pthread_mutex_lock(&pi->mu);
	err = pi->ended ? (pi->err ? pi->err : -EPIPE) : mig_send(pi->c, type, NULL, 0);
	pthread_mutex_unlock(&pi->mu);
	return err;
}

void pc_in_go(struct pc_in *pi)
{
	/* the reader marked it when GO came: DONE goes from there if every page is here */
	pthread_mutex_lock(&pi->mu);
	if (pi->complete)
		in_done(pi);
	pthread_mutex_unlock(&pi->mu);
}

int pc_in_finish(struct pc_in *pi, struct pc_stats *st, char *msg, size_t msg_len)
{
	struct timespec ts;
	int err;

	if (!pi)
		return 0;
	pthread_mutex_lock(&pi->mu);
	if (!pi->complete && !pi->ended)
		pi->st.ms = (now_s() - pi->t_go) * 1e3;
	/* the VM ended here: the source need send no more, and closes */
	if (!pi->ended && pi->go && !pi->done_sent) {
		pi->done_sent = true;
		mig_send(pi->c, MIG_DONE, NULL, 0);
	}
	pi->finishing = true;
	pthread_cond_broadcast(&pi->cv);
	deadline_in(&ts, CLOSE_WAIT_S);
	while (!pi->ended && pthread_cond_timedwait(&pi->cv, &pi->mu, &ts) != ETIMEDOUT)
		;
	err = pi->complete || pi->done_sent ? 0 : pi->err;
	pthread_mutex_unlock(&pi->mu);
	shutdown(pi->c->fd, SHUT_RDWR);
	pthread_join(pi->thread, NULL);
	/* whatever still waits for a page that will not come: failed, not left waiting */
	if (!pi->complete)
		gmem_postcopy_abort(pi->g, err ? err : -ECANCELED);
	if (err)
		snprintf(msg, msg_len, "post-copy: the migration's source: %s", why(pi->c, err));
	*st = pi->st;
	free(pi->payload);
	pthread_cond_destroy(&pi->cv);
	pthread_mutex_destroy(&pi->mu);
	free(pi);
	return err;
}
