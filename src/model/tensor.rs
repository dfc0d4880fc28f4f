//! Model tensors as the stream sees them: a name, a logical float shape and dtype, and where the
//! bytes are (plain safetensors data, or a bitsandbytes 4-bit weight with its statistics).
//! Reading yields row chunks as f32, whatever the storage.

use super::bnb::Bnb4Weight;
use crate::error::{Error, Result};
use crate::formats::safetensors::{Dtype, RawTensor, SafetensorsFile};
use crate::model::config::FloatType;
use std::ops::Range;
use std::sync::Arc;

/// A tensor stored as-is in a safetensors file.
#[derive(Clone)]
pub struct DenseTensor {
    /// The file holding it.
    pub file: Arc<SafetensorsFile>,
    /// Its header entry.
    pub raw: RawTensor,
}

/// How a model tensor is stored.
#[derive(Clone)]
pub enum Storage {
    /// Plain float data.
    Dense(DenseTensor),
    /// A bitsandbytes 4-bit weight (codes, absmax and quantization state).
    Bnb4(Box<Bnb4Weight>),
}

/// One logical tensor of a model.
#[derive(Clone)]
pub struct ModelTensor {
    /// Name as in the checkpoint (for 4-bit weights, the `.weight` name).
    pub name: String,
    /// Logical shape, outermost first.
    pub shape: Vec<usize>,
    /// The float type values have once read (for 4-bit weights, the dequantization dtype).
    pub dtype: FloatType,
    /// Where the bytes are.
    pub storage: Storage,
}

impl ModelTensor {
    /// Rows when viewed as a matrix: the outermost dimension (1 for scalars and 1-D tensors).
    pub fn rows(&self) -> usize {
        if self.shape.len() <= 1 {
            1
        } else {
            self.shape[0]
        }
    }

    /// Elements per row.
    pub fn cols(&self) -> usize {
        if self.shape.len() <= 1 {
            self.shape.first().copied().unwrap_or(1)
        } else {
            self.shape[1..].iter().product()
        }
    }

    /// Total elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The file that holds this tensor's data (for messages).
    pub fn path(&self) -> &str {
        match &self.storage {
            Storage::Dense(d) => &d.file.file.path,
            Storage::Bnb4(q) => &q.codes.file.file.path,
        }
    }

    /// Fetches what reading rows needs (for 4-bit weights, the un-nested absmax).
    pub fn open(&self) -> Result<TensorReader<'_>> {
        let absmax = match &self.storage {
            Storage::Dense(_) => None,
            Storage::Bnb4(q) => Some(q.absmax()?),
        };
        Ok(TensorReader {
            tensor: self,
            absmax,
        })
    }
}

/// Reads row ranges of one tensor as f32.
pub struct TensorReader<'a> {
    tensor: &'a ModelTensor,
    absmax: Option<Vec<f32>>,
}

impl TensorReader<'_> {
    /// Fills `out` (length `rows.len() * cols`) with rows `rows`, exactly the values of the
    /// stored dtype (4-bit weights dequantized as bitsandbytes does).
    pub fn read_rows(&self, rows: Range<usize>, out: &mut [f32]) -> Result<()> {
        let t = self.tensor;
        let cols = t.cols();
        debug_assert_eq!(out.len(), rows.len() * cols);
        let elems = rows.start * cols..rows.end * cols;
        match &t.storage {
            Storage::Dense(d) => read_dense(d, elems, out),
            Storage::Bnb4(q) => q.dequantize(
                self.absmax.as_deref().expect("opened with absmax"),
                elems,
                out,
            ),
        }
    }
}

fn read_dense(d: &DenseTensor, elems: Range<usize>, out: &mut [f32]) -> Result<()> {
    let size = d.raw.dtype.bitsize() / 8;
    let mut bytes = vec![0u8; elems.len() * size];
    d.file
        .file
        .read_at(d.raw.bytes.start + (elems.start * size) as u64, &mut bytes)?;
    decode_floats(d.raw.dtype, &bytes, out)
        .map_err(|m| Error::tensor(&d.file.file.path, &d.raw.name, m))
}

/// Converts little-endian float bytes of `dtype` to f32 (exact for f16/bf16/f32).
pub fn decode_floats(
    dtype: Dtype,
    bytes: &[u8],
    out: &mut [f32],
) -> std::result::Result<(), String> {
    match dtype {
        Dtype::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes(b.try_into().expect("4 bytes"));
            }
        }
        Dtype::BF16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
            }
        }
        Dtype::F16 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
            }
        }
        Dtype::F64 => {
            for (o, b) in out.iter_mut().zip(bytes.chunks_exact(8)) {
                *o = f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32;
            }
        }
        other => return Err(format!("dtype {other:?} is not a floating-point type")),
    }
    Ok(())
}

/// The float type of a safetensors dtype, if it is one we carry through.
pub fn float_type(dtype: Dtype) -> Option<FloatType> {
    match dtype {
        Dtype::F32 | Dtype::F64 => Some(FloatType::F32),
        Dtype::F16 => Some(FloatType::F16),
        Dtype::BF16 => Some(FloatType::Bf16),
        _ => None,
    }
}
