//! The plan: requested outputs parsed and checked, and the list of tensors to stream, each with
//! its source and LoRA delta. Everything that can be refused is refused here, before any output
//! byte is written; nothing downstream re-validates.

use super::gguf_output::{cli_name, parse_mix, GgufPlan, QuantMix};
use super::lora_gguf::{self, LoraGgufPlan};
use crate::error::{Error, Result};
use crate::lora::{Adapter, LoraPair};
use crate::model::tensor::DenseTensor;
use crate::model::vocab::load_vocab;
use crate::model::{BaseModel, FloatType, HfConfig, ModelTensor, Storage};
use crate::ollama::{self, Modelfile, ModelfileSpec};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

/// One requested output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum OutputKind {
    /// The adapter alone, as normalized PEFT files.
    Lora,
    /// The merged model in 16-bit safetensors.
    Merged16,
    /// The merged model re-quantized to bitsandbytes NF4 with double quantization.
    Merged4,
    /// The merged model as a GGUF file of one quantization mix.
    Gguf(QuantMix),
    /// The adapter as a GGUF LoRA adapter for llama.cpp, tensors of one type.
    LoraGguf(QuantMix),
    /// An Ollama `Modelfile` for the first GGUF of the run.
    Ollama,
}

impl OutputKind {
    /// The name used on the command line and as the output subfolder.
    pub fn name(self) -> String {
        match self {
            OutputKind::Lora => "lora".into(),
            OutputKind::Merged16 => "merged_16bit".into(),
            OutputKind::Merged4 => "merged_4bit".into(),
            OutputKind::Gguf(mix) => cli_name(mix),
            OutputKind::LoraGguf(mix) => lora_gguf::cli_name(mix).into(),
            OutputKind::Ollama => "ollama".into(),
        }
    }
}

impl FromStr for OutputKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let name = s.trim().to_ascii_lowercase().replace('-', "_");
        if let Some(ty) = name.strip_prefix("gguf:") {
            return parse_mix(ty).map(OutputKind::Gguf).ok_or_else(|| {
                let types: Vec<String> = QuantMix::ALL
                    .iter()
                    .map(|m| m.name().to_ascii_lowercase())
                    .collect();
                Error::usage(format!(
                    "unknown GGUF type `{ty}`; expected gguf:<type> with type one of: {}",
                    types.join(", ")
                ))
            });
        }
        if let Some(ty) = name.strip_prefix("lora_gguf") {
            return lora_gguf::parse_type(ty).map(OutputKind::LoraGguf);
        }
        match name.as_str() {
            "lora" => Ok(OutputKind::Lora),
            "merged_16bit" => Ok(OutputKind::Merged16),
            "merged_4bit" | "merged_4bit_forced" => Ok(OutputKind::Merged4),
            "ollama" => Ok(OutputKind::Ollama),
            _ => Err(Error::usage(format!(
                "unknown output `{s}`; expected one of: lora, merged_16bit, merged_4bit, gguf:<type>, lora-gguf[:<type>], ollama"
            ))),
        }
    }
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Outputs to produce (duplicates are ignored).
    pub outputs: Vec<OutputKind>,
    /// dtype of `merged_16bit` (default: the base's unquantized dtype).
    pub dtype: Option<FloatType>,
    /// Largest safetensors shard, in bytes.
    pub max_shard_size: u64,
    /// Write non-finite merged values instead of failing.
    pub allow_nonfinite: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            outputs: Vec::new(),
            dtype: None,
            max_shard_size: 5_000_000_000,
            allow_nonfinite: false,
        }
    }
}

/// One tensor of the stream: where its values come from and what is added to them.
#[derive(Clone)]
pub struct StreamTensor {
    /// Checkpoint name of the (merged) tensor.
    pub name: String,
    /// Output shape; rows may exceed the source's for a vocabulary resized by training.
    pub shape: Vec<usize>,
    /// The source values (base tensor, or the adapter's trained replacement).
    pub source: ModelTensor,
    /// A LoRA delta to add.
    pub lora: Option<LoraPair>,
    /// True when the adapter changes this tensor (replaced or merged).
    pub modified: bool,
}

