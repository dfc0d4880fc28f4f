#!/usr/bin/env bash
# Runs the main job on the shipped example: merge the tiny LoRA into the tiny Llama and write
# every output under out/example/: the adapter, merged 16-bit and NF4 checkpoints, GGUFs
# (Q4_K_M and Q8_0), the adapter as a GGUF LoRA, and an Ollama Modelfile.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
./target/release/llm-export export examples/tiny-llama --adapter examples/tiny-lora \
  --to lora --to merged_16bit --to merged_4bit --to gguf:q4_k_m --to gguf:q8_0 --to lora-gguf \
  --out out/example --overwrite
./target/release/llm-export modelfile out/example/*-Q4_K_M.gguf --overwrite
./target/release/llm-export inspect out/example/*-Q4_K_M.gguf
