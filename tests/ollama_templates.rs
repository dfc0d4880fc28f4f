//! The Ollama TEMPLATE of every fixture chat template must produce the same prompt as the Jinja
//! template, checked by rendering both: the Jinja side by Hugging Face's own code (prompts stored
//! in tests/fixtures/ollama/renders.json by tests/gen/ollama_templates.py) and by minijinja with
//! Hugging Face's settings (for many more conversations), the Go side by gtmpl fed with Ollama's
//! data model (Modelfile SYSTEM injected as Ollama's chat handler does, consecutive messages of
//! one role merged as its `collate` does, `.Messages`/`.System`/`.Think`/`.IsThinkSet`).
//!
//! One normalization: the BOS a Jinja template writes first is removed, because llama.cpp adds
//! it from the GGUF's `add_bos_token` and the Ollama template must not repeat it.

use gtmpl_value::{FuncError, Value as Go};
use llm_export::ollama::{modelfile, recognize, Family, Modelfile, ModelfileSpec, TemplateOrigin};
use minijinja::{context, Environment, ErrorKind};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ollama");
const CONTINUE_TAG: &str = "CONTINUE_FINAL_MESSAGE_TAG ";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    /// Ends with a user turn: generation prompt.
    Generate,
    /// Ends with an assistant turn that the model continues.
    Continue,
    /// Generation with reasoning switched off (`enable_thinking=False` / Ollama `think: false`).
    NoThinking,
}

#[derive(Clone, Debug)]
struct Conversation {
    name: String,
    messages: Vec<(String, String)>,
    mode: Mode,
}

struct Fixture {
    name: String,
    source: String,
    family: String,
    bos: String,
    eos: String,
}

/// Hugging Face's prompt per fixture and conversation (`None` where the template refuses it).
type Renders = BTreeMap<String, BTreeMap<String, Option<String>>>;

fn fixtures() -> (Vec<Fixture>, Vec<Conversation>, Renders) {
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/templates.json")).unwrap(),
    )
    .unwrap();
    let renders: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{FIXTURES}/renders.json")).unwrap())
            .unwrap();
    let fixtures = manifest
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, m)| Fixture {
            name: name.clone(),
            source: std::fs::read_to_string(format!("{FIXTURES}/templates/{name}.jinja")).unwrap(),
            family: m["family"].as_str().unwrap().to_string(),
            bos: m["bos"].as_str().unwrap().to_string(),
            eos: m["eos"].as_str().unwrap().to_string(),
        })
        .collect();
    let conversations = renders["conversations"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, items)| {
            let items = items.as_array().unwrap();
            let (mode, messages) = items.split_last().unwrap();
            Conversation {
                name: name.clone(),
                messages: messages
                    .iter()
                    .map(|m| {
                        (
                            m[0].as_str().unwrap().to_string(),
                            m[1].as_str().unwrap().to_string(),
                        )
                    })
                    .collect(),
                mode: match mode[0].as_str().unwrap() {
                    "generate" => Mode::Generate,
                    "continue" => Mode::Continue,
                    "no-thinking" => Mode::NoThinking,
                    other => panic!("mode {other}"),
                },
            }
        })
        .collect();
    let expected = serde_json::from_value(renders["renders"].clone()).unwrap();
    (fixtures, conversations, expected)
}

fn spec(f: &Fixture) -> ModelfileSpec {
    ModelfileSpec {
        gguf_file: format!("{}.gguf", f.name),
        adapter_file: None,
        chat_template: Some(f.source.clone()),
        bos_token: Some(f.bos.clone()),
        eos_token: Some(f.eos.clone()),
    }
}

// ---------------------------------------------------------------------------------------------
// The Jinja side: minijinja configured like transformers' chat-template environment.

