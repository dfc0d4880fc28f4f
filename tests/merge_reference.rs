//! Merges, dequantization and re-quantization compared with what PEFT, bitsandbytes and
//! transformers produced for the same inputs (`tests/fixtures/tiny`, made by
//! `tests/gen/make_fixtures.py`). Outputs are read back with the `safetensors` crate, not with
//! our own reader.

use llm_export::export::{export, ExportOptions, OutputKind, Plan};
use llm_export::io::{FsDir, InputDir, MemOutput};
use llm_export::lora::Adapter;
use llm_export::model::BaseModel;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny")
        .join(name)
}

fn dir(name: &str) -> Arc<dyn InputDir> {
    Arc::new(FsDir::open(fixture(name)).unwrap())
}

/// A tensor read back from an output: dtype, shape, bytes.
type Tensor = (Dtype, Vec<usize>, Vec<u8>);

fn read_tensors(bytes: &[u8]) -> BTreeMap<String, Tensor> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect()
}

/// Runs an export into memory and returns the published files.
fn run(
    base: &str,
    adapter: Option<&str>,
    outputs: &[OutputKind],
    max_shard_size: Option<u64>,
) -> BTreeMap<String, Vec<u8>> {
    let base = BaseModel::open(dir(base)).unwrap();
    let adapter = adapter.map(|a| Adapter::open(dir(a)).unwrap());
    let mut options = ExportOptions {
        outputs: outputs.to_vec(),
        ..Default::default()
    };
    if let Some(m) = max_shard_size {
        options.max_shard_size = m;
    }
    let plan = Plan::new(&base, adapter.as_ref(), options).unwrap();
    let out = MemOutput::default();
    export(&base, adapter.as_ref(), &plan, &out, &|_| {}).unwrap();
    out.files()
}

/// All tensors of an HF folder output, across shards.
fn folder_tensors(files: &BTreeMap<String, Vec<u8>>, folder: &str) -> BTreeMap<String, Tensor> {
    files
        .iter()
        .filter(|(n, _)| n.starts_with(&format!("{folder}/")) && n.ends_with(".safetensors"))
        .flat_map(|(_, b)| read_tensors(b))
        .collect()
}

