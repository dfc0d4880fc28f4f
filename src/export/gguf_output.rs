//! The `gguf:<type>` outputs: one GGUF file per type at the top level of the output folder,
//! written as llama.cpp's `convert_hf_to_gguf.py` writes it (same metadata in the same order,
//! same tensor names, order, types and bytes), from the merged f32 stream in one pass.
//!
//! The layout of every file is computed when the export is planned ([`GgufPlan`]); the writer
//! then emits the header, the tensors the converter computes (rope factors) and each streamed
//! tensor's chunks in order, so the sink is never sought.

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
use crate::quant::ggml::GgmlType;
use general::GeneralMetadata;

/// Metadata keys that record who wrote the file rather than what it holds: the only keys in
/// which our files differ from the converter's.
pub const PROVENANCE_KEYS: [&str; 1] = ["general.quantized_by"];

/// Our `general.quantized_by`.
pub(crate) const QUANTIZED_BY: &str = "llm-export";

/// `GGML_QNT_VERSION`, written as `general.quantization_version`.
pub(crate) const QUANTIZATION_VERSION: u32 = 2;

/// The file types of `--to gguf:<type>` (the converter's `--outtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GgufType {
    /// Everything in f32.
    F32,
    /// Matrices in f16, the rest in f32.
    F16,
    /// Matrices in bf16, the rest in f32.
    Bf16,
    /// Matrices in Q8_0 (f16 where rows are not whole blocks), the rest in f32.
    Q8_0,
}

impl GgufType {
    /// Every type, in the order they are listed to users.
    pub const ALL: [GgufType; 4] = [GgufType::F32, GgufType::F16, GgufType::Bf16, GgufType::Q8_0];

    /// Parses the lower-case name after `gguf:` (`f32`, `f16`, `bf16`, `q8_0`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.outtype() == name)
    }

    /// The name on the command line, `gguf:f16`.
    pub fn cli_name(self) -> &'static str {
        match self {
            GgufType::F32 => "gguf:f32",
            GgufType::F16 => "gguf:f16",
            GgufType::Bf16 => "gguf:bf16",
            GgufType::Q8_0 => "gguf:q8_0",
        }
    }

    /// The converter's `--outtype` name (`f16`), lower case.
    pub fn outtype(self) -> &'static str {
        &self.cli_name()["gguf:".len()..]
    }

    /// `general.file_type` (`llama_ftype`).
    pub fn file_type(self) -> u32 {
        match self {
            GgufType::F32 => 0,
            GgufType::F16 => 1,
            GgufType::Q8_0 => 7,
            GgufType::Bf16 => 32,
        }
    }

    /// The type of the tensors it quantizes.
    pub(crate) fn tensor_type(self) -> TensorType {
        match self {
            GgufType::F32 => TensorType::F32,
            GgufType::F16 => TensorType::F16,
            GgufType::Bf16 => TensorType::BF16,
            GgufType::Q8_0 => TensorType::Q8_0,
        }
    }
}

/// A streamed tensor's place in the GGUF files.
#[derive(Debug, Clone)]
struct PlannedTensor {
    conversion: TensorConversion,
    /// GGUF extents (innermost first), rows as written.
    ne: Vec<u64>,
}

impl PlannedTensor {
    /// The element type in a file of type `ty`: norms and 1-D tensors stay F32, and rows that are
    /// not whole Q8_0 blocks fall back to F16 as in the converter.
    fn tensor_type(&self, ty: GgufType) -> TensorType {
        if self.conversion.keep_f32 {
            return TensorType::F32;
        }
        let t = ty.tensor_type();
        if t.data_bytes(&self.ne).is_none() {
            TensorType::F16
        } else {
            t
        }
    }
}

