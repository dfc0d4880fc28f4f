#!/usr/bin/env python3
"""Generate the tiny reference fixtures in tests/fixtures/tiny/ with the real tools.

Everything is made locally (no Hub access) by sentencepiece, transformers, PEFT and
bitsandbytes, with fixed seeds and one CPU thread, so two runs give byte-identical files
(MANIFEST.sha256 records them). What each file holds is described in
tests/fixtures/tiny/README.md.

    HF_HUB_OFFLINE=1 /root/.cache/llm-export/venv-oracle/bin/python tests/gen/make_fixtures.py

Options: --out DIR (default tests/fixtures/tiny next to this script).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
import warnings
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import training_text  # noqa: E402
from fixture_common import (  # noqa: E402
    LOGITS_POSITIONS,
    bnb_state_of,
    load_base,
    prompt_ids,
    quiet,
    save_st,
)

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "fixtures" / "tiny"
SEED = 20261121
# std of s*B@A relative to the std of the base weight it is added to
DELTA = 0.6

# The versions the committed files were made with; other versions may give other bytes.
EXPECTED_VERSIONS = {
    "torch": "2.15.0",
    "transformers": "5.23.0",
    "peft": "0.21.2",
    "bitsandbytes": "0.50.2",
    "safetensors": "0.8.0",
    "sentencepiece": "0.2.3",
    "tokenizers": "0.23.3",
}

VOCAB = 384
HIDDEN = 256
INTERMEDIATE = 256
LAYERS = 2
HEADS = 4
KV_HEADS = 2

ATTN = ["q_proj", "k_proj", "v_proj", "o_proj"]
MLP = ["gate_proj", "up_proj", "down_proj"]

BASE = "tiny-llama"
# (directory, quant type, double quant)
QUANT_BASES = [
    ("tiny-llama-nf4-dq", "nf4", True),
    ("tiny-llama-nf4", "nf4", False),
    ("tiny-llama-fp4-dq", "fp4", True),
]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CONTROL_TOKENS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
# Tokens "added during fine-tuning" by the lora-save-embed adapter (special, then normal).
NEW_SPECIAL_TOKENS = ["<think>", "</think>"]
NEW_TOKENS = ["fixture", "llm-export"]

# Size budget: the references hold only these tensors (full tensors, base weight names).
L0, L1 = "model.layers.0.", "model.layers.1."
DEQUANT_SUBSET = {
    "tiny-llama-nf4-dq": [L0 + "self_attn.k_proj.weight", L1 + "mlp.down_proj.weight"],
    "tiny-llama-nf4": [L0 + "self_attn.k_proj.weight"],
    "tiny-llama-fp4-dq": [L0 + "self_attn.k_proj.weight"],
}
MERGED_SUBSET = {
    "lora-plain": [L0 + "self_attn.k_proj.weight", L1 + "mlp.down_proj.weight"],
    "lora-rslora": [L1 + "self_attn.v_proj.weight", "model.embed_tokens.weight"],
    "lora-patterns": [
        L0 + "self_attn.k_proj.weight",
        L1 + "self_attn.k_proj.weight",
        L0 + "self_attn.v_proj.weight",
        L1 + "self_attn.v_proj.weight",
    ],
    "lora-save-embed": [L0 + "self_attn.v_proj.weight"],
    "lora-dora": [L0 + "self_attn.v_proj.weight", L1 + "self_attn.q_proj.weight"],
    "lora-nf4": [L0 + "self_attn.v_proj.weight"],
}
ODD_SHAPE = (100, 170)  # 17000 values: a partial last 64-block and a partial second nested block


# ----------------------------------------------------------------------------- helpers


def seeded(name: str) -> torch.Generator:
    """A generator whose seed depends only on SEED and a stable name."""
    return torch.Generator().manual_seed(SEED ^ zlib.crc32(name.encode()))


def randn_like(t: torch.Tensor, name: str) -> torch.Tensor:
    return torch.randn(t.shape, generator=seeded(name), dtype=torch.float32)


def fix_adapter_config(adapter_dir: Path, base_name: str) -> None:
    """PEFT writes target_modules from a set (run-dependent order): sort it, as PEFT's
    own writer would (same json.dumps settings), and pin base_model_name_or_path."""
    path = adapter_dir / "adapter_config.json"
    cfg = json.loads(path.read_text())
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    if isinstance(cfg.get("modules_to_save"), list):
        cfg["modules_to_save"] = sorted(cfg["modules_to_save"])
    cfg["base_model_name_or_path"] = base_name
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True))


def check_versions() -> None:
    import importlib.metadata as md

    for pkg, want in EXPECTED_VERSIONS.items():
        have = md.version(pkg).split("+")[0]
        if have != want:
            print(f"warning: {pkg} {have} differs from {want} used for the committed fixtures")


# ----------------------------------------------------------------------------- tokenizer


def make_tokenizer(model_dir: Path):
    """Train a Llama-style BPE sentencepiece model, convert it with AutoTokenizer."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    lines = [line for line in training_text().split("\n") if line.strip()]
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=proto,
        model_type="bpe",
        vocab_size=VOCAB,
        byte_fallback=True,
        character_coverage=0.995,
        control_symbols=CONTROL_TOKENS[3:],
        split_digits=True,
        allow_whitespace_only_pieces=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        max_sentence_length=100000,
        minloglevel=2,
    )
    model_dir.mkdir(parents=True)
    (model_dir / "tokenizer.model").write_bytes(proto.getvalue())

    def added(content):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                "single_word": False, "special": True}

    # The transformers-4 layout most Hub models have (chat_template and added_tokens_decoder
    # inside tokenizer_config.json, plus special_tokens_map.json), written the way 4.x wrote
    # it. transformers 5 saves another layout (see the 4-bit bases), so both are covered.
    tok_cfg = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": {str(i): added(c) for i, c in enumerate(CONTROL_TOKENS)},
        "bos_token": "<s>",
        "chat_template": CHATML_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "legacy": False,
        "model_max_length": 2048,
        "pad_token": None,
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }
    special_map = {
        k: {key: val for key, val in added(v).items() if key != "special"}
        for k, v in (("bos_token", "<s>"), ("eos_token", "<|im_end|>"), ("unk_token", "<unk>"))
    }
    for fname, obj in (("tokenizer_config.json", tok_cfg), ("special_tokens_map.json", special_map)):
        (model_dir / fname).write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    assert len(tok) == VOCAB, len(tok)
    assert tok.convert_tokens_to_ids(CONTROL_TOKENS) == [0, 1, 2, 3, 4]
    assert tok.eos_token_id == 4 and tok.bos_token_id == 1
    # tokenizer.json as transformers converts it
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        shutil.copyfile(Path(tmp) / "tokenizer.json", model_dir / "tokenizer.json")
    assert prompt_ids(AutoTokenizer.from_pretrained(str(model_dir))) == prompt_ids(tok)
    return tok


