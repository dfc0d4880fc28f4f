//! Human-readable text for `inspect`.

use llm_export::inspect::{Summary, TensorLine};
use std::fmt::Write;

fn tensors(out: &mut String, lines: &[TensorLine]) {
    for t in lines {
        let _ = writeln!(out, "  {:<60} {:>6} {:?}", t.name, t.dtype, t.shape);
    }
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.2}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}K", n as f64 / 1e3),
        n => n.to_string(),
    }
}

pub fn describe(summary: &Summary, list_tensors: bool) -> String {
    let mut out = String::new();
    match summary {
        Summary::Model(m) => {
            let arch = m
                .architecture
                .as_deref()
                .or(m.model_type.as_deref())
                .unwrap_or("unknown");
            let _ = writeln!(
                out,
                "model: {arch} ({} parameters, {})",
                human(m.parameters),
                m.dtype
            );
            let counts: Vec<String> = m.dtypes.iter().map(|(d, n)| format!("{n} {d}")).collect();
            let _ = writeln!(out, "tensors: {} ({})", m.tensors.len(), counts.join(", "));
            if let Some(q) = &m.quantization {
                let dq = if q.double_quant {
                    ", double-quantized absmax"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "4-bit: bitsandbytes {} blocksize {}{dq}, {} tensors, dequantizes to {}",
                    q.quant_type, q.blocksize, q.tensors, q.dtype
                );
            }
            if list_tensors {
                tensors(&mut out, &m.tensors);
            }
        }
        Summary::Adapter(a) => {
            let ranks: Vec<String> = a.ranks.iter().map(usize::to_string).collect();
            let scaling = if a.rslora {
                "alpha/sqrt(r) (rsLoRA)"
            } else {
                "alpha/r"
            };
            let _ = writeln!(
                out,
                "adapter: LoRA{} for {}",
                if a.dora { " (DoRA)" } else { "" },
                a.base_model.as_deref().unwrap_or("unknown base")
            );
            let _ = writeln!(
                out,
                "rank: {} (in weights: {}), alpha: {}, scaling: {scaling}",
                a.r,
                ranks.join(", "),
                a.alpha
            );
            let _ = writeln!(out, "targets: {}", a.target_modules.join(", "));
            if !a.modules_to_save.is_empty() {
                let _ = writeln!(out, "modules_to_save: {}", a.modules_to_save.join(", "));
            }
            let _ = writeln!(
                out,
                "weights: {} with LoRA, {} replaced whole",
                a.lora_weights, a.replaced_weights
            );
            if list_tensors {
                tensors(&mut out, &a.tensors);
            }
        }
        Summary::Safetensors {
            tensors: lines,
            metadata,
        } => {
            let _ = writeln!(
                out,
                "safetensors: {} tensors, metadata {:?}",
                lines.len(),
                metadata
            );
            if list_tensors {
                tensors(&mut out, lines);
            }
        }
        Summary::Gguf {
            version,
            metadata,
            tensors: lines,
            file_type,
            bits_per_weight,
            types,
        } => {
            let _ = writeln!(
                out,
                "gguf v{version}: {}{} tensors, {} metadata entries, {bits_per_weight:.2} bits per weight",
                file_type.as_deref().map_or(String::new(), |t| format!("{t}, ")),
                lines.len(),
                metadata.len()
            );
            let shares: Vec<String> = types
                .iter()
                .map(|t| {
                    format!(
                        "{} {} ({} weights, {} bits each)",
                        t.tensors,
                        t.dtype,
                        human(t.weights),
                        t.bits_per_weight
                    )
                })
                .collect();
            let _ = writeln!(out, "tensor types: {}", shares.join(", "));
            for m in metadata {
                // Chat templates run to kilobytes; the JSON output has them whole.
                let value: String = match m.value.char_indices().nth(96) {
                    Some((cut, _)) => format!("{}...", &m.value[..cut]),
                    None => m.value.clone(),
                };
                let _ = writeln!(out, "  {:<48} {:>4} {value}", m.key, m.ty);
            }
            if list_tensors {
                tensors(&mut out, lines);
            }
        }
    }
    out
}
