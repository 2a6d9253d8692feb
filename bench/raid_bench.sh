#!/usr/bin/env bash
# What RAID costs in nocstor, as ratios measured in one run on one machine (issue 11).
#
#   bench/raid_bench.sh [BUILD_DIR]        BUILD_DIR defaults to build; prints markdown tables
#   bench/raid_bench.sh --help             (progress and every run go to stderr)
#
# I/O (parts a-c) runs in process on one data core with BUILD_DIR/bin/raid_io_bench
# (bench/raid_io_bench.cpp: nocstor-bdevperf's jobs on a bdev built from an SPDK-style JSON config
# that may hold bdev_raid_* methods; it waits for the initial resync to end before measuring):
#   a. one malloc (the raid0 array's size) vs raid0 over RAID0_MEMBERS mallocs: 4K randread and
#      randwrite at QD, 128K sequential write at SEQ_QD
#   b. raid1 (2), raid5 (4), raid6 (5 members) and raid0: 4K randwrite, 4K randread, full-stripe
#      sequential writes (I/O size = strip * data members; raid1: 128K). With 3 data strips a
#      one-block raid6 write is a reconstruct-write (reads the 2 other data strips, not old
#      data + P + Q); raid5 (4) reads 2 either way and takes read-modify-write (ties go to RMW);
#      raid5 (5) and raid6 (7) 4K randwrite take read-modify-write (2 / 3 reads);
#      raid6 (5) with a superblock (write-intent bitmap): 4K randwrite
#   c. degraded: raid5 and raid6 with one member removed (bdev_raid_remove_base_bdev at the end of
#      the config), raid6 with two: 4K randread
#   d. resync and rebuild rate through the daemon (BUILD_DIR/bin/nocstor, JSON-RPC over a Unix
#      socket): raid1 and raid6 over REBUILD_SIZE mallocs, the initial resync timed, one member
#      removed, a fresh malloc added with bdev_raid_add_base_bdev, bdev_raid_get_bdevs polled
#      until the rebuild ends; then the same under bdev_raid_set_options
#      process_max_bandwidth_mb_sec=CAP_MB.
# The I/O runs alternate between the arrays ROUNDS times (the machine's slow and fast phases hit
# all of them); tables show medians and every run. Each run is bounded (timeout); only Unix
# sockets are used; the processes started here are stopped on exit.
# SPDK reference column: set SPDK_DIR to a built SPDK tree with build/examples/bdevperf and free
# huge pages; skipped otherwise (SPDK's raid has no raid6, and its raid5f takes full-stripe writes
# only).
#
# env (defaults): T=3 (seconds per run), ROUNDS=3, MEMBER_SIZE=256M, SPAN=256M (each run does
#   its I/O in the first SPAN bytes of the bdev, so that arrays of different sizes touch as much
#   user data: a 256 MiB malloc reads ~10% faster than a 1 GiB one), BLOCK_SIZE=4096, STRIP_KB=64,
#   RAID0_MEMBERS=4, QD=32, SEQ_QD=8, DATA_CORES=1 (raid_io_bench --cores), REBUILD_SIZE=1G,
#   CAP_MB=200, LIMIT=120 (seconds a resync/rebuild may take), ONLY=a,b,c,d (parts to run),
#   NAME_PREFIX=rb (bdev names ${NAME_PREFIX}m0.., ${NAME_PREFIX}r0), SPDK_DIR (unset)
set -euo pipefail

case ${1:-} in -h | --help)
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
  ;;
esac
BUILD=${1:-build}
T=${T:-3}; ROUNDS=${ROUNDS:-3}; MEMBER_SIZE=${MEMBER_SIZE:-256M}; BLOCK_SIZE=${BLOCK_SIZE:-4096}
SPAN=${SPAN:-256M}; STRIP_KB=${STRIP_KB:-64}; RAID0_MEMBERS=${RAID0_MEMBERS:-4}; QD=${QD:-32}; SEQ_QD=${SEQ_QD:-8}
DATA_CORES=${DATA_CORES:-1}; REBUILD_SIZE=${REBUILD_SIZE:-1G}; CAP_MB=${CAP_MB:-200}
LIMIT=${LIMIT:-120}; ONLY=${ONLY:-a,b,c,d}; P=${NAME_PREFIX:-rb}
IOB=$BUILD/bin/raid_io_bench
[ -x "$IOB" ] || { echo "no $IOB (build the bench/ targets)" >&2; exit 1; }

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"  # rpc, wait_sock

