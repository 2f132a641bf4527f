# aioloop - the newcomer's front door. The real build is Meson; these
# targets configure a build directory on first use and drive it.
#
#   make                 build (build/)
#   make check           run every test (build/)
#   make check-sanitize  tests under ASan+UBSan (build-asan/), and the
#                        multi-threaded tests under TSan (build-tsan/)
#   make bench           the benchmarks, peers side by side (build-bench/)
#   make check-aarch64   cross-build for aarch64 and run the tests under
#                        qemu-user (build-aarch64/; scripts/check-aarch64)
#   make check-model     only the Spin model checks (part of make check)
#   make fuzz            libFuzzer on tests/fuzz/fuzz-aio for FUZZ_TIME
#                        seconds (default 60), clang, ASan+UBSan (build-fuzz/)
#   make fuzz-merge      minimise what make fuzz found into tests/fuzz/corpus
#   make fuzz-nbd        libFuzzer on aioloop-nbd's protocol code
#                        (tests/nbd/fuzz-nbd) for FUZZ_TIME seconds;
#                        fuzz-nbd-merge minimises into tests/nbd/corpus
#   make nbd-churn       aioloop-nbd's 60-second connection churn (fd count
#                        and RSS flat; make check runs it for 5 s)
#   make install         install into PREFIX (default /usr/local)
#   make docs            API reference + design pages (build-docs/html)
#
# CC=clang selects the compiler; BUILD=dir the default build directory.

CC ?= cc
BUILD ?= build
PREFIX ?= /usr/local
MESON_FLAGS ?=
DEPS = scripts/install-deps
FUZZ_TIME ?= 60

.PHONY: all check check-sanitize check-asan check-tsan bench install clean deps \
	check-aarch64
.PHONY: check-model fuzz fuzz-merge fuzz-nbd fuzz-nbd-merge nbd-churn

all: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@sh $(DEPS)

$(BUILD)/build.ninja:
	CC=$(CC) meson setup $(BUILD) --prefix=$(PREFIX) $(MESON_FLAGS)

check: all
	sh scripts/run-tests $(BUILD)

check-model: all
	sh scripts/run-tests $(BUILD) --suite model

build-fuzz/build.ninja:
	CC=clang meson setup build-fuzz -Dfuzz=true \
	    -Db_sanitize=address,undefined -Db_lundef=false -Dbench=false \
	    -Dtools=false -Dexamples=false $(MESON_FLAGS)

fuzz: deps build-fuzz/build.ninja
	ninja -C build-fuzz tests/fuzz/fuzz-aio
	sh tests/fuzz/run-fuzz build-fuzz/tests/fuzz/fuzz-aio tests/fuzz/corpus \
	    build-fuzz/fuzz-run $(FUZZ_TIME)

fuzz-merge: deps build-fuzz/build.ninja
	ninja -C build-fuzz tests/fuzz/fuzz-aio
	sh tests/fuzz/run-fuzz build-fuzz/tests/fuzz/fuzz-aio tests/fuzz/corpus \
	    build-fuzz/fuzz-run merge

fuzz-nbd: deps build-fuzz/build.ninja
	ninja -C build-fuzz tests/nbd/fuzz-nbd
	sh tests/fuzz/run-fuzz build-fuzz/tests/nbd/fuzz-nbd tests/nbd/corpus \
	    build-fuzz/fuzz-nbd-run $(FUZZ_TIME)

fuzz-nbd-merge: deps build-fuzz/build.ninja
	ninja -C build-fuzz tests/nbd/fuzz-nbd
	sh tests/fuzz/run-fuzz build-fuzz/tests/nbd/fuzz-nbd tests/nbd/corpus \
	    build-fuzz/fuzz-nbd-run merge

NBD_CHURN_SECS ?= 60
nbd-churn: all
	AIOLOOP_NBD_CHURN_SECS=$(NBD_CHURN_SECS) AIOLOOP_TEST_CASE=test_churn \
	    $(BUILD)/tests/nbd/test-nbd-stress $(BUILD)/tools/aioloop-nbd/aioloop-nbd

build-asan/build.ninja:
	CC=$(CC) meson setup build-asan -Db_sanitize=address,undefined \
	    -Db_lundef=false -Dbench=false $(MESON_FLAGS)

build-tsan/build.ninja:
	CC=$(CC) meson setup build-tsan -Db_sanitize=thread -Db_lundef=false \
	    -Dbench=false -Dtsan_only=true $(MESON_FLAGS)

check-asan: deps build-asan/build.ninja
	ninja -C build-asan
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    sh scripts/run-tests build-asan

check-tsan: deps build-tsan/build.ninja
	ninja -C build-tsan
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	    sh scripts/run-tests build-tsan

check-sanitize: check-asan check-tsan

build-bench/build.ninja:
	CC=$(CC) meson setup build-bench -Dbuildtype=release -Db_ndebug=true \
	    -Dtests=false $(MESON_FLAGS)

bench: deps
	@sh $(DEPS) --bench
	@test -f build-bench/build.ninja || $(MAKE) build-bench/build.ninja
	ninja -C build-bench
	sh scripts/run-bench build-bench

check-aarch64:
	sh scripts/check-aarch64 build-aarch64

install: all
	meson install -C $(BUILD)

# Doxygen site; fails on any warning (an undocumented public symbol...).
.PHONY: docs clean-docs
docs:
	@sh $(DEPS) --docs
	sh scripts/build-docs

clean: clean-docs
clean-docs:
	rm -rf build-docs

clean:
	rm -rf build build-asan build-tsan build-bench build-clang build-release \
	    build-aarch64 build-fuzz

# ---- reliability: soak and valgrind ----------------------------------
#   make soak            the torture program (tests/soak) for SOAK_TIME s
#                        (default 60) in $(BUILD); soak-asan / soak-tsan:
#                        the same in the sanitizer trees
#   make check-valgrind  the unit tests under valgrind memcheck
#                        (build-valgrind/, -O1 -g)
.PHONY: soak soak-asan soak-tsan check-valgrind clean-valgrind

SOAK_TIME ?= 60
SOAK = tests/soak/aioloop-soak

soak: all
	cd $(BUILD) && nice -n 5 ./$(SOAK) $(SOAK_TIME)

soak-asan: deps build-asan/build.ninja
	ninja -C build-asan $(SOAK)
	cd build-asan && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    nice -n 5 ./$(SOAK) $(SOAK_TIME)

soak-tsan: deps build-tsan/build.ninja
	ninja -C build-tsan $(SOAK)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	    nice -n 5 ./$(SOAK) $(SOAK_TIME)

# Valgrind memcheck over the unit tests: a plain -O1 -g tree, no
# suppressions; definite leaks are errors. Threads run one at a time
# under valgrind, hence the long timeouts.
VALGRIND = valgrind --error-exitcode=1 --leak-check=full \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite \
	--num-callers=30 --fair-sched=yes

build-valgrind/build.ninja:
	CC=$(CC) meson setup build-valgrind -Doptimization=1 -Ddebug=true \
	    -Dbench=false -Dexamples=false -Dtools=false $(MESON_FLAGS)

check-valgrind: deps build-valgrind/build.ninja
	ninja -C build-valgrind
	meson test -C build-valgrind --print-errorlogs --num-processes 2 \
	    --no-suite install --wrapper '$(VALGRIND)' --timeout-multiplier 10; \
	rc=$$?; python3 scripts/test-summary build-valgrind testlog-valgrind || rc=1; \
	exit $$rc

clean: clean-valgrind
clean-valgrind:
	rm -rf build-valgrind
