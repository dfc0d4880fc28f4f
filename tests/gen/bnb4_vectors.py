"""Generate the bitsandbytes 4-bit reference vectors in tests/fixtures/bnb4/.

Run with the oracle venv (torch + bitsandbytes 0.50.2 + transformers, CPU only):

    /root/.cache/llm-export/venv-oracle/bin/python tests/gen/bnb4_vectors.py

Everything here comes out of bitsandbytes / torch / transformers themselves; nothing is computed
with our Rust code. Inputs are drawn from seeded torch generators, so reruns give the same bytes
(on the same CPU capability; see README.md).
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import bitsandbytes  # noqa: E402
import bitsandbytes.functional as F  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "bnb4")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def dynamic_map_in_subprocess(capability):
    """create_dynamic_map() as computed by a torch process forced to one CPU capability."""
    code = (
        "import warnings; warnings.filterwarnings('ignore');"
        "import sys, bitsandbytes.functional as F;"
        "sys.stdout.buffer.write(F.create_dynamic_map().numpy().tobytes())"
    )
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
    raw = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True).stdout
    assert len(raw) == 1024, len(raw)
    return torch.from_numpy(np.frombuffer(raw, dtype=np.float32).copy())


def content(kind, shape, dtype, seed):
    """Deterministic input tensor of `shape` in `dtype` (values exactly representable in it)."""
    g = torch.Generator().manual_seed(seed)
    n = int(np.prod(shape))
    if kind == "randn":
        x = torch.randn(n, generator=g) * 0.05
    elif kind == "special":
        # Zero rows, all-zero blocks, large outliers, +-max of the block, denser small values.
        x = torch.randn(n, generator=g) * 0.02
        x[0:64] = 0.0
        x[200:210] = 0.0
        x[70] = 40.0
        x[130] = -3000.0
        x[260:264] = torch.tensor([1.0, -1.0, 0.5, -0.5])
        x[-5:] = torch.tensor([7.0, -7.0, 0.0, 1e-3, -1e-3])[: min(5, n)]
    elif kind == "tiny":
        # bf16/f16 subnormals and values around them.
        x = torch.randn(n, generator=g) * 3e-39 if dtype != torch.float16 else torch.randn(n, generator=g) * 3e-6
    elif kind == "ties":
        # f32 only: blocks whose scale is a power of two and whose other values sit exactly on the
        # midpoints between neighbouring NF4 / FP4 codes (and one f32 ulp either side of them).
        mids = []
        for qt in ("nf4", "fp4"):
            c = torch.sort(F.get_4bit_type(qt, device="cpu"))[0]
            mids.append((c[:-1] + c[1:]) / 2)
        m = torch.cat(mids)
        vals = torch.cat([m, torch.nextafter(m, torch.tensor(2.0)), torch.nextafter(m, torch.tensor(-2.0)), -m])
        x = torch.zeros(n)
        pos, scale, block = 0, 1.0, 0
        while pos < n:
            take = min(n - pos - 1, 63)
            x[pos] = scale
            x[pos + 1 : pos + 1 + take] = torch.roll(vals, -63 * block)[:take] * scale
            pos += 64
            block += 1
            scale *= 2.0 if scale < 8 else 1 / 16.0
    else:
        raise ValueError(kind)
    x = x.to(dtype)
    if kind == "special":
        assert torch.isfinite(x).all()
    return x.reshape(shape)


def dequant_ref(packed, absmax, qs, n):
    """Reference dequantization, cross-checked between bnb's two CPU implementations.

    Returns bnb's pure-torch `dequantize_4bit` (backends/default, which bnb's CPU backend itself
    uses for odd last dims and block sizes >= 2048) and the number of elements where bnb's native
    CPU kernel differs from it. The native kernel runs on a one-row view: its AVX-512 version indexes
    absmax as row * (cols // blocksize) + col // blocksize, wrong when blocks straddle rows, and
    right with a single row. Its only other differences are asserted to be the two known quirks:
    -0.0 instead of +0.0 for FP4 code 8 (scalar kernel's table) and bf16 subnormals flushed to zero
    (AVX-512 kernel's vcvtneps2bf16 on AVX512-BF16 CPUs).
    """
    from bitsandbytes.backends.default.ops import _dequantize_4bit_compute

    flat = F.QuantState(
        absmax=qs.absmax,
        shape=torch.Size([n]),
        code=qs.code,
        blocksize=qs.blocksize,
        quant_type=qs.quant_type,
        dtype=qs.dtype,
        offset=qs.offset,
        state2=qs.state2,
    )
    native = F.dequantize_4bit(packed, flat).reshape(-1)
    code = F.get_4bit_type(qs.quant_type, device="cpu")
    ref = _dequantize_4bit_compute.__wrapped__(packed.reshape(-1), absmax, code, qs.blocksize, (n,), qs.dtype)
    differ = native.float().view(torch.int32) != ref.float().view(torch.int32)
    nz = native[differ].float()
    rz = ref[differ].float()
    neg_zero = (qs.quant_type == "fp4") & (nz == 0) & torch.signbit(nz) & (rz == 0) & ~torch.signbit(rz)
    flushed = (qs.dtype == torch.bfloat16) & (nz == 0) & (rz.abs() < 2.0**-126)
    assert bool((neg_zero | flushed).all()), (qs.quant_type, qs.dtype, nz[~(neg_zero | flushed)][:5])
    return ref, int(differ.sum())


CASES = [
    # (name, quant_type, dtype, shape, blocksize, content, seed)
    ("nf4_bf16_64", "nf4", "bfloat16", (32, 128), 64, "randn", 1),
    ("fp4_bf16_64", "fp4", "bfloat16", (32, 128), 64, "randn", 2),
    ("nf4_f16_64", "nf4", "float16", (32, 128), 64, "randn", 3),
    ("fp4_f16_64", "fp4", "float16", (32, 128), 64, "randn", 4),
    ("nf4_f32_64", "nf4", "float32", (32, 128), 64, "randn", 5),
    ("fp4_f32_64", "fp4", "float32", (32, 128), 64, "randn", 6),
    ("nf4_bf16_special", "nf4", "bfloat16", (16, 128), 64, "special", 7),
    ("fp4_bf16_special", "fp4", "bfloat16", (16, 128), 64, "special", 8),
    ("nf4_f16_special", "nf4", "float16", (16, 128), 64, "special", 9),
    ("nf4_f32_ties", "nf4", "float32", (8, 128), 64, "ties", 10),
    ("fp4_f32_ties", "fp4", "float32", (8, 128), 64, "ties", 11),
    ("nf4_f32_ties_tail", "nf4", "float32", (1, 100), 64, "ties", 12),
    ("fp4_f32_ties_tail", "fp4", "float32", (1, 100), 64, "ties", 13),
    ("nf4_bf16_32", "nf4", "bfloat16", (8, 128), 32, "randn", 14),
    ("nf4_bf16_128", "nf4", "bfloat16", (16, 256), 128, "special", 15),
    ("fp4_bf16_128", "fp4", "bfloat16", (16, 256), 128, "randn", 16),
    ("nf4_bf16_256", "nf4", "bfloat16", (16, 256), 256, "randn", 17),
    ("fp4_f16_256", "fp4", "float16", (16, 256), 256, "special", 18),
    ("nf4_bf16_4096", "nf4", "bfloat16", (3, 4096), 4096, "randn", 19),
    # Element counts that are not a multiple of the block size (tail block), odd counts,
    # blocks straddling rows, a tensor smaller than one block.
    ("nf4_bf16_tail", "nf4", "bfloat16", (3, 100), 64, "special", 20),
    ("fp4_bf16_tail", "fp4", "bfloat16", (3, 100), 64, "randn", 21),
    ("nf4_f16_odd", "nf4", "float16", (5, 67), 64, "randn", 22),
    ("fp4_f32_odd", "fp4", "float32", (5, 67), 128, "randn", 23),
    ("nf4_bf16_straddle", "nf4", "bfloat16", (3, 48), 64, "randn", 24),
    ("fp4_bf16_straddle", "fp4", "bfloat16", (5, 80), 64, "randn", 25),
    ("nf4_bf16_seven", "nf4", "bfloat16", (7,), 64, "randn", 26),
    ("nf4_bf16_oneblock_tail", "nf4", "bfloat16", (1, 62), 64, "randn", 27),
    ("nf4_bf16_tiny", "nf4", "bfloat16", (4, 64), 64, "tiny", 28),
    ("fp4_bf16_tiny", "fp4", "bfloat16", (4, 62), 64, "tiny", 29),
    ("nf4_f16_tiny", "nf4", "float16", (4, 62), 64, "tiny", 30),
    # Enough blocks for several nested (256-block) groups, with a partial last group.
    ("nf4_bf16_nested", "nf4", "bfloat16", (16, 1088), 64, "randn", 31),
    ("fp4_bf16_nested", "fp4", "bfloat16", (20, 1000), 64, "special", 32),
]


def gen_cases():
    tensors, meta = {}, {}
    for name, qt, dt, shape, bs, kind, seed in CASES:
        x = content(kind, shape, DTYPES[dt], seed)
        n = x.numel()
        packed, qs = F.quantize_4bit(x, blocksize=bs, compress_statistics=False, quant_type=qt)
        packed_dq, qs_dq = F.quantize_4bit(x, blocksize=bs, compress_statistics=True, quant_type=qt)
        assert torch.equal(packed, packed_dq)
        # The un-nested absmax exactly as dequantize_4bit computes it.
        unnested = F.dequantize_blockwise(qs_dq.absmax, qs_dq.state2) + qs_dq.offset
        deq, quirks = dequant_ref(packed, qs.absmax, qs, n)
        deq_dq, quirks_dq = dequant_ref(packed_dq, unnested, qs_dq, n)
        assert torch.equal(qs_dq.state2.code, F.create_dynamic_map())
        t = {
            "input": x.contiguous(),
            "packed": packed.reshape(-1).contiguous(),
            "absmax": qs.absmax.contiguous(),
            "dequant": deq.contiguous(),
            "dq_absmax_u8": qs_dq.absmax.contiguous(),
            "dq_nested_absmax": qs_dq.state2.absmax.contiguous(),
            "dq_offset": qs_dq.offset.reshape(1).contiguous(),
            "dq_unnested_absmax": unnested.contiguous(),
            "dq_dequant": deq_dq.contiguous(),
        }
        for k, v in t.items():
            tensors[f"{name}.{k}"] = v
        meta[name] = json.dumps(
            {
                "quant_type": qt,
                "dtype": dt,
                "shape": list(shape),
                "blocksize": bs,
                "native_kernel_quirks": quirks + quirks_dq,
            }
        )
        if quirks + quirks_dq:
            print(f"{name}: bnb's native CPU kernel differs on {quirks} + {quirks_dq} elements (known quirks)")
    meta["cases"] = json.dumps([c[0] for c in CASES])
    save_file(tensors, os.path.join(OUT, "cases.safetensors"), metadata=meta)


def gen_blockwise():
    """Dynamic maps and the double quantization of a large absmax vector under several thread counts."""
    tensors = {
        "dynamic_map": F.create_dynamic_map(),
        "dynamic_map_avx2": dynamic_map_in_subprocess("avx2"),
        "dynamic_map_default": dynamic_map_in_subprocess("default"),
    }
    assert torch.equal(tensors["dynamic_map"], tensors["dynamic_map_avx2"])
    # absmax of bf16 weights are bf16 values, so a bf16 vector stores them losslessly. 100_000 blocks
    # are > 3 * GRAIN_SIZE (32768), so torch's mean is split over up to 4 threads.
    g = torch.Generator().manual_seed(0)  # a seed where 1, 2 and 4 threads give three different means
    absmax = (torch.randn(100_000, generator=g).abs() * 0.01 + 0.02).to(torch.bfloat16)
    absmax[5000:5300] = 0.0  # a whole nested block of zeros
    absmax[7] = 1.5
    tensors["big_absmax"] = absmax
    a32 = absmax.float()
    threads = [1, 2, 3, 4, 8]
    offsets = []
    saved = torch.get_num_threads()
    for t in threads:
        torch.set_num_threads(t)
        # The exact statements of bnb.functional.quantize_4bit(compress_statistics=True).
        offset = a32.mean()
        qabsmax, state2 = F.quantize_blockwise(a32 - offset, blocksize=256)
        offsets.append(offset.item())
        if t in (1, 2, 4):
            tensors[f"big_codes_t{t}"] = qabsmax
            tensors[f"big_nested_absmax_t{t}"] = state2.absmax
    torch.set_num_threads(saved)
    assert len(set(offsets)) == 3, offsets
    tensors["big_offsets"] = torch.tensor(offsets, dtype=torch.float32)
    tensors["big_offset_threads"] = torch.tensor(threads, dtype=torch.int32)
    # Plain torch means of prefixes of that vector (1..100k values) under 1/2/4 threads.
    lens = [1, 2, 7, 8, 9, 31, 32, 33, 100, 1000, 4097, 32767, 32768, 32769, 65537, 98305, 100_000]
    tensors["mean_lens"] = torch.tensor(lens, dtype=torch.int64)
    for t in (1, 2, 4):
        torch.set_num_threads(t)
        tensors[f"mean_t{t}"] = torch.stack([a32[:n].mean() for n in lens])
    torch.set_num_threads(saved)
    # quantize_blockwise (8-bit, dynamic map) of signed data with odd block sizes and a tail.
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3000, generator=g) * torch.linspace(0.001, 10, 3000)
    x[100:356] = 0.0
    tensors["bw_input"] = x
    for bs in (64, 256, 4096):
        q, st = F.quantize_blockwise(x, blocksize=bs)
        tensors[f"bw_codes_{bs}"] = q
        tensors[f"bw_absmax_{bs}"] = st.absmax
        tensors[f"bw_dequant_{bs}"] = F.dequantize_blockwise(q, st)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, "blockwise.safetensors"))


def gen_model():
    """A tiny Llama quantized by transformers on CPU and saved with save_pretrained."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1234)
    cfg = LlamaConfig(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    base = LlamaForCausalLM(cfg).to(torch.bfloat16)
    with tempfile.TemporaryDirectory() as tmp:
        base_dir = os.path.join(tmp, "base")
        base.save_pretrained(base_dir)
        with safe_open(os.path.join(base_dir, "model.safetensors"), "pt") as f:
            originals = {k: f.get_tensor(k) for k in f.keys() if k.endswith("_proj.weight")}
        for tag, qt, dq, compute in (("nf4_dq", "nf4", True, torch.bfloat16), ("fp4", "fp4", False, torch.float16)):
            qcfg = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type=qt,
                bnb_4bit_use_double_quant=dq,
                bnb_4bit_compute_dtype=compute,
            )
            model = AutoModelForCausalLM.from_pretrained(
                base_dir, quantization_config=qcfg, device_map="cpu", dtype=torch.bfloat16
            )
            out_dir = os.path.join(tmp, tag)
            model.save_pretrained(out_dir)
            tensors = {}
            with safe_open(os.path.join(out_dir, "model.safetensors"), "pt") as f:
                for k in f.keys():
                    if "_proj.weight" in k:
                        tensors[k] = f.get_tensor(k)
            for k, v in originals.items():
                tensors["original." + k] = v
            save_file(tensors, os.path.join(OUT, f"model_{tag}.safetensors"))


def write_manifest():
    lines = []
    for fn in sorted(os.listdir(OUT)):
        if not fn.endswith(".safetensors"):
            continue
        with open(os.path.join(OUT, fn), "rb") as fh:
            lines.append(f"{hashlib.sha256(fh.read()).hexdigest()}  {fn}\n")
    with open(os.path.join(OUT, "MANIFEST.sha256"), "w") as fh:
        fh.writelines(lines)


def main():
    os.makedirs(OUT, exist_ok=True)
    import transformers

    print(
        f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads), "
        f"bitsandbytes {bitsandbytes.__version__}, transformers {transformers.__version__}, numpy {np.__version__}"
    )
    gen_cases()
    gen_blockwise()
    gen_model()
    write_manifest()


if __name__ == "__main__":
    main()
