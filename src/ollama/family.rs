//! Chat-template families: recognition from the template text, and per family the stop strings,
//! sampling parameters and (for templates too involved to convert structurally) the layout of
//! the family's published template.
//!
//! Recognition reads the literal text a template can emit (special tokens and their layout), not
//! model names, so fine-tunes and re-uploads are recognised as well as the originals.

use super::jinja::{self, Expr, Token};
use super::template::{text, Layout, Leading, Piece, Thinking, Turn, SYSTEM_IN_FIRST_USER};
use std::fmt;

/// A family of chat templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// Llama 2 chat: `[INST] <<SYS>>…<</SYS>> … [/INST]`.
    Llama2,
    /// Llama 3 instruct: `<|start_header_id|>role<|end_header_id|>`.
    Llama3,
    /// Llama 3.1 / 3.2 / 3.3 (with or without tool calling): Llama 3 plus the dated system header.
    Llama31,
    /// Mistral instruct v0.1/v0.2, no system prompt: `[INST] … [/INST]`.
    Mistral,
    /// Mistral "v1": ` [INST] … [/INST]` with the system prompt in the first user turn.
    MistralV1,
    /// Mistral "v3" (7B v0.3, Large 2407): system prompt in the last user turn, tool blocks.
    MistralV3,
    /// Mistral "v3-tekken" (Nemo): as v3 without the spaces.
    MistralV3Tekken,
    /// Mistral "v7" (Large 2411): `[SYSTEM_PROMPT]` blocks.
    MistralV7,
    /// Mistral "v7-tekken" (Small 3.x, Devstral): as v7 without the spaces.
    MistralV7Tekken,
    /// ChatML: `<|im_start|>role … <|im_end|>` (Qwen 2 / 2.5, Hermes, OpenHermes, …).
    ChatMl,
    /// Qwen 3: ChatML with `<think>` reasoning blocks.
    Qwen3,
    /// Gemma / Gemma 2: `<start_of_turn>user|model`.
    Gemma,
    /// Gemma 3: Gemma with the system prompt in the first user turn.
    Gemma3,
    /// Phi-3 / Phi-3.5: `<|user|> … <|end|>`.
    Phi3,
    /// Phi-4: ChatML with `<|im_sep|>`.
    Phi4,
    /// Zephyr (and TinyLlama chat): `<|user|>` turns closed by EOS.
    Zephyr,
    /// Alpaca-style `### Instruction:` / `### Response:`.
    Alpaca,
    /// Vicuna-style `USER:` / `ASSISTANT:`.
    Vicuna,
    /// None of the above.
    Unknown,
}

impl Family {
    /// A short lowercase name (`llama3.1`, `chatml`, `mistral-v3-tekken`, …).
    pub fn name(self) -> &'static str {
        info(self).name
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a family brings besides its layout.
struct FamilyInfo {
    family: Family,
    name: &'static str,
    /// Turn markers to stop at (the end-of-turn token of the assistant and the EOS are added from
    /// the template and tokenizer).
    stops: &'static [&'static str],
    /// Stop strings only added when the template itself emits them.
    stops_if_emitted: &'static [&'static str],
    /// Sampling parameters as Ollama's library ships them for the family.
    params: &'static [(&'static str, f64)],
}

