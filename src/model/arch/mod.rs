//! Model architectures for GGUF, each as llama.cpp's `convert_hf_to_gguf.py` (0c1e57098bba)
//! converts it: which Hugging Face architectures map to which GGUF architecture, one tensor
//! name table per architecture, the per-tensor value transforms, which tensors stay F32, the
//! extra tensors the converter computes (rope factors), and the hyperparameter metadata in the
//! converter's order and types.

mod hparams;

use crate::error::{Error, Result};
use crate::formats::gguf::{Metadata, Value};
use crate::io::InputDir;
use crate::model::{FloatType, HfConfig};
use hparams::Hparams;
use serde_json::Value as Json;

/// A GGUF architecture this crate converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// `llama` (Llama 2/3.x, Mistral).
    Llama,
    /// `qwen2` (Qwen2, Qwen2.5).
    Qwen2,
    /// `qwen3`.
    Qwen3,
    /// `gemma2`.
    Gemma2,
    /// `gemma3` (text-only Gemma 3).
    Gemma3,
    /// `phi3` (Phi-3, Phi-3.5, Phi-4-mini).
    Phi3,
}

/// Hugging Face `architectures[0]` values and the GGUF architecture each converts to (the
/// converter registers Mistral under llama).
const HF_ARCHITECTURES: [(&str, Arch); 8] = [
    ("LlamaForCausalLM", Arch::Llama),
    ("LLaMAForCausalLM", Arch::Llama),
    ("MistralForCausalLM", Arch::Llama),
    ("Qwen2ForCausalLM", Arch::Qwen2),
    ("Qwen3ForCausalLM", Arch::Qwen3),
    ("Gemma2ForCausalLM", Arch::Gemma2),
    ("Gemma3ForCausalLM", Arch::Gemma3),
    ("Phi3ForCausalLM", Arch::Phi3),
];

/// Whole-model tensors (`model.embed_tokens.weight` style names without the suffix).
const TOP_LEVEL_TENSORS: [(&str, &str); 3] = [
    ("model.embed_tokens", "token_embd"),
    ("model.norm", "output_norm"),
    ("lm_head", "output"),
];

/// Per-layer tensors of llama and qwen2 (`model.layers.N.` + module -> `blk.N.` + name).
const LLAMA_BLOCK: [(&str, &str); 9] = [
    ("input_layernorm", "attn_norm"),
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("post_attention_layernorm", "ffn_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// Query/key norms of qwen3 and gemma3.
const QK_NORMS: [(&str, &str); 2] = [
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
];

/// Gemma 2/3 layers: norms before and after both attention and the MLP.
const GEMMA_BLOCK: [(&str, &str); 11] = [
    ("input_layernorm", "attn_norm"),
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("post_attention_layernorm", "post_attention_norm"),
    ("pre_feedforward_layernorm", "ffn_norm"),
    ("post_feedforward_layernorm", "post_ffw_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// Phi-3 layers: fused qkv and gate/up projections, kept fused.
const PHI3_BLOCK: [(&str, &str); 6] = [
    ("input_layernorm", "attn_norm"),
    ("self_attn.qkv_proj", "attn_qkv"),
    ("self_attn.o_proj", "attn_output"),
    ("post_attention_layernorm", "ffn_norm"),
    ("mlp.gate_up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
];

/// Checkpoint tensors the converter drops (buffers some old checkpoints saved).
const DROPPED_SUFFIXES: [&str; 3] = [
    ".attention.masked_bias",
    ".attention.bias",
    ".rotary_emb.inv_freq",
];

impl Arch {
    /// The GGUF `general.architecture` value.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3",
            Arch::Phi3 => "phi3",
        }
    }

    /// The architecture `config` converts to, or an error listing the supported ones.
    pub fn of(config: &HfConfig) -> Result<Self> {
        let name = config
            .raw
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Json::as_str)
            .unwrap_or_default();
        HF_ARCHITECTURES
            .iter()
            .find(|(hf, _)| *hf == name)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                let supported: Vec<&str> = HF_ARCHITECTURES.iter().map(|(hf, _)| *hf).collect();
                Error::usage(format!(
                    "{}: architecture `{name}` cannot be exported to GGUF yet; supported: {}",
                    config.path,
                    supported.join(", ")
                ))
            })
    }

    fn block_tables(self) -> &'static [&'static [(&'static str, &'static str)]] {
        match self {
            Arch::Llama | Arch::Qwen2 => &[&LLAMA_BLOCK],
            Arch::Qwen3 => &[&LLAMA_BLOCK, &QK_NORMS],
            Arch::Gemma2 => &[&GEMMA_BLOCK],
            Arch::Gemma3 => &[&GEMMA_BLOCK, &QK_NORMS],
            Arch::Phi3 => &[&PHI3_BLOCK],
        }
    }

    /// The GGUF name of checkpoint tensor `name`.
    fn tensor_name(self, name: &str) -> Option<String> {
        let (stem, suffix) = name.rsplit_once('.')?;
        if let Some((_, gguf)) = TOP_LEVEL_TENSORS.iter().find(|(hf, _)| *hf == stem) {
            return Some(format!("{gguf}.{suffix}"));
        }
        let rest = stem.strip_prefix("model.layers.")?;
        let (block, module) = rest.split_once('.')?;
        let block: usize = block.parse().ok()?;
        self.block_tables()
            .iter()
            .flat_map(|t| t.iter())
            .find(|(hf, _)| *hf == module)
            .map(|(_, gguf)| format!("blk.{block}.{gguf}.{suffix}"))
    }
}

