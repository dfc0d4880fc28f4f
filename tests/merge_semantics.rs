//! Merge semantics on hand-built toy models, checked against direct computations in the test:
//! transposed (`fan_in_fan_out`) deltas, f32 bases, tied embeddings, f16 overflow, disk full.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_llm-export"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn export(base: &Path, adapter: &Path, out: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        "export",
        base.to_str().unwrap(),
        "--adapter",
        adapter.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    args.extend(extra);
    if !extra.contains(&"--to") {
        args.extend(["--to", "merged_16bit"]);
    }
    cli(&args)
}

/// Tensors of a single-file output, read with the `safetensors` crate.
fn tensors(path: &Path) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, (v.shape().to_vec(), v.data().to_vec())))
        .collect()
}

fn bf16_to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect()
}

#[test]
fn fan_in_fan_out_delta_is_transposed() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, adapter, out) = (
        tmp.path().join("base"),
        tmp.path().join("lora"),
        tmp.path().join("out"),
    );
    write_toy_model(&base);
    // A GPT-2 style Conv1D weight is stored [in, out]; PEFT's delta is (B @ A)ᵀ.
    let (a, b) = (values(8, 4, 1.0), values(8, 5, 0.5));
    write_toy_adapter(
        &adapter,
        &b,
        "model.layers.0.self_attn.q_proj",
        [2, 4],
        [4, 2],
    );
    let config = std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap();
    std::fs::write(
        adapter.join("adapter_config.json"),
        config.replace("\"r\":2", "\"r\":2,\"fan_in_fan_out\":true"),
    )
    .unwrap();
    assert!(export(&base, &adapter, &out, &[]).0);
    let merged = tensors(&out.join("merged_16bit/model.safetensors"));
    let w = bf16_to_f32(&bf16(&values(16, 2, 1.0)));
    let got = bf16_to_f32(&merged["model.layers.0.self_attn.q_proj.weight"].1);
    for i in 0..4 {
        for j in 0..4 {
            // delta[i][j] = (B @ A)[j][i] * alpha / r, with alpha 4 and r 2
            let d = (0..2).fold(0f32, |acc, k| b[j * 2 + k].mul_add(a[k * 4 + i], acc)) * 2.0;
            assert_eq!(
                got[i * 4 + j],
                half::bf16::from_f32(w[i * 4 + j] + d).to_f32(),
                "[{i}][{j}]"
            );
        }
    }
}

#[test]
fn f32_base_merges_like_its_bf16_twin() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, base32, adapter) = (
        tmp.path().join("base"),
        tmp.path().join("base32"),
        tmp.path().join("lora"),
    );
    write_toy_model(&base);
    std::fs::create_dir_all(&base32).unwrap();
    std::fs::copy(base.join("config.json"), base32.join("config.json")).unwrap();
    let widened: Vec<(String, Vec<usize>, Vec<u8>)> = tensors(&base.join("model.safetensors"))
        .into_iter()
        .map(|(n, (s, d))| (n, s, f32s(&bf16_to_f32(&d))))
        .collect();
    let entries: Vec<T> = widened
        .iter()
        .map(|(n, s, d)| T(n, "F32", s.clone(), d.clone()))
        .collect();
    std::fs::write(
        base32.join("model.safetensors"),
        safetensors_bytes(&entries),
    )
    .unwrap();
    write_toy_adapter(
        &adapter,
        &values(8, 5, 0.3),
        "model.layers.0.self_attn.q_proj",
        [2, 4],
        [4, 2],
    );
    let (o16, o32) = (tmp.path().join("o16"), tmp.path().join("o32"));
    assert!(export(&base, &adapter, &o16, &[]).0);
    assert!(export(&base32, &adapter, &o32, &["--dtype", "bf16"]).0);
    assert_eq!(
        tensors(&o16.join("merged_16bit/model.safetensors")),
        tensors(&o32.join("merged_16bit/model.safetensors"))
    );
}

#[test]
fn output_head_trained_beside_tied_embeddings_unties_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, adapter, out) = (
        tmp.path().join("base"),
        tmp.path().join("lora"),
        tmp.path().join("out"),
    );
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(
        base.join("config.json"),
        r#"{"model_type":"llama","dtype":"bfloat16","vocab_size":8,"tie_word_embeddings":true}"#,
    )
    .unwrap();
    let embed = bf16(&values(32, 1, 1.0));
    std::fs::write(
        base.join("model.safetensors"),
        safetensors_bytes(&[T(
            "model.embed_tokens.weight",
            "BF16",
            vec![8, 4],
            embed.clone(),
        )]),
    )
    .unwrap();
    std::fs::create_dir_all(&adapter).unwrap();
    std::fs::write(adapter.join("adapter_config.json"), r#"{"peft_type":"LORA","r":2,"lora_alpha":2,"target_modules":["q_proj"],"modules_to_save":["lm_head"]}"#).unwrap();
    let head = bf16(&values(32, 9, 1.0));
    std::fs::write(
        adapter.join("adapter_model.safetensors"),
        safetensors_bytes(&[T(
            "base_model.model.lm_head.modules_to_save.weight",
            "BF16",
            vec![8, 4],
            head.clone(),
        )]),
    )
    .unwrap();
    let (ok, err) = export(&base, &adapter, &out, &[]);
    assert!(ok, "{err}");
    let merged = tensors(&out.join("merged_16bit/model.safetensors"));
    assert_eq!(merged["lm_head.weight"].1, head);
    assert_eq!(merged["model.embed_tokens.weight"].1, embed);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("merged_16bit/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["tie_word_embeddings"], false);
}

#[test]
fn float16_overflow_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, adapter, out) = (
        tmp.path().join("base"),
        tmp.path().join("lora"),
        tmp.path().join("out"),
    );
    write_toy_model(&base);
    write_toy_adapter(
        &adapter,
        &[1e5; 8],
        "model.layers.0.self_attn.q_proj",
        [2, 4],
        [4, 2],
    );
    let (ok, err) = export(&base, &adapter, &out, &["--dtype", "f16"]);
    assert!(
        !ok && err.contains("overflows float16") && err.contains("q_proj"),
        "{err}"
    );
    assert!(export(&base, &adapter, &out, &["--dtype", "bf16"]).0);
}

#[test]
fn disk_full_is_reported_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (base, adapter, out) = (
        tmp.path().join("base"),
        tmp.path().join("lora"),
        tmp.path().join("full"),
    );
    write_toy_model(&base);
    write_toy_adapter(
        &adapter,
        &values(8, 5, 0.3),
        "model.layers.0.self_attn.q_proj",
        [2, 4],
        [4, 2],
    );
    std::fs::create_dir_all(&out).unwrap();
    // A 4 KiB tmpfs cannot hold the 16-bit checkpoint. Mounting needs root; without it the test
    // says so instead of passing silently.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4k", "tmpfs"])
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED disk_full_is_reported_and_leaves_nothing: cannot mount a tmpfs here (needs root)");
        return;
    }
    let (ok, err) = export(
        &base,
        &adapter,
        &out,
        &["--to", "merged_16bit", "--to", "lora"],
    );
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    Command::new("umount").arg(&out).status().unwrap();
    assert!(!ok && err.contains("disk is full"), "{err}");
    assert!(left.is_empty(), "left behind: {left:?}");
}
