#!/usr/bin/env bash
# Builds the library core for wasm32-unknown-unknown (no CLI, no threads).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${LLM_EXPORT_CACHE:-$HOME/.cache/llm-export}"
[ -f "$cache/wasm-env.sh" ] || ./pkg-scripts/setup-toolchain.sh
# shellcheck disable=SC1091
. "$cache/wasm-env.sh"
args=(--release --lib --target wasm32-unknown-unknown --no-default-features --target-dir target/wasm)
if [ "$LLM_EXPORT_WASM_BUILD_STD" = 1 ]; then
  args+=(-Zbuild-std=std,panic_abort)
fi
cargo build "${args[@]}"
ls -l target/wasm/wasm32-unknown-unknown/release/*.wasm
