// SPDX-License-Identifier: MIT
/*
 * main.c - gmem-vmm: a minimal KVM VMM whose guests convert their own
 * memory in place.  Command line, start-up in order, tear-down in reverse.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backing.h"
#include "dirty.h"
#include "kvm.h"
#include "loader.h"
#include "migration.h"
#include "rounds.h"
#include "save.h"
#include "snoop.h"
#include "vcpu.h"
#include "virtio_blk.h"

#define DEFAULT_MEM (256ULL << 20)
#define MIN_MEM (4ULL << 20)
#define MAX_MEM (64ULL << 30)

extern const char demo_guest_elf[], demo_guest_elf_end[];

struct options {
	uint64_t mem;
	int cpus;
	bool init_private, snoop, cpus_given, snoop_given, mem_given;
	int fault_signal;
	const struct backing *backing;
	int device_io; /* -1: the backing's default; 0: map; 1: copy */
	const char *disk, *stats, *guest;
	unsigned int timeout_s, disk_latency_ms;
	/* dirty tracking: track 0 = none */
	enum dirty_mode track;
	unsigned int dirty_rounds, dirty_interval_ms, dirty_delay_ms;
	const char *dirty_map;
	bool demo; /* the built-in demo: no GUEST, or a snapshot of it */
	/* snapshots */
	const char *save, *restore;
	bool save_dirty, save_continue, lazy;
	double save_after_s;               /* 0: not on a timer */
	unsigned int save_interval_ms;     /* --save-dirty: between checkpoints */
	const char *fixed;                 /* an option --restore takes from the snapshot */
	/* migration */
	const char *incoming, *migrate_to; /* tcp:HOST:PORT */
	double migrate_after_s;            /* 0: not on a timer */
	bool postcopy;                     /* --postcopy */
	unsigned int postcopy_rounds;      /* --postcopy-rounds */
	unsigned int max_downtime_ms;
};

static const char usage[] =
	"usage: gmem-vmm [options] [GUEST.elf]\n"
	"Run GUEST.elf (a static ELF64 x86-64 executable, see docs/BOOT.md) in a KVM VM\n"
	"whose RAM is a gmem object; without GUEST, run the built-in demo.\n"
	"\n"
	"  --mem SIZE              guest RAM, with K, M or G (default 256M, or one page of\n"
	"                          hugetlb-1g; 4M..64G, a multiple of 2M and of the backing's page)\n"
	"  --cpus N                vCPUs (default 1; the demo: 4)\n"
	"  --init private|shared   RAM's first state (default private)\n"
	"  --backing shmem|thp|hugetlb-2m|hugetlb-1g\n"
	"                          what RAM is made of (default shmem): 4 KiB pages, shmem\n"
	"                          transparent huge pages, or hugetlbfs pages from the pool\n"
	"  --device-io map|copy    how devices reach RAM: views (zero-copy) or gmem_read/\n"
	"                          gmem_write (default: map, copy on hugetlb, which needs it)\n"
	"  --disk FILE             virtio-blk disk image (default: a temporary 64 MiB one)\n"
	"  --disk-latency MS       hold each disk request MS milliseconds (a slow disk)\n"
	"  --fault-signal bus|segv what a host touch of private RAM raises (default bus)\n"
	"  --snoop / --no-snoop    a host thread reading all RAM (default: on for the demo)\n"
	"  --stats FILE.json       write the run's counters to FILE.json\n"
	"  --track kvm|gmem        track the pages written to RAM: KVM's dirty log for the\n"
	"                          guest's writes and gmem for the host's, or gmem for all\n"
	"  --dirty-rounds N        collect N rounds of them while the guest runs, then one\n"
	"                          at its end; each printed, and in --stats (default 0)\n"
	"  --dirty-interval MS     the time before each round (default 100)\n"
	"  --dirty-delay MS        start tracking MS after the guest (default 0: before it)\n"
	"  --dirty-map FILE        each round's pages, lines \"ROUND GPA PAGES\" (GPA in hex)\n"
	"  --timeout SECONDS       end the VM after SECONDS (exit status 124)\n"
	"  --save FILE             save the VM to FILE (a snapshot) on SIGUSR1 or at\n"
	"                          --save-after, then exit 0\n"
	"  --save-after SECONDS    save SECONDS into the run (a decimal: 2.5)\n"
	"  --save-continue         run on after a save (each save replaces FILE)\n"
	"  --save-dirty            checkpoints while the guest runs: FILE whole first, then\n"
	"                          FILE.1, FILE.2, ... each what changed since the one before\n"
	"  --save-interval MS      between --save-dirty checkpoints (default 1000)\n"
	"  --restore FILE          resume the VM saved in FILE (or FILE.N); no GUEST, and the\n"
	"                          machine's options come from the snapshot\n"
	"  --lazy                  with --restore: run at once, memory filled on first touch\n"
	"  --migrate-to tcp:HOST:PORT\n"
	"                          migrate the running VM to a gmem-vmm --incoming there\n"
	"                          (pre-copy) on SIGUSR2 or at --migrate-after; exit 0 once\n"
	"                          it runs the VM (a migration that fails: the VM runs on)\n"
	"  --migrate-after SECONDS migrate SECONDS into the run (a decimal: 2.5)\n"
	"  --max-downtime MS       the pause a migration aims at (default 50)\n"
	"  --postcopy              after one pre-copy round, the VM moves at once and its\n"
	"                          pages follow (fetched as touched, the rest pushed); exit 0\n"
	"                          once they are there; a connection lost then ends both\n"
	"  --postcopy-rounds N     pre-copy rounds before --postcopy moves the VM (0 to 32,\n"
	"                          default 1; 0: every page follows)\n"
	"  --incoming tcp:HOST:PORT\n"
	"                          wait there for one migration (--timeout bounds the wait),\n"
	"                          then run the VM it brings; no GUEST, and the machine's\n"
	"                          options come from the source\n"
	"  -h, --help              this text\n"
	"\n"
	"Exit status: the guest's (written to port 0x501), 1 for VMM errors, 124 on timeout.\n";

/* Every error is one line on stderr. */
static void __attribute__((format(printf, 1, 0))) vcomplain(const char *fmt, va_list ap)
{
	fputs("gmem-vmm: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static void __attribute__((format(printf, 1, 2))) complain(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vcomplain(fmt, ap);
	va_end(ap);
}

/* For the command line only: nothing is acquired yet, so nothing to undo. */
static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vcomplain(fmt, ap);
	va_end(ap);
	exit(1);
}

