//! GGUF outputs against llama.cpp's `convert_hf_to_gguf.py`: every model under
//! tests/fixtures/gguf/models/ is exported to f32, f16, bf16 and q8_0 in one pass, and each file
//! must hold exactly the metadata and tensors recorded in tests/fixtures/gguf/refs/ by
//! tests/gen/gguf_fixtures.py (key order, value types and bytes; tensor names, order, types,
//! extents, offsets and data hashes).

mod common;

use common::gguf::{assert_same_lines, describe_ours, describe_reference, open_file, run_export};
use llm_export::export::gguf_output::QuantMix;
use llm_export::export::OutputKind;
use llm_export::formats::gguf::GgufFile;
use llm_export::model::FloatType;
use serde_json::Value;
use std::path::{Path, PathBuf};

const CASES: [&str; 7] = [
    "Llama-3.2-1B-Instruct",
    "Mistral-7B-Instruct-v0.3",
    "Qwen2.5-0.5B-Instruct",
    "Qwen3-0.6B",
    "gemma-2-2b-it",
    "gemma-3-4b-it",
    "Phi-3.5-mini-instruct",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf")
}

#[test]
fn matches_convert_hf_to_gguf() {
    let gguf_types = [QuantMix::F32, QuantMix::F16, QuantMix::BF16, QuantMix::Q8_0];
    for case in CASES {
        let tmp = tempfile::tempdir().unwrap();
        let outputs = gguf_types.iter().map(|t| OutputKind::Gguf(*t)).collect();
        let published = run_export(
            &fixtures().join("models").join(case),
            None,
            outputs,
            None,
            tmp.path(),
        );
        assert_eq!(published.len(), 4, "{case}: {published:?}");
        for ty in gguf_types {
            let label = ty.name().to_ascii_lowercase();
            let suffix = format!("-{}.gguf", label.to_uppercase());
            let path = published
                .iter()
                .find(|p| p.ends_with(&suffix))
                .unwrap_or_else(|| panic!("{case}: no *{suffix} in {published:?}"));
            let reference: Value = serde_json::from_slice(
                &std::fs::read(fixtures().join(format!("refs/{case}.{label}.json"))).unwrap(),
            )
            .unwrap();
            let (our_kvs, our_tensors) = describe_ours(Path::new(path));
            let (ref_kvs, ref_tensors) = describe_reference(&reference);
            assert!(
                ref_kvs.len() > 15 && ref_tensors.len() > 15,
                "{case}: reference too small"
            );
            assert_same_lines(&format!("{case} {label} metadata"), &our_kvs, &ref_kvs);
            assert_same_lines(
                &format!("{case} {label} tensors"),
                &our_tensors,
                &ref_tensors,
            );
        }
    }
}

/// A rank-4 LoRA on the q, v and down projections of both layers of the Qwen2.5 fixture
/// (hidden 128, 2 KV heads of 32, intermediate 256), F32 as PEFT saves it; with `head`, also a
/// trained output head, which unties the fixture's tied embeddings.
fn write_qwen2_adapter(dir: &Path, head: bool) {
    use common::{f32s, safetensors_bytes, values, T};
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        format!(
            r#"{{"peft_type":"LORA","r":4,"lora_alpha":8,"target_modules":["q_proj","v_proj","down_proj"],"modules_to_save":{},"base_model_name_or_path":"Qwen/Qwen2.5-0.5B-Instruct"}}"#,
            if head { r#"["lm_head"]"# } else { "null" }
        ),
    )
    .unwrap();
    let mut tensors = Vec::new();
    if head {
        tensors.push((
            "base_model.model.lm_head.weight".to_string(),
            vec![352, 128],
            f32s(&values(352 * 128, 3, 0.1)),
        ));
    }
    let mut seed = 10;
    for layer in 0..2 {
        for (module, rows, cols) in [
            ("self_attn.q_proj", 128, 128),
            ("self_attn.v_proj", 64, 128),
            ("mlp.down_proj", 128, 256),
        ] {
            let prefix = format!("base_model.model.model.layers.{layer}.{module}");
            seed += 2;
            tensors.push((
                format!("{prefix}.lora_A.weight"),
                vec![4, cols],
                f32s(&values(4 * cols, seed, 0.2)),
            ));
            tensors.push((
                format!("{prefix}.lora_B.weight"),
                vec![rows, 4],
                f32s(&values(rows * 4, seed + 1, 0.2)),
            ));
        }
    }
    let specs: Vec<T> = tensors
        .iter()
        .map(|(name, shape, data)| T(name, "F32", shape.clone(), data.clone()))
        .collect();
    std::fs::write(
        dir.join("adapter_model.safetensors"),
        safetensors_bytes(&specs),
    )
    .unwrap();
}

