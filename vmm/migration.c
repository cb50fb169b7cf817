// SPDX-License-Identifier: MIT
/*
 * migration.c - pre-copy live migration of a gmem-vmm VM (docs/MIGRATION.md).
 *
 * The source sends its machine (HELLO), then every populated page with
 * its state while the guest runs (a full gmem save), then rounds of what
 * was written since (gmem layers: tracking of the guest's writes through
 * the guest mapping and of the devices' through the views and gmem's own
 * copies - a page converted is a page written, so states travel with
 * every round), until a round is small enough to send with the VM paused
 * within --max-downtime or the rounds stop shrinking.  Then it pauses the
 * VM, sends the last round and the VMM's state, and waits for the
 * destination to say it has made the machine (READY); it answers GO and
 * never runs the VM again.  The destination runs the VM only on GO: at no
 * moment do both run it.  Any failure before GO leaves the source running
 * as if nothing had been tried.
 *
 * Post-copy (--postcopy) stops after the first round: the last file is a
 * post-copy one (states, and which pages are still to come), then the
 * state, READY, GO as above - and the pages follow while the VM runs at
 * the destination (postcopy.c).
 */
#define _GNU_SOURCE
#include "migration.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vcpu.h"

#define CONNECT_S 10   /* a destination that does not listen by then is not coming */
#define IO_TIMEOUT_S 30 /* a peer silent this long is gone */
#define PAUSED_S 60    /* the VM paused for the hand-over: longer, and it runs on here */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t pages_saved(struct gmem *g)
{
	struct gmem_stats st;

	gmem_get_stats(g, &st);
	return st.pages_saved;
}

static uint64_t pages_restored(struct gmem *g)
{
	struct gmem_stats st;

	gmem_get_stats(g, &st);
	return st.pages_restored;
}

/* Why a call on c failed: the watch's word if it cut the connection. */
static const char *why(const struct mig_conn *c, int err)
{
	const char *stalled = mig_stalled(c);

	if (stalled)
		return stalled;
	return err == -EPIPE ? "the connection broke" : err == -EBADMSG ? "garbage on the wire"
						       : strerror(-err);
}

/* The VM ended (the guest's exit, an error): nothing to migrate. */
static bool vm_over(struct vm *vm)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return vm_wait_until(vm, &now);
}

/* One round: a MIG_MEMORY frame and gmem's file, counted in r. */
static int send_round(struct mig_conn *c, struct gmem *g, unsigned int flags, struct mig_report *r)
{
	uint64_t before = pages_saved(g);
	double t = now_s();
	int err = mig_send_memory(c, g, flags);
	struct mig_round *rd = &r->rounds[r->nrounds];

	if (err)
		return err;
	rd->pages = pages_saved(g) - before;
	rd->ms = (now_s() - t) * 1e3;
	r->pages_sent += rd->pages;
	r->nrounds++;
	return 0;
}

/* On a terminal, each round as it goes. */
static void show_round(const struct mig_report *r, double expected_ms)
{
	const struct mig_round *rd = &r->rounds[r->nrounds - 1];

	if (!isatty(2))
		return;
	fprintf(stderr, "gmem-vmm: migrating: round %u: %llu pages (%.1f MiB) in %.0f ms, %.0f MiB/s",
		r->nrounds - 1, (unsigned long long)rd->pages, rd->pages * 4096.0 / 1048576,
		rd->ms, rd->ms > 0 ? rd->pages * 4096.0 / 1048576 / (rd->ms / 1e3) : 0.0);
	if (expected_ms >= 0)
		fprintf(stderr, "; the last round would pause the VM ~%.0f ms", expected_ms);
	fputc('\n', stderr);
}

/*
 * Whether the pre-copy rounds are done: the pages the latest round sent
 * were written while the one before it went, and as many will have been
 * written while this one went - sent at the full copy's rate, they are
 * the pause.  Done when that fits in max_downtime_ms, when the rounds
 * have stopped shrinking (three in a row no smaller than the smallest),
 * or after MIG_ROUNDS_MAX.
 */
static bool precopy_done(const struct mig_report *r, unsigned int max_downtime_ms,
			 double *expected_ms)
{
	const struct mig_round *full = &r->rounds[0], *last = &r->rounds[r->nrounds - 1];
	double rate = full->ms > 0 && full->pages ? full->pages / full->ms : 1e6; /* pages/ms */
	uint64_t smallest = UINT64_MAX;
	unsigned int not_smaller = 0;

	*expected_ms = last->pages / rate;
	if (r->nrounds < 2)
		return false;
	if (*expected_ms <= max_downtime_ms || r->nrounds >= MIG_ROUNDS_MAX)
		return true;
	for (unsigned int i = 1; i < r->nrounds; i++) {
		not_smaller = r->rounds[i].pages >= smallest ? not_smaller + 1 : 0;
		if (r->rounds[i].pages < smallest)
			smallest = r->rounds[i].pages;
	}
	return not_smaller >= 3;
}

