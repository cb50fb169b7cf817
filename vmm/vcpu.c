// SPDX-License-Identifier: MIT
/*
 * vcpu.c - the vCPU threads: one KVM_RUN loop each, one switch over the
 * exit reason, and the VM's end.
 *
 * The VM ends once: when a vCPU writes its status to port 0x501, when the
 * VMM meets an error it cannot hand back to the guest (a triple fault, an
 * exit it does not know), or on the timeout.  Ending kicks every vCPU out
 * of KVM_RUN: immediate_exit for one about to enter, a signal for one in;
 * and every device cancels the work queued behind what is in progress, so
 * that how much the guest queued does not decide how long the end takes.
 *
 * A pause (for a snapshot) kicks them the same way; each parks once KVM_RUN
 * returns -EINTR: that KVM_RUN, entered with immediate_exit, completed the
 * exit before it (the port read's data, the hypercall's RAX), so the state
 * KVM then holds is whole.  SIGUSR1 and SIGUSR2 are the user's (gmem-vmm
 * --save, --migrate-to): the kick is a real-time signal.
 */
#define _GNU_SOURCE
#include "vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "device.h"

#define SIG_KICK (SIGRTMIN + 1)

static pthread_mutex_t console_mu = PTHREAD_MUTEX_INITIALIZER;

static void console_write(const uint8_t *p, size_t n)
{
	pthread_mutex_lock(&console_mu);
	for (size_t i = 0; i < n; i++) {
		putchar(p[i]);
		if (p[i] == '\n')
			fflush(stdout);
	}
	pthread_mutex_unlock(&console_mu);
}

int vm_end_init(struct vm *vm)
{
	pthread_condattr_t ca; /* vm_wait() counts its deadline on CLOCK_MONOTONIC */
	int err = pthread_mutex_init(&vm->end_mu, NULL);

	if (err)
		return -err;
	err = pthread_condattr_init(&ca);
	if (err)
		goto err_mu;
	err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(&vm->end_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (err)
		goto err_mu;
	return 0;

err_mu:
	pthread_mutex_destroy(&vm->end_mu);
	return -err;
}

void vm_end_fini(struct vm *vm)
{
	pthread_cond_destroy(&vm->end_cv);
	pthread_mutex_destroy(&vm->end_mu);
}

void vm_end(struct vm *vm, int status, const char *fmt, ...)
{
	pthread_mutex_lock(&vm->end_mu);
	if (!vm->ended) {
		vm->ended = true;
		vm->exit_status = status;
		if (fmt) {
			va_list ap;

			va_start(ap, fmt);
			vsnprintf(vm->error, sizeof(vm->error), fmt, ap);
			va_end(ap);
		}
	}
	atomic_store(&vm->stopping, true);
	for (int i = 0; i < vm->ncpus; i++) {
		if (!vm->vcpus[i].thread)
			continue;
		vm->vcpus[i].run->immediate_exit = 1;
		pthread_kill(vm->vcpus[i].thread, SIG_KICK);
	}
	pthread_cond_broadcast(&vm->end_cv);
	pthread_mutex_unlock(&vm->end_mu);
	vm_devices_cancel(vm);
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	size_t bytes = (size_t)run->io.size * run->io.count;

	if (run->io.direction == KVM_EXIT_IO_IN) {
		memset(data, 0xff, bytes);
		if (run->io.port == PORT_SERIAL_LSR)
			memset(data, 0x60, bytes); /* transmitter empty: always ready */
		if (run->io.port == PORT_DIRTY_ROUNDS && run->io.count == 1) {
			int64_t rounds = atomic_load(&v->vm->dirty_rounds);
			uint32_t n = (uint32_t)rounds;

			if (rounds >= 0)
				memcpy(data, &n, run->io.size < sizeof(n) ? run->io.size : sizeof(n));
		}
		if (run->io.port == PORT_MOVED && run->io.count == 1) {
			uint32_t moved = v->vm->moved;

			memcpy(data, &moved, run->io.size < sizeof(moved) ? run->io.size : sizeof(moved));
		}
		return;
	}
	switch (run->io.port) {
	case PORT_SERIAL:
		console_write(data, bytes);
		break;
	case PORT_EXIT:
		vm_end(v->vm, data[0], NULL);
		break;
	case PORT_HYPERCALL:
		hypercall(v);
		break;
	case PORT_IDLE: {
		/* a kick (a pause, the end) cuts it short: KVM_RUN then exits at once */
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);
		break;
	}
	default:
		break; /* nothing there: writes are dropped, as on real hardware */
	}
}

static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	const struct region *r = gpa_classify(&v->vm->map, run->mmio.phys_addr);
	unsigned int len = run->mmio.len;
	uint64_t val = 0;

	if (!r || r->kind != REGION_MMIO || (len != 1 && len != 2 && len != 4 && len != 8)) {
		/* nothing claims it: reads float high, writes vanish */
		atomic_fetch_add(&v->vm->n.mmio_unclaimed, 1);
		if (!run->mmio.is_write)
			memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
		return;
	}
	if (run->mmio.is_write) {
		memcpy(&val, run->mmio.data, len);
		r->ops->write(r->dev, run->mmio.phys_addr - r->gpa, len, val);
	} else {
		val = r->ops->read(r->dev, run->mmio.phys_addr - r->gpa, len);
		memcpy(run->mmio.data, &val, len);
	}
}

static void wait_for_end(struct vm *vm)
{
	pthread_mutex_lock(&vm->end_mu);
	while (!vm->ended)
		pthread_cond_wait(&vm->end_cv, &vm->end_mu);
	pthread_mutex_unlock(&vm->end_mu);
}

