//! PEFT `adapter_config.json`: rank, alpha, rsLoRA, per-module patterns and targets.

use crate::error::{Error, Result};
use crate::io::InputFile;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `target_modules`: a list of module-name suffixes, or one regex over the full module name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// Suffix names such as `q_proj`.
    List(Vec<String>),
    /// A full-match regular expression.
    Regex(String),
}

/// The fields of a PEFT LoRA config that change the merge; the raw JSON is kept for output.
#[derive(Debug, Clone)]
pub struct LoraConfig {
    /// Where it was read from.
    pub path: String,
    /// Default rank.
    pub r: usize,
    /// Default alpha.
    pub alpha: f64,
    /// Scale by alpha/sqrt(r) instead of alpha/r.
    pub use_rslora: bool,
    /// DoRA (weight-decomposed) adapter.
    pub use_dora: bool,
    /// Weights stored transposed (GPT-2 Conv1D).
    pub fan_in_fan_out: bool,
    /// Per-module rank overrides as (module-name pattern, rank), in file order.
    pub rank_pattern: Vec<(String, usize)>,
    /// Per-module alpha overrides as (module-name pattern, alpha), in file order.
    pub alpha_pattern: Vec<(String, f64)>,
    /// What the adapter targets.
    pub target_modules: Option<TargetModules>,
    /// Modules trained in full and saved whole.
    pub modules_to_save: Vec<String>,
    /// `base_model_name_or_path`.
    pub base_model: Option<String>,
    /// The whole JSON object.
    pub raw: Map<String, Value>,
}

#[derive(Deserialize)]
struct RawLoraConfig {
    peft_type: Option<String>,
    r: usize,
    lora_alpha: f64,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    fan_in_fan_out: bool,
    // serde_json keeps file order (preserve_order), which is the order PEFT tries patterns in.
    #[serde(default)]
    rank_pattern: Map<String, Value>,
    #[serde(default)]
    alpha_pattern: Map<String, Value>,
    target_modules: Option<TargetModules>,
    modules_to_save: Option<Vec<String>>,
    base_model_name_or_path: Option<String>,
}

impl LoraConfig {
    /// Parses `adapter_config.json`; adapters other than LoRA are refused.
    pub fn read(file: &InputFile) -> Result<Self> {
        let bytes = file.read_all()?;
        let raw: Map<String, Value> = serde_json::from_slice(&bytes)
            .map_err(|e| Error::format(&file.path, format!("not a JSON object: {e}")))?;
        let c: RawLoraConfig = serde_json::from_value(Value::Object(raw.clone()))
            .map_err(|e| Error::format(&file.path, format!("not a PEFT LoRA config: {e}")))?;
        if let Some(kind) = c.peft_type.as_deref().filter(|k| *k != "LORA") {
            return Err(Error::format(
                &file.path,
                format!("peft_type is {kind}; only LORA adapters can be merged"),
            ));
        }
        if c.r == 0 {
            return Err(Error::format(&file.path, "r is 0"));
        }
        if let Some(TargetModules::Regex(re)) = &c.target_modules {
            Regex::new(re).map_err(|e| {
                Error::format(
                    &file.path,
                    format!("target_modules regex does not compile: {e}"),
                )
            })?;
        }
        Ok(LoraConfig {
            path: file.path.clone(),
            r: c.r,
            alpha: c.lora_alpha,
            use_rslora: c.use_rslora,
            use_dora: c.use_dora,
            fan_in_fan_out: c.fan_in_fan_out,
            rank_pattern: numbers(&file.path, "rank_pattern", c.rank_pattern, |v| {
                v.as_u64().map(|r| r as usize)
            })?,
            alpha_pattern: numbers(&file.path, "alpha_pattern", c.alpha_pattern, Value::as_f64)?,
            target_modules: c.target_modules,
            modules_to_save: c.modules_to_save.unwrap_or_default(),
            base_model: c.base_model_name_or_path,
            raw,
        })
    }

    /// Rank and alpha of `module` (a full module name such as `model.layers.0.self_attn.q_proj`),
    /// applying `rank_pattern` / `alpha_pattern` the way PEFT matches them: the first pattern key
    /// that matches the end of the module name at a `.` boundary.
    pub fn rank_alpha(&self, module: &str) -> (usize, f64) {
        let r = pattern_value(&self.rank_pattern, module).unwrap_or(self.r);
        let alpha = pattern_value(&self.alpha_pattern, module).unwrap_or(self.alpha);
        (r, alpha)
    }

    /// The merge scale for a module of rank `r` and the given alpha.
    pub fn scale(&self, r: usize, alpha: f64) -> f64 {
        if self.use_rslora {
            alpha / (r as f64).sqrt()
        } else {
            alpha / r as f64
        }
    }
}

fn numbers<T>(
    path: &str,
    field: &str,
    map: Map<String, Value>,
    num: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<(String, T)>> {
    map.into_iter()
        .map(|(k, v)| match num(&v) {
            Some(n) => Ok((k, n)),
            None => Err(Error::format(
                path,
                format!("{field}[{k:?}] is {v}, not a number"),
            )),
        })
        .collect()
}

fn pattern_value<T: Copy>(patterns: &[(String, T)], module: &str) -> Option<T> {
    patterns.iter().find_map(|(key, v)| {
        let re = Regex::new(&format!(r"^(.*\.)?(?:{key})$")).ok()?;
        re.is_match(module).then_some(*v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_at_module_boundaries() {
        let p = [("layers.1.self_attn.q_proj".to_string(), 4)];
        assert_eq!(
            pattern_value(&p, "model.layers.1.self_attn.q_proj"),
            Some(4)
        );
        assert_eq!(pattern_value(&p, "model.layers.11.self_attn.q_proj"), None);
        assert_eq!(pattern_value(&p, "model.layers.1.self_attn.q_proj2"), None);
    }
}