# ----------------------------------------------------------------------------- base model


def make_base(model_dir: Path, tok) -> None:
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        head_dim=HIDDEN // HEADS,
        hidden_act="silu",
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=None,
        initializer_range=0.02,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config)
    # Our own init, so the logits are far from flat (std about 2) and a merge is visible.
    with torch.no_grad():
        for name, p in model.named_parameters():
            z = randn_like(p, "base/" + name)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * z)
            elif name == "model.embed_tokens.weight":
                p.copy_(0.5 * z)
            elif name == "lm_head.weight":
                p.copy_(z * (2.0 / math.sqrt(HIDDEN)))
            else:
                p.copy_(z / math.sqrt(p.shape[1]))
    model = model.to(torch.bfloat16)
    model.generation_config = GenerationConfig(
        bos_token_id=1, eos_token_id=4, do_sample=True, temperature=0.7, top_p=0.9
    )
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    model.save_pretrained(str(model_dir), max_shard_size=int(total * 0.6))
    shards = sorted(model_dir.glob("model-*.safetensors"))
    assert len(shards) == 2 and (model_dir / "model.safetensors.index.json").exists(), shards


# ----------------------------------------------------------------------------- 4-bit bases


def quant_config(quant_type: str, double_quant: bool):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def make_quant_base(name: str, quant_type: str, double_quant: bool, tok) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        BASE, quantization_config=quant_config(quant_type, double_quant), device_map="cpu",
        dtype=torch.bfloat16,
    )
    model.save_pretrained(name)
    tok.save_pretrained(name)
    shutil.copyfile(Path(BASE) / "tokenizer.model", Path(name) / "tokenizer.model")


