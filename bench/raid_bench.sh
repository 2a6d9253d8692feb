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
#      process_max_bandwidth_mb_sec=CAP_MB. Then (daemon stopped) the rebuild with and without
#      user I/O, in process: raid_io_bench --during (remove a member, add the spare once the
#      jobs run) --until-idle (the jobs stop when the rebuild ends): no I/O (-q 0), then each
#      4K workload of REBUILD_LOAD at QD over the whole array; for each, the same load on the
#      online array for T seconds (no rebuild) as the reference. ROUNDS times, medians.
#   e. the issue's targets on MEMBER members (null: bdev_null_create, reads zero the buffer;
#      malloc), one data core: raid0 over RAID0_MEMBERS members vs the same members without
#      RAID (raid_io_bench -b m0,m1,..: one job per member on the same core, QD/RAID0_MEMBERS
#      each, so as many I/Os in flight; summed), 4K randread and randwrite (target >= 0.90);
#      raid6 (4+2) full-stripe sequential write (4 strips, SEQ_QD) vs ISA-L pq_gen for k=4 data
#      strips of the strip size (raid_parity_bench BM_Raid6Generate k:4, once a round: cold:1 =
#      strips from memory, cold:2 = 8 stripes in turn (the working set of 8 full-stripe writes in
#      flight: caches), cold:0 = one stripe; target >= 0.70; GB/s over CPU time, the arrays' over
#      wall time); raid0 full-stripe writes as the no-parity reference.
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
#   CAP_MB=200, LIMIT=120 (seconds a resync/rebuild may take), ONLY=a,b,c,d,e (parts to run),
#   REBUILD_LOAD=randread,randwrite (part d's user I/O during the rebuild; empty: none),
#   MEMBER=null,malloc (part e's member kinds), PARITY_MIN_TIME=0.3 (part e, seconds per
#   raid_parity_bench case), NAME_PREFIX=rb (bdev names ${NAME_PREFIX}m0.., ${NAME_PREFIX}r0),
#   SPDK_DIR (unset)
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
LIMIT=${LIMIT:-120}; ONLY=${ONLY:-a,b,c,d,e}; P=${NAME_PREFIX:-rb}
REBUILD_LOAD=${REBUILD_LOAD-randread,randwrite}; MEMBER=${MEMBER:-null,malloc}
PARITY_MIN_TIME=${PARITY_MIN_TIME:-0.3}
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
# malloc bdev the size of the raid0 array; "none": the members alone. The first REMOVED members
# are taken out at the end of the config. SUPERBLOCK true: metadata and the write-intent bitmap
# on the members. Env: KIND=malloc|null (the members), BLOCKS=$MEMBER_BLOCKS (per member),
# SPARE=1 (one more member, ${P}spare, not in the array).
cfg() {
  python3 - "$work/$1.json" "$2" "$3" "${4:-0}" "${5:-false}" "${BLOCKS:-$MEMBER_BLOCKS}" \
    "$BLOCK_SIZE" "$STRIP_KB" "$P" "$RAID0_MEMBERS" "${KIND:-malloc}" "${SPARE:-0}" <<'PY'
import json, sys
path, level, n, removed, sb, blocks, bs, strip, p, r0, kind, spare = sys.argv[1:]
n, removed, blocks, bs, r0 = int(n), int(removed), int(blocks), int(bs), int(r0)
cfg = []
if level == "malloc":
    cfg.append({"method": "bdev_malloc_create",
                "params": {"name": p + "r0", "num_blocks": blocks * r0, "block_size": bs}})
else:
    names = [f"{p}m{i}" for i in range(n)]
    for m in names + ([p + "spare"] if spare == "1" else []):
        cfg.append({"method": f"bdev_{kind}_create",
                    "params": {"name": m, "num_blocks": blocks, "block_size": bs}})
if level not in ("malloc", "none"):
    cfg.append({"method": "bdev_raid_create",
                "params": {"name": p + "r0", "raid_level": level, "base_bdevs": names,
                           "strip_size_kb": 0 if level == "raid1" else int(strip),
                           "superblock": sb == "true"}})
    for m in names[:removed]:
        cfg.append({"method": "bdev_raid_remove_base_bdev", "params": {"name": m}})
json.dump({"subsystems": [{"subsystem": "bdev", "config": cfg}]}, open(path, "w"), indent=1)
PY
}

