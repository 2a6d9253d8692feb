#!/usr/bin/env bash
# fio inside a QEMU guest with Debian's 6.12 backports kernel (which has ublk_drv) against
# /dev/ublkb0 served by nocstor running in the same guest, next to the kernel's own RAM disks as
# the floor: null_blk (/dev/nullb0, no data) and the loop driver over a tmpfs file. Devices:
#   ublk-null     nocstor bdev_null      vs  nullb  (kernel null_blk)
#   ublk-malloc   nocstor bdev_malloc    vs  loop   (kernel loop on a tmpfs file, direct I/O)
# Jobs: 4K randread QD1 and QD32, 4K randwrite QD32, 128K read QD8 (T seconds each), and
# 4K randread QD1 limited to 2000 IOPS, where nocstor's CPU per I/O is measured with adaptive
# spinning (the default) and with --no-adaptive-spin. nocstor's CPU comes from its
# /proc/PID/stat; the guest has 2 vCPUs (KVM when the host allows it, else TCG).
#
# Usage: bench/ublk_bench.sh [BUILD_DIR]   env: T (seconds per fio job, default 5)
# Results are printed as a table; record them in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
help_if_asked "$0" "${1:-}"
BUILD=${1:-build}
T=${T:-5}
H=../shared/interop/kernel-nvme-tcp.sh
[ -x "$H" ] || { echo "needs $H"; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/guest.sh" <<G
cat >/tmp/b.sh <<'B'
SOCK=/tmp/n.sock
rpc() { nocstorctl -s \$SOCK call "\$@" >/dev/null; }
start_nocstor() {  # start_nocstor BDEV-METHOD BDEV-PARAMS [NOCSTOR ARGS]
  m=\$1 p=\$2; shift 2
  nocstor --empty -r \$SOCK --no-http "\$@" >/tmp/n.log 2>&1 </dev/null & echo \$! >/tmp/n.pid
  i=0; while ! nocstorctl -s \$SOCK call spdk_get_version >/dev/null 2>&1; do
    i=\$((i+1)); [ \$i -gt 200 ] && { cat /tmp/n.log; exit 1; }; usleep 50000; done
  rpc \$m "\$p" && rpc ublk_create_target '{}' &&
  rpc ublk_start_disk '{"bdev_name":"D","ublk_id":0,"queue_depth":128,"num_queues":1}'
}
stop_nocstor() { rpc ublk_stop_disk '{"ublk_id":0}'; kill \$(cat /tmp/n.pid); sleep 1; }
cpu_ticks() { [ -f /tmp/n.pid ] && [ -d /proc/\$(cat /tmp/n.pid) ] && awk '{print \$14 + \$15}' /proc/\$(cat /tmp/n.pid)/stat || echo 0; }
job() {  # job DEV-LABEL DEV NAME RW BS QD [FIO ARGS]: prints "BENCH dev job iops lat_us cpu_ticks"
  l=\$1 d=\$2 n=\$3 rw=\$4 bs=\$5 qd=\$6; shift 6
  c0=\$(cpu_ticks)
  fio --name=\$n --filename=\$d --direct=1 --rw=\$rw --bs=\$bs --iodepth=\$qd --ioengine=libaio \\
    --runtime=$T --time_based --size=256M --minimal "\$@" >/tmp/fio.out 2>&1 || { cat /tmp/fio.out; exit 1; }
  c1=\$(cpu_ticks)
  awk -F';' -v l=\$l -v n=\$n -v c=\$((c1 - c0)) '{ lat = (\$8 > 0) ? \$16 : \$57;
    printf "BENCH %s %s %d %.1f %d\\n", l, n, \$8 + \$49, lat, c }' /tmp/fio.out
}
jobs() {  # jobs DEV-LABEL DEV
  job \$1 \$2 randread-4k-qd1 randread 4k 1
  job \$1 \$2 randread-4k-qd32 randread 4k 32
  job \$1 \$2 randwrite-4k-qd32 randwrite 4k 32
  job \$1 \$2 read-128k-qd8 read 128k 8
}
case \$1 in
  ublk-null) start_nocstor bdev_null_create '{"name":"D","num_blocks":524288,"block_size":512}' &&
    jobs ublk-null /dev/ublkb0 && stop_nocstor ;;
  ublk-malloc) start_nocstor bdev_malloc_create '{"name":"D","num_blocks":65536,"block_size":4096}' &&
    jobs ublk-malloc /dev/ublkb0 && stop_nocstor ;;
  nullb) modprobe null_blk nr_devices=1 gb=1 bs=512 && jobs nullb /dev/nullb0 ;;
  loop) mkdir -p /tmp/lt && mount -t tmpfs -o size=300m tmpfs /tmp/lt &&
    dd if=/dev/zero of=/tmp/lt/img bs=1M count=256 2>/dev/null && modprobe loop 2>/dev/null;
    dev=\$(losetup -f) && losetup \$dev /tmp/lt/img && jobs loop \$dev ;;
  rate)  # CPU per I/O at 2000 IOPS, adaptive spinning on and off
    start_nocstor bdev_null_create '{"name":"D","num_blocks":524288,"block_size":512}' &&
      job ublk-null-adaptive /dev/ublkb0 randread-4k-2kiops randread 4k 1 --rate_iops=2000 &&
      stop_nocstor &&
    start_nocstor bdev_null_create '{"name":"D","num_blocks":524288,"block_size":512}' --no-adaptive-spin &&
      job ublk-null-spin /dev/ublkb0 randread-4k-2kiops randread 4k 1 --rate_iops=2000 &&
      stop_nocstor ;;
