#!/usr/bin/env bash
# Start a PostgreSQL-backed `mlflow server` whose whole state lives in one folder.
#
#   scripts/start_tracking_server.sh [--mlflow-only] STATE_DIR [PORT]
#
#   STATE_DIR      created if missing; holds everything (see layout below).
#   PORT           mlflow's port on 127.0.0.1. Default: the port this STATE_DIR used last
#                  time, else 5055. 0 picks a free loopback port.
#   --mlflow-only  do not touch PostgreSQL: (re)start only mlflow against the PostgreSQL
#                  already running for STATE_DIR (after the mlflow server was killed).
#
# Idempotent: when mlflow is already healthy for STATE_DIR it only prints the env file
# (an explicit, different PORT restarts mlflow on that port). Stale pid files (pids dead or
# reused) and leftovers of a killed mlflow process group are cleaned up first.
# To simulate a server crash, kill the whole group: `kill -9 -- -$TR_MLFLOW_PID`
# (os.killpg); killing only TR_MLFLOW_PID (the `mlflow server` CLI) leaves its uvicorn child
# serving. Then `start_tracking_server.sh --mlflow-only STATE_DIR` brings it back on the same
# port with the same database and artifacts.
# Finishes by printing STATE_DIR/env (KEY=value lines, unquoted, shell-sourceable):
#   MLFLOW_TRACKING_URI=http://127.0.0.1:PORT   TR_MLFLOW_PORT   TR_MLFLOW_PID (also its pgid)
#   TR_PG_URI=postgresql+psycopg2://mlflow@127.0.0.1:PGPORT/mlflow   TR_PG_PORT   TR_PG_DATADIR
#   TR_STATE_DIR  TR_ARTIFACTS_DIR  TR_MLFLOW_LOG  TR_PG_LOG  TR_PYTHON
#
# Environment:
#   PYTHON       interpreter whose mlflow (and psycopg2) to run; default: python3 on PATH if it
#                imports both, else this repo's .venv/bin/python.
#   TR_PG_BIN    PostgreSQL bin dir; default: newest /usr/lib/postgresql/*/bin.
#   TR_PG_PORT   PostgreSQL port; default: the one used last time if free, else a free port.
#   TR_START_TIMEOUT  seconds to wait for /health (default 60).
#   TR_MLFLOW_WORKERS  uvicorn worker processes of `mlflow server` (default 1).
#   MLFLOW_SERVER_ENABLE_JOB_EXECUTION  default false here (true adds a job runner + 7 huey
#                consumers, ~1 GB RSS, and leaves a /dev/shm/tmp* dir behind even on a clean stop).
#   MLFLOW_DISABLE_TELEMETRY  default true here.
#
# Layout: STATE_DIR/{env, lock, artifacts/, mlflow.log, mlflow.pid, mlflow.port,
#                    pg/{data/, run/ (unix socket; none if the path is too long for one), postgresql.log, port}}
# As root, PostgreSQL runs as the `postgres` OS user (it refuses root); STATE_DIR/pg is
# chowned to it, and STATE_DIR's ancestors get o+x (traverse only) when postgres cannot reach it.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(dirname "$here")

die() { echo "start_tracking_server: $*" >&2; exit 1; }
say() { echo "start_tracking_server: $*" >&2; }

mlflow_only=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --mlflow-only) mlflow_only=1 ;;
    -h|--help) sed -n '2,39p' "$0"; exit 0 ;;
    --) shift; args+=("$@"); break ;;
    -*) die "unknown option: $1" ;;
    *) args+=("$1") ;;
  esac
  shift
