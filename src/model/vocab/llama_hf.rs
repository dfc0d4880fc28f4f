//! gguf-py's `LlamaHfVocab`: a SentencePiece-style BPE tokenizer.json (byte fallback) without a
//! tokenizer.model, as transformers 5 saves Llama 2 and Mistral tokenizers. Scores are all -1000,
//! types come from the special-token list, and the vocabulary is not padded to `vocab_size`.

use super::files::TokenizerFiles;
use super::special::{SpecialVocab, DEFAULT_KINDS};
use super::token_type::*;
use super::{key, Kvs, Val};
use crate::error::{Error, Result};
use crate::model::HfConfig;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use tokenizers::Tokenizer;

/// LlamaHfVocab's placeholder score for every token.
const SCORE: f32 = -1000.0;

/// The named special tokens transformers' LlamaTokenizer defaults to when tokenizer_config.json
/// does not name them.
const CLASS_DEFAULTS: &[(&str, &str)] = &[("unk", "<unk>"), ("bos", "<s>"), ("eos", "</s>")];

/// transformers' `all_special_tokens`: the named special tokens (bos, eos, unk, sep, pad, cls,
/// mask) then the extra ones, as strings, first occurrence kept.
fn all_special_tokens(files: &TokenizerFiles) -> Result<Vec<String>> {
    let empty = serde_json::Map::new();
    let tc = files.tokenizer_config()?.unwrap_or(&empty);
    let content = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    let mut out: Vec<String> = Vec::new();
    let mut push = |t: Option<String>| {
        if let Some(t) = t.filter(|t| !out.contains(t)) {
            out.push(t);
        }
    };
    for kind in ["bos", "eos", "unk", "sep", "pad", "cls", "mask"] {
        match tc.get(&format!("{kind}_token")) {
            Some(v) => push(content(v)),
            None => push(
                CLASS_DEFAULTS
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .map(|(_, t)| t.to_string()),
            ),
        }
    }
    let extra = tc
        .get("extra_special_tokens")
        .or_else(|| tc.get("additional_special_tokens"));
    for v in extra.and_then(Value::as_array).into_iter().flatten() {
        push(content(v));
    }
    Ok(out)
}

/// True when tokenizer.json is a SentencePiece-style BPE (byte fallback, a decoder sequence):
/// llama's converter reads those with `LlamaHfVocab` instead of as byte-level BPE.
pub(super) fn is_llama_hf_bpe(files: &TokenizerFiles) -> Result<bool> {
    let Some((_, json)) = files.tokenizer_json()? else {
        return Ok(false);
    };
    let model = json
        .get("model")
        .ok_or_else(|| Error::format(files.path("tokenizer.json"), "no `model` section"))?;
    let flag = |k: &str, default: bool| model.get(k).and_then(Value::as_bool).unwrap_or(default);
    let is_bpe = model.get("type").and_then(Value::as_str) == Some("BPE");
    if is_bpe && flag("ignore_merges", false) && !flag("byte_fallback", true) {
        return Ok(false);
    }
    let decoder_is_sequence = json
        .get("decoder")
        .and_then(|d| d.get("type"))
        .and_then(Value::as_str)
        == Some("Sequence");
    Ok(is_bpe && flag("byte_fallback", false) && decoder_is_sequence)
}

/// `_set_vocab_llama_hf`.
pub(super) fn write_llama_hf(
    files: &TokenizerFiles,
    config: &HfConfig,
    kv: &mut Kvs,
) -> Result<()> {
    let path = files.path("tokenizer.json");
    let (bytes, _) = files
        .tokenizer_json()?
        .ok_or_else(|| Error::missing(&path, "needed to read the vocabulary"))?;
    let tok = Tokenizer::from_bytes(bytes).map_err(|e| {
        Error::format(
            &path,
            format!("not a tokenizer.json the tokenizers library reads: {e}"),
        )
    })?;
    let base = tok.get_vocab_size(false) as u32;
    let reverse: HashMap<u32, String> = tok
        .get_vocab(true)
        .into_iter()
        .map(|(t, i)| (i, t))
        .collect();
    let specials = all_special_tokens(files)?;
    let special_ids: HashSet<u32> = specials.iter().filter_map(|t| tok.token_to_id(t)).collect();
    let mut added: Vec<(u32, String)> = tok
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(i, _)| *i >= base)
        .map(|(i, a)| (i, a.content))
        .collect();
    added.sort();

    let mut tokens = Vec::new();
    let mut types = Vec::new();
    for i in 0..base {
        let text = reverse.get(&i).ok_or_else(|| {
            Error::format(&path, format!("the vocabulary has no token with id {i}"))
        })?;
        types.push(if is_byte_token(text) {
            BYTE
        } else if special_ids.contains(&i) {
            CONTROL
        } else {
            NORMAL
        });
        tokens.push(text.clone());
    }
    for (_, text) in added {
        types.push(if specials.contains(&text) {
            CONTROL
        } else {
            USER_DEFINED
        });
        tokens.push(text);
    }
    let n = tokens.len();
    kv.set(key::MODEL, Val::Str("llama".into()));
    kv.set(key::PRE, Val::Str("default".into()));
    kv.set(key::TOKENS, Val::Strs(tokens));
    kv.set(key::SCORES, Val::F32s(vec![SCORE; n]));
    kv.set(key::TOKEN_TYPE, Val::I32s(types));
    SpecialVocab::load(files, config, Some(n), false, DEFAULT_KINDS)?.write(kv);
    Ok(())
}

/// `<0xNN>` byte-fallback tokens.
fn is_byte_token(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 6
        && t.starts_with("<0x")
        && t.ends_with('>')
        && b[3..5].iter().all(u8::is_ascii_hexdigit)
}
