//! SentencePiece vocabularies: the converter's `_create_vocab_sentencepiece` (llama, mistral,
//! qwen2, gemma*) and the phi3 converter's own variant of it.

use super::files::TokenizerFiles;
use super::sentencepiece::{read_pieces, PieceType};
use super::special::{SpecialVocab, DEFAULT_KINDS};
use super::token_type::*;
use super::{config_vocab_size, key, looks_special, Kvs, Val};
use crate::error::{Error, Result};
use crate::model::HfConfig;
use serde_json::{Map, Value};

/// Score of added tokens.
const ADDED_SCORE: f32 = -1000.0;
/// Score of the `[PADn]` entries that fill the config's vocab_size.
const PAD_SCORE: f32 = -10000.0;

/// A vocabulary being assembled: tokens, scores and types by id.
struct Table {
    tokens: Vec<String>,
    scores: Vec<f32>,
    types: Vec<i32>,
}

impl Table {
    /// `vocab_size` `[PADn]` entries, then the pieces of tokenizer.model over them.
    fn from_model(files: &TokenizerFiles, vocab_size: Option<usize>) -> Result<Self> {
        let path = files.path("tokenizer.model");
        let bytes = files.bytes("tokenizer.model")?.ok_or_else(|| {
            Error::missing(
                &path,
                "SentencePiece models need tokenizer.model; copy it from the base model",
            )
        })?;
        let pieces = read_pieces(&bytes, &path)?;
        let n = vocab_size.unwrap_or(pieces.len());
        let mut t = Table {
            tokens: (0..n).map(|i| format!("[PAD{i}]")).collect(),
            scores: vec![PAD_SCORE; n],
            types: vec![UNUSED; n],
        };
        // Pieces beyond the config's vocab_size are dropped, as the converter does.
        for (i, p) in pieces.into_iter().enumerate().take(n) {
            t.tokens[i] = p.text;
            t.scores[i] = p.score;
            // User-defined pieces stay NORMAL: the converter only asks sentencepiece about these.
            t.types[i] = match p.kind {
                PieceType::Unknown => UNKNOWN,
                PieceType::Control => CONTROL,
                PieceType::Unused => UNUSED,
                PieceType::Byte => BYTE,
                PieceType::Normal | PieceType::UserDefined => NORMAL,
            };
        }
        Ok(t)
    }

    fn set(&mut self, id: usize, token: String, kind: i32) {
        self.tokens[id] = token;
        self.scores[id] = ADDED_SCORE;
        self.types[id] = kind;
    }

    /// added_tokens.json: `{token: id}`, ids past the table skipped, all USER_DEFINED.
    fn apply_added_tokens_json(&mut self, files: &TokenizerFiles) -> Result<()> {
        let Some(json) = files.json("added_tokens.json")? else {
            return Ok(());
        };
        let path = files.path("added_tokens.json");
        let map = json
            .as_object()
            .ok_or_else(|| Error::format(&path, "expected a JSON object {token: id}"))?;
        for (token, id) in map {
            let id = token_id(Some(id), &path)?;
            if id < self.tokens.len() {
                self.set(id, token.clone(), USER_DEFINED);
            }
        }
        Ok(())
    }

    /// The `(id, content, special)` of each added token listed in `entries`, read from `path`.
    fn entries<'v>(
        entries: impl Iterator<Item = (Option<&'v Value>, &'v Value)>,
        path: &str,
    ) -> Result<Vec<(usize, String, bool)>> {
        entries
            .map(|(id, data)| {
                let content = data
                    .get("content")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::format(path, "an added token has no string `content`"))?;
                let special = data.get("special").and_then(Value::as_bool) == Some(true);
                Ok((token_id(id, path)?, content.to_string(), special))
            })
            .collect()
    }
}