impl StreamTensor {
    /// Output rows.
    pub fn rows(&self) -> usize {
        if self.shape.len() <= 1 {
            1
        } else {
            self.shape[0]
        }
    }

    /// Elements per row.
    pub fn cols(&self) -> usize {
        self.source.cols()
    }
}

/// A validated export.
pub struct Plan {
    /// Outputs in a fixed order.
    pub outputs: Vec<OutputKind>,
    /// The options as given.
    pub options: ExportOptions,
    /// Tensors to stream: in the order convert_hf_to_gguf reads the checkpoint, or in
    /// llama-quantize's when a GGUF output is one of its mixes.
    pub tensors: Vec<StreamTensor>,
    /// `config.json` of the merged model (vocabulary size and tying updated, still with the
    /// base's dtype and quantization fields: each output adjusts those).
    pub merged_config: HfConfig,
    /// dtype of unquantized weights in the base.
    pub base_dtype: FloatType,
    /// Things the user should know (printed, and written into model cards).
    pub notes: Vec<String>,
    /// Layouts and names of the GGUF outputs, when any is requested.
    pub gguf: Option<GgufPlan>,
    /// Layouts and names of the GGUF LoRA outputs, when any is requested.
    pub lora_gguf: Option<LoraGgufPlan>,
    /// The Ollama Modelfile, when `--to ollama` was asked for.
    pub modelfile: Option<Modelfile>,
}

