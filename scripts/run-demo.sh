#!/usr/bin/env bash
# Runs the registry with the embedded log and the synthetic demo catalogue; open the printed address.
# It also makes a development signing key under the data directory, trusts it (--jwks) and writes
# a development token to <data>/dev-token: a researcher with the all-studies role (the demo's
# synthetic study data under /fhir and in /sparql) who may also publish for the example provider
# synthetic-breast-consortium. The dev key also signs GA4GH visas (cireg token --visa <dataset IRI>),
# and the demo trusts it as the visa issuer urn:cireg:dev-visa-issuer.
# A real node trusts its identity provider's keys instead (README, "Security").
# Extra arguments go to `cireg serve` (e.g. --listen 0.0.0.0:8080, --nats nats://127.0.0.1:4222).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cireg-target}"
data="${CIREG_DATA:-cireg-data}"
mkdir -p "$data"
cargo build --locked -p cireg
cireg="$CARGO_TARGET_DIR/debug/cireg"
"$cireg" token --key "$data/dev-key.pem" --jwks "$data/dev-jwks.json" --subject demo-user \
  --researcher --all-studies --provider synthetic-breast-consortium --ttl 604800 > "$data/dev-token"
# the address printed follows the options: `--listen A` / `--listen=A` (the last one wins, as for
# clap), else CIREG_LISTEN or the serve default; a wildcard host is reached on loopback
listen="${CIREG_LISTEN:-127.0.0.1:8080}"
prev=
for arg in "$@"; do
  case "$arg" in
    --listen=*) listen="${arg#--listen=}" ;;
    *) [ "$prev" = "--listen" ] && listen="$arg" ;;
  esac
  prev="$arg"
done
case "$listen" in
  0.0.0.0:*) listen="127.0.0.1:${listen#0.0.0.0:}" ;;
  "[::]:"*) listen="[::1]:${listen#\[::\]:}" ;;
esac
echo "run-demo: a development token (7 days) is in $data/dev-token; use it as"
echo "  curl -H \"Authorization: Bearer \$(cat $data/dev-token)\" http://$listen/fhir/ImagingStudy"
exec "$cireg" serve --demo --data "$data" --jwks "$data/dev-jwks.json" \
  --token-issuer urn:cireg:dev-issuer --token-audience cireg \
  --visa-issuer "urn:cireg:dev-visa-issuer=$data/dev-jwks.json" "$@"
