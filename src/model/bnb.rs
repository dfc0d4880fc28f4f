//! bitsandbytes 4-bit weights in their serialized safetensors form: the packed codes tensor
//! `X.weight` plus `X.weight.absmax`, `X.weight.quant_map`, optional `nested_absmax` /
//! `nested_quant_map` (double quantization) and `X.weight.quant_state.bitsandbytes__nf4|fp4`.

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
    /// The parsed quantization state (code book, blocksize, dtype, logical shape, nesting).
    pub state: QuantState,
    /// Packed codes, two per byte.
    pub codes: DenseTensor,
    /// Per-block scale: f32, or u8 codes when double-quantized.
    pub absmax: DenseTensor,
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
            .map_err(|e| Error::tensor(path, &t.raw.name, e.to_string()))?;
        let codes = need("")?;
        let absmax = need(".absmax")?;
        let quant_map = need(".quant_map")?;
        let nested = match (part(".nested_absmax"), part(".nested_quant_map")) {
            (Some(a), Some(m)) => Some((a, m)),
            (None, None) => None,
            _ => return Err(Error::tensor(path, weight, "double-quantization tensors are incomplete (need nested_absmax and nested_quant_map)")),
        };
        if read_f32s(&tensors[quant_map])?.as_slice() != state.quant_type.code().as_slice() {
            return Err(Error::tensor(
                path,
                format!("{weight}.quant_map"),
                "is not the standard bitsandbytes code book for its quant_type",
            ));
        }
        if tensors[codes].raw.numel() != state.packed_len() {
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
                codes: tensors[codes].clone(),
                absmax: tensors[absmax].clone(),
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
        let (path, name) = (&self.absmax.file.file.path, &self.absmax.raw.name);
        let (Some((nested_absmax, nested_map)), Some(nested)) = (&self.nested, &self.state.nested)
        else {
            return read_f32s(&self.absmax);
        };
        let codes = self.absmax.file.read(&self.absmax.raw)?;
        let map: [f32; 256] = read_f32s(nested_map)?
            .try_into()
            .map_err(|_| Error::tensor(path, &nested_map.raw.name, "must hold 256 values"))?;
        let mut out = vec![0f32; codes.len()];
        bnb4::unnest_absmax(
            &map,
            nested.blocksize,
            &codes,
            &read_f32s(nested_absmax)?,
            nested.offset,
            &mut out,
        )
        .map_err(|e| Error::tensor(path, name, e.to_string()))?;
        Ok(out)
    }

    /// Dequantizes elements `elems` (row-major) into `out`, exactly as bitsandbytes does.
    pub fn dequantize(&self, absmax: &[f32], elems: Range<usize>, out: &mut [f32]) -> Result<()> {
        // Codes are two per byte; read the bytes covering the range.
        let bytes = elems.start / 2..elems.end.div_ceil(2);
        let mut packed = vec![0u8; bytes.len()];
        self.codes
            .file
            .file
            .read_at(self.codes.raw.bytes.start + bytes.start as u64, &mut packed)?;
        let s = &self.state;
        let first_block = (elems.start / s.blocksize).min(absmax.len());
        bnb4::dequantize(
            s.quant_type,
            s.dtype,
            s.blocksize,
            elems.start,
            &packed,
            &absmax[first_block..],
            out,
        )
        .map_err(|e| Error::tensor(&self.codes.file.file.path, &self.name, e.to_string()))
    }
}
