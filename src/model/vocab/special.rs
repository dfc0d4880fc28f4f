//! gguf-py's `SpecialVocab`: merges, special token ids, add-BOS/EOS flags, the chat template and
//! normalizer flags, resolved from tokenizer.json, tokenizer_config.json, chat_template.{jinja,json}
//! and config.json in the same order and with the same precedence.

use super::files::TokenizerFiles;
use super::{key, Kvs, Val};
use crate::error::{Error, Result};
use crate::model::HfConfig;
use serde_json::{Map, Value};

/// The special token kinds looked up when the caller names none.
pub(super) const DEFAULT_KINDS: &[&str] = &["bos", "eos", "unk", "sep", "pad", "cls", "mask"];

/// The chat template as found.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ChatTemplate {
    None,
    One(String),
    /// A list of `{name, template}`.
    Named(Vec<(String, String)>),
}

/// What one `SpecialVocab` collected.
pub(super) struct SpecialVocab {
    kinds: Vec<String>,
    n_vocab: Option<usize>,
    merges: Vec<String>,
    load_merges: bool,
    ids: Vec<(String, u32)>,
    add: Vec<(String, bool)>,
    pub(super) chat_template: ChatTemplate,
    lowercase: Option<bool>,
    strip_accents: Option<bool>,
}

/// The string content of a tokenizer_config token entry (a string, or an AddedToken object).
fn token_content(v: Option<&Value>) -> Option<&str> {
    match v? {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("content")?.as_str(),
        _ => None,
    }
}

/// Python truthiness of a JSON value (used where the converter writes `if x:`).
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
    }
}

/// `x.get('SpecialToken', {}).get('id')` of a template piece.
fn special_token_id(piece: Option<&Value>) -> Option<&Value> {
    piece?.get("SpecialToken")?.get("id")
}

impl SpecialVocab {
    /// Loads like `SpecialVocab(dir, load_merges, special_token_types=kinds, n_vocab)`.
    pub(super) fn load(
        files: &TokenizerFiles,
        config: &HfConfig,
        n_vocab: Option<usize>,
        load_merges: bool,
        kinds: &[&str],
    ) -> Result<Self> {
        let mut sv = SpecialVocab {
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
            n_vocab,
            merges: Vec::new(),
            load_merges,
            ids: Vec::new(),
            add: Vec::new(),
            chat_template: ChatTemplate::None,
            lowercase: None,
            strip_accents: None,
        };
        sv.read_tokenizer_files(files)?;
        sv.read_config(config)?;
        if load_merges && sv.merges.is_empty() {
            sv.merges_txt(files)?;
        }
        Ok(sv)
    }

    /// `_set_special_token`: the first id found for a kind wins; out-of-range ids are skipped.
    pub(super) fn set_special(&mut self, kind: &str, id: u32) {
        if self.n_vocab.is_some_and(|n| id as usize >= n) || self.ids.iter().any(|(k, _)| k == kind)
        {
            return;
        }
        self.ids.push((kind.to_string(), id));
    }

    /// `_set_special_token` on a JSON value: only integers count (Python's bool is one too).
    fn set_special_json(&mut self, kind: &str, v: Option<&Value>, path: &str) -> Result<()> {
        let id = match v {
            Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.as_i64(),
            Some(Value::Bool(b)) => Some(i64::from(*b)),
            _ => return Ok(()),
        };
        match id.and_then(|i| u32::try_from(i).ok()) {
            Some(id) => {
                self.set_special(kind, id);
                Ok(())
            }
            None => Err(Error::format(
                path,
                format!("invalid value for special token type {kind}: {v:?}"),
            )),
        }
    }

    fn set_add(&mut self, kind: &str, v: bool) {
        match self.add.iter_mut().find(|(k, _)| k == kind) {
            Some(slot) => slot.1 = v,
            None => self.add.push((kind.to_string(), v)),
        }
    }

