#!/usr/bin/env bash
# Stop the engine started by scripts/start_engine.sh.
#
#   bash scripts/stop_engine.sh [sglang|llamacpp|all]
#
# Default kind: $ENGINE_KIND (from the environment or config/.env), else llamacpp for an
# ENGINE_MODEL of scripts/engine/gguf_models.py (qwen2.5-coder-0.5b ...), else all of them
#   sglang   -> logs/engine.pid           llamacpp -> logs/engine-llamacpp.pid
# Sends TERM to the engine's whole process group (it was started with setsid), waits
# until every process of the group is gone, sends KILL after ENGINE_STOP_TIMEOUT
# seconds (default 30), and removes the PID file. A stale PID file (process gone, or the
# PID now belongs to an unrelated program) is removed without signalling anything.
# Exit status 0 also when nothing was running.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib/common.sh
lkn_load_env

if [ -z "${1:-}${ENGINE_KIND:-}" ] && [ -n "${ENGINE_MODEL:-}" ] \
    && grep -qxF -- "$ENGINE_MODEL" <<< "$("$LKN_PYTHON" scripts/engine/gguf_models.py keys)"; then
  ENGINE_KIND=llamacpp   # as start_engine.sh: the GGUF models are served by llama.cpp
fi
kind="${1:-${ENGINE_KIND:-all}}"   # nothing named: whichever of them runs
grace="${ENGINE_STOP_TIMEOUT:-30}"

case "$kind" in
  sglang)   lkn_stop_group engine sglang.launch_server "$grace" ;;
  llamacpp) lkn_stop_group engine-llamacpp llamacpp_server.py "$grace" ;;
  all)
    lkn_stop_group engine sglang.launch_server "$grace"
    lkn_stop_group engine-llamacpp llamacpp_server.py "$grace"
    ;;
  *) lkn_die "unknown engine kind '$kind' (expected sglang, llamacpp or all)" ;;
esac
