#!/usr/bin/env bash
# One command on a fresh Debian machine: install what is missing, build guest images, the web bundle and the
# server, then run the portal on http://127.0.0.1:3000 and print the admin login.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

"$REPO/scripts/prepare.sh"
"$REPO/scripts/build-web.sh"
# Same profile as the tests by default (dependencies are optimised even there, see Cargo.toml), so one
# build serves both commands; PROFILE=release builds a fully optimised portal and VMM.
PROFILE="${PROFILE:-dev}"
OUT_DIR=$([[ "$PROFILE" == dev ]] && echo debug || echo "$PROFILE")
step "build the portal ($PROFILE profile)"
cargo build --profile "$PROFILE" -p server -p vmm

export PORTAL_DATA_DIR="${PORTAL_DATA_DIR:-$REPO/data}"
export PORTAL_SITE_ROOT="$SITE_ROOT"
if [[ -f "$PORTAL_DATA_DIR/portal.db" ]]; then
  echo "==> Existing data in $PORTAL_DATA_DIR: the admin password is the one printed at first start."
  echo "==> Forgot it? $CARGO_TARGET_DIR/$OUT_DIR/portal reset-password admin"
fi
step "starting the portal on http://127.0.0.1:3000 (Ctrl-C stops it)"
exec "$CARGO_TARGET_DIR/$OUT_DIR/portal"
