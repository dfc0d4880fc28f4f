#!/usr/bin/env bash
# Benchmark (not a test): our HF -> GGUF quantization against llama.cpp's tool chain on the
# ~1.14 GB synthetic Llama of benches/make_synthetic.py, side by side in one run, at the same
# thread count:
#   ours      llm-export export MODEL --to gguf:<type> (one pass from the bf16 safetensors)
#   convert   convert_hf_to_gguf.py MODEL --outtype f16
#   quantize  llama-quantize F16.gguf <TYPE> (llama-cpp-python's llama_model_quantize)
#   chain     convert + quantize, what users of llama.cpp run for one type
# for Q4_K_M, Q8_0 and Q6_K, and ours with all three in one run. Prints each median wall time
# and peak RSS (of RUNS runs under /usr/bin/time -v) and the ratios, and the machine's load.
#   THREADS    threads for both tools (default 2)
#   RUNS       repetitions (default 3)
#   ORACLE_PY  a Python with torch + transformers for the converter (default: the oracle venv)
#   PY         a Python with llama_cpp (default: the CI venv of pkg-scripts/setup-python.sh)
#   LLAMA_CPP  llama.cpp source with convert_hf_to_gguf.py and gguf-py (default: the vendored one)
#   BENCH_DIR  work folder (default: a new temporary one); the synthetic model is made once there
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${LLM_EXPORT_CACHE:-$HOME/.cache/llm-export}"
THREADS="${THREADS:-2}"
RUNS="${RUNS:-3}"
ORACLE_PY="${ORACLE_PY:-$cache/venv-oracle/bin/python}"
PY="${PY:-$cache/venv-ci/bin/python}"
LLAMA_CPP="${LLAMA_CPP:-$cache/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp}"
work="${BENCH_DIR:-$(mktemp -d)}"
cargo build --release --quiet
[ -f "$work/base/config.json" ] || "$PY" benches/make_synthetic.py "$work"
# The synthetic checkpoint with a tokenizer (the GGUF fixtures' 330-piece SentencePiece model,
# padded to the 32000-token vocabulary by both tools).
model="$work/model"
mkdir -p "$model"
for f in "$work"/base/*; do ln -sf "$f" "$model/"; done
cp tests/fixtures/gguf/models/Mistral-7B-Instruct-v0.3/tokenizer.model \
   tests/fixtures/gguf/models/Mistral-7B-Instruct-v0.3/tokenizer_config.json "$model/"

measure() { # command...: prints "wall_s rss_kb" of one run
  local log; log=$(mktemp)
  /usr/bin/time -v "$@" >/dev/null 2>"$log" || { cat "$log" >&2; exit 1; }
  awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,t,":"); w=(n==3)?t[1]*3600+t[2]*60+t[3]:t[1]*60+t[2]} /Maximum resident/{r=$2} END{print w, r}' "$log"
  rm -f "$log"
}
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

declare -A runs_w runs_r
run() { # label, command...: one measured run, appended to the label's samples
  local w r
  read -r w r < <(measure "${@:2}")
  runs_w[$1]="${runs_w[$1]:-} $w"; runs_r[$1]="${runs_r[$1]:-} $r"
}

f16="$work/model-F16.gguf"
types=(Q4_K_M Q8_0 Q6_K)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs; threads $THREADS, runs $RUNS"
for i in $(seq "$RUNS"); do
  run convert env PYTHONPATH="$LLAMA_CPP/gguf-py" HF_HUB_OFFLINE=1 "$ORACLE_PY" \
    "$LLAMA_CPP/convert_hf_to_gguf.py" "$model" --outtype f16 --outfile "$f16"
  for t in "${types[@]}"; do
    run "quantize $t" "$PY" benches/llama_quantize.py "$f16" "$work/llama-$t.gguf" "$t" "$THREADS"
    rm -rf "$work/ours"
    run "ours $t" ./target/release/llm-export export "$model" --to "gguf:${t,,}" \
      --out "$work/ours" -j "$THREADS"
  done
  rm -rf "$work/ours"
  run "ours 3 types" ./target/release/llm-export export "$model" --to gguf:q4_k_m \
    --to gguf:q8_0 --to gguf:q6_k --out "$work/ours" -j "$THREADS"
done
echo "load after:  $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A wall rss
printf '%-16s %-22s %9s %10s\n' case "wall s (runs)" median "peak RSS"
for label in convert "quantize Q4_K_M" "quantize Q8_0" "quantize Q6_K" "ours Q4_K_M" \
    "ours Q8_0" "ours Q6_K" "ours 3 types"; do
  wall[$label]=$(tr ' ' '\n' <<<"${runs_w[$label]}" | grep . | median)
  rss[$label]=$(tr ' ' '\n' <<<"${runs_r[$label]}" | grep . | median)
  printf '%-16s %-22s %9s %7d MiB\n' "$label" "${runs_w[$label]}" "${wall[$label]}" \
    $((rss[$label] / 1024))
done
echo
for t in "${types[@]}"; do
  awk -v o="${wall[ours $t]}" -v q="${wall[quantize $t]}" -v c="${wall[convert]}" -v t="$t" \
    'BEGIN{printf "%-7s ours %6.2f s | llama-quantize alone %6.2f s (%.2fx ours) | convert + quantize %6.2f s (%.2fx ours)\n", t, o, q, q/o, c+q, (c+q)/o}'
done
awk -v o="${wall[ours 3 types]}" -v q="${wall[quantize Q4_K_M]}" -v c="${wall[convert]}" \
  'BEGIN{printf "3 types in one run %.2f s | convert + quantize Q4_K_M %.2f s (%.2fx ours)\n", o, c+q, (c+q)/o}'
