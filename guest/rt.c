// SPDX-License-Identifier: MIT
/*
 * rt.c - the guest runtime: start-up, console, exit, conversions, memory.
 */
#include "rt.h"

struct machine machine;

static spinlock_t console_lock;
static spinlock_t alloc_lock;
static uint64_t alloc_next;
extern char __end[];

__attribute__((noreturn)) void exit(int status)
{
	for (;;)
		__asm__ volatile("outb %%al, %%dx" : : "a"((uint8_t)status), "d"((uint16_t)PORT_EXIT));
}

void rt_main(uint64_t cpu, uint64_t ncpus, uint64_t ram_size);
void rt_main(uint64_t cpu, uint64_t ncpus, uint64_t ram_size)
{
	int ret;

	if (cpu == 0) {
		machine.ram_size = ram_size;
		machine.low_end = ram_size < LOW_RAM_MAX ? ram_size : LOW_RAM_MAX;
		machine.stacks = machine.low_end - ncpus * STACK_SIZE;
		alloc_next = (uint64_t)__end;
		__atomic_store_n(&machine.ncpus, (int)ncpus, __ATOMIC_RELEASE);
	}
	while (!__atomic_load_n(&machine.ncpus, __ATOMIC_ACQUIRE))
		cpu_relax();
	ret = main((int)cpu, (int)ncpus, ram_size);
	if (cpu == 0)
		exit(ret);
}

void putchar(int c)
{
	outb(PORT_SERIAL, (uint8_t)c);
}

/*
 * On software-virtualized KVMs every guest instruction (and every step of a
 * rep-prefixed one) can cost hundreds of nanoseconds: move 8 bytes a step.
 */
void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;

	if (!(((uintptr_t)dst | (uintptr_t)src | n) & 7)) {
		n /= 8;
		__asm__ volatile("rep movsq" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	} else {
		__asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	}
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	uint64_t v = 0x0101010101010101ULL * (uint8_t)c;
	void *d = dst;

	if (!(((uintptr_t)dst | n) & 7)) {
		n /= 8;
		__asm__ volatile("rep stosq" : "+D"(d), "+c"(n) : "a"(v) : "memory");
	} else {
		__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(v) : "memory");
	}
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;

	if (!n)
		return 0;
	__asm__ volatile("repe cmpsb" : "+S"(x), "+D"(y), "+c"(n) : : "memory", "cc");
	return x[-1] - y[-1];
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

struct out {
	char *buf;
	size_t size, len;
};

static void emit(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void emit_num(struct out *o, unsigned long long v, unsigned int base, bool neg, int width,
		     char pad)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	while (width-- > n)
		emit(o, pad);
	while (n)
		emit(o, tmp[--n]);
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };

	for (; *fmt; fmt++) {
		int width = 0, lng = 0;
		char pad = ' ';

		if (*fmt != '%') {
			emit(&o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0')
			pad = '0';
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z')
			lng++, fmt++;
		switch (*fmt) {
		case 'd':
		case 'i': {
			long long v = lng ? va_arg(ap, long long) : va_arg(ap, int);

			emit_num(&o, v < 0 ? -(unsigned long long)v : (unsigned long long)v, 10, v < 0,
				 width, pad);
			break;
		}
		case 'u':
		case 'x':
			emit_num(&o, lng ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned int),
				 *fmt == 'x' ? 16 : 10, false, width, pad);
			break;
		case 'p':
			emit(&o, '0');
			emit(&o, 'x');
			emit_num(&o, (uintptr_t)va_arg(ap, void *), 16, false, width, pad);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);

			for (int n = (int)strlen(s); width-- > n;)
				emit(&o, ' ');
			while (*s)
				emit(&o, *s++);
			break;
		}
		case 'c':
			emit(&o, (char)va_arg(ap, int));
			break;
		case '%':
			emit(&o, '%');
			break;
		default:
			emit(&o, '?');
			break;
		}
	}
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int printf(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	spin_lock(&console_lock);
	for (int i = 0; buf[i]; i++)
		putchar(buf[i]);
	spin_unlock(&console_lock);
	return n;
}

static long convert(void *p, uint64_t len, uint64_t attrs, uint64_t *retries)
{
	long r;

	while ((r = map_gpa_range((uintptr_t)p, len / PAGE_SIZE, attrs)) == -EAGAIN) {
		if (retries)
			(*retries)++;
		cpu_relax();
	}
	return r;
}

long share(void *p, uint64_t len, uint64_t *retries)
{
	return convert(p, len, 0, retries);
}

long unshare(void *p, uint64_t len, uint64_t *retries)
{
	return convert(p, len, HC_MAP_GPA_RANGE_ENCRYPTED, retries);
}

void *alloc_pages(uint64_t n)
{
	uint64_t p;

	spin_lock(&alloc_lock);
	p = alloc_next;
	if (p + n * PAGE_SIZE > machine.stacks) {
		spin_unlock(&alloc_lock);
		printf("guest: out of memory for %llu pages\n", (unsigned long long)n);
		exit(1);
	}
	alloc_next = p + n * PAGE_SIZE;
	spin_unlock(&alloc_lock);
	return (void *)p;
}

void barrier(void)
{
	static volatile int count, generation;
	int gen = __atomic_load_n(&generation, __ATOMIC_ACQUIRE);

	if (__atomic_add_fetch(&count, 1, __ATOMIC_ACQ_REL) == machine.ncpus) {
		__atomic_store_n(&count, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&generation, gen + 1, __ATOMIC_RELEASE);
	} else {
		while (__atomic_load_n(&generation, __ATOMIC_ACQUIRE) == gen)
			cpu_relax();
	}
}
