/* SPDX-License-Identifier: MIT */
/*
 * secret.h - the demo's secret marker, as both sides know it.
 *
 * The demo guest writes it into private memory only; gmem-vmm's snoop
 * scans everything it can read for it.  The image holds it XORed, so the
 * marker itself appears nowhere but where the guest put it.
 */
#ifndef GMEM_ABI_SECRET_H
#define GMEM_ABI_SECRET_H

#define SECRET_XOR 0x5a
#define SECRET_LEN 16
/* "GMEM-SECRET-KEY:" XORed with SECRET_XOR */
#define SECRET_ENCODED                                                               \
	{ 0x1d, 0x17, 0x1f, 0x17, 0x77, 0x09, 0x1f, 0x19, 0x08, 0x1f, 0x0e, 0x77, 0x11, 0x1f, \
	  0x03, 0x60 }

#endif /* GMEM_ABI_SECRET_H */
