/* SPDX-License-Identifier: MIT */
/*
 * snapshot.h - gmem-vmm's snapshots: the container (docs/SNAPSHOT.md,
 * "gmem-vmm snapshots") - a header, the VMM's state in checksummed
 * sections, then gmem's memory stream to the end of the file - and the
 * pieces that fill and read it.
 */
#ifndef GMEM_VMM_SNAPSHOT_H
#define GMEM_VMM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm.h"

#define SNAPV_MAGIC "GMEMVMM\n"
#define SNAPV_VERSION 1

enum { SNAPV_FULL = 1, SNAPV_LAYER = 2 };

struct snapv_header {
	char magic[8];
	uint32_t version, kind;   /* SNAPV_FULL: memory saved whole; SNAPV_LAYER: a gmem layer */
	uint64_t id;              /* random, never 0 */
	uint64_t parent;          /* a layer: the id of the checkpoint it follows; else 0 */
	uint64_t seq;             /* 0 for a full one, N for FILE.N */
	uint64_t state_len;       /* bytes of sections after the header */
	uint64_t state_hash;      /* XXH3-64 of those bytes, seeded with id */
	uint64_t memory_offset;   /* where gmem's stream begins (the header and sections end) */
	uint64_t reserved[2];     /* zero */
	uint64_t hash;            /* XXH3-64 of the header up to here */
};

/* Every section: this, then len bytes, then zeros up to a multiple of 8. */
struct snapv_section {
	uint32_t type, index; /* index: the vCPU's, the region's, ...; 0 if one of a kind */
	uint64_t len;
};

enum snapv_type {
	SEC_CONFIG = 1, /* struct snapv_config */
	SEC_REGION,     /* struct snapv_region, one per region of the GPA map */
	SEC_DISK_PATH,  /* the disk image's absolute path (no NUL); absent for a temporary disk */
	SEC_DISK_DATA,  /* a temporary disk's contents: u64 offset, then bytes; one per extent */
	SEC_VIRTIO_BLK, /* struct snapv_vblk */
	SEC_COUNTERS,   /* struct snapv_counters */
	SEC_VCPU,       /* struct snapv_vcpu: begins vCPU `index`'s sections */
	SEC_REGS,       /* struct kvm_regs */
	SEC_SREGS,      /* struct kvm_sregs */
	SEC_FPU,        /* struct kvm_fpu (where KVM has no xsave) */
	SEC_XSAVE,      /* KVM_GET_XSAVE2's bytes (KVM_CAP_XSAVE2's size; 4 KiB: KVM_GET_XSAVE) */
	SEC_XCRS,       /* struct kvm_xcrs */
	SEC_MSRS,       /* struct kvm_msr_entry[]: every MSR of KVM_GET_MSR_INDEX_LIST it could read */
	SEC_EVENTS,     /* struct kvm_vcpu_events */
	SEC_MP_STATE,   /* struct kvm_mp_state */
	SEC_DEBUGREGS,  /* struct kvm_debugregs */
	SEC_TYPES
};

#define CFG_INIT_PRIVATE (1u << 0)
#define CFG_COPY_IO (1u << 1)
#define CFG_DEMO (1u << 2)  /* the built-in demo: its snoop, summary and checks on restore */
#define CFG_SNOOP (1u << 3)

struct snapv_config {
	uint64_t ram_size;
	uint32_t ncpus, backing; /* backing: GMEM_BACKING_* */
	uint32_t flags;          /* CFG_* */
	int32_t fault_signal;    /* SIGBUS or SIGSEGV */
	uint64_t disk_sectors;   /* the disk's capacity */
	uint64_t disk_gpa;       /* where virtio-blk's registers are */
	uint64_t irqchip;        /* 0: no in-kernel irqchip (so no LAPIC state) */
};

struct snapv_region {
	uint64_t gpa, size, offset;
	uint32_t kind, slot; /* enum region_kind; RAM: its memslot */
};

struct snapv_vcpu {
	uint32_t halted; /* it executed hlt: never runs again */
	uint32_t pad;
};