    fn set_add_default(&mut self, kind: &str, v: bool) {
        if !self.add.iter().any(|(k, _)| k == kind) {
            self.add.push((kind.to_string(), v));
        }
    }

    fn add_kind(&mut self, kind: &str) {
        self.kinds.push(kind.to_string());
    }

    /// `_try_load_from_tokenizer_json`.
    fn read_tokenizer_files(&mut self, files: &TokenizerFiles) -> Result<()> {
        let json_path = files.path("tokenizer.json");
        let tokenizer = files.tokenizer_json()?.map(|(_, m)| m);
        let empty = Vec::new();
        let mut added_tokens = &empty;
        if let Some(t) = tokenizer {
            if self.load_merges {
                self.read_merges(t, &json_path)?;
            }
            if let Some(n) = t.get("normalizer").filter(|n| truthy(Some(n))) {
                self.parse_normalizer(n);
            }
            added_tokens = match t.get("added_tokens") {
                Some(Value::Array(a)) => a,
                _ => &empty,
            };
        }
        // The converter edits its copy of tokenizer_config while reading the post-processor.
        let mut tc: Option<Map<String, Value>> = files.tokenizer_config()?.cloned();
        if let Some(t) = tokenizer.filter(|t| !t.is_empty()) {
            self.parse_post_processor(t, &mut tc);
        }
        let Some(tc) = tc.filter(|m| !m.is_empty()) else {
            return Ok(());
        };
        let alt = self.template_files(files)?;
        let template = match tc.get("chat_template") {
            Some(v) => Some(v.clone()),
            None => alt,
        };
        self.chat_template = match template {
            None | Some(Value::Null) => ChatTemplate::None,
            Some(Value::String(s)) => ChatTemplate::One(s),
            Some(Value::Array(list)) => ChatTemplate::Named(named_templates(&list)),
            // gguf-py warns and ignores other types.
            Some(_) => ChatTemplate::None,
        };
        let tc_path = files.path("tokenizer_config.json");
        for kind in self.kinds.clone() {
            if let Some(Value::Bool(b)) = tc.get(&format!("add_{kind}_token")) {
                // The post-processor's reading wins over tokenizer_config's flag.
                self.set_add_default(&kind, *b);
            }
            let Some(content) = token_content(tc.get(&format!("{kind}_token"))) else {
                continue;
            };
            let id = added_tokens
                .iter()
                .find(|a| a.get("content").and_then(Value::as_str) == Some(content))
                .and_then(|a| a.get("id"));
            self.set_special_json(&kind, id, &tc_path)?;
        }
        Ok(())
    }

    /// Merges from tokenizer.json, both the `"a b"` and the `["a", "b"]` forms; spaces inside a
    /// pair's parts are written as U+0120-shifted characters as gguf-py does.
    fn read_merges(&mut self, t: &Map<String, Value>, path: &str) -> Result<()> {
        let Some(Value::Array(merges)) = t.get("model").and_then(|m| m.get("merges")) else {
            return Ok(());
        };
        let Some(first) = merges.first() else {
            return Ok(());
        };
        let bad = || Error::format(path, "unknown tokenizer merges format");
        self.merges = if first.is_string() {
            merges
                .iter()
                .map(|m| m.as_str().map(str::to_string).ok_or_else(bad))
                .collect::<Result<_>>()?
        } else if first
            .as_array()
            .is_some_and(|p| p.len() == 2 && p[0].is_string())
        {
            let part = |v: &Value| -> Result<String> {
                let s = v.as_str().ok_or_else(bad)?;
                Ok(s.chars()
                    .map(|c| if c == ' ' { '\u{120}' } else { c })
                    .collect())
            };
            merges
                .iter()
                .map(|m| {
                    let p = m.as_array().ok_or_else(bad)?;
                    Ok(p.iter().map(part).collect::<Result<Vec<_>>>()?.join(" "))
                })
                .collect::<Result<_>>()?
        } else {
            return Err(bad());
        };
        Ok(())
    }

