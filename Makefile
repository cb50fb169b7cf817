# gmem - build, test, benchmark and install.
#
#   make deps            install the Debian packages the build and the tests need
#                        (deps-bench, deps-verify, deps-fuzz: theirs; deps-all: all)
#   make                 the library, gmem-vmm and the guest programs
#   make lib             libgmem.a and libgmem.so alone, in $(BUILD)/lib
#   make check           build and run every test; ends "N passed, N failed, N skipped"
#   make run             the main job: the demo (BACKING=thp, hugetlb-2m, hugetlb-1g: on
#                        that backing, via scripts/run-huge.sh)
#   make run-huge        the demo on thp, hugetlb-2m and hugetlb-1g (the hugetlb pool
#                        raised and shmem_enabled set for the run, then put back)
#   make run-snapshot    the demo saved mid-run, then resumed from the file (lazily)
#   make run-migrate     the demo live-migrated mid-run to a gmem-vmm in another process
#                        (POSTCOPY=1: post-copy)
#   make bench           the benchmark (ratios against baselines of the same run),
#                        results in $(BUILD)/bench; make perf-doc puts them in docs/;
#                        VMM_ARGS="--device-io copy" runs gmem-vmm's figures so
#   make verify          model-check the conversion protocol (model/gmem.pml, spin)
#   make fuzz SECONDS=N  libFuzzer: the library against its reference model (fuzz/)
#   make soak SECONDS=N  every operation at once, invariants checked throughout (soak/)
#   make mutate          every mutant of the library (tests/mutants) caught by a test
#   make install         the library, its header, gmem.pc, man pages and gmem-vmm;
#                        install-lib: all but gmem-vmm; uninstall.  PREFIX, BINDIR,
#                        LIBDIR, INCLUDEDIR, MANDIR, PKGCONFIGDIR and DESTDIR apply
#   make check SAN=asan  (or SAN=tsan) the same suite under sanitizers, in build-$(SAN)
#   CC=clang make ...    any target with clang
#   WERROR=              warnings are not errors (the default outside a git checkout)

# The release; include/gmem.h's GMEM_VERSION_* must say the same.
VERSION := 0.1.0
VERSION_MAJOR := $(word 1,$(subst ., ,$(VERSION)))
header_version = $(shell sed -n 's/^.define GMEM_VERSION_$(1) \([0-9]*\)$$/\1/p' include/gmem.h)
HEADER_VERSION := $(call header_version,MAJOR).$(call header_version,MINOR).$(call header_version,PATCH)
ifneq ($(HEADER_VERSION),$(VERSION))
$(error VERSION is $(VERSION) but include/gmem.h says $(HEADER_VERSION): change both)
endif

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

SAN ?=
BUILD ?= build$(if $(SAN),-$(SAN))

# Warnings fail the project's own builds (from its git checkout, and CI says
# so explicitly), not a release built with a compiler that warns of more.
WERROR ?= $(if $(wildcard .git),-Werror)

CFLAGS ?= -O2 -g
WARN = -Wall -Wextra $(WERROR) -Wshadow -Wstrict-prototypes -Wmissing-prototypes
BASE_CFLAGS := -std=gnu11 $(WARN) -fPIC -Iinclude -Isrc -pthread
BASE_LDFLAGS := -pthread

ifeq ($(SAN),asan)
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
else ifeq ($(SAN),tsan)
SAN_FLAGS := -fsanitize=thread
else ifneq ($(SAN),)
$(error SAN must be asan or tsan)
endif

ALL_CFLAGS = $(BASE_CFLAGS) $(SAN_FLAGS) $(CFLAGS)
ALL_LDFLAGS = $(BASE_LDFLAGS) $(SAN_FLAGS) $(LDFLAGS)

LIB_SRCS := src/core/runmap.c src/core/pinmap.c \
	src/os/backing.c src/os/uffd.c src/os/pagemap.c src/os/maps.c \
	src/state.c src/addr.c src/view.c src/fault.c src/reader.c src/forked.c src/convert.c src/fresh.c src/pin.c src/discard.c src/audit.c \
	src/access.c src/huge.c src/track.c src/snapshot.c src/lazy.c src/postcopy.c src/hash.c src/hash_avx2.c \
	src/gmem.c
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_O := $(BUILD)/lib/libgmem.o
LIB_A := $(BUILD)/lib/libgmem.a
LIB_SONAME := libgmem.so.$(VERSION_MAJOR)
LIB_SO_FILE := libgmem.so.$(VERSION)
LIB_SO := $(BUILD)/lib/libgmem.so

TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
TEST_COMMON := $(BUILD)/tests/harness.o $(BUILD)/tests/touch.o $(BUILD)/tests/sysfs.o \
	$(BUILD)/tests/pagecheck.o

DEMO := $(BUILD)/demo/gmem-demo
BENCH := $(BUILD)/bench/gmem-bench

# Guest programs: freestanding, identity-mapped at 2 MiB, never sanitized.
GUEST_CFLAGS := -std=gnu11 $(WARN) -O2 -g -ffreestanding -fno-builtin -nostdlib -fno-pic \
	-fno-pie -fno-stack-protector -mno-red-zone -mno-mmx -mno-sse -mno-sse2 -mno-avx \
	-fno-asynchronous-unwind-tables -fcf-protection=none -Iguest -Iabi
GUEST_LDFLAGS := -nostdlib -static -Wl,-T,guest/guest.ld -Wl,--build-id=none \
	-Wl,-z,noexecstack
GUEST_RT := $(addprefix $(BUILD)/guest/,start.o rt.o virtio_blk.o)
GUEST_TESTS := $(patsubst guest/tests/%.c,$(BUILD)/guest/tests/%.elf,$(wildcard guest/tests/*.c))
GUEST_BENCH := $(patsubst guest/bench/%.c,$(BUILD)/guest/bench/%.elf,$(wildcard guest/bench/*.c))
DEMO_GUEST := $(BUILD)/guest/demo.elf

# gmem-vmm: the VMM uses libgmem through its public header only.
VMM_SRCS := vmm/main.c vmm/backing.c vmm/kvm.c vmm/vcpu.c vmm/hypercall.c vmm/gpa.c vmm/device.c vmm/loader.c \
	vmm/virtio_mmio.c vmm/virtio_blk.c vmm/snoop.c vmm/dirty.c vmm/rounds.c vmm/snapshot.c \
	vmm/cpustate.c vmm/save.c vmm/migrate.c vmm/migration.c vmm/postcopy.c
VMM_OBJS := $(VMM_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/vmm/demo_guest.o
VMM := $(BUILD)/vmm/gmem-vmm
# Everything but -Isrc: the library's internals are out of the VMM's reach.
VMM_CFLAGS = $(filter-out -Isrc,$(ALL_CFLAGS)) -Iabi

.PHONY: FORCE all lib check run run-huge run-snapshot run-migrate run-libdemo bench bench-check perf-doc verify fuzz soak mutate \
	install install-lib uninstall clean deps deps-bench deps-verify deps-fuzz deps-all
all: lib $(VMM) $(GUEST_TESTS) $(GUEST_BENCH)
lib: $(LIB_A) $(LIB_SO)

# The Debian packages each part needs, installed when missing (a no-op
# otherwise).  Only these targets install anything: "make deps check".
DEPS := make gcc libc6-dev binutils groff-base man-db libxxhash-dev
DEPS_BENCH := python3 python3-matplotlib
DEPS_VERIFY := spin
DEPS_FUZZ := clang libclang-rt-14-dev
deps:
	@scripts/ensure-packages.sh $(DEPS)
deps-bench:
	@scripts/ensure-packages.sh $(DEPS) $(DEPS_BENCH)
deps-verify:
	@scripts/ensure-packages.sh $(DEPS) $(DEPS_VERIFY)
deps-fuzz:
	@scripts/ensure-packages.sh $(DEPS) $(DEPS_FUZZ)
deps-all:
	@scripts/ensure-packages.sh $(DEPS) $(DEPS_BENCH) $(DEPS_VERIFY) $(DEPS_FUZZ) pkg-config

# "make -j2 deps check": nothing is compiled or run before the packages are in.
DEPS_FIRST := $(filter deps%,$(MAKECMDGOALS))
check run run-huge run-snapshot run-libdemo bench bench-check perf-doc verify fuzz soak: | $(DEPS_FIRST)

# The library's own symbols are hidden; gmem.h marks the API (GMEM_API).
LIB_CFLAGS := -fvisibility=hidden
$(LIB_OBJS): OBJ_CFLAGS := $(LIB_CFLAGS)
# hash.c calls it only where the processor has AVX2
$(BUILD)/src/hash_avx2.o: OBJ_CFLAGS := $(LIB_CFLAGS) $(if $(filter x86_64,$(shell uname -m)),-mavx2)

# Objects are rebuilt when the flags change (WERROR=, CC=, a new flag here),
# not only their sources: $(CFLAGS_STAMP) changes only then.
CFLAGS_STAMP := $(BUILD)/cflags
$(CFLAGS_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(CC) $(ALL_CFLAGS) $(LIB_CFLAGS) $(VMM_CFLAGS) $(GUEST_CFLAGS)' | cmp -s - $@ || \
		echo '$(CC) $(ALL_CFLAGS) $(LIB_CFLAGS) $(VMM_CFLAGS) $(GUEST_CFLAGS)' > $@
FORCE:

$(BUILD)/%.o: %.c $(CFLAGS_STAMP) | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(OBJ_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/guest/%.o: guest/%.c $(CFLAGS_STAMP) | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/guest/%.o: guest/%.S $(CFLAGS_STAMP) | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/guest/%.elf: $(BUILD)/guest/%.o $(GUEST_RT) guest/guest.ld
	$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) $< $(GUEST_RT) -o $@

$(BUILD)/vmm/%.o: vmm/%.c $(CFLAGS_STAMP) | $(DEPS_FIRST)
	@mkdir -p $(dir $@)
	$(CC) $(VMM_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/vmm/demo_guest.o: vmm/demo_guest.S $(DEMO_GUEST)
	@mkdir -p $(dir $@)
	$(CC) -c -DDEMO_GUEST_ELF='"$(DEMO_GUEST)"' $< -o $@

$(VMM): $(VMM_OBJS) $(LIB_A)
	$(CC) $^ $(ALL_LDFLAGS) -o $@

# Both libraries are built from one relocatable object whose hidden symbols
# are made local: a static link sees the API and nothing else to collide with.
OBJCOPY ?= objcopy
$(LIB_O): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(LD) -r -o $@.tmp $^
	$(OBJCOPY) --localize-hidden $@.tmp $@
	rm -f $@.tmp

$(LIB_A): $(LIB_O)
	rm -f $@
	$(AR) rcs $@ $<

# -z defs: every symbol the library uses is resolved at its link.  Not under
# a sanitizer, whose run time only the program links.
$(BUILD)/lib/$(LIB_SO_FILE): $(LIB_O) src/libgmem.map
	$(CC) -shared -Wl,-soname,$(LIB_SONAME) -Wl,--version-script=src/libgmem.map \
		$(if $(SAN),,-Wl,-z,defs) $(ALL_LDFLAGS) $(LIB_O) -o $@

$(LIB_SO): $(BUILD)/lib/$(LIB_SO_FILE)
	ln -sfn $(LIB_SO_FILE) $(BUILD)/lib/$(LIB_SONAME)
	ln -sfn $(LIB_SONAME) $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_COMMON) $(LIB_A)
	$(CC) $^ $(ALL_LDFLAGS) -o $@

# test_runmap tests a module below the API, which the library keeps to itself.
$(BUILD)/tests/test_runmap: $(BUILD)/tests/test_runmap.o $(TEST_COMMON) $(BUILD)/src/core/runmap.o \
		$(LIB_A)
	$(CC) $^ $(ALL_LDFLAGS) -o $@

$(DEMO): $(BUILD)/demo/gmem-demo.o $(LIB_A)
	$(CC) $^ $(ALL_LDFLAGS) -o $@

# The library with its allocator and system calls renamed to fuzz/inject.c's
# stand-ins, which fail on demand: the fuzzer's and test_inject's library.
INJECT_SYMS := malloc calloc realloc free mmap madvise mprotect ioctl fallocate memfd_create \
	ftruncate eventfd open pread pwrite mincore syscall fopen pthread_create
LIB_INJECT := $(BUILD)/lib/libgmem-inject.o
$(LIB_INJECT): $(LIB_O)
	$(OBJCOPY) $(foreach s,$(INJECT_SYMS),--redefine-sym $(s)=inject_$(s)) $< $@

FUZZ_COMMON := $(BUILD)/fuzz/ref.o $(BUILD)/fuzz/inject.o $(BUILD)/tests/touch.o \
	$(BUILD)/tests/sysfs.o $(LIB_INJECT)
REPLAY := $(BUILD)/fuzz/replay
$(REPLAY): $(BUILD)/fuzz/replay.o $(BUILD)/fuzz/fuzz_gmem.o $(FUZZ_COMMON)
	$(CC) $^ $(ALL_LDFLAGS) -o $@
$(BUILD)/fuzz/fuzz_gmem: $(BUILD)/fuzz/fuzz_gmem.o $(FUZZ_COMMON)
	$(CC) $^ $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@
$(BUILD)/tests/test_inject: $(BUILD)/tests/test_inject.o $(TEST_COMMON) $(BUILD)/fuzz/inject.o $(LIB_INJECT)
	$(CC) $^ $(ALL_LDFLAGS) -o $@

BENCH_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard bench/*.c)) $(BUILD)/tests/touch.o \
	$(BUILD)/tests/sysfs.o
$(BENCH): $(BENCH_OBJS) $(LIB_A)
	$(CC) $^ $(ALL_LDFLAGS) -lm -o $@

# The libraries' checks come first: only gmem_* exported, and gmem.h,
# src/libgmem.map and what each library exports name the same functions.
check:
	@$(MAKE) --no-print-directory $(TEST_BINS) $(VMM) $(GUEST_TESTS) $(REPLAY) lib
	@GMEM_VMM=$(VMM) GUEST_DIR=$(BUILD)/guest/tests tests/run.sh \
		"scripts/lib-symbols.sh $(LIB_A) $(LIB_SO)" "scripts/check-api.sh $(LIB_A) $(LIB_SO)" \
		scripts/check-man.sh $(TEST_BINS) "$(REPLAY) fuzz/corpus" tests/model_refs.sh

BACKING ?=
run:
	@$(MAKE) --no-print-directory $(VMM)
ifeq ($(filter-out shmem,$(BACKING)),)
	@$(VMM) $(if $(BACKING),--backing $(BACKING))
else
	@scripts/run-huge.sh $(VMM) $(BACKING)
endif

# gmem-vmm never changes sysfs: the script reserves the pool pages and puts them back
run-huge:
	@$(MAKE) --no-print-directory $(VMM)
	@scripts/run-huge.sh $(VMM) thp hugetlb-2m hugetlb-1g

# the demo saved 2 s into its run, then resumed from the file in a new process, lazily
run-snapshot:
	@$(MAKE) --no-print-directory $(VMM)
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
		$(VMM) --save $$dir/demo.snap --save-after 2 && \
		echo "== resuming $$dir/demo.snap in a new gmem-vmm (--restore --lazy)" && \
		$(VMM) --restore $$dir/demo.snap --lazy

# Both ends on this machine: the destination waits, the source runs the
# demo and hands it over two seconds in; the destination ends it.
# POSTCOPY=1: post-copy, before any round (every page follows).
run-migrate:
	@$(MAKE) --no-print-directory $(VMM)
	@addr=tcp:127.0.0.1:$$((20000 + $$$$ % 40000)) && \
		{ $(VMM) --incoming $$addr --timeout 120 & dst=$$!; } && \
		$(VMM) --migrate-to $$addr --migrate-after 2 \
			$(if $(POSTCOPY),--postcopy --postcopy-rounds 0) && wait $$dst

# the library's own demo, without KVM
run-libdemo:
	@$(MAKE) --no-print-directory $(DEMO)
	@$(DEMO)

# Stop a target whose tool is missing, naming the deps target that installs it.
PYTHON ?= /usr/bin/python3
need = @command -v $(1) >/dev/null || { echo "make $@ needs $(1): make $(2) installs it" >&2; exit 1; }

# The benchmark; its JSON, the tables and the plots go to $(BENCH_OUT).
# make perf-doc then turns the last run's JSON into docs/PERFORMANCE.md's
# tables and docs/perf/*.svg.
BENCH_OUT := $(BUILD)/bench
BENCH_JSON := $(BENCH_OUT)/bench.json
bench bench-check:
	$(call need,$(PYTHON),deps-bench)
	@$(MAKE) --no-print-directory $(BENCH) $(VMM) $(GUEST_BENCH)
	@GMEM_VMM=$(VMM) GMEM_VMM_ARGS="$(VMM_ARGS)" GUEST_BENCH_DIR=$(BUILD)/guest/bench \
		$(BENCH) --json $(BENCH_JSON) \
		$(if $(filter bench-check,$@),--check) $(BENCH_ARGS); status=$$?; \
	$(PYTHON) bench/report.py $(BENCH_JSON) docs/PERFORMANCE.md $(BENCH_OUT)/perf \
		$(BENCH_OUT)/PERFORMANCE.md && exit $$status

perf-doc:
	$(call need,$(PYTHON),deps-bench)
	@test -f $(BENCH_JSON) || { echo "make perf-doc: no $(BENCH_JSON); make bench first" >&2; exit 1; }
	$(PYTHON) bench/report.py $(BENCH_JSON) docs/PERFORMANCE.md docs/perf

# Every interleaving of the protocol's actors, in several casts; a mutant must fail.
verify:
	$(call need,spin,deps-verify)
	@model/verify.sh $(BUILD)/verify

# libFuzzer with ASan + UBSan over the library and its reference model.
# New inputs go to build-fuzz/corpus; fuzz/corpus holds the seeds.
SECONDS ?= 60
FUZZ_BUILD := build-fuzz
fuzz:
	$(call need,clang,deps-fuzz)
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang SAN=asan \
		CFLAGS="-O1 -g -fsanitize=fuzzer-no-link" $(FUZZ_BUILD)/fuzz/fuzz_gmem
	@mkdir -p $(FUZZ_BUILD)/corpus
	$(FUZZ_BUILD)/fuzz/fuzz_gmem -max_total_time=$(SECONDS) -max_len=1024 -timeout=20 \
		-print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus fuzz/corpus

SOAK := $(BUILD)/soak/gmem-soak
$(SOAK): $(BUILD)/soak/soak.o $(BUILD)/tests/touch.o $(BUILD)/tests/sysfs.o \
	$(BUILD)/tests/pagecheck.o $(LIB_A)
	$(CC) $^ $(ALL_LDFLAGS) -o $@

# Every mutant in tests/mutants must make a test fail (scripts/mutate.sh).
mutate:
	@scripts/mutate.sh

# The time split between its settings; exits non-zero on any violation.
soak:
	@$(MAKE) --no-print-directory $(SOAK)
	@$(SOAK) $(SECONDS)

# Man pages, as many as there are.
MAN3 := $(wildcard man/*.3)
MAN7 := $(wildcard man/*.7)
# gmem.pc names the directories under the prefix as ${prefix}/..., the way
# pkg-config files do, so that a moved tree can be used by redefining prefix.
pc_dir = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

install-lib: lib
	install -d "$(DESTDIR)$(INCLUDEDIR)" "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(PKGCONFIGDIR)"
	install -m 644 include/gmem.h "$(DESTDIR)$(INCLUDEDIR)/gmem.h"
	install -m 644 $(LIB_A) "$(DESTDIR)$(LIBDIR)/libgmem.a"
	install -m 755 $(BUILD)/lib/$(LIB_SO_FILE) "$(DESTDIR)$(LIBDIR)/$(LIB_SO_FILE)"
	ln -sfn $(LIB_SO_FILE) "$(DESTDIR)$(LIBDIR)/$(LIB_SONAME)"
	ln -sfn $(LIB_SONAME) "$(DESTDIR)$(LIBDIR)/libgmem.so"
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call pc_dir,$(LIBDIR))|' \
		-e 's|@INCLUDEDIR@|$(call pc_dir,$(INCLUDEDIR))|' -e 's|@VERSION@|$(VERSION)|' \
		gmem.pc.in > "$(DESTDIR)$(PKGCONFIGDIR)/gmem.pc"
ifneq ($(MAN3),)
	install -d "$(DESTDIR)$(MANDIR)/man3"
	install -m 644 $(MAN3) "$(DESTDIR)$(MANDIR)/man3"
endif
ifneq ($(MAN7),)
	install -d "$(DESTDIR)$(MANDIR)/man7"
	install -m 644 $(MAN7) "$(DESTDIR)$(MANDIR)/man7"
endif

install: install-lib $(VMM)
	install -d "$(DESTDIR)$(BINDIR)"
	install -m 755 $(VMM) "$(DESTDIR)$(BINDIR)/gmem-vmm"

# What install put there; the directories stay, they may hold others' files.
uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/gmem-vmm" "$(DESTDIR)$(INCLUDEDIR)/gmem.h" \
		"$(DESTDIR)$(LIBDIR)/libgmem.a" "$(DESTDIR)$(LIBDIR)/$(LIB_SO_FILE)" \
		"$(DESTDIR)$(LIBDIR)/$(LIB_SONAME)" "$(DESTDIR)$(LIBDIR)/libgmem.so" \
		"$(DESTDIR)$(PKGCONFIGDIR)/gmem.pc" \
		$(foreach m,$(MAN3),"$(DESTDIR)$(MANDIR)/man3/$(notdir $(m))") \
		$(foreach m,$(MAN7),"$(DESTDIR)$(MANDIR)/man7/$(notdir $(m))")

clean:
	rm -rf build build-asan build-tsan build-clang build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
.SECONDARY:
