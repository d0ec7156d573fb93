#!/usr/bin/env bash
# Build (or reuse) the virtualenv of Open WebUI 0.12.4 and print its path on stdout.
# All progress messages go to stderr, so this works:  venv="$(bash scripts/setup_webui_env.sh)"
#
#   bash scripts/setup_webui_env.sh
#
# Open WebUI is a client of the gateway (a chat UI for people, and the browser tests'
# front end); it is not part of the gateway and has its own environment.
# Pins: scripts/webui/requirements-webui.txt (~2.9 GB venv, ~2 min when the packages are
# close by, ~5 min from the registry). CPU torch 2.13.0 is installed FIRST: otherwise the
# resolver pulls a multi-GB CUDA build of torch.
#
# The venv lives in $LKN_CACHE/venvs/webui-<hash of the requirements file> (LKN_CACHE
# defaults to ~/.cache/lkn) and is built only when missing or half-built, so a second run
# is instant; nothing depends on a previous run having happened. Concurrent runs wait for
# each other (flock).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib/common.sh

case "${1:-}" in
  -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
esac

req=scripts/webui/requirements-webui.txt
[ -f "$req" ] || lkn_die "missing $req"
torch_pin="$(grep -E '^torch==' "$req")" || lkn_die "$req pins no torch"

_lkn_install_webui() {
  local py="$1" t0=$SECONDS
  lkn_say "installing $torch_pin first (the CPU build), then $req"
  "$py" -m pip install -q --disable-pip-version-check "$torch_pin" || return 1
  "$py" -m pip install -q --disable-pip-version-check -r "$req" || return 1
  lkn_say "installed in $((SECONDS - t0))s; checking the installation"
  "$py" - <<'PY' || return 1
import importlib.metadata as md
import torch
assert torch.version.cuda is None, f"a CUDA build of torch was installed ({torch.__version__})"
print("open-webui", md.version("open-webui"), "torch", torch.__version__)
PY
  [ -x "$(dirname "$py")/open-webui" ] || { lkn_say "no open-webui command in $(dirname "$py")"; return 1; }
}

mkdir -p "$LKN_CACHE/venvs"
exec 9>"$LKN_CACHE/venvs/.webui.lock"
flock 9
t0=$SECONDS
venv="$(lkn_venv webui _lkn_install_webui "$req")"
if [ $((SECONDS - t0)) -gt 2 ]; then lkn_say "Open WebUI environment ready in $((SECONDS - t0))s: $venv"; fi
flock -u 9

printf '%s\n' "$venv"
