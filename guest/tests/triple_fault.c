// SPDX-License-Identifier: MIT
/* triple_fault.c - an exception with no IDT: the VMM must say so and exit 1. */
#include "rt.h"

int main(int cpu, int ncpus, uint64_t ram_size)
{
	(void)cpu, (void)ncpus, (void)ram_size;
	__asm__ volatile("ud2");
	return 0;
}
