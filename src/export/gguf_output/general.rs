//! The `general.*` metadata and default file name, derived as gguf-py's `Metadata` does (llama.cpp
//! 0c1e57098bba): from the model card's YAML front matter, `_name_or_path` in config.json, and
//! the folder name, with the parameter count deciding which name parts are size labels; and the
//! recommended sampling settings from generation_config.json.
//!
//! The model card reader understands the YAML that model cards use for these keys: `key: value`
//! scalars (plain or quoted), block lists (`- item`) and flow lists (`[a, b]`); other structures
//! are skipped. Scalars are kept as text (gguf-py would also turn `yes`/`no` into booleans, which
//! only matters for keys it then writes as strings anyway).

use crate::error::{Error, Result};
use crate::formats::gguf::{Array, Metadata, Value};
use crate::io::InputDir;
use regex::Regex;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// What the metadata heuristics found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeneralMetadata {
    /// `general.name`.
    pub name: Option<String>,
    author: Option<String>,
    version: Option<String>,
    organization: Option<String>,
    finetune: Option<String>,
    basename: Option<String>,
    description: Option<String>,
    size_label: Option<String>,
    license: Option<Vec<String>>,
    license_name: Option<String>,
    license_link: Option<String>,
    source_url: Option<String>,
    source_doi: Option<String>,
    source_uuid: Option<String>,
    source_repo_url: Option<String>,
    base_models: Option<Vec<BTreeMap<&'static str, String>>>,
    datasets: Option<Vec<BTreeMap<&'static str, String>>>,
    tags: Option<Vec<String>>,
    languages: Option<Vec<String>>,
    sampling: Metadata,
}

/// Reference entries' fields in the order gguf-py writes them.
const REFERENCE_FIELDS: [&str; 9] = [
    "name",
    "author",
    "version",
    "organization",
    "description",
    "url",
    "doi",
    "uuid",
    "repo_url",
];

/// Parts of a Hugging Face model id (`org/Name-1.5-7B-Instruct`) as gguf-py splits it.
#[derive(Debug, Default, PartialEq)]
struct IdComponents {
    full_name: Option<String>,
    organization: Option<String>,
    basename: Option<String>,
    finetune: Option<String>,
    version: Option<String>,
    size_label: Option<String>,
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid pattern")
}

static VERSION: LazyLock<Regex> = LazyLock::new(|| regex(r"(?i)^(?:v|iter)?\d+(?:[.]\d+)*$"));
static QUANT_TYPE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)^(?:i?q\d(?:_\w)*|b?fp?(?:16|32))$"));
static SIZE: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)^(?:(?:[A]|\d+[x])?\d+(?:[._]\d+)?[KMBT][\d]?|small|mini|medium|large|x?xl)$")
});
static FINETUNE_WORD: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)^(?:chat|instruct|vision|lora)$"));
static HF_URL: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^https?://huggingface.co/([^/]+/[^/]+)$"));
static TITLE_EXEMPT: LazyLock<Regex> = LazyLock::new(|| regex(r"^(?:v\d+(?:\.\d+)*|\d.*)"));

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Basename,
    SizeLabel,
    Finetune,
    Version,
    Type,
}

