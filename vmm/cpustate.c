// SPDX-License-Identifier: MIT
/*
 * cpustate.c - a vCPU's state, as KVM holds it, out to snapshot sections
 * and back into a new vCPU.
 *
 * What these guests need to resume: the general and segment registers,
 * the FPU/SSE/AVX state (xsave, sized by KVM_CAP_XSAVE2, or the legacy FPU
 * block where KVM has no xsave), XCR0, every MSR KVM lists as saveable
 * (KVM_GET_MSR_INDEX_LIST: EFER, the syscall MSRs, the TSC, PAT, ...),
 * pending events, the MP state and the debug registers.  gmem-vmm makes no
 * in-kernel irqchip (no interrupts at all), so there is no LAPIC to save.
 *
 * The order back follows KVM's API document: sregs (the mode) before regs,
 * XCR0 before the xsave area it governs, MSRs, then the MP state, and the
 * pending events last, since setting the others may clear them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "snapshot.h"

/* KVM_GET_MSR_INDEX_LIST, asked once (the list is KVM's, not the vCPU's). */
static struct kvm_msr_list *msr_list(int kvm_fd)
{
	static struct kvm_msr_list *list;
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct kvm_msr_list probe = { .nmsrs = 0 };

	pthread_mutex_lock(&mu);
	if (!list && ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) && errno == E2BIG) {
		list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
		if (list) {
			list->nmsrs = probe.nmsrs;
			if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list)) {
				free(list);
				list = NULL;
			}
		}
	}
	pthread_mutex_unlock(&mu);
	return list;
}

static struct kvm_msrs *msrs_alloc(uint32_t n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));

	if (m)
		m->nmsrs = n;
	return m;
}

/*
 * KVM_GET_MSRS and KVM_SET_MSRS stop at the first MSR they cannot do and
 * return how many they did: go on past it.  Returns how many were done;
 * done ones are moved to the front of m->entries.
 */
static uint32_t msrs_each(int fd, unsigned long req, struct kvm_msrs *m)
{
	uint32_t n = m->nmsrs, done = 0;
	struct kvm_msrs *one = msrs_alloc(n);

	if (!one)
		return 0;
	for (uint32_t i = 0; i < n;) {
		int r;

		one->nmsrs = n - i;
		memcpy(one->entries, &m->entries[i], (n - i) * sizeof(m->entries[0]));
		r = ioctl(fd, req, one);
		if (r < 0)
			break;
		memmove(&m->entries[done], one->entries, (size_t)r * sizeof(m->entries[0]));
		done += (uint32_t)r;
		i += (uint32_t)r + 1; /* past the one that failed (or the end) */
	}
	free(one);
	m->nmsrs = done;
	return done;
}

/* The xsave area's size: KVM_CAP_XSAVE2 (with AMX and the like, > 4 KiB), else 4 KiB, else 0. */
static size_t xsave_size(struct vm *vm)
{
	int n = ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	if (n > 0)
		return (size_t)n;
	return ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0 ? sizeof(struct kvm_xsave) : 0;
}