    /// `_parse_normalizer`.
    fn parse_normalizer(&mut self, n: &Value) {
        match n.get("type").and_then(Value::as_str) {
            Some("Lowercase") => self.lowercase = Some(true),
            Some("StripAccents") => self.strip_accents = Some(true),
            Some("BertNormalizer") => {
                // Only booleans can be written; gguf-py would fail on anything else.
                if let Some(v) = n.get("lowercase").and_then(Value::as_bool) {
                    self.lowercase = Some(v);
                }
                if let Some(v) = n.get("strip_accents").and_then(Value::as_bool) {
                    self.strip_accents = Some(v);
                }
            }
            Some("Sequence") => {
                for inner in n
                    .get("normalizers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.parse_normalizer(inner);
                }
            }
            _ => {}
        }
    }

    /// Reads add-BOS/EOS/SEP from tokenizer.json's post-processor, filling in tokenizer_config's
    /// bos/eos/cls/sep/eot/eom entries the way gguf-py does.
    fn parse_post_processor(
        &mut self,
        t: &Map<String, Value>,
        tc: &mut Option<Map<String, Value>>,
    ) {
        let get = |tc: &Option<Map<String, Value>>, k: &str| -> Option<Value> {
            tc.as_ref().and_then(|m| m.get(k)).cloned()
        };
        let has_tc = |tc: &Option<Map<String, Value>>| tc.as_ref().is_some_and(|m| !m.is_empty());
        let mut bos = get(tc, "bos_token");
        let mut cls = get(tc, "cls_token");
        let mut eos = get(tc, "eos_token");
        let mut sep = get(tc, "sep_token");
        if !truthy(bos.as_ref()) && truthy(cls.as_ref()) && has_tc(tc) {
            bos = cls.clone();
            tc.as_mut()
                .unwrap()
                .insert("bos_token".into(), bos.clone().unwrap());
        }
        if !truthy(eos.as_ref()) && truthy(sep.as_ref()) && has_tc(tc) {
            eos = sep.clone();
            tc.as_mut()
                .unwrap()
                .insert("eos_token".into(), eos.clone().unwrap());
        }
        let Some(pp) = t.get("post_processor").filter(|p| truthy(Some(p))) else {
            return;
        };
        let processors: Vec<&Value> = match pp.get("processors") {
            Some(Value::Array(list)) => list.iter().collect(),
            _ => vec![pp],
        };
        for p in processors {
            match p.get("type").and_then(Value::as_str) {
                Some("ByteLevel") => {
                    self.set_add_default("bos", false);
                    self.set_add_default("eos", false);
                }
                Some("RobertaProcessing") => {
                    self.set_add("bos", true);
                    self.set_add("eos", true);
                    self.set_add("sep", true);
                    if !truthy(cls.as_ref()) && has_tc(tc) {
                        cls = first_of(p.get("cls")).or_else(|| bos.clone());
                        tc.as_mut()
                            .unwrap()
                            .insert("cls_token".into(), cls.clone().unwrap_or(Value::Null));
                    }
                    if !truthy(sep.as_ref()) && has_tc(tc) {
                        sep = first_of(p.get("sep")).or_else(|| eos.clone());
                        tc.as_mut()
                            .unwrap()
                            .insert("sep_token".into(), sep.clone().unwrap_or(Value::Null));
                    }
                }
                Some("TemplateProcessing") => {
                    let empty = Vec::new();
                    let single = p.get("single").and_then(Value::as_array).unwrap_or(&empty);
                    let pair = p.get("pair").and_then(Value::as_array).unwrap_or(&empty);
                    let mut first: Option<Value> = None;
                    let mut last: Option<Value> = None;
                    if single.len() > 1 {
                        first = special_token_id(single.first())
                            .cloned()
                            .filter(|v| truthy(Some(v)));
                        if let Some(f) = &first {
                            let known = |b: &Option<Value>, c: &Option<Value>| {
                                b.as_ref() == Some(f) || c.as_ref() == Some(f)
                            };
                            if !has_tc(tc) {
                                bos = Some(f.clone());
                            } else if !known(&bos, &cls) {
                                if !truthy(bos.as_ref()) {
                                    bos = Some(f.clone());
                                    tc.as_mut().unwrap().insert("bos_token".into(), f.clone());
                                }
                                if !truthy(cls.as_ref()) {
                                    cls = Some(f.clone());
                                    tc.as_mut().unwrap().insert("cls_token".into(), f.clone());
                                }
                            }
                            self.set_add("bos", known(&bos, &cls));
                        }
                        last = special_token_id(single.last())
                            .cloned()
                            .filter(|v| truthy(Some(v)));
                        if let Some(l) = &last {
                            if !has_tc(tc) {
                                eos = Some(l.clone());
                            } else if eos.as_ref() != Some(l) {
                                // The old EOS becomes EOT (or EOM) and the template's last token EOS.
                                let old = eos.clone().unwrap_or(Value::Null);
                                if !self.kinds.iter().any(|k| k == "eot") {
                                    self.add_kind("eot");
                                    tc.as_mut().unwrap().insert("eot_token".into(), old);
                                } else if !self.kinds.iter().any(|k| k == "eom") {
                                    self.add_kind("eom");
                                    tc.as_mut().unwrap().insert("eom_token".into(), old);
                                }
                                eos = Some(l.clone());
                                tc.as_mut().unwrap().insert("eos_token".into(), l.clone());
                            }
                            self.set_add("eos", eos.as_ref() == Some(l));
                        }
                    }
                    if !pair.is_empty() {
                        self.parse_pair(pair, &first, &last, &sep, &eos, tc);
                    }
                }
                _ => {}
            }
        }
    }