/// What happens to a tensor's values on the way into GGUF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueTransform {
    /// Stored as is.
    Identity,
    /// llama q/k projections: within each head's `head_rows` rows, the HF rotary layout (first
    /// halves, then second halves) becomes llama.cpp's interleaved one. A 1-D bias is permuted
    /// the same way, element by element.
    InterleaveRotaryHalves {
        /// Rows (bias elements) per head.
        head_rows: usize,
    },
    /// Gemma norms: llama.cpp multiplies by the stored weight, HF by `1 + weight`, so 1 is added.
    /// With an f16 checkpoint the converter adds in f16, rounding the sum.
    AddOne {
        /// Round the sum to f16.
        in_f16: bool,
    },
}

impl ValueTransform {
    /// Applies the transform to a chunk of rows of `row_len` values each, holding whole heads
    /// (a 1-D tensor is one chunk whose "rows" are single values).
    pub fn apply(self, values: &mut [f32], row_len: usize) {
        match self {
            ValueTransform::Identity => {}
            ValueTransform::AddOne { in_f16 } => values.iter_mut().for_each(|v| {
                *v = if in_f16 {
                    (half::f16::from_f32(*v) + half::f16::ONE).to_f32()
                } else {
                    *v + 1.0
                }
            }),
            ValueTransform::InterleaveRotaryHalves { head_rows } => {
                // Output row `2b + a` is input row `a * head_rows / 2 + b`, as the converter's
                // `reshape(heads, 2, head_rows / 2, ..).swapaxes(1, 2)`.
                let half = head_rows / 2;
                let mut scratch = vec![0f32; head_rows * row_len];
                for head in values.chunks_exact_mut(head_rows * row_len) {
                    for a in 0..2 {
                        for b in 0..half {
                            let from = (a * half + b) * row_len;
                            let to = (2 * b + a) * row_len;
                            scratch[to..to + row_len].copy_from_slice(&head[from..from + row_len]);
                        }
                    }
                    head.copy_from_slice(&scratch);
                }
            }
        }
    }
}

/// How one checkpoint tensor is written to GGUF.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorConversion {
    /// GGUF tensor name.
    pub name: String,
    /// What happens to its values.
    pub transform: ValueTransform,
    /// Stored as F32 whatever the output type: 1-D tensors, norms and biases.
    pub keep_f32: bool,
    /// Rows written: fewer than the checkpoint has when the converter drops some (Gemma 3's
    /// embedding rows past the tokenizer).
    pub rows: usize,
}

/// A tensor the converter computes from the config; written before all others.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputedTensor {
    /// GGUF tensor name.
    pub name: &'static str,
    /// Its values (F32, 1-D).
    pub values: Vec<f32>,
}

/// A checkpoint's conversion to GGUF: architecture, the hyperparameters as the converter reads
/// them, and what tensor conversion depends on.
pub struct GgufArch {
    arch: Arch,
    hparams: Hparams,
    /// The checkpoint's float type (values are transformed in it when the converter does).
    source_dtype: FloatType,
    /// Gemma 3 keeps only this many embedding rows.
    embedding_rows: Option<usize>,
}