/// The one table of stop strings and sampling parameters, per family. Values follow the
/// `params` of Ollama's library models (llama3: num_keep 24; gemma: repeat_penalty 1; gemma3:
/// temperature 1, top_k 64, top_p 0.95; qwen3: temperature 0.6, top_k 20, top_p 0.95,
/// repeat_penalty 1; mistral small: temperature 0.15).
const FAMILIES: &[FamilyInfo] = &[
    FamilyInfo {
        family: Family::Llama2,
        name: "llama2",
        stops: &["[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"],
        stops_if_emitted: &[],
        params: &[],
    },
    FamilyInfo {
        family: Family::Llama3,
        name: "llama3",
        stops: &["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        stops_if_emitted: &[],
        params: &[("num_keep", 24.0)],
    },
    FamilyInfo {
        family: Family::Llama31,
        name: "llama3.1",
        stops: &["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        stops_if_emitted: &["<|eom_id|>"],
        params: &[],
    },
    FamilyInfo {
        family: Family::Mistral,
        name: "mistral",
        stops: &["[INST]", "[/INST]"],
        stops_if_emitted: &[],
        params: &[],
    },
    FamilyInfo {
        family: Family::MistralV1,
        name: "mistral-v1",
        stops: &["[INST]", "[/INST]"],
        stops_if_emitted: &[],
        params: &[],
    },
    FamilyInfo {
        family: Family::MistralV3,
        name: "mistral-v3",
        stops: &["[INST]", "[/INST]"],
        stops_if_emitted: &[],
        params: &[],
    },
    FamilyInfo {
        family: Family::MistralV3Tekken,
        name: "mistral-v3-tekken",
        stops: &["[INST]", "[/INST]"],
        stops_if_emitted: &[],
        params: &[],
    },
    FamilyInfo {
        family: Family::MistralV7,
        name: "mistral-v7",
        stops: &["[INST]", "[/INST]"],
        stops_if_emitted: &[],
        params: &[],
    },
    FamilyInfo {
        family: Family::MistralV7Tekken,
        name: "mistral-v7-tekken",
        stops: &["[INST]", "[/INST]"],
        stops_if_emitted: &[],
        params: &[("temperature", 0.15)],
    },
    FamilyInfo {
        family: Family::ChatMl,
        name: "chatml",
        stops: &["<|im_start|>", "<|im_end|>"],
        stops_if_emitted: &[],
        params: &[],
    },
    FamilyInfo {
        family: Family::Qwen3,
        name: "qwen3",
        stops: &["<|im_start|>", "<|im_end|>"],
        stops_if_emitted: &[],
        params: &[
            ("temperature", 0.6),
            ("top_k", 20.0),
            ("top_p", 0.95),
            ("repeat_penalty", 1.0),
        ],
    },
    FamilyInfo {
        family: Family::Gemma,
        name: "gemma",
        stops: &["<start_of_turn>", "<end_of_turn>"],
        stops_if_emitted: &[],
        params: &[("repeat_penalty", 1.0)],
    },
    FamilyInfo {
        family: Family::Gemma3,
        name: "gemma3",
        stops: &["<end_of_turn>"],
        stops_if_emitted: &[],
        params: &[("temperature", 1.0), ("top_k", 64.0), ("top_p", 0.95)],
    },
    FamilyInfo {
        family: Family::Phi3,
        name: "phi3",
        stops: &["<|end|>", "<|user|>", "<|assistant|>"],
        stops_if_emitted: &[],
        params: &[],
    },
    FamilyInfo {
        family: Family::Phi4,
        name: "phi4",
        stops: &["<|im_start|>", "<|im_end|>", "<|im_sep|>"],
        stops_if_emitted: &[],
        params: &[],
    },
    FamilyInfo {
        family: Family::Zephyr,
        name: "zephyr",
        stops: &["<|system|>", "<|user|>", "<|assistant|>"],
        stops_if_emitted: &[],
        params: &[],
    },
    FamilyInfo {
        family: Family::Alpaca,
        name: "alpaca",
        stops: &["### Instruction:", "### Response:"],
        stops_if_emitted: &[],
        params: &[],
    },
    FamilyInfo {
        family: Family::Vicuna,
        name: "vicuna",
        stops: &["USER:", "ASSISTANT:"],
        stops_if_emitted: &[],
        params: &[],
    },
    FamilyInfo {
        family: Family::Unknown,
        name: "unknown",
        stops: &[],
        stops_if_emitted: &[],
        params: &[],
    },
];

fn info(family: Family) -> &'static FamilyInfo {
    FAMILIES
        .iter()
        .find(|i| i.family == family)
        .expect("every family has a table row")
}

/// The family's stop strings (those it emits or always uses).
pub(crate) fn stops(family: Family, literals: &[String]) -> Vec<String> {
    let row = info(family);
    let emitted = |s: &&&str| literals.iter().any(|l| l.contains(**s));
    row.stops
        .iter()
        .chain(row.stops_if_emitted.iter().filter(emitted))
        .map(|s| s.to_string())
        .collect()
}

/// The family's sampling parameters.
pub(crate) fn sampling(family: Family) -> &'static [(&'static str, f64)] {
    info(family).params
}

