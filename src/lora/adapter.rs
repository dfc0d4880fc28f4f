//! An adapter folder (`adapter_config.json` + `adapter_model.safetensors`) resolved against base
//! weight names: which base weights get a low-rank delta and which are replaced whole.

use super::config::LoraConfig;
use crate::error::{Error, Result};
use crate::formats::safetensors::{RawTensor, SafetensorsFile};
use crate::io::InputDir;
use std::collections::BTreeMap;
use std::sync::Arc;

/// PEFT's prefix on every saved key: the PeftModel wrapping the base model.
const PEFT_PREFIX: &str = "base_model.model.";

/// A low-rank pair for one base weight.
#[derive(Debug, Clone)]
pub struct LoraPair {
    /// Module name, e.g. `model.layers.0.self_attn.q_proj`.
    pub module: String,
    /// `lora_A` (`[r, in]`; for embeddings `lora_embedding_A`, `[r, num_embeddings]`).
    pub a: RawTensor,
    /// `lora_B` (`[out, r]`; for embeddings `lora_embedding_B`, `[dim, r]`).
    pub b: RawTensor,
    /// DoRA magnitude vector, one entry per output row.
    pub magnitude: Option<RawTensor>,
    /// The delta is stored transposed relative to the weight (embeddings, `fan_in_fan_out`).
    pub transposed: bool,
    /// An embedding LoRA (`lora_embedding_A/B`).
    pub embedding: bool,
    /// alpha/r, or alpha/sqrt(r) with rsLoRA, after rank/alpha patterns.
    pub scale: f64,
    /// Rank of this pair.
    pub rank: usize,
    /// Alpha of this pair.
    pub alpha: f64,
}

/// What the adapter does to one base weight: replace it, add a delta, or both (a resized
/// embedding saved whole beside its LoRA pair).
#[derive(Debug, Clone, Default)]
pub struct AdapterEntry {
    /// A trained copy that replaces the base weight (`modules_to_save`, resized embeddings).
    pub replacement: Option<RawTensor>,
    /// A (possibly DoRA-rescaled) low-rank delta added on top.
    pub lora: Option<LoraPair>,
}

/// An opened adapter.
pub struct Adapter {
    /// The folder it came from.
    pub dir: Arc<dyn InputDir>,
    /// Its configuration.
    pub config: LoraConfig,
    /// `adapter_model.safetensors`.
    pub weights: Arc<SafetensorsFile>,
    /// Base weight name -> what to do with it.
    pub entries: BTreeMap<String, AdapterEntry>,
}

#[derive(Default)]
struct Parts {
    a: Option<RawTensor>,
    b: Option<RawTensor>,
    magnitude: Option<RawTensor>,
    embedding: bool,
}

