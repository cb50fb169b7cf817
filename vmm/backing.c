// SPDX-License-Identifier: MIT
/*
 * backing.c - --backing's choices, and what to do when the kernel cannot
 * give the one asked for.
 */
#define _GNU_SOURCE
#include "backing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gmem.h"

#define THP_DIR "/sys/kernel/mm/transparent_hugepage"
#define HUGETLB_DIR "/sys/kernel/mm/hugepages"

static const struct backing backings[] = {
	{ "shmem", GMEM_BACKING_SHMEM, 4096, false },
	{ "thp", GMEM_BACKING_THP, 2ULL << 20, false },
	{ "hugetlb-2m", GMEM_BACKING_HUGETLB_2M, 2ULL << 20, true },
	{ "hugetlb-1g", GMEM_BACKING_HUGETLB_1G, 1ULL << 30, true },
};

const struct backing *backing_find(const char *name)
{
	for (size_t i = 0; i < sizeof(backings) / sizeof(backings[0]); i++)
		if (!strcmp(name, backings[i].name))
			return &backings[i];
	return NULL;
}

const struct backing *backing_of_type(uint32_t type)
{
	for (size_t i = 0; i < sizeof(backings) / sizeof(backings[0]); i++)
		if (backings[i].type == type)
			return &backings[i];
	return NULL;
}

const char *backing_names(void)
{
	return "shmem|thp|hugetlb-2m|hugetlb-1g";
}

/* The first line of a sysfs file, or its [chosen] word; false if unreadable. */
static bool sysfs_read(const char *path, char *out, size_t len)
{
	char buf[256], *lb, *rb;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	lb = strchr(buf, '[');
	rb = lb ? strchr(lb, ']') : NULL;
	if (lb && rb) {
		*rb = '\0';
		memmove(buf, lb + 1, (size_t)(rb - lb));
	} else {
		buf[strcspn(buf, "\n")] = '\0';
	}
	n = (ssize_t)strlen(buf);
	if ((size_t)n >= len)
		return false;
	memcpy(out, buf, (size_t)n + 1);
	return true;
}

static const char *size_name(uint64_t bytes, char *buf, size_t len)
{
	if (bytes >= (1ULL << 30) && bytes % (1ULL << 30) == 0)
		snprintf(buf, len, "%llu GiB", (unsigned long long)(bytes >> 30));
	else
		snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
	return buf;
}

static void explain_hugetlb(const struct backing *b, uint64_t ram_size, int err, char *buf,
			    size_t len)
{
	unsigned long long needed = ram_size / b->page, have;
	char dir[96], nr_path[160], free_path[160], resv_path[160], nr[32], free_pages[32], resv[32];
	char ram[32], page[32];

	snprintf(dir, sizeof(dir), HUGETLB_DIR "/hugepages-%llukB", (unsigned long long)(b->page >> 10));
	size_name(ram_size, ram, sizeof(ram));
	size_name(b->page, page, sizeof(page));
	if (err == -EOPNOTSUPP && access(dir, F_OK)) {
		snprintf(buf, len, "--backing %s: this kernel has no pool of %s hugetlb pages (no %s)",
			 b->name, page, dir);
		return;
	}
	if (err != -ENOMEM) {
		snprintf(buf, len, "--backing %s: guest memory: %s", b->name, strerror(-err));
		return;
	}
	snprintf(nr_path, sizeof(nr_path), "%s/nr_hugepages", dir);
	snprintf(free_path, sizeof(free_path), "%s/free_hugepages", dir);
	snprintf(resv_path, sizeof(resv_path), "%s/resv_hugepages", dir);
	if (!sysfs_read(nr_path, nr, sizeof(nr)) ||
	    !sysfs_read(free_path, free_pages, sizeof(free_pages)) ||
	    !sysfs_read(resv_path, resv, sizeof(resv))) {
		snprintf(buf, len,
			 "--backing %s: the hugetlb pool has too few free %s pages, %llu needed (%s of "
			 "RAM / %s): raise %s",
			 b->name, page, needed, ram, page, nr_path);
		return;
	}
	/* free pages that others have reserved are not free to us */
	have = strtoull(free_pages, NULL, 10);
	have -= strtoull(resv, NULL, 10) < have ? strtoull(resv, NULL, 10) : have;
	snprintf(buf, len,
		 "--backing %s: the hugetlb pool has %llu free %s pages, %llu needed (%s of RAM / %s): "
		 "raise %s (now %s) by %llu",
		 b->name, have, page, needed, ram, page, nr_path, nr, needed > have ? needed - have : 1);
}

static void explain_thp(const struct backing *b, int err, char *buf, size_t len)
{
	char mode[32], per_size[160];
	const char *file = THP_DIR "/shmem_enabled";

	/* Linux 6.11+: the per-size file decides unless it defers ("inherit") */
	snprintf(per_size, sizeof(per_size), THP_DIR "/hugepages-%llukB/shmem_enabled",
		 (unsigned long long)(b->page >> 10));
	if (sysfs_read(per_size, mode, sizeof(mode)) && strcmp(mode, "inherit"))
		file = per_size;
	else if (!sysfs_read(file, mode, sizeof(mode)))
		mode[0] = '\0';
	if (err == -EOPNOTSUPP && (!strcmp(mode, "never") || !strcmp(mode, "deny")))
		snprintf(buf, len,
			 "--backing thp: shmem huge pages are off: %s says %s, and must say advise (or "
			 "always, within_size, force)",
			 file, mode);
	else if (err == -EOPNOTSUPP && !mode[0])
		snprintf(buf, len,
			 "--backing thp: shmem huge pages unavailable: cannot read %s, which must say "
			 "advise (or always, within_size, force)",
			 file);
	else
		snprintf(buf, len, "--backing thp: guest memory: %s", strerror(-err));
}

void backing_explain(const struct backing *b, uint64_t ram_size, int err, char *buf, size_t len)
{
	if (b->hugetlb)
		explain_hugetlb(b, ram_size, err, buf, len);
	else if (b->type == GMEM_BACKING_THP)
		explain_thp(b, err, buf, len);
	else
		snprintf(buf, len, "guest memory: %s", strerror(-err));
}
