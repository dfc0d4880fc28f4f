#!/usr/bin/env python3
"""Generate the GGUF reference fixtures in tests/fixtures/gguf/ with the real tools.

For every case below this script
  1. writes a tiny Hugging Face model folder `models/<case>/`: a config shaped like the real
     family's (as saved by the transformers release that family shipped with, so the legacy
     `rope_theta` / `rope_scaling` spellings are exercised), seeded random bf16/f16 weights,
     a small SentencePiece tokenizer trained here, and the family's generation_config.json;
  2. runs llama.cpp's convert_hf_to_gguf.py (the copy vendored by llama-cpp-python 0.3.36,
     llama.cpp 0c1e57098bba) on it for f32, f16, bf16 and q8_0;
  3. stores a compact reference `refs/<case>.<type>.json` of each GGUF: every KV (type and
     the exact payload bytes, or their sha256 for long ones) and every tensor (name, ggml type,
     ne, offset in the data section, sha256 of its bytes);
  4. stores transformers' fp32 logits for fixed token ids, `refs/<case>.logits.npy`, for the
     llama.cpp check in tests/oracle/gguf_llama_cpp.py.
It also saves the Qwen2.5 case quantized by bitsandbytes (NF4, double quantization) as
`models/<case>-bnb-4bit/`: the converter cannot read 4-bit checkpoints, so that one is checked
against our own conversion of its dequantized merged_16bit output instead.

Run with the oracle venv (torch, transformers 5.23, sentencepiece, numpy):
    HF_HUB_OFFLINE=1 python tests/gen/gguf_fixtures.py [--llama-cpp DIR] [case ...]
Everything is seeded and single-threaded, so two runs give the same files.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "gguf"
DEFAULT_LLAMA_CPP = Path(
    "/root/.cache/llm-export/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp"
)
OUTTYPES = ["f32", "f16", "bf16", "q8_0"]

# Token ids whose logits are recorded (all inside every case's vocabulary).
LOGIT_IDS = [1, 37, 5, 260, 98, 4, 17, 211, 150, 3, 64, 299, 12, 180, 33, 7]

# KV payloads up to this many bytes are stored inline (hex); longer ones as sha256.
INLINE_BYTES = 256

TOKENIZER_VOCAB = 330
CORPUS = """\
The quick brown fox jumps over the lazy dog while the cat sleeps in the sun.
A small model is still a model: it reads tokens, mixes them in a few layers and predicts
the next one. Rivers run to the sea, trains run on time, and numbers like 12, 256 and 4096
appear in every technical text. Questions? Answers! Lists: one, two, three; done.
def add(a, b):
    return a + b
<|im_start|>user
What is the weather like today?<|im_end|>
<|im_start|>assistant
Sunny, with a light breeze from the west.<|im_end|>
Quantized weights keep a scale for every block of thirty-two values, and the scale itself
is stored as a half-precision float. Merging an adapter adds a low-rank product to a frozen
weight, then the result is rounded once to the output type.
"""
CONTROL_TOKENS = ["<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


# An Unsloth-style model card: gguf-py reads base model, datasets, license, tags and languages
# from its front matter; the nested `model-index` and the block scalar must be skipped.
UNSLOTH_CARD = """\
---
base_model: unsloth/Llama-3.2-1B-Instruct
tags:
- text-generation-inference
- transformers
- unsloth
- llama
- trl
license: llama3.2
language:
- en
datasets:
- mlabonne/FineTome-100k
pipeline_tag: text-generation
widget_note: |
  a block scalar
  over two lines
model-index:
- name: tiny-llama
  results: []
---

# Uploaded model