/// `Metadata.get_model_id_components`.
fn id_components(model_id: &str, total_params: i64) -> IdComponents {
    if model_id.contains(' ') {
        return IdComponents {
            full_name: Some(model_id.into()),
            ..Default::default()
        };
    }
    let (mut org, full) = match model_id.split_once('/') {
        Some((o, f)) => (Some(o.to_string()), f.to_string()),
        None => (None, model_id.to_string()),
    };
    if org.as_deref().is_some_and(|o| o.starts_with('.')) {
        org = None;
    }
    let mut parts: Vec<String> = full
        .split('-')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    let mut types: Vec<Vec<Part>> = vec![Vec::new(); parts.len()];
    for i in 0..parts.len() {
        let part = parts[i].clone();
        if VERSION.is_match(&part) {
            types[i].push(Part::Version);
        } else if QUANT_TYPE.is_match(&part) {
            types[i].push(Part::Type);
            parts[i] = part.to_uppercase();
        } else if i > 0 && SIZE.is_match(&part) {
            let mut part = part.replace('_', ".");
            let chars: Vec<char> = part.chars().collect();
            let n = chars.len();
            // Bloom's `7b1` means 7.1B.
            if chars[n - 1].is_ascii_digit() && n >= 2 {
                let head: String = chars[..n - 2].iter().collect();
                part = format!("{head}.{}{}", chars[n - 1], chars[n - 2]);
            }
            let chars: Vec<char> = part.chars().collect();
            let n = chars.len();
            if n > 1 && chars[n - 2].is_ascii_digit() && "kmbt".contains(chars[n - 1]) {
                part = format!(
                    "{}{}",
                    &part[..part.len() - 1],
                    chars[n - 1].to_ascii_uppercase()
                );
            }
            if total_params != 0 {
                let last = part.chars().last().expect("matched a non-empty part");
                let number = &part[..part.len() - last.len_utf8()];
                if let Ok(value) = number.parse::<f64>() {
                    let scale = " KMBT"
                        .find(last)
                        .map_or(1.0 / 1000.0, |p| 1000f64.powi(p as i32));
                    let label = value * scale;
                    let total = total_params as f64;
                    let far = if total_params < 0 {
                        label < (total_params.abs() / 8) as f64
                    } else {
                        (label - total).abs() > ((7 * total_params).div_euclid(8)) as f64
                    };
                    if far {
                        // Likely a context length.
                        types[i].push(Part::Finetune);
                        part = format!("{number}{}", last.to_lowercase());
                    }
                }
            }
            if types[i].is_empty() {
                types[i].push(Part::SizeLabel);
            }
            parts[i] = part;
        } else if i > 0 && FINETUNE_WORD.is_match(&part) {
            if total_params < 0 && part.eq_ignore_ascii_case("lora") {
                types[i].push(Part::Type);
            } else {
                types[i].push(Part::Finetune);
            }
        }
    }
    // Word sizes (`mini`) give way to numeric ones.
    let numeric_size = parts
        .iter()
        .zip(&types)
        .any(|(p, t)| t.contains(&Part::SizeLabel) && p.chars().any(|c| c.is_ascii_digit()));
    if numeric_size {
        for (p, t) in parts.iter().zip(types.iter_mut()) {
            if t.contains(&Part::SizeLabel) && p.chars().all(char::is_alphabetic) {
                t.retain(|x| *x != Part::SizeLabel);
            }
        }
    }
    let mut at_start = true;
    for (p, t) in parts.iter().zip(types.iter_mut()) {
        let starts_alpha = p.chars().next().is_some_and(char::is_alphabetic);
        if at_start && ((t.is_empty() && starts_alpha) || t.contains(&Part::Version)) {
            t.push(Part::Basename);
        } else {
            at_start = false;
            if t.is_empty() {
                t.push(Part::Finetune);
            }
        }
    }
    // A trailing version belongs to the finetune, not the basename.
    for t in types.iter_mut().rev() {
        if t.contains(&Part::Basename) && t.len() > 1 {
            t.retain(|x| *x != Part::Basename);
        } else {
            break;
        }
    }
    let join = |want: Part, exclude: Option<Part>| -> Option<String> {
        let mut seen = Vec::new();
        for (p, t) in parts.iter().zip(&types) {
            if t.contains(&want) && !exclude.is_some_and(|e| t.contains(&e)) {
                // Size labels are de-duplicated; the others are not.
                if want != Part::SizeLabel || !seen.contains(p) {
                    seen.push(p.clone());
                }
            }
        }
        (!seen.is_empty()).then(|| seen.join("-"))
    };
    let size_label = join(Part::SizeLabel, None);
    let finetune = join(Part::Finetune, None);
    let version = join(Part::Version, Some(Part::Basename));
    let basename = join(Part::Basename, None)
        .filter(|_| size_label.is_some() || finetune.is_some() || version.is_some());
    IdComponents {
        full_name: Some(full),
        organization: org,
        basename,
        finetune,
        version,
        size_label,
    }
}

