#!/usr/bin/env bash
# Install everything the test suite needs from this repository's own files, then run it.
#   bash scripts/test.sh [pytest args...]
# Creates ./.venv (if missing), installs the package with its test extras, and runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[dev]"
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest "$@"
