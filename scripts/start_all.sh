#!/usr/bin/env bash
# Bring up the whole stack from the repository root, installing what is missing:
#   1. the engine   (scripts/start_engine.sh: SGLang on a GPU if there is one, else Qwen2.5-Coder-0.5B on llama.cpp)
#   2. the gateway  (scripts/start_gateway.sh: REST on LKN_PORT, gRPC on LKN_GRPC_PORT)
#   3. Open WebUI   (scripts/start_webui.sh; set LKN_WITH_WEBUI=0 to skip it)
#   4. the smoke test (tests/smoke_test.sh; LKN_SMOKE=0 to skip it)
# Then prints where to open the browser. Stop everything with scripts/stop_all.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
lkn_load_env

for tool in curl setsid; do
  command -v "$tool" >/dev/null || lkn_die "$tool is required but not installed"
done
lkn_require_python
# What start_engine.sh will run (its --check starts and installs nothing): the kind decides
# how the gateway talks to it, the served model name goes into the messages.
plan="$(bash scripts/start_engine.sh --check)" || lkn_die "scripts/start_engine.sh --check failed"
plan_field() { sed -n "s/^$1: //p" <<< "$plan" | head -n 1; }
engine_kind="$(plan_field kind)"
served="$(plan_field 'served model')"
case "$engine_kind/$(plan_field device)" in
  sglang/gpu) lkn_say "GPU path: SGLang will serve $served (first run installs SGLang's CUDA environment and downloads the model: several GB)" ;;
  sglang/cpu) lkn_say "no GPU used: SGLang will serve $served on the CPU (first run installs it: a few minutes)" ;;
  *) lkn_say "llama.cpp will serve $served on the CPU (first run installs it and the model)" ;;
esac

engine_url="$(bash scripts/start_engine.sh)"
# llama.cpp is a generic OpenAI-compatible engine to the gateway (no /ready, no /generate).
[ "$engine_kind" = sglang ] || engine_url="openai=$engine_url"
export LKN_ENGINE_URLS="${LKN_ENGINE_URLS:-$engine_url}"
bash scripts/start_gateway.sh

gw_host="$(lkn_probe_host "${LKN_HOST:-127.0.0.1}")"
gateway_url="http://$gw_host:${LKN_PORT:-8000}"
lkn_wait_http "$gateway_url/ready" 60 "the gateway's engine pool" \
  || lkn_die "the gateway does not see a ready engine; see logs/gateway.log and logs/engine.log"

webui_url=""
if [ "${LKN_WITH_WEBUI:-1}" != 0 ]; then
  webui_url="$(bash scripts/start_webui.sh | tail -n 1)"
fi

if [ "${LKN_SMOKE:-1}" != 0 ]; then
  LKN_GATEWAY_URL="$gateway_url" LKN_ENGINE_URL="${engine_url#openai=}" bash tests/smoke_test.sh
fi

cat >&2 <<MSG

  L-kn is up.
    engine   ${engine_url#openai=}          ($served; logs/$([ "$engine_kind" = sglang ] && echo engine || echo engine-llamacpp).log)
    gateway  $gateway_url/v1      (logs/gateway.log; gRPC on ${LKN_GRPC_HOST:-$gw_host}:${LKN_GRPC_PORT:-50051})
MSG
if [ -n "$webui_url" ]; then
  printf '    chat     %s   <- open this in your browser (logs/webui.log)\n\n' "$webui_url" >&2
else
  printf '\n' >&2
fi
lkn_say "stop everything with: bash scripts/stop_all.sh"
