#!/usr/bin/env bash
# Start the L-kn gateway in the background (REST on LKN_PORT, gRPC on LKN_GRPC_PORT).
# Builds its Python environment on first run. Run from anywhere; logs in logs/gateway.log.
#   bash scripts/start_gateway.sh            # start, wait until /health answers
#   LKN_FOREGROUND=1 bash scripts/start_gateway.sh   # run in the foreground instead
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
lkn_load_env

command -v curl >/dev/null || lkn_die "curl is required (apt-get install curl)"
PY="$(lkn_gateway_python)"
export PYTHONPATH="$LKN_ROOT${PYTHONPATH:+:$PYTHONPATH}"

# Validate the configuration before going to the background, so errors show here.
"$PY" -c 'import sys; from lkn.config import load_settings, ConfigError
try: load_settings()
except ConfigError as e: sys.exit(f"configuration error: {e}")'

if [ "${LKN_FOREGROUND:-0}" = 1 ]; then
  exec "$PY" -m lkn serve
fi

if lkn_pid_matches gateway "lkn serve"; then
  lkn_say "the gateway is already running (pid $(cat "$LKN_LOG_DIR/gateway.pid")); stop it first: bash scripts/stop_gateway.sh"
  exit 0
fi

host="${LKN_HOST:-127.0.0.1}"; port="${LKN_PORT:-8000}"
probe_host="$(lkn_probe_host "$host")"
if curl -fsS -o /dev/null --max-time 2 "http://$probe_host:$port/health" 2>/dev/null; then
  lkn_die "something already answers on $host:$port; set LKN_PORT or stop it"
fi

lkn_spawn "$LKN_LOG_DIR/gateway.pid" "$PY" -m lkn serve >>"$LKN_LOG_DIR/gateway.log" 2>&1 < /dev/null \
  || lkn_die "the gateway process did not start; see $LKN_LOG_DIR/gateway.log"
if ! lkn_wait_http "http://$probe_host:$port/health" "${LKN_START_TIMEOUT:-30}" "the gateway"; then
  tail -n 30 "$LKN_LOG_DIR/gateway.log" >&2 || true
  lkn_stop_group gateway "lkn serve" 5
  exit 1
fi
lkn_say "gateway up: http://$probe_host:$port/v1 (logs: $LKN_LOG_DIR/gateway.log)"
if ! curl -fsS -o /dev/null --max-time 2 "http://$probe_host:$port/ready"; then
  lkn_say "note: no engine is ready yet at ${LKN_ENGINE_URLS:-http://127.0.0.1:30000} (GET /ready answers 503 until one is)"
fi
