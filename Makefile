# gmem - build, test, benchmark and install.
#
#   make                 libgmem.a and libgmem.so in $(BUILD)/lib
#   make check           build and run every test; ends "N passed, N failed, N skipped"
#   make run             the main job: the demo
#   make bench           the benchmark (ratios against baselines of the same run)
#   make verify          model-check the conversion protocol (model/gmem.pml, spin)
#   make fuzz SECONDS=N  libFuzzer: the library against its reference model (fuzz/)
#   make soak SECONDS=N  every operation at once, invariants checked throughout (soak/)
#   make install PREFIX=DIR
#   make check SAN=asan  (or SAN=tsan) the same suite under sanitizers, in build-$(SAN)
#   CC=clang make ...    any target with clang

VERSION := 0.1.0
PREFIX ?= /usr/local
SAN ?=
BUILD ?= build$(if $(SAN),-$(SAN))

CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
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
	src/os/backing.c src/os/uffd.c src/os/pagemap.c \
	src/state.c src/view.c src/fault.c src/reader.c src/forked.c src/convert.c src/fresh.c src/pin.c src/discard.c src/audit.c \
	src/gmem.c
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_A := $(BUILD)/lib/libgmem.a
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
	-fno-asynchronous-unwind-tables -fcf-protection=none -Iguest
GUEST_LDFLAGS := -nostdlib -static -Wl,-T,guest/guest.ld -Wl,--build-id=none \
	-Wl,-z,noexecstack
