// SPDX-License-Identifier: MIT
/*
 * migrate.c - the migration's connection: TCP, and the frames of
 * docs/MIGRATION.md on it.  A frame checks whole (magic, version, its own
 * hash, the session, its place in the sequence) before its payload is
 * read, and the payload checks before anyone uses it: a destination that
 * receives garbage refuses it before it touches guest memory.  Memory goes
 * as gmem's own stream after a MIG_MEMORY frame, checked by gmem record by
 * record.
 */
#define _GNU_SOURCE
#include "migrate.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

_Static_assert(sizeof(struct mig_frame) == 56, "the frame's layout is the wire's");

/* tcp:HOST:PORT (HOST a name, an IPv4 address or [an IPv6 one]) resolved. */
static int resolve(const char *addr, bool listen, struct addrinfo **ai, char *msg, size_t msg_len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = listen ? AI_PASSIVE : 0 };
	char host[256];
	const char *h, *port;
	size_t hl;
	int err;

	if (strncmp(addr, "tcp:", 4) || !(port = strrchr(addr + 4, ':')) || !port[1]) {
		snprintf(msg, msg_len, "%s: want tcp:HOST:PORT", addr);
		return -EINVAL;
	}
	h = addr + 4;
	hl = (size_t)(port - h);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
		h++, hl -= 2;
	if (!hl || hl >= sizeof(host)) {
		snprintf(msg, msg_len, "%s: want tcp:HOST:PORT", addr);
		return -EINVAL;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	err = getaddrinfo(host, port + 1, &hints, ai);
	if (err) {
		snprintf(msg, msg_len, "%s: %s", addr, gai_strerror(err));
		return err == EAI_SYSTEM ? -errno : -EINVAL;
	}
	return 0;
}

int mig_check_addr(const char *addr, char *msg, size_t msg_len)
{
	struct addrinfo *ai;
	int err = resolve(addr, false, &ai, msg, msg_len);

	if (!err)
		freeaddrinfo(ai);
	return err;
}

static void conn_init(struct mig_conn *c, int fd, const char *addr)
{
	int one = 1;

	*c = (struct mig_conn){ .fd = fd };
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	/* frames are small and answered: no waiting to fill a segment */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int mig_listen(const char *addr, int *lfd, char *msg, size_t msg_len)
{
	struct addrinfo *ai, *a;
	int err = resolve(addr, true, &ai, msg, msg_len), fd = -1, one = 1;

	if (err)
		return err;
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (!bind(fd, a->ai_addr, a->ai_addrlen) && !listen(fd, 1))
			break;
		err = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		err = err ? err : -EADDRNOTAVAIL;
		snprintf(msg, msg_len, "%s: %s", addr, strerror(-err));
		return err;
	}
	*lfd = fd;
	return 0;
}

/* Wait until fd can be read (or written), timeout_s seconds at most (0: for ever). */
static int wait_fd(int fd, short events, unsigned int timeout_s)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	do
		n = poll(&p, 1, timeout_s ? (int)timeout_s * 1000 : -1);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n ? 0 : -ETIMEDOUT;
}

int mig_accept(int lfd, unsigned int timeout_s, struct mig_conn *c, char *msg, size_t msg_len)
{
	int err = wait_fd(lfd, POLLIN, timeout_s), fd;

	if (!err) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			conn_init(c, fd, "");
			return 0;
		}
		err = -errno;
	}
	snprintf(msg, msg_len, "waiting for the source: %s",
		 err == -ETIMEDOUT ? "none came" : strerror(-err));
	return err;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int mig_connect(const char *addr, unsigned int timeout_s, struct mig_conn *c, char *msg,
		size_t msg_len)
{
	struct addrinfo *ai, *a;
	double give_up = now_s() + timeout_s;
	int err = resolve(addr, false, &ai, msg, msg_len), fd = -1;

	if (err)
		return err;
	/* a destination still starting refuses: try again a moment later */
	do {
		for (a = ai; a && fd < 0; a = a->ai_next) {
			fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
			if (fd < 0) {
				err = -errno;
				continue;
			}
			if (!connect(fd, a->ai_addr, a->ai_addrlen))
				break;
			err = -errno;
			close(fd);
			fd = -1;
		}
		if (fd < 0 && err == -ECONNREFUSED && now_s() < give_up)
			usleep(50000);
	} while (fd < 0 && err == -ECONNREFUSED && now_s() < give_up);
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(msg, msg_len, "%s: %s", addr, strerror(-err));
		return err;
	}
	conn_init(c, fd, addr);
	while (getrandom(&c->session, sizeof(c->session), 0) != sizeof(c->session) || !c->session)
		if (errno != EINTR && errno != EAGAIN) {
			err = -errno;
			snprintf(msg, msg_len, "getrandom: %s", strerror(errno));
			mig_close(c);
			return err;
		}
	return 0;
}

/* ---- the watch ---- */

struct mig_watch {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	int fd;
	double deadline; /* CLOCK_MONOTONIC s; 0: none (mu) */
	char why[96];    /* written before fired points at it */
	_Atomic(const char *) fired;
};

/* Bytes the connection has moved either way so far. */
static uint64_t moved(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return 0;
	return ti.tcpi_bytes_acked + ti.tcpi_bytes_received;
}

/* MIG_STALL_S, or GMEM_VMM_STALL_S seconds (1 to 3600): tests wait less. */
static double stall_s(void)
{
	const char *e = getenv("GMEM_VMM_STALL_S");
	int v = e ? atoi(e) : 0;

	return v >= 1 && v <= 3600 ? v : MIG_STALL_S;
}

