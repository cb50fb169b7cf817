// SPDX-License-Identifier: MIT
/* spin.c - never ends: only the VMM's --timeout stops it. */
#include "rt.h"

int main(int cpu, int ncpus, uint64_t ram_size)
{
	(void)cpu, (void)ncpus, (void)ram_size;
	for (;;)
		cpu_relax();
}
