#!/usr/bin/env bash
# The integration tests live outside their package (tests/ at the root, built as targets of
# crates/cireg): cargo records their sources by absolute path. When another checkout sharing
# CARGO_TARGET_DIR built them last, they look fresh here although this checkout's tests may
# differ. This forgets such builds, so that cargo compiles this checkout's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
here="$(pwd)/crates/cireg/../../tests/"
for dep in "${CARGO_TARGET_DIR:?}"/debug/.fingerprint/cireg-*/dep-test-integration-test-*; do
  [ -e "$dep" ] || continue
  if ! grep -qaF "$here" "$dep"; then
    rm -f "$(dirname "$dep")"/*test-integration-test-*
  fi
done
