//! The `lora-gguf[:type]` output: the adapter as a GGUF LoRA adapter for llama.cpp, written as
//! its `convert_lora_to_gguf.py --base <base>` (0c1e57098bba) writes it: the same metadata in
//! the same order, `<base tensor>.lora_a` / `.lora_b` pairs named and permuted as the base
//! model's GGUF names and permutes the weights, in the order the script reads the adapter.
//!
//! Where that script gets the scale wrong, ours differs on purpose. llama.cpp multiplies every
//! pair by `adapter.lora.alpha / r` (one alpha per file, r the pair's rank), while PEFT's scale is
//! `alpha / r` or, with rsLoRA, `alpha / √r`, and rank/alpha patterns give modules their own
//! rank and alpha. We pick one alpha that makes the most common scale exact (for a uniform
//! rsLoRA adapter `alpha·√r`) and multiply the `lora_b` of every other module by its remaining
//! factor before the one rounding to the file's type; the file then records what was done under
//! [`SCALING_KEY`].
//!
//! The file depends on the adapter and the base's `config.json` only, so it is written from the
//! adapter directly, outside the tensor stream.

use super::gguf_output::general::GeneralMetadata;
use super::gguf_output::{
    encode_values, parse_mix, tensor_type as ggml_tensor_type, QuantMix, QUANTIZATION_VERSION,
    QUANTIZED_BY,
};
use super::plan::StreamTensor;
use crate::error::{Error, Result};
use crate::formats::gguf::{GgufLayout, GgufWriter, Metadata, TensorSpec, TensorType, Value};
use crate::io::OutputDir;
use crate::lora::merge::transpose;
use crate::lora::{Adapter, LoraConfig, LoraPair};
use crate::model::arch::{GgufArch, ValueTransform};
use crate::model::{BaseModel, ModelTensor};
use crate::quant::ggml::GgmlType;
use std::fmt::Write as _;

/// The types `--to lora-gguf:<type>` takes (the converter's `--outtype` choices), with their
/// command-line names.
pub const LORA_GGUF_TYPES: [(QuantMix, &str); 4] = [
    (QuantMix::F32, "lora-gguf:f32"),
    (QuantMix::F16, "lora-gguf:f16"),
    (QuantMix::BF16, "lora-gguf:bf16"),
    (QuantMix::Q8_0, "lora-gguf:q8_0"),
];

/// The type of a bare `--to lora-gguf`: F16, what llama.cpp's LoRA files usually are.
pub const DEFAULT_LORA_GGUF_TYPE: QuantMix = QuantMix::F16;

/// Our metadata key that says how PEFT's scales were expressed, present only when they differ
/// from what the converter writes (a plain adapter's file has none).
pub const SCALING_KEY: &str = "llm_export.lora.scaling";

/// The command-line name of output type `ty`, `lora-gguf:f16` (`lora-gguf` for a type it does
/// not take, which the plan refuses).
pub fn cli_name(ty: QuantMix) -> &'static str {
    LORA_GGUF_TYPES
        .iter()
        .find(|(t, _)| *t == ty)
        .map_or("lora-gguf", |(_, name)| name)
}

fn supported(ty: QuantMix) -> bool {
    LORA_GGUF_TYPES.iter().any(|(t, _)| *t == ty)
}

/// Parses what follows `lora-gguf` on the command line: nothing, or `:<type>`.
pub fn parse_type(suffix: &str) -> Result<QuantMix> {
    if suffix.is_empty() {
        return Ok(DEFAULT_LORA_GGUF_TYPE);
    }
    suffix
        .strip_prefix(':')
        .and_then(parse_mix)
        .filter(|t| supported(*t))
        .ok_or_else(|| {
            let types: Vec<String> = LORA_GGUF_TYPES.iter().map(|(t, _)| t.name().to_ascii_lowercase()).collect();
            Error::usage(format!(
                "unknown LoRA GGUF type `{}`; expected lora-gguf or lora-gguf:<type> with type one of: {}",
                suffix.trim_start_matches(':'),
                types.join(", ")
            ))
        })
}

