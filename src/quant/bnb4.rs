//! TEMP STUB (not to be committed)
#![allow(missing_docs, unused)]
use crate::model::FloatType;
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct QuantState {
    pub quant_type: String,
    pub blocksize: usize,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub nested_blocksize: Option<usize>,
    pub nested_dtype: Option<String>,
    pub nested_offset: Option<f32>,
}
impl QuantState {
    pub fn from_json_bytes(b: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(b).map_err(|e| e.to_string())
    }
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap()
    }
}
pub enum Bnb4Kind {
    Nf4,
    Fp4,
}
impl Bnb4Kind {
    pub fn code_table(&self) -> &'static [f32; 16] {
        unimplemented!()
    }
}
pub fn unnest_absmax(
    codes: &[u8],
    na: &[f32],
    nm: &[f32],
    s: &QuantState,
) -> Result<Vec<f32>, String> {
    unimplemented!()
}
pub fn dequantize(
    packed: &[u8],
    nib: usize,
    qm: &[f32],
    absmax: &[f32],
    bs: usize,
    start: usize,
    dtype: FloatType,
    out: &mut [f32],
) -> Result<(), String> {
    unimplemented!()
}
pub fn quantize(k: Bnb4Kind, x: &[f32], bs: usize, codes: &mut [u8], absmax: &mut [f32]) {
    unimplemented!()
}
pub struct DoubleQuant {
    pub codes: Vec<u8>,
    pub nested_absmax: Vec<f32>,
    pub offset: f32,
}
pub fn double_quantize(a: &[f32], nb: usize) -> DoubleQuant {
    unimplemented!()
}
pub fn dynamic_map() -> [f32; 256] {
    unimplemented!()
}
