// SPDX-License-Identifier: MIT
/*
 * test_inject.c - every entry point under injected failures.
 *
 * Linked with the library whose allocator and system calls fail on demand
 * (fuzz/inject.c).  Each case sets a scenario up, makes the call with its
 * 1st, 2nd, ... fallible call failing until the call runs clean, and
 * requires each time: a negative errno (or, where the library absorbs the
 * failure, the normal result), no page changed state, contents or
 * reachability, gmem_audit() still 0, and - once the object is destroyed -
 * no allocation, descriptor or mapping left behind.
 *
 * On hugetlbfs the pages are pieces of one huge page (views cover it
 * whole; a second one holds the pin "elsewhere"), a pin refuses every
 * conversion of its huge page whatever the flags, and no page is ever in
 * transit: the scenarios starting from one do not apply there.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../fuzz/inject.h"
#include "harness.h"

#define NPAGES 16

struct fixture {
	struct gmem *g;
	char *view;  /* a view of every page */
	char *guest;
	uint64_t vunit; /* the view unit */
	int fd;         /* a snapshot's file */
	int ncallbacks, cancelled, last_result;
	int ret;        /* the call's result, for after() (post-copy cases; 1: no call) */
};

/* What the calls may change, as seen from outside. */
struct snap {
	int state[NPAGES];
	uint8_t data[NPAGES];
	bool reachable[NPAGES];
	uint64_t pins;
};

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/*
 * Mappings of gmem's memfd: views and guest mappings.  (Not every line of
 * the maps: the C library and the sanitizers map memory of their own as
 * they go.  The PROT_NONE reservation a guest mapping is carved from is
 * trimmed to that mapping's range before anything can fail, and unmapped
 * with it.)
 */
static int count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "memfd:gmem") != NULL;
	fclose(f);
	return n;
}

static void on_convert(struct gmem *g, uint64_t offset, uint64_t len, unsigned int to, int result,
		       void *arg)
{
	struct fixture *f = arg;

	(void)g, (void)offset, (void)len, (void)to;
	f->ncallbacks++;
	f->cancelled += result == -ECANCELED;
	f->last_result = result;
}

static void snap(struct fixture *f, struct snap *s)
{
	struct gmem_stats st;

	for (int p = 0; p < NPAGES; p++) {
		s->state[p] = gmem_state(f->g, p * PS);
		s->data[p] = (uint8_t)f->guest[p * PS];
		s->reachable[p] = touch(f->view + p * PS, false, NULL, NULL) == 0;
	}
	gmem_get_stats(f->g, &st);
	s->pins = st.pins_active;
}

static void check_same(const struct snap *a, const struct snap *b)
{
	for (int p = 0; p < NPAGES; p++) {
		CHECK_EQ(a->state[p], b->state[p]);
		CHECK_EQ(a->data[p], b->data[p]);
		CHECK_EQ(a->reachable[p], b->reachable[p]);
	}
	CHECK_EQ(a->pins, b->pins);
}

/* A scenario: the object as the call finds it, the call, what it returns. */
struct scenario {
	const char *name;
	void (*setup)(const struct env *e, struct fixture *f);
	int (*call)(struct fixture *f);
	int want;
	void (*after)(struct fixture *f); /* release what the call or setup holds */
	bool eagain_on_hugetlb;  /* a pin refuses it there: -EAGAIN is wanted */
	bool transit;            /* it starts from a deferred conversion: not on hugetlbfs */
};

/* NPAGES pages; on hugetlbfs two huge pages (of which the pages are the first's). */
static void base(const struct env *e, struct fixture *f, uint32_t flags)
{
	memset(f, 0, sizeof(*f));
	f->g = tg_create(e, env_hugetlb(e) ? 2 * e->unit : NPAGES * PS, flags, 0);
	f->vunit = env_view_unit(e);
	f->view = tg_view(f->g, 0);
	CHECK_OK(gmem_guest_map(f->g, (void **)&f->guest));
	CHECK_OK(gmem_set_convert_callback(f->g, on_convert, f));
	for (int p = 0; p < NPAGES; p++)
		if (gmem_state(f->g, p * PS) == GMEM_SHARED)
			f->view[p * PS] = (char)(p + 1);
}

/*
 * Once, before counting what the process holds: the first run of the
 * fault thread gives the C library an arena for good (mappings that stay).
 */
static void warm_up(const struct env *e, const struct scenario *s)
{
	struct fixture f;

	s->setup(e, &f);
	if (s->after)
		s->after(&f);
	CHECK_OK(gmem_destroy(f.g));
}

/* Run s once per failure point: the nth fallible call fails, n = 1, 2, ... */
static void sweep(const struct env *e, const struct scenario *s)
{
	struct scenario adapted = *s;
	int64_t live0;
	int fds0, maps0;
	uint64_t nth;

	if (env_hugetlb(e)) {
		if (s->transit)
			return;
		if (s->eagain_on_hugetlb)
			adapted.want = -EAGAIN;
		s = &adapted;
	}
	warm_up(e, s);
	live0 = inject_live_allocs();
	fds0 = count_dir("/proc/self/fd");
	maps0 = count_maps();

	for (nth = 1;; nth++) {
		struct fixture f;
		struct snap before, after;
		bool fired;
		int ret;

		s->setup(e, &f);
		snap(&f, &before);
		f.ncallbacks = f.cancelled = 0;
		inject_arm(nth);
		ret = s->call(&f);
		fired = inject_disarm();
		if (!fired || ret == s->want) {
			if (ret != s->want)
				printf("  %s: %d, not %d\n", s->name, ret, s->want);
			CHECK_EQ(ret, s->want);
		} else {
			if (ret >= 0 || ret == -EINVAL)
				printf("  %s with %s (call %llu) failing: %d\n", s->name,
				       inject_fired_in(), (unsigned long long)nth, ret);
			CHECK(ret < 0 && ret != -EINVAL);
			/* only what the contract says happens first may have happened:
			 * the deferred conversion the call overlaps, cancelled */
			CHECK_EQ(f.ncallbacks, f.cancelled);
			for (int p = 0; p < NPAGES && f.cancelled; p++) {
				if (before.state[p] == GMEM_CONVERTING) {
					before.state[p] = GMEM_SHARED;
					before.reachable[p] = true;
				}
			}
			snap(&f, &after);
			check_same(&before, &after);
		}
		CHECK_OK(gmem_audit(f.g));
		if (s->after)
			s->after(&f);
		CHECK_OK(gmem_destroy(f.g));
		CHECK_EQ(inject_live_allocs(), live0);
		CHECK_EQ(count_dir("/proc/self/fd"), fds0);
		CHECK_EQ(count_maps(), maps0);
		if (!fired)
			break;
	}
	CHECK(nth > 1); /* the call made at least one fallible call */
}