work=$(mktemp -d)
DPID=
cleanup() {
  if [ -n "$DPID" ]; then kill -INT "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bytes() { # bytes 256M -> 268435456
  local n=${1%[kKmMgG]}
  case $1 in *[kK]) echo $((n << 10)) ;; *[mM]) echo $((n << 20)) ;; *[gG]) echo $((n << 30)) ;; *) echo "$1" ;; esac
}
MEMBER_BLOCKS=$(($(bytes "$MEMBER_SIZE") / BLOCK_SIZE))
REBUILD_BLOCKS=$(($(bytes "$REBUILD_SIZE") / BLOCK_SIZE))
S=$((STRIP_KB * 1024))
load() { cut -d' ' -f1 /proc/loadavg; }
has() { [[ ",$ONLY," == *",$1,"* ]]; }

# cfg NAME LEVEL MEMBERS [REMOVED [SUPERBLOCK]]: writes $work/NAME.json. LEVEL "malloc": one
# malloc bdev the size of the raid0 array. The first REMOVED members are taken out at the end of
# the config. SUPERBLOCK true: metadata and the write-intent bitmap on the members.
cfg() {
  python3 - "$work/$1.json" "$2" "$3" "${4:-0}" "${5:-false}" "$MEMBER_BLOCKS" "$BLOCK_SIZE" \
    "$STRIP_KB" "$P" "$RAID0_MEMBERS" <<'PY'
import json, sys
path, level, n, removed, sb, blocks, bs, strip, p, r0 = sys.argv[1:]
n, removed, blocks, bs, r0 = int(n), int(removed), int(blocks), int(bs), int(r0)
cfg = []
if level == "malloc":
    cfg.append({"method": "bdev_malloc_create",
                "params": {"name": p + "r0", "num_blocks": blocks * r0, "block_size": bs}})
else:
    names = [f"{p}m{i}" for i in range(n)]
    for m in names:
        cfg.append({"method": "bdev_malloc_create",
                    "params": {"name": m, "num_blocks": blocks, "block_size": bs}})
    cfg.append({"method": "bdev_raid_create",
                "params": {"name": p + "r0", "raid_level": level, "base_bdevs": names,
                           "strip_size_kb": 0 if level == "raid1" else int(strip),
                           "superblock": sb == "true"}})
    for m in names[:removed]:
        cfg.append({"method": "bdev_raid_remove_base_bdev", "params": {"name": m}})
json.dump({"subsystems": [{"subsystem": "bdev", "config": cfg}]}, open(path, "w"), indent=1)
PY
}

# run LABEL CONFIG ARGS...: one bounded raid_io_bench run; appends a line to $work/runs
run() {
  local label=$1 conf=$2 l; shift 2
  l=$(load)
  if timeout $((T + LIMIT + 30)) "$IOB" -c "$work/$conf.json" -b "${P}r0" --cores "$DATA_CORES" \
       -t "$T" --span "$SPAN" --wait-limit "$LIMIT" --json "$@" >"$work/last.json" 2>"$work/err"; then
    python3 - "$work/last.json" "$label" "$l" <<'PY' >>"$work/runs"
import json, sys
r = json.load(open(sys.argv[1]))
t = r["total"]
states = ",".join(f'{a["raid_level"]}:{a["state"]}' for a in r["raid_after"]) or "-"
print("\t".join([sys.argv[2], f'{t["iops"]:.0f}', f'{t["mib_per_s"]:.1f}',
                 f'{t["latency_us"]["p99"]:.1f}', sys.argv[3], f'{r["waited_for_process_s"]:.2f}',
                 states]))
PY
  else
    echo "  $label: FAILED: $(tail -n3 "$work/err")" >&2
    printf '%s\tFAILED\t-\t-\t%s\t-\t-\n' "$label" "$l" >>"$work/runs"
  fi
  tail -n1 "$work/runs" | awk -F'\t' '{printf "  %-50s %8s IOPS %8s MiB/s p99 %7s us  load %s  resync wait %s s  %s\n", $1, $2, $3, $4, $5, $6, $7}' >&2
}

