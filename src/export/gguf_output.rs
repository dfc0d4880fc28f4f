//! The `gguf:<type>` outputs: one GGUF file per quantization mix at the top level of the output
//! folder, each as llama.cpp's own tools write it for the same model:
//! - `f32`, `f16`, `bf16` and `q8_0`, which `convert_hf_to_gguf.py` writes itself (`--outtype`),
//!   as the converter writes them: same metadata in the same order, same tensor names, order,
//!   types and bytes;
//! - every other mix (`q4_k_m`, `q6_k`...) as `llama-quantize` writes it from the converter's
//!   output in the checkpoint's dtype: types from its mix rules, tensors in its order
//!   (`weights_map`: by layer, then name), `general.quantization_version` and
//!   `general.file_type` moved to the end of the metadata.
//!
//! From base + adapter, the merged f32 values are rounded once, straight into each file's type:
//! more faithful than going through a 16-bit checkpoint. For `bf16` that is exactly what the
//! tools make of the bf16 `merged_16bit` output; the other types differ from that two-step path
//! only where the second rounding would have moved a value.
//!
//! One pass feeds every file, so they share one tensor order: llama-quantize's when any file is
//! a llama-quantize mix, else the converter's. The layout of every file is computed when the
//! export is planned ([`GgufPlan`]); the writer then emits the header and the tensors in file
//! order, computed ones (rope factors) when their turn comes, so the sink is never sought.

pub(crate) mod general;

use super::plan::StreamTensor;
use super::writer::Writer;
use crate::error::{Error, Result};
use crate::formats::gguf::{
    Array, GgufLayout, GgufWriter, Metadata, TensorSpec, TensorType, Value,
};
use crate::io::{InputDir, OutputDir, OutputFile};
use crate::model::arch::{ComputedTensor, GgufArch, TensorConversion, ValueTransform};
use crate::model::vocab::{load_vocab, VocabValue};
use crate::model::{FloatType, HfConfig};
pub use crate::quant::ggml::mix::QuantMix;
use crate::quant::ggml::mix::{compare_tensor_names, plan_tensor_types, MixModel, TensorDesc};
use crate::quant::ggml::GgmlType;
use general::GeneralMetadata;
use std::borrow::Cow;
use std::cmp::Ordering;

/// Metadata keys that record who wrote the file rather than what it holds: the only keys in
/// which our files differ from llama.cpp's.
pub const PROVENANCE_KEYS: [&str; 1] = ["general.quantized_by"];

/// Our `general.quantized_by`.
pub(crate) const QUANTIZED_BY: &str = "llm-export";

/// `GGML_QNT_VERSION`, written as `general.quantization_version`.
pub(crate) const QUANTIZATION_VERSION: u32 = 2;

/// The keys llama-quantize sets after copying its input's metadata, which moves them last.
const QUANTIZE_KEYS: [&str; 2] = ["general.quantization_version", "general.file_type"];

/// Whether `convert_hf_to_gguf.py` writes files of this mix itself (`--outtype`); the others
/// exist only as llama-quantize's output.
pub fn written_by_converter(mix: QuantMix) -> bool {
    matches!(
        mix,
        QuantMix::F32 | QuantMix::F16 | QuantMix::BF16 | QuantMix::Q8_0
    )
}

/// The name of the output on the command line, `gguf:q4_k_m`.
pub fn cli_name(mix: QuantMix) -> String {
    format!("gguf:{}", mix.name().to_ascii_lowercase())
}

/// Parses the name after `gguf:` in any case (`q4_k_m`, `Q8_0`, and llama-quantize's aliases
/// `q3_k`/`q4_k`/`q5_k` for the `_m` mixes); numeric file types are not names.
pub fn parse_mix(name: &str) -> Option<QuantMix> {
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    QuantMix::parse(name)
}

/// The mix of a float type: the converter's `--outtype` for a checkpoint of that dtype.
fn float_mix(dtype: FloatType) -> QuantMix {
    match dtype {
        FloatType::F32 => QuantMix::F32,
        FloatType::F16 => QuantMix::F16,
        FloatType::Bf16 => QuantMix::BF16,
    }
}

