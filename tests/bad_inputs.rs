//! Every kind of bad input gets a clear error naming the file or tensor, and leaves no output.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_llm-export"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn export(base: &Path, adapter: Option<&Path>, out: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        "export",
        base.to_str().unwrap(),
        "--to",
        "merged_16bit",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    if let Some(a) = adapter {
        args.extend(["--adapter", a.to_str().unwrap()]);
    }
    args.extend(extra);
    let (ok, _, err) = cli(&args);
    (ok, err)
}

/// Fails the export with a broken model.safetensors and returns stderr, checking nothing was written.
fn broken_shard(bytes: Vec<u8>) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    write_toy_model(&base);
    std::fs::write(base.join("model.safetensors"), bytes).unwrap();
    let out = tmp.path().join("out");
    let (ok, err) = export(&base, None, &out, &[]);
    assert!(!ok, "export should fail");
    assert!(
        err.contains("model.safetensors"),
        "error should name the file: {err}"
    );
    assert_no_output(&out);
    err
}

fn assert_no_output(out: &Path) {
    let left: Vec<PathBuf> = match std::fs::read_dir(out) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => return,
    };
    assert!(left.is_empty(), "output left behind: {left:?}");
}

fn toy_tensor_bytes() -> Vec<u8> {
    safetensors_bytes(&[T("model.norm.weight", "BF16", vec![4], bf16(&[1.0; 4]))])
}

#[test]
fn truncated_shard() {
    let mut bytes = toy_tensor_bytes();
    bytes.truncate(bytes.len() - 3);
    let err = broken_shard(bytes);
    assert!(
        err.contains("truncated") && err.contains("model.norm.weight"),
        "{err}"
    );
}

#[test]
fn header_length_past_end() {
    let mut bytes = toy_tensor_bytes();
    bytes[..8].copy_from_slice(&10_000u64.to_le_bytes());
    assert!(broken_shard(bytes).contains("runs past the end"));
}

#[test]
fn header_over_100_mb() {
    let mut bytes = toy_tensor_bytes();
    bytes[..8].copy_from_slice(&200_000_000u64.to_le_bytes());
    assert!(broken_shard(bytes).contains("100 MB"));
}

#[test]
fn tiny_file() {
    assert!(broken_shard(vec![1, 2, 3]).contains("too short"));
}

#[test]
fn header_not_json() {
    assert!(broken_shard(with_header(b"{not json", &[])).contains("not a JSON object"));
}

#[test]
fn overlapping_offsets() {
    let header = br#"{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[2,6]}}"#;
    let err = broken_shard(with_header(header, &[0; 6]));
    assert!(err.contains("overlaps"), "{err}");
}

#[test]
fn offsets_leave_a_gap() {
    let header = br#"{"a":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]}}"#;
    let err = broken_shard(with_header(header, &[0; 8]));
    assert!(
        err.contains("belong to no tensor") && err.contains("`a`"),
        "{err}"
    );
}

#[test]
fn trailing_bytes() {
    let mut bytes = toy_tensor_bytes();
    bytes.extend_from_slice(&[0; 5]);
    assert!(broken_shard(bytes).contains("trailing bytes"));
}

#[test]
fn unknown_dtype() {
    let header = br#"{"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,4]}}"#;
    let err = broken_shard(with_header(header, &[0; 4]));
    assert!(
        err.contains("unknown dtype `Q9`") && err.contains("`a`"),
        "{err}"
    );
}

#[test]
fn shape_does_not_match_bytes() {
    let header = br#"{"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}}"#;
    let err = broken_shard(with_header(header, &[0; 4]));
    assert!(
        err.contains("needs 6 bytes") && err.contains("`a`"),
        "{err}"
    );
}

