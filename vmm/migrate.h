/* SPDX-License-Identifier: MIT */
/*
 * migrate.h - live migration between two gmem-vmm processes over TCP: the
 * wire's frames (docs/MIGRATION.md) and the connection that carries them.
 */
#ifndef GMEM_VMM_MIGRATE_H
#define GMEM_VMM_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gmem.h>

#define MIG_MAGIC "GMEMMIG\n"
#define MIG_VERSION 1

enum mig_type {
	MIG_HELLO = 1, /* source: the machine (a SEC_CONFIG section) */
	MIG_MEMORY,    /* source: one gmem file follows the frame (a full save, or a layer) */
	MIG_STATE,     /* source: the VMM's state (sections), the VM paused */
	MIG_READY,     /* destination: the machine is made, waiting for MIG_GO */
	MIG_GO,        /* source: it will not run the VM again; the destination does */
	MIG_POSTCOPY,  /* source: one gmem post-copy file follows the frame (its pages come apart) */
	MIG_PAGES,     /* source: records of pages the post-copy file named (gmem_postcopy_send()) */
	MIG_FETCH,     /* destination: send these pages first (struct mig_fetch) */
	MIG_DONE,      /* destination: it needs no more pages (all came, or the VM ended) */
	MIG_TYPES
};

/* Every frame: this, then len bytes of payload. */
struct mig_frame {
	char magic[8];
	uint32_t version, type;
	uint64_t session;      /* random, the same in every frame of one migration */
	uint64_t seq;          /* frames sent before this one, in its direction */
	uint64_t len;          /* payload bytes (MIG_MEMORY: 0, gmem's stream delimits itself) */
	uint64_t payload_hash; /* XXH3-64 of the payload, seeded with session */
	uint64_t hash;         /* XXH3-64 of the frame up to here */
};

/* MIG_FETCH's payload: a byte range of guest memory, little-endian. */
struct mig_fetch {
	uint64_t offset, len;
};

/* Payloads larger than this are refused: a temporary disk's data is the most. */
#define MIG_STATE_MAX (256ULL << 20)
#define MIG_HELLO_MAX 4096

struct mig_watch;

struct mig_conn {
	int fd;
	uint64_t session, seq_out, seq_in;
	char addr[128]; /* as given: tcp:HOST:PORT */
	struct mig_watch *watch; /* mig_watch_start()'s, or NULL */
};

/* Whether addr is tcp:HOST:PORT with a HOST that resolves: 0, or -errno with why in msg. */
int mig_check_addr(const char *addr, char *msg, size_t msg_len);

/*
 * Destination: listen on addr (tcp:HOST:PORT), then take one connection
 * within timeout_s seconds (0: for ever).  0, or -errno with why in msg.
 */
int mig_listen(const char *addr, int *lfd, char *msg, size_t msg_len);
int mig_accept(int lfd, unsigned int timeout_s, struct mig_conn *c, char *msg, size_t msg_len);

/* Source: connect to addr, retrying a refused connection for timeout_s seconds. */
int mig_connect(const char *addr, unsigned int timeout_s, struct mig_conn *c, char *msg,
		size_t msg_len);

void mig_close(struct mig_conn *c);

/* A frame and its payload: 0 or -errno. */
int mig_send(struct mig_conn *c, uint32_t type, const void *payload, uint64_t len);

/*
 * A MIG_MEMORY frame (MIG_POSTCOPY with GMEM_SAVE_POSTCOPY), then
 * gmem_save(g, c->fd, flags): 0 or -errno.
 */
int mig_send_memory(struct mig_conn *c, struct gmem *g, unsigned int flags);

/*
 * The next frame: its type, and its payload (malloc()ed, at most max
 * bytes; the caller frees it) - 0; -EBADMSG for a frame that does not
 * check (garbage, another session's, out of order, too long), -EPIPE
 * for a peer that went away, -errno else; timeout_s bounds the wait
 * (0: for ever; -ETIMEDOUT).
 */
int mig_recv(struct mig_conn *c, unsigned int timeout_s, uint64_t max, uint32_t *type,
	     char **payload, uint64_t *len);

/* Bound every later read and write on c to timeout_s seconds (0: none). */
void mig_set_timeout(struct mig_conn *c, unsigned int timeout_s);

/*
 * A watch on c: a peer that moves less than MIG_STALL_BYTES either way in
 * MIG_STALL_S seconds (one that trickles, or does not read), or - once
 * mig_watch_deadline() set one - an operation not done by its deadline,
 * has the connection shut down, so that every call blocked on it returns
 * an error.  mig_stalled() then says why (NULL while it has not fired).
 * mig_close() stops it.  0, or -errno.
 */
#define MIG_STALL_S 30
#define MIG_STALL_BYTES (64 * 1024)
int mig_watch_start(struct mig_conn *c);
void mig_watch_deadline(struct mig_conn *c, unsigned int seconds); /* 0: none */
const char *mig_stalled(const struct mig_conn *c);

#endif /* GMEM_VMM_MIGRATE_H */
