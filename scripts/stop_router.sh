#!/usr/bin/env bash
# Stop the router started by scripts/start_router.sh (TERM to its process group, KILL after
# ROUTER_STOP_TIMEOUT seconds, default 20). Exit status 0 also when nothing was running.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib/common.sh
lkn_load_env
lkn_stop_group router router "${ROUTER_STOP_TIMEOUT:-20}"