int migrate_out(struct snap_run *s, const struct mig_options *o, struct mig_report *r,
		char *msg, size_t msg_len)
{
	struct gmem *g = s->vm->mem;
	struct mig_conn c = { .fd = -1 };
	struct pc_out *po = NULL;
	struct sbuf b = { 0 };
	double t0 = now_s(), t_pause, expected;
	uint32_t type;
	uint64_t len;
	char *p = NULL, rmsg[128];
	int err;

	*r = (struct mig_report){ .addr = o->addr };
	err = mig_connect(o->addr, CONNECT_S, &c, msg, msg_len);
	if (err)
		return err;
	mig_set_timeout(&c, IO_TIMEOUT_S);
	err = mig_watch_start(&c);
	if (err) {
		snprintf(msg, msg_len, "watching the connection: %s", strerror(-err));
		goto out_close;
	}
	err = snap_config(s, &b, msg, msg_len);
	if (err)
		goto out_close;
	err = mig_send(&c, MIG_HELLO, b.p, b.len);
	sbuf_free(&b);
	if (err) {
		snprintf(msg, msg_len, "%s: sending the machine: %s", o->addr, why(&c, err));
		goto out_close;
	}
	/* from here every page written goes again: the guest's, the devices', gmem's */
	err = gmem_track_start(g, GMEM_TRACK_GUEST);
	if (err) {
		snprintf(msg, msg_len, "tracking the guest's writes: %s", strerror(-err));
		goto out_close;
	}
	for (bool done = false; !done;) {
		bool full = !r->nrounds;

		if (o->postcopy && r->nrounds >= o->postcopy_rounds)
			goto postcopy;

		err = send_round(&c, g, full ? 0 : GMEM_SAVE_DIRTY, r);
		if (err) {
			snprintf(msg, msg_len, "%s: sending memory: %s", o->addr, why(&c, err));
			goto out_untrack;
		}
		if (full)
			r->pages_populated = r->rounds[0].pages;
		if (vm_over(s->vm)) {
			err = -ECANCELED;
			goto out_untrack;
		}
		done = !o->postcopy && precopy_done(r, o->max_downtime_ms, &expected);
		show_round(r, full || o->postcopy ? -1 : expected);
	}

	/* the last round, the VM still: for PAUSED_S at most, then it runs on here */
	mig_watch_deadline(&c, PAUSED_S);
	t_pause = now_s();
	if (snap_pause(s)) {
		err = -ECANCELED;
		goto out_untrack;
	}
	err = send_round(&c, g, GMEM_SAVE_DIRTY | GMEM_SAVE_PAUSED, r);
	if (err) {
		snprintf(msg, msg_len, "%s: sending memory: %s", o->addr, why(&c, err));
		goto out_resume;
	}
	err = snap_state(s, &b, msg, msg_len);
	if (!err) {
		err = mig_send(&c, MIG_STATE, b.p, b.len);
		if (err)
			snprintf(msg, msg_len, "%s: sending the VM's state: %s", o->addr, why(&c, err));
	}
	sbuf_free(&b);
	if (err)
		goto out_resume;
	err = mig_recv(&c, IO_TIMEOUT_S, 0, &type, &p, &len);
	if (!err && type != MIG_READY)
		err = -EBADMSG;
	free(p);
	if (err) {
		snprintf(msg, msg_len, "%s: the destination did not take the VM: %s", o->addr,
			 err == -ETIMEDOUT ? "no answer" : why(&c, err));
		goto out_resume;
	}
	err = mig_send(&c, MIG_GO, NULL, 0);
	if (err) {
		snprintf(msg, msg_len, "%s: handing over: %s", o->addr, why(&c, err));
		goto out_resume;
	}
	/* GO went: the VM is the destination's, whatever happens here now */
	r->downtime_ms = (now_s() - t_pause) * 1e3;
	r->total_ms = (now_s() - t0) * 1e3;
	r->done = true;
	mig_close(&c);
	return 0;

postcopy:
	/* the VM still, for good if GO goes: its states and which pages are to come */
	mig_watch_deadline(&c, PAUSED_S);
	t_pause = now_s();
	if (snap_pause(s)) {
		err = -ECANCELED;
		goto out_untrack;
	}
	r->postcopy = true;
	/* after no round, a full file: every populated page follows */
	err = send_round(&c, g, (r->nrounds ? GMEM_SAVE_DIRTY : 0) | GMEM_SAVE_PAUSED |
				       GMEM_SAVE_POSTCOPY, r);
	if (err) {
		snprintf(msg, msg_len, "%s: sending memory: %s", o->addr, why(&c, err));
		goto out_resume;
	}
	err = snap_state(s, &b, msg, msg_len);
	if (!err) {
		err = mig_send(&c, MIG_STATE, b.p, b.len);
		if (err)
			snprintf(msg, msg_len, "%s: sending the VM's state: %s", o->addr, why(&c, err));
	}
	sbuf_free(&b);
	if (!err && (err = pc_out_start(&po, &c, g)))
		snprintf(msg, msg_len, "post-copy: %s", strerror(-err));
	if (err)
		goto out_resume;
	/* from here the destination may fetch: it makes the machine */
	err = pc_out_ready(po, IO_TIMEOUT_S, rmsg, sizeof(rmsg));
	if (err) {
		snprintf(msg, msg_len, "%s: %s", o->addr, rmsg);
		goto out_stop;
	}
	err = pc_out_send(po, MIG_GO);
	if (err) {
		snprintf(msg, msg_len, "%s: handing over: %s", o->addr, why(&c, err));
		goto out_stop;
	}
	/* GO went: the VM runs there, and its pages are here until they are sent */
	r->downtime_ms = (now_s() - t_pause) * 1e3;
	mig_watch_deadline(&c, 0);
	err = pc_out_push(po, rmsg, sizeof(rmsg));
	pc_out_stop(po, &r->pc);
	r->pages_sent += r->pc.pages_pushed + r->pc.pages_fetched;
	r->total_ms = (now_s() - t0) * 1e3;
	mig_close(&c);
	if (err) {
		snprintf(msg, msg_len, "%s: post-copy: %s, with pages of the VM not sent: "
			 "the VM is lost", o->addr, rmsg);
		return -ENOTRECOVERABLE;
	}
	r->done = true;
	return 0;

out_stop:
	pc_out_stop(po, &r->pc);
out_resume:
	snap_resume(s, rmsg, sizeof(rmsg));
out_untrack:
	gmem_track_stop(g);
out_close:
	mig_close(&c);
	return err;
}

