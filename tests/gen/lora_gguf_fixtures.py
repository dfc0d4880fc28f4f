#!/usr/bin/env python3
"""Generate the GGUF LoRA reference fixtures in tests/fixtures/lora_gguf/ with the real tools.

1. Makes PEFT adapters on some of the tiny GGUF fixture models (tests/fixtures/gguf/models/):
   plain ones on Qwen2.5, Gemma 2 and Phi-3.5 (fused qkv/gate_up; saved in bf16), and one with
   rsLoRA plus rank and alpha patterns on Qwen2.5, into `adapters/<name>/`.
2. Runs llama.cpp's convert_lora_to_gguf.py (the copy vendored by llama-cpp-python 0.3.36,
   llama.cpp 0c1e57098bba) with `--base` on those and on the tiny-llama adapters of
   tests/fixtures/tiny/ (lora-plain, lora-rslora, lora-patterns).
3. Stores `refs/<case>.<type>.json`: the converter's file as a compact reference (every KV,
   every tensor's name, type, extents, offset and sha256; see gguf_fixtures.py), its default
   file name, and, where PEFT's scales differ from what the converter writes (it ignores
   use_rslora, and one alpha cannot serve every alpha_pattern entry), the expected corrections,
   computed here from the module ranks, alphas and scales PEFT itself resolves:
   - `adapter.lora.alpha`: the alpha most modules need for llama.cpp's alpha/r to give PEFT's
     scale (alpha·√r with rsLoRA);
   - for every other module, its `lora_b` multiplied by (scale·r / that alpha) in float64 from
     the converter's own f32 output, rounded to float32 and then to the file's type: sha256.

Run with the oracle venv (torch, transformers, peft, gguf):
    HF_HUB_OFFLINE=1 python tests/gen/lora_gguf_fixtures.py [--llama-cpp DIR]
Seeded and single-threaded, so two runs give the same files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gguf_fixtures import DEFAULT_LLAMA_CPP, compact_reference  # noqa: E402
from make_fixtures import fix_adapter_config, randomize_adapter  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "lora_gguf"
GGUF_MODELS = FIXTURES / "gguf" / "models"

LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# Adapters made here: base model (under gguf/models), PEFT LoraConfig arguments, saved dtype.
ADAPTERS: dict[str, dict] = {
    "qwen2-plain": {
        "base": "Qwen2.5-0.5B-Instruct",
        "config": {"r": 4, "lora_alpha": 8, "target_modules": LINEAR},
    },
    "gemma2-plain": {
        "base": "gemma-2-2b-it",
        "config": {"r": 4, "lora_alpha": 16, "target_modules": LINEAR},
    },
    "phi3-plain": {
        "base": "Phi-3.5-mini-instruct",
        "config": {"r": 8, "lora_alpha": 8,
                   "target_modules": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]},
        "save_dtype": "bfloat16",
    },
    # Several effective alphas under rsLoRA: most modules need 16·√8, k needs 16·√4, layer 1's
    # down_proj 16·√2 and layer 0's o_proj 4·√8.
    "qwen2-rslora-patterns": {
        "base": "Qwen2.5-0.5B-Instruct",
        "config": {"r": 8, "lora_alpha": 16, "use_rslora": True,
                   "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
                   "rank_pattern": {"layers.1.mlp.down_proj": 2, "k_proj": 4},
                   "alpha_pattern": {"layers.0.self_attn.o_proj": 4}},
    },
}

# (case, base dir and adapter dir relative to tests/fixtures, converter outtypes)
CASES = [
    ("lora-plain", "tiny/tiny-llama", "tiny/lora-plain", ["f32", "f16", "bf16", "q8_0"]),
    ("lora-rslora", "tiny/tiny-llama", "tiny/lora-rslora", ["f16"]),
    ("lora-patterns", "tiny/tiny-llama", "tiny/lora-patterns", ["f16"]),
    ("qwen2-plain", "gguf/models/Qwen2.5-0.5B-Instruct", "lora_gguf/adapters/qwen2-plain",
     ["f16", "q8_0"]),
    ("gemma2-plain", "gguf/models/gemma-2-2b-it", "lora_gguf/adapters/gemma2-plain", ["f16"]),
    ("phi3-plain", "gguf/models/Phi-3.5-mini-instruct", "lora_gguf/adapters/phi3-plain", ["f16"]),
    ("qwen2-rslora-patterns", "gguf/models/Qwen2.5-0.5B-Instruct",
     "lora_gguf/adapters/qwen2-rslora-patterns", ["f16"]),
]


def make_adapter(name: str, spec: dict) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from fixture_common import load_base

    dest = OUT / "adapters" / name
    if dest.exists():
        shutil.rmtree(dest)
    # Load the base by its folder name, so the saved config and card name it that way.
    cwd = Path.cwd()
    os.chdir(GGUF_MODELS)
    try:
        base = load_base(spec["base"], dtype=torch.float32)
        model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM", **spec["config"]))
        randomize_adapter(model, name)
        if "save_dtype" in spec:
            model = model.to(getattr(torch, spec["save_dtype"]))
        model.save_pretrained(str(dest))
    finally:
        os.chdir(cwd)
    fix_adapter_config(dest, spec["base"])


def convert(llama_cpp: Path, base: Path, adapter: Path, outtype: str, out_dir: Path) -> Path:
    """Runs the converter with its default file name; returns the file."""
    out_dir.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(llama_cpp / "gguf-py"), HF_HUB_OFFLINE="1")
    subprocess.run(
        [sys.executable, str(llama_cpp / "convert_lora_to_gguf.py"), "--base", str(base),
         "--outtype", outtype, "--outfile", str(out_dir), str(adapter)],
        check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    (path,) = out_dir.iterdir()
    return path


def peft_modules(base: Path, adapter: Path) -> tuple[dict, bool]:
    """{module name: (r, alpha, scale)} as PEFT resolves them, and use_rslora."""
    import torch
    from peft import PeftConfig, PeftModel
    from fixture_common import load_base

    model = PeftModel.from_pretrained(load_base(base, dtype=torch.float32), str(adapter))
    cfg = PeftConfig.from_pretrained(str(adapter))
    out = {}
    for name, m in model.base_model.model.named_modules():
        if isinstance(getattr(m, "scaling", None), dict) and "default" in m.scaling:
            out[name] = (m.r["default"], float(m.lora_alpha["default"]), m.scaling["default"])
    return out, bool(cfg.use_rslora)


def expected_corrections(base: Path, adapter: Path, f32_file: Path, outtype: str) -> dict | None:
    """What a correct file changes in the converter's: None when nothing."""
    import gguf

    modules, rslora = peft_modules(base, adapter)
    needed = {}
    for name, (r, alpha, scale) in modules.items():
        e = alpha * math.sqrt(r) if rslora else alpha
        assert math.isclose(e / r, scale, rel_tol=1e-12), (name, e, r, scale)
        needed[name] = e
    counts = Counter(needed.values()).most_common()
    assert len(counts) == 1 or counts[0][1] > counts[1][1], f"tie in needed alphas: {counts}"
    alpha = counts[0][0]
    written = np.float32(alpha)
    lparams = json.loads((adapter / "adapter_config.json").read_text())
    reader = gguf.GGUFReader(str(f32_file))
    arch = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[
        reader.fields["general.architecture"].contents()]
    n_blocks = 1 + max(int(n.split(".")[2]) for n in modules if ".layers." in n)
    names = gguf.get_tensor_name_map(arch, n_blocks)
    tensors = {t.name: t for t in reader.tensors}
    lora_b = {}
    for name, e in needed.items():
        if e == alpha:
            continue
        gguf_name = names.get_name(name + ".weight", try_suffixes=(".weight",))
        assert gguf_name, name
        b = np.array(tensors[gguf_name + ".lora_b"].data, dtype=np.float32)
        factor = e / float(written)
        scaled = (b.astype(np.float64) * factor).astype(np.float32)
        data = scaled.astype({"f16": np.float16, "f32": np.float32}[outtype]).tobytes()
        lora_b[gguf_name + ".lora_b"] = {"factor": factor,
                                         "sha256": hashlib.sha256(data).hexdigest()}
    if written == np.float32(lparams["lora_alpha"]) and not lora_b:
        return None
    return {"adapter.lora.alpha": {"show": float(written), "hex": written.tobytes().hex()},
            "lora_b": lora_b}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--llama-cpp", type=Path, default=DEFAULT_LLAMA_CPP)
    args = ap.parse_args()

    import torch
    from fixture_common import quiet

    torch.set_num_threads(1)
    quiet()
    for name, spec in ADAPTERS.items():
        make_adapter(name, spec)
    refs = OUT / "refs"
    if refs.exists():
        shutil.rmtree(refs)
    refs.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for case, base, adapter, outtypes in CASES:
            base_dir, adapter_dir = FIXTURES / base, FIXTURES / adapter
            f32_file = None
            for outtype in outtypes:
                path = convert(args.llama_cpp, base_dir, adapter_dir, outtype,
                               tmp / case / outtype)
                ref = {"base": base, "adapter": adapter, "outtype": outtype,
                       "file_name": path.name, "converter": compact_reference(path)}
                if outtype == "f32":
                    f32_file = path
                if outtype in ("f16", "f32"):
                    if f32_file is None:
                        f32_file = convert(args.llama_cpp, base_dir, adapter_dir, "f32",
                                           tmp / case / "f32-source")
                    ref["expected"] = expected_corrections(base_dir, adapter_dir, f32_file,
                                                           outtype)
                (refs / f"{case}.{outtype}.json").write_text(json.dumps(ref, indent=1) + "\n")
            print(f"{case}: ok", file=sys.stderr)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
