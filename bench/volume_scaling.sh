#!/usr/bin/env bash
# The same distributed volume on 1..N data clusters (issue 13), so the curve can be drawn on a
# bigger machine: for each N, a daemon with a front-end cluster (1) and N data clusters
# (2..N+1), each data cluster with a malloc bdev and an lvstore it owns, one volume striped
# over them (nocstor_volume_create, RAID0, 64 KiB strips) exported over NVMe/TCP, driven by
# nocstor-perf. N=0 is the single-cluster volume: the lvol, the array and the connection all on
# cluster 1, no remote bdev. The control plane and nocstor-perf get cpu 0, data cluster c cpu
# 1 + (c - 1) mod (nproc - 1); on 2 cpus every data cluster shares cpu 1, which measures what
# the path costs, not how it scales. Every run is bounded (-t, timeout).
#
#   bench/volume_scaling.sh [BUILD_DIR]        prints a markdown table
#   bench/volume_scaling.sh --help
#
# env (defaults): MAX_CLUSTERS=3, T=3, WARM=1, QD=32, SIZE_MB=256 (the volume), PERF_CORE=0
set -euo pipefail

. "$(dirname "$0")/lib.sh"  # rpc, wait_sock, help_if_asked
help_if_asked "$0" "${1:-}"
BUILD=${1:-build}
BIN=$BUILD/bin
MAX_CLUSTERS=${MAX_CLUSTERS:-3}; T=${T:-3}; WARM=${WARM:-1}; QD=${QD:-32}; SIZE_MB=${SIZE_MB:-256}
NCPU=$(nproc); PERF_CORE=${PERF_CORE:-0}
core_of() { [ "$NCPU" -gt 1 ] && echo $((1 + ($1 - 1) % (NCPU - 1))) || echo 0; }
NQN=nqn.2024-01.io.nocstor:volume
[ -x "$BIN/nocstor" ] && [ -x "$BIN/nocstor-perf" ] || { echo "no $BIN/nocstor or nocstor-perf" >&2; exit 1; }
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

perf() { # perf PORT SECONDS WARMUP ARGS... -> JSON
  timeout $(($2 + $3 + 30)) "$BIN/nocstor-perf" --json -c "$PERF_CORE" -t "$2" --warmup "$3" \
    -r "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$1 subnqn:$NQN" "${@:4}"
}
field() { python3 -c 'import json,sys; t=json.loads(sys.argv[1])["total"]; print("%.0f %.1f" % (t["iops"], t["p99_us"]))' "$1"; }

echo "| data clusters | randread IOPS | p99 us | randwrite IOPS | p99 us |"
echo "|---|---|---|---|---|"
for n in $(seq 0 "$MAX_CLUSTERS"); do
  plan="0:control:0;1:data:$(core_of 1)"
  data=()
  for c in $(seq 2 $((n + 1))); do plan+=";$c:data:$(core_of "$c")"; data+=("$c"); done
  [ "$n" = 0 ] && data=(1)
  sock=$work/n$n.sock; port=$((4520 + n))
  "$BIN/nocstor" --rpc-socket "$sock" --no-http --empty --clusters "$plan" >"$work/n$n.log" 2>&1 &
  pid=$!
  wait_sock "$sock" || { echo "daemon for N=$n did not start" >&2; cat "$work/n$n.log" >&2; exit 1; }
  per_mb=$(( SIZE_MB / ${#data[@]} + 16 ))  # + the array's superblock and the store's metadata
  ids=$(IFS=,; echo "${data[*]}")
  for c in "${data[@]}"; do
    rpc "$sock" bdev_malloc_create "{\"name\":\"m$c\",\"num_blocks\":$((per_mb * 256)),\"block_size\":4096,\"cluster\":$c}" >/dev/null
    rpc "$sock" bdev_lvol_create_lvstore "{\"bdev_name\":\"m$c\",\"lvs_name\":\"lvs$c\",\"cluster_sz\":1048576}" >/dev/null
  done
  rpc "$sock" nvmf_create_subsystem "{\"nqn\":\"$NQN\",\"allow_any_host\":true}" >/dev/null
  rpc "$sock" nocstor_volume_create "{\"name\":\"vol\",\"size_in_mib\":$SIZE_MB,\"clusters\":[$ids],\"front_cluster\":1,\"stripe_kb\":64,\"nqn\":\"$NQN\"}" >/dev/null
  rpc "$sock" nvmf_subsystem_add_listener "{\"nqn\":\"$NQN\",\"listen_address\":{\"trtype\":\"TCP\",\"adrfam\":\"IPv4\",\"traddr\":\"127.0.0.1\",\"trsvcid\":\"$port\"}}" >/dev/null
  # Write the whole volume once so that reads do not come from never-written pages.
  perf "$port" 2 0 -w write -o 131072 -q 8 >/dev/null
  read -r ri rp < <(field "$(perf "$port" "$T" "$WARM" -w randread -o 4096 -q "$QD")")
  read -r wi wp < <(field "$(perf "$port" "$T" "$WARM" -w randwrite -o 4096 -q "$QD")")
  echo "| $n$([ "$n" = 0 ] && echo ' (single-cluster volume)') | $ri | $rp | $wi | $wp |"
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
done
echo
echo "($(date -Is), $NCPU cpus, load $(cut -d' ' -f1-3 /proc/loadavg), QD$QD, 4 KiB, T=${T}s, nocstor-perf on cpu $PERF_CORE)"
