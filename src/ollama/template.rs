//! A chat format as data ([`Layout`]) and its Ollama Go template.
//!
//! Every family and every structurally converted template ends up as a `Layout`; one generator
//! turns it into a `.Messages` template in the style of Ollama's own library (`$last` decides
//! between the generation prompt and continuing a final assistant message). Keeping one generator
//! means one place where Go-template subtleties are handled: `{{-` only after actions, `{{` and
//! `"""` escaped in literal text, BOS never repeated at the start of a prompt (the runtime adds it).

/// One piece of a turn's wrapping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    /// Literal text.
    Text(String),
    /// The message's role name as is (`user`, `assistant`, ...).
    Role,
    /// The role name with its first letter upper-cased (`User`), Python's `str.title()` on one word.
    RoleTitle,
    /// The tokenizer's BOS string.
    Bos,
    /// The tokenizer's EOS string.
    Eos,
}

/// Shorthand for a literal piece.
pub(crate) fn text(s: &str) -> Piece {
    Piece::Text(s.to_string())
}

/// What goes around one message's content.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Turn {
    /// Before the content.
    pub prefix: Vec<Piece>,
    /// After the content (left out for a final assistant message, which the model continues).
    pub suffix: Vec<Piece>,
}

impl Turn {
    /// A turn from prefix and suffix pieces.
    pub fn new(prefix: Vec<Piece>, suffix: Vec<Piece>) -> Self {
        Turn { prefix, suffix }
    }
}

/// Where a conversation's first message goes when it is a system message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Leading {
    /// Rendered as a turn like any other system message.
    Turn,
    /// Rendered with its own format, which opens every prompt even without a system message when
    /// `always` is set (llama 3.1's dated system header).
    Own {
        /// The format of the leading system message.
        turn: Turn,
        /// Emit the format (around empty content) when there is no system message.
        always: bool,
    },
    /// Put in front of the content of the first user message (llama 2, gemma 3, mistral v1).
    FirstUser {
        /// Text before the system content.
        before: Vec<Piece>,
        /// Text between it and the user content.
        after: Vec<Piece>,
    },
    /// Put in front of the content of the final message when that is a user message (mistral v3).
    LastUser {
        /// Text before the system content.
        before: Vec<Piece>,
        /// Text between it and the user content.
        after: Vec<Piece>,
    },
}

/// Said when a template that refuses system messages gets [`Leading::FirstUser`] anyway.
pub(crate) const SYSTEM_IN_FIRST_USER: &str =
    "the chat template refuses system messages; a system \
     prompt (SYSTEM or the request's) is put in front of the first user message, as Mistral v1 \
     and Gemma 3 templates do";

/// Reasoning tags of a thinking model (qwen3).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Thinking {
    /// Opens the reasoning, e.g. `<think>\n`.
    pub open: String,
    /// Closes it, e.g. `\n</think>\n\n`.
    pub close: String,
}

/// The complete shape of a chat format, for plain conversations (system, user, assistant).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    /// Emitted first, before any message.
    pub opening: Vec<Piece>,
    /// Treatment of a leading system message.
    pub leading: Leading,
    /// Format of system messages not consumed by `leading`; `None` drops them.
    pub system: Option<Turn>,
    /// Format of user messages.
    pub user: Turn,
    /// Format of assistant messages.
    pub assistant: Turn,
    /// Format of any other role (tool results); `None` drops them.
    pub other: Option<Turn>,
    /// Appended after a final non-assistant message to start the reply.
    pub generation: Vec<Piece>,
    /// Reasoning tags, for an empty reasoning block when thinking is switched off and before a
    /// continued final assistant message (what the Jinja template does in both cases).
    pub thinking: Option<Thinking>,
}

impl Layout {
    /// Every turn format and text piece, for inspections such as "which end tokens appear".
    pub fn turns(&self) -> impl Iterator<Item = &Turn> {
        [
            Some(&self.user),
            Some(&self.assistant),
            self.system.as_ref(),
            self.other.as_ref(),
        ]
        .into_iter()
        .flatten()
    }
}

