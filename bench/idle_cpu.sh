#!/usr/bin/env bash
# CPU used by an idle nocstor daemon (default configuration) over N seconds, in % of one core.
# Usage: bench/idle_cpu.sh [seconds=10] [extra nocstor args...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
bin=${NOCSTOR_BIN:-build/bin/nocstor}
sock=$(mktemp -u /tmp/nocstor-idle.XXXXXX.sock)
"$bin" -r "$sock" --no-http -L warn "$@" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do [[ -S $sock ]] && break; sleep 0.1; done
sleep 2  # let start-up work settle
tck=$(getconf CLK_TCK)
t0=$(awk '{print $14+$15}' /proc/$pid/stat)
sleep "$secs"
t1=$(awk '{print $14+$15}' /proc/$pid/stat)
awk -v a="$t0" -v b="$t1" -v s="$secs" -v h="$tck" \
  'BEGIN { printf "idle CPU over %d s: %.2f%% of one core\n", s, (b - a) * 100 / h / s }'
