//! safetensors: a validating header reader that never loads tensor data, and a streaming writer
//! whose header is computed from shapes before any data is written.
//!
//! The `safetensors` crate's parser wants the whole file in memory (it checks the buffer length),
//! which a browser `Blob` or a 16 GB shard cannot give, so the header is parsed here with the
//! crate's own `Dtype`, with error messages that name the tensor at fault.

use crate::error::{Error, Result};
use crate::io::InputFile;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;

pub use ::safetensors::Dtype;

/// safetensors' own cap on the JSON header; larger headers are refused before reading them.
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One tensor's place in a safetensors file.
#[derive(Debug, Clone)]
pub struct RawTensor {
    /// Tensor name as stored.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
    /// Absolute byte range in the file.
    pub bytes: Range<u64>,
}

impl RawTensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A parsed safetensors file: header only, data read on demand through `file`.
#[derive(Clone)]
pub struct SafetensorsFile {
    /// The underlying file.
    pub file: InputFile,
    /// Tensors in file order.
    pub tensors: Vec<RawTensor>,
    /// The `__metadata__` string map, if any.
    pub metadata: BTreeMap<String, String>,
}

/// Bytes needed for `numel` elements of `dtype`, or `None` on overflow or a partial byte.
pub fn byte_len(dtype: Dtype, numel: usize) -> Option<usize> {
    let bits = numel.checked_mul(dtype.bitsize())?;
    (bits % 8 == 0).then_some(bits / 8)
}

impl SafetensorsFile {
    /// Reads and validates the header of `file`: lengths, dtypes, shapes against byte sizes, and
    /// that the tensors exactly tile the data section with no gap, overlap or trailing bytes.
    pub fn open(file: InputFile) -> Result<Self> {
        let path = file.path.clone();
        let file_len = file.data.len();
        if file_len < 8 {
            return Err(Error::format(
                &path,
                format!("file is {file_len} bytes, too short to be safetensors (truncated?)"),
            ));
        }
        let mut len_bytes = [0u8; 8];
        file.read_at(0, &mut len_bytes)?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES {
            return Err(Error::format(&path, format!("header length {header_len} exceeds the 100 MB limit: not a safetensors file, or corrupt")));
        }
        if 8 + header_len > file_len {
            return Err(Error::format(&path, format!("header length {header_len} runs past the end of the {file_len}-byte file: the file is truncated")));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_at(8, &mut header)?;
        let header: Map<String, Value> = serde_json::from_slice(&header)
            .map_err(|e| Error::format(&path, format!("header is not a JSON object: {e}")))?;
        let data_start = 8 + header_len;

        let mut metadata = BTreeMap::new();
        let mut tensors = Vec::with_capacity(header.len());
        for (name, entry) in header {
            if name == "__metadata__" {
                metadata = serde_json::from_value(entry).map_err(|e| {
                    Error::format(&path, format!("__metadata__ is not a string map: {e}"))
                })?;
                continue;
            }
            tensors.push(parse_entry(&path, data_start, name, entry)?);
        }
        tensors.sort_by_key(|t| (t.bytes.start, t.bytes.end));
        let mut covered = data_start;
        for (i, t) in tensors.iter().enumerate() {
            if t.bytes.start < covered {
                let other = &tensors[i - 1].name;
                return Err(Error::tensor(
                    &path,
                    &t.name,
                    format!("data overlaps tensor `{other}`"),
                ));
            }
            if t.bytes.start > covered {
                return Err(Error::tensor(
                    &path,
                    &t.name,
                    format!(
                        "{} bytes before it belong to no tensor",
                        t.bytes.start - covered
                    ),
                ));
            }
            covered = t.bytes.end;
        }
        if covered > file_len {
            let last = &tensors
                .last()
                .expect("covered > data_start needs a tensor")
                .name;
            return Err(Error::tensor(&path, last, format!("data ends at byte {covered} but the file has {file_len}: the file is truncated")));
        }
        if covered < file_len {
            return Err(Error::format(
                &path,
                format!(
                    "{} trailing bytes after the last tensor's data",
                    file_len - covered
                ),
            ));
        }
        Ok(SafetensorsFile {
            file,
            tensors,
            metadata,
        })
    }

    /// Finds a tensor by name.
    pub fn get(&self, name: &str) -> Option<&RawTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Reads a whole tensor's bytes (for small tensors: adapters, quantization statistics).
    pub fn read(&self, t: &RawTensor) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; (t.bytes.end - t.bytes.start) as usize];
        self.file.read_at(t.bytes.start, &mut buf)?;
        Ok(buf)
    }
}