impl Adapter {
    /// Opens an adapter folder and pairs up its tensors.
    pub fn open(dir: Arc<dyn InputDir>) -> Result<Self> {
        let config = LoraConfig::read(&dir.require(
            "adapter_config.json",
            "a PEFT adapter folder holds adapter_config.json",
        )?)?;
        let weights_file = match dir.open("adapter_model.safetensors")? {
            Some(f) => f,
            None if dir.open("adapter_model.bin")?.is_some() => {
                return Err(Error::missing(
                    format!("{}/adapter_model.safetensors", dir.display()),
                    "only adapter_model.bin (pickle) was found; re-save with save_pretrained(safe_serialization=True)",
                ))
            }
            None => return Err(Error::missing(format!("{}/adapter_model.safetensors", dir.display()), "the adapter weights are missing")),
        };
        let weights = Arc::new(SafetensorsFile::open(weights_file)?);
        let path = weights.file.path.clone();
        let mut pairs: BTreeMap<String, Parts> = BTreeMap::new();
        let mut entries: BTreeMap<String, AdapterEntry> = BTreeMap::new();
        let mut replacements: BTreeMap<String, (u8, RawTensor)> = BTreeMap::new();
        for t in &weights.tensors {
            let key = t.name.strip_prefix(PEFT_PREFIX).unwrap_or(&t.name);
            let (module, role) = split_role(key);
            match role {
                Some(role) => {
                    let p = pairs.entry(module.to_string()).or_default();
                    let slot = match role {
                        Role::A | Role::EmbA => &mut p.a,
                        Role::B | Role::EmbB => &mut p.b,
                        Role::Magnitude => &mut p.magnitude,
                        Role::Bias => {
                            return Err(Error::tensor(&path, &t.name, "LoRA biases (lora_bias=True) are not supported yet; train without lora_bias"))
                        }
                    };
                    p.embedding |= matches!(role, Role::EmbA | Role::EmbB);
                    *slot = Some(t.clone());
                }
                None => {
                    if let Some((target, rank)) = whole_weight(key) {
                        let best = replacements.get(&target).is_some_and(|(r, _)| *r >= rank);
                        if !best {
                            replacements.insert(target, (rank, t.clone()));
                        }
                    }
                }
            }
        }
        for (target, (_, t)) in replacements {
            entries.entry(target).or_default().replacement = Some(t);
        }
        for (module, p) in pairs {
            let (a, b) = match (p.a, p.b) {
                (Some(a), Some(b)) => (a, b),
                (a, _) => {
                    let missing = if a.is_none() { "lora_A" } else { "lora_B" };
                    return Err(Error::tensor(
                        &path,
                        &module,
                        format!("{missing} is missing for this module"),
                    ));
                }
            };
            if a.shape.len() != 2 || b.shape.len() != 2 || a.shape[0] != b.shape[1] {
                return Err(Error::tensor(
                    &path,
                    &module,
                    format!(
                        "lora_A {:?} and lora_B {:?} do not form a low-rank pair",
                        a.shape, b.shape
                    ),
                ));
            }
            let rank = a.shape[0];
            let (_, alpha) = config.rank_alpha(&module);
            if p.magnitude.is_some() && !config.use_dora {
                return Err(Error::tensor(
                    &path,
                    &module,
                    "has a DoRA magnitude vector but use_dora is false in adapter_config.json",
                ));
            }
            let scale = config.scale(rank, alpha);
            let transposed = p.embedding || config.fan_in_fan_out;
            let weight = format!("{module}.weight");
            entries.entry(weight).or_default().lora = Some(LoraPair {
                module,
                a,
                b,
                magnitude: p.magnitude,
                transposed,
                embedding: p.embedding,
                scale,
                rank,
                alpha,
            });
        }
        if config.use_dora
            && !entries
                .values()
                .any(|e| e.lora.as_ref().is_some_and(|p| p.magnitude.is_some()))
        {
            return Err(Error::format(
                &path,
                "use_dora is true but no lora_magnitude_vector tensors were saved",
            ));
        }
        Ok(Adapter {
            dir,
            config,
            weights,
            entries,
        })
    }

    /// Reads one adapter tensor as f32.
    pub fn read_f32(&self, t: &RawTensor) -> Result<Vec<f32>> {
        let bytes = self.weights.read(t)?;
        let mut out = vec![0f32; t.numel()];
        crate::model::tensor::decode_floats(t.dtype, &bytes, &mut out)
            .map_err(|m| Error::tensor(&self.weights.file.path, &t.name, m))?;
        Ok(out)
    }

    /// Distinct LoRA ranks, for summaries.
    pub fn ranks(&self) -> Vec<usize> {
        let mut r: Vec<usize> = self
            .entries
            .values()
            .filter_map(|e| Some(e.lora.as_ref()?.rank))
            .collect();
        r.sort();
        r.dedup();
        r
    }
}

/// The base weight a whole saved tensor stands for, and how authoritative it is. PEFT saves a
/// `modules_to_save` module three times (`X.modules_to_save.weight`, the trained copy;
/// `X.original_module.weight`, the untrained one; and `X.weight`, equal to the trained copy), and
/// a LoRA-wrapped embedding beside a resized vocabulary as `X.base_layer.weight`.
fn whole_weight(key: &str) -> Option<(String, u8)> {
    if key.contains(".original_module.") {
        return None;
    }
    if key.contains(".modules_to_save.") {
        return Some((key.replace(".modules_to_save.", "."), 2));
    }
    if key.contains(".base_layer.") {
        return Some((key.replace(".base_layer.", "."), 0));
    }
    Some((key.to_string(), 1))
}

#[derive(Clone, Copy)]
enum Role {
    A,
    B,
    EmbA,
    EmbB,
    Magnitude,
    Bias,
}

/// Splits a PEFT key (prefix removed) into module name and LoRA role; `None` for whole weights.
fn split_role(key: &str) -> (&str, Option<Role>) {
    const ROLES: [(&str, Role); 7] = [
        (".lora_A.weight", Role::A),
        (".lora_B.weight", Role::B),
        (".lora_B.bias", Role::Bias),
        (".lora_embedding_A", Role::EmbA),
        (".lora_embedding_B", Role::EmbB),
        (".lora_magnitude_vector.weight", Role::Magnitude),
        (".lora_magnitude_vector", Role::Magnitude),
    ];
    for (suffix, role) in ROLES {
        if let Some(module) = key.strip_suffix(suffix) {
            return (module, Some(role));
        }
    }
    (key, None)
}
