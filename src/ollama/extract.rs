//! Structural conversion of simple chat templates: when a template is one loop over the messages
//! that wraps each one in per-role literal text (plus the usual fixtures: a BOS, a leading system
//! message with an optional default, role-alternation checks, a generation prompt), its exact
//! [`Layout`] can be read off the tree. Anything else is refused, so a converted template is
//! never a guess.

use super::jinja::{Expr, Node};
use super::template::{Layout, Leading, Piece, Turn, SYSTEM_IN_FIRST_USER};

/// A layout read from a template, with the default system prompt it injects (if any).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Extracted {
    /// The format.
    pub layout: Layout,
    /// System prompt the template uses when a conversation has none.
    pub default_system: Option<String>,
    /// A choice made where the template has no answer.
    pub note: Option<String>,
}

/// A wrapping piece or the message content it surrounds.
#[derive(Debug, Clone, PartialEq)]
enum Atom {
    Piece(Piece),
    Content,
}

/// Roles a converted template is evaluated for; `tool` stands for any other role.
const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];

/// Reads the layout of a simple template, or says why it is not simple.
pub(crate) fn extract(nodes: &[Node]) -> Result<Extracted, String> {
    let mut opening = Vec::new();
    let mut leading = Leading::Turn;
    let mut leading_default = None;
    let mut alias = None;
    let mut body = None;
    let mut generation = Vec::new();
    for node in nodes {
        match node {
            Node::Text(_) | Node::Output(_) => {
                // The leading system block renders at the first message, after the opening.
                if body.is_none() && leading != Leading::Turn {
                    return Err("output between the system block and the loop".into());
                }
                let atoms = atoms_of(node, "")?;
                let target = if body.is_none() {
                    &mut opening
                } else {
                    &mut generation
                };
                target.extend(pieces_only(atoms)?);
            }
            Node::If(branches, otherwise) if only_raises(branches, otherwise) => {}
            Node::If(branches, otherwise) if is_generation_default(branches, otherwise) => {}
            Node::If(branches, otherwise) if body.is_none() && alias.is_none() => {
                let (turn, default, name) = leading_system(branches, otherwise)?;
                leading = Leading::Own {
                    turn,
                    always: false,
                };
                leading_default = default;
                alias = Some(name);
            }
            // The `else` of the generation prompt (an EOS when not generating) only follows a
            // final assistant message, which a continued reply cuts off anyway.
            Node::If(branches, _) if body.is_some() => {
                let [(cond, then)] = branches.as_slice() else {
                    return Err("only one `if add_generation_prompt` after the loop".into());
                };
                if !is_name(cond, "add_generation_prompt") {
                    return Err(format!("unsupported condition `{cond}` after the loop"));
                }
                for n in then {
                    generation.extend(pieces_only(atoms_of(n, "")?)?);
                }
            }
            Node::Set(name, Expr::Name(v)) if v == "messages" && body.is_none() => {
                alias = Some(name.clone());
            }
            Node::For { var, iter, body: b } if body.is_none() => {
                let iterates = match iter {
                    Expr::Name(n) => n == "messages" || alias.as_deref() == Some(n),
                    _ => false,
                };
                if !iterates {
                    return Err(format!("loop over `{iter}` instead of the messages"));
                }
                body = Some(loop_body(b, var)?);
            }
            other => return Err(format!("unsupported `{other}`")),
        }
    }
    let body = body.ok_or("no loop over the messages")?;
    let mut note = None;
    if body.system_refused && leading == Leading::Turn {
        // The template has no place for a system prompt (it raises); Ollama users still set
        // one, so it goes where Mistral v1 and Gemma 3 put theirs.
        leading = Leading::FirstUser {
            before: vec![],
            after: vec![Piece::Text("\n\n".into())],
        };
        note = Some(SYSTEM_IN_FIRST_USER.to_string());
    }
    if !body.generation.is_empty() {
        if !generation.is_empty() {
            return Err("two generation prompts".into());
        }
        generation = body.generation;
    }
    let default_system = match (leading_default, body.default_system) {
        (Some(_), Some(_)) => return Err("two default system prompts".into()),
        (Some(d), None) => Some(d),
        (None, Some(lit)) => {
            let turn = body
                .system
                .as_ref()
                .ok_or("default system without a system format")?;
            Some(unwrap_default(&lit, turn, "system")?)
        }
        (None, None) => None,
    };
    Ok(Extracted {
        layout: Layout {
            opening,
            leading,
            system: body.system,
            user: body.user.ok_or("user messages are not rendered")?,
            assistant: body
                .assistant
                .ok_or("assistant messages are not rendered")?,
            other: body.other,
            generation,
            thinking: None,
        },
        default_system,
        note,
    })
}