/// `general.file_type` and the other keys written by `set_gguf_parameters` are prefixed with
/// the architecture name.
fn arch_key(arch: Arch, key: &str) -> String {
    format!("{}.{key}", arch.gguf_name())
}

impl GgufArch {
    /// Reads what conversion needs from `config` (the merged model's) and, for Gemma 3, the
    /// tokenizer in `tokenizer_dir`. `source_dtype` is the checkpoint's float type.
    pub fn new(
        config: &HfConfig,
        source_dtype: FloatType,
        tokenizer_dir: &dyn InputDir,
    ) -> Result<Self> {
        let arch = Arch::of(config)?;
        let hparams = Hparams::new(config)?;
        if let Some(key) = ["num_local_experts", "num_experts", "n_routed_experts"]
            .into_iter()
            .find(|k| hparams.get(k).is_some())
        {
            return Err(Error::usage(format!(
                "{}: `{key}` is set, but mixture-of-experts models cannot be exported to GGUF yet",
                config.path
            )));
        }
        let embedding_rows = match arch {
            Arch::Gemma3 => Some(gemma3_vocab_rows(&hparams, tokenizer_dir)?),
            _ => None,
        };
        Ok(GgufArch {
            arch,
            hparams,
            source_dtype,
            embedding_rows,
        })
    }

    /// The architecture.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// How checkpoint tensor `name` of `shape` is written, or `None` when the converter drops it.
    pub fn convert(&self, name: &str, shape: &[usize]) -> Result<Option<TensorConversion>> {
        let gemma = matches!(self.arch, Arch::Gemma2 | Arch::Gemma3);
        if DROPPED_SUFFIXES.iter().any(|s| name.ends_with(s))
            // Gemma ties the output head to the embedding; llama.cpp never reads lm_head.
            || (gemma && name == "lm_head.weight")
        {
            return Ok(None);
        }
        let gguf = self.arch.tensor_name(name).ok_or_else(|| {
            Error::tensor(
                &self.hparams.path,
                name,
                format!(
                    "no GGUF name for this tensor in architecture {}; is the checkpoint complete and of this architecture?",
                    self.arch.gguf_name()
                ),
            )
        })?;
        let rows = shape.first().copied().unwrap_or(1);
        let transform = if self.arch == Arch::Llama {
            self.rotary_permutation(name, rows)?
        } else if gemma && name.ends_with("norm.weight") {
            ValueTransform::AddOne {
                in_f16: self.source_dtype == FloatType::F16,
            }
        } else {
            ValueTransform::Identity
        };
        let kept_rows = match self.embedding_rows {
            Some(n) if name.contains("embed_tokens.weight") => rows.min(n),
            _ => rows,
        };
        Ok(Some(TensorConversion {
            keep_f32: shape.len() <= 1
                || gguf.ends_with("_norm.weight")
                || !gguf.ends_with(".weight"),
            name: gguf,
            transform,
            rows: kept_rows,
        }))
    }

    /// llama's q/k row permutation (`LlamaModel.permute`), for weights and biases.
    fn rotary_permutation(&self, name: &str, rows: usize) -> Result<ValueTransform> {
        let module = name.rsplit_once('.').map_or(name, |(m, _)| m);
        let heads_key: &[&str] = if module.ends_with("q_proj") {
            &["n_heads", "num_attention_heads"]
        } else if module.ends_with("k_proj") {
            &["n_kv_heads", "num_key_value_heads"]
        } else {
            return Ok(ValueTransform::Identity);
        };
        let value = self.hparams.require(heads_key)?;
        let heads = self.hparams.int(heads_key[1], value)? as usize;
        if heads == 0 || !rows.is_multiple_of(2 * heads) {
            return Err(Error::tensor(
                &self.hparams.path,
                name,
                format!("{rows} rows do not split into {heads} heads of rotary pairs"),
            ));
        }
        Ok(ValueTransform::InterleaveRotaryHalves {
            head_rows: rows / heads,
        })
    }

    /// Tensors the converter computes from the config, in its order: llama3 rope scaling's
    /// `rope_freqs`, Phi-3 longrope's long and short factors.
    pub fn computed_tensors(&self) -> Result<Vec<ComputedTensor>> {
        match self.arch {
            Arch::Llama => Ok(self.llama3_rope_freqs()?.into_iter().collect()),
            Arch::Phi3 => self.phi3_rope_factors(),
            _ => Ok(Vec::new()),
        }
    }

