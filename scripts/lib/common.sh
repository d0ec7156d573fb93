# Shared shell helpers for L-kn scripts. Source it from the repository root:
#   . scripts/lib/common.sh
# Everything here is idempotent and safe to source twice.

LKN_ROOT="${LKN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
LKN_CACHE="${LKN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lkn}"
LKN_LOG_DIR="${LKN_LOG_DIR:-$LKN_ROOT/logs}"
LKN_PYTHON="${LKN_PYTHON:-python3}"
mkdir -p "$LKN_CACHE" "$LKN_LOG_DIR"

lkn_say()  { printf '[lkn] %s\n' "$*" >&2; }
lkn_die()  { printf '[lkn] error: %s\n' "$*" >&2; exit 1; }

# lkn_hash FILE... : short sha256 over the given files' contents (and their names relative
# to the checkout, so that every clone of the same commit shares one cached environment).
lkn_hash() {
  local f
  for f in "$@"; do printf '%s\n' "${f#"$LKN_ROOT"/}"; cat "$f"; done | sha256sum | cut -c1-16
}

# lkn_venv_dir NAME KEYFILE... : print where lkn_venv keeps the environment NAME for these
# key files (whether or not it is built yet: built ones hold a .complete stamp).
lkn_venv_dir() {
  local name="$1"; shift
  printf '%s\n' "$LKN_CACHE/venvs/$name-$(lkn_hash "$@")"
}

# lkn_venv NAME INSTALL_FN KEYFILE... : print the path of a virtualenv named NAME whose
# contents depend only on KEYFILE(s). It is built once by calling INSTALL_FN with the
# venv's python as $1, and reused while the key files are unchanged. A half-built
# venv (no .complete stamp) is thrown away and built again.
lkn_venv() {
  local name="$1" install_fn="$2"; shift 2
  local dir
  dir="$(lkn_venv_dir "$name" "$@")"
  if [ ! -f "$dir/.complete" ]; then
    rm -rf "$dir"
    mkdir -p "$LKN_CACHE/venvs"
    lkn_require_python "$LKN_PYTHON"
    lkn_say "building the '$name' environment in $dir (first run or requirements changed)"
    "$LKN_PYTHON" -m venv "$dir" >&2 || lkn_die "could not create a virtualenv at $dir"
    "$dir/bin/python" -m pip install -q --upgrade pip >&2 || lkn_die "pip upgrade failed in $dir"
    "$install_fn" "$dir/bin/python" >&2 || { rm -rf "$dir"; lkn_die "installing the '$name' environment failed"; }
    touch "$dir/.complete"
  fi
  printf '%s\n' "$dir"
}

# lkn_require_python PYTHON : stop with a clear message unless PYTHON is 3.11 or newer
# (asyncio.Runner in the benchmark and the test double, mypy targets 3.11, SGLang 0.5.23
# needs 3.11). LKN_PYTHON picks another interpreter, e.g. LKN_PYTHON=python3.12.
lkn_require_python() {
  local py="${1:-$LKN_PYTHON}" version
  command -v "$py" >/dev/null 2>&1 || lkn_die "$py not found: L-kn needs Python 3.11 or newer (set LKN_PYTHON)"
  version="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
    || lkn_die "$py does not run"
  "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || lkn_die "$py is Python $version; L-kn needs Python 3.11 or newer (install python3.11 and python3.11-venv, then LKN_PYTHON=python3.11)"
  "$py" -c 'import venv, ensurepip' 2>/dev/null \
    || lkn_die "$py cannot create virtualenvs (Debian/Ubuntu: apt-get install python${version}-venv)"
}

# lkn_probe_host HOST : the address to connect to for a server bound to HOST, in URL form:
# the loopback for the wildcard addresses (0.0.0.0, empty -> 127.0.0.1; :: -> [::1]),
# IPv6 literals in brackets ([fe80::1]), anything else unchanged.
lkn_probe_host() {
  local host="${1-}"
  case "$host" in
    0.0.0.0|'') printf '127.0.0.1\n' ;;
    ::|'[::]') printf '[::1]\n' ;;
    *:*) host="${host#[}"; printf '[%s]\n' "${host%]}" ;;
    *) printf '%s\n' "$host" ;;
  esac
}