# run LABEL CONFIG ARGS...: one bounded raid_io_bench run (on ${P}r0, the first SPAN bytes,
# unless ARGS have -b / --span); appends a line to $work/runs
run() {
  local label=$1 conf=$2 l def=(); shift 2
  [[ " $* " == *" -b "* ]] || def+=(-b "${P}r0")
  [[ " $* " == *" --span "* ]] || def+=(--span "$SPAN")
  l=$(load)
  if timeout $((T + LIMIT + 30)) "$IOB" -c "$work/$conf.json" "${def[@]}" --cores "$DATA_CORES" \
       -t "$T" --wait-limit "$LIMIT" --json "$@" >"$work/last.json" 2>"$work/err"; then
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
if has e; then
  # array labels: "raid0 (4) on null", "null x4 directly (QD8 each)" (the tables pair them)
  N=$RAID0_MEMBERS; dq=$((QD / N)); [ "$dq" -gt 0 ] || dq=1
  direct=$(for i in $(seq 0 $((N - 1))); do printf '%s,' "${P}m$i"; done); direct=${direct%,}
  for k in ${MEMBER//,/ }; do
    KIND=$k cfg "e-$k-raid0" raid0 "$N"; KIND=$k cfg "e-$k-none" none "$N"
    KIND=$k cfg "e-$k-raid6" raid6 6
    for w in randread randwrite; do
      add e "raid0 ($N) on $k" "4K $w QD$QD" "e-$k-raid0" "-w $w -o 4096 -q $QD"
      # each job in the first SPAN/N bytes of its member: as much memory as the array's runs
      add e "$k x$N directly (QD$dq each)" "4K $w QD$QD" "e-$k-none" \
        "-b $direct -w $w -o 4096 -q $dq --span $(($(bytes "$SPAN") / N))"
    done
    add e "raid0 ($N) on $k" "full-stripe seq write $((S * N / 1024))K QD$SEQ_QD" "e-$k-raid0" \
      "-w write -o $((S * N)) -q $SEQ_QD"
    add e "raid6 (4+2) on $k" "full-stripe seq write $((S * 4 / 1024))K QD$SEQ_QD" "e-$k-raid6" \
      "-w write -o $((S * 4)) -q $SEQ_QD"
  done
fi
# parity: ISA-L pq_gen (raid_parity_bench BM_Raid6Generate, k=4, strips of STRIP_KB: from memory,
# 8 stripes in turn, one in the caches); appends "cold GB/s load" lines to $work/parity
parity() {
  local l; l=$(load)
  if timeout 120 "$BUILD/bin/raid_parity_bench" --benchmark_min_time="$PARITY_MIN_TIME" \
       --benchmark_filter="^BM_Raid6Generate/k:4/strip:$S/cold:[012]\$" --benchmark_format=json \
       >"$work/parity.json" 2>"$work/err"; then
    python3 - "$work/parity.json" "$l" <<'PY' | tee -a "$work/parity" | sed 's/^/  pq_gen k=4 cold:/' >&2
import json, sys
for b in json.load(open(sys.argv[1]))["benchmarks"]:
    print(b["name"].rsplit(":", 1)[1], f'{b["bytes_per_second"] / 1e9:.2f}', sys.argv[2])
PY
  else
    echo "  raid_parity_bench: FAILED: $(tail -n3 "$work/err")" >&2
    printf '%s FAILED %s\n' 0 "$l" 1 "$l" 2 "$l" >>"$work/parity"
  fi
}
if has e && [ ! -x "$BUILD/bin/raid_parity_bench" ]; then
  echo "no $BUILD/bin/raid_parity_bench" >&2; exit 1
fi

: >"$work/runs"; : >"$work/parity"
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
    if has e; then parity; fi
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

# --- d, in process: the rebuild with and without user I/O (the daemon is stopped) ---
# rbio LABEL WORKLOAD CONF ARGS...: one bounded raid_io_bench run over the whole array; appends
# "label<TAB>workload<TAB>rebuild MB/s<TAB>rebuild s<TAB>IOPS<TAB>load" to $work/rload ("-" for
# what does not apply, FAILED if the run failed)
rbio() {
  local label=$1 wl=$2 conf=$3 l; shift 3
  l=$(load)
  if timeout $((2 * LIMIT + 30)) "$IOB" -c "$work/$conf.json" -b "${P}r0" --cores "$DATA_CORES" \
       --wait-limit "$LIMIT" --json "$@" >"$work/last.json" 2>"$work/err"; then
    python3 - "$work/last.json" "$label" "$wl" "$l" "$BLOCK_SIZE" "${P}r0" <<'PY' >>"$work/rload"
import json, sys
r = json.load(open(sys.argv[1]))
label, wl, l, bs, name = sys.argv[2:]
mbs = secs = "-"
if r["config"]["during"]:
    a = next(a for a in r["raid_after"] if a["name"] == name)
    p = a["last_process"]
    if p["type"] != "rebuild" or p["result"] != "finished" or "process" in a:
        sys.exit(f"no finished rebuild: {json.dumps(a)}")
    mbs, secs = f'{p["blocks_processed"] * int(bs) / p["seconds"] / 1e6:.0f}', f'{p["seconds"]:.3f}'
iops = f'{r["total"]["iops"]:.0f}' if r["config"]["queue_depth"] else "-"
print("\t".join([label, wl, mbs, secs, iops, l]))
PY
  else
    echo "  $label $wl: FAILED: $(tail -n3 "$work/err")" >&2
    printf '%s\t%s\tFAILED\t-\tFAILED\t%s\n' "$label" "$wl" "$l" >>"$work/rload"
  fi
  tail -n1 "$work/rload" | awk -F'\t' '{printf "  %-12s %-40s rebuild %6s MB/s %7s s  %8s IOPS  load %s\n", $1, $2, $3, $4, $5, $6}' >&2
}
: >"$work/rload"
if has d; then
  echo "d, in process: rebuild with and without user I/O (REBUILD_LOAD=$REBUILD_LOAD)" >&2
  python3 - "$work/d-during.json" "$P" <<'PY'
import json, sys
p = sys.argv[2]
json.dump({"subsystems": [{"subsystem": "bdev", "config": [
    {"method": "bdev_raid_remove_base_bdev", "params": {"name": p + "m1"}},
    {"method": "bdev_raid_add_base_bdev", "params": {"raid_bdev": p + "r0", "base_bdev": p + "spare"}}]}]},
    open(sys.argv[1], "w"), indent=1)
PY
  for lv in raid1:2 raid6:5; do
    BLOCKS=$REBUILD_BLOCKS SPARE=1 cfg "d-${lv%%:*}" "${lv%%:*}" "${lv#*:}"
  done
  for r in $(seq "$ROUNDS"); do
    echo "round $r" >&2
    for lv in raid1:2 raid6:5; do
      label="${lv%%:*} (${lv#*:})"; conf=d-${lv%%:*}
      rbio "$label" "none" "$conf" -q 0 -t "$LIMIT" --during "$work/d-during.json" --until-idle
      for w in ${REBUILD_LOAD//,/ }; do
        rbio "$label" "4K $w QD$QD" "$conf" -w "$w" -o 4096 -q "$QD" -t "$LIMIT" \
          --during "$work/d-during.json" --until-idle
        rbio "$label" "4K $w QD$QD, no rebuild" "$conf" -w "$w" -o 4096 -q "$QD" -t "$T"
      done
    done
  done
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
      LD_LIBRARY_PATH=$SPDK_DIR/build/lib timeout $((T + 60)) "$SB" --json "$work/$conf.json" -m 0x2 \
        -t "$T" $args >"$work/spdk.out" 2>&1 || true
      iops=$(tr '\r' '\n' <"$work/spdk.out" | awk -F: '/Total[ \t]*:/ {split($2, f, " "); print f[1]}' | tail -n 1)
      [ -n "$iops" ] || { echo "SPDK bdevperf $conf $args failed:" >&2; tail -n 5 "$work/spdk.out" >&2; }
      spdk_rows+=("$arr|$wl|${iops:-failed}|$(load)")
    done
  fi
fi

# --- tables ---
python3 - "$work/runs" "$work/parity" <<'PY'
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
def ref_key(part, arr, wl):  # part e pairs arrays on the same member kind: "raid0 (4) on null"
    m = re.search(r" on (\w+)$", arr) or re.match(r"(\w+) x\d+ directly", arr)
    return (part == "e", m.group(1) if m else "malloc", kind(wl))
raid0 = {}
for label in order:
    part, arr, wl = label.split("|")
    m = med(label)
    if arr.startswith("raid0") and m: raid0.setdefault(ref_key(part, arr, wl), float(m[1]))
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
    ref = raid0.get(ref_key(part, arr, wl))
    ratio = f"{float(m[1]) / ref:.2f}" if ref else "-"
    print(f"| {part} | {arr} | {wl} | {float(m[0]) / 1e3:.1f}K | {m[1]} | {m[2]} | {ratio} | {loads} | {allr} | {m[4]} |")
# part e: the issue's targets from the same run: the ratio of the medians, and each round's
# ratio (the two runs of a round are minutes apart at most, the rounds may not be)
pq = {}
for line in open(sys.argv[2]):
    cold, gbs, _ = line.split()
    pq.setdefault(cold, []).append(None if gbs == "FAILED" else float(gbs))
def vals(label, gb):  # each run's IOPS, or GB/s of data (gb)
    return [None if r[0] == "FAILED" else float(r[1]) * 1048576 / 1e9 if gb else float(r[0])
            for r in rows[label]]
def median(v):
    v = sorted(x for x in v if x is not None)
    return v[len(v) // 2] if v else None
targets = []
def target(mk, what, a, b, unit, tgt):
    ma, mb = median(a), median(b)
    if ma is None or mb is None: return
    per = [f"{x / y:.2f}" for x, y in zip(a, b) if x is not None and y]
    f = (lambda x: f"{x / 1e3:.0f}K IOPS") if unit == "iops" else (lambda x: f"{x:.2f} GB/s")
    targets.append((mk, what, f(ma), f(mb), f"{ma / mb:.2f}", ", ".join(per), tgt))
for label in order:
    part, arr, wl = label.split("|")
    if part != "e": continue
    mk = ref_key(part, arr, wl)[1]
    if arr.startswith("raid0") and wl.startswith("4K"):
        d = next((l for l in order if l.startswith(f"e|{mk} x") and l.endswith("|" + wl)), None)
        if d:
            target(mk, f"{arr} vs the members directly, {wl}", vals(label, False), vals(d, False),
                   "iops", ">= 0.90")
    if arr.startswith("raid6 (4+2)"):
        for cold, what, tgt in (("1", "strips from memory (cold:1)", ">= 0.70"),
                                ("2", "8 stripes in turn, like QD8's buffers (cold:2)", ">= 0.70"),
                                ("0", "one stripe, in the caches (cold:0)", "-")):
            if cold in pq:
                target(mk, f"{arr} {wl} vs ISA-L pq_gen k=4, {what}", vals(label, True), pq[cold],
                       "gbs", tgt)
        r0 = next((l for l in order if l.startswith(f"e|raid0 (") and l.split("|")[1].endswith(" on " + mk)
                   and kind(l.split("|")[2]) == kind(wl)), None)
        if r0:
            target(mk, f"{arr} {wl} vs raid0's full-stripe write on {mk} (no parity)",
                   vals(label, True), vals(r0, True), "gbs", "-")
if targets:
    print()
    print("| members | comparison | nocstor (median) | reference (median) | ratio of the medians | each round's ratio | target |")
    print("|---|---|---|---|---|---|---|")
    for t in targets:
        print("| " + " | ".join(t) + " |")
if pq:
    print()
    print("pq_gen k=4 runs (GB/s of data): " + "; ".join(
        f"cold:{c} " + ", ".join("failed" if x is None else f"{x:.1f}" for x in v)
        for c, v in sorted(pq.items())))
PY
if [ ${#rebuild_rows[@]} -gt 0 ]; then
  echo
  echo "| array (members) | process | cap MB/s (0: none) | MB/s (member bytes / seconds) | seconds (daemon's last_process) | wall seconds (RPC to seen done) | result | state after | load at start |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for r in "${rebuild_rows[@]}"; do echo "| ${r//|/ | } |"; done
fi
if [ -s "$work/rload" ]; then
  echo
  python3 - "$work/rload" <<'PY'
import sys
rows, order = {}, []
for line in open(sys.argv[1]):
    label, wl, mbs, secs, iops, load = line.rstrip("\n").split("\t")
    key = (label, wl.removesuffix(", no rebuild"))
    if key not in rows:
        rows[key] = {"rb": [], "ref": []}
        order.append(key)
    rows[key]["ref" if wl.endswith(", no rebuild") else "rb"].append((mbs, secs, iops, load))
def med(vals):
    v = sorted(float(x) for x in vals if x not in ("-", "FAILED"))
    return v[len(v) // 2] if v else None
print("| array (members) | user I/O during the rebuild | rebuild MB/s (median) | vs no user I/O | "
      "rebuild s (median) | user IOPS during the rebuild (median) | same load, no rebuild (IOPS) | "
      "during / without | all runs: MB/s, K IOPS | load at start |")
print("|---|---|---|---|---|---|---|---|---|---|")
alone = {}
for key in order:
    label, wl = key
    rb, ref = rows[key]["rb"], rows[key]["ref"]
    mbs, secs = med(r[0] for r in rb), med(r[1] for r in rb)
    iops, riops = med(r[2] for r in rb), med(r[2] for r in ref)
    if wl == "none" and mbs: alone[label] = mbs
    vs = f"{mbs / alone[label]:.2f}" if mbs and alone.get(label) else "-"
    k = lambda x: "-" if x is None else f"{x / 1e3:.1f}K"
    ratio = f"{iops / riops:.2f}" if iops and riops else "-"
    runs = ", ".join(f"{r[0]}" + ("" if r[2] == "-" else f" / {k(float(r[2])) if r[2] != 'FAILED' else 'failed'}") for r in rb)
    loads = "/".join(r[3] for r in rb)
    print(f"| {label} | {wl} | {mbs or 'failed':.0f} | {vs} | {secs or 0:.3f} | {k(iops)} | {k(riops)} | "
          f"{ratio} | {runs} | {loads} |" if mbs else
          f"| {label} | {wl} | failed | - | - | - | {k(riops)} | - | {runs} | {loads} |")
PY
fi
if [ ${#spdk_rows[@]} -gt 0 ]; then
  echo
  echo "| SPDK bdevperf (reference) | workload | IOPS | load after |"
  echo "|---|---|---|---|"
  for r in "${spdk_rows[@]}"; do echo "| ${r//|/ | } |"; done
else
  echo "SPDK reference: skipped ($spdk_skip)" >&2
fi
