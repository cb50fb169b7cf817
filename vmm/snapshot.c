// SPDX-License-Identifier: MIT
/*
 * snapshot.c - gmem-vmm's snapshot files: writing one whole or not at all,
 * reading one back checked before anything is done with it, chains of
 * layers, and the progress line of a long copy.
 *
 * A file is a header, the VMM's state as sections (checksummed together,
 * the header on its own), then gmem's stream - gmem_save()'s bytes to the
 * end of the file, which gmem_restore() reads to its end.  A checkpoint
 * with --save-dirty is FILE.N, whose memory is a gmem layer on FILE.N-1's:
 * its restore joins the memory of FILE, FILE.1 .. FILE.N into one stream
 * (a temporary file beside them: gmem reads a layer after what it
 * follows, and a lazy restore needs one file to come back to).
 */
#define _GNU_SOURCE
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

_Static_assert(sizeof(struct snapv_header) == 88, "docs/SNAPSHOT.md: the header is 88 bytes");
_Static_assert(sizeof(struct snapv_section) == 16, "docs/SNAPSHOT.md: a section's head is 16 bytes");

/* No VMM state is this large: a bigger length is damage, not a reason to allocate. */
#define STATE_MAX (1ULL << 30)

/* ---- sections ---- */

static bool sbuf_room(struct sbuf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 1 << 16;
	char *p;

	if (b->oom)
		return false;
	while (cap - b->len < more)
		cap *= 2;
	if (cap == b->cap)
		return true;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void sbuf_section2(struct sbuf *b, uint32_t type, uint32_t index, const void *head,
		   uint64_t head_len, const void *body, uint64_t body_len)
{
	struct snapv_section s = { .type = type, .index = index, .len = head_len + body_len };
	size_t pad = (8 - s.len % 8) % 8;

	if (!sbuf_room(b, sizeof(s) + s.len + pad))
		return;
	memcpy(b->p + b->len, &s, sizeof(s));
	b->len += sizeof(s);
	if (head_len)
		memcpy(b->p + b->len, head, head_len);
	b->len += head_len;
	if (body_len)
		memcpy(b->p + b->len, body, body_len);
	b->len += body_len;
	memset(b->p + b->len, 0, pad);
	b->len += pad;
}

void sbuf_section(struct sbuf *b, uint32_t type, uint32_t index, const void *p, uint64_t len)
{
	sbuf_section2(b, type, index, p, len, NULL, 0);
}

void sbuf_free(struct sbuf *b)
{
	free(b->p);
	*b = (struct sbuf){ 0 };
}

/* Walk in's sections: the next after *at (0: the first); false at the end. */
static bool next_section(const struct snapv_in *in, size_t *at, const struct snapv_section **s)
{
	if (*at >= in->len)
		return false;
	*s = (const struct snapv_section *)(in->buf + *at);
	*at += sizeof(**s) + (*s)->len + (8 - (*s)->len % 8) % 8;
	return true;
}

const void *snapv_nth(const struct snapv_in *in, uint32_t type, unsigned int n, uint32_t *index,
		      uint64_t *len)
{
	const struct snapv_section *s;
	size_t at = 0;

	while (next_section(in, &at, &s)) {
		if (s->type != type || n--)
			continue;
		if (index)
			*index = s->index;
		if (len)
			*len = s->len;
		return s + 1;
	}
	return NULL;
}

const void *snapv_find(const struct snapv_in *in, uint32_t type, uint32_t index, uint64_t *len)
{
	const struct snapv_section *s;
	size_t at = 0;

	while (next_section(in, &at, &s)) {
		if (s->type != type || s->index != index)
			continue;
		if (len)
			*len = s->len;
		return s + 1;
	}
	return NULL;
}

/* Every section inside the buffer, of a known type, its padding zero. */
static bool sections_check(const struct snapv_in *in)
{
	size_t at = 0;

	while (at < in->len) {
		const struct snapv_section *s = (const struct snapv_section *)(in->buf + at);
		uint64_t pad;

		if (in->len - at < sizeof(*s) || !s->type || s->type >= SEC_TYPES ||
		    s->len > in->len - at - sizeof(*s))
			return false;
		pad = (8 - s->len % 8) % 8;
		if (pad > in->len - at - sizeof(*s) - s->len)
			return false;
		for (uint64_t k = 0; k < pad; k++)
			if (in->buf[at + sizeof(*s) + s->len + k])
				return false;
		at += sizeof(*s) + s->len + pad;
	}
	return true;
}

/* ---- progress ---- */

struct progress {
	const char *what;
	int fd;
	uint64_t base, total;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, shown;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *progress_main(void *arg)
{
	struct progress *p = arg;
	double t0 = now_s();
	struct timespec wake;

	pthread_mutex_lock(&p->mu);
	clock_gettime(CLOCK_MONOTONIC, &wake);
	wake.tv_sec++; /* nothing for a copy that takes less than a second */
	while (!p->stop) {
		off_t at;
		double t, done, rate;

		if (pthread_cond_timedwait(&p->cv, &p->mu, &wake) != ETIMEDOUT)
			continue;
		at = lseek(p->fd, 0, SEEK_CUR);
		t = now_s() - t0;
		done = at > (off_t)p->base ? (double)((uint64_t)at - p->base) : 0;
		rate = done / t;
		fprintf(stderr, "\rgmem-vmm: %s %.0f of ~%.0f MiB, %.0f MiB/s", p->what,
			done / (1 << 20), (double)p->total / (1 << 20), rate / (1 << 20));
		if (rate > 0 && done < p->total)
			fprintf(stderr, ", %.0f s left  ", (p->total - done) / rate);
		else
			fprintf(stderr, "              ");
		p->shown = true;
		wake.tv_nsec += 250000000L;
		if (wake.tv_nsec >= 1000000000L) {
			wake.tv_sec++;
			wake.tv_nsec -= 1000000000L;
		}
	}
	if (p->shown)
		fputc('\n', stderr);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct progress *progress_start(const char *what, int fd, uint64_t base, uint64_t total)
{
	struct progress *p;
	pthread_condattr_t ca;

	if (!isatty(2) || !(p = calloc(1, sizeof(*p))))
		return NULL;
	*p = (struct progress){ .what = what, .fd = fd, .base = base, .total = total };
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&p->thread, NULL, progress_main, p)) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
		free(p);
		return NULL;
	}
	return p;
}