    /// Metadata the converter writes while preparing tensors, before `general.type`: Phi-3
    /// longrope's attention factor.
    pub fn tensor_metadata(&self) -> Result<Metadata> {
        let mut m = Metadata::new();
        if self.arch == Arch::Phi3 && self.phi3_long_factors().is_some() {
            let rope = self.hparams.rope();
            let max_pos = self.float_of(&["n_positions", "max_position_embeddings"])?;
            let original = self.rope_float(rope, "original_max_position_embeddings")?;
            let scale = max_pos / original;
            let ty = rope
                .get("rope_type")
                .and_then(Json::as_str)
                .unwrap_or_default();
            let factor = match ty.to_ascii_lowercase().as_str() {
                "su" | "longrope" if scale > 1.0 => (1.0 + scale.ln() / original.ln()).sqrt(),
                "yarn" if scale > 1.0 => 0.1 * scale.ln() + 1.0,
                "su" | "longrope" | "yarn" => 1.0,
                _ => {
                    return Err(Error::format(
                        &self.hparams.path,
                        format!("Phi-3 rope scaling type `{ty}` is not supported"),
                    ))
                }
            };
            m.set(
                arch_key(self.arch, "rope.scaling.attn_factor"),
                Value::F32(factor as f32),
            );
        }
        Ok(m)
    }

    fn float_of(&self, keys: &[&str]) -> Result<f64> {
        let v = self.hparams.require(keys)?;
        self.hparams.float(keys[0], v)
    }

    fn int_of(&self, keys: &[&str]) -> Result<u64> {
        let v = self.hparams.require(keys)?;
        self.hparams.int(keys[0], v)
    }

    fn rope_float(&self, rope: &serde_json::Map<String, Json>, key: &str) -> Result<f64> {
        let v = rope.get(key).ok_or_else(|| {
            Error::format(
                &self.hparams.path,
                format!("rope parameters have no `{key}`"),
            )
        })?;
        self.hparams.float(key, v)
    }

    /// Dimensions rotated per head for llama: `head_dim`, else hidden size over heads.
    fn llama_rope_dims(&self) -> Result<u64> {
        match self.hparams.get("head_dim") {
            Some(v) => self.hparams.int("head_dim", v),
            None => Ok(self.int_of(&["hidden_size"])? / self.int_of(&["num_attention_heads"])?),
        }
    }

    /// `rope_freqs.weight` for llama3 rope scaling, computed in f32 step by step as the
    /// converter's torch code does. The powers use a correctly rounded `pow`; torch's
    /// vectorized one differs by an ulp on a few inputs, none of which reach the output for the
    /// Llama 3.x configurations (checked against the converter for head dims 64 and 128).
    fn llama3_rope_freqs(&self) -> Result<Option<ComputedTensor>> {
        let rope = self.hparams.full_attention_rope();
        let is_llama3 = rope
            .get("rope_type")
            .and_then(Json::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("llama3"));
        if !is_llama3 {
            return Ok(None);
        }
        let param = |key: &str, default: f64| -> Result<f64> {
            rope.get(key)
                .map_or(Ok(default), |v| self.hparams.float(key, v))
        };
        let base = param("rope_theta", 10000.0)? as f32;
        let dim = self.llama_rope_dims()? as usize;
        let factor = param("factor", 8.0)? as f32;
        let low_freq_factor = param("low_freq_factor", 1.0)?;
        let high_freq_factor = param("high_freq_factor", 4.0)?;
        let old_context = param("original_max_position_embeddings", 8192.0)?;
        let low_freq_wavelen = (old_context / low_freq_factor) as f32;
        let high_freq_wavelen = (old_context / high_freq_factor) as f32;
        let values = (0..dim)
            .step_by(2)
            .map(|i| {
                let exponent = i as f32 / dim as f32;
                let power = f64::from(base).powf(f64::from(exponent)) as f32;
                let freq = 1.0f32 / power;
                let wavelen = (2.0 * std::f64::consts::PI) as f32 / freq;
                if wavelen < high_freq_wavelen {
                    1.0
                } else if wavelen > low_freq_wavelen {
                    factor
                } else {
                    let smooth = (old_context as f32 / wavelen - low_freq_factor as f32)
                        / (high_freq_factor - low_freq_factor) as f32;
                    1.0 / ((1.0 - smooth) / factor + smooth)
                }
            })
            .collect();
        Ok(Some(ComputedTensor {
            name: "rope_freqs.weight",
            values,
        }))
    }