static void setup_plain(const struct env *e, struct fixture *f)
{
	base(e, f, 0);
}

/* ---- gmem_create ---- */

TEST(inject_create)
{
	static const uint32_t flags[] = { 0, GMEM_F_INIT_PRIVATE, GMEM_F_FRESH_PRIVATE };
	int64_t live0;
	int fds0, maps0;

	warm_up(env, &(struct scenario){ .setup = setup_plain });
	live0 = inject_live_allocs();
	fds0 = count_dir("/proc/self/fd");
	maps0 = count_maps();

	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		struct gmem_config cfg = tg_config(env, env->unit, flags[i], 0);
		uint64_t nth;

		if ((flags[i] & GMEM_F_FRESH_PRIVATE) && env->backing != GMEM_BACKING_SHMEM)
			continue; /* refused outright: test_create.c */
		for (nth = 1;; nth++) {
			struct gmem *g = NULL;
			bool fired;
			int ret;

			inject_arm(nth);
			ret = gmem_create(&cfg, &g);
			fired = inject_disarm();
			if (!fired) {
				CHECK_OK(ret);
				CHECK_OK(gmem_destroy(g));
				break;
			}
			if (!ret) /* absorbed */
				CHECK_OK(gmem_destroy(g));
			else
				CHECK(ret < 0 && ret != -EINVAL && !g);
			CHECK_EQ(inject_live_allocs(), live0);
			CHECK_EQ(count_dir("/proc/self/fd"), fds0);
			CHECK_EQ(count_maps(), maps0);
		}
		CHECK(nth > 5);
	}
}

/* ---- views ---- */

static void *new_view;

static int call_view_map(struct fixture *f)
{
	return gmem_view_map(f->g, 0, gmem_size(f->g), 0, &new_view);
}

static int call_view_map_strict(struct fixture *f)
{
	if (f->vunit > PS)
		return gmem_view_map(f->g, 0, f->vunit, GMEM_VIEW_STRICT, &new_view);
	return gmem_view_map(f->g, PS, 2 * PS, GMEM_VIEW_STRICT, &new_view);
}

TEST(inject_view_map)
{
	static const struct scenario s[] = {
		{ "view", setup_plain, call_view_map, 0, NULL, false, false },
		{ "strict view", setup_plain, call_view_map_strict, 0, NULL, false, false },
	};

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		sweep(env, &s[i]);
}

/* ---- conversions ---- */

static int to_private(struct fixture *f, uint64_t first, uint64_t n, unsigned int flags)
{
	return gmem_convert(f->g, first * PS, n * PS, GMEM_PRIVATE, flags, NULL);
}

static int call_private(struct fixture *f)
{
	return to_private(f, 2, 4, 0);
}

static int call_private_defer(struct fixture *f)
{
	return to_private(f, 2, 4, GMEM_CONVERT_DEFER);
}

static int call_private_wait(struct fixture *f)
{
	return to_private(f, 2, 4, GMEM_CONVERT_WAIT);
}

static int call_shared(struct fixture *f)
{
	return gmem_convert(f->g, 0, NPAGES * PS, GMEM_SHARED, 0, NULL);
}

/*
 * A pin elsewhere: conversions take the path that publishes and checks.
 * (On hugetlbfs in the second huge page: a pin in the first refuses.)
 */
static uint64_t elsewhere(const struct fixture *f)
{
	return f->vunit > PS ? f->vunit : 12 * PS;
}

static void setup_pinned_elsewhere(const struct env *e, struct fixture *f)
{
	base(e, f, 0);
	CHECK_OK(gmem_pin(f->g, elsewhere(f), PS, 0));
}

static void unpin_elsewhere(struct fixture *f)
{
	CHECK_OK(gmem_unpin(f->g, elsewhere(f), PS, 0));
}

/* A pin inside the range: DEFER leaves it in transit, WAIT times out. */
static void pinned_inside(const struct env *e, struct fixture *f, uint32_t flags)
{
	struct gmem_config cfg = tg_config(e, NPAGES * PS, flags, 0);

	cfg.wait_timeout_ms = 1;
	memset(f, 0, sizeof(*f));
	f->vunit = env_view_unit(e);
	CHECK_OK(gmem_create(&cfg, &f->g));
	CHECK_OK(gmem_view_map(f->g, 0, gmem_size(f->g), 0, (void **)&f->view));
	CHECK_OK(gmem_guest_map(f->g, (void **)&f->guest));
	CHECK_OK(gmem_set_convert_callback(f->g, on_convert, f));
	for (int p = 0; p < NPAGES; p++)
		f->view[p * PS] = (char)(p + 1);
	CHECK_OK(gmem_pin(f->g, 3 * PS, PS, 0));
}

static void setup_pinned_inside(const struct env *e, struct fixture *f)
{
	pinned_inside(e, f, 0);
}

static void unpin_inside(struct fixture *f)
{
	CHECK_OK(gmem_unpin(f->g, 3 * PS, PS, 0));
}

/* Private pages the view was refused: re-sharing must clear the refusals. */
static void setup_private_refused(const struct env *e, struct fixture *f)
{
	base(e, f, GMEM_F_INIT_PRIVATE);
	for (int p = 0; p < NPAGES; p += 3)
		CHECK(touch(f->view + p * PS, false, NULL, NULL) != 0);
}

/* A deferred conversion pending over [3, 4): the next one cancels it. */
static void setup_deferred(const struct env *e, struct fixture *f)
{
	setup_pinned_inside(e, f);
	CHECK_EQ(to_private(f, 3, 1, GMEM_CONVERT_DEFER), -EINPROGRESS);
}

/*
 * One over [2, 6) around the pin: snap()'s touches of its unpinned pages
 * are refused, so cancelling it must clear marks - which can fail.
 */
