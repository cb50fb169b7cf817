// SPDX-License-Identifier: MIT
/*
 * soak.c - every gmem operation at once, at random, checking as it goes.
 *
 * Threads convert (to shared, to private plain, WAIT and DEFER, which
 * cancel each other), pin and unpin (both kinds) and do I/O through the
 * pins, discard, touch pages through several views, write as the guest,
 * and map and unmap strict views, for the time given; an auditor runs
 * gmem_audit() without pause.  What is checked all along:
 *  - gmem_audit() finds no view mapping a private or unpinned in-transit page;
 *  - the guest writes a secret only into private pages, and no host read
 *    through a view ever returns one (the converter scrubs before sharing,
 *    as a guest does); every page a host reads holds whole, well-formed
 *    contents of its own (contents survive conversions) - the page check
 *    the stress test uses too (tests/pagecheck.c);
 *  - I/O on a pinned page always goes through, and a pinned page is never
 *    private;
 *  - every call returns what the contract allows, its error offset inside
 *    the range;
 *  - at the end: every deferred conversion ended exactly once, no pin is
 *    left, the audit is clean;
 *  - write tracking, on throughout: a tracker collects the whole object or
 *    a range, peeking now and then, at random intervals, and restarts
 *    tracking (with GMEM_TRACK_GUEST or not) once in a while.  Every writer
 *    - host writes through views (the readers', the pinners' I/O),
 *    gmem_write() (the readers' now and then), discards, the guest -
 *    counts its writes per page as they begin and once done; a collect
 *    must report every page with a write done before it began that began
 *    after the last collect that cleared the page ended (the guest's only
 *    while its mapping is tracked).  Pages it reports with no write since
 *    the last such collect began are false positives, which the contract
 *    allows: their rate is printed.
 * Prints operations per second and the violations found, which must be 0.
 * It runs in five settings, the time split between them: shmem; THP;
 * shmem with GMEM_F_FRESH_PRIVATE; shmem in a process that locks all its
 * memory (mlockall, as a VMM's mem-lock does) under the SIGSEGV policy,
 * whose refusals then fall back to PROT_NONE; and hugetlbfs 2 MiB pages
 * under the SIGSEGV policy (PROT_NONE again: hugetlbfs takes no guards),
 * two huge pages from the kernel's pool, which it raises for the run and
 * puts back at exit.
 *
 * On hugetlbfs a view maps a huge page only while all its pieces are
 * shared, and a pin refuses converting any of them, whatever the flags.
 * So there, host touches of shared pages in a mixed huge page are refused
 * (a host write so refused is finished through the guest mapping, which
 * conversions never copy away from there), I/O on a pinned page must go
 * through when its huge page was all shared once pinned, an error offset
 * may lie anywhere in the huge pages the range touches, strict views
 * cover whole huge pages, and no conversion is ever in transit.
 *
 *   gmem-soak [SECONDS] [shmem|thp|fresh|locked|hugetlb]   (make soak SECONDS=N: all five)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../tests/sysfs.h"
#include "../tests/memlock.h"
#include "../tests/pagecheck.h"
#include "../tests/touch.h"
#include "gmem.h"

#define PS GMEM_PAGE_SIZE
#define NPAGES 512 /* one 2 MiB huge page; on hugetlbfs, two */
#define HOT 48     /* most ranges fall in the first HOT pages: more collisions */
#define HUGE_PAGES 512 /* 4 KiB pages in a hugetlbfs page (2 MiB) */
#define HUGETLB_POOL 4 /* the object's two, and room for a discard to give one back */
#define NVIEWS 3
#define NSTRIPES 32 /* page locks, striped: a whole range takes 32, not 512 */
#define MAX_PAGES (2 * HUGE_PAGES) /* the largest object: hugetlbfs */
#define stripe(p) ((p) % NSTRIPES)

enum kind { K_CONVERT, K_PIN, K_IO, K_DISCARD, K_TOUCH, K_GUEST, K_VIEW, K_AUDIT, K_COUNT };
static const char *kind_name[K_COUNT] = { "conversions", "pins", "pinned I/O", "discards",
					  "host touches", "guest writes", "strict views",
					  "audits" };

