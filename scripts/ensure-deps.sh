#!/usr/bin/env bash
# Installs what building and testing cireg needs and a fresh Debian machine lacks:
#   libclang-dev  (oxigraph's RocksDB build runs bindgen)
#   nats-server   (the integration tests start real NATS servers)
#   chromium, chromium-driver (with --tests: the browser test of the search pages)
#   openssl       (with --tests: keys and certificates of the security and TLS tests)
#   prometheus    (with --tests: the dashboard test scrapes a node with a real Prometheus)
# Says clearly what is missing when it cannot install it.
set -euo pipefail

missing=()
# libclang itself (libclang.so / libclang-14.so.1), not libclang-cpp, which a new machine may have
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* >/dev/null 2>&1 \
  && ! ldconfig -p 2>/dev/null | grep -Eq 'libclang(-[0-9.]+)?\.so'; then
  missing+=(libclang-dev)
fi
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ] && [ -z "${NATS_SERVER_BIN:-}" ]; then
  missing+=(nats-server)
fi
# the browser test (tests/browser.rs) drives Debian's headless Chromium through chromedriver;
# only the tests need it (scripts/test.sh passes --tests)
if [ "${1:-}" = "--tests" ] && [ ! -x /usr/bin/chromedriver ] && [ -z "${CHROMEDRIVER:-}" ]; then
  missing+=(chromium chromium-driver)
fi
# the dashboard test (tests/dashboard.rs) runs Debian's Prometheus against a node
if [ "${1:-}" = "--tests" ] && ! command -v prometheus >/dev/null 2>&1 && [ ! -x /usr/bin/prometheus ] && [ -z "${PROMETHEUS_BIN:-}" ]; then
  missing+=(prometheus)
fi
# the security tests make an RSA signing key and TLS certificates with the openssl command
if [ "${1:-}" = "--tests" ] && ! command -v openssl >/dev/null 2>&1; then
  missing+=(openssl)
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "ensure-deps: cargo is not installed; install a Rust toolchain (rustup) first" >&2
  exit 1
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "ensure-deps: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "ensure-deps: missing ${missing[*]} and cannot install them here (no root/apt-get)." >&2
  echo "  Install them with your package manager; for nats-server you may instead set NATS_SERVER_BIN." >&2
  exit 1
fi
