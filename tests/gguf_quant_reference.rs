//! GGUF quantization mixes against llama.cpp's llama-quantize.
//!
//! Every model of tests/fixtures/gguf/models/ (7 architectures) and the tiny llama of
//! tests/fixtures/tiny/ is exported to every llama-quantize mix, q8_0 and f16 in one pass. Each
//! mix must equal what `llama_model_quantize` made of convert_hf_to_gguf.py's f32 and bf16/f16
//! conversions of the same folder (recorded in tests/fixtures/gguf_quant/ by
//! tests/gen/gguf_quant_fixtures.py): metadata (key order, types and bytes, our
//! `general.quantized_by` aside) and tensors (names, order, types, extents, offsets, data).
//! q8_0, which we write as the converter does, must hold llama-quantize's Q8_0 tensors, and f16
//! the converter's f16 tensors (tests/fixtures/gguf/refs/), in llama-quantize's order.
//!
//! With `LLM_EXPORT_GGUF_QUANT_OUT=DIR`, one more test writes every mix of two models into DIR,
//! each with our dequantization of its tensors, for the checks against gguf-py and llama.cpp in
//! tests/gen/gguf_quant_check.py (see pkg-scripts/check-gguf-quant.sh).

mod common;

use common::gguf::{
    assert_same_lines, describe_ours, describe_reference, open_file, read_range, run_export,
    try_export,
};
use llm_export::export::gguf_output::{written_by_converter, QuantMix};
use llm_export::export::OutputKind;
use llm_export::formats::gguf::GgufFile;
use llm_export::quant::ggml::GgmlType;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Model folders, named as the reference files.
fn cases() -> Vec<PathBuf> {
    let gguf = [
        "Llama-3.2-1B-Instruct",
        "Mistral-7B-Instruct-v0.3",
        "Qwen2.5-0.5B-Instruct",
        "Qwen3-0.6B",
        "gemma-2-2b-it",
        "gemma-3-4b-it",
        "Phi-3.5-mini-instruct",
    ];
    gguf.iter()
        .map(|c| root().join("gguf/models").join(c))
        .chain([root().join("tiny/tiny-llama")])
        .collect()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The published file of `mix`.
fn file_of(published: &[String], mix: QuantMix) -> &Path {
    let suffix = format!("-{}.gguf", mix.name());
    Path::new(
        published
            .iter()
            .find(|p| p.ends_with(&suffix))
            .unwrap_or_else(|| panic!("no *{suffix} in {published:?}")),
    )
}

/// Tensor lines without the offset (for files whose order differs from the reference's).
fn by_name(lines: &[String]) -> Vec<String> {
    let mut v: Vec<String> = lines
        .iter()
        .map(|l| {
            let mut parts: Vec<&str> = l.split(' ').collect();
            parts.remove(parts.len() - 2);
            parts.join(" ")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn mixes_match_llama_quantize() {
    let quantize_mixes: Vec<QuantMix> = QuantMix::ALL
        .into_iter()
        .filter(|m| !written_by_converter(*m))
        .collect();
    assert_eq!(quantize_mixes.len(), 13);
    let (mut files, mut tensors) = (0, 0);
    for dir in cases() {
        let case = dir.file_name().unwrap().to_str().unwrap().to_string();
        let reference = read_json(&root().join(format!("gguf_quant/{case}.json")));
        let tmp = tempfile::tempdir().unwrap();
        let outputs = quantize_mixes
            .iter()
            .chain(&[QuantMix::Q8_0, QuantMix::F16])
            .map(|m| OutputKind::Gguf(*m))
            .collect();
        let published = run_export(&dir, None, outputs, None, tmp.path());
        assert_eq!(published.len(), 15, "{case}: {published:?}");

        for &mix in &quantize_mixes {
            let (ours_kv, ours_t) = describe_ours(file_of(&published, mix));
            let (ref_kv, ref_t) = describe_reference(&reference["mixes"][mix.name()]);
            assert!(
                ref_kv.len() > 15 && ref_t.len() > 15,
                "{case}: reference too small"
            );
            assert_same_lines(&format!("{case} {mix} metadata"), &ours_kv, &ref_kv);
            assert_same_lines(&format!("{case} {mix} tensors"), &ours_t, &ref_t);
            files += 1;
            tensors += ours_t.len();
        }

        // q8_0 is laid out as the converter lays it out, in the stream's (llama-quantize's)
        // tensor order: the tensors, offsets included, are llama-quantize's.
        let (_, ours_t) = describe_ours(file_of(&published, QuantMix::Q8_0));
        let (_, ref_t) = describe_reference(&reference["mixes"]["Q8_0"]);
        assert_same_lines(&format!("{case} Q8_0 tensors"), &ours_t, &ref_t);
        files += 1;
        tensors += ours_t.len();

        // f16 holds the converter's tensors, in llama-quantize's order.
        let converter_f16 = root().join(format!("gguf/refs/{case}.f16.json"));
        if converter_f16.exists() {
            let (_, ours_t) = describe_ours(file_of(&published, QuantMix::F16));
            let (_, ref_t) = describe_reference(&read_json(&converter_f16));
            assert_same_lines(
                &format!("{case} F16 tensors"),
                &by_name(&ours_t),
                &by_name(&ref_t),
            );
            files += 1;
            tensors += ours_t.len();
        }
    }
    assert_eq!(files, 8 * 14 + 7);
    eprintln!("{files} files, {tensors} tensors identical to llama.cpp's");
}

#[test]
fn quantized_merge_is_rounded_once_from_the_f32_merge() {
    // The tiny llama's rows are whole k-quant blocks; the adapter changes every linear.
    let mixes = [
        QuantMix::Q4_K_M,
        QuantMix::Q3_K_S,
        QuantMix::Q5_1,
        QuantMix::BF16,
    ];
    let gguf = |m: &[QuantMix]| m.iter().map(|m| OutputKind::Gguf(*m)).collect::<Vec<_>>();
    let tmp = tempfile::tempdir().unwrap();
    let mut outputs = gguf(&mixes);
    outputs.push(OutputKind::Merged16);
    let first = tmp.path().join("first");
    let direct = run_export(
        &root().join("tiny/tiny-llama"),
        Some(&root().join("tiny/lora-plain")),
        outputs,
        None,
        &first,
    );
    // The merged bf16 checkpoint exported on its own, from a folder of the base's name (it
    // names the files); without our model card, whose tags would go into the metadata.
    let merged = tmp.path().join("merged/tiny-llama");
    std::fs::create_dir_all(merged.parent().unwrap()).unwrap();
    std::fs::rename(first.join("merged_16bit"), &merged).unwrap();
    std::fs::remove_file(merged.join("README.md")).unwrap();
    let second = run_export(
        &merged,
        None,
        gguf(&mixes),
        None,
        &tmp.path().join("second"),
    );
    let plain = run_export(
        &root().join("tiny/tiny-llama"),
        None,
        gguf(&mixes),
        None,
        &tmp.path().join("plain"),
    );
    for mix in mixes {
        let a = std::fs::read(file_of(&direct, mix)).unwrap();
        let two_step = std::fs::read(file_of(&second, mix)).unwrap();
        assert!(
            a != std::fs::read(file_of(&plain, mix)).unwrap(),
            "{mix}: no merge"
        );
        if mix == QuantMix::BF16 {
            // Rounding the f32 merge to bf16 once is exactly the bf16 checkpoint.
            assert!(
                a == two_step,
                "bf16 from base + adapter differs from the merged checkpoint"
            );
        } else {
            // Quantized straight from the f32 merge, not from its bf16 rounding.
            assert!(
                a != two_step,
                "{mix}: quantized from the 16-bit intermediate"
            );
        }
    }
}

#[test]
fn non_finite_base_value_is_refused_for_quantized_types() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny-llama");
    std::fs::create_dir(&model).unwrap();
    for entry in std::fs::read_dir(root().join("tiny/tiny-llama")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    // A bf16 NaN as the 2nd value of row 3 of layer 1's down projection, wherever it is stored.
    let tensor = "model.layers.1.mlp.down_proj.weight";
    let shard = model.join(
        read_json(&model.join("model.safetensors.index.json"))["weight_map"][tensor]
            .as_str()
            .unwrap(),
    );
    let mut bytes = std::fs::read(&shard).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let start = header[tensor]["data_offsets"][0].as_u64().unwrap() as usize;
    let at = 8 + header_len + start + 2 * (3 * 256 + 1);
    bytes[at..at + 2].copy_from_slice(&0x7fc0u16.to_le_bytes());
    std::fs::write(&shard, bytes).unwrap();

    let err = try_export(
        &model,
        None,
        vec![OutputKind::Gguf(QuantMix::Q4_K_M)],
        None,
        tmp.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("blk.1.ffn_down.weight") && err.contains("NaN") && err.contains("row 3"),
        "{err}"
    );
    // A float type stores it (as llama.cpp's converter does).
    try_export(
        &model,
        None,
        vec![OutputKind::Gguf(QuantMix::F16)],
        None,
        &tmp.path().join("f16"),
    )
    .unwrap();
}

#[test]
fn files_for_python_checks() {
    let Some(dir) = std::env::var_os("LLM_EXPORT_GGUF_QUANT_OUT") else {
        eprintln!("LLM_EXPORT_GGUF_QUANT_OUT is not set: nothing to write");
        return;
    };
    // Rows of whole k-quant blocks, and rows that fall back to 32-blocks and to F16.
    for dir_in in [
        root().join("tiny/tiny-llama"),
        root().join("gguf/models/Qwen3-0.6B"),
    ] {
        let case = dir_in.file_name().unwrap().to_str().unwrap().to_string();
        let out = Path::new(&dir).join(&case);
        let outputs = QuantMix::ALL.iter().map(|m| OutputKind::Gguf(*m)).collect();
        for path in run_export(&dir_in, None, outputs, None, &out) {
            // `<file>.f32`: every tensor dequantized by us, in file order.
            let file = open_file(Path::new(&path));
            let gguf = GgufFile::read(&file).unwrap();
            let mut values = Vec::new();
            for t in &gguf.tensors {
                let ty = GgmlType::from_id(t.ty.id()).unwrap();
                let mut deq = vec![0f32; t.ne.iter().product::<u64>() as usize];
                ty.dequantize_row(&read_range(&file, gguf.data_range(t)), &mut deq);
                values.extend(deq.iter().flat_map(|v| v.to_le_bytes()));
            }
            std::fs::write(format!("{path}.f32"), values).unwrap();
        }
    }
}

#[test]
fn inspect_shows_types_and_bits_per_weight() {
    let tmp = tempfile::tempdir().unwrap();
    let published = run_export(
        &root().join("tiny/tiny-llama"),
        None,
        vec![OutputKind::Gguf(QuantMix::Q4_K_M)],
        None,
        tmp.path(),
    );
    let summary = llm_export::inspect::inspect_file(open_file(Path::new(&published[0]))).unwrap();
    let llm_export::inspect::Summary::Gguf {
        tensors,
        file_type,
        bits_per_weight,
        types,
        ..
    } = summary
    else {
        panic!("not read as GGUF");
    };
    assert_eq!(file_type.as_deref(), Some("Q4_K_M"));
    // Bits per weight from llama-quantize's tensor list: (elements, bytes) per ggml type id.
    let block = |ty: u64| match ty {
        0 => (1, 4),
        12 => (256, 144),
        14 => (256, 210),
        other => panic!("type {other} not expected in this file"),
    };
    let reference = read_json(&root().join("gguf_quant/tiny-llama.json"));
    let (mut weights, mut bits) = (0u64, 0u64);
    for t in reference["mixes"]["Q4_K_M"]["tensors"].as_array().unwrap() {
        let n: u64 = t["ne"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .product();
        let (elems, bytes) = block(t["type"].as_u64().unwrap());
        weights += n;
        bits += n / elems * bytes * 8;
    }
    assert_eq!(bits_per_weight, bits as f64 / weights as f64);
    assert_eq!(
        types.iter().map(|t| t.tensors).sum::<usize>(),
        tensors.len()
    );
    assert!(types
        .iter()
        .any(|t| t.dtype == "Q6_K" && t.bits_per_weight == 6.5625));
    assert!(tensors
        .iter()
        .any(|t| t.name == "blk.1.attn_v.weight" && t.dtype == "Q6_K"));
}
