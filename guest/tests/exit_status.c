// SPDX-License-Identifier: MIT
/* exit_status.c - the VM's exit status is what the guest returns. */
#include "rt.h"

int main(int cpu, int ncpus, uint64_t ram_size)
{
	(void)ncpus, (void)ram_size;
	return cpu == 0 ? 42 : 0;
}
