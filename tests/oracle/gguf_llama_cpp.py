#!/usr/bin/env python3
"""Run one of our GGUF files in llama.cpp and compare its logits with transformers' (fp32).

    python tests/oracle/gguf_llama_cpp.py OUT.gguf tests/fixtures/gguf/refs/CASE.logits.npy \
        [--ids-from tests/fixtures/gguf/refs/CASE.f16.json] [--max-rel 0.05] [--min-top1 0.9]

Evaluates the token ids the reference logits were made for (recorded by
tests/gen/gguf_fixtures.py as `logit_ids` in the case's reference JSON), with llama-cpp-python
(llama.cpp 0c1e57098bba in version 0.3.36), and reports max |delta|, RMS delta and top-1
agreement over all positions. Exits 1 when max |delta| relative to the reference logits' RMS,
or top-1 agreement, is out of tolerance. (llama.cpp rounds activations to bf16 for bf16
weights, which alone gives about 1-2 %; a wrong transform gives tens of percent.)

Needs only llama-cpp-python and numpy (no torch).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gguf", type=Path)
    ap.add_argument("logits", type=Path, help="reference logits (.npy, positions x vocab)")
    ap.add_argument("--ids-from", type=Path,
                    help="reference JSON with `logit_ids` (default: <logits stem>.f16.json)")
    ap.add_argument("--max-rel", type=float, default=0.05,
                    help="largest max|delta| / rms(reference) accepted")
    ap.add_argument("--min-top1", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from llama_cpp import Llama

    reference = np.load(args.logits)
    ids_file = args.ids_from or args.logits.with_name(
        args.logits.name.replace(".logits.npy", ".f16.json"))
    ids = json.loads(ids_file.read_text())["logit_ids"]
    llm = Llama(model_path=str(args.gguf), n_ctx=64, logits_all=True, vocab_only=False,
                n_threads=args.threads, n_gpu_layers=0, verbose=False)
    llm.eval(ids)
    ours = np.array(llm.scores[:len(ids)], dtype=np.float32)
    if ours.shape != reference.shape:
        print(f"shape mismatch: llama.cpp {ours.shape}, reference {reference.shape}")
        return 1
    delta = np.abs(ours - reference)
    top1 = float(np.mean(ours.argmax(-1) == reference.argmax(-1)))
    max_abs = float(delta.max())
    rms = float(np.sqrt(np.mean(delta ** 2)))
    ref_rms = float(np.sqrt(np.mean(reference ** 2)))
    ok = max_abs <= args.max_rel * ref_rms and top1 >= args.min_top1
    print(f"{args.gguf.name}: max|d| {max_abs:.5f} ({max_abs / ref_rms:.2%} of reference rms "
          f"{ref_rms:.3f})  rms|d| {rms:.5f}  top-1 {top1:.1%} of {len(ids)} positions  "
          f"{'ok' if ok else 'OUT OF TOLERANCE'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