- **Developed by:** someone
"""


def rope_factors(n: int, start: float, step: float) -> list[float]:
    return [round(start + step * i, 4) for i in range(n)]


# Each case: folder name (general.name comes from it), config.json as the family publishes
# it (scaled down), dtype of the weights, shards, generation_config.json, README.md.
CASES: dict[str, dict] = {
    # Llama 3.2: tied embeddings, llama3 rope scaling (rope_freqs tensor), two shards.
    "Llama-3.2-1B-Instruct": {
        "config": {
            "architectures": ["LlamaForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "head_dim": 64,
            "hidden_act": "silu",
            "hidden_size": 256,
            "initializer_range": 0.02,
            "intermediate_size": 256,
            "max_position_embeddings": 131072,
            "mlp_bias": False,
            "model_type": "llama",
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "num_key_value_heads": 2,
            "pretraining_tp": 1,
            "rms_norm_eps": 1e-05,
            "rope_scaling": {
                "factor": 32.0,
                "high_freq_factor": 4.0,
                "low_freq_factor": 1.0,
                "original_max_position_embeddings": 8192,
                "rope_type": "llama3",
            },
            "rope_theta": 500000.0,
            "tie_word_embeddings": True,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.45.0.dev0",
            "use_cache": True,
            "vocab_size": 352,
        },
        "dtype": "bfloat16",
        "max_shard_size": "600KB",
        "readme": UNSLOTH_CARD,
        "generation_config": {
            "bos_token_id": 1,
            "do_sample": True,
            "eos_token_id": [2, 4],
            "temperature": 0.6,
            "top_p": 0.9,
            "transformers_version": "4.45.0.dev0",
        },
    },
    # Mistral v0.3 maps to the llama architecture; float16 weights, no head_dim in config.
    "Mistral-7B-Instruct-v0.3": {
        "config": {
            "architectures": ["MistralForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "hidden_size": 128,
            "initializer_range": 0.02,
            "intermediate_size": 256,
            "max_position_embeddings": 32768,
            "model_type": "mistral",
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-05,
            "rope_theta": 1000000.0,
            "sliding_window": None,
            "tie_word_embeddings": False,
            "torch_dtype": "float16",
            "transformers_version": "4.42.0.dev0",
            "use_cache": True,
            "vocab_size": 352,
        },
        "dtype": "float16",
    },
    # Qwen2.5: q/k/v biases, tied embeddings.
    "Qwen2.5-0.5B-Instruct": {
        "config": {
            "architectures": ["Qwen2ForCausalLM"],
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "hidden_size": 128,
            "initializer_range": 0.02,
            "intermediate_size": 256,
            "max_position_embeddings": 32768,
            "max_window_layers": 21,
            "model_type": "qwen2",
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06,
            "rope_theta": 1000000.0,
            "sliding_window": 32768,
            "tie_word_embeddings": True,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.43.1",
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": 352,
        },
        "dtype": "bfloat16",
        "generation_config": {
            "bos_token_id": 1,
            "do_sample": True,
            "eos_token_id": [4, 2],
            "pad_token_id": 2,
            "repetition_penalty": 1.1,
            "temperature": 0.7,
            "top_k": 20,
            "top_p": 0.8,
            "transformers_version": "4.37.0",
        },
    },
    # Qwen3: q/k norms, explicit head_dim, integer rope_theta; an intermediate size that is not
    # whole Q8_0 blocks, so q8_0 falls back to F16 for ffn_down.
    "Qwen3-0.6B": {
        "config": {
            "architectures": ["Qwen3ForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "head_dim": 32,
            "hidden_act": "silu",
            "hidden_size": 128,
            "initializer_range": 0.02,
            "intermediate_size": 272,
            "max_position_embeddings": 40960,
            "max_window_layers": 28,
            "model_type": "qwen3",
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "num_key_value_heads": 2,
            "rms_norm_eps": 1e-06,
            "rope_scaling": None,
            "rope_theta": 1000000,
            "sliding_window": None,
            "tie_word_embeddings": True,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.51.0",
            "use_cache": True,
            "use_sliding_window": False,
            "vocab_size": 352,
        },
        "dtype": "bfloat16",
    },
    # Gemma 2: norms stored +1, soft-capping, sliding window; float16 weights (the +1 then
    # happens in float16); `_name_or_path` names the model instead of the folder.
    "gemma-2-2b-it": {
        "config": {
            "_name_or_path": "google/gemma-2-2b-it",
            "architectures": ["Gemma2ForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "attn_logit_softcapping": 50.0,
            "bos_token_id": 1,
            "cache_implementation": "hybrid",
            "eos_token_id": [2, 4],
            "final_logit_softcapping": 30.0,
            "head_dim": 32,
            "hidden_act": "gelu_pytorch_tanh",
            "hidden_activation": "gelu_pytorch_tanh",
            "hidden_size": 128,
            "initializer_range": 0.02,
            "intermediate_size": 256,
            "max_position_embeddings": 8192,
            "model_type": "gemma2",
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "num_key_value_heads": 2,
            "pad_token_id": 0,
            "query_pre_attn_scalar": 32,
            "rms_norm_eps": 1e-06,
            "rope_theta": 10000.0,
            "sliding_window": 4096,
            "torch_dtype": "float16",
            "transformers_version": "4.42.4",
            "use_cache": True,
            "vocab_size": 352,
        },
        "dtype": "float16",
        "generation_config": {
            "bos_token_id": 1,
            "cache_implementation": "hybrid",
            "eos_token_id": [2, 4],
            "pad_token_id": 0,
            "transformers_version": "4.42.4",
        },
    },
    # Gemma 3 (text only): q/k norms, norms +1, two rope bases, linear rope scaling.
    "gemma-3-4b-it": {
        "config": {
            "architectures": ["Gemma3ForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "attn_logit_softcapping": None,
            "bos_token_id": 1,
            "cache_implementation": "hybrid",
            "eos_token_id": [2, 4],
            "final_logit_softcapping": None,
            "head_dim": 32,
            "hidden_activation": "gelu_pytorch_tanh",
            "hidden_size": 128,
            "initializer_range": 0.02,
            "intermediate_size": 256,
            "max_position_embeddings": 131072,
            "model_type": "gemma3_text",
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "num_key_value_heads": 1,
            "pad_token_id": 0,
            "query_pre_attn_scalar": 32,
            "rms_norm_eps": 1e-06,
            "rope_local_base_freq": 10000.0,
            "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
            "rope_theta": 1000000.0,
            "sliding_window": 1024,
            "sliding_window_pattern": 6,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.50.0.dev0",
            "use_cache": True,
            "vocab_size": 352,
        },
        "dtype": "bfloat16",
        "generation_config": {
            "bos_token_id": 1,
            "cache_implementation": "hybrid",
            "do_sample": True,
            "eos_token_id": [2, 4],
            "pad_token_id": 0,
            "top_k": 64,
            "top_p": 0.95,
            "transformers_version": "4.50.0.dev0",
        },
    },
    # Phi-3.5: fused qkv and gate_up projections, longrope factors.
    "Phi-3.5-mini-instruct": {
        "config": {
            "architectures": ["Phi3ForCausalLM"],
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 1,
            "embd_pdrop": 0.0,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "hidden_size": 128,
            "initializer_range": 0.02,
            "intermediate_size": 256,
            "max_position_embeddings": 131072,
            "model_type": "phi3",
            "num_attention_heads": 4,
            "num_hidden_layers": 2,
            "num_key_value_heads": 4,
            "original_max_position_embeddings": 4096,
            "pad_token_id": 0,
            "resid_pdrop": 0.0,
            "rms_norm_eps": 1e-05,
            "rope_scaling": {
                "long_factor": rope_factors(16, 1.0, 1.7),
                "short_factor": rope_factors(16, 1.0, 0.05),
                "type": "longrope",
            },
            "rope_theta": 10000.0,
            "sliding_window": 262144,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "transformers_version": "4.43.3",
            "use_cache": True,
            "vocab_size": 352,
        },
        "dtype": "bfloat16",
        "generation_config": {
            "bos_token_id": 1,
            "eos_token_id": [2, 4],
            "pad_token_id": 0,
            "transformers_version": "4.43.3",
        },
    },
}


def train_tokenizer(dest: Path) -> None:
    """A byte-fallback SentencePiece BPE model plus the tokenizer_config.json converters read."""
    import sentencepiece as spm

    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([l for l in CORPUS.split("\n") if l.strip()]),
        model_writer=proto,
        model_type="bpe",
        vocab_size=TOKENIZER_VOCAB,
        byte_fallback=True,
        character_coverage=1.0,
        control_symbols=CONTROL_TOKENS,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "tokenizer.model").write_bytes(proto.getvalue())
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "<|im_end|>",
        "unk_token": "<unk>",
        "pad_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "legacy": False,
        "model_max_length": 2048,
        "tokenizer_class": "LlamaTokenizer",
    }
    (dest / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def seeded_weights(model, seed: int, gemma_norms: bool) -> None:
    """Replaces every parameter with seeded values that give O(1) activations, so logits are
    far from flat and norm transforms (Gemma's +1) are visible."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if p.dim() == 1:
                noise = torch.randn(p.shape, generator=gen) * 0.1
                p.copy_(noise if (gemma_norms and "norm" in name) else
                        (noise if name.endswith(".bias") else 1.0 + noise))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)