void progress_stop(struct progress *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* ---- writing ---- */

static int write_all(int fd, const void *p, size_t len)
{
	const char *c = p;

	while (len) {
		ssize_t n = write(fd, c, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

static uint64_t header_hash(const struct snapv_header *h)
{
	return XXH3_64bits(h, offsetof(struct snapv_header, hash));
}

int snapv_write(const char *path, const struct sbuf *state, struct gmem *g, uint32_t kind,
		uint64_t parent, uint64_t seq, uint64_t *id, uint64_t *bytes, char *msg,
		size_t msg_len)
{
	struct snapv_header h = { .magic = SNAPV_MAGIC, .version = SNAPV_VERSION, .kind = kind,
				  .parent = parent, .seq = seq };
	struct gmem_huge_info hi = { 0 };
	struct progress *pr;
	char tmp[PATH_MAX];
	const char *step = "writing";
	struct stat st;
	int fd, err;

	if (state->oom) {
		snprintf(msg, msg_len, "%s: the VMM's state: %s", path, strerror(ENOMEM));
		return -ENOMEM;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		snprintf(msg, msg_len, "%s: %s", path, strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	while (getrandom(&h.id, sizeof(h.id), 0) != sizeof(h.id) || !h.id)
		if (errno != EINTR && errno != EAGAIN) {
			err = -errno;
			snprintf(msg, msg_len, "getrandom: %s", strerror(errno));
			return err;
		}
	h.state_len = state->len;
	h.state_hash = XXH3_64bits_withSeed(state->p, state->len, h.id);
	h.memory_offset = sizeof(h) + state->len;
	h.hash = header_hash(&h);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = -errno;
		snprintf(msg, msg_len, "%s: %s", tmp, strerror(errno));
		return err;
	}
	err = write_all(fd, &h, sizeof(h));
	if (!err)
		err = write_all(fd, state->p, state->len);
	if (!err) {
		gmem_huge_info(g, &hi); /* what a full save copies, about */
		pr = progress_start("saving", fd, h.memory_offset,
				    kind == SNAPV_FULL ? hi.blocks_populated * hi.page_size : 0);
		step = "saving memory";
		/* the vCPUs and the device are paused: nothing writes guest memory */
		err = gmem_save(g, fd, (kind == SNAPV_LAYER ? GMEM_SAVE_DIRTY : 0) | GMEM_SAVE_PAUSED);
		progress_stop(pr);
	}
	if (!err) {
		step = "syncing";
		if (fsync(fd) || fstat(fd, &st))
			err = -errno;
		else
			*bytes = (uint64_t)st.st_size;
	}
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path)) {
		err = -errno;
		step = "renaming";
	}
	if (err) {
		snprintf(msg, msg_len, "%s: %s: %s", path, step,
			 err == -ENOSPC ? "no space left on the device" : strerror(-err));
		unlink(tmp);
		return err;
	}
	*id = h.id;
	return 0;
}

/* ---- reading ---- */

static int read_at(int fd, void *p, size_t len, off_t off)
{
	char *c = p;

	while (len) {
		ssize_t n = pread(fd, c, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG; /* shorter than it says */
		c += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/*
 * The header of the file open at fd, checked on its own.  -EBADMSG with
 * why in msg: "not a gmem-vmm snapshot" when the magic is not there, else
 * damaged.
 */
static int read_header(int fd, const char *path, struct snapv_header *h, uint64_t *size,
		       char *msg, size_t msg_len)
{
	struct stat st;
	int err;

	if (fstat(fd, &st)) {
		err = -errno;
		snprintf(msg, msg_len, "%s: %s", path, strerror(errno));
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(msg, msg_len, "%s: not a gmem-vmm snapshot (not a file)", path);
		return -EBADMSG;
	}
	*size = (uint64_t)st.st_size;
	if (*size < sizeof(*h) || read_at(fd, h, sizeof(*h), 0) ||
	    memcmp(h->magic, SNAPV_MAGIC, sizeof(h->magic))) {
		snprintf(msg, msg_len, "%s: not a gmem-vmm snapshot", path);
		return -EBADMSG;
	}
	if (h->version != SNAPV_VERSION) {
		snprintf(msg, msg_len, "%s: a gmem-vmm snapshot of version %u; this gmem-vmm reads %u",
			 path, h->version, SNAPV_VERSION);
		return -EBADMSG;
	}
	if (h->hash != header_hash(h) || !h->id || (h->kind != SNAPV_FULL && h->kind != SNAPV_LAYER) ||
	    (h->kind == SNAPV_FULL) != !h->seq || (h->kind == SNAPV_FULL) != !h->parent ||
	    h->reserved[0] || h->reserved[1] || h->state_len > STATE_MAX ||
	    h->memory_offset != sizeof(*h) + h->state_len) {
		snprintf(msg, msg_len, "%s: corrupted: its header does not check", path);
		return -EBADMSG;
	}
	if (*size < h->memory_offset) {
		snprintf(msg, msg_len, "%s: truncated: %llu bytes, its VMM state ends at %llu", path,
			 (unsigned long long)*size, (unsigned long long)h->memory_offset);
		return -EBADMSG;
	}
	return 0;
}

/* "FILE.N" for N = seq: FILE, in base; false if path is not so named. */
static bool chain_base(const char *path, uint64_t seq, char *base, size_t len)
{
	char suffix[32];
	size_t pl = strlen(path), sl = (size_t)snprintf(suffix, sizeof(suffix), ".%llu",
							   (unsigned long long)seq);

	if (pl <= sl || strcmp(path + pl - sl, suffix) || pl - sl >= len)
		return false;
	memcpy(base, path, pl - sl);
	base[pl - sl] = '\0';
	return true;
}

/*
 * A layer's memory needs every file before it: join their gmem streams,
 * in order, into one temporary file in the same directory (copy_file_range:
 * the kernel copies, or shares extents where the file system can).
 */
static int chain_join(struct snapv_in *in, const char *path, char *msg, size_t msg_len)
{
	char base[PATH_MAX], name[PATH_MAX + 32], dir[PATH_MAX];
	const uint64_t n = in->h.seq;
	uint64_t want_parent = 0;
	char *slash;
	int out, err = 0;

	if (!chain_base(path, n, base, sizeof(base))) {
		snprintf(msg, msg_len, "%s: checkpoint %llu of a chain, which must be named "
			 "FILE.%llu beside FILE", path, (unsigned long long)n, (unsigned long long)n);
		return -EINVAL;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	out = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (out < 0) /* a file system without O_TMPFILE */
		out = memfd_create("gmem-vmm-chain", MFD_CLOEXEC);
	if (out < 0) {
		err = -errno;
		snprintf(msg, msg_len, "%s: a file to join the chain in: %s", dir, strerror(errno));
		return err;
	}
	in->mem_bytes = 0;
	for (uint64_t k = 0; k <= n && !err; k++) {
		struct snapv_header h;
		uint64_t size;
		int fd;

		if (k)
			snprintf(name, sizeof(name), "%s.%llu", base, (unsigned long long)k);
		else
			snprintf(name, sizeof(name), "%s", base);
		fd = k == n ? dup(in->mem_fd) : open(name, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err = -errno;
			snprintf(msg, msg_len, "%s needs %s: %s", path, name, strerror(errno));
			break;
		}
		err = read_header(fd, name, &h, &size, msg, msg_len);
		if (!err && (h.seq != k || h.parent != want_parent || (k == n && h.id != in->h.id))) {
			snprintf(msg, msg_len, "%s: not checkpoint %llu of %s's chain", name,
				 (unsigned long long)k, path);
			err = -EXDEV;
		}
		want_parent = h.id;
		for (loff_t from = (loff_t)h.memory_offset; !err && (uint64_t)from < size;) {
			ssize_t c = copy_file_range(fd, &from, out, NULL, size - (uint64_t)from, 0);

			if (c <= 0) {
				err = c < 0 ? -errno : -EIO;
				snprintf(msg, msg_len, "%s: joining its memory: %s", name, strerror(-err));
			}
			in->mem_bytes += c > 0 ? (uint64_t)c : 0;
		}
		close(fd);
	}
	if (!err && lseek(out, 0, SEEK_SET) < 0)
		err = -errno;
	if (err) {
		close(out);
		return err;
	}
	close(in->mem_fd);
	in->mem_fd = out;
	return 0;
}

int snapv_open(const char *path, struct snapv_in *in, char *msg, size_t msg_len)
{
	uint64_t size;
	int err;

	memset(in, 0, sizeof(*in));
	snprintf(in->path, sizeof(in->path), "%s", path);
	in->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (in->mem_fd < 0) {
		err = -errno;
		snprintf(msg, msg_len, "%s: %s", path, strerror(errno));
		return err;
	}
	err = read_header(in->mem_fd, path, &in->h, &size, msg, msg_len);
	if (err)
		goto err_close;
	in->len = in->h.state_len;
	in->buf = malloc(in->len ? in->len : 1);
	if (!in->buf) {
		err = -ENOMEM;
		snprintf(msg, msg_len, "%s: %s", path, strerror(ENOMEM));
		goto err_close;
	}
	if (read_at(in->mem_fd, in->buf, in->len, sizeof(in->h)) ||
	    XXH3_64bits_withSeed(in->buf, in->len, in->h.id) != in->h.state_hash ||
	    !sections_check(in)) {
		err = -EBADMSG;
		snprintf(msg, msg_len, "%s: corrupted: its VMM state does not check", path);
		goto err_free;
	}
	if (in->h.kind == SNAPV_LAYER) {
		err = chain_join(in, path, msg, msg_len);
		if (err)
			goto err_free;
	} else {
		in->mem_bytes = size - in->h.memory_offset;
		if (lseek(in->mem_fd, (off_t)in->h.memory_offset, SEEK_SET) < 0) {
			err = -errno;
			snprintf(msg, msg_len, "%s: %s", path, strerror(errno));
			goto err_free;
		}
	}
	return 0;

err_free:
	free(in->buf);
	in->buf = NULL;
err_close:
	close(in->mem_fd);
	in->mem_fd = -1;
	return err;
}

int snapv_adopt(struct snapv_in *in, char *buf, size_t len, const char *label)
{
	free(in->buf);
	in->buf = buf;
	in->len = len;
	snprintf(in->path, sizeof(in->path), "%s", label);
	return sections_check(in) ? 0 : -EBADMSG;
}

void snapv_close(struct snapv_in *in)
{
	free(in->buf);
	in->buf = NULL;
	if (in->mem_fd >= 0)
		close(in->mem_fd);
	in->mem_fd = -1;
}