/// Python's `str.title()` for one word: a cased letter is upper-cased after an uncased
/// character and lower-cased after a cased one.
fn title(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut after_cased = false;
    for c in word.chars() {
        let cased = c.is_lowercase() || c.is_uppercase();
        if cased && after_cased {
            out.extend(c.to_lowercase());
        } else if cased {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        after_cased = cased;
    }
    out
}

/// `Metadata.id_to_title`: dashes become spaces and all-lower-case words are title-cased, except
/// versions and words starting with a digit.
fn id_to_title(id: &str) -> String {
    id.trim()
        .replace('-', " ")
        .split_whitespace()
        .map(|w| {
            let has_cased = w.chars().any(|c| c.is_lowercase() || c.is_uppercase());
            let lower = has_cased && !w.chars().any(char::is_uppercase);
            if lower && !TITLE_EXEMPT.is_match(w) {
                title(w)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A scalar or list from the model card.
#[derive(Debug, Clone, PartialEq)]
enum CardValue {
    Text(String),
    List(Vec<String>),
}

impl CardValue {
    fn items(&self) -> Vec<String> {
        match self {
            CardValue::Text(s) => vec![s.clone()],
            CardValue::List(l) => l.clone(),
        }
    }

    fn text(&self) -> Option<String> {
        match self {
            CardValue::Text(s) => Some(s.clone()),
            CardValue::List(_) => None,
        }
    }
}

/// A YAML scalar as text, or `None` for null.
fn yaml_scalar(raw: &str) -> Option<String> {
    let s = strip_comment(raw).trim();
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        let inner = &s[1..s.len() - 1];
        return Some(if s.starts_with('\'') {
            inner.replace("''", "'")
        } else {
            inner.replace("\\\"", "\"").replace("\\\\", "\\")
        });
    }
    match s {
        "" | "~" | "null" | "Null" | "NULL" => None,
        _ => Some(s.to_string()),
    }
}

/// Drops a ` #` comment from a plain scalar (not inside quotes).
fn strip_comment(s: &str) -> &str {
    let quoted = s.trim_start().starts_with(['"', '\'']);
    match s.find(" #") {
        Some(i) if !quoted => &s[..i],
        _ => s,
    }
}

/// `[a, b]` flow lists.
fn yaml_flow_list(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.split(',').filter_map(yaml_scalar).collect())
}

/// The top-level keys of README.md's YAML front matter that are scalars or lists of scalars.
fn model_card(text: &str) -> BTreeMap<String, CardValue> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    if lines.next() != Some("---") {
        return out;
    }
    // gguf-py quotes `- no` (Norway) and turns tabs into spaces before parsing.
    let body: Vec<String> = lines
        .take_while(|l| *l != "---")
        .map(|l| l.replace('\t', "  "))
        .collect();
    let mut i = 0;
    while i < body.len() {
        let line = &body[i];
        i += 1;
        if line.starts_with([' ', '-', '#']) || line.trim().is_empty() {
            continue;
        }
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches(['"', '\'']).to_string();
        let rest = rest.trim();
        if rest.is_empty() {
            // A block list, or a nested map we do not use.
            let mut items = Vec::new();
            let mut nested = false;
            while i < body.len() && (body[i].starts_with([' ', '-']) || body[i].trim().is_empty()) {
                let item = body[i].trim_start();
                if let Some(v) =
                    item.strip_prefix("- ")
                        .or(if item == "-" { Some("") } else { None })
                {
                    if !body[i].starts_with(' ') || !nested {
                        items.extend(yaml_scalar(v));
                    }
                } else if !item.is_empty() {
                    nested = true;
                }
                i += 1;
            }
            if !nested || !items.is_empty() {
                out.insert(key, CardValue::List(items));
            }
        } else if rest.starts_with('[') {
            if let Some(list) = yaml_flow_list(rest) {
                out.insert(key, CardValue::List(list));
            }
        } else if rest.starts_with(['|', '>']) {
            // Block scalars: not used for the keys read here; skip their lines.
            while i < body.len() && (body[i].starts_with(' ') || body[i].trim().is_empty()) {
                i += 1;
            }
        } else {
            // Null is kept as an empty list: gguf-py then writes a zero count for base models.
            let value = yaml_scalar(rest).map_or(CardValue::List(Vec::new()), CardValue::Text);
            out.insert(key, value);
        }
    }
    out
}

/// A base model or dataset reference as gguf-py expands it from an id or URL.
fn reference(id: &str, total_params: i64) -> BTreeMap<&'static str, String> {
    let mut entry = BTreeMap::new();
    let mut fill = |c: IdComponents, with_repo: bool| {
        if let (true, Some(org), Some(name)) = (with_repo, &c.organization, &c.full_name) {
            entry.insert("repo_url", format!("https://huggingface.co/{org}/{name}"));
        }
        if let Some(name) = c.full_name {
            entry.insert("name", id_to_title(&name));
        }
        if let Some(org) = c.organization {
            entry.insert("organization", id_to_title(&org));
        }
        if let Some(v) = c.version {
            entry.insert("version", v);
        }
    };
    if ["http://", "https://", "ssh://"]
        .iter()
        .any(|p| id.starts_with(p))
    {
        if let Some(m) = HF_URL
            .captures(id)
            .filter(|_| id.contains("huggingface.co"))
        {
            fill(id_components(&m[1], total_params), false);
        }
        entry.insert("repo_url", id.to_string());
    } else {
        fill(id_components(id, total_params), true);
    }
    entry
}

/// Reads a small JSON file, or `None` when it is absent or not valid JSON.
fn json_file(dir: &dyn InputDir, name: &str) -> Result<Option<serde_json::Map<String, Json>>> {
    let Some(file) = dir.open(name)? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<Json>(&file.read_all()?)
        .ok()
        .and_then(|v| v.as_object().cloned()))
}

