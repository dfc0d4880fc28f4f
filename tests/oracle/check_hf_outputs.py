#!/usr/bin/env python3
"""Check llm-export's Hugging Face outputs against transformers, PEFT and bitsandbytes.

Runs with the oracle venv (torch, transformers, peft, bitsandbytes), not in CI:

    HF_HUB_OFFLINE=1 /root/.cache/llm-export/venv-oracle/bin/python tests/oracle/check_hf_outputs.py \
        --out OUT [--base tiny-llama] [--adapter lora-plain] [--fixtures tests/fixtures/tiny]

OUT is an `llm-export export ... --out OUT` directory; whichever of OUT/merged_16bit and
OUT/merged_4bit exist are checked. --base and --adapter name directories (relative to
--fixtures, or paths). The reference is recomputed here with the real tools:

* merged_16bit: PEFT `merge_and_unload` of the adapter onto the base (a 4-bit base is first
  dequantized by transformers `model.dequantize()`, i.e. bnb `dequantize_4bit` to bf16).
  (c) every tensor must be within 1 bf16 ulp of PEFT's, with no missing or extra tensors;
  (a) transformers must load the folder without missing/unexpected keys, its tokenizer must
  give the fixture prompt's ids, and its fp32 logits must match the reference (and the
  stored refs/logits.safetensors entry when there is one).
* merged_4bit: transformers+bitsandbytes must load it on CPU without key warnings (b); its
  serialized tensors are compared with `load_in_4bit` of the reference merged bf16 model
  (untouched weights may instead be the base's own packed tensors), and its logits with that
  model's.

Prints one line per check and exits 1 if any fails.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gen"))
from fixture_common import prompt_ids, quiet  # noqa: E402

DEFAULT_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tiny"
LOGIT_TOL = 1e-2  # merged_16bit within 1 ulp of PEFT's moves fp32 logits by ~1e-4
CODE_TOL = 1e-4  # fraction of differing 4-bit codes tolerated (from 1-ulp input differences)


class Report:
    def __init__(self):
        self.failed = 0

    def check(self, ok: bool, what: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        self.failed += not ok

    def info(self, what: str) -> None:
        print(f"     {what}")


def is_4bit(model_dir: Path) -> bool:
    cfg = json.loads((model_dir / "config.json").read_text())
    return cfg.get("quantization_config", {}).get("load_in_4bit", False)


def load_safetensors_dir(d: Path) -> dict:
    from safetensors.torch import load_file

    sd = {}
    for f in sorted(d.glob("*.safetensors")):
        sd.update(load_file(str(f)))
    return sd


def ulp_diff(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| in units in the last place, for two bf16 tensors."""
    ia = a.contiguous().view(torch.int16).to(torch.int32)
    ib = b.contiguous().view(torch.int16).to(torch.int32)
    ia = torch.where(ia < 0, -(ia & 0x7FFF), ia)
    ib = torch.where(ib < 0, -(ib & 0x7FFF), ib)
    return (ia - ib).abs()


def load_checked(path: Path, rep: Report, label: str, **kw):
    """from_pretrained with loading info and captured key warnings; fails on any of them."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    records: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Grab(level=logging.WARNING)
    hf_logger = logging.getLogger("transformers")
    hf_logger.addHandler(handler)
    hf_logging.set_verbosity_warning()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model, info = AutoModelForCausalLM.from_pretrained(
                str(path), device_map="cpu", output_loading_info=True, **kw
            )
    except Exception as e:  # noqa: BLE001 - a folder transformers cannot load is a failed check
        rep.check(False, f"{label}: transformers cannot load it: {type(e).__name__}: {str(e)[:300]}")
        return None
    finally:
        hf_logger.removeHandler(handler)
        hf_logging.set_verbosity_error()
    msgs = records + [str(w.message) for w in caught]
    keyish = [m for m in msgs if any(s in m.lower() for s in ("missing", "unexpected", "newly initialized",
                                                                 "not used", "mismatch", "not initialized"))]
    bad = {k: sorted(v) for k, v in info.items() if v}
    rep.check(not bad and not keyish, f"{label}: transformers loads it without key problems"
              + (f" {bad} {keyish[:3]}" if bad or keyish else ""))
    return model.eval()


@torch.no_grad()
def logits_of(model, ids, fp32: bool = True) -> torch.Tensor:
    """Logits of all positions; fp32 runs a float32 copy of a 16-bit model."""
    if fp32:
        model = copy.deepcopy(model).float()
    return model(torch.tensor([ids])).logits[0].float()


def compare_logits(rep: Report, label: str, got: torch.Tensor, want: torch.Tensor, tol: float,
                   need_top1: float = 1.0) -> None:
    d = (got - want).abs().max().item()
    top1 = (got.argmax(-1) == want.argmax(-1)).float().mean().item()
    rep.check(d <= tol and top1 >= need_top1,
              f"{label}: max|Δlogit| {d:.3g} (tol {tol:g}), top-1 agreement {top1:.0%}")


def reference_merged(base_dir: Path, adapter_dir: Path | None):
    """PEFT's merged model in bf16 (base dequantized first when it is 4-bit)."""
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if is_4bit(base_dir):
        # A fresh bf16 model holding the dequantized weights: a model loaded from a 4-bit
        # checkpoint keeps weight conversions that make save_pretrained fail (transformers 5.23).
        sd = AutoModelForCausalLM.from_pretrained(str(base_dir), device_map="cpu").dequantize().state_dict()
        config = AutoConfig.from_pretrained(str(base_dir))
        del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.load_state_dict({k: v.to(torch.bfloat16) for k, v in sd.items()})
    else:
        model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.bfloat16, device_map="cpu")
    if adapter_dir is None:
        return model
    if (adapter_dir / "tokenizer.json").exists():
        n = len(AutoTokenizer.from_pretrained(str(adapter_dir)))
        if n != model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()