# lkn_port_in_use HOST PORT : 0 if something accepts TCP connections on HOST:PORT (HOST as
# printed by lkn_probe_host; brackets are removed for bash's /dev/tcp).
lkn_port_in_use() {
  local host="${1#[}"
  host="${host%]}"
  (exec 3<>"/dev/tcp/$host/$2") 2>/dev/null
}

# lkn_apt_install WHAT PACKAGE... : install Debian/Ubuntu packages with apt-get (root, or
# sudo), or stop with a message that says what to install by hand. WHAT names it for people.
lkn_apt_install() {
  local what="$1" sudo=()
  shift
  command -v apt-get >/dev/null \
    || lkn_die "$what is required and there is no apt-get here: install $* yourself"
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || lkn_die "installing $what needs root or sudo: apt-get install $*"
    sudo=(sudo)
  fi
  lkn_say "installing $what from the distribution (apt-get install $*)"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 \
    || lkn_die "apt-get update failed (needed for $what)"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 \
    || lkn_die "apt-get install $* failed"
}

# lkn_require_node : Node.js and npm (the gRPC client and browser tests run on them),
# installed from the distribution when missing.
lkn_require_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    lkn_apt_install "Node.js and npm" nodejs npm
  fi
  command -v node >/dev/null && command -v npm >/dev/null \
    || lkn_die "node and npm are still missing after apt-get install nodejs npm"
}

# lkn_load_env [FILE] : export the variables of the env file (default config/.env),
# without overriding variables already set in the environment. The gateway's own parser
# reads the file (python -m lkn.config --export), so scripts and gateway agree on every line.
lkn_load_env() {
  local file="${1:-${LKN_ENV_FILE:-$LKN_ROOT/config/.env}}" exports
  [ -f "$file" ] || return 0
  exports="$(PYTHONPATH="$LKN_ROOT${PYTHONPATH:+:$PYTHONPATH}" "$LKN_PYTHON" -m lkn.config \
    --export "$file")" || lkn_die "cannot read $file"
  eval "$exports"
}

# lkn_wait_http URL TIMEOUT_S [WHAT] : wait until URL answers 200 (1 on timeout).
lkn_wait_http() {
  lkn_wait_ready "$1" "$2" "" "${3:-$1}"
}

# PID files: lkn_pid_alive NAME -> 0 if logs/NAME.pid holds a live process.
# A dead PID is removed (stale lock).
lkn_pid_alive() {
  local f="$LKN_LOG_DIR/$1.pid" pid
  [ -f "$f" ] || return 1
  pid="$(cat "$f" 2>/dev/null)"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    return 0
  fi
  lkn_say "removing stale PID file $f (pid '${pid}' is not running)"
  rm -f "$f"
  return 1
}

# lkn_stop_pid NAME [GRACE_S] : stop the process in logs/NAME.pid (TERM, then KILL).
lkn_stop_pid() {
  local name="$1" grace="${2:-20}" f pid i
  f="$LKN_LOG_DIR/$name.pid"
  if ! lkn_pid_alive "$name"; then
    lkn_say "$name is not running"
    return 0
  fi
  pid="$(cat "$f")"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < grace * 5; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    lkn_say "$name (pid $pid) did not stop in ${grace}s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
  lkn_say "$name stopped"
}

# lkn_wait_ready URL TIMEOUT_S PID [WHAT] : like lkn_wait_http, but gives up at once
# when process PID exits (PID empty: no process to watch). Returns 0 when URL answers 200,
# 1 on timeout, 2 if PID died.
lkn_wait_ready() {
  local url="$1" timeout="$2" pid="$3" what="${4:-$1}" start
  start=$(date +%s)
  until curl -fsS -o /dev/null --max-time 5 "$url" 2>/dev/null; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      lkn_say "$what (pid $pid) exited before it became ready"
      return 2
    fi
    if [ $(( $(date +%s) - start )) -ge "$timeout" ]; then
      lkn_say "$what did not become ready within ${timeout}s ($url)"
      return 1
    fi
    sleep 1
  done
}

# lkn_wait_started URL TIMEOUT_S PID WHAT LOGFILE : lkn_wait_ready for a process just
# started; when it fails, the last 30 lines of LOGFILE go to stderr. Returns its status.
lkn_wait_started() {
  local rc=0
  lkn_wait_ready "$1" "$2" "$3" "$4" || rc=$?
  if [ "$rc" -ne 0 ]; then
    lkn_say "last 30 lines of $5:"
    tail -n 30 "$5" >&2 || true
  fi
  return "$rc"
}

