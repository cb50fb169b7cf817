# gmem - build, test, benchmark and install.
#
#   make                 libgmem.a and libgmem.so in $(BUILD)/lib
#   make check           build and run every test; ends "N passed, N failed, N skipped"
#   make run             the main job: the demo
#   make bench           the benchmark (ratios against baselines of the same run)
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
	src/state.c src/view.c src/fault.c src/convert.c src/pin.c src/discard.c src/audit.c \
	src/gmem.c
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB_A := $(BUILD)/lib/libgmem.a
LIB_SO := $(BUILD)/lib/libgmem.so

TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
TEST_COMMON := $(BUILD)/tests/harness.o

DEMO := $(BUILD)/demo/gmem-demo
BENCH := $(BUILD)/bench/gmem-bench

.PHONY: all check run bench install clean deps
all: $(LIB_A) $(LIB_SO)

# What the build needs from Debian, installed when missing (a no-op otherwise).
deps:
	@scripts/ensure-packages.sh make gcc libc6-dev

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

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

$(BENCH): $(BUILD)/bench/bench.o $(LIB_A)
	$(CC) $^ $(ALL_LDFLAGS) -lm -o $@

check: deps
	@$(MAKE) --no-print-directory $(TEST_BINS)
	@tests/run.sh $(TEST_BINS)

run: deps
	@$(MAKE) --no-print-directory $(DEMO)
	@$(DEMO)

bench: deps
	@$(MAKE) --no-print-directory $(BENCH)
	@$(BENCH) $(BENCH_ARGS)

install: $(LIB_A) $(LIB_SO)
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/gmem.h $(DESTDIR)$(PREFIX)/include/gmem.h
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/libgmem.a
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/libgmem.so.0
	ln -sf libgmem.so.0 $(DESTDIR)$(PREFIX)/lib/libgmem.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' gmem.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/gmem.pc

clean:
	rm -rf build build-asan build-tsan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