impl Plan {
    /// Checks the request against the inputs and lays out the tensor stream.
    pub fn new(
        base: &BaseModel,
        adapter: Option<&Adapter>,
        options: ExportOptions,
    ) -> Result<Self> {
        let outputs: Vec<OutputKind> = options
            .outputs
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if outputs.is_empty() {
            return Err(Error::usage(
                "no outputs requested; pass --to lora|merged_16bit|merged_4bit",
            ));
        }
        if outputs.contains(&OutputKind::Lora) && adapter.is_none() {
            return Err(Error::usage(
                "`--to lora` needs an adapter: pass --adapter DIR",
            ));
        }
        let lora_gguf_types: Vec<QuantMix> = outputs
            .iter()
            .filter_map(|o| match o {
                OutputKind::LoraGguf(t) => Some(*t),
                _ => None,
            })
            .collect();
        if !lora_gguf_types.is_empty() && adapter.is_none() {
            return Err(Error::usage(
                "`--to lora-gguf` needs an adapter: pass --adapter DIR",
            ));
        }
        let mut notes = Vec::new();
        let mut merged_config = base.config.clone();
        let mut tensors = Vec::with_capacity(base.tensors.len());
        let mut used = BTreeSet::new();
        for t in &base.tensors {
            let entry = adapter.and_then(|a| a.entries.get(&t.name).map(|e| (a, e)));
            if entry.is_some() {
                used.insert(t.name.clone());
            }
            let source = match entry.and_then(|(a, e)| Some((a, e.replacement.clone()?))) {
                Some((a, raw)) => adapter_tensor(a, raw, t)?,
                None => t.clone(),
            };
            let lora = entry.and_then(|(_, e)| e.lora.clone());
            tensors.push(stream_tensor(
                &t.name,
                source,
                lora,
                entry.is_some(),
                adapter,
            )?);
        }
        if let Some(a) = adapter {
            // An output head trained beside tied embeddings gets its own tensor and unties them.
            for (name, e) in &a.entries {
                if used.contains(name) {
                    continue;
                }
                match (&e.replacement, name.as_str()) {
                    (Some(raw), "lm_head.weight") => {
                        let like = base
                            .tensors
                            .iter()
                            .find(|t| t.name.ends_with("embed_tokens.weight"))
                            .ok_or_else(|| unknown_module(a, name))?;
                        let source = adapter_tensor(a, raw.clone(), like)?;
                        tensors.push(stream_tensor(name, source, e.lora.clone(), true, adapter)?);
                        merged_config
                            .raw
                            .insert("tie_word_embeddings".into(), Value::Bool(false));
                    }
                    _ => return Err(unknown_module(a, name)),
                }
            }
            if base.is_4bit() && a.entries.values().any(|e| e.lora.is_some()) {
                notes.push("the base is 4-bit: merging onto the original 16-bit base model (same adapter) is more accurate than merging onto dequantized 4-bit weights".into());
            }
        }
        sort_in_converter_order(&mut tensors, &base.tensors);
        if let Some(embed) = tensors
            .iter()
            .find(|t| t.name.ends_with("embed_tokens.weight"))
        {
            let vocab = embed.rows();
            if merged_config.usize("vocab_size").is_some_and(|v| v < vocab) {
                merged_config
                    .raw
                    .insert("vocab_size".into(), Value::from(vocab));
                notes.push(format!(
                    "the adapter resized the vocabulary to {vocab} tokens"
                ));
            }
        }
        let gguf_mixes: Vec<QuantMix> = outputs
            .iter()
            .filter_map(|o| match o {
                OutputKind::Gguf(t) => Some(*t),
                _ => None,
            })
            .collect();
        // Training may have changed the tokenizer; the adapter's then ships with the model.
        let tokenizer_dir = match adapter {
            Some(a) if a.dir.open("tokenizer_config.json")?.is_some() => a.dir.as_ref(),
            _ => base.dir.as_ref(),
        };
        let gguf = if gguf_mixes.is_empty() {
            None
        } else {
            Some(GgufPlan::new(
                base.dir.as_ref(),
                tokenizer_dir,
                &merged_config,
                &mut tensors,
                base.dtype(),
                options.dtype.unwrap_or(base.dtype()),
                &gguf_mixes,
            )?)
        };
        let lora_gguf = match adapter {
            Some(a) if !lora_gguf_types.is_empty() => {
                let p = LoraGgufPlan::new(base, a, &tensors, &lora_gguf_types)?;
                notes.extend(p.note.as_ref().map(|n| format!("lora-gguf: {n}")));
                Some(p)
            }
            _ => None,
        };
        let modelfile = if outputs.contains(&OutputKind::Ollama) {
            // The Modelfile names the first GGUF the user asked for.
            let first = options.outputs.iter().find_map(|o| match o {
                OutputKind::Gguf(mix) => Some(*mix),
                _ => None,
            });
            let (Some(mix), Some(g)) = (first, &gguf) else {
                return Err(Error::usage(
                    "`--to ollama` needs a GGUF from the same run (e.g. --to gguf:q4_k_m); \
                     for an existing GGUF use `llm-export modelfile FILE.gguf`",
                ));
            };
            let file = g.file_name(mix).expect("planned GGUF files have names");
            let vocab = load_vocab(tokenizer_dir, &merged_config)?;
            let modelfile = ollama::modelfile(&ModelfileSpec::from_vocab(&vocab, file))?;
            notes.extend(modelfile.warnings.iter().map(|w| format!("ollama: {w}")));
            Some(modelfile)
        } else {
            None
        };
        Ok(Plan {
            outputs,
            options,
            tensors,
            merged_config,
            base_dtype: base.dtype(),
            notes,
            gguf,
            lora_gguf,
            modelfile,
        })
    }

    /// The names the outputs take at the top level of the output folder.
    pub fn top_level_names(&self) -> Vec<String> {
        self.outputs
            .iter()
            .map(|o| match (o, &self.gguf, &self.lora_gguf) {
                (OutputKind::Gguf(t), Some(g), _) => {
                    g.file_name(*t).map_or_else(|| o.name(), str::to_string)
                }
                (OutputKind::LoraGguf(t), _, Some(l)) => {
                    l.file_name(*t).map_or_else(|| o.name(), str::to_string)
                }
                (OutputKind::Ollama, _, _) => "Modelfile".into(),
                _ => o.name(),
            })
            .collect()
    }

