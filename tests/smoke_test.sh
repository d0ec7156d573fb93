#!/usr/bin/env bash
# Smoke test of a running stack: engine reachability, OpenAI compatibility through the
# gateway, streaming, decisions and error handling. Uses only curl and python3.
#   bash tests/smoke_test.sh
# LKN_GATEWAY_URL / LKN_ENGINE_URL override the addresses from config/.env.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh
lkn_load_env

gw_host="$(lkn_probe_host "${LKN_HOST:-127.0.0.1}")"
GW="${LKN_GATEWAY_URL:-http://$gw_host:${LKN_PORT:-8000}}"
ENGINE="${LKN_ENGINE_URL:-http://$(lkn_probe_host "${ENGINE_HOST:-127.0.0.1}"):${ENGINE_PORT:-30000}}"
AUTH=()
[ -n "${LKN_API_KEY:-}" ] && AUTH=(-H "Authorization: Bearer $LKN_API_KEY")
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
passed=0; failed=0

ok()   { printf '  ✓ %s\n' "$1"; passed=$((passed + 1)); }
fail() { printf '  ✗ %s\n' "$1"; failed=$((failed + 1)); }
# json FILE EXPR : evaluate a Python expression over the parsed JSON in FILE (as d).
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }
post() { curl -s "${AUTH[@]}" -H 'Content-Type: application/json' "$@"; }

echo "Smoke test: gateway $GW, engine $ENGINE"

echo "Engine"
# SGLang answers /ready; llama.cpp's server has /health only.
engine_ready=""
for path in /ready /health; do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$ENGINE$path")" = 200 ]; then
    engine_ready="$path"; break
  fi
done
[ -n "$engine_ready" ] && ok "engine is ready ($ENGINE$engine_ready)" || fail "engine is not ready at $ENGINE/ready or /health"

echo "Gateway"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$GW/health")" = 200 ] && ok "liveness /health" || fail "liveness /health"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$GW/ready")" = 200 ] && ok "readiness /ready" || fail "readiness /ready"
curl -s "${AUTH[@]}" "$GW/v1/models" > "$TMP/models"
MODEL="$(json "$TMP/models" 'd["data"][0]["id"]')"
[ -n "$MODEL" ] && ok "GET /v1/models lists $MODEL" || fail "GET /v1/models lists no model"

echo "OpenAI compatibility"
code="$(post -o "$TMP/chat" -D "$TMP/chat.h" -w '%{http_code}' "$GW/v1/chat/completions" \
  -d "{\"model\":\"$MODEL\",\"messages\":[{\"role\":\"user\",\"content\":\"What is the capital of France?\"}],\"max_tokens\":16}")"
text="$(json "$TMP/chat" 'd["choices"][0]["message"]["content"]')"
[ "$code" = 200 ] && [ -n "$text" ] && ok "chat completion: ${text:0:60}" || fail "chat completion (HTTP $code)"
[ "$(json "$TMP/chat" 'd["usage"]["completion_tokens"] > 0')" = True ] && ok "usage reported" || fail "usage reported"
grep -qi '^x-lkn-mode: ' "$TMP/chat.h" && ok "decision header $(grep -i '^x-lkn-mode' "$TMP/chat.h" | tr -d '\r')" || fail "decision header X-LKN-Mode"
code="$(post -o "$TMP/cmpl" -w '%{http_code}' "$GW/v1/completions" -d "{\"model\":\"$MODEL\",\"prompt\":\"The sky is\",\"max_tokens\":8}")"
[ "$code" = 200 ] && [ -n "$(json "$TMP/cmpl" 'd["choices"][0]["text"]')" ] && ok "text completion" || fail "text completion (HTTP $code)"

echo "Streaming"
post -N "$GW/v1/chat/completions" -d "{\"model\":\"$MODEL\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":[{\"role\":\"user\",\"content\":\"Count from one to five.\"}],\"max_tokens\":24}" > "$TMP/stream"
chunks="$(grep -c '^data: {' "$TMP/stream")"
[ "$chunks" -ge 2 ] && ok "$chunks SSE chunks" || fail "SSE chunks ($chunks)"
[ "$(tail -n 2 "$TMP/stream" | head -n 1)" = "data: [DONE]" ] && ok "stream ends with [DONE]" || fail "stream ends with [DONE]"
grep -q '"usage"' "$TMP/stream" && ok "usage chunk when asked" || fail "usage chunk when asked"
! grep -q '"error"' "$TMP/stream" && ok "no error event" || fail "error event in a healthy stream"

echo "Decisions"
post -o "$TMP/probe" "$GW/v1/lkn/probe" -d '{"messages":[{"role":"user","content":"Solve step by step: 3x + 7 = 22"}]}'
[ "$(json "$TMP/probe" 'd["mode"]')" = ANALITICO ] && ok "maths question -> ANALITICO ($(json "$TMP/probe" 'd["signals"]'))" || fail "maths question -> ANALITICO"
post -o "$TMP/probe2" "$GW/v1/lkn/probe" -d '{"messages":[{"role":"user","content":"Hi! How are you?"}]}'
[ "$(json "$TMP/probe2" 'd["mode"]')" = FLUIDO ] && ok "greeting -> FLUIDO" || fail "greeting -> FLUIDO"

echo "Error handling"
code="$(post -o "$TMP/e1" -w '%{http_code}' "$GW/v1/chat/completions" -d '{not json')"
[ "$code" = 400 ] && [ -n "$(json "$TMP/e1" 'd["error"]["message"]')" ] && ok "bad JSON -> 400 with an OpenAI error" || fail "bad JSON -> 400 (got $code)"
code="$(post -o "$TMP/e2" -w '%{http_code}' "$GW/v1/chat/completions" -d '{"model":"x"}')"
[ "$code" = 400 ] && [ "$(json "$TMP/e2" 'd["error"]["param"]')" = messages ] && ok "missing messages -> 400 (param messages)" || fail "missing messages -> 400 (got $code)"
code="$(curl -s -o /dev/null -w '%{http_code}' "$GW/v1/nothing")"
[ "$code" = 404 ] && ok "unknown route -> 404" || fail "unknown route -> 404 (got $code)"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
