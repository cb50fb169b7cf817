// SPDX-License-Identifier: MIT
/*
 * gmem-demo.c - a tour of libgmem: in-place conversion, a refused host
 * touch, a pinned conversion answered -EAGAIN, a deferred one completing on
 * the last unpin, and the audit.  It plays both sides: the guest through
 * the guest mapping (as KVM would), the host through a view.  Exits 0 only
 * if every step behaved as the contract says.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gmem.h"

#define PS GMEM_PAGE_SIZE
#define MiB (1ULL << 20)

static sigjmp_buf *volatile jmp;
static volatile siginfo_t caught;
static int failures;

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if (!jmp)
		abort();
	caught = *si;
	siglongjmp(*jmp, 1);
}

/* Read one byte through a host view; false if gmem refused the touch. */
static bool host_read(const volatile char *p, char *out)
{
	sigjmp_buf jb;

	if (sigsetjmp(jb, 1)) {
		jmp = NULL;
		return false;
	}
	jmp = &jb;
	*out = *p;
	jmp = NULL;
	return true;
}

static void expect(bool ok, const char *what)
{
	printf("  %s %s\n", ok ? "ok  " : "FAIL", what);
	failures += !ok;
}

static void on_deferred(struct gmem *g, uint64_t off, uint64_t len, unsigned int to, int result,
			void *arg)
{
	(void)g, (void)to;
	printf("  callback: deferred conversion of [%#llx, +%llu KiB) ended: %s\n",
	       (unsigned long long)off, (unsigned long long)len >> 10,
	       result ? strerror(-result) : "completed");
	*(int *)arg += 1;
}

int main(void)
{
	struct sigaction sa = { .sa_sigaction = on_signal, .sa_flags = SA_SIGINFO };
	struct gmem_config cfg = { .size = 64 * MiB, .backing = GMEM_BACKING_SHMEM };
	const char secret[] = "guest secret: the launch key";
	struct gmem_stats st;
	uint64_t eoff = 0;
	struct gmem *g;
	char *guest, *view, c;
	void *p;
	int err, callbacks = 0;

	sigaction(SIGBUS, &sa, NULL);
	err = gmem_create(&cfg, &g);
	if (err) {
		fprintf(stderr, "gmem-demo: gmem_create: %s\n", strerror(-err));
		return 1;
	}
	gmem_guest_map(g, &p);
	guest = p;
	if ((err = gmem_view_map(g, 0, cfg.size, 0, &p))) {
		fprintf(stderr, "gmem-demo: gmem_view_map: %s\n", strerror(-err));
		return 1;
	}
	view = p;
	printf("gmem demo: 64 MiB of guest memory, one guest mapping at %p, a host view at %p\n",
	       (void *)guest, (void *)view);

	printf("1. the guest privatizes page 16 and keeps a secret there\n");
	expect(!gmem_convert(g, 16 * PS, PS, GMEM_PRIVATE, 0, NULL), "convert page 16 to private");
	memcpy(guest + 16 * PS, secret, sizeof(secret));

	printf("2. the host touches it through its view\n");
	expect(!host_read(view + 16 * PS + 5, &c), "the touch is refused");
	printf("       SIGBUS, %s, at view + %#lx (the exact byte touched)\n",
	       caught.si_code == BUS_ADRERR	  ? "BUS_ADRERR"
	       : caught.si_code == BUS_MCEERR_AR ? "BUS_MCEERR_AR (a kernel with memory-failure handling)"
						 : "unexpected code",
	       (unsigned long)((char *)caught.si_addr - view));
	expect((caught.si_code == BUS_ADRERR || caught.si_code == BUS_MCEERR_AR) &&
		       (char *)caught.si_addr == view + 16 * PS + 5,
	       "the signal names the exact address");
	expect(gmem_audit(g) == 0, "audit: no host page table maps a private page");

	printf("3. the guest shares the page back: converted in place, contents intact\n");
	expect(!gmem_convert(g, 16 * PS, PS, GMEM_SHARED, 0, NULL), "convert page 16 to shared");
	expect(!memcmp(view + 16 * PS, secret, sizeof(secret)), "the host reads the guest's bytes");
	printf("       host reads: \"%s\"\n", view + 16 * PS);

	printf("4. host I/O pins page 20; the guest asks to privatize pages 16..23\n");
	expect(!gmem_pin(g, 20 * PS, PS, 0), "pin page 20 (short-term, as for a disk request)");
	err = gmem_convert(g, 16 * PS, 8 * PS, GMEM_PRIVATE, 0, &eoff);
	printf("       gmem_convert: %s, error_offset %#llx (page %llu)\n", strerror(-err),
	       (unsigned long long)eoff, (unsigned long long)(eoff / PS));
	expect(err == -EAGAIN && eoff == 20 * PS, "-EAGAIN at the pinned page, nothing changed");
	expect(gmem_state(g, 16 * PS) == GMEM_SHARED, "page 16 is still shared");
	expect(!gmem_unpin(g, 20 * PS, PS, 0), "the I/O completes: unpin");
	expect(!gmem_convert(g, 16 * PS, 8 * PS, GMEM_PRIVATE, 0, NULL), "the retry succeeds");

	printf("5. a deferred conversion completes when the last pin drops\n");
	gmem_set_convert_callback(g, on_deferred, &callbacks);
	expect(!gmem_pin(g, 40 * PS, PS, 0), "pin page 40");
	err = gmem_convert(g, 32 * PS, 16 * PS, GMEM_PRIVATE, GMEM_CONVERT_DEFER, NULL);
	expect(err == -EINPROGRESS, "GMEM_CONVERT_DEFER answers -EINPROGRESS");
	expect(gmem_state(g, 33 * PS) == GMEM_CONVERTING, "its pages are in transit");
	expect(!host_read(view + 33 * PS, &c), "an unpinned page in transit is refused");
	expect(host_read(view + 40 * PS, &c), "the pinned page stays reachable for its I/O");
	expect(!gmem_unpin(g, 40 * PS, PS, 0) && callbacks == 1, "the last unpin completes it");
	expect(gmem_state(g, 40 * PS) == GMEM_PRIVATE, "page 40 is private now");
	expect(gmem_audit(g) == 0, "audit: clean");

	gmem_get_stats(g, &st);
	printf("stats: %llu conversions (%llu pages to private, %llu to shared), %llu -EAGAIN, "
	       "%llu deferred, %llu host faults of which %llu refused, %llu pins held\n",
	       (unsigned long long)st.conversions, (unsigned long long)st.pages_to_private,
	       (unsigned long long)st.pages_to_shared, (unsigned long long)st.convert_eagain,
	       (unsigned long long)st.convert_deferred, (unsigned long long)st.host_faults,
	       (unsigned long long)st.host_faults_denied, (unsigned long long)st.pins_active);
	expect(gmem_destroy(g) == 0, "destroy");
	printf("%s\n", failures ? "SOME CHECKS FAILED" : "every check held");
	return failures ? 1 : 0;
}
