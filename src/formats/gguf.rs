//! GGUF v3, llama.cpp's model file: a validating reader of metadata and tensor infos (for
//! `inspect` and tests) and a streaming writer whose header, tensor offsets included, is computed
//! from shapes and types before any tensor data is written, so sinks never need to seek.
//!
//! Layout (little-endian): magic `GGUF`, `u32` version, `u64` tensor count, `u64` KV count, the
//! KVs (string key, `u32` value type, value), the tensor infos (name, `u32` dims, `u64` extents
//! innermost first, `u32` ggml type, `u64` offset into the data section), zero padding to the
//! alignment, then each tensor's bytes padded with zeros to the alignment.

use crate::error::{Error, Result};
use crate::io::InputFile;
use std::collections::HashSet;
use std::fmt;
use std::io::Write;
use std::ops::Range;

/// The four bytes every GGUF file starts with.
pub const MAGIC: [u8; 4] = *b"GGUF";
/// The version this module writes.
pub const VERSION: u32 = 3;
/// Data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u32 = 32;
/// The metadata key that overrides the data alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// Most dimensions a tensor may have (`GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// Tensor names must be shorter than this many bytes (`GGML_MAX_NAME`).
pub const MAX_NAME_BYTES: usize = 64;

/// The type tag of a metadata value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// `u8`
    U8,
    /// `i8`
    I8,
    /// `u16`
    U16,
    /// `i16`
    I16,
    /// `u32`
    U32,
    /// `i32`
    I32,
    /// `f32`
    F32,
    /// `bool`, one byte
    Bool,
    /// UTF-8 string with a `u64` length
    String,
    /// homogeneous array with an element type and a `u64` count
    Array,
    /// `u64`
    U64,
    /// `i64`
    I64,
    /// `f64`
    F64,
}

impl ValueType {
    const ALL: [ValueType; 13] = [
        ValueType::U8,
        ValueType::I8,
        ValueType::U16,
        ValueType::I16,
        ValueType::U32,
        ValueType::I32,
        ValueType::F32,
        ValueType::Bool,
        ValueType::String,
        ValueType::Array,
        ValueType::U64,
        ValueType::I64,
        ValueType::F64,
    ];

    /// The tag stored in the file.
    pub fn id(self) -> u32 {
        Self::ALL.iter().position(|t| *t == self).expect("listed") as u32
    }

    /// The type with tag `id`.
    pub fn from_id(id: u32) -> Option<Self> {
        Self::ALL.get(id as usize).copied()
    }

    /// Bytes of one value of a fixed-size type (`None` for strings and arrays).
    fn fixed_size(self) -> Option<u64> {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 | ValueType::F32 => Some(4),
            ValueType::U64 | ValueType::I64 | ValueType::F64 => Some(8),
            ValueType::String | ValueType::Array => None,
        }
    }

    /// The smallest number of bytes one element can take (for bounding counts read from files).
    fn min_size(self) -> u64 {
        self.fixed_size().unwrap_or(8)
    }

    /// Short lower-case name, as llama.cpp prints it.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "str",
            ValueType::Array => "arr",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }
}

/// A metadata value. Arrays hold scalars or strings (GGUF has no arrays of arrays).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `u8`
    U8(u8),
    /// `i8`
    I8(i8),
    /// `u16`
    U16(u16),
    /// `i16`
    I16(i16),
    /// `u32`
    U32(u32),
    /// `i32`
    I32(i32),
    /// `f32`
    F32(f32),
    /// `bool`
    Bool(bool),
    /// string
    String(String),
    /// `u64`
    U64(u64),
    /// `i64`
    I64(i64),
    /// `f64`
    F64(f64),
    /// array of one element type
    Array(Array),
}

/// A homogeneous metadata array.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    /// `u8` elements
    U8(Vec<u8>),
    /// `i8` elements
    I8(Vec<i8>),
    /// `u16` elements
    U16(Vec<u16>),
    /// `i16` elements
    I16(Vec<i16>),
    /// `u32` elements
    U32(Vec<u32>),
    /// `i32` elements
    I32(Vec<i32>),
    /// `f32` elements
    F32(Vec<f32>),
    /// `bool` elements
    Bool(Vec<bool>),
    /// string elements
    String(Vec<String>),
    /// `u64` elements
    U64(Vec<u64>),
    /// `i64` elements
    I64(Vec<i64>),
    /// `f64` elements
    F64(Vec<f64>),
}

