// SPDX-License-Identifier: MIT
/*
 * test_transitions.c - the state machine as a table, walked as a test.
 *
 * As pKVM's mem_protect self-test walks its transitions: each row names a
 * starting state of page 0 (with the parties holding it: pins, a strict
 * view, a pending deferred conversion), an operation on it, the errno the
 * operation must return, the state the page must end in, and the callback
 * the row must produce.  After every row the host's touch must agree with
 * the state and the audit must pass.  Each row is a case of its own, in
 * every environment.  On hugetlbfs a pin refuses a conversion whatever the
 * flags, so no page is ever in transit: the rows starting there do not
 * apply, and huge_table's rows answer instead of the table's; a strict
 * view covers the whole huge page.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

enum from {
	F_SHARED,
	F_SHARED_PINNED,   /* one short-term pin */
	F_SHARED_LONG,     /* one long-term pin */
	F_SHARED_STRICT,   /* covered by a strict view */
	F_PRIVATE,
	F_CONVERTING,      /* deferred, one short-term pin left */
};

enum op {
	O_PRIVATE,
	O_PRIVATE_WAIT,
	O_PRIVATE_DEFER,
	O_SHARED,
	O_PIN,
	O_PIN_LONG,
	O_UNPIN,
	O_UNPIN_LONG,
	O_DISCARD,
};

#define NO_CB 1 /* no callback expected */

static const struct row {
	enum from from;
	enum op op;
	int err;
	int state;
	int cb; /* result the callback must report, or NO_CB */
} table[] = {
	{ F_SHARED, O_PRIVATE, 0, GMEM_PRIVATE, NO_CB },
	{ F_SHARED, O_PRIVATE_WAIT, 0, GMEM_PRIVATE, NO_CB },
	{ F_SHARED, O_PRIVATE_DEFER, 0, GMEM_PRIVATE, NO_CB },
	{ F_SHARED, O_SHARED, 0, GMEM_SHARED, NO_CB },
	{ F_SHARED, O_PIN, 0, GMEM_SHARED, NO_CB },
	{ F_SHARED, O_PIN_LONG, 0, GMEM_SHARED, NO_CB },
	{ F_SHARED, O_UNPIN, -EINVAL, GMEM_SHARED, NO_CB },
	{ F_SHARED, O_UNPIN_LONG, -EINVAL, GMEM_SHARED, NO_CB },
	{ F_SHARED, O_DISCARD, 0, GMEM_SHARED, NO_CB },

	{ F_SHARED_PINNED, O_PRIVATE, -EAGAIN, GMEM_SHARED, NO_CB },
	{ F_SHARED_PINNED, O_PRIVATE_WAIT, -EAGAIN, GMEM_SHARED, NO_CB },
	{ F_SHARED_PINNED, O_PRIVATE_DEFER, -EINPROGRESS, GMEM_CONVERTING, NO_CB },
	{ F_SHARED_PINNED, O_SHARED, 0, GMEM_SHARED, NO_CB },
	{ F_SHARED_PINNED, O_PIN, 0, GMEM_SHARED, NO_CB },
	{ F_SHARED_PINNED, O_PIN_LONG, 0, GMEM_SHARED, NO_CB },
	{ F_SHARED_PINNED, O_UNPIN, 0, GMEM_SHARED, NO_CB },
	{ F_SHARED_PINNED, O_UNPIN_LONG, -EINVAL, GMEM_SHARED, NO_CB },
	{ F_SHARED_PINNED, O_DISCARD, -EBUSY, GMEM_SHARED, NO_CB },

	{ F_SHARED_LONG, O_PRIVATE, -EBUSY, GMEM_SHARED, NO_CB },
	{ F_SHARED_LONG, O_PRIVATE_WAIT, -EBUSY, GMEM_SHARED, NO_CB },
	{ F_SHARED_LONG, O_PRIVATE_DEFER, -EBUSY, GMEM_SHARED, NO_CB },
	{ F_SHARED_LONG, O_SHARED, 0, GMEM_SHARED, NO_CB },
	{ F_SHARED_LONG, O_PIN, 0, GMEM_SHARED, NO_CB },
	{ F_SHARED_LONG, O_UNPIN, -EINVAL, GMEM_SHARED, NO_CB },
	{ F_SHARED_LONG, O_UNPIN_LONG, 0, GMEM_SHARED, NO_CB },
	{ F_SHARED_LONG, O_DISCARD, -EBUSY, GMEM_SHARED, NO_CB },

	{ F_SHARED_STRICT, O_PRIVATE, -EBUSY, GMEM_SHARED, NO_CB },
	{ F_SHARED_STRICT, O_PRIVATE_WAIT, -EBUSY, GMEM_SHARED, NO_CB },
	{ F_SHARED_STRICT, O_PRIVATE_DEFER, -EBUSY, GMEM_SHARED, NO_CB },
	{ F_SHARED_STRICT, O_SHARED, 0, GMEM_SHARED, NO_CB },
	{ F_SHARED_STRICT, O_PIN, 0, GMEM_SHARED, NO_CB },
	{ F_SHARED_STRICT, O_DISCARD, 0, GMEM_SHARED, NO_CB },

	{ F_PRIVATE, O_PRIVATE, 0, GMEM_PRIVATE, NO_CB },
	{ F_PRIVATE, O_PRIVATE_WAIT, 0, GMEM_PRIVATE, NO_CB },
	{ F_PRIVATE, O_PRIVATE_DEFER, 0, GMEM_PRIVATE, NO_CB },
	{ F_PRIVATE, O_SHARED, 0, GMEM_SHARED, NO_CB },
	{ F_PRIVATE, O_PIN, -EACCES, GMEM_PRIVATE, NO_CB },
	{ F_PRIVATE, O_PIN_LONG, -EACCES, GMEM_PRIVATE, NO_CB },
	{ F_PRIVATE, O_UNPIN, -EINVAL, GMEM_PRIVATE, NO_CB },
	{ F_PRIVATE, O_DISCARD, 0, GMEM_PRIVATE, NO_CB },

	/* an overlapping conversion cancels the pending one first */
	{ F_CONVERTING, O_PRIVATE, -EAGAIN, GMEM_SHARED, -ECANCELED },
	{ F_CONVERTING, O_PRIVATE_WAIT, -EAGAIN, GMEM_SHARED, -ECANCELED },
	{ F_CONVERTING, O_PRIVATE_DEFER, -EINPROGRESS, GMEM_CONVERTING, -ECANCELED },
	{ F_CONVERTING, O_SHARED, 0, GMEM_SHARED, -ECANCELED },
	{ F_CONVERTING, O_PIN, -EAGAIN, GMEM_CONVERTING, NO_CB },
	{ F_CONVERTING, O_PIN_LONG, -EAGAIN, GMEM_CONVERTING, NO_CB },
	{ F_CONVERTING, O_UNPIN, 0, GMEM_PRIVATE, 0 },  /* the last pin: completes */
	{ F_CONVERTING, O_UNPIN_LONG, -EINVAL, GMEM_CONVERTING, NO_CB },
	{ F_CONVERTING, O_DISCARD, -EBUSY, GMEM_CONVERTING, NO_CB },
};