/// The last component of a folder path (`Path.name`).
fn folder_name(display: &str) -> String {
    display
        .trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// gguf-py's `Metadata` recommended sampler keys from generation_config.json: (its key, GGUF
/// key, whether the value is an integer).
const SAMPLING_KEYS: [(&[&str], &str, bool); 12] = [
    (&["sequence"], "general.sampling.sequence", false),
    (&["top_k"], "general.sampling.top_k", true),
    (&["top_p"], "general.sampling.top_p", false),
    (&["min_p"], "general.sampling.min_p", false),
    (
        &["xtc_probability"],
        "general.sampling.xtc_probability",
        false,
    ),
    (&["xtc_threshold"], "general.sampling.xtc_threshold", false),
    (&["temperature"], "general.sampling.temp", false),
    (&["penalty_last_n"], "general.sampling.penalty_last_n", true),
    (
        &["penalty_repeat", "repetition_penalty"],
        "general.sampling.penalty_repeat",
        false,
    ),
    (&["mirostat"], "general.sampling.mirostat", true),
    (&["mirostat_tau"], "general.sampling.mirostat_tau", false),
    (&["mirostat_eta"], "general.sampling.mirostat_eta", false),
];

fn sampling(dir: &dyn InputDir) -> Result<Metadata> {
    let mut m = Metadata::new();
    let Some(gen) = json_file(dir, "generation_config.json")? else {
        return Ok(m);
    };
    let path = format!("{}/generation_config.json", dir.display());
    for (keys, gguf, integer) in SAMPLING_KEYS {
        // gguf-py takes the first key that is present, null included.
        let Some(v) = keys
            .iter()
            .find_map(|k| gen.get(*k))
            .filter(|v| !v.is_null())
        else {
            continue;
        };
        let bad = || {
            Error::format(
                &path,
                format!("`{}` is {v}, which GGUF cannot store as {gguf}", keys[0]),
            )
        };
        let value = match (v, integer) {
            (Json::String(s), false) if gguf.ends_with("sequence") => Value::String(s.clone()),
            (Json::Number(n), true) => Value::I32(
                n.as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .ok_or_else(bad)?,
            ),
            (Json::Number(n), false) if !gguf.ends_with("sequence") => {
                Value::F32(n.as_f64().ok_or_else(bad)? as f32)
            }
            _ => return Err(bad()),
        };
        if value != Value::String(String::new()) {
            m.set(gguf, value);
        }
    }
    Ok(m)
}

impl GeneralMetadata {
    /// Derives the metadata of the model in `dir` with `total_params` parameters (the GGUF's
    /// element count).
    pub fn read(dir: &dyn InputDir, total_params: i64) -> Result<Self> {
        let mut m = GeneralMetadata {
            sampling: sampling(dir)?,
            ..Default::default()
        };
        if let Some(readme) = dir.open("README.md")? {
            let text = String::from_utf8_lossy(&readme.read_all()?).replace("- no\n", "- \"no\"\n");
            m.apply_model_card(&model_card(&text), total_params);
        }
        let name_or_path = json_file(dir, "config.json")?
            .and_then(|c| {
                c.get("_name_or_path")
                    .and_then(Json::as_str)
                    .map(String::from)
            })
            .filter(|n| n.matches('/').count() <= 1);
        if let Some(id) = name_or_path {
            m.apply_id(&id, total_params);
        }
        m.apply_id(&folder_name(&dir.display()), total_params);
        if m.size_label.is_none() && total_params > 0 {
            m.size_label = Some(size_label(total_params as u64));
        }
        Ok(m)
    }

    /// Fills what is still unknown from a model id (`_name_or_path`, then the folder name).
    fn apply_id(&mut self, id: &str, total_params: i64) {
        let c = id_components(id, total_params);
        let set = |slot: &mut Option<String>, v: Option<String>| {
            if slot.is_none() {
                *slot = v;
            }
        };
        set(&mut self.name, c.full_name.as_deref().map(id_to_title));
        set(
            &mut self.organization,
            c.organization.as_deref().map(id_to_title),
        );
        set(&mut self.basename, c.basename);
        set(&mut self.finetune, c.finetune);
        set(&mut self.version, c.version);
        set(&mut self.size_label, c.size_label);
    }

    fn apply_model_card(&mut self, card: &BTreeMap<String, CardValue>, total_params: i64) {
        let text = |key: &str| card.get(key).and_then(CardValue::text);
        // (field, card keys in the order gguf-py tries them)
        let slots: [(&mut Option<String>, &[&str]); 11] = [
            (&mut self.name, &["name", "model_name"]),
            (
                &mut self.author,
                &["author", "model_author", "model_creator"],
            ),
            (&mut self.version, &["version", "model_version"]),
            (
                &mut self.organization,
                &["organization", "model_organization"],
            ),
            (&mut self.description, &["description", "model_description"]),
            (&mut self.finetune, &["finetune", "model_finetune"]),
            (
                &mut self.basename,
                &["basename", "model_basename", "model_type"],
            ),
            (&mut self.size_label, &["size_label", "model_size_label"]),
            (&mut self.source_url, &["url", "model_url"]),
            (&mut self.source_doi, &["doi", "model_doi"]),
            (&mut self.source_uuid, &["uuid", "model_uuid"]),
        ];
        for (slot, keys) in slots {
            if slot.is_none() {
                *slot = keys.iter().find_map(|k| text(k));
            }
        }
        if self.source_repo_url.is_none() {
            self.source_repo_url = text("repo_url").or_else(|| text("model_repo_url"));
        }
        for (slot, keys) in [
            (
                &mut self.base_models,
                ["base_model", "base_models", "base_model_sources"],
            ),
            (
                &mut self.datasets,
                ["datasets", "dataset", "dataset_sources"],
            ),
        ] {
            if let Some(value) = keys.iter().find_map(|k| card.get(*k)) {
                let list = slot.get_or_insert_with(Vec::new);
                list.extend(value.items().iter().map(|id| reference(id, total_params)));
            }
        }
        if self.license.is_none() {
            self.license = card.get("license").map(CardValue::items);
        }
        if self.license_name.is_none() {
            self.license_name = text("license_name");
        }
        if self.license_link.is_none() {
            self.license_link = text("license_link");
        }
        for (slot, keys) in [
            (&mut self.tags, ["tags", "pipeline_tag"]),
            (&mut self.languages, ["languages", "language"]),
        ] {
            for key in keys {
                if let Some(v) = card.get(key) {
                    slot.get_or_insert_with(Vec::new).extend(v.items());
                }
            }
        }
    }

    /// The metadata entries in gguf-py's order (`set_gguf_meta_model`), with `quantized_by` in
    /// its slot.
    pub fn metadata(&self, quantized_by: &str) -> Metadata {
        let mut m = self.sampling.clone();
        let mut text = |key: &str, v: &Option<String>| {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                m.set(key, Value::String(v.into()));
            }
        };
        text("general.name", &self.name);
        text("general.author", &self.author);
        text("general.version", &self.version);
        text("general.organization", &self.organization);
        text("general.finetune", &self.finetune);
        text("general.basename", &self.basename);
        text("general.description", &self.description);
        text("general.quantized_by", &Some(quantized_by.into()));
        text("general.size_label", &self.size_label);
        text(
            "general.license",
            &self.license.as_ref().map(|l| l.join(",")),
        );
        text("general.license.name", &self.license_name);
        text("general.license.link", &self.license_link);
        text("general.source.url", &self.source_url);
        text("general.source.doi", &self.source_doi);
        text("general.source.uuid", &self.source_uuid);
        text("general.source.repo_url", &self.source_repo_url);
        for (kind, list) in [
            ("base_model", &self.base_models),
            ("dataset", &self.datasets),
        ] {
            let Some(list) = list else { continue };
            m.set(
                format!("general.{kind}.count"),
                Value::U32(list.len() as u32),
            );
            for (i, entry) in list.iter().enumerate() {
                for field in REFERENCE_FIELDS {
                    if let Some(v) = entry.get(field).filter(|v| !v.is_empty()) {
                        m.set(
                            format!("general.{kind}.{i}.{field}"),
                            Value::String(v.clone()),
                        );
                    }
                }
            }
        }
        for (key, list) in [
            ("general.tags", &self.tags),
            ("general.languages", &self.languages),
        ] {
            if let Some(list) = list.as_ref().filter(|l| !l.is_empty()) {
                m.set(key, Value::Array(Array::String(list.clone())));
            }
        }
        m
    }

    /// The converter's default file name (`naming_convention`) for output type `ty`, e.g.
    /// `Llama-3.2-1.2B-Instruct-F16`.
    pub fn file_stem(&self, ty: &str) -> String {
        let dashed = |s: &str| s.trim().replace(' ', "-");
        let mut name = match (&self.basename, &self.name) {
            (Some(b), _) => dashed(b).replace('/', "-"),
            (None, Some(n)) => dashed(n).replace('/', "-"),
            (None, None) => "ggml-model".into(),
        };
        for part in [&self.size_label, &self.finetune, &self.version]
            .into_iter()
            .flatten()
        {
            name.push('-');
            name.push_str(&dashed(part));
        }
        format!("{name}-{}", ty.to_uppercase())
    }
}

