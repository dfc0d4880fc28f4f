//! Bit-exactness of the ggml quantizers against llama.cpp's own `ggml-quants.c`.
//!
//! `tests/fixtures/ggml/vectors.bin` was written by `tests/gen/ggml_vectors.sh` (llama.cpp
//! 0c1e57098bba compiled with libggml-base's flags). Every row is quantized with
//! `GgmlType::quantize_row` and must match llama.cpp's bytes exactly; llama.cpp's quantized bytes
//! are dequantized with `GgmlType::dequantize_row` and must match its f32 output bit for bit.
//!
//! Set `LLM_EXPORT_GGML_VECTORS=<file>` to check a further (larger) file in the same format.

use llm_export::quant::ggml::GgmlType;
use std::path::Path;

/// One parsed `GGMLVEC1` file.
struct Vectors {
    n_per_row: usize,
    cases: Vec<u32>,
    input: Vec<f32>,
    /// (type, row bytes, quantized bytes, dequantized values)
    types: Vec<(GgmlType, usize, Vec<u8>, Vec<f32>)>,
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        assert!(self.0.len() >= n, "vector file truncated");
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a.to_vec()
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes(4).try_into().unwrap())
    }
    fn f32s(&mut self, n: usize) -> Vec<f32> {
        self.bytes(4 * n)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }
}

fn load(path: &Path) -> Vectors {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut r = Reader(&data);
    assert_eq!(r.bytes(8), b"GGMLVEC1", "bad magic");
    let n_per_row = r.u32() as usize;
    let n_rows = r.u32() as usize;
    let n_types = r.u32() as usize;
    let cases = (0..n_rows).map(|_| r.u32()).collect();
    let input = r.f32s(n_rows * n_per_row);
    let types = (0..n_types)
        .map(|_| {
            let id = r.u32();
            let ty = GgmlType::from_id(id).unwrap_or_else(|| panic!("unknown type id {id}"));
            let row_bytes = r.u32() as usize;
            assert_eq!(ty.row_bytes(n_per_row), Some(row_bytes), "{ty}");
            let q = r.bytes(row_bytes * n_rows);
            let deq = r.f32s(n_rows * n_per_row);
            (ty, row_bytes, q, deq)
        })
        .collect();
    assert!(r.0.is_empty(), "trailing bytes in vector file");
    Vectors {
        n_per_row,
        cases,
        input,
        types,
    }
}

/// Checks every row and type; returns (rows compared per type, types) and panics listing the
/// mismatches.
fn check(v: &Vectors) -> (usize, usize) {
    let n = v.n_per_row;
    let mut failures = Vec::new();
    for (ty, row_bytes, want_q, want_deq) in &v.types {
        let mut q = vec![0u8; *row_bytes];
        let mut deq = vec![0f32; n];
        let mut bad_rows = 0;
        for (row, x) in v.input.chunks_exact(n).enumerate() {
            let ref_q = &want_q[row * row_bytes..(row + 1) * row_bytes];
            ty.quantize_row(x, &mut q);
            let q_ok = q == ref_q;
            ty.dequantize_row(ref_q, &mut deq);
            let ref_deq = &want_deq[row * n..(row + 1) * n];
            let deq_ok = deq
                .iter()
                .zip(ref_deq)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            if !(q_ok && deq_ok) {
                bad_rows += 1;
                if bad_rows <= 3 {
                    let first = q.iter().zip(ref_q).position(|(a, b)| a != b);
                    failures.push(format!(
                        "{ty} row {row} (case {}): quantize {} (first byte diff {first:?}), dequantize {}",
                        v.cases[row],
                        if q_ok { "ok" } else { "DIFFERS" },
                        if deq_ok { "ok" } else { "DIFFERS" },
                    ));
                }
            }
        }
        if bad_rows > 3 {
            failures.push(format!("{ty}: {bad_rows} rows differ in total"));
        }
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    (v.cases.len(), v.types.len())
}

#[test]
fn committed_vectors_match_llama_cpp() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ggml/vectors.bin");
    let v = load(&path);
    assert_eq!(v.types.len(), GgmlType::ALL.len(), "every type is covered");
    let (rows, types) = check(&v);
    assert!(rows >= 52 && types == 13);
}

#[test]
fn extra_vectors_from_env_match_llama_cpp() {
    let Some(path) = std::env::var_os("LLM_EXPORT_GGML_VECTORS") else {
        eprintln!("LLM_EXPORT_GGML_VECTORS not set; skipping the extra vector file");
        return;
    };
    let (rows, types) = check(&load(Path::new(&path)));
    eprintln!("{rows} rows x {types} types matched");
}

/// Throughput of the quantizers, for comparing with llama-quantize:
/// `cargo test --release --test ggml_reference -- --ignored --nocapture`.
#[test]
#[ignore]
fn quantize_throughput() {
    let n = 4096 * 1024;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let src: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.05
        })
        .collect();
    for ty in GgmlType::ALL {
        let mut dst = vec![0u8; ty.row_bytes(n).unwrap()];
        let t = std::time::Instant::now();
        ty.quantize_row(&src, &mut dst);
        let q = t.elapsed().as_secs_f64();
        let mut back = vec![0f32; n];
        let t = std::time::Instant::now();
        ty.dequantize_row(&dst, &mut back);
        let d = t.elapsed().as_secs_f64();
        eprintln!(
            "{ty:>5}: quantize {:7.1} Melem/s ({:7.1} MB/s of f16 input), dequantize {:7.1} Melem/s",
            n as f64 / q / 1e6,
            2.0 * n as f64 / q / 1e6,
            n as f64 / d / 1e6
        );
    }
}