/// The token strings a layout's `Bos`/`Eos` pieces stand for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Specials<'a> {
    /// BOS text (`<s>`, `<|begin_of_text|>`), empty when the tokenizer has none.
    pub bos: &'a str,
    /// EOS text.
    pub eos: &'a str,
}

/// Resolves pieces without roles or BOS rules to plain text (for stop strings and SYSTEM).
pub(crate) fn plain(pieces: &[Piece], specials: Specials) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.as_str(),
            Piece::Bos => specials.bos,
            Piece::Eos => specials.eos,
            Piece::Role | Piece::RoleTitle => "",
        })
        .collect()
}

/// Builds the Go template for `layout`.
pub(crate) fn go_template(layout: &Layout, specials: Specials) -> String {
    let mut w = GoWriter::default();
    // BOS at the very start is the runtime's job (llama.cpp adds it from the GGUF's add_bos_token);
    // writing it as text would double it.
    let opening_starts = pieces_start_output(&layout.opening, specials);
    w.pieces(&layout.opening, None, Bos::Drop, specials);
    let has_opening = opening_starts || matches!(layout.leading, Leading::Own { always: true, .. });

    w.block("range $i, $_ := .Messages");
    w.block("$last := eq (len (slice $.Messages $i)) 1");
    if let Leading::Own { turn, always } = &layout.leading {
        let bos = if has_opening { Bos::Always } else { Bos::Drop };
        if *always {
            w.block("if eq $i 0");
            w.pieces(&turn.prefix, Some("system"), bos, specials);
            w.inline("if eq .Role \"system\"");
            w.inline(".Content");
            w.inline("end");
        } else {
            w.block("if and (eq $i 0) (eq .Role \"system\")");
            w.pieces(&turn.prefix, Some("system"), bos, specials);
            w.inline(".Content");
        }
        w.pieces(&turn.suffix, Some("system"), Bos::Always, specials);
        w.inline("end");
    }
    let consumes_leading = layout.leading != Leading::Turn;
    // Whether something precedes message $i, for BOS strings inside turns: any earlier message
    // does, unless a leading system message renders nothing where it stands.
    let leading_renders = match layout.leading {
        Leading::Turn => layout.system.is_some(),
        Leading::Own { .. } => true,
        Leading::FirstUser { .. } | Leading::LastUser { .. } => false,
    };
    let bos = if has_opening {
        Bos::Always
    } else if leading_renders {
        Bos::If("$i")
    } else {
        Bos::If("or (gt $i 1) (and (eq $i 1) (ne (index $.Messages 0).Role \"system\"))")
    };

    w.block("if eq .Role \"system\"");
    if let Some(turn) = &layout.system {
        if consumes_leading {
            w.inline("if ne $i 0");
        }
        w.turn(turn, Some("system"), bos, specials, None);
        if consumes_leading {
            w.inline("end");
        }
    }
    w.block("else if eq .Role \"user\"");
    let merge = match &layout.leading {
        Leading::FirstUser { before, after } => Some(("eq $i 1", before, after)),
        Leading::LastUser { before, after } => Some(("$last", before, after)),
        _ => None,
    };
    w.turn(&layout.user, Some("user"), bos, specials, merge);
    w.block("else if eq .Role \"assistant\"");
    w.pieces(&layout.assistant.prefix, Some("assistant"), bos, specials);
    if let Some(thinking) = &layout.thinking {
        w.inline("if $last");
        w.text(&thinking.open);
        w.inline(".Thinking");
        w.text(&thinking.close);
        w.inline("end");
    }
    w.inline(".Content");
    if !layout.assistant.suffix.is_empty() {
        w.inline("if not $last");
        w.pieces(
            &layout.assistant.suffix,
            Some("assistant"),
            Bos::Always,
            specials,
        );
        w.inline("end");
    }
    if let Some(turn) = &layout.other {
        w.block("else");
        w.turn(turn, None, bos, specials, None);
    }
    w.block("end");
    if !layout.generation.is_empty() || layout.thinking.is_some() {
        w.block("if and $last (ne .Role \"assistant\")");
        w.pieces(&layout.generation, None, Bos::Always, specials);
        if let Some(thinking) = &layout.thinking {
            w.inline("if and $.IsThinkSet (not $.Think)");
            w.text(&thinking.open);
            w.text(&thinking.close);
            w.inline("end");
        }
        w.inline("end");
    }
    w.block("end");
    w.finish()
}

