//! Ollama output: a Modelfile whose TEMPLATE reproduces the model's Jinja chat template, and a
//! push of GGUF + Modelfile to a local Ollama server.
//!
//! The chat template is read from its text, not from a model-id table: [`recognize`] names its
//! family by its special tokens and layout; simple templates (one loop of per-role literal text)
//! are converted structurally and exactly, the published templates of the main families (with
//! tool and reasoning logic) get their family's layout, and anything else gets no TEMPLATE and a
//! warning rather than a guess. The Go template is generated from one data description
//! (`template::Layout`), and the tests render both sides to check they produce the same prompt.

#[cfg(feature = "net-native")]
pub use api::push_native;
pub use api::{
    validate_model_name, Blob, Digest, OllamaClient, Progress, PushRequest, DEFAULT_HOST,
};
pub use family::{recognize, Family};
pub use modelfile::{Modelfile, TemplateOrigin};

mod api;
mod extract;
mod family;
mod jinja;
mod modelfile;
mod template;

use crate::error::{Error, Result};
use template::{Piece, Specials};

/// What a Modelfile is made from.
#[derive(Debug, Clone, Default)]
pub struct ModelfileSpec {
    /// File name of the GGUF, written as `FROM ./<gguf_file>` (the Modelfile sits next to it).
    pub gguf_file: String,
    /// File name of a LoRA GGUF, written as `ADAPTER ./<adapter_file>`.
    pub adapter_file: Option<String>,
    /// The tokenizer's Jinja chat template (`tokenizer_config.json` / `chat_template.jinja`).
    pub chat_template: Option<String>,
    /// The tokenizer's BOS token text, for templates that write `bos_token` between turns.
    pub bos_token: Option<String>,
    /// The tokenizer's EOS token text: templates write it, and it is always a stop string.
    pub eos_token: Option<String>,
}

/// Builds the Modelfile for `spec`. Fails only on unusable file names; everything about the chat
/// template that cannot be reproduced is a warning in the result.
pub fn modelfile(spec: &ModelfileSpec) -> Result<Modelfile> {
    let from = relative_path(&spec.gguf_file, "GGUF")?;
    let adapter = spec
        .adapter_file
        .as_deref()
        .map(|a| relative_path(a, "adapter"))
        .transpose()?;
    let mut mf = Modelfile {
        from,
        adapter,
        template: None,
        system: None,
        stop: Vec::new(),
        parameters: Vec::new(),
        family: Family::Unknown,
        origin: TemplateOrigin::None,
        warnings: Vec::new(),
    };
    let Some(source) = spec
        .chat_template
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    else {
        mf.warnings.push(
            "the tokenizer has no chat template, so the Modelfile has no TEMPLATE: Ollama will \
             send prompts to the model as they are"
                .into(),
        );
        return Ok(mf);
    };
    let markers = family::Markers::new(source);
    mf.family = family::recognize_markers(&markers);
    let structural = markers
        .tokens
        .clone()
        .and_then(|t| jinja::parse(&t))
        .and_then(|nodes| extract::extract(&nodes));
    let (layout, default_system) = match structural {
        Ok(e) => {
            mf.origin = TemplateOrigin::Structural;
            mf.warnings.extend(e.note);
            (e.layout, e.default_system)
        }
        Err(why) => match family::layout(mf.family, &markers) {
            Ok(fl) if family::fits(&fl.layout, &markers) => {
                mf.origin = TemplateOrigin::Family;
                mf.warnings.extend(fl.note);
                (fl.layout, fl.default_system)
            }
            _ => {
                mf.warnings.push(no_template_warning(mf.family, &why));
                return Ok(mf);
            }
        },
    };
    let specials = Specials {
        bos: spec.bos_token.as_deref().unwrap_or(""),
        eos: spec.eos_token.as_deref().unwrap_or(""),
    };
    if specials.eos.is_empty() && uses(&layout, &Piece::Eos) {
        mf.warnings.push(
            "the chat template writes the EOS token but none was given; it is left out of the \
             TEMPLATE"
                .into(),
        );
    }
    mf.template = Some(template::go_template(&layout, specials));
    mf.stop = stops(mf.family, &markers.literals, &layout, specials);
    mf.parameters = family::sampling(mf.family)
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    if let Some(system) = default_system {
        if modelfile::quote(&system).is_none() {
            mf.warnings.push(
                "the default system prompt has a line ending in quotes, which a Modelfile cannot \
                 hold; it is sent when pushing but missing from the file"
                    .into(),
            );
        }
        mf.system = Some(system);
    }
    Ok(mf)
}

fn no_template_warning(family: Family, why: &str) -> String {
    let what = if family == Family::Unknown {
        "the chat template is not one of the known families".to_string()
    } else {
        format!("the chat template looks like {family} but is not its published template")
    };
    format!(
        "{what} and too involved to convert exactly ({why}), so the Modelfile has no TEMPLATE: \
         Ollama will pick one from the GGUF's tokenizer.chat_template (check it with \
         `ollama show --template`) or you can add one by hand"
    )
}

