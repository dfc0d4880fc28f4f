//! `config.json` as convert_hf_to_gguf sees it. The converter reads hyperparameters from
//! `AutoConfig.from_pretrained(dir).to_dict()`, not from the file, so this fills in what the
//! transformers 5 config class of each model type adds: its defaults (`head_dim`,
//! `num_key_value_heads`, `max_position_embeddings`, ...) and the normalized `rope_parameters`
//! that replace the legacy `rope_theta` / `rope_scaling` / `rope_local_base_freq` keys. It then
//! applies the converter's own mirroring of rope keys (`TextModel.__init__`).

use crate::error::{Error, Result};
use crate::model::HfConfig;
use serde_json::{json, Map, Value as Json};

/// Defaults of one transformers config class (transformers 5.23), for the keys the converter
/// reads.
struct ClassDefaults {
    model_type: &'static str,
    max_position_embeddings: u64,
    rms_norm_eps: f64,
    /// `None`: as many KV heads as attention heads.
    num_key_value_heads: Option<u64>,
    head_dim: HeadDim,
    vocab_size: u64,
    rope_theta: f64,
    /// Other keys the class always has, with their defaults.
    other: fn() -> Map<String, Json>,
}

/// How a config class fills `head_dim`.
enum HeadDim {
    /// The class has no `head_dim`.
    Absent,
    /// `hidden_size / num_attention_heads` when not given.
    FromHidden,
    /// A fixed default.
    Fixed(u64),
}

fn no_other() -> Map<String, Json> {
    Map::new()
}

const CLASSES: [ClassDefaults; 7] = [
    ClassDefaults {
        model_type: "llama",
        max_position_embeddings: 2048,
        rms_norm_eps: 1e-6,
        num_key_value_heads: None,
        head_dim: HeadDim::FromHidden,
        vocab_size: 32000,
        rope_theta: 10000.0,
        other: no_other,
    },
    ClassDefaults {
        model_type: "mistral",
        max_position_embeddings: 131072,
        rms_norm_eps: 1e-6,
        num_key_value_heads: Some(8),
        head_dim: HeadDim::FromHidden,
        vocab_size: 32000,
        rope_theta: 10000.0,
        other: || {
            json!({"sliding_window": 4096})
                .as_object()
                .cloned()
                .unwrap_or_default()
        },
    },
    ClassDefaults {
        model_type: "qwen2",
        max_position_embeddings: 32768,
        rms_norm_eps: 1e-6,
        num_key_value_heads: Some(32),
        head_dim: HeadDim::Absent,
        vocab_size: 151936,
        rope_theta: 10000.0,
        other: no_other,
    },
    ClassDefaults {
        model_type: "qwen3",
        max_position_embeddings: 32768,
        rms_norm_eps: 1e-6,
        num_key_value_heads: Some(32),
        head_dim: HeadDim::Fixed(128),
        vocab_size: 151936,
        rope_theta: 10000.0,
        other: no_other,
    },
    ClassDefaults {
        model_type: "gemma2",
        max_position_embeddings: 8192,
        rms_norm_eps: 1e-6,
        num_key_value_heads: Some(4),
        head_dim: HeadDim::Fixed(256),
        vocab_size: 256000,
        rope_theta: 10000.0,
        other: || {
            json!({"sliding_window": 4096, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0})
                .as_object()
                .cloned()
                .unwrap_or_default()
        },
    },
    ClassDefaults {
        model_type: "gemma3_text",
        max_position_embeddings: 131072,
        rms_norm_eps: 1e-6,
        num_key_value_heads: Some(4),
        head_dim: HeadDim::Fixed(256),
        vocab_size: 262208,
        // The global (full attention) base; the local one is GEMMA3_LOCAL_ROPE_THETA.
        rope_theta: 1_000_000.0,
        other: || {
            json!({"sliding_window": 4096})
                .as_object()
                .cloned()
                .unwrap_or_default()
        },
    },
    ClassDefaults {
        model_type: "phi3",
        max_position_embeddings: 4096,
        rms_norm_eps: 1e-5,
        num_key_value_heads: None,
        head_dim: HeadDim::Absent,
        vocab_size: 32064,
        rope_theta: 10000.0,
        other: || {
            json!({"original_max_position_embeddings": 4096, "partial_rotary_factor": 1.0})
                .as_object()
                .cloned()
                .unwrap_or_default()
        },
    },
];

