#!/usr/bin/env bash
# Start Open WebUI (a chat UI) in the background, pointed at the L-kn gateway, and wait
# until it answers. Builds its environment on first run (scripts/setup_webui_env.sh).
#
#   bash scripts/start_webui.sh          # then open the printed URL in a browser
#
# On success it prints Open WebUI's URL (http://127.0.0.1:3000) as the last line on stdout;
# everything else goes to stderr. Stop it with scripts/stop_webui.sh.
#
# Configuration: config/.env (see config/.env.example), variables already set in the
# environment win.
#   WEBUI_PORT            port (3000)
#   WEBUI_HOST            bind address (127.0.0.1)
#   WEBUI_DATA_DIR        Open WebUI's data (users, chats, settings). Unset (default): a new
#                         empty directory on every start, removed by stop_webui.sh, so the
#                         settings below always apply. Set it to keep chats between starts;
#                         Open WebUI then reads most settings from its database, not from
#                         the environment, after the first start.
#   WEBUI_GATEWAY_URL     the OpenAI base URL Open WebUI calls (default: the gateway,
#                         http://$LKN_HOST:$LKN_PORT/v1, with the loopback for 0.0.0.0 / ::)
#   LKN_API_KEY           sent as the Bearer key when the gateway requires one (else a
#                         placeholder, which the gateway ignores)
#   WEBUI_USAGE           true (default): models show token usage (Open WebUI asks for
#                         stream_options.include_usage); false to leave it off
#   ENABLE_TITLE_GENERATION / ENABLE_TAGS_GENERATION / ENABLE_FOLLOW_UP_GENERATION
#                         True by default: the gateway answers these "### Task:" requests
#                         in the cheap mode without probing. Set False to send one request
#                         per chat message.
#   WEBUI_TASK_MAX_TOKENS max_tokens of those housekeeping requests (128; Open WebUI's own
#                         default is 1000, which a small model can ramble through for
#                         minutes on a CPU). 0 keeps Open WebUI's default. Ignored when
#                         TASK_MODEL_PARAMS is set.
#   WEBUI_START_TIMEOUT   seconds to wait for GET /health (240)
#   Any other Open WebUI variable set in the environment is passed through unchanged and
#   wins over the defaults here.
#
# Files (LKN_LOG_DIR, default logs/): webui.pid (the process group leader), webui.log
# (the previous one kept as webui.log.1), webui.datadir (the data dir of this run).
# Starting is idempotent: if Open WebUI is already running and healthy, its URL is printed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib/common.sh
lkn_load_env

command -v curl >/dev/null || lkn_die "curl is required (apt-get install curl)"

name=webui
pattern="open-webui serve"
host="${WEBUI_HOST:-127.0.0.1}"
port="${WEBUI_PORT:-3000}"
probe_host="$(lkn_probe_host "$host")"
url="http://$probe_host:$port"
pidfile="$LKN_LOG_DIR/$name.pid"
logfile="$LKN_LOG_DIR/$name.log"
datafile="$LKN_LOG_DIR/$name.datadir"

# ---- already running? ------------------------------------------------------------------
if lkn_pid_matches "$name" "$pattern"; then
  lkn_exit_if_ready "$name" "$url/health" "$url" "Open WebUI"
  lkn_die "Open WebUI is already running (pid $(cat "$pidfile")) but $url/health does not answer yet; see $logfile or stop it: bash scripts/stop_webui.sh"
fi
if lkn_port_in_use "$probe_host" "$port"; then
  lkn_die "port $port on $probe_host is already in use by a process this script did not start; set WEBUI_PORT"
fi

venv="$(bash scripts/setup_webui_env.sh)" || lkn_die "could not set up the Open WebUI environment"

# ---- where it keeps its data ------------------------------------------------------------
if [ -n "${WEBUI_DATA_DIR:-}" ]; then
  data_dir="$WEBUI_DATA_DIR"
  mkdir -p "$data_dir"
  rm -f "$datafile"   # not ours to remove on stop