/// One adapter pair as it goes into the file.
struct PlannedPair {
    pair: LoraPair,
    /// The base weight's GGUF name; the tensors add `.lora_a` / `.lora_b`.
    name: String,
    /// The row permutation the base weight gets (llama q/k), applied to `lora_b`'s rows.
    permutation: Option<ValueTransform>,
    /// `lora_b` is multiplied by this so that `alpha / rank` gives PEFT's scale.
    b_factor: f64,
    /// GGUF extents of `lora_a` and `lora_b`.
    a_ne: Vec<u64>,
    b_ne: Vec<u64>,
}

impl PlannedPair {
    /// `lora_a` and `lora_b` as the file holds them, in f32, row-major.
    fn values(&self, adapter: &Adapter) -> Result<(Vec<f32>, Vec<f32>)> {
        let (a, mut b) = (
            adapter.read_f32(&self.pair.a)?,
            adapter.read_f32(&self.pair.b)?,
        );
        let rank = self.pair.rank;
        // llama.cpp looks embedding rows up in `lora_a`, so it holds Aᵀ, one row per token.
        let a = if self.pair.embedding {
            let rows = self.a_ne[1] as usize;
            let mut t = transpose(&a, rank, self.pair.a.shape[1]);
            t.truncate(rows * rank);
            t
        } else {
            a
        };
        if let Some(p) = self.permutation {
            p.apply(&mut b, rank);
        }
        if self.b_factor != 1.0 {
            // Multiplied in f64 and rounded to f32 once (2^-24 relative, far below F16's step),
            // then to the file's type: one rounding that matters, as for unscaled tensors.
            b.iter_mut()
                .for_each(|v| *v = (*v as f64 * self.b_factor) as f32);
        }
        Ok((a, b))
    }
}

/// The GGUF LoRA outputs of an export, laid out when the export is planned.
pub struct LoraGgufPlan {
    pairs: Vec<PlannedPair>,
    files: Vec<(QuantMix, String, GgufLayout)>,
    /// A summary of what was done to express PEFT's scales, for the user; `None` for a plain
    /// adapter (the file's [`SCALING_KEY`] has the details).
    pub note: Option<String>,
}

/// Refuses the whole weights the adapter carries (a GGUF LoRA adapter holds only low-rank
/// pairs, so llama.cpp would run the base's weights there), except PEFT's own copy of an
/// embedding it wraps (`X.base_layer.weight`) when it equals the base's, which the converter
/// skips too.
fn refuse_replacements(
    base: &BaseModel,
    adapter: &Adapter,
    tensors: &[StreamTensor],
) -> Result<()> {
    let mut replaced = Vec::new();
    for t in tensors {
        let Some(raw) = adapter
            .entries
            .get(&t.name)
            .and_then(|e| e.replacement.as_ref())
        else {
            continue;
        };
        let base_copy = raw.name.contains(".base_layer.")
            && match base.tensors.iter().find(|b| b.name == t.name) {
                Some(b) => same_values(b, &t.source)?,
                None => false,
            };
        if !base_copy {
            replaced.push(t.name.as_str());
        }
    }
    if replaced.is_empty() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "{}: the adapter carries whole trained weights ({}: modules_to_save or a resized vocabulary); \
         a GGUF LoRA adapter holds only low-rank pairs, and llama.cpp would keep the base's weights there. \
         Export a merged GGUF instead (--to gguf:f16)",
        adapter.dir.display(),
        replaced.join(", ")
    )))
}

/// Values compared per read when checking that a saved base layer equals the base's.
const COMPARE_ELEMS: usize = 1 << 20;

