//! The parts of a Hugging Face `config.json` that exporting needs, keeping the raw JSON so
//! outputs can carry every other field through unchanged.

use crate::error::{Error, Result};
use crate::io::InputFile;
use serde_json::{Map, Value};

pub use crate::dtype::FloatType;

/// A parsed `config.json`.
#[derive(Debug, Clone)]
pub struct HfConfig {
    /// Where it was read from.
    pub path: String,
    /// The whole JSON object.
    pub raw: Map<String, Value>,
}

impl HfConfig {
    /// Parses `config.json`.
    pub fn read(file: &InputFile) -> Result<Self> {
        let value: Value = serde_json::from_slice(&file.read_all()?)
            .map_err(|e| Error::format(&file.path, format!("not valid JSON: {e}")))?;
        match value {
            Value::Object(raw) => Ok(HfConfig {
                path: file.path.clone(),
                raw,
            }),
            _ => Err(Error::format(&file.path, "expected a JSON object")),
        }
    }

    /// `model_type`, e.g. `llama`.
    pub fn model_type(&self) -> Option<&str> {
        self.raw.get("model_type").and_then(Value::as_str)
    }

    /// An integer field.
    pub fn usize(&self, key: &str) -> Option<usize> {
        self.raw
            .get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
    }

    /// The checkpoint dtype from `dtype` (transformers 5) or `torch_dtype` (4.x).
    pub fn dtype(&self) -> Option<FloatType> {
        ["dtype", "torch_dtype"]
            .iter()
            .find_map(|k| self.raw.get(*k)?.as_str().and_then(FloatType::parse))
    }

    /// Sets the dtype, keeping whichever key the config already used.
    pub fn set_dtype(&mut self, dtype: FloatType) {
        let key = if self.raw.contains_key("torch_dtype") && !self.raw.contains_key("dtype") {
            "torch_dtype"
        } else {
            "dtype"
        };
        self.raw
            .insert(key.into(), Value::String(dtype.torch_name().into()));
    }

    /// Whether the output embedding shares the input embedding's weights.
    pub fn tie_word_embeddings(&self) -> bool {
        // transformers' PretrainedConfig default is true; most llama-like configs set it false.
        self.raw
            .get("tie_word_embeddings")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// The `quantization_config` object, if the checkpoint is quantized.
    pub fn quantization(&self) -> Option<&Map<String, Value>> {
        self.raw
            .get("quantization_config")
            .and_then(Value::as_object)
    }

    /// Serializes like transformers (`indent=2`, trailing newline).
    pub fn to_json_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(&self.raw).expect("config serializes");
        bytes.push(b'\n');
        bytes
    }
}