impl Value {
    /// The value's type tag.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
            Value::Array(_) => ValueType::Array,
        }
    }

    /// Appends the value's payload (no type tag for scalars; element type and count for arrays).
    fn write_payload(&self, out: &mut Vec<u8>) {
        match self {
            Value::U8(v) => out.push(*v),
            Value::I8(v) => out.extend(v.to_le_bytes()),
            Value::U16(v) => out.extend(v.to_le_bytes()),
            Value::I16(v) => out.extend(v.to_le_bytes()),
            Value::U32(v) => out.extend(v.to_le_bytes()),
            Value::I32(v) => out.extend(v.to_le_bytes()),
            Value::F32(v) => out.extend(v.to_le_bytes()),
            Value::Bool(v) => out.push(u8::from(*v)),
            Value::String(s) => write_string(out, s),
            Value::U64(v) => out.extend(v.to_le_bytes()),
            Value::I64(v) => out.extend(v.to_le_bytes()),
            Value::F64(v) => out.extend(v.to_le_bytes()),
            Value::Array(a) => a.write(out),
        }
    }
}

impl Array {
    /// The element type.
    pub fn elem_type(&self) -> ValueType {
        match self {
            Array::U8(_) => ValueType::U8,
            Array::I8(_) => ValueType::I8,
            Array::U16(_) => ValueType::U16,
            Array::I16(_) => ValueType::I16,
            Array::U32(_) => ValueType::U32,
            Array::I32(_) => ValueType::I32,
            Array::F32(_) => ValueType::F32,
            Array::Bool(_) => ValueType::Bool,
            Array::String(_) => ValueType::String,
            Array::U64(_) => ValueType::U64,
            Array::I64(_) => ValueType::I64,
            Array::F64(_) => ValueType::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
        }
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend(self.elem_type().id().to_le_bytes());
        out.extend((self.len() as u64).to_le_bytes());
        fn each<T: Copy, const N: usize>(out: &mut Vec<u8>, v: &[T], f: fn(T) -> [u8; N]) {
            v.iter().for_each(|x| out.extend(f(*x)));
        }
        match self {
            Array::U8(v) => out.extend(v),
            Array::I8(v) => each(out, v, i8::to_le_bytes),
            Array::U16(v) => each(out, v, u16::to_le_bytes),
            Array::I16(v) => each(out, v, i16::to_le_bytes),
            Array::U32(v) => each(out, v, u32::to_le_bytes),
            Array::I32(v) => each(out, v, i32::to_le_bytes),
            Array::F32(v) => each(out, v, f32::to_le_bytes),
            Array::Bool(v) => out.extend(v.iter().map(|b| u8::from(*b))),
            Array::String(v) => v.iter().for_each(|s| write_string(out, s)),
            Array::U64(v) => each(out, v, u64::to_le_bytes),
            Array::I64(v) => each(out, v, i64::to_le_bytes),
            Array::F64(v) => each(out, v, f64::to_le_bytes),
        }
    }
}

impl fmt::Display for Value {
    /// Scalars as themselves, strings quoted, arrays summarized by element type and length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::U8(v) => write!(f, "{v}"),
            Value::I8(v) => write!(f, "{v}"),
            Value::U16(v) => write!(f, "{v}"),
            Value::I16(v) => write!(f, "{v}"),
            Value::U32(v) => write!(f, "{v}"),
            Value::I32(v) => write!(f, "{v}"),
            Value::F32(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::U64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Array(a) => write!(f, "[{}; {}]", a.elem_type().name(), a.len()),
        }
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

/// Ordered metadata with unique keys. Setting an existing key replaces its value in place, so
/// the key keeps its first position (as gguf-py's writer, a Python dict, does).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
}

impl Metadata {
    /// Empty metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, keeping the key's position if it is already present.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Removes `key`, returning its value; setting it again appends it at the end (as
    /// llama.cpp's `gguf_set_*` do for every key).
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }

    /// Appends every entry of `other` with [`Metadata::set`].
    pub fn extend(&mut self, other: Metadata) {
        for (k, v) in other.entries {
            self.set(k, v);
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The data alignment these entries ask for.
    fn alignment(&self) -> std::result::Result<u32, String> {
        match self.get(ALIGNMENT_KEY) {
            None => Ok(DEFAULT_ALIGNMENT),
            Some(Value::U32(a)) if a.is_power_of_two() => Ok(*a),
            Some(v) => Err(format!(
                "{ALIGNMENT_KEY} must be a u32 power of two, not {v}"
            )),
        }
    }
}

/// A ggml tensor element type, as GGUF files name them (all types of `ggml.h`, readable or not
/// by this crate's quantizers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TensorType {
    id: u32,
}

/// `(id, name, elements per block, bytes per block)` of every ggml type llama.cpp 0c1e57098bba
/// accepts in GGUF files (ids 4, 5 and 31-33, 36-38 were removed from ggml).
const TENSOR_TYPES: [(u32, &str, u64, u64); 35] = [
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
    (42, "Q2_0", 64, 18),
];

