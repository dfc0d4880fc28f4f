#!/usr/bin/env bash
# Runs the main job on the shipped example: merge the tiny LoRA into the tiny Llama and write
# the adapter, a merged 16-bit checkpoint and a merged NF4 checkpoint under out/example/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
./target/release/llm-export export examples/tiny-llama --adapter examples/tiny-lora \
  --to lora --to merged_16bit --to merged_4bit --out out/example --overwrite
./target/release/llm-export inspect out/example/merged_4bit
