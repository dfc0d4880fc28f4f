//! Exporting: a validated [`Plan`] of requested outputs, and the single pass that streams every
//! tensor once through dequantization and merging into all output writers.

pub mod gguf_output;
pub mod hf_checkpoint;
pub mod lora_gguf;
pub mod lora_output;
pub mod model_card;
pub mod nf4_checkpoint;
pub mod plan;
pub mod run;
pub mod sharded;
pub mod writer;

pub use plan::{ExportOptions, OutputKind, Plan, StreamTensor};
pub use run::{export, Event, Report};