/*
 * A page's writes through one path - the host's (views, gmem_write(),
 * discards) or the guest mapping - counted as they begin and once done.
 * Writers hold the page's lock, so a page has at most one write under way
 * and the nth write begun is the nth done.  A write that turned out to
 * store nothing takes its beginning back.
 */
enum writer { W_VIEW, W_COPY, W_DISCARD, W_GUEST };
static const char *const writer_name[] = { "a view", "gmem_write()", "a discard", "the guest" };

struct wcount {
	_Atomic uint64_t begun, done;
	_Atomic int last; /* the last writer done (enum writer), for the violations' words */
};

static void write_begin(struct wcount *c)
{
	atomic_fetch_add(&c->begun, 1);
}

static void write_end(struct wcount *c, bool stored, enum writer who)
{
	if (stored) {
		atomic_store(&c->last, who);
		atomic_fetch_add(&c->done, 1);
	} else {
		atomic_fetch_sub(&c->begun, 1);
	}
}

struct soak {
	struct gmem *g;
	int sig; /* the object's fault signal */
	uint64_t npages;
	uint64_t hp; /* pages in a huge page on hugetlbfs, else 0 */
	char *guest;
	char *views[NVIEWS];
	uint64_t vfirst[NVIEWS], vend[NVIEWS];
	/* the soak's own: contents are written and checked under page p's, stripe(p) */
	pthread_mutex_t page_mu[NSTRIPES];
	_Atomic bool stop;
	_Atomic uint64_t ops[K_COUNT];
	_Atomic uint64_t violations, deferred, ended, cancelled, refused;
	/* write tracking: the writes made to each page, and the tracker's own (tracker()) */
	struct wcount host[MAX_PAGES], guest_w[MAX_PAGES];
	uint64_t must[MAX_PAGES], gmust[MAX_PAGES], prev[MAX_PAGES];
	bool tracking, track_guest;
	uint64_t collects, peeks, restarts, reported, required, false_pos, tracked_guest_collects;
};

static __attribute__((format(printf, 2, 3))) void violation(struct soak *s, const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&s->violations, 1) < 20) {
		fputs("VIOLATION: ", stdout);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		putchar('\n');
		fflush(stdout);
	}
}

/* xorshift: each thread its own */
static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void pick(const struct soak *s, uint64_t *x, uint64_t *first, uint64_t *n)
{
	uint64_t r = rnd(x);

	if (r % 64 == 0) {
		*first = 0;
		*n = s->npages;
	} else {
		*first = (r >> 8) % HOT;
		*n = 1 + (r >> 20) % 6;
		if (r % 16 == 1)
			*first = (r >> 8) % (s->npages - 8);
	}
}

/* [first, first + n) rounded out to huge pages on hugetlbfs (as it is otherwise). */
static void huge_round(const struct soak *s, uint64_t *first, uint64_t *n)
{
	uint64_t end = *first + *n;

	if (!s->hp)
		return;
	*first -= *first % s->hp;
	end = (end + s->hp - 1) / s->hp * s->hp;
	*n = end - *first;
}

/*
 * Whether a view may map page p as far as its huge page goes: on
 * hugetlbfs, whether every piece of it is shared (else true).
 */
static bool huge_page_shared(const struct soak *s, uint64_t p)
{
	uint64_t first = p, n = 1;

	huge_round(s, &first, &n);
	for (uint64_t q = first; s->hp && q < first + n; q++)
		if (gmem_state(s->g, q * PS) != GMEM_SHARED)
			return false;
	return true;
}

/*
 * Fill page p through a view, counting the write once done if it stored
 * anything: a signal at the page's first byte stopped it before any store,
 * one further on after those before it.  0, or the signal.
 */
static int view_fill(struct soak *s, uint64_t p, char *page, uint64_t w)
{
	siginfo_t si;
	int sig;

	write_begin(&s->host[p]);
	sig = touch_fill_si(page, w, PS, &si);
	write_end(&s->host[p], !sig || (char *)si.si_addr > page, W_VIEW);
	return sig;
}

/* Fill page p through the guest mapping, counting the write. */
static void guest_fill(struct soak *s, uint64_t p, uint64_t w)
{
	write_begin(&s->guest_w[p]);
	pc_fill(s->guest + p * PS, w);
	write_end(&s->guest_w[p], true, W_GUEST);
}