static void setup_deferred_refused(const struct env *e, struct fixture *f)
{
	setup_pinned_inside(e, f);
	CHECK_EQ(to_private(f, 2, 4, GMEM_CONVERT_DEFER), -EINPROGRESS);
}

/* Fresh private pages: every page of the range populated and touched. */
static void setup_fresh(const struct env *e, struct fixture *f)
{
	base(e, f, GMEM_F_FRESH_PRIVATE);
}

static void setup_fresh_pinned_inside(const struct env *e, struct fixture *f)
{
	pinned_inside(e, f, GMEM_F_FRESH_PRIVATE);
}

TEST(inject_convert)
{
	static const struct scenario s[] = {
		{ "to private", setup_plain, call_private, 0, NULL, false, false },
		{ "to private, a pin elsewhere", setup_pinned_elsewhere, call_private, 0,
		  unpin_elsewhere, false, false },
		{ "to private, pinned", setup_pinned_inside, call_private, -EAGAIN, unpin_inside, false,
		  false },
		{ "to private deferred", setup_pinned_inside, call_private_defer, -EINPROGRESS,
		  unpin_inside, true, false },
		{ "to private waiting", setup_pinned_inside, call_private_wait, -EAGAIN,
		  unpin_inside, false, false },
		{ "to shared", setup_private_refused, call_shared, 0, NULL, false, false },
		{ "over a deferred one", setup_deferred, call_private_defer, -EINPROGRESS,
		  unpin_inside, false, true },
		{ "over a refused deferred one", setup_deferred_refused, call_private_defer,
		  -EINPROGRESS, unpin_inside, false, true },
		{ "to shared over a refused deferred one", setup_deferred_refused, call_shared, 0,
		  unpin_inside, false, true },
	};

	static const struct scenario fresh[] = {
		{ "to private, fresh", setup_fresh, call_private, 0, NULL, false, false },
		{ "to private deferred, fresh", setup_fresh_pinned_inside, call_private_defer,
		  -EINPROGRESS, unpin_inside, false, false },
		{ "to private waiting, fresh", setup_fresh_pinned_inside, call_private_wait, -EAGAIN,
		  unpin_inside, false, false },
	};

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		sweep(env, &s[i]);
	for (size_t i = 0; i < sizeof(fresh) / sizeof(fresh[0]); i++)
		if (env->backing == GMEM_BACKING_SHMEM) /* the flag's only backing */
			sweep(env, &fresh[i]);
}

/* ---- pins, discard, audit ---- */

static int call_pin(struct fixture *f)
{
	return gmem_pin(f->g, 0, NPAGES * PS, GMEM_PIN_LONGTERM);
}

static void unpin_all(struct fixture *f)
{
	struct gmem_stats st;

	gmem_get_stats(f->g, &st);
	if (st.pins_active)
		CHECK_OK(gmem_unpin(f->g, 0, NPAGES * PS, GMEM_PIN_LONGTERM));
}

/* (On hugetlbfs a part of the first huge page: zeroed in place.) */
static int call_discard(struct fixture *f)
{
	return gmem_discard(f->g, 0, NPAGES * PS);
}

static int call_audit(struct fixture *f)
{
	return gmem_audit(f->g);
}

TEST(inject_pin_discard_audit)
{
	static const struct scenario s[] = {
		{ "pin", setup_plain, call_pin, 0, unpin_all, false, false },
		{ "discard", setup_plain, call_discard, 0, NULL, false, false },
		{ "audit", setup_plain, call_audit, 0, NULL, false, false },
	};

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		sweep(env, &s[i]);
}

/* ---- copies ---- */

static char copy_buf[3 * PS];

/* Over pages 1 to 3, from and to byte offsets inside them. */
static int call_read(struct fixture *f)
{
	return gmem_read(f->g, PS + 10, copy_buf, 2 * PS + 20, NULL);
}

/* Over the first byte of pages 1 to 3, which snap() compares. */
static int call_write(struct fixture *f)
{
	memset(copy_buf, 0x7e, sizeof(copy_buf));
	return gmem_write(f->g, PS - 10, copy_buf, 2 * PS + 20, NULL);
}

TEST(inject_read_write)
{
	static const struct scenario s[] = {
		{ "read", setup_plain, call_read, 0, NULL, false, false },
		{ "write", setup_plain, call_write, 0, NULL, false, false },
	};
	struct fixture f;

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		sweep(env, &s[i]);

	/* the backing file out of room (ENOSPC from fallocate) is out of memory */
	setup_plain(env, &f);
	inject_arm(1);
	if (env->backing == GMEM_BACKING_SHMEM)
		CHECK_EQ(call_write(&f), -ENOMEM);
	else
		CHECK(call_write(&f) < 0);
	CHECK(inject_disarm());
	CHECK_EQ((uint8_t)f.guest[PS], 2);
	/*
	 * A read of pages not in memory: mincore() says so, then pread() of
	 * the file, whose failure is the read's error; mincore() failing
	 * sends the whole read to pread(), which succeeds.
	 */
	CHECK_OK(gmem_discard(f.g, 0, gmem_size(f.g)));
	inject_arm(2);
	CHECK_EQ(call_read(&f), -EIO);
	CHECK(inject_disarm());
	inject_arm(1);
	CHECK_OK(call_read(&f));
	CHECK(inject_disarm());
	CHECK_OK(gmem_destroy(f.g));
}

/* ---- snapshots ---- */

static void setup_save(const struct env *e, struct fixture *f)
{
	base(e, f, 0);
	f->fd = memfd_create("snapshot", 0);
	CHECK(f->fd >= 0);
}

static int call_save(struct fixture *f)
{
	return gmem_save(f->g, f->fd, 0);
}

static int call_save_paused(struct fixture *f)
{
	return gmem_save(f->g, f->fd, GMEM_SAVE_PAUSED);
}

static void after_save(struct fixture *f)
{
	close(f->fd);
}

/*
 * A save changes nothing whatever fails; a restore that fails leaves its
 * object as it found it - untouched, so that a restore can follow - and
 * nothing behind.
 */
