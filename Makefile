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
#   make check-model     only the Spin model checks, with the LTL liveness
#                        searches (make check runs the safety searches,
#                        the bug variants and one no-busy-wait search)
#   make fuzz            libFuzzer on tests/fuzz/fuzz-aio for FUZZ_TIME
#                        seconds (default 60), clang, ASan+UBSan (build-fuzz/)
#   make fuzz-merge      minimise what make fuzz found into tests/fuzz/corpus
#   make fuzz-nbd        libFuzzer on aioloop-nbd's protocol code
#                        (tests/nbd/fuzz-nbd) for FUZZ_TIME seconds;
#                        fuzz-nbd-merge minimises into tests/nbd/corpus
#   make nbd-churn       aioloop-nbd's 60-second connection churn (fd count
#                        and RSS flat; make check runs it for 5 s)
#   make install         install into PREFIX (default /usr/local), man
#                        pages and CMake config included
#   make docs            API reference + design pages (build-docs/html)
#   make deb             Debian packages (debian/) in build-deb/, lintian,
#                        then an example built against them (scripts/build-deb)
#   make check-abi       the library's ABI against abi/<soname>.abi
#                        (abidiff; additions pass, changes fail; build-abi/)
#   make abi-baseline    rewrite abi/<soname>.abi (see scripts/check-abi)
#
# CC=clang selects the compiler; BUILD=dir the default build directory.
# Each target first installs the Debian packages it needs, and only those
# (scripts/install-deps MODE: as root with apt-get, otherwise it prints
# the command; a missing optional test tool makes its tests skip).

CC ?= cc
BUILD ?= build
PREFIX ?= /usr/local
MESON_FLAGS ?=
DEPS = scripts/install-deps
FUZZ_TIME ?= 60

.PHONY: all check check-sanitize check-asan check-tsan bench install clean deps \
	check-aarch64 deps-check
.PHONY: check-model fuzz fuzz-merge fuzz-nbd fuzz-nbd-merge nbd-churn

all: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@CC="$(CC)" sh $(DEPS) --build

deps-check:
	@CC="$(CC)" sh $(DEPS) --check

$(BUILD)/build.ninja:
	CC=$(CC) meson setup $(BUILD) --prefix=$(PREFIX) $(MESON_FLAGS)

check: deps-check all
	sh scripts/run-tests $(BUILD)

# The Spin model alone, with the liveness searches of every scenario (make
# check runs them for one; see tests/model/meson.build).
check-model: deps-check all
	sh scripts/run-tests $(BUILD) --suite model --suite model-long

build-fuzz/build.ninja:
	CC=clang meson setup build-fuzz -Dfuzz=true \
	    -Db_sanitize=address,undefined -Db_lundef=false -Dbench=false \
	    -Dtools=false -Dexamples=false $(MESON_FLAGS)

fuzz:
	@CC=clang sh $(DEPS) --fuzz
	@test -f build-fuzz/build.ninja || $(MAKE) build-fuzz/build.ninja
	ninja -C build-fuzz tests/fuzz/fuzz-aio
	sh tests/fuzz/run-fuzz build-fuzz/tests/fuzz/fuzz-aio tests/fuzz/corpus \
	    build-fuzz/fuzz-run $(FUZZ_TIME)

fuzz-merge:
	@CC=clang sh $(DEPS) --fuzz
	@test -f build-fuzz/build.ninja || $(MAKE) build-fuzz/build.ninja
	ninja -C build-fuzz tests/fuzz/fuzz-aio
	sh tests/fuzz/run-fuzz build-fuzz/tests/fuzz/fuzz-aio tests/fuzz/corpus \
	    build-fuzz/fuzz-run merge

fuzz-nbd:
	@CC=clang sh $(DEPS) --fuzz
	@test -f build-fuzz/build.ninja || $(MAKE) build-fuzz/build.ninja
	ninja -C build-fuzz tests/nbd/fuzz-nbd
	sh tests/fuzz/run-fuzz build-fuzz/tests/nbd/fuzz-nbd tests/nbd/corpus \
	    build-fuzz/fuzz-nbd-run $(FUZZ_TIME)

fuzz-nbd-merge:
	@CC=clang sh $(DEPS) --fuzz
	@test -f build-fuzz/build.ninja || $(MAKE) build-fuzz/build.ninja
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

check-asan: deps-check build-asan/build.ninja
	ninja -C build-asan
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    sh scripts/run-tests build-asan

check-tsan: deps-check build-tsan/build.ninja
	ninja -C build-tsan
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	    sh scripts/run-tests build-tsan

check-sanitize: check-asan check-tsan

build-bench/build.ninja:
	CC=$(CC) meson setup build-bench -Dbuildtype=release -Db_ndebug=true \
	    -Dtests=false $(MESON_FLAGS)

bench:
	@CC="$(CC)" sh $(DEPS) --bench
	@test -f build-bench/build.ninja || $(MAKE) build-bench/build.ninja
	ninja -C build-bench
	sh scripts/run-bench build-bench

check-aarch64:
	sh scripts/check-aarch64 build-aarch64

# PREFIX=dir installs there (the build tree is reconfigured for it).
install: all
	@if [ -n "$(PREFIX)" ]; then \
	    meson configure $(BUILD) -Dprefix=$(abspath $(PREFIX)) >/dev/null && \
	    ninja -C $(BUILD); \
	fi
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
	    build-aarch64 build-fuzz build-deb build-abi

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

check-valgrind:
	@CC="$(CC)" sh $(DEPS) --valgrind
	@test -f build-valgrind/build.ninja || $(MAKE) build-valgrind/build.ninja
	ninja -C build-valgrind
	meson test -C build-valgrind --print-errorlogs --num-processes 2 \
	    --no-suite install --no-suite model --no-suite model-long \
	    --wrapper '$(VALGRIND)' --timeout-multiplier 10; \
	rc=$$?; python3 scripts/test-summary build-valgrind testlog-valgrind || rc=1; \
	exit $$rc

clean: clean-valgrind
clean-valgrind:
	rm -rf build-valgrind

# ---- shipping: Debian packages and the ABI check ---------------------
.PHONY: deb check-abi abi-baseline

deb: deps
	@sh $(DEPS) --deb
	sh scripts/build-deb

check-abi: deps
	@sh $(DEPS) --abi
	python3 scripts/check-abi selftest
	python3 scripts/check-abi check

abi-baseline: deps
	@sh $(DEPS) --abi
	python3 scripts/check-abi baseline
