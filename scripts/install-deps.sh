#!/usr/bin/env bash
# Installs everything Portico needs to build, test and benchmark on Debian 12, from Debian's packages.
# Idempotent; run as root (or with sudo available).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
pkgs=(
  build-essential cmake ninja-build ccache pkg-config
  clang-14 libclang-rt-14-dev clang-format
  libasio-dev libssl-dev libgoogle-perftools-dev libyaml-cpp-dev nlohmann-json3-dev libre2-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libnghttp2-dev libc-ares-dev
  curl python3 python3-h2 python3-websockets nginx-light haproxy wrk nghttp2-client openssl ca-certificates
  python3-consul python3-hvac python3-grpcio etcd-server etcd-client
)
# kubectl drives the Kubernetes double in the tests. Debian's kubernetes-client (kubectl 1.20) conflicts
# with other kubectl packages (a cloud SDK's, for one): any kubectl already on PATH will do.
if ! command -v kubectl >/dev/null 2>&1; then pkgs+=(kubernetes-client); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian starts nginx, haproxy and etcd as services on install; Portico's tests start their own instances.
for svc in nginx haproxy etcd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done