#[test]
fn missing_config() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    write_toy_model(&base);
    std::fs::remove_file(base.join("config.json")).unwrap();
    let (ok, err) = export(&base, None, &tmp.path().join("out"), &[]);
    assert!(
        !ok && err.contains("config.json") && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn index_names_missing_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    write_toy_model(&base);
    std::fs::write(
        base.join("model.safetensors.index.json"),
        r#"{"metadata":{},"weight_map":{"lm_head.weight":"model-00002-of-00002.safetensors","model.norm.weight":"model.safetensors"}}"#,
    )
    .unwrap();
    let (ok, err) = export(&base, None, &tmp.path().join("out"), &[]);
    assert!(
        !ok && err.contains("model-00002-of-00002.safetensors") && err.contains("index"),
        "{err}"
    );
}

#[test]
fn adapter_shapes_do_not_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, adapter) = (tmp.path().join("base"), tmp.path().join("lora"));
    write_toy_model(&base);
    write_toy_adapter(
        &adapter,
        &values(10, 5, 0.1),
        "model.layers.0.self_attn.q_proj",
        [2, 4],
        [5, 2],
    );
    let out = tmp.path().join("out");
    let (ok, err) = export(&base, Some(&adapter), &out, &[]);
    assert!(
        !ok && err.contains("q_proj") && err.contains("another base model"),
        "{err}"
    );
    assert_no_output(&out);
}

#[test]
fn adapter_targets_missing_module() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, adapter) = (tmp.path().join("base"), tmp.path().join("lora"));
    write_toy_model(&base);
    write_toy_adapter(
        &adapter,
        &values(8, 5, 0.1),
        "model.layers.7.self_attn.q_proj",
        [2, 4],
        [4, 2],
    );
    let (ok, err) = export(&base, Some(&adapter), &tmp.path().join("out"), &[]);
    assert!(
        !ok && err.contains("model.layers.7.self_attn.q_proj.weight")
            && err.contains("no such tensor"),
        "{err}"
    );
}

#[test]
fn nonfinite_merge_is_refused_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, adapter) = (tmp.path().join("base"), tmp.path().join("lora"));
    write_toy_model(&base);
    write_toy_adapter(
        &adapter,
        &[f32::MAX; 8],
        "model.layers.0.self_attn.q_proj",
        [2, 4],
        [4, 2],
    );
    let out = tmp.path().join("out");
    let (ok, err) = export(&base, Some(&adapter), &out, &[]);
    assert!(
        !ok && err.contains("non-finite") && err.contains("q_proj"),
        "{err}"
    );
    assert_no_output(&out);
    let (ok, err) = export(&base, Some(&adapter), &out, &["--allow-nonfinite"]);
    assert!(ok, "{err}");
}

#[test]
fn existing_output_needs_overwrite_and_inputs_stay_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, adapter) = (tmp.path().join("base"), tmp.path().join("lora"));
    write_toy_model(&base);
    write_toy_adapter(
        &adapter,
        &values(8, 5, 0.1),
        "model.layers.0.self_attn.q_proj",
        [2, 4],
        [4, 2],
    );
    let snapshot = |dir: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .into_iter()
            .map(|p| (p.clone(), std::fs::read(p).unwrap()))
            .collect()
    };
    let before = (snapshot(&base), snapshot(&adapter));
    let out = tmp.path().join("out");
    std::fs::create_dir_all(out.join("merged_16bit")).unwrap();
    std::fs::write(out.join("merged_16bit/config.json"), "{}").unwrap();
    let (ok, err) = export(&base, Some(&adapter), &out, &[]);
    assert!(!ok && err.contains("--overwrite"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("merged_16bit/config.json")).unwrap(),
        "{}"
    );
    let (ok, err) = export(&base, Some(&adapter), &out, &["--overwrite"]);
    assert!(ok, "{err}");
    assert!(out.join("merged_16bit/model.safetensors").exists());
    assert_eq!(before, (snapshot(&base), snapshot(&adapter)));
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["merged_16bit".to_string()],
        "no staging folder may remain"
    );
}

#[test]
fn bad_output_name_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    write_toy_model(&base);
    let (ok, _, err) = cli(&[
        "export",
        base.to_str().unwrap(),
        "--to",
        "gguf-ish",
        "--out",
        tmp.path().join("o").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("unknown output `gguf-ish`"), "{err}");
}
