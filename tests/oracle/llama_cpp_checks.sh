#!/usr/bin/env bash
# The checks that need the real llama.cpp (llama-cpp-python, no torch), run by CI:
# every architecture fixture exported to GGUF by our CLI, loaded by llama.cpp, and its logits
# compared with the transformers logits the fixture generator recorded.
# usage: tests/oracle/llama_cpp_checks.sh PYTHON LLM_EXPORT_BINARY
set -euo pipefail
cd "$(dirname "$0")/../.."
python="$1" bin="$2"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
passed=0 failed=0
for model in tests/fixtures/gguf/models/*/; do
  name=$(basename "$model")
  ref="tests/fixtures/gguf/refs/$name.logits.npy"
  [ -f "$ref" ] || continue
  "$bin" export "$model" --to gguf:f32 --to gguf:f16 --to gguf:bf16 --to gguf:q8_0 --out "$out/$name" -q
  for gguf in "$out/$name"/*.gguf; do
    # Tolerance relative to the reference logits' RMS: llama.cpp computes bf16 models with bf16
    # activations, and Q8_0 rounding moves tiny random models' logits by several percent.
    case "$gguf" in
      *-BF16.gguf) rel=0.05 ;;
      *-Q8_0.gguf) rel=0.15 ;;
      *) rel=0.01 ;;
    esac
    if "$python" tests/oracle/gguf_llama_cpp.py "$gguf" "$ref" --max-rel "$rel"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
    fi
  done
done
echo "llama.cpp: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