int cpu_state_save(struct vm *vm, struct vcpu *v, struct sbuf *b)
{
	const uint32_t i = (uint32_t)v->index;
	struct snapv_vcpu head = { .halted = v->halted };
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_debugregs dbg;
	struct kvm_msr_list *list = msr_list(vm->kvm_fd);
	struct kvm_msrs *msrs;
	size_t xs = xsave_size(vm);

	sbuf_section(b, SEC_VCPU, i, &head, sizeof(head));
	if (ioctl(v->fd, KVM_GET_REGS, &regs) || ioctl(v->fd, KVM_GET_SREGS, &sregs))
		return -errno;
	sbuf_section(b, SEC_REGS, i, &regs, sizeof(regs));
	sbuf_section(b, SEC_SREGS, i, &sregs, sizeof(sregs));
	if (xs) {
		struct kvm_xsave *x = calloc(1, xs);

		if (!x)
			return -ENOMEM;
		if (ioctl(v->fd, xs > sizeof(*x) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, x)) {
			free(x);
			return -errno;
		}
		sbuf_section(b, SEC_XSAVE, i, x, xs);
		free(x);
	} else {
		if (ioctl(v->fd, KVM_GET_FPU, &fpu))
			return -errno;
		sbuf_section(b, SEC_FPU, i, &fpu, sizeof(fpu));
	}
	if (ioctl(vm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0) {
		if (ioctl(v->fd, KVM_GET_XCRS, &xcrs))
			return -errno;
		sbuf_section(b, SEC_XCRS, i, &xcrs, sizeof(xcrs));
	}
	if (!list)
		return -EIO;
	msrs = msrs_alloc(list->nmsrs);
	if (!msrs)
		return -ENOMEM;
	for (uint32_t k = 0; k < list->nmsrs; k++)
		msrs->entries[k].index = list->indices[k];
	msrs_each(v->fd, KVM_GET_MSRS, msrs);
	sbuf_section(b, SEC_MSRS, i, msrs->entries, msrs->nmsrs * sizeof(msrs->entries[0]));
	free(msrs);
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &events) || ioctl(v->fd, KVM_GET_MP_STATE, &mp) ||
	    ioctl(v->fd, KVM_GET_DEBUGREGS, &dbg))
		return -errno;
	sbuf_section(b, SEC_EVENTS, i, &events, sizeof(events));
	sbuf_section(b, SEC_MP_STATE, i, &mp, sizeof(mp));
	sbuf_section(b, SEC_DEBUGREGS, i, &dbg, sizeof(dbg));
	return b->oom ? -ENOMEM : 0;
}

/* Section (type, v) of exactly len bytes, or NULL with why in msg. */
static const void *need(const struct snapv_in *in, uint32_t type, int v, uint64_t len,
			const char *what, char *msg, size_t msg_len)
{
	uint64_t got;
	const void *p = snapv_find(in, type, (uint32_t)v, &got);

	if (!p || got != len) {
		snprintf(msg, msg_len, "%s: corrupted: vCPU %d's %s %s", in->path, v, what,
			 p ? "has the wrong size" : "is missing");
		return NULL;
	}
	return p;
}

/*
 * The saved MSRs that differ from the new vCPU's.  Some KVM lists as
 * saveable but refuses to set where the guest's CPUID does not offer them
 * (the paravirtual ones): harmless when they hold what a new vCPU holds,
 * as they do for guests that never touched them.
 */
static int set_msrs(struct vcpu *v, const struct kvm_msr_entry *saved, uint32_t n, char *msg,
		    size_t msg_len)
{
	struct kvm_msrs *now = msrs_alloc(n), *diff = msrs_alloc(n);
	uint32_t d = 0, want;
	int err = 0;

	if (!now || !diff) {
		free(now);
		free(diff);
		return -ENOMEM;
	}
	for (uint32_t k = 0; k < n; k++)
		now->entries[k].index = saved[k].index;
	msrs_each(v->fd, KVM_GET_MSRS, now); /* the readable ones, in order */
	for (uint32_t k = 0, j = 0; k < n; k++) {
		while (j < now->nmsrs && now->entries[j].index != saved[k].index)
			j++;
		if (j < now->nmsrs && now->entries[j].data == saved[k].data)
			continue;
		diff->entries[d++] = saved[k];
		j = 0; /* the list is not sorted: look again from the start */
	}
	diff->nmsrs = want = d;
	memcpy(now->entries, diff->entries, d * sizeof(diff->entries[0]));
	msrs_each(v->fd, KVM_SET_MSRS, diff);
	if (diff->nmsrs != want) {
		uint32_t bad = 0;

		/* the first one missing from what was done */
		for (uint32_t k = 0; k < want; k++) {
			if (k >= diff->nmsrs || diff->entries[k].index != now->entries[k].index) {
				bad = now->entries[k].index;
				break;
			}
		}
		snprintf(msg, msg_len, "vCPU %d: KVM refuses MSR %#x as saved", v->index, bad);
		err = -EINVAL;
	}
	free(now);
	free(diff);
	return err;
}

#define SET(req, arg, what)                                                                     \
	do {                                                                                    \
		if (ioctl(v->fd, req, arg)) {                                                   \
			int err_ = -errno;                                                      \
			snprintf(msg, msg_len, "vCPU %d: setting its %s: %s", v->index, what,   \
				 strerror(errno));                                              \
			return err_;                                                            \
		}                                                                               \
	} while (0)