/// Gemma 3's default rope base for sliding-window layers.
const GEMMA3_LOCAL_ROPE_THETA: f64 = 10000.0;

/// Rope types whose parameters carry the pre-training context length.
const ROPE_TYPES_WITH_ORIGINAL_CONTEXT: [&str; 3] = ["llama3", "yarn", "longrope"];

/// The hyperparameters the converter works from.
pub struct Hparams {
    /// The config file, for messages.
    pub path: String,
    map: Map<String, Json>,
    /// `self.rope_parameters` of the converter.
    rope: Map<String, Json>,
}

impl Hparams {
    /// Emulates `AutoConfig.from_pretrained(..).to_dict()` for the config's model type, then the
    /// converter's rope mirroring.
    pub fn new(config: &HfConfig) -> Result<Self> {
        let path = config.path.clone();
        let model_type = config.model_type().unwrap_or_default();
        let class = CLASSES
            .iter()
            .find(|c| c.model_type == model_type)
            .ok_or_else(|| {
                Error::format(
                    &path,
                    format!(
                        "model_type `{model_type}` does not match a supported GGUF architecture"
                    ),
                )
            })?;
        let mut map = config.raw.clone();
        let present = |map: &Map<String, Json>, k: &str| map.get(k).is_some_and(|v| !v.is_null());
        let require = |map: &Map<String, Json>, k: &str| -> Result<u64> {
            map.get(k).and_then(Json::as_u64).ok_or_else(|| {
                Error::format(&path, format!("`{k}` is missing or not a positive integer"))
            })
        };
        let heads = require(&map, "num_attention_heads")?;
        let hidden = require(&map, "hidden_size")?;
        require(&map, "num_hidden_layers")?;
        require(&map, "intermediate_size")?;
        for (key, value) in [
            (
                "max_position_embeddings",
                json!(class.max_position_embeddings),
            ),
            ("rms_norm_eps", json!(class.rms_norm_eps)),
            ("vocab_size", json!(class.vocab_size)),
            (
                "num_key_value_heads",
                json!(class.num_key_value_heads.unwrap_or(heads)),
            ),
        ] {
            if !present(&map, key) {
                map.insert(key.into(), value);
            }
        }
        match class.head_dim {
            HeadDim::Absent => {}
            HeadDim::FromHidden if !present(&map, "head_dim") => {
                map.insert("head_dim".into(), json!(hidden / heads));
            }
            HeadDim::Fixed(d) if !present(&map, "head_dim") => {
                map.insert("head_dim".into(), json!(d));
            }
            _ => {}
        }
        for (key, value) in (class.other)() {
            map.entry(key).or_insert(value);
        }
        let rope_parameters = if model_type == "gemma3_text" {
            gemma3_rope(&mut map, class)
        } else {
            flat_rope(&mut map, class)
        };
        map.insert("rope_parameters".into(), Json::Object(rope_parameters));
        let rope = converter_rope(&map);
        Ok(Hparams { path, map, rope })
    }

    /// A key's value, unless absent or null.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The converter's `find_hparam`: the value of the first of `keys` that is present (which
    /// may be null, giving `None`).
    pub fn find(&self, keys: &[&str]) -> Option<&Json> {
        keys.iter()
            .find_map(|k| self.map.get(*k))
            .filter(|v| !v.is_null())
    }

    /// Like [`Hparams::find`], failing when none of the keys has a value.
    pub fn require(&self, keys: &[&str]) -> Result<&Json> {
        self.find(keys)
            .ok_or_else(|| Error::format(&self.path, format!("none of {keys:?} is set")))
    }

    /// The converter's `rope_parameters`.
    pub fn rope(&self) -> &Map<String, Json> {
        &self.rope
    }

    /// The rope parameters of full-attention layers (`rope_parameters["full_attention"]` when
    /// layers differ, else all of them).
    pub fn full_attention_rope(&self) -> &Map<String, Json> {
        self.rope
            .get("full_attention")
            .and_then(Json::as_object)
            .unwrap_or(&self.rope)
    }

    /// Reads an integer, failing with a message that names the key.
    pub fn int(&self, key: &str, value: &Json) -> Result<u64> {
        value.as_u64().ok_or_else(|| {
            Error::format(
                &self.path,
                format!("`{key}` is {value}, expected a non-negative integer"),
            )
        })
    }