/* Where hugetlbfs answers otherwise (gmem.h): a short-term pin refuses a deferral too. */
static const struct row huge_table[] = {
	{ F_SHARED_PINNED, O_PRIVATE_DEFER, -EAGAIN, GMEM_SHARED, NO_CB },
};

static const char *const from_name[] = { "shared", "shared+pin", "shared+longpin", "shared+strict",
					  "private", "converting" };
static const char *const op_name[] = { "->private plain", "->private wait", "->private defer",
				       "->shared", " pin", " pin long", " unpin", " unpin long",
				       " discard" };

struct cb_log {
	int calls, result;
};

static void log_cb(struct gmem *g, uint64_t off, uint64_t len, unsigned int to, int result,
		   void *arg)
{
	struct cb_log *log = arg;

	(void)g, (void)off, (void)len, (void)to;
	log->calls++;
	log->result = result;
}

static int do_op(struct gmem *g, enum op op)
{
	switch (op) {
	case O_PRIVATE:
		return gmem_convert(g, 0, PS, GMEM_PRIVATE, 0, NULL);
	case O_PRIVATE_WAIT:
		return gmem_convert(g, 0, PS, GMEM_PRIVATE, GMEM_CONVERT_WAIT, NULL);
	case O_PRIVATE_DEFER:
		return gmem_convert(g, 0, PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL);
	case O_SHARED:
		return gmem_convert(g, 0, PS, GMEM_SHARED, 0, NULL);
	case O_PIN:
		return gmem_pin(g, 0, PS, 0);
	case O_PIN_LONG:
		return gmem_pin(g, 0, PS, GMEM_PIN_LONGTERM);
	case O_UNPIN:
		return gmem_unpin(g, 0, PS, 0);
	case O_UNPIN_LONG:
		return gmem_unpin(g, 0, PS, GMEM_PIN_LONGTERM);
	case O_DISCARD:
		return gmem_discard(g, 0, PS);
	}
	return -ENOSYS;
}

