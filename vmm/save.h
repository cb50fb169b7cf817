/* SPDX-License-Identifier: MIT */
/*
 * save.h - checkpoints of a running VM (--save) and a VM made again from
 * one (--restore): what of the VMM goes into a snapshot, and back.
 */
#ifndef GMEM_VMM_SAVE_H
#define GMEM_VMM_SAVE_H

#include <limits.h>

#include "snapshot.h"
#include "snoop.h"
#include "virtio_blk.h"

struct snap_run {
	struct vm *vm;
	struct vblk_dev *blk;
	bool demo, snoop;  /* the built-in demo; a snoop thread runs */
	const char *disk;  /* the disk image's path; NULL: a temporary one, saved in the file */

	/* --save */
	const char *save; /* FILE, or NULL */
	bool dirty, cont; /* --save-dirty: FILE, then layers FILE.1, ...; --save-continue */
	uint64_t seq, last_id;
	unsigned int saves;
	uint64_t bytes;            /* the last checkpoint's file */
	double pause_ms, write_ms; /* the last checkpoint: vCPUs paused; the file written */
	char last[PATH_MAX + 32];  /* its path */

	/*
	 * What was counted before this process (a restore) or before the
	 * snoop's last restart (a save that went on): the run's totals add
	 * them.  run_start: when the guest started here (CLOCK_MONOTONIC s).
	 */
	double run_base, run_start;
	int restored_halted; /* vCPUs the restore found halted (they stay so) */
	struct snoop_stats snoop_base;
	struct gmem_stats gm_base;
};

/*
 * Still the VM for a checkpoint or a migration's last round: every vCPU
 * parked, the disk's requests drained, the snoop stopped (its counts kept).
 * -ECANCELED if the VM ended first.  snap_resume() lets it run on: 0, or
 * -errno with why in msg (the snoop did not start again; the VM runs).
 */
int snap_pause(struct snap_run *s);
int snap_resume(struct snap_run *s, char *msg, size_t msg_len);

/* The machine's configuration, as a SEC_CONFIG section: 0, or -errno with why in msg. */
int snap_config(struct snap_run *s, struct sbuf *b, char *msg, size_t msg_len);

/* Everything of the VMM's, into sections (snap_pause()d): 0, or -errno with why in msg. */
int snap_state(struct snap_run *s, struct sbuf *b, char *msg, size_t msg_len);

/*
 * Take a checkpoint: pause the vCPUs, drain the disk, write the next file
 * of the run (FILE, or FILE.N with --save-dirty), and - unless `final` -
 * let the VM run on.  0; -ECANCELED if the VM ended before it paused
 * (nothing written); another -errno with why in msg (nothing written, and
 * the VM runs on unless final).
 */
int snap_checkpoint(struct snap_run *s, bool final, char *msg, size_t msg_len);

/*
 * A restored VM's machine, once its memory, vCPUs and disk exist: the
 * temporary disk's contents, the device, every vCPU's state, the counters.
 * 0, or -errno with why in msg.
 */
int snap_restore_machine(struct snap_run *s, const struct snapv_in *in, char *msg,
			 size_t msg_len);

/* The VMM sections' checks that need the machine: its memory map matches the snapshot's. */
int snap_check_map(const struct vm *vm, const struct snapv_in *in, char *msg, size_t msg_len);

#endif /* GMEM_VMM_SAVE_H */