/// An added-token id given as a JSON number or a decimal string key.
fn token_id(v: Option<&Value>, path: &str) -> Result<usize> {
    let id = match v {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    id.map(|i| i as usize)
        .ok_or_else(|| Error::format(path, format!("invalid added token id {v:?}")))
}

/// `added_tokens_decoder` of tokenizer_config.json as `(id, content, special)`.
fn config_added_tokens(files: &TokenizerFiles) -> Result<Vec<(usize, String, bool)>> {
    let Some(tc) = files.tokenizer_config()? else {
        return Ok(Vec::new());
    };
    let path = files.path("tokenizer_config.json");
    match tc.get("added_tokens_decoder") {
        None => Ok(Vec::new()),
        Some(Value::Object(m)) => {
            let keys: Vec<Value> = m.keys().map(|k| Value::String(k.clone())).collect();
            Table::entries(keys.iter().map(Some).zip(m.values()), &path)
        }
        Some(_) => Err(Error::format(
            path,
            "`added_tokens_decoder` is not an object",
        )),
    }
}

/// Writes the SentencePiece KVs and the SpecialVocab ones, as both converters end.
fn write(files: &TokenizerFiles, config: &HfConfig, t: Table, kv: &mut Kvs) -> Result<()> {
    let n = t.tokens.len();
    kv.set(key::MODEL, Val::Str("llama".into()));
    kv.set(key::PRE, Val::Str("default".into()));
    kv.set(key::TOKENS, Val::Strs(t.tokens));
    kv.set(key::SCORES, Val::F32s(t.scores));
    kv.set(key::TOKEN_TYPE, Val::I32s(t.types));
    SpecialVocab::load(files, config, Some(n), false, DEFAULT_KINDS)?.write(kv);
    Ok(())
}

/// `_set_vocab_sentencepiece`.
pub(super) fn write_sentencepiece(
    files: &TokenizerFiles,
    config: &HfConfig,
    h: &Map<String, Value>,
    kv: &mut Kvs,
) -> Result<()> {
    let vocab_size = config_vocab_size(h, &["vocab_size_per_layer_input", "vocab_size"]);
    let mut t = Table::from_model(files, vocab_size)?;
    t.apply_added_tokens_json(files)?;
    for (id, content, special) in config_added_tokens(files)? {
        if id >= t.tokens.len() {
            continue;
        }
        if special || looks_special(&content) {
            t.set(id, content, CONTROL);
        } else {
            // llama.cpp expects user-defined tokens pre-normalized: SentencePiece's space mark
            // becomes a space.
            t.set(id, content.replace('\u{2581}', " "), USER_DEFINED);
        }
    }
    write(files, config, t, kv)
}

/// `Phi3MiniModel.set_vocab`'s SentencePiece branch: no special-looking retyping and no space
/// normalisation, and tokenizer.json's added tokens applied last.
pub(super) fn write_phi3(
    files: &TokenizerFiles,
    config: &HfConfig,
    h: &Map<String, Value>,
    kv: &mut Kvs,
) -> Result<()> {
    // Unlike the shared loop, phi3 uses every piece, so vocab_size must cover them.
    let vocab_size = config_vocab_size(h, &["vocab_size"]);
    let mut t = Table::from_model(files, None)?;
    if let Some(n) = vocab_size {
        if n < t.tokens.len() {
            return Err(Error::format(
                &config.path,
                format!(
                    "vocab_size {n} is smaller than tokenizer.model's {} pieces",
                    t.tokens.len()
                ),
            ));
        }
        for i in t.tokens.len()..n {
            t.tokens.push(format!("[PAD{i}]"));
            t.scores.push(PAD_SCORE);
            t.types.push(UNUSED);
        }
    }
    t.apply_added_tokens_json(files)?;
    let mut added = config_added_tokens(files)?;
    if let Some((_, json)) = files.tokenizer_json()? {
        let path = files.path("tokenizer.json");
        let list = json
            .get("added_tokens")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        added.extend(Table::entries(
            list.iter().map(|a| (a.get("id"), a)),
            &path,
        )?);
    }
    for (id, content, special) in added {
        if id >= t.tokens.len() {
            return Err(Error::format(
                files.path("tokenizer.model"),
                format!(
                    "added token {content:?} (tokenizer_config.json or tokenizer.json) has id {id}, \
                     beyond the {} entries of the vocabulary; set vocab_size in config.json to cover it",
                    t.tokens.len()
                ),
            ));
        }
        t.set(id, content, if special { CONTROL } else { USER_DEFINED });
    }
    write(files, config, t, kv)
}
