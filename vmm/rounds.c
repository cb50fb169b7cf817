// SPDX-License-Identifier: MIT
/*
 * rounds.c - the --track run: dirty.c's rounds, taken while the guest runs.
 *
 * The main thread waits --dirty-interval, collects a round, and again, up
 * to --dirty-rounds times or until the VM ends; after the end - the vCPUs
 * joined and the devices stopped, so that nothing writes any more - it
 * collects the end's round, which holds every write the others did not.
 * The union of all rounds is then every page written since tracking
 * started: what a migration's last pass, with the guest stopped, sends.
 * The guest can tell how many rounds have been collected (port
 * PORT_DIRTY_ROUNDS), so a test guest can write a page after a round it
 * knows is complete and expect a later round to report it.
 */
#define _GNU_SOURCE
#include "rounds.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vcpu.h"

int rounds_init(struct rounds *t, const struct rounds_config *cfg)
{
	*t = (struct rounds){ .cfg = *cfg, .huge_start = -1, .huge_min = -1, .huge_stopped = -1,
			      .huge_rehuged = -1 };
	t->r = calloc(cfg->rounds + 1, sizeof(*t->r));
	if (!t->r) {
		fprintf(stderr, "gmem-vmm: dirty tracking: %s\n", strerror(ENOMEM));
		return -ENOMEM;
	}
	if (cfg->map && !(t->map = fopen(cfg->map, "w"))) {
		int err = -errno;

		fprintf(stderr, "gmem-vmm: %s: %s\n", cfg->map, strerror(-err));
		free(t->r);
		t->r = NULL;
		return err;
	}
	return 0;
}

/* blocks_guest_huge now, or -1 where the backing has no huge pages. */
static int64_t guest_huge(struct vm *vm)
{
	struct gmem_huge_info h;

	if (gmem_backing_page_size(vm->mem) == GMEM_PAGE_SIZE || gmem_huge_info(vm->mem, &h))
		return -1;
	return (int64_t)h.blocks_guest_huge;
}

static void explain(const struct dirty *d, int err, char *msg, size_t len)
{
	if (err == -EOPNOTSUPP && d->failed && !strcmp(d->failed, "gmem_track_start"))
		snprintf(msg, len, "dirty tracking: gmem write tracking unavailable: the kernel "
				   "lacks asynchronous userfaultfd write-protect (Linux 6.7)");
	else if (d->failed && strstr(d->failed, "KVM"))
		snprintf(msg, len, "dirty tracking: KVM's dirty log unavailable: %s: %s", d->failed,
			 strerror(-err));
	else
		snprintf(msg, len, "dirty tracking: %s: %s", d->failed ? d->failed : "?",
			 strerror(-err));
}

int rounds_start(struct rounds *t, struct vm *vm, char *msg, size_t len)
{
	int err;

	t->huge_start = t->huge_min = guest_huge(vm);
	err = dirty_start(&t->d, vm, t->cfg.mode);
	if (err) {
		explain(&t->d, err, msg, len);
		return err;
	}
	t->bitmap = calloc(dirty_bitmap_words(&t->d), sizeof(uint64_t));
	t->seen = calloc(dirty_bitmap_words(&t->d), sizeof(uint64_t));
	if (!t->bitmap || !t->seen) {
		dirty_stop(&t->d);
		snprintf(msg, len, "dirty tracking: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	atomic_store(&vm->dirty_rounds, 0);
	return 0;
}

/* One round: collected, recorded, written to the map. */
static int take(struct rounds *t, struct vm *vm, char *msg, size_t len)
{
	struct dirty_round *r = &t->r[t->n];
	int64_t huge;
	int err = dirty_collect(&t->d, t->bitmap, r);

	if (err) {
		explain(&t->d, err, msg, len);
		return err;
	}
	t->n++;
	for (uint64_t w = 0; w < dirty_bitmap_words(&t->d); w++)
		t->seen[w] |= t->bitmap[w];
	if (t->map) {
		/* runs of set bits: "ROUND GPA PAGES" */
		for (uint64_t g = 0; g < t->d.pages;) {
			uint64_t start;

			if (!(t->bitmap[g / 64] >> (g % 64) & 1)) {
				g++;
				continue;
			}
			for (start = g; g < t->d.pages && t->bitmap[g / 64] >> (g % 64) & 1; g++)
				;
			fprintf(t->map, "%u 0x%llx %llu\n", t->n, (unsigned long long)(start * GMEM_PAGE_SIZE),
				(unsigned long long)(g - start));
		}
	}
	huge = guest_huge(vm);
	if (huge >= 0 && (t->huge_min < 0 || huge < t->huge_min))
		t->huge_min = huge;
	atomic_fetch_add(&vm->dirty_rounds, 1);
	return 0;
}

/* a <= b */
static bool ts_le(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

/*
 * Wait ms for the VM to end, but not past end (NULL: no bound): 1 if it
 * ended, -1 if end came first, 0 after ms.
 */
static int pause_ms(struct vm *vm, unsigned int ms, const struct timespec *end)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	if (end && ts_le(end, &until))
		return vm_wait_until(vm, end) ? 1 : -1;
	return vm_wait_until(vm, &until) ? 1 : 0;
}

void rounds_run(struct rounds *t, struct vm *vm, unsigned int timeout_s)
{
	struct timespec end_at, *end = NULL;
	char msg[256];
	int r = 0;

	if (timeout_s) {
		clock_gettime(CLOCK_MONOTONIC, &end_at);
		end_at.tv_sec += timeout_s;
		end = &end_at;
	}
	if (!t->d.on) { /* --dirty-delay: tracking starts on the running guest */
		r = pause_ms(vm, t->cfg.delay_ms, end);
		if (!r && rounds_start(t, vm, msg, sizeof(msg))) {
			vm_end(vm, 1, "%s", msg);
			return;
		}
	}
	for (unsigned int i = 0; !r && i < t->cfg.rounds; i++) {
		r = pause_ms(vm, t->cfg.interval_ms, end);
		if (!r && take(t, vm, msg, sizeof(msg))) {
			vm_end(vm, 1, "%s", msg);
			return;
		}
	}
	if (!r)
		r = vm_wait_until(vm, end) ? 1 : -1;
	if (r < 0)
		vm_end(vm, 124, "timed out after %u s", timeout_s);
}

int rounds_end(struct rounds *t, struct vm *vm, char *msg, size_t len)
{
	int err, e;

	if (!t->d.on)
		return 0;
	err = take(t, vm, msg, len);
	t->at_end = !err;
	e = dirty_stop(&t->d);
	if (e && !err) {
		snprintf(msg, len, "dirty tracking: stopping: %s", strerror(-e));
		err = e;
	}
	t->huge_stopped = guest_huge(vm);
	if (t->huge_stopped >= 0) {
		e = dirty_rehuge(vm, &t->busy);
		if (e && !err) {
			snprintf(msg, len, "dirty tracking: gmem_collapse: %s", strerror(-e));
			err = e;
		}
		t->huge_rehuged = guest_huge(vm);
	}
	return err;
}

static uint64_t popcount(const uint64_t *b, uint64_t words)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < words; w++)
		n += (uint64_t)__builtin_popcountll(b[w]);
	return n;
}