pub(crate) fn tensor_type(ty: GgmlType) -> TensorType {
    TensorType::from_id(ty.id()).expect("every ggml type is a GGUF tensor type")
}

/// A streamed tensor's place in the GGUF files.
#[derive(Debug, Clone)]
struct PlannedTensor {
    conversion: TensorConversion,
    /// GGUF extents (innermost first), rows as written.
    ne: Vec<u64>,
}

/// A tensor of a GGUF file, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileTensor {
    /// Entry of [`GgufPlan::computed`].
    Computed(usize),
    /// Stream tensor index.
    Streamed(usize),
}

/// One planned file.
struct PlannedFile {
    mix: QuantMix,
    name: String,
    layout: GgufLayout,
    /// Element type per entry of [`GgufPlan::order`].
    types: Vec<GgmlType>,
}

/// Everything about the GGUF outputs of an export that is known before streaming: the tensor
/// order all files share, and one layout and file name per requested mix.
pub struct GgufPlan {
    /// Per stream tensor: where it goes, or `None` when the converter drops it.
    tensors: Vec<Option<PlannedTensor>>,
    computed: Vec<ComputedTensor>,
    order: Vec<FileTensor>,
    files: Vec<PlannedFile>,
}

/// Tokenizer metadata (`tokenizer.ggml.*`, `tokenizer.chat_template*`) in the converter's order.
fn tokenizer_metadata(dir: &dyn InputDir, config: &HfConfig) -> Result<Metadata> {
    let vocab = load_vocab(dir, config)?;
    let mut m = Metadata::new();
    for (key, v) in vocab.kvs() {
        let value = match v {
            VocabValue::Str(s) => Value::String(s.into()),
            VocabValue::StrArray(a) => {
                Value::Array(Array::String(a.into_iter().map(String::from).collect()))
            }
            VocabValue::F32Array(a) => Value::Array(Array::F32(a.to_vec())),
            VocabValue::I32Array(a) => Value::Array(Array::I32(a.to_vec())),
            VocabValue::U32(x) => Value::U32(x),
            VocabValue::Bool(b) => Value::Bool(b),
        };
        m.set(key, value);
    }
    Ok(m)
}

/// The model facts llama-quantize's mix rules read, from the hyperparameter metadata (with
/// llama.cpp's defaults: KV heads as many as heads, no experts).
fn mix_model(arch: &str, hparams: &Metadata) -> MixModel {
    let u32_of = |key: &str| match hparams.get(&format!("{arch}.{key}")) {
        Some(Value::U32(v)) => Some(*v),
        _ => None,
    };
    let n_head = u32_of("attention.head_count").unwrap_or(0);
    MixModel {
        arch: arch.into(),
        n_layer: u32_of("block_count").unwrap_or(0),
        n_head,
        n_head_kv: u32_of("attention.head_count_kv").unwrap_or(n_head),
        n_expert: u32_of("expert_count").unwrap_or(0),
    }
}

/// llama-quantize's order of GGUF names, with tensors the converter drops last.
fn quantize_order(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => compare_tensor_names(a, b),
        (a, b) => b.is_some().cmp(&a.is_some()),
    }
}

