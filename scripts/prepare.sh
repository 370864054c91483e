#!/usr/bin/env bash
# What both README commands need first: missing machine prerequisites, then the guest images (cached).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

"$REPO/scripts/install-deps.sh"
step "guest images"
# The generated kernel-config facts are committed; only a deliberate `guest/build.sh` rewrites them.
GUEST_NO_DOCS=1 "$REPO/guest/build.sh"
step "probe guest (test image)"
"$REPO/scripts/build-probe.sh"
