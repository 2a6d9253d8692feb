#!/usr/bin/env bash
# nocstor's iSCSI target (issue 15) against Debian's tgt, measured in one run on the same machine
# with the same initiators, as ratios:
#   - libiscsi's iscsi-perf: 4 KiB random reads at QD 1, 32 and 128, 128 KiB sequential reads
#     at QD 32 (iscsi-perf only reads);
#   - nocstor's own iSCSI initiator (the bdev_iscsi module in raid_io_bench, one session,
#     libiscsi) for writes: 4 KiB random reads and writes at QD 32, 128 KiB sequential writes
#     at QD 32.
# nocstor serves a RAM bdev from one data core, the first cpu (raid_io_bench's initiator core is
# the last one, so the two never share a core); tgt serves a file in /dev/shm (its threads are
# not limited to one core). The machines are small and the
# initiators share the cores: compare the ratios, not the IOPS.
# tgt needs root (without it only nocstor is measured). With SPDK_DIR pointing at a built SPDK
# tree, SPDK's iscsi_tgt is measured too: the same RAM LUN on the same core as nocstor's data
# thread, started only for its own runs (its reactor spins). Needs libiscsi-bin and the bench/
# targets (raid_io_bench): scripts/install-deps.sh --with-tests.
#
#   bench/iscsi_target_bench.sh [BUILD_DIR]   prints a markdown table (progress on stderr)
#   bench/iscsi_target_bench.sh --help
#
# env (defaults): T=5 (seconds per run), ROUNDS=3
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
help_if_asked "$0" "${1:-}"
BUILD=${1:-build}
T=${T:-5}; ROUNDS=${ROUNDS:-3}; SPAN=256M
IOB=$BUILD/bin/raid_io_bench
NOCSTOR=$BUILD/bin/nocstor
for b in "$IOB" "$NOCSTOR"; do [ -x "$b" ] || { echo "no $b (build the bench/ targets)" >&2; exit 1; }; done
command -v iscsi-perf >/dev/null || { echo "needs iscsi-perf: scripts/install-deps.sh --with-tests" >&2; exit 1; }
with_tgt=0
if command -v tgtd >/dev/null && [ "$(id -u)" = 0 ]; then with_tgt=1; else echo "no tgt comparison (needs root and tgt)" >&2; fi
work=$(mktemp -d)
lun=/dev/shm/nocstor-iscsi-target-bench.$$.img
ctl=$((3000 + RANDOM % 27000))
tport=$((20000 + RANDOM % 5000))
nport=$((25000 + RANDOM % 5000))
iqn=iqn.2026-12.io.nocstor:bench
cleanup() {
  if [ "$with_tgt" = 1 ]; then
    tgtadm -C "$ctl" --op delete --mode system >/dev/null 2>&1 || true
    sleep 0.5; kill -9 "${tgt_pid:-0}" 2>/dev/null || true
    rm -f "/var/run/tgtd/socket.$ctl" "/var/run/tgtd/socket.$ctl.lock"
  fi
  kill "${noc_pid:-0}" 2>/dev/null || true; wait "${noc_pid:-0}" 2>/dev/null || true
  kill -9 "${spdk_pid:-0}" 2>/dev/null || true
  rm -f "$lun"; rm -rf "$work"
}
trap cleanup EXIT

# nocstor: a 256 MiB RAM LUN (512-byte blocks, like the tgt file) on one data core.
"$NOCSTOR" --empty -r "$work/rpc.sock" --no-http --clusters '0:control:0;1:data:0' >"$work/nocstor.log" 2>&1 &
noc_pid=$!
wait_sock "$work/rpc.sock"
sleep 0.3
rpc "$work/rpc.sock" iscsi_set_options '{"max_queue_depth": 128}' >/dev/null
rpc "$work/rpc.sock" bdev_malloc_create '{"name": "Ram0", "num_blocks": 524288, "block_size": 512}' >/dev/null
rpc "$work/rpc.sock" iscsi_create_portal_group "{\"tag\": 1, \"portals\": [{\"host\": \"127.0.0.1\", \"port\": \"$nport\"}]}" >/dev/null
rpc "$work/rpc.sock" iscsi_create_initiator_group '{"tag": 1, "initiators": ["ANY"], "netmasks": ["127.0.0.1/8"]}' >/dev/null
rpc "$work/rpc.sock" iscsi_create_target_node "{\"name\": \"$iqn\", \"alias_name\": \"bench\", \"pg_ig_maps\": [{\"pg_tag\": 1, \"ig_tag\": 1}], \"luns\": [{\"bdev_name\": \"Ram0\", \"lun_id\": 1}], \"queue_depth\": 128}" >/dev/null
targets="nocstor"
if [ "$with_tgt" = 1 ]; then
  truncate -s "$SPAN" "$lun"
  tgtd -f -C "$ctl" --iscsi "portal=127.0.0.1:$tport" >"$work/tgtd.log" 2>&1 &
  tgt_pid=$!
  for _ in $(seq 50); do tgtadm -C "$ctl" --op show --mode sys >/dev/null 2>&1 && break; sleep 0.1; done
  tgtadm -C "$ctl" --lld iscsi --op new --mode target --tid 1 -T "$iqn"
  tgtadm -C "$ctl" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$lun"
  tgtadm -C "$ctl" --lld iscsi --op bind --mode target --tid 1 -I ALL
  targets="tgt nocstor"
