//! The llama-quantize mix rules against llama.cpp itself.
//!
//! `tests/fixtures/ggml/mix_cases.json` was written by `tests/gen/ggml_mix_from_lib.py`: small
//! random-weight GGUF models (llama 4/32/80 layers, qwen2 tied with 320-wide rows and 80 layers,
//! qwen3, gemma3 tied, gemma2 with rows that fit no block, phi3 with fused QKV, an 8-expert
//! llama) quantized by llama-cpp-python 0.3.36's `llama_model_quantize` with every supported
//! file type. For each, the output tensor order and every tensor's type must match ours.

use llm_export::quant::ggml::mix::{
    compare_tensor_names, plan_tensor_types, MixModel, QuantMix, TensorDesc,
};
use llm_export::quant::ggml::GgmlType;
use serde_json::Value;

#[test]
fn mix_rules_match_llama_quantize() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/ggml/mix_cases.json"
    );
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut n_models, mut n_checked) = (0, 0);
    for case in cases.as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let m = &case["model"];
        let u = |k: &str| m[k].as_u64().unwrap() as u32;
        let model = MixModel {
            arch: m["arch"].as_str().unwrap().to_owned(),
            n_layer: u("n_layer"),
            n_head: u("n_head"),
            n_head_kv: u("n_head_kv"),
            n_expert: u("n_expert"),
        };
        let raw: Vec<(&str, Vec<u64>, GgmlType)> = case["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let ne = t[1]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap())
                    .collect();
                let ty = GgmlType::from_id(t[2].as_u64().unwrap() as u32).unwrap();
                (t[0].as_str().unwrap(), ne, ty)
            })
            .collect();
        let tensors: Vec<TensorDesc> = raw
            .iter()
            .map(|(name, ne, ty)| TensorDesc { name, ne, ty: *ty })
            .collect();

        let mut order: Vec<&str> = tensors.iter().map(|t| t.name).collect();
        order.sort_by(|a, b| compare_tensor_names(a, b));
        let want_order: Vec<&str> = case["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(order, want_order, "{id}: tensor order");

        for (mix_name, want) in case["types"].as_object().unwrap() {
            let mix = QuantMix::parse(mix_name).unwrap();
            let got = plan_tensor_types(mix, &model, &tensors).unwrap();
            for ((t, got), want) in tensors.iter().zip(&got).zip(want.as_array().unwrap()) {
                let want = GgmlType::from_id(want.as_u64().unwrap() as u32).unwrap();
                assert_eq!(*got, want, "{id} {mix}: {}", t.name);
                n_checked += 1;
            }
        }
        n_models += 1;
    }
    assert_eq!(n_models, 10);
    eprintln!("{n_checked} tensor types over {n_models} models matched llama-quantize");
}