/*
 * A host write of a whole page through a view.  If the page turns private
 * under it (a deferred conversion completing as its last pin drops), the
 * write stops with a signal; the soak then finishes it, so that pages stay
 * whole and the checks stay exact: through the guest mapping once the page
 * is private, or through the view again if the transit was cancelled.
 * Never through the guest mapping while the page is not private: a guest
 * does not touch a page it is converting (gmem.h: GMEM_F_FRESH_PRIVATE
 * copies it meanwhile), and a shared one may start converting at any time.
 * The caller holds the page's lock, so a private page stays private.  A
 * pinner (`waits` false) must not wait: its own pin holds the transit.
 * 0, or the signal that first stopped the host.
 */
static int host_fill(struct soak *s, uint64_t p, char *page, uint64_t w, bool waits)
{
	int sig = view_fill(s, p, page, w), again = sig;

	for (int i = 0; again && waits && i < 100000; i++) {
		int st = gmem_state(s->g, p * PS);

		/*
		 * hugetlbfs: a shared page stays refused while its huge page has
		 * a private piece, and a conversion never copies it: finish
		 * through the guest mapping, where it is whatever its state.
		 */
		if (st == GMEM_PRIVATE || (s->hp && st == GMEM_SHARED)) {
			guest_fill(s, p, w);
			break;
		}
		if (st == GMEM_SHARED)
			again = view_fill(s, p, page, w);
		else
			usleep(50);
	}
	return sig;
}

/* Whether a page read by the host is whole and its own; secrets are violations. */
static void check_page(struct soak *s, uint64_t p, const uint64_t *w, const char *who)
{
	struct pc_check c = pc_check(w, p);
	char why[128];

	if (!pc_ok(&c))
		violation(s, "%s: %s", who, pc_describe(&c, p, why, sizeof(why)));
}

static uint32_t stripes_of(uint64_t first, uint64_t n)
{
	uint32_t m = 0;

	for (uint64_t p = first; p < first + n && p < first + NSTRIPES; p++)
		m |= 1u << stripe(p);
	return m;
}

/* In stripe order, so that two ranges never wait for each other in a cycle. */
static void lock_pages(struct soak *s, uint64_t first, uint64_t n)
{
	uint32_t m = stripes_of(first, n);

	for (int i = 0; i < NSTRIPES; i++)
		if (m & (1u << i))
			pthread_mutex_lock(&s->page_mu[i]);
}

static void unlock_pages(struct soak *s, uint64_t first, uint64_t n)
{
	uint32_t m = stripes_of(first, n);

	for (int i = NSTRIPES; i-- > 0;)
		if (m & (1u << i))
			pthread_mutex_unlock(&s->page_mu[i]);
}

static void on_convert(struct gmem *g, uint64_t offset, uint64_t len, unsigned int to, int result,
		       void *arg)
{
	struct soak *s = arg;

	(void)g, (void)offset, (void)len;
	if (to != GMEM_PRIVATE || (result && result != -ECANCELED))
		violation(s, "callback: to %u result %d", to, result);
	atomic_fetch_add(&s->ended, 1);
	if (result)
		atomic_fetch_add(&s->cancelled, 1);
}

static void *converter(void *arg)
{
	struct soak *s = arg;
	uint64_t x = (uint64_t)pthread_self() | 1;

	while (!atomic_load(&s->stop)) {
		static const unsigned int modes[] = { 0, GMEM_CONVERT_WAIT, GMEM_CONVERT_DEFER,
						      GMEM_CONVERT_DEFER };
		uint64_t first, n, eoff = UINT64_MAX, r = rnd(&x);
		unsigned int flags = modes[r % 4];
		int err;

		pick(s, &x, &first, &n);
		if (r % 3 == 0) {
			/* to shared: scrub the guest's secrets first, as a guest does */
			lock_pages(s, first, n);
			/* secrets live in private pages only; others may be converting */
			for (uint64_t p = first; p < first + n; p++)
				if (gmem_state(s->g, p * PS) == GMEM_PRIVATE &&
				    pc_is_secret(*(volatile uint64_t *)(s->guest + p * PS)))
					guest_fill(s, p, pc_public(p, r));
			err = gmem_convert(s->g, first * PS, n * PS, GMEM_SHARED, 0, NULL);
			unlock_pages(s, first, n);
			if (err)
				violation(s, "convert [%llu, +%llu) to shared: %d",
					  (unsigned long long)first, (unsigned long long)n, err);
		} else {
			uint64_t efirst = first, en = n; /* where the error offset may lie */

			huge_round(s, &efirst, &en);
			err = gmem_convert(s->g, first * PS, n * PS, GMEM_PRIVATE, flags, &eoff);
			if (err == -EINPROGRESS && s->hp)
				violation(s, "convert [%llu, +%llu): in transit on hugetlbfs",
					  (unsigned long long)first, (unsigned long long)n);
			if (err == -EINPROGRESS)
				atomic_fetch_add(&s->deferred, 1);
			else if (err == -EBUSY || err == -EAGAIN) {
				if (eoff < efirst * PS || eoff >= (efirst + en) * PS)
					violation(s, "convert: %d with error offset %llu outside [%llu, +%llu)",
						  err, (unsigned long long)eoff,
						  (unsigned long long)efirst, (unsigned long long)en);
			} else if (err)
				violation(s, "convert [%llu, +%llu) to private: %d",
					  (unsigned long long)first, (unsigned long long)n, err);
		}
		atomic_fetch_add(&s->ops[K_CONVERT], 1);
	}
	return NULL;
}