    /// The `pair` template: a separator between A and B means add-SEP.
    fn parse_pair(
        &mut self,
        pair: &[Value],
        first: &Option<Value>,
        last: &Option<Value>,
        sep: &Option<Value>,
        eos: &Option<Value>,
        tc: &mut Option<Map<String, Value>>,
    ) {
        let start =
            usize::from(first.is_some() && special_token_id(pair.first()) == first.as_ref());
        let stop_trim = last.is_some() && special_token_id(pair.last()) == last.as_ref();
        let end = if stop_trim {
            pair.len().saturating_sub(1)
        } else {
            pair.len()
        };
        let inner = if start < end {
            &pair[start..end]
        } else {
            &[][..]
        };
        if inner.is_empty() {
            return;
        }
        let seq_id = |v: &Value| v.get("Sequence").and_then(|s| s.get("id")).cloned();
        let (a, b) = (seq_id(&inner[0]), seq_id(&inner[inner.len() - 1]));
        if a != Some(Value::from("A")) || b != Some(Value::from("B")) || inner.len() < 3 {
            return;
        }
        let middle = &inner[1..inner.len() - 1];
        let is_sep = |v: Option<&Value>| v.is_some() && (v == sep.as_ref() || v == eos.as_ref());
        let mut add_sep = false;
        if let Some(entry) = special_token_id(middle.first()).filter(|v| truthy(Some(v))) {
            if is_sep(Some(entry)) && last.is_none() {
                add_sep = true;
            }
        }
        if middle.len() == 2 {
            if let Some(entry) = special_token_id(middle.get(1)).filter(|v| truthy(Some(v))) {
                if is_sep(Some(entry)) {
                    add_sep = true;
                }
            }
        }
        self.set_add("sep", add_sep);
        if add_sep && !truthy(sep.as_ref()) {
            if let Some(m) = tc.as_mut().filter(|m| !m.is_empty()) {
                m.insert("sep_token".into(), eos.clone().unwrap_or(Value::Null));
            }
        }
    }

    /// chat_template.jinja, else chat_template.json's `chat_template`.
    fn template_files(&self, files: &TokenizerFiles) -> Result<Option<Value>> {
        if let Some(t) = files.text("chat_template.jinja")? {
            return Ok(Some(Value::String(t)));
        }
        Ok(files
            .json("chat_template.json")?
            .and_then(|v| v.get("chat_template").cloned()))
    }

