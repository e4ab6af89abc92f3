#!/usr/bin/env bash
# Finds cargo-deny (the supply-chain check of scripts/test.sh), or builds it from crates.io into a
# tools directory outside the checkout (default /var/tmp/cireg-tools, reused by later runs), and
# prints the path of the binary. Pinned, so every machine checks with the same rules.
set -euo pipefail
version=0.20.2
tools="${CIREG_TOOLS:-/var/tmp/cireg-tools}"
for candidate in "${CARGO_DENY:-}" "$tools/bin/cargo-deny" "$(command -v cargo-deny || true)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" --version 2>/dev/null | grep -q " $version\$"; then
    echo "$candidate"
    exit 0
  fi
done
echo "ensure-cargo-deny: building cargo-deny $version into $tools (once per machine, a few minutes)" >&2
if ! cargo install cargo-deny --version "$version" --locked --root "$tools" >&2; then
  echo "ensure-cargo-deny: could not build cargo-deny $version from crates.io; install it and set CARGO_DENY" >&2
  exit 1
fi
echo "$tools/bin/cargo-deny"