fn bf16_values(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Distance in representable bf16 steps (sign-magnitude bits mapped to a monotone integer line).
fn ulps(a: u16, b: u16) -> u32 {
    let key = |x: u16| {
        if x & 0x8000 != 0 {
            -((x & 0x7fff) as i32)
        } else {
            x as i32
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

/// Compares bf16 tensors: returns (elements, exactly equal, more than 1 ulp apart).
fn compare_bf16(ours: &[u8], theirs: &[u8]) -> (usize, usize, usize) {
    let (a, b) = (bf16_values(ours), bf16_values(theirs));
    assert_eq!(a.len(), b.len());
    let exact = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    let far = a.iter().zip(&b).filter(|(x, y)| ulps(**x, **y) > 1).count();
    (a.len(), exact, far)
}

#[test]
fn dequantization_matches_bitsandbytes() {
    for variant in ["nf4-dq", "nf4", "fp4-dq"] {
        let model = BaseModel::open(dir(&format!("tiny-llama-{variant}"))).unwrap();
        let refs = std::fs::read(fixture(&format!("refs/dequant-{variant}.safetensors"))).unwrap();
        for (name, (_, shape, expected)) in read_tensors(&refs) {
            let t = model.tensor(&name).unwrap();
            assert_eq!(t.shape, shape);
            let mut values = vec![0f32; t.numel()];
            t.open()
                .unwrap()
                .read_rows(0..t.rows(), &mut values)
                .unwrap();
            let ours: Vec<u8> = values
                .iter()
                .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                .collect();
            // Each value is already a bf16 value: conversion is exact, so compare bits.
            assert!(values
                .iter()
                .all(|v| half::bf16::from_f32(*v).to_f32() == *v));
            assert_eq!(ours, expected, "{variant} {name}");
        }
    }
}

/// `round_bf16(f32(W) + f32(B @ A) * scale)`, the dot product summed in rank order with fused
/// multiply-adds as torch's CPU matmul does.
fn independent_merge(w: &[u8], a: &[f32], b: &[f32], rank: usize, scale: f32) -> Vec<u8> {
    let w: Vec<f32> = bf16_values(w)
        .iter()
        .map(|&x| half::bf16::from_bits(x).to_f32())
        .collect();
    let cols = a.len() / rank;
    let mut out = Vec::with_capacity(w.len() * 2);
    for (i, row) in w.chunks(cols).enumerate() {
        for (j, &x) in row.iter().enumerate() {
            let mut dot = 0f32;
            for k in 0..rank {
                dot = b[i * rank + k].mul_add(a[k * cols + j], dot);
            }
            out.extend_from_slice(&half::bf16::from_f32(x + dot * scale).to_le_bytes());
        }
    }
    out
}

#[test]
fn merged_16bit_matches_peft() {
    for adapter in [
        "lora-plain",
        "lora-rslora",
        "lora-patterns",
        "lora-save-embed",
        "lora-dora",
    ] {
        let files = run("tiny-llama", Some(adapter), &[OutputKind::Merged16], None);
        let ours = folder_tensors(&files, "merged_16bit");
        let refs = read_tensors(
            &std::fs::read(fixture(&format!("refs/merged-{adapter}.safetensors"))).unwrap(),
        );
        let (mut total, mut exact) = (0, 0);
        for (name, (dtype, shape, expected)) in &refs {
            let (d, s, got) = &ours[name];
            assert_eq!((d, s), (dtype, shape), "{adapter} {name}");
            let (n, e, far) = compare_bf16(got, expected);
            assert_eq!(
                far, 0,
                "{adapter} {name}: {far} values more than 1 ulp from PEFT"
            );
            total += n;
            exact += e;
        }
        // PEFT's matmul sums in another order, so a handful of values may round the other way.
        assert!(
            exact as f64 >= 0.999 * total as f64,
            "{adapter}: only {exact}/{total} exact"
        );
    }
}

#[test]
fn merged_16bit_is_the_once_rounded_f32_merge() {
    let files = run(
        "tiny-llama",
        Some("lora-plain"),
        &[OutputKind::Merged16],
        None,
    );
    let ours = folder_tensors(&files, "merged_16bit");
    let base = BaseModel::open(dir("tiny-llama")).unwrap();
    let adapter = Adapter::open(dir("lora-plain")).unwrap();
    let mut checked = 0;
    for (name, entry) in &adapter.entries {
        let pair = entry.lora.as_ref().unwrap();
        let t = base.tensor(name).unwrap();
        let llm_export::model::Storage::Dense(d) = &t.storage else {
            panic!("bf16 base")
        };
        let w = d.file.read(&d.raw).unwrap();
        let (a, b) = (
            adapter.read_f32(&pair.a).unwrap(),
            adapter.read_f32(&pair.b).unwrap(),
        );
        let expected = independent_merge(&w, &a, &b, pair.rank, (16.0f64 / 8.0) as f32);
        assert_eq!(ours[name].2, expected, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 14);
}

#[test]
fn modules_to_save_and_resized_vocabulary() {
    let files = run(
        "tiny-llama",
        Some("lora-save-embed"),
        &[OutputKind::Merged16],
        None,
    );
    let ours = folder_tensors(&files, "merged_16bit");
    let adapter =
        read_tensors(&std::fs::read(fixture("lora-save-embed/adapter_model.safetensors")).unwrap());
    for m in ["model.embed_tokens", "lm_head"] {
        let trained = &adapter[&format!("base_model.model.{m}.modules_to_save.weight")];
        assert_eq!(ours[&format!("{m}.weight")], *trained, "{m}");
        assert_eq!(trained.1[0], 388);
    }
    let config: serde_json::Value =
        serde_json::from_slice(&files["merged_16bit/config.json"]).unwrap();
    assert_eq!(config["vocab_size"], 388);
    assert_eq!(
        files["merged_16bit/tokenizer.json"],
        std::fs::read(fixture("lora-save-embed/tokenizer.json")).unwrap()
    );
}

#[test]
fn adapter_made_on_4bit_base_merges_onto_16bit_base() {
    let files = run(
        "tiny-llama",
        Some("lora-nf4"),
        &[OutputKind::Merged16],
        None,
    );
    let ours = folder_tensors(&files, "merged_16bit");
    let refs =
        read_tensors(&std::fs::read(fixture("refs/merged-lora-nf4-on-bf16.safetensors")).unwrap());
    for (name, (_, _, expected)) in refs {
        assert_eq!(compare_bf16(&ours[&name].2, &expected).2, 0, "{name}");
    }
}

#[test]
fn merged_4bit_matches_bitsandbytes_quantization() {
    let files = run(
        "tiny-llama",
        Some("lora-plain"),
        &[OutputKind::Merged4],
        None,
    );
    let ours = folder_tensors(&files, "merged_4bit");
    let refs = read_tensors(
        &std::fs::read(fixture("refs/requant-nf4-dq-lora-plain.safetensors")).unwrap(),
    );
    assert!(!refs.is_empty());
    for (name, (dtype, shape, expected)) in refs {
        let (d, s, got) = &ours[&name];
        if name.ends_with("quant_state.bitsandbytes__nf4") {
            // Ours is padded with spaces to a length fixed before the offset is known.
            assert_eq!(
                std::str::from_utf8(got).unwrap().trim_end().as_bytes(),
                expected.as_slice(),
                "{name}"
            );
        } else {
            assert_eq!((*d, s, got), (dtype, &shape, &expected), "{name}");
        }
    }
    let config: serde_json::Value =
        serde_json::from_slice(&files["merged_4bit/config.json"]).unwrap();
    let q = &config["quantization_config"];
    assert_eq!(
        (
            q["bnb_4bit_quant_type"].as_str(),
            q["bnb_4bit_use_double_quant"].as_bool()
        ),
        (Some("nf4"), Some(true))
    );
}

#[test]
fn untouched_4bit_weights_are_copied_exactly() {
    // lora-nf4 changes q, v and down; k_proj keeps transformers' own encoding, not a lossy
    // dequantize-requantize round trip.
    let files = run(
        "tiny-llama-nf4-dq",
        Some("lora-nf4"),
        &[OutputKind::Merged4],
        None,
    );
    let ours = folder_tensors(&files, "merged_4bit");
    let base =
        read_tensors(&std::fs::read(fixture("tiny-llama-nf4-dq/model.safetensors")).unwrap());
    let prefix = "model.layers.0.self_attn.k_proj.weight";
    let group: Vec<&String> = base.keys().filter(|k| k.starts_with(prefix)).collect();
    assert_eq!(group.len(), 6);
    for name in group {
        assert_eq!(ours[name], base[name], "{name}");
    }
    let changed = "model.layers.0.self_attn.q_proj.weight.absmax";
    assert_ne!(ours[changed], base[changed]);
}

#[test]
fn sharding_splits_without_changing_tensors() {
    let one = run(
        "tiny-llama",
        Some("lora-plain"),
        &[OutputKind::Merged16],
        None,
    );
    let many = run(
        "tiny-llama",
        Some("lora-plain"),
        &[OutputKind::Merged16],
        Some(300_000),
    );
    let shards: Vec<&String> = many
        .keys()
        .filter(|k| k.starts_with("merged_16bit/model-"))
        .collect();
    assert!(shards.len() > 2, "{shards:?}");
    let index: serde_json::Value =
        serde_json::from_slice(&many["merged_16bit/model.safetensors.index.json"]).unwrap();
    let tensors = folder_tensors(&many, "merged_16bit");
    assert_eq!(
        index["weight_map"].as_object().unwrap().len(),
        tensors.len()
    );
    assert_eq!(tensors, folder_tensors(&one, "merged_16bit"));
}

#[test]
fn lora_output_keeps_every_adapter_tensor() {
    let files = run(
        "tiny-llama",
        Some("lora-patterns"),
        &[OutputKind::Lora],
        None,
    );
    let ours = read_tensors(&files["lora/adapter_model.safetensors"]);
    let theirs =
        read_tensors(&std::fs::read(fixture("lora-patterns/adapter_model.safetensors")).unwrap());
    assert_eq!(ours, theirs);
    let config: serde_json::Value =
        serde_json::from_slice(&files["lora/adapter_config.json"]).unwrap();
    assert_eq!(
        config["rank_pattern"],
        serde_json::json!({"layers.1.self_attn.k_proj": 2, "self_attn.k_proj": 4})
    );
    assert!(files.contains_key("lora/README.md"));
}