def build_model(case: str, spec: dict, tok_dir: Path, dest: Path, seed: int) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    raw = spec["config"]
    (dest / "config.json").write_text(json.dumps(raw, indent=2) + "\n")
    config = AutoConfig.from_pretrained(str(dest))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    seeded_weights(model, seed, gemma_norms=raw["model_type"].startswith("gemma"))
    model = model.to(getattr(torch, spec["dtype"]))
    model.save_pretrained(str(dest), max_shard_size=spec.get("max_shard_size", "50MB"))
    # save_pretrained rewrites config.json in the current transformers' spelling; keep the
    # family's own, which is what users download and what converters must normalize.
    (dest / "config.json").write_text(json.dumps(raw, indent=2) + "\n")
    gen_path = dest / "generation_config.json"
    if "generation_config" in spec:
        gen_path.write_text(json.dumps(spec["generation_config"], indent=2) + "\n")
    elif gen_path.exists():
        gen_path.unlink()
    for f in tok_dir.iterdir():
        shutil.copy(f, dest / f.name)
    if "readme" in spec:
        (dest / "README.md").write_text(spec["readme"])


BNB_CASE = "Qwen2.5-0.5B-Instruct"


def build_bnb4(model_dir: Path, dest: Path) -> None:
    """`model_dir` loaded 4-bit NF4 with double quantization and saved as transformers does."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if dest.exists():
        shutil.rmtree(dest)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), quantization_config=quant,
                                                 dtype=torch.bfloat16, device_map="cpu")
    model.save_pretrained(str(dest))
    for name in ("tokenizer.model", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(model_dir / name, dest / name)


def reference_logits(model_dir: Path) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    with torch.no_grad():
        out = model(torch.tensor([LOGIT_IDS]))
    return out.logits[0].float().numpy()


def convert(llama_cpp: Path, model_dir: Path, outtype: str, out: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(llama_cpp / "gguf-py"), HF_HUB_OFFLINE="1")
    subprocess.run(
        [sys.executable, str(llama_cpp / "convert_hf_to_gguf.py"), str(model_dir),
         "--outtype", outtype, "--outfile", str(out)],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


# --- a small GGUF reader: the payload bytes of each KV are what the reference records ---

GGUF_SCALARS = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
GGUF_TYPE_NAMES = {0: "u8", 1: "i8", 2: "u16", 3: "i16", 4: "u32", 5: "i32", 6: "f32",
                   7: "bool", 8: "string", 9: "array", 10: "u64", 11: "i64", 12: "f64"}


class Cursor:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        b = self.data[self.pos:self.pos + n]
        assert len(b) == n, "truncated GGUF"
        self.pos += n
        return b

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> bytes:
        return self.take(self.u64())

    def value(self, vtype: int) -> None:
        if vtype in GGUF_SCALARS:
            self.take(GGUF_SCALARS[vtype])
        elif vtype == 8:
            self.string()
        else:
            raise ValueError(f"bad value type {vtype}")


def show(vtype: int, payload: bytes):
    """A readable rendering for people reading the JSON (not compared by the tests)."""
    fmt = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
           10: "<Q", 11: "<q", 12: "<d"}
    if vtype in fmt:
        return struct.unpack(fmt[vtype], payload)[0]
    if vtype == 8:
        return payload[8:].decode("utf-8", "replace")
    return None


def compact_reference(path: Path) -> dict:
    data = path.read_bytes()
    c = Cursor(data)
    assert c.take(4) == b"GGUF" and c.u32() == 3
    n_tensors, n_kv = c.u64(), c.u64()
    kvs, alignment = [], 32
    for _ in range(n_kv):
        key = c.string().decode()
        vtype = c.u32()
        start = c.pos
        entry = {"key": key, "type": GGUF_TYPE_NAMES[vtype]}
        if vtype == 9:
            etype, count = c.u32(), c.u64()
            payload_start = c.pos
            for _ in range(count):
                c.value(etype)
            payload = data[payload_start:c.pos]
            entry.update(elem_type=GGUF_TYPE_NAMES[etype], count=count)
        else:
            c.value(vtype)
            payload = data[start:c.pos]
            entry["show"] = show(vtype, payload)
            if key == "general.alignment":
                alignment = struct.unpack("<I", payload)[0]
        if len(payload) <= INLINE_BYTES:
            entry["hex"] = payload.hex()
        else:
            entry["sha256"] = hashlib.sha256(payload).hexdigest()
            entry["bytes"] = len(payload)
        kvs.append(entry)
    infos = []
    for _ in range(n_tensors):
        name = c.string().decode()
        ne = [c.u64() for _ in range(c.u32())]
        infos.append((name, ne, c.u32(), c.u64()))
    data_start = -(-c.pos // alignment) * alignment
    ends = [off for _, _, _, off in infos[1:]] + [len(data) - data_start]
    tensors = []
    for (name, ne, ttype, off), end in zip(infos, ends):
        size = tensor_bytes(ttype, ne)
        assert off + size <= end, name
        blob = data[data_start + off:data_start + off + size]
        tensors.append({"name": name, "type": ttype, "ne": ne, "offset": off,
                        "sha256": hashlib.sha256(blob).hexdigest()})
    return {"alignment": alignment, "kvs": kvs, "tensors": tensors}


def tensor_bytes(ttype: int, ne: list[int]) -> int:
    block, size = {0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22),
                   7: (32, 24), 8: (32, 34), 10: (256, 84), 11: (256, 110), 12: (256, 144),
                   13: (256, 176), 14: (256, 210)}[ttype]
    n = 1
    for d in ne:
        n *= d
    return n // block * size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-cpp", type=Path, default=DEFAULT_LLAMA_CPP)
    ap.add_argument("cases", nargs="*", help="cases to (re)generate; default all")
    args = ap.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    names = args.cases or list(CASES)
    (OUT / "refs").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train_tokenizer(tmp / "tokenizer")
        for i, case in enumerate(CASES):
            if case not in names:
                continue
            model_dir = OUT / "models" / case
            build_model(case, CASES[case], tmp / "tokenizer", model_dir, seed=1000 + i)
            np.save(OUT / "refs" / f"{case}.logits.npy", reference_logits(model_dir))
            for outtype in OUTTYPES:
                gguf = tmp / f"{case}.{outtype}.gguf"
                convert(args.llama_cpp, model_dir, outtype, gguf)
                ref = compact_reference(gguf)
                ref["logit_ids"] = LOGIT_IDS
                (OUT / "refs" / f"{case}.{outtype}.json").write_text(
                    json.dumps(ref, indent=1) + "\n")
            print(f"{case}: ok", file=sys.stderr)
            if case == BNB_CASE:
                build_bnb4(model_dir, OUT / "models" / f"{case}-bnb-4bit")


if __name__ == "__main__":
    main()
