/* SPDX-License-Identifier: MIT */
/*
 * loader.h - putting the boot image into guest RAM.
 */
#ifndef GMEM_VMM_LOADER_H
#define GMEM_VMM_LOADER_H

#include <stddef.h>

#include "vm.h"

#define MAX_SEGMENTS 16

struct segment {
	uint64_t paddr, memsz, filesz;
	const void *data;
};

struct image {
	uint64_t entry;
	struct segment seg[MAX_SEGMENTS];
	int nseg;
};

/*
 * Check that buf is a static ELF64 x86-64 executable whose loadable
 * segments lie in RAM at or above 1 MiB, below the vCPU stacks, and whose
 * entry is in one of them.  0, or -ENOEXEC with a reason in why.
 */
int elf_parse(const struct vm *vm, const void *buf, size_t size, struct image *img, char *why,
	      size_t whylen);

/*
 * Write the boot tables and the segments into RAM, with gpa_write().
 * Private RAM is converted to shared for the write and back to private
 * after it, in place: the guest finds its image in private memory, as a
 * confidential guest's launch measurement expects.
 */
int image_load(struct vm *vm, const struct image *img);

#endif /* GMEM_VMM_LOADER_H */