/* ---- the destination ---- */

int migrate_in_hello(struct mig_conn *c, struct snapv_in *in, struct mig_report *r, char *msg,
		     size_t msg_len)
{
	uint32_t type;
	uint64_t len;
	char *p;
	int err = mig_recv(c, IO_TIMEOUT_S, MIG_HELLO_MAX, &type, &p, &len);

	r->incoming = true;
	r->total_ms = now_s() * 1e3; /* the start, until GO */
	if (!err && type != MIG_HELLO) {
		free(p);
		err = -EBADMSG;
	} else if (!err) {
		err = snapv_adopt(in, p, len, "the migration's source");
	}
	if (!err && !snapv_find(in, SEC_CONFIG, 0, NULL))
		err = -EBADMSG;
	if (err)
		snprintf(msg, msg_len, "the migration's source: %s",
			 err == -EBADMSG ? "not a gmem-vmm migration (refused before anything)"
					 : why(c, err));
	return err;
}

/* The next frame: from the connection, or - post-copy - from the thread that reads it. */
static int next_frame(struct mig_conn *c, struct mig_report *r, uint32_t *type, char **p,
		      uint64_t *len)
{
	if (r->pin)
		return pc_in_next(r->pin, IO_TIMEOUT_S, type, p, len);
	return mig_recv(c, IO_TIMEOUT_S, MIG_STATE_MAX, type, p, len);
}

int migrate_in_memory(struct mig_conn *c, struct vm *vm, struct snapv_in *in,
		      struct mig_report *r, char *msg, size_t msg_len)
{
	const void *cfg = snapv_find(in, SEC_CONFIG, 0, NULL);
	char hello_cfg[sizeof(struct snapv_config)];
	struct gmem *g = vm->mem;