void rounds_print(const struct rounds *t, const struct vm *vm, FILE *f)
{
	bool kvm = t->cfg.mode == DIRTY_KVM;

	if (!t->seen) {
		fprintf(f, "\n== dirty tracking, --track %s: never started (the VM ended first)\n",
			dirty_mode_name(t->cfg.mode));
		return;
	}
	fprintf(f, "\n== dirty tracking, --track %s (%s): %u rounds every %u ms%s, then one at the end\n",
		dirty_mode_name(t->cfg.mode),
		kvm ? "KVM's dirty log | gmem for the host's writes" : "gmem for every writer",
		t->n - t->at_end, t->cfg.interval_ms, t->cfg.delay_ms ? " after the delay" : "");
	fprintf(f, "round      pages       gmem        kvm    collect us%s\n",
		kvm ? "   (gmem + kvm)" : "");
	for (unsigned int i = 0; i < t->n; i++) {
		const struct dirty_round *r = &t->r[i];
		char label[16];

		if (t->at_end && i == t->n - 1)
			snprintf(label, sizeof(label), "end");
		else
			snprintf(label, sizeof(label), "%u", i + 1);
		fprintf(f, "%5s %10llu %10llu ", label, (unsigned long long)r->pages,
			(unsigned long long)r->gmem_pages);
		if (kvm)
			fprintf(f, "%10llu %13.1f   (%.1f + %.1f)\n", (unsigned long long)r->kvm_pages,
				r->ns / 1e3, r->gmem_ns / 1e3, r->kvm_ns / 1e3);
		else
			fprintf(f, "%10s %13.1f\n", "-", r->ns / 1e3);
	}
	fprintf(f, "union of the rounds: %llu pages of %llu\n",
		(unsigned long long)popcount(t->seen, dirty_bitmap_words(&t->d)),
		(unsigned long long)(vm->ram_size / GMEM_PAGE_SIZE));
	if (t->huge_start >= 0)
		fprintf(f, "guest mapping's huge blocks: %lld as tracking started, %lld at fewest after a "
			   "round, %lld after it stopped, %lld after gmem_collapse() (%llu blocks pinned)\n",
			(long long)t->huge_start, (long long)t->huge_min, (long long)t->huge_stopped,
			(long long)t->huge_rehuged, (unsigned long long)t->busy);
}

void rounds_json(const struct rounds *t, FILE *f)
{
	fprintf(f, "{\"mode\": \"%s\", \"interval_ms\": %u, \"delay_ms\": %u, \"rounds_taken\": %u, "
		   "\"union_pages\": %llu,\n    \"huge_guest\": {\"at_start\": %lld, \"fewest\": %lld, "
		   "\"stopped\": %lld, \"collapsed\": %lld, \"pinned\": %llu},\n    \"per_round\": [",
		dirty_mode_name(t->cfg.mode), t->cfg.interval_ms, t->cfg.delay_ms, t->n,
		(unsigned long long)(t->seen ? popcount(t->seen, dirty_bitmap_words(&t->d)) : 0),
		(long long)t->huge_start, (long long)t->huge_min, (long long)t->huge_stopped,
		(long long)t->huge_rehuged, (unsigned long long)t->busy);
	for (unsigned int i = 0; i < t->n; i++) {
		const struct dirty_round *r = &t->r[i];

		fprintf(f, "%s\n      {\"at_end\": %s, \"dirty\": %llu, \"gmem\": %llu, \"kvm\": %llu, "
			   "\"collect_us\": %.1f, \"gmem_us\": %.1f, \"kvm_us\": %.1f}",
			i ? "," : "", t->at_end && i == t->n - 1 ? "true" : "false",
			(unsigned long long)r->pages, (unsigned long long)r->gmem_pages,
			(unsigned long long)r->kvm_pages, r->ns / 1e3, r->gmem_ns / 1e3, r->kvm_ns / 1e3);
	}
	fprintf(f, "]}");
}

void rounds_fini(struct rounds *t)
{
	if (t->map)
		fclose(t->map);
	dirty_stop(&t->d);
	free(t->bitmap);
	free(t->seen);
	free(t->r);
	t->map = NULL;
	t->bitmap = t->seen = NULL;
	t->r = NULL;
}
