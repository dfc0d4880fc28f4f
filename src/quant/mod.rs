//! Numeric formats: bitsandbytes 4-bit (NF4/FP4) and ggml block types.

pub mod bnb4;
pub mod ggml;
