#!/usr/bin/env bash
# The fault campaign (tests/faults.rs): a mixed workload against a real node while it, and with
# the JetStream log nats-server, are killed at random points; then every acknowledged event must
# be in the log once and the store equal its rebuild. Prints the README's table.
#   FAULT_POINTS=50 (faults per log)   FAULT_SEED=<n> (repeat a run)
#   FAULT_ONLY=<label> (one campaign: embedded, JetStream, "embedded, full disk", "embedded, slow disk")
# The full-disk and slow-disk campaigns need root (a tmpfs; a blkio cgroup).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh --tests
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cireg-target}"
scripts/own-test-builds.sh
exec cargo test --locked -p cireg --test faults -- --ignored --nocapture --test-threads 1
