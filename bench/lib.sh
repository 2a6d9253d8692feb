# Shell helpers shared by the bench/ scripts (sourced, not run).

rpc() { # rpc SOCKET METHOD JSON-PARAMS -> result JSON (exit 1 on error)
  python3 - "$1" "$2" "$3" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(30); s.connect(sys.argv[1])
s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": sys.argv[2],
                      "params": json.loads(sys.argv[3])}).encode())
buf = b""
while True:
    buf += s.recv(65536)
    try: r = json.loads(buf); break
    except ValueError: continue
if "error" in r: print(json.dumps(r["error"]), file=sys.stderr); sys.exit(1)
print(json.dumps(r["result"]))
PY
}

wait_sock() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done; return 1; }

help_if_asked() { # help_if_asked "$0" "${1:-}": -h/--help prints the script's header comment, exits
  case $2 in -h | --help)
    sed -n '2,/^set -euo/p' "$1" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  esac
}

# iob_run LABEL CONFIG BDEV ARGS...: one raid_io_bench run ($IOB on one data core, $T seconds,
# span $SPAN, config $work/CONFIG.json) appended to $work/runs as "LABEL<TAB>IOPS<TAB>p99
# µs<TAB>load" (IOPS "FAILED" when it failed), and echoed on stderr.
iob_run() {
  local label=$1 conf=$2 bdev=$3 l; shift 3
  l=$(cut -d' ' -f1 /proc/loadavg)
  if timeout $((T + 120)) "$IOB" -c "$work/$conf.json" -b "$bdev" --cores 1 -t "$T" --span "$SPAN" \
       --json "$@" >"$work/last.json" 2>"$work/err"; then
    python3 - "$work/last.json" "$label" "$l" <<'PY' >>"$work/runs"
import json, sys
t = json.load(open(sys.argv[1]))["total"]
print("\t".join([sys.argv[2], f'{t["iops"]:.0f}', f'{t["latency_us"]["p99"]:.1f}', sys.argv[3]]))
PY
  else
    echo "  $label: FAILED: $(tail -n3 "$work/err")" >&2
    printf '%s\tFAILED\t-\t%s\n' "$label" "$l" >>"$work/runs"
  fi
  tail -n1 "$work/runs" >&2
}

# iob_clean_run LABEL CONFIG CACHE ARGS...: like iob_run, then flushes the write-back cache CACHE
# (raid_io_bench --flush-cache) and appends its cleaning rate (dirty lines written back per
# second) in the IOPS column.
iob_clean_run() {
  local label=$1 conf=$2 bdev=$3 l; shift 3
  l=$(cut -d' ' -f1 /proc/loadavg)
  if timeout $((T + 300)) "$IOB" -c "$work/$conf.json" -b "$bdev" --cores 1 -t "$T" --span "$SPAN" \
       --flush-cache "$bdev" --json "$@" >"$work/last.json" 2>"$work/err"; then
    python3 - "$work/last.json" "$label" "$l" <<'PY' >>"$work/runs"
import json, sys
f = json.load(open(sys.argv[1]))["cache_flush"]
print("\t".join([sys.argv[2], f'{f["lines_per_s"]:.0f}', "-", sys.argv[3]]))
PY
  else
    echo "  $label: FAILED: $(tail -n3 "$work/err")" >&2
    printf '%s\tFAILED\t-\t%s\n' "$label" "$l" >>"$work/runs"
  fi
  tail -n1 "$work/runs" >&2
}

# runs_table RUNS ROUNDS REFS: the markdown table of $work/runs-style lines ("LABEL<TAB>IOPS<TAB>
# p99<TAB>load", LABEL = "configuration|workload"): medians per label, and for configurations
# named in REFS (a JSON object: configuration -> reference configuration, or a list of them)
# the ratio to each reference's median for the same workload, or else to its median over any
# workload.
runs_table() {
  python3 - "$1" "$2" "$3" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, iops, p99, load = line.rstrip("\n").split("\t")
    if iops != "FAILED":
        rows.setdefault(label, []).append((float(iops), None if p99 == "-" else float(p99)))
refs = json.loads(sys.argv[3])
med = {k: statistics.median(i for i, _ in v) for k, v in rows.items()}
print("| configuration | workload | IOPS (median of %s) | vs reference | p99 µs |" % sys.argv[2])
print("|---|---|---|---|---|")
for label, v in rows.items():
    name, wl = label.split("|")
    rs = []
    ref_names = refs.get(name) or []
    for ref in [ref_names] if isinstance(ref_names, str) else ref_names:
        same = med.get(ref + "|" + wl)
        other = [m for l, m in med.items() if l.split("|")[0] == ref]
        b = same if same else (other[0] if other else None)
        if b: rs.append(f"{med[label] / b:.2f}x {ref}")
    r = ", ".join(rs) or "-"
    p99s = [p for _, p in v if p is not None]
    p99 = f"{statistics.median(p99s):.1f}" if p99s else "-"
    print(f"| {name} | {wl} | {med[label]/1000:.1f}K | {r} | {p99} |")
PY
}
