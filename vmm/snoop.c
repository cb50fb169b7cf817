// SPDX-License-Identifier: MIT
/*
 * snoop.c - a host thread reading all of guest RAM through its own view.
 *
 * It reads every page that exists (mincore() on its view tells, without
 * touching), again and again, while the guest runs.  A touch of a private
 * page must be refused (the configured signal, caught here and counted)
 * and never yield the guest's bytes: the snoop looks in everything it does
 * read for the demo's secret marker, which the guest keeps only in private
 * memory.  Between passes it audits the object.
 *
 * On hugetlbfs mincore() of a view tells only what that view maps, which
 * is nothing before its first touch, so the snoop walks every huge page
 * instead: a touch of one holding any private piece is refused whole (its
 * shared pieces too) and counted once as denied; the pieces of a huge page
 * that is all shared are read one by one, like pages on the other
 * backings.  The pool reserved every huge page when the object was made,
 * so a touch that finds one not yet allocated takes nothing more from it.
 * What the view refuses, the snoop then asks of gmem_read() - the way the
 * devices reach memory there - which copies the shared pieces (a secret
 * left in one is seen) and refuses the private ones (each run of them
 * counted once).
 */
#define _GNU_SOURCE
#include "snoop.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "secret.h"

struct snoop {
	struct vm *vm;
	char *view;
	pthread_t thread;
	_Atomic bool stop;
	struct snoop_stats st; /* the thread's own until joined */
	char marker[SECRET_LEN];
	char *buf; /* hugetlbfs: SNOOP_CHUNK bytes for gmem_read() */
};

/* At most SNOOP_BURST touches, then a pause: ~32,000 touches a second. */
#define SNOOP_BURST 32
#define SNOOP_PAUSE_US 1000
/* hugetlbfs: gmem_read() takes at most this much at a time (a touch, for the pauses) */
#define SNOOP_CHUNK (256ULL << 10)

static __thread sigjmp_buf *volatile snoop_jmp;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	static const char msg[] = "gmem-vmm: unexpected memory fault in the VMM\n";

	(void)si, (void)uc;
	if (snoop_jmp)
		siglongjmp(*snoop_jmp, sig);
	(void)!write(2, msg, sizeof(msg) - 1);
	signal(sig, SIG_DFL); /* not the snoop's: a real bug, die of it */
}

static void pause_every_burst(uint64_t *touches)
{
	if (++*touches % SNOOP_BURST == 0)
		usleep(SNOOP_PAUSE_US); /* leave the vCPUs most of the machine */
}

/* Copy a page out of the view; false if the touch was refused. */
static bool read_page(const char *src, char *dst)
{
	sigjmp_buf jb;

	if (sigsetjmp(jb, 1)) {
		snoop_jmp = NULL;
		return false;
	}
	snoop_jmp = &jb;
	memcpy(dst, src, GMEM_PAGE_SIZE);
	snoop_jmp = NULL;
	return true;
}

/*
 * Read the page at p of the view, counting what happens; false if the
 * touch was refused.
 */
static bool snoop_page(struct snoop *s, uint64_t p, uint64_t *touches)
{
	static __thread char page[GMEM_PAGE_SIZE];

	pause_every_burst(touches);
	if (!read_page(s->view + p * GMEM_PAGE_SIZE, page)) {
		s->st.denied++;
		return false;
	}
	s->st.pages_read++;
	if (memmem(page, sizeof(page), s->marker, sizeof(s->marker)))
		s->st.secrets_seen++;
	return true;
}

/* Look for the secret in n bytes just copied out of the object. */
static void snoop_scan(struct snoop *s, uint64_t n)
{
	s->st.copied += n / GMEM_PAGE_SIZE;
	for (uint64_t at = 0; at < n; at += GMEM_PAGE_SIZE)
		if (memmem(s->buf + at, GMEM_PAGE_SIZE, s->marker, sizeof(s->marker)))
			s->st.secrets_seen++;
}

/*
 * Copy [off, end) out with gmem_read(), all or nothing a chunk at a time:
 * a chunk refused at a page is copied up to it, and the refusal counted;
 * the run of pages that are not shared from there is skipped.
 */
