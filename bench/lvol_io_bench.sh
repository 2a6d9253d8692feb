#!/usr/bin/env bash
# What an lvol costs on the data path (issue 12), as ratios measured in one run: 4K random reads
# and writes on a fully allocated (thick) lvol vs its base bdev on one data core, and 4K random
# writes on a fresh thin lvol (every first write to a cluster allocates it: zero-fill, journal
# commit) with 4 MiB and 64 KiB clusters, and the allocation rate (one 64 KiB write per 64 KiB
# cluster, each a first write). Reads and writes on base and thick run after --prefill (a malloc
# page never written reads from the kernel's zero page, which flatters the bare base). In
# process with BUILD_DIR/bin/raid_io_bench (its config loader knows bdev_lvol_create_lvstore /
# bdev_lvol_create); malloc base, 4 KiB blocks.
#
#   bench/lvol_io_bench.sh [BUILD_DIR]     prints a markdown table (progress on stderr)
#   bench/lvol_io_bench.sh --help
#
# env (defaults): T=3 (seconds per run), ROUNDS=3, BASE_MB=1024, SPAN=512M, QD=32,
# PAIRS_ONLY=0 (1: only the base/thick pairs, for many rounds: runs differ by up to 10% here, a
# 3% difference needs a dozen paired rounds; see the paired column)
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
help_if_asked "$0" "${1:-}"
BUILD=${1:-build}
T=${T:-3}; ROUNDS=${ROUNDS:-3}; BASE_MB=${BASE_MB:-1024}; SPAN=${SPAN:-512M}; QD=${QD:-32}
ALLOC_N=$(( $(numfmt --from=iec "$SPAN") / 65536 ))  # 64 KiB clusters in the span
IOB=$BUILD/bin/raid_io_bench
[ -x "$IOB" ] || { echo "no $IOB (build the bench/ targets)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# cfg NAME KIND [CLUSTER_BYTES]: KIND base (the malloc alone), thick, thin
cfg() {
  python3 - "$work/$1.json" "$2" "${3:-4194304}" "$BASE_MB" <<'PY'
import json, sys
path, kind, cluster, base_mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
c = [{"method": "bdev_malloc_create",
      "params": {"name": "m0", "num_blocks": base_mb * 256, "block_size": 4096}}]
if kind != "base":
    c.append({"method": "bdev_lvol_create_lvstore",
              "params": {"bdev_name": "m0", "lvs_name": "lvs", "cluster_sz": cluster}})
    c.append({"method": "bdev_lvol_create",
              "params": {"lvs_name": "lvs", "lvol_name": "vol", "size_in_mib": base_mb * 3 // 4,
                         "thin_provision": kind == "thin"}})
json.dump({"subsystems": [{"subsystem": "bdev", "config": c}]}, open(path, "w"))
PY
}
cfg base base; cfg thick thick; cfg thin4m thin 4194304; cfg thin64k thin 65536

: >"$work/runs"
run() { iob_run "$@"; }  # bench/lib.sh
echo "# $(date -Is) $(uname -n), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); T=$T ROUNDS=$ROUNDS" >&2
# pair WORKLOAD R: the base and the thick lvol back to back, in turns first (a machine that
# speeds up or slows down within a round favours neither)
pair() {
  local base=(run "base malloc|4K $1 QD$QD" base m0 -w "$1" -o 4096 -q "$QD" --prefill)
  local thick=(run "thick lvol|4K $1 QD$QD" thick lvs/vol -w "$1" -o 4096 -q "$QD" --prefill)
  if [ $(($2 % 2)) = 1 ]; then "${base[@]}"; "${thick[@]}"; else "${thick[@]}"; "${base[@]}"; fi
}
for r in $(seq "$ROUNDS"); do
  echo "round $r" >&2
  pair randread "$r"
  pair randwrite "$r"
  [ "${PAIRS_ONLY:-0}" = 1 ] && continue
  run "thin lvol, 4 MiB clusters, fresh|4K randwrite QD$QD (first writes allocate)" thin4m lvs/vol -w randwrite -o 4096 -q "$QD"
  run "thin lvol, 64 KiB clusters, fresh|4K randwrite QD$QD (first writes allocate)" thin64k lvs/vol -w randwrite -o 4096 -q "$QD"
  # Every write a first write: one 64 KiB write per 64 KiB cluster, sequential, as many as the
  # span has clusters (-n), so the rate is the allocation rate (zero-fill + journal commit).
  run "base malloc|64K seq write QD$QD, $ALLOC_N writes" base m0 -w write -o 65536 -q "$QD" -n "$ALLOC_N"
  run "thin lvol, 64 KiB clusters, fresh|64K seq write QD$QD, $ALLOC_N writes" thin64k lvs/vol -w write -o 65536 -q "$QD" -n "$ALLOC_N"
done
python3 - "$work/runs" <<'PY'
import sys
rows, order = {}, []
for line in open(sys.argv[1]):
    label, iops, p99, load = line.rstrip("\n").split("\t")
    if label not in rows: rows[label] = []; order.append(label)
    rows[label].append((iops, p99, load))
def med(label):
    ok = sorted((r for r in rows[label] if r[0] != "FAILED"), key=lambda r: float(r[0]))
    return ok[len(ok) // 2] if ok else None
base, base_runs = {}, {}
for label in order:
    what, wl = label.split("|")
    if what == "base malloc" and med(label):
        base[wl] = float(med(label)[0]); base_runs[wl] = rows[label]
def paired(label, wl):
    # Median of the per-round ratios: each round runs the base and the lvol back to back, so a
    # slow stretch of the machine hits both (less noisy than the ratio of the medians).
    rs = sorted(float(a[0]) / float(b[0]) for a, b in zip(rows[label], base_runs.get(wl, []))
                if a[0] != "FAILED" and b[0] != "FAILED")
    return f"{rs[len(rs) // 2]:.3f}" if rs else "-"
print("| bdev | workload | IOPS (median) | p99 us | vs base (medians / paired) | all runs (K IOPS) | load |")
print("|---|---|---|---|---|---|---|")
for label in order:
    what, wl = label.split("|")
    m = med(label)
    allr = ", ".join("failed" if r[0] == "FAILED" else f"{float(r[0]) / 1e3:.0f}" for r in rows[label])
    loads = "/".join(r[2] for r in rows[label])
    if not m:
        print(f"| {what} | {wl} | failed | | | {allr} | {loads} |"); continue
    ref = base.get(wl)
    print(f"| {what} | {wl} | {float(m[0]) / 1e3:.1f}K | {m[1]} | {float(m[0]) / ref:.3f} / {paired(label, wl)} |" if ref else
          f"| {what} | {wl} | {float(m[0]) / 1e3:.1f}K | {m[1]} | - |", f"{allr} | {loads} |")
PY
