#!/usr/bin/env bash
# Check every component and print one line each; exit status 1 if any is down.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
lkn_load_env

engine="${LKN_ENGINE_URL:-http://$(lkn_probe_host "${ENGINE_HOST:-127.0.0.1}"):${ENGINE_PORT:-30000}}"
gw_host="$(lkn_probe_host "${LKN_HOST:-127.0.0.1}")"
gateway="${LKN_GATEWAY_URL:-http://$gw_host:${LKN_PORT:-8000}}"
webui="${LKN_WEBUI_URL:-http://$(lkn_probe_host "${WEBUI_HOST:-127.0.0.1}"):${WEBUI_PORT:-3000}}"
failed=0

check() {  # check NAME URL [REQUIRED]
  local name="$1" url="$2" required="${3:-1}" code
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url")"
  if [ "$code" = 200 ]; then
    printf 'ok    %-8s %s\n' "$name" "$url"
  else
    printf 'DOWN  %-8s %s (HTTP %s)\n' "$name" "$url" "${code:-none}"
    [ "$required" = 1 ] && failed=1
  fi
}

pid_state() {
  if lkn_pid_alive "$1" 2>/dev/null; then echo "pid $(cat "$LKN_LOG_DIR/$1.pid")"; else echo "no pid file"; fi
}

check engine "$engine/ready"
check gateway "$gateway/health"
check pool "$gateway/ready"
check webui "$webui/health" 0
printf 'pids: engine %s, gateway %s, webui %s\n' "$(pid_state engine)" "$(pid_state gateway)" "$(pid_state webui)"
if body="$(curl -s --max-time 5 "$gateway/ready")"; then
  printf 'pool: %s\n' "$body"
fi
exit "$failed"
