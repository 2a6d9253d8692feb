#!/usr/bin/env bash
# NVMe/TCP over a TLS 1.3 secure channel against plain NVMe/TCP on one target core: one target
# (data thread on TGT_CORE) serves a RAM namespace on a plain listener and on a secure_channel
# listener, the host has a SHA-256 PSK (TLS_AES_128_GCM_SHA256) and a SHA-384 PSK
# (TLS_AES_256_GCM_SHA384) under two host NQNs; nocstor-perf on PERF_CORE runs 4K randread QD32
# and 128K sequential read QD8 against each. Runs alternate ROUNDS times; prints the median IOPS
# and MiB/s of each case and the ratio TLS / plain of the medians. Every run is bounded.
#   bench/tls_bench.sh [BUILD_DIR] [--md]       ROUNDS=3 T=3 WARM=1
set -euo pipefail
BUILD=${1:-build-pch}; MD=${2:-}
BIN=$BUILD/bin
ROUNDS=${ROUNDS:-3}; T=${T:-3}; WARM=${WARM:-1}
TGT_CORE=${TGT_CORE:-0}; PERF_CORE=${PERF_CORE:-1}
NQN=nqn.2024-01.io.nocstor:tls-bench
H128=nqn.2014-08.org.nvmexpress:uuid:7a1c0f00-0000-4000-8000-000000000128
H256=nqn.2014-08.org.nvmexpress:uuid:7a1c0f00-0000-4000-8000-000000000256
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$(dirname "$0")/lib.sh"  # rpc, wait_sock, help_if_asked
help_if_asked "$0" "${1:-}"

S=$work/n.sock
"$BIN/nocstor" --rpc-socket "$S" --no-http --empty -L warn \
  --clusters "0:control:$TGT_CORE;1:data:$TGT_CORE" >"$work/n.log" 2>&1 &
wait_sock "$S"
printf 'NVMeTLSkey-1:01:MDAxMTIyMzM0NDU1NjY3Nzg4OTlhYWJiY2NkZGVlZmZwJEiQ:\n' >"$work/k128"
printf 'NVMeTLSkey-1:02:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vcSEgBQ==:\n' >"$work/k256"
chmod 600 "$work"/k128 "$work"/k256
rpc "$S" keyring_file_add_key "{\"name\":\"k128\",\"path\":\"$work/k128\"}" >/dev/null
rpc "$S" keyring_file_add_key "{\"name\":\"k256\",\"path\":\"$work/k256\"}" >/dev/null
rpc "$S" bdev_malloc_create '{"name":"m0","num_blocks":65536,"block_size":4096}' >/dev/null
rpc "$S" nvmf_create_transport '{"trtype":"TCP"}' >/dev/null
rpc "$S" nvmf_create_subsystem "{\"nqn\":\"$NQN\",\"allow_any_host\":true}" >/dev/null
rpc "$S" nvmf_subsystem_add_ns "{\"nqn\":\"$NQN\",\"namespace\":{\"bdev_name\":\"m0\"}}" >/dev/null
for l in "4440:false" "4441:true"; do
  rpc "$S" nvmf_subsystem_add_listener "{\"nqn\":\"$NQN\",\"secure_channel\":${l#*:},\"listen_address\":{\"trtype\":\"TCP\",\"traddr\":\"127.0.0.1\",\"trsvcid\":\"${l%:*}\"}}" >/dev/null
done
rpc "$S" nvmf_subsystem_add_host "{\"nqn\":\"$NQN\",\"host\":\"$H128\",\"psk\":\"k128\"}" >/dev/null
rpc "$S" nvmf_subsystem_add_host "{\"nqn\":\"$NQN\",\"host\":\"$H256\",\"psk\":\"k256\"}" >/dev/null

perf() { # perf CASE ARGS... -> "IOPS MiB/s p99"
  local port=4440 extra=()
  case $1 in
    aes128) port=4441; extra=(--psk "$work/k128") ;;
    aes256) port=4441; extra=(--psk "$work/k256") ;;
  esac
  local host=nqn.2014-08.org.nvmexpress:uuid:7a1c0f00-0000-4000-8000-000000000001
  [ "$1" = aes128 ] && host=$H128
  [ "$1" = aes256 ] && host=$H256
  timeout $((T + WARM + 30)) "$BIN/nocstor-perf" --json -c "$PERF_CORE" -t "$T" --warmup "$WARM" \
    -r "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:$port subnqn:$NQN hostnqn:$host" \
    "${extra[@]}" "${@:2}" 2>/dev/null |
    python3 -c 'import json,sys; t=json.load(sys.stdin)["total"]; print(t["iops"], t["mibps"], t["p99_us"])'
}

[ "$MD" = --md ] && {
  echo "| workload | plain IOPS | TLS AES-128-GCM IOPS | TLS AES-256-GCM IOPS | TLS/plain (128, 256) | MiB/s plain / 128 / 256 |"
  echo "|---|---|---|---|---|---|"
}
for w in "4K randread QD32:-w randread -o 4096 -q 32" "128K seq read QD8:-w read -o 131072 -q 8"; do
  label=${w%%:*}; args=${w#*:}
  : >"$work/runs"
  for _ in $(seq "$ROUNDS"); do
    for c in plain aes128 aes256; do echo "$c $(perf $c $args)" >>"$work/runs"; done
  done
  python3 - "$label" "$work/runs" "$MD" <<'PY'
import sys
runs = {}
for line in open(sys.argv[2]):
    k, iops, mibps, p99 = line.split(); runs.setdefault(k, []).append((float(iops), float(mibps)))
def med(k):
    s = sorted(runs[k]); return s[len(s) // 2]
p, a, b = med("plain"), med("aes128"), med("aes256")
if sys.argv[3] == "--md":
    print(f"| {sys.argv[1]} | {p[0]:.0f} | {a[0]:.0f} | {b[0]:.0f} | {a[0] / p[0]:.2f}, {b[0] / p[0]:.2f} | "
          f"{p[1]:.0f} / {a[1]:.0f} / {b[1]:.0f} |")
else:
    print(f"{sys.argv[1]:<18} plain {p[0]:>9.0f}  aes128 {a[0]:>9.0f} ({a[0] / p[0]:.2f})  "
          f"aes256 {b[0]:>9.0f} ({b[0] / p[0]:.2f})  MiB/s {p[1]:.0f}/{a[1]:.0f}/{b[1]:.0f}")
PY
done