    /// Reads a number (integers included), failing with a message that names the key.
    pub fn float(&self, key: &str, value: &Json) -> Result<f64> {
        value.as_f64().ok_or_else(|| {
            Error::format(&self.path, format!("`{key}` is {value}, expected a number"))
        })
    }
}

/// Fills `map` (the would-be `rope_parameters`) per transformers' `standardize_rope_params`.
fn standardize(rope: &mut Map<String, Json>, max_position: &Json, class_original: Option<&Json>) {
    if !rope.contains_key("rope_type") {
        let ty = rope.get("type").cloned().unwrap_or(json!("default"));
        rope.insert("rope_type".into(), ty);
    }
    let ty = rope
        .get("rope_type")
        .and_then(Json::as_str)
        .unwrap_or_default();
    if ROPE_TYPES_WITH_ORIGINAL_CONTEXT.contains(&ty) {
        match class_original {
            // Phi-3 keeps the value outside rope parameters, and that one wins.
            Some(v) => {
                rope.insert("original_max_position_embeddings".into(), v.clone());
            }
            None => {
                rope.entry("original_max_position_embeddings")
                    .or_insert_with(|| max_position.clone());
            }
        }
    }
}

/// `rope_parameters` of a model with one rope for all layers.
fn flat_rope(map: &mut Map<String, Json>, class: &ClassDefaults) -> Map<String, Json> {
    let scaling = map
        .remove("rope_scaling")
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()));
    let mut rope = scaling
        .or_else(|| map.get("rope_parameters").cloned())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    let theta = map.remove("rope_theta").unwrap_or(json!(class.rope_theta));
    rope.entry("rope_theta").or_insert(theta);
    if let Some(p) = map.remove("partial_rotary_factor") {
        rope.entry("partial_rotary_factor").or_insert(p);
    }
    let max_position = map["max_position_embeddings"].clone();
    let class_original = map.get("original_max_position_embeddings").filter(|_| {
        // Only a class that declares the key (Phi-3) gives it priority.
        class.model_type == "phi3"
    });
    let class_original = class_original.cloned();
    standardize(&mut rope, &max_position, class_original.as_ref());
    rope
}

/// Gemma 3's per-layer-type rope: `full_attention` from `rope_theta` and `rope_scaling`,
/// `sliding_attention` from `rope_local_base_freq`.
fn gemma3_rope(map: &mut Map<String, Json>, class: &ClassDefaults) -> Map<String, Json> {
    let default_type = || json!({"rope_type": "default"});
    let mut rope = map
        .get("rope_parameters")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_else(|| {
            json!({"sliding_attention": default_type(), "full_attention": default_type()})
                .as_object()
                .cloned()
                .unwrap_or_default()
        });
    let scaling = map.remove("rope_scaling");
    let theta = map.remove("rope_theta").unwrap_or(json!(class.rope_theta));
    let local = map
        .remove("rope_local_base_freq")
        .unwrap_or(json!(GEMMA3_LOCAL_ROPE_THETA));
    let max_position = map["max_position_embeddings"].clone();
    for (layer, base, extra) in [
        ("full_attention", theta, scaling),
        ("sliding_attention", local, None),
    ] {
        let entry = rope.entry(layer).or_insert_with(default_type);
        if entry.is_null() {
            *entry = default_type();
        }
        let params = entry.as_object_mut().expect("made an object above");
        if let Some(Json::Object(extra)) = extra {
            params.extend(extra);
        }
        params.entry("rope_theta").or_insert(base);
        standardize(params, &max_position, None);
    }
    rope
}