    fn phi3_long_factors(&self) -> Option<&Vec<Json>> {
        self.hparams
            .rope()
            .get("long_factor")
            .and_then(Json::as_array)
            .filter(|a| !a.is_empty())
    }

    /// Phi-3 longrope's per-dimension factors, which must cover half the rotated dimensions.
    fn phi3_rope_factors(&self) -> Result<Vec<ComputedTensor>> {
        let Some(long) = self.phi3_long_factors() else {
            return Ok(Vec::new());
        };
        let rope = self.hparams.rope();
        let short = rope
            .get("short_factor")
            .and_then(Json::as_array)
            .ok_or_else(|| {
                Error::format(
                    &self.hparams.path,
                    "rope scaling has long_factor but no short_factor",
                )
            })?;
        let half_dims = self.phi3_rope_dims()? / 2;
        if long.len() as u64 != half_dims || short.len() as u64 != half_dims {
            return Err(Error::format(
                &self.hparams.path,
                format!(
                    "rope long_factor ({}) and short_factor ({}) must both have {half_dims} entries",
                    long.len(),
                    short.len()
                ),
            ));
        }
        let floats = |list: &[Json]| -> Result<Vec<f32>> {
            list.iter()
                .map(|v| self.hparams.float("rope factor", v).map(|f| f as f32))
                .collect()
        };
        Ok(vec![
            ComputedTensor {
                name: "rope_factors_long.weight",
                values: floats(long)?,
            },
            ComputedTensor {
                name: "rope_factors_short.weight",
                values: floats(short)?,
            },
        ])
    }

    /// Phi-3's rotated dimensions: `int(partial_rotary_factor * hidden) // heads`.
    fn phi3_rope_dims(&self) -> Result<u64> {
        let rope = self.hparams.rope();
        let partial = match rope.get("partial_rotary_factor") {
            Some(v) => self.hparams.float("partial_rotary_factor", v)?,
            None => 1.0,
        };
        let hidden = self.int_of(&["hidden_size", "n_embd"])?;
        let heads = self.int_of(&["num_attention_heads", "n_head"])?;
        Ok((partial * hidden as f64) as u64 / heads)
    }