fn jinja_render(f: &Fixture, conv: &Conversation) -> Option<String> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .unwrap(),
    );
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        },
    );
    // The generator pins transformers' clock to 2025-03-07.
    env.add_function("strftime_now", |fmt: String| {
        fmt.replace("%Y", "2025")
            .replace("%m", "03")
            .replace("%d", "07")
            .replace("%b", "Mar")
    });
    env.add_template_owned("t", f.source.clone()).ok()?;
    let mut messages: Vec<BTreeMap<&str, String>> = conv
        .messages
        .iter()
        .map(|(r, c)| BTreeMap::from([("role", r.clone()), ("content", c.clone())]))
        .collect();
    if conv.mode == Mode::Continue {
        messages
            .last_mut()
            .unwrap()
            .get_mut("content")
            .unwrap()
            .push_str(CONTINUE_TAG);
    }
    let ctx = context! {
        messages => messages,
        bos_token => &f.bos,
        eos_token => &f.eos,
        add_generation_prompt => conv.mode != Mode::Continue,
        date_string => "26 Jul 2024",
        enable_thinking => if conv.mode == Mode::NoThinking { minijinja::Value::from(false) } else { minijinja::Value::UNDEFINED },
    };
    let out = env.get_template("t").unwrap().render(ctx).ok()?;
    if conv.mode != Mode::Continue {
        return Some(out);
    }
    // transformers' continue_final_message: cut the prompt where the final message ends.
    let at = out.rfind(CONTINUE_TAG.trim())?;
    Some(if out[at..].starts_with(CONTINUE_TAG) {
        out[..at].to_string()
    } else {
        out[..at].trim_end().to_string()
    })
}

// ---------------------------------------------------------------------------------------------
// The Go side: gtmpl with Ollama's data model.

/// Go's `slice` builtin, for `slice $.Messages $i`.
fn go_slice(args: &[Go]) -> Result<Go, FuncError> {
    match args {
        [Go::Array(items), Go::Number(from)] => {
            let from = from
                .as_u64()
                .ok_or(FuncError::Generic("slice index".into()))? as usize;
            Ok(Go::Array(
                items
                    .get(from..)
                    .ok_or(FuncError::Generic("slice range".into()))?
                    .to_vec(),
            ))
        }
        _ => Err(FuncError::Generic(format!("slice {args:?}"))),
    }
}

fn go_object(fields: &[(&str, Go)]) -> Go {
    Go::Object(
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<HashMap<_, _>>(),
    )
}

/// Ollama's view of a chat request, then the template rendered over it.
fn ollama_render(mf: &Modelfile, conv: &Conversation) -> String {
    let mut messages = conv.messages.clone();
    // server/routes.go ChatHandler: the Modelfile SYSTEM goes first unless the request has one.
    if let Some(system) = mf.system.as_deref().filter(|s| !s.is_empty()) {
        if messages[0].0 != "system" {
            messages.insert(0, ("system".into(), system.into()));
        }
    }
    // template/template.go collate: merge consecutive messages of one role, gather system text.
    let mut collated: Vec<(String, String)> = Vec::new();
    let mut system = Vec::new();
    for (role, content) in messages {
        if role == "system" {
            system.push(content.clone());
        }
        match collated.last_mut() {
            Some((r, c)) if *r == role && role != "tool" => {
                c.push_str("\n\n");
                c.push_str(&content);
            }
            _ => collated.push((role, content)),
        }
    }
    let messages = collated
        .into_iter()
        .map(|(role, content)| {
            go_object(&[
                ("Role", Go::from(role)),
                ("Content", Go::from(content)),
                ("Thinking", Go::from("")),
            ])
        })
        .collect();
    let no_thinking = conv.mode == Mode::NoThinking;
    let data = go_object(&[
        ("Messages", Go::Array(messages)),
        ("System", Go::from(system.join("\n\n"))),
        ("Tools", Go::Nil),
        ("Response", Go::from("")),
        ("Think", Go::Bool(false)),
        ("IsThinkSet", Go::Bool(no_thinking)),
    ]);
    let mut t = gtmpl::Template::default();
    t.add_func("slice", go_slice);
    let src = mf.template.as_deref().unwrap();
    t.parse(src)
        .unwrap_or_else(|e| panic!("template does not parse: {e}\n{src}"));
    t.render(&gtmpl::Context::from(data))
        .unwrap_or_else(|e| panic!("template does not render: {e}\n{src}"))
}

fn without_bos(prompt: &str, bos: &str) -> String {
    match prompt.strip_prefix(bos) {
        Some(rest) if !bos.is_empty() => rest.to_string(),
        _ => prompt.to_string(),
    }
}

