// SPDX-License-Identifier: MIT
/*
 * dofork_tracking.c - a child forked while tracking writes and reads
 * through its copies of views, unseen.
 *
 * The process undoes MADV_DONTFORK on a view (MADV_DOFORK) and forks while
 * tracking.  The kernel copies the page tables of a mapping registered for
 * write-protect (mm/memory.c, vma_needs_copy(): "Always copy pgtables when
 * dst_vma has uffd-wp enabled"), and with UFFD_FEATURE_EVENT_FORK the
 * child's copy keeps VM_UFFD_WP (fs/userfaultfd.c, dup_userfaultfd()) and
 * the features - WP_ASYNC included - of the parent's userfaultfd.  So the
 * child's copy maps every page the parent's view mapped at the fork:
 *  - its writes need no fault (async write-protect is lifted in the
 *    kernel, in the child's own entries): the parent's collects never
 *    report them - a lost write;
 *  - its reads need none either, and a conversion to private zaps the
 *    parent's views only (MADV_DONTNEED_LOCKED): the child reads the page
 *    after the guest made it private and wrote it.
 * gmem.h promises "copies of views whose every touch is SIGBUS" with
 * CAP_SYS_PTRACE (run as root).  Without tracking the same test passes
 * (test_tamper's dofork_child_views_refused): the copy is then not made.
 *
 *   make lib && cc -Iinclude repro/dofork_tracking.c build/lib/libgmem.a -pthread -o /tmp/r && /tmp/r
 */
#define _GNU_SOURCE
#include <signal.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gmem.h"

#define PS 4096

static sigjmp_buf jb;

static void on_signal(int sig)
{
	siglongjmp(jb, sig);
}

/* 0 if the access completed, else the signal it raised. */
static int touch(volatile char *p, int write, char *v)
{
	int sig = sigsetjmp(jb, 1);

	if (sig)
		return sig;
	if (write)
		*p = *v;
	else
		*v = *p;
	return 0;
}

int main(void)
{
	struct gmem_config cfg = { .size = 8 * PS, .backing = GMEM_BACKING_SHMEM };
	struct gmem *g;
	uint64_t bitmap = 0;
	char *v, *guest, c = 0;
	int pipefd[2], status, bad = 0;
	pid_t pid;

	if (gmem_create(&cfg, &g) || gmem_guest_map(g, (void **)&guest) ||
	    gmem_view_map(g, 0, cfg.size, 0, (void **)&v))
		return 2;
	if (gmem_track_start(g, 0))
		return 2;
	c = v[4 * PS]; /* the view maps pages 4, 5 (fault-around) and the rest, protected */
	if (madvise(v, cfg.size, MADV_DOFORK) || pipe(pipefd))
		return 2;
	pid = fork();
	if (pid == 0) {
		signal(SIGBUS, on_signal);
		signal(SIGSEGV, on_signal);
		if (!touch(v + 5 * PS, 1, &(char){ 'w' }))
			bad |= 1; /* wrote a page of the parent's memory */
		if (read(pipefd[0], &c, 1) != 1)
			_exit(100);
		if (!touch(v + 4 * PS + 1, 0, &c) && c == 's')
			bad |= 2; /* read a private page */
		_exit(bad);
	}
	waitpid(-1, NULL, WNOHANG);
	usleep(100000); /* the child's write done */
	/* the guest makes page 4 private and writes its secret */
	if (gmem_convert(g, 4 * PS, PS, GMEM_PRIVATE, 0, NULL))
		return 2;
	memset(guest + 4 * PS, 's', PS);
	if (write(pipefd[1], "x", 1) != 1 || waitpid(pid, &status, 0) != pid)
		return 2;
	bad = WIFEXITED(status) ? WEXITSTATUS(status) : 100;
	gmem_convert(g, 4 * PS, PS, GMEM_SHARED, 0, NULL);
	gmem_track_collect(g, 0, cfg.size, &bitmap, 0);
	printf("child wrote page 5 through its copy: %s (page 5 holds '%c')\n",
	       bad & 1 ? "yes" : "no (refused)", v[5 * PS]);
	printf("the parent's collect reports page 5: %s\n", bitmap >> 5 & 1 ? "yes" : "no: lost");
	printf("child read the private page 4:       %s\n", bad & 2 ? "yes" : "no (refused)");
	return bad ? 1 : 0;
}
