// SPDX-License-Identifier: MIT
/*
 * child.c - gmem-vmm run by the benchmark as a process of its own: where
 * it and the benchmark guests are, its output watched for a line, its end.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

const char *bench_vmm_path(void)
{
	const char *vmm = getenv("GMEM_VMM");

	return vmm ? vmm : "build/vmm/gmem-vmm";
}

const char *bench_guest_path(const char *name, char *buf, size_t len)
{
	const char *dir = getenv("GUEST_BENCH_DIR");

	snprintf(buf, len, "%s/%s.elf", dir ? dir : "build/guest/bench", name);
	return buf;
}

bool vmm_child_start(struct vmm_child *c, const char *const argv[])
{
	const char *a[24] = { "gmem-vmm" };
	int p[2], n = 1;

	for (; argv[n - 1] && n < 23; n++)
		a[n] = argv[n - 1];
	a[n] = NULL;
	if (pipe2(p, O_CLOEXEC))
		return false;
	*c = (struct vmm_child){ .pid = fork() };
	if (c->pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(p[1], 1);
		if (null >= 0)
			dup2(null, 2);
		execv(bench_vmm_path(), (char *const *)a);
		_exit(127);
	}
	close(p[1]);
	c->out = p[0];
	if (c->pid < 0) {
		close(p[0]);
		return false;
	}
	return true;
}

bool vmm_child_wait_line(struct vmm_child *c, const char *line, int timeout_s)
{
	double give_up = now_ns() + timeout_s * 1e9;

	while (!strstr(c->buf, line) && c->got < sizeof(c->buf) - 1 && now_ns() < give_up) {
		struct pollfd p = { .fd = c->out, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 1000) <= 0)
			continue;
		n = read(c->out, c->buf + c->got, sizeof(c->buf) - 1 - c->got);
		if (n <= 0)
			return false;
		c->got += (size_t)n;
		c->buf[c->got] = '\0';
	}
	return strstr(c->buf, line) != NULL;
}

int vmm_child_end(struct vmm_child *c, int sig)
{
	char sink[4096];
	int status;

	if (sig)
		kill(c->pid, sig);
	while (read(c->out, sink, sizeof(sink)) > 0)
		;
	close(c->out);
	if (waitpid(c->pid, &status, 0) != c->pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