impl TensorType {
    /// 32-bit float.
    pub const F32: TensorType = TensorType { id: 0 };
    /// IEEE half.
    pub const F16: TensorType = TensorType { id: 1 };
    /// bfloat16.
    pub const BF16: TensorType = TensorType { id: 30 };
    /// 8-bit blocks of 32 with an f16 scale.
    pub const Q8_0: TensorType = TensorType { id: 8 };

    /// The type with ggml id `id`, if ggml defines it.
    pub fn from_id(id: u32) -> Option<Self> {
        TENSOR_TYPES
            .iter()
            .any(|t| t.0 == id)
            .then_some(TensorType { id })
    }

    fn entry(self) -> &'static (u32, &'static str, u64, u64) {
        TENSOR_TYPES
            .iter()
            .find(|t| t.0 == self.id)
            .expect("constructed from the table")
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        self.id
    }

    /// The name gguf-py uses (`F16`, `Q8_0`, `Q4_K`, ...).
    pub fn name(self) -> &'static str {
        self.entry().1
    }

    /// Elements per block.
    pub fn block_size(self) -> u64 {
        self.entry().2
    }

    /// Bytes per block.
    pub fn type_size(self) -> u64 {
        self.entry().3
    }

    /// Bytes of a tensor with extents `ne` (innermost first), or `None` when the rows are not
    /// whole blocks or the size overflows.
    pub fn data_bytes(self, ne: &[u64]) -> Option<u64> {
        let row = ne.first().copied().unwrap_or(1);
        if row % self.block_size() != 0 {
            return None;
        }
        let rows = ne.iter().skip(1).try_fold(1u64, |a, &d| a.checked_mul(d))?;
        (row / self.block_size())
            .checked_mul(self.type_size())?
            .checked_mul(rows)
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor's entry in the header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Element type.
    pub ty: TensorType,
    /// Extents, innermost first (the reverse of a PyTorch shape).
    pub ne: Vec<u64>,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Bytes of data (validated by the reader, computed by the writer).
    pub fn data_bytes(&self) -> u64 {
        self.ty
            .data_bytes(&self.ne)
            .expect("sizes are checked before a TensorInfo exists")
    }
}

fn pad(n: u64, align: u64) -> u64 {
    n.div_ceil(align) * align
}

// ------------------------------------------------------------------------------------------
// Reading

/// One metadata entry as read, with where its value lies in the file.
#[derive(Debug, Clone)]
pub struct MetadataEntry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Value,
    /// File byte range of the value after its type tag (for an array: element type, count and
    /// elements), so tests can compare files byte for byte.
    pub payload: Range<u64>,
}

/// A parsed GGUF header: metadata and tensor infos; tensor data stays in the file.
#[derive(Debug, Clone)]
pub struct GgufFile {
    /// File format version (2 or 3; they share one layout).
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<MetadataEntry>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Data alignment.
    pub alignment: u32,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
}

/// Reads through an [`InputFile`] in large blocks, keeping track of the position.
struct Reader<'f> {
    file: &'f InputFile,
    len: u64,
    buf: Vec<u8>,
    buf_start: u64,
    pos: u64,
}

/// Header bytes fetched per read.
const READ_BLOCK: usize = 1 << 20;

impl<'f> Reader<'f> {
    fn new(file: &'f InputFile) -> Self {
        Reader {
            file,
            len: file.data.len(),
            buf: Vec::new(),
            buf_start: 0,
            pos: 0,
        }
    }