# The plan: "part|array|workload|config|raid_io_bench args"
plan=()
add() { plan+=("$1|$2|$3|$4|$5"); }  # add PART ARRAY WORKLOAD CONFIG ARGS
R0="raid0 ($RAID0_MEMBERS)"
rr="4K randread QD$QD|-w randread -o 4096 -q $QD"
rw="4K randwrite QD$QD|-w randwrite -o 4096 -q $QD"
fs() { # fs CONFIG LABEL DATA_MEMBERS: a full-stripe sequential write
  local n=$((S * $3)); [ "$1" = raid1 ] && n=131072
  add b "$2" "full-stripe seq write $((n / 1024))K QD$SEQ_QD" "$1" "-w write -o $n -q $SEQ_QD"
}
wl() { echo "${1%%|*}"; }
args() { echo "${1#*|}"; }
if has a; then
  cfg malloc malloc 1
  cfg raid0 raid0 "$RAID0_MEMBERS"
  for c in malloc raid0; do
    l=$c; [ $c = malloc ] && l="malloc (one, the size of $R0)"; [ $c = raid0 ] && l=$R0
    add a "$l" "$(wl "$rr")" $c "$(args "$rr")"
    add a "$l" "$(wl "$rw")" $c "$(args "$rw")"
    add a "$l" "128K seq write QD$SEQ_QD" $c "-w write -o 131072 -q $SEQ_QD"
  done
fi
if has b; then
  # 4 and 5 members: k = 3 data strips; a one-block raid6 write reads the 2 other data strips
  # (reconstruct-write, fewer reads than old data + P + Q), raid5 reads 2 either way and takes
  # read-modify-write; 5 and 7 members: k = 4 / 5, read-modify-write (2 / 3 reads).
  cfg raid0 raid0 "$RAID0_MEMBERS"; cfg raid1 raid1 2; cfg raid5 raid5 4; cfg raid6 raid6 5
  cfg raid5w raid5 5; cfg raid6w raid6 7; cfg raid6sb raid6 5 0 true
  has a || { add b "$R0" "$(wl "$rw")" raid0 "$(args "$rw")"; add b "$R0" "$(wl "$rr")" raid0 "$(args "$rr")"; }
  fs raid0 "$R0" "$RAID0_MEMBERS"
  for c in "raid1:raid1 (2):1" "raid5:raid5 (4):3" "raid6:raid6 (5):3"; do
    IFS=: read -r conf label dm <<<"$c"
    add b "$label" "$(wl "$rw")" "$conf" "$(args "$rw")"
    add b "$label" "$(wl "$rr")" "$conf" "$(args "$rr")"
    fs "$conf" "$label" "$dm"
  done
  add b "raid5 (5)" "$(wl "$rw") (RMW)" raid5w "$(args "$rw")"
  add b "raid6 (7)" "$(wl "$rw") (RMW)" raid6w "$(args "$rw")"
  add b "raid6 (5) with superblock" "$(wl "$rw")" raid6sb "$(args "$rw")"
fi
if has c; then
  cfg raid5-1 raid5 4 1; cfg raid6-1 raid6 5 1; cfg raid6-2 raid6 5 2
  add c "raid5 (4), 1 member gone" "$(wl "$rr") (degraded)" raid5-1 "$(args "$rr")"
  add c "raid6 (5), 1 member gone" "$(wl "$rr") (degraded)" raid6-1 "$(args "$rr")"
  add c "raid6 (5), 2 members gone" "$(wl "$rr") (degraded)" raid6-2 "$(args "$rr")"
fi

: >"$work/runs"
echo "# $(date -Is) $(uname -n), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg); T=$T" \
  "ROUNDS=$ROUNDS members $MEMBER_SIZE span $SPAN strip ${STRIP_KB}K, rebuild members $REBUILD_SIZE" >&2