/// A template's literal text, as recognition and the family layouts read it.
pub(crate) struct Markers<'a> {
    /// The template source.
    pub raw: &'a str,
    /// Its tokens, or why it does not tokenize.
    pub tokens: Result<Vec<Token>, String>,
    /// Its decoded literals.
    pub literals: Vec<String>,
}

impl<'a> Markers<'a> {
    /// Reads `raw`; a template that does not tokenize has no markers.
    pub fn new(raw: &'a str) -> Self {
        let tokens = jinja::tokenize(raw);
        let literals = tokens.as_deref().map(jinja::literals).unwrap_or_default();
        Markers {
            raw,
            tokens,
            literals,
        }
    }
    fn has(&self, marker: &str) -> bool {
        self.literals.iter().any(|l| l.contains(marker))
    }
    fn has_exact(&self, literal: &str) -> bool {
        self.literals.iter().any(|l| l == literal)
    }
}

/// Recognises the family of a Jinja chat template.
pub fn recognize(template: &str) -> Family {
    recognize_markers(&Markers::new(template))
}

/// [`recognize`] over already-read markers.
pub(crate) fn recognize_markers(m: &Markers) -> Family {
    let spaced_inst = m.has("[INST] ");
    if m.has("<|im_start|>") {
        if m.has("<|im_sep|>") {
            Family::Phi4
        } else if m.has("<end_of_utterance>") {
            // SmolVLM uses <|im_start|> as BOS but is not ChatML.
            Family::Unknown
        } else if m.has("<think>") || m.has("</think>") {
            // Only Qwen 3's switchable reasoning is modelled; templates that force a `<think>`
            // opening (QwQ, thinking-only models) are left alone.
            if m.has_exact("<think>\n\n</think>\n\n") && m.raw.contains("enable_thinking") {
                Family::Qwen3
            } else {
                Family::Unknown
            }
        } else {
            Family::ChatMl
        }
    } else if m.raw.trim_start().starts_with("mistral") || m.has("[INST]") {
        if m.has("[SYSTEM_PROMPT]") {
            if spaced_inst {
                Family::MistralV7
            } else {
                Family::MistralV7Tekken
            }
        } else if m.has("<<SYS>>") {
            Family::Llama2
        } else if m.has("[AVAILABLE_TOOLS]") {
            if spaced_inst {
                Family::MistralV3
            } else {
                Family::MistralV3Tekken
            }
        } else if m.literals.iter().any(|l| l.starts_with(" [INST]")) {
            Family::MistralV1
        } else {
            Family::Mistral
        }
    } else if m.has("<|assistant|>") && m.has("<|end|>") {
        Family::Phi3
    } else if m.has("<|user|>") && m.has("<|assistant|>") && !m.has("[gMASK]") {
        Family::Zephyr
    } else if m.has("<start_of_turn>") {
        if m.raw.contains("first_user_prefix") || m.has("<start_of_image>") {
            Family::Gemma3
        } else {
            Family::Gemma
        }
    } else if m.has("<|start_header_id|>") && m.has("<|end_header_id|>") {
        if m.has("Cutting Knowledge Date:") {
            Family::Llama31
        } else {
            Family::Llama3
        }
    } else if m.has("USER:") && m.has("ASSISTANT:") {
        Family::Vicuna
    } else if m.has("### Instruction:") && m.has("### Response:") && !m.has("<|EOT|>") {
        Family::Alpaca
    } else {
        Family::Unknown
    }
}