/* Out of KVM_RUN on a kick: park while the VM is paused. */
static void park(struct vcpu *v)
{
	struct vm *vm = v->vm;

	pthread_mutex_lock(&vm->end_mu);
	if (vm->pausing && !vm->ended) {
		vm->parked++;
		pthread_cond_broadcast(&vm->end_cv);
		while (vm->pausing && !vm->ended)
			pthread_cond_wait(&vm->end_cv, &vm->end_mu);
		vm->parked--;
		if (!vm->ended)
			v->run->immediate_exit = 0;
	}
	pthread_mutex_unlock(&vm->end_mu);
}

static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;

	if (v->halted) { /* restored halted: done before this run began */
		wait_for_end(vm);
		return NULL;
	}
	while (!atomic_load(&vm->stopping)) {
		struct kvm_run *run = v->run;

		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				park(v);
				continue;
			}
			vm_end(vm, 1, "vCPU %d: KVM_RUN: %s", v->index, strerror(errno));
			break;
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(v);
			break;
		case KVM_EXIT_MMIO:
			handle_mmio(v);
			break;
		case KVM_EXIT_HYPERCALL: /* vmcall, where KVM hands it over */
			atomic_fetch_add(&vm->n.hypercalls, 1);
			run->hypercall.ret = run->hypercall.nr == HC_MAP_GPA_RANGE
						     ? (uint64_t)map_gpa_range(vm, run->hypercall.args[0],
									       run->hypercall.args[1],
									       run->hypercall.args[2])
						     : (uint64_t)-ENOSYS;
			break;
		case KVM_EXIT_HLT:
			/* interrupts are off: a halted vCPU is done */
			pthread_mutex_lock(&vm->end_mu);
			v->halted = true;
			pthread_cond_broadcast(&vm->end_cv); /* a pause counts it */
			pthread_mutex_unlock(&vm->end_mu);
			if (atomic_fetch_add(&vm->halted, 1) + 1 == vm->ncpus)
				vm_end(vm, 1, "every vCPU halted without writing an exit status to port %#x",
				       PORT_EXIT);
			wait_for_end(vm);
			return NULL;
		case KVM_EXIT_SHUTDOWN:
			vm_end(vm, 1, "guest triple fault on vCPU %d at rip %#llx", v->index,
			       (unsigned long long)(v->sync_regs ? run->s.regs.regs.rip : 0));
			break;
		case KVM_EXIT_FAIL_ENTRY:
			vm_end(vm, 1, "vCPU %d failed to enter the guest (reason %#llx)", v->index,
			       (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			vm_end(vm, 1, "vCPU %d: KVM internal error %u", v->index, run->internal.suberror);
			break;
		default:
			vm_end(vm, 1, "vCPU %d: unhandled exit reason %u", v->index, run->exit_reason);
			break;
		}
	}
	return NULL;
}

static void on_kick(int sig)
{
	(void)sig; /* only to make KVM_RUN return -EINTR */
}

int vcpus_start(struct vm *vm)
{
	struct sigaction sa = { .sa_handler = on_kick }; /* no SA_RESTART */

	sigemptyset(&sa.sa_mask);
	sigaction(SIG_KICK, &sa, NULL);
	for (int i = 0; i < vm->ncpus; i++) {
		int err = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_main, &vm->vcpus[i]);

		if (err) {
			vm_end(vm, 1, "cannot start vCPU %d: %s", i, strerror(err));
			return -err;
		}
	}
	return 0;
}

bool vm_wait_until(struct vm *vm, const struct timespec *deadline)
{
	bool ended;

	pthread_mutex_lock(&vm->end_mu);
	while (!vm->ended) {
		if (!deadline)
			pthread_cond_wait(&vm->end_cv, &vm->end_mu);
		else if (pthread_cond_timedwait(&vm->end_cv, &vm->end_mu, deadline) == ETIMEDOUT)
			break;
	}
	ended = vm->ended;
	pthread_mutex_unlock(&vm->end_mu);
	return ended;
}

void vm_wait(struct vm *vm, unsigned int timeout_s)
{
	struct timespec deadline;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_s;
	if (!vm_wait_until(vm, timeout_s ? &deadline : NULL))
		vm_end(vm, 124, "timed out after %u s", timeout_s);
}

int vcpus_pause(struct vm *vm)
{
	int err = 0;

	pthread_mutex_lock(&vm->end_mu);
	vm->pausing = true;
	for (int i = 0; i < vm->ncpus && !vm->ended; i++) {
		if (!vm->vcpus[i].thread || vm->vcpus[i].halted)
			continue;
		vm->vcpus[i].run->immediate_exit = 1;
		pthread_kill(vm->vcpus[i].thread, SIG_KICK);
	}
	for (;;) {
		int done = vm->parked;

		for (int i = 0; i < vm->ncpus; i++)
			done += vm->vcpus[i].halted;
		if (vm->ended) {
			err = -ECANCELED;
			break;
		}
		if (done == vm->ncpus)
			break;
		pthread_cond_wait(&vm->end_cv, &vm->end_mu);
	}
	if (err)
		vm->pausing = false;
	pthread_mutex_unlock(&vm->end_mu);
	return err;
}

void vcpus_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->end_mu);
	vm->pausing = false;
	pthread_cond_broadcast(&vm->end_cv);
	pthread_mutex_unlock(&vm->end_mu);
}

void vcpus_join(struct vm *vm)
{
	for (int i = 0; i < vm->ncpus; i++)
		if (vm->vcpus[i].thread)
			pthread_join(vm->vcpus[i].thread, NULL);
}