TEST(inject_snapshot)
{
	static const struct scenario s = { "save", setup_save, call_save, 0, after_save, false, false };
	/* the records written from where the pages are, g->lock held across the write */
	static const struct scenario sp = { "save paused", setup_save, call_save_paused, 0,
					    after_save, false, false };
	struct fixture f;
	int64_t live0;
	int fds0, maps0;
	uint64_t nth;

	sweep(env, &s);
	sweep(env, &sp);

	setup_save(env, &f);
	CHECK_OK(call_save(&f));
	live0 = inject_live_allocs();
	fds0 = count_dir("/proc/self/fd");
	maps0 = count_maps();
	for (nth = 1;; nth++) {
		struct gmem *r = tg_create(env, gmem_size(f.g), 0, 0);
		struct gmem_huge_info hi;
		char *guest;
		bool fired;
		int ret;

		CHECK(lseek(f.fd, 0, SEEK_SET) == 0);
		inject_arm(nth);
		ret = gmem_restore(r, f.fd, 0);
		fired = inject_disarm();
		CHECK_OK(gmem_guest_map(r, (void **)&guest));
		if (!fired || !ret) {
			/* done, or the failure absorbed (a note the library keeps for speed) */
			CHECK_OK(ret);
			for (int p = 0; p < NPAGES; p++) {
				CHECK_EQ(gmem_state(r, p * PS), gmem_state(f.g, p * PS));
				CHECK_EQ(guest[p * PS], f.guest[p * PS]);
			}
		} else {
			if (ret >= 0 || ret == -EINVAL || ret == -EBUSY)
				printf("  restore with %s (call %llu) failing: %d\n", inject_fired_in(),
				       (unsigned long long)nth, ret);
			CHECK(ret < 0 && ret != -EINVAL && ret != -EBUSY);
			CHECK_OK(gmem_huge_info(r, &hi));
			CHECK_EQ(hi.blocks_populated, 0);
			for (int p = 0; p < NPAGES; p++)
				CHECK_EQ(gmem_state(r, p * PS), GMEM_SHARED);
		}
		CHECK_OK(gmem_audit(r));
		CHECK_OK(gmem_destroy(r));
		CHECK_EQ(inject_live_allocs(), live0);
		CHECK_EQ(count_dir("/proc/self/fd"), fds0);
		CHECK_EQ(count_maps(), maps0);
		if (!fired)
			break;
	}
	CHECK(nth > 1);
	after_save(&f);
	CHECK_OK(gmem_destroy(f.g));
}

/* ---- huge pages ---- */

static int call_huge_info(struct fixture *f)
{
	struct gmem_huge_info i;

	return gmem_huge_info(f->g, &i);
}

/* A THP block split by a discard, a hole left in it, views over it. */
static void setup_split(const struct env *e, struct fixture *f)
{
	base(e, f, 0);
	CHECK_OK(gmem_discard(f->g, 3 * PS, PS));
}

static int call_collapse(struct fixture *f)
{
	return gmem_collapse(f->g, 0, NPAGES * PS, NULL);
}

TEST(inject_huge)
{
	static const struct scenario info = { "huge info", setup_plain, call_huge_info, 0, NULL, false, false };
	static const struct scenario collapse = { "collapse", setup_split, call_collapse, 0, NULL, false, false };

	sweep(env, &info);
	if (env->backing == GMEM_BACKING_THP) /* elsewhere it makes no system call */
		sweep(env, &collapse);
}

/* ---- a deferred conversion's completion ---- */

/*
 * Pages 0 and 1 pinned, page 0 touched through the view (mapped for its
 * I/O), [0, 2) converted with DEFER.  Page 1 is unpinned first; the unpin
 * of page 0 is the last: it zaps page 0, then completes the conversion,
 * zapping the range: page 0 again if its own zap failed.
 */
static void setup_completion(const struct env *e, struct fixture *f)
{
	base(e, f, 0);
	CHECK_OK(gmem_pin(f->g, 0, 2 * PS, 0));
	CHECK_EQ(to_private(f, 0, 2, GMEM_CONVERT_DEFER), -EINPROGRESS);
	CHECK_OK(touch(f->view, true, &(uint8_t){ 0x11 }, NULL));
	CHECK_OK(gmem_unpin(f->g, PS, PS, 0));
}

/*
 * The audit sees what a failed zap leaves: the unpin of page 0 while page 1
 * still holds the conversion back zaps page 0 alone; that zap failing
 * leaves an unpinned page in transit mapped, which gmem_audit() reports.
 */
TEST_OPTS(audit_catches_mapped_idle_transit_page, .skip = B_HUGETLB | S_ANY,
	  .why = "deferred transits: hugetlbfs refuses conversions under pins, whatever the "
		 "flags (gmem.h)")
{
	struct fixture f;

	base(env, &f, 0);
	CHECK_OK(gmem_pin(f.g, 0, 2 * PS, 0));
	CHECK_EQ(to_private(&f, 0, 2, GMEM_CONVERT_DEFER), -EINPROGRESS);
	CHECK_OK(touch(f.view, true, &(uint8_t){ 0x11 }, NULL));
	CHECK_OK(gmem_audit(f.g)); /* pinned: its I/O may map it */
	inject_arm(1);
	CHECK_OK(gmem_unpin(f.g, 0, PS, 0));
	CHECK(inject_disarm());
	CHECK_EQ(gmem_audit(f.g), -EIO);
	CHECK_OK(gmem_unpin(f.g, PS, PS, 0)); /* the completion zaps the range whole */
	CHECK_EQ(f.ncallbacks, 1);
	CHECK_OK(gmem_audit(f.g));
	CHECK_EQ(gmem_state(f.g, 0), GMEM_PRIVATE);
	CHECK_OK(gmem_destroy(f.g));
}

/*
 * A completion that cannot unmap must not commit: the callback says so,
 * the pages stay in transit - refused to the host and to pins - and a
 * conversion of them decides, either way, with the contents in place.
 * (Fails where the completion ignored its zap and committed.)
 */