GUEST_RT := $(addprefix $(BUILD)/guest/,start.o rt.o virtio_blk.o)
GUEST_TESTS := $(patsubst guest/tests/%.c,$(BUILD)/guest/tests/%.elf,$(wildcard guest/tests/*.c))
GUEST_BENCH := $(patsubst guest/bench/%.c,$(BUILD)/guest/bench/%.elf,$(wildcard guest/bench/*.c))
DEMO_GUEST := $(BUILD)/guest/demo.elf

# gmem-vmm: the VMM uses libgmem through its public header only.
VMM_SRCS := vmm/main.c vmm/kvm.c vmm/vcpu.c vmm/hypercall.c vmm/gpa.c vmm/loader.c \
	vmm/virtio_mmio.c vmm/virtio_blk.c vmm/snoop.c
VMM_OBJS := $(VMM_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/vmm/demo_guest.o
VMM := $(BUILD)/vmm/gmem-vmm
VMM_CFLAGS := -Iguest

.PHONY: all check run run-libdemo bench bench-check verify fuzz soak install clean deps
all: $(LIB_A) $(LIB_SO) $(VMM) $(GUEST_TESTS) $(GUEST_BENCH)

# What the build needs from Debian, installed when missing (a no-op otherwise).
deps:
	@scripts/ensure-packages.sh make gcc libc6-dev

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/guest/%.o: guest/%.c
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/guest/%.o: guest/%.S
	@mkdir -p $(dir $@)
	$(CC) $(GUEST_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/guest/%.elf: $(BUILD)/guest/%.o $(GUEST_RT) guest/guest.ld
	$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) $< $(GUEST_RT) -o $@

$(BUILD)/vmm/%.o: vmm/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(VMM_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/vmm/demo_guest.o: vmm/demo_guest.S $(DEMO_GUEST)
	@mkdir -p $(dir $@)
	$(CC) -c -DDEMO_GUEST_ELF='"$(DEMO_GUEST)"' $< -o $@

$(VMM): $(VMM_OBJS) $(LIB_A)
	$(CC) $^ $(ALL_LDFLAGS) -o $@

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(LIB_SO): $(LIB_OBJS) src/libgmem.map
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,--version-script=src/libgmem.map -Wl,-soname,libgmem.so.0 \
		$(ALL_LDFLAGS) $(LIB_OBJS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_COMMON) $(LIB_A)
	$(CC) $^ $(ALL_LDFLAGS) -o $@

$(DEMO): $(BUILD)/demo/gmem-demo.o $(LIB_A)
	$(CC) $^ $(ALL_LDFLAGS) -o $@

# The library with its allocator and system calls renamed to fuzz/inject.c's
# stand-ins, which fail on demand: the fuzzer's and test_inject's library.
INJECT_SYMS := malloc calloc realloc free mmap madvise mprotect ioctl fallocate memfd_create \
	ftruncate eventfd open pread pwrite mincore syscall fopen pthread_create
LIB_INJECT := $(BUILD)/lib/libgmem-inject.o
$(LIB_INJECT): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(LD) -r -o $@.tmp $^
	objcopy $(foreach s,$(INJECT_SYMS),--redefine-sym $(s)=inject_$(s)) $@.tmp $@
	rm -f $@.tmp

FUZZ_COMMON := $(BUILD)/fuzz/ref.o $(BUILD)/fuzz/inject.o $(BUILD)/tests/touch.o \
	$(BUILD)/tests/sysfs.o $(LIB_INJECT)
REPLAY := $(BUILD)/fuzz/replay
$(REPLAY): $(BUILD)/fuzz/replay.o $(BUILD)/fuzz/fuzz_gmem.o $(FUZZ_COMMON)
	$(CC) $^ $(ALL_LDFLAGS) -o $@
$(BUILD)/fuzz/fuzz_gmem: $(BUILD)/fuzz/fuzz_gmem.o $(FUZZ_COMMON)
	$(CC) $^ $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@
$(BUILD)/tests/test_inject: $(BUILD)/tests/test_inject.o $(TEST_COMMON) $(BUILD)/fuzz/inject.o $(LIB_INJECT)
	$(CC) $^ $(ALL_LDFLAGS) -o $@

BENCH_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard bench/*.c)) $(BUILD)/tests/touch.o
$(BENCH): $(BENCH_OBJS) $(LIB_A)
	$(CC) $^ $(ALL_LDFLAGS) -lm -o $@

check: deps
	@$(MAKE) --no-print-directory $(TEST_BINS) $(VMM) $(GUEST_TESTS) $(REPLAY)
	@GMEM_VMM=$(VMM) GUEST_DIR=$(BUILD)/guest/tests tests/run.sh $(TEST_BINS) \
		"$(REPLAY) fuzz/corpus" tests/model_refs.sh

run: deps
	@$(MAKE) --no-print-directory $(VMM)
	@$(VMM)

# the library's own demo, without KVM
run-libdemo: deps
	@$(MAKE) --no-print-directory $(DEMO)
	@$(DEMO)

# The benchmark, then the tables and plots of docs/PERFORMANCE.md from its JSON.
BENCH_JSON := $(BUILD)/bench.json
bench bench-check: deps
	@$(MAKE) --no-print-directory $(BENCH) $(VMM) $(GUEST_BENCH)
	@scripts/ensure-packages.sh python3-matplotlib
	@GMEM_VMM=$(VMM) GUEST_BENCH_DIR=$(BUILD)/guest/bench $(BENCH) --json $(BENCH_JSON) \
		$(if $(filter bench-check,$@),--check) $(BENCH_ARGS); status=$$?; \
	/usr/bin/python3 bench/report.py $(BENCH_JSON) docs/PERFORMANCE.md docs/perf && exit $$status

# Every interleaving of the protocol's actors, in several casts; a mutant must fail.
verify: deps
	@scripts/ensure-packages.sh spin
	@model/verify.sh $(BUILD)/verify

# libFuzzer with ASan + UBSan over the library and its reference model.
# New inputs go to build-fuzz/corpus; fuzz/corpus holds the seeds.
SECONDS ?= 60
FUZZ_BUILD := build-fuzz
fuzz: deps
	@scripts/ensure-packages.sh clang libclang-rt-14-dev
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang SAN=asan \
		CFLAGS="-O1 -g -fsanitize=fuzzer-no-link" $(FUZZ_BUILD)/fuzz/fuzz_gmem
	@mkdir -p $(FUZZ_BUILD)/corpus
	$(FUZZ_BUILD)/fuzz/fuzz_gmem -max_total_time=$(SECONDS) -max_len=1024 -timeout=20 \
		-print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus fuzz/corpus

SOAK := $(BUILD)/soak/gmem-soak
$(SOAK): $(BUILD)/soak/soak.o $(BUILD)/tests/touch.o $(BUILD)/tests/sysfs.o \
	$(BUILD)/tests/pagecheck.o $(LIB_A)
	$(CC) $^ $(ALL_LDFLAGS) -o $@

# Half the time on shmem, half on THP; exits non-zero on any violation.
soak: deps
	@$(MAKE) --no-print-directory $(SOAK)
	@$(SOAK) $(SECONDS)

install: $(LIB_A) $(LIB_SO) $(VMM)
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(VMM) $(DESTDIR)$(PREFIX)/bin/gmem-vmm
	install -m 644 include/gmem.h $(DESTDIR)$(PREFIX)/include/gmem.h
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/libgmem.a
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/libgmem.so.0
	ln -sf libgmem.so.0 $(DESTDIR)$(PREFIX)/lib/libgmem.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' gmem.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/gmem.pc

clean:
	rm -rf build build-asan build-tsan build-clang build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
.SECONDARY:
