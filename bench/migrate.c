// SPDX-License-Identifier: MIT
/*
 * migrate.c - gmem-vmm's live migration between two processes on loopback.
 *
 * (m1) the whole pre-copy migration of an idle 1 GiB guest
 *      (guest/bench/resume.c: 254 MiB populated), connect to hand-over
 *      as the source's --stats has it / the same bytes sent over a
 *      loopback TCP connection into a fresh memfd mapping at the other
 *      end (what a VMM without gmem would do at the least).
 * (m2) the downtime - the source's vCPUs paused to the hand-over sent -
 *      of that idle guest, and of one writing 64 MiB round and round
 *      (guest/bench/dirty.c).
 * (m3) the pages the dirtying guest's migration sent / the pages it had
 *      populated: what pre-copy sends again.
 * (m4) post-copy: the time to resume - the source's vCPUs paused to the
 *      hand-over sent, the destination running the VM on GO - of the idle
 *      guest moved before any round (--postcopy-rounds 0: every page
 *      follows); and a page fetched on first touch through the guest
 *      mapping, the library's round trip over loopback TCP to a source
 *      thread, / a lazy restore's first touch of a page from a file (s3's
 *      figure, measured here again on the same object).
 * Each migration starts once the guest says it is ready (SIGUSR2), with
 * the default --max-downtime (50 ms).  The rounds of the dirtying guest
 * go to the series "migration_rounds" for the plot.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

/* The number after "key": in a JSON file - after "within": if within - or -1. */
static double json_number_in(const char *path, const char *within, const char *key)
{
	static char buf[16384];
	char pat[64], *p;
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = within ? strstr(buf, within) : buf;
	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	p = p ? strstr(p, pat) : NULL;
	return p ? atof(p + strlen(pat)) : -1;
}

static double json_number(const char *path, const char *key)
{
	return json_number_in(path, NULL, key);
}

struct migration {
	double total_ms, downtime_ms, pages_sent, pages_populated;
	char stats[256]; /* the source's --stats file, kept for the rounds */
};

/*
 * Migrate guest `name` (1 GiB) once it prints ready: false, and f skipped
 * with why, if anything fails.
 */
static bool migrate_once(struct figure *f, int rep, const char *name, const char *ready,
			 struct migration *m, bool postcopy)
{
	char addr[64], dst_stats[256], elf[512];
	struct vmm_child dst, src;
	bool ok = false;
	int status;

	if (access("/dev/kvm", R_OK | W_OK)) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "no usable /dev/kvm");
		return false;
	}
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%d", 20000 + (getpid() * 31 + rep * 7) % 40000);
	snprintf(m->stats, sizeof(m->stats), "/var/tmp/gmem-bench-migrate-%d.json", getpid());
	snprintf(dst_stats, sizeof(dst_stats), "/var/tmp/gmem-bench-migrate-%d-dst.json", getpid());
	if (!vmm_child_start(&dst, (const char *const[]){ "--incoming", addr, "--timeout", "300",
						    "--stats", dst_stats, NULL }))
		goto out;
	if (!vmm_child_start(&src, (const char *const[]){ "--mem", "1G", "--migrate-to", addr, "--stats",
						    m->stats, "--timeout", "300",
						    bench_guest_path(name, elf, sizeof(elf)),
						    postcopy ? "--postcopy" : NULL,
						    "--postcopy-rounds", "0", NULL })) {
		vmm_child_end(&dst, SIGKILL);
		goto out;
	}
	/* the guest reads or writes for ever: the source ends it by migrating it away */
	if (vmm_child_wait_line(&src, ready, 120))
		kill(src.pid, SIGUSR2);
	status = vmm_child_end(&src, 0);
	vmm_child_end(&dst, SIGKILL); /* the destination runs it for ever */
	unlink(dst_stats);
	m->total_ms = json_number(m->stats, "total_ms");
	m->downtime_ms = json_number(m->stats, "downtime_ms");
	m->pages_sent = json_number(m->stats, "pages_sent");
	m->pages_populated = json_number(m->stats, "pages_populated");
	ok = status == 0 && m->total_ms > 0 && m->pages_sent > 0 &&
	     (postcopy || m->pages_populated > 0);
out:
	if (!ok) {
		f->skipped = true;
		snprintf(f->why, sizeof(f->why), "the migration of %s failed", name);
		unlink(m->stats);
	}
	return ok;
}

/* The baseline's other end: reads into a fresh memfd mapping until the sender closes. */
struct sink {
	int lfd;
	uint64_t bytes;
	double done_ns;
};

static void *sink_main(void *arg)
{
	struct sink *s = arg;
	int fd = accept(s->lfd, NULL, NULL), mfd;
	char *p = plain_map(s->bytes + MiB, &mfd);
	uint64_t got = 0;
	ssize_t n = 1;

	while (fd >= 0 && n > 0 && got < s->bytes + MiB) {
		n = read(fd, p + got, s->bytes + MiB - got);
		got += n > 0 ? (uint64_t)n : 0;
	}
	s->done_ns = now_ns();
	if (fd >= 0)
		close(fd);
	plain_unmap(p, s->bytes + MiB, mfd);
	return NULL;
}

/* ns to send bytes from a populated plain mapping over loopback TCP into memory. */
static double send_baseline(uint64_t bytes)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	struct sink s = { .bytes = bytes };
	int pfd, fd;
	char *src = plain_map(bytes, &pfd);
	pthread_t t;
	double t0;

	for (uint64_t o = 0; o < bytes; o += PS)
		*(volatile uint64_t *)(src + o) = o | 1;
	s.lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (s.lfd < 0 || bind(s.lfd, (struct sockaddr *)&a, sizeof(a)) || listen(s.lfd, 1) ||
	    getsockname(s.lfd, (struct sockaddr *)&a, &alen))
		die("loopback listener", errno);
	pthread_create(&t, NULL, sink_main, &s);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	t0 = now_ns();
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)))
		die("loopback connect", errno);
	for (uint64_t o = 0; o < bytes;) {
		ssize_t n = write(fd, src + o, bytes - o < MiB ? bytes - o : MiB);

		if (n <= 0)
			die("loopback write", errno);
		o += (uint64_t)n;
	}
	close(fd);
	pthread_join(t, NULL);
	close(s.lfd);
	plain_unmap(src, bytes, pfd);
	return s.done_ns - t0;
}

/* (m1) and (m2) idle: the one migration gives both; m1 runs it, m2 takes its downtime. */
static struct migration idle[MAX_REPS];

static void total(struct figure *f, int r)
{
	if (!migrate_once(f, r, "resume", "resume: ready", &idle[r], false))
		return;
	unlink(idle[r].stats);
	f->value[r] = idle[r].total_ms * 1e6;
	/* the bytes gmem's records held: a page each, and a 32-byte header for 16 of them */
	f->base[r] = send_baseline((uint64_t)idle[r].pages_sent * (PS + 2));
	series("migration", "\"guest\": \"idle\", \"rep\": %d, \"total_ms\": %.1f, "
			    "\"baseline_ms\": %.1f, \"downtime_ms\": %.1f, \"pages_sent\": %.0f, "
			    "\"pages_populated\": %.0f",
	       r, idle[r].total_ms, f->base[r] / 1e6, idle[r].downtime_ms, idle[r].pages_sent,
	       idle[r].pages_populated);
}

/* (m2) idle: the migration (m1) made, or one of its own when m1 did not run. */
static void downtime_idle(struct figure *f, int r)
{
	struct migration *m = &idle[r];

	if (!(m->total_ms > 0)) {
		if (!migrate_once(f, r, "resume", "resume: ready", m, false))
			return;
		unlink(m->stats);
	}
	f->value[r] = m->downtime_ms;
	f->base[r] = 1;
}

/* The dirtying guest's rounds, from the source's --stats, as series rows. */
static void rounds_series(const char *stats, int rep)
{
	static char buf[16384];
	FILE *fp = fopen(stats, "r");
	size_t n = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
	char *p;
	int i = 0;

	if (fp)
		fclose(fp);
	buf[n] = '\0';
	p = strstr(buf, "\"rounds\": [");
	while (p && (p = strstr(p, "{\"pages\": "))) {
		double pages, ms;

		if (sscanf(p, "{\"pages\": %lf, \"ms\": %lf}", &pages, &ms) != 2)
			break;
		series("migration_rounds", "\"rep\": %d, \"round\": %d, \"pages\": %.0f, \"ms\": %.1f",
		       rep, i++, pages, ms);
		p++;
	}
}

static struct migration dirtying[MAX_REPS];

static void downtime_dirty(struct figure *f, int r)
{
	struct migration *m = &dirtying[r];

	if (!migrate_once(f, r, "dirty", "dirty: ready", m, false))
		return;
	rounds_series(m->stats, r);
	unlink(m->stats);
	f->value[r] = m->downtime_ms;
	f->base[r] = 1;
	series("migration", "\"guest\": \"dirtying\", \"rep\": %d, \"total_ms\": %.1f, "
			    "\"downtime_ms\": %.1f, \"pages_sent\": %.0f, \"pages_populated\": %.0f",
	       r, m->total_ms, m->downtime_ms, m->pages_sent, m->pages_populated);
}

/* (m3): the dirtying guest's migration (m2) made, or one of its own. */
static void resent(struct figure *f, int r)
{
	struct migration *m = &dirtying[r];

	if (!(m->total_ms > 0)) {
		if (!migrate_once(f, r, "dirty", "dirty: ready", m, false))
			return;
		unlink(m->stats);
	}
	f->value[r] = m->pages_sent / m->pages_populated;
	f->base[r] = 1;
}

/* (m4) the idle guest moved before any round: how soon it runs at the destination. */
static void postcopy_resume(struct figure *f, int r)
{
	struct migration m;

	if (!migrate_once(f, r, "resume", "resume: ready", &m, true))
		return;
	f->value[r] = m.downtime_ms;
	f->base[r] = 1;
	series("migration", "\"guest\": \"idle, post-copy\", \"rep\": %d, \"total_ms\": %.1f, "
			    "\"downtime_ms\": %.1f, \"pages_sent\": %.0f, \"pages_fetched\": %.0f, "
			    "\"pages_pushed\": %.0f, \"postcopy_ms\": %.1f",
	       r, m.total_ms, m.downtime_ms, m.pages_sent, json_number(m.stats, "pages_fetched"),
	       json_number(m.stats, "pages_pushed"), json_number_in(m.stats, "\"postcopy\": {", "ms"));
	unlink(m.stats);
}

/* ---- (m4) a page fetched on touch ---- */

#define PC_OBJ (64 * MiB)
#define PC_FAULTS 48
#define PC_REGION (PC_OBJ / PC_FAULTS) /* a touch a region: each a unit of its own */

static struct gmem *pc_create(void)
{
	struct gmem_config cfg = { .size = PC_OBJ, .backing = GMEM_BACKING_SHMEM };
	struct gmem *g;
	int err = gmem_create(&cfg, &g);

	if (err)
		die("gmem_create", err);
	return g;
}

/* The two ends of a loopback TCP connection. */
static void tcp_pair(int fds[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen))
		die("loopback listener", errno);
	fds[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (fds[0] < 0 || connect(fds[0], (struct sockaddr *)&a, sizeof(a)))
		die("loopback connect", errno);
	fds[1] = accept(lfd, NULL, NULL);
	if (fds[1] < 0)
		die("loopback accept", errno);
	setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	close(lfd);
}

static bool full_io(int fd, void *p, size_t len, bool out)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = out ? write(fd, (char *)p + done, len - done)
				: read(fd, (char *)p + done, len - done);

		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
}

/* A source and a destination in one process, a connection between them. */
struct pc_link {
	struct gmem *src, *dst;
	int fds[2]; /* [0] the destination's end, [1] the source's */
	pthread_t server, receiver;
};

/* gmem_postcopy's fetch: the range, on the wire (from the library's fault thread). */
static void pc_fetch(void *arg, uint64_t offset, uint64_t len)
{
	struct pc_link *k = arg;
	uint64_t req[2] = { offset, len };

	if (!full_io(k->fds[0], req, sizeof(req), true))
		die("fetch write", errno);
}

/* The source: each range asked for, its records back (a length first). */
static void *pc_server(void *arg)
{
	struct pc_link *k = arg;
	size_t cap = 64 * (PS + 32);
	char *buf = malloc(cap + 8);
	uint64_t req[2];

	while (buf && full_io(k->fds[1], req, sizeof(req), false)) {
		int64_t n = gmem_postcopy_send(k->src, req[0], req[1], buf + 8, cap, 0);
		uint64_t len = n > 0 ? (uint64_t)n : 0;

		memcpy(buf, &len, 8);
		if (!full_io(k->fds[1], buf, 8 + len, true))
			break;
	}
	free(buf);
	return NULL;
}

/* The destination's reader: records in, until the connection closes. */
static void *pc_receiver(void *arg)
{
	struct pc_link *k = arg;
	char *buf = malloc(64 * (PS + 32));
	uint64_t len;

	while (buf && full_io(k->fds[0], &len, 8, false) && len <= 64 * (PS + 32) &&
	       full_io(k->fds[0], buf, len, false))
		if (len && gmem_postcopy_receive(k->dst, buf, len))
			die("gmem_postcopy_receive", EBADMSG);
	free(buf);
	return NULL;
}