def make_dequant_refs() -> None:
    """bnb dequantize_4bit of the tensors as serialized in each 4-bit base's file."""
    import bitsandbytes as bnb
    from safetensors.torch import load_file

    for name, _, _ in QUANT_BASES:
        sd = load_file(f"{name}/model.safetensors")
        out = {}
        for wname in DEQUANT_SUBSET[name]:
            packed, state = bnb_state_of(sd, wname)
            out[wname] = bnb.functional.dequantize_4bit(packed, state)
            assert out[wname].dtype == torch.bfloat16
        save_st(out, f"refs/dequant-{name.removeprefix('tiny-llama-')}.safetensors")


# ----------------------------------------------------------------------------- adapters


def randomize_adapter(peft_model, tag: str) -> None:
    """Stand-in for training: seeded lora_A/lora_B (PEFT inits B to zero), DoRA magnitudes
    and modules_to_save copies, sized so that s*B@A is about 60 % of the base weight."""
    with torch.no_grad():
        modules = dict(peft_model.named_modules())
        for name, p in peft_model.named_parameters():
            if not p.requires_grad:
                continue
            z = randn_like(p, f"{tag}/{name}")
            if ".lora_A." in name or ".lora_B." in name:
                owner = modules[name.split(".lora_")[0]]
                scale = owner.scaling["default"]
                r = owner.r["default"]
                if ".lora_A." in name:
                    p.copy_(z / math.sqrt(p.shape[1]))
                else:
                    w_std = 1.0 / math.sqrt(owner.in_features)
                    p.copy_(z * (DELTA * w_std / (scale * math.sqrt(r))))
            elif "lora_embedding_A" in name:
                p.copy_(z)
            elif "lora_embedding_B" in name:
                owner = modules[name.split(".lora_embedding_B")[0]]
                scale, r = owner.scaling["default"], owner.r["default"]
                p.copy_(z * (DELTA * 0.5 / (scale * math.sqrt(r))))
            elif "lora_magnitude_vector" in name:
                p.copy_(p.float() * (1.0 + 0.05 * z))
            elif "modules_to_save" in name:
                p.copy_(p.float() + 0.1 * p.float().std() * z)
            else:
                raise AssertionError(f"unexpected trainable parameter {name}")


def save_adapter(peft_model, name: str, base_name: str) -> None:
    peft_model.save_pretrained(name)
    fix_adapter_config(Path(name), base_name)