def check_merged_16bit(rep, out16: Path, ref_model, ids, stored_logits):
    from transformers import AutoTokenizer

    ref_sd = {k: v for k, v in ref_model.state_dict().items()}
    got_sd = load_safetensors_dir(out16)
    missing, extra = sorted(set(ref_sd) - set(got_sd)), sorted(set(got_sd) - set(ref_sd))
    rep.check(not missing and not extra, f"merged_16bit: tensor names match PEFT ({len(ref_sd)} tensors)"
              + (f" missing {missing[:5]} extra {extra[:5]}" if missing or extra else ""))
    n_el = n_diff = worst = 0
    worst_name, bad_dtype = "", []
    for name in sorted(set(ref_sd) & set(got_sd)):
        r, g = ref_sd[name], got_sd[name]
        if g.dtype != r.dtype or g.shape != r.shape:
            bad_dtype.append(f"{name} {g.dtype}{list(g.shape)} vs {r.dtype}{list(r.shape)}")
            continue
        d = ulp_diff(g, r)
        n_el += d.numel()
        n_diff += int((d > 0).sum())
        if d.numel() and int(d.max()) > worst:
            worst, worst_name = int(d.max()), name
    rep.check(not bad_dtype, "merged_16bit: dtypes and shapes match PEFT" + (f" {bad_dtype[:3]}" if bad_dtype else ""))
    rep.check(worst <= 1, f"merged_16bit: weights vs PEFT: {n_diff}/{n_el} elements differ, max {worst} ulp"
              + (f" (at {worst_name})" if worst else ""))

    model = load_checked(out16, rep, "merged_16bit", dtype=torch.bfloat16)
    if model is None:
        return
    try:
        tok_ids = prompt_ids(AutoTokenizer.from_pretrained(str(out16)))
        rep.check(tok_ids == ids, f"merged_16bit: tokenizer + chat template give the fixture prompt ids ({len(ids)})")
    except Exception as e:  # noqa: BLE001 - report any loading problem as a failed check
        rep.check(False, f"merged_16bit: tokenizer does not load: {e}")
    got = logits_of(model, ids)
    want = logits_of(ref_model, ids)
    compare_logits(rep, "merged_16bit: fp32 logits vs PEFT merged", got, want, LOGIT_TOL)
    if stored_logits is not None:
        n = stored_logits.shape[0]
        compare_logits(rep, "merged_16bit: fp32 logits vs refs/logits.safetensors", got[-n:], stored_logits, LOGIT_TOL)


