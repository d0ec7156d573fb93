#!/usr/bin/env bash
# Stop the gateway started by scripts/start_gateway.sh (graceful, then forced).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
lkn_stop_group gateway "lkn serve" "${LKN_STOP_TIMEOUT:-20}"
