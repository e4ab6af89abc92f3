#!/usr/bin/env bash
# Makes a Python venv with the independent judges the tests run against the catalogue (rdflib,
# pySHACL) and prints its python's path. Reuses the venv when it already has them.
set -euo pipefail
venv="${CIREG_PYENV:-/var/tmp/cireg-pyenv}"
if "$venv/bin/python" -c "import pyshacl, rdflib" >/dev/null 2>&1; then
  echo "$venv/bin/python"
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "ensure-python: python3 is missing; install it (Debian: python3 python3-venv)" >&2
  exit 1
fi
echo "ensure-python: creating $venv with pyshacl and rdflib (from PyPI)" >&2
python3 -m venv "$venv" >&2 || {
  echo "ensure-python: python3 -m venv failed; install python3-venv" >&2
  exit 1
}
"$venv/bin/pip" install --quiet "pyshacl==0.40.1" "rdflib==7.6.0" >&2 || {
  echo "ensure-python: could not install pyshacl and rdflib from PyPI" >&2
  exit 1
}
echo "$venv/bin/python"