fn parse_entry(path: &str, data_start: u64, name: String, entry: Value) -> Result<RawTensor> {
    let bad = |msg: String| Error::tensor(path, &name, msg);
    let dtype = entry
        .get("dtype")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing `dtype`".into()))?;
    let dtype: Dtype = serde_json::from_value(Value::String(dtype.to_string()))
        .map_err(|_| bad(format!("unknown dtype `{dtype}`")))?;
    let shape: Vec<usize> = entry
        .get("shape")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .ok_or_else(|| bad("missing or invalid `shape`".into()))?;
    let (start, end): (u64, u64) = entry
        .get("data_offsets")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .ok_or_else(|| bad("missing or invalid `data_offsets`".into()))?;
    if end < start {
        return Err(bad(format!(
            "data_offsets [{start}, {end}] end before they start"
        )));
    }
    let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let expected = numel
        .and_then(|n| byte_len(dtype, n))
        .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    if expected as u64 != end - start {
        return Err(bad(format!(
            "shape {shape:?} of {dtype:?} needs {expected} bytes but data_offsets span {}",
            end - start
        )));
    }
    let bytes = start
        .checked_add(data_start)
        .zip(end.checked_add(data_start))
        .ok_or_else(|| bad("data_offsets overflow".into()))?;
    Ok(RawTensor {
        name,
        dtype,
        shape,
        bytes: bytes.0..bytes.1,
    })
}

/// Name, dtype and shape of one tensor to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape, outermost first.
    pub shape: Vec<usize>,
}

impl TensorSpec {
    /// Bytes of data.
    pub fn byte_len(&self) -> u64 {
        byte_len(self.dtype, self.shape.iter().product())
            .expect("writable tensor sizes are whole bytes") as u64
    }
}

/// The complete header of a file to be written: tensors are laid out in the given order, so the
/// data must then be written in exactly that order.
pub struct SafetensorsLayout {
    header: Vec<u8>,
    data_len: u64,
}

impl SafetensorsLayout {
    /// Lays out `tensors` in order with optional `__metadata__`.
    pub fn new(tensors: &[TensorSpec], metadata: &BTreeMap<String, String>) -> Self {
        let mut map = Map::new();
        if !metadata.is_empty() {
            map.insert(
                "__metadata__".into(),
                serde_json::to_value(metadata).expect("string map"),
            );
        }
        let mut offset = 0u64;
        for t in tensors {
            let end = offset + t.byte_len();
            let dtype = serde_json::to_value(t.dtype).expect("dtype serializes");
            map.insert(t.name.clone(), serde_json::json!({"dtype": dtype, "shape": t.shape, "data_offsets": [offset, end]}));
            offset = end;
        }
        let mut header = serde_json::to_vec(&map).expect("JSON map serializes");
        // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
        header.resize(header.len().next_multiple_of(8), b' ');
        SafetensorsLayout {
            header,
            data_len: offset,
        }
    }

    /// Total file size.
    pub fn file_len(&self) -> u64 {
        8 + self.header.len() as u64 + self.data_len
    }

    /// Writes the length prefix and header; tensor bytes follow.
    pub fn write_header(&self, w: &mut dyn Write) -> std::io::Result<()> {
        w.write_all(&(self.header.len() as u64).to_le_bytes())?;
        w.write_all(&self.header)
    }
}
