#!/usr/bin/env bash
# Stop Open WebUI started by scripts/start_webui.sh: TERM to its process group, KILL after
# WEBUI_STOP_TIMEOUT seconds (20), then remove its PID file and the data directory that
# start_webui.sh made for this run (never a WEBUI_DATA_DIR you chose).
# Exit status 0 also when it was not running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib/common.sh
lkn_load_env

lkn_stop_group webui "open-webui serve" "${WEBUI_STOP_TIMEOUT:-20}"

datafile="$LKN_LOG_DIR/webui.datadir"
if [ -f "$datafile" ]; then
  data_dir="$(cat "$datafile")"
  # Only a directory that start_webui.sh made with mktemp.
  case "$(basename "$data_dir")" in
    lkn-webui.??????) [ -d "$data_dir" ] && rm -rf -- "$data_dir" ;;
  esac
  rm -f "$datafile"
fi
