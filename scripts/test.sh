#!/usr/bin/env bash
# Run the whole test suite from a clean checkout: builds (or reuses) the environments the
# tests need, checks generated code and types, then runs pytest.
#   bash scripts/test.sh                 # everything (what CI runs)
#   bash scripts/test.sh -m fast         # the quick inner loop (extra args go to pytest)
#   LKN_INSTALL=0 bash scripts/test.sh -m fast   # ... without checking the live-test installs
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/common.sh

lkn_require_python
PY="$(lkn_gateway_python)"
export PYTHONPATH="$LKN_ROOT${PYTHONPATH:+:$PYTHONPATH}"
lkn_say "python: $PY"

if [ -x scripts/gen_protos.sh ] || [ -f scripts/gen_protos.sh ]; then
  lkn_say "checking that the generated protobuf code is up to date"
  LKN_PYTHON="$PY" bash scripts/gen_protos.sh --check
fi

if [ "${LKN_INSTALL:-1}" != 0 ]; then
  bash scripts/setup_test_deps.sh
fi

lkn_say "type check: mypy --strict lkn scripts/lib"
"$PY" -m mypy --strict lkn scripts/lib

lkn_say "running pytest $*"
set +e
"$PY" -m pytest -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  lkn_say "pytest collected no tests: failing"
  exit 1
fi
exit "$status"