    fn left(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn fail(&self, what: &str) -> Error {
        Error::format(&self.file.path, what)
    }

    /// The next `n` bytes; `what` names them in the error when the file ends first.
    fn bytes(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&[u8]> {
        if n > self.left() {
            return Err(self.fail(&format!(
                "{} needs {n} bytes at offset {} but the file has {} bytes: truncated or corrupt",
                what(),
                self.pos,
                self.len
            )));
        }
        let n = n as usize;
        let in_buf = self.pos >= self.buf_start
            && self.pos + n as u64 <= self.buf_start + self.buf.len() as u64;
        if !in_buf {
            let take = (self.left() as usize).min(n.max(READ_BLOCK));
            self.buf.resize(take, 0);
            self.file.read_at(self.pos, &mut self.buf)?;
            self.buf_start = self.pos;
        }
        let start = (self.pos - self.buf_start) as usize;
        self.pos += n as u64;
        Ok(&self.buf[start..start + n])
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N]> {
        Ok(self
            .bytes(N as u64, what)?
            .try_into()
            .expect("asked for N bytes"))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String> {
        let len = self.u64(what)?;
        if len > self.left() {
            return Err(self.fail(&format!(
                "{}: string length {len} runs past the end of the {}-byte file",
                what(),
                self.len
            )));
        }
        let bytes = self.bytes(len, what)?;
        // Tokens are not always valid UTF-8; keep what can be shown.
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn scalar(&mut self, ty: ValueType, what: &dyn Fn() -> String) -> Result<Value> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>(what)?[0]),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::Bool => match self.array::<1>(what)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(self.fail(&format!("{}: bool byte is {b}, not 0 or 1", what()))),
            },
            ValueType::String => Value::String(self.string(what)?),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Array => unreachable!("arrays are read by `value`"),
        })
    }

    fn value(&mut self, ty: ValueType, what: &dyn Fn() -> String) -> Result<Value> {
        if ty != ValueType::Array {
            return self.scalar(ty, what);
        }
        let elem_id = self.u32(what)?;
        let elem = match ValueType::from_id(elem_id) {
            Some(ValueType::Array) => {
                return Err(self.fail(&format!("{}: arrays of arrays are not supported", what())))
            }
            Some(t) => t,
            None => {
                return Err(self.fail(&format!("{}: unknown array element type {elem_id}", what())))
            }
        };
        let n = self.u64(what)?;
        if n.saturating_mul(elem.min_size()) > self.left() {
            return Err(self.fail(&format!(
                "{}: array of {n} {} elements runs past the end of the {}-byte file",
                what(),
                elem.name(),
                self.len
            )));
        }
        let n = n as usize;
        macro_rules! collect {
            ($variant:ident) => {{
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    match self.scalar(elem, what)? {
                        Value::$variant(x) => v.push(x),
                        _ => unreachable!("scalar returns the requested type"),
                    }
                }
                Array::$variant(v)
            }};
        }
        Ok(Value::Array(match elem {
            ValueType::U8 => Array::U8(self.bytes(n as u64, what)?.to_vec()),
            ValueType::I8 => collect!(I8),
            ValueType::U16 => collect!(U16),
            ValueType::I16 => collect!(I16),
            ValueType::U32 => collect!(U32),
            ValueType::I32 => collect!(I32),
            ValueType::F32 => collect!(F32),
            ValueType::Bool => collect!(Bool),
            ValueType::String => collect!(String),
            ValueType::U64 => collect!(U64),
            ValueType::I64 => collect!(I64),
            ValueType::F64 => collect!(F64),
            ValueType::Array => unreachable!("rejected above"),
        }))
    }
}

