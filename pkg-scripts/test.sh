#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, native tests, the wasm32 build.
set -euo pipefail
cd "$(dirname "$0")/.."
./pkg-scripts/setup-toolchain.sh
echo "== cargo fmt"; cargo fmt --all -- --check
echo "== cargo clippy"; cargo clippy --all-targets -- -D warnings
echo "== cargo clippy (wasm core features)"; cargo clippy --lib --no-default-features -- -D warnings
echo "== cargo test"; cargo test --release
echo "== wasm32 build"; ./pkg-scripts/build-wasm.sh