static bool parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return false;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v > (UINT64_MAX >> shift))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return !errno && end != s && !*end && *s != '-' && *out <= max;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	enum { O_MEM = 256, O_CPUS, O_INIT, O_DISK, O_LATENCY, O_SIGNAL, O_SNOOP, O_NO_SNOOP,
	       O_STATS, O_TIMEOUT, O_BACKING, O_DEVICE_IO, O_TRACK, O_DIRTY_ROUNDS,
	       O_DIRTY_INTERVAL, O_DIRTY_DELAY, O_DIRTY_MAP, O_SAVE, O_SAVE_AFTER, O_SAVE_CONTINUE,
	       O_SAVE_DIRTY, O_SAVE_INTERVAL, O_RESTORE, O_LAZY, O_INCOMING, O_MIGRATE_TO,
	       O_MIGRATE_AFTER, O_MAX_DOWNTIME, O_POSTCOPY, O_POSTCOPY_ROUNDS };
	static const struct option longopts[] = {
		{ "mem", required_argument, NULL, O_MEM },
		{ "cpus", required_argument, NULL, O_CPUS },
		{ "init", required_argument, NULL, O_INIT },
		{ "disk", required_argument, NULL, O_DISK },
		{ "disk-latency", required_argument, NULL, O_LATENCY },
		{ "fault-signal", required_argument, NULL, O_SIGNAL },
		{ "snoop", no_argument, NULL, O_SNOOP },
		{ "no-snoop", no_argument, NULL, O_NO_SNOOP },
		{ "stats", required_argument, NULL, O_STATS },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "backing", required_argument, NULL, O_BACKING },
		{ "device-io", required_argument, NULL, O_DEVICE_IO },
		{ "track", required_argument, NULL, O_TRACK },
		{ "dirty-rounds", required_argument, NULL, O_DIRTY_ROUNDS },
		{ "dirty-interval", required_argument, NULL, O_DIRTY_INTERVAL },
		{ "dirty-delay", required_argument, NULL, O_DIRTY_DELAY },
		{ "dirty-map", required_argument, NULL, O_DIRTY_MAP },
		{ "save", required_argument, NULL, O_SAVE },
		{ "save-after", required_argument, NULL, O_SAVE_AFTER },
		{ "save-continue", no_argument, NULL, O_SAVE_CONTINUE },
		{ "save-dirty", no_argument, NULL, O_SAVE_DIRTY },
		{ "save-interval", required_argument, NULL, O_SAVE_INTERVAL },
		{ "restore", required_argument, NULL, O_RESTORE },
		{ "lazy", no_argument, NULL, O_LAZY },
		{ "incoming", required_argument, NULL, O_INCOMING },
		{ "migrate-to", required_argument, NULL, O_MIGRATE_TO },
		{ "migrate-after", required_argument, NULL, O_MIGRATE_AFTER },
		{ "max-downtime", required_argument, NULL, O_MAX_DOWNTIME },
		{ "postcopy", no_argument, NULL, O_POSTCOPY },
		{ "postcopy-rounds", required_argument, NULL, O_POSTCOPY_ROUNDS },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *dirty_option = NULL; /* one that needs --track */
	const char *save_option = NULL;  /* one that needs --save */
	const char *migrate_option = NULL; /* one that needs --migrate-to */
	bool postcopy_rounds_given = false;
	bool interval_given = false;
	char *end;
	unsigned long v;
	int c;

	*o = (struct options){ .mem = DEFAULT_MEM, .cpus = 1, .init_private = true,
			       .fault_signal = SIGBUS, .backing = backing_find("shmem"),
			       .device_io = -1, .dirty_interval_ms = 100, .save_interval_ms = 1000,
			       .max_downtime_ms = 50, .postcopy_rounds = 1 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_MEM:
			o->fixed = "--mem";
			if (!parse_size(optarg, &o->mem) || o->mem < MIN_MEM || o->mem > MAX_MEM ||
			    o->mem % (2ULL << 20))
				die("--mem %s: want a multiple of 2M from 4M to 64G", optarg);
			o->mem_given = true;
			break;
		case O_CPUS:
			o->fixed = "--cpus";
			if (!parse_uint(optarg, MAX_VCPUS, &v) || !v)
				die("--cpus %s: want 1 to %d", optarg, MAX_VCPUS);
			o->cpus = (int)v;
			o->cpus_given = true;
			break;
		case O_INIT:
			o->fixed = "--init";
			if (strcmp(optarg, "private") && strcmp(optarg, "shared"))
				die("--init %s: want private or shared", optarg);
			o->init_private = !strcmp(optarg, "private");
			break;
		case O_DISK:
			o->disk = optarg;
			break;
		case O_LATENCY:
			o->fixed = "--disk-latency";
			if (!parse_uint(optarg, 60000, &v))
				die("--disk-latency %s: want milliseconds, at most 60000", optarg);
			o->disk_latency_ms = (unsigned int)v;
			break;
		case O_SIGNAL:
			o->fixed = "--fault-signal";
			if (strcmp(optarg, "bus") && strcmp(optarg, "segv"))
				die("--fault-signal %s: want bus or segv", optarg);
			o->fault_signal = !strcmp(optarg, "bus") ? SIGBUS : SIGSEGV;
			break;
		case O_SNOOP:
		case O_NO_SNOOP:
			o->fixed = c == O_SNOOP ? "--snoop" : "--no-snoop";
			o->snoop = c == O_SNOOP;
			o->snoop_given = true;
			break;
		case O_STATS:
			o->stats = optarg;
			break;
		case O_BACKING:
			o->fixed = "--backing";
			o->backing = backing_find(optarg);
			if (!o->backing)
				die("--backing %s: want %s", optarg, backing_names());
			break;
		case O_DEVICE_IO:
			o->fixed = "--device-io";
			if (strcmp(optarg, "map") && strcmp(optarg, "copy"))
				die("--device-io %s: want map or copy", optarg);
			o->device_io = !strcmp(optarg, "copy");
			break;
		case O_TRACK:
			if (dirty_mode_parse(optarg, &o->track))
				die("--track %s: want kvm or gmem", optarg);
			break;
		case O_DIRTY_ROUNDS:
			if (!parse_uint(optarg, 100000, &v))
				die("--dirty-rounds %s: want 0 to 100000", optarg);
			o->dirty_rounds = (unsigned int)v;
			dirty_option = "--dirty-rounds";
			break;
		case O_DIRTY_INTERVAL:
			if (!parse_uint(optarg, 60000, &v) || !v)
				die("--dirty-interval %s: want 1 to 60000 milliseconds", optarg);
			o->dirty_interval_ms = (unsigned int)v;
			dirty_option = "--dirty-interval";
			break;
		case O_DIRTY_DELAY:
			if (!parse_uint(optarg, 3600000, &v))
				die("--dirty-delay %s: want milliseconds, at most 3600000", optarg);
			o->dirty_delay_ms = (unsigned int)v;
			dirty_option = "--dirty-delay";
			break;
		case O_DIRTY_MAP:
			o->dirty_map = optarg;
			dirty_option = "--dirty-map";
			break;
		case O_TIMEOUT:
			if (!parse_uint(optarg, 86400, &v) || !v)
				die("--timeout %s: want 1 to 86400 seconds", optarg);
			o->timeout_s = (unsigned int)v;
			break;
		case O_SAVE:
			o->save = optarg;
			break;
		case O_SAVE_AFTER:
			errno = 0;
			o->save_after_s = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(o->save_after_s > 0) ||
			    o->save_after_s > 86400)
				die("--save-after %s: want seconds, above 0 and at most 86400", optarg);
			save_option = "--save-after";
			break;
		case O_SAVE_CONTINUE:
			o->save_continue = true;
			save_option = "--save-continue";
			break;
		case O_SAVE_DIRTY:
			o->save_dirty = true;
			save_option = "--save-dirty";
			break;
		case O_SAVE_INTERVAL:
			if (!parse_uint(optarg, 3600000, &v) || !v)
				die("--save-interval %s: want 1 to 3600000 milliseconds", optarg);
			o->save_interval_ms = (unsigned int)v;
			interval_given = true;
			break;
		case O_RESTORE:
			o->restore = optarg;
			break;
		case O_LAZY:
			o->lazy = true;
			break;
		case O_INCOMING:
			o->incoming = optarg;
			break;
		case O_MIGRATE_TO:
			o->migrate_to = optarg;
			break;
		case O_MIGRATE_AFTER:
			errno = 0;
			o->migrate_after_s = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(o->migrate_after_s > 0) ||
			    o->migrate_after_s > 86400)
				die("--migrate-after %s: want seconds, above 0 and at most 86400", optarg);
			migrate_option = "--migrate-after";
			break;
		case O_MAX_DOWNTIME:
			if (!parse_uint(optarg, 60000, &v) || !v)
				die("--max-downtime %s: want 1 to 60000 milliseconds", optarg);
			o->max_downtime_ms = (unsigned int)v;
			migrate_option = "--max-downtime";
			break;
		case O_POSTCOPY:
			o->postcopy = true;
			migrate_option = "--postcopy";
			break;
		case O_POSTCOPY_ROUNDS:
			if (!parse_uint(optarg, MIG_ROUNDS_MAX, &v))
				die("--postcopy-rounds %s: want 0 to %d rounds", optarg, MIG_ROUNDS_MAX);
			o->postcopy_rounds = (unsigned int)v;
			postcopy_rounds_given = true;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			die("%s: unknown option (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc - 1)
		die("one guest program at most (see --help)");
	if (dirty_option && !o->track)
		die("%s: needs --track kvm|gmem", dirty_option);
	if (save_option && !o->save)
		die("%s: needs --save FILE", save_option);
	if (interval_given && !o->save_dirty)
		die("--save-interval: needs --save-dirty");
	if (o->lazy && !o->restore)
		die("--lazy: needs --restore FILE");
	if (o->track && (o->save || o->restore))
		die("--track with --%s: one at a time (both track the guest's writes)",
		    o->save ? "save" : "restore");
	if (o->incoming || o->migrate_to) {
		char why[256];

		if (mig_check_addr(o->incoming ? o->incoming : o->migrate_to, why, sizeof(why)))
			die("--%s %s", o->incoming ? "incoming" : "migrate-to", why);
	}
	if (migrate_option && !o->migrate_to)
		die("%s: needs --migrate-to tcp:HOST:PORT", migrate_option);
	if (postcopy_rounds_given && !o->postcopy)
		die("--postcopy-rounds: needs --postcopy");
	if (o->migrate_to && (o->save || o->track))
		die("--migrate-to with --%s: one at a time (both track the guest's writes)",
		    o->save ? "save" : "track");
	if (o->incoming && (o->restore || o->save || o->migrate_to || o->track))
		die("--incoming with --%s: the VM comes from the source",
		    o->restore ? "restore" : o->save ? "save" : o->migrate_to ? "migrate-to" : "track");
	if (o->incoming) {
		if (o->fixed)
			die("%s: --incoming takes the machine from the source", o->fixed);
		if (optind < argc)
			die("%s: --incoming runs the source's guest, not another", argv[optind]);
		return;
	}
	if (o->restore) {
		/* the machine is the snapshot's: main() fills the rest in from it */
		if (o->fixed)
			die("%s: --restore takes the machine from the snapshot", o->fixed);
		if (optind < argc)
			die("%s: --restore resumes the snapshot's guest, not another", argv[optind]);
		return;
	}
	if (!o->mem_given && o->mem < o->backing->page)
		o->mem = o->backing->page; /* hugetlb-1g: one page */
	if (o->mem % o->backing->page)
		die("--mem %llu MiB: --backing %s wants a multiple of its %llu %s page",
		    (unsigned long long)(o->mem >> 20), o->backing->name,
		    (unsigned long long)(o->backing->page >> (o->backing->page >> 30 ? 30 : 20)),
		    o->backing->page >> 30 ? "GiB" : "MiB");
	if (o->backing->hugetlb && o->device_io == 0)
		die("--device-io map: --backing %s needs copy (a view refuses a huge page with any "
		    "private piece, and the guest keeps private pages beside its rings and buffers)",
		    o->backing->name);
	o->guest = optind < argc ? argv[optind] : NULL;
	o->demo = !o->guest;
	if (!o->guest) { /* the demo's defaults */
		if (!o->cpus_given)
			o->cpus = 4;
		if (!o->snoop_given)
			o->snoop = true;
	}
	if ((uint64_t)o->cpus * STACK_SIZE + BOOT_LOAD_MIN + (1ULL << 20) >
	    (o->mem < LOW_RAM_MAX ? o->mem : LOW_RAM_MAX))
		die("--mem %llu MiB is too small for %d vCPU stacks", (unsigned long long)(o->mem >> 20),
		    o->cpus);
}