    /// dtype of the `merged_16bit` output.
    pub fn merged_dtype(&self) -> FloatType {
        self.options.dtype.unwrap_or(self.base_dtype)
    }
}

/// Sorts the stream into the order convert_hf_to_gguf reads a checkpoint in, which every
/// output follows: shard by shard, by tensor name within a shard (offset order differs when a
/// shard mixes dtypes). An output head the adapter adds joins the embedding's shard.
fn sort_in_converter_order(tensors: &mut [StreamTensor], base: &[ModelTensor]) {
    let mut shards: Vec<&str> = Vec::new();
    let mut shard_of: HashMap<&str, usize> = HashMap::new();
    for t in base {
        let shard = shards
            .iter()
            .position(|p| *p == t.path())
            .unwrap_or_else(|| {
                shards.push(t.path());
                shards.len() - 1
            });
        shard_of.insert(&t.name, shard);
    }
    let embed_shard = base
        .iter()
        .find(|t| t.name.ends_with("embed_tokens.weight"))
        .and_then(|t| shard_of.get(t.name.as_str()).copied());
    tensors.sort_by_cached_key(|t| {
        let shard = shard_of.get(t.name.as_str()).copied().or(embed_shard);
        (shard.unwrap_or(usize::MAX), t.name.clone())
    });
}

fn unknown_module(a: &Adapter, name: &str) -> Error {
    Error::tensor(&a.weights.file.path, name, "the adapter changes this weight but the base model has no such tensor: is this adapter for another base model?")
}

/// A replacement tensor from the adapter file, which must match the base weight's columns.
fn adapter_tensor(
    a: &Adapter,
    raw: crate::formats::safetensors::RawTensor,
    like: &ModelTensor,
) -> Result<ModelTensor> {
    let path = &a.weights.file.path;
    let dtype = crate::model::tensor::float_type(raw.dtype).ok_or_else(|| {
        Error::tensor(
            path,
            &raw.name,
            format!("dtype {:?} is not a float type", raw.dtype),
        )
    })?;
    if raw.shape.len() != like.shape.len() || raw.shape[1..] != like.shape[1..] {
        return Err(Error::tensor(
            path,
            &raw.name,
            format!(
                "shape {:?} does not fit base weight `{}` {:?}",
                raw.shape, like.name, like.shape
            ),
        ));
    }
    Ok(ModelTensor {
        name: raw.name.clone(),
        shape: raw.shape.clone(),
        dtype,
        storage: Storage::Dense(DenseTensor {
            file: a.weights.clone(),
            raw,
        }),
    })
}

/// Checks the delta against the source and sizes the output: rows may grow only for embeddings
/// and output heads resized by training.
fn stream_tensor(
    name: &str,
    source: ModelTensor,
    lora: Option<LoraPair>,
    modified: bool,
    adapter: Option<&Adapter>,
) -> Result<StreamTensor> {
    let mut shape = source.shape.clone();
    if let (Some(p), Some(a)) = (&lora, adapter) {
        let path = &a.weights.file.path;
        let (rows, cols) = if p.transposed {
            (p.a.shape[1], p.b.shape[0])
        } else {
            (p.b.shape[0], p.a.shape[1])
        };
        let resizable = name.ends_with("embed_tokens.weight") || name == "lm_head.weight";
        let fits = source.shape.len() == 2
            && cols == source.cols()
            && (rows == source.rows() || (resizable && rows > source.rows()));
        if !fits {
            return Err(Error::tensor(path, &p.module, format!("LoRA delta is {rows}x{cols} but base weight `{name}` is {:?}: is this adapter for another base model?", source.shape)));
        }
        shape[0] = rows;
    }
    Ok(StreamTensor {
        name: name.to_string(),
        shape,
        source,
        lora,
        modified,
    })
}
