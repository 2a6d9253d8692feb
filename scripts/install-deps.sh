#!/usr/bin/env bash
# Installs the Debian 12 packages nocstor needs, and only those that are missing. Idempotent.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  clang-14 libclang-rt-14-dev clang-format
  liburing-dev libisal-dev libssl-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libiscsi-dev
  python3
)
# What the tests need besides the build (--with-tests): Debian's tgt as the iSCSI target the
# iSCSI bdev's tests talk to, iscsi-perf as its benchmark reference, curl and openssl for the
# HTTPS tests. Not on a plain install: the tgt package starts a tgtd service listening on every
# interface.
TEST_PACKAGES=(tgt libiscsi-bin curl openssl)
# Extra tools for the optional interop and packet-capture checks: install with --with-interop.
INTEROP_PACKAGES=(nvme-cli fio qemu-system-x86 tshark)

want=("${PACKAGES[@]}")
for arg in "$@"; do
  case "$arg" in
    --with-interop) want+=("${INTEROP_PACKAGES[@]}") ;;
    --with-tests) want+=("${TEST_PACKAGES[@]}") ;;
    *) echo "usage: $0 [--with-tests] [--with-interop]" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