def make_adapters(tok) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    specs = {
        "lora-plain": LoraConfig(r=8, lora_alpha=16, target_modules=ATTN + MLP, task_type="CAUSAL_LM"),
        "lora-rslora": LoraConfig(
            r=16, lora_alpha=8, use_rslora=True, target_modules=["q_proj", "v_proj", "embed_tokens"],
            task_type="CAUSAL_LM",
        ),
        "lora-patterns": LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=r"model\.layers\.\d+\.self_attn\.(q|k|v)_proj",
            # The first matching key wins, in dict order; once saved, that is the sorted JSON
            # order, so the specific key must also sort first ("layers..." < "self_attn...").
            rank_pattern={"layers.1.self_attn.k_proj": 2, "self_attn.k_proj": 4},
            alpha_pattern={"layers.0.self_attn.v_proj": 64},
            task_type="CAUSAL_LM",
        ),
        "lora-dora": LoraConfig(r=8, lora_alpha=16, use_dora=True, target_modules=["q_proj", "v_proj"],
                                task_type="CAUSAL_LM"),
    }
    for name, cfg in specs.items():
        model = get_peft_model(load_base(BASE), cfg)
        randomize_adapter(model, name)
        save_adapter(model, name, BASE)

    # lora-save-embed: vocabulary grown during "training", embed/lm_head trained in full.
    tok2 = tok.__class__.from_pretrained(BASE)
    tok2.add_tokens(NEW_SPECIAL_TOKENS, special_tokens=True)
    tok2.add_tokens(NEW_TOKENS)
    base = load_base(BASE)
    torch.manual_seed(SEED)
    base.resize_token_embeddings(len(tok2))
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                     modules_to_save=["lm_head", "embed_tokens"], task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg)
    randomize_adapter(model, "lora-save-embed")
    save_adapter(model, "lora-save-embed", BASE)
    tok2.save_pretrained("lora-save-embed")

    # lora-nf4: built on the 4-bit (nf4, double quant) base.
    base4 = AutoModelForCausalLM.from_pretrained("tiny-llama-nf4-dq", device_map="cpu", dtype=torch.bfloat16)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"], task_type="CAUSAL_LM")
    model = get_peft_model(base4, cfg)
    randomize_adapter(model, "lora-nf4")
    save_adapter(model, "lora-nf4", "tiny-llama-nf4-dq")


# ----------------------------------------------------------------------------- merges, logits


def merged_bf16(adapter: str):
    """PEFT merge_and_unload of an adapter dir onto the bf16 base, as a user would do it."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    base = load_base(BASE)
    tok = AutoTokenizer.from_pretrained(adapter) if (Path(adapter) / "tokenizer.json").exists() else None
    if tok is not None and len(tok) != base.get_input_embeddings().weight.shape[0]:
        torch.manual_seed(SEED)
        base.resize_token_embeddings(len(tok))
    return PeftModel.from_pretrained(base, adapter).merge_and_unload()


@torch.no_grad()
def logits_of(model, ids) -> torch.Tensor:
    """fp32 forward of a model whose weights are given in bf16."""
    model = model.float().eval()
    return model(torch.tensor([ids])).logits[0, -LOGITS_POSITIONS:].contiguous()


def max_ulp_diff(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int]:
    """(elements differing, max difference in bf16 ulps) between two bf16 tensors."""
    ia = a.contiguous().view(torch.int16).to(torch.int32)
    ib = b.contiguous().view(torch.int16).to(torch.int32)
    # map sign-magnitude bf16 bits onto a monotone integer line
    ia = torch.where(ia < 0, -(ia & 0x7FFF), ia)
    ib = torch.where(ib < 0, -(ib & 0x7FFF), ib)
    d = (ia - ib).abs()
    return int((d > 0).sum()), int(d.max()) if d.numel() else 0


def pattern_value(patterns: dict, module: str, default):
    """PEFT's rank_pattern/alpha_pattern lookup: the first key (in file order) that matches
    the end of the module name at a dot boundary."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def independent_delta(adapter: str, wname: str) -> torch.Tensor:
    """f32(B@A)*s of one target, resolved as in independent_merge."""
    return independent_merge(adapter, None)[wname]


