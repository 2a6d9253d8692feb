#!/usr/bin/env bash
# How long an lvstore takes to open after a crash (kill -9: journal replay) and after a clean
# stop, with many lvols and allocated clusters; what creating lvols, snapshots and clones costs
# (issue 12). Everything through the daemon's JSON-RPC on a Unix socket, the store on a sparse
# file in TMPDIR (uring bdev, 4 KiB blocks).
#
#   bench/lvol_load_bench.sh [BUILD_DIR]     BUILD_DIR defaults to build; prints a markdown table
#   bench/lvol_load_bench.sh --help
#
# env (defaults): LVOLS=1000 (thick lvols), CLUSTERS=100 (clusters each: 100,000 allocated),
#   CLUSTER_KB=64 (thick lvols reserve their space on the file: LVOLS*CLUSTERS*CLUSTER_KB, 6.4 GB
#   by default, must be free in TMPDIR), SNAPS=20 (snapshots, then as many clones, timed one by one), CLIENTS=8
#   (concurrent RPC clients creating the lvols), LIMIT=300 (seconds any step may take)
set -euo pipefail

case ${1:-} in -h | --help)
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
  exit 0
  ;;
esac
BUILD=${1:-build}
LVOLS=${LVOLS:-1000}; CLUSTERS=${CLUSTERS:-100}; CLUSTER_KB=${CLUSTER_KB:-64}
SNAPS=${SNAPS:-20}; CLIENTS=${CLIENTS:-8}; LIMIT=${LIMIT:-300}
[ -x "$BUILD/bin/nocstor" ] || { echo "no $BUILD/bin/nocstor" >&2; exit 1; }

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"  # wait_sock

work=$(mktemp -d)
DPID=
cleanup() {
  if [ -n "$DPID" ]; then kill -9 "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

file=$work/disk
LVOL_MIB=$(( (CLUSTERS * CLUSTER_KB + 1023) / 1024 ))  # each lvol: whole MiB, at least CLUSTERS
size=$(( LVOLS * LVOL_MIB * (1 << 20) * 11 / 10 + (512 << 20) ))
truncate -s "$size" "$file"
sock=$work/noc.sock
start() {
  rm -f "$sock"
  "$BUILD/bin/nocstor" --empty --rpc-socket "$sock" --no-http -L warn >>"$work/noc.log" 2>&1 &
  DPID=$!
  wait_sock "$sock" || { echo "nocstor did not start" >&2; cat "$work/noc.log" >&2; exit 1; }
}

echo "# $(date -Is) $(uname -n), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg);" \
  "$LVOLS thick lvols of $LVOL_MIB MiB, clusters of ${CLUSTER_KB} KiB" >&2
start
python3 - "$sock" "$file" "$LVOLS" "$LVOL_MIB" "$CLUSTER_KB" "$SNAPS" "$CLIENTS" "$LIMIT" \
  >"$work/create.txt" <<'PY'
import json, socket, statistics, sys, threading, time
sock, path, lvols, mib, ckb, snaps, clients, limit = sys.argv[1:]
lvols, mib, ckb, snaps, clients = int(lvols), int(mib), int(ckb), int(snaps), int(clients)
def call(m, p, s=None):
    own = s is None
    if own:
        s = socket.socket(socket.AF_UNIX); s.settimeout(float(limit)); s.connect(sock)
    s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": m, "params": p}).encode())
    buf = b""
    while True:
        buf += s.recv(65536)
        try: r = json.loads(buf); break
        except ValueError: continue
    if own: s.close()
    if "error" in r: sys.exit(f"{m}: {r['error']}")
    return r["result"]
call("bdev_uring_create", {"name": "D0", "filename": path, "block_size": 4096})
call("bdev_lvol_create_lvstore", {"bdev_name": "D0", "lvs_name": "lvs", "cluster_sz": ckb * 1024})
t0 = time.monotonic()
def worker(w):
    s = socket.socket(socket.AF_UNIX); s.settimeout(float(limit)); s.connect(sock)
    for i in range(w, lvols, clients):
        call("bdev_lvol_create", {"lvs_name": "lvs", "lvol_name": f"v{i}",
                                  "size_in_mib": mib}, s)
    s.close()
ts = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
for t in ts: t.start()
for t in ts: t.join()
create_s = time.monotonic() - t0
snap_ms, clone_ms = [], []
for i in range(snaps):
    t = time.monotonic(); call("bdev_lvol_snapshot", {"lvol_name": f"lvs/v{i}", "snapshot_name": f"s{i}"})
    snap_ms.append((time.monotonic() - t) * 1e3)
for i in range(snaps):
    t = time.monotonic(); call("bdev_lvol_clone", {"snapshot_name": f"lvs/s{i}", "clone_name": f"c{i}"})
    clone_ms.append((time.monotonic() - t) * 1e3)
st = call("bdev_lvol_get_lvstores", {})[0]
used = st["total_data_clusters"] - st["free_clusters"]
print(f"{create_s:.2f} {lvols / create_s:.0f} {statistics.median(snap_ms):.2f} "
      f"{max(snap_ms):.2f} {statistics.median(clone_ms):.2f} {max(clone_ms):.2f} {used} "
      f"{len(call('bdev_lvol_get_lvols', {}))} {st['journal_batches']} {st['checkpoints']}")
PY
read -r create_s create_rate snap_med snap_max clone_med clone_max used total_lvols batches ckpts \
  <"$work/create.txt"

# open: time from bdev_uring_create (examine reads the store) until every lvol is listed
open_store() {
  python3 - "$sock" "$file" "$total_lvols" "$LIMIT" <<'PY'
import json, socket, sys, time
sock, path, want, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
def call(m, p):
    s = socket.socket(socket.AF_UNIX); s.settimeout(limit); s.connect(sock)
    s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": m, "params": p}).encode())
    buf = b""
    while True:
        buf += s.recv(1 << 20)
        try: r = json.loads(buf); break
        except ValueError: continue
    s.close()
    return r.get("result")
t0 = time.monotonic()
call("bdev_uring_create", {"name": "D0", "filename": path, "block_size": 4096})
call("bdev_wait_for_examine", {})
n = len(call("bdev_lvol_get_lvols", {}) or [])
t = time.monotonic() - t0
if n != want: sys.exit(f"{n} lvols back, {want} expected")
print(f"{t:.3f}")
PY
}
kill -9 "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=
start
dirty=$(open_store)
replayed=$(grep -o "unclean shutdown, [0-9]* journal batches ([0-9]* operations) replayed; opened in .*)" "$work/noc.log" | tail -n1 || true)
kill -INT "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=
start
clean=$(open_store)
kill -INT "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=

echo "| what | value |"
echo "|---|---|"
echo "| lvols / allocated clusters | $total_lvols / $used (cluster ${CLUSTER_KB} KiB) |"
echo "| create $LVOLS thick lvols of $LVOL_MIB MiB ($CLIENTS clients) | $create_s s ($create_rate lvols/s; $batches journal batches, $ckpts checkpoints) |"
echo "| snapshot latency (median / max of $SNAPS) | $snap_med / $snap_max ms |"
echo "| clone latency (median / max of $SNAPS) | $clone_med / $clone_max ms |"
echo "| open after kill -9 (journal replay) | $dirty s (${replayed:-replay counts not logged at -L warn}) |"
echo "| open after a clean stop | $clean s |"
