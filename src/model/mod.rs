//! A model checkpoint folder: `config.json` plus safetensors shards (with or without an index),
//! opened lazily as a list of [`ModelTensor`]s in checkpoint order.

pub mod arch;
pub mod bnb;
pub mod config;
pub mod tensor;
pub mod vocab;

pub use config::{FloatType, HfConfig};
pub use tensor::{ModelTensor, Storage, TensorReader};

use crate::error::{Error, Result};
use crate::formats::hf_index::ShardIndex;
use crate::formats::safetensors::SafetensorsFile;
use crate::io::InputDir;
use std::collections::HashMap;
use std::sync::Arc;
use tensor::{float_type, DenseTensor};

/// Files copied unchanged from the base (or the adapter, which wins) into HF-format outputs.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
];

/// An opened base model.
pub struct BaseModel {
    /// The folder it came from.
    pub dir: Arc<dyn InputDir>,
    /// Its `config.json`.
    pub config: HfConfig,
    /// Logical tensors in checkpoint order (shard by shard, by offset within a shard).
    pub tensors: Vec<ModelTensor>,
}

impl BaseModel {
    /// Opens a checkpoint folder and validates every shard header; no tensor data is read.
    pub fn open(dir: Arc<dyn InputDir>) -> Result<Self> {
        let config = HfConfig::read(&dir.require(
            "config.json",
            "a model folder needs the config.json saved with it by save_pretrained",
        )?)?;
        let files = shard_files(dir.as_ref())?;
        let mut dense = Vec::new();
        for name in &files {
            let st = Arc::new(SafetensorsFile::open(
                dir.require(name, "named by model.safetensors.index.json")?,
            )?);
            dense.extend(st.tensors.iter().map(|raw| DenseTensor {
                file: st.clone(),
                raw: raw.clone(),
            }));
        }
        let tensors = bnb::group_bnb4(dense)?
            .into_iter()
            .map(|t| match t {
                bnb::Grouped::Bnb4(q) => Ok(ModelTensor {
                    name: q.name.clone(),
                    shape: q.state.shape.clone(),
                    dtype: q.state.dtype,
                    storage: Storage::Bnb4(q),
                }),
                bnb::Grouped::Dense(d) => {
                    let dtype = float_type(d.raw.dtype).ok_or_else(|| {
                        Error::tensor(&d.file.file.path, &d.raw.name, format!(
                            "dtype {:?} is not a float type and is not part of a bitsandbytes 4-bit weight",
                            d.raw.dtype
                        ))
                    })?;
                    Ok(ModelTensor { name: d.raw.name.clone(), shape: d.raw.shape.clone(), dtype, storage: Storage::Dense(d) })
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BaseModel {
            dir,
            config,
            tensors,
        })
    }

    /// Finds a tensor by checkpoint name.
    pub fn tensor(&self, name: &str) -> Option<&ModelTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A name -> index map of the tensors.
    pub fn index(&self) -> HashMap<&str, usize> {
        self.tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.as_str(), i))
            .collect()
    }

    /// The dtype of the unquantized weights: `config.json`'s dtype, else that of the first
    /// float tensor.
    pub fn dtype(&self) -> FloatType {
        self.config
            .dtype()
            .or_else(|| self.tensors.first().map(|t| t.dtype))
            .unwrap_or(FloatType::F32)
    }

    /// True when some weights are stored in bitsandbytes 4-bit form.
    pub fn is_4bit(&self) -> bool {
        self.tensors
            .iter()
            .any(|t| matches!(t.storage, Storage::Bnb4(_)))
    }

    /// Total parameters (4-bit weights counted by their logical shape).
    pub fn parameter_count(&self) -> u64 {
        self.tensors.iter().map(|t| t.numel() as u64).sum()
    }
}

/// The safetensors files making up the checkpoint, from the index when there is one.
fn shard_files(dir: &dyn InputDir) -> Result<Vec<String>> {
    if let Some(index) = dir.open("model.safetensors.index.json")? {
        let index = ShardIndex::read(&index)?;
        let files = index.shard_files();
        for f in &files {
            if dir.open(f)?.is_none() {
                return Err(Error::missing(
                    format!("{}/{f}", dir.display()),
                    "model.safetensors.index.json names this shard; copy the complete checkpoint",
                ));
            }
        }
        return Ok(files);
    }
    if dir.open("model.safetensors")?.is_some() {
        return Ok(vec!["model.safetensors".into()]);
    }
    let listed = dir.list()?;
    let shards: Vec<String> = listed
        .iter()
        .filter(|n| n.ends_with(".safetensors") && !n.starts_with("adapter_"))
        .cloned()
        .collect();
    if !shards.is_empty() {
        return Ok(shards);
    }
    let hint = if listed
        .iter()
        .any(|n| n.ends_with(".bin") || n.ends_with(".pt"))
    {
        "only PyTorch pickle weights were found; re-save the model with save_pretrained(safe_serialization=True)"
    } else {
        "no safetensors weights in this folder"
    };
    Err(Error::missing(
        format!("{}/model.safetensors", dir.display()),
        hint,
    ))
}
