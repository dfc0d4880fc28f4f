//! Command-line arguments as typed (clap), before validation into a plan.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Export fine-tuned LLMs (a PEFT LoRA adapter on a 16-bit or bitsandbytes 4-bit base) to merged
/// checkpoints and other deployable formats, in one streaming pass with bounded memory.
#[derive(Parser, Debug)]
#[command(name = "llm-export", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Merge and convert a base model (+ adapter) into one or more outputs.
    #[command(after_help = "\
Outputs (--to, repeatable; one pass over the input serves them all):
  lora           the adapter as normalized PEFT files, in <out>/lora/
  merged_16bit   base + adapter merged in f32 and rounded once, in <out>/merged_16bit/
  merged_4bit    merged, then re-quantized to bitsandbytes NF4 + double quant, in <out>/merged_4bit/
  gguf:<type>    merged GGUF for llama.cpp/Ollama, as <out>/<Name>-<TYPE>.gguf; type f32, f16, bf16,
                 q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m,
                 q5_k_s, q5_k_m or q6_k (llama-quantize's mixes)
  ollama         a Modelfile for the first GGUF of the run (--ollama-create NAME also creates the
                 model in a local Ollama)
  lora-gguf[:<type>]
                 the adapter as a llama.cpp GGUF LoRA (default f16; f32, bf16, q8_0), as
                 <out>/<Name>-<TYPE>-LoRA.gguf; rsLoRA and rank/alpha patterns are expressed exactly

Example:
  llm-export export examples/tiny-llama --adapter examples/tiny-lora --to merged_16bit --to lora --out out/")]
    Export(ExportArgs),
    /// Summarize a model folder, an adapter folder, a .safetensors or a .gguf file.
    Inspect(InspectArgs),
    /// Write an Ollama Modelfile for an existing GGUF (its TEMPLATE converted from the GGUF's
    /// chat template), and optionally create the model in a local Ollama.
    #[command(after_help = "\
Example:
  llm-export modelfile out/Model-Q4_K_M.gguf --ollama-create my-model:latest")]
    Modelfile(ModelfileArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Base model folder (config.json + safetensors; 16-bit or bitsandbytes 4-bit).
    pub base: PathBuf,
    /// PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long, short = 'a')]
    pub adapter: Option<PathBuf>,
    /// Output to produce; repeat for several (lora, merged_16bit, merged_4bit, gguf:<type>, lora-gguf[:<type>]).
    #[arg(long = "to", short = 't', required = true, value_name = "OUTPUT")]
    pub outputs: Vec<String>,
    /// Folder to write outputs into (created if missing).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// dtype of merged_16bit: bf16 or f16 (default: the base model's dtype).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Largest safetensors shard, e.g. 5GB, 500MB, 2GiB.
    #[arg(long, default_value = "5GB")]
    pub max_shard_size: String,
    /// Write non-finite merged values instead of stopping.
    #[arg(long)]
    pub allow_nonfinite: bool,
    /// Replace outputs that already exist in --out.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub ollama: OllamaArgs,
    /// Worker threads (default: all cores).
    #[arg(long, short = 'j')]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A model folder, an adapter folder, a .safetensors or a .gguf file.
    pub path: PathBuf,
    /// List every tensor.
    #[arg(long)]
    pub tensors: bool,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Args, Debug)]
pub struct ModelfileArgs {
    /// The GGUF the Modelfile's FROM names (the Modelfile is written next to it).
    pub gguf: PathBuf,
    /// A LoRA GGUF in the same folder, named by ADAPTER.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Print the Modelfile instead of writing it.
    #[arg(long)]
    pub print: bool,
    /// Replace an existing Modelfile.
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub ollama: OllamaArgs,
    #[command(flatten)]
    pub report: ReportArgs,
}

#[derive(Args, Debug)]
pub struct OllamaArgs {
    /// Create the model in a local Ollama under this name (`[namespace/]model[:tag]`).
    #[arg(long, value_name = "NAME")]
    pub ollama_create: Option<String>,
    /// The Ollama server to push to.
    #[arg(long, env = "OLLAMA_HOST", default_value = llm_export::ollama::DEFAULT_HOST)]
    pub ollama_host: String,
}

#[derive(Args, Debug, Clone, Copy)]
pub struct ReportArgs {
    /// Print one JSON document on stdout (for scripts); no progress bars.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars or notes; errors only.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
}
