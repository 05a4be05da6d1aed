# SPDX-License-Identifier: BSD-3-Clause
# vfu: the two commands a newcomer needs, `make demo` and `make check`,
# plus `make bench`, `make fuzz` and `make clean`. CMake does the building.

DEB_PACKAGES := cmake gcc make pkg-config liblua5.4-dev lua5.4 libjson-c-dev libcmocka-dev
# Only to run libvfio-user's own test suite (make compat, make check).
COMPAT_PACKAGES := python3-pytest python3-pytest-timeout
# Only to build the guest tests' initramfs (make check, make guest).
GUEST_PACKAGES := busybox-static cpio
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
REL_BUILD ?= build-release

.PHONY: all deps deps-compat deps-guest build demo check check-plain check-asan check-tsan check-guest compat guest bench fuzz clean install

all: build

# Install what is missing from Debian (only as root; otherwise say what to do).
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    (apt-get install -y --no-install-recommends $$missing || \
	     (apt-get update && apt-get install -y --no-install-recommends $$missing)) >/dev/null; \
	  else \
	    echo "missing Debian packages:$$missing"; \
	    echo "run: sudo apt-get install$$missing   (or run make as root)"; exit 1; \
	  fi; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PACKAGES))

deps-compat:
	$(call install_missing,$(COMPAT_PACKAGES))

deps-guest:
	$(call install_missing,$(GUEST_PACKAGES))

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	@./examples/demo.sh $(BUILD)

check: deps check-plain compat check-asan check-tsan check-guest
	@echo "make check: all suites passed"

check-plain: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS) -LE guest

# Real guests under QEMU (SKIP without it: see tests/guest/lib.sh), one at a
# time: each boot wants a core.
check-guest: build deps-guest
	ctest --test-dir $(BUILD) --output-on-failure -L guest

check-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVFU_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(JOBS) -LE nosan

# libvfio-user's own test suite on this build's library (SKIP without it:
# LIBVFIO_USER_TESTS, default ../shared/compat).
compat: build deps-compat
	@./tests/compat/run.sh $(BUILD)/core/libvfio-user.so.0

# A Linux guest with the device SCRIPT and a shell on this terminal.
SCRIPT ?= devices/gpio.lua
guest: build deps-guest
	@./tests/guest/run.sh $(BUILD)/vfu-lua $(SCRIPT)

# The tests that use threads, under ThreadSanitizer.
check-tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVFU_TSAN=ON >/dev/null
	cmake --build $(TSAN_BUILD) -j$(JOBS)
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --test-dir $(TSAN_BUILD) --output-on-failure -j$(JOBS) -L threads

bench: deps
	cmake -S . -B $(REL_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(REL_BUILD) -j$(JOBS)
	@./tests/bench/run.sh $(REL_BUILD) $(BENCH_ARGS)

# libFuzzer targets (clang), each for FUZZ_SECONDS; new inputs go to
# $(FUZZ_BUILD)/corpus, crashes to the current directory.
FUZZ_SECONDS ?= 60
FUZZ_BUILD ?= build-fuzz
FUZZ_TARGETS := session fds version config dma migration lua client
fuzz: deps
	@command -v clang >/dev/null || { echo "make fuzz needs clang: apt-get install clang"; exit 1; }
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVFU_FUZZ=ON >/dev/null
	cmake --build $(FUZZ_BUILD) -j$(JOBS) $(addprefix --target fuzz_,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	  echo "== fuzz_$$t for $(FUZZ_SECONDS)s"; \
	  $(FUZZ_BUILD)/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
	    -print_final_stats=1 $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(REL_BUILD) build-fuzz