/// What the loop body does per role.
struct LoopBody {
    system: Option<Turn>,
    user: Option<Turn>,
    assistant: Option<Turn>,
    other: Option<Turn>,
    /// The template raises on system messages (rather than skipping them).
    system_refused: bool,
    generation: Vec<Piece>,
    default_system: Option<String>,
}

fn loop_body(body: &[Node], var: &str) -> Result<LoopBody, String> {
    // Role-independent conditionals (default system prompt, generation after the last message)
    // are taken out; what remains is evaluated once per role.
    let mut generation = Vec::new();
    let mut default_system = None;
    let mut per_message = Vec::new();
    for (i, node) in body.iter().enumerate() {
        let Node::If(branches, otherwise) = node else {
            per_message.push(node.clone());
            continue;
        };
        let [(cond, then)] = branches.as_slice() else {
            per_message.push(node.clone());
            continue;
        };
        let canon = cond.to_string();
        if otherwise.is_empty() && is_last_and_generation(&canon) {
            if body[i + 1..]
                .iter()
                .any(|n| !matches!(n, Node::Text(t) if t.is_empty()))
            {
                return Err("output after the generation prompt".into());
            }
            for n in then {
                generation.extend(pieces_only(atoms_of(n, var)?)?);
            }
        } else if otherwise.is_empty() && is_default_system_guard(&canon) {
            if !per_message.is_empty() {
                return Err("default system prompt after message output".into());
            }
            let [Node::Output(Expr::Str(lit))] = then.as_slice() else {
                return Err("default system prompt is not a literal".into());
            };
            default_system = Some(lit.clone());
        } else {
            per_message.push(node.clone());
        }
    }
    let mut atoms = Vec::new();
    for role in ROLES {
        atoms.push(role_atoms(&per_message, var, role)?);
    }
    let system_refused = atoms[0].is_none();
    let mut turns = ROLES.iter().zip(atoms).map(|(role, atoms)| match atoms {
        Some(atoms) => turn_of(atoms, *role == "tool"),
        None => Ok(None),
    });
    let mut next = || turns.next().expect("four roles");
    Ok(LoopBody {
        system: next()?,
        user: next()?,
        assistant: next()?,
        other: next()?,
        system_refused,
        generation,
        default_system,
    })
}

/// What the loop body emits for a message of `role`, `None` when it refuses the role.
fn role_atoms(nodes: &[Node], var: &str, role: &str) -> Result<Option<Vec<Atom>>, String> {
    let mut atoms = Vec::new();
    for node in nodes {
        match node {
            Node::Output(e) if is_raise(e) => return Ok(None),
            Node::If(b, o) if only_raises(b, o) => {}
            Node::If(branches, otherwise) => {
                let mut chosen = otherwise;
                for (cond, then) in branches {
                    match eval_role(cond, var, role) {
                        Some(true) => {
                            chosen = then;
                            break;
                        }
                        Some(false) => {}
                        None => {
                            return Err(format!("condition `{cond}` depends on more than the role"))
                        }
                    }
                }
                match role_atoms(chosen, var, role)? {
                    Some(inner) => atoms.extend(inner),
                    None => return Ok(None),
                }
            }
            _ => atoms.extend(atoms_of(node, var)?),
        }
    }
    Ok(Some(atoms))
}

