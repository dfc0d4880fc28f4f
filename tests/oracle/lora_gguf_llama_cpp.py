#!/usr/bin/env python3
"""Check our GGUF LoRA adapters in llama.cpp: the base GGUF with the adapter applied at run time
must give the logits of the merged GGUF.

    python tests/oracle/lora_gguf_llama_cpp.py [--llm-export target/release/llm-export] \
        [--max-rel 0.05] [--min-top1 0.9]

For each case below, llm-export writes the base as `gguf:f16`, and, in one pass over base +
adapter, the merged model as `gguf:f16` and the adapter as `lora-gguf:f16`. llama-cpp-python
(llama.cpp 0c1e57098bba in 0.3.36) evaluates the same token ids with
`Llama(base, lora_path=adapter)` and with `Llama(merged)`; the script prints max |delta|
(also relative to the RMS of the merged logits), RMS delta and top-1 agreement over all
positions, and exits 1 when a case is out of tolerance. (Both sides round to f16 differently:
the merged weights once, the base and A, B separately; that gives about 1 % of the RMS.)

Negative control: for the rsLoRA adapters it also runs the file with `adapter.lora.alpha` set
back to the adapter's `lora_alpha`, which is what convert_lora_to_gguf.py writes; that must be
out of tolerance, or the check would not catch a wrong scale.

Needs only llama-cpp-python and numpy (no torch), and a release build of llm-export.
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

# (case, base, adapter), relative to tests/fixtures.
CASES = [
    ("llama plain", "tiny/tiny-llama", "tiny/lora-plain"),
    ("llama rsLoRA + embedding", "tiny/tiny-llama", "tiny/lora-rslora"),
    ("llama rank/alpha patterns", "tiny/tiny-llama", "tiny/lora-patterns"),
    ("qwen2 plain", "gguf/models/Qwen2.5-0.5B-Instruct", "lora_gguf/adapters/qwen2-plain"),
    ("qwen2 rsLoRA + patterns", "gguf/models/Qwen2.5-0.5B-Instruct",
     "lora_gguf/adapters/qwen2-rslora-patterns"),
    ("gemma2 plain", "gguf/models/gemma-2-2b-it", "lora_gguf/adapters/gemma2-plain"),
    ("phi3 plain (fused)", "gguf/models/Phi-3.5-mini-instruct", "lora_gguf/adapters/phi3-plain"),
]

# Inside every case's vocabulary.
TOKEN_IDS = [1, 37, 5, 260, 98, 4, 17, 211, 150, 3, 64, 299, 12, 180, 33, 7]


def export(tool: Path, base: Path, adapter: Path | None, outputs: list[str], out: Path) -> list[str]:
    cmd = [str(tool), "export", str(base), "--out", str(out), "--json"]
    if adapter:
        cmd += ["--adapter", str(adapter)]
    for o in outputs:
        cmd += ["--to", o]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)["outputs"]


def logits(model: Path, lora: Path | None, threads: int) -> np.ndarray:
    from llama_cpp import Llama

    llm = Llama(model_path=str(model), lora_path=str(lora) if lora else None, n_ctx=64,
                logits_all=True, n_threads=threads, n_gpu_layers=0, verbose=False)
    llm.eval(TOKEN_IDS)
    out = np.array(llm.scores[:len(TOKEN_IDS)], dtype=np.float32)
    llm.close()
    return out


def with_alpha(lora: Path, alpha: float, dest: Path) -> None:
    """A copy of `lora` whose adapter.lora.alpha (an f32 KV) is `alpha`."""
    data = lora.read_bytes()
    key = b"adapter.lora.alpha"
    record = struct.pack("<Q", len(key)) + key + struct.pack("<I", 6)
    at = data.index(record) + len(record)
    dest.write_bytes(data[:at] + struct.pack("<f", alpha) + data[at + 4:])


def compare(name: str, ours: np.ndarray, reference: np.ndarray, args) -> tuple[bool, str]:
    delta = np.abs(ours - reference)
    ref_rms = float(np.sqrt(np.mean(reference ** 2)))
    max_abs, rms = float(delta.max()), float(np.sqrt(np.mean(delta ** 2)))
    top1 = float(np.mean(ours.argmax(-1) == reference.argmax(-1)))
    ok = max_abs <= args.max_rel * ref_rms and top1 >= args.min_top1
    return ok, (f"| {name} | {max_abs:.4f} | {max_abs / ref_rms:.2%} | {rms:.4f} | {ref_rms:.3f} "
                f"| {top1:.0%} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llm-export", type=Path, default=ROOT / "target/release/llm-export")
    ap.add_argument("--max-rel", type=float, default=0.05,
                    help="largest max|delta| / rms(merged logits) accepted")
    ap.add_argument("--min-top1", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    failed = []
    print("| case | max abs d | of rms | rms d | rms | top-1 |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, (name, base, adapter) in enumerate(CASES):
            base, adapter = FIXTURES / base, FIXTURES / adapter
            (base_gguf,) = export(args.llm_export, base, None, ["gguf:f16"], tmp / f"{i}-base")
            outs = export(args.llm_export, base, adapter, ["gguf:f16", "lora-gguf:f16"],
                          tmp / f"{i}-adapter")
            lora = Path(next(p for p in outs if p.endswith("-LoRA.gguf")))
            merged = Path(next(p for p in outs if not p.endswith("-LoRA.gguf")))
            reference = logits(merged, None, args.threads)
            ok, row = compare(name, logits(Path(base_gguf), lora, args.threads), reference, args)
            print(row + ("" if ok else " OUT OF TOLERANCE"))
            if not ok:
                failed.append(name)
            config = json.loads((adapter / "adapter_config.json").read_text())
            if config.get("use_rslora"):
                as_converted = tmp / f"{i}-as-converted.gguf"
                with_alpha(lora, float(config["lora_alpha"]), as_converted)
                bad, row = compare(f"{name}, alpha as converted",
                                   logits(Path(base_gguf), as_converted, args.threads),
                                   reference, args)
                print(row + (" (must fail) CAUGHT" if not bad else " NOT CAUGHT"))
                if bad:
                    failed.append(f"{name} negative control")
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
