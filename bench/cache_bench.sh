#!/usr/bin/env bash
# What the cache vbdev (issue 14) costs and gives, as ratios measured in one run, in process with
# BUILD_DIR/bin/raid_io_bench on one data core, 4 KiB blocks:
#   - read hits: 4K random reads over a span the cache holds (filled by --prefill through a wt
#     cache) against the cache device alone (target: >= 0.90);
#   - write-back, cold: 4K random writes into a fresh wb cache (each first write of a line
#     allocates it and writes its entry) - IOPS per core against SPDK/OCF's 82K (target >= 3x);
#   - write-back, warm: the same span written again (lines already dirty: no entry write);
#   - the miss path: 4K random reads with the cache in pt mode against the core alone;
#   - the cleaning rate: dirty lines written back per second by a flush of the wb cache after
#     the cold write-back run (raid_io_bench --flush-cache).
# Cache and core are malloc bdevs (the core could be a delay bdev; here the engine's own cost is
# what is measured).
#
#   bench/cache_bench.sh [BUILD_DIR]     prints a markdown table (progress on stderr)
#   bench/cache_bench.sh --help
#
# env (defaults): T=3 (seconds per run), ROUNDS=3, SPAN=256M, QD=32
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
help_if_asked "$0" "${1:-}"
BUILD=${1:-build}
T=${T:-3}; ROUNDS=${ROUNDS:-3}; SPAN=${SPAN:-256M}; QD=${QD:-32}
IOB=$BUILD/bin/raid_io_bench
[ -x "$IOB" ] || { echo "no $IOB (build the bench/ targets)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# cfg NAME MODE: MODE none (the malloc bdevs alone) or a cache mode
cfg() {
  python3 - "$work/$1.json" "$2" <<'PY'
import json, sys
path, mode = sys.argv[1], sys.argv[2]
c = [{"method": "bdev_malloc_create", "params": {"name": "fast", "num_blocks": 512 * 256, "block_size": 4096}},
     {"method": "bdev_malloc_create", "params": {"name": "slow", "num_blocks": 1024 * 256, "block_size": 4096}}]
if mode != "none":
    c.append({"method": "bdev_ocf_create",
              "params": {"name": "c0", "mode": mode, "cache_line_size": 4,
                         "cache_bdev_name": "fast", "core_bdev_name": "slow"}})
json.dump({"subsystems": [{"subsystem": "bdev", "config": c}]}, open(path, "w"))
PY
}
cfg none none; cfg wt wt; cfg wb wb; cfg pt pt

: >"$work/runs"
run() { iob_run "$@"; }  # bench/lib.sh
echo "# $(date -Is) $(uname -n), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); T=$T ROUNDS=$ROUNDS SPAN=$SPAN" >&2
for r in $(seq "$ROUNDS"); do
  echo "round $r" >&2
  run "cache device alone|4K randread QD$QD" none fast -w randread -o 4096 -q "$QD" --prefill
  run "read hits (wt cache, span filled)|4K randread QD$QD" wt c0 -w randread -o 4096 -q "$QD" --prefill
  run "write-back, cold (fresh wb cache)|4K randwrite QD$QD" wb c0 -w randwrite -o 4096 -q "$QD"
  run "write-back, warm (span dirty)|4K randwrite QD$QD" wb c0 -w randwrite -o 4096 -q "$QD" --prefill
  run "core alone|4K randread QD$QD" none slow -w randread -o 4096 -q "$QD" --prefill
  run "miss path (pt cache)|4K randread QD$QD" pt c0 -w randread -o 4096 -q "$QD" --prefill
  iob_clean_run "cleaning rate (flush after the cold wb run)|dirty 4K lines/s" wb c0 -w randwrite -o 4096 -q "$QD"
done
python3 - "$work/runs" "$ROUNDS" <<'PY'
import sys, statistics
rows = {}
for line in open(sys.argv[1]):
    label, iops, p99, load = line.rstrip("\n").split("\t")
    if iops != "FAILED":
        rows.setdefault(label, []).append((float(iops), None if p99 == "-" else float(p99)))
ref = {"read hits": "cache device alone", "miss path": "core alone"}
print("| configuration | workload | IOPS (median of %s) | vs reference | p99 µs |" % sys.argv[2])
print("|---|---|---|---|---|")
med = {k: statistics.median(i for i, _ in v) for k, v in rows.items()}
for label, v in rows.items():
    name, wl = label.split("|")
    r = "-"
    for key, base in ref.items():
        if name.startswith(key):
            b = [m for l, m in med.items() if l.startswith(base)]
            if b: r = f"{med[label] / b[0]:.3f}"
    if name.startswith("write-back"):
        r = f"{med[label] / 82000:.1f}x OCF's 82K"
    p99s = [p for _, p in v if p is not None]
    p99 = f"{statistics.median(p99s):.1f}" if p99s else "-"
    print(f"| {name} | {wl} | {med[label]/1000:.1f}K | {r} | {p99} |")
PY