impl GgufPlan {
    /// Plans `mixes` for the model in `base_dir` whose merged `config` and stream `tensors` are
    /// given; `tokenizer_dir` holds the tokenizer to ship (the adapter's when it has one).
    /// `source_dtype` is the checkpoint's float type and `merged_dtype` that of the merged
    /// checkpoint whose values the files hold. When a llama-quantize mix is requested,
    /// `tensors` is sorted into llama-quantize's order, which every output then follows.
    /// Fails for unsupported architectures and anything the tools would refuse.
    pub fn new(
        base_dir: &dyn InputDir,
        tokenizer_dir: &dyn InputDir,
        config: &HfConfig,
        tensors: &mut [StreamTensor],
        source_dtype: FloatType,
        merged_dtype: FloatType,
        mixes: &[QuantMix],
    ) -> Result<Self> {
        let arch = GgufArch::new(config, source_dtype, tokenizer_dir)?;
        let mut conversions = tensors
            .iter()
            .map(|t| arch.convert(&t.name, &t.shape))
            .collect::<Result<Vec<_>>>()?;
        let llama_quantize_order = mixes.iter().any(|m| !written_by_converter(*m));
        if llama_quantize_order {
            let mut paired: Vec<(StreamTensor, Option<TensorConversion>)> =
                tensors.iter().cloned().zip(conversions.drain(..)).collect();
            paired.sort_by(|(_, a), (_, b)| {
                quantize_order(a.as_ref().map(|c| &*c.name), b.as_ref().map(|c| &*c.name))
            });
            for (slot, (t, c)) in tensors.iter_mut().zip(paired) {
                *slot = t;
                conversions.push(c);
            }
        }
        let planned: Vec<Option<PlannedTensor>> = tensors
            .iter()
            .zip(conversions)
            .map(|(t, conversion)| {
                let conversion = conversion?;
                let mut shape = t.shape.clone();
                if let Some(rows) = shape.first_mut() {
                    *rows = conversion.rows;
                }
                let ne = shape.iter().rev().map(|&d| d as u64).collect();
                Some(PlannedTensor { conversion, ne })
            })
            .collect();
        let computed = arch.computed_tensors()?;
        let mut order: Vec<FileTensor> = (0..computed.len())
            .map(FileTensor::Computed)
            .chain(
                (0..planned.len())
                    .filter(|&i| planned[i].is_some())
                    .map(FileTensor::Streamed),
            )
            .collect();
        let name_of = |f: &FileTensor| -> &str {
            match *f {
                FileTensor::Computed(i) => computed[i].name,
                FileTensor::Streamed(i) => &planned[i].as_ref().expect("kept").conversion.name,
            }
        };
        if llama_quantize_order {
            // Stable, and the stream is sorted already: only computed tensors move.
            order.sort_by(|a, b| compare_tensor_names(name_of(a), name_of(b)));
        }
        let ne_of = |f: &FileTensor| -> Vec<u64> {
            match *f {
                FileTensor::Computed(i) => vec![computed[i].values.len() as u64],
                FileTensor::Streamed(i) => planned[i].as_ref().expect("kept").ne.clone(),
            }
        };
        let keeps_f32 = |f: &FileTensor| match *f {
            FileTensor::Computed(_) => true,
            FileTensor::Streamed(i) => planned[i].as_ref().expect("kept").conversion.keep_f32,
        };
        let total_params: u64 = order.iter().map(|f| ne_of(f).iter().product::<u64>()).sum();
        let general = GeneralMetadata::read(base_dir, total_params as i64)?;
        let tokenizer = tokenizer_metadata(tokenizer_dir, config)?;
        let intermediate = float_mix(merged_dtype);
        let model = mix_model(
            arch.arch().gguf_name(),
            &arch.hparam_metadata(intermediate.file_type())?,
        );
        let mut files = Vec::with_capacity(mixes.len());
        for &mix in mixes {
            let by_converter = written_by_converter(mix);
            // A llama-quantize mix starts from the converter's file in the merged dtype.
            let converted = if by_converter { mix } else { intermediate };
            let mut m = Metadata::new();
            m.set(
                "general.architecture",
                Value::String(arch.arch().gguf_name().into()),
            );
            m.extend(arch.tensor_metadata()?);
            m.set("general.type", Value::String("model".into()));
            m.extend(general.metadata(QUANTIZED_BY));
            m.extend(arch.hparam_metadata(converted.file_type())?);
            m.set(
                "general.quantization_version",
                Value::U32(QUANTIZATION_VERSION),
            );
            m.extend(tokenizer.clone());
            if !by_converter {
                for key in QUANTIZE_KEYS {
                    m.remove(key);
                }
                m.set(
                    "general.quantization_version",
                    Value::U32(QUANTIZATION_VERSION),
                );
                m.set("general.file_type", Value::U32(mix.file_type()));
            }
            let converter_type = |f: &FileTensor| {
                if keeps_f32(f) {
                    return GgmlType::F32;
                }
                let t = converted.default_type();
                let ne = ne_of(f);
                // The converter falls back to F16 for rows that are not whole Q8_0 blocks.
                if t.row_bytes(ne[0] as usize).is_none() {
                    GgmlType::F16
                } else {
                    t
                }
            };
            let types: Vec<GgmlType> = if by_converter {
                order.iter().map(converter_type).collect()
            } else {
                let nes: Vec<Vec<u64>> = order.iter().map(ne_of).collect();
                let descs: Vec<TensorDesc> = order
                    .iter()
                    .zip(&nes)
                    .map(|(f, ne)| TensorDesc {
                        name: name_of(f),
                        ne,
                        ty: converter_type(f),
                    })
                    .collect();
                plan_tensor_types(mix, &model, &descs)
                    .map_err(|e| Error::usage(format!("cannot plan {}: {e}", cli_name(mix))))?
            };
            let specs: Vec<TensorSpec> = order
                .iter()
                .zip(&types)
                .map(|(f, ty)| TensorSpec {
                    name: name_of(f).into(),
                    ty: tensor_type(*ty),
                    ne: ne_of(f),
                })
                .collect();
            let layout = GgufLayout::new(&m, &specs)
                .map_err(|e| Error::usage(format!("cannot lay out {}: {e}", cli_name(mix))))?;
            let name = format!("{}.gguf", general.file_stem(mix.name()));
            files.push(PlannedFile {
                mix,
                name,
                layout,
                types,
            });
        }
        Ok(GgufPlan {
            tensors: planned,
            computed,
            order,
            files,
        })
    }

