#!/usr/bin/env python3
"""Second oracle for tests/ggml_reference.rs: writes a GGMLVEC1 vector file (layout in
tests/gen/ggml_ref_harness.c) by calling the libggml-base.so that ships in the llama-cpp-python
0.3.36 wheel, through ggml_quantize_chunk (imatrix = NULL) and the type traits' to_float.

usage:
  ggml_vectors_from_lib.py LIB_DIR OUT_FILE --seed S --rows N      numpy-generated inputs
  ggml_vectors_from_lib.py LIB_DIR OUT_FILE --inputs VEC_FILE      the inputs of another vector
                                                                   file (e.g. from the C harness),
                                                                   so the two files can be cmp'd

LIB_DIR is the wheel's llama_cpp/lib directory. Needs numpy.
"""

import argparse
import ctypes
import struct
import sys
from pathlib import Path

import numpy as np

N_PER_ROW = 256
# (ggml type id, block size, block bytes) in the order the C harness writes them.
TYPES = [
    (0, 1, 4), (1, 1, 2), (2, 32, 18), (3, 32, 20), (6, 32, 22), (7, 32, 24), (8, 32, 34),
    (10, 256, 84), (11, 256, 110), (12, 256, 144), (13, 256, 176), (14, 256, 210), (30, 1, 2),
]


class TypeTraits(ctypes.Structure):
    _fields_ = [
        ("type_name", ctypes.c_char_p),
        ("blck_size", ctypes.c_int64),
        ("blck_size_interleave", ctypes.c_int64),
        ("type_size", ctypes.c_size_t),
        ("is_quantized", ctypes.c_bool),
        ("to_float", ctypes.c_void_p),
        ("from_float_ref", ctypes.c_void_p),
    ]


TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


def load_lib(lib_dir: Path):
    lib = ctypes.CDLL(str(lib_dir / "libggml-base.so"))
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [
        ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
        ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
    ]
    lib.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
    lib.ggml_get_type_traits.argtypes = [ctypes.c_int]
    return lib


def gen_inputs(seed: int, rows: int):
    """Rows of assorted shapes; the exact mix differs from the C harness on purpose."""
    rng = np.random.default_rng(seed)
    x = np.empty((rows, N_PER_ROW), dtype=np.float32)
    cases = np.arange(rows, dtype=np.uint32) % 12
    for r in range(rows):
        c = cases[r]
        if c == 0:
            v = rng.normal(0, 0.02, N_PER_ROW)
        elif c == 1:  # bf16-rounded (round half to even on the upper 16 bits)
            v = rng.normal(0, 10 ** rng.uniform(-4, 1), N_PER_ROW).astype(np.float32)
            u = v.view(np.uint32)
            v = ((u + (0x7FFF + ((u >> 16) & 1))) & 0xFFFF0000).astype(np.uint32).view(np.float32)
        elif c == 2:
            v = rng.normal(0, 0.05, N_PER_ROW).astype(np.float16)
        elif c == 3:
            v = rng.standard_t(2, N_PER_ROW) * 0.01
        elif c == 4:
            v = rng.uniform(-1, 1, N_PER_ROW) * np.repeat(10 ** rng.uniform(-6, 1, 16), 16)
        elif c == 5:
            v = rng.integers(-16, 17, N_PER_ROW) * 2.0 ** rng.integers(-10, 4)
        elif c == 6:
            v = (rng.integers(-16, 16, N_PER_ROW) + 0.5) * 2.0 ** rng.integers(-10, 4)
        elif c == 7:
            v = np.where(rng.random(N_PER_ROW) < 0.1, rng.normal(0, 1, N_PER_ROW), 0.0)
        elif c == 8:  # all zeros, or one sign of zero
            v = np.zeros(N_PER_ROW) * rng.choice([1.0, -1.0])
        elif c == 9:  # huge magnitudes, up to near the f32 limit
            v = rng.normal(0, 1, N_PER_ROW) * 10.0 ** rng.uniform(20, 37)
        elif c == 10:  # tiny magnitudes, subnormals included
            v = rng.normal(0, 1, N_PER_ROW) * 10.0 ** rng.uniform(-44, -30)
        else:  # one outlier per block among small values
            v = rng.normal(0, 1e-3, N_PER_ROW)
            v[rng.integers(0, 32)::32] = rng.normal(0, 100)
        x[r] = np.asarray(v, dtype=np.float32)
    return cases, x


def read_inputs(path: Path):
    data = path.read_bytes()
    magic, n_per_row, rows, _ = struct.unpack_from("<8sIII", data, 0)
    assert magic == b"GGMLVEC1" and n_per_row == N_PER_ROW
    off = 20
    cases = np.frombuffer(data, dtype="<u4", count=rows, offset=off)
    off += 4 * rows
    x = np.frombuffer(data, dtype="<f4", count=rows * N_PER_ROW, offset=off).reshape(rows, N_PER_ROW)
    return cases, np.ascontiguousarray(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lib_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--inputs", type=Path)
    a = ap.parse_args()
    if sys.byteorder != "little":
        sys.exit("run on a little-endian host")

    lib = load_lib(a.lib_dir)
    cases, x = read_inputs(a.inputs) if a.inputs else gen_inputs(a.seed, a.rows)
    rows = x.shape[0]
    n = rows * N_PER_ROW
    with open(a.out, "wb") as f:
        f.write(struct.pack("<8sIII", b"GGMLVEC1", N_PER_ROW, rows, len(TYPES)))
        f.write(np.asarray(cases, dtype="<u4").tobytes())
        f.write(x.astype("<f4").tobytes())
        for type_id, blck, size in TYPES:
            row_bytes = N_PER_ROW // blck * size
            q = np.zeros(rows * row_bytes, dtype=np.uint8)
            got = lib.ggml_quantize_chunk(type_id, x.ctypes.data, q.ctypes.data, 0, rows, N_PER_ROW, None)
            assert got == q.nbytes, (type_id, got, q.nbytes)
            deq = np.zeros(n, dtype=np.float32)
            if type_id == 0:
                deq[:] = x.reshape(-1)
            else:
                to_float = TO_FLOAT(lib.ggml_get_type_traits(type_id).contents.to_float)
                to_float(q.ctypes.data, deq.ctypes.data, n)
            f.write(struct.pack("<II", type_id, row_bytes))
            f.write(q.tobytes())
            f.write(deq.tobytes())
    print(f"wrote {a.out}: {rows} rows x {N_PER_ROW}, {len(TYPES)} types")


if __name__ == "__main__":
    main()
