//! Test helpers: hand-built safetensors files and model folders, written byte by byte so the
//! inputs do not depend on the writer under test.
#![allow(dead_code)]

pub mod gguf;

use std::path::Path;

/// One tensor for [`safetensors_bytes`]: name, dtype string, shape, raw little-endian data.
pub struct T<'a>(pub &'a str, pub &'a str, pub Vec<usize>, pub Vec<u8>);

/// A safetensors file with the given header entries laid out in order.
pub fn safetensors_bytes(tensors: &[T]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for T(name, dtype, shape, bytes) in tensors {
        let start = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    with_header(&serde_json::to_vec(&header).unwrap(), &data)
}

/// A safetensors file from a raw header and data section.
pub fn with_header(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// bf16 bytes of `values` (round to nearest even).
pub fn bf16(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect()
}

/// f32 bytes.
pub fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Deterministic pseudo-random values in [-scale, scale).
pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A two-layer-free toy "llama": embed [8,4], one q_proj [4,4], norm [4], lm_head [8,4], bf16.
pub fn write_toy_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","dtype":"bfloat16","vocab_size":8,"hidden_size":4,"tie_word_embeddings":false}"#,
    )
    .unwrap();
    let st = safetensors_bytes(&[
        T(
            "model.embed_tokens.weight",
            "BF16",
            vec![8, 4],
            bf16(&values(32, 1, 1.0)),
        ),
        T(
            "model.layers.0.self_attn.q_proj.weight",
            "BF16",
            vec![4, 4],
            bf16(&values(16, 2, 1.0)),
        ),
        T("model.norm.weight", "BF16", vec![4], bf16(&[1.0; 4])),
        T(
            "lm_head.weight",
            "BF16",
            vec![8, 4],
            bf16(&values(32, 3, 1.0)),
        ),
    ]);
    std::fs::write(dir.join("model.safetensors"), st).unwrap();
}

/// A rank-2 LoRA on q_proj of the toy model, with given B values (A fixed), F32 like PEFT saves.
pub fn write_toy_adapter(
    dir: &Path,
    b: &[f32],
    module: &str,
    a_shape: [usize; 2],
    b_shape: [usize; 2],
) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        r#"{"peft_type":"LORA","r":2,"lora_alpha":4,"target_modules":["q_proj"],"base_model_name_or_path":"toy"}"#,
    )
    .unwrap();
    let a = values(a_shape[0] * a_shape[1], 4, 1.0);
    let st = safetensors_bytes(&[
        T(
            &format!("base_model.model.{module}.lora_A.weight"),
            "F32",
            a_shape.to_vec(),
            f32s(&a),
        ),
        T(
            &format!("base_model.model.{module}.lora_B.weight"),
            "F32",
            b_shape.to_vec(),
            f32s(b),
        ),
    ]);
    std::fs::write(dir.join("adapter_model.safetensors"), st).unwrap();
}
