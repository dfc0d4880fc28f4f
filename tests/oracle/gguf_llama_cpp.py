#!/usr/bin/env python3
"""Run one of our GGUF files in llama.cpp and compare its logits with transformers' (fp32).

    python tests/oracle/gguf_llama_cpp.py OUT.gguf tests/fixtures/gguf/refs/CASE.logits.npy \
        [--ids-from tests/fixtures/gguf/refs/CASE.f16.json] [--max-rel 0.05] [--min-top1 0.9]

Evaluates the token ids the reference logits were made for (recorded by
tests/gen/gguf_fixtures.py as `logit_ids` in the case's reference JSON), with llama-cpp-python
(llama.cpp 0c1e57098bba in version 0.3.36), and reports max |delta|, RMS delta and top-1
agreement over all positions. Exits 1 when max |delta| relative to the reference logits' RMS,
or top-1 agreement, is out of tolerance. (llama.cpp rounds activations to bf16 for bf16
weights, which alone gives about 1-2 %; a wrong transform gives tens of percent.)

Needs only llama-cpp-python and numpy (no torch).

`--vocab-from CONVERTED.gguf` copies the `tokenizer.*` metadata from a GGUF made by
convert_hf_to_gguf.py into a temporary copy of the file first: llama.cpp refuses files without
a vocabulary, and ours have none until the vocabulary module lands. Tensors and every other key
stay ours.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class Header:
    """The byte ranges of a GGUF header: each KV record and the tensor infos."""

    def __init__(self, data: bytes):
        self.data, pos = data, 24
        assert data[:4] == b"GGUF", "not a GGUF file"
        self.version, self.n_tensors, n_kv = struct.unpack_from("<IQQ", data, 4)
        self.kvs: list[tuple[str, bytes]] = []
        self.alignment = 32
        for _ in range(n_kv):
            start = pos
            key, pos = self._string(pos)
            vtype = struct.unpack_from("<I", data, pos)[0]
            pos = self._value(vtype, pos + 4)
            self.kvs.append((key.decode(), data[start:pos]))
            if key == b"general.alignment":
                self.alignment = struct.unpack_from("<I", data, pos - 4)[0]
        self.infos_start = pos
        for _ in range(self.n_tensors):
            _, pos = self._string(pos)
            n_dims = struct.unpack_from("<I", data, pos)[0]
            pos += 4 + 8 * n_dims + 4 + 8
        self.infos_end = pos
        self.data_start = -(-pos // self.alignment) * self.alignment

    def _string(self, pos: int) -> tuple[bytes, int]:
        n = struct.unpack_from("<Q", self.data, pos)[0]
        return self.data[pos + 8:pos + 8 + n], pos + 8 + n

    def _value(self, vtype: int, pos: int) -> int:
        if vtype in SCALAR_SIZES:
            return pos + SCALAR_SIZES[vtype]
        if vtype == 8:
            return self._string(pos)[1]
        etype, n = struct.unpack_from("<IQ", self.data, pos)
        pos += 12
        for _ in range(n):
            pos = self._value(etype, pos)
        return pos


def with_vocab(ours: Path, converted: Path, dest: Path) -> None:
    """Writes `ours` plus the tokenizer KVs of `converted` to `dest`."""
    a = Header(ours.read_bytes())
    b = Header(converted.read_bytes())
    vocab = [raw for key, raw in b.kvs if key.startswith("tokenizer.")]
    kvs = [raw for key, raw in a.kvs if not key.startswith("tokenizer.")] + vocab
    header = b"GGUF" + struct.pack("<IQQ", a.version, a.n_tensors, len(kvs)) + b"".join(kvs)
    header += a.data[a.infos_start:a.infos_end]
    header += b"\0" * (-len(header) % a.alignment)
    dest.write_bytes(header + a.data[a.data_start:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("gguf", type=Path)
    ap.add_argument("logits", type=Path, help="reference logits (.npy, positions x vocab)")
    ap.add_argument("--ids-from", type=Path,
                    help="reference JSON with `logit_ids` (default: <logits stem>.f16.json)")
    ap.add_argument("--vocab-from", type=Path, help="converter GGUF to take tokenizer.* from")
    ap.add_argument("--max-rel", type=float, default=0.05,
                    help="largest max|delta| / rms(reference) accepted")
    ap.add_argument("--min-top1", type=float, default=0.9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from llama_cpp import Llama

    reference = np.load(args.logits)
    ids_file = args.ids_from or args.logits.with_name(
        args.logits.name.replace(".logits.npy", ".f16.json"))
    ids = json.loads(ids_file.read_text())["logit_ids"]
    with tempfile.TemporaryDirectory() as tmp:
        path = args.gguf
        if args.vocab_from:
            path = Path(tmp) / args.gguf.name
            with_vocab(args.gguf, args.vocab_from, path)
        llm = Llama(model_path=str(path), n_ctx=64, logits_all=True, vocab_only=False,
                    n_threads=args.threads, n_gpu_layers=0, verbose=False)
        llm.eval(ids)
        ours = np.array(llm.scores[:len(ids)], dtype=np.float32)
    if ours.shape != reference.shape:
        print(f"shape mismatch: llama.cpp {ours.shape}, reference {reference.shape}")
        return 1
    delta = np.abs(ours - reference)
    top1 = float(np.mean(ours.argmax(-1) == reference.argmax(-1)))
    max_abs = float(delta.max())
    rms = float(np.sqrt(np.mean(delta ** 2)))
    ref_rms = float(np.sqrt(np.mean(reference ** 2)))
    ok = max_abs <= args.max_rel * ref_rms and top1 >= args.min_top1
    print(f"{args.gguf.name}: max|d| {max_abs:.5f} ({max_abs / ref_rms:.2%} of reference rms "
          f"{ref_rms:.3f})  rms|d| {rms:.5f}  top-1 {top1:.1%} of {len(ids)} positions  "
          f"{'ok' if ok else 'OUT OF TOLERANCE'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
