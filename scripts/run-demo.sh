#!/usr/bin/env bash
# Runs the registry with the embedded log and the synthetic demo catalogue; open the printed address.
# The study views (/fhir) are on: the demo's studies are synthetic. Never pass --study-views to a
# node with real data that anyone but authorised researchers can reach.
# Extra arguments go to `cireg serve` (e.g. --listen 0.0.0.0:8080, --nats nats://127.0.0.1:4222).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cireg-target}"
exec cargo run --locked -p cireg -- serve --demo --study-views --data "${CIREG_DATA:-cireg-data}" "$@"
