// SPDX-License-Identifier: MIT
/*
 * sysfs.c - kernel settings a test run changes, and puts back.
 *
 * THP cases need shmem huge pages; when the kernel refuses them and we are
 * root, shmem_enabled goes to "advise" for the run and back at exit.
 */
#define _GNU_SOURCE
#include "sysfs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gmem.h"

#define SHMEM_ENABLED "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

struct saved_file {
	char path[128];
	char value[64];
};
static struct saved_file saved[8];
static size_t nsaved;

static int read_choice(const char *path, char *out, size_t outlen)
{
	char buf[256], *lb, *rb;
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	lb = strchr(buf, '[');
	rb = lb ? strchr(lb, ']') : NULL;
	if (!rb || (size_t)(rb - lb) >= outlen) {
		/* not a multiple-choice file: the whole first line */
		size_t len = strcspn(buf, "\n");

		if (len >= outlen)
			return -1;
		memcpy(out, buf, len);
		out[len] = '\0';
		return 0;
	}
	memcpy(out, lb + 1, (size_t)(rb - lb - 1));
	out[rb - lb - 1] = '\0';
	return 0;
}

static int write_raw(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, value, strlen(value));
	close(fd);
	return n == (ssize_t)strlen(value) ? 0 : -EIO;
}

static void restore_files(void);

void sysfs_restore(void)
{
	restore_files();
}

int test_write_file(const char *path, const char *value)
{
	static bool registered;

	if (!registered) {
		atexit(restore_files); /* inherited by forked cases: each restores its own */
		registered = true;
	}
	if (nsaved < sizeof(saved) / sizeof(saved[0])) {
		bool known = false;

		for (size_t i = 0; i < nsaved; i++)
			known |= !strcmp(saved[i].path, path);
		if (!known && !read_choice(path, saved[nsaved].value, sizeof(saved[0].value))) {
			snprintf(saved[nsaved].path, sizeof(saved[0].path), "%s", path);
			nsaved++;
		}
	}
	return write_raw(path, value);
}

static void restore_files(void)
{
	while (nsaved--)
		write_raw(saved[nsaved].path, saved[nsaved].value);
	nsaved = 0;
}

void sysfs_forget(void)
{
	nsaved = 0;
}

static bool thp_usable(void)
{
	struct gmem_config cfg = { .size = 2ULL << 20, .backing = GMEM_BACKING_THP };
	struct gmem *g;

	if (gmem_create(&cfg, &g))
		return false;
	gmem_destroy(g);
	return true;
}

bool thp_enable(void)
{
	if (thp_usable())
		return true;
	if (geteuid() != 0)
		return false;
	test_write_file(SHMEM_ENABLED, "advise");
	return thp_usable();
}

static unsigned long pool_read(uint64_t page_size, const char *what)
{
	char path[128], buf[32];

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/%s",
		 (unsigned long long)(page_size >> 10), what);
	if (read_choice(path, buf, sizeof(buf)))
		return 0;
	return strtoul(buf, NULL, 10);
}

unsigned long hugetlb_free(uint64_t page_size)
{
	unsigned long free = pool_read(page_size, "free_hugepages");
	unsigned long resv = pool_read(page_size, "resv_hugepages");

	/* free pages that other mappings have reserved are not to be had */
	return free > resv ? free - resv : 0;
}

bool hugetlb_reserve(uint64_t page_size, unsigned long pages)
{
	char path[128], value[32];
	unsigned long have = hugetlb_free(page_size);

	if (have >= pages)
		return true;
	if (geteuid() != 0)
		return false;
	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%llukB/nr_hugepages",
		 (unsigned long long)(page_size >> 10));
	snprintf(value, sizeof(value), "%lu", pool_read(page_size, "nr_hugepages") + pages - have);
	test_write_file(path, value);
	return hugetlb_free(page_size) >= pages;
}
