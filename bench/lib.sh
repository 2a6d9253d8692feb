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