/// Splits a role's atoms at its content.
fn turn_of(atoms: Vec<Atom>, any_role: bool) -> Result<Option<Turn>, String> {
    let contents = atoms.iter().filter(|a| **a == Atom::Content).count();
    if contents == 0 {
        return if atoms.is_empty() {
            Ok(None)
        } else {
            Err("a role renders text without its content".into())
        };
    }
    if contents > 1 {
        return Err("content rendered twice".into());
    }
    // Go templates cannot title-case an unknown role.
    if any_role && atoms.contains(&Atom::Piece(Piece::RoleTitle)) {
        return Ok(None);
    }
    let at = atoms
        .iter()
        .position(|a| *a == Atom::Content)
        .expect("counted");
    let mut atoms = atoms.into_iter().map(|a| match a {
        Atom::Piece(p) => p,
        Atom::Content => Piece::Text(String::new()),
    });
    let prefix = atoms.by_ref().take(at).collect();
    let suffix = atoms.skip(1).collect();
    Ok(Some(Turn::new(prefix, suffix)))
}

/// `lit` must be `turn` wrapped around a default content, which is returned.
fn unwrap_default(lit: &str, turn: &Turn, role: &str) -> Result<String, String> {
    let resolve = |pieces: &[Piece]| -> Result<String, String> {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => Ok(t.clone()),
                Piece::Role => Ok(role.to_string()),
                _ => Err("default system prompt around special tokens".to_string()),
            })
            .collect()
    };
    let (prefix, suffix) = (resolve(&turn.prefix)?, resolve(&turn.suffix)?);
    lit.strip_prefix(prefix.as_str())
        .and_then(|rest| rest.strip_suffix(suffix.as_str()))
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "default system prompt does not have the system format".into())
}

/// `{% if messages[0]['role'] == 'system' %}...{% else %}...{% endif %}` before the loop:
/// the leading system format, the default content of the `else` branch, the loop alias.
fn leading_system(
    branches: &[(Expr, Vec<Node>)],
    otherwise: &[Node],
) -> Result<(Turn, Option<String>, String), String> {
    let [(cond, then)] = branches else {
        return Err("unsupported condition before the loop".into());
    };
    if cond.to_string() != r#"(messages[0].role == "system")"# {
        return Err(format!("unsupported condition `{cond}` before the loop"));
    }
    // Each branch renders something and points the loop at the right messages.
    let split =
        |nodes: &[Node], loop_source: &str| -> Result<(Vec<Atom>, Option<String>), String> {
            let mut atoms = Vec::new();
            let mut alias = None;
            for node in nodes {
                match node {
                    Node::Set(name, value) if value.to_string() == loop_source => {
                        alias = Some(name.clone());
                    }
                    _ => atoms.extend(atoms_of(node, "")?),
                }
            }
            Ok((atoms, alias))
        };
    let (atoms, alias) = split(then, "messages[1:]")?;
    let turn = turn_of(atoms, false)?.ok_or("leading system message not rendered")?;
    let (default_atoms, other_alias) = split(otherwise, "messages")?;
    let alias = alias.ok_or("no `set ... = messages[1:]`")?;
    if other_alias.as_deref() != Some(alias.as_str()) {
        return Err("the two branches set different loops".into());
    }
    let default = if default_atoms.is_empty() {
        None
    } else {
        let lit: String = pieces_only(default_atoms)?
            .iter()
            .map(|p| match p {
                Piece::Text(t) => Ok(t.as_str()),
                _ => Err("default system prompt around special tokens".to_string()),
            })
            .collect::<Result<_, _>>()?;
        Some(unwrap_default(&lit, &turn, "system")?)
    };
    Ok((turn, default, alias))
}

/// The atoms of a text or output node; `var` is the loop variable ("" outside the loop).
fn atoms_of(node: &Node, var: &str) -> Result<Vec<Atom>, String> {
    match node {
        Node::Text(t) => Ok(vec![Atom::Piece(Piece::Text(t.clone()))]),
        Node::Output(e) => {
            let mut out = Vec::new();
            concat(e, var, &mut out)?;
            Ok(out)
        }
        other => Err(format!("unsupported `{other}`")),
    }
}