static void *watch_main(void *arg)
{
	struct mig_watch *w = arg;
	uint64_t last = moved(w->fd);
	double since = now_s(), stall = stall_s();
	struct timespec wake;

	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		uint64_t m;
		double now;
		const char *why = NULL;

		clock_gettime(CLOCK_MONOTONIC, &wake);
		wake.tv_sec++;
		pthread_cond_timedwait(&w->cv, &w->mu, &wake);
		if (w->stop)
			break;
		now = now_s();
		m = moved(w->fd);
		if (m - last >= MIG_STALL_BYTES) {
			last = m;
			since = now;
		} else if (now - since >= stall) {
			snprintf(w->why, sizeof(w->why), "the peer stalled (under %d KiB moved in %.0f s)",
				 MIG_STALL_BYTES / 1024, stall);
			why = w->why;
		}
		if (w->deadline && now >= w->deadline)
			why = "the peer took too long";
		if (why) {
			atomic_store(&w->fired, why);
			shutdown(w->fd, SHUT_RDWR); /* every call on it returns now */
			break;
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int mig_watch_start(struct mig_conn *c)
{
	struct mig_watch *w = calloc(1, sizeof(*w));
	pthread_condattr_t ca;
	int err;

	if (!w)
		return -ENOMEM;
	w->fd = c->fd;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	err = -pthread_create(&w->thread, NULL, watch_main, w);
	if (err) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return err;
	}
	c->watch = w;
	return 0;
}

void mig_watch_deadline(struct mig_conn *c, unsigned int seconds)
{
	if (!c->watch)
		return;
	pthread_mutex_lock(&c->watch->mu);
	c->watch->deadline = seconds ? now_s() + seconds : 0;
	pthread_mutex_unlock(&c->watch->mu);
}

const char *mig_stalled(const struct mig_conn *c)
{
	return c->watch ? atomic_load(&c->watch->fired) : NULL;
}

static void watch_stop(struct mig_conn *c)
{
	struct mig_watch *w = c->watch;

	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
	c->watch = NULL;
}

void mig_close(struct mig_conn *c)
{
	watch_stop(c);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

void mig_set_timeout(struct mig_conn *c, unsigned int timeout_s)
{
	struct timeval tv = { .tv_sec = timeout_s };

	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* A peer gone, in one word: reset, broken, or closed. */
static int gone(int err)
{
	return err == -ECONNRESET || err == -EPIPE ? -EPIPE : err;
}

static int send_all(int fd, const void *p, size_t len)
{
	const char *c = p;

	while (len) {
		ssize_t n = send(fd, c, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return gone(errno == EAGAIN ? -ETIMEDOUT : -errno);
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

static int recv_all(int fd, void *p, size_t len)
{
	char *c = p;

	while (len) {
		ssize_t n = recv(fd, c, len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return gone(errno == EAGAIN ? -ETIMEDOUT : -errno);
		if (!n)
			return -EPIPE;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

static uint64_t frame_hash(const struct mig_frame *f)
{
	return XXH3_64bits(f, offsetof(struct mig_frame, hash));
}

int mig_send(struct mig_conn *c, uint32_t type, const void *payload, uint64_t len)
{
	struct mig_frame f = { .version = MIG_VERSION, .type = type, .session = c->session,
			       .seq = c->seq_out, .len = len };
	int err;

	memcpy(f.magic, MIG_MAGIC, sizeof(f.magic));
	f.payload_hash = XXH3_64bits_withSeed(payload, len, c->session);
	f.hash = frame_hash(&f);
	err = send_all(c->fd, &f, sizeof(f));
	if (!err && len)
		err = send_all(c->fd, payload, len);
	if (!err)
		c->seq_out++;
	return err;
}

int mig_send_memory(struct mig_conn *c, struct gmem *g, unsigned int flags)
{
	int err = mig_send(c, flags & GMEM_SAVE_POSTCOPY ? MIG_POSTCOPY : MIG_MEMORY, NULL, 0);

	if (!err)
		err = gone(gmem_save(g, c->fd, flags));
	return err == -EAGAIN ? -ETIMEDOUT : err;
}

int mig_recv(struct mig_conn *c, unsigned int timeout_s, uint64_t max, uint32_t *type,
	     char **payload, uint64_t *len)
{
	struct mig_frame f;
	char *p = NULL;
	int err = wait_fd(c->fd, POLLIN, timeout_s);

	if (!err)
		err = recv_all(c->fd, &f, sizeof(f));
	if (err)
		return err;
	/* the first frame names the session; every later one must be of it */
	if (memcmp(f.magic, MIG_MAGIC, sizeof(f.magic)) || f.version != MIG_VERSION ||
	    f.hash != frame_hash(&f) || !f.type || f.type >= MIG_TYPES || !f.session ||
	    (c->session && f.session != c->session) || f.seq != c->seq_in || f.len > max ||
	    ((f.type == MIG_MEMORY || f.type == MIG_POSTCOPY) && f.len))
		return -EBADMSG;
	if (f.len) {
		p = malloc(f.len);
		if (!p)
			return -ENOMEM;
		err = recv_all(c->fd, p, f.len);
		if (!err && XXH3_64bits_withSeed(p, f.len, f.session) != f.payload_hash)
			err = -EBADMSG;
		if (err) {
			free(p);
			return err;
		}
	}
	if (!c->session)
		c->session = f.session; /* then fixed: the senders of other threads read it */
	c->seq_in++;
	*type = f.type;
	*payload = p;
	*len = f.len;
	return 0;
}