else
  data_dir="$(mktemp -d "${TMPDIR:-/tmp}/lkn-webui.XXXXXX")"
  printf '%s\n' "$data_dir" > "$datafile"
fi

# ---- environment: defaults for every variable the caller did not set -------------------
gw_host="$(lkn_probe_host "${LKN_HOST:-127.0.0.1}")"
gateway="${WEBUI_GATEWAY_URL:-http://$gw_host:${LKN_PORT:-8000}/v1}"
key="${LKN_API_KEY:-lkn-no-key}"
if [ "${WEBUI_USAGE:-true}" = true ]; then
  metadata='{"capabilities":{"usage":true,"builtin_tools":false}}'
else
  metadata='{"capabilities":{"builtin_tools":false}}'
fi

webui_default() {  # webui_default NAME VALUE: export NAME=VALUE unless NAME is set
  if [ -z "${!1+x}" ]; then export "$1=$2"; fi
}
export DATA_DIR="$data_dir"
webui_default WEBUI_AUTH False
webui_default WEBUI_SECRET_KEY "$(head -c 24 /dev/urandom | base64)"
webui_default ENABLE_OLLAMA_API False
webui_default ENABLE_OPENAI_API True
webui_default OPENAI_API_BASE_URL "$gateway"
webui_default OPENAI_API_KEY "$key"
# Embeddings through an OpenAI-style API: otherwise Open WebUI loads a sentence-transformers
# model from a model hub at start-up.
webui_default RAG_EMBEDDING_ENGINE openai
webui_default RAG_EMBEDDING_MODEL text-embedding-3-small
webui_default RAG_OPENAI_API_BASE_URL "$gateway"
webui_default RAG_OPENAI_API_KEY "$key"
webui_default DEFAULT_MODEL_METADATA "$metadata"
webui_default ENABLE_TITLE_GENERATION True
webui_default ENABLE_TAGS_GENERATION True
webui_default ENABLE_FOLLOW_UP_GENERATION True
task_max_tokens="${WEBUI_TASK_MAX_TOKENS:-128}"
[[ "$task_max_tokens" =~ ^[0-9]+$ ]] || lkn_die "WEBUI_TASK_MAX_TOKENS must be a number (got '$task_max_tokens')"
if [ "$task_max_tokens" != 0 ]; then
  webui_default TASK_MODEL_PARAMS "{\"max_tokens\":$task_max_tokens}"
fi
# No downloads and no phoning home.
webui_default OFFLINE_MODE True
webui_default HF_HUB_OFFLINE 1
webui_default TRANSFORMERS_OFFLINE 1
webui_default ENABLE_VERSION_UPDATE_CHECK False
webui_default ANONYMIZED_TELEMETRY False
webui_default SCARF_NO_ANALYTICS true
webui_default DO_NOT_TRACK true

# ---- launch -------------------------------------------------------------------------------
if [ -f "$logfile" ]; then mv -f "$logfile" "$logfile.1"; fi
{
  printf '# %s starting Open WebUI on %s (data: %s, backend: %s)\n' \
    "$(date '+%Y-%m-%dT%H:%M:%S%z')" "$url" "$data_dir" "$OPENAI_API_BASE_URL"
} > "$logfile"
lkn_say "starting Open WebUI on $url -> $OPENAI_API_BASE_URL (log: $logfile)"
t0=$(date +%s)
# It runs in its data dir, where it may write files.
(cd "$data_dir" && lkn_spawn "$pidfile" "$venv/bin/open-webui" serve --host "$host" --port "$port") \
  >> "$logfile" 2>&1 < /dev/null || lkn_die "Open WebUI did not start (no $pidfile); see $logfile"
pid="$(cat "$pidfile")"

if ! lkn_wait_started "$url/health" "${WEBUI_START_TIMEOUT:-240}" "$pid" "Open WebUI" "$logfile"; then
  bash scripts/stop_webui.sh || true
  lkn_die "Open WebUI failed to start"
fi
lkn_say "Open WebUI is ready at $url after $(( $(date +%s) - t0 ))s (pid $pid)"
printf '%s\n' "$url"
