#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: the full suite on an optimised build, then
# the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
# With the shared interop harness beside the checkout, also install QEMU and tshark so that the
# Linux-kernel-initiator tests run instead of skipping.
if [[ -x ../shared/interop/kernel-nvme-tcp.sh ]]; then
  scripts/install-deps.sh --with-interop
else
  scripts/install-deps.sh
fi
jobs=$(nproc)

echo "== build (RelWithDebInfo, warnings are errors)"
cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNOCSTOR_WERROR=ON >/dev/null
ninja -C build-test -j "$jobs"

echo "== tests"
(cd build-test && ctest --output-on-failure -j 1 --timeout 600)

echo "== unit tests under ASan + UBSan"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DNOCSTOR_SANITIZE=ON -DNOCSTOR_BENCH=OFF >/dev/null
ninja -C build-asan -j "$jobs" $(cd build-asan && ninja -t targets all | grep -oE '^unit_[a-z_]+(:)' | tr -d ':' | sort -u)
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -L unit -j 1 --timeout 600)

echo "== fuzz the parsers (libFuzzer, ${FUZZ_SECONDS:=15}s each)"
FUZZ_SECONDS=$FUZZ_SECONDS scripts/fuzz.sh