    /// The file name of output `mix` (`<basename>-<size>-<finetune>-<MIX>.gguf`, the
    /// converter's default naming, which llama-quantize users follow).
    pub fn file_name(&self, mix: QuantMix) -> Option<&str> {
        self.file(mix).map(|f| f.name.as_str())
    }

    fn file(&self, mix: QuantMix) -> Option<&PlannedFile> {
        self.files.iter().find(|f| f.mix == mix)
    }
}

/// How one streamed tensor is encoded into one file.
struct OutputTensor {
    /// GGUF name, for messages.
    name: String,
    ty: GgmlType,
    transform: ValueTransform,
    /// Rows kept.
    rows: usize,
    /// Values per row as the transform sees them: 1 for a 1-D tensor (its elements are the rows
    /// the rotary permutation moves).
    row_len: usize,
    /// Rows per permutation group, for chunking.
    row_group: usize,
}

/// Writes one GGUF file from the stream.
pub struct GgufOutput {
    name: String,
    file: GgufWriter<Box<dyn OutputFile>>,
    tensors: Vec<Option<OutputTensor>>,
    computed: Vec<ComputedTensor>,
    order: Vec<FileTensor>,
    /// Entries of `order` written or being written.
    next: usize,
    allow_nonfinite: bool,
}

impl GgufOutput {
    /// Creates output `mix` of `plan` in `out` and writes its header.
    pub fn new(
        out: &dyn OutputDir,
        plan: &GgufPlan,
        mix: QuantMix,
        allow_nonfinite: bool,
    ) -> Result<Self> {
        let planned = plan
            .file(mix)
            .ok_or_else(|| Error::usage(format!("internal: {} was not planned", cli_name(mix))))?;
        let name = &planned.name;
        let file = GgufWriter::new(out.create(name)?, planned.layout.clone())
            .map_err(|e| Error::io(name, e))?;
        let mut tensors: Vec<Option<OutputTensor>> = plan.tensors.iter().map(|_| None).collect();
        for (f, ty) in plan.order.iter().zip(&planned.types) {
            let FileTensor::Streamed(i) = *f else {
                continue;
            };
            let t = plan.tensors[i].as_ref().expect("ordered tensors are kept");
            let one_dimensional = t.ne.len() <= 1;
            tensors[i] = Some(OutputTensor {
                name: t.conversion.name.clone(),
                ty: *ty,
                transform: t.conversion.transform,
                rows: t.conversion.rows,
                // The stream's row: everything but the outermost extent.
                row_len: if one_dimensional {
                    1
                } else {
                    t.ne[..t.ne.len() - 1].iter().product::<u64>() as usize
                },
                row_group: match t.conversion.transform {
                    ValueTransform::InterleaveRotaryHalves { head_rows } if !one_dimensional => {
                        head_rows
                    }
                    _ => 1,
                },
            });
        }
        Ok(GgufOutput {
            name: name.clone(),
            file,
            tensors,
            computed: plan.computed.clone(),
            order: plan.order.clone(),
            next: 0,
            allow_nonfinite,
        })
    }

