#!/usr/bin/env bash
# Does running a data cluster as its own process cost anything on the data path (issue 13)?
# The same stack in both modes of one daemon: a null bdev owned by data cluster 2, a remote bdev
# towards it on front-end cluster 1, exported over NVMe/TCP on a listener bound to cluster 1 and
# driven by nocstor-perf. "threads": every cluster is a thread of the daemon; "processes":
# --cluster-processes, cluster 2 is a child process on the shared NoC. The two modes take turns
# (alternating which runs first) and each round prints the processes/threads ratio; the median
# of the ratios is the answer. Control plane and nocstor-perf on PERF_CORE, the front-end
# cluster on FRONT_CORE, cluster 2 on CHILD_CORE. Where two reactors share a core they
# time-slice it (yielding when idle), and a switch between two processes costs more than one
# between two threads of a process (an address-space switch): FRONT_CORE=CHILD_CORE measures
# that, FRONT_CORE=PERF_CORE (cluster 2 alone on its core, as in a real deployment) measures the
# data path itself. Every run is bounded (-t, timeout).
# A second table needs no client core: remote_io_bench drives the remote bdev from cluster 1's
# own thread (cpu 0) towards cluster 2 (cpu 1), with cluster 2 a thread or (--process) a child
# process: a core per cluster, the data path alone.
#
#   bench/cluster_process_bench.sh [BUILD_DIR]     prints a markdown table
#   bench/cluster_process_bench.sh --help
#
# env (defaults): T=3 (seconds per run), WARM=1, ROUNDS=5, PERF_CORE=0, FRONT_CORE=1 and
# CHILD_CORE=1 (0 on 1 cpu)
set -euo pipefail

. "$(dirname "$0")/lib.sh"  # rpc, wait_sock, help_if_asked
help_if_asked "$0" "${1:-}"
BUILD=${1:-build}
BIN=$BUILD/bin
T=${T:-3}; WARM=${WARM:-1}; ROUNDS=${ROUNDS:-5}; PERF_CORE=${PERF_CORE:-0}
SECOND=$([ "$(nproc)" -gt 1 ] && echo 1 || echo 0)
FRONT_CORE=${FRONT_CORE:-$SECOND}; CHILD_CORE=${CHILD_CORE:-$SECOND}
NQN=nqn.2024-01.io.nocstor:procbench
[ -x "$BIN/nocstor" ] && [ -x "$BIN/nocstor-perf" ] || { echo "no $BIN/nocstor or nocstor-perf" >&2; exit 1; }
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
PLAN="0:control:$PERF_CORE;1:data:$FRONT_CORE;2:data:$CHILD_CORE"

# start MODE PORT -> sets $pid, $sock; the stack is built and its remote bdev is linked
start() {
  sock=$work/$1.sock
  local extra=()
  [ "$1" = processes ] && extra=(--cluster-processes)
  "$BIN/nocstor" --rpc-socket "$sock" --no-http --empty --clusters "$PLAN" "${extra[@]}" \
    >"$work/$1.log" 2>&1 &
  pid=$!
  wait_sock "$sock" || { echo "daemon ($1) did not start" >&2; cat "$work/$1.log" >&2; exit 1; }
  if [ "$1" = processes ]; then  # the child's own socket answers once it is up
    for _ in $(seq 100); do rpc "$sock" bdev_get_bdevs '{"cluster":2}' >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  rpc "$sock" bdev_null_create '{"name":"n2","num_blocks":2097152,"block_size":4096,"cluster":2}' >/dev/null
  rpc "$sock" bdev_remote_create '{"name":"r2","base_bdev_name":"n2","cluster":1}' >/dev/null
  rpc "$sock" nvmf_create_subsystem "{\"nqn\":\"$NQN\",\"allow_any_host\":true}" >/dev/null
  rpc "$sock" nvmf_subsystem_add_ns "{\"nqn\":\"$NQN\",\"namespace\":{\"bdev_name\":\"r2\"}}" >/dev/null
  rpc "$sock" nvmf_subsystem_add_listener "{\"nqn\":\"$NQN\",\"cluster\":1,\"listen_address\":{\"trtype\":\"TCP\",\"adrfam\":\"IPv4\",\"traddr\":\"127.0.0.1\",\"trsvcid\":\"$2\"}}" >/dev/null
}
stop() { kill -INT "$pid"; wait "$pid" 2>/dev/null || true; }

