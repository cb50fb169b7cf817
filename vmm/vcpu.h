/* SPDX-License-Identifier: MIT */
/*
 * vcpu.h - running vCPUs and ending the VM.
 */
#ifndef GMEM_VMM_VCPU_H
#define GMEM_VMM_VCPU_H

#include <time.h>

#include "vm.h"

/* The VM's end, not yet come: 0 or -errno. */
int vm_end_init(struct vm *vm);
void vm_end_fini(struct vm *vm);
/* Start one thread per vCPU; they run until the VM ends. */
int vcpus_start(struct vm *vm);
/* Wait for the VM to end (or for timeout_s, 0 = none: then it ends with 124). */
void vm_wait(struct vm *vm, unsigned int timeout_s);
/*
 * Wait for the VM to end until deadline (CLOCK_MONOTONIC; NULL: no end):
 * true if it has ended.
 */
bool vm_wait_until(struct vm *vm, const struct timespec *deadline);
void vcpus_join(struct vm *vm);
/*
 * Stop every vCPU at an instruction boundary, its last exit completed
 * (KVM_RUN re-entered with immediate_exit), so that its state can be read
 * and set: 0 once every vCPU is parked or halted, -ECANCELED if the VM
 * ended first (the vCPUs are then on their way out).  vcpus_resume() lets
 * them run on.  From one thread, not a vCPU's.
 */
int vcpus_pause(struct vm *vm);
void vcpus_resume(struct vm *vm);

/* hypercall.c: the conversion hypercall, for the vCPU that made it */
void hypercall(struct vcpu *v);
long map_gpa_range(struct vm *vm, uint64_t gpa, uint64_t npages, uint64_t attrs);

#endif /* GMEM_VMM_VCPU_H */