# lkn_exit_if_ready NAME READY_URL URL WHAT : for a start that finds the process of
# logs/NAME.pid already running: when READY_URL answers 200, says so, prints URL (what the
# start prints) and exits 0; otherwise returns, for the caller to report.
lkn_exit_if_ready() {
  local pid
  pid="$(cat "$LKN_LOG_DIR/$1.pid")"
  if curl -fsS -o /dev/null --max-time 5 "$2" 2>/dev/null; then
    lkn_say "$4 is already running (pid $pid) and ready at $3; not starting another"
    printf '%s\n' "$3"
    exit 0
  fi
}

# lkn_pid_matches NAME PATTERN : 0 if logs/NAME.pid holds a live process whose command
# line contains PATTERN. A PID file whose process is gone, or whose PID now belongs to an
# unrelated program (PID reuse after a reboot or a crash), is removed as stale.
lkn_pid_matches() {
  local name="$1" pattern="$2" f pid cmd
  f="$LKN_LOG_DIR/$name.pid"
  lkn_pid_alive "$name" || return 1
  pid="$(cat "$f")"
  cmd="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)"
  case "$cmd" in
    *"$pattern"*) return 0 ;;
  esac
  lkn_say "removing stale PID file $f (pid $pid is now '${cmd:-?}', not $name)"
  rm -f "$f"
  return 1
}

# lkn_stop_group NAME PATTERN [GRACE_S] : stop the process group led by the process in
# logs/NAME.pid (started with setsid): TERM the group, wait until every process of the
# group is gone, KILL what is left after GRACE_S seconds, remove the PID file. Stale PID
# files (see lkn_pid_matches) are cleaned up without signalling anything.
lkn_stop_group() {
  local name="$1" pattern="$2" grace="${3:-30}" f pid i
  f="$LKN_LOG_DIR/$name.pid"
  if ! lkn_pid_matches "$name" "$pattern"; then
    lkn_say "$name is not running"
    return 0
  fi
  pid="$(cat "$f")"
  lkn_say "stopping $name (process group $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < grace * 5; i++)); do
    kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 -- "-$pid" 2>/dev/null || kill -0 "$pid" 2>/dev/null; then
    lkn_say "$name (process group $pid) did not stop in ${grace}s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
    sleep 0.5
  fi
  rm -f "$f"
  lkn_say "$name stopped"
}

# ---- the gateway's own Python environment ------------------------------------------------

_lkn_install_gateway() {
  local py="$1" reqs
  reqs="$("$py" - "$LKN_ROOT/setup.cfg" <<'PY'
import configparser, sys
cfg = configparser.ConfigParser()
cfg.read(sys.argv[1])
deps = cfg["options"]["install_requires"].split("\n")
deps += cfg["options.extras_require"]["dev"].split("\n")
print("\n".join(d.strip() for d in deps if d.strip()))
PY
)" || return 1
  printf '%s\n' "$reqs" > "$(dirname "$py")/../requirements.txt"
  "$py" -m pip install -q -r "$(dirname "$py")/../requirements.txt"
}

# lkn_gateway_python : print the python of the gateway's environment (runtime + dev
# dependencies from setup.cfg), building it on first use. The package itself is not
# installed there: scripts run it from the checkout with PYTHONPATH, so one cached
# environment serves every clone.
lkn_gateway_python() {
  local dir
  dir="$(lkn_venv gateway _lkn_install_gateway "$LKN_ROOT/setup.cfg")" || return 1
  printf '%s\n' "$dir/bin/python"
}

# lkn_spawn PIDFILE CMD... : start CMD detached, in its own session and process group
# (setsid), and wait until PIDFILE holds the group leader's PID (the inner shell writes its
# own PID, then becomes CMD with exec). Redirect the call's output to the log; returns 1 if
# the process did not start.
lkn_spawn() {
  local pidfile="$1" _
  shift
  rm -f "$pidfile"
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$pidfile" "$@" &
  for _ in $(seq 50); do [ -s "$pidfile" ] && return 0; sleep 0.1; done
  return 1
}
