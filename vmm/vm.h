/* SPDX-License-Identifier: MIT */
/*
 * vm.h - gmem-vmm's machine: the VM, its vCPUs, memory map and devices.
 *
 * Guest memory is one gmem object; the VMM reaches it only through host
 * views or the library's copies (never the guest mapping, which is KVM's)
 * and only for RAM that gpa.c has classified.
 */
#ifndef GMEM_VMM_VM_H
#define GMEM_VMM_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gmem.h"
#include "layout.h"

#define MAX_VCPUS 64
#define MAX_REGIONS 4

enum region_kind { REGION_RAM, REGION_MMIO };

struct mmio_ops {
	/* Access at `off` within the region; len is 1, 2, 4 or 8. */
	uint64_t (*read)(void *dev, uint64_t off, unsigned int len);
	void (*write)(void *dev, uint64_t off, unsigned int len, uint64_t val);
};

struct region {
	uint64_t gpa, size;
	enum region_kind kind;
	uint64_t offset;            /* RAM: where it starts in the gmem object */
	uint32_t slot;              /* RAM: its KVM memslot (kvm_map_ram()) */
	const struct mmio_ops *ops; /* MMIO */
	void *dev;
};

struct gpa_map {
	struct region r[MAX_REGIONS];
	int n;
};

struct vcpu {
	struct vm *vm;
	int index, fd;
	struct kvm_run *run;
	pthread_t thread;
	bool sync_regs; /* registers travel in kvm_run (KVM_CAP_SYNC_REGS) */
	/*
	 * It executed hlt (interrupts are off): done, its thread waits for the
	 * VM's end.  A snapshot keeps it, and a restored vCPU so marked never
	 * runs again (its rip is past the hlt).
	 */
	bool halted;
};

struct vm_counters {
	_Atomic uint64_t hypercalls, hc_to_private, hc_to_shared, hc_pages, hc_eagain, hc_einval,
		hc_other_errors, mmio_unclaimed;
};

struct vm {
	/* configuration */
	uint64_t ram_size;
	int ncpus;
	bool init_private;
	int fault_signal;
	uint32_t backing;         /* GMEM_BACKING_* */
	const char *backing_name; /* as --backing names it */
	/*
	 * How devices reach guest memory.  false: through dev_view, at the
	 * addresses gpa_pin() returns (zero-copy).  true: gpa_read() and
	 * gpa_write() into the VMM's own buffers, and dev_view is NULL - on
	 * hugetlbfs, where a view refuses a whole huge page as soon as one of
	 * its 4 KiB pieces is private, and the guest keeps private pages next
	 * to its rings and buffers.
	 */
	bool copy_io;

	int kvm_fd, vm_fd;
	size_t run_size;
	struct gmem *mem;
	char *dev_view; /* a host view of all RAM for the devices (NULL with copy_io) */
	struct gpa_map map;
	struct vcpu vcpus[MAX_VCPUS];
	struct vm_device *devices; /* device.h: the hooks generic code calls */
	struct snoop *snoop;
	/*
	 * Dirty-tracking rounds collected so far, which the guest reads from
	 * port PORT_DIRTY_ROUNDS; -1 while nothing is tracked.
	 */
	_Atomic int64_t dirty_rounds;
	bool moved; /* came from a snapshot or a migration (port PORT_MOVED); set before the vCPUs start */

	/* ending */
	pthread_mutex_t end_mu;
	pthread_cond_t end_cv;
	bool ended;       /* under end_mu */
	int exit_status;  /* under end_mu */
	char error[256];  /* under end_mu: set when the VMM ends it on an error */
	_Atomic bool stopping;
	_Atomic int halted;
	/*
	 * vcpus_pause(): while `pausing`, each vCPU that leaves KVM_RUN parks
	 * (counted in `parked`) until vcpus_resume().  Both under end_mu.
	 */
	bool pausing;
	int parked;

	struct vm_counters n;
};

/*
 * gpa.c: the guest-physical address map, and the only way to turn a GPA
 * into memory.  The map changes only while no vCPU runs: gpa_classify()'s
 * answer points into it, unlocked.
 */
void gpa_map_init(struct gpa_map *m, uint64_t ram_size);
int gpa_map_add_mmio(struct gpa_map *m, uint64_t gpa, uint64_t size, const struct mmio_ops *ops,
		     void *dev);
/* Take out the MMIO region placed at gpa: 0, or -ENOENT if there is none. */
int gpa_map_remove_mmio(struct gpa_map *m, uint64_t gpa);
const struct region *gpa_classify(const struct gpa_map *m, uint64_t gpa);
int gpa_ram_offset(const struct gpa_map *m, uint64_t gpa, uint64_t len, uint64_t *offset);

struct gpa_pin {
	uint64_t offset, len; /* the pinned pages of the gmem object */
	bool longterm;
};
/*
 * Pin the pages of RAM [gpa, gpa + len): 0, or -EFAULT (not RAM), -EACCES
 * (a page is private), -EAGAIN (in transit).  *host: where the range is in
 * dev_view; NULL with copy_io, where devices copy instead (below).
 */
int gpa_pin(struct vm *vm, uint64_t gpa, uint64_t len, bool longterm, struct gpa_pin *pin,
	    void **host);
void gpa_unpin(struct vm *vm, struct gpa_pin *pin);
/*
 * Copy between buf and RAM [gpa, gpa + len) with gmem_read()/gmem_write(),
 * all or nothing: 0; -EFAULT when the range is not all in one RAM region
 * (MMIO, a hole, past the end); -EACCES when a page of it is not shared;
 * another -errno from the library.  Safe on any page, pinned or not: the
 * library refuses a private one instead of faulting.  len 0 does nothing.
 */
int gpa_read(struct vm *vm, uint64_t gpa, void *buf, uint64_t len);
int gpa_write(struct vm *vm, uint64_t gpa, const void *buf, uint64_t len);

/* vcpu.c */
void vm_end(struct vm *vm, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* GMEM_VMM_VM_H */
