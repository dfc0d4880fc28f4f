//! Bit-exact comparison of `llm_export::quant::bnb4` with bitsandbytes 0.50.2 on CPU, using the
//! outputs recorded in `tests/fixtures/bnb4` by `tests/gen/bnb4_vectors.py` (see its README).

use std::path::PathBuf;

use llm_export::dtype::FloatType;
use llm_export::quant::bnb4::{
    dequantize, dequantize_blockwise, double_quantize, dynamic_map, quantize, quantize_blockwise,
    torch_mean, unnest_absmax, Bnb4Kind, QuantState, NESTED_BLOCKSIZE,
};
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bnb4")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A tensor widened to f32 (bf16 / f16 / f32 are all exact in f32).
fn f32s(st: &SafeTensors, name: &str) -> Vec<f32> {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    let data = t.data();
    match t.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes(b.try_into().unwrap()).to_f32())
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes(b.try_into().unwrap()).to_f32())
            .collect(),
        other => panic!("{name}: unexpected dtype {other:?}"),
    }
}

fn u8s<'a>(st: &SafeTensors<'a>, name: &str) -> &'a [u8] {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), Dtype::U8, "{name}");
    t.data()
}

fn ints(st: &SafeTensors, name: &str) -> Vec<usize> {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    match t.dtype() {
        Dtype::I32 => t
            .data()
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()) as usize)
            .collect(),
        Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as usize)
            .collect(),
        other => panic!("{name}: unexpected dtype {other:?}"),
    }
}

/// Equality of bit patterns (so -0.0 != 0.0), reporting the first mismatches.
#[track_caller]
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .collect();
    if let Some(&i) = bad.first() {
        panic!(
            "{what}: {} of {} differ; first at {i}: got {:e} ({:#010x}), bnb {:e} ({:#010x})",
            bad.len(),
            got.len(),
            got[i],
            got[i].to_bits(),
            want[i],
            want[i].to_bits()
        );
    }
}

#[track_caller]
fn assert_bytes(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bad = got.iter().zip(want).filter(|(a, b)| a != b).count();
    assert_eq!(bad, 0, "{what}: {bad} of {} bytes differ", got.len());
}

/// Deterministic split points for the streaming checks (a small LCG; no rand dependency).
struct Splits(u64);

impl Splits {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize % bound
    }
}

#[test]
fn manifest_matches() {
    let manifest = String::from_utf8(read("MANIFEST.sha256")).unwrap();
    let mut files = 0;
    for line in manifest.lines() {
        let (hash, name) = line.split_once("  ").expect("sha256sum format");
        let got: String = Sha256::digest(read(name))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(got, hash, "{name} does not match MANIFEST.sha256");
        files += 1;
    }
    assert_eq!(files, 4);
}

#[derive(serde::Deserialize)]
struct CaseMeta {
    quant_type: String,
    dtype: String,
    shape: Vec<usize>,
    blocksize: usize,
}