done
[ "${#args[@]}" -ge 1 ] && [ "${#args[@]}" -le 2 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
port_arg=${args[1]:-}
if [ -n "$port_arg" ] && ! [[ "$port_arg" =~ ^[0-9]+$ ]]; then die "PORT must be a number: $port_arg"; fi

t_start=$EPOCHREALTIME
mkdir -p "${args[0]}"
STATE=$(cd "${args[0]}" && pwd -P)
[[ "$STATE" =~ [[:space:]] ]] && die "STATE_DIR must not contain whitespace: $STATE"

# --- one start/stop at a time per STATE_DIR ----------------------------------------------
exec 9>"$STATE/lock"
flock -w 120 9 || die "another start/stop holds $STATE/lock"

# --- Python with mlflow + psycopg2 ----------------------------------------------------------
py_ok() { "$1" -c 'import sys, importlib.util as u; sys.exit(not (u.find_spec("mlflow") and u.find_spec("psycopg2")))' >/dev/null 2>&1; }
if [ -n "${PYTHON:-}" ]; then
  PY=$(command -v "$PYTHON") || die "PYTHON=$PYTHON not found"
  py_ok "$PY" || die "$PY cannot import mlflow and psycopg2 (pip install mlflow psycopg2-binary)"
elif command -v python3 >/dev/null 2>&1 && py_ok "$(command -v python3)"; then
  PY=$(command -v python3)
elif [ -x "$repo/.venv/bin/python" ] && py_ok "$repo/.venv/bin/python"; then
  PY=$repo/.venv/bin/python
else
  die "no Python with mlflow and psycopg2 found; set PYTHON (pip install mlflow psycopg2-binary)"
fi

# port helpers (SO_REUSEADDR like postgres and uvicorn, so TIME_WAIT does not count as busy)
free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port_is_free() {
  "$PY" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

# --- PostgreSQL -----------------------------------------------------------------------------
if [ -n "${TR_PG_BIN:-}" ]; then
  PGBIN=$TR_PG_BIN
else
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$PGBIN" ] && command -v pg_config >/dev/null 2>&1; then PGBIN=$(pg_config --bindir); fi
fi
[ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ] \
  || die "PostgreSQL server binaries not found (run scripts/install_system_deps.sh)"

PGDIR=$STATE/pg
PGDATA=$PGDIR/data
PGLOG=$PGDIR/postgresql.log
PGSOCK=$PGDIR/run

if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' OS user (Debian's postgresql package creates it)"
  as_pg() { runuser -u postgres -- "$@"; }
else
  as_pg() { "$@"; }
fi

# pid of a live postmaster for PGDATA, or nothing (removes a stale postmaster.pid)
pg_running_pid() {
  local f=$PGDATA/postmaster.pid pid
  [ -f "$f" ] || return 0
  pid=$(head -n 1 "$f" 2>/dev/null || true)
  if [[ "$pid" =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/comm" ] && grep -qx 'postgres' "/proc/$pid/comm" 2>/dev/null \
     && [ "$(readlink "/proc/$pid/cwd" 2>/dev/null || true)" = "$PGDATA" ]; then
    echo "$pid"
  elif [ "$mlflow_only" = 0 ]; then
    say "removing stale $f (pid ${pid:-?} is not a postmaster for this data dir)"
    rm -f "$f"
  fi
}

psql_pg() { "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

pg_pid=$(pg_running_pid)
if [ "$mlflow_only" = 1 ]; then
  [ -n "$pg_pid" ] || die "--mlflow-only: PostgreSQL for $STATE is not running (start without --mlflow-only)"
  PG_PORT=$(sed -n 4p "$PGDATA/postmaster.pid")
else
  mkdir -p "$PGDIR"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$PGDIR"
    chmod 700 "$PGDIR"
    # postgres must be able to traverse every ancestor of STATE_DIR (mktemp/pytest dirs are 0700)
    if ! runuser -u postgres -- test -w "$PGDIR"; then
      d=$PGDIR
      while [ "$d" != "/" ]; do
        d=$(dirname "$d")
        if ! runuser -u postgres -- test -x "$d"; then
          chmod o+x "$d"
          say "granted o+x (traverse only) on $d so the postgres user can reach $PGDIR"
        fi
      done
      runuser -u postgres -- test -w "$PGDIR" || die "postgres OS user cannot write $PGDIR"
    fi
  fi

  if [ ! -f "$PGDIR/.initialized" ] && [ -z "$pg_pid" ]; then
    # no marker: never initialised, or a start died half-way (before any mlflow data): redo
    rm -rf "$PGDATA"
    say "initdb $PGDATA ($PGBIN)"
    as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C -N >"$PGDIR/initdb.log" 2>&1 \
      || { tail -n 30 "$PGDIR/initdb.log" >&2; die "initdb failed"; }
    # loopback only, trust auth: a test/team-local server, never exposed
    as_pg tee "$PGDATA/pg_hba.conf" >/dev/null <<'EOF'
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   trust
EOF
    echo "include_if_exists = 'tr_server.conf'" | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
  fi

  if [ -n "$pg_pid" ]; then
    PG_PORT=$(sed -n 4p "$PGDATA/postmaster.pid")
    say "PostgreSQL already running (pid $pg_pid, port $PG_PORT)"
  else
    if [ -n "${TR_PG_PORT:-}" ]; then
      PG_PORT=$TR_PG_PORT
      port_is_free "$PG_PORT" || die "TR_PG_PORT=$PG_PORT is in use"
    else
      PG_PORT=$(cat "$PGDIR/port" 2>/dev/null || true)
      if ! [[ "$PG_PORT" =~ ^[0-9]+$ ]] || ! port_is_free "$PG_PORT"; then PG_PORT=$(free_port); fi
    fi
    # unix socket in STATE_DIR when its path fits sun_path (107 bytes); clients use TCP anyway
    sockdirs=""
    if [ $(( ${#PGSOCK} + 20 )) -lt 107 ]; then
      mkdir -p "$PGSOCK"; [ "$(id -u)" -eq 0 ] && chown postgres: "$PGSOCK"
      sockdirs=$PGSOCK
    fi
    as_pg tee "$PGDATA/tr_server.conf" >/dev/null <<EOF
# written by scripts/start_tracking_server.sh on each start
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sockdirs'
max_connections = 100
shared_buffers = 64MB
logging_collector = off
EOF
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    # 9>&- : the long-lived server must not inherit (and hold) our lock fd
    if ! as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGLOG" -w -t 60 -s start 9>&-; then
      tail -n 30 "$PGLOG" >&2 || true
      die "PostgreSQL did not start"
    fi
    echo "$PG_PORT" >"$PGDIR/port"
  fi

  if [ ! -f "$PGDIR/.initialized" ]; then
    if [ "$(psql_pg -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'mlflow'")" != 1 ]; then
      psql_pg -c "CREATE ROLE mlflow LOGIN" || die "could not create role mlflow"
    fi
    if [ "$(psql_pg -tAc "SELECT 1 FROM pg_database WHERE datname = 'mlflow'")" != 1 ]; then
      psql_pg -c "CREATE DATABASE mlflow OWNER mlflow" || die "could not create database mlflow"
    fi
    touch "$PGDIR/.initialized"
  fi
fi
PG_URI="postgresql+psycopg2://mlflow@127.0.0.1:$PG_PORT/mlflow"

# --- mlflow server --------------------------------------------------------------------------
PIDF=$STATE/mlflow.pid
MLOG=$STATE/mlflow.log
ART=$STATE/artifacts
mkdir -p "$ART"

# any live (non-zombie) process in process group $1 (zombies wait for init to reap them)
group_live() { ps -eo pgid=,stat= | awk -v g="$1" '$1==g && $2 !~ /^Z/ {f=1} END {exit !f}'; }
# leader pid recorded in mlflow.pid if its process group still has members that are ours
mlflow_group() {
  local pid
  pid=$(cat "$PIDF" 2>/dev/null || true)
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  group_live "$pid" || return 0
  local cmd
  cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
  if [ -n "$cmd" ] && [[ "$cmd" != *mlflow* ]]; then
    return 0   # pid reused by an unrelated process group leader
  fi
  echo "$pid"
}
# the leader itself is running (not gone, not a zombie)
leader_alive() { [ -n "$(tr -d '\0' <"/proc/$1/cmdline" 2>/dev/null || true)" ]; }

healthy() { "$PY" -c 'import sys,urllib.request as u; sys.exit(0 if u.urlopen(sys.argv[1],timeout=2).status==200 else 1)' \
  "http://127.0.0.1:$1/health" >/dev/null 2>&1; }

write_env() {
  local tmp=$STATE/env.tmp.$$
  cat >"$tmp" <<EOF
MLFLOW_TRACKING_URI=http://127.0.0.1:$1
TR_MLFLOW_PORT=$1
TR_MLFLOW_PID=$2
TR_PG_URI=$PG_URI
TR_PG_PORT=$PG_PORT
TR_PG_DATADIR=$PGDATA
TR_STATE_DIR=$STATE
TR_ARTIFACTS_DIR=$ART
TR_MLFLOW_LOG=$MLOG
TR_PG_LOG=$PGLOG
TR_PYTHON=$PY
EOF
  mv -f "$tmp" "$STATE/env"
}

old=$(mlflow_group)
last_port=$(cat "$STATE/mlflow.port" 2>/dev/null || true)
if [ -n "$old" ]; then
  # healthy only counts while the group leader (the `mlflow server` CLI) lives: after
  # `kill -9 <leader>` its uvicorn child still serves, but it is a leftover to replace.
  if leader_alive "$old" && [ -n "$last_port" ] && healthy "$last_port" \
     && { [ -z "$port_arg" ] || [ "$port_arg" = 0 ] || [ "$port_arg" = "$last_port" ]; }; then
    say "mlflow already running (pid $old, port $last_port)"
    write_env "$last_port" "$old"
    cat "$STATE/env"
    exit 0
  fi
  say "cleaning up leftover mlflow process group $old"
  kill -TERM -- "-$old" 2>/dev/null || true
  for _ in $(seq 50); do group_live "$old" || break; sleep 0.1; done
  kill -KILL -- "-$old" 2>/dev/null || true
fi
rm -f "$PIDF"

if [ -z "$port_arg" ]; then
  PORT=${last_port:-5055}
elif [ "$port_arg" = 0 ]; then
  PORT=$(free_port)
else
  PORT=$port_arg
fi
if ! port_is_free "$PORT"; then
  for _ in $(seq 30); do sleep 0.2; port_is_free "$PORT" && break; done
  port_is_free "$PORT" || die "port $PORT on 127.0.0.1 is in use (pass another PORT, or 0 for a free one)"
fi

say "starting mlflow server on 127.0.0.1:$PORT ($PY)"
{ echo "=== $(date -Is) start: $PY -m mlflow server port $PORT backend $PG_URI"; } >>"$MLOG"
# own session/process group so stop can signal mlflow + uvicorn (+ any job runners) together;
# stdio to the log so a caller capturing our output is not held open by the server; lock fd closed.
# telemetry off: its exit-time flush (no network here) kept `mlflow server` alive ~2 s after SIGTERM
MLFLOW_DISABLE_TELEMETRY=${MLFLOW_DISABLE_TELEMETRY:-true} \
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false} \
  setsid "$PY" -m mlflow server \
    --backend-store-uri "$PG_URI" \
    --serve-artifacts --artifacts-destination "$ART" \
    --host 127.0.0.1 --port "$PORT" --workers "${TR_MLFLOW_WORKERS:-1}" \
    </dev/null >>"$MLOG" 2>&1 9>&- &
pid=$!
echo "$pid" >"$PIDF"
echo "$PORT" >"$STATE/mlflow.port"

timeout=${TR_START_TIMEOUT:-60}
# one poller process (a Python start per probe would add ~0.2 s each)
rc=0
"$PY" - "$PORT" "$pid" "$timeout" <<'EOF' || rc=$?
import os, sys, time, urllib.request
port, pid, timeout = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                sys.exit(3)
    except (ProcessLookupError, FileNotFoundError):
        sys.exit(3)
    time.sleep(0.1)
sys.exit(4)
EOF
if [ "$rc" != 0 ]; then
  tail -n 40 "$MLOG" >&2
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 50); do group_live "$pid" || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$PIDF"
  if [ "$rc" = 3 ]; then die "mlflow server exited during start-up (log: $MLOG)"; fi
  die "mlflow server not healthy after ${timeout}s (log: $MLOG)"
fi

write_env "$PORT" "$pid"
say "ready in $(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')s"
cat "$STATE/env"
