/* SPDX-License-Identifier: MIT */
/*
 * snoop.h - a host thread that keeps reading all of guest RAM through a
 * host view, as a buggy or curious host component would.
 */
#ifndef GMEM_VMM_SNOOP_H
#define GMEM_VMM_SNOOP_H

#include "vm.h"

struct snoop_stats {
	uint64_t passes, pages_read, denied, secrets_seen, audits, audit_failures;
	uint64_t copied, copy_denied; /* hugetlbfs: pages gmem_read() copied, and refused */
};

int snoop_start(struct vm *vm);
void snoop_stop(struct vm *vm, struct snoop_stats *st);

#endif /* GMEM_VMM_SNOOP_H */
