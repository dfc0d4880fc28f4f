//! The `lora-gguf` output against llama.cpp's `convert_lora_to_gguf.py`: every reference in
//! tests/fixtures/lora_gguf/refs/ (made by tests/gen/lora_gguf_fixtures.py) names a base, an
//! adapter and a type; our file must have the converter's file name and hold exactly its metadata
//! and tensors (key order, value types and bytes; tensor names, order, types, extents, offsets and
//! data hashes), but for the corrections the reference computed from PEFT for adapters whose
//! scales the converter gets wrong (rsLoRA) or cannot express (alpha patterns): those must be
//! there, with our key saying so. What a GGUF LoRA cannot express is refused.

use llm_export::export::gguf_output::{QuantMix, PROVENANCE_KEYS};
use llm_export::export::lora_gguf::SCALING_KEY;
use llm_export::export::{export, ExportOptions, OutputKind, Plan};
use llm_export::formats::gguf::{GgufFile, Value as GgufValue};
use llm_export::io::{FsDir, FsOutput, InputDir, InputFile};
use llm_export::lora::Adapter;
use llm_export::model::BaseModel;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// KV payloads up to this many bytes are recorded as hex, longer ones as sha256 (as the
/// generator does).
const INLINE_BYTES: usize = 256;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn open_dir(path: &Path) -> Arc<dyn InputDir> {
    Arc::new(FsDir::open(path).unwrap())
}

fn plan(base: &Path, adapter: Option<&Path>, outputs: Vec<OutputKind>) -> llm_export::Result<()> {
    let base = BaseModel::open(open_dir(base)).unwrap();
    let adapter = adapter.map(|a| Adapter::open(open_dir(a)).unwrap());
    let options = ExportOptions {
        outputs,
        ..Default::default()
    };
    Plan::new(&base, adapter.as_ref(), options).map(|_| ())
}

/// Exports `types` of `adapter` on `base` into `out`; returns the published paths.
fn export_lora_gguf(base: &Path, adapter: &Path, types: &[QuantMix], out: &Path) -> Vec<String> {
    let base = BaseModel::open(open_dir(base)).unwrap();
    let adapter = Adapter::open(open_dir(adapter)).unwrap();
    let options = ExportOptions {
        outputs: types.iter().map(|t| OutputKind::LoraGguf(*t)).collect(),
        ..Default::default()
    };
    let plan = Plan::new(&base, Some(&adapter), options).unwrap();
    let out = FsOutput::new(out, false).unwrap();
    export(&base, Some(&adapter), &plan, &out, &|_| {})
        .unwrap()
        .published
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The generator's names of GGUF value types.
fn type_name(id: u32) -> &'static str {
    [
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64",
        "f64",
    ][id as usize]
}

/// Our file in the reference's terms (`kvs` and `tensors` of the generator's compact form),
/// and the value of our scaling key when present.
fn describe_ours(path: &Path) -> (Value, Option<String>) {
    let dir = FsDir::open(path.parent().unwrap()).unwrap();
    let file: InputFile = dir
        .open(path.file_name().unwrap().to_str().unwrap())
        .unwrap()
        .unwrap();
    let read = |range: std::ops::Range<u64>| {
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        file.read_at(range.start, &mut buf).unwrap();
        buf
    };
    let gguf = GgufFile::read(&file).unwrap();
    let mut scaling = None;
    let mut kvs = Vec::new();
    for e in &gguf.metadata {
        if e.key == SCALING_KEY {
            let GgufValue::String(s) = &e.value else {
                panic!("{SCALING_KEY} is not a string")
            };
            scaling = Some(s.clone());
            continue;
        }
        if PROVENANCE_KEYS.contains(&e.key.as_str()) {
            continue;
        }
        let payload = read(e.payload.clone());
        let mut kv = json!({"key": e.key, "type": type_name(e.value.value_type().id())});
        let data = match &e.value {
            GgufValue::Array(a) => {
                kv["elem_type"] = json!(type_name(a.elem_type().id()));
                kv["count"] = json!(a.len());
                &payload[12..]
            }
            _ => &payload[..],
        };
        if data.len() <= INLINE_BYTES {
            kv["hex"] = json!(hex(data));
        } else {
            kv["sha256"] = json!(sha256(data));
            kv["bytes"] = json!(data.len());
        }
        kvs.push(kv);
    }
    let tensors: Vec<Value> = gguf
        .tensors
        .iter()
        .map(|t| {
            json!({"name": t.name, "type": t.ty.id(), "ne": t.ne, "offset": t.offset,
                   "sha256": sha256(&read(gguf.data_range(t)))})
        })
        .collect();
    (json!({"kvs": kvs, "tensors": tensors}), scaling)
}