impl GgufFile {
    /// Reads and validates the header of `file`: magic, version, every KV, every tensor info,
    /// the alignment, and that each tensor's data is aligned, inside the file and apart from the
    /// others. Tensor data is not read.
    pub fn read(file: &InputFile) -> Result<Self> {
        let mut r = Reader::new(file);
        let magic: [u8; 4] = r.array(&|| "the magic".into())?;
        if magic != MAGIC {
            return Err(r.fail(&format!(
                "not a GGUF file: starts with {:?} instead of \"GGUF\"",
                String::from_utf8_lossy(&magic)
            )));
        }
        let version = r.u32(&|| "the version".into())?;
        if !(2..=VERSION).contains(&version) {
            return Err(r.fail(&format!(
                "GGUF version {version} is not supported (only versions 2 and 3 are)"
            )));
        }
        let n_tensors = r.u64(&|| "the tensor count".into())?;
        let n_kv = r.u64(&|| "the metadata count".into())?;
        // Every KV takes at least 8 (key length) + 4 (type) + 1 bytes; every tensor info 8 + 4 + 4 + 8.
        if n_kv.saturating_mul(13) > r.left() || n_tensors.saturating_mul(24) > r.left() {
            return Err(r.fail(&format!(
                "header claims {n_kv} metadata entries and {n_tensors} tensors, more than the {}-byte file can hold: truncated or corrupt",
                r.len
            )));
        }
        let mut metadata = Vec::with_capacity(n_kv as usize);
        let mut keys = HashSet::new();
        for i in 0..n_kv {
            let key = r.string(&|| format!("metadata key #{i}"))?;
            if key.is_empty() {
                return Err(r.fail(&format!("metadata key #{i} is empty")));
            }
            if !keys.insert(key.clone()) {
                return Err(r.fail(&format!("metadata key `{key}` appears twice")));
            }
            let what = || format!("metadata `{key}`");
            let type_id = r.u32(&what)?;
            let ty = ValueType::from_id(type_id)
                .ok_or_else(|| r.fail(&format!("metadata `{key}` has unknown type {type_id}")))?;
            let start = r.pos;
            let value = r.value(ty, &what)?;
            metadata.push(MetadataEntry {
                key,
                value,
                payload: start..r.pos,
            });
        }
        let alignment = match metadata.iter().find(|e| e.key == ALIGNMENT_KEY) {
            None => DEFAULT_ALIGNMENT,
            Some(MetadataEntry {
                value: Value::U32(a),
                ..
            }) if a.is_power_of_two() => *a,
            Some(e) => {
                return Err(r.fail(&format!(
                    "{ALIGNMENT_KEY} is {} {}, but must be a u32 power of two",
                    e.value.value_type().name(),
                    e.value
                )))
            }
        };
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        let mut names = HashSet::new();
        for i in 0..n_tensors {
            let name = r.string(&|| format!("tensor #{i}'s name"))?;
            if !names.insert(name.clone()) {
                return Err(r.fail(&format!("tensor `{name}` appears twice")));
            }
            let bad = |msg: String| Error::tensor(&file.path, &name, msg);
            let what = || format!("tensor `{name}`");
            let n_dims = r.u32(&what)? as usize;
            if n_dims > MAX_DIMS {
                return Err(bad(format!(
                    "{n_dims} dimensions, more than ggml's {MAX_DIMS}"
                )));
            }
            let mut ne = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                let d = r.u64(&what)?;
                if d > i64::MAX as u64 {
                    return Err(bad(format!("negative extent {}", d as i64)));
                }
                ne.push(d);
            }
            let type_id = r.u32(&what)?;
            let ty = TensorType::from_id(type_id)
                .ok_or_else(|| bad(format!("unknown ggml type {type_id}")))?;
            if ty.data_bytes(&ne).is_none() {
                return Err(bad(format!(
                    "extents {ne:?} do not fit {ty}: rows must be whole blocks of {} and the size must fit 64 bits",
                    ty.block_size()
                )));
            }
            let offset = r.u64(&what)?;
            if offset % u64::from(alignment) != 0 {
                return Err(bad(format!(
                    "data offset {offset} is not a multiple of the alignment {alignment}"
                )));
            }
            tensors.push(TensorInfo {
                name,
                ty,
                ne,
                offset,
            });
        }
        let data_offset = pad(r.pos, alignment.into());
        let data_len = r.len.saturating_sub(data_offset);
        let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
        by_offset.sort_by_key(|t| (t.offset, std::cmp::Reverse(t.data_bytes())));
        let mut end = 0u64;
        let mut previous: Option<&str> = None;
        for t in by_offset {
            let bytes = t.data_bytes();
            let t_end = t.offset.checked_add(bytes).filter(|e| *e <= data_len);
            let Some(t_end) = t_end else {
                return Err(Error::tensor(&file.path, &t.name, format!(
                    "data at offset {} ({bytes} bytes) runs past the end of the file (data section is {data_len} bytes): truncated?",
                    t.offset
                )));
            };
            if t.offset < end && bytes > 0 {
                return Err(Error::tensor(
                    &file.path,
                    &t.name,
                    format!(
                        "data overlaps tensor `{}`",
                        previous.expect("end > 0 after a tensor")
                    ),
                ));
            }
            if t_end > end {
                end = t_end;
                previous = Some(&t.name);
            }
        }
        Ok(GgufFile {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
        })
    }

    /// The value of metadata `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// Absolute file byte range of tensor `t`'s data.
    pub fn data_range(&self, t: &TensorInfo) -> Range<u64> {
        let start = self.data_offset + t.offset;
        start..start + t.data_bytes()
    }
}

// ------------------------------------------------------------------------------------------
// Writing

/// Name, type and extents of a tensor to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Tensor name (shorter than [`MAX_NAME_BYTES`]).
    pub name: String,
    /// Element type.
    pub ty: TensorType,
    /// Extents, innermost first.
    pub ne: Vec<u64>,
}

/// A complete header: KVs and tensor infos with offsets, computed before any data is written.
#[derive(Debug, Clone)]
pub struct GgufLayout {
    header: Vec<u8>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
}

impl GgufLayout {
    /// Lays out `tensors` in order after `metadata`. Fails (with a message naming the culprit)
    /// on a bad alignment, a duplicate or too long tensor name, too many dimensions, or extents
    /// the type cannot hold.
    pub fn new(metadata: &Metadata, tensors: &[TensorSpec]) -> std::result::Result<Self, String> {
        let alignment = u64::from(metadata.alignment()?);
        let mut header = Vec::new();
        header.extend(MAGIC);
        header.extend(VERSION.to_le_bytes());
        header.extend((tensors.len() as u64).to_le_bytes());
        header.extend((metadata.entries.len() as u64).to_le_bytes());
        for (key, value) in &metadata.entries {
            if let Value::Array(a) = value {
                if a.is_empty() {
                    return Err(format!("metadata `{key}` is an empty array"));
                }
            }
            write_string(&mut header, key);
            header.extend(value.value_type().id().to_le_bytes());
            value.write_payload(&mut header);
        }
        let mut names = HashSet::new();
        let mut offset = 0u64;
        let mut infos = Vec::with_capacity(tensors.len());
        for t in tensors {
            if t.name.len() >= MAX_NAME_BYTES {
                return Err(format!(
                    "tensor name `{}` is {} bytes; llama.cpp allows at most {}",
                    t.name,
                    t.name.len(),
                    MAX_NAME_BYTES - 1
                ));
            }
            if !names.insert(t.name.as_str()) {
                return Err(format!("tensor `{}` is listed twice", t.name));
            }
            if t.ne.len() > MAX_DIMS {
                return Err(format!(
                    "tensor `{}` has {} dimensions, more than ggml's {MAX_DIMS}",
                    t.name,
                    t.ne.len()
                ));
            }
            let bytes = t.ty.data_bytes(&t.ne).ok_or_else(|| {
                format!(
                    "tensor `{}` with extents {:?} does not fit {} (rows must be whole blocks of {})",
                    t.name,
                    t.ne,
                    t.ty,
                    t.ty.block_size()
                )
            })?;
            write_string(&mut header, &t.name);
            header.extend((t.ne.len() as u32).to_le_bytes());
            t.ne.iter().for_each(|d| header.extend(d.to_le_bytes()));
            header.extend(t.ty.id().to_le_bytes());
            header.extend(offset.to_le_bytes());
            infos.push(TensorInfo {
                name: t.name.clone(),
                ty: t.ty,
                ne: t.ne.clone(),
                offset,
            });
            offset += pad(bytes, alignment);
        }
        header.resize(pad(header.len() as u64, alignment) as usize, 0);
        Ok(GgufLayout {
            header,
            tensors: infos,
            alignment,
        })
    }

