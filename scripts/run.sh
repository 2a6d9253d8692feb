#!/usr/bin/env bash
# Installs what is missing, builds a release build and starts the target in the foreground on its
# default configuration (a RAM-backed namespace on 127.0.0.1:4420). Ctrl-C stops it cleanly.
# Extra arguments go to the daemon, e.g. scripts/run.sh -c my-config.json
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DNOCSTOR_TESTS=OFF -DNOCSTOR_BENCH=OFF >/dev/null
ninja -C build nocstor nocstorctl
exec build/bin/nocstor "$@"
