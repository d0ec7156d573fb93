#!/usr/bin/env bash
# Install the Node.js test client's dependencies (tests/node/) exactly as locked.
#
#   scripts/install_node_deps.sh
#
# Runs `npm ci` only when node_modules/ does not match package-lock.json already (a stamp in
# node_modules/ records the lock file's hash), so calling it again is cheap.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib/common.sh
DIR="$LKN_ROOT/tests/node"
STAMP="$DIR/node_modules/.lkn-lock-sha256"

# Node.js and npm themselves come from the distribution when missing (apt-get).
lkn_require_node

want="$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
echo "install_node_deps: npm ci in $DIR" >&2
(cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
printf '%s\n' "$want" > "$STAMP"
