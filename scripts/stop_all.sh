#!/usr/bin/env bash
# Stop Open WebUI, the gateway and the engines (each stop is safe if it is not running).
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
[ -f scripts/stop_webui.sh ] && { bash scripts/stop_webui.sh || status=1; }
bash scripts/stop_gateway.sh || status=1
bash scripts/stop_engine.sh all || status=1
exit "$status"
