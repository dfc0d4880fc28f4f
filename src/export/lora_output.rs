//! The `lora` output: the adapter as normalized PEFT files (sorted tensors with the standard
//! `{"format": "pt"}` metadata, `target_modules` in a stable order) and a model card.

use super::hf_checkpoint::write_file;
use super::model_card::model_card;
use super::plan::{OutputKind, Plan};
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
    write_file(
        out,
        "lora/README.md",
        model_card(OutputKind::Lora, plan, Some(adapter)).as_bytes(),
    )
}