static void *pinner(void *arg)
{
	struct soak *s = arg;
	uint64_t x = (uint64_t)pthread_self() | 3;
	uint64_t w[PC_WORDS];

	while (!atomic_load(&s->stop)) {
		uint64_t first, n, r = rnd(&x);
		unsigned int flags = r % 8 == 0 ? GMEM_PIN_LONGTERM : 0;
		int err;

		pick(s, &x, &first, &n);
		if (n > 16)
			n = 16;
		err = gmem_pin(s->g, first * PS, n * PS, flags);
		atomic_fetch_add(&s->ops[K_PIN], 1);
		if (err) {
			if (err != -EACCES && err != -EAGAIN)
				violation(s, "pin [%llu, +%llu): %d", (unsigned long long)first,
					  (unsigned long long)n, err);
			continue;
		}
		/*
		 * The I/O the pins are for: through a view, and it must go through
		 * - on hugetlbfs, if the huge page had no piece but shared ones
		 * once pinned (none can turn private under the pin)
		 */
		for (uint64_t p = first; p < first + n; p++) {
			char *page = s->views[0] + p * PS;
			int st = gmem_state(s->g, p * PS), sig;
			bool reachable;

			if (st == GMEM_PRIVATE)
				violation(s, "pinned page %llu is private", (unsigned long long)p);
			if (st == GMEM_CONVERTING && s->hp)
				violation(s, "pinned page %llu in transit on hugetlbfs",
					  (unsigned long long)p);
			if (pthread_mutex_trylock(&s->page_mu[stripe(p)]))
				continue;
			reachable = huge_page_shared(s, p);
			sig = touch_copy(w, page, PS);
			if (sig && (reachable || sig != s->sig))
				violation(s, "I/O on pinned page %llu got signal %d (state %d)",
					  (unsigned long long)p, sig, gmem_state(s->g, p * PS));
			else if (!sig)
				check_page(s, p, w, "pinned I/O");
			if (!sig && r % 2 && host_fill(s, p, page, pc_public(p, r), false))
				violation(s, "a write to pinned page %llu was refused",
					  (unsigned long long)p);
			pthread_mutex_unlock(&s->page_mu[stripe(p)]);
			atomic_fetch_add(&s->ops[K_IO], 1);
		}
		if (r % 16 == 0)
			usleep(200); /* hold it a while: conversions meet it in transit */
		err = gmem_unpin(s->g, first * PS, n * PS, flags);
		if (err)
			violation(s, "unpin [%llu, +%llu): %d", (unsigned long long)first,
				  (unsigned long long)n, err);
	}
	return NULL;
}

/* A host write of page p by gmem_write(): refused (-EACCES) unless shared. */
static void copy_fill(struct soak *s, uint64_t p, uint64_t word)
{
	uint64_t buf[PC_WORDS], eoff = UINT64_MAX;
	int err;

	for (size_t i = 0; i < PC_WORDS; i++)
		buf[i] = word;
	write_begin(&s->host[p]);
	err = gmem_write(s->g, p * PS, buf, PS, &eoff);
	write_end(&s->host[p], !err, W_COPY);
	if (err && (err != -EACCES || eoff != p * PS))
		violation(s, "gmem_write of page %llu: %d, error offset %llu", (unsigned long long)p,
			  err, (unsigned long long)eoff);
}