    /// The tensor infos with their offsets.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// Total file size.
    pub fn file_len(&self) -> u64 {
        let data: u64 = self
            .tensors
            .iter()
            .map(|t| pad(t.data_bytes(), self.alignment))
            .sum();
        self.header.len() as u64 + data
    }
}

/// Writes a GGUF file front to back: the header at creation, then tensor data in layout order,
/// inserting the zero padding after each tensor itself.
pub struct GgufWriter<W: Write> {
    sink: W,
    layout: GgufLayout,
    /// The tensor receiving data and how many of its bytes are still expected.
    current: usize,
    left: u64,
}

impl<W: Write> GgufWriter<W> {
    /// Writes the header of `layout` to `sink`.
    pub fn new(mut sink: W, layout: GgufLayout) -> std::io::Result<Self> {
        sink.write_all(&layout.header)?;
        let left = layout.tensors.first().map_or(0, TensorInfo::data_bytes);
        let mut w = GgufWriter {
            sink,
            layout,
            current: 0,
            left,
        };
        w.close_finished()?;
        Ok(w)
    }

    /// Appends tensor data; bytes may span tensors, and must arrive in layout order.
    pub fn write(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            if self.current >= self.layout.tensors.len() {
                return Err(std::io::Error::other(
                    "internal: more tensor data than the GGUF layout holds",
                ));
            }
            let take = self.left.min(bytes.len() as u64) as usize;
            self.sink.write_all(&bytes[..take])?;
            self.left -= take as u64;
            bytes = &bytes[take..];
            self.close_finished()?;
        }
        Ok(())
    }

    /// Pads every completed tensor (empty ones included) and moves on to the next.
    fn close_finished(&mut self) -> std::io::Result<()> {
        while self.left == 0 && self.current < self.layout.tensors.len() {
            let bytes = self.layout.tensors[self.current].data_bytes();
            let padding = pad(bytes, self.layout.alignment) - bytes;
            self.sink.write_all(&vec![0u8; padding as usize])?;
            self.current += 1;
            self.left = self
                .layout
                .tensors
                .get(self.current)
                .map_or(0, TensorInfo::data_bytes);
        }
        Ok(())
    }

    /// Checks that every tensor's data arrived and returns the sink.
    pub fn finish(self) -> std::io::Result<W> {
        if self.current < self.layout.tensors.len() {
            return Err(std::io::Error::other(format!(
                "internal: GGUF ended before the data of tensor `{}`",
                self.layout.tensors[self.current].name
            )));
        }
        Ok(self.sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// In-memory file contents.
    struct Bytes(Vec<u8>);

    impl crate::io::ReadAt for Bytes {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
            self.0[..].read_exact_at(offset, buf)
        }
    }

    fn input(bytes: Vec<u8>) -> InputFile {
        InputFile {
            path: "test.gguf".into(),
            data: Arc::new(Bytes(bytes)),
        }
    }

    fn sample() -> (Metadata, Vec<TensorSpec>) {
        let mut m = Metadata::new();
        m.set("general.architecture", Value::String("llama".into()));
        m.set("llama.block_count", Value::U32(2));
        m.set(
            "tokenizer.ggml.tokens",
            Value::Array(Array::String(vec!["<s>".into(), "a".into()])),
        );
        m.set("x.scores", Value::Array(Array::F32(vec![0.5, -1.0])));
        m.set("x.flag", Value::Bool(true));
        m.set("llama.block_count", Value::U32(3));
        let tensors = vec![
            TensorSpec {
                name: "a".into(),
                ty: TensorType::F32,
                ne: vec![3],
            },
            TensorSpec {
                name: "b".into(),
                ty: TensorType::Q8_0,
                ne: vec![64, 2],
            },
            TensorSpec {
                name: "empty".into(),
                ty: TensorType::F16,
                ne: vec![0, 4],
            },
            TensorSpec {
                name: "c".into(),
                ty: TensorType::F16,
                ne: vec![5],
            },
        ];
        (m, tensors)
    }

    fn sample_file() -> Vec<u8> {
        let (m, tensors) = sample();
        let layout = GgufLayout::new(&m, &tensors).unwrap();
        let mut w = GgufWriter::new(Vec::new(), layout).unwrap();
        w.write(&[1u8; 12]).unwrap();
        w.write(&[2u8; 100]).unwrap();
        w.write(&[2u8; 36]).unwrap();
        w.write(&[3u8; 10]).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn round_trip() {
        let bytes = sample_file();
        let f = GgufFile::read(&input(bytes.clone())).unwrap();
        let keys: Vec<&str> = f.metadata.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "general.architecture",
                "llama.block_count",
                "tokenizer.ggml.tokens",
                "x.scores",
                "x.flag"
            ]
        );
        assert_eq!(f.get("llama.block_count"), Some(&Value::U32(3)));
        assert_eq!(
            f.get("x.scores"),
            Some(&Value::Array(Array::F32(vec![0.5, -1.0])))
        );
        let offsets: Vec<u64> = f.tensors.iter().map(|t| t.offset).collect();
        assert_eq!(offsets, [0, 32, 32 + 160, 32 + 160]);
        assert_eq!(f.data_offset % 32, 0);
        let c = &f.tensors[3];
        let range = f.data_range(c);
        assert_eq!(&bytes[range.start as usize..range.end as usize], &[3u8; 10]);
        // The file ends with the last tensor's padding.
        assert_eq!(bytes.len() as u64, f.data_offset + 192 + 32);
        let (m, tensors) = sample();
        assert_eq!(
            GgufLayout::new(&m, &tensors).unwrap().file_len(),
            bytes.len() as u64
        );
    }

    #[test]
    fn writer_checks_the_amount_of_data() {
        let (m, tensors) = sample();
        let layout = GgufLayout::new(&m, &tensors).unwrap();
        let mut w = GgufWriter::new(Vec::new(), layout.clone()).unwrap();
        w.write(&[0u8; 20]).unwrap();
        assert!(w.finish().unwrap_err().to_string().contains("`b`"));
        let mut w = GgufWriter::new(Vec::new(), layout).unwrap();
        assert!(w.write(&[0u8; 200]).is_err());
    }

    #[test]
    fn layout_rejects_bad_specs() {
        let (mut m, mut tensors) = sample();
        tensors[1].ne = vec![33, 2];
        assert!(GgufLayout::new(&m, &tensors)
            .unwrap_err()
            .contains("whole blocks of 32"));
        tensors[1].ne = vec![64];
        tensors[1].name = "a".into();
        assert!(GgufLayout::new(&m, &tensors)
            .unwrap_err()
            .contains("listed twice"));
        tensors[1].name = "x".repeat(64);
        assert!(GgufLayout::new(&m, &tensors)
            .unwrap_err()
            .contains("at most 63"));
        m.set(ALIGNMENT_KEY, Value::U32(24));
        assert!(GgufLayout::new(&m, &tensors[..1])
            .unwrap_err()
            .contains("power of two"));
    }

    #[test]
    fn custom_alignment() {
        let (mut m, tensors) = sample();
        m.set(ALIGNMENT_KEY, Value::U32(64));
        let layout = GgufLayout::new(&m, &tensors).unwrap();
        let offsets: Vec<u64> = layout.tensors().iter().map(|t| t.offset).collect();
        assert_eq!(offsets, [0, 64, 256, 256]);
    }

    /// Reading `bytes` fails with a message containing every one of `needles`.
    fn rejects(bytes: Vec<u8>, needles: &[&str]) {
        let err = GgufFile::read(&input(bytes)).unwrap_err().to_string();
        assert!(err.contains("test.gguf"), "{err}");
        for n in needles {
            assert!(err.contains(n), "`{n}` not in: {err}");
        }
    }

    /// Offset of the first tensor info in the sample file.
    fn infos_start(bytes: &[u8]) -> usize {
        let f = GgufFile::read(&input(bytes.to_vec())).unwrap();
        let last = f.metadata.last().unwrap();
        last.payload.end as usize
    }

    #[test]
    fn rejects_bad_magic_and_version() {
        let mut b = sample_file();
        b[..4].copy_from_slice(b"GGML");
        rejects(b, &["not a GGUF file", "GGML"]);
        let mut b = sample_file();
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        rejects(b, &["version 1"]);
        let mut b = sample_file();
        b[4..8].copy_from_slice(&4u32.to_le_bytes());
        rejects(b, &["version 4"]);
        rejects(b"GG".to_vec(), &["magic", "truncated"]);
    }

    #[test]
    fn rejects_counts_past_the_end() {
        let mut b = sample_file();
        b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        rejects(b, &["more than the"]);
        let mut b = sample_file();
        b[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
        rejects(b, &["metadata entries"]);
    }

    #[test]
    fn rejects_lengths_past_the_end() {
        // The first key's length.
        let mut b = sample_file();
        b[24..32].copy_from_slice(&(1u64 << 50).to_le_bytes());
        rejects(b, &["metadata key #0", "string length"]);
        // The token array's count: key string, type tag, element type, then the count.
        let mut b = sample_file();
        let key = b"tokenizer.ggml.tokens";
        let at = b.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 8;
        b[at..at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
        rejects(b, &["tokenizer.ggml.tokens", "array of", "past the end"]);
        // A truncated header.
        let b = sample_file();
        rejects(b[..40].to_vec(), &["truncated"]);
    }

    #[test]
    fn rejects_unknown_types() {
        let mut b = sample_file();
        let key = b"llama.block_count";
        let at = b.windows(key.len()).position(|w| w == key).unwrap() + key.len();
        b[at..at + 4].copy_from_slice(&13u32.to_le_bytes());
        rejects(b, &["llama.block_count", "unknown type 13"]);
        // Tensor `a`: name, n_dims, one extent, then the type.
        let mut b = sample_file();
        let at = infos_start(&b) + 8 + 1 + 4 + 8;
        b[at..at + 4].copy_from_slice(&4u32.to_le_bytes());
        rejects(b, &["tensor `a`", "unknown ggml type 4"]);
    }

    #[test]
    fn rejects_bad_tensor_infos() {
        let base = sample_file();
        let a = infos_start(&base);
        // Offset of `a` misaligned.
        let mut b = base.clone();
        let off = a + 8 + 1 + 4 + 8 + 4;
        b[off..off + 8].copy_from_slice(&3u64.to_le_bytes());
        rejects(b, &["tensor `a`", "not a multiple of the alignment"]);
        // Offset of `a` past the end.
        let mut b = base.clone();
        b[off..off + 8].copy_from_slice(&(1u64 << 20).to_le_bytes());
        rejects(b, &["tensor `a`", "runs past the end"]);
        // `a` moved onto `b`'s data.
        let mut b = base.clone();
        b[off..off + 8].copy_from_slice(&32u64.to_le_bytes());
        rejects(b, &["overlaps"]);
        // Too many dimensions.
        let mut b = base.clone();
        b[a + 9..a + 13].copy_from_slice(&5u32.to_le_bytes());
        rejects(b, &["tensor `a`", "5 dimensions"]);
        // Q8_0 rows that are not whole blocks: `b`'s first extent 64 -> 65.
        let mut b = base.clone();
        let at = a + 8 + 1 + 4 + 8 + 4 + 8 + 8 + 1 + 4;
        b[at..at + 8].copy_from_slice(&65u64.to_le_bytes());
        rejects(b, &["tensor `b`", "whole blocks of 32"]);
        // Truncated data.
        let b = base[..base.len() - 40].to_vec();
        rejects(b, &["tensor `c`", "truncated"]);
    }

    #[test]
    fn rejects_duplicates_and_bad_alignment() {
        let mut m = Metadata::new();
        m.set("k.a", Value::U8(1));
        m.set("k.b", Value::U8(2));
        m.set(ALIGNMENT_KEY, Value::U32(32));
        let tensors = [
            TensorSpec {
                name: "t.a".into(),
                ty: TensorType::F32,
                ne: vec![1],
            },
            TensorSpec {
                name: "t.b".into(),
                ty: TensorType::F32,
                ne: vec![1],
            },
        ];
        let layout = GgufLayout::new(&m, &tensors).unwrap();
        let mut w = GgufWriter::new(Vec::new(), layout).unwrap();
        w.write(&[0u8; 8]).unwrap();
        let good = w.finish().unwrap();
        let patch = |from: &[u8], to: &[u8]| {
            let mut b = good.clone();
            let at = b.windows(from.len()).position(|w| w == from).unwrap();
            b[at..at + to.len()].copy_from_slice(to);
            b
        };
        rejects(patch(b"k.b", b"k.a"), &["`k.a` appears twice"]);
        rejects(patch(b"t.b", b"t.a"), &["`t.a` appears twice"]);
        let key = ALIGNMENT_KEY.as_bytes();
        let mut b = good.clone();
        let at = b.windows(key.len()).position(|w| w == key).unwrap() + key.len() + 4;
        b[at..at + 4].copy_from_slice(&48u32.to_le_bytes());
        rejects(b, &["general.alignment", "power of two"]);
    }
}
