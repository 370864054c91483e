#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build, run and test the portal. Idempotent and quick when
# everything is present. Only package registries are used (Debian, crates.io, npm): no binary downloads.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

APT_PACKAGES=(
  build-essential pkg-config git curl ca-certificates python3
  chromium                         # real browser for e2e (driven by playwright-core)
  linux-source-6.1 flex bison bc libelf-dev libssl-dev cpio   # minimal guest kernel
  busybox-static                   # guest initramfs
  dropbear-bin                     # the guest images' SSH server (copied into the initramfs)
  openssh-client iputils-ping      # network tests: ssh and ping into guests inside test namespaces
  linux-image-amd64                # Debian distro kernel image for hardware-KVM hosts
  iproute2 nftables dnsmasq-base   # tenant networks: namespaces, the firewall, DHCP
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
# Node.js and npm: the machine's own if present (its nodejs package bundles npm and conflicts with
# Debian's separate npm package), else Debian's.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  step "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

for target in wasm32-unknown-unknown x86_64-unknown-none; do
  rustup target list --installed | grep -qx "$target" || { step "rustup target add $target"; rustup target add "$target"; }
done
# The test command checks formatting and lints.
for component in rustfmt clippy; do
  rustup component list --installed | grep -q "^$component" || { step "rustup component add $component"; rustup component add "$component"; }
done

# wasm-bindgen-cli must match the wasm-bindgen version in Cargo.lock exactly.
want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' "$REPO/Cargo.lock")
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [[ "$have" != "$want" ]]; then
  step "cargo install wasm-bindgen-cli $want (a few minutes, once)"
  # Not --locked: one of its locked dependencies is missing from the registry index here.
  cargo install wasm-bindgen-cli --version "$want"
fi

if [[ ! -d "$REPO/e2e/node_modules" || "$REPO/e2e/package-lock.json" -nt "$REPO/e2e/node_modules" ]]; then
  step "npm ci (e2e)"
  (cd "$REPO/e2e" && npm ci --no-audit --no-fund && touch node_modules)
fi

if [[ ! -d "$REPO/web/node_modules" || "$REPO/web/package-lock.json" -nt "$REPO/web/node_modules" ]]; then
  step "npm ci (web: noVNC, xterm.js)"
  (cd "$REPO/web" && npm ci --no-audit --no-fund && touch node_modules)
fi

# websockify (the proxy OpenStack uses), for the console proxy benchmark's comparison only.
WEBSOCKIFY_VENV="$HOME/.cache/cloud-portal/websockify-venv"
if [[ ! -x "$WEBSOCKIFY_VENV/bin/websockify" ]]; then
  step "pip install websockify (benchmark comparison)"
  python3 -m venv "$WEBSOCKIFY_VENV"
  "$WEBSOCKIFY_VENV/bin/pip" install -q websockify
fi
