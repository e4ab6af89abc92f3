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
# the map of the code: each crate's README is its crate documentation (no warnings, no broken links)
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
# the supply chain (deny.toml): licences, duplicate versions, sources; then the RustSec advisories
deny="$(scripts/ensure-cargo-deny.sh)"
echo "test.sh: cargo deny ($("$deny" --version)): licences, duplicate versions, sources"
"$deny" --color never --locked check bans licenses sources
if "$deny" --color never fetch db >/dev/null 2>&1; then
  echo "test.sh: cargo deny: RustSec advisories"
  "$deny" --color never --offline check advisories
else
  # said loudly, never passed over in silence: this machine cannot reach github.com
  echo "test.sh: *** RustSec advisories NOT CHECKED: the advisory database (github.com/RustSec/advisory-db)" >&2
  echo "test.sh: *** cannot be fetched from this machine; run scripts/test.sh (or cargo deny check advisories)" >&2
  echo "test.sh: *** where it can. Known exceptions are listed, with reasons, in deny.toml." >&2
fi
cargo test --workspace --locked
