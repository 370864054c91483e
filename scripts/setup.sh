#!/usr/bin/env bash
# One command on a fresh Debian machine: install what is missing, build guest images, the web bundle and the
# server, then run the portal on http://127.0.0.1:3000 and print the admin login.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

"$REPO/scripts/install-deps.sh"
if [[ -x "$REPO/guest/build.sh" ]]; then
  step "guest images"
  "$REPO/guest/build.sh"
fi
"$REPO/scripts/build-web.sh"
step "build the portal (release)"
cargo build --release -p server -p vmm

export PORTAL_DATA_DIR="${PORTAL_DATA_DIR:-$REPO/data}"
export PORTAL_SITE_ROOT="$SITE_ROOT"
if [[ -f "$PORTAL_DATA_DIR/portal.db" ]]; then
  echo "==> Existing data in $PORTAL_DATA_DIR: the admin password is the one printed at first start."
  echo "==> Forgot it? $CARGO_TARGET_DIR/release/portal reset-password admin"
fi
step "starting the portal on http://127.0.0.1:3000 (Ctrl-C stops it)"
exec "$CARGO_TARGET_DIR/release/portal"