    /// The hyperparameter metadata (`set_gguf_parameters`), `general.file_type` included, in the
    /// converter's order for this architecture.
    pub fn hparam_metadata(&self, file_type: u32) -> Result<Metadata> {
        let mut kv = KvWriter {
            arch: self.arch,
            hparams: &self.hparams,
            out: Metadata::new(),
        };
        match self.arch {
            Arch::Llama => {
                kv.text_model(file_type)?;
                kv.u32("vocab_size", &["vocab_size"])?;
                let dims = self.llama_rope_dims()?;
                kv.out.set(
                    arch_key(self.arch, "rope.dimension_count"),
                    Value::U32(dims as u32),
                );
            }
            Arch::Qwen2 | Arch::Qwen3 => kv.text_model(file_type)?,
            Arch::Gemma2 => {
                kv.u32("context_length", &["max_position_embeddings"])?;
                kv.u32("embedding_length", &["hidden_size"])?;
                kv.u32("block_count", &["num_hidden_layers"])?;
                kv.u32("feed_forward_length", &["intermediate_size"])?;
                kv.u32("attention.head_count", &["num_attention_heads"])?;
                kv.u32(
                    "attention.head_count_kv",
                    &["num_key_value_heads", "num_attention_heads"],
                )?;
                kv.f32("attention.layer_norm_rms_epsilon", &["rms_norm_eps"])?;
                kv.u32("attention.key_length", &["head_dim"])?;
                kv.u32("attention.value_length", &["head_dim"])?;
                kv.out.set("general.file_type", Value::U32(file_type));
                kv.f32("attn_logit_softcapping", &["attn_logit_softcapping"])?;
                kv.f32("final_logit_softcapping", &["final_logit_softcapping"])?;
                kv.u32("attention.sliding_window", &["sliding_window"])?;
            }
            Arch::Gemma3 => {
                kv.text_model(file_type)?;
                // Gemma3Model.set_gguf_parameters re-sets some keys after the common ones.
                kv.u32("context_length", &["max_position_embeddings"])?;
                kv.u32("attention.head_count", &["num_attention_heads"])?;
                kv.f32("attention.layer_norm_rms_epsilon", &["rms_norm_eps"])?;
                kv.u32("attention.key_length", &["head_dim"])?;
                kv.u32("attention.value_length", &["head_dim"])?;
                let theta = self.rope_float(self.hparams.full_attention_rope(), "rope_theta")?;
                kv.out.set(
                    arch_key(self.arch, "rope.freq_base"),
                    Value::F32(theta as f32),
                );
                if self.hparams.get("attn_logit_softcapping").is_some() {
                    return Err(Error::format(
                        &self.hparams.path,
                        "Gemma 3 has no attention logit soft-capping, but attn_logit_softcapping is set",
                    ));
                }
                let softcap = self.hparams.get("final_logit_softcapping");
                if softcap.and_then(Json::as_f64).is_some_and(|v| v != 0.0) {
                    kv.f32("final_logit_softcapping", &["final_logit_softcapping"])?;
                }
                if self.hparams.get("sliding_window_pattern") != Some(&Json::from(1)) {
                    kv.u32("attention.sliding_window", &["sliding_window"])?;
                }
                kv.u32("attention.head_count_kv", &["num_key_value_heads"])?;
            }
            Arch::Phi3 => {
                let rope = self.hparams.rope();
                kv.u32(
                    "context_length",
                    &["n_positions", "max_position_embeddings"],
                )?;
                let original = self.rope_float(rope, "original_max_position_embeddings")?;
                kv.out.set(
                    arch_key(self.arch, "rope.scaling.original_context_length"),
                    Value::U32(original as u32),
                );
                kv.u32("embedding_length", &["hidden_size", "n_embd"])?;
                kv.u32("feed_forward_length", &["intermediate_size"])?;
                kv.u32("block_count", &["num_hidden_layers"])?;
                kv.u32("attention.head_count", &["num_attention_heads", "n_head"])?;
                kv.u32(
                    "attention.head_count_kv",
                    &["num_key_value_heads", "n_head_kv"],
                )?;
                kv.f32("attention.layer_norm_rms_epsilon", &["rms_norm_eps"])?;
                let dims = self.phi3_rope_dims()?;
                kv.out.set(
                    arch_key(self.arch, "rope.dimension_count"),
                    Value::U32(dims as u32),
                );
                let theta = self.rope_float(self.hparams.full_attention_rope(), "rope_theta")?;
                kv.out.set(
                    arch_key(self.arch, "rope.freq_base"),
                    Value::F32(theta as f32),
                );
                kv.out.set("general.file_type", Value::U32(file_type));
                // A missing window is written as 0, which marks Phi-4 for llama.cpp.
                let window = match self.hparams.get("sliding_window") {
                    Some(v) => self.hparams.int("sliding_window", v)? as u32,
                    None => 0,
                };
                kv.out.set(
                    arch_key(self.arch, "attention.sliding_window"),
                    Value::U32(window),
                );
            }
        }
        Ok(kv.out)
    }
}

/// Builds `{arch}.*` metadata from hyperparameters, converting JSON numbers as gguf-py packs
/// them (integers for u32 keys, any number for f32 keys).
struct KvWriter<'h> {
    arch: Arch,
    hparams: &'h Hparams,
    out: Metadata,
}