/// The layout of the family's published template, for templates too involved to convert
/// structurally, with its default system prompt. `Err` explains why there is none: families whose
/// published templates are simple (converted structurally) have no fallback, so a variant that is
/// not simple gets no template rather than a guessed one.
pub(crate) fn layout(family: Family, m: &Markers) -> Result<FamilyLayout, String> {
    let turn = |p: &str, s: Vec<Piece>| Turn::new(vec![text(p)], s);
    let uniform = |p: &str, mid: &str, s: &str| {
        Turn::new(vec![text(p), Piece::Role, text(mid)], vec![text(s)])
    };
    let base = |user: Turn, assistant: Turn, generation: &str| Layout {
        opening: vec![],
        leading: Leading::Turn,
        system: None,
        user,
        assistant,
        other: None,
        generation: vec![text(generation)],
        thinking: None,
    };
    let first_user = |before: &str, after: &str| Leading::FirstUser {
        before: vec![text(before)],
        after: vec![text(after)],
    };
    let last_user = Leading::LastUser {
        before: vec![],
        after: vec![text("\n\n")],
    };
    let layout = match family {
        Family::Llama2 => Layout {
            leading: first_user("<<SYS>>\n", "\n<</SYS>>\n\n"),
            ..base(
                Turn::new(vec![Piece::Bos, text("[INST] ")], vec![text(" [/INST]")]),
                turn(" ", vec![text(" "), Piece::Eos]),
                "",
            )
        },
        Family::Llama3 | Family::Llama31 => {
            let header = uniform("<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>");
            let mut l = Layout {
                system: Some(header.clone()),
                other: Some(header.clone()),
                ..base(
                    header.clone(),
                    header,
                    "<|start_header_id|>assistant<|end_header_id|>\n\n",
                )
            };
            if family == Family::Llama31 {
                let date = default_date(m).ok_or("no default `date_string` in the template")?;
                let opening = format!(
                    "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: {date}\n\n"
                );
                l.leading = Leading::Own {
                    turn: turn(&opening, vec![text("<|eot_id|>")]),
                    always: true,
                };
                // Tool results render as `ipython` turns with JSON content: not modelled.
                l.other = None;
            }
            l
        }
        Family::ChatMl | Family::Qwen3 => {
            let im = uniform("<|im_start|>", "\n", "<|im_end|>\n");
            let mut l = Layout {
                system: Some(im.clone()),
                ..base(im.clone(), im, "<|im_start|>assistant\n")
            };
            if family == Family::Qwen3 {
                l.thinking = Some(Thinking {
                    open: "<think>\n".into(),
                    close: "\n</think>\n\n".into(),
                });
            }
            return Ok(FamilyLayout {
                layout: l,
                default_system: chatml_default_system(m),
                note: None,
            });
        }
        Family::Gemma | Family::Gemma3 => {
            let l = Layout {
                leading: first_user("", "\n\n"),
                ..base(
                    turn("<start_of_turn>user\n", vec![text("<end_of_turn>\n")]),
                    turn("<start_of_turn>model\n", vec![text("<end_of_turn>\n")]),
                    "<start_of_turn>model\n",
                )
            };
            // Gemma 1/2 templates refuse system messages; Gemma 3's placement serves them too.
            let note = (family == Family::Gemma).then(|| SYSTEM_IN_FIRST_USER.to_string());
            return Ok(FamilyLayout {
                layout: l,
                default_system: None,
                note,
            });
        }
        Family::Phi3 => {
            let t = uniform("<|", "|>\n", "<|end|>\n");
            Layout {
                system: Some(t.clone()),
                ..base(t.clone(), t, "<|assistant|>\n")
            }
        }
        Family::MistralV1 => Layout {
            leading: first_user("", "\n\n"),
            ..base(
                turn(" [INST] ", vec![text(" [/INST]")]),
                turn(" ", vec![Piece::Eos]),
                "",
            )
        },
        Family::MistralV3 => Layout {
            leading: last_user,
            ..base(
                turn("[INST] ", vec![text("[/INST]")]),
                turn(" ", vec![Piece::Eos]),
                "",
            )
        },
        Family::MistralV3Tekken => Layout {
            leading: last_user,
            ..base(
                turn("[INST]", vec![text("[/INST]")]),
                turn("", vec![Piece::Eos]),
                "",
            )
        },
        Family::MistralV7Tekken => {
            let l = Layout {
                system: Some(turn("[SYSTEM_PROMPT]", vec![text("[/SYSTEM_PROMPT]")])),
                ..base(
                    turn("[INST]", vec![text("[/INST]")]),
                    turn("", vec![Piece::Eos]),
                    "",
                )
            };
            let (default_system, note) = match mistral_default_system(m) {
                Ok(d) => (d, None),
                Err(w) => (None, Some(w)),
            };
            return Ok(FamilyLayout {
                layout: l,
                default_system,
                note,
            });
        }
        Family::Mistral
        | Family::MistralV7
        | Family::Phi4
        | Family::Zephyr
        | Family::Alpaca
        | Family::Vicuna
        | Family::Unknown => return Err("no layout to fall back on".into()),
    };
    Ok(FamilyLayout {
        layout,
        default_system: None,
        note: None,
    })
}

