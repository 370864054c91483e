#!/usr/bin/env bash
# Runs the browser tests: starts the built portal on a free port with a fresh data directory, then runs the
# Playwright specs in e2e/ against it with Node's test runner (Debian's Chromium, no browser download).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

PORTAL_BIN="${PORTAL_BIN:-$CARGO_TARGET_DIR/debug/portal}"
[[ -x "$PORTAL_BIN" ]] || cargo build -p server
# VMs for the console test: the vmm next to the portal binary and the probe guest image.
VMM_BIN="${PORTAL_VMM_BINARY:-$(dirname "$PORTAL_BIN")/vmm}"
[[ -x "$VMM_BIN" ]] || cargo build -p vmm
GUEST_DIR="${PORTAL_GUEST_DIR:-$REPO/guest/out}"
[[ -f "$GUEST_DIR/probe-guest" ]] || bash "$REPO/scripts/build-probe.sh"
data=$(mktemp -d /tmp/portal-e2e.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export ADMIN_USER=admin ADMIN_PASSWORD="e2e-admin-$(date +%s)"
export BASE_URL="http://127.0.0.1:$port" E2E_OUTPUT="$REPO/e2e/output"
mkdir -p "$E2E_OUTPUT"

# Tenant networks on, in namespaces of this run only: the portal's own (it makes it) and an "outside" one
# for the uplink's outer end, so nothing is added to the machine's network. Both go at the end.
plane_ns="cpe2e-$$" outside_ns="cpe2e-out-$$"
ip netns add "$outside_ns"
export E2E_NETWORKS=1  # e2e/networks.test.mjs runs (it skips where the portal has no tenant networks)
PORTAL_LISTEN="127.0.0.1:$port" PORTAL_DATA_DIR="$data" PORTAL_SITE_ROOT="$SITE_ROOT" \
  PORTAL_GUEST_DIR="$GUEST_DIR" PORTAL_VMM_BINARY="$VMM_BIN" PORTAL_STOP_TIMEOUT_SECS=15 \
  PORTAL_LOGIN__PER_ACCOUNT_PER_ADDRESS_PER_MINUTE=1000 PORTAL_LOGIN__PER_ADDRESS_PER_MINUTE=1000 \
  PORTAL_ADMIN_PASSWORD="$ADMIN_PASSWORD" RUST_LOG="${RUST_LOG:-info}" PORTAL_METRICS__INTERVAL_SECS=2 \
  PORTAL_NETWORK__NAMESPACE="$plane_ns" PORTAL_NETWORK__POOL=10.203.0.0/16 \
  PORTAL_NETWORK__UPLINK=100.127.203.0/24 PORTAL_NETWORK__FLOATING_POOL=100.127.203.128/25 \
  PORTAL_NETWORK__UPLINK_OUTER_NETNS="$outside_ns" PORTAL_NETWORK__UPLINK_OUTER="cpe2e$(($$ % 100000))" \
  "$PORTAL_BIN" >"$E2E_OUTPUT/portal.log" 2>&1 &
server=$!
# VMs outlive the portal by design: kill this run's VMMs (matched by their config under the data dir),
# wait until they are gone, then remove the data directory. The script's exit status stays the tests'.
cleanup() {
  local rc=$?
  set +e  # clean-up steps may fail (nothing to kill) without changing the result
  kill "$server" 2>/dev/null
  wait "$server" 2>/dev/null
  pkill -KILL -f "vmm --config $data" 2>/dev/null
  for _ in $(seq 1 50); do
    pgrep -f "vmm --config $data" >/dev/null || break
    sleep 0.1
  done
  for pidfile in "$data"/net/dhcp/*/pid; do
    [[ -f "$pidfile" ]] && kill "$(cat "$pidfile")" 2>/dev/null
  done
  ip netns delete "$plane_ns" 2>/dev/null
  ip netns delete "$outside_ns" 2>/dev/null
  rm -rf "$data" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
up=""
for _ in $(seq 1 150); do
  curl -fsS "$BASE_URL/healthz" >/dev/null 2>&1 && { up=1; break; }
  kill -0 $server 2>/dev/null || break
  sleep 0.2
done
[[ -n "$up" ]] || { echo "portal did not come up on $BASE_URL"; cat "$E2E_OUTPUT/portal.log"; exit 1; }

step "e2e against $BASE_URL"
cd "$REPO/e2e"
# E2E_SPECS: some of the specs (default: all).
# shellcheck disable=SC2086
node --test --test-concurrency=1 ${E2E_SPECS:-./*.test.mjs}