impl KvWriter<'_> {
    fn u32(&mut self, key: &str, from: &[&str]) -> Result<()> {
        let v = self.hparams.require(from)?;
        let n = self.hparams.int(from[0], v)?;
        let n = u32::try_from(n).map_err(|_| {
            Error::format(
                &self.hparams.path,
                format!("`{}` = {n} does not fit u32", from[0]),
            )
        })?;
        self.out.set(arch_key(self.arch, key), Value::U32(n));
        Ok(())
    }

    fn f32(&mut self, key: &str, from: &[&str]) -> Result<()> {
        let v = self.hparams.require(from)?;
        let x = self.hparams.float(from[0], v)?;
        self.out.set(arch_key(self.arch, key), Value::F32(x as f32));
        Ok(())
    }

    fn optional_u32(&mut self, key: &str, from: &[&str]) -> Result<()> {
        if self.hparams.find(from).is_some() {
            self.u32(key, from)?;
        }
        Ok(())
    }

    fn optional_f32(&mut self, key: &str, from: &[&str]) -> Result<()> {
        if self.hparams.find(from).is_some() {
            self.f32(key, from)?;
        }
        Ok(())
    }

    /// `TextModel.set_gguf_parameters`: the keys most architectures share.
    fn text_model(&mut self, file_type: u32) -> Result<()> {
        self.u32(
            "block_count",
            &["n_layers", "num_hidden_layers", "n_layer", "num_layers"],
        )?;
        self.optional_u32(
            "context_length",
            &[
                "max_position_embeddings",
                "n_ctx",
                "n_positions",
                "max_length",
                "max_sequence_length",
                "model_max_length",
            ],
        )?;
        self.optional_u32("embedding_length", &["hidden_size", "n_embd", "dim"])?;
        self.optional_u32(
            "feed_forward_length",
            &[
                "prefix_dense_intermediate_size",
                "dense_intermediate_size",
                "intermediate_size",
                "n_inner",
                "hidden_dim",
            ],
        )?;
        self.optional_u32(
            "attention.head_count",
            &["num_attention_heads", "n_head", "n_heads"],
        )?;
        self.optional_u32(
            "attention.head_count_kv",
            &["num_key_value_heads", "n_kv_heads"],
        )?;
        if self.hparams.get("is_causal") == Some(&Json::Bool(false)) {
            self.out
                .set(arch_key(self.arch, "attention.causal"), Value::Bool(false));
        }
        self.rope_scaling()?;
        let h = self.hparams;
        if let Some(theta) = h
            .full_attention_rope()
            .get("rope_theta")
            .filter(|v| !v.is_null())
        {
            let theta = h.float("rope_theta", theta)?;
            self.out.set(
                arch_key(self.arch, "rope.freq_base"),
                Value::F32(theta as f32),
            );
        }
        let swa_theta = h
            .rope()
            .get("sliding_attention")
            .and_then(|s| s.get("rope_theta"))
            .filter(|v| !v.is_null());
        if let Some(theta) = swa_theta {
            let theta = h.float("rope_theta", theta)?;
            self.out.set(
                arch_key(self.arch, "rope.freq_base_swa"),
                Value::F32(theta as f32),
            );
        }
        self.optional_f32(
            "attention.layer_norm_rms_epsilon",
            &["rms_norm_eps", "norm_eps"],
        )?;
        self.optional_f32(
            "attention.layer_norm_epsilon",
            &["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"],
        )?;
        if h.get("head_dim").is_some() {
            self.u32("attention.key_length", &["head_dim"])?;
            self.u32("attention.value_length", &["head_dim"])?;
        }
        self.out.set("general.file_type", Value::U32(file_type));
        Ok(())
    }

    /// Rope scaling keys for linear, YaRN and longrope scaling (llama3 scaling is a tensor).
    fn rope_scaling(&mut self) -> Result<()> {
        let (h, arch) = (self.hparams, self.arch);
        let rope = h.full_attention_rope();
        let Some(ty) = rope.get("rope_type").and_then(Json::as_str) else {
            return Ok(());
        };
        let factor = rope.get("factor").filter(|v| !v.is_null());
        let set_f32 = |out: &mut Metadata, key: &str, v: &Json| -> Result<()> {
            let x = h.float(key, v)?;
            out.set(arch_key(arch, key), Value::F32(x as f32));
            Ok(())
        };
        let scaling_type = |out: &mut Metadata, name: &str| {
            out.set(
                arch_key(arch, "rope.scaling.type"),
                Value::String(name.into()),
            )
        };
        match (ty, factor) {
            ("linear", Some(factor)) => {
                scaling_type(&mut self.out, "linear");
                set_f32(&mut self.out, "rope.scaling.factor", factor)?;
            }
            ("yarn", Some(factor)) => {
                scaling_type(&mut self.out, "yarn");
                set_f32(&mut self.out, "rope.scaling.factor", factor)?;
                let original = rope
                    .get("original_max_position_embeddings")
                    .ok_or_else(|| {
                        Error::format(
                            &h.path,
                            "YaRN rope scaling needs original_max_position_embeddings",
                        )
                    })?;
                let original = h.int("original_max_position_embeddings", original)?;
                self.out.set(
                    arch_key(arch, "rope.scaling.original_context_length"),
                    Value::U32(original as u32),
                );
                for (key, from) in [
                    (
                        "rope.scaling.yarn_ext_factor",
                        &["extrapolation_factor"][..],
                    ),
                    (
                        "rope.scaling.yarn_attn_factor",
                        &["attention_factor", "attn_factor"],
                    ),
                    ("rope.scaling.yarn_beta_fast", &["beta_fast"]),
                    ("rope.scaling.yarn_beta_slow", &["beta_slow"]),
                ] {
                    if let Some(v) = from
                        .iter()
                        .find_map(|k| rope.get(*k))
                        .filter(|v| !v.is_null())
                    {
                        set_f32(&mut self.out, key, v)?;
                    }
                }
            }
            ("su" | "longrope", _) => scaling_type(&mut self.out, "longrope"),
            _ => {}
        }
        Ok(())
    }
}