TEST_OPTS(completion_that_cannot_unmap_does_not_commit, .skip = B_HUGETLB | S_ANY,
	  .why = "deferred transits: hugetlbfs refuses conversions under pins, whatever the "
		 "flags (gmem.h)")
{
	struct fixture f;
	siginfo_t si;

	setup_completion(env, &f);
	f.ncallbacks = 0;
	inject_arm_from(1); /* page 0's zap, and the completion's (page 0 still marked) */
	CHECK_OK(gmem_unpin(f.g, 0, PS, 0));
	CHECK(inject_disarm());
	CHECK_EQ(f.ncallbacks, 1);
	CHECK_EQ(f.last_result, -EIO);
	CHECK_EQ(gmem_state(f.g, 0), GMEM_CONVERTING);
	CHECK_EQ(gmem_state(f.g, PS), GMEM_CONVERTING);
	CHECK_EQ(gmem_audit(f.g), -EIO); /* page 0 is still mapped: so nothing committed */
	CHECK_EQ(touch(f.view + PS, false, NULL, &si), env->sig);
	CHECK_EQ(gmem_pin(f.g, 0, PS, 0), -EAGAIN);
	/* given back: shared, in place, reachable; no second callback */
	CHECK_OK(gmem_convert(f.g, 0, 2 * PS, GMEM_SHARED, 0, NULL));
	CHECK_EQ(gmem_state(f.g, 0), GMEM_SHARED);
	CHECK_EQ((uint8_t)f.view[0], 0x11);
	CHECK_EQ((uint8_t)f.view[PS], 2);
	CHECK_EQ(f.ncallbacks, 1);
	CHECK_OK(gmem_destroy(f.g));
	/* or taken again: private */
	setup_completion(env, &f);
	inject_arm_from(1);
	CHECK_OK(gmem_unpin(f.g, 0, PS, 0));
	CHECK(inject_disarm());
	CHECK_OK(to_private(&f, 0, 2, 0));
	CHECK_EQ(gmem_state(f.g, 0), GMEM_PRIVATE);
	CHECK_EQ((uint8_t)f.guest[0], 0x11);
	CHECK_EQ(touch(f.view, false, NULL, &si), env->sig);
	CHECK_OK(gmem_audit(f.g));
	CHECK_OK(gmem_destroy(f.g));
}

/* ---- post-copy ---- */

/*
 * A record as gmem_postcopy_send() puts it: a 32-byte header (its first
 * page at byte 8, its count at 16), then the pages.
 */
#define PC_HDR 32
/* Pages an object of these cases has at most (hugetlb-2m: two huge pages). */
#define PC_MAXPAGES 1024

static uint64_t pc_words[3][PC_MAXPAGES / 64];
#define pc_named pc_words[0] /* the pages the post-copy save named */
#define pc_got pc_words[1]   /* the pages the call under test sent */
#define pc_seen pc_words[2]  /* scratch */

static bool pc_bit(const uint64_t *b, uint64_t p)
{
	return b[p / 64] >> (p % 64) & 1;
}

static uint64_t pc_npages(struct gmem *g)
{
	uint64_t n = gmem_size(g) / PS;

	CHECK(n <= PC_MAXPAGES);
	return n;
}

/* Room for every page of an object's records (a record holds up to 16 pages). */
static size_t pc_cap(struct gmem *g)
{
	return gmem_size(g) + (pc_npages(g) + 1) * PC_HDR;
}

/*
 * The records in buf[0, len): well formed (in ascending order if ordered:
 * GMEM_POSTCOPY_NEXT wraps around); their pages set in pages.
 */
static void pc_parse_(struct gmem *g, const char *buf, int64_t len, uint64_t *pages, bool ordered)
{
	uint64_t last = 0;

	CHECK(len >= 0);
	for (int64_t at = 0; at < len;) {
		uint64_t first, count;

		CHECK(len - at >= PC_HDR);
		memcpy(&first, buf + at + 8, sizeof(first));
		memcpy(&count, buf + at + 16, sizeof(count));
		CHECK(count > 0 && count <= 16 && (!ordered || first >= last) &&
		      first < pc_npages(g) && count <= pc_npages(g) - first);
		CHECK((uint64_t)(len - at - PC_HDR) >= count * PS);
		for (uint64_t p = first; p < first + count; p++)
			pages[p / 64] |= 1ULL << (p % 64);
		last = first + count;
		at += PC_HDR + (int64_t)(count * PS);
	}
}

static void pc_parse(struct gmem *g, const char *buf, int64_t len, uint64_t *pages)
{
	pc_parse_(g, buf, len, pages, true);
}

/* Every named page of src, sent by range (sent before or not) and received by dst. */
static void pc_transfer(struct gmem *src, struct gmem *dst)
{
	size_t cap = pc_cap(src);
	char *buf = malloc(cap);
	int64_t n;

	CHECK(buf);
	n = gmem_postcopy_send(src, 0, gmem_size(src), buf, cap, 0);
	CHECK(n >= 0);
	if (n)
		CHECK_OK(gmem_postcopy_receive(dst, buf, (size_t)n));
	free(buf);
}

/* The failure injected last, for the messages of the checks after it. */
static char pc_where[160];

/* pc->fetch: only counts (it must not call into the object). */
static _Atomic int pc_asks;

static void pc_fetch(void *arg, uint64_t offset, uint64_t len)
{
	(void)arg, (void)offset, (void)len;
	pc_asks++;
}

static const struct gmem_postcopy pc_callbacks = { .fetch = pc_fetch };

/* Every page come: dst as src is, states and contents (through the guest mappings). */
static void pc_check_same(struct gmem *src, struct gmem *dst)
{
	void *a, *b;

	int err = gmem_restore_wait(dst, 2000);

	if (err)
		printf("  %s: gmem_restore_wait() %d: every page came, not every unit filled\n",
		       pc_where, err);
	CHECK_EQ(err, 0);
	CHECK_OK(gmem_guest_map(src, &a));
	CHECK_OK(gmem_guest_map(dst, &b));
	for (uint64_t off = 0; off < gmem_size(src); off += PS)
		CHECK_EQ(gmem_state(dst, off),
			 gmem_state(src, off) == GMEM_SHARED ? GMEM_SHARED : GMEM_PRIVATE);
	CHECK(!memcmp(a, b, gmem_size(src)));
}

/* ---- post-copy: the source's save ---- */

static void setup_pc_save(const struct env *e, struct fixture *f)
{
	setup_save(e, f);
	f->ret = 1; /* no call yet */
}

