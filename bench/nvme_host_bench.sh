#!/usr/bin/env bash
# nocstor-perf against the nocstor target on loopback (spdk_nvme_perf-style workloads), and the
# NVMe -> NVMe-oF path: a second target whose namespace is an nvme bdev attached to the first.
# Prints one line per run; --md prints a markdown table. Every run is bounded (-t, timeout).
#   bench/nvme_host_bench.sh [BUILD_DIR] [--md]
set -euo pipefail
BUILD=${1:-build-host}; MD=${2:-}
BIN=$BUILD/bin
T=${T:-5}; WARM=${WARM:-1}
TGT_CORE=${TGT_CORE:-0}; PERF_CORE=${PERF_CORE:-1}
NQN=nqn.2024-01.io.nocstor:vol1
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

. "$(dirname "$0")/lib.sh"  # rpc, wait_sock

start_target() { # start_target NAME PORT CORE [--empty]
  "$BIN/nocstor" --rpc-socket "$work/$1.sock" --no-http --clusters "0:control:$3;1:data:$3" \
     ${4:-} >"$work/$1.log" 2>&1 &
  wait_sock "$work/$1.sock"
}
perf() { # perf PORT SUBNQN ARGS... -> JSON
  timeout $((T + WARM + 30)) "$BIN/nocstor-perf" --json -c "$PERF_CORE" -t "$T" --warmup "$WARM" \
    -r "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$1 subnqn:$2" "${@:3}"
}
row() { # row LABEL JSON
  python3 - "$1" "$2" "$MD" <<'PY'
import json, sys
t = json.loads(sys.argv[2])["total"]
f = "| {} | {:.0f} | {:.0f} | {:.1f} | {:.1f} | {:.1f} |" if sys.argv[3] == "--md" else \
    "{:<28} IOPS {:>9.0f}  MiB/s {:>7.0f}  p50 {:>7.1f}  p99 {:>7.1f}  p99.9 {:>7.1f} us"
print(f.format(sys.argv[1], t["iops"], t["mibps"], t["p50_us"], t["p99_us"], t["p99_9_us"]))
PY
}

start_target tgt1 4420 "$TGT_CORE"   # default config: 256 MiB RAM namespace $NQN on 4420
[ "$MD" = --md ] && { echo "| workload | IOPS | MiB/s | p50 us | p99 us | p99.9 us |"; echo "|---|---|---|---|---|---|"; }
declare -A R
for w in "4K randread QD1:-w randread -o 4096 -q 1" "4K randread QD32:-w randread -o 4096 -q 32" \
         "4K randread QD128:-w randread -o 4096 -q 128" "4K randwrite QD32:-w randwrite -o 4096 -q 32" \
         "128K seq read QD8:-w read -o 131072 -q 8"; do
  label=${w%%:*}; args=${w#*:}
  j=$(perf 4420 "$NQN" $args); R[$label]=$j; row "$label" "$j"
done

# NVMe -> NVMe-oF: target 2 exports an nvme bdev attached to target 1.
start_target tgt2 4421 "$TGT_CORE" --empty
if rpc "$work/tgt2.sock" bdev_nvme_attach_controller \
     '{"name":"Nvme0","trtype":"TCP","adrfam":"IPv4","traddr":"127.0.0.1","trsvcid":"4420","subnqn":"'$NQN'"}' >/dev/null; then
  N2=nqn.2024-01.io.nocstor:reexport
  rpc "$work/tgt2.sock" nvmf_create_subsystem '{"nqn":"'$N2'","allow_any_host":true}' >/dev/null
  rpc "$work/tgt2.sock" nvmf_subsystem_add_ns '{"nqn":"'$N2'","namespace":{"bdev_name":"Nvme0n1"}}' >/dev/null
  rpc "$work/tgt2.sock" nvmf_subsystem_add_listener \
      '{"nqn":"'$N2'","listen_address":{"trtype":"TCP","adrfam":"IPv4","traddr":"127.0.0.1","trsvcid":"4421"}}' >/dev/null
  for w in "4K randread QD32:-w randread -o 4096 -q 32" "4K randwrite QD32:-w randwrite -o 4096 -q 32"; do
    label=${w%%:*}; args=${w#*:}
    j=$(perf 4421 "$N2" $args); row "via nvme bdev: $label" "$j"
    python3 -c 'import json,sys; a=json.loads(sys.argv[1])["total"]["iops"]; b=json.loads(sys.argv[2])["total"]["iops"]; print("  overhead ratio (direct / via nvme bdev): %.2f" % (a/b))' "${R[$label]}" "$j"
  done
else
  echo "(NVMe -> NVMe-oF path skipped: the daemon does not serve bdev_nvme_attach_controller yet)"
fi
