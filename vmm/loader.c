// SPDX-License-Identifier: MIT
/*
 * loader.c - the ELF loader and the boot image.
 */
#include "loader.h"

#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvm.h"

#define ZERO_CHUNK (1ULL << 20) /* a segment's zeroed tail is written this much at a time */

static int refuse(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -ENOEXEC;
}

int elf_parse(const struct vm *vm, const void *buf, size_t size, struct image *img, char *why,
	      size_t whylen)
{
	const Elf64_Ehdr *eh = buf;
	const uint8_t *base = buf;
	uint64_t stacks = boot_stacks_base(vm);
	bool entry_ok = false;

	if (size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG))
		return refuse(why, whylen, "not an ELF file");
	if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_ident[EI_DATA] != ELFDATA2LSB ||
	    eh->e_machine != EM_X86_64)
		return refuse(why, whylen, "not an ELF64 x86-64 file");
	if (eh->e_type != ET_EXEC)
		return refuse(why, whylen, "not a static executable (ELF type %u)", eh->e_type);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phoff > size ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > size - eh->e_phoff)
		return refuse(why, whylen, "program headers out of the file");

	img->nseg = 0;
	img->entry = eh->e_entry;
	for (int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr ph;
		uint64_t off;

		memcpy(&ph, base + eh->e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
		if (ph.p_type == PT_INTERP || ph.p_type == PT_DYNAMIC)
			return refuse(why, whylen, "dynamically linked: a static executable is needed");
		if (ph.p_type != PT_LOAD || !ph.p_memsz)
			continue;
		if (img->nseg == MAX_SEGMENTS)
			return refuse(why, whylen, "more than %d loadable segments", MAX_SEGMENTS);
		if (ph.p_filesz > ph.p_memsz || ph.p_offset > size || ph.p_filesz > size - ph.p_offset)
			return refuse(why, whylen, "segment %d out of the file", i);
		if (gpa_ram_offset(&vm->map, ph.p_paddr, ph.p_memsz, &off))
			return refuse(why, whylen, "segment at %#llx (+%#llx) is not in RAM",
				      (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz);
		if (ph.p_paddr < BOOT_LOAD_MIN)
			return refuse(why, whylen, "segment at %#llx is below 1 MiB (the boot tables)",
				      (unsigned long long)ph.p_paddr);
		if (ph.p_paddr < stacks + (uint64_t)vm->ncpus * STACK_SIZE &&
		    ph.p_paddr + ph.p_memsz > stacks)
			return refuse(why, whylen, "segment at %#llx (+%#llx) overlaps the vCPU stacks at %#llx",
				      (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz,
				      (unsigned long long)stacks);
		for (int j = 0; j < img->nseg; j++)
			if (ph.p_paddr < img->seg[j].paddr + img->seg[j].memsz &&
			    img->seg[j].paddr < ph.p_paddr + ph.p_memsz)
				return refuse(why, whylen, "segments overlap at %#llx",
					      (unsigned long long)ph.p_paddr);
		img->seg[img->nseg++] = (struct segment){ ph.p_paddr, ph.p_memsz, ph.p_filesz,
							   base + ph.p_offset };
		if ((ph.p_flags & PF_X) && eh->e_entry - ph.p_paddr < ph.p_memsz)
			entry_ok = true;
	}
	if (!img->nseg)
		return refuse(why, whylen, "no loadable segment");
	if (!entry_ok)
		return refuse(why, whylen, "entry %#llx is not in an executable segment",
			      (unsigned long long)eh->e_entry);
	return 0;
}

/*
 * Write RAM [gpa, gpa + len): the len bytes of data, then zeros up to
 * memsz, with gpa_write() (the library's copy, on every backing: views of
 * hugetlbfs refuse a huge page whose pieces are not all shared).  Shared for
 * the while if it was private.
 */
static int write_ram(struct vm *vm, uint64_t gpa, uint64_t memsz, const void *data, uint64_t len)
{
	uint64_t off, first, end, zlen = memsz - len;
	char *zeros = NULL;
	int err = gpa_ram_offset(&vm->map, gpa, memsz, &off);

	if (err)
		return err;
	if (zlen && !(zeros = calloc(1, zlen < ZERO_CHUNK ? zlen : ZERO_CHUNK)))
		return -ENOMEM;
	first = off & ~(GMEM_PAGE_SIZE - 1);
	end = (off + memsz + GMEM_PAGE_SIZE - 1) & ~(GMEM_PAGE_SIZE - 1);
	if (vm->init_private)
		err = gmem_convert(vm->mem, first, end - first, GMEM_SHARED, 0, NULL);
	if (!err)
		err = gpa_write(vm, gpa, data, len);
	for (uint64_t at = len; !err && at < memsz; at += ZERO_CHUNK)
		err = gpa_write(vm, gpa + at, zeros, memsz - at < ZERO_CHUNK ? memsz - at : ZERO_CHUNK);
	if (vm->init_private) {
		int err2 = gmem_convert(vm->mem, first, end - first, GMEM_PRIVATE, 0, NULL);

		if (!err)
			err = err2;
	}
	free(zeros);
	return err;
}

int image_load(struct vm *vm, const struct image *img)
{
	const uint64_t tables_len = BOOT_TABLES_END - BOOT_GDT;
	void *tables = calloc(1, tables_len);
	int err;

	if (!tables)
		return -ENOMEM;
	boot_tables_build(vm, tables);
	err = write_ram(vm, BOOT_GDT, tables_len, tables, tables_len);
	free(tables);
	for (int i = 0; !err && i < img->nseg; i++)
		err = write_ram(vm, img->seg[i].paddr, img->seg[i].memsz, img->seg[i].data,
				img->seg[i].filesz);
	return err;
}
