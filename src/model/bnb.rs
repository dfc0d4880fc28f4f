//! bitsandbytes 4-bit weights in their serialized safetensors form: the packed codes tensor
//! `X.weight` plus `X.weight.absmax`, `X.weight.quant_map`, optional `nested_absmax` /
//! `nested_quant_map` (double quantization) and `X.weight.quant_state.bitsandbytes__nf4|fp4`.

use super::config::FloatType;
use super::tensor::DenseTensor;
use crate::error::{Error, Result};
use crate::quant::bnb4::{self, QuantState};
use std::collections::HashMap;
use std::ops::Range;

const STATE_SUFFIXES: [&str; 2] = [
    ".quant_state.bitsandbytes__nf4",
    ".quant_state.bitsandbytes__fp4",
];

/// One 4-bit weight and the tensors that describe its quantization.
#[derive(Clone)]
pub struct Bnb4Weight {
    /// The weight's name (`X.weight`).
    pub name: String,
    /// The parsed quantization state (logical shape, blocksize, dtype, nesting).
    pub state: QuantState,
    /// The dtype dequantization produces.
    pub dtype: FloatType,
    /// Packed codes, two per byte.
    pub codes: DenseTensor,
    /// Per-block scale: f32, or u8 codes when double-quantized.
    pub absmax: DenseTensor,
    /// The 16-entry code book.
    pub quant_map: DenseTensor,
    /// `(nested_absmax, nested_quant_map)` when double-quantized.
    pub nested: Option<(DenseTensor, DenseTensor)>,
}

/// A checkpoint tensor after grouping: plain, or the head of a 4-bit group.
pub enum Grouped {
    /// Not part of a 4-bit weight.
    Dense(DenseTensor),
    /// A whole 4-bit weight.
    Bnb4(Box<Bnb4Weight>),
}

fn read_f32s(t: &DenseTensor) -> Result<Vec<f32>> {
    let bytes = t.file.read(&t.raw)?;
    let mut out = vec![0f32; t.raw.numel()];
    super::tensor::decode_floats(t.raw.dtype, &bytes, &mut out)
        .map_err(|m| Error::tensor(&t.file.file.path, &t.raw.name, m))?;
    Ok(out)
}

/// Folds every 4-bit group into one [`Grouped::Bnb4`] placed where its codes tensor was;
/// everything else passes through in order.
pub fn group_bnb4(tensors: Vec<DenseTensor>) -> Result<Vec<Grouped>> {
    let by_name: HashMap<&str, usize> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (t.raw.name.as_str(), i))
        .collect();
    let mut groups: HashMap<usize, Bnb4Weight> = HashMap::new();
    let mut consumed = vec![false; tensors.len()];
    for (i, t) in tensors.iter().enumerate() {
        let Some(weight) = STATE_SUFFIXES
            .iter()
            .find_map(|s| t.raw.name.strip_suffix(s))
        else {
            continue;
        };
        let path = &t.file.file.path;
        let part = |suffix: &str| -> Option<usize> {
            by_name.get(format!("{weight}{suffix}").as_str()).copied()
        };
        let need = |suffix: &str| -> Result<usize> {
            part(suffix).ok_or_else(|| {
                Error::tensor(
                    path,
                    format!("{weight}{suffix}"),
                    "missing: this 4-bit weight's quantization tensors are incomplete",
                )
            })
        };
        let state = QuantState::from_json_bytes(&t.file.read(&t.raw)?)
            .map_err(|m| Error::tensor(path, &t.raw.name, m))?;
        let dtype = FloatType::parse(&state.dtype).ok_or_else(|| {
            Error::tensor(
                path,
                &t.raw.name,
                format!("unsupported dequantization dtype `{}`", state.dtype),
            )
        })?;
        let codes = need("")?;
        let absmax = need(".absmax")?;
        let quant_map = need(".quant_map")?;
        let nested = match (part(".nested_absmax"), part(".nested_quant_map")) {
            (Some(a), Some(m)) => Some((a, m)),
            (None, None) => None,
            _ => return Err(Error::tensor(path, weight, "double-quantization tensors are incomplete (need nested_absmax and nested_quant_map)")),
        };
        let numel: usize = state.shape.iter().product();
        if tensors[codes].raw.numel() * 2 != numel.next_multiple_of(2) {
            return Err(Error::tensor(
                path,
                weight,
                format!(
                    "{} packed codes cannot hold shape {:?}",
                    tensors[codes].raw.numel(),
                    state.shape
                ),
            ));
        }
        for idx in [
            Some(i),
            Some(codes),
            Some(absmax),
            Some(quant_map),
            nested.map(|n| n.0),
            nested.map(|n| n.1),
        ]
        .into_iter()
        .flatten()
        {
            consumed[idx] = true;
        }
        groups.insert(
            codes,
            Bnb4Weight {
                name: weight.to_string(),
                state,
                dtype,
                codes: tensors[codes].clone(),
                absmax: tensors[absmax].clone(),
                quant_map: tensors[quant_map].clone(),
                nested: nested.map(|(a, m)| (tensors[a].clone(), tensors[m].clone())),
            },
        );
    }
    Ok(tensors
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| match groups.remove(&i) {
            Some(g) => Some(Grouped::Bnb4(Box::new(g))),
            None if consumed[i] => None,
            None => Some(Grouped::Dense(t)),
        })
        .collect())
}

impl Bnb4Weight {
    /// The per-block absmax as f32, un-nesting double quantization.
    pub fn absmax(&self) -> Result<Vec<f32>> {
        let path = &self.absmax.file.file.path;
        match &self.nested {
            None => read_f32s(&self.absmax),
            Some((nested_absmax, nested_map)) => {
                let codes = self.absmax.file.read(&self.absmax.raw)?;
                bnb4::unnest_absmax(
                    &codes,
                    &read_f32s(nested_absmax)?,
                    &read_f32s(nested_map)?,
                    &self.state,
                )
                .map_err(|m| Error::tensor(path, &self.absmax.raw.name, m))
            }
        }
    }

    /// Dequantizes elements `elems` (row-major) into `out`, exactly as bitsandbytes does.
    pub fn dequantize(&self, absmax: &[f32], elems: Range<usize>, out: &mut [f32]) -> Result<()> {
        let quant_map = read_f32s(&self.quant_map)?;
        // Codes are two per byte; read the bytes covering the range.
        let bytes = elems.start / 2..elems.end.div_ceil(2);
        let mut packed = vec![0u8; bytes.len()];
        self.codes
            .file
            .file
            .read_at(self.codes.raw.bytes.start + bytes.start as u64, &mut packed)?;
        bnb4::dequantize(
            &packed,
            elems.start % 2,
            &quant_map,
            absmax,
            self.state.blocksize,
            elems.start,
            self.dtype,
            out,
        )
        .map_err(|m| Error::tensor(&self.codes.file.file.path, &self.name, m))
    }
}