/// The converter's file with the reference's corrections applied, without the readable `show`
/// values; and the names of the pre-scaled tensors.
fn expected_file(reference: &Value) -> (Value, Vec<String>) {
    let mut file = reference["converter"].clone();
    let expected = &reference["expected"];
    for kv in file["kvs"].as_array_mut().unwrap() {
        kv.as_object_mut().unwrap().remove("show");
        if kv["key"] == "adapter.lora.alpha" && !expected.is_null() {
            kv["hex"] = expected["adapter.lora.alpha"]["hex"].clone();
        }
    }
    let mut scaled = Vec::new();
    if let Some(lora_b) = expected.get("lora_b").and_then(Value::as_object) {
        for t in file["tensors"].as_array_mut().unwrap() {
            if let Some(fix) = lora_b.get(t["name"].as_str().unwrap()) {
                t["sha256"] = fix["sha256"].clone();
                scaled.push(t["name"].as_str().unwrap().to_string());
            }
        }
        assert_eq!(
            scaled.len(),
            lora_b.len(),
            "corrections for unknown tensors"
        );
    }
    file.as_object_mut().unwrap().remove("alignment");
    (file, scaled)
}

fn assert_same_entries(what: &str, ours: &Value, expected: &Value) {
    let (ours, expected) = (ours.as_array().unwrap(), expected.as_array().unwrap());
    for (i, (o, e)) in ours.iter().zip(expected).enumerate() {
        assert_eq!(o, e, "{what}: entry {i} differs");
    }
    assert_eq!(ours.len(), expected.len(), "{what}: entry count differs");
}

#[test]
fn matches_convert_lora_to_gguf() {
    // (base, adapter) -> [(type, reference)]
    let mut cases: BTreeMap<(String, String), Vec<(QuantMix, Value)>> = BTreeMap::new();
    let mut corrected = 0;
    for entry in std::fs::read_dir(fixtures().join("lora_gguf/refs")).unwrap() {
        let reference: Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        let ty = QuantMix::parse(reference["outtype"].as_str().unwrap()).unwrap();
        let key = (
            reference["base"].as_str().unwrap().to_string(),
            reference["adapter"].as_str().unwrap().to_string(),
        );
        cases.entry(key).or_default().push((ty, reference));
    }
    assert!(cases.len() >= 7, "references missing: {:?}", cases.keys());
    for ((base, adapter), refs) in &cases {
        let tmp = tempfile::tempdir().unwrap();
        let types: Vec<QuantMix> = refs.iter().map(|(t, _)| *t).collect();
        let published = export_lora_gguf(
            &fixtures().join(base),
            &fixtures().join(adapter),
            &types,
            tmp.path(),
        );
        for (ty, reference) in refs {
            let what = format!("{adapter} {ty}");
            let name = reference["file_name"].as_str().unwrap();
            let path = published
                .iter()
                .find(|p| p.ends_with(&format!("/{name}")))
                .unwrap_or_else(|| panic!("{what}: no {name} in {published:?}"));
            let (ours, scaling) = describe_ours(Path::new(path));
            let (expected, scaled) = expected_file(reference);
            assert_same_entries(&format!("{what} metadata"), &ours["kvs"], &expected["kvs"]);
            assert_same_entries(
                &format!("{what} tensors"),
                &ours["tensors"],
                &expected["tensors"],
            );
            // Our key is there exactly when the scales needed correcting, and names what was
            // pre-scaled.
            match (reference["expected"].is_null(), &scaling) {
                (true, None) => {}
                (false, Some(note)) => {
                    corrected += 1;
                    for t in &scaled {
                        let module = t.trim_end_matches(".lora_b");
                        assert!(note.contains(module), "{what}: {note:?} omits {module}");
                    }
                }
                _ => panic!("{what}: {SCALING_KEY} is {scaling:?}"),
            }
        }
    }
    assert!(corrected >= 3, "no corrected case was checked");
}