#[test]
fn four_bit_cases() {
    let bytes = read("cases.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().as_ref().expect("case metadata");
    let names: Vec<String> = serde_json::from_str(&meta["cases"]).unwrap();
    assert_eq!(names.len(), 32);
    let map = dynamic_map(true);
    let mut splits = Splits(42);
    let mut elements = 0;
    for name in &names {
        let m: CaseMeta = serde_json::from_str(&meta[name]).unwrap();
        let kind: Bnb4Kind = m.quant_type.parse().unwrap();
        let dtype = FloatType::parse(&m.dtype).unwrap();
        let bs = m.blocksize;
        let input = f32s(&st, &format!("{name}.input"));
        let n = input.len();
        assert_eq!(n, m.shape.iter().product::<usize>(), "{name}");
        let blocks = n.div_ceil(bs);
        elements += n;

        // quantize_4bit (compress_statistics=False): packed codes and absmax.
        let want_packed = u8s(&st, &format!("{name}.packed"));
        let want_absmax = f32s(&st, &format!("{name}.absmax"));
        let mut packed = vec![0u8; n.div_ceil(2)];
        let mut absmax = vec![0f32; blocks];
        quantize(kind, bs, &input, &mut packed, &mut absmax).unwrap();
        assert_bytes(&format!("{name}: packed"), &packed, want_packed);
        assert_bits(&format!("{name}: absmax"), &absmax, &want_absmax);

        // The same, streamed in chunks of whole blocks plus the tail.
        let (mut s_packed, mut s_absmax) = (vec![0u8; n.div_ceil(2)], vec![0f32; blocks]);
        let mut block = 0;
        while block < blocks {
            let take = (1 + splits.next(4)).min(blocks - block);
            let (lo, hi) = (block * bs, ((block + take) * bs).min(n));
            quantize(
                kind,
                bs,
                &input[lo..hi],
                &mut s_packed[lo / 2..hi.div_ceil(2)],
                &mut s_absmax[block..block + take],
            )
            .unwrap();
            block += take;
        }
        assert_bytes(&format!("{name}: streamed packed"), &s_packed, want_packed);
        assert_bits(&format!("{name}: streamed absmax"), &s_absmax, &want_absmax);

        // dequantize_4bit, whole and in arbitrary (odd, block-straddling) ranges.
        let want = f32s(&st, &format!("{name}.dequant"));
        let mut out = vec![0f32; n];
        dequantize(kind, dtype, bs, 0, want_packed, &want_absmax, &mut out).unwrap();
        assert_bits(&format!("{name}: dequant"), &out, &want);
        let mut streamed = vec![f32::NAN; n];
        let mut start = 0;
        while start < n {
            let end = (start + 1 + splits.next(3 * bs)).min(n);
            dequantize(
                kind,
                dtype,
                bs,
                start,
                &want_packed[start / 2..],
                &want_absmax[start / bs..],
                &mut streamed[start..end],
            )
            .unwrap();
            start = end;
        }
        assert_bits(&format!("{name}: streamed dequant"), &streamed, &want);

        // compress_statistics=True: double quantization of absmax, un-nesting, dequant.
        let dq = double_quantize(&absmax, &map, 2);
        assert_bytes(
            &format!("{name}: absmax codes"),
            &dq.codes,
            u8s(&st, &format!("{name}.dq_absmax_u8")),
        );
        assert_bits(
            &format!("{name}: nested_absmax"),
            &dq.nested_absmax,
            &f32s(&st, &format!("{name}.dq_nested_absmax")),
        );
        assert_bits(
            &format!("{name}: offset"),
            &[dq.offset],
            &f32s(&st, &format!("{name}.dq_offset")),
        );
        let mut unnested = vec![0f32; blocks];
        unnest_absmax(
            &map,
            NESTED_BLOCKSIZE,
            &dq.codes,
            &dq.nested_absmax,
            dq.offset,
            &mut unnested,
        )
        .unwrap();
        assert_bits(
            &format!("{name}: unnested absmax"),
            &unnested,
            &f32s(&st, &format!("{name}.dq_unnested_absmax")),
        );
        dequantize(kind, dtype, bs, 0, &packed, &unnested, &mut out).unwrap();
        assert_bits(
            &format!("{name}: dequant (double quant)"),
            &out,
            &f32s(&st, &format!("{name}.dq_dequant")),
        );
    }
    assert!(elements > 100_000, "{elements}");
}

#[test]
fn dynamic_maps() {
    let bytes = read("blockwise.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    assert_bits(
        "dynamic map (AVX2 / AVX-512 torch)",
        &dynamic_map(true),
        &f32s(&st, "dynamic_map_avx2"),
    );
    assert_bits(
        "dynamic map (this machine)",
        &dynamic_map(true),
        &f32s(&st, "dynamic_map"),
    );
    assert_bits(
        "dynamic map (baseline torch)",
        &dynamic_map(false),
        &f32s(&st, "dynamic_map_default"),
    );
}

#[test]
fn torch_means() {
    let bytes = read("blockwise.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let values = f32s(&st, "big_absmax");
    let lens = ints(&st, "mean_lens");
    for threads in [1, 2, 4] {
        let got: Vec<f32> = lens
            .iter()
            .map(|&n| torch_mean(&values[..n], threads))
            .collect();
        assert_bits(
            &format!("torch mean, {threads} threads"),
            &got,
            &f32s(&st, &format!("mean_t{threads}")),
        );
    }
}

#[test]
fn double_quant_large() {
    let bytes = read("blockwise.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let absmax = f32s(&st, "big_absmax");
    let map = dynamic_map(true);
    let threads = ints(&st, "big_offset_threads");
    let offsets = f32s(&st, "big_offsets");
    for (&t, &offset) in threads.iter().zip(&offsets) {
        let dq = double_quantize(&absmax, &map, t);
        assert_bits(&format!("offset, {t} threads"), &[dq.offset], &[offset]);
        if [1, 2, 4].contains(&t) {
            assert_bytes(
                &format!("codes, {t} threads"),
                &dq.codes,
                u8s(&st, &format!("big_codes_t{t}")),
            );
            assert_bits(
                &format!("nested absmax, {t} threads"),
                &dq.nested_absmax,
                &f32s(&st, &format!("big_nested_absmax_t{t}")),
            );
        }
    }
}

#[test]
fn blockwise_8bit() {
    let bytes = read("blockwise.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let input = f32s(&st, "bw_input");
    let map = dynamic_map(true);
    for bs in [64, 256, 4096] {
        let mut codes = vec![0u8; input.len()];
        let mut absmax = vec![0f32; input.len().div_ceil(bs)];
        quantize_blockwise(&map, bs, &input, &mut codes, &mut absmax).unwrap();
        assert_bytes(
            &format!("8-bit codes, block {bs}"),
            &codes,
            u8s(&st, &format!("bw_codes_{bs}")),
        );
        assert_bits(
            &format!("8-bit absmax, block {bs}"),
            &absmax,
            &f32s(&st, &format!("bw_absmax_{bs}")),
        );
        let mut out = vec![0f32; input.len()];
        dequantize_blockwise(&map, bs, &codes, &absmax, &mut out).unwrap();
        assert_bits(
            &format!("8-bit dequant, block {bs}"),
            &out,
            &f32s(&st, &format!("bw_dequant_{bs}")),
        );
    }
}

/// Checkpoints written by transformers `save_pretrained` of a tiny Llama quantized on CPU:
/// re-quantizing the original bf16 weights must give the saved tensors byte for byte, and the
/// quant-state JSON must parse and serialize back to the same bytes.
#[test]
fn transformers_checkpoints() {
    let map = dynamic_map(true);
    let mut layers = 0;
    for (file, kind, nested) in [
        ("model_nf4_dq.safetensors", Bnb4Kind::Nf4, true),
        ("model_fp4.safetensors", Bnb4Kind::Fp4, false),
    ] {
        let bytes = read(file);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut originals: Vec<String> = st
            .names()
            .into_iter()
            .filter_map(|k| k.strip_prefix("original.").map(str::to_owned))
            .collect();
        originals.sort();
        assert_eq!(originals.len(), 7, "{file}");
        for key in &originals {
            let json = u8s(
                &st,
                &format!("{key}.quant_state.bitsandbytes__{}", kind.as_str()),
            );
            let state = QuantState::from_json_bytes(json).unwrap();
            assert_bytes(&format!("{file} {key}: JSON"), &state.to_json_bytes(), json);
            assert_eq!(state.quant_type, kind);
            assert_eq!(state.dtype, FloatType::Bf16);
            assert_eq!(state.blocksize, 64);
            assert_eq!(state.nested.is_some(), nested);
            assert_eq!(
                state.key_suffix(),
                format!("quant_state.bitsandbytes__{}", kind.as_str())
            );
            let original = st.tensor(&format!("original.{key}")).unwrap();
            assert_eq!(state.shape, original.shape(), "{key}");
            assert_bits(
                &format!("{key}: quant_map"),
                kind.code(),
                &f32s(&st, &format!("{key}.quant_map")),
            );

            let weights = f32s(&st, &format!("original.{key}"));
            let want_packed = st.tensor(key).unwrap();
            assert_eq!(want_packed.shape(), [state.packed_len(), 1]);
            let mut packed = vec![0u8; state.packed_len()];
            let mut absmax = vec![0f32; state.blocks()];
            quantize(kind, state.blocksize, &weights, &mut packed, &mut absmax).unwrap();
            assert_bytes(&format!("{key}: packed"), &packed, want_packed.data());
            if let Some(nest) = state.nested {
                assert_eq!(nest.blocksize, NESTED_BLOCKSIZE);
                assert_bits(
                    &format!("{key}: nested_quant_map"),
                    &map,
                    &f32s(&st, &format!("{key}.nested_quant_map")),
                );
                let dq = double_quantize(&absmax, &map, 2);
                assert_eq!(dq.offset.to_bits(), nest.offset.to_bits(), "{key}: offset");
                assert_bytes(
                    &format!("{key}: absmax codes"),
                    &dq.codes,
                    u8s(&st, &format!("{key}.absmax")),
                );
                let want_nested = f32s(&st, &format!("{key}.nested_absmax"));
                assert_eq!(want_nested.len(), state.nested_blocks());
                assert_bits(
                    &format!("{key}: nested_absmax"),
                    &dq.nested_absmax,
                    &want_nested,
                );
            } else {
                assert_bits(
                    &format!("{key}: absmax"),
                    &absmax,
                    &f32s(&st, &format!("{key}.absmax")),
                );
            }
            layers += 1;
        }
    }
    assert_eq!(layers, 14);
}
