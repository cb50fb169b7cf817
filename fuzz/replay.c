// SPDX-License-Identifier: MIT
/*
 * replay.c - run fuzz inputs without libFuzzer: the seed corpus in make check.
 *
 * Each file named (or found in a directory named) runs in a child of its
 * own, so that one disagreement fails that input alone; ends with the
 * harness's summary line.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../tests/sysfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static unsigned int passed, failed;

static void run_file(const char *path)
{
	static uint8_t buf[1 << 16];
	FILE *f = fopen(path, "rb");
	size_t n;
	int status;
	pid_t pid;

	if (!f) {
		printf("FAIL %s: cannot open\n", path);
		failed++;
		return;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		sysfs_forget(); /* settings are the parent's to restore */
		LLVMFuzzerTestOneInput(buf, n);
		exit(0); /* not _exit: LeakSanitizer checks at exit */
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		printf("FAIL fuzz input %s\n", path);
		failed++;
		return;
	}
	printf("ok   fuzz input %s\n", strrchr(path, '/') ? strrchr(path, '/') + 1 : path);
	passed++;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct dirent **names;
		struct stat st;
		int n;

		if (stat(argv[i], &st) || !S_ISDIR(st.st_mode)) {
			run_file(argv[i]);
			continue;
		}
		n = scandir(argv[i], &names, NULL, by_name);
		for (int j = 0; j < n; j++) {
			char path[4096];

			if (names[j]->d_name[0] != '.') {
				snprintf(path, sizeof(path), "%s/%s", argv[i], names[j]->d_name);
				run_file(path);
			}
			free(names[j]);
		}
		if (n >= 0)
			free(names);
	}
	printf("# %u passed, %u failed, 0 skipped\n", passed, failed);
	return failed ? 1 : 0;
}