/// A family's fallback layout.
pub(crate) struct FamilyLayout {
    /// The layout of the family's published template.
    pub layout: Layout,
    /// The default system prompt found in the template.
    pub default_system: Option<String>,
    /// Something the layout cannot reproduce, or a choice it makes.
    pub note: Option<String>,
}

/// `set date_string = "26 Jul 2024"`: the date llama 3.x templates print when given none.
fn default_date(m: &Markers) -> Option<String> {
    m.tokens
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find_map(|t| match t {
            Token::Statement(s) => {
                let rhs = s.strip_prefix("set")?.trim().strip_prefix("date_string")?;
                match jinja::parse_expr(rhs.trim().strip_prefix('=')?) {
                    Ok(Expr::Str(d)) => Some(d),
                    _ => None,
                }
            }
            _ => None,
        })
}

/// A ChatML system turn written out as one literal (Qwen's "You are Qwen, …" default).
fn chatml_default_system(m: &Markers) -> Option<String> {
    m.literals.iter().find_map(|l| {
        let inner = l.strip_prefix("<|im_start|>system\n")?;
        let inner = inner
            .strip_suffix("<|im_end|>\n")
            .or_else(|| inner.strip_suffix("<|im_end|>"))?;
        (!inner.is_empty() && !inner.contains("<|im_")).then(|| inner.to_string())
    })
}

/// Mistral Small's `default_system_message`, when it is a plain literal.
fn mistral_default_system(m: &Markers) -> Result<Option<String>, String> {
    for t in m.tokens.as_deref().unwrap_or_default() {
        let Token::Statement(s) = t else { continue };
        let Some(rhs) = s
            .strip_prefix("set")
            .and_then(|r| r.trim().strip_prefix("default_system_message"))
            .and_then(|r| r.trim().strip_prefix('='))
        else {
            continue;
        };
        return match jinja::parse_expr(rhs) {
            Ok(Expr::Str(d)) => Ok(Some(d)),
            _ => Err("the template computes its default system prompt when rendering (it contains the current date), so no SYSTEM is written: conversations without a system message miss it; add a SYSTEM line to the Modelfile".into()),
        };
    }
    Ok(None)
}

/// Whether the special tokens of a fallback layout all occur in the template; when they do not,
/// the template only shares the family's markers and the fallback would be a guess.
pub(crate) fn fits(layout: &Layout, m: &Markers) -> bool {
    let special = regex::Regex::new(r"<[^<>\s]+>|\[[A-Z_/]+\]").expect("valid pattern");
    let joined: String = m.literals.concat();
    let pieces = layout
        .turns()
        .flat_map(|t| t.prefix.iter().chain(&t.suffix))
        .chain(&layout.generation);
    pieces.into_iter().all(|p| match p {
        Piece::Text(t) => special
            .find_iter(t)
            .all(|tok| joined.contains(tok.as_str())),
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_one_row() {
        for row in FAMILIES {
            assert_eq!(
                FAMILIES.iter().filter(|r| r.family == row.family).count(),
                1
            );
            assert_eq!(row.family.name(), row.name);
        }
    }

    #[test]
    fn recognition_ignores_whitespace_style() {
        let a = "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}";
        let b = "{%- for m in messages -%}\n  {{- \"<|im_start|>\" ~ m.role ~ \"\n\" ~ m.content ~ \"<|im_end|>\n\" -}}\n{%- endfor -%}";
        assert_eq!(recognize(a), Family::ChatMl);
        assert_eq!(recognize(b), Family::ChatMl);
        assert_eq!(recognize("{{ messages }}"), Family::Unknown);
    }
}