/* The row env answers instead of r: huge_table's on hugetlbfs, or r. */
static const struct row *row_in(const struct env *env, const struct row *r)
{
	for (size_t i = 0; env_hugetlb(env) && i < sizeof(huge_table) / sizeof(huge_table[0]); i++)
		if (huge_table[i].from == r->from && huge_table[i].op == r->op)
			return &huge_table[i];
	return r;
}

static void walk_row(const struct env *env, const void *row)
{
	const struct row *r = row_in(env, row);
	struct gmem_config cfg = tg_config(env, 2 * PS, 0, 0);
	struct cb_log log = { 0 };
	struct gmem *g;
	void *strict = NULL;
	char *v;
	int err;

	cfg.wait_timeout_ms = 30;
	if (gmem_create(&cfg, &g))
		SKIP("backing unavailable");
	v = tg_view(g, 0);
	fill_page(v, 0, 1);
	CHECK_OK(gmem_set_convert_callback(g, log_cb, &log));
	switch (r->from) {
	case F_SHARED:
		break;
	case F_SHARED_PINNED:
		CHECK_OK(gmem_pin(g, 0, PS, 0));
		break;
	case F_SHARED_LONG:
		CHECK_OK(gmem_pin(g, 0, PS, GMEM_PIN_LONGTERM));
		break;
	case F_SHARED_STRICT:
		CHECK_OK(gmem_view_map(g, 0, env_view_unit(env), GMEM_VIEW_STRICT, &strict));
		break;
	case F_PRIVATE:
		CHECK_OK(gmem_convert(g, 0, PS, GMEM_PRIVATE, 0, NULL));
		break;
	case F_CONVERTING:
		CHECK_OK(gmem_pin(g, 0, PS, 0));
		CHECK_EQ(gmem_convert(g, 0, PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL), -EINPROGRESS);
		break;
	}

	err = do_op(g, r->op);
	if (err != r->err || gmem_state(g, 0) != r->state ||
	    (r->cb == NO_CB ? log.calls != 0 : log.calls != 1 || log.result != r->cb))
		test_fail(__FILE__, __LINE__, "%s%s: got %d, state %d, %d callbacks (%d); want %d, state %d, %s %d",
			  from_name[r->from], op_name[r->op], err, gmem_state(g, 0), log.calls,
			  log.result, r->err, r->state, r->cb == NO_CB ? "no callback" : "callback",
			  r->cb);
	/*
	 * The host's view agrees with the state: shared pages are touchable,
	 * private ones are not; every row ending in transit still holds the
	 * pin the conversion waits for, and that I/O may touch the page.
	 */
	CHECK_EQ(touch(v, false, NULL, NULL), r->state == GMEM_PRIVATE ? env->sig : 0);
	CHECK_OK(gmem_audit(g));
	if (r->state != GMEM_SHARED) {
		void *guest;

		CHECK_OK(gmem_guest_map(g, &guest));
		CHECK(page_has(guest, 0, 1) || (r->op == O_DISCARD && page_zero(guest)));
	} else if (r->op != O_DISCARD) {
		CHECK(page_has(v, 0, 1)); /* contents survive every transition */
	}

	/* release whatever the row left held, and the object must go */
	while (!gmem_unpin(g, 0, PS, 0))
		;
	while (!gmem_unpin(g, 0, PS, GMEM_PIN_LONGTERM))
		;
	CHECK_OK(gmem_destroy(g));
}

#define NROWS (sizeof(table) / sizeof(table[0]))

/* Each row a case of its own: "transition shared+pin->private defer on shmem/sigbus". */
__attribute__((constructor)) static void register_rows(void)
{
	static char names[NROWS][64];

	for (size_t i = 0; i < NROWS; i++) {
		snprintf(names[i], sizeof(names[i]), "transition %s%s", from_name[table[i].from],
			 op_name[table[i].op]);
		struct test_opts o = { 0 };

		if (table[i].from == F_CONVERTING) {
			o.skip = B_HUGETLB | S_ANY;
			o.why = "no transit: hugetlbfs refuses conversions under pins, whatever the flags";
		}
		harness_register_row(names[i], walk_row, &table[i], &o);
	}
}