def independent_merge(adapter: str, base_sd: dict | None) -> dict:
    """Our own fp32 computation of the merged LoRA/DoRA targets, straight from the files:
    W' = bf16(f32(W) + f32(B@A)*s), s = alpha/r (alpha/sqrt(r) for rsLoRA), with r and
    alpha resolved through rank_pattern/alpha_pattern; embeddings use (B@A)^T and round the
    delta to bf16 before adding it (PEFT's Embedding.merge does); DoRA then
    scales each row by m / ||row of (W + s*B@A)||. With base_sd None: the f32 deltas."""
    from safetensors.torch import load_file

    cfg = json.loads((Path(adapter) / "adapter_config.json").read_text())
    ad = load_file(f"{adapter}/adapter_model.safetensors")
    out = {}
    for key in ad:
        if key.endswith(".lora_A.weight"):
            mod = key.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
            a, b = ad[key], ad[key.replace(".lora_A.", ".lora_B.")]
            ba = b @ a
        elif key.endswith(".lora_embedding_A"):
            mod = key.removeprefix("base_model.model.").removesuffix(".lora_embedding_A")
            a, b = ad[key], ad[key.replace("_A", "_B")]
            ba = (b @ a).T
        else:
            continue
        r = a.shape[0]
        assert r == pattern_value(cfg["rank_pattern"], mod, cfg["r"]), (adapter, mod, r)
        alpha = pattern_value(cfg["alpha_pattern"], mod, cfg["lora_alpha"])
        s = alpha / (math.sqrt(r) if cfg["use_rslora"] else r)
        delta = ba * s
        if key.endswith(".lora_embedding_A"):
            # PEFT's Embedding.merge adds delta.to(weight dtype): the delta is rounded first
            delta = delta.to(base_sd[mod + ".weight"].dtype if base_sd else torch.bfloat16).float()
        if base_sd is None:
            out[mod + ".weight"] = delta
            continue
        w = base_sd[mod + ".weight"].float() + delta
        mag = ad.get(f"base_model.model.{mod}.lora_magnitude_vector")
        if mag is not None:
            w = (mag / torch.linalg.norm(w, dim=1)).view(-1, 1) * w
        out[mod + ".weight"] = w.to(torch.bfloat16)
    return out


def independent_merge_check(adapter: str, merged_sd: dict) -> str:
    ours = independent_merge(adapter, load_base(BASE).state_dict())
    n_diff = n_el = worst = 0
    for name, w in ours.items():
        d, u = max_ulp_diff(w, merged_sd[name])
        n_diff, n_el, worst = n_diff + d, n_el + w.numel(), max(worst, u)
    assert worst <= 1, (adapter, worst)
    return (f"{adapter}: independent fp32 merge of {len(ours)} tensors differs from PEFT on "
            f"{n_diff}/{n_el} elements (max {worst} ulp)")


