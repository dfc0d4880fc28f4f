//! Tokenizer vocabulary -> GGUF tokenizer metadata, exactly as llama.cpp's `convert_hf_to_gguf.py`
//! (commit 0c1e57098bba) writes it for the llama, mistral, qwen2/qwen3, gemma/gemma2/gemma3 and phi3
//! architectures.
//!
//! Paths, as the converter takes them: SentencePiece `tokenizer.model` (`spm`), phi3's own variant
//! of it, byte-level BPE from tokenizer.json with the pre-tokenizer picked by llama.cpp's check hash
//! (`bpe`), and Llama/Mistral tokenizer.json without tokenizer.model (`llama_hf`); special ids,
//! flags and chat template come from gguf-py's `SpecialVocab` (`special`).
//!
//! The converter builds the `tokenizer.*` keys in a dict where a second write keeps the key's first
//! position; `Kvs` reproduces that, and every loader below writes through it in the converter's
//! order, so [`Vocab::kvs`] lists the keys exactly as they appear in its GGUF.
//!
//! Not covered: Mistral-format folders (tekken.json / consolidated weights, which need
//! mistral-common) and extra templates in an `additional_chat_templates/` subfolder.

mod bpe;
mod files;
mod llama_hf;
mod pre_table;
mod sentencepiece;
mod special;
mod spm;

use crate::error::{Error, Result};
use crate::io::InputDir;
use crate::model::HfConfig;
use files::TokenizerFiles;
use serde_json::{Map, Value};
use special::SpecialVocab;

/// GGUF token types (`gguf.TokenType`).
pub mod token_type {
    /// Ordinary token.
    pub const NORMAL: i32 = 1;
    /// The unknown token.
    pub const UNKNOWN: i32 = 2;
    /// Control token (BOS, EOS, chat markers): never printed.
    pub const CONTROL: i32 = 3;
    /// Added token matched verbatim and printed.
    pub const USER_DEFINED: i32 = 4;
    /// Padding entry that is never produced.
    pub const UNUSED: i32 = 5;
    /// Byte-fallback token `<0xNN>`.
    pub const BYTE: i32 = 6;
}

/// GGUF key names (`gguf.Keys.Tokenizer`).
mod key {
    pub const MODEL: &str = "tokenizer.ggml.model";
    pub const PRE: &str = "tokenizer.ggml.pre";
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    pub const SCORES: &str = "tokenizer.ggml.scores";
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    pub const MERGES: &str = "tokenizer.ggml.merges";
    pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
    pub const CHAT_TEMPLATES: &str = "tokenizer.chat_templates";
    /// Prefix of `tokenizer.ggml.<flag>` and `tokenizer.ggml.<kind>_token_id`.
    pub const GGML: &str = "tokenizer.ggml.";
    pub const TOKEN_ID_SUFFIX: &str = "_token_id";
}