/* Tracked, saved whole (not post-copy), then pages 2, 3 and 7 written. */
static void setup_pc_layer(const struct env *e, struct fixture *f)
{
	int err;

	setup_pc_save(e, f);
	err = gmem_track_start(f->g, 0);
	if (err == -EOPNOTSUPP)
		SKIP("no asynchronous userfaultfd write-protect in this kernel");
	CHECK_OK(err);
	CHECK_OK(gmem_save(f->g, f->fd, 0));
	for (int p = 2; p < 8; p += p == 3 ? 4 : 1)
		f->view[p * PS] = (char)(0x40 + p);
}

static int call_save_postcopy(struct fixture *f)
{
	return f->ret = gmem_save(f->g, f->fd, GMEM_SAVE_POSTCOPY);
}

static int call_save_postcopy_layer(struct fixture *f)
{
	return f->ret = gmem_save(f->g, f->fd, GMEM_SAVE_POSTCOPY | GMEM_SAVE_DIRTY);
}

/*
 * A post-copy save that failed started no post-copy (the save before it
 * was not one): nothing to send.  One that succeeded sends its first page.
 */
static void after_pc_save(struct fixture *f)
{
	char buf[PC_HDR + PS];
	int64_t n = gmem_postcopy_send(f->g, 0, gmem_size(f->g), buf, sizeof(buf), 0);

	if (f->ret < 0)
		CHECK_EQ(n, -EINVAL);
	else if (!f->ret)
		CHECK_EQ(n, (int64_t)sizeof(buf));
	after_save(f);
}

TEST(inject_postcopy_save)
{
	static const struct scenario s = { "save post-copy", setup_pc_save, call_save_postcopy, 0,
					   after_pc_save, false, false };
	static const struct scenario layer = { "save post-copy layer", setup_pc_layer,
					       call_save_postcopy_layer, 0, after_pc_save, false,
					       false };

	sweep(env, &s);
	sweep(env, &layer);
}

/* ---- post-copy: the source's sends ---- */

static char *send_buf;
static size_t send_cap;

/*
 * Pages 4 and 9 holes, the rest named by a post-copy save (runs apart),
 * then page 15 discarded: the sends read the pages from the file
 * (pread(), which may fail) - with no discard since the save they copy
 * them through the guest mapping, and make no fallible call.
 */
static void setup_pc_send(const struct env *e, struct fixture *f)
{
	setup_pc_save(e, f);
	CHECK_OK(gmem_discard(f->g, 4 * PS, PS));
	CHECK_OK(gmem_discard(f->g, 9 * PS, PS));
	CHECK_OK(gmem_save(f->g, f->fd, GMEM_SAVE_POSTCOPY));
	CHECK_OK(gmem_discard(f->g, 15 * PS, PS));
	free(send_buf);
	send_cap = pc_cap(f->g);
	send_buf = malloc(send_cap);
	CHECK(send_buf);
	memset(pc_got, 0, sizeof(pc_got));
}

/*
 * What it sent, well formed: the first named pages, in order (a failure
 * part-way may leave out those after it: they are still to send).
 */
static int sent(struct fixture *f, int64_t n)
{
	bool gap = false;

	f->ret = n < 0 ? (int)n : 0;
	if (n < 0)
		return (int)n;
	pc_parse(f->g, send_buf, n, pc_got);
	for (uint64_t p = 0; p < pc_npages(f->g); p++) {
		CHECK(!pc_bit(pc_got, p) || pc_bit(pc_named, p));
		if (pc_bit(pc_named, p)) {
			CHECK(!gap || !pc_bit(pc_got, p));
			gap |= !pc_bit(pc_got, p);
		}
	}
	return 0;
}

static int call_send_range(struct fixture *f)
{
	return sent(f, gmem_postcopy_send(f->g, 0, gmem_size(f->g), send_buf, send_cap, 0));
}

static int call_send_next(struct fixture *f)
{
	return sent(f, gmem_postcopy_send(f->g, 0, 0, send_buf, send_cap, GMEM_POSTCOPY_NEXT));
}

/*
 * No page lost: what the call sent and what GMEM_POSTCOPY_NEXT sends
 * after it are every named page; then nothing is left to send.
 */
static void after_pc_send(struct fixture *f)
{
	int64_t n;

	if (f->ret != 1) {
		while ((n = gmem_postcopy_send(f->g, 0, 0, send_buf, send_cap,
					       GMEM_POSTCOPY_NEXT)) > 0)
			pc_parse_(f->g, send_buf, n, pc_got, false);
		CHECK_EQ(n, 0);
		CHECK(!memcmp(pc_got, pc_named, sizeof(pc_named)));
	}
	after_save(f);
}

TEST(inject_postcopy_send)
{
	static const struct scenario s[] = {
		{ "post-copy send, a range", setup_pc_send, call_send_range, 0, after_pc_send,
		  false, false },
		{ "post-copy send, the next pages", setup_pc_send, call_send_next, 0,
		  after_pc_send, false, false },
	};
	struct fixture f;

	/* the pages named, as a clean send of every page says */
	memset(pc_named, 0, sizeof(pc_named));
	setup_pc_send(env, &f);
	pc_parse(f.g, send_buf, gmem_postcopy_send(f.g, 0, gmem_size(f.g), send_buf, send_cap, 0),
		 pc_named);
	for (int p = 0; p < NPAGES; p++) /* (hugetlbfs names its huge page whole) */
		CHECK_EQ(pc_bit(pc_named, p), env_hugetlb(env) || (p != 4 && p != 9));
	after_save(&f);
	CHECK_OK(gmem_destroy(f.g));

	/* with no discard since the save, the pages are copied: nothing can fail */
	setup_pc_save(env, &f);
	CHECK_OK(gmem_save(f.g, f.fd, GMEM_SAVE_POSTCOPY));
	inject_count_start();
	CHECK(gmem_postcopy_send(f.g, 0, 0, send_buf, send_cap, GMEM_POSTCOPY_NEXT) > 0);
	CHECK(gmem_postcopy_send(f.g, 0, gmem_size(f.g), send_buf, send_cap, 0) > 0);
	CHECK_EQ(inject_count(), 0);
	after_save(&f);
	CHECK_OK(gmem_destroy(f.g));

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		sweep(env, &s[i]);
	free(send_buf);
	send_buf = NULL;
}

