//! File formats, each reading from [`crate::io::InputFile`] byte sources and writing to plain
//! `std::io::Write` sinks, never from paths.

pub mod gguf;
pub mod hf_index;
pub mod safetensors;