static void *reader(void *arg)
{
	struct soak *s = arg;
	uint64_t x = (uint64_t)pthread_self() | 5;
	uint64_t w[PC_WORDS];

	while (!atomic_load(&s->stop)) {
		uint64_t r = rnd(&x), v = r % NVIEWS, span = s->vend[v] - s->vfirst[v];
		uint64_t p = s->vfirst[v] + (r % 4 ? (r >> 8) % HOT % span : (r >> 8) % span);
		char *page = s->views[v] + (p - s->vfirst[v]) * PS;
		int sig;

		pthread_mutex_lock(&s->page_mu[stripe(p)]);
		sig = touch_copy(w, page, PS);
		if (!sig) {
			check_page(s, p, w, "host read");
			if (r % 12 == 0)
				copy_fill(s, p, pc_public(p, r));
			else if (r % 3 == 0)
				host_fill(s, p, page, pc_public(p, r), true);
		} else {
			atomic_fetch_add(&s->refused, 1);
		}
		pthread_mutex_unlock(&s->page_mu[stripe(p)]);
		atomic_fetch_add(&s->ops[K_TOUCH], 1);
	}
	return NULL;
}

/* The guest: secrets into private pages only. */
static void *guest(void *arg)
{
	struct soak *s = arg;
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	while (!atomic_load(&s->stop)) {
		uint64_t r = rnd(&x), p = r % 4 ? (r >> 8) % HOT : (r >> 8) % s->npages;

		pthread_mutex_lock(&s->page_mu[stripe(p)]);
		/* conversions to shared take the page's lock: it stays private meanwhile */
		if (gmem_state(s->g, p * PS) == GMEM_PRIVATE)
			guest_fill(s, p, pc_secret(p));
		pthread_mutex_unlock(&s->page_mu[stripe(p)]);
		atomic_fetch_add(&s->ops[K_GUEST], 1);
	}
	return NULL;
}

static void *discarder(void *arg)
{
	struct soak *s = arg;
	uint64_t x = 0x2545f4914f6cdd1dULL;

	while (!atomic_load(&s->stop)) {
		uint64_t first, n;
		int err;

		pick(s, &x, &first, &n);
		lock_pages(s, first, n);
		for (uint64_t p = first; p < first + n; p++)
			write_begin(&s->host[p]);
		err = gmem_discard(s->g, first * PS, n * PS);
		for (uint64_t p = first; p < first + n; p++)
			write_end(&s->host[p], !err, W_DISCARD); /* the zeroing is a write */
		unlock_pages(s, first, n);
		if (err && err != -EBUSY)
			violation(s, "discard [%llu, +%llu): %d", (unsigned long long)first,
				  (unsigned long long)n, err);
		atomic_fetch_add(&s->ops[K_DISCARD], 1);
		usleep(500);
	}
	return NULL;
}

/* Strict views come and go: conversions under them must fail -EBUSY. */
static void *viewer(void *arg)
{
	struct soak *s = arg;
	uint64_t x = 0x8badf00dULL;

	while (!atomic_load(&s->stop)) {
		uint64_t first, n;
		void *v;
		int err;

		pick(s, &x, &first, &n);
		huge_round(s, &first, &n); /* hugetlbfs views cover whole huge pages */
		err = gmem_view_map(s->g, first * PS, n * PS, GMEM_VIEW_STRICT, &v);
		if (err && err != -EACCES)
			violation(s, "strict view [%llu, +%llu): %d", (unsigned long long)first,
				  (unsigned long long)n, err);
		if (!err) {
			for (uint64_t p = first; p < first + n; p++)
				if (gmem_state(s->g, p * PS) != GMEM_SHARED)
					violation(s, "page %llu under a strict view is %d",
						  (unsigned long long)p, gmem_state(s->g, p * PS));
			usleep(300);
			if (gmem_view_unmap(s->g, v))
				violation(s, "unmapping a strict view failed");
		}
		atomic_fetch_add(&s->ops[K_VIEW], 1);
		usleep(200);
	}
	return NULL;
}