fn uses(layout: &template::Layout, piece: &Piece) -> bool {
    layout
        .turns()
        .flat_map(|t| t.prefix.iter().chain(&t.suffix))
        .chain(&layout.generation)
        .chain(&layout.opening)
        .any(|p| p == piece)
}

/// The family's stop strings, the token that ends an assistant turn (or, when turns have no end
/// marker, the one that opens the next user turn), and the EOS.
fn stops(
    family: Family,
    literals: &[String],
    layout: &template::Layout,
    specials: Specials,
) -> Vec<String> {
    let end_of_turn = first_token(&template::plain(&layout.assistant.suffix, specials))
        .or_else(|| first_token(&template::plain(&layout.user.prefix, specials)));
    let mut out: Vec<String> = Vec::new();
    let candidates = family::stops(family, literals)
        .into_iter()
        .chain(end_of_turn)
        .chain(Some(specials.eos.to_string()));
    for stop in candidates {
        if !stop.is_empty() && !out.contains(&stop) {
            out.push(stop);
        }
    }
    out
}

/// The leading special token of `text` (`<|im_end|>`, `[INST]`), or its first line.
fn first_token(text: &str) -> Option<String> {
    let t = text.trim_start();
    let token = match t.chars().next()? {
        '<' => &t[..=t.find('>')?],
        '[' => &t[..=t.find(']')?],
        _ => t.lines().next()?.trim_end(),
    };
    (!token.is_empty()).then(|| token.to_string())
}

/// `./<name>` for a file next to the Modelfile.
fn relative_path(name: &str, what: &str) -> Result<String> {
    let bad = name.is_empty()
        || name != name.trim()
        || name.contains(['\n', '\r', '"'])
        || name.starts_with('/')
        || name.split(['/', '\\']).any(|c| c == "..");
    if bad {
        return Err(Error::usage(format!(
            "{what} file name `{name}` cannot go in a Modelfile: give a plain relative file name"
        )));
    }
    Ok(format!("./{name}"))
}

impl ModelfileSpec {
    /// The spec for the GGUF named `gguf_file` that is being written with `vocab`.
    pub fn from_vocab(vocab: &crate::model::vocab::Vocab, gguf_file: &str) -> Self {
        let token = |kind: &str| {
            let id = vocab.special_ids.iter().find(|(k, _)| k == kind)?.1;
            vocab.tokens.get(id as usize).cloned()
        };
        ModelfileSpec {
            gguf_file: gguf_file.to_string(),
            adapter_file: None,
            chat_template: vocab.chat_template.clone(),
            bos_token: token("bos"),
            eos_token: token("eos"),
        }
    }

    /// The spec for an existing GGUF file named `gguf_file`, from its `tokenizer.*` metadata:
    /// the chat template and the BOS/EOS token texts.
    pub fn from_gguf(gguf: &crate::formats::gguf::GgufFile, gguf_file: &str) -> Self {
        use crate::formats::gguf::{Array, Value};
        let text = |key: &str| match gguf.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let token = |key: &str| {
            let id = match gguf.get(key)? {
                Value::U32(id) => *id as usize,
                _ => return None,
            };
            match gguf.get("tokenizer.ggml.tokens")? {
                Value::Array(Array::String(tokens)) => tokens.get(id).cloned(),
                _ => None,
            }
        };
        ModelfileSpec {
            gguf_file: gguf_file.to_string(),
            adapter_file: None,
            chat_template: text("tokenizer.chat_template"),
            bos_token: token("tokenizer.ggml.bos_token_id"),
            eos_token: token("tokenizer.ggml.eos_token_id"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_tokens() {
        assert_eq!(first_token("<|im_end|>\n").as_deref(), Some("<|im_end|>"));
        assert_eq!(first_token(" </s><s>").as_deref(), Some("</s>"));
        assert_eq!(
            first_token("\n\nQuestion:\nx").as_deref(),
            Some("Question:")
        );
        assert_eq!(first_token("  "), None);
    }

    #[test]
    fn file_names_are_checked() {
        let spec = |f: &str| ModelfileSpec {
            gguf_file: f.into(),
            ..Default::default()
        };
        assert!(modelfile(&spec("a.gguf")).is_ok());
        for bad in ["", "../a.gguf", "/a.gguf", "a\nb.gguf", " a.gguf"] {
            assert!(modelfile(&spec(bad)).is_err(), "{bad:?}");
        }
        let mf = modelfile(&spec("m.gguf")).unwrap();
        assert_eq!(mf.from, "./m.gguf");
        assert!(mf.template.is_none() && !mf.warnings.is_empty());
    }
}
