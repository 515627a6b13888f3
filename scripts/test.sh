#!/usr/bin/env bash
# Install everything the test suite needs from this repository's own files, then run ALL of it,
# the server tests included, against a PostgreSQL-backed mlflow server started for the run.
#
#   bash scripts/test.sh [pytest args...]        e.g.  bash scripts/test.sh -m server -q
#
# 1. creates ./.venv if missing and installs the package with the extras in TEST_EXTRAS;
# 2. installs the Debian packages of the server and browser tests (scripts/install_system_deps.sh:
#    postgresql, chromium, chromium-driver; apt-get as root, else through sudo; a no-op when present);
# 3. starts PostgreSQL + `mlflow server` in a fresh state dir under ${TMPDIR:-/tmp} on free ports
#    (scripts/start_tracking_server.sh) and exports TR_SERVER_ENV=<state dir>/env for the fixtures;
# 4. runs `python -m pytest -n 2 --dist loadfile "$@"` (see TR_TEST_XDIST), exits with its code;
# 5. stops the server on exit, also when the tests fail or are interrupted, and removes the state
#    dir (kept, with its logs, when the tests failed: its path is printed).
#
# Environment:
#   PYTHON         interpreter that creates .venv (default python3)
#   TR_SERVER_ENV  already set: use that running server (its env file) and start/stop nothing
#   TR_TEST_XDIST  pytest-xdist workers (default 2, files spread over them; 0: one process)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# the optional-dependency groups of pyproject.toml the tests need (one place to add more)
TEST_EXTRAS="dev,server,dask"

say() { echo "test.sh: $*" >&2; }

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $PY"
  "$PY" -m venv .venv
fi
pip_log=$(mktemp)
if ! { .venv/bin/python -m pip install -q --upgrade pip \
       && .venv/bin/python -m pip install -q -e ".[$TEST_EXTRAS]"; } >"$pip_log" 2>&1; then
  cat "$pip_log" >&2
  rm -f "$pip_log"
  say "pip install failed"
  exit 1
fi
rm -f "$pip_log"
export PATH="$repo/.venv/bin:$PATH"   # `mlflow models serve` runs uvicorn from PATH
export PYTHON="$repo/.venv/bin/python" # the interpreter start_tracking_server.sh runs mlflow with

bash scripts/install_system_deps.sh

state=""
pytest_rc=1
cleanup() {
  local rc=$?
  if [ -n "$state" ]; then
    bash scripts/stop_tracking_server.sh "$state" >/dev/null 2>&1 \
      || say "could not stop the tracking server of $state"
    if [ "$pytest_rc" = 0 ]; then
      rm -rf "$(dirname "$state")"
    else
      say "server state and logs kept in $state (mlflow.log, pg/postgresql.log)"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -n "${TR_SERVER_ENV:-}" ]; then
  say "using the running tracking server of TR_SERVER_ENV=$TR_SERVER_ENV"
else
  base=$(mktemp -d "${TMPDIR:-/tmp}/ticker-registry-test.XXXXXX")
  state=$base/server
  bash scripts/start_tracking_server.sh "$state" 0 >/dev/null
  export TR_SERVER_ENV=$state/env
  say "tracking server $(sed -n 's/^MLFLOW_TRACKING_URI=//p' "$TR_SERVER_ENV") (state: $state)"
fi

# two workers, one test file per worker at a time (loadfile): the whole suite took 6m40s
# instead of 14 min on a busy 2-core machine; TR_TEST_XDIST=0 runs it in one process
xdist=()
workers=${TR_TEST_XDIST:-2}
if [ "$workers" != 0 ]; then
  xdist=(-n "$workers" --dist loadfile)
fi

set +e
.venv/bin/python -m pytest "${xdist[@]}" "$@"
pytest_rc=$?
set -e
exit "$pytest_rc"