perf() { # perf PORT ARGS... -> "IOPS p99_us"
  timeout $((T + WARM + 30)) "$BIN/nocstor-perf" --json -c "$PERF_CORE" -t "$T" --warmup "$WARM" \
    -r "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$1 subnqn:$NQN" "${@:2}" |
    python3 -c 'import json,sys; t=json.load(sys.stdin)["total"]; print("%.0f %.1f" % (t["iops"], t["p99_us"]))'
}

WORKLOADS=("randread 32" "randwrite 32" "randread 1")
declare -A ratios
port=4620
echo "| round | workload | threads IOPS (p99 us) | processes IOPS (p99 us) | processes/threads |"
echo "|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  order=(threads processes)
  [ $((r % 2)) = 0 ] && order=(processes threads)
  declare -A res=()
  for mode in "${order[@]}"; do
    port=$((port + 1))
    start "$mode" "$port"
    for w in "${WORKLOADS[@]}"; do
      read -r rw qd <<<"$w"
      res["$mode $w"]=$(perf "$port" -w "$rw" -o 4096 -q "$qd")
    done
    stop
  done
  for w in "${WORKLOADS[@]}"; do
    read -r ti tp <<<"${res[threads $w]}"
    read -r pi pp <<<"${res[processes $w]}"
    ratio=$(python3 -c "print('%.3f' % ($pi / $ti))")
    ratios["$w"]+="$ratio "
    echo "| $r | ${w/ / QD} | $ti ($tp) | $pi ($pp) | $ratio |"
  done
done
echo
echo "| workload | median processes/threads over $ROUNDS rounds |"
echo "|---|---|"
for w in "${WORKLOADS[@]}"; do
  med=$(python3 -c "import statistics,sys; print('%.3f' % statistics.median(map(float, sys.argv[1:])))" ${ratios[$w]})
  echo "| ${w/ / QD} | $med |"
done
echo
echo "($(date -Is), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), 4 KiB, T=${T}s, nocstor-perf on cpu $PERF_CORE, front end on cpu $FRONT_CORE, cluster 2 on cpu $CHILD_CORE)"

# The data path alone, a core per cluster (no client process).
RIB=$BIN/remote_io_bench
[ -x "$RIB" ] || exit 0
rib() { # rib QD [--process] -> IOPS of the remote path
  timeout $((T + 30)) "$RIB" -q "$1" -t "$T" --paths remote --cores "$PERF_CORE,$SECOND" --json "${@:2}" |
    python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["remote"]["iops"])'
}
declare -A hr=()
echo
echo "| round | remote_io_bench, null, 4 KiB randread | threads IOPS | processes IOPS | processes/threads |"
echo "|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  for qd in 1 32; do
    if [ $((r % 2)) = 1 ]; then ti=$(rib "$qd"); pi=$(rib "$qd" --process)
    else pi=$(rib "$qd" --process); ti=$(rib "$qd"); fi
    ratio=$(python3 -c "print('%.3f' % ($pi / $ti))")
    hr[$qd]+="$ratio "
    echo "| $r | QD$qd | $ti | $pi | $ratio |"
  done
done
echo
for qd in 1 32; do
  echo "median processes/threads, remote_io_bench QD$qd: $(python3 -c "import statistics,sys; print('%.3f' % statistics.median(map(float, sys.argv[1:])))" ${hr[$qd]})"
done
