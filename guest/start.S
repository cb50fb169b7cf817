/* SPDX-License-Identifier: MIT */
/*
 * start.S - the guest's entry: every vCPU arrives here in 64-bit mode with
 * RDI = vCPU index, RSI = vCPU count, RDX = RAM size, RSP = its own stack.
 */
	.section .text.start, "ax"
	.globl _start
	.type _start, @function
_start:
	xorl	%ebp, %ebp
	andq	$-16, %rsp
	call	rt_main
1:	cli
	hlt
	jmp	1b
	.size _start, . - _start
	.section .note.GNU-stack, "", @progbits