/* ---- post-copy: the destination ---- */

/* What the process holds, counted before the runs and compared after each. */
struct held {
	int64_t live;
	int fds, maps;
};

static void held_count(struct held *h)
{
	h->live = inject_live_allocs();
	h->fds = count_dir("/proc/self/fd");
	h->maps = count_maps();
}

static void held_same(const struct held *h)
{
	struct held now;

	held_count(&now);
	CHECK_EQ(now.live, h->live);
	CHECK_EQ(now.fds, h->fds);
	CHECK_EQ(now.maps, h->maps);
}

/* An object as created: every page shared, no memory (gmem_restore()'s "untouched"). */
static void check_untouched(struct gmem *g)
{
	struct gmem_huge_info hi;

	CHECK_OK(gmem_huge_info(g, &hi));
	CHECK_EQ(hi.blocks_populated, 0);
	for (uint64_t off = 0; off < gmem_size(g); off += PS)
		CHECK_EQ(gmem_state(g, off), GMEM_SHARED);
}

/*
 * The source of these cases: every page written (base()) but page 8, a
 * hole, pages 12 to 15 private; post-copy saved - whole, or as a layer (pages 2, 3 and 7
 * written since, page 5 discarded and 10 made private) on a full save in
 * f->fd, the layer in *layer_fd.
 */
static void pc_source(const struct env *e, struct fixture *f, int *layer_fd)
{
	setup_pc_save(e, f);
	CHECK_OK(gmem_discard(f->g, 8 * PS, PS)); /* two records (shmem: two units) */
	CHECK_OK(to_private(f, 12, 4, 0));
	if (!layer_fd) {
		CHECK_OK(gmem_save(f->g, f->fd, GMEM_SAVE_POSTCOPY));
		return;
	}
	*layer_fd = memfd_create("layer", 0);
	CHECK(*layer_fd >= 0);
	setup_pc_layer(e, f);
	CHECK_OK(gmem_discard(f->g, 5 * PS, PS));
	CHECK_OK(to_private(f, 10, 1, 0));
	CHECK_OK(gmem_save(f->g, *layer_fd, GMEM_SAVE_POSTCOPY | GMEM_SAVE_DIRTY));
}

/*
 * A restore that fails attaches nothing: no page to receive or abort,
 * nothing asked for.
 */
static void check_no_postcopy(struct gmem *r, struct gmem *src)
{
	char *buf = malloc(pc_cap(src));
	int64_t n;

	CHECK(buf);
	n = gmem_postcopy_send(src, 0, gmem_size(src), buf, pc_cap(src), 0);
	CHECK(n > 0);
	CHECK_EQ(gmem_postcopy_receive(r, buf, (size_t)n), -EINVAL);
	CHECK_EQ(gmem_postcopy_abort(r, -EIO), -EINVAL);
	CHECK_EQ(pc_asks, 0);
	free(buf);
}

/*
 * Into a fresh object: a failure leaves it untouched, and a restore after
 * it (of the same file) works.  As a layer on a gmem_restore(ONE) of the
 * full save: a failure before any record leaves the object for the same
 * layer again; after one, nothing restores on it (-EBUSY) - the states
 * are in, the pages it names may be holes.  Done (or retried), every page
 * received: as the source has it.
 */
static void pc_restore_sweep(const struct env *e, bool layer)
{
	struct fixture f;
	struct held h0;
	int lfd = -1;
	uint64_t nth;

	pc_source(e, &f, layer ? &lfd : NULL);
	/* once first: the fault and merger threads' arenas stay */
	for (int warm = 1;; warm = 0) {
		held_count(&h0);
		for (nth = 1;; nth++) {
			struct gmem *r = tg_create(e, gmem_size(f.g), 0, 0);
			int fd = layer ? lfd : f.fd;
			bool fired = false;
			int ret;

			if (layer) {
				CHECK(lseek(f.fd, 0, SEEK_SET) == 0);
				CHECK_OK(gmem_restore(r, f.fd, GMEM_RESTORE_ONE));
			}
			CHECK(lseek(fd, 0, SEEK_SET) == 0);
			pc_asks = 0;
			if (!warm)
				inject_arm(nth);
			ret = gmem_postcopy_restore(r, fd, &pc_callbacks);
			if (!warm)
				fired = inject_disarm();
			snprintf(pc_where, sizeof(pc_where), "post-copy restore%s with %s (call %llu) failing",
				 layer ? " (layer)" : "", fired ? inject_fired_in() : "nothing",
				 (unsigned long long)nth);
			if (fired && ret) {
				if (ret >= 0 || ret == -EINVAL || ret == -EBUSY)
					printf("  post-copy restore%s with %s (call %llu) failing: %d\n",
					       layer ? " (layer)" : "", inject_fired_in(),
					       (unsigned long long)nth, ret);
				CHECK(ret < 0 && ret != -EINVAL && ret != -EBUSY);
				if (!layer)
					check_untouched(r);
				check_no_postcopy(r, f.g);
				CHECK_OK(gmem_audit(r));
				CHECK(lseek(fd, 0, SEEK_SET) == 0);
				ret = gmem_postcopy_restore(r, fd, &pc_callbacks);
				if (ret == -EBUSY && layer) {
					/* part of it in: nothing follows */
					CHECK_OK(gmem_audit(r));
					CHECK_OK(gmem_destroy(r));
					held_same(&h0);
					continue;
				}
			}
			CHECK_OK(ret);
			CHECK_EQ(pc_asks, 0);
			pc_transfer(f.g, r);
			pc_check_same(f.g, r);
			CHECK_EQ(pc_asks, 0);
			CHECK_OK(gmem_audit(r));
			CHECK_OK(gmem_destroy(r));
			held_same(&h0);
			if (warm || !fired)
				break;
		}
		if (!warm)
			break;
	}
	CHECK(nth > 1);
	after_save(&f);
	if (layer)
		close(lfd);
	CHECK_OK(gmem_destroy(f.g));
}

TEST(inject_postcopy_restore)
{
	pc_restore_sweep(env, false);
}

TEST(inject_postcopy_restore_layer)
{
	pc_restore_sweep(env, true);
}

/* ---- post-copy: records received, an abort ---- */

