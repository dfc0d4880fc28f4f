//! PEFT LoRA adapters: configuration, the mapping from adapter tensors to base weights, and the
//! merge arithmetic applied to row chunks.

pub mod adapter;
pub mod config;
pub mod merge;

pub use adapter::{Adapter, AdapterEntry, LoraPair};
pub use config::LoraConfig;
pub use merge::Delta;