/// Conversations beyond the fixture set: every shape up to three exchanges, with and without a
/// system prompt, ending on a user turn, on a continued assistant turn and without reasoning;
/// contents with newlines, quotes, braces and non-ASCII text.
fn extended_conversations() -> Vec<Conversation> {
    let contents = [
        "Hi.",
        "Line one\nline two",
        "Quotes \"\"\" and {{ braces }} and {% tags %}",
        "Ünïcødé — ok? 你好",
        "Say <|im_end|>? No.",
        "Tabs\tand  spaces inside",
    ];
    let mut out = Vec::new();
    let mut k = 0;
    let mut next = || {
        k += 1;
        contents[k % contents.len()].to_string()
    };
    for system in [false, true] {
        for exchanges in 0..3 {
            for mode in [Mode::Generate, Mode::Continue, Mode::NoThinking] {
                let mut messages = Vec::new();
                if system {
                    messages.push(("system".to_string(), format!("System says: {}", next())));
                }
                for _ in 0..exchanges {
                    messages.push(("user".to_string(), next()));
                    messages.push(("assistant".to_string(), next()));
                }
                messages.push(("user".to_string(), next()));
                if mode == Mode::Continue {
                    messages.push(("assistant".to_string(), format!("Partial {}", next())));
                }
                out.push(Conversation {
                    name: format!("ext-{system}-{exchanges}-{mode:?}"),
                    messages,
                    mode,
                });
            }
        }
    }
    out
}

/// Templates whose default system prompt cannot be reproduced: conversations without a system
/// message differ by that prompt (the Modelfile says so in a warning).
fn missing_default_system(mf: &Modelfile, conv: &Conversation) -> bool {
    mf.warnings
        .iter()
        .any(|w| w.contains("default system prompt"))
        && conv.messages[0].0 != "system"
}

#[test]
fn ollama_templates_render_like_the_jinja_templates() {
    let (fixtures, conversations, expected) = fixtures();
    let extended = extended_conversations();
    let mut checked = 0;
    let mut report = Vec::new();
    for f in &fixtures {
        assert_eq!(recognize(&f.source).name(), f.family, "{}: family", f.name);
        let mf = modelfile(&spec(f)).unwrap();
        assert_eq!(mf.family.name(), f.family);
        if mf.template.is_none() {
            assert!(
                f.family == "unknown",
                "{}: no template: {:?}",
                f.name,
                mf.warnings
            );
            assert!(!mf.warnings.is_empty());
            report.push(format!("{:<32} no TEMPLATE ({})", f.name, mf.family));
            continue;
        }
        assert!(mf.template.as_deref().unwrap().contains(".Messages"));
        let mut n = 0;
        for conv in &conversations {
            let Some(reference) = &expected[&f.name][&conv.name] else {
                continue;
            };
            // The harness renders like transformers.
            assert_eq!(
                jinja_render(f, conv).as_ref(),
                Some(reference),
                "{} / {}: minijinja differs from transformers",
                f.name,
                conv.name
            );
            if missing_default_system(&mf, conv) {
                continue;
            }
            let got = ollama_render(&mf, conv);
            assert_eq!(
                got,
                without_bos(reference, &f.bos),
                "{} / {}\n--- template ---\n{}",
                f.name,
                conv.name,
                mf.template.as_deref().unwrap()
            );
            n += 1;
        }
        for conv in &extended {
            let Some(reference) = jinja_render(f, conv) else {
                continue;
            };
            if missing_default_system(&mf, conv) {
                continue;
            }
            assert_eq!(
                ollama_render(&mf, conv),
                without_bos(&reference, &f.bos),
                "{} / {:?}\n--- template ---\n{}",
                f.name,
                conv,
                mf.template.as_deref().unwrap()
            );
            n += 1;
        }
        assert!(n > 0, "{}: nothing compared", f.name);
        checked += n;
        report.push(format!(
            "{:<32} {:<18} {:?} {n} conversations",
            f.name, mf.family, mf.origin
        ));
    }
    eprintln!("{}\n{checked} prompts compared", report.join("\n"));
}