struct toucher {
	pthread_t t;
	char *p;
	int sig;
};

static void *toucher_run(void *arg)
{
	struct toucher *x = arg;

	x->sig = touch(x->p, false, NULL, NULL);
	return NULL;
}

/* A guest touch of page p, in a thread: its signal (0: none), failing the case if it hangs. */
static int guest_touch(char *guest, uint64_t p)
{
	struct toucher x = { .p = guest + p * PS };
	struct timespec ts;
	int err;

	CHECK_OK(pthread_create(&x.t, NULL, toucher_run, &x));
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 5;
	err = pthread_timedjoin_np(x.t, NULL, &ts);
	if (err == ETIMEDOUT)
		test_fail(__FILE__, __LINE__, "%s: a guest touch of page %llu still waits after 5 s",
			  pc_where, (unsigned long long)p);
	CHECK_OK(err);
	return x.sig;
}

enum pc_dest_call { RECEIVE_ALL, RECEIVE_REST, ABORT, ABORT_REST };

/*
 * A destination restored from the source's file (fresh); with *_REST the
 * first half of the records received already.  The call: the (rest of
 * the) records received, or an abort.  Received, whatever failed: every
 * page as the source has it, nothing asked for (a fill that could not be
 * made is made by the next touch).  Aborted: the pages still missing fail
 * - gmem_read() -EBADMSG, a guest touch SIGBUS, gmem_restore_wait() the
 * abort's error - and those come before read as they came.
 */
static void pc_dest_sweep(const struct env *e, enum pc_dest_call what)
{
	bool rest = what == RECEIVE_REST || what == ABORT_REST;
	struct fixture f;
	struct held h0;
	char *buf, *page = malloc(PS);
	int64_t n, half = 0;
	uint64_t nth;

	pc_source(e, &f, NULL);
	buf = malloc(pc_cap(f.g));
	CHECK(buf && page);
	n = gmem_postcopy_send(f.g, 0, gmem_size(f.g), buf, pc_cap(f.g), 0);
	CHECK(n > 0);
	memset(pc_named, 0, sizeof(pc_named));
	pc_parse(f.g, buf, n, pc_named);
	/* half: at a record's end */
	for (int64_t at = 0; at < n / 2;) {
		uint64_t count;

		memcpy(&count, buf + at + 16, sizeof(count));
		at += PC_HDR + (int64_t)(count * PS);
		half = at;
	}
	memset(pc_seen, 0, sizeof(pc_seen));
	if (rest)
		pc_parse(f.g, buf, half, pc_seen); /* the pages come before the call */

	for (int warm = 1;; warm = 0) {
		held_count(&h0);
		for (nth = 1;; nth++) {
			struct gmem *r = tg_create(e, gmem_size(f.g), 0, 0);
			bool fired = false;
			char *guest;
			int ret;

			CHECK(lseek(f.fd, 0, SEEK_SET) == 0);
			pc_asks = 0;
			CHECK_OK(gmem_postcopy_restore(r, f.fd, &pc_callbacks));
			CHECK_OK(gmem_guest_map(r, (void **)&guest));
			if (rest)
				CHECK_OK(gmem_postcopy_receive(r, buf, (size_t)half));
			if (!warm)
				inject_arm(nth);
			if (what == RECEIVE_ALL || what == RECEIVE_REST)
				ret = gmem_postcopy_receive(r, buf + (rest ? half : 0),
							    (size_t)(n - (rest ? half : 0)));
			else
				ret = gmem_postcopy_abort(r, -ECONNRESET);
			if (!warm)
				fired = inject_disarm();
			snprintf(pc_where, sizeof(pc_where), "post-copy %s%s with %s (call %llu) failing",
				 what <= RECEIVE_REST ? "receive" : "abort", rest ? " (the rest)" : "",
				 fired ? inject_fired_in() : "nothing", (unsigned long long)nth);
			if (ret)
				printf("  post-copy %s with %s (call %llu) failing: %d\n",
				       what <= RECEIVE_REST ? "receive" : "abort",
				       inject_fired_in(), (unsigned long long)nth, ret);
			CHECK_OK(ret); /* a fill that fails is left for the next touch */
			if (what == RECEIVE_ALL || what == RECEIVE_REST) {
				pc_check_same(f.g, r);
			} else {
				CHECK_EQ(gmem_restore_wait(r, 10000), -ECONNRESET);
				/* one page a huge page on hugetlbfs: they fail whole */
				for (uint64_t p = 0; p < pc_npages(f.g);
				     p += env_hugetlb(e) ? e->unit / PS : 1) {
					char *src = f.guest + p * PS;
					bool shared = gmem_state(f.g, p * PS) == GMEM_SHARED;
					/* a unit fills once all of it came: on THP and
					 * hugetlbfs the huge page, which half never is */
					bool came = pc_bit(pc_seen, p) && e->unit == PS;

					if (!pc_bit(pc_named, p))
						continue;
					if (came) {
						if (shared) {
							CHECK_OK(gmem_read(r, p * PS, page, PS, NULL));
							CHECK(!memcmp(page, src, PS));
						}
						CHECK_EQ(guest_touch(guest, p), 0);
						CHECK_EQ(guest[p * PS], src[0]);
					} else {
						if (shared)
							CHECK_EQ(gmem_read(r, p * PS, page, PS, NULL),
								 -EBADMSG);
						CHECK_EQ(guest_touch(guest, p), SIGBUS);
					}
				}
				CHECK_EQ(pc_asks, 0);
			}
			CHECK_OK(gmem_audit(r));
			CHECK_OK(gmem_destroy(r));
			held_same(&h0);
			if (warm || !fired)
				break;
		}
		if (!warm)
			break;
	}
	CHECK(nth > 1 || what >= ABORT); /* an abort with nothing missing has nothing to do */
	free(buf);
	free(page);
	after_save(&f);
	CHECK_OK(gmem_destroy(f.g));
}

TEST(inject_postcopy_receive)
{
	pc_dest_sweep(env, RECEIVE_ALL);
	pc_dest_sweep(env, RECEIVE_REST);
}

TEST(inject_postcopy_abort)
{
	pc_dest_sweep(env, ABORT);
	pc_dest_sweep(env, ABORT_REST);
}
