"""Writes a synthetic Llama checkpoint (bf16, 2 shards + index) and a LoRA adapter (F32, r=16 on
all 7 linear types) shaped like ORACLES.md's performance anchor: hidden 2048, intermediate 5632,
10 layers, 32 heads / 4 KV heads, vocab 32000 (about 1.14 GB). Needs numpy only.

usage: python make_synthetic.py OUT_DIR [--layers N]
"""
import json
import os
import struct
import sys

import numpy as np


def bf16_bytes(rng, shape, scale):
    x = (rng.standard_normal(size=shape, dtype=np.float32) * scale).view(np.uint32)
    # round to nearest even into the high half, as torch does
    x = ((x + 0x7FFF + ((x >> 16) & 1)) >> 16).astype(np.uint16)
    return x.tobytes()


def write_safetensors(path, tensors, dtype_of):
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, (shape, data) in tensors.items():
        header[name] = {"dtype": dtype_of(name), "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, data in tensors.values():
            f.write(data)


def main():
    out = sys.argv[1]
    layers = int(sys.argv[sys.argv.index("--layers") + 1]) if "--layers" in sys.argv else 10
    hidden, inter, heads, kv, vocab, r = 2048, 5632, 32, 4, 32000, 16
    head_dim = hidden // heads
    rng = np.random.default_rng(0)
    base, lora = os.path.join(out, "base"), os.path.join(out, "lora")
    os.makedirs(base, exist_ok=True)
    os.makedirs(lora, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
        "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "vocab_size": vocab, "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
        "dtype": "bfloat16", "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2,
    }
    json.dump(config, open(os.path.join(base, "config.json"), "w"), indent=2)
    linears = {
        "self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (kv * head_dim, hidden),
        "self_attn.v_proj": (kv * head_dim, hidden), "self_attn.o_proj": (hidden, hidden),
        "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden), "mlp.down_proj": (hidden, inter),
    }
    shards = [{}, {}]
    shards[0]["model.embed_tokens.weight"] = ((vocab, hidden), bf16_bytes(rng, (vocab, hidden), 0.02))
    for i in range(layers):
        s = shards[0 if i < layers // 2 else 1]
        for m, shape in linears.items():
            s[f"model.layers.{i}.{m}.weight"] = (shape, bf16_bytes(rng, shape, 0.02))
        for n in ("input_layernorm", "post_attention_layernorm"):
            s[f"model.layers.{i}.{n}.weight"] = ((hidden,), bf16_bytes(rng, (hidden,), 0.1))
    shards[1]["model.norm.weight"] = ((hidden,), bf16_bytes(rng, (hidden,), 0.1))
    shards[1]["lm_head.weight"] = ((vocab, hidden), bf16_bytes(rng, (vocab, hidden), 0.02))
    weight_map, total = {}, 0
    for k, s in enumerate(shards):
        name = f"model-{k + 1:05d}-of-00002.safetensors"
        write_safetensors(os.path.join(base, name), s, lambda _: "BF16")
        for t, (_, data) in s.items():
            weight_map[t] = name
            total += len(data)
    json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, open(os.path.join(base, "model.safetensors.index.json"), "w"), indent=2)

    adapter = {}
    for i in range(layers):
        for m, (o, n) in linears.items():
            key = f"base_model.model.model.layers.{i}.{m}"
            adapter[f"{key}.lora_A.weight"] = ((r, n), (rng.standard_normal((r, n), dtype=np.float32) * 0.01).tobytes())
            adapter[f"{key}.lora_B.weight"] = ((o, r), (rng.standard_normal((o, r), dtype=np.float32) * 0.01).tobytes())
    write_safetensors(os.path.join(lora, "adapter_model.safetensors"), adapter, lambda _: "F32")
    json.dump({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": 32, "lora_dropout": 0.0,
        "target_modules": sorted(m.split(".")[1] for m in linears), "bias": "none",
        "base_model_name_or_path": base, "fan_in_fan_out": False, "use_rslora": False, "use_dora": False,
        "inference_mode": True,
    }, open(os.path.join(lora, "adapter_config.json"), "w"), indent=2)
    print(f"wrote {base} ({total / 1e9:.2f} GB bf16) and {lora}")


if __name__ == "__main__":
    main()