fn concat(e: &Expr, var: &str, out: &mut Vec<Atom>) -> Result<(), String> {
    let content_of = |e: &Expr| -> bool {
        match e {
            Expr::Attr(base, field) if field == "content" => match &**base {
                Expr::Name(n) => n == var && !var.is_empty(),
                // The leading system message, read before the loop.
                Expr::Item(m, i) => {
                    var.is_empty() && **m == Expr::Name("messages".into()) && **i == Expr::Int(0)
                }
                _ => false,
            },
            _ => false,
        }
    };
    let role_of = |e: &Expr| matches!(e, Expr::Attr(b, f) if f == "role" && **b == Expr::Name(var.into()) && !var.is_empty());
    let atom = match e {
        Expr::Bin("+" | "~", a, b) => {
            concat(a, var, out)?;
            return concat(b, var, out);
        }
        Expr::Str(s) => Atom::Piece(Piece::Text(s.clone())),
        Expr::Name(n) if n == "bos_token" => Atom::Piece(Piece::Bos),
        Expr::Name(n) if n == "eos_token" => Atom::Piece(Piece::Eos),
        // Trimming is the one transformation Go templates cannot do; messages are taken as sent.
        Expr::Filter(inner, f, args) if f == "trim" && args.is_empty() && content_of(inner) => {
            Atom::Content
        }
        Expr::Call(m, args)
            if args.is_empty()
                && matches!(&**m, Expr::Attr(inner, f) if f == "strip" && content_of(inner)) =>
        {
            Atom::Content
        }
        e if content_of(e) => Atom::Content,
        e if role_of(e) => Atom::Piece(Piece::Role),
        Expr::Filter(inner, f, args) if f == "capitalize" && args.is_empty() && role_of(inner) => {
            Atom::Piece(Piece::RoleTitle)
        }
        Expr::Call(m, args)
            if args.is_empty()
                && matches!(&**m, Expr::Attr(inner, f) if f == "title" && role_of(inner)) =>
        {
            Atom::Piece(Piece::RoleTitle)
        }
        other => return Err(format!("unsupported expression `{other}`")),
    };
    out.push(atom);
    Ok(())
}

fn pieces_only(atoms: Vec<Atom>) -> Result<Vec<Piece>, String> {
    atoms
        .into_iter()
        .map(|a| match a {
            Atom::Piece(p) => Ok(p),
            Atom::Content => Err("message content outside the loop".to_string()),
        })
        .collect()
}

/// Evaluates a condition on the role alone; `None` when it reads anything else.
fn eval_role(e: &Expr, var: &str, role: &str) -> Option<bool> {
    let is_role =
        |e: &Expr| matches!(e, Expr::Attr(b, f) if f == "role" && **b == Expr::Name(var.into()));
    match e {
        Expr::Bin(op @ ("==" | "!="), a, b) => {
            let lit = match (&**a, &**b) {
                (x, Expr::Str(s)) | (Expr::Str(s), x) if is_role(x) => s,
                _ => return None,
            };
            Some((lit == role) == (*op == "=="))
        }
        Expr::Bin("and", a, b) => Some(eval_role(a, var, role)? && eval_role(b, var, role)?),
        Expr::Bin("or", a, b) => Some(eval_role(a, var, role)? || eval_role(b, var, role)?),
        Expr::Not(a) => Some(!eval_role(a, var, role)?),
        _ => None,
    }
}

fn is_raise(e: &Expr) -> bool {
    matches!(e, Expr::Call(f, _) if **f == Expr::Name("raise_exception".into()))
}

/// An `if` whose every branch only raises (input validation: no output for valid input).
fn only_raises(branches: &[(Expr, Vec<Node>)], otherwise: &[Node]) -> bool {
    let raises = |nodes: &[Node]| {
        nodes.iter().all(|n| {
            matches!(n, Node::Output(e) if is_raise(e))
                || matches!(n, Node::Text(t) if t.trim().is_empty())
        })
    };
    branches.iter().all(|(_, b)| raises(b)) && raises(otherwise)
}

