#!/usr/bin/env bash
# Connect latency with DH-HMAC-CHAP per DH group: one nocstor is target and initiator on
# loopback; bdev_nvme_attach_controller (admin queue Connect + authentication + bring-up, one I/O
# queue per data thread) is timed N times per case and detached again. Cases: a host without
# keys (no authentication), then SHA-256 with the NULL group and ffdhe2048 ... ffdhe8192 (the
# target's nvmf_set_config picks the group), bidirectional. Prints median and p90 in ms.
#   bench/auth_connect_bench.sh [BUILD_DIR] [--md]      (N=20 by default)
set -euo pipefail
BUILD=${1:-build-pch}; MD=${2:-}
BIN=$BUILD/bin
N=${N:-20}; CORE=${CORE:-0}
NQN=nqn.2024-01.io.nocstor:auth-bench
HOST=nqn.2014-08.org.nvmexpress:uuid:6a1c0f00-0000-4000-8000-00000000a11c
OPEN=nqn.2014-08.org.nvmexpress:uuid:6a1c0f00-0000-4000-8000-0000000000ff
work=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
. "$(dirname "$0")/lib.sh"  # rpc, wait_sock, help_if_asked
help_if_asked "$0" "${1:-}"

"$BIN/nocstor" --rpc-socket "$work/n.sock" --no-http --empty \
  --clusters "0:control:$CORE;1:data:$CORE" >"$work/n.log" 2>&1 &
wait_sock "$work/n.sock"
S=$work/n.sock
printf 'DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:\n' >"$work/h.key"
printf 'DHHC-1:01:WulleCBkG4oCs0iIC3Cit9gBDCLWiZ9PNXuhqytWkBIZkvGy:\n' >"$work/c.key"
chmod 600 "$work"/*.key
rpc "$S" keyring_file_add_key "{\"name\":\"h\",\"path\":\"$work/h.key\"}" >/dev/null
rpc "$S" keyring_file_add_key "{\"name\":\"c\",\"path\":\"$work/c.key\"}" >/dev/null
rpc "$S" nvmf_create_transport '{"trtype":"TCP"}' >/dev/null
rpc "$S" bdev_malloc_create '{"name":"M0","num_blocks":2048,"block_size":512}' >/dev/null
rpc "$S" nvmf_create_subsystem "{\"nqn\":\"$NQN\",\"allow_any_host\":false}" >/dev/null
rpc "$S" nvmf_subsystem_add_ns "{\"nqn\":\"$NQN\",\"namespace\":{\"bdev_name\":\"M0\"}}" >/dev/null
rpc "$S" nvmf_subsystem_add_listener "{\"nqn\":\"$NQN\",\"listen_address\":{\"trtype\":\"TCP\",\"traddr\":\"127.0.0.1\",\"trsvcid\":\"4431\"}}" >/dev/null
rpc "$S" nvmf_subsystem_add_host "{\"nqn\":\"$NQN\",\"host\":\"$HOST\",\"dhchap_key\":\"h\",\"dhchap_ctrlr_key\":\"c\"}" >/dev/null
rpc "$S" nvmf_subsystem_add_host "{\"nqn\":\"$NQN\",\"host\":\"$OPEN\"}" >/dev/null

[ "$MD" = --md ] && { echo "| case | median ms | p90 ms |"; echo "|---|---|---|"; }
for group in none null ffdhe2048 ffdhe3072 ffdhe4096 ffdhe6144 ffdhe8192; do
  [ $group != none ] && rpc "$S" nvmf_set_config "{\"dhchap_digests\":[\"sha256\"],\"dhchap_dhgroups\":[\"$group\"]}" >/dev/null
  timeout 300 python3 - "$S" "$group" "$N" "$MD" "$HOST" "$OPEN" "$NQN" <<'PY'
import json, socket, statistics, sys, time
sock, group, n, md, host, open_host, nqn = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], *sys.argv[5:]
def call(method, params):
    s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(sock)
    s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode())
    buf = b""
    while True:
        buf += s.recv(65536)
        try: r = json.loads(buf); break
        except ValueError: continue
    if "error" in r: sys.exit(f"{method}: {r['error']}")
    return r["result"]
p = {"name": "A", "trtype": "tcp", "traddr": "127.0.0.1", "trsvcid": "4431", "subnqn": nqn}
if group == "none": p["hostnqn"] = open_host
else: p.update(hostnqn=host, dhchap_key="h", dhchap_ctrlr_key="c")
ms = []
for _ in range(n):
    t = time.perf_counter(); call("bdev_nvme_attach_controller", p); ms.append((time.perf_counter() - t) * 1e3)
    call("bdev_nvme_detach_controller", {"name": "A"})
ms.sort(); med = statistics.median(ms); p90 = ms[int(0.9 * (len(ms) - 1))]
label = "no authentication" if group == "none" else f"sha256, {group}, bidirectional"
print(f"| {label} | {med:.2f} | {p90:.2f} |" if md == "--md" else f"{label:<34} median {med:7.2f} ms  p90 {p90:7.2f} ms")
PY
done
