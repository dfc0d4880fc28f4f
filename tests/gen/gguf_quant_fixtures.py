#!/usr/bin/env python3
"""Generate the quantized-GGUF reference fixtures in tests/fixtures/gguf_quant/ with the real
tools, for tests/gguf_quant_reference.rs.

For every model folder (the architecture fixtures of tests/fixtures/gguf/models/ and the tiny
llama of tests/fixtures/tiny/) this script
  1. runs llama.cpp's convert_hf_to_gguf.py (vendored by llama-cpp-python 0.3.36, llama.cpp
     0c1e57098bba) with `--outtype f32` and with the checkpoint's own dtype (bf16 or f16): both
     hold the checkpoint's exact values;
  2. quantizes each of them with llama-quantize (`llama_cpp.llama_model_quantize`, default
     parameters, no imatrix) to every mix llama-quantize makes, and checks that the two
     starting points give the same file;
  3. stores `<case>.json`: per mix, every KV (type and payload bytes, or sha256 when long) and
     every tensor (name, ggml type, ne, data offset, sha256 of its bytes).
Q8_0 is included although llm-export writes it as the converter does: the test checks that the
tensor data is the same either way.

Run with the oracle venv (it has torch for the converter, llama_cpp, numpy):
    HF_HUB_OFFLINE=1 /root/.cache/llm-export/venv-oracle/bin/python tests/gen/gguf_quant_fixtures.py
Deterministic: quantization does not depend on thread count or run.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gguf_fixtures import DEFAULT_LLAMA_CPP, compact_reference, convert  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "gguf_quant"
MODELS = [ROOT / "tests/fixtures/gguf/models" / name for name in (
    "Llama-3.2-1B-Instruct", "Mistral-7B-Instruct-v0.3", "Qwen2.5-0.5B-Instruct", "Qwen3-0.6B",
    "gemma-2-2b-it", "gemma-3-4b-it", "Phi-3.5-mini-instruct",
)] + [ROOT / "tests/fixtures/tiny/tiny-llama"]

# llama-quantize's mixes (LLAMA_FTYPE_*), as tools/quantize names them.
MIXES = {
    "Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9, "Q8_0": 7, "Q2_K": 10, "Q3_K_S": 11,
    "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15, "Q5_K_S": 16, "Q5_K_M": 17,
    "Q6_K": 18,
}


def quantize(src: Path, dst: Path, ftype: int) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 1
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(),
                                        ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({src.name}, {ftype}) returned {rc}")


def checkpoint_dtype(model_dir: Path) -> str:
    config = json.loads((model_dir / "config.json").read_text())
    dtype = config.get("torch_dtype") or config.get("dtype")
    return {"bfloat16": "bf16", "float16": "f16", "float32": "f32"}[dtype]


def compact(ref: dict) -> dict:
    """The reference without the readable copies of KV values (as tests/fixtures/gguf/refs/
    otherwise)."""
    kvs = [{k: v for k, v in kv.items() if k != "show"} for kv in ref["kvs"]]
    return {"alignment": ref["alignment"], "kvs": kvs, "tensors": ref["tensors"]}


def quiet_llama_cpp() -> None:
    """Silences llama.cpp's per-tensor log lines."""
    import llama_cpp

    global _LOG_CALLBACK
    _LOG_CALLBACK = llama_cpp.llama_log_callback(lambda level, text, data: None)
    llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-cpp", type=Path, default=DEFAULT_LLAMA_CPP)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    quiet_llama_cpp()
    for model_dir in MODELS:
        case = model_dir.name
        starts = ["f32", checkpoint_dtype(model_dir)]
        refs: dict[str, dict] = {}
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            for outtype in starts:
                converted = tmp / f"{case}.{outtype}.gguf"
                convert(args.llama_cpp, model_dir, outtype, converted)
                for mix, ftype in MIXES.items():
                    out = tmp / f"{case}.{outtype}.{mix}.gguf"
                    quantize(converted, out, ftype)
                    ref = compact(compact_reference(out))
                    out.unlink()
                    if mix in refs and refs[mix] != ref:
                        raise SystemExit(f"{case} {mix}: llama-quantize from {starts[0]} and "
                                         f"from {outtype} differ")
                    refs[mix] = ref
        doc = {"case": case, "quantized_from": starts, "mixes": refs}
        (OUT / f"{case}.json").write_text(json.dumps(doc, indent=0) + "\n")
        print(f"{case}: {len(refs)} mixes, same from {' and '.join(starts)}", file=sys.stderr)


if __name__ == "__main__":
    main()
