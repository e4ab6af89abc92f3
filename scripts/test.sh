#!/usr/bin/env bash
# Runs every check and test of cireg: formatting, clippy (no warnings), then all tests, including
# the black-box tests that start real nats-server and cireg processes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh --tests
# reuse a build directory outside the checkout, so repeated runs on one machine do not rebuild
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cireg-target}"
scripts/own-test-builds.sh
echo "test.sh: nats-server: $(command -v nats-server || echo "${NATS_SERVER_BIN:-/usr/sbin/nats-server}") ($(nats-server --version 2>/dev/null || true))"
# the independent judges of the catalogue (tests/catalog.rs): rdflib and pySHACL, in a venv
export CIREG_PYTHON="$(scripts/ensure-python.sh)"
echo "test.sh: python judges: $CIREG_PYTHON"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
