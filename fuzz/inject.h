/* SPDX-License-Identifier: MIT */
/*
 * inject.h - make libgmem's allocations and system calls fail on demand.
 *
 * The test build of the library (libgmem-inject.o, see the Makefile) has
 * its calls to the allocator and to the kernel renamed to inject_*(),
 * defined in inject.c: each passes through to the real function unless the
 * calling thread has armed a failure and its turn has come.  Only the
 * arming thread fails, so the fault thread (which reports nothing) runs as
 * usual.  Allocations are counted to find leaks without a sanitizer.
 */
#ifndef GMEM_FUZZ_INJECT_H
#define GMEM_FUZZ_INJECT_H

#include <stdbool.h>
#include <stdint.h>

/* The nth (1-based) fallible call this thread makes from now fails. */
void inject_arm(uint64_t nth);
/* The nth and every later fallible call fail, until disarmed. */
void inject_arm_from(uint64_t nth);
/* Disarm; whether the failure happened since inject_arm(). */
bool inject_disarm(void);
/* The function whose failure was injected last ("inject_malloc", ...). */
const char *inject_fired_in(void);
/* Fallible calls this thread made since inject_count_start(). */
void inject_count_start(void);
uint64_t inject_count(void);
/* Blocks the library allocated and has not freed. */
int64_t inject_live_allocs(void);

#endif /* GMEM_FUZZ_INJECT_H */