/// The converter's `TextModel.__init__` rope handling on top of transformers' normalization:
/// top-level rope keys are mirrored into a flat `rope_parameters`.
fn converter_rope(map: &Map<String, Json>) -> Map<String, Json> {
    let mut rope = map
        .get("rope_parameters")
        .or_else(|| map.get("rope_scaling"))
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    let find = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| map.get(*k))
            .filter(|v| !v.is_null())
            .cloned()
    };
    let theta = find(&[
        "global_rope_theta",
        "rope_global_theta",
        "rope_theta_global",
        "rope_theta",
        "rotary_emb_base",
    ]);
    let local = find(&[
        "local_rope_theta",
        "rope_local_theta",
        "rope_theta_local",
        "swa_rope_theta",
        "rope_local_base_freq",
    ]);
    let partial = find(&["partial_rotary_factor", "rope_pct", "rope_percent"]);
    let original = find(&["original_max_position_embeddings"]);
    if !rope.contains_key("full_attention") && !rope.contains_key("sliding_attention") {
        if let Some(local) = local {
            rope.insert("sliding_attention".into(), json!({ "rope_theta": local }));
        }
        if let Some(theta) = theta {
            rope.entry("rope_theta").or_insert(theta);
        }
        if !rope.contains_key("rope_type") {
            if let Some(ty) = rope.get("type").cloned() {
                rope.insert("rope_type".into(), ty);
            }
        }
        if let Some(p) = partial {
            rope.entry("partial_rotary_factor").or_insert(p);
        }
        if let Some(o) = original {
            rope.entry("original_max_position_embeddings").or_insert(o);
        }
    }
    rope
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hparams(raw: Json) -> Hparams {
        Hparams::new(&HfConfig {
            path: "config.json".into(),
            raw: raw.as_object().cloned().unwrap(),
        })
        .unwrap()
    }

    const DIMS: [(&str, u64); 4] = [
        ("num_attention_heads", 8),
        ("hidden_size", 512),
        ("num_hidden_layers", 2),
        ("intermediate_size", 1024),
    ];

    fn with_dims(mut raw: Json) -> Json {
        for (k, v) in DIMS {
            raw[k] = json!(v);
        }
        raw
    }

    #[test]
    fn class_defaults_fill_missing_keys() {
        let h = hparams(with_dims(json!({"model_type": "llama"})));
        assert_eq!(h.get("head_dim"), Some(&json!(64)));
        assert_eq!(h.get("num_key_value_heads"), Some(&json!(8)));
        assert_eq!(h.get("max_position_embeddings"), Some(&json!(2048)));
        let h = hparams(with_dims(json!({"model_type": "qwen2"})));
        assert_eq!(h.get("head_dim"), None);
        assert_eq!(h.get("num_key_value_heads"), Some(&json!(32)));
        let h = hparams(with_dims(json!({"model_type": "qwen3", "head_dim": null})));
        assert_eq!(h.get("head_dim"), Some(&json!(128)));
    }

    #[test]
    fn legacy_rope_keys_are_normalized() {
        let h = hparams(with_dims(json!({
            "model_type": "llama",
            "rope_theta": 500000.0,
            "max_position_embeddings": 131072,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0}
        })));
        assert_eq!(h.rope().get("rope_theta"), Some(&json!(500000.0)));
        assert_eq!(
            h.rope().get("original_max_position_embeddings"),
            Some(&json!(131072))
        );
        let h = hparams(with_dims(json!({
            "model_type": "llama",
            "rope_scaling": {"type": "linear", "factor": 2.0}
        })));
        assert_eq!(h.rope().get("rope_type"), Some(&json!("linear")));
        assert_eq!(h.rope().get("rope_theta"), Some(&json!(10000.0)));
    }

    #[test]
    fn gemma3_rope_is_per_layer_type() {
        let h = hparams(with_dims(json!({
            "model_type": "gemma3_text",
            "rope_scaling": {"rope_type": "linear", "factor": 8.0},
            "rope_local_base_freq": 10000
        })));
        let full = h.full_attention_rope();
        assert_eq!(full.get("rope_type"), Some(&json!("linear")));
        assert_eq!(full.get("rope_theta"), Some(&json!(1_000_000.0)));
        assert_eq!(h.rope()["sliding_attention"]["rope_theta"], json!(10000));
    }

    #[test]
    fn phi3_original_context_wins() {
        let h = hparams(with_dims(json!({
            "model_type": "phi3",
            "max_position_embeddings": 131072,
            "original_max_position_embeddings": 4096,
            "rope_scaling": {"type": "longrope", "long_factor": [1.0], "short_factor": [1.0]}
        })));
        assert_eq!(h.rope()["original_max_position_embeddings"], json!(4096));
        assert_eq!(h.rope()["rope_type"], json!("longrope"));
        // Without scaling the converter still mirrors the top-level value.
        let h = hparams(with_dims(json!({"model_type": "phi3"})));
        assert_eq!(h.rope()["original_max_position_embeddings"], json!(4096));
    }
}