/// Everything about the GGUF outputs of an export that is known before streaming: one layout
/// and file name per requested type.
pub struct GgufPlan {
    /// Per stream tensor: where it goes, or `None` when the converter drops it.
    tensors: Vec<Option<PlannedTensor>>,
    computed: Vec<ComputedTensor>,
    files: Vec<(GgufType, String, GgufLayout)>,
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

impl GgufPlan {
    /// Plans `types` for the model in `base_dir` whose merged `config` and stream `tensors` are
    /// given; `tokenizer_dir` holds the tokenizer to ship (the adapter's when it has one).
    /// Fails for unsupported architectures and anything the converter would refuse.
    pub fn new(
        base_dir: &dyn InputDir,
        tokenizer_dir: &dyn InputDir,
        config: &HfConfig,
        tensors: &[StreamTensor],
        source_dtype: FloatType,
        types: &[GgufType],
    ) -> Result<Self> {
        let arch = GgufArch::new(config, source_dtype, tokenizer_dir)?;
        let planned = tensors
            .iter()
            .map(|t| {
                let Some(conversion) = arch.convert(&t.name, &t.shape)? else {
                    return Ok(None);
                };
                let mut shape = t.shape.clone();
                if let Some(rows) = shape.first_mut() {
                    *rows = conversion.rows;
                }
                let ne = shape.iter().rev().map(|&d| d as u64).collect();
                Ok(Some(PlannedTensor { conversion, ne }))
            })
            .collect::<Result<Vec<_>>>()?;
        let computed = arch.computed_tensors()?;
        let total_params: u64 = computed.iter().map(|c| c.values.len() as u64).sum::<u64>()
            + planned
                .iter()
                .flatten()
                .map(|t| t.ne.iter().product::<u64>())
                .sum::<u64>();
        let general = GeneralMetadata::read(base_dir, total_params as i64)?;
        let tokenizer = tokenizer_metadata(tokenizer_dir, config)?;
        let mut files = Vec::with_capacity(types.len());
        for &ty in types {
            let mut m = Metadata::new();
            m.set(
                "general.architecture",
                Value::String(arch.arch().gguf_name().into()),
            );
            m.extend(arch.tensor_metadata()?);
            m.set("general.type", Value::String("model".into()));
            m.extend(general.metadata(QUANTIZED_BY));
            m.extend(arch.hparam_metadata(ty.file_type())?);
            m.set(
                "general.quantization_version",
                Value::U32(QUANTIZATION_VERSION),
            );
            m.extend(tokenizer.clone());
            let specs: Vec<TensorSpec> = computed
                .iter()
                .map(|c| TensorSpec {
                    name: c.name.into(),
                    ty: TensorType::F32,
                    ne: vec![c.values.len() as u64],
                })
                .chain(planned.iter().flatten().map(|t| TensorSpec {
                    name: t.conversion.name.clone(),
                    ty: t.tensor_type(ty),
                    ne: t.ne.clone(),
                }))
                .collect();
            let layout = GgufLayout::new(&m, &specs)
                .map_err(|e| Error::usage(format!("cannot lay out {}: {e}", ty.cli_name())))?;
            let name = format!("{}.gguf", general.file_stem(ty.outtype()));
            files.push((ty, name, layout));
        }
        Ok(GgufPlan {
            tensors: planned,
            computed,
            files,
        })
    }

