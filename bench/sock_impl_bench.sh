#!/usr/bin/env bash
# The target's two socket drivers side by side: one target with --sock-impl posix (epoll +
# recvmsg/sendmsg) and one with --sock-impl uring, both on core TGT_CORE, nocstor-perf on
# PERF_CORE, the issue's five workloads. Runs alternate posix/uring ROUNDS times so that the
# machine's slow and fast phases hit both alike; prints the median and best IOPS of each and
# the ratio of the medians (uring / posix). Every run is bounded (-t, timeout).
#   bench/sock_impl_bench.sh [BUILD_DIR] [--md]       ROUNDS=5 T=2 WARM=1
set -euo pipefail
BUILD=${1:-build}; MD=${2:-}
BIN=$BUILD/bin
ROUNDS=${ROUNDS:-5}; T=${T:-2}; WARM=${WARM:-1}
TGT_CORE=${TGT_CORE:-0}; PERF_CORE=${PERF_CORE:-1}
NQN=nqn.2024-01.io.nocstor:vol1
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

. "$(dirname "$0")/lib.sh"  # rpc, wait_sock

start_target() { # start_target IMPL PORT: a 256 MiB RAM namespace $NQN on PORT
  "$BIN/nocstor" --rpc-socket "$work/$1.sock" --no-http --clusters "0:control:$TGT_CORE;1:data:$TGT_CORE" \
     --sock-impl "$1" --empty -L warn >"$work/$1.log" 2>&1 &
  wait_sock "$work/$1.sock"
  rpc "$work/$1.sock" bdev_malloc_create '{"name":"m0","num_blocks":65536,"block_size":4096}' >/dev/null
  rpc "$work/$1.sock" nvmf_create_transport '{"trtype":"TCP"}' >/dev/null
  rpc "$work/$1.sock" nvmf_create_subsystem '{"nqn":"'$NQN'","allow_any_host":true}' >/dev/null
  rpc "$work/$1.sock" nvmf_subsystem_add_ns '{"nqn":"'$NQN'","namespace":{"bdev_name":"m0"}}' >/dev/null
  rpc "$work/$1.sock" nvmf_subsystem_add_listener \
    '{"nqn":"'$NQN'","listen_address":{"trtype":"TCP","adrfam":"IPv4","traddr":"127.0.0.1","trsvcid":"'$2'"}}' >/dev/null
}
perf() { # perf PORT ARGS... -> JSON
  timeout $((T + WARM + 30)) "$BIN/nocstor-perf" --json -c "$PERF_CORE" -t "$T" --warmup "$WARM" \
    -r "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$1 subnqn:$NQN" "${@:2}"
}

start_target posix 4420
start_target uring 4421
if [ "$MD" = --md ]; then
  echo "| workload | posix median IOPS | posix best | uring median IOPS | uring best | uring/posix (medians) | p99 us posix / uring (median run) |"
  echo "|---|---|---|---|---|---|---|"
fi
for w in "4K randread QD1:-w randread -o 4096 -q 1" "4K randread QD32:-w randread -o 4096 -q 32" \
         "4K randread QD128:-w randread -o 4096 -q 128" "4K randwrite QD32:-w randwrite -o 4096 -q 32" \
         "128K seq read QD8:-w read -o 131072 -q 8"; do
  label=${w%%:*}; args=${w#*:}
  : >"$work/runs"
  for _ in $(seq "$ROUNDS"); do
    echo "posix $(perf 4420 $args 2>/dev/null | python3 -c 'import json,sys; t=json.load(sys.stdin)["total"]; print(t["iops"], t["p99_us"])')" >>"$work/runs"
    echo "uring $(perf 4421 $args 2>/dev/null | python3 -c 'import json,sys; t=json.load(sys.stdin)["total"]; print(t["iops"], t["p99_us"])')" >>"$work/runs"
  done
  python3 - "$label" "$work/runs" "$MD" <<'PY'
import statistics, sys
runs = {"posix": [], "uring": []}
for line in open(sys.argv[2]):
    k, iops, p99 = line.split(); runs[k].append((float(iops), float(p99)))
def med(k):
    s = sorted(runs[k]); return s[len(s) // 2]
def best(k): return max(i for i, _ in runs[k])
p, u = med("posix"), med("uring")
if sys.argv[3] == "--md":
    print(f"| {sys.argv[1]} | {p[0]:.0f} | {best('posix'):.0f} | {u[0]:.0f} | {best('uring'):.0f} | "
          f"{u[0] / p[0]:.2f} | {p[1]:.1f} / {u[1]:.1f} |")
else:
    print(f"{sys.argv[1]:<20} posix median {p[0]:>9.0f} best {best('posix'):>9.0f}   uring median "
          f"{u[0]:>9.0f} best {best('uring'):>9.0f}   uring/posix {u[0] / p[0]:.2f}")
PY
done
