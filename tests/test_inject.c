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
#include <stdio.h>
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
