#!/usr/bin/env bash
# Stop what scripts/start_tracking_server.sh started for STATE_DIR, and nothing else.
#
#   scripts/stop_tracking_server.sh [--mlflow-only] STATE_DIR
#
# mlflow: SIGTERM to the process group recorded in STATE_DIR/mlflow.pid (mlflow CLI + uvicorn
# + any job runners), SIGKILL after TR_STOP_TIMEOUT seconds (default 10).
# PostgreSQL (unless --mlflow-only): pg_ctl stop -m fast on STATE_DIR/pg/data
# (falls back to -m immediate). Removes STATE_DIR/env after a full stop.
# Idempotent: fine when nothing is running, pid files are stale or STATE_DIR is gone.
# Data is kept; delete STATE_DIR afterwards to discard it.
set -euo pipefail

say() { echo "stop_tracking_server: $*" >&2; }

mlflow_only=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --mlflow-only) mlflow_only=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    -*) say "unknown option: $1"; exit 2 ;;
    *) args+=("$1") ;;
  esac
  shift
done
[ "${#args[@]}" -eq 1 ] || { sed -n '2,4p' "$0" >&2; exit 2; }
if [ ! -d "${args[0]}" ]; then
  say "no state dir ${args[0]}: nothing to stop"
  exit 0
fi
STATE=$(cd "${args[0]}" && pwd -P)

exec 9>"$STATE/lock"
flock -w 120 9 || { say "another start/stop holds $STATE/lock"; exit 1; }

# any live (non-zombie) process in process group $1 (zombies wait for init to reap them)
group_live() { ps -eo pgid=,stat= | awk -v g="$1" '$1==g && $2 !~ /^Z/ {f=1} END {exit !f}'; }

# --- mlflow ---------------------------------------------------------------------------------
PIDF=$STATE/mlflow.pid
pid=$(cat "$PIDF" 2>/dev/null || true)
if [[ "$pid" =~ ^[0-9]+$ ]] && group_live "$pid"; then
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  if [ -n "$cmd" ] && [[ "$cmd" != *mlflow* ]]; then
    say "pid $pid in $PIDF is not an mlflow server any more: leaving it alone"
  else
    kill -TERM -- "-$pid" 2>/dev/null || true
    steps=$(( ${TR_STOP_TIMEOUT:-10} * 10 ))
    for _ in $(seq "$steps"); do group_live "$pid" || break; sleep 0.1; done
    if group_live "$pid"; then
      say "mlflow process group $pid ignored SIGTERM: SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
      for _ in $(seq 50); do group_live "$pid" || break; sleep 0.1; done
    fi
    say "stopped mlflow (process group $pid)"
  fi
else
  say "mlflow not running"
fi
rm -f "$PIDF"

[ "$mlflow_only" = 1 ] && exit 0

# --- PostgreSQL -----------------------------------------------------------------------------
PGDATA=$STATE/pg/data
if [ -f "$PGDATA/postmaster.pid" ]; then
  PGBIN=${TR_PG_BIN:-}
  if [ -z "$PGBIN" ] && [ -f "$PGDATA/PG_VERSION" ]; then
    PGBIN=/usr/lib/postgresql/$(cat "$PGDATA/PG_VERSION")/bin
  fi
  [ -x "$PGBIN/pg_ctl" ] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ "$(id -u)" -eq 0 ]; then as_pg() { runuser -u postgres -- "$@"; }; else as_pg() { "$@"; }; fi
  pgpid=$(head -n 1 "$PGDATA/postmaster.pid" 2>/dev/null || true)
  if [[ "$pgpid" =~ ^[0-9]+$ ]] && grep -qx postgres "/proc/$pgpid/comm" 2>/dev/null \
     && [ "$(readlink "/proc/$pgpid/cwd" 2>/dev/null || true)" = "$PGDATA" ]; then
    if ! as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 30 -s stop; then
      say "fast shutdown failed: immediate"
      as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 30 -s stop || true
    fi
    say "stopped PostgreSQL (pid $pgpid)"
  else
    say "PostgreSQL not running (stale postmaster.pid removed)"
    rm -f "$PGDATA/postmaster.pid"
  fi
else
  say "PostgreSQL not running"
fi
rm -f "$STATE/env"
