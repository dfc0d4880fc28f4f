#!/usr/bin/env bash
# Benchmark (not a test): our merged_16bit export vs PEFT merge_and_unload + save_pretrained on
# the same ~1.14 GB synthetic Llama + LoRA, side by side in one run. Reports wall time and peak
# RSS of each (median of RUNS) and the ratios.
#   PYTHON  a Python with torch, transformers, peft, numpy (default: the oracle venv)
#   RUNS    repetitions per tool (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$HOME/.cache/llm-export/venv-oracle/bin/python}"
RUNS="${RUNS:-3}"
work="${BENCH_DIR:-$(mktemp -d)}"
cargo build --release --quiet
[ -f "$work/base/config.json" ] || "$PYTHON" benches/make_synthetic.py "$work"

measure() { # label, command...: prints "wall_s rss_kb" for one run
  local log; log=$(mktemp)
  /usr/bin/time -v "${@:2}" >/dev/null 2>"$log"
  awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,t,":"); w=(n==3)?t[1]*3600+t[2]*60+t[3]:t[1]*60+t[2]} /Maximum resident/{r=$2} END{print w, r}' "$log"
  rm -f "$log"
}
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

declare -A wall rss
for tool in ours peft; do
  ws=(); rs=()
  for _ in $(seq "$RUNS"); do
    rm -rf "$work/out-$tool"
    if [ "$tool" = ours ]; then
      read -r w r < <(measure ours ./target/release/llm-export export "$work/base" --adapter "$work/lora" --to merged_16bit --out "$work/out-$tool" -q)
    else
      read -r w r < <(measure peft "$PYTHON" benches/peft_merge.py "$work/base" "$work/lora" "$work/out-$tool")
    fi
    ws+=("$w"); rs+=("$r")
  done
  wall[$tool]=$(printf '%s\n' "${ws[@]}" | median); rss[$tool]=$(printf '%s\n' "${rs[@]}" | median)
  echo "$tool: wall ${ws[*]} s (median ${wall[$tool]}), peak RSS median $((rss[$tool] / 1024)) MiB"
done
awk -v wo="${wall[ours]}" -v wp="${wall[peft]}" -v ro="${rss[ours]}" -v rp="${rss[peft]}" \
  'BEGIN{printf "speedup (PEFT wall / ours): %.2fx\npeak RSS (ours / PEFT): %.3f\n", wp/wo, ro/rp}'
