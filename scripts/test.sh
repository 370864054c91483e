#!/usr/bin/env bash
# Runs every test: formatting and clippy, unit and integration tests (real SQLite files, real KVM guests when
# /dev/kvm exists) and the browser e2e. Installs missing prerequisites first, so it works on a fresh machine.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

"$REPO/scripts/prepare.sh"
[[ -e /dev/kvm ]] || echo "!!! /dev/kvm is absent: KVM tests will SKIP (they run wherever /dev/kvm exists) !!!"

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (every target, warnings are errors)"
cargo clippy --all-targets -- -D warnings
step "fuzz targets compile against the VMM (fmt, clippy; running them is scripts/fuzz.sh)"
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

step "cargo test (app, server, vmm, vmm-api)"
cargo test --no-fail-fast

"$REPO/scripts/build-web.sh"
"$REPO/scripts/e2e.sh"
