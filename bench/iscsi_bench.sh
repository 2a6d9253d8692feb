#!/usr/bin/env bash
# What the iSCSI bdev (issue 14) gets out of a LUN, as ratios measured in one run against one
# Debian tgt (tgtd on 127.0.0.1, a LUN file in /dev/shm so that the target's disk is not what is
# measured), 4 KiB random I/O at QD32:
#   - libiscsi's own iscsi-perf (random reads) on the LUN: the reference for the bdev's reads;
#   - the iSCSI bdev in process (BUILD_DIR/bin/raid_io_bench, one data core, one session):
#     random reads (target: >= 1.0x iscsi-perf) and random writes;
#   - the cache's miss path: reads through a pt cache on that LUN vs the LUN direct;
#   - cold write-back: writes into a fresh wb cache on that LUN vs writes to the LUN direct;
#   - the cleaning rate onto the LUN: dirty 4 KiB lines written back per second by a flush after
#     that run, against the LUN's own write IOPS.
# tgt and the initiator share the machine's cores: compare the ratios, not the IOPS.
# Needs root (tgtd) and tgt + libiscsi-bin (scripts/install-deps.sh --with-tests).
#
#   bench/iscsi_bench.sh [BUILD_DIR]     prints a markdown table (progress on stderr)
#   bench/iscsi_bench.sh --help
#
# env (defaults): T=5 (seconds per run), ROUNDS=3, QD=32
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
help_if_asked "$0" "${1:-}"
BUILD=${1:-build}
T=${T:-5}; ROUNDS=${ROUNDS:-3}; QD=${QD:-32}; SPAN=256M
IOB=$BUILD/bin/raid_io_bench
[ -x "$IOB" ] || { echo "no $IOB (build the bench/ targets)" >&2; exit 1; }
command -v tgtd >/dev/null && command -v iscsi-perf >/dev/null ||
  { echo "needs tgtd and iscsi-perf: scripts/install-deps.sh --with-tests" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "tgtd needs root" >&2; exit 1; }
work=$(mktemp -d)
lun=/dev/shm/nocstor-iscsi-bench.$$.img
ctl=$((3000 + RANDOM % 27000))
port=$((20000 + RANDOM % 10000))
iqn=iqn.2026-11.io.nocstor:bench
url="iscsi://127.0.0.1:$port/$iqn/1"
cleanup() {
  tgtadm -C "$ctl" --op delete --mode system >/dev/null 2>&1 || true
  sleep 0.5; kill -9 "${tgt_pid:-0}" 2>/dev/null || true
  rm -f "/var/run/tgtd/socket.$ctl" "/var/run/tgtd/socket.$ctl.lock" "$lun"; rm -rf "$work"
}
trap cleanup EXIT
truncate -s "$SPAN" "$lun"
tgtd -f -C "$ctl" --iscsi "portal=127.0.0.1:$port" >"$work/tgtd.log" 2>&1 &
tgt_pid=$!
for _ in $(seq 50); do tgtadm -C "$ctl" --op show --mode sys >/dev/null 2>&1 && break; sleep 0.1; done
tgtadm -C "$ctl" --lld iscsi --op new --mode target --tid 1 -T "$iqn"
tgtadm -C "$ctl" --lld iscsi --op new --mode logicalunit --tid 1 --lun 1 -b "$lun"
tgtadm -C "$ctl" --lld iscsi --op bind --mode target --tid 1 -I ALL
# Written once so that reads are of real data (a sparse file reads zeros without touching pages).
dd if=/dev/urandom of="$lun" bs=1M count=256 conv=notrunc status=none

# cfg NAME MODE: MODE none (the LUN direct) or a cache mode on a malloc cache
cfg() {
  python3 - "$work/$1.json" "$2" "$url" <<'PY'
import json, sys
path, mode, url = sys.argv[1:4]
c = [{"method": "bdev_iscsi_create",
      "params": {"name": "lun", "initiator_iqn": "iqn.2026-11.io.nocstor:bench-host", "url": url}}]
if mode != "none":
    c.append({"method": "bdev_malloc_create", "params": {"name": "fast", "num_blocks": 2 * 524288, "block_size": 512}})
    c.append({"method": "bdev_ocf_create",
              "params": {"name": "c0", "mode": mode, "cache_line_size": 4, "format": True,
                         "cache_bdev_name": "fast", "core_bdev_name": "lun"}})
json.dump({"subsystems": [{"subsystem": "bdev", "config": c}]}, open(path, "w"))
PY
}
cfg direct none; cfg pt pt; cfg wb wb

: >"$work/runs"
run() { iob_run "$@"; }  # bench/lib.sh
perf() { # iscsi-perf random reads, appended to runs like iob_run
  local l; l=$(cut -d' ' -f1 /proc/loadavg)
  local out; out=$(timeout $((T + 30)) iscsi-perf -i iqn.2026-11.io.nocstor:bench-perf -m "$QD" -b 8 -r \
    -t "$T" "$url" 2>&1 | tr '\r' '\n' | grep -o 'iops average [0-9]*' | tail -n1 | awk '{print $3}')
  printf '%s\t%s\t-\t%s\n' "iscsi-perf (libiscsi)|4K randread QD$QD" "${out:-FAILED}" "$l" >>"$work/runs"
  tail -n1 "$work/runs" >&2
}
echo "# $(date -Is) $(uname -n), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); T=$T ROUNDS=$ROUNDS" >&2
for r in $(seq "$ROUNDS"); do
  echo "round $r" >&2
  perf
  run "iSCSI bdev|4K randread QD$QD" direct lun -w randread -o 4096 -q "$QD"
  run "iSCSI bdev, writes|4K randwrite QD$QD" direct lun -w randwrite -o 4096 -q "$QD"
  run "miss path (pt cache on the LUN)|4K randread QD$QD" pt c0 -w randread -o 4096 -q "$QD"
  run "write-back, cold (wb cache on the LUN)|4K randwrite QD$QD" wb c0 -w randwrite -o 4096 -q "$QD"
  iob_clean_run "cleaning onto the LUN (flush after the wb run)|dirty 4K lines/s" wb c0 -w randwrite -o 4096 -q "$QD"
done
runs_table "$work/runs" "$ROUNDS" '{"iSCSI bdev": "iscsi-perf (libiscsi)",
  "miss path (pt cache on the LUN)": "iSCSI bdev",
  "write-back, cold (wb cache on the LUN)": "iSCSI bdev, writes",
  "cleaning onto the LUN (flush after the wb run)": "iSCSI bdev, writes"}'
