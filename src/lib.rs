//! llm-export: turn a fine-tuned LLM (a PEFT LoRA adapter on a 16-bit or bitsandbytes 4-bit
//! base) into the formats people deploy, in one streaming pass with bounded memory.
//!
//! Data flows one way: sources -> tensor stream (dequantize, merge) -> writers -> sinks.
#![deny(missing_docs)]

pub mod dtype;
pub mod error;
pub mod export;
pub mod formats;
pub mod inspect;
pub mod io;
pub mod kernels;
pub mod lora;
pub mod model;
pub mod net;
pub mod ollama;
pub mod quant;

pub use error::{Error, Result};