/// After every assistant message the Jinja template emits an end-of-turn marker; generation must
/// stop there, so the text after the content must begin with one of the Modelfile's stop strings.
#[test]
fn stop_strings_cover_every_end_of_turn() {
    let (fixtures, conversations, expected) = fixtures();
    for f in &fixtures {
        let mf = modelfile(&spec(f)).unwrap();
        if mf.template.is_none() {
            continue;
        }
        assert!(mf.stop.contains(&f.eos), "{}: EOS is a stop", f.name);
        for conv in &conversations {
            let Some(prompt) = &expected[&f.name][&conv.name] else {
                continue;
            };
            let mut from = 0;
            for (i, (role, content)) in conv.messages.iter().enumerate() {
                let Some(at) = prompt[from..].find(content.as_str()) else {
                    continue;
                };
                from += at + content.len();
                if role != "assistant" || i + 1 == conv.messages.len() {
                    continue;
                }
                let after = prompt[from..].trim_start();
                assert!(
                    mf.stop.iter().any(|s| after.starts_with(s.as_str())),
                    "{} / {}: after an assistant turn comes {:?}, stops are {:?}",
                    f.name,
                    conv.name,
                    &after[..after.len().min(40)],
                    mf.stop
                );
            }
        }
    }
}

/// Family parameters land in the Modelfile as Ollama's library has them.
#[test]
fn family_parameters() {
    let (fixtures, _, _) = fixtures();
    let by_name =
        |n: &str| modelfile(&spec(fixtures.iter().find(|f| f.name == n).unwrap())).unwrap();
    let qwen3 = by_name("qwen3-0.6b");
    assert_eq!(qwen3.family, Family::Qwen3);
    assert_eq!(
        qwen3.parameters,
        [
            ("temperature".to_string(), 0.6),
            ("top_k".into(), 20.0),
            ("top_p".into(), 0.95),
            ("repeat_penalty".into(), 1.0)
        ]
    );
    assert_eq!(qwen3.stop, ["<|im_start|>", "<|im_end|>"]);
    let llama = by_name("llama-3.1-8b-instruct");
    assert_eq!(
        llama.stop,
        [
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|eom_id|>"
        ]
    );
    assert_eq!(llama.origin, TemplateOrigin::Family);
    let qwen25 = by_name("qwen2.5-7b-instruct");
    assert_eq!(
        qwen25.system.as_deref(),
        Some("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
    );
    let qwen2 = by_name("qwen2-instruct");
    assert_eq!(qwen2.origin, TemplateOrigin::Structural);
    assert_eq!(
        qwen2.system.as_deref(),
        Some("You are a helpful assistant.")
    );
    let gemma3 = by_name("gemma-3-it");
    assert_eq!(gemma3.parameters[0], ("temperature".to_string(), 1.0));
    let small = by_name("mistral-small-3.2-24b-instruct");
    assert!(small.system.is_none() && small.warnings.iter().any(|w| w.contains("current date")));
    // Templates that refuse system messages still take Ollama's SYSTEM, before the first user turn.
    for name in ["mistral-7b-instruct-v0.2", "gemma-2-2b-it"] {
        let mf = by_name(name);
        assert!(
            mf.warnings
                .iter()
                .any(|w| w.contains("refuses system messages")),
            "{name}"
        );
        let conv = Conversation {
            name: "system".into(),
            messages: vec![
                ("system".into(), "Be brief.".into()),
                ("user".into(), "Hi".into()),
            ],
            mode: Mode::Generate,
        };
        assert!(
            ollama_render(&mf, &conv).contains("Be brief.\n\nHi"),
            "{name}"
        );
    }
    let devstral = by_name("devstral-small-2507");
    assert!(devstral
        .system
        .as_deref()
        .unwrap()
        .starts_with("You are Devstral"));
}

/// Ollama's Modelfile parser (parser/parser.go `ParseFile`), rewritten from its state machine:
/// commands with values; a value ends at a line break where the text so far, trimmed, is a
/// complete (triple-)quoted string or unquoted text.
fn parse_modelfile(text: &str) -> Vec<(String, String)> {
    #[derive(PartialEq)]
    enum State {
        Nil,
        Name,
        Parameter,
        Value,
        Comment,
    }
    fn unquote(s: &str) -> Option<String> {
        if s.starts_with("\"\"\"") {
            return (s.len() >= 6 && s.ends_with("\"\"\"")).then(|| s[3..s.len() - 3].to_string());
        }
        if s.starts_with('"') {
            return (s.len() >= 2 && s.ends_with('"')).then(|| s[1..s.len() - 1].to_string());
        }
        Some(s.to_string())
    }
    let mut out = Vec::new();
    let (mut state, mut buf, mut name) = (State::Nil, String::new(), String::new());
    for c in text.chars() {
        let newline = c == '\n' || c == '\r';
        let space = c == ' ' || c == '\t';
        match state {
            State::Nil if c == '#' => state = State::Comment,
            State::Nil if space || newline => {}
            State::Nil => {
                state = State::Name;
                buf.push(c);
            }
            State::Comment if newline => state = State::Nil,
            State::Comment => {}
            State::Name if c.is_ascii_alphabetic() => buf.push(c),
            State::Name => {
                assert!(space, "bad command character {c:?}");
                name = std::mem::take(&mut buf).to_lowercase();
                state = if name == "parameter" {
                    State::Parameter
                } else {
                    State::Value
                };
            }
            State::Parameter if c.is_ascii_alphanumeric() || c == '_' => buf.push(c),
            State::Parameter => {
                name = std::mem::take(&mut buf);
                state = State::Value;
            }
            State::Value if newline || space => match unquote(buf.trim()) {
                Some(v) if !space => {
                    out.push((name.clone(), v));
                    buf.clear();
                    state = State::Nil;
                }
                _ => buf.push(c),
            },
            State::Value => {
                if !c.is_control() {
                    buf.push(c);
                }
            }
        }
    }
    if state == State::Value {
        out.push((
            name,
            unquote(buf.trim()).expect("complete value at the end"),
        ));
    }
    out
}

/// Every generated Modelfile reads back, through Ollama's parsing rules, as what was generated.
#[test]
fn modelfiles_read_back_exactly() {
    let (fixtures, _, _) = fixtures();
    for f in &fixtures {
        let mut s = spec(f);
        s.adapter_file = Some("adapter.gguf".into());
        let mf = modelfile(&s).unwrap();
        let commands = parse_modelfile(&mf.render());
        let get = |n: &str| {
            commands
                .iter()
                .filter(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("from"), std::slice::from_ref(&mf.from), "{}", f.name);
        assert_eq!(get("adapter"), [mf.adapter.clone().unwrap()]);
        assert_eq!(
            get("template"),
            mf.template.iter().cloned().collect::<Vec<_>>(),
            "{}",
            f.name
        );
        assert_eq!(
            get("system"),
            mf.system.iter().cloned().collect::<Vec<_>>(),
            "{}",
            f.name
        );
        assert_eq!(get("stop"), mf.stop, "{}", f.name);
        for (k, v) in &mf.parameters {
            assert_eq!(get(k), [v.to_string()]);
        }
    }
}

/// Synthetic simple templates, converted structurally and rendered both ways: literal text that
/// could break out of the Go template or the Modelfile's `"""` block (braces, quote runs at line
/// ends, a leading quote), and BOS strings between turns after a leading system block.
#[test]
fn synthetic_templates_convert_exactly() {
    let sources = [
        "{% for m in messages %}{{ '\"\"\"' + m['role'] + ' says {{ x }} {' + '\\n' + m['content'] + '\\n\"\"\"\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '\"assistant\" says {{\\n\"\"' }}{% endif %}",
        "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\\n' }}{% set lm = messages[1:] %}{% else %}{% set lm = messages %}{% endif %}{% for m in lm %}{% if m['role'] == 'user' %}{{ bos_token + 'U: ' + m['content'] + '\\n' }}{% elif m['role'] == 'assistant' %}{{ 'A: ' + m['content'] + eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'A:' }}{% endif %}",
    ];
    for (i, source) in sources.iter().enumerate() {
        let f = Fixture {
            name: format!("synthetic-{i}"),
            source: source.to_string(),
            family: "unknown".into(),
            bos: "<s>".into(),
            eos: "</s>".into(),
        };
        let mf = modelfile(&spec(&f)).unwrap();
        assert_eq!(mf.origin, TemplateOrigin::Structural, "{:?}", mf.warnings);
        let template = mf.template.clone().unwrap();
        assert!(!template.contains("\"\"\""), "{template}");
        // The BOS of later user turns is kept, the one opening the prompt is not.
        assert_eq!(
            i == 1,
            template.contains("{{ if $i }}<s>{{ end }}U: "),
            "{template}"
        );
        let commands = parse_modelfile(&mf.render());
        assert!(commands.contains(&("template".to_string(), template)));
        for conv in extended_conversations() {
            let reference = jinja_render(&f, &conv).unwrap();
            assert_eq!(
                ollama_render(&mf, &conv),
                without_bos(&reference, &f.bos),
                "{source}\n{conv:?}"
            );
        }
    }
}