fi
sport=$((30000 + RANDOM % 5000))
if [ -n "${SPDK_DIR:-}" ] && [ -x "$SPDK_DIR/build/bin/iscsi_tgt" ]; then
  cat >"$work/spdk-tgt.json" <<JSON
{"subsystems": [
 {"subsystem": "bdev", "config": [
   {"method": "bdev_malloc_create", "params": {"name": "Ram0", "num_blocks": 524288, "block_size": 512}}]},
 {"subsystem": "iscsi", "config": [
   {"method": "iscsi_set_options", "params": {"max_queue_depth": 128}},
   {"method": "iscsi_create_portal_group", "params": {"tag": 1, "portals": [{"host": "127.0.0.1", "port": "$sport"}]}},
   {"method": "iscsi_create_initiator_group", "params": {"tag": 1, "initiators": ["ANY"], "netmasks": ["127.0.0.1/8"]}},
   {"method": "iscsi_create_target_node", "params": {"name": "$iqn", "alias_name": "bench",
     "pg_ig_maps": [{"pg_tag": 1, "ig_tag": 1}], "luns": [{"bdev_name": "Ram0", "lun_id": 0}], "queue_depth": 128}}]}
]}
JSON
  targets="$targets spdk"
fi
start_spdk() {
  LD_LIBRARY_PATH=$SPDK_DIR/build/lib "$SPDK_DIR/build/bin/iscsi_tgt" -m 0x1 --no-pci --json "$work/spdk-tgt.json" \
    -r "$work/spdk.sock" >"$work/spdk.log" 2>&1 &
  spdk_pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$sport") 2>/dev/null && return 0; sleep 0.1; done
  echo "SPDK's iscsi_tgt did not start:" >&2; tail -n 20 "$work/spdk.log" >&2; exit 1
}
stop_spdk() { kill -INT "$spdk_pid" 2>/dev/null || true; wait "$spdk_pid" 2>/dev/null || true; }
url() {
  case $1 in
    tgt) echo "iscsi://127.0.0.1:$tport/$iqn/1" ;;
    spdk) echo "iscsi://127.0.0.1:$sport/$iqn/0" ;;  # SPDK's target nodes need a LUN 0
    *) echo "iscsi://127.0.0.1:$nport/$iqn/1" ;;
  esac
}
# Both LUNs written once so that reads are of real data.
for tg in $targets; do
  python3 - "$work/$tg.json" "$(url "$tg")" <<'PY'
import json, sys
json.dump({"subsystems": [{"subsystem": "bdev", "config": [{"method": "bdev_iscsi_create",
  "params": {"name": "lun", "initiator_iqn": "iqn.2026-12.io.nocstor:bench-host", "url": sys.argv[2]}}]}]},
  open(sys.argv[1], "w"))
PY
done

: >"$work/runs"
perf() { # perf TARGET LABEL ARGS...: iscsi-perf, appended to runs like iob_run
  local tg=$1 label=$2 l out; shift 2
  l=$(cut -d' ' -f1 /proc/loadavg)
  out=$(timeout $((T + 30)) iscsi-perf -i iqn.2026-12.io.nocstor:bench-perf "$@" -t "$T" "$(url "$tg")" 2>&1 |
    tr '\r' '\n' | grep -o 'iops average [0-9]*' | tail -n1 | awk '{print $3}')
  printf '%s\t%s\t-\t%s\n' "$label" "${out:-FAILED}" "$l" >>"$work/runs"
  tail -n1 "$work/runs" >&2
}
echo "# $(date -Is) $(uname -n), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); T=$T ROUNDS=$ROUNDS" >&2
for r in $(seq "$ROUNDS"); do
  echo "round $r" >&2
  for tg in $targets; do
    if [ "$tg" = spdk ]; then start_spdk; fi
    perf "$tg" "$tg|4K randread QD1 (iscsi-perf)" -m 1 -b 8 -r
    perf "$tg" "$tg|4K randread QD32 (iscsi-perf)" -m 32 -b 8 -r
    perf "$tg" "$tg|4K randread QD128 (iscsi-perf)" -m 128 -b 8 -r
    perf "$tg" "$tg|128K seq read QD32 (iscsi-perf)" -m 32 -b 256
    iob_run "$tg|4K randread QD32 (iSCSI bdev)" "$tg" lun -w randread -o 4096 -q 32
    iob_run "$tg|4K randwrite QD32 (iSCSI bdev)" "$tg" lun -w randwrite -o 4096 -q 32
    iob_run "$tg|128K seq write QD32 (iSCSI bdev)" "$tg" lun -w write -o 131072 -q 32
    if [ "$tg" = spdk ]; then stop_spdk; fi
  done
done
runs_table "$work/runs" "$ROUNDS" '{"nocstor": ["tgt", "spdk"]}'