int cpu_state_restore(struct vm *vm, struct vcpu *v, const struct snapv_in *in, char *msg,
		      size_t msg_len)
{
	const struct snapv_vcpu *head;
	const void *regs, *sregs, *fpu, *xcrs, *events, *mp, *dbg, *xsave;
	const struct kvm_msr_entry *entries;
	uint64_t xs_len, msrs_len;
	size_t xs = xsave_size(vm);
	uint32_t n;
	int err;

	if (!(head = need(in, SEC_VCPU, v->index, sizeof(*head), "record", msg, msg_len)) ||
	    !(regs = need(in, SEC_REGS, v->index, sizeof(struct kvm_regs), "registers", msg,
			  msg_len)) ||
	    !(sregs = need(in, SEC_SREGS, v->index, sizeof(struct kvm_sregs), "segment registers",
			   msg, msg_len)) ||
	    !(events = need(in, SEC_EVENTS, v->index, sizeof(struct kvm_vcpu_events), "events",
			    msg, msg_len)) ||
	    !(mp = need(in, SEC_MP_STATE, v->index, sizeof(struct kvm_mp_state), "MP state", msg,
			msg_len)) ||
	    !(dbg = need(in, SEC_DEBUGREGS, v->index, sizeof(struct kvm_debugregs),
			 "debug registers", msg, msg_len)))
		return -EBADMSG;
	entries = snapv_find(in, SEC_MSRS, (uint32_t)v->index, &msrs_len);
	if (!entries || msrs_len % sizeof(*entries)) {
		snprintf(msg, msg_len, "%s: corrupted: vCPU %d's MSRs", in->path, v->index);
		return -EBADMSG;
	}
	v->halted = head->halted;
	SET(KVM_SET_SREGS, sregs, "segment registers");
	SET(KVM_SET_REGS, regs, "registers");
	xcrs = snapv_find(in, SEC_XCRS, (uint32_t)v->index, &xs_len);
	if (xcrs) {
		if (xs_len != sizeof(struct kvm_xcrs)) {
			snprintf(msg, msg_len, "%s: corrupted: vCPU %d's XCRs", in->path, v->index);
			return -EBADMSG;
		}
		SET(KVM_SET_XCRS, xcrs, "XCRs");
	}
	xsave = snapv_find(in, SEC_XSAVE, (uint32_t)v->index, &xs_len);
	fpu = snapv_find(in, SEC_FPU, (uint32_t)v->index, NULL);
	if (xsave) {
		struct kvm_xsave *x;

		/* a smaller area is a subset (the header says which parts); a larger one KVM here lacks */
		if (!xs || xs_len > xs || xs_len < sizeof(struct kvm_xsave)) {
			snprintf(msg, msg_len, "vCPU %d: its %llu-byte xsave state does not fit this "
				 "KVM's %zu bytes", v->index, (unsigned long long)xs_len, xs);
			return -EINVAL;
		}
		x = calloc(1, xs);
		if (!x)
			return -ENOMEM;
		memcpy(x, xsave, xs_len);
		if (ioctl(v->fd, KVM_SET_XSAVE, x)) {
			err = -errno;
			snprintf(msg, msg_len, "vCPU %d: setting its xsave state: %s", v->index,
				 strerror(errno));
			free(x);
			return err;
		}
		free(x);
	} else if (fpu) {
		if (!need(in, SEC_FPU, v->index, sizeof(struct kvm_fpu), "FPU state", msg, msg_len))
			return -EBADMSG;
		SET(KVM_SET_FPU, fpu, "FPU state");
	} else {
		snprintf(msg, msg_len, "%s: corrupted: vCPU %d has no FPU state", in->path, v->index);
		return -EBADMSG;
	}
	n = (uint32_t)(msrs_len / sizeof(*entries));
	err = set_msrs(v, entries, n, msg, msg_len);
	if (err)
		return err;
	/* without an in-kernel irqchip KVM takes only RUNNABLE, which a new vCPU is */
	if (((const struct kvm_mp_state *)mp)->mp_state != KVM_MP_STATE_RUNNABLE)
		SET(KVM_SET_MP_STATE, mp, "MP state");
	SET(KVM_SET_DEBUGREGS, dbg, "debug registers");
	SET(KVM_SET_VCPU_EVENTS, events, "pending events");
	return 0;
}