/* virtio-mmio's registers and the queue, after the device drained its requests. */
struct snapv_vblk {
	uint32_t status, dev_features_sel, drv_features_sel, queue_sel, interrupt_status;
	uint32_t num, ready;
	uint16_t last_avail, used_idx;
	uint64_t driver_features, desc_gpa, avail_gpa, used_gpa;
	uint64_t blk[6]; /* struct vblk_stats so far */
};

/* What the run had counted, so that the restored run's summary is the whole run's. */
struct snapv_counters {
	uint64_t vm[8];       /* struct vm_counters, in order */
	int64_t dirty_rounds; /* port 0x502 */
	uint64_t run_ns;      /* the guest's run time so far */
	uint64_t snoop[8];    /* struct snoop_stats */
	uint64_t gmem[32];    /* struct gmem_stats */
};

/* A growing buffer of sections; `oom` once an append failed (then nothing is appended). */
struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

void sbuf_section(struct sbuf *b, uint32_t type, uint32_t index, const void *p, uint64_t len);
/* A section whose payload is two pieces (a head and a body), as SEC_DISK_DATA is. */
void sbuf_section2(struct sbuf *b, uint32_t type, uint32_t index, const void *head,
		   uint64_t head_len, const void *body, uint64_t body_len);
void sbuf_free(struct sbuf *b);

/* A snapshot's sections, read and checked: where each is in `buf`. */
struct snapv_in {
	struct snapv_header h;
	char *buf;
	size_t len;
	/* the memory: a descriptor positioned at gmem's stream (a chain: joined in a file) */
	int mem_fd;
	uint64_t mem_bytes;
	char path[4096];
};

/*
 * Find section (type, index): its payload and length, or NULL.  A section
 * of a vCPU's (SEC_REGS..SEC_DEBUGREGS) is looked up by the vCPU's index.
 */
const void *snapv_find(const struct snapv_in *in, uint32_t type, uint32_t index, uint64_t *len);
/* The n-th section of a type (SEC_REGION, SEC_DISK_DATA), in file order, or NULL. */
const void *snapv_nth(const struct snapv_in *in, uint32_t type, unsigned int n, uint32_t *index,
		      uint64_t *len);

/*
 * Open the snapshot at path and check it whole: header, sections, and for
 * a layer (FILE.N) the chain FILE, FILE.1 .. FILE.N beside it.  0, or
 * -errno with one line of why in msg (-EBADMSG: not a snapshot, damaged).
 * The memory is not read: gmem_restore() does, from in->mem_fd.
 */
int snapv_open(const char *path, struct snapv_in *in, char *msg, size_t msg_len);
void snapv_close(struct snapv_in *in);
/*
 * Sections that came another way (a migration's frames): in takes buf
 * (malloc()ed, freed by snapv_close() even on error); label names them in
 * messages.  0, or -EBADMSG if they do not parse.
 */
int snapv_adopt(struct snapv_in *in, char *buf, size_t len, const char *label);

/*
 * Write a checkpoint to path (through path.tmp, renamed when whole): the
 * header, the sections in state, then gmem_save(g, flags) - with
 * GMEM_SAVE_PAUSED: the caller has paused every writer of g.  kind, parent
 * and seq as the header says; *id gets the new one.  `progress`: show
 * progress on stderr if it takes more than a second (a terminal only).
 * 0, or -errno with why in msg; nothing is left at path on failure.
 * *bytes: the file's size.
 */
int snapv_write(const char *path, const struct sbuf *state, struct gmem *g, uint32_t kind,
		uint64_t parent, uint64_t seq, uint64_t *id, uint64_t *bytes, char *msg,
		size_t msg_len);

/*
 * Progress of a long copy on stderr: the position of fd against total
 * bytes, once a second has passed, then every 250 ms; nothing when stderr
 * is not a terminal.
 */
struct progress;
struct progress *progress_start(const char *what, int fd, uint64_t base, uint64_t total);
void progress_stop(struct progress *p);

/* cpustate.c: vCPU v's state as KVM holds it (parked: vcpus_pause()), as sections. */
int cpu_state_save(struct vm *vm, struct vcpu *v, struct sbuf *b);
/* Set vCPU v (just created) to the state saved for it: 0, or -errno with why in msg. */
int cpu_state_restore(struct vm *vm, struct vcpu *v, const struct snapv_in *in, char *msg,
		      size_t msg_len);

#endif /* GMEM_VMM_SNAPSHOT_H */
