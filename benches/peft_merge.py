"""The reference path users run today: load the base with transformers (CPU, bf16), apply the
adapter with PEFT, merge_and_unload, save_pretrained. usage: python peft_merge.py BASE LORA OUT"""
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

base, lora, out = sys.argv[1:4]
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16, device_map="cpu")
model = PeftModel.from_pretrained(model, lora).merge_and_unload()
model.save_pretrained(out, max_shard_size="5GB")
