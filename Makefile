# toekit top-level entry points. Everything real is in CMake; this file only picks build folders
# and makes sure the machine has what the targets need.
#
#   make          release build into build/ (binaries build/bin, libraries build/lib)
#   make test     installs missing packages, builds with ASan+UBSan into build-san/, runs ctest
#                 (unit and namespace interop tests), then builds and runs the fuzzers briefly
#   make demo     installs missing packages, builds, runs the demo (scripts/demo.sh)
#   make fuzz     builds the libFuzzer targets into build-fuzz/ (clang)
#   make bench-scale  a million connections held by one toed, and the connection rate (bench/scale.sh)
#   make soak     an hour of impaired mixed traffic, clients killed, toed restarted (tests/soak/soak.sh)
#   make bench    release build into build/, then runs the benchmarks (bench/run-all.sh; root for
#                 the namespace ones)
#   make install  release build, installed under PREFIX (default /usr/local) inside DESTDIR
#                 (e.g. make install DESTDIR=/tmp/stage PREFIX=/usr); make uninstall DESTDIR=... too
#   make deb      release build, packaged as build/toekit_VERSION_ARCH.deb (CPack)
#   make firmware the engine and wire layer cross-built freestanding for each FIRMWARE_TARGETS
#                 (build-firmware-<target>/), each checked by firmware/linkcheck.sh (docs/firmware.md)
#   make test-cross  the unit tests cross-built for big-endian s390x (under qemu-user) and 32-bit
#                 i686 (build-cross-<target>/, tests/cross/run.sh)
#   make firmware-qemu  the bare-metal example (firmware/example) booted under qemu-system-arm,
#                 answering ping and TCP echo from Linux over TAP in a namespace (root)

JOBS ?= $(shell nproc)
# Seconds per fuzz target in make test (23 targets: about 5 minutes); the two whole-engine
# targets get longer. `make fuzz FUZZ_SECONDS=600` for a real session.
FUZZ_SECONDS ?= 10
FUZZ_ENGINE_SECONDS ?= 40
FIRMWARE_TARGETS ?= cortex-m7 cortex-a7 riscv64
CROSS_TARGETS ?= s390x i686

.PHONY: all build san fuzz-build test unit demo fuzz deps format clean install uninstall deb firmware test-cross firmware-qemu

PREFIX ?= /usr/local
# the build folder that install, uninstall and deb use
BUILD ?= build

all: build

build:
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j $(JOBS)

san:
	@cmake -S . -B build-san -DCMAKE_BUILD_TYPE=Debug -DTOE_SANITIZE=ON >/dev/null
	@cmake --build build-san -j $(JOBS)

fuzz-build:
	@CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DTOE_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)

deps:
	@scripts/deps.sh

# Unit tests only (fast, no root needed).
unit: san
	@cd build-san && ctest -L unit --output-on-failure -j $(JOBS)

test: deps build san fuzz-build
	@cd build-san && ctest --output-on-failure
	@# Unmodified programs under the preload: an uninstrumented program cannot load an ASan-built
	@# library (curl deadlocks in the ASan runtime before main), so these also run on the release build.
	@cd build && ctest -R 'net/test_preload' --output-on-failure
	@scripts/run-fuzzers.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_ENGINE_SECONDS)
	@# The engine on device targets: freestanding builds and their link check, then the unit
	@# tests on a big-endian and a 32-bit target (docs/firmware.md).
	@$(MAKE) --no-print-directory firmware test-cross firmware-qemu

demo: deps build
	@scripts/demo.sh build/bin

fuzz: fuzz-build
	@scripts/run-fuzzers.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ_ENGINE_SECONDS)

.PHONY: bench bench-scale soak
bench: build
	@bash bench/run-all.sh build/bin

bench-scale: build
	@bash bench/scale.sh build/bin

# An hour of mixed, impaired traffic with clients killed and toed restarted (SOAK_MINUTES).
soak: build
	@bash tests/soak/soak.sh build/bin

install:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@DESTDIR=$(DESTDIR) cmake --install $(BUILD)

# Removes every file the last `make install` wrote ($(BUILD)/install_manifest.txt names them
# without DESTDIR: give the same DESTDIR as to the install), then the directories of toekit's own
# that are left empty.
uninstall:
	@test -f $(BUILD)/install_manifest.txt || { echo "make uninstall: nothing installed from $(BUILD)/"; exit 1; }
	@sed 's,^,$(DESTDIR),' $(BUILD)/install_manifest.txt | xargs -r -d '\n' rm -f --
	@for d in $$(sed -n 's,/toekit/.*,/toekit,p; s,/toe/[^/]*$$,/toe,p' $(BUILD)/install_manifest.txt | sort -u); do \
	  if [ -d "$(DESTDIR)$$d" ]; then find "$(DESTDIR)$$d" -depth -type d -empty -delete; fi; done
	@echo "removed $$(wc -l < $(BUILD)/install_manifest.txt) files from $(or $(DESTDIR),/)"

deb: build
	@cd $(BUILD) && cpack -G DEB

format:
	@find include src tests fuzz bench -name '*.[ch]' | xargs clang-format -i

# The link check's own test first (it must reject a 64-bit division and a double), then each target.
firmware: deps
	@bash firmware/linkcheck.sh --self-test
	@for t in $(FIRMWARE_TARGETS); do \
	  cmake -S firmware -B build-firmware-$$t -DCMAKE_TOOLCHAIN_FILE=$(CURDIR)/cmake/toolchain-$$t.cmake >/dev/null && \
	  cmake --build build-firmware-$$t -j $(JOBS) || exit 1; \
	done

# The bare-metal example under qemu-system-arm, pinged and echoed by Linux over TAP (root).
firmware-qemu: firmware
	@bash firmware/example/run-qemu.sh build-firmware-cortex-m7/example/fw_example.elf

test-cross: deps
	@for t in $(CROSS_TARGETS); do bash tests/cross/run.sh $$t $(JOBS) || exit 1; done

clean:
	rm -rf build build-san build-fuzz build-firmware-* build-cross-*
