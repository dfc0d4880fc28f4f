//! The `lora` output: the adapter as normalized PEFT files (sorted tensors with the standard
//! `{"format": "pt"}` metadata, `target_modules` in a stable order) and a model card.

use super::hf_checkpoint::write_file;
use super::plan::Plan;
use crate::error::{Error, Result};
use crate::formats::safetensors::{SafetensorsLayout, TensorSpec};
use crate::io::OutputDir;
use crate::lora::config::TargetModules;
use crate::lora::Adapter;
use crate::model::TOKENIZER_FILES;
use serde_json::Value;
use std::io::Write;

/// Bytes copied per read, so large adapters (or embedding copies) never sit whole in memory.
const COPY_CHUNK: u64 = 8 << 20;

/// Writes `lora/` for `adapter`.
pub fn write_lora(out: &dyn OutputDir, adapter: &Adapter, plan: &Plan) -> Result<()> {
    let mut config = adapter.config.raw.clone();
    if let Some(TargetModules::List(mut list)) = adapter.config.target_modules.clone() {
        // PEFT writes this list from a set, so its order changes between runs; fix it.
        list.sort();
        config.insert("target_modules".into(), Value::from(list));
    }
    let mut json = serde_json::to_vec_pretty(&config).expect("config serializes");
    json.push(b'\n');
    write_file(out, "lora/adapter_config.json", &json)?;

    let mut tensors: Vec<_> = adapter.weights.tensors.iter().collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
        })
        .collect();
    let layout = SafetensorsLayout::new(&specs, &[("format".to_string(), "pt".to_string())].into());
    let name = "lora/adapter_model.safetensors";
    let mut file = out.create(name)?;
    layout
        .write_header(&mut file)
        .map_err(|e| Error::io(name, e))?;
    let mut buf = Vec::new();
    for t in tensors {
        let mut at = t.bytes.start;
        while at < t.bytes.end {
            let n = (t.bytes.end - at).min(COPY_CHUNK) as usize;
            buf.resize(n, 0);
            adapter.weights.file.read_at(at, &mut buf)?;
            file.write_all(&buf).map_err(|e| Error::io(name, e))?;
            at += n as u64;
        }
    }
    file.commit()?;

    for tok in TOKENIZER_FILES {
        if let Some(f) = adapter.dir.open(tok)? {
            write_file(out, &format!("lora/{tok}"), &f.read_all()?)?;
        }
    }
    write_file(out, "lora/README.md", model_card(adapter, plan).as_bytes())
}

fn model_card(adapter: &Adapter, plan: &Plan) -> String {
    let c = &adapter.config;
    let base = c.base_model.clone().unwrap_or_else(|| "unknown".into());
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
    let mut card = format!(
        "---\nbase_model: {base}\nlibrary_name: peft\ntags:\n- lora\n- llm-export\n---\n\n# LoRA adapter\n\n\
         A PEFT LoRA adapter for `{base}`, exported by llm-export.\n\n\
         - rank: {}\n- alpha: {}\n- scaling: {scaling}\n- target modules: {targets}\n",
        c.r, c.alpha
    );
    if c.use_dora {
        card.push_str("- DoRA: yes\n");
    }
    if !c.modules_to_save.is_empty() {
        card.push_str(&format!(
            "- fully trained modules: {}\n",
            c.modules_to_save.join(", ")
        ));
    }
    for note in &plan.notes {
        card.push_str(&format!("\nNote: {note}.\n"));
    }
    card
}
