//! Byte-level BPE vocabularies from tokenizer.json: the converter's `get_vocab_base` and
//! `_set_vocab_gpt2`, including the choice of `tokenizer.ggml.pre` by llama.cpp's check hash.
//!
//! The converter asks `transformers.AutoTokenizer` for ids; for the tokenizer.json files of the
//! supported families that is the `tokenizers` library run on the file as it is (checked by
//! tests/gen/vocab_fixtures.py), so the same library in Rust gives the same ids.

use super::files::TokenizerFiles;
use super::pre_table::{CHECK_TEXT, PRE_TOKENIZERS};
use super::special::{SpecialVocab, DEFAULT_KINDS};
use super::token_type::*;
use super::{config_vocab_size, key, looks_special, Kvs, Val};
use crate::error::{Error, Result};
use crate::model::HfConfig;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use tokenizers::Tokenizer;

/// llama.cpp's check hash of the ids a tokenizer produces for [`CHECK_TEXT`]: the sha256 of
/// Python's text of the id list, `"[1, 2, 3]"`.
fn check_hash(ids: &[u32]) -> String {
    let text = format!(
        "[{}]",
        ids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// The `tokenizer.ggml.pre` name for a check hash; `None` when llama.cpp does not know it.
fn pre_name(hash: &str) -> Option<&'static str> {
    // The converter's chain of `if`s lets a later entry win.
    PRE_TOKENIZERS
        .iter()
        .rev()
        .find(|(h, _)| *h == hash)
        .map(|(_, n)| *n)
}

/// `_set_vocab_gpt2`: tokens, types and pre-tokenizer from tokenizer.json, then SpecialVocab with
/// merges.
pub(super) fn write_gpt2(
    files: &TokenizerFiles,
    config: &HfConfig,
    h: &Map<String, Value>,
    kv: &mut Kvs,
) -> Result<()> {
    let path = files.path("tokenizer.json");
    let (bytes, _) = files.tokenizer_json()?.ok_or_else(|| {
        Error::missing(
            &path,
            "BPE tokenizers are read from tokenizer.json; save the tokenizer with save_pretrained \
             or copy tokenizer.json from the base model",
        )
    })?;
    let tok = Tokenizer::from_bytes(bytes).map_err(|e| {
        Error::format(
            &path,
            format!("not a tokenizer.json the tokenizers library reads: {e}"),
        )
    })?;
    let failed = |e: tokenizers::Error| Error::format(&path, format!("tokenizer failed: {e}"));

    let vocab = tok.get_vocab(true);
    let max_id = vocab.values().copied().max().unwrap_or(0) as usize;
    let vocab_size = config_vocab_size(h, &["vocab_size"]).unwrap_or(vocab.len());
    if max_id >= vocab_size {
        return Err(Error::format(
            &config.path,
            format!("vocab_size {vocab_size} is smaller than tokenizer.json's largest id {max_id}"),
        ));
    }

    let ids = tok.encode(CHECK_TEXT, true).map_err(failed)?;
    let hash = check_hash(ids.get_ids());
    let pre = pre_name(&hash).ok_or_else(|| {
        Error::usage(format!(
            "{path}: the BPE pre-tokenizer was not recognized by llama.cpp (check hash {hash}); \
             llama.cpp cannot tokenize with this tokenizer, so no GGUF is written. Use a model whose \
             tokenizer llama.cpp supports, or a newer llama.cpp that lists this hash"
        ))
    })?;

    let reverse: HashMap<u32, &str> = vocab.iter().map(|(t, &i)| (i, t.as_str())).collect();
    let added = tok.get_added_tokens_decoder();
    let added_by_content: HashMap<&str, u32> = added
        .iter()
        .map(|(&i, a)| (a.content.as_str(), i))
        .collect();
    let mut tokens = Vec::with_capacity(vocab_size);
    let mut types = Vec::with_capacity(vocab_size);
    for i in 0..vocab_size as u32 {
        let Some(&text) = reverse.get(&i) else {
            tokens.push(format!("[PAD{i}]"));
            types.push(UNUSED);
            continue;
        };
        if !added_by_content.contains_key(text) {
            tokens.push(text.to_string());
            types.push(NORMAL);
            continue;
        }
        let a = added.get(&i).ok_or_else(|| {
            Error::format(
                &path,
                format!("added token {text:?} shares its text with token {i}"),
            )
        })?;
        let mut token = text.to_string();
        if !a.normalized {
            // llama.cpp expects added tokens pre-normalized; the converter round-trips them.
            let ids = tok.encode(token.as_str(), false).map_err(failed)?;
            token = tok.decode(ids.get_ids(), false).map_err(failed)?;
        }
        if a.special || looks_special(&token) {
            types.push(CONTROL);
        } else {
            token = token.replace('\u{2581}', " ");
            types.push(USER_DEFINED);
        }
        tokens.push(token);
    }

    kv.set(key::MODEL, Val::Str("gpt2".into()));
    kv.set(key::PRE, Val::Str(pre.into()));
    kv.set(key::TOKENS, Val::Strs(tokens));
    kv.set(key::TOKEN_TYPE, Val::I32s(types));
    SpecialVocab::load(files, config, None, true, DEFAULT_KINDS)?.write(kv);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_text_is_the_converters() {
        // sha256 of chktxt's UTF-8, computed with Python from convert_hf_to_gguf's literal.
        assert_eq!(
            format!("{:x}", Sha256::digest(CHECK_TEXT.as_bytes())),
            "a36179c1e2b1cfcfbfad1dc779addad2ffc778201e4cf0d538bddeafa2c526da"
        );
    }

    #[test]
    fn hash_of_python_list_text() {
        // Python: sha256(str([]).encode()) and sha256(str([1, 22]).encode())
        assert_eq!(
            check_hash(&[]),
            "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"
        );
        assert_eq!(
            check_hash(&[1, 22]),
            "c7e4ccf8724a2f4a10965447ae67387b6fc57c8eda080d44d0060945ea6fe37d"
        );
    }

    #[test]
    fn later_table_entry_wins() {
        // mpt and olmo share this hash; olmo comes later in the converter.
        let dup = "b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166";
        assert_eq!(pre_name(dup), Some("olmo"));
        assert_eq!(
            pre_name("0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5"),
            Some("llama-bpe")
        );
        assert_eq!(pre_name("00"), None);
    }
}