/*
 * The guest program's bytes: the file mapped, or the built-in demo.  NULL
 * with a message printed if the file cannot be read.
 */
static const void *read_guest(const char *path, size_t *size)
{
	struct stat st;
	void *p = NULL;
	int fd;

	if (!path) {
		*size = (size_t)(demo_guest_elf_end - demo_guest_elf);
		return demo_guest_elf;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		complain("%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st))
		complain("%s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode) || st.st_size == 0)
		complain("%s: not an ELF file", path);
	else if ((p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED)
		complain("%s: %s", path, strerror(errno));
	else
		*size = (size_t)st.st_size;
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

static void release_guest(const char *path, const void *elf, size_t size)
{
	if (path)
		munmap((void *)elf, size);
}

struct report {
	double seconds;
	struct gmem_stats gm;
	struct gmem_huge_info huge; /* as the run ended, before tear-down */
	int64_t kvm_pages[3];       /* KVM's 4K, 2M, 1G mappings then; -1: not reported */
	struct vblk_stats blk;
	struct snoop_stats snoop;
	int destroy_err;
	const struct rounds *track; /* --track: the rounds; NULL without */
	/* snapshots */
	const struct snap_run *snap;
	bool saved_exit;    /* the run ended in a save: no summary, status 0 */
	const char *restored; /* --restore FILE, or NULL */
	bool lazy;
	uint64_t restore_bytes;
	double first_ms, filled_ms; /* from the start of gmem-vmm; filled_ms < 0: not filled */
	int fill_err;
	const struct mig_report *migration; /* --incoming or --migrate-to; NULL without */
};

static void snapshot_json(FILE *f, const struct report *r)
{
	const struct snap_run *s = r->snap;

	fprintf(f, ",\n  \"snapshot\": {\"saves\": %u", s->saves);
	if (s->saves)
		fprintf(f, ", \"last_save\": \"%s\", \"save_bytes\": %llu, \"save_pause_ms\": %.1f, "
			   "\"save_write_ms\": %.1f",
			s->last, (unsigned long long)s->bytes, s->pause_ms, s->write_ms);
	if (r->restored) {
		fprintf(f, ", \"restored\": \"%s\", \"restore_mode\": \"%s\", \"restore_bytes\": %llu, "
			   "\"first_instruction_ms\": %.1f, \"filled_ms\": ",
			r->restored, r->lazy ? "lazy" : "eager", (unsigned long long)r->restore_bytes,
			r->first_ms);
		if (r->filled_ms >= 0)
			fprintf(f, "%.1f", r->filled_ms);
		else
			fprintf(f, "null");
		fprintf(f, ", \"fill_error\": %d", r->fill_err);
		fprintf(f, ", \"restored_halted\": %d", s->restored_halted);
	}
	fprintf(f, "}");
}

static void write_stats(const char *path, const struct vm *vm, const struct report *r, int status)
{
	FILE *f = fopen(path, "w");
	char kvm[3][24];

	if (!f) {
		fprintf(stderr, "gmem-vmm: %s: %s\n", path, strerror(errno));
		return;
	}
	for (int k = 0; k < 3; k++) {
		if (r->kvm_pages[k] < 0)
			snprintf(kvm[k], sizeof(kvm[k]), "null");
		else
			snprintf(kvm[k], sizeof(kvm[k]), "%lld", (long long)r->kvm_pages[k]);
	}
	fprintf(f, "{\n  \"exit_status\": %d,\n  \"seconds\": %.3f,\n  \"vcpus\": %d,\n"
		   "  \"ram_bytes\": %llu,\n  \"backing\": \"%s\",\n  \"device_io\": \"%s\",\n",
		status, r->seconds, vm->ncpus, (unsigned long long)vm->ram_size, vm->backing_name,
		vm->copy_io ? "copy" : "map");
	fprintf(f, "  \"gmem\": {\"conversions\": %llu, \"pages_to_private\": %llu, "
		   "\"pages_to_shared\": %llu, \"convert_eagain\": %llu, \"convert_deferred\": %llu, "
		   "\"host_faults\": %llu, \"host_faults_denied\": %llu, \"pins_active\": %llu},\n",
		(unsigned long long)r->gm.conversions, (unsigned long long)r->gm.pages_to_private,
		(unsigned long long)r->gm.pages_to_shared, (unsigned long long)r->gm.convert_eagain,
		(unsigned long long)r->gm.convert_deferred, (unsigned long long)r->gm.host_faults,
		(unsigned long long)r->gm.host_faults_denied, (unsigned long long)r->gm.pins_active);
	fprintf(f, "  \"hypercalls\": {\"total\": %llu, \"to_private\": %llu, \"to_shared\": %llu, "
		   "\"pages\": %llu, \"eagain\": %llu, \"einval\": %llu, \"other_errors\": %llu},\n",
		(unsigned long long)vm->n.hypercalls, (unsigned long long)vm->n.hc_to_private,
		(unsigned long long)vm->n.hc_to_shared, (unsigned long long)vm->n.hc_pages,
		(unsigned long long)vm->n.hc_eagain, (unsigned long long)vm->n.hc_einval,
		(unsigned long long)vm->n.hc_other_errors);
	fprintf(f, "  \"disk\": {\"requests\": %llu, \"bytes_read\": %llu, \"bytes_written\": %llu, "
		   "\"errors\": %llu, \"no_status\": %llu, \"cancelled\": %llu},\n",
		(unsigned long long)r->blk.requests, (unsigned long long)r->blk.bytes_read,
		(unsigned long long)r->blk.bytes_written, (unsigned long long)r->blk.errors,
		(unsigned long long)r->blk.no_status, (unsigned long long)r->blk.cancelled);
	fprintf(f, "  \"snoop\": {\"passes\": %llu, \"pages_read\": %llu, \"denied\": %llu, "
		   "\"copied\": %llu, \"copy_denied\": %llu, \"secrets_seen\": %llu, \"audits\": %llu, "
		   "\"audit_failures\": %llu},\n",
		(unsigned long long)r->snoop.passes, (unsigned long long)r->snoop.pages_read,
		(unsigned long long)r->snoop.denied, (unsigned long long)r->snoop.copied,
		(unsigned long long)r->snoop.copy_denied, (unsigned long long)r->snoop.secrets_seen,
		(unsigned long long)r->snoop.audits, (unsigned long long)r->snoop.audit_failures);
	fprintf(f, "  \"huge\": {\"page_size\": %llu, \"blocks\": %llu, \"blocks_populated\": %llu, "
		   "\"blocks_guest_huge\": %llu, \"splits\": %llu, \"merges\": %llu},\n",
		(unsigned long long)r->huge.page_size, (unsigned long long)r->huge.blocks,
		(unsigned long long)r->huge.blocks_populated,
		(unsigned long long)r->huge.blocks_guest_huge, (unsigned long long)r->huge.splits,
		(unsigned long long)r->huge.merges);
	fprintf(f, "  \"kvm\": {\"pages_4k\": %s, \"pages_2m\": %s, \"pages_1g\": %s},\n", kvm[0],
		kvm[1], kvm[2]);
	fprintf(f, "  \"mmio_unclaimed\": %llu", (unsigned long long)vm->n.mmio_unclaimed);
	if (r->track) {
		fprintf(f, ",\n  \"dirty\": ");
		rounds_json(r->track, f);
	}
	if (r->snap && (r->snap->save || (r->restored && !r->migration)))
		snapshot_json(f, r);
	if (r->migration) {
		fprintf(f, ",\n  \"migration\": ");
		migration_json(r->migration, f);
	}
	fprintf(f, "\n}\n");
	fclose(f);
}

/* The demo's summary; true if every host-side check held. */
static bool demo_summary(const struct vm *vm, const struct report *r, int status)
{
	uint64_t conversions = vm->n.hc_to_private + vm->n.hc_to_shared;
	bool secret_kept = r->snoop.secrets_seen == 0, audits_clean = r->snoop.audit_failures == 0;
	bool clean_exit = r->destroy_err == 0, ok = status == 0 && secret_kept && audits_clean &&
						    clean_exit && r->snoop.denied > 0;

	printf("\n== gmem-vmm demo: %d vCPUs, %llu MiB of %s RAM on %s (devices %s), %.2f s\n",
	       vm->ncpus, (unsigned long long)(vm->ram_size >> 20),
	       vm->init_private ? "private" : "shared", vm->backing_name,
	       vm->copy_io ? "copy" : "map", r->seconds);
	if (r->migration && r->migration->incoming)
		printf("migrated         from a gmem-vmm on %s: %u rounds, %llu pages, handed over "
		       "%.0f ms after it began\n",
		       r->restored, r->migration->nrounds,
		       (unsigned long long)r->migration->pages_sent, r->migration->total_ms);
	else if (r->restored && !r->migration)
		printf("restored         from %s (%s), the guest's first instruction %.0f ms in, "
		       "memory filled %s%.0f ms in\n",
		       r->restored, r->lazy ? "lazily" : "eagerly", r->first_ms,
		       r->filled_ms < 0 ? "(not yet) " : "", r->filled_ms < 0 ? 0 : r->filled_ms);
	printf("conversions      %llu (%llu pages) by the guest, %.0f conversions/s\n",
	       (unsigned long long)conversions, (unsigned long long)vm->n.hc_pages,
	       conversions / (r->seconds > 0 ? r->seconds : 1));
	printf("-EAGAIN retries  %llu (a buffer still pinned by disk I/O)\n",
	       (unsigned long long)vm->n.hc_eagain);
	printf("disk             %llu requests, %llu bytes read, %llu written\n",
	       (unsigned long long)r->blk.requests, (unsigned long long)r->blk.bytes_read,
	       (unsigned long long)r->blk.bytes_written);
	printf("host snoop       %llu pages read in %llu passes, %llu touches denied (%llu by gmem)\n",
	       (unsigned long long)r->snoop.pages_read, (unsigned long long)r->snoop.passes,
	       (unsigned long long)r->snoop.denied, (unsigned long long)r->gm.host_faults_denied);
	if (r->snoop.copied || r->snoop.copy_denied)
		printf("                 %llu pages copied by gmem_read() where the view refused, "
		       "%llu copies refused\n",
		       (unsigned long long)r->snoop.copied, (unsigned long long)r->snoop.copy_denied);
	if (r->huge.page_size > GMEM_PAGE_SIZE) {
		printf("huge pages       %llu of %llu %llu MiB blocks populated, %llu mapped whole by the "
		       "guest mapping",
		       (unsigned long long)r->huge.blocks_populated, (unsigned long long)r->huge.blocks,
		       (unsigned long long)(r->huge.page_size >> 20),
		       (unsigned long long)r->huge.blocks_guest_huge);
		if (r->kvm_pages[0] >= 0 && r->kvm_pages[1] >= 0 && r->kvm_pages[2] >= 0)
			printf("; KVM maps %lld 4K, %lld 2M, %lld 1G pages", (long long)r->kvm_pages[0],
			       (long long)r->kvm_pages[1], (long long)r->kvm_pages[2]);
		printf("\n");
	}
	printf("checks           guest checks %s; secret seen by the host %llu times; "
	       "audits %llu/%llu clean; pins all released %s\n",
	       status == 0 ? "held" : "FAILED", (unsigned long long)r->snoop.secrets_seen,
	       (unsigned long long)(r->snoop.audits - r->snoop.audit_failures),
	       (unsigned long long)r->snoop.audits, clean_exit ? "yes" : "NO");
	printf("%s\n", ok ? "every check held" : "SOME CHECKS FAILED");
	return ok;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * What the run comes to: its stderr lines, the --stats file, the demo's
 * summary; the exit status, the guest's unless a host-side check failed.
 */
static int conclude(const struct options *o, const struct vm *vm, const struct report *r,
		    int status)
{
	if (r->snoop.secrets_seen || r->snoop.audit_failures) {
		complain("the host snoop read the guest's secret %llu times; "
			 "%llu audits found private memory mapped",
			 (unsigned long long)r->snoop.secrets_seen,
			 (unsigned long long)r->snoop.audit_failures);
		if (!status)
			status = 1;
	}
	if (o->stats)
		write_stats(o->stats, vm, r, status);
	if (r->saved_exit) { /* the run goes on elsewhere: its summary is the restore's */
		fflush(stdout);
		return status;
	}
	if (r->track)
		rounds_print(r->track, vm, stdout);
	if (o->demo && !demo_summary(vm, r, status) && !status)
		status = 1;
	fflush(stdout);
	return status;
}

static void add_stats(void *dst, const void *src, size_t bytes)
{
	uint64_t *d = dst;
	const uint64_t *s = src;

	for (size_t i = 0; i < bytes / 8; i++)
		d[i] += s[i];
}

/* The machine a snapshot describes, as options: false (a line printed) if it makes no sense. */
static bool restore_options(struct options *o, const struct snapv_in *in)
{
	const struct snapv_config *c;
	uint64_t len;

	c = snapv_find(in, SEC_CONFIG, 0, &len);
	if (!c || len != sizeof(*c) || !c->ncpus || c->ncpus > MAX_VCPUS ||
	    !(o->backing = backing_of_type(c->backing)) || c->ram_size < MIN_MEM ||
	    c->ram_size > MAX_MEM || c->ram_size % o->backing->page || c->ram_size % (2ULL << 20) ||
	    (c->fault_signal != SIGBUS && c->fault_signal != SIGSEGV) ||
	    c->disk_gpa != VIRTIO_BLK_MMIO || c->irqchip ||
	    (uint64_t)c->ncpus * STACK_SIZE + BOOT_LOAD_MIN + (1ULL << 20) >
		    (c->ram_size < LOW_RAM_MAX ? c->ram_size : LOW_RAM_MAX)) {
		complain("%s: corrupted: its machine makes no sense", in->path);
		return false;
	}
	o->mem = c->ram_size;
	o->cpus = (int)c->ncpus;
	o->init_private = c->flags & CFG_INIT_PRIVATE;
	o->fault_signal = c->fault_signal;
	o->device_io = (c->flags & CFG_COPY_IO) != 0;
	o->demo = c->flags & CFG_DEMO;
	o->snoop = c->flags & CFG_SNOOP;
	if (o->backing->hugetlb && !o->device_io) {
		complain("%s: corrupted: devices on views on hugetlbfs", in->path);
		return false;
	}
	return true;
}

/* The disk a restore opens: --disk, the snapshot's own, or NULL for its temporary one. */
static const char *restore_disk(const struct options *o, const struct snapv_in *in, char *buf,
				size_t size)
{
	uint64_t len;
	const char *p = snapv_find(in, SEC_DISK_PATH, 0, &len);

	if (o->disk || !p)
		return o->disk;
	if (len >= size)
		len = size - 1;
	memcpy(buf, p, len);
	buf[len] = '\0';
	return buf;
}

/*
 * The main thread's beat while a save or a migration may come: 20 ms (how
 * soon a signal's begins), or less if the VM ends.  false once it has
 * ended, or timed out (ended here with 124); else *now.
 */
static bool tick(const struct options *o, struct vm *vm, double t_run, double *now)
{
	struct timespec wake;

	clock_gettime(CLOCK_MONOTONIC, &wake);
	wake.tv_nsec += 20000000L;
	if (wake.tv_nsec >= 1000000000L) {
		wake.tv_sec++;
		wake.tv_nsec -= 1000000000L;
	}
	if (vm_wait_until(vm, &wake))
		return false;
	*now = now_s();
	if (o->timeout_s && *now - t_run >= o->timeout_s) {
		vm_end(vm, 124, "timed out after %u s", o->timeout_s);
		return false;
	}
	return true;
}

static volatile sig_atomic_t save_requested;

static void on_save_signal(int sig)
{
	(void)sig;
	save_requested = 1;
}

/*
 * Run the guest to its end with --save: checkpoints on SIGUSR1, at
 * --save-after and every --save-interval (--save-dirty).  The VM ends
 * with status 0 after a save that does not go on; a save that fails ends
 * it with an error.
 */
static void save_run(const struct options *o, struct snap_run *sr, struct report *rep,
		     double t_run)
{
	struct vm *vm = sr->vm;
	double next_interval = t_run + o->save_interval_ms / 1e3;
	bool after_done = !o->save_after_s;
	char why[600];

	for (;;) {
		double now;
		bool want, interval;
		int err;

		if (!tick(o, vm, t_run, &now))
			return;
		want = save_requested;
		save_requested = 0;
		if (!after_done && now - t_run >= o->save_after_s)
			want = after_done = true;
		interval = o->save_dirty && now >= next_interval;
		if (!want && !interval)
			continue;
		err = snap_checkpoint(sr, want && !o->save_continue, why, sizeof(why));
		if (err == -ECANCELED)
			return; /* the VM ended first: nothing saved */
		if (err) {
			vm_end(vm, 1, "saving: %s", why);
			return;
		}
		printf("gmem-vmm: saved %s: %.1f MiB, the vCPUs paused %.0f ms\n", sr->last,
		       sr->bytes / 1048576.0, sr->pause_ms);
		fflush(stdout);
		if (want && !o->save_continue) {
			rep->saved_exit = true;
			vm_end(vm, 0, NULL);
			return;
		}
		next_interval = now_s() + o->save_interval_ms / 1e3;
	}
}

static volatile sig_atomic_t migrate_requested;

static void on_migrate_signal(int sig)
{
	(void)sig;
	migrate_requested = 1;
}

/*
 * Run the guest with --migrate-to: a migration on SIGUSR2 or at
 * --migrate-after.  One that succeeds ends the VM here with status 0 (it
 * runs on at the destination); one that fails says why and the VM runs
 * on - SIGUSR2 tries again.
 */
static void migrate_run(const struct options *o, struct snap_run *sr, struct report *rep,
			struct mig_report *mig, double t_run)
{
	struct mig_options mo = { .addr = o->migrate_to, .max_downtime_ms = o->max_downtime_ms,
				  .postcopy = o->postcopy, .postcopy_rounds = o->postcopy_rounds };
	struct vm *vm = sr->vm;
	bool after_done = !o->migrate_after_s;
	char why[600];

	for (;;) {
		double now;
		bool want;
		int err;

		if (!tick(o, vm, t_run, &now))
			return;
		want = migrate_requested;
		migrate_requested = 0;
		if (!after_done && now - t_run >= o->migrate_after_s)
			want = after_done = true;
		if (!want)
			continue;
		err = migrate_out(sr, &mo, mig, why, sizeof(why));
		if (err == -ECANCELED)
			return; /* the VM ended first */
		rep->migration = mig;
		if (err == -ENOTRECOVERABLE) {
			/* the run was the destination's: no summary of it here */
			rep->saved_exit = true;
			vm_end(vm, 1, "migration failed: %s", why);
			return;
		}
		if (err) {
			complain("migration failed: %s; the VM runs on", why);
			continue;
		}
		if (mig->postcopy)
			printf("gmem-vmm: migrated to %s (post-copy): the vCPUs paused %.0f ms; "
			       "%llu pages sent in the first round, then %llu fetched on touch "
			       "(%llu asks) and %llu pushed, all there %.0f ms after the hand-over\n",
			       o->migrate_to, mig->downtime_ms,
			       (unsigned long long)mig->rounds[0].pages,
			       (unsigned long long)mig->pc.pages_fetched,
			       (unsigned long long)mig->pc.fetches,
			       (unsigned long long)mig->pc.pages_pushed, mig->pc.ms);
		else
			printf("gmem-vmm: migrated to %s: %u rounds, %llu pages sent for %llu "
			       "populated, the vCPUs paused %.0f ms\n",
			       o->migrate_to, mig->nrounds, (unsigned long long)mig->pages_sent,
			       (unsigned long long)mig->pages_populated, mig->downtime_ms);
		fflush(stdout);
		rep->saved_exit = true; /* the run goes on there: no summary here */
		vm_end(vm, 0, NULL);
		return;
	}
}

/* A lazy restore's filling, watched: when it is done, and how. */
struct filler {
	struct gmem *g;
	pthread_t thread;
	_Atomic bool stop;
	double t0, done_ms; /* done_ms < 0 until filled */
	int err;
};

static void *filler_main(void *arg)
{
	struct filler *f = arg;
	int err;

	while ((err = gmem_restore_wait(f->g, 100)) == -ETIMEDOUT && !atomic_load(&f->stop))
		;
	if (err != -ETIMEDOUT) {
		f->err = err;
		f->done_ms = (now_s() - f->t0) * 1e3;
	}
	return NULL;
}

/*
 * Start-up in order, tear-down in reverse: a failed step prints its one
 * line and undoes the steps before it, the way a run ends undoes them all.
 */
int main(int argc, char **argv)
{
	struct options o;
	struct vm vm = { .kvm_fd = -1, .vm_fd = -1 };
	struct gmem_config cfg = { 0 };
	struct report rep = { 0 };
	struct rounds track = { 0 };
	struct snapv_in in = { .mem_fd = -1 };
	struct snap_run sr = { 0 };
	struct filler fill = { .done_ms = -1 };
	struct mig_conn mconn = { .fd = -1 };
	struct mig_report mig = { 0 };
	struct vblk_dev *blk;
	struct image img = { 0 };
	const void *elf = NULL;
	size_t elf_size = 0;
	char why[600], disk_buf[4096];
	const char *disk;
	void *view;
	bool ran = false, filling = false;
	double t0, t_start = now_s();
	int err, status = 1;

	parse_options(argc, argv, &o);
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	if (o.incoming || o.migrate_to)
		signal(SIGPIPE, SIG_IGN); /* a peer gone is an error of the call, not the end */
	if (o.incoming) {
		int lfd;

		if (mig_listen(o.incoming, &lfd, why, sizeof(why))) {
			complain("--incoming %s", why);
			return 1;
		}
		printf("gmem-vmm: waiting for a migration on %s\n", o.incoming);
		fflush(stdout);
		err = mig_accept(lfd, o.timeout_s, &mconn, why, sizeof(why));
		close(lfd);
		if (!err) {
			mig_set_timeout(&mconn, 30);
			mig.addr = o.incoming;
			err = mig_watch_start(&mconn);
			if (err)
				snprintf(why, sizeof(why), "watching the connection: %s", strerror(-err));
		}
		if (!err)
			err = migrate_in_hello(&mconn, &in, &mig, why, sizeof(why));
		if (err) {
			complain("%s", why);
			mig_close(&mconn);
			snapv_close(&in);
			return 1;
		}
		if (!restore_options(&o, &in)) {
			mig_close(&mconn);
			snapv_close(&in);
			return 1;
		}
		rep.restored = o.incoming;
		rep.migration = &mig;
	}
	if (o.restore) {
		/* checked whole before anything is made of it */
		if (snapv_open(o.restore, &in, why, sizeof(why))) {
			complain("%s", why);
			return 1;
		}
		if (!restore_options(&o, &in)) {
			snapv_close(&in);
			return 1;
		}
		rep.restored = o.restore;
		rep.lazy = o.lazy;
		rep.restore_bytes = in.mem_bytes;
	}
	rep.filled_ms = -1;
	rep.snap = &sr;
	disk = o.restore ? restore_disk(&o, &in, disk_buf, sizeof(disk_buf)) : o.disk;
	vm.ram_size = o.mem;
	vm.ncpus = o.cpus;
	vm.init_private = o.init_private;
	vm.fault_signal = o.fault_signal;
	vm.backing = o.backing->type;
	vm.backing_name = o.backing->name;
	vm.copy_io = o.device_io < 0 ? o.backing->hugetlb : o.device_io;
	atomic_init(&vm.dirty_rounds, -1);
	gpa_map_init(&vm.map, vm.ram_size);
	if (o.track) {
		struct rounds_config rc = { .mode = o.track, .rounds = o.dirty_rounds,
					    .interval_ms = o.dirty_interval_ms,
					    .delay_ms = o.dirty_delay_ms, .map = o.dirty_map };

		if (rounds_init(&track, &rc))
			goto err_snap;
		rep.track = &track;
	}
	err = vm_end_init(&vm);
	if (err) {
		complain("%s", strerror(-err));
		goto err_track;
	}

	if (!o.restore) { /* a restore needs no program: it is in the memory */
		elf = read_guest(o.guest, &elf_size);
		if (!elf)
			goto err_end;
		if (elf_parse(&vm, elf, elf_size, &img, why, sizeof(why))) {
			complain("%s: %s", o.guest ? o.guest : "built-in demo", why);
			goto err_guest;
		}
	}

	cfg.size = vm.ram_size;
	cfg.backing = vm.backing;
	cfg.flags = o.init_private ? GMEM_F_INIT_PRIVATE : 0;
	cfg.fault_signal = o.fault_signal;
	err = gmem_create(&cfg, &vm.mem);
	if (err) {
		backing_explain(o.backing, vm.ram_size, err, why, sizeof(why));
		complain("%s", why);
		goto err_guest;
	}
	if (o.incoming) { /* every round into the object before anything maps it */
		if (migrate_in_memory(&mconn, &vm, &in, &mig, why, sizeof(why))) {
			complain("%s", why);
			goto err_mem;
		}
		disk = restore_disk(&o, &in, disk_buf, sizeof(disk_buf));
		rep.filled_ms = (now_s() - t_start) * 1e3;
	}
	if (o.restore) { /* into the object before anything maps it */
		off_t at = lseek(in.mem_fd, 0, SEEK_CUR);
		struct progress *pr = o.lazy ? NULL
					     : progress_start("restoring", in.mem_fd, (uint64_t)at,
							      in.mem_bytes);

		err = gmem_restore(vm.mem, in.mem_fd, o.lazy ? GMEM_RESTORE_LAZY : 0);
		progress_stop(pr);
		if (err == -EBADMSG)
			complain("%s: corrupted: its memory does not check", o.restore);
		else if (err == -EXDEV)
			complain("%s: its memory's layers do not follow one another", o.restore);
		else if (err == -EINVAL)
			complain("%s: corrupted: its memory is not its RAM's size", o.restore);
		else if (err == -ENOMEM || err == -EOPNOTSUPP)
			backing_explain(o.backing, vm.ram_size, err, why, sizeof(why)), complain("%s", why);
		else if (err)
			complain("%s: restoring its memory: %s", o.restore, strerror(-err));
		if (err)
			goto err_mem;
		if (!o.lazy) {
			rep.filled_ms = (now_s() - t_start) * 1e3;
		} else {
			fill.g = vm.mem;
			fill.t0 = t_start;
			err = -pthread_create(&fill.thread, NULL, filler_main, &fill);
			if (err) {
				complain("%s", strerror(-err));
				goto err_mem;
			}
			filling = true;
		}
	}
	if (!vm.copy_io) { /* with copy_io devices copy: no view of theirs */
		err = gmem_view_map(vm.mem, 0, vm.ram_size, 0, &view);
		if (err) {
			complain("device view: %s", strerror(-err));
			goto err_mem;
		}
		vm.dev_view = view;
	}
	if (kvm_create(&vm))
		goto err_view;
	if (kvm_map_ram(&vm))
		goto err_kvm;
	if (vblk_create(&vm, disk, VIRTIO_BLK_MMIO, o.disk_latency_ms, &blk))
		goto err_kvm;
	if (kvm_create_vcpus(&vm, img.entry))
		goto err_blk;
	sr = (struct snap_run){ .vm = &vm, .blk = blk, .demo = o.demo, .snoop = o.snoop,
				.disk = disk, .save = o.save, .dirty = o.save_dirty,
				.cont = o.save_continue };
	if (o.restore || o.incoming) {
		vm.moved = true;
		if (snap_check_map(&vm, &in, why, sizeof(why)) ||
		    snap_restore_machine(&sr, &in, why, sizeof(why))) {
			complain("%s", why);
			goto err_vcpus;
		}
	} else {
		err = image_load(&vm, &img);
		if (err) {
			complain("loading the guest: %s", strerror(-err));
			goto err_vcpus;
		}
	}
	/* layers hold what was written since the checkpoint before: tracked from now on */
	if (o.save_dirty && (err = gmem_track_start(vm.mem, GMEM_TRACK_GUEST))) {
		complain("--save-dirty: tracking the guest's writes: %s", strerror(-err));
		goto err_vcpus;
	}
	/* tracking starts here, on the memory as loaded, unless --dirty-delay says later */
	if (o.track && !o.dirty_delay_ms && rounds_start(&track, &vm, why, sizeof(why))) {
		complain("%s", why);
		goto err_vcpus;
	}
	if (o.snoop && (err = snoop_start(&vm))) {
		complain("snoop: %s", strerror(-err));
		goto err_vcpus;
	}
	if (o.save) {
		struct sigaction sa = { .sa_handler = on_save_signal };

		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR1, &sa, NULL);
	}
	if (o.migrate_to) {
		struct sigaction sa = { .sa_handler = on_migrate_signal };

		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR2, &sa, NULL);
	}
	/* the machine is made: the source stops the VM for good, and it runs here */
	if (o.incoming) {
		err = migrate_in_commit(&mconn, &mig, why, sizeof(why));
		if (!mig.pin) /* post-copy: the pages still come on it */
			mig_close(&mconn);
		if (err) {
			complain("%s", why);
			goto err_vcpus;
		}
		if (mig.postcopy) {
			printf("gmem-vmm: the VM runs here; its pages follow from the source (post-copy)\n");
			fflush(stdout);
		}
	}

	t0 = now_s();
	sr.run_start = t0;
	rep.first_ms = (t0 - t_start) * 1e3;
	if (vcpus_start(&vm))
		vm_wait(&vm, 0);
	else if (o.track)
		rounds_run(&track, &vm, o.timeout_s);
	else if (o.save)
		save_run(&o, &sr, &rep, t0);
	else if (o.migrate_to)
		migrate_run(&o, &sr, &rep, &mig, t0);
	else
		vm_wait(&vm, o.timeout_s);
	vcpus_join(&vm);
	rep.seconds = sr.run_base + now_s() - t0;
	/* post-copy: the source told it is over; what never came fails, not waits */
	if (mig.pin && migrate_in_end(&mig, why, sizeof(why)) && !vm.error[0]) {
		complain("%s", why);
		vm.exit_status = 1;
	}
	/* the memory and the VM as the guest left them */
	gmem_huge_info(vm.mem, &rep.huge);
	kvm_page_stats(&vm, rep.kvm_pages);
	ran = true;
	status = vm.exit_status;
	fflush(stdout);
	if (filling) {
		filling = false;
		atomic_store(&fill.stop, true);
		pthread_join(fill.thread, NULL);
		rep.filled_ms = fill.done_ms;
		rep.fill_err = fill.err;
	}
	if (rep.fill_err) { /* what the guest met then (a triple fault, most likely) follows from it */
		complain("%s: corrupted: filling its memory: %s", o.restore, strerror(-rep.fill_err));
		status = 1;
	} else if (vm.error[0]) {
		complain("%s", vm.error);
	}
	if (o.save && !sr.saves)
		complain("--save %s: the VM ended before a save", o.save);

	snoop_stop(&vm, &rep.snoop);
	add_stats(&rep.snoop, &sr.snoop_base, sizeof(rep.snoop));
err_vcpus:
	kvm_destroy_vcpus(&vm);
err_blk:
	vblk_destroy(blk, &rep.blk);
	/* nothing writes guest memory any more: the end's round takes the rest */
	if (rounds_end(&track, &vm, why, sizeof(why))) {
		complain("%s", why);
		if (!status)
			status = 1;
	}
err_kvm:
	kvm_destroy(&vm);
err_view:
	gmem_get_stats(vm.mem, &rep.gm); /* the devices' pins are gone: what the guest left */
	add_stats(&rep.gm, &sr.gm_base, sizeof(rep.gm));
	if (vm.dev_view)
		gmem_view_unmap(vm.mem, vm.dev_view);
err_mem:
	if (mig.pin) /* made no further than this: nothing waits for the pages */
		migrate_in_end(&mig, why, sizeof(why));
	if (filling) {
		atomic_store(&fill.stop, true);
		pthread_join(fill.thread, NULL);
		rep.filled_ms = fill.done_ms;
		rep.fill_err = fill.err;
		if (fill.err) {
			complain("%s: corrupted: filling its memory: %s", o.restore,
				 strerror(-fill.err));
			status = 1;
		}
	}
	rep.destroy_err = gmem_destroy(vm.mem);
	if (rep.destroy_err)
		complain("guest memory still pinned at exit: %s", strerror(-rep.destroy_err));
err_guest:
	if (elf)
		release_guest(o.guest, elf, elf_size);
err_end:
	vm_end_fini(&vm);
	if (ran)
		status = conclude(&o, &vm, &rep, status);
err_track:
	rounds_fini(&track);
err_snap:
	mig_close(&mconn);
	snapv_close(&in);
	return status;
}