#[test]
fn rslora_alpha_is_alpha_times_sqrt_r() {
    // The tiny rsLoRA adapter: r = 16, lora_alpha = 8, so PEFT's scale 8/√16 = 2 needs 32.
    let reference: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("lora_gguf/refs/lora-rslora.f16.json")).unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let published = export_lora_gguf(
        &fixtures().join("tiny/tiny-llama"),
        &fixtures().join("tiny/lora-rslora"),
        &[QuantMix::F16],
        tmp.path(),
    );
    let (ours, _) = describe_ours(Path::new(&published[0]));
    let alpha = |file: &Value| -> f32 {
        let kv = file["kvs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv["key"] == "adapter.lora.alpha")
            .unwrap();
        let bytes: Vec<u8> = (0..4)
            .map(|i| {
                u8::from_str_radix(&kv["hex"].as_str().unwrap()[2 * i..2 * i + 2], 16).unwrap()
            })
            .collect();
        f32::from_le_bytes(bytes.try_into().unwrap())
    };
    assert_eq!(alpha(&reference["converter"]), 8.0);
    assert_eq!(alpha(&ours), 8.0 * 16f32.sqrt());
}

#[test]
fn what_llama_cpp_cannot_apply_is_refused() {
    let tiny = fixtures().join("tiny");
    let base = tiny.join("tiny-llama");
    let lora_gguf = vec![OutputKind::LoraGguf(QuantMix::F16)];
    let err = |adapter: Option<&str>| {
        plan(
            &base,
            adapter.map(|a| tiny.join(a)).as_deref(),
            lora_gguf.clone(),
        )
        .unwrap_err()
        .to_string()
    };
    let dora = err(Some("lora-dora"));
    assert!(
        dora.contains("DoRA") && dora.contains("--to gguf:"),
        "{dora}"
    );
    let whole = err(Some("lora-save-embed"));
    assert!(
        whole.contains("modules_to_save")
            && whole.contains("model.embed_tokens.weight")
            && whole.contains("--to gguf:"),
        "{whole}"
    );
    let none = err(None);
    assert!(none.contains("--adapter"), "{none}");
    // The merged outputs of the same adapters remain available.
    plan(
        &base,
        Some(&tiny.join("lora-save-embed")),
        vec![OutputKind::Gguf(QuantMix::F16)],
    )
    .unwrap();
}

#[test]
fn output_names_parse() {
    let parse = |s: &str| s.parse::<OutputKind>();
    assert_eq!(
        parse("lora-gguf").unwrap(),
        OutputKind::LoraGguf(QuantMix::F16)
    );
    assert_eq!(
        parse("LoRA-GGUF:Q8_0").unwrap(),
        OutputKind::LoraGguf(QuantMix::Q8_0)
    );
    assert_eq!(
        parse("lora_gguf:bf16").unwrap(),
        OutputKind::LoraGguf(QuantMix::BF16)
    );
    assert_eq!(parse("lora-gguf:f32").unwrap().name(), "lora-gguf:f32");
    let err = parse("lora-gguf:q4_0").unwrap_err().to_string();
    assert!(err.contains("f16") && err.contains("q8_0"), "{err}");
}
