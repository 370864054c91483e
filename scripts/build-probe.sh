#!/usr/bin/env bash
# Builds the probe guest (vmm/probe-guest, x86_64-unknown-none) and installs it as guest/out/probe-guest,
# where the portal registers it as a test image. Cheap when nothing changed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

dir="$REPO/vmm/probe-guest"
# Its own target dir: the probe is a separate workspace for another target.
env -u CARGO_TARGET_DIR -u RUSTFLAGS cargo build --quiet --release --target x86_64-unknown-none \
    --manifest-path "$dir/Cargo.toml" --target-dir "$dir/target"
mkdir -p "$REPO/guest/out"
install -m 0644 "$dir/target/x86_64-unknown-none/release/probe-guest" "$REPO/guest/out/probe-guest"
