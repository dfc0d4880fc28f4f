#!/usr/bin/env python3
"""Oracle for the llama-quantize mix rules (tests/ggml_mix.rs): writes small random-weight GGUF
models of several architectures with gguf-py, quantizes each with every supported file type
through llama-cpp-python's llama_model_quantize (llama.cpp 0c1e57098bba) and records the tensor
order and ggml type of every output tensor as JSON.

usage: ggml_mix_from_lib.py OUT_JSON      (run with a Python that has llama_cpp, gguf, numpy)

The committed tests/fixtures/ggml/mix_cases.json was made with the llama-cpp-python 0.3.36
wheel installed into a venv together with gguf 0.19.0 and numpy.
"""

import ctypes
import json
import sys
import tempfile
from pathlib import Path

import gguf
import llama_cpp
import numpy as np

# name -> LLAMA_FTYPE id, as in tools/quantize/quantize.cpp
MIXES = {
    "F32": 0, "F16": 1, "BF16": 32, "Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9, "Q8_0": 7,
    "Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15,
    "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18,
}


def model_tensors(m):
    """Tensors (name, torch-order shape, is_2d_weight) in the order convert_hf_to_gguf would
    write them (not sorted, so the test also checks the weights_map ordering)."""
    e, ff, hd = m["n_embd"], m["n_ff"], m["n_embd"] // m["n_head"]
    kv = hd * m["n_head_kv"]
    vocab = m.get("vocab", 512)
    t = [("token_embd.weight", (vocab, e))]
    if not m.get("tied"):
        t.append(("output.weight", (vocab, e)))
    t.append(("output_norm.weight", (e,)))
    for i in range(m["n_layer"]):
        b = f"blk.{i}."
        t.append((b + "attn_norm.weight", (e,)))
        if m.get("fused_qkv"):
            t.append((b + "attn_qkv.weight", (e + 2 * kv, e)))
        else:
            t += [(b + "attn_q.weight", (e, e)), (b + "attn_k.weight", (kv, e)),
                  (b + "attn_v.weight", (kv, e)), (b + "attn_q.bias", (e,))]
        t.append((b + "attn_output.weight", (e, e)))
        t.append((b + "ffn_norm.weight", (e,)))
        if m.get("n_expert"):
            ne = m["n_expert"]
            t += [(b + "ffn_gate_inp.weight", (ne, e)), (b + "ffn_gate_exps.weight", (ne, ff, e)),
                  (b + "ffn_down_exps.weight", (ne, e, ff)), (b + "ffn_up_exps.weight", (ne, ff, e))]
        else:
            t += [(b + "ffn_down.weight", (e, ff)), (b + "ffn_up.weight", (ff, e))]
            if not m.get("no_gate"):
                t.append((b + "ffn_gate.weight", (ff, e)))
    return t


def write_gguf(path, m, tensors, rng):
    arch = m["arch"]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(256)
    w.add_embedding_length(m["n_embd"])
    w.add_block_count(m["n_layer"])
    w.add_feed_forward_length(m["n_ff"])
    w.add_head_count(m["n_head"])
    w.add_head_count_kv(m["n_head_kv"])
    w.add_layer_norm_rms_eps(1e-5)
    w.add_layer_norm_eps(1e-5)
    w.add_rope_dimension_count(m["n_embd"] // m["n_head"])
    if m.get("n_expert"):
        w.add_expert_count(m["n_expert"])
        w.add_expert_used_count(2)
    w.add_file_type(1)
    for name, shape in tensors:
        if len(shape) == 1:
            data = rng.standard_normal(shape).astype(np.float32)
        else:
            data = (rng.standard_normal(shape) * 0.02).astype(np.float16)
        w.add_tensor(name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


MODELS = [
    dict(id="llama-4L", arch="llama", n_layer=4, n_embd=256, n_ff=512, n_head=4, n_head_kv=1),
    dict(id="llama-32L", arch="llama", n_layer=32, n_embd=256, n_ff=256, n_head=8, n_head_kv=8),
    dict(id="llama-80L-gqa", arch="llama", n_layer=80, n_embd=256, n_ff=256, n_head=8, n_head_kv=1),
    dict(id="qwen2-tied-320", arch="qwen2", n_layer=6, n_embd=320, n_ff=576, n_head=5, n_head_kv=1,
         tied=True),
    dict(id="qwen2-80L", arch="qwen2", n_layer=80, n_embd=256, n_ff=256, n_head=8, n_head_kv=2),
    dict(id="qwen3-12L", arch="qwen3", n_layer=12, n_embd=256, n_ff=768, n_head=8, n_head_kv=2),
    dict(id="gemma3-tied", arch="gemma3", n_layer=6, n_embd=256, n_ff=512, n_head=4, n_head_kv=1,
         tied=True),
    dict(id="gemma2-odd", arch="gemma2", n_layer=3, n_embd=288, n_ff=100, n_head=4, n_head_kv=2,
         tied=True),
    dict(id="phi3-fused", arch="phi3", n_layer=10, n_embd=256, n_ff=512, n_head=4, n_head_kv=4,
         fused_qkv=True, no_gate=True),
    dict(id="llama-moe8", arch="llama", n_layer=4, n_embd=256, n_ff=256, n_head=4, n_head_kv=2,
         n_expert=8),
]


def ggml_ne(shape):
    return list(reversed(shape))


def main():
    out = Path(sys.argv[1])
    rng = np.random.default_rng(0)
    result = []
    with tempfile.TemporaryDirectory() as d:
        for m in MODELS:
            tensors = model_tensors(m)
            src = Path(d) / f"{m['id']}.gguf"
            write_gguf(src, m, tensors, rng)
            in_types = {t.name: int(t.tensor_type) for t in gguf.GGUFReader(str(src)).tensors}
            case = dict(
                model={k: m.get(k, 0) for k in ("arch", "n_layer", "n_head", "n_head_kv", "n_expert")},
                id=m["id"],
                tensors=[[n, ggml_ne(s), in_types[n]] for n, s in tensors],
                order=None,
                types={},
            )
            for mix, ftype in MIXES.items():
                dst = Path(d) / "out.gguf"
                p = llama_cpp.llama_model_quantize_default_params()
                p.ftype = ftype
                p.nthread = 2
                rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(p))
                if rc != 0:
                    sys.exit(f"llama_model_quantize failed for {m['id']} {mix}")
                r = gguf.GGUFReader(str(dst))
                names = [t.name for t in r.tensors]
                if case["order"] is None:
                    case["order"] = names
                assert case["order"] == names
                got = {t.name: int(t.tensor_type) for t in r.tensors}
                case["types"][mix] = [got[n] for n, _ in tensors]
                print(m["id"], mix, "ok", file=sys.stderr)
            result.append(case)
    out.write_text(json.dumps(result, separators=(",", ":")) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