/// Whether `pieces` emit anything once a leading BOS is dropped.
fn pieces_start_output(pieces: &[Piece], specials: Specials) -> bool {
    pieces.iter().any(|p| match p {
        Piece::Text(t) => !t.is_empty(),
        Piece::Eos => !specials.eos.is_empty(),
        Piece::Role | Piece::RoleTitle => true,
        Piece::Bos => false,
    })
}

/// How to write a BOS piece.
#[derive(Clone, Copy)]
enum Bos {
    /// It would open the prompt: leave it to the runtime.
    Drop,
    /// Something always precedes it.
    Always,
    /// Only when this Go condition holds (something precedes this message).
    If(&'static str),
}

/// A writer for Go templates: structural actions that follow literal text stay on its line
/// (`{{ x }}`), those that follow another action start a new line with `{{-`, whose trimming then
/// only removes that formatting newline and never literal text.
#[derive(Default)]
struct GoWriter {
    out: String,
    pending: String,
    after_text: bool,
}

impl GoWriter {
    fn text(&mut self, s: &str) {
        self.pending.push_str(s);
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.pending);
        let mut quotes = 0;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                // Three quotes in a row would end the Modelfile's `"""` block early.
                '"' if quotes == 2 => {
                    self.out.push_str("{{ \"\\\"\" }}");
                    quotes = 0;
                }
                '"' => {
                    self.out.push('"');
                    quotes += 1;
                }
                // Go would read `{{` (also one formed with the action that follows) as an action.
                '{' if matches!(chars.peek(), Some('{') | None) => {
                    self.out.push_str("{{ \"{\" }}");
                    quotes = 0;
                }
                c => {
                    self.out.push(c);
                    quotes = 0;
                }
            }
        }
        self.after_text = true;
    }

    /// An action on its own line.
    fn block(&mut self, action: &str) {
        self.flush();
        if self.after_text {
            self.out.push_str("{{ ");
        } else {
            if !self.out.is_empty() {
                self.out.push('\n');
            }
            self.out.push_str("{{- ");
        }
        self.out.push_str(action);
        self.out.push_str(" }}");
        self.after_text = false;
    }

    /// An action inside a line of output.
    fn inline(&mut self, action: &str) {
        self.flush();
        self.out.push_str("{{ ");
        self.out.push_str(action);
        self.out.push_str(" }}");
        self.after_text = false;
    }

    /// Writes pieces; `role` is the literal role of the branch, or `None` for any role.
    fn pieces(&mut self, pieces: &[Piece], role: Option<&str>, bos: Bos, specials: Specials) {
        let mut emitted = false;
        for piece in pieces {
            match piece {
                Piece::Text(t) => self.text(t),
                Piece::Eos => self.text(specials.eos),
                Piece::Role => match role {
                    Some(r) => self.text(r),
                    None => self.inline(".Role"),
                },
                Piece::RoleTitle => {
                    let r = role.expect("title-cased roles only in role branches");
                    let mut chars = r.chars();
                    let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
                    self.text(&(first.unwrap_or_default() + chars.as_str()));
                }
                Piece::Bos if specials.bos.is_empty() => {}
                Piece::Bos => match (bos, emitted) {
                    (Bos::Drop, false) => {}
                    (Bos::Always, _) | (_, true) => self.text(specials.bos),
                    (Bos::If(cond), false) => {
                        self.inline(&format!("if {cond}"));
                        self.text(specials.bos);
                        self.inline("end");
                    }
                },
            }
            emitted |= !matches!(piece, Piece::Bos);
        }
    }

    /// A whole turn, with the leading system content merged in when `merge`'s condition holds.
    fn turn(
        &mut self,
        turn: &Turn,
        role: Option<&str>,
        bos: Bos,
        specials: Specials,
        merge: Option<(&str, &Vec<Piece>, &Vec<Piece>)>,
    ) {
        self.pieces(&turn.prefix, role, bos, specials);
        if let Some((cond, before, after)) = merge {
            self.inline(&format!("if {cond}"));
            self.inline("with index $.Messages 0");
            self.inline("if eq .Role \"system\"");
            self.pieces(before, role, Bos::Always, specials);
            self.inline(".Content");
            self.pieces(after, role, Bos::Always, specials);
            self.inline("end");
            self.inline("end");
            self.inline("end");
        }
        self.inline(".Content");
        self.pieces(&turn.suffix, role, Bos::Always, specials);
    }

    fn finish(mut self) -> String {
        self.flush();
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chatml() -> Layout {
        let turn = Turn::new(
            vec![text("<|im_start|>"), Piece::Role, text("\n")],
            vec![text("<|im_end|>\n")],
        );
        Layout {
            opening: vec![],
            leading: Leading::Turn,
            system: Some(turn.clone()),
            user: turn.clone(),
            assistant: turn.clone(),
            other: Some(turn),
            generation: vec![text("<|im_start|>assistant\n")],
            thinking: None,
        }
    }

    const SPECIALS: Specials = Specials {
        bos: "<s>",
        eos: "</s>",
    };

    #[test]
    fn chatml_reads_like_the_library_templates() {
        let t = go_template(&chatml(), SPECIALS);
        assert_eq!(
            t,
            "{{- range $i, $_ := .Messages }}\n\
             {{- $last := eq (len (slice $.Messages $i)) 1 }}\n\
             {{- if eq .Role \"system\" }}<|im_start|>system\n{{ .Content }}<|im_end|>\n{{ else if eq .Role \"user\" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n{{ else if eq .Role \"assistant\" }}<|im_start|>assistant\n{{ .Content }}{{ if not $last }}<|im_end|>\n{{ end }}\n\
             {{- else }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}\n\
             {{- if and $last (ne .Role \"assistant\") }}<|im_start|>assistant\n{{ end }}\n\
             {{- end }}"
        );
    }

    #[test]
    fn literal_text_cannot_break_out() {
        let mut layout = chatml();
        layout.opening = vec![text("say \"\"\"{{x}}\"\"\"\" {")];
        let t = go_template(&layout, SPECIALS);
        let escaped = r#"say ""{{ "\"" }}{{ "{" }}{x}}""{{ "\"" }}" {{ "{" }}{{ range"#;
        assert!(t.starts_with(escaped), "{t}");
        assert!(!t.contains("\"\"\""));
    }

    #[test]
    fn bos_is_dropped_only_at_the_start() {
        let mut layout = chatml();
        layout.opening = vec![Piece::Bos];
        layout.user.prefix.insert(0, Piece::Bos);
        let t = go_template(&layout, SPECIALS);
        assert!(!t.starts_with("<s>"));
        assert!(t.contains("{{ if $i }}<s>{{ end }}<|im_start|>user"));
        // A leading system message with its own format also precedes message 1.
        layout.leading = Leading::Own {
            turn: Turn::new(vec![], vec![text("\n")]),
            always: false,
        };
        layout.system = None;
        let t = go_template(&layout, SPECIALS);
        assert!(t.contains("{{ if $i }}<s>{{ end }}<|im_start|>user"), "{t}");
        // Merged into the first user turn, it does not.
        layout.leading = Leading::FirstUser {
            before: vec![],
            after: vec![text("\n")],
        };
        let t = go_template(&layout, SPECIALS);
        assert!(t.contains("{{ if or (gt $i 1) (and (eq $i 1) (ne (index $.Messages 0).Role \"system\")) }}<s>{{ end }}<|im_start|>user"), "{t}");
    }
}