def check_merged_4bit(rep, out4: Path, ref_model, base_dir: Path, ids):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    qc = json.loads((out4 / "config.json").read_text()).get("quantization_config", {})
    rep.check(qc.get("quant_method") == "bitsandbytes" and qc.get("load_in_4bit") is True,
              f"merged_4bit: config.json quantization_config is bnb 4-bit ({qc.get('bnb_4bit_quant_type')}, "
              f"double quant {qc.get('bnb_4bit_use_double_quant')})")
    bnb_cfg = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=qc.get("bnb_4bit_quant_type", "nf4"),
        bnb_4bit_use_double_quant=qc.get("bnb_4bit_use_double_quant", True),
        bnb_4bit_compute_dtype=getattr(torch, qc.get("bnb_4bit_compute_dtype", "bfloat16")),
    )
    got_model = load_checked(out4, rep, "merged_4bit")
    with tempfile.TemporaryDirectory() as tmp:
        ref_model.to(torch.bfloat16).save_pretrained(f"{tmp}/bf16")
        ref4 = AutoModelForCausalLM.from_pretrained(
            f"{tmp}/bf16", quantization_config=bnb_cfg, device_map="cpu", dtype=torch.bfloat16
        ).eval()
        ref4_sd = {k: v.detach().clone() for k, v in ref4.state_dict().items()}

    got_sd = load_safetensors_dir(out4)
    base_sd = load_safetensors_dir(base_dir) if is_4bit(base_dir) else {}
    missing, extra = sorted(set(ref4_sd) - set(got_sd)), sorted(set(got_sd) - set(ref4_sd))
    rep.check(not missing and not extra, f"merged_4bit: serialized keys match transformers' ({len(ref4_sd)} keys)"
              + (f" missing {missing[:5]} extra {extra[:5]}" if missing or extra else ""))
    codes = code_diff = scales = scale_diff = other_diff = from_base = 0
    for name in sorted(set(ref4_sd) & set(got_sd)):
        r, g = ref4_sd[name], got_sd[name]
        packed = name + ".absmax" in ref4_sd  # a 4-bit weight: uint8, two codes per byte
        if packed:
            codes += r.numel() * 2
        if g.shape == r.shape and g.dtype == r.dtype and torch.equal(g, r):
            continue
        if name in base_sd and torch.equal(g, base_sd[name]):
            from_base += 1  # an untouched weight copied from the 4-bit base as is
            continue
        if ".quant_state.bitsandbytes__" in name:
            jr, jg = json.loads(bytes(r.tolist())), json.loads(bytes(g.tolist()))
            # the offset is the mean absmax: it moves a little with the inputs
            off_r, off_g = jr.pop("nested_offset", 0.0), jg.pop("nested_offset", 0.0)
            if jr != jg or abs(off_r - off_g) > 1e-3 * abs(off_r):
                other_diff += 1
                rep.info(f"{name}: {jg} != {jr}")
        elif packed and g.shape == r.shape and g.dtype == r.dtype:
            code_diff += int(((g >> 4) != (r >> 4)).sum() + ((g & 15) != (r & 15)).sum())
        elif name.endswith((".absmax", ".nested_absmax")) and g.shape == r.shape and g.dtype == r.dtype:
            # a block whose input moved by an ulp may get another scale, but only a few may
            scale_diff += int((g != r).sum())
            scales += r.numel()
        else:
            other_diff += 1
            rep.info(f"{name}: differs ({g.dtype}{list(g.shape)} vs {r.dtype}{list(r.shape)})")
    ok = code_diff <= CODE_TOL * codes and scale_diff <= max(1, 10 * CODE_TOL * codes / 64) and not other_diff
    rep.check(ok, f"merged_4bit: vs load_in_4bit of PEFT's merged bf16: {code_diff}/{codes} codes and "
                  f"{scale_diff} block scales differ, {other_diff} other tensors differ, "
                  f"{from_base} tensors copied from the base")

    if got_model is None:
        return
    got = logits_of(got_model, ids, fp32=False)
    want = logits_of(ref4, ids, fp32=False)
    compare_logits(rep, "merged_4bit: bnb logits vs load_in_4bit(PEFT merged)", got, want,
                   0.0 if code_diff == 0 and from_base == 0 else 0.5, need_top1=0.9)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="llm-export --out directory")
    ap.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    ap.add_argument("--base", default="tiny-llama")
    ap.add_argument("--adapter", default="lora-plain", help="adapter dir, or 'none'")
    ap.add_argument("--logits-key", default=None,
                    help="entry of refs/logits.safetensors to compare with (default merged-<adapter> "
                         "for the bf16 base tiny-llama, none otherwise)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    quiet()
    from safetensors.torch import load_file

    def resolve(p):
        p = Path(p)
        return p if p.exists() else args.fixtures / p

    base_dir = resolve(args.base)
    adapter_dir = None if args.adapter == "none" else resolve(args.adapter)
    refs = load_file(str(args.fixtures / "refs" / "logits.safetensors"))
    ids = refs["ids"].tolist()
    key = args.logits_key
    if key is None and args.base == "tiny-llama":
        key = "base" if adapter_dir is None else f"merged-{adapter_dir.name}"
    stored = refs.get(key) if key else None

    rep = Report()
    print(f"reference: PEFT merge of {adapter_dir} onto {base_dir}; logits ref: {key if stored is not None else '-'}")
    ref_model = reference_merged(base_dir, adapter_dir).eval()
    checked = False
    if (args.out / "merged_16bit").is_dir():
        check_merged_16bit(rep, args.out / "merged_16bit", ref_model, ids, stored)
        checked = True
    if (args.out / "merged_4bit").is_dir():
        check_merged_4bit(rep, args.out / "merged_4bit", ref_model, base_dir, ids)
        checked = True
    rep.check(checked, f"{args.out} has merged_16bit/ or merged_4bit/")
    print(f"{'FAILED' if rep.failed else 'PASSED'} ({rep.failed} failed)")
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