/// `gguf.size_label` for a dense model: the parameter count with two significant digits at
/// least, e.g. `1.2B`, `878K`.
fn size_label(total: u64) -> String {
    let n = total as f64;
    let (scaled, suffix) = if n > 1e12 {
        (n * 1e-12, "T")
    } else if n > 1e9 {
        (n * 1e-9, "B")
    } else if n > 1e6 {
        (n * 1e-6, "M")
    } else {
        (n * 1e-3, "K")
    };
    // Python's round() and len(str(...)): digits of the rounded integer, leading zeros dropped.
    let digits = format!("{}", scaled.round_ties_even() as u64)
        .trim_start_matches('0')
        .len();
    let decimals = 2usize.saturating_sub(digits);
    format!("{scaled:.decimals$}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(id: &str, total: i64) -> [Option<String>; 4] {
        let c = id_components(id, total);
        [c.basename, c.size_label, c.finetune, c.version]
    }

    fn s(v: &str) -> Option<String> {
        Some(v.into())
    }

    #[test]
    fn model_ids_split_like_gguf_py() {
        assert_eq!(
            parts("meta-llama/Llama-3.2-1B-Instruct", 1_235_814_400),
            [s("Llama-3.2"), s("1B"), s("Instruct"), None]
        );
        // A size far from the real count reads as a context length.
        assert_eq!(
            parts("Llama-3.2-1B-Instruct", 877_856),
            [s("Llama-3.2"), None, s("1b-Instruct"), None]
        );
        assert_eq!(
            parts("Mistral-7B-Instruct-v0.3", 7_000_000_000),
            [s("Mistral"), s("7B"), s("Instruct"), s("v0.3")]
        );
        assert_eq!(
            parts("Phi-3.5-mini-instruct", 3_800_000_000),
            [s("Phi-3.5"), s("mini"), s("instruct"), None]
        );
        assert_eq!(
            parts("bloom-7b1", 7_100_000_000),
            [s("bloom"), s("7.1B"), None, None]
        );
        assert_eq!(parts("tiny", 10), [None, None, None, None]);
        assert_eq!(id_components("./x", 0).organization, None);
    }

    #[test]
    fn titles_follow_python() {
        assert_eq!(id_to_title("gemma-2-2b-it"), "Gemma 2 2b It");
        assert_eq!(
            id_to_title("Qwen2.5-0.5B-Instruct"),
            "Qwen2.5 0.5B Instruct"
        );
        assert_eq!(id_to_title("llama3b-v2.1"), "Llama3B v2.1");
        assert_eq!(id_to_title("unsloth"), "Unsloth");
    }

    #[test]
    fn size_labels() {
        assert_eq!(size_label(877_856), "878K");
        assert_eq!(size_label(1_235_814_400), "1.2B");
        assert_eq!(size_label(494_032_768), "494M");
        assert_eq!(size_label(7_241_732_096), "7.2B");
        assert_eq!(size_label(70_553_706_496), "71B");
    }

    #[test]
    fn model_card_front_matter() {
        let card = model_card(
            "---\nbase_model: unsloth/llama-3-8b-bnb-4bit\nlanguage:\n- en\n- \"no\"\nlicense: apache-2.0 # comment\ntags:\n  - text-generation-inference\n  - unsloth\nextra:\n  nested: 1\ndescription: |\n  long\n  text\ndatasets: [a/b, 'c']\n---\n# Title\n",
        );
        assert_eq!(
            card["base_model"],
            CardValue::Text("unsloth/llama-3-8b-bnb-4bit".into())
        );
        assert_eq!(
            card["language"],
            CardValue::List(vec!["en".into(), "no".into()])
        );
        assert_eq!(card["license"], CardValue::Text("apache-2.0".into()));
        assert_eq!(
            card["tags"],
            CardValue::List(vec!["text-generation-inference".into(), "unsloth".into()])
        );
        assert_eq!(
            card["datasets"],
            CardValue::List(vec!["a/b".into(), "c".into()])
        );
        assert!(!card.contains_key("extra") && !card.contains_key("description"));
        let r = reference("unsloth/llama-3-8b-bnb-4bit", 8_000_000_000);
        assert_eq!(r["name"], "Llama 3 8b Bnb 4bit");
        assert_eq!(r["organization"], "Unsloth");
        assert_eq!(
            r["repo_url"],
            "https://huggingface.co/unsloth/llama-3-8b-bnb-4bit"
        );
    }

    #[test]
    fn file_stems() {
        let m = GeneralMetadata {
            name: s("Llama 3.2 1B Instruct"),
            basename: s("Llama-3.2"),
            size_label: s("1.2B"),
            finetune: s("Instruct"),
            ..Default::default()
        };
        assert_eq!(m.file_stem("q8_0"), "Llama-3.2-1.2B-Instruct-Q8_0");
        assert_eq!(
            GeneralMetadata::default().file_stem("f16"),
            "ggml-model-F16"
        );
        assert_eq!(folder_name("models/Qwen3-0.6B/"), "Qwen3-0.6B");
    }
}
