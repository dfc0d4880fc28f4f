#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine, and nothing twice:
# the wasm32 target (rustup, or Debian's rustc-web + build-std when rustup cannot download).
# Prints the environment to use for wasm builds into $LLM_EXPORT_CACHE/wasm-env.sh.
set -euo pipefail
cache="${LLM_EXPORT_CACHE:-$HOME/.cache/llm-export}"
mkdir -p "$cache"

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "setup: apt-get install ${missing[*]}" >&2
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
   || rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
  echo 'export LLM_EXPORT_WASM_BUILD_STD=0' > "$cache/wasm-env.sh"
else
  echo "setup: rustup cannot add wasm32; using Debian rustc-web with -Zbuild-std" >&2
  apt_install rustc-web rust-web-src lld
  cat > "$cache/wasm-env.sh" <<'ENV'
export LLM_EXPORT_WASM_BUILD_STD=1
export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld
ENV
fi
