//! Summaries of model folders, adapter folders and single safetensors files, for `inspect`.

use crate::error::{Error, Result};
use crate::formats::gguf;
use crate::formats::safetensors::SafetensorsFile;
use crate::io::InputDir;
use crate::lora::config::TargetModules;
use crate::lora::Adapter;
use crate::model::{BaseModel, Storage};
use crate::quant::ggml::mix::QuantMix;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One tensor as listed by `inspect`.
#[derive(Debug, Serialize)]
pub struct TensorLine {
    /// Name.
    pub name: String,
    /// Storage type (`BF16`, `NF4`, ...).
    pub dtype: String,
    /// Logical shape.
    pub shape: Vec<usize>,
}

impl From<&crate::formats::safetensors::RawTensor> for TensorLine {
    fn from(t: &crate::formats::safetensors::RawTensor) -> Self {
        TensorLine {
            name: t.name.clone(),
            dtype: format!("{:?}", t.dtype),
            shape: t.shape.clone(),
        }
    }
}

/// 4-bit quantization details of a base model.
#[derive(Debug, Serialize)]
pub struct Quantization {
    /// `nf4` or `fp4`.
    pub quant_type: String,
    /// Elements per absmax block.
    pub blocksize: usize,
    /// Whether absmax is itself quantized.
    pub double_quant: bool,
    /// dtype the weights dequantize to.
    pub dtype: String,
    /// Number of 4-bit tensors.
    pub tensors: usize,
}

/// A summary of a base model folder.
#[derive(Debug, Serialize)]
pub struct ModelSummary {
    /// `architectures[0]` from config.json.
    pub architecture: Option<String>,
    /// `model_type`.
    pub model_type: Option<String>,
    /// Parameter count (4-bit weights by their logical shape).
    pub parameters: u64,
    /// dtype of unquantized weights.
    pub dtype: String,
    /// Number of tensors per storage type.
    pub dtypes: BTreeMap<String, usize>,
    /// 4-bit quantization, if any.
    pub quantization: Option<Quantization>,
    /// Every tensor.
    pub tensors: Vec<TensorLine>,
}

/// A summary of an adapter folder.
#[derive(Debug, Serialize)]
pub struct AdapterSummary {
    /// `base_model_name_or_path`.
    pub base_model: Option<String>,
    /// Default rank.
    pub r: usize,
    /// Distinct ranks found in the weights.
    pub ranks: Vec<usize>,
    /// Default alpha.
    pub alpha: f64,
    /// rsLoRA scaling.
    pub rslora: bool,
    /// DoRA.
    pub dora: bool,
    /// Target modules (list, or the regex).
    pub target_modules: Vec<String>,
    /// Fully trained modules.
    pub modules_to_save: Vec<String>,
    /// Base weights that get a LoRA delta.
    pub lora_weights: usize,
    /// Base weights replaced whole.
    pub replaced_weights: usize,
    /// Every tensor in the adapter file.
    pub tensors: Vec<TensorLine>,
}

/// What `inspect` found.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Summary {
    /// A base model folder.
    Model(ModelSummary),
    /// A PEFT adapter folder.
    Adapter(AdapterSummary),
    /// A single safetensors file.
    Safetensors {
        /// Its tensors.
        tensors: Vec<TensorLine>,
        /// Its `__metadata__`.
        metadata: BTreeMap<String, String>,
    },
    /// A GGUF file.
    Gguf {
        /// Format version.
        version: u32,
        /// Metadata in file order; arrays are summarized as `[type; length]`.
        metadata: Vec<MetadataLine>,
        /// Tensors in file order, with ggml types and GGUF extents (innermost first).
        tensors: Vec<TensorLine>,
        /// The llama.cpp file type (`general.file_type`), e.g. `Q4_K_M`.
        file_type: Option<String>,
        /// Bits of tensor data per weight, over all tensors.
        bits_per_weight: f64,
        /// Tensors per ggml type, by decreasing share of the weights.
        types: Vec<TypeShare>,
    },
}

/// The tensors of one ggml type in a GGUF file.
#[derive(Debug, Serialize)]
pub struct TypeShare {
    /// ggml type (`Q4_K`, `F32`, ...).
    pub dtype: String,
    /// Number of tensors.
    pub tensors: usize,
    /// Number of weights.
    pub weights: u64,
    /// Storage bits per weight of the type.
    pub bits_per_weight: f64,
}

/// One GGUF metadata entry as listed by `inspect`.
#[derive(Debug, Serialize)]
pub struct MetadataLine {
    /// Key.
    pub key: String,
    /// Value type (`u32`, `str`, `arr`, ...).
    #[serde(rename = "type")]
    pub ty: String,
    /// The value as text.
    pub value: String,
}

/// Summarizes a folder: an adapter if it has `adapter_config.json`, else a model.
pub fn inspect_dir(dir: Arc<dyn InputDir>) -> Result<Summary> {
    if dir.open("adapter_config.json")?.is_some() {
        return Ok(Summary::Adapter(adapter_summary(&Adapter::open(dir)?)));
    }
    if dir.open("config.json")?.is_none() {
        return Err(Error::missing(
            format!("{}/config.json", dir.display()),
            "inspect takes a model folder, an adapter folder, or a .safetensors file",
        ));
    }
    Ok(Summary::Model(model_summary(&BaseModel::open(dir)?)))
}

