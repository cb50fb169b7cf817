/* SPDX-License-Identifier: MIT */
/*
 * touch.h - touching memory that may answer with a signal.
 */
#ifndef GMEM_TEST_TOUCH_H
#define GMEM_TEST_TOUCH_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Touch one byte (write: store v, else load into *v).  0 if the access
 * completed, else the signal it raised, with *si filled (may be NULL).
 */
int touch(volatile char *p, bool write, uint8_t *v, siginfo_t *si);

/* Copy len bytes from src, guarded like touch(): 0, or the signal that stopped it. */
int touch_copy(void *dst, const volatile char *src, size_t len);

/* Store word over len bytes (a multiple of 8) at dst, guarded likewise. */
int touch_fill(volatile char *dst, uint64_t word, size_t len);
/*
 * The same, with *si filled when a signal stopped it (may be NULL): the
 * stores before si_addr were made, in order.
 */
int touch_fill_si(volatile char *dst, uint64_t word, size_t len, siginfo_t *si);

/*
 * Whether si_code is how a refused touch arrives under the SIGBUS policy: a
 * poison marker is BUS_ADRERR, or BUS_MCEERR_AR on kernels built with
 * CONFIG_MEMORY_FAILURE (they report it like a hardware-poisoned page).
 */
static inline bool sigbus_refusal(int code)
{
	return code == BUS_ADRERR || code == BUS_MCEERR_AR;
}

/*
 * Whether si_code is how a refused touch arrives under the `sig` policy:
 * SIGBUS, sigbus_refusal(); SIGSEGV, SEGV_MAPERR (a guard marker) - or
 * SEGV_ACCERR where the kernel refuses guards (`no_guards`: a view the
 * process has mlock()ed, any hugetlbfs view) and PROT_NONE does instead.
 */
static inline bool refusal_code(int sig, int code, bool no_guards)
{
	if (sig == SIGBUS)
		return sigbus_refusal(code);
	return sig == SIGSEGV && code == (no_guards ? SEGV_ACCERR : SEGV_MAPERR);
}

#endif /* GMEM_TEST_TOUCH_H */