    /// The file name of output `ty` (`<basename>-<size>-<finetune>-<TYPE>.gguf`, the converter's
    /// default naming).
    pub fn file_name(&self, ty: GgufType) -> Option<&str> {
        self.files
            .iter()
            .find(|(t, ..)| *t == ty)
            .map(|(_, name, _)| name.as_str())
    }
}

/// How one streamed tensor is encoded into one file.
struct OutputTensor {
    /// GGUF name, for messages.
    name: String,
    ty: TensorType,
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
    allow_nonfinite: bool,
}

impl GgufOutput {
    /// Creates output `ty` of `plan` in `out` and writes its header and computed tensors.
    pub fn new(
        out: &dyn OutputDir,
        plan: &GgufPlan,
        ty: GgufType,
        allow_nonfinite: bool,
    ) -> Result<Self> {
        let (_, name, layout) =
            plan.files.iter().find(|(t, ..)| *t == ty).ok_or_else(|| {
                Error::usage(format!("internal: {} was not planned", ty.cli_name()))
            })?;
        let io = |e| Error::io(name, e);
        let mut file = GgufWriter::new(out.create(name)?, layout.clone()).map_err(io)?;
        for c in &plan.computed {
            let bytes: Vec<u8> = c.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            file.write(&bytes).map_err(io)?;
        }
        let tensors = plan
            .tensors
            .iter()
            .map(|t| {
                t.as_ref().map(|t| {
                    let one_dimensional = t.ne.len() <= 1;
                    OutputTensor {
                        name: t.conversion.name.clone(),
                        ty: t.tensor_type(ty),
                        transform: t.conversion.transform,
                        rows: t.conversion.rows,
                        // The stream's row: everything but the outermost extent.
                        row_len: if one_dimensional {
                            1
                        } else {
                            t.ne[..t.ne.len() - 1].iter().product::<u64>() as usize
                        },
                        row_group: match t.conversion.transform {
                            ValueTransform::InterleaveRotaryHalves { head_rows }
                                if !one_dimensional =>
                            {
                                head_rows
                            }
                            _ => 1,
                        },
                    }
                })
            })
            .collect();
        Ok(GgufOutput {
            name: name.clone(),
            file,
            tensors,
            allow_nonfinite,
        })
    }
}

impl Writer for GgufOutput {
    fn row_align(&self, t: usize, _tensor: &StreamTensor) -> usize {
        self.tensors[t].as_ref().map_or(1, |o| o.row_group)
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
        let mut values = rows[..keep * cols].to_vec();
        o.transform.apply(&mut values, o.row_len);
        let quantized = !matches!(o.ty, TensorType::F32 | TensorType::F16 | TensorType::BF16);
        if quantized {
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                return Err(Error::tensor(
                    &self.name,
                    &o.name,
                    format!("holds {v}, which {} cannot store", o.ty),
                ));
            }
        }
        if o.ty == TensorType::F16 && !self.allow_nonfinite {
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
        let mut out = Vec::with_capacity(values.len() * 4);
        encode_values(o.ty, &values, &mut out);
        Ok(out)
    }

    fn write(&mut self, _t: usize, chunk: Vec<u8>) -> Result<()> {
        self.file
            .write(&chunk)
            .map_err(|e| Error::io(&self.name, e))
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let name = self.name;
        self.file
            .finish()
            .map_err(|e| Error::io(&name, e))?
            .commit()
    }
}

/// Appends `values` encoded as `ty`, whole blocks for quantized types, which must be finite
/// (checked by the caller). F16 and BF16 round to nearest even, quieting NaNs, as numpy and
/// gguf-py do; block types use llama.cpp's reference quantizers, as the converter does.
pub(crate) fn encode_values(ty: TensorType, values: &[f32], out: &mut Vec<u8>) {
    match ty {
        TensorType::F32 => values.iter().for_each(|v| out.extend(v.to_le_bytes())),
        TensorType::F16 => values
            .iter()
            .for_each(|v| out.extend(half::f16::from_f32(*v).to_le_bytes())),
        TensorType::BF16 => values
            .iter()
            .for_each(|v| out.extend(half::bf16::from_f32(*v).to_le_bytes())),
        _ => {
            let ggml = GgmlType::from_id(ty.id()).expect("GGUF outputs only plan ggml types");
            let start = out.len();
            let bytes = ggml
                .row_bytes(values.len())
                .expect("chunks hold whole rows of whole blocks");
            out.resize(start + bytes, 0);
            ggml.quantize_row(values, &mut out[start..]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse() {
        assert_eq!(GgufType::parse("q8_0"), Some(GgufType::Q8_0));
        assert_eq!(GgufType::parse("bf16"), Some(GgufType::Bf16));
        assert_eq!(GgufType::parse("q4_k_m"), None);
    }

    #[test]
    fn q8_0_rounds_half_away_from_zero() {
        let mut block = [0f32; 32];
        block[0] = 127.0;
        block[1] = -63.5;
        block[2] = 0.5;
        let mut out = Vec::new();
        encode_values(TensorType::Q8_0, &block, &mut out);
        assert_eq!(out.len(), 34);
        assert_eq!(&out[..2], &half::f16::from_f32(1.0).to_le_bytes());
        assert_eq!(out[2] as i8, 127);
        assert_eq!(out[3] as i8, -64);
        assert_eq!(out[4] as i8, 1);
        let mut zeros = Vec::new();
        encode_values(TensorType::Q8_0, &[0.0; 32], &mut zeros);
        assert!(zeros.iter().all(|b| *b == 0));
    }

    #[test]
    fn bf16_rounds_to_nearest_even_and_quiets_nan() {
        let mut out = Vec::new();
        let signaling_nan = f32::from_bits(0x7f80_0001);
        encode_values(
            TensorType::BF16,
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