/// Summarizes one file: GGUF when it starts with the GGUF magic, else safetensors.
pub fn inspect_file(file: crate::io::InputFile) -> Result<Summary> {
    let mut magic = [0u8; 4];
    if file.data.len() >= 4 {
        file.read_at(0, &mut magic)?;
    }
    if magic == gguf::MAGIC {
        inspect_gguf(file)
    } else {
        inspect_safetensors(file)
    }
}

/// Summarizes one GGUF file (header only).
pub fn inspect_gguf(file: crate::io::InputFile) -> Result<Summary> {
    let g = gguf::GgufFile::read(&file)?;
    let mut types: Vec<TypeShare> = Vec::new();
    let (mut weights, mut bytes) = (0u64, 0u64);
    for t in &g.tensors {
        let n: u64 = t.ne.iter().product();
        weights += n;
        bytes += t.data_bytes();
        let name = t.ty.name();
        match types.iter_mut().find(|s| s.dtype == name) {
            Some(share) => {
                share.tensors += 1;
                share.weights += n;
            }
            None => types.push(TypeShare {
                dtype: name.into(),
                tensors: 1,
                weights: n,
                bits_per_weight: (t.ty.type_size() * 8) as f64 / t.ty.block_size() as f64,
            }),
        }
    }
    types.sort_by_key(|t| std::cmp::Reverse(t.weights));
    let file_type = match g.get("general.file_type") {
        Some(gguf::Value::U32(id)) => Some(
            QuantMix::ALL
                .into_iter()
                .find(|m| m.file_type() == *id)
                .map_or_else(|| format!("file type {id}"), |m| m.name().into()),
        ),
        _ => None,
    };
    Ok(Summary::Gguf {
        version: g.version,
        metadata: g
            .metadata
            .iter()
            .map(|e| MetadataLine {
                key: e.key.clone(),
                ty: e.value.value_type().name().into(),
                value: e.value.to_string(),
            })
            .collect(),
        tensors: g
            .tensors
            .iter()
            .map(|t| TensorLine {
                name: t.name.clone(),
                dtype: t.ty.name().into(),
                shape: t.ne.iter().map(|&d| d as usize).collect(),
            })
            .collect(),
        file_type,
        bits_per_weight: if weights == 0 {
            0.0
        } else {
            (bytes * 8) as f64 / weights as f64
        },
        types,
    })
}

/// Summarizes one safetensors file.
pub fn inspect_safetensors(file: crate::io::InputFile) -> Result<Summary> {
    let st = SafetensorsFile::open(file)?;
    let tensors = st.tensors.iter().map(TensorLine::from).collect();
    Ok(Summary::Safetensors {
        tensors,
        metadata: st.metadata,
    })
}

fn model_summary(m: &BaseModel) -> ModelSummary {
    let mut dtypes = BTreeMap::new();
    let mut quantization: Option<Quantization> = None;
    let tensors = m
        .tensors
        .iter()
        .map(|t| {
            let dtype = match &t.storage {
                Storage::Dense(d) => format!("{:?}", d.raw.dtype),
                Storage::Bnb4(q) => {
                    let qz = quantization.get_or_insert_with(|| Quantization {
                        quant_type: q.state.quant_type.as_str().to_string(),
                        blocksize: q.state.blocksize,
                        double_quant: q.nested.is_some(),
                        dtype: q.state.dtype.torch_name().to_string(),
                        tensors: 0,
                    });
                    qz.tensors += 1;
                    q.state.quant_type.as_str().to_ascii_uppercase()
                }
            };
            *dtypes.entry(dtype.clone()).or_insert(0) += 1;
            TensorLine {
                name: t.name.clone(),
                dtype,
                shape: t.shape.clone(),
            }
        })
        .collect();
    ModelSummary {
        architecture: m
            .config
            .raw
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(|a| a.as_str())
            .map(str::to_string),
        model_type: m.config.model_type().map(str::to_string),
        parameters: m.parameter_count(),
        dtype: m.dtype().torch_name().to_string(),
        dtypes,
        quantization,
        tensors,
    }
}

fn adapter_summary(a: &Adapter) -> AdapterSummary {
    let c = &a.config;
    let target_modules = match &c.target_modules {
        Some(TargetModules::List(l)) => {
            let mut l = l.clone();
            l.sort();
            l
        }
        Some(TargetModules::Regex(r)) => vec![r.clone()],
        None => Vec::new(),
    };
    AdapterSummary {
        base_model: c.base_model.clone(),
        r: c.r,
        ranks: a.ranks(),
        alpha: c.alpha,
        rslora: c.use_rslora,
        dora: c.use_dora,
        target_modules,
        modules_to_save: c.modules_to_save.clone(),
        lora_weights: a.entries.values().filter(|e| e.lora.is_some()).count(),
        replaced_weights: a
            .entries
            .values()
            .filter(|e| e.replacement.is_some())
            .count(),
        tensors: a.weights.tensors.iter().map(TensorLine::from).collect(),
    }
}
