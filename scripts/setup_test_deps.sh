#!/usr/bin/env bash
# Install everything the full test suite needs, each part skipped when already there
# (environments are cached under ~/.cache/lkn and keyed by their pinned requirements):
#   SGLang on the CPU (+ the SmolLM2 model), llama.cpp (xllamacpp), SGLang's router, the Node.js gRPC client,
#   Chromium + playwright-core, Open WebUI.
# scripts/test.sh runs this before pytest (set LKN_INSTALL=0 to skip it).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

step() {
  local t0=$SECONDS
  lkn_say "setup: $*"
  "$@" > /dev/null
  lkn_say "setup: done in $((SECONDS - t0)) s: $*"
}

step bash scripts/setup_engine_env.sh sglang-cpu
step bash scripts/setup_engine_env.sh llamacpp
step bash scripts/setup_engine_env.sh router
step bash scripts/install_node_deps.sh
step bash scripts/setup_browser.sh
step bash scripts/setup_webui_env.sh