static void snoop_copy(struct snoop *s, uint64_t off, uint64_t end, uint64_t *touches)
{
	while (off < end && !atomic_load(&s->stop)) {
		uint64_t n = end - off < SNOOP_CHUNK ? end - off : SNOOP_CHUNK, at;
		int err;

		pause_every_burst(touches);
		err = gmem_read(s->vm->mem, off, s->buf, n, &at);
		if (!err) {
			snoop_scan(s, n);
		} else if (err == -EACCES) {
			/* the shared pages before it, if they still are */
			if (at > off && !gmem_read(s->vm->mem, off, s->buf, at - off, NULL))
				snoop_scan(s, at - off);
			s->st.copy_denied++;
			/* and past the run of pages a copy would refuse too */
			for (at += GMEM_PAGE_SIZE; at < end && gmem_state(s->vm->mem, at) != GMEM_SHARED;
			     at += GMEM_PAGE_SIZE)
				;
			n = at - off;
		} else {
			return; /* nothing the snoop can do about it */
		}
		off += n;
	}
}

/*
 * A pass over every huge page: through the view while it lets the snoop
 * in, then what it refused through gmem_read().
 */
static void snoop_huge_pass(struct snoop *s, uint64_t per_huge, uint64_t *touches)
{
	uint64_t npages = s->vm->ram_size / GMEM_PAGE_SIZE;

	for (uint64_t h = 0; h < npages && !atomic_load(&s->stop); h += per_huge) {
		uint64_t p = h;

		while (p < h + per_huge && !atomic_load(&s->stop) && snoop_page(s, p, touches))
			p++;
		if (p < h + per_huge) /* refused: the rest of the huge page is, too */
			snoop_copy(s, p * GMEM_PAGE_SIZE, (h + per_huge) * GMEM_PAGE_SIZE, touches);
	}
}

static void *snoop_main(void *arg)
{
	struct snoop *s = arg;
	uint64_t npages = s->vm->ram_size / GMEM_PAGE_SIZE, touches = 0;
	/* hugetlbfs: pieces per huge page; 0 on the other backings */
	uint64_t per_huge = s->vm->backing == GMEM_BACKING_HUGETLB_2M ||
					    s->vm->backing == GMEM_BACKING_HUGETLB_1G
				    ? gmem_backing_page_size(s->vm->mem) / GMEM_PAGE_SIZE
				    : 0;
	unsigned char *resident = per_huge ? NULL : malloc(npages);

	while ((per_huge || resident) && !atomic_load(&s->stop)) {
		if (per_huge) {
			snoop_huge_pass(s, per_huge, &touches);
		} else {
			if (mincore(s->view, npages * GMEM_PAGE_SIZE, resident))
				memset(resident, 1, npages);
			for (uint64_t p = 0; p < npages && !atomic_load(&s->stop); p++)
				if (resident[p] & 1)
					snoop_page(s, p, &touches);
		}
		s->st.audits++;
		s->st.audit_failures += gmem_audit(s->vm->mem) != 0;
		s->st.passes++;
		usleep(SNOOP_PAUSE_US); /* a pass of few touches (all refused) must not spin */
	}
	free(resident);
	return NULL;
}

int snoop_start(struct vm *vm)
{
	static const unsigned char encoded[SECRET_LEN] = SECRET_ENCODED;
	struct sigaction sa = { .sa_sigaction = on_fault, .sa_flags = SA_SIGINFO };
	struct snoop *s = calloc(1, sizeof(*s));
	void *view;
	int err;

	if (!s)
		return -ENOMEM;
	err = gmem_view_map(vm->mem, 0, vm->ram_size, 0, &view);
	if (err) {
		free(s);
		return err;
	}
	s->vm = vm;
	s->view = view;
	if ((vm->backing == GMEM_BACKING_HUGETLB_2M || vm->backing == GMEM_BACKING_HUGETLB_1G) &&
	    !(s->buf = malloc(SNOOP_CHUNK))) {
		gmem_view_unmap(vm->mem, view);
		free(s);
		return -ENOMEM;
	}
	for (int i = 0; i < SECRET_LEN; i++)
		s->marker[i] = (char)(encoded[i] ^ SECRET_XOR);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	err = -pthread_create(&s->thread, NULL, snoop_main, s);
	if (err) {
		gmem_view_unmap(vm->mem, view);
		free(s->buf);
		free(s);
		return err;
	}
	vm->snoop = s;
	return 0;
}

void snoop_stop(struct vm *vm, struct snoop_stats *st)
{
	struct snoop *s = vm->snoop;

	memset(st, 0, sizeof(*st));
	if (!s)
		return;
	atomic_store(&s->stop, true);
	pthread_join(s->thread, NULL);
	*st = s->st;
	gmem_view_unmap(vm->mem, s->view);
	free(s->buf);
	free(s);
	vm->snoop = NULL;
}
