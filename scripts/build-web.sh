#!/usr/bin/env bash
# Builds the browser side into $SITE_ROOT: the hydrate wasm bundle (wasm-bindgen, no wasm-opt: Debian's
# binaryen 108 breaks hydration and --remove-name-section gives about the same size) and the CSS.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

step "build the wasm bundle"
cargo build -p frontend --target wasm32-unknown-unknown --profile wasm-release
mkdir -p "$SITE_ROOT/pkg" "$SITE_ROOT/style"
wasm-bindgen --target web --no-typescript --remove-name-section --out-name portal \
  --out-dir "$SITE_ROOT/pkg" "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/frontend.wasm"
cp "$REPO"/style/*.css "$SITE_ROOT/style/"
# The console page's browser side: our module, noVNC's ES modules and xterm.js from web/node_modules (npm ci
# in scripts/install-deps.sh), served from the portal itself (no CDN).
NM="$REPO/web/node_modules"
[[ -d "$NM/@novnc/novnc/core" ]] || (cd "$REPO/web" && npm ci --no-audit --no-fund)
rm -rf "$SITE_ROOT/vendor/novnc" "$SITE_ROOT/vendor/xterm"
mkdir -p "$SITE_ROOT/js" "$SITE_ROOT/vendor/novnc" "$SITE_ROOT/vendor/xterm"
cp "$REPO/web/console.js" "$SITE_ROOT/js/"
cp -r "$NM/@novnc/novnc/core" "$NM/@novnc/novnc/vendor" "$NM/@novnc/novnc/LICENSE.txt" "$SITE_ROOT/vendor/novnc/"
cp "$NM/@xterm/xterm/lib/xterm.mjs" "$NM/@xterm/xterm/css/xterm.css" "$NM/@xterm/xterm/LICENSE" \
  "$NM/@xterm/addon-fit/lib/addon-fit.mjs" "$SITE_ROOT/vendor/xterm/"
ls -l "$SITE_ROOT/pkg"