if [ ${#plan[@]} -gt 0 ]; then
  for r in $(seq "$ROUNDS"); do
    echo "round $r" >&2
    for p in "${plan[@]}"; do
      IFS='|' read -r part arr wl conf args <<<"$p"
      # shellcheck disable=SC2086  # args is a list of words
      run "$part|$arr|$wl" "$conf" $args
    done
  done
fi

# --- d. resync and rebuild through the daemon ---
# timed SOCK METHOD PARAMS TYPE: calls METHOD, then polls bdev_raid_get_bdevs every 20 ms until
# array ${P}r0 reports a new finished last_process of TYPE (resync, rebuild): the process starts
# after the RPC has answered, so "no process running" right after the call proves nothing.
# Prints "wall-seconds daemon-seconds blocks-processed result" (at most LIMIT s).
timed() {
  python3 - "$@" "$LIMIT" "${P}r0" <<'PY'
import json, socket, sys, time
sock, method, params, kind, limit, name = sys.argv[1:7]
def call(m, p):
    s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sock)
    s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": m, "params": p}).encode())
    buf = b""
    while True:
        buf += s.recv(65536)
        try: r = json.loads(buf); break
        except ValueError: continue
    s.close()
    if "error" in r: sys.exit(f"{m}: {r['error']}")
    return r["result"]
def array():
    return next((a for a in call("bdev_raid_get_bdevs", {"category": "all"}) if a["name"] == name), {})
before = json.dumps(array().get("last_process"))
t0 = time.monotonic()
call(method, json.loads(params))
while True:
    a = array()
    last = a.get("last_process")
    if "process" not in a and last and json.dumps(last) != before and last.get("type") == kind:
        break
    if time.monotonic() - t0 > float(limit): sys.exit(f"{method}: no finished {kind} after {limit} s")
    time.sleep(0.02)
print(f'{time.monotonic() - t0:.3f} {last.get("seconds", 0):.3f} {last.get("blocks_processed", 0)} {last.get("result", "?")}')
PY
}
rebuild_rows=()
rebuild() { # rebuild LEVEL MEMBERS CAP: adds rows "level|process|cap|MB/s|seconds|wall|result|state|load"
  local level=$1 n=$2 cap=$3 sock=$work/noc.sock names=() i out st l strip=$STRIP_KB
  [ "$level" = raid1 ] && strip=0
  rpc "$sock" bdev_raid_set_options "{\"process_max_bandwidth_mb_sec\":$cap}" >/dev/null
  for i in $(seq 0 $((n - 1))); do
    rpc "$sock" bdev_malloc_create \
      "{\"name\":\"${P}m$i\",\"num_blocks\":$REBUILD_BLOCKS,\"block_size\":$BLOCK_SIZE}" >/dev/null
    names+=("\"${P}m$i\"")
  done
  rpc "$sock" bdev_malloc_create \
    "{\"name\":\"${P}spare\",\"num_blocks\":$REBUILD_BLOCKS,\"block_size\":$BLOCK_SIZE}" >/dev/null
  l=$(load)
  out=$(timed "$sock" bdev_raid_create "{\"name\":\"${P}r0\",\"raid_level\":\"$level\",\"strip_size_kb\":$strip,\"base_bdevs\":[$(IFS=,; echo "${names[*]}")]}" resync)
  rebuild_rows+=("$level ($n)|initial resync|$cap|$(rate "$out")|-|$l")
  echo "  ${rebuild_rows[-1]}" >&2
  rpc "$sock" bdev_raid_remove_base_bdev "{\"name\":\"${P}m1\"}" >/dev/null
  l=$(load)
  out=$(timed "$sock" bdev_raid_add_base_bdev "{\"raid_bdev\":\"${P}r0\",\"base_bdev\":\"${P}spare\"}" rebuild)
  st=$(rpc "$sock" bdev_raid_get_bdevs '{"category":"all"}' |
    python3 -c 'import json,sys; print(",".join(a["state"] for a in json.load(sys.stdin)))')
  rebuild_rows+=("$level ($n)|rebuild|$cap|$(rate "$out")|$st|$l")
  echo "  ${rebuild_rows[-1]}" >&2
  rpc "$sock" bdev_raid_delete "{\"name\":\"${P}r0\"}" >/dev/null
  for i in $(seq 0 $((n - 1))) spare; do
    [ "$i" = spare ] || i=m$i
    rpc "$sock" bdev_malloc_delete "{\"name\":\"${P}$i\"}" >/dev/null
  done
}
# rate "WALL SECS BLOCKS RESULT" -> "MB/s|secs|wall|result": member bytes over the daemon's time
rate() {
  awk -v bs="$BLOCK_SIZE" '{printf "%.0f|%s|%s|%s", $3 * bs / $2 / 1e6, $2, $1, $4}' <<<"$1"
}
if has d; then
  [ -x "$BUILD/bin/nocstor" ] || { echo "no $BUILD/bin/nocstor" >&2; exit 1; }
  data_core=$(($(nproc) - 1))
  "$BUILD/bin/nocstor" --empty --rpc-socket "$work/noc.sock" --no-http \
    --clusters "0:control:0;1:data:$data_core" -L warn >"$work/noc.log" 2>&1 &
  DPID=$!
  wait_sock "$work/noc.sock" || { echo "nocstor did not start" >&2; cat "$work/noc.log" >&2; exit 1; }
  for lv in raid1:2 raid6:5; do
    rebuild "${lv%%:*}" "${lv#*:}" 0
    rebuild "${lv%%:*}" "${lv#*:}" "$CAP_MB"
  done
  kill -INT "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=
fi

# --- SPDK reference: SPDK's bdevperf on the same configs (raid0, raid1, raid5f full stripes) ---
spdk_rows=()
spdk_skip="SPDK_DIR not set"
if [ -n "${SPDK_DIR:-}" ]; then
  SB=$SPDK_DIR/build/examples/bdevperf
  if [ ! -x "$SB" ]; then
    spdk_skip="no $SB"
  elif [ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" = 0 ]; then
    spdk_skip="no free huge pages"
  else
    spdk_skip=
    cfg raid0 raid0 "$RAID0_MEMBERS"; cfg raid1 raid1 2; cfg spdk-raid5f raid5 4
    sed -i 's/"raid5"/"raid5f"/' "$work/spdk-raid5f.json"
    for s in "raid0|4K randread QD$QD|raid0|-w randread -o 4096 -q $QD" \
      "raid0|4K randwrite QD$QD|raid0|-w randwrite -o 4096 -q $QD" \
      "raid1|4K randread QD$QD|raid1|-w randread -o 4096 -q $QD" \
      "raid1|4K randwrite QD$QD|raid1|-w randwrite -o 4096 -q $QD" \
      "raid5f (4)|full-stripe seq write $((S * 3 / 1024))K QD$SEQ_QD|spdk-raid5f|-w write -o $((S * 3)) -q $SEQ_QD"; do
      IFS='|' read -r arr wl conf args <<<"$s"
      # shellcheck disable=SC2086  # args is a list of words
      iops=$(timeout $((T + 60)) "$SB" --json "$work/$conf.json" -m 0x2 -t "$T" $args 2>&1 |
        awk -F: '/^ *Total/ {split($2, f, " "); print f[1]}') || true
      spdk_rows+=("$arr|$wl|${iops:-failed}|$(load)")
    done
  fi
fi

# --- tables ---
python3 - "$work/runs" <<'PY'
import re, sys
rows, order = {}, []
for line in open(sys.argv[1]):
    label, iops, mibs, p99, load, waited, states = line.rstrip("\n").split("\t")
    if label not in rows:
        rows[label] = []
        order.append(label)
    rows[label].append((iops, mibs, p99, load, states))
def med(label):
    ok = sorted((r for r in rows[label] if r[0] != "FAILED"), key=lambda r: float(r[0]))
    return ok[len(ok) // 2] if ok else None
def kind(wl):  # the workload without sizes of full stripes, depth and "(degraded)"
    wl = re.sub(r" QD\d+.*", "", wl)
    return re.sub(r"full-stripe seq write \d+K", "full-stripe seq write", wl)
raid0 = {}
for label in order:
    _, arr, wl = label.split("|")
    m = med(label)
    if arr.startswith("raid0") and m: raid0.setdefault(kind(wl), float(m[1]))
if not order: sys.exit(0)
print("| part | array | workload | IOPS (median) | MiB/s | p99 us | MiB/s vs raid0 | load at start | all runs (K IOPS) | state |")
print("|---|---|---|---|---|---|---|---|---|---|")
for label in order:
    part, arr, wl = label.split("|")
    m = med(label)
    allr = ", ".join("failed" if r[0] == "FAILED" else f"{float(r[0]) / 1e3:.0f}" for r in rows[label])
    loads = "/".join(r[3] for r in rows[label])
    if not m:
        print(f"| {part} | {arr} | {wl} | failed | | | | {loads} | {allr} | |")
        continue
    ref = raid0.get(kind(wl))
    ratio = f"{float(m[1]) / ref:.2f}" if ref else "-"
    print(f"| {part} | {arr} | {wl} | {float(m[0]) / 1e3:.1f}K | {m[1]} | {m[2]} | {ratio} | {loads} | {allr} | {m[4]} |")
PY
if [ ${#rebuild_rows[@]} -gt 0 ]; then
  echo
  echo "| array (members) | process | cap MB/s (0: none) | MB/s (member bytes / seconds) | seconds (daemon's last_process) | wall seconds (RPC to seen done) | result | state after | load at start |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for r in "${rebuild_rows[@]}"; do echo "| ${r//|/ | } |"; done
fi
if [ ${#spdk_rows[@]} -gt 0 ]; then
  echo
  echo "| SPDK bdevperf (reference) | workload | IOPS | load after |"
  echo "|---|---|---|---|"
  for r in "${spdk_rows[@]}"; do echo "| ${r//|/ | } |"; done
else
  echo "SPDK reference: skipped ($spdk_skip)" >&2
fi