/// Everything `convert_hf_to_gguf.py` writes under `tokenizer.` for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    /// `tokenizer.ggml.model`: `llama` (SentencePiece) or `gpt2` (byte-level BPE).
    pub model: String,
    /// `tokenizer.ggml.pre`: `default` for SentencePiece, else the name llama.cpp's hash table gives.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, padded to the config's `vocab_size` as the converter pads.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (SentencePiece only).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type`, values from [`token_type`].
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges` (BPE only), each `"left right"`.
    pub merges: Option<Vec<String>>,
    /// `(kind, id)` -> `tokenizer.ggml.<kind>_token_id`, in the converter's order. Kinds are the
    /// GGUF key stems: `bos`, `eos`, `unknown`, `seperator` (sic), `padding`, `mask`, `eot`, `eom`.
    pub special_ids: Vec<(String, u32)>,
    /// `(flag, value)` -> `tokenizer.ggml.<flag>`, in the converter's order: `add_bos_token`,
    /// `add_eos_token`, `add_sep_token`, `add_space_prefix`, `normalizer.lowercase`,
    /// `normalizer.strip_accents`.
    pub flags: Vec<(String, bool)>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
    /// Named extra templates from a list-form `chat_template`: `(name, template)` ->
    /// `tokenizer.chat_template.<name>`, with their names in `tokenizer.chat_templates`.
    pub named_chat_templates: Vec<(String, String)>,
    /// Every key above that is written, in the converter's order (see [`Vocab::kvs`]).
    pub key_order: Vec<String>,
}

/// A borrowed GGUF value of one tokenizer key.
#[derive(Debug, Clone, PartialEq)]
pub enum VocabValue<'a> {
    /// A string.
    Str(&'a str),
    /// An array of strings.
    StrArray(Vec<&'a str>),
    /// An array of f32.
    F32Array(&'a [f32]),
    /// An array of i32.
    I32Array(&'a [i32]),
    /// A u32 (token ids).
    U32(u32),
    /// A bool.
    Bool(bool),
}

impl Vocab {
    /// The `tokenizer.*` key/value pairs in the order the converter writes them.
    pub fn kvs(&self) -> Vec<(&str, VocabValue<'_>)> {
        self.key_order
            .iter()
            .filter_map(|k| Some((k.as_str(), self.value(k)?)))
            .collect()
    }

    fn value(&self, k: &str) -> Option<VocabValue<'_>> {
        Some(match k {
            key::MODEL => VocabValue::Str(&self.model),
            key::PRE => VocabValue::Str(self.pre.as_deref()?),
            key::TOKENS => VocabValue::StrArray(self.tokens.iter().map(String::as_str).collect()),
            key::SCORES => VocabValue::F32Array(self.scores.as_deref()?),
            key::TOKEN_TYPE => VocabValue::I32Array(&self.token_types),
            key::MERGES => {
                VocabValue::StrArray(self.merges.as_ref()?.iter().map(String::as_str).collect())
            }
            key::CHAT_TEMPLATE => VocabValue::Str(self.chat_template.as_deref()?),
            key::CHAT_TEMPLATES => VocabValue::StrArray(
                self.named_chat_templates
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect(),
            ),
            _ => {
                if let Some(name) = k.strip_prefix("tokenizer.chat_template.") {
                    let t = self.named_chat_templates.iter().find(|(n, _)| n == name)?;
                    return Some(VocabValue::Str(&t.1));
                }
                let stem = k.strip_prefix(key::GGML)?;
                if let Some(kind) = stem.strip_suffix(key::TOKEN_ID_SUFFIX) {
                    let id = self.special_ids.iter().find(|(n, _)| n == kind)?;
                    return Some(VocabValue::U32(id.1));
                }
                VocabValue::Bool(self.flags.iter().find(|(n, _)| n == stem)?.1)
            }
        })
    }
}

/// A value the converter stores under a tokenizer key.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Strs(Vec<String>),
    F32s(Vec<f32>),
    I32s(Vec<i32>),
    U32(u32),
    Bool(bool),
}

/// The converter's KV dict: overwriting a key keeps its first position.
#[derive(Default)]
struct Kvs(Vec<(String, Val)>);

impl Kvs {
    fn set(&mut self, key: impl Into<String>, val: Val) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = val,
            None => self.0.push((key, val)),
        }
    }

    /// `tokenizer.ggml.<flag>`.
    fn set_flag(&mut self, flag: &str, v: bool) {
        self.set(format!("{}{flag}", key::GGML), Val::Bool(v));
    }

    fn into_vocab(self) -> Vocab {
        let mut v = Vocab {
            model: String::new(),
            pre: None,
            tokens: Vec::new(),
            scores: None,
            token_types: Vec::new(),
            merges: None,
            special_ids: Vec::new(),
            flags: Vec::new(),
            chat_template: None,
            named_chat_templates: Vec::new(),
            key_order: self.0.iter().map(|(k, _)| k.clone()).collect(),
        };
        for (k, val) in self.0 {
            match (k.as_str(), val) {
                (key::MODEL, Val::Str(s)) => v.model = s,
                (key::PRE, Val::Str(s)) => v.pre = Some(s),
                (key::TOKENS, Val::Strs(s)) => v.tokens = s,
                (key::SCORES, Val::F32s(s)) => v.scores = Some(s),
                (key::TOKEN_TYPE, Val::I32s(s)) => v.token_types = s,
                (key::MERGES, Val::Strs(s)) => v.merges = Some(s),
                (key::CHAT_TEMPLATE, Val::Str(s)) => v.chat_template = Some(s),
                (key::CHAT_TEMPLATES, Val::Strs(_)) => {}
                (k, Val::Str(s)) if k.starts_with("tokenizer.chat_template.") => v
                    .named_chat_templates
                    .push((k["tokenizer.chat_template.".len()..].to_string(), s)),
                (k, Val::U32(id)) if k.ends_with(key::TOKEN_ID_SUFFIX) => v.special_ids.push((
                    k[key::GGML.len()..k.len() - key::TOKEN_ID_SUFFIX.len()].to_string(),
                    id,
                )),
                (k, Val::Bool(b)) => v.flags.push((k[key::GGML.len()..].to_string(), b)),
                (k, val) => unreachable!("tokenizer key {k} holds {val:?}"),
            }
        }
        v
    }
}

/// The converter's `hparams`: `config.json` with a `text_config` (multimodal models) lifted to the
/// top level.
fn hparams(config: &HfConfig) -> Map<String, Value> {
    let mut h = config.raw.clone();
    if let Some(Value::Object(text)) = config.raw.get("text_config") {
        h.extend(text.clone());
    }
    h
}

/// `vocab_size` (or the first of `keys` present) as the converter reads it; `None` when absent,
/// null or zero (the converter then falls back to the tokenizer's own size).
fn config_vocab_size(h: &Map<String, Value>, keys: &[&str]) -> Option<usize> {
    let v = keys.iter().find_map(|k| h.get(*k))?;
    v.as_u64().filter(|&n| n > 0).map(|n| n as usize)
}

/// How the converter's `set_vocab` for each supported architecture proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Llama,
    Qwen2,
    Gemma,
    Gemma2,
    Gemma3,
    Phi3,
}

fn family(config: &HfConfig) -> Result<Family> {
    let arch = config
        .raw
        .get("architectures")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::format(
                &config.path,
                "no `architectures` entry; llama.cpp picks the tokenizer conversion by it",
            )
        })?;
    Ok(match arch {
        "LlamaForCausalLM" | "LLaMAForCausalLM" | "MistralForCausalLM" | "MixtralForCausalLM" => {
            Family::Llama
        }
        "Qwen2ForCausalLM" | "Qwen2Model" | "Qwen3ForCausalLM" | "Qwen3Model" => Family::Qwen2,
        "GemmaForCausalLM" => Family::Gemma,
        "Gemma2ForCausalLM" => Family::Gemma2,
        "Gemma3ForCausalLM" | "Gemma3ForConditionalGeneration" => Family::Gemma3,
        "Phi3ForCausalLM" => Family::Phi3,
        other => {
            return Err(Error::usage(format!(
                "{}: tokenizer conversion for architecture {other} is not supported \
                 (supported: llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3, phi3)",
                config.path
            )))
        }
    })
}

/// Reads the tokenizer files in `dir` and produces the GGUF tokenizer metadata the converter would
/// write for a model with `config`.
pub fn load_vocab(dir: &dyn InputDir, config: &HfConfig) -> Result<Vocab> {
    let files = TokenizerFiles::new(dir);
    let h = hparams(config);
    let mut kv = Kvs::default();
    match family(config)? {
        Family::Llama => llama(&files, config, &h, &mut kv)?,
        Family::Qwen2 => spm_or_bpe(&files, config, &h, &mut kv)?,
        Family::Gemma => {
            spm::write_sentencepiece(&files, config, &h, &mut kv)?;
            // The converter adds CodeGemma's fill-in-the-middle ids to every Gemma; of those kinds
            // gguf-py only has a key for `eot`.
            let mut extra = SpecialVocab::load(
                &files,
                config,
                None,
                false,
                &["prefix", "suffix", "middle", "fsep", "eot"],
            )?;
            for (kind, id) in [
                ("prefix", 67),
                ("suffix", 69),
                ("middle", 68),
                ("fsep", 70),
                ("eot", 107),
            ] {
                extra.set_special(kind, id);
            }
            extra.chat_template = special::ChatTemplate::None;
            extra.write(&mut kv);
            kv.set_flag("add_space_prefix", false);
        }
        Family::Gemma2 => {
            spm::write_sentencepiece(&files, config, &h, &mut kv)?;
            kv.set_flag("add_space_prefix", false);
        }
        Family::Gemma3 => {
            if files.exists("tokenizer.model")? {
                spm::write_sentencepiece(&files, config, &h, &mut kv)?;
                kv.set_flag("add_space_prefix", false);
            } else {
                bpe::write_gpt2(&files, config, &h, &mut kv)?;
            }
        }
        Family::Phi3 => {
            let class = match files.tokenizer_config()? {
                Some(tc) => Some(tc.get("tokenizer_class").ok_or_else(|| {
                    Error::format(
                        files.path("tokenizer_config.json"),
                        "no `tokenizer_class`; the phi3 converter requires it",
                    )
                })?),
                None => None,
            };
            if class.and_then(Value::as_str) == Some("GPT2Tokenizer") {
                bpe::write_gpt2(&files, config, &h, &mut kv)?;
            } else {
                spm::write_phi3(&files, config, &h, &mut kv)?;
            }
        }
    }
    Ok(kv.into_vocab())
}

/// `_set_vocab_sentencepiece`, or `_set_vocab_gpt2` when there is no `tokenizer.model`.
fn spm_or_bpe(
    files: &TokenizerFiles,
    config: &HfConfig,
    h: &Map<String, Value>,
    kv: &mut Kvs,
) -> Result<()> {
    if files.exists("tokenizer.model")? {
        spm::write_sentencepiece(files, config, h, kv)
    } else {
        bpe::write_gpt2(files, config, h, kv)
    }
}

/// `LlamaModel.set_vocab` (also used for Mistral and Mixtral).
fn llama(
    files: &TokenizerFiles,
    config: &HfConfig,
    h: &Map<String, Value>,
    kv: &mut Kvs,
) -> Result<()> {
    if files.exists("tekken.json")? && !files.exists("tokenizer.json")? {
        return Err(Error::usage(format!(
            "{}: Mistral-format tokenizer (tekken.json without tokenizer.json) is not supported; \
             use the Hugging Face format files (tokenizer.json, tokenizer_config.json)",
            files.path("tekken.json")
        )));
    }
    if let Some(tc) = files.tokenizer_config()? {
        if let Some(v) = tc.get("add_prefix_space").filter(|v| !v.is_null()) {
            let b = v.as_bool().ok_or_else(|| {
                Error::format(
                    files.path("tokenizer_config.json"),
                    "`add_prefix_space` is not a boolean",
                )
            })?;
            kv.set_flag("add_space_prefix", b);
        }
    }
    if files.exists("tokenizer.model")? {
        spm::write_sentencepiece(files, config, h, kv)?;
    } else if llama_hf::is_llama_hf_bpe(files)? {
        llama_hf::write_llama_hf(files, config, kv)?;
    } else {
        bpe::write_gpt2(files, config, h, kv)?;
    }
    let vocab_size = h.get("vocab_size").and_then(Value::as_u64).unwrap_or(32000);
    if vocab_size == 32016 {
        // CodeLlama: fill-in-the-middle ids; gguf-py only has a key for `eot`.
        let mut extra = SpecialVocab::load(
            files,
            config,
            None,
            false,
            &["prefix", "suffix", "middle", "eot"],
        )?;
        for (kind, id) in [
            ("prefix", 32007),
            ("suffix", 32008),
            ("middle", 32009),
            ("eot", 32010),
        ] {
            extra.set_special(kind, id);
        }
        extra.write(kv);
    }
    if vocab_size == 49152 {
        // Granite small models (and SmolLM, which shares the size) never add BOS.
        kv.set_flag("add_bos_token", false);
    }
    Ok(())
}

/// `does_token_look_special`: added tokens the converter makes CONTROL although not marked special.
fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<｜") && t.ends_with("｜>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvs_keep_first_position_on_overwrite() {
        let mut kv = Kvs::default();
        kv.set_flag("add_space_prefix", true);
        kv.set(key::MODEL, Val::Str("llama".into()));
        kv.set(key::TOKENS, Val::Strs(vec!["a".into()]));
        kv.set(key::TOKEN_TYPE, Val::I32s(vec![1]));
        kv.set("tokenizer.ggml.bos_token_id", Val::U32(1));
        kv.set_flag("add_space_prefix", false);
        let v = kv.into_vocab();
        assert_eq!(v.flags, vec![("add_space_prefix".to_string(), false)]);
        assert_eq!(v.special_ids, vec![("bos".to_string(), 1)]);
        let keys: Vec<_> = v.kvs().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "tokenizer.ggml.add_space_prefix",
                key::MODEL,
                key::TOKENS,
                key::TOKEN_TYPE,
                "tokenizer.ggml.bos_token_id"
            ]
        );
    }

    #[test]
    fn special_looking_tokens() {
        for t in [
            "<|im_end|>",
            "<pad>",
            "<unused12>",
            "<｜end▁of▁sentence｜>",
            "<mask>",
        ] {
            assert!(looks_special(t), "{t}");
        }
        for t in ["<s>", "<tool_call>", "|>", "<|", "<unused"] {
            assert!(!looks_special(t), "{t}");
        }
    }
}