static void *auditor(void *arg)
{
	struct soak *s = arg;

	while (!atomic_load(&s->stop)) {
		int err = gmem_audit(s->g);

		if (err)
			violation(s, "gmem_audit() = %d", err);
		atomic_fetch_add(&s->ops[K_AUDIT], 1);
	}
	return NULL;
}

/*
 * Start tracking, the guest mapping's writes too or not.  A write that
 * begins after this returns must be reported; one under way as it starts
 * may or may not be.
 */
static int track_begin(struct soak *s, bool guest)
{
	int err = gmem_track_start(s->g, guest ? GMEM_TRACK_GUEST : 0);

	if (err)
		return err;
	s->track_guest = guest;
	for (uint64_t p = 0; p < s->npages; p++) {
		s->must[p] = atomic_load(&s->host[p].begun);
		s->gmust[p] = atomic_load(&s->guest_w[p].begun);
		s->prev[p] = s->must[p] + s->gmust[p];
	}
	return 0;
}

/*
 * Collect [first, first + n) and check it against the writes made.  A
 * write done before the collect began, begun after the last collect that
 * cleared its page ended (or tracking started), must be reported: the
 * collect between them may have reported a write under way as it ran, the
 * next one certainly does.  A page reported when no write was begun since
 * the writes the last clearing collect of it was bound to report is a
 * false positive.
 */
static void track_check(struct soak *s, uint64_t first, uint64_t n, unsigned int flags)
{
	uint64_t bitmap[MAX_PAGES / 64], done[MAX_PAGES], gdone[MAX_PAGES], set = 0;
	bool peek = flags & GMEM_TRACK_PEEK;
	int64_t got;

	for (uint64_t p = first; p < first + n; p++) {
		done[p] = atomic_load(&s->host[p].done);
		gdone[p] = atomic_load(&s->guest_w[p].done);
	}
	got = gmem_track_collect(s->g, first * PS, n * PS, bitmap, flags);
	if (got < 0) {
		violation(s, "gmem_track_collect [%llu, +%llu) flags %u: %lld",
			  (unsigned long long)first, (unsigned long long)n, flags, (long long)got);
		return;
	}
	for (uint64_t p = first; p < first + n; p++) {
		uint64_t i = p - first, begun = atomic_load(&s->host[p].begun),
			 gbegun = atomic_load(&s->guest_w[p].begun);
		bool bit = bitmap[i / 64] >> (i % 64) & 1;
		bool must = done[p] > s->must[p] || (s->track_guest && gdone[p] > s->gmust[p]);

		set += bit;
		s->required += must;
		if (!bit && done[p] > s->must[p])
			violation(s, "page %llu written by the host (%llu writes done before the "
				     "collect, %llu begun after the last; the last by %s) not reported",
				  (unsigned long long)p, (unsigned long long)done[p],
				  (unsigned long long)s->must[p],
				  writer_name[atomic_load(&s->host[p].last)]);
		if (!bit && s->track_guest && gdone[p] > s->gmust[p])
			violation(s, "page %llu written by the guest (%llu writes done before the "
				     "collect, %llu begun after the last) not reported",
				  (unsigned long long)p, (unsigned long long)gdone[p],
				  (unsigned long long)s->gmust[p]);
		if (bit && begun + gbegun == s->prev[p])
			s->false_pos++;
		if (!peek) {
			s->must[p] = begun;
			s->gmust[p] = gbegun;
			s->prev[p] = done[p] + gdone[p];
		}
	}
	if ((uint64_t)got != set)
		violation(s, "gmem_track_collect returned %lld with %llu bits set", (long long)got,
			  (unsigned long long)set);
	s->collects++;
	s->peeks += peek;
	s->tracked_guest_collects += s->track_guest;
	s->reported += set;
}

/*
 * Collects the whole object or a range, peeking one time in eight, at
 * random intervals; once in a while stops tracking and starts it again,
 * with the guest mapping or without.
 */