	memcpy(hello_cfg, cfg, sizeof(hello_cfg));
	for (;;) {
		uint32_t type;
		uint64_t len, before;
		char *p;
		double t = now_s();
		int err = next_frame(c, r, &type, &p, &len);

		if (err) {
			snprintf(msg, msg_len, "the migration's source: %s",
				 err == -ETIMEDOUT ? "silent for too long" : why(c, err));
			return err;
		}
		if (type == MIG_STATE) {
			uint64_t cl;

			err = snapv_adopt(in, p, len, "the migration's source");
			cfg = err ? NULL : snapv_find(in, SEC_CONFIG, 0, &cl);
			if (!cfg || cl != sizeof(hello_cfg) || memcmp(cfg, hello_cfg, cl)) {
				snprintf(msg, msg_len, "the migration's source: its VM's state "
						       "does not parse, or is not the machine it began with");
				return -EBADMSG;
			}
			if (!r->nrounds) {
				snprintf(msg, msg_len, "the migration's source: its VM's state before "
						       "any memory");
				return -EBADMSG;
			}
			return 0;
		}
		if (type == MIG_POSTCOPY && !r->postcopy) {
			/* the last memory: the pages it names follow, read by a thread of their own */
			r->postcopy = true;
			err = pc_in_start(&r->pin, c, g, vm);
			if (err) {
				snprintf(msg, msg_len, "the migration's source: its memory: %s",
					 err == -EBADMSG ? "does not check (or the connection broke)"
					 : err == -EXDEV ? "a round that does not follow the one before"
							 : strerror(-err));
				return err;
			}
			r->rounds[r->nrounds].ms = (now_s() - t) * 1e3;
			r->nrounds++;
			continue;
		}
		if (type != MIG_MEMORY || r->postcopy || r->nrounds >= MIG_ROUNDS_MAX + 2) {
			free(p);
			snprintf(msg, msg_len, "the migration's source: %s",
				 type == MIG_MEMORY ? "more rounds than any source sends"
						    : "a frame out of place");
			return -EBADMSG;
		}
		before = pages_restored(g);
		err = gmem_restore(g, c->fd, GMEM_RESTORE_ONE);
		if (err) {
			snprintf(msg, msg_len, "the migration's source: its memory: %s",
				 err == -EBADMSG ? "does not check (or the connection broke)"
				 : err == -EXDEV ? "a round that does not follow the one before"
				 : err == -EAGAIN ? "silent for too long"
						  : strerror(-err));
			return err;
		}
		r->rounds[r->nrounds].pages = pages_restored(g) - before;
		r->rounds[r->nrounds].ms = (now_s() - t) * 1e3;
		r->pages_sent += r->rounds[r->nrounds].pages;
		r->nrounds++;
	}
}

int migrate_in_commit(struct mig_conn *c, struct mig_report *r, char *msg, size_t msg_len)
{
	uint32_t type;
	uint64_t len = 0;
	char *p = NULL;
	int err = r->pin ? pc_in_send(r->pin, MIG_READY) : mig_send(c, MIG_READY, NULL, 0);

	if (!err)
		err = r->pin ? pc_in_next(r->pin, IO_TIMEOUT_S, &type, &p, &len)
			     : mig_recv(c, IO_TIMEOUT_S, 0, &type, &p, &len);
	free(p);
	if (!err && (type != MIG_GO || len))
		err = -EBADMSG;
	if (!err && r->pin)
		pc_in_go(r->pin); /* the VM runs here from now on, and its pages follow */
	if (err) {
		/* the source runs on: it had not said GO */
		snprintf(msg, msg_len, "the migration's source did not hand over: %s", why(c, err));
		return err;
	}
	r->done = true;
	r->total_ms = now_s() * 1e3 - r->total_ms;
	return 0;
}

int migrate_in_end(struct mig_report *r, char *msg, size_t msg_len)
{
	int err = pc_in_finish(r->pin, &r->pc, msg, msg_len);

	r->pin = NULL;
	return err;
}

void migration_json(const struct mig_report *r, FILE *f)
{
	fprintf(f, "{\"role\": \"%s\", \"done\": %s, \"rounds\": [", r->incoming ? "destination" : "source",
		r->done ? "true" : "false");
	for (unsigned int i = 0; i < r->nrounds; i++)
		fprintf(f, "%s{\"pages\": %llu, \"ms\": %.1f}", i ? ", " : "",
			(unsigned long long)r->rounds[i].pages, r->rounds[i].ms);
	fprintf(f, "], \"pages_sent\": %llu", (unsigned long long)r->pages_sent);
	if (!r->incoming)
		fprintf(f, ", \"pages_populated\": %llu, \"downtime_ms\": %.1f",
			(unsigned long long)r->pages_populated, r->downtime_ms);
	if (r->postcopy)
		fprintf(f, ", \"postcopy\": {\"fetches\": %llu, \"pages_fetched\": %llu, "
			   "\"pages_pushed\": %llu, \"ms\": %.1f, \"complete\": %s}",
			(unsigned long long)r->pc.fetches, (unsigned long long)r->pc.pages_fetched,
			(unsigned long long)r->pc.pages_pushed, r->pc.ms,
			r->pc.complete ? "true" : "false");
	fprintf(f, ", \"total_ms\": %.1f}", r->done ? r->total_ms : 0.0);
}
