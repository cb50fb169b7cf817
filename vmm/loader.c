// SPDX-License-Identifier: MIT
/*
 * loader.c - the ELF loader and the boot image.
 */
#include "loader.h"

#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kvm.h"

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

/* Run write() over RAM [gpa, gpa + len), shared for the while if it was private. */
static int write_ram(struct vm *vm, uint64_t gpa, uint64_t len,
		     void (*write)(char *dst, const void *arg, uint64_t len), const void *arg)
{
	uint64_t off, first, end;
	int err = gpa_ram_offset(&vm->map, gpa, len, &off);

	if (err)
		return err;
	first = off & ~(GMEM_PAGE_SIZE - 1);
	end = (off + len + GMEM_PAGE_SIZE - 1) & ~(GMEM_PAGE_SIZE - 1);
	if (vm->init_private) {
		err = gmem_convert(vm->mem, first, end - first, GMEM_SHARED, 0, NULL);
		if (err)
			return err;
	}
	write(vm->dev_view + off, arg, len);
	if (vm->init_private)
		err = gmem_convert(vm->mem, first, end - first, GMEM_PRIVATE, 0, NULL);
	return err;
}

static void write_segment(char *dst, const void *arg, uint64_t len)
{
	const struct segment *s = arg;

	memcpy(dst, s->data, s->filesz);
	memset(dst + s->filesz, 0, len - s->filesz);
}

static void write_tables(char *dst, const void *arg, uint64_t len)
{
	(void)dst, (void)len;
	boot_tables_write((struct vm *)arg);
}

int image_load(struct vm *vm, const struct image *img)
{
	int err = write_ram(vm, BOOT_GDT, BOOT_TABLES_END - BOOT_GDT, write_tables, vm);

	for (int i = 0; !err && i < img->nseg; i++)
		err = write_ram(vm, img->seg[i].paddr, img->seg[i].memsz, write_segment, &img->seg[i]);
	return err;
}
