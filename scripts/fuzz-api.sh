#!/usr/bin/env bash
# Schema-driven fuzzing of the REST API (schemathesis, from PyPI): starts the built portal on a free port with a
# fresh data directory, mints an admin API token, and runs every check of schemathesis (server errors, status
# codes, content types, response schemas, schema-valid data accepted, schema-violating data refused, ...)
# against /api/v1/openapi.json, bounded by FUZZ_MAX_TIME seconds (default 240). Exit status: schemathesis's
# (non-zero on any failure). Reports go to e2e/output/fuzz/; FUZZ_ARGS adds schemathesis options.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO"

VENV="$HOME/.cache/cloud-portal/schemathesis-venv"
[[ -x "$VENV/bin/st" ]] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q 'schemathesis==4.32.5'; }

PORTAL_BIN="${PORTAL_BIN:-$CARGO_TARGET_DIR/debug/portal}"
[[ -x "$PORTAL_BIN" ]] || cargo build -p server
data=$(mktemp -d /tmp/portal-fuzz.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out="$REPO/e2e/output/fuzz"
mkdir -p "$out"
base="http://127.0.0.1:$port"
password="fuzz-admin-$(date +%s)"
# No guest images: the fuzzer cannot launch a VM, only be refused.
PORTAL_LISTEN="127.0.0.1:$port" PORTAL_DATA_DIR="$data" PORTAL_GUEST_DIR="$data/no-images" \
  PORTAL_ADMIN_PASSWORD="$password" RUST_LOG="${RUST_LOG:-info}" "$PORTAL_BIN" >"$out/portal.log" 2>&1 &
server=$!
cleanup() {
  local rc=$?
  kill "$server" 2>/dev/null
  wait "$server" 2>/dev/null
  rm -rf "$data"
  exit "$rc"
}
trap cleanup EXIT
for _ in $(seq 1 150); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$out/portal.log"; exit 1; }
  sleep 0.2
done

jar="$data/cookies"
curl -fsS -c "$jar" -H "Origin: $base" --data-urlencode username=admin --data-urlencode "password=$password" \
  "$base/api/fn/login" >/dev/null
token=$(curl -fsS -b "$jar" -H "Origin: $base" -d name=fuzz -d expires_in_days= "$base/api/fn/create_token" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')

step "schemathesis against $base/api/v1 (at most ${FUZZ_MAX_TIME:-240} s)"
# The event stream never ends (it is tested in server/tests/api/revocation.rs); operations that would take
# the fuzzer's own access away (its token, its password) are left out so the rest is fuzzed signed in.
# One worker: hypothesis describes strategies with ast.parse, which is not thread-safe on this CPython.
cd "$out"
"$VENV/bin/st" --config-file "$REPO/scripts/schemathesis.toml" run "$base/api/v1/openapi.json" --url "$base/api/v1" \
  -H "Authorization: Bearer $token" \
  --exclude-path /events --exclude-path /tokens/{id} --exclude-path /users/{id}/password \
  --exclude-path /users/{id}/tokens/{token_id} \
  --generation-database "$out/examples" --max-time "${FUZZ_MAX_TIME:-240}" --max-examples "${FUZZ_MAX_EXAMPLES:-60}" --workers 1 --seed 17 \
  --report junit --report-dir "$out" ${FUZZ_ARGS:-}