static void *tracker(void *arg)
{
	struct soak *s = arg;
	uint64_t x = 0x5851f42d4c957f2dULL;

	while (s->tracking && !atomic_load(&s->stop)) {
		uint64_t first = 0, n = s->npages, r = rnd(&x);

		usleep(50 + r % 2000);
		if (r % 256 == 0) {
			int err = gmem_track_stop(s->g);

			if (err || (err = track_begin(s, (r >> 8) & 1)))
				violation(s, "restarting tracking: %d", err);
			s->restarts++;
			continue;
		}
		if (r % 4)
			pick(s, &x, &first, &n);
		track_check(s, first, n, (r >> 8) % 8 ? 0 : GMEM_TRACK_PEEK);
	}
	return NULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A setting to soak in. */
struct setting {
	const char *name;
	uint32_t backing, flags;
	int fault_signal;
	bool locked; /* mlockall(MCL_CURRENT | MCL_FUTURE) around it */
};

static const struct setting settings[] = {
	{ "shmem", GMEM_BACKING_SHMEM, 0, SIGBUS, false },
	{ "thp", GMEM_BACKING_THP, 0, SIGBUS, false },
	{ "fresh", GMEM_BACKING_SHMEM, GMEM_F_FRESH_PRIVATE, SIGBUS, false },
	{ "locked", GMEM_BACKING_SHMEM, 0, SIGSEGV, true },
	{ "hugetlb", GMEM_BACKING_HUGETLB_2M, 0, SIGSEGV, false },
};

static int soak(const struct setting *set, double seconds)
{
	static void *(*const fns[])(void *) = { converter, converter, pinner, pinner, reader,
						reader, guest, discarder, viewer, auditor, tracker };
	const bool huge = set->backing == GMEM_BACKING_HUGETLB_2M;
	const uint64_t npages = huge ? 2 * HUGE_PAGES : NPAGES;
	struct gmem_config cfg = { .size = npages * PS, .backing = set->backing,
				   .flags = set->flags, .fault_signal = set->fault_signal,
				   .wait_timeout_ms = 20 };
	const char *name = set->name;
	pthread_t t[sizeof(fns) / sizeof(fns[0])];
	struct soak *s = calloc(1, sizeof(*s));
	struct gmem_stats st;
	double t0, el;
	uint64_t total = 0;
	int err;

	if (!s)
		return -ENOMEM;
	if (set->locked && sys_mlockall(MCL_CURRENT | MCL_FUTURE)) {
		fprintf(stderr, "gmem-soak: mlockall: %s\n", strerror(errno));
		free(s);
		return -errno;
	}
	err = gmem_create(&cfg, &s->g);
	if (err) {
		fprintf(stderr, "gmem-soak: gmem_create (%s): %s\n", name, strerror(-err));
		free(s);
		return err;
	}
	s->npages = npages;
	s->hp = huge ? HUGE_PAGES : 0;
	s->sig = set->fault_signal;
	gmem_guest_map(s->g, (void **)&s->guest);
	gmem_set_convert_callback(s->g, on_convert, s);
	s->vfirst[0] = 0, s->vend[0] = npages;
	if (huge) {
		/* whole huge pages: the hot one, and the other */
		s->vfirst[1] = 0, s->vend[1] = HUGE_PAGES;
		s->vfirst[2] = HUGE_PAGES, s->vend[2] = npages;
	} else {
		s->vfirst[1] = 0, s->vend[1] = HOT;
		s->vfirst[2] = HOT / 2, s->vend[2] = npages / 2;
	}
	for (int v = 0; v < NVIEWS; v++)
		if (gmem_view_map(s->g, s->vfirst[v] * PS, (s->vend[v] - s->vfirst[v]) * PS, 0,
				  (void **)&s->views[v]))
			return -ENOMEM;
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_init(&s->page_mu[i], NULL);
	/* tracked from the start, the guest mapping too: the first fill is written */
	err = track_begin(s, true);
	if (err && err != -EOPNOTSUPP)
		violation(s, "gmem_track_start: %d", err);
	s->tracking = !err;
	for (uint64_t p = 0; p < npages; p++)
		if (view_fill(s, p, s->views[0] + p * PS, pc_public(p, 1)))
			violation(s, "the first fill of page %llu was refused", (unsigned long long)p);

	t0 = now();
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
		pthread_create(&t[i], NULL, fns[i], s);
	while (now() - t0 < seconds && atomic_load(&s->violations) == 0)
		usleep(100000);
	atomic_store(&s->stop, true);
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
		pthread_join(t[i], NULL);
	el = now() - t0;

	/* quiet now: every deferral ended, no pin left, the audit clean */
	gmem_get_stats(s->g, &st);
	if (atomic_load(&s->ended) != atomic_load(&s->deferred))
		violation(s, "%llu deferred conversions, %llu ended",
			  (unsigned long long)atomic_load(&s->deferred),
			  (unsigned long long)atomic_load(&s->ended));
	if (st.pins_active)
		violation(s, "%llu pins left", (unsigned long long)st.pins_active);
	for (uint64_t p = 0; p < npages; p++)
		if (gmem_state(s->g, p * PS) == GMEM_CONVERTING)
			violation(s, "page %llu still in transit", (unsigned long long)p);
	if (gmem_audit(s->g))
		violation(s, "the final audit failed");
	if (s->tracking)
		track_check(s, 0, npages, 0); /* every write is done: all must be reported */

	printf("soak on %s: %.0f s\n", name, el);
	for (int k = 0; k < K_COUNT; k++) {
		uint64_t n = atomic_load(&s->ops[k]);

		total += n;
		printf("  %-14s %10llu  %9.0f/s\n", kind_name[k], (unsigned long long)n, n / el);
	}
	printf("  %-14s %10llu  %9.0f/s\n", "all", (unsigned long long)total, total / el);
	printf("  deferred %llu (cancelled %llu), host touches refused %llu, faults decided %llu\n",
	       (unsigned long long)atomic_load(&s->deferred),
	       (unsigned long long)atomic_load(&s->cancelled),
	       (unsigned long long)atomic_load(&s->refused), (unsigned long long)st.host_faults);
	if (s->tracking)
		printf("  tracking: %llu collects (%llu peeks, %llu with the guest mapping tracked), "
		       "%llu restarts; %llu pages reported, %llu of them bound to be, %llu not "
		       "written (false positives: %.1f%%)\n",
		       (unsigned long long)s->collects, (unsigned long long)s->peeks,
		       (unsigned long long)s->tracked_guest_collects,
		       (unsigned long long)s->restarts, (unsigned long long)s->reported,
		       (unsigned long long)s->required, (unsigned long long)s->false_pos,
		       s->reported ? 100.0 * (double)s->false_pos / (double)s->reported : 0.0);
	else
		printf("  tracking: SKIP (no asynchronous userfaultfd write-protect)\n");
	printf("  violations: %llu\n", (unsigned long long)atomic_load(&s->violations));
	err = atomic_load(&s->violations) ? 1 : 0;
	gmem_destroy(s->g);
	if (set->locked)
		sys_munlockall();
	for (int i = 0; i < NSTRIPES; i++)
		pthread_mutex_destroy(&s->page_mu[i]);
	free(s);
	return err;
}

int main(int argc, char **argv)
{
	const size_t nsettings = sizeof(settings) / sizeof(settings[0]);
	double seconds = argc > 1 ? atof(argv[1]) : 60;
	const char *only = argc > 2 ? argv[2] : NULL;
	const struct setting *one = NULL;
	int bad = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	setenv("GMEM_DEBUG", "1", 1); /* a step that cannot fail and does aborts the soak */
	for (size_t i = 0; only && i < nsettings; i++)
		if (!strcmp(only, settings[i].name))
			one = &settings[i];
	if (seconds <= 0 || (only && !one)) {
		fprintf(stderr, "usage: gmem-soak [SECONDS > 0] [shmem|thp|fresh|locked|hugetlb]\n");
		return 2;
	}
	for (size_t i = 0; i < nsettings; i++) {
		const struct setting *set = &settings[i];

		if (one && set != one)
			continue;
		if (set->backing == GMEM_BACKING_THP && !thp_enable()) {
			printf("soak on thp: SKIP (shmem huge pages unavailable, and not root)\n");
			continue;
		}
		/* the pool is raised for the run and put back at exit (tests/sysfs.c) */
		if (set->backing == GMEM_BACKING_HUGETLB_2M &&
		    !hugetlb_reserve(HUGE_PAGES * PS, HUGETLB_POOL)) {
			printf("soak on hugetlb: SKIP (%d free 2 MiB pages in the pool needed, %lu "
			       "free%s)\n", HUGETLB_POOL, hugetlb_free(HUGE_PAGES * PS),
			       geteuid() ? ", and not root" : "");
			continue;
		}
		bad |= soak(set, one ? seconds : seconds / (double)nsettings) != 0;
	}
	return bad;
}
