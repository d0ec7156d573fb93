#!/usr/bin/env bash
# Install what the browser tests (tests/browser/) need, and nothing when it is there already:
#   1. Chromium from Debian (/usr/bin/chromium): `apt-get update` once, then
#      `apt-get install -y chromium`; skipped when /usr/bin/chromium exists.
#   2. playwright-core from npm, exactly as locked in tests/browser/package-lock.json
#      (`npm ci`); skipped when node_modules/ matches the lock file's hash.
# Playwright drives the system Chromium (executablePath /usr/bin/chromium): no browser is
# ever downloaded by a test tool (never `npx playwright install`).
#
#   bash scripts/setup_browser.sh
#
# Needs root (or sudo) for apt-get when Chromium, Node.js or npm is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib/common.sh

CHROMIUM="${LKN_CHROMIUM:-/usr/bin/chromium}"
BROWSER_DIR="$LKN_ROOT/tests/browser"

# ---- Chromium ------------------------------------------------------------------------------
if [ -x "$CHROMIUM" ]; then
  :
elif [ "$CHROMIUM" != /usr/bin/chromium ]; then
  lkn_die "LKN_CHROMIUM=$CHROMIUM is not an executable"
else
  lkn_apt_install Chromium chromium
  [ -x "$CHROMIUM" ] || lkn_die "chromium was installed but $CHROMIUM is missing"
fi
lkn_say "$("$CHROMIUM" --version 2>/dev/null || echo "chromium at $CHROMIUM")"

# ---- playwright-core -----------------------------------------------------------------------
lkn_require_node
[ -f "$BROWSER_DIR/package-lock.json" ] || lkn_die "missing $BROWSER_DIR/package-lock.json"
stamp="$BROWSER_DIR/node_modules/.lkn-lock-sha256"
want="$(sha256sum "$BROWSER_DIR/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  :
else
  lkn_say "npm ci in $BROWSER_DIR"
  # Never let an install script fetch a browser build of its own.
  (cd "$BROWSER_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
    npm ci --no-audit --no-fund --loglevel=error >&2) || lkn_die "npm ci failed in $BROWSER_DIR"
  printf '%s\n' "$want" > "$stamp"
fi
lkn_say "playwright-core $(cd "$BROWSER_DIR" && node -p 'require("playwright-core/package.json").version')"
