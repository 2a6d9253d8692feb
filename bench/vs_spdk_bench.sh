#!/usr/bin/env bash
# nocstor's target against SPDK's nvmf_tgt on this machine, one target core each, measured by the
# same client (SPDK's spdk_nvme_perf) over loopback: the anchors' workloads, runs alternating
# between the two targets ROUNDS times so that the machine's slow and fast phases hit both.
# Both targets load the same SPDK-format JSON config (1 GiB malloc bdev, 4096 B blocks). SPDK is
# not part of the project: point SPDK_DIR at a built SPDK tree (nvmf_tgt and spdk_nvme_perf,
# see docs/benchmarks.md for how it was built); hugepages must be available for SPDK.
# TLS=1: the listener is a TLS 1.3 secure channel with a PSK for the client's host NQN (keyring
# key, nvmf_subsystem_add_host {psk}) and spdk_nvme_perf connects with -S ssl --psk-path.
#   SPDK_DIR=/path/to/spdk bench/vs_spdk_bench.sh [BUILD_DIR] [--md]
# STACK=raid0: the namespace is a raid0 (64 KiB strips) over four 256 MiB malloc bdevs;
# STACK=lvol: a thick 900 MiB lvol in an lvstore on the 1 GiB malloc bdev (SPDK's methods).
#   env: ROUNDS=3 T=4 SOCK_IMPL=posix TLS=0 STACK=malloc ONLY=<part of a workload label>
set -euo pipefail
BUILD=${1:-build}; MD=${2:-}
ROUNDS=${ROUNDS:-3}; T=${T:-4}; SOCK_IMPL=${SOCK_IMPL:-posix}
TGT_CORE=${TGT_CORE:-0}; PERF_CORE=${PERF_CORE:-1}
: "${SPDK_DIR:?set SPDK_DIR to a built SPDK tree (build/bin/nvmf_tgt, build/bin/spdk_nvme_perf)}"
export LD_LIBRARY_PATH=$SPDK_DIR/build/lib:${LD_LIBRARY_PATH:-}
NQN=nqn.2024-01.io.nocstor:vol1
HOSTNQN=nqn.2014-08.org.nvmexpress:uuid:6f2b1c9a-3e1d-4b7a-9c55-0a1b2c3d4e5f
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
TLS=${TLS:-0}
# SPDK's keyring reads the file whole and refuses a trailing newline.
printf 'NVMeTLSkey-1:01:MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmZwJEiQ:' >"$work/psk"
chmod 600 "$work/psk"
KEYRING="" SECURE="" HOSTS="" PERF_TLS=()
if [ "$TLS" = 1 ]; then
  KEYRING='{"subsystem": "keyring", "config": [{"method": "keyring_file_add_key", "params": {"name": "psk0", "path": "'$work/psk'"}}]},'
  SECURE='"secure_channel": true, '
  HOSTS=',{"method": "nvmf_subsystem_add_host", "params": {"nqn": "'$NQN'", "host": "'$HOSTNQN'", "psk": "psk0"}}'
  PERF_TLS=(-S ssl --psk-path "$work/psk")
fi
STACK=${STACK:-malloc}
case $STACK in
  malloc) BDEVS='{"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 262144, "block_size": 4096}}'
          NSBDEV=Malloc0 ;;
  raid0) BDEVS=""
         for i in 0 1 2 3; do
           BDEVS+='{"method": "bdev_malloc_create", "params": {"name": "M'$i'", "num_blocks": 65536, "block_size": 4096}},'
         done
         BDEVS+='{"method": "bdev_raid_create", "params": {"name": "Raid0", "raid_level": "raid0", "strip_size_kb": 64, "base_bdevs": ["M0", "M1", "M2", "M3"]}}'
         NSBDEV=Raid0 ;;
  lvol) BDEVS='{"method": "bdev_malloc_create", "params": {"name": "Malloc0", "num_blocks": 262144, "block_size": 4096}},
   {"method": "bdev_lvol_create_lvstore", "params": {"bdev_name": "Malloc0", "lvs_name": "lvs0"}},
   {"method": "bdev_lvol_create", "params": {"lvol_name": "lv0", "size_in_mib": 900, "lvs_name": "lvs0", "thin_provision": false}}'
        NSBDEV=lvs0/lv0 ;;
  *) echo "STACK must be malloc, raid0 or lvol" >&2; exit 2 ;;
