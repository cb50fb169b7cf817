/* SPDX-License-Identifier: MIT */
/* demo_guest.S - the built-in demo guest's ELF image, embedded whole. */
	.section .rodata
	.balign 16
	.globl demo_guest_elf, demo_guest_elf_end
demo_guest_elf:
	.incbin DEMO_GUEST_ELF
demo_guest_elf_end:
	.section .note.GNU-stack, "", @progbits
