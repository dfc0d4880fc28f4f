//! README.md model cards for the Hugging Face folders we write: what the files are, how they
//! were made, and what the user should know (e.g. that a 4-bit base limits accuracy).

use super::gguf_output::written_by_converter;
use super::plan::{OutputKind, Plan};
use crate::lora::config::TargetModules;
use crate::lora::Adapter;
use std::fmt::Write;

/// The card for output `kind` of `plan`.
pub fn model_card(kind: OutputKind, plan: &Plan, adapter: Option<&Adapter>) -> String {
    let base = adapter
        .and_then(|a| a.config.base_model.clone())
        .or_else(|| {
            plan.merged_config
                .raw
                .get("_name_or_path")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "unknown".into());
    let (library, tags, title) = match kind {
        OutputKind::Lora => ("peft", "- lora\n", "LoRA adapter"),
        OutputKind::Merged16 => ("transformers", "- merged\n", "Merged model (16-bit)"),
        OutputKind::Merged4 => (
            "transformers",
            "- merged\n- 4-bit\n- bitsandbytes\n",
            "Merged model (bitsandbytes NF4)",
        ),
        OutputKind::Gguf(_) => ("gguf", "- gguf\n- llama.cpp\n", "Merged model (GGUF)"),
        OutputKind::LoraGguf(_) => (
            "gguf",
            "- gguf\n- lora\n- llama.cpp\n",
            "LoRA adapter (GGUF)",
        ),
        OutputKind::Ollama => ("gguf", "- gguf\n- ollama\n", "Ollama model"),
    };
    let mut card = format!("---\nbase_model: {base}\nlibrary_name: {library}\ntags:\n{tags}- llm-export\n---\n\n# {title}\n\n");
    let _ = match kind {
        OutputKind::Lora => writeln!(card, "A PEFT LoRA adapter for `{base}`, exported by llm-export."),
        OutputKind::Merged16 => writeln!(
            card,
            "`{base}` with the adapter merged in: W + scale * (B @ A) computed in float32 and rounded once to {}, \
             exported by llm-export.",
            plan.merged_dtype().torch_name()
        ),
        OutputKind::Merged4 => writeln!(
            card,
            "`{base}` with the adapter merged in, then quantized to bitsandbytes NF4 with double quantization \
             (blocksize 64), exported by llm-export. Load it with transformers and bitsandbytes."
        ),
        OutputKind::Gguf(mix) => writeln!(
            card,
            "`{base}` with the adapter merged in, converted to GGUF ({mix}) as llama.cpp's \
             convert_hf_to_gguf.py{} does, exported by llm-export.",
            if written_by_converter(mix) { "" } else { " and llama-quantize" }
        ),
        OutputKind::LoraGguf(ty) => writeln!(
            card,
            "A GGUF LoRA adapter ({ty}) for `{base}`, as llama.cpp's convert_lora_to_gguf.py writes it, \
             with PEFT's per-module scales expressed exactly, exported by llm-export."
        ),
        OutputKind::Ollama => writeln!(
            card,
            "An Ollama Modelfile for `{base}` with the adapter merged in; its TEMPLATE reproduces the \
             model's chat template. Create the model with `ollama create NAME -f Modelfile`."
        ),
    };
    if let Some(a) = adapter {
        describe_adapter(&mut card, a);
    }
    for note in &plan.notes {
        let _ = write!(card, "\nNote: {note}.\n");
    }
    card
}

fn describe_adapter(card: &mut String, a: &Adapter) {
    let c = &a.config;
    let targets = match &c.target_modules {
        Some(TargetModules::List(l)) => {
            let mut l = l.clone();
            l.sort();
            l.join(", ")
        }
        Some(TargetModules::Regex(r)) => format!("`{r}` (regex)"),
        None => "not recorded".into(),
    };
    let scaling = if c.use_rslora {
        "alpha/sqrt(r) (rsLoRA)"
    } else {
        "alpha/r"
    };
    let _ = write!(card, "\nAdapter:\n\n- rank: {}\n- alpha: {}\n- scaling: {scaling}\n- target modules: {targets}\n", c.r, c.alpha);
    if c.use_dora {
        card.push_str("- DoRA: yes\n");
    }
    if !c.modules_to_save.is_empty() {
        let _ = writeln!(
            card,
            "- fully trained modules: {}",
            c.modules_to_save.join(", ")
        );
    }
}