esac
B
step ublk-module modprobe ublk_drv
step bench-ublk-null sh /tmp/b.sh ublk-null
step bench-nullb sh /tmp/b.sh nullb
step bench-ublk-malloc sh /tmp/b.sh ublk-malloc
step bench-loop sh /tmp/b.sh loop
step bench-rate sh /tmp/b.sh rate
G

"$H" --kernel backports --timeout 1200 --step-timeout $((T * 12 + 60)) \
  --guest-bin "$BUILD/bin/nocstor" --guest-bin "$BUILD/bin/nocstorctl" \
  --guest-script "$work/guest.sh" >"$work/out" 2>&1 || true
grep -E '^ *BENCH ' "$work/out" | sed 's/^ *//' >"$work/bench" || true
[ -s "$work/bench" ] || { echo "no results"; tail -40 "$work/out"; exit 1; }
grep -E "FAIL:" "$work/out" || true

python3 - "$work/bench" "$T" <<'PY'
import sys
path, T = sys.argv[1], float(sys.argv[2])
hz = 100  # the guest's USER_HZ
r = {}
for line in open(path):
    _, dev, job, iops, lat, ticks = line.split()
    r[(dev, job)] = (float(iops), float(lat), int(ticks))
def cpu_us(dev, job):
    iops, _, ticks = r[(dev, job)]
    return ticks / hz * 1e6 / (iops * T) if iops else 0
print(f"{'job':20} {'device':12} {'IOPS':>9} {'lat us':>8} {'vs kernel':>9} {'nocstor CPU us/IO':>18}")
for ours, ref in (("ublk-null", "nullb"), ("ublk-malloc", "loop")):
    for job in ("randread-4k-qd1", "randread-4k-qd32", "randwrite-4k-qd32", "read-128k-qd8"):
        if (ours, job) not in r: continue
        i, l, _ = r[(ours, job)]
        ri, rl, _ = r.get((ref, job), (0, 0, 0))
        print(f"{job:20} {ours:12} {i:9.0f} {l:8.1f} {i / ri if ri else 0:9.2f} {cpu_us(ours, job):18.1f}")
        print(f"{'':20} {ref:12} {ri:9.0f} {rl:8.1f}")
for dev in ("ublk-null-adaptive", "ublk-null-spin"):
    if (dev, "randread-4k-2kiops") in r:
        i, l, _ = r[(dev, "randread-4k-2kiops")]
        print(f"{'randread-4k-2kiops':20} {dev:20} {i:7.0f} IOPS {l:7.1f} us  nocstor CPU {cpu_us(dev, 'randread-4k-2kiops'):6.1f} us/IO")
PY