    /// `_try_load_from_config_json`: ids in config.json (or its text_config) for kinds still unset.
    fn read_config(&mut self, config: &HfConfig) -> Result<()> {
        for kind in self.kinds.clone() {
            let k = format!("{kind}_token_id");
            let mut v = config.raw.get(&k).filter(|v| !v.is_null());
            if v.is_none() {
                v = config.raw.get("text_config").and_then(|t| t.get(&k));
            }
            self.set_special_json(&kind, v, &config.path)?;
        }
        Ok(())
    }

    /// merges.txt, when tokenizer.json had none.
    fn merges_txt(&mut self, files: &TokenizerFiles) -> Result<()> {
        let Some(text) = files.text("merges.txt")? else {
            return Ok(());
        };
        let mut lines = text.lines().peekable();
        if lines.peek().is_some_and(|l| l.trim().starts_with('#')) {
            lines.next();
        }
        self.merges = lines
            .filter_map(|l| {
                let parts: Vec<&str> = l.split_whitespace().collect();
                // Malformed lines are skipped, as gguf-py does.
                (parts.len() == 2).then(|| format!("{} {}", parts[0], parts[1]))
            })
            .collect();
        Ok(())
    }

    /// `add_to_gguf`: only the kinds gguf-py has a writer for are written.
    pub(super) fn write(&self, kv: &mut Kvs) {
        if !self.merges.is_empty() {
            kv.set(key::MERGES, Val::Strs(self.merges.clone()));
        }
        for (kind, id) in &self.ids {
            let stem = match kind.as_str() {
                "bos" | "eos" | "mask" | "eot" | "eom" => kind.as_str(),
                "unk" => "unknown",
                "sep" => "seperator",
                "pad" => "padding",
                _ => continue,
            };
            kv.set(
                format!("{}{stem}{}", key::GGML, key::TOKEN_ID_SUFFIX),
                Val::U32(*id),
            );
        }
        for (kind, v) in &self.add {
            if matches!(kind.as_str(), "bos" | "eos" | "sep") {
                kv.set_flag(&format!("add_{kind}_token"), *v);
            }
        }
        match &self.chat_template {
            ChatTemplate::None => {}
            ChatTemplate::One(t) => kv.set(key::CHAT_TEMPLATE, Val::Str(t.clone())),
            ChatTemplate::Named(list) => {
                let mut names = Vec::new();
                let mut default = None;
                for (name, t) in list {
                    if name == "default" {
                        default = Some(t);
                    } else {
                        if !names.contains(name) {
                            names.push(name.clone());
                        }
                        kv.set(
                            format!("{}.{name}", key::CHAT_TEMPLATE),
                            Val::Str(t.clone()),
                        );
                    }
                }
                if !names.is_empty() {
                    kv.set(key::CHAT_TEMPLATES, Val::Strs(names));
                }
                if let Some(t) = default {
                    kv.set(key::CHAT_TEMPLATE, Val::Str(t.clone()));
                }
            }
        }
        if let Some(v) = self.lowercase {
            kv.set_flag("normalizer.lowercase", v);
        }
        if let Some(v) = self.strip_accents {
            kv.set_flag("normalizer.strip_accents", v);
        }
    }
}

/// The first element of a `[token, id]` pair.
fn first_of(v: Option<&Value>) -> Option<Value> {
    v?.as_array()?.first().cloned()
}

/// `{name, template}` entries with names reduced to ASCII letters, digits and `_`; entries without
/// a name or template are dropped.
fn named_templates(list: &[Value]) -> Vec<(String, String)> {
    list.iter()
        .filter_map(|c| {
            let name: String = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '_' })
                .collect();
            let t = c.get("template")?.as_str()?;
            (!name.is_empty()).then(|| (name, t.to_string()))
        })
        .collect()
}
