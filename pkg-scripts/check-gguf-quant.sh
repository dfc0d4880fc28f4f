#!/usr/bin/env bash
# The GGUF quantizers and mixes against llama.cpp's library and Python side (the venv of
# pkg-scripts/setup-python.sh; no torch): random rows (all-zero, tiny, huge, outliers...)
# quantized by ggml_quantize_chunk and by us; every mix of two tiny models dequantized by
# gguf-py and by us; and every mix file loaded by llama.cpp, which must generate.
# LLM_EXPORT_SEED picks the random rows (default: a new seed each run, printed).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${LLM_EXPORT_CACHE:-$HOME/.cache/llm-export}"
# shellcheck source=/dev/null
source "$cache/python-env.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
lib=$("$LLM_EXPORT_PYTHON" -c 'import llama_cpp, pathlib; print(pathlib.Path(llama_cpp.__file__).parent / "lib")')
seed="${LLM_EXPORT_SEED:-$RANDOM}"

echo "== ggml quantizers vs llama.cpp's on random rows (seed $seed)"
"$LLM_EXPORT_PYTHON" tests/gen/ggml_vectors_from_lib.py "$lib" "$tmp/vectors.bin" --seed "$seed" --rows 3000
LLM_EXPORT_GGML_VECTORS="$tmp/vectors.bin" cargo test --release -q --test ggml_reference extra_vectors -- --nocapture

echo "== GGUF mixes: gguf-py's dequantization, llama.cpp loads and generates"
LLM_EXPORT_GGUF_QUANT_OUT="$tmp/gguf" cargo test --release -q --test gguf_quant_reference files_for_python_checks
PYTHONPATH="$LLM_EXPORT_LLAMA_CPP_SRC/gguf-py" "$LLM_EXPORT_PYTHON" tests/gen/gguf_quant_check.py "$tmp/gguf" | tail -n 1