    /// Writes the computed tensors that come before the next streamed one (or all that remain).
    fn write_computed(&mut self) -> Result<()> {
        while let Some(FileTensor::Computed(i)) = self.order.get(self.next) {
            let bytes: Vec<u8> = self.computed[*i]
                .values
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            self.file
                .write(&bytes)
                .map_err(|e| Error::io(&self.name, e))?;
            self.next += 1;
        }
        Ok(())
    }
}

impl Writer for GgufOutput {
    fn row_align(&self, t: usize, _tensor: &StreamTensor) -> usize {
        self.tensors[t].as_ref().map_or(1, |o| o.row_group)
    }

    fn begin_tensor(&mut self, t: usize) -> Result<()> {
        if self.tensors[t].is_none() {
            return Ok(());
        }
        self.write_computed()?;
        if self.order.get(self.next) != Some(&FileTensor::Streamed(t)) {
            return Err(Error::usage(format!(
                "internal: {} receives tensors out of its order",
                self.name
            )));
        }
        self.next += 1;
        Ok(())
    }

    fn encode(&self, t: usize, first_row: usize, rows: &[f32]) -> Result<Vec<u8>> {
        let Some(o) = &self.tensors[t] else {
            return Ok(Vec::new());
        };
        // Rows past `o.rows` are dropped (Gemma 3's embedding rows beyond the tokenizer).
        let cols = if o.row_len == 1 {
            rows.len()
        } else {
            o.row_len
        };
        let chunk_rows = rows.len() / cols.max(1);
        let keep = o.rows.saturating_sub(first_row).min(chunk_rows);
        let values: Cow<[f32]> = if o.transform == ValueTransform::Identity {
            Cow::Borrowed(&rows[..keep * cols])
        } else {
            let mut values = rows[..keep * cols].to_vec();
            o.transform.apply(&mut values, o.row_len);
            Cow::Owned(values)
        };
        // A branch-free pass first (it vectorizes); the position only on failure.
        if o.ty.is_quantized() && !values.iter().fold(true, |ok, v| ok & v.is_finite()) {
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(Error::tensor(
                    &self.name,
                    &o.name,
                    format!(
                        "holds {} at row {}, which {} cannot store (llama.cpp would write garbage); export gguf:f16, gguf:bf16 or gguf:f32 instead",
                        values[i],
                        first_row + i / cols.max(1),
                        o.ty
                    ),
                ));
            }
        }
        if o.ty == GgmlType::F16 && !self.allow_nonfinite {
            let overflow = values
                .iter()
                .find(|v| v.is_finite() && half::f16::from_f32(**v).is_infinite());
            if let Some(v) = overflow {
                return Err(Error::tensor(
                    &self.name,
                    &o.name,
                    format!("value {v} overflows float16; export gguf:bf16 or gguf:f32, or pass --allow-nonfinite"),
                ));
            }
        }
        let mut out = Vec::new();
        encode_values(o.ty, &values, &mut out);
        Ok(out)
    }

    fn write(&mut self, _t: usize, chunk: Vec<u8>) -> Result<()> {
        self.file
            .write(&chunk)
            .map_err(|e| Error::io(&self.name, e))
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.write_computed()?;
        let name = self.name;
        self.file
            .finish()
            .map_err(|e| Error::io(&name, e))?
            .commit()
    }
}

