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
ls -l "$SITE_ROOT/pkg"
