#!/usr/bin/env bash
# A QEMU guest's fio against a vhost-user-blk disk served by nocstor and by qemu-storage-daemon
# (the reference), both over a null backend of the same size (nocstor bdev_null, qsd null-co
# with read-zeroes), same guest, same run, through ../shared/interop/vhost-user-blk.sh:
# 4K randread/randwrite at QD1 and QD32, 128K sequential read and write; then 12 s with the disk
# attached and idle. The host samples each server's CPU time every second and reports its CPU
# per I/O (which does not depend on the guest's speed under TCG) and its lowest 5-second CPU
# use (the idle controller; SPDK's vhost spins a full core here).
#
# Usage: bench/vhost_bench.sh [BUILD_DIR]   env: T (seconds per fio job, default 8),
#        SERVER_CORE (default 1; QEMU runs on the other cores)
# Results are printed as a table; record them in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
help_if_asked "$0" "${1:-}"
BUILD=${1:-build}
T=${T:-8}
CORE=${SERVER_CORE:-1}
H=../shared/interop/vhost-user-blk.sh
[ -x "$H" ] || { echo "needs $H"; exit 2; }
command -v qemu-storage-daemon >/dev/null || { echo "needs qemu-storage-daemon"; exit 2; }
work=$(mktemp -d)
trap 'kill $(cat "$work"/*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
others=$(python3 -c "import os; print(','.join(str(c) for c in sorted(os.sched_getaffinity(0)) if c != $CORE) or '$CORE')")

# The guest's part: one step per fio job, printing "BENCH name iops clat_mean_us".
cat >"$work/guest.sh" <<G
cat >/tmp/bench.sh <<'B'
# bench NAME RW BS QD
fio --name=\$1 --filename=\$DEV --direct=1 --rw=\$2 --bs=\$3 --iodepth=\$4 --ioengine=libaio \\
  --runtime=$T --time_based --size=128M --minimal >/tmp/fio.out 2>&1 || { cat /tmp/fio.out; exit 1; }
awk -F';' -v n=\$1 '{ lat = (\$8 > 0) ? \$16 : \$57; printf "BENCH %s %d %.1f\\n", n, \$8 + \$49, lat }' /tmp/fio.out
B
step bench-randread-4k-qd1 sh /tmp/bench.sh randread-4k-qd1 randread 4k 1
step bench-randread-4k-qd32 sh /tmp/bench.sh randread-4k-qd32 randread 4k 32
step bench-randwrite-4k-qd1 sh /tmp/bench.sh randwrite-4k-qd1 randwrite 4k 1
step bench-randwrite-4k-qd32 sh /tmp/bench.sh randwrite-4k-qd32 randwrite 4k 32
step bench-read-128k-qd8 sh /tmp/bench.sh read-128k-qd8 read 128k 8
step bench-write-128k-qd8 sh /tmp/bench.sh write-128k-qd8 write 128k 8
step bench-idle sh -c "echo BENCH-IDLE; sleep 12"
G

sample_cpu() { # sample_cpu PID OUT: utime+stime ticks once a second while PID lives
  while kill -0 "$1" 2>/dev/null; do
    awk '{print $14 + $15}' "/proc/$1/stat" >>"$2" 2>/dev/null || break
    sleep 1
  done
}

run_guest() { # run_guest NAME SOCKET PID
  local s=$work/$1.cpu
  sample_cpu "$3" "$s" &
  taskset -c "$others" "$H" --queues 1 --smp 1 --no-fio --no-discard --no-write-zeroes --no-mq \
    --timeout 900 --step-timeout $((T + 60)) --extra-script "$work/guest.sh" "$2" >"$work/$1.out" 2>&1 || true
  kill %1 2>/dev/null || true
  grep -E '^ *BENCH [a-z]' "$work/$1.out" | sed 's/^ *//' >"$work/$1.bench" || true
  [ -s "$work/$1.bench" ] || { echo "$1: no results"; tail -30 "$work/$1.out"; }
}

# nocstor: one data core, a null bdev.
"$BUILD/bin/nocstor" --empty -r "$work/rpc.sock" --no-http --clusters "0:control:$CORE;1:data:$CORE" \
  >"$work/nocstor.log" 2>&1 &
echo $! >"$work/nocstor.pid"
wait_sock "$work/rpc.sock"
rpc "$work/rpc.sock" bdev_null_create '{"name":"Null0","num_blocks":524288,"block_size":512}' >/dev/null
rpc "$work/rpc.sock" vhost_create_blk_controller "{\"ctrlr\":\"$work/nocstor.sock\",\"dev_name\":\"Null0\"}" >/dev/null
run_guest nocstor "$work/nocstor.sock" "$(cat "$work/nocstor.pid")"
kill "$(cat "$work/nocstor.pid")"; rm -f "$work/nocstor.pid"

taskset -c "$CORE" qemu-storage-daemon \
  --blockdev driver=null-co,node-name=disk,size=268435456,read-zeroes=on \
  --export "type=vhost-user-blk,id=e,node-name=disk,addr.type=unix,addr.path=$work/qsd.sock,writable=on,num-queues=1" \
  >"$work/qsd.log" 2>&1 &
echo $! >"$work/qsd.pid"
wait_sock "$work/qsd.sock"
run_guest qsd "$work/qsd.sock" "$(cat "$work/qsd.pid")"

python3 - "$work" "$T" <<'PY'
import os, sys
work, T = sys.argv[1], float(sys.argv[2])
hz = os.sysconf("SC_CLK_TCK")
def load(name):
    res = {}
    for line in open(f"{work}/{name}.bench"):
        _, job, iops, lat = line.split()
        res[job] = (float(iops), float(lat))
    ticks = [int(x) for x in open(f"{work}/{name}.cpu") if x.strip()]
    cpu_s = (ticks[-1] - ticks[0]) / hz if len(ticks) > 1 else 0
    idle = min((ticks[i + 5] - ticks[i]) / hz / 5 * 100 for i in range(len(ticks) - 5)) if len(ticks) > 5 else float("nan")
    ios = sum(i for i, _ in res.values()) * T
    return res, cpu_s, idle, ios
n, q = load("nocstor"), load("qsd")
print(f"{'job':22} {'nocstor IOPS':>12} {'qsd IOPS':>10} {'ratio':>6} {'nocstor lat us':>15} {'qsd lat us':>11}")
for job in n[0]:
    ni, nl = n[0][job]; qi, ql = q[0].get(job, (0, 0))
    print(f"{job:22} {ni:12.0f} {qi:10.0f} {ni / qi if qi else 0:6.2f} {nl:15.1f} {ql:11.1f}")
for name, (_, cpu, idle, ios) in (("nocstor", n), ("qsd", q)):
    print(f"{name:8} server CPU {cpu:6.1f} s over the guest run, {cpu * 1e6 / ios if ios else 0:6.1f} us CPU per I/O, lowest 5 s CPU use {idle:5.1f}%")
PY
