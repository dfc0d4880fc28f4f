"""What the fixture generator and the oracle check share: the prompt, loaders, bnb state
handling and safetensors saving."""

from __future__ import annotations

import logging
import warnings

import torch

# The conversation whose logits are recorded in refs/logits.safetensors (ChatML via the
# tokenizer's chat template, no generation prompt).
CHAT_PROMPT = [
    {"role": "user", "content": "Name a color."},
    {"role": "assistant", "content": "Blue."},
]
# refs/logits.safetensors keeps the logits of the last positions only.
LOGITS_POSITIONS = 8


def quiet() -> None:
    """Silence the known harmless chatter (bnb's missing CPU kernel package, merge notes)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*gemm_4bit_forward.*")
    warnings.filterwarnings("ignore", message=".*Merge lora module to 4-bit linear.*")
    warnings.filterwarnings("ignore", message=".*save_embedding_layers.*")
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")


def load_base(path, dtype=torch.bfloat16):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, device_map="cpu")


def prompt_ids(tok) -> list[int]:
    ids = tok.apply_chat_template(CHAT_PROMPT, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return list(ids)


def bnb_state_of(sd: dict, wname: str):
    """(packed codes, bnb QuantState) of weight `wname` from a bnb-serialized state dict."""
    import bitsandbytes as bnb

    qs = {k[len(wname) + 1:]: v for k, v in sd.items() if k.startswith(wname + ".")}
    return sd[wname], bnb.functional.QuantState.from_dict(qs, device=torch.device("cpu"))


def save_st(tensors: dict, path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})
