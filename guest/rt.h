/* SPDX-License-Identifier: MIT */
/*
 * rt.h - the freestanding runtime guest programs are written against.
 *
 * A program defines main(); every vCPU runs it.  When vCPU 0's main
 * returns, the VM ends with its value as the exit status; other vCPUs halt
 * when theirs returns.  See docs/BOOT.md for the machine they run on.
 */
#ifndef GMEM_GUEST_RT_H
#define GMEM_GUEST_RT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

int main(int cpu, int ncpus, uint64_t ram_size);

/* The machine */
struct machine {
	int ncpus;
	uint64_t ram_size;   /* bytes */
	uint64_t low_end;    /* end of low RAM */
	uint64_t stacks;     /* lowest stack byte: free memory ends here */
};
extern struct machine machine;

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

__attribute__((noreturn)) void exit(int status);

/* Console (port 0x3f8); printf takes %d %i %u %x %p %s %c %% with l/ll/z and width. */
void putchar(int c);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* The conversion hypercall (KVM_HC_MAP_GPA_RANGE over port 0xf1): 0 or -errno. */
static inline long hypercall3(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	long ret;

	__asm__ volatile("outb %%al, $0xf1"
			 : "=a"(ret)
			 : "a"(nr), "b"(a0), "c"(a1), "d"(a2)
			 : "memory");
	return ret;
}

static inline long map_gpa_range(uint64_t gpa, uint64_t npages, uint64_t attrs)
{
	return hypercall3(HC_MAP_GPA_RANGE, gpa, npages, attrs);
}

/*
 * Share or privatize [p, p + len) (page-aligned), retrying while host I/O
 * pins a page (-EAGAIN), as SNP and TDX guests do.  *retries counts them.
 */
long share(void *p, uint64_t len, uint64_t *retries);
long unshare(void *p, uint64_t len, uint64_t *retries);

/* Pages from the free memory above the program (all vCPUs; never freed). */
void *alloc_pages(uint64_t n);

#define PAGE_SIZE 4096ULL
#define EINVAL 22
#define EAGAIN 11
#define EBUSY 16
#define ENOSYS 38

typedef struct {
	volatile int locked;
} spinlock_t;

static inline void spin_lock(spinlock_t *l)
{
	while (__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED))
			cpu_relax();
}

static inline void spin_unlock(spinlock_t *l)
{
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

/* Wait until every vCPU has arrived (reusable). */
void barrier(void);

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			printf("guest check failed: %s:%d: %s\n", __FILE__, __LINE__, \
			       #cond);                                               \
			exit(1);                                                     \
		}                                                                    \
	} while (0)

#endif /* GMEM_GUEST_RT_H */
