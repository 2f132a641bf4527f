# aioloop - the newcomer's front door. The real build is Meson; these
# targets configure a build directory on first use and drive it.
#
#   make                 build (build/)
#   make check           run every test (build/)
#   make check-sanitize  tests under ASan+UBSan (build-asan/), and the
#                        multi-threaded tests under TSan (build-tsan/)
#   make bench           the benchmarks, peers side by side (build-bench/)
#   make check-model     only the Spin model checks (part of make check)
#   make fuzz            libFuzzer on tests/fuzz/fuzz-aio for FUZZ_TIME
#                        seconds (default 60), clang, ASan+UBSan (build-fuzz/)
#   make fuzz-merge      minimise what make fuzz found into tests/fuzz/corpus
#   make install         install into PREFIX (default /usr/local)
#
# CC=clang selects the compiler; BUILD=dir the default build directory.

CC ?= cc
BUILD ?= build
PREFIX ?= /usr/local
MESON_FLAGS ?=
DEPS = scripts/install-deps
FUZZ_TIME ?= 60

.PHONY: all check check-sanitize check-asan check-tsan bench install clean deps
.PHONY: check-model fuzz fuzz-merge

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

build-asan/build.ninja:
	CC=$(CC) meson setup build-asan -Db_sanitize=address,undefined \
	    -Db_lundef=false -Dbench=false $(MESON_FLAGS)

build-tsan/build.ninja:
	CC=$(CC) meson setup build-tsan -Db_sanitize=thread -Db_lundef=false \
	    -Dbench=false -Dexamples=false -Dtsan_only=true $(MESON_FLAGS)

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

install: all
	meson install -C $(BUILD)

clean:
	rm -rf build build-asan build-tsan build-bench build-clang build-release \
	    build-fuzz
