#!/usr/bin/env python3
"""Checks our quantized GGUF files with the Python side of llama.cpp (CI, no torch):

  1. gguf-py's dequantization (`gguf.quants.dequantize`) of every tensor equals ours, bit for
     bit (`<file>.gguf.f32` next to each file holds ours, written by
     tests/gguf_quant_reference.rs::files_for_python_checks);
  2. llama.cpp (llama-cpp-python) loads every file, its logits for a prompt are finite and close
     to the f32 file's for the high-bit mixes, and it generates a few tokens.

usage: gguf_quant_check.py DIR [--threads N]
DIR holds one folder per model with one file per mix, as that test writes them. Run with a
Python that has numpy, gguf and llama_cpp; put llama.cpp's gguf-py first on PYTHONPATH to use
the pinned version.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

PROMPT_IDS = [1, 37, 5, 260, 98, 4, 17, 211, 150, 3, 64, 299]
GENERATE = 8
# Largest |logit delta| against the f32 file, relative to the f32 logits' RMS, for the mixes
# close enough to f32 to bound on random tiny models (Q2_K is off by several RMS there).
MAX_REL = {"F16": 0.02, "BF16": 0.05, "Q8_0": 0.15}


def check_dequantization(path: Path) -> int:
    import gguf

    ours = np.fromfile(str(path) + ".f32", dtype="<f4").view("<u4")
    reader = gguf.GGUFReader(path)
    pos = 0
    for t in reader.tensors:
        theirs = gguf.quants.dequantize(t.data, t.tensor_type).astype("<f4").reshape(-1)
        n = theirs.size
        mine = ours[pos:pos + n]
        pos += n
        bad = np.flatnonzero(mine != theirs.view("<u4"))
        if bad.size:
            i = bad[0]
            sys.exit(f"{path.name} {t.name}: {bad.size} of {n} values differ from gguf-py, first at "
                     f"{i}: ours {mine[i:i + 1].view('<f4')[0]} gguf-py {theirs[i]}")
    if pos != ours.size:
        sys.exit(f"{path.name}: {ours.size} dequantized values for {pos} elements")
    return len(reader.tensors)


def logits_and_text(path: Path, threads: int):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=64, n_threads=threads, n_batch=64,
                          logits_all=True, verbose=False)
    llm.eval(PROMPT_IDS)
    logits = np.array(llm.scores[:len(PROMPT_IDS)], dtype=np.float32)
    generated = []
    for tok in llm.generate(PROMPT_IDS, top_k=1, temp=0.0, reset=True):
        generated.append(tok)
        if len(generated) == GENERATE:
            break
    del llm
    return logits, generated


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import llama_cpp

    quiet = llama_cpp.llama_log_callback(lambda level, text, data: None)
    llama_cpp.llama_log_set(quiet, None)
    models = sorted(p for p in args.dir.iterdir() if p.is_dir())
    if not models:
        sys.exit(f"no model folders in {args.dir}")
    n_files = n_tensors = 0
    for model in models:
        files = sorted(model.glob("*.gguf"))
        reference = next(f for f in files if f.name.endswith("-F32.gguf"))
        ref_logits, _ = logits_and_text(reference, args.threads)
        rms = float(np.sqrt(np.mean(ref_logits ** 2)))
        for f in files:
            n_tensors += check_dequantization(f)
            logits, generated = logits_and_text(f, args.threads)
            if not np.isfinite(logits).all():
                sys.exit(f"{f.name}: non-finite logits")
            if len(generated) != GENERATE:
                sys.exit(f"{f.name}: generated {len(generated)} tokens")
            mix = f.name.rsplit("-", 1)[1].removesuffix(".gguf")
            rel = float(np.abs(logits - ref_logits).max()) / rms
            top1 = float(np.mean(logits.argmax(1) == ref_logits.argmax(1)))
            print(f"{model.name:24} {mix:7} max|dlogit|/rms {rel:.4f}  top-1 {top1:.2f}  "
                  f"generated {generated}")
            if rel > MAX_REL.get(mix, np.inf):
                sys.exit(f"{f.name}: logits off by {rel:.3f} of their RMS")
            n_files += 1
    print(f"{n_files} files: {n_tensors} tensors dequantize as gguf-py does; all load and "
          f"generate in llama.cpp")


if __name__ == "__main__":
    main()
