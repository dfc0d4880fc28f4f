#!/usr/bin/env python3
"""Write what llm-export's merged_16bit/ and merged_4bit/ outputs should be, made by the real
tools (PEFT merge_and_unload + save_pretrained; transformers load_in_4bit + save_pretrained),
so that check_hf_outputs.py can be tried on known-good (and, edited, known-bad) outputs:

    HF_HUB_OFFLINE=1 $VENV/bin/python tests/oracle/make_peft_outputs.py --out /tmp/peft-out \
        [--base tiny-llama] [--adapter lora-plain]
    HF_HUB_OFFLINE=1 $VENV/bin/python tests/oracle/check_hf_outputs.py --out /tmp/peft-out
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_hf_outputs import DEFAULT_FIXTURES, reference_merged  # noqa: E402
from fixture_common import quiet  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    ap.add_argument("--base", default="tiny-llama")
    ap.add_argument("--adapter", default="lora-plain")
    args = ap.parse_args()
    quiet()
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    base_dir = args.fixtures / args.base
    adapter_dir = args.fixtures / args.adapter
    tok_dir = adapter_dir if (adapter_dir / "tokenizer.json").exists() else base_dir
    tok = AutoTokenizer.from_pretrained(str(tok_dir))

    merged = reference_merged(base_dir, adapter_dir)
    merged.save_pretrained(str(args.out / "merged_16bit"))
    tok.save_pretrained(str(args.out / "merged_16bit"))
    q = AutoModelForCausalLM.from_pretrained(
        str(args.out / "merged_16bit"),
        quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        ),
        device_map="cpu",
        dtype=torch.bfloat16,
    )
    q.save_pretrained(str(args.out / "merged_4bit"))
    tok.save_pretrained(str(args.out / "merged_4bit"))
    print(f"wrote {args.out}/merged_16bit and {args.out}/merged_4bit")


if __name__ == "__main__":
    main()