/// True when `a` and `b` have the same shape and values.
fn same_values(a: &ModelTensor, b: &ModelTensor) -> Result<bool> {
    if a.shape != b.shape {
        return Ok(false);
    }
    let (rows, cols) = (a.rows(), a.cols().max(1));
    let step = (COMPARE_ELEMS / cols).max(1);
    let (ra, rb) = (a.open()?, b.open()?);
    let (mut xa, mut xb) = (Vec::new(), Vec::new());
    for start in (0..rows).step_by(step) {
        let range = start..(start + step).min(rows);
        xa.resize(range.len() * cols, 0.0);
        xb.resize(range.len() * cols, 0.0);
        ra.read_rows(range.clone(), &mut xa)?;
        rb.read_rows(range, &mut xb)?;
        if xa.iter().zip(&xb).any(|(x, y)| x.to_bits() != y.to_bits()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The alpha that makes llama.cpp's `alpha / r` equal PEFT's scale for rank `r`: alpha itself,
/// or `alpha·√r` with rsLoRA.
fn needed_alpha(c: &LoraConfig, r: usize, alpha: f64) -> f64 {
    if c.use_rslora {
        alpha * (r as f64).sqrt()
    } else {
        alpha
    }
}

/// The alpha to write: the one most pairs need (ties go to the config's own `r`/`lora_alpha`,
/// then to the first).
fn choose_alpha(c: &LoraConfig, pairs: &[&LoraPair]) -> f64 {
    let default = needed_alpha(c, c.r, c.alpha);
    let mut counts: Vec<(f64, usize)> = Vec::new();
    for p in pairs {
        let e = needed_alpha(c, p.rank, p.alpha);
        match counts.iter_mut().find(|(v, _)| *v == e) {
            Some((_, n)) => *n += 1,
            None => counts.push((e, 1)),
        }
    }
    let most = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let tied: Vec<f64> = counts
        .iter()
        .filter(|(_, n)| *n == most)
        .map(|(e, _)| *e)
        .collect();
    if tied.contains(&default) || tied.is_empty() {
        default
    } else {
        tied[0]
    }
}

impl LoraGgufPlan {
    /// Plans `types` for `adapter` on `base`, whose LoRA pairs are those of the stream `tensors`.
    /// Refuses what a GGUF LoRA adapter cannot express: DoRA, whole trained weights, Conv1D
    /// (`fan_in_fan_out`) deltas, and deltas on weights llama.cpp's model does not have.
    pub fn new(
        base: &BaseModel,
        adapter: &Adapter,
        tensors: &[StreamTensor],
        types: &[QuantMix],
    ) -> Result<Self> {
        if let Some(ty) = types.iter().find(|t| !supported(**t)) {
            return Err(Error::usage(format!(
                "a GGUF LoRA adapter cannot be {}: convert_lora_to_gguf.py writes f32, f16, bf16 or q8_0",
                &ty.name().to_ascii_lowercase()
            )));
        }
        let dir = adapter.dir.display();
        if adapter.config.use_dora {
            return Err(Error::usage(format!(
                "{dir}: DoRA adapters have no GGUF LoRA form (llama.cpp applies plain low-rank deltas, \
                 and the magnitude vectors rescale whole merged rows); export a merged GGUF instead (--to gguf:f16)"
            )));
        }
        if adapter.config.fan_in_fan_out {
            return Err(Error::usage(format!(
                "{dir}: fan_in_fan_out adapters target Conv1D weights, which no architecture with GGUF \
                 support here has; export a merged output instead"
            )));
        }
        refuse_replacements(base, adapter, tensors)?;
        let arch = GgufArch::new(&base.config, base.dtype(), base.dir.as_ref())?;
        // The converter reads the adapter file in data order and writes a pair where it first
        // meets either of its tensors.
        let mut stream: Vec<(&StreamTensor, &LoraPair)> = tensors
            .iter()
            .filter_map(|t| Some((t, t.lora.as_ref()?)))
            .collect();
        stream.sort_by_key(|(_, p)| p.a.bytes.start.min(p.b.bytes.start));
        let all: Vec<&LoraPair> = stream.iter().map(|(_, p)| *p).collect();
        let alpha = choose_alpha(&adapter.config, &all);
        // llama.cpp reads the alpha as f32: the factors make up for that rounding too.
        let written_alpha = alpha as f32;
        let mut pairs = Vec::with_capacity(stream.len());
        for (t, p) in stream {
            let base_shape = &t.source.shape;
            if t.shape != *base_shape {
                return Err(Error::tensor(
                    &adapter.weights.file.path,
                    &p.module,
                    format!("the LoRA delta resizes `{}` from {base_shape:?} to {:?}; a GGUF LoRA adapter must fit the base GGUF, so export a merged GGUF instead (--to gguf:f16)", t.name, t.shape),
                ));
            }
            let conversion = arch.convert(&t.name, base_shape)?.ok_or_else(|| {
                Error::tensor(
                    &adapter.weights.file.path,
                    &p.module,
                    format!(
                        "llama.cpp's {} model has no `{}` (its output head is the embedding), so this LoRA cannot be applied there; export a merged GGUF instead (--to gguf:f16)",
                        arch.arch().gguf_name(),
                        t.name
                    ),
                )
            })?;
            let e = needed_alpha(&adapter.config, p.rank, p.alpha);
            let b_factor = if e == alpha {
                1.0
            } else {
                e / written_alpha as f64
            };
            let rank = p.rank as u64;
            let (a_ne, b_ne) = if p.embedding {
                (
                    vec![rank, conversion.rows as u64],
                    vec![rank, p.b.shape[0] as u64],
                )
            } else {
                (
                    vec![p.a.shape[1] as u64, rank],
                    vec![rank, p.b.shape[0] as u64],
                )
            };
            let permutation = match conversion.transform {
                t @ ValueTransform::InterleaveRotaryHalves { .. } => Some(t),
                // Gemma's +1 on norms moves no rows, and LoRA never targets a norm.
                _ => None,
            };
            pairs.push(PlannedPair {
                pair: p.clone(),
                name: conversion.name,
                permutation,
                b_factor,
                a_ne,
                b_ne,
            });
        }
        let scaling = scaling_note(adapter, &pairs, alpha, written_alpha);
        // gguf-py counts a pair as lora_b's rows times lora_a's innermost extent, negated to say
        // "adapter"; the name heuristics use it.
        let total: u64 = pairs.iter().map(|p| p.b_ne[1] * p.a_ne[0]).sum();
        let general = GeneralMetadata::read(adapter.dir.as_ref(), -(total as i64))?;
        let mut m = Metadata::new();
        m.set(
            "general.architecture",
            Value::String(arch.arch().gguf_name().into()),
        );
        m.set("general.type", Value::String("adapter".into()));
        m.set("adapter.type", Value::String("lora".into()));
        m.extend(general.metadata(QUANTIZED_BY));
        m.set("adapter.lora.alpha", Value::F32(written_alpha));
        if let Some(text) = &scaling {
            m.set(SCALING_KEY, Value::String(text.clone()));
        }
        m.set(
            "general.quantization_version",
            Value::U32(QUANTIZATION_VERSION),
        );
        let mut files = Vec::with_capacity(types.len());
        for &ty in types {
            let specs: Vec<TensorSpec> = pairs
                .iter()
                .flat_map(|p| [("lora_a", &p.a_ne), ("lora_b", &p.b_ne)].map(|(s, ne)| (p, s, ne)))
                .map(|(p, suffix, ne)| TensorSpec {
                    name: format!("{}.{suffix}", p.name),
                    ty: tensor_type(ty, ne),
                    ne: ne.clone(),
                })
                .collect();
            let layout = GgufLayout::new(&m, &specs)
                .map_err(|e| Error::usage(format!("cannot lay out {}: {e}", cli_name(ty))))?;
            // The converter's default name marks adapters after the type: `<name>-F16-LoRA`.
            let name = format!(
                "{}-LoRA.gguf",
                general.file_stem(&ty.name().to_ascii_lowercase())
            );
            files.push((ty, name, layout));
        }
        let note = scaling.map(|_| {
            let scaled = pairs.iter().filter(|p| p.b_factor != 1.0).count();
            let mut note = format!(
                "adapter.lora.alpha = {written_alpha} (lora_alpha {}) so that llama.cpp's alpha/r gives PEFT's scale",
                adapter.config.alpha
            );
            if scaled > 0 {
                let _ = write!(note, "; lora_b of {scaled} module(s) with another scale pre-multiplied to match");
            }
            let _ = write!(note, " (details in the file's `{SCALING_KEY}`)");
            note
        });
        Ok(LoraGgufPlan { pairs, files, note })
    }

    /// The file name of output `ty`.
    pub fn file_name(&self, ty: QuantMix) -> Option<&str> {
        self.files
            .iter()
            .find(|(t, ..)| *t == ty)
            .map(|(_, name, _)| name.as_str())
    }
}

/// The type of one LoRA tensor in a file of type `ty`: rows that are not whole Q8_0 blocks
/// (`lora_b`'s rows are rank long) fall back to F16, as in the converter.
fn tensor_type(ty: QuantMix, ne: &[u64]) -> TensorType {
    let t = ggml_tensor_type(ty.default_type());
    if t.data_bytes(ne).is_none() {
        TensorType::F16
    } else {
        t
    }
}

/// What was done to express PEFT's scales with llama.cpp's `alpha / r`, or `None` when the
/// adapter's own `lora_alpha` does it (as the converter assumes).
fn scaling_note(
    adapter: &Adapter,
    pairs: &[PlannedPair],
    alpha: f64,
    written: f32,
) -> Option<String> {
    let c = &adapter.config;
    let scaled: Vec<&PlannedPair> = pairs.iter().filter(|p| p.b_factor != 1.0).collect();
    if written as f64 == c.alpha && scaled.is_empty() {
        return None;
    }
    let rule = if c.use_rslora {
        "alpha/sqrt(r) (rsLoRA)"
    } else {
        "alpha/r"
    };
    let mut note = format!(
        "llama.cpp scales by adapter.lora.alpha/r; PEFT scales by {rule}. adapter.lora.alpha = {written} \
         (lora_alpha {}) gives PEFT's scale for modules with scale·r = {alpha}",
        c.alpha
    );
    if !scaled.is_empty() {
        note.push_str(
            "; the others have lora_b multiplied by a factor before rounding to the file's type:",
        );
        for p in scaled {
            let _ = write!(
                note,
                " {} x{} (r {}, scale {});",
                p.name, p.b_factor, p.pair.rank, p.pair.scale
            );
        }
        note.pop();
    }
    Some(note)
}

/// Writes output `ty` of `plan` for `adapter` into `out`.
pub fn write_lora_gguf(
    out: &dyn OutputDir,
    adapter: &Adapter,
    plan: &LoraGgufPlan,
    ty: QuantMix,
) -> Result<()> {
    let (_, name, layout) = plan
        .files
        .iter()
        .find(|(t, ..)| *t == ty)
        .ok_or_else(|| Error::usage(format!("internal: {} was not planned", cli_name(ty))))?;
    let io = |e| Error::io(name, e);
    let mut file = GgufWriter::new(out.create(name)?, layout.clone()).map_err(io)?;
    let mut bytes = Vec::new();
    for p in &plan.pairs {
        let (a, b) = p.values(adapter)?;
        for (values, suffix, ne) in [(a, "lora_a", &p.a_ne), (b, "lora_b", &p.b_ne)] {
            let t = tensor_type(ty, ne);
            let unstorable = values.iter().find(|v| {
                !v.is_finite() || (t == TensorType::F16 && half::f16::from_f32(**v).is_infinite())
            });
            if let Some(v) = unstorable {
                return Err(Error::tensor(
                    &adapter.weights.file.path,
                    &p.pair.module,
                    format!("{}.{suffix} holds {v}, which {t} cannot store; the adapter may be broken (or try lora-gguf:f32)", p.name),
                ));
            }
            bytes.clear();
            encode_values(
                GgmlType::from_id(t.id()).expect("LoRA tensor types are ggml types"),
                &values,
                &mut bytes,
            );
            file.write(&bytes).map_err(io)?;
        }
    }
    file.finish().map_err(io)?.commit()
}
