// SPDX-License-Identifier: MIT
/* boot.c - every vCPU says hello; vCPU 0 exits with 0 once all have. */
#include "rt.h"

static volatile int arrived;

int main(int cpu, int ncpus, uint64_t ram_size)
{
	uint64_t rsp;

	__asm__ volatile("mov %%rsp, %0" : "=r"(rsp));
	CHECK(rsp < machine.low_end - (uint64_t)cpu * STACK_SIZE &&
	      rsp >= machine.low_end - (uint64_t)(cpu + 1) * STACK_SIZE);
	printf("hello from vCPU %d of %d, %llu MiB\n", cpu, ncpus, (unsigned long long)(ram_size >> 20));
	__atomic_add_fetch(&arrived, 1, __ATOMIC_SEQ_CST);
	while (__atomic_load_n(&arrived, __ATOMIC_SEQ_CST) != ncpus)
		cpu_relax();
	return 0;
}