#[test]
fn adapter_merge_equals_converting_the_merged_checkpoint() {
    adapter_merge_equals_merged(false);
}

#[test]
fn trained_head_of_tied_model_is_placed_as_in_the_merged_checkpoint() {
    adapter_merge_equals_merged(true);
}

fn adapter_merge_equals_merged(head: bool) {
    let case = "Qwen2.5-0.5B-Instruct";
    let tmp = tempfile::tempdir().unwrap();
    let adapter = tmp.path().join("adapter");
    write_qwen2_adapter(&adapter, head);
    let base = fixtures().join("models").join(case);
    // One pass: the GGUF straight from base + adapter, and the merged bf16 checkpoint.
    let first = tmp.path().join("first");
    let published = run_export(
        &base,
        Some(&adapter),
        vec![OutputKind::Gguf(QuantMix::BF16), OutputKind::Merged16],
        Some(FloatType::Bf16),
        &first,
    );
    let direct = published.iter().find(|p| p.ends_with(".gguf")).unwrap();
    // The merged checkpoint converted on its own, from a folder of the same name (the name
    // goes into general.name and the file name).
    let merged = tmp.path().join("merged").join(case);
    std::fs::create_dir_all(merged.parent().unwrap()).unwrap();
    std::fs::rename(first.join("merged_16bit"), &merged).unwrap();
    // Our model card would add its base model and tags to the GGUF metadata; the base has none.
    std::fs::remove_file(merged.join("README.md")).unwrap();
    let second = tmp.path().join("second");
    let published = run_export(
        &merged,
        None,
        vec![OutputKind::Gguf(QuantMix::BF16)],
        None,
        &second,
    );
    let converted = &published[0];
    assert_eq!(
        Path::new(direct).file_name(),
        Path::new(converted).file_name()
    );
    let names: Vec<String> = GgufFile::read(&open_file(Path::new(direct)))
        .unwrap()
        .tensors
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names.contains(&"output.weight".to_string()), head);
    let (a, b) = (
        std::fs::read(direct).unwrap(),
        std::fs::read(converted).unwrap(),
    );
    assert!(
        a == b,
        "GGUF from base + adapter differs from GGUF of the merged checkpoint"
    );
    // And the adapter did change the weights.
    let plain = tmp.path().join("plain");
    let published = run_export(
        &base,
        None,
        vec![OutputKind::Gguf(QuantMix::BF16)],
        None,
        &plain,
    );
    assert_ne!(std::fs::read(&published[0]).unwrap(), a);
}

#[test]
fn four_bit_base_converts_like_its_dequantized_checkpoint() {
    // The NF4 file mixes dtypes, so its data order is not its name order; GGUF tensors must
    // still come in the converter's (name) order, as for the dequantized 16-bit checkpoint.
    let case = "Qwen2.5-0.5B-Instruct-bnb-4bit";
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("first");
    let published = run_export(
        &fixtures().join("models").join(case),
        None,
        vec![OutputKind::Gguf(QuantMix::BF16), OutputKind::Merged16],
        None,
        &first,
    );
    let direct = published.iter().find(|p| p.ends_with(".gguf")).unwrap();
    let merged = tmp.path().join("merged").join(case);
    std::fs::create_dir_all(merged.parent().unwrap()).unwrap();
    std::fs::rename(first.join("merged_16bit"), &merged).unwrap();
    std::fs::remove_file(merged.join("README.md")).unwrap();
    let published = run_export(
        &merged,
        None,
        vec![OutputKind::Gguf(QuantMix::BF16)],
        None,
        &tmp.path().join("second"),
    );
    assert!(std::fs::read(direct).unwrap() == std::fs::read(&published[0]).unwrap());
}

#[test]
fn inspect_reads_our_gguf() {
    let tmp = tempfile::tempdir().unwrap();
    let published = run_export(
        &fixtures().join("models/Phi-3.5-mini-instruct"),
        None,
        vec![OutputKind::Gguf(QuantMix::Q8_0)],
        None,
        tmp.path(),
    );
    let summary = llm_export::inspect::inspect_file(open_file(Path::new(&published[0]))).unwrap();
    let llm_export::inspect::Summary::Gguf {
        version,
        metadata,
        tensors,
        ..
    } = summary
    else {
        panic!("not read as GGUF");
    };
    assert_eq!(version, 3);
    assert!(metadata
        .iter()
        .any(|m| m.key == "general.architecture" && m.value == "\"phi3\""));
    assert!(tensors
        .iter()
        .any(|t| t.name == "blk.0.attn_qkv.weight" && t.dtype == "Q8_0" && t.shape == [128, 384]));
}