def make_merge_refs_and_logits() -> list[str]:
    import bitsandbytes as bnb
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    notes = []
    ids = prompt_ids(AutoTokenizer.from_pretrained(BASE))
    logits = {"ids": torch.tensor(ids, dtype=torch.int64)}
    logits["base"] = logits_of(load_base(BASE), ids)

    for adapter in ["lora-plain", "lora-rslora", "lora-patterns", "lora-save-embed", "lora-dora"]:
        merged = merged_bf16(adapter)
        sd = merged.state_dict()
        save_st({k: sd[k] for k in MERGED_SUBSET[adapter]}, f"refs/merged-{adapter}.safetensors")
        notes.append(independent_merge_check(adapter, sd))
        if adapter == "lora-save-embed":
            # the merged embed/lm_head are the adapter's trained copies, bit for bit
            ad = load_file(f"{adapter}/adapter_model.safetensors")
            for mod in ("model.embed_tokens", "lm_head"):
                copy = ad[f"base_model.model.{mod}.modules_to_save.default.weight"] if (
                    f"base_model.model.{mod}.modules_to_save.default.weight" in ad) else ad[
                    f"base_model.model.{mod}.weight"]
                assert torch.equal(copy, sd[mod + ".weight"]), mod
        if adapter == "lora-plain":
            plain_sd = {k: v.clone() for k, v in sd.items()}
        logits[f"merged-{adapter}"] = logits_of(merged, ids)

    # lora-nf4 on the bf16 base
    merged = merged_bf16("lora-nf4")
    sd = merged.state_dict()
    save_st({k: sd[k] for k in MERGED_SUBSET["lora-nf4"]}, "refs/merged-lora-nf4-on-bf16.safetensors")
    notes.append(independent_merge_check("lora-nf4", sd) + " (on the bf16 base)")
    logits["merged-lora-nf4-on-bf16"] = logits_of(merged, ids)

    # lora-nf4 on the 4-bit base: PEFT dequantizes, adds the delta and re-quantizes.
    base4 = AutoModelForCausalLM.from_pretrained("tiny-llama-nf4-dq", device_map="cpu", dtype=torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        merged4 = PeftModel.from_pretrained(base4, "lora-nf4").merge_and_unload()
    # transformers 5.23 cannot save_pretrained a model loaded from a 4-bit checkpoint
    # (NotImplementedError in revert_weight_conversion); its state_dict is the bnb layout.
    packed_sd = {k: v.detach().clone() for k, v in merged4.state_dict().items()}
    base4_sd = load_file("tiny-llama-nf4-dq/model.safetensors")
    deq, packed_out = {}, {}
    for wname in MERGED_SUBSET["lora-nf4"]:
        packed, state = bnb_state_of(packed_sd, wname)
        deq[wname] = bnb.functional.dequantize_4bit(packed, state)
        packed_out.update({k: v for k, v in packed_sd.items() if k == wname or k.startswith(wname + ".")})
        # independent: quantize_4bit(f32(dequant(W4)) + f32(B@A)*s), i.e. of an f32 tensor
        w = bnb.functional.dequantize_4bit(*bnb_state_of(base4_sd, wname)).float()
        w += independent_delta("lora-nf4", wname)
        p2, st2 = bnb.functional.quantize_4bit(w, blocksize=64, compress_statistics=True, quant_type="nf4")
        assert torch.equal(p2, packed) and torch.equal(st2.absmax, state.absmax), wname
        p3, _ = bnb.functional.quantize_4bit(w.to(torch.bfloat16), blocksize=64, compress_statistics=True,
                                             quant_type="nf4")
        notes.append(f"lora-nf4 on nf4: quantizing the bf16-rounded sum instead changes "
                     f"{int(((p3 >> 4) != (p2 >> 4)).sum() + ((p3 & 15) != (p2 & 15)).sum())}/{w.numel()} codes")
    # untouched weights: re-quantizing their dequantization keeps the codes, not the scales
    packed, state = bnb_state_of(base4_sd, L0 + "self_attn.k_proj.weight")
    p4, st4 = bnb.functional.quantize_4bit(bnb.functional.dequantize_4bit(packed, state), blocksize=64,
                                           compress_statistics=True, quant_type="nf4")
    notes.append(f"nf4-dq requant of dequant: codes equal {torch.equal(p4, packed)}, "
                 f"absmax equal {torch.equal(st4.absmax, state.absmax)}, offset {st4.offset.item()} "
                 f"vs {state.offset.item()}")
    save_st(deq, "refs/merged-lora-nf4-on-nf4.safetensors")
    save_st(packed_out, "refs/merged-lora-nf4-on-nf4-packed.safetensors")
    qs = json.loads(bytes(packed_out[MERGED_SUBSET["lora-nf4"][0] + ".quant_state.bitsandbytes__nf4"].tolist()))
    notes.append(f"lora-nf4 on nf4: PEFT == quantize_4bit(f32 merge); quant_state dtype = {qs['dtype']}")
    logits["merged-lora-nf4-on-nf4"] = logits_of(dequantized_copy(packed_sd), ids)

    # base nf4-dq dequantized (all linears), fp32 forward
    logits["base-nf4-dq"] = logits_of(dequantized_copy(load_file("tiny-llama-nf4-dq/model.safetensors")), ids)
    save_st(logits, "refs/logits.safetensors")

    notes += make_requant_refs(plain_sd)
    return notes


def dequantized_copy(packed_sd: dict):
    """The bf16 base with every bnb-serialized linear replaced by its dequantization (bf16)."""
    import bitsandbytes as bnb

    model = load_base(BASE)
    sd = model.state_dict()
    for name in sd:
        if name + ".quant_state.bitsandbytes__nf4" in packed_sd or name + ".quant_state.bitsandbytes__fp4" in packed_sd:
            packed, state = bnb_state_of(packed_sd, name)
            sd[name] = bnb.functional.dequantize_4bit(packed, state).to(torch.bfloat16)
        else:
            sd[name] = packed_sd[name]
    model.load_state_dict(sd)
    return model


def make_requant_refs(plain_sd: dict) -> list[str]:
    """bnb quantize_4bit (nf4, blocksize 64, double quant) of PEFT's merged lora-plain tensors,
    stored in bnb's serialized layout; asserted equal to what transformers writes."""
    import bitsandbytes as bnb
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = {}
    for wname in MERGED_SUBSET["lora-plain"]:
        packed, state = bnb.functional.quantize_4bit(
            plain_sd[wname], blocksize=64, compress_statistics=True, quant_type="nf4"
        )
        out[wname] = packed
        for k, v in state.as_dict(packed=True).items():
            out[f"{wname}.{k}"] = v
    save_st(out, "refs/requant-nf4-dq-lora-plain.safetensors")

    with tempfile.TemporaryDirectory() as tmp:
        model = load_base(BASE)
        model.load_state_dict(plain_sd)
        model.save_pretrained(f"{tmp}/bf16")
        q = AutoModelForCausalLM.from_pretrained(
            f"{tmp}/bf16", quantization_config=quant_config("nf4", True), device_map="cpu", dtype=torch.bfloat16
        )
        q.save_pretrained(f"{tmp}/nf4")
        tf = load_file(f"{tmp}/nf4/model.safetensors")
    for k, v in out.items():
        assert torch.equal(tf[k], v), f"transformers 4-bit save differs from quantize_4bit at {k}"
    return [f"requant: transformers load_in_4bit+save_pretrained == quantize_4bit on {len(out)} tensors"]


def make_odd_shape_ref() -> None:
    """quantize/dequantize of a tensor whose size is not a multiple of 64 (nor 64*256)."""
    import bitsandbytes as bnb

    w = (torch.randn(ODD_SHAPE, generator=seeded("odd")) * 0.05).to(torch.bfloat16)
    packed, state = bnb.functional.quantize_4bit(w, blocksize=64, compress_statistics=True, quant_type="nf4")
    out = {"input": w, "q.weight": packed}
    out.update({f"q.weight.{k}": v for k, v in state.as_dict(packed=True).items()})
    out["dequant"] = bnb.functional.dequantize_4bit(packed, state)
    save_st(out, "refs/bnb4-odd-shape.safetensors")


# ----------------------------------------------------------------------------- manifest


def write_manifest(out: Path) -> None:
    skip = {"MANIFEST.sha256", "README.md"}
    lines = []
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and rel not in skip:
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {rel}")
    (out / "MANIFEST.sha256").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    out = args.out.resolve()

    check_versions()
    torch.set_num_threads(1)
    quiet()

    # Build next to the target and swap it in at the end, so a failed run leaves the old
    # fixtures alone; the hand-written README is kept.
    if out.exists() and any(p.name != "README.md" for p in out.iterdir()) \
            and not (out / "MANIFEST.sha256").exists():
        sys.exit(f"{out} holds files but no MANIFEST.sha256: refusing to replace it")
    work = out.with_name(out.name + ".partial")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    # Work inside the build dir so that recorded model paths are the relative dir names.
    os.chdir(work)
    Path("refs").mkdir()

    tok = make_tokenizer(Path(BASE))
    make_base(Path(BASE), tok)
    for name, qt, dq in QUANT_BASES:
        make_quant_base(name, qt, dq, tok)
    make_dequant_refs()
    make_odd_shape_ref()
    make_adapters(tok)
    notes = make_merge_refs_and_logits()
    write_manifest(work)
    os.chdir(HERE)
    if (out / "README.md").exists():
        shutil.copyfile(out / "README.md", work / "README.md")
    if out.exists():
        shutil.rmtree(out)
    work.rename(out)
    for n in notes:
        print(n)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