esac
cat >"$work/tgt.json" <<JSON
{"subsystems": [ $KEYRING
 {"subsystem": "bdev", "config": [
   $BDEVS]},
 {"subsystem": "nvmf", "config": [
   {"method": "nvmf_create_transport", "params": {"trtype": "TCP"}},
   {"method": "nvmf_create_subsystem", "params": {"nqn": "$NQN", "allow_any_host": $([ "$TLS" = 1 ] && echo false || echo true), "serial_number": "BENCH0001"}},
   {"method": "nvmf_subsystem_add_ns", "params": {"nqn": "$NQN", "namespace": {"bdev_name": "$NSBDEV"}}},
   {"method": "nvmf_subsystem_add_listener", "params": {"nqn": "$NQN", $SECURE"listen_address":
     {"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": "4420"}}}$HOSTS]}
]}
JSON

wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/4420) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
start() { # start spdk|nocstor
  if [ "$1" = spdk ]; then
    "$SPDK_DIR/build/bin/nvmf_tgt" -m "$((1 << TGT_CORE))" --json "$work/tgt.json" -r "$work/spdk.sock" \
      >"$work/spdk.log" 2>&1 &
  else
    "$BUILD/bin/nocstor" -c "$work/tgt.json" --rpc-socket "$work/noc.sock" --no-http \
      --clusters "0:control:$TGT_CORE;1:data:$TGT_CORE" --sock-impl "$SOCK_IMPL" -L warn >"$work/noc.log" 2>&1 &
  fi
  TPID=$!
  wait_port || { echo "target $1 did not start" >&2; cat "$work/$1.log" >&2; exit 1; }
  sleep 0.5
}
stop() { kill -INT "$TPID"; wait "$TPID" 2>/dev/null || true; }
perf() { # perf ARGS... -> "iops p50 p99 p99.9"
  timeout $((T + 30)) "$SPDK_DIR/build/bin/spdk_nvme_perf" -c "$((1 << PERF_CORE))" -t "$T" -L "$@" "${PERF_TLS[@]}" \
    -r "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:$NQN hostnqn:$HOSTNQN" 2>&1 |
  awk '/^Total/ {iops=$(NF-4)} /^ *50.00000%/ {p50=$3} /^ *99.00000%/ {p99=$3} /^ *99.90000%/ {p999=$3}
       END {gsub("us","",p50); gsub("us","",p99); gsub("us","",p999); print iops, p50, p99, p999}'
}

if [ "$MD" = --md ]; then
  echo "| workload | SPDK nvmf_tgt IOPS (median) | nocstor IOPS (median) | nocstor / SPDK | p99 us SPDK / nocstor | p99.9 us SPDK / nocstor |"
  echo "|---|---|---|---|---|---|"
fi
for w in "4K randread QD1:-w randread -o 4096 -q 1" "4K randread QD32:-w randread -o 4096 -q 32" \
         "4K randread QD128:-w randread -o 4096 -q 128" "4K randwrite QD32:-w randwrite -o 4096 -q 32" \
         "128K seq read QD8:-w read -o 131072 -q 8"; do
  label=${w%%:*}; args=${w#*:}
  [[ -n ${ONLY:-} && $label != *"$ONLY"* ]] && continue
  : >"$work/runs"
  for _ in $(seq "$ROUNDS"); do
    for t in spdk nocstor; do
      start $t; echo "$t $(perf $args)" >>"$work/runs"; stop
    done
  done
  python3 - "$label" "$work/runs" "$MD" <<'PY'
import sys
runs = {"spdk": [], "nocstor": []}
for line in open(sys.argv[2]):
    f = line.split()
    if len(f) == 5: runs[f[0]].append(tuple(float(x) for x in f[1:]))
def med(k):
    s = sorted(runs[k]); return s[len(s) // 2] if s else (0, 0, 0, 0)
s, n = med("spdk"), med("nocstor")
ratio = n[0] / s[0] if s[0] else float("nan")
if sys.argv[3] == "--md":
    print(f"| {sys.argv[1]} | {s[0]:.0f} | {n[0]:.0f} | {ratio:.2f} | {s[2]:.1f} / {n[2]:.1f} | {s[3]:.1f} / {n[3]:.1f} |")
else:
    print(f"{sys.argv[1]:<20} SPDK {s[0]:>9.0f}  nocstor {n[0]:>9.0f}  ratio {ratio:.2f}  "
          f"p99 {s[2]:.1f} / {n[2]:.1f} us  p99.9 {s[3]:.1f} / {n[3]:.1f} us   "
          f"(all: SPDK {[round(r[0]) for r in runs['spdk']]}, nocstor {[round(r[0]) for r in runs['nocstor']]})")
PY
done
