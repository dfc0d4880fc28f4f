#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, native tests (with the real
# vocabularies from llama.cpp's sources), the wasm32 build, and the checks that load our
# outputs in the real llama.cpp.
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${LLM_EXPORT_CACHE:-$HOME/.cache/llm-export}"
./pkg-scripts/setup-toolchain.sh
./pkg-scripts/setup-python.sh
# shellcheck disable=SC1091
. "$cache/python-env.sh"
export LLM_EXPORT_LLAMA_CPP_SRC

echo "== cargo fmt"; cargo fmt --all -- --check
echo "== cargo clippy"; cargo clippy --all-targets -- -D warnings
echo "== cargo clippy (wasm core features)"; cargo clippy --lib --no-default-features -- -D warnings
echo "== cargo test"; cargo test --release
echo "== wasm32 build"; ./pkg-scripts/build-wasm.sh
echo "== llama.cpp checks"; tests/oracle/llama_cpp_checks.sh "$LLM_EXPORT_PYTHON" target/release/llm-export
echo "== llama.cpp LoRA checks"; "$LLM_EXPORT_PYTHON" tests/oracle/lora_gguf_llama_cpp.py --llm-export target/release/llm-export
echo "== llama.cpp quantizers and mixes"; LLM_EXPORT_PYTHON="$LLM_EXPORT_PYTHON" ./pkg-scripts/check-gguf-quant.sh