/// Appends `values` encoded as `ty`, whole blocks for quantized types, which must be finite
/// (checked by the caller). F16 and BF16 round to nearest even, quieting NaNs, as numpy and
/// gguf-py do; block types use llama.cpp's reference quantizers, as the tools do.
pub(crate) fn encode_values(ty: GgmlType, values: &[f32], out: &mut Vec<u8>) {
    match ty {
        GgmlType::F32 => each_value(values, out, f32::to_le_bytes),
        GgmlType::F16 => each_value(values, out, |v| half::f16::from_f32(v).to_le_bytes()),
        GgmlType::BF16 => each_value(values, out, |v| half::bf16::from_f32(v).to_le_bytes()),
        _ => {
            let start = out.len();
            let bytes = ty
                .row_bytes(values.len())
                .expect("chunks hold whole rows of whole blocks");
            out.resize(start + bytes, 0);
            ty.quantize_row(values, &mut out[start..]);
        }
    }
}

/// Appends the bytes `encode` gives each value.
fn each_value<const N: usize>(values: &[f32], out: &mut Vec<u8>, encode: impl Fn(f32) -> [u8; N]) {
    out.reserve(values.len() * N);
    for &v in values {
        out.extend_from_slice(&encode(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse() {
        assert_eq!(parse_mix("q8_0"), Some(QuantMix::Q8_0));
        assert_eq!(parse_mix("bf16"), Some(QuantMix::BF16));
        assert_eq!(parse_mix("Q4_K_M"), Some(QuantMix::Q4_K_M));
        assert_eq!(parse_mix("q4_k"), Some(QuantMix::Q4_K_M));
        assert_eq!(parse_mix("15"), None);
        assert_eq!(parse_mix("iq2_xs"), None);
        assert_eq!(cli_name(QuantMix::Q5_K_S), "gguf:q5_k_s");
        for mix in QuantMix::ALL {
            assert_eq!(parse_mix(&cli_name(mix)["gguf:".len()..]), Some(mix));
        }
    }

    #[test]
    fn llama_quantize_order_puts_dropped_tensors_last() {
        let mut names = vec![
            None,
            Some("blk.10.attn_q.weight"),
            Some("token_embd.weight"),
            Some("blk.2.ffn_up.weight"),
            Some("blk.2.attn_q.weight"),
            Some("output_norm.weight"),
        ];
        names.sort_by(|a, b| quantize_order(*a, *b));
        assert_eq!(
            names,
            [
                Some("output_norm.weight"),
                Some("token_embd.weight"),
                Some("blk.2.attn_q.weight"),
                Some("blk.2.ffn_up.weight"),
                Some("blk.10.attn_q.weight"),
                None
            ]
        );
    }

    #[test]
    fn q8_0_rounds_half_away_from_zero() {
        let mut block = [0f32; 32];
        block[0] = 127.0;
        block[1] = -63.5;
        block[2] = 0.5;
        let mut out = Vec::new();
        encode_values(GgmlType::Q8_0, &block, &mut out);
        assert_eq!(out.len(), 34);
        assert_eq!(&out[..2], &half::f16::from_f32(1.0).to_le_bytes());
        assert_eq!(out[2] as i8, 127);
        assert_eq!(out[3] as i8, -64);
        assert_eq!(out[4] as i8, 1);
        let mut zeros = Vec::new();
        encode_values(GgmlType::Q8_0, &[0.0; 32], &mut zeros);
        assert!(zeros.iter().all(|b| *b == 0));
    }

    #[test]
    fn bf16_rounds_to_nearest_even_and_quiets_nan() {
        let mut out = Vec::new();
        let signaling_nan = f32::from_bits(0x7f80_0001);
        encode_values(
            GgmlType::BF16,
            &[
                f32::from_bits(0x3f80_8000),
                f32::from_bits(0x3f81_8000),
                signaling_nan,
            ],
            &mut out,
        );
        let words: Vec<u16> = out
            .chunks(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(words, [0x3f80, 0x3f82, 0x7fc0]);
    }
}