/// Gemma 3 keeps embedding rows up to the tokenizer's size: with `tokenizer.model` the
/// converter's padded SentencePiece vocabulary (the config's vocab size), else `tokenizer.json`'s
/// vocabulary plus its added tokens.
fn gemma3_vocab_rows(hparams: &Hparams, dir: &dyn InputDir) -> Result<usize> {
    if dir.open("tokenizer.model")?.is_some() {
        let v = hparams.require(&["vocab_size_per_layer_input", "vocab_size"])?;
        return Ok(hparams.int("vocab_size", v)? as usize);
    }
    let file = dir.require(
        "tokenizer.json",
        "Gemma 3 conversion needs the tokenizer (tokenizer.model or tokenizer.json)",
    )?;
    let json: Json = serde_json::from_slice(&file.read_all()?)
        .map_err(|e| Error::format(&file.path, format!("not valid JSON: {e}")))?;
    let count = |v: Option<&Json>| match v {
        Some(Json::Object(m)) => Ok(m.len()),
        Some(Json::Array(a)) => Ok(a.len()),
        _ => Err(Error::format(
            &file.path,
            "expected model.vocab and added_tokens in tokenizer.json",
        )),
    };
    Ok(count(json.pointer("/model/vocab"))? + count(json.get("added_tokens"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotary_halves_interleave_within_each_head() {
        // Two heads of four rows, one value per row: [0 1 | 2 3] -> [0 2 1 3] per head.
        let mut v: Vec<f32> = (0..8).map(|x| x as f32).collect();
        ValueTransform::InterleaveRotaryHalves { head_rows: 4 }.apply(&mut v, 1);
        assert_eq!(v, [0., 2., 1., 3., 4., 6., 5., 7.]);
        // Rows of two values move together.
        let mut v: Vec<f32> = (0..8).map(|x| x as f32).collect();
        ValueTransform::InterleaveRotaryHalves { head_rows: 4 }.apply(&mut v, 2);
        assert_eq!(v, [0., 1., 4., 5., 2., 3., 6., 7.]);
    }

    #[test]
    fn gemma_norms_add_one_in_the_source_precision() {
        let x = 0.000_123_4f32;
        let mut f32_sum = [x];
        ValueTransform::AddOne { in_f16: false }.apply(&mut f32_sum, 1);
        assert_eq!(f32_sum[0], 1.0 + x);
        let mut f16_sum = [x];
        ValueTransform::AddOne { in_f16: true }.apply(&mut f16_sum, 1);
        assert_eq!(f16_sum[0], 1.0);
    }

    #[test]
    fn unsupported_architectures_are_listed() {
        let config = HfConfig {
            path: "m/config.json".into(),
            raw: serde_json::json!({"architectures": ["GPTNeoXForCausalLM"]})
                .as_object()
                .cloned()
                .unwrap(),
        };
        let err = Arch::of(&config).unwrap_err().to_string();
        assert!(
            err.contains("GPTNeoXForCausalLM") && err.contains("Qwen2ForCausalLM"),
            "{err}"
        );
    }

    #[test]
    fn names_follow_the_tables() {
        assert_eq!(
            Arch::Llama
                .tensor_name("model.layers.11.self_attn.q_proj.weight")
                .as_deref(),
            Some("blk.11.attn_q.weight")
        );
        assert_eq!(
            Arch::Gemma2
                .tensor_name("model.layers.0.post_attention_layernorm.weight")
                .as_deref(),
            Some("blk.0.post_attention_norm.weight")
        );
        assert_eq!(
            Arch::Qwen2
                .tensor_name("model.layers.3.self_attn.k_proj.bias")
                .as_deref(),
            Some("blk.3.attn_k.bias")
        );
        assert_eq!(
            Arch::Llama.tensor_name("model.layers.0.self_attn.q_norm.weight"),
            None
        );
        assert_eq!(
            Arch::Phi3.tensor_name("lm_head.weight").as_deref(),
            Some("output.weight")
        );
    }
}
