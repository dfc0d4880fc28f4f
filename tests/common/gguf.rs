//! Helpers for tests that compare our GGUF files with references recorded from llama.cpp's
//! tools (`tests/gen/gguf_fixtures.py`, `tests/gen/gguf_quant_fixtures.py`): exporting, and
//! describing a file's KVs and tensors as comparable lines.

use llm_export::export::gguf_output::PROVENANCE_KEYS;
use llm_export::export::{export, ExportOptions, OutputKind, Plan};
use llm_export::formats::gguf::GgufFile;
use llm_export::io::{FsDir, FsOutput, InputDir, InputFile};
use llm_export::lora::Adapter;
use llm_export::model::{BaseModel, FloatType};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// KV payloads up to this many bytes are recorded inline, longer ones as sha256 (as the
/// generator does).
pub const INLINE_BYTES: usize = 256;

pub fn open_dir(path: &Path) -> Arc<dyn InputDir> {
    Arc::new(FsDir::open(path).unwrap())
}

/// Exports `outputs` of `base` (+ `adapter`) into `out`; returns the published paths.
pub fn run_export(
    base: &Path,
    adapter: Option<&Path>,
    outputs: Vec<OutputKind>,
    dtype: Option<FloatType>,
    out: &Path,
) -> Vec<String> {
    try_export(base, adapter, outputs, dtype, out).unwrap()
}

/// [`run_export`], failing with the planning or export error.
pub fn try_export(
    base: &Path,
    adapter: Option<&Path>,
    outputs: Vec<OutputKind>,
    dtype: Option<FloatType>,
    out: &Path,
) -> llm_export::Result<Vec<String>> {
    let base = BaseModel::open(open_dir(base))?;
    let adapter = adapter.map(|a| Adapter::open(open_dir(a))).transpose()?;
    let options = ExportOptions {
        outputs,
        dtype,
        ..Default::default()
    };
    let plan = Plan::new(&base, adapter.as_ref(), options)?;
    let out = FsOutput::new(out, false)?;
    Ok(export(&base, adapter.as_ref(), &plan, &out, &|_| {})?.published)
}

pub fn open_file(path: &Path) -> InputFile {
    FsDir::open(path.parent().unwrap())
        .unwrap()
        .open(path.file_name().unwrap().to_str().unwrap())
        .unwrap()
        .unwrap()
}

pub fn read_range(file: &InputFile, range: std::ops::Range<u64>) -> Vec<u8> {
    let mut buf = vec![0u8; (range.end - range.start) as usize];
    file.read_at(range.start, &mut buf).unwrap();
    buf
}

pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One KV as the reference records it: key, type, array element type and count, and the
/// payload (hex when short, else sha256).
pub fn kv_record(key: &str, ty: &str, elem: Option<(&str, u64)>, payload: &[u8]) -> String {
    let data = if payload.len() <= INLINE_BYTES {
        payload.iter().map(|b| format!("{b:02x}")).collect()
    } else {
        format!("sha256:{}:{}", sha256(payload), payload.len())
    };
    format!("{key} {ty} {elem:?} {data}")
}

/// Our file's KVs and tensors in the reference's terms.
pub fn describe_ours(path: &Path) -> (Vec<String>, Vec<String>) {
    let file = open_file(path);
    let gguf = GgufFile::read(&file).unwrap();
    let kvs = gguf
        .metadata
        .iter()
        .filter(|e| !PROVENANCE_KEYS.contains(&e.key.as_str()))
        .map(|e| {
            let payload = read_range(&file, e.payload.clone());
            let ty = type_name(e.value.value_type().id());
            match &e.value {
                llm_export::formats::gguf::Value::Array(a) => kv_record(
                    &e.key,
                    ty,
                    Some((type_name(a.elem_type().id()), a.len() as u64)),
                    &payload[12..],
                ),
                _ => kv_record(&e.key, ty, None, &payload),
            }
        })
        .collect();
    let tensors = gguf
        .tensors
        .iter()
        .map(|t| {
            let data = read_range(&file, gguf.data_range(t));
            format!(
                "{} {} {:?} {} {}",
                t.name,
                t.ty.id(),
                t.ne,
                t.offset,
                sha256(&data)
            )
        })
        .collect();
    (kvs, tensors)
}

/// The generator's names of GGUF value types.
pub fn type_name(id: u32) -> &'static str {
    [
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64",
        "f64",
    ][id as usize]
}

pub fn describe_reference(reference: &Value) -> (Vec<String>, Vec<String>) {
    let kvs = reference["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| {
            let elem = kv
                .get("elem_type")
                .map(|e| (e.as_str().unwrap(), kv["count"].as_u64().unwrap()));
            let data = match (kv.get("hex"), kv.get("sha256")) {
                (Some(hex), _) => hex.as_str().unwrap().to_string(),
                (_, Some(sha)) => format!(
                    "sha256:{}:{}",
                    sha.as_str().unwrap(),
                    kv["bytes"].as_u64().unwrap()
                ),
                _ => panic!("reference KV without data: {kv}"),
            };
            format!(
                "{} {} {elem:?} {data}",
                kv["key"].as_str().unwrap(),
                kv["type"].as_str().unwrap()
            )
        })
        .collect();
    let tensors = reference["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let ne: Vec<u64> = t["ne"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            format!(
                "{} {} {ne:?} {} {}",
                t["name"].as_str().unwrap(),
                t["type"],
                t["offset"],
                t["sha256"].as_str().unwrap()
            )
        })
        .collect();
    (kvs, tensors)
}

pub fn assert_same_lines(what: &str, ours: &[String], reference: &[String]) {
    for (i, (o, r)) in ours.iter().zip(reference).enumerate() {
        assert_eq!(o, r, "{what}: entry {i} differs");
    }
    assert_eq!(ours.len(), reference.len(), "{what}: entry count differs");
}