/* Mean ns of PC_FAULTS first touches through the guest mapping, a region each. */
static double touches(struct gmem *g)
{
	void *base;
	double t = 0;
	int err = gmem_guest_map(g, &base);

	if (err)
		die("gmem_guest_map", err);
	for (int i = 0; i < PC_FAULTS; i++) {
		/* from the top down: a background fill (the baseline's) goes up from 0 */
		uint64_t off = (uint64_t)(PC_FAULTS - 1 - i) * PC_REGION + 100 * PS;
		double t0 = now_ns();

		(void)*(volatile char *)((char *)base + off);
		t += now_ns() - t0;
	}
	return t / PC_FAULTS;
}

static void postcopy_fault(struct figure *f, int r)
{
	struct gmem *src = pc_create(), *plain;
	struct gmem_postcopy pc;
	struct pc_link k = { .src = src };
	int later = memfd_create("m4-later", 0), file = memfd_create("m4-file", 0), err;
	void *base;

	if (later < 0 || file < 0)
		die("memfd_create", errno);
	err = gmem_guest_map(src, &base);
	if (err)
		die("gmem_guest_map", err);
	for (uint64_t o = 0; o < PC_OBJ; o += PS)
		*(volatile uint64_t *)((char *)base + o) = o | 1;
	/* the baseline: the same object from a file, lazily */
	err = gmem_save(src, file, 0);
	if (!err && lseek(file, 0, SEEK_SET))
		err = -errno;
	plain = pc_create();
	if (!err)
		err = gmem_restore(plain, file, GMEM_RESTORE_LAZY);
	if (err)
		die("the baseline's lazy restore", err);
	f->base[r] = touches(plain);
	gmem_destroy(plain);
	/* post-copy: nothing pushed, every touch a fetch */
	err = gmem_save(src, later, GMEM_SAVE_POSTCOPY);
	if (!err && lseek(later, 0, SEEK_SET))
		err = -errno;
	if (err)
		die("the post-copy save", err);
	tcp_pair(k.fds);
	k.dst = pc_create();
	pc = (struct gmem_postcopy){ .fetch = pc_fetch, .arg = &k };
	err = gmem_postcopy_restore(k.dst, later, &pc);
	if (err)
		die("gmem_postcopy_restore", err);
	pthread_create(&k.server, NULL, pc_server, &k);
	pthread_create(&k.receiver, NULL, pc_receiver, &k);
	f->value[r] = touches(k.dst);
	shutdown(k.fds[0], SHUT_RDWR);
	shutdown(k.fds[1], SHUT_RDWR);
	pthread_join(k.server, NULL);
	pthread_join(k.receiver, NULL);
	gmem_postcopy_abort(k.dst, -ECANCELED); /* the pages never touched */
	gmem_destroy(k.dst);
	gmem_destroy(src);
	close(k.fds[0]);
	close(k.fds[1]);
	close(later);
	close(file);
}

struct bench_entry migrate_figures[] = {
	{ { .id = "migrate_total", .what = "(m1) pre-copy migration, idle 1 GiB guest", .unit = "ns",
	    .baseline_what = "the same bytes over loopback TCP into a memfd mapping", .target = 1.3 },
	  total },
	{ { .id = "migrate_downtime_idle", .what = "(m2) its downtime: vCPUs paused to hand-over",
	    .unit = "ms", .baseline_what = "--max-downtime 50", .target = 50, .absolute = true },
	  downtime_idle },
	{ { .id = "migrate_downtime_dirty", .what = "(m2) downtime, a guest writing 64 MiB on",
	    .unit = "ms", .baseline_what = "QEMU's default limit, 300 ms", .target = 300,
	    .absolute = true },
	  downtime_dirty },
	{ { .id = "migrate_resent", .what = "(m3) pages sent / populated, that guest", .unit = "x",
	    .baseline_what = "each populated page sent once", .target = 3, .absolute = true },
	  resent },
	{ { .id = "migrate_postcopy_resume", .what = "(m4) post-copy: time to resume, idle guest",
	    .unit = "ms", .baseline_what = "--max-downtime 50", .target = 50, .absolute = true },
	  postcopy_resume },
	{ { .id = "migrate_postcopy_fault", .what = "(m4) a page fetched on touch, loopback TCP",
	    .unit = "ns", .baseline_what = "a lazy restore's touch from a file (s3)", .target = 3 },
	  postcopy_fault },
};
const size_t n_migrate_figures = sizeof(migrate_figures) / sizeof(migrate_figures[0]);