/// `{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}`.
fn is_generation_default(branches: &[(Expr, Vec<Node>)], otherwise: &[Node]) -> bool {
    matches!(branches, [(cond, then)]
        if cond.to_string() == "not (add_generation_prompt is defined)"
            && otherwise.is_empty()
            && matches!(then.as_slice(), [Node::Set(n, Expr::Name(v))] if n == "add_generation_prompt" && v == "false"))
}

fn is_name(e: &Expr, name: &str) -> bool {
    matches!(e, Expr::Name(n) if n == name)
}

fn is_last_and_generation(canon: &str) -> bool {
    canon == "(loop.last and add_generation_prompt)"
        || canon == "(add_generation_prompt and loop.last)"
}

fn is_default_system_guard(canon: &str) -> bool {
    canon == r#"(loop.first and (messages[0].role != "system"))"#
        || canon == r#"((messages[0].role != "system") and loop.first)"#
}

#[cfg(test)]
mod tests {
    use super::super::jinja::{parse, tokenize};
    use super::*;

    fn extract_src(src: &str) -> Result<Extracted, String> {
        extract(&parse(&tokenize(src)?)?)
    }

    #[test]
    fn role_generic_loop() {
        let e = extract_src("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}").unwrap();
        let turn = Turn::new(
            vec![
                Piece::Text("<|im_start|>".into()),
                Piece::Role,
                Piece::Text("\n".into()),
            ],
            vec![Piece::Text("<|im_end|>".into()), Piece::Text("\n".into())],
        );
        assert_eq!(e.layout.user, turn);
        assert_eq!(e.layout.other, Some(turn));
        assert_eq!(
            e.layout.generation,
            [Piece::Text("<|im_start|>assistant\n".into())]
        );
        assert_eq!(e.default_system, None);
    }

    #[test]
    fn leading_system_with_a_default() {
        let e = extract_src("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\\n\\n' }}{% set lm = messages[1:] %}{% else %}{{ 'Be good.\\n\\n' }}{% set lm = messages %}{% endif %}{% for m in lm %}{% if m['role'] == 'user' %}{{ 'Q: ' + m['content'] + '\\n' }}{% elif m['role'] == 'assistant' %}{{ 'A: ' + m['content'] + eos_token }}{% else %}{{ raise_exception('no') }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'A:' }}{% endif %}").unwrap();
        assert_eq!(e.default_system.as_deref(), Some("Be good."));
        assert_eq!(e.layout.opening, [Piece::Bos]);
        assert_eq!(
            e.layout.leading,
            Leading::Own {
                turn: Turn::new(vec![], vec![Piece::Text("\n\n".into())]),
                always: false
            }
        );
        // The loop refuses later system messages; only the leading one has a place.
        assert!(e.layout.system.is_none() && e.note.is_none());
        assert_eq!(e.layout.assistant.suffix, [Piece::Eos]);
    }

    #[test]
    fn refuses_what_it_cannot_prove() {
        for src in [
            "{% for m in messages %}{% set x = 1 %}{{ m.content }}{% endfor %}",
            "{% for m in messages %}{% if loop.index0 == 0 %}a{% endif %}{{ m.content }}{% endfor %}",
            "{% for m in messages %}{{ m.content | upper }}{% endfor %}",
            "{% for m in messages %}{% if m.role == 'user' and m.content %}{{ m.content }}{% endif %}{% endfor %}",
            "{% for m in messages[1:] %}{{ m.content }}{% endfor %}",
            // Output between the leading-system block and the loop would move.
            "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% set lm = messages[1:] %}{% else %}{% set lm = messages %}{% endif %}X{% for m in lm %}{{ m.content }}{% endfor %}",
        ] {
            assert!(extract_src(src).is_err(), "{src}");
        }
    }
}
