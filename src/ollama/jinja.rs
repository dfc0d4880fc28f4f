//! Reads the subset of Jinja that chat templates are written in.
//!
//! Two levels: [`tokenize`] splits a template into text, output and statement tags with Hugging
//! Face's whitespace rules applied (`trim_blocks`, `lstrip_blocks` and the `-` markers), which is
//! enough to list every literal a template can emit; [`parse`] builds a small tree of the simple
//! constructs (`if`, `for`, `set`, expressions) for the structural conversion in `extract.rs`.
//! Anything outside that subset is an error, and callers treat an error as "not simple".

use std::fmt;

/// One piece of a template after whitespace control.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token {
    /// Literal text, emitted as is.
    Text(String),
    /// The inside of `{{ ... }}`.
    Output(String),
    /// The inside of `{% ... %}`.
    Statement(String),
}

/// Splits `src` into tokens; comments are dropped.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, String> {
    // Jinja drops one trailing newline of the source (keep_trailing_newline is off).
    let src = src
        .strip_suffix("\r\n")
        .or_else(|| src.strip_suffix('\n'))
        .unwrap_or(src);
    let mut tokens = Vec::new();
    let mut pos = 0;
    // What the previous tag asked of the text after it: strip all whitespace (`-`), or drop one
    // newline (trim_blocks, block and comment tags only).
    let mut strip_all = false;
    let mut drop_newline = false;
    let mut after_tag = false;
    loop {
        let start = find_tag(src, pos);
        let mut text = &src[pos..start.map_or(src.len(), |(at, _)| at)];
        if strip_all {
            text = text.trim_start();
        } else if drop_newline {
            text = text
                .strip_prefix("\r\n")
                .or_else(|| text.strip_prefix('\n'))
                .unwrap_or(text);
        }
        let Some((at, kind)) = start else {
            push_text(&mut tokens, text);
            return Ok(tokens);
        };
        let marker = src.as_bytes().get(at + 2).copied();
        if marker == Some(b'-') {
            text = text.trim_end();
        } else if kind != TagKind::Output && marker != Some(b'+') {
            // lstrip_blocks: spaces and tabs between a line start and a block tag go away.
            let line_start = match text.rfind('\n') {
                Some(i) => Some(i + 1),
                None if !after_tag => Some(0),
                None => None,
            };
            if let Some(ls) = line_start {
                if text[ls..].bytes().all(|b| b == b' ' || b == b'\t') {
                    text = &text[..ls];
                }
            }
        }
        push_text(&mut tokens, text);

        let inner_start = at + 2;
        let end = find_tag_end(src, inner_start, kind)
            .ok_or_else(|| format!("unclosed tag at byte {at}"))?;
        let raw = &src[inner_start..end];
        let right_minus = raw.ends_with('-');
        let right_plus = raw.ends_with('+');
        let inner = raw
            .trim_start_matches(['-', '+'])
            .trim_end_matches(['-', '+'])
            .trim();
        match kind {
            TagKind::Output => tokens.push(Token::Output(inner.to_string())),
            TagKind::Statement => tokens.push(Token::Statement(inner.to_string())),
            TagKind::Comment => {}
        }
        strip_all = right_minus;
        drop_newline = kind != TagKind::Output && !right_minus && !right_plus;
        after_tag = true;
        pos = end + 2;
    }
}

fn push_text(tokens: &mut Vec<Token>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Token::Text(prev)) = tokens.last_mut() {
        prev.push_str(text);
    } else {
        tokens.push(Token::Text(text.to_string()));
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TagKind {
    Output,
    Statement,
    Comment,
}

fn find_tag(src: &str, from: usize) -> Option<(usize, TagKind)> {
    let bytes = src.as_bytes();
    let mut i = from;
    while let Some(off) = src[i..].find('{') {
        let at = i + off;
        match bytes.get(at + 1) {
            Some(b'{') => return Some((at, TagKind::Output)),
            Some(b'%') => return Some((at, TagKind::Statement)),
            Some(b'#') => return Some((at, TagKind::Comment)),
            _ => i = at + 1,
        }
    }
    None
}

/// Finds the closing delimiter, skipping string literals inside expressions.
fn find_tag_end(src: &str, from: usize, kind: TagKind) -> Option<usize> {
    let close = match kind {
        TagKind::Output => "}}",
        TagKind::Statement => "%}",
        TagKind::Comment => return src[from..].find("#}").map(|o| from + o),
    };
    let bytes = src.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            _ if src[i..].starts_with(close) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Every literal string a template contains: its text and the string constants of its tags,
/// with escapes decoded. Family recognition looks for markers in these.
pub(crate) fn literals(tokens: &[Token]) -> Vec<String> {
    let mut out = Vec::new();
    for token in tokens {
        match token {
            Token::Text(t) => out.push(t.clone()),
            Token::Output(e) | Token::Statement(e) => {
                // A tag that does not lex still has no literals worth reading.
                if let Ok(toks) = lex(e) {
                    out.extend(toks.into_iter().filter_map(|t| match t {
                        Lex::Str(s) => Some(s),
                        _ => None,
                    }));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Expressions

#[derive(Debug, Clone, PartialEq)]
enum Lex {
    Str(String),
    Int(i64),
    Name(String),
    Op(&'static str),
}

const OPS: [&str; 25] = [
    "==", "!=", "<=", ">=", "//", "**", "<", ">", "+", "-", "*", "/", "%", "~", "|", ".", ",", ":",
    "(", ")", "[", "]", "{", "}", "=",
];

fn lex(src: &str) -> Result<Vec<Lex>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let (s, next) = decode_string(&chars, i)?;
            out.push(Lex::Str(s));
            i = next;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let digits: String = chars[start..i].iter().collect();
            if i < chars.len()
                && chars[i] == '.'
                && chars.get(i + 1).is_some_and(char::is_ascii_digit)
            {
                return Err("float literals are not supported".into());
            }
            out.push(Lex::Int(
                digits.parse().map_err(|_| format!("bad number {digits}"))?,
            ));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Lex::Name(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let op = OPS
                .iter()
                .find(|op| rest.starts_with(**op))
                .ok_or_else(|| format!("unexpected character {c:?}"))?;
            out.push(Lex::Op(op));
            i += op.chars().count();
        }
    }
    Ok(out)
}

/// Decodes a quoted string the way Jinja does (Python's `unicode-escape`).
fn decode_string(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        let c = chars[i];
        if c == quote {
            return Ok((out, i + 1));
        }
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&e) = chars.get(i + 1) else { break };
        i += 2;
        let simple = match e {
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            '0' => Some('\0'),
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'v' => Some('\u{b}'),
            '\\' | '\'' | '"' => Some(e),
            '\n' => None,
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = chars.get(i..i + n).ok_or("short escape")?.iter().collect();
                let code = u32::from_str_radix(&hex, 16).map_err(|_| "bad escape")?;
                i += n;
                Some(char::from_u32(code).ok_or("bad code point")?)
            }
            other => {
                // Python keeps unknown escapes verbatim.
                out.push('\\');
                Some(other)
            }
        };
        out.extend(simple);
    }
    Err("unterminated string".into())
}

/// A parsed expression. `a['b']` is stored as `a.b` (the same lookup in Jinja).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// A string constant.
    Str(String),
    /// An integer constant.
    Int(i64),
    /// A variable (including `true`, `false`, `none`).
    Name(String),
    /// `value.name` or `value['name']`.
    Attr(Box<Expr>, String),
    /// `value[index]` with a non-string index.
    Item(Box<Expr>, Box<Expr>),
    /// `value[a:b]`, either bound optional.
    Slice(Box<Expr>, Option<Box<Expr>>, Option<Box<Expr>>),
    /// `f(args)`.
    Call(Box<Expr>, Vec<Expr>),
    /// `value | name(args)`.
    Filter(Box<Expr>, String, Vec<Expr>),
    /// `value is [not] name`.
    Test(Box<Expr>, String, bool),
    /// `not value`.
    Not(Box<Expr>),
    /// A binary operator.
    Bin(&'static str, Box<Expr>, Box<Expr>),
    /// `a if cond else b`.
    Cond(Box<Expr>, Box<Expr>, Option<Box<Expr>>),
    /// `[a, b]` or `(a, b)`.
    List(Vec<Expr>),
}

impl fmt::Display for Expr {
    /// A canonical spelling, used to compare against known shapes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Str(s) => write!(f, "{s:?}"),
            Expr::Int(i) => write!(f, "{i}"),
            Expr::Name(n) => f.write_str(n),
            Expr::Attr(v, n) => write!(f, "{v}.{n}"),
            Expr::Item(v, i) => write!(f, "{v}[{i}]"),
            Expr::Slice(v, a, b) => {
                let bound =
                    |x: &Option<Box<Expr>>| x.as_ref().map(|e| e.to_string()).unwrap_or_default();
                write!(f, "{v}[{}:{}]", bound(a), bound(b))
            }
            Expr::Call(c, args) => write!(f, "{c}({})", join(args)),
            Expr::Filter(v, n, args) => write!(f, "({v} | {n}({}))", join(args)),
            Expr::Test(v, n, neg) => write!(f, "({v} is {}{n})", if *neg { "not " } else { "" }),
            Expr::Not(v) => write!(f, "not {v}"),
            Expr::Bin(op, a, b) => write!(f, "({a} {op} {b})"),
            Expr::Cond(a, c, b) => match b {
                Some(b) => write!(f, "({a} if {c} else {b})"),
                None => write!(f, "({a} if {c})"),
            },
            Expr::List(items) => write!(f, "[{}]", join(items)),
        }
    }
}

fn join(items: &[Expr]) -> String {
    items
        .iter()
        .map(Expr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

struct ExprParser {
    toks: Vec<Lex>,
    pos: usize,
}

impl ExprParser {
    fn peek(&self) -> Option<&Lex> {
        self.toks.get(self.pos)
    }
    fn peek_name(&self, name: &str) -> bool {
        matches!(self.peek(), Some(Lex::Name(n)) if n == name)
    }
    fn peek_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Lex::Op(o)) if *o == op)
    }
    fn eat_name(&mut self, name: &str) -> bool {
        let hit = self.peek_name(name);
        self.pos += usize::from(hit);
        hit
    }
    fn eat_op(&mut self, op: &str) -> bool {
        let hit = self.peek_op(op);
        self.pos += usize::from(hit);
        hit
    }
    fn expect_op(&mut self, op: &str) -> Result<(), String> {
        if self.eat_op(op) {
            Ok(())
        } else {
            Err(format!("expected `{op}`"))
        }
    }
    fn name(&mut self) -> Result<String, String> {
        match self.toks.get(self.pos) {
            Some(Lex::Name(n)) => {
                self.pos += 1;
                Ok(n.clone())
            }
            other => Err(format!("expected a name, found {other:?}")),
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let value = self.or()?;
        if self.eat_name("if") {
            let cond = self.or()?;
            let other = if self.eat_name("else") {
                Some(Box::new(self.expr()?))
            } else {
                None
            };
            return Ok(Expr::Cond(Box::new(value), Box::new(cond), other));
        }
        Ok(value)
    }
    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat_name("or") {
            left = Expr::Bin("or", Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.eat_name("and") {
            left = Expr::Bin("and", Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }
    fn not(&mut self) -> Result<Expr, String> {
        if self.eat_name("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.compare()
    }
    fn compare(&mut self) -> Result<Expr, String> {
        let mut left = self.binary(0)?;
        loop {
            let op = match self.peek() {
                Some(Lex::Op(o @ ("==" | "!=" | "<" | "<=" | ">" | ">="))) => *o,
                Some(Lex::Name(n)) if n == "in" => "in",
                Some(Lex::Name(n))
                    if n == "not"
                        && matches!(self.toks.get(self.pos + 1), Some(Lex::Name(m)) if m == "in") =>
                {
                    self.pos += 1;
                    "not in"
                }
                _ => return Ok(left),
            };
            self.pos += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.binary(0)?));
        }
    }
    /// Arithmetic and `~` by Jinja's precedence levels, loosest first.
    fn binary(&mut self, level: usize) -> Result<Expr, String> {
        const LEVELS: [&[&str]; 4] = [&["+", "-"], &["~"], &["*", "/", "//", "%"], &["**"]];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        while let Some(Lex::Op(o)) = self.peek() {
            let Some(op) = LEVELS[level].iter().find(|x| **x == *o) else {
                break;
            };
            self.pos += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.binary(level + 1)?));
        }
        Ok(left)
    }
    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat_op("-") {
            let value = self.unary()?;
            return Ok(match value {
                Expr::Int(i) => Expr::Int(-i),
                v => Expr::Bin("-", Box::new(Expr::Int(0)), Box::new(v)),
            });
        }
        let primary = self.primary()?;
        let value = self.postfix(primary)?;
        self.filters(value)
    }
    fn primary(&mut self) -> Result<Expr, String> {
        let tok = self.toks.get(self.pos).cloned().ok_or("unexpected end")?;
        self.pos += 1;
        match tok {
            Lex::Str(mut s) => {
                // Adjacent string literals concatenate.
                while let Some(Lex::Str(next)) = self.peek() {
                    s.push_str(next);
                    self.pos += 1;
                }
                Ok(Expr::Str(s))
            }
            Lex::Int(i) => Ok(Expr::Int(i)),
            Lex::Name(n) => Ok(Expr::Name(n)),
            Lex::Op("(") => {
                let items = self.items(")")?;
                match <[Expr; 1]>::try_from(items) {
                    Ok([single]) => Ok(single),
                    Err(items) => Ok(Expr::List(items)),
                }
            }
            Lex::Op("[") => Ok(Expr::List(self.items("]")?)),
            other => Err(format!("unexpected {other:?}")),
        }
    }
    /// Comma-separated expressions up to `close`; `name=value` arguments keep only the value.
    fn items(&mut self, close: &str) -> Result<Vec<Expr>, String> {
        let mut items = Vec::new();
        while !self.eat_op(close) {
            if matches!(self.toks.get(self.pos + 1), Some(Lex::Op("="))) {
                self.pos += 2;
            }
            items.push(self.expr()?);
            if !self.eat_op(",") && !self.peek_op(close) {
                return Err(format!("expected `,` or `{close}`"));
            }
        }
        Ok(items)
    }
    fn postfix(&mut self, mut value: Expr) -> Result<Expr, String> {
        loop {
            if self.eat_op(".") {
                value = Expr::Attr(Box::new(value), self.name()?);
            } else if self.eat_op("[") {
                let lower = if self.peek_op(":") {
                    None
                } else {
                    Some(Box::new(self.expr()?))
                };
                if self.eat_op(":") {
                    let upper = if self.peek_op("]") {
                        None
                    } else {
                        Some(Box::new(self.expr()?))
                    };
                    self.expect_op("]")?;
                    value = Expr::Slice(Box::new(value), lower, upper);
                    continue;
                }
                self.expect_op("]")?;
                value = match lower.map(|b| *b) {
                    Some(Expr::Str(key)) => Expr::Attr(Box::new(value), key),
                    Some(index) => Expr::Item(Box::new(value), Box::new(index)),
                    None => return Err("empty index".into()),
                };
            } else if self.eat_op("(") {
                value = Expr::Call(Box::new(value), self.items(")")?);
            } else {
                return Ok(value);
            }
        }
    }
    fn filters(&mut self, mut value: Expr) -> Result<Expr, String> {
        loop {
            if self.eat_op("|") {
                let name = self.name()?;
                let args = if self.eat_op("(") {
                    self.items(")")?
                } else {
                    Vec::new()
                };
                value = Expr::Filter(Box::new(value), name, args);
            } else if self.eat_name("is") {
                let negated = self.eat_name("not");
                let name = self.name()?;
                value = Expr::Test(Box::new(value), name, negated);
            } else {
                return Ok(value);
            }
        }
    }
}

/// Parses one expression (the whole of `src`).
pub(crate) fn parse_expr(src: &str) -> Result<Expr, String> {
    let mut p = ExprParser {
        toks: lex(src)?,
        pos: 0,
    };
    let e = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(format!("trailing input in `{src}`"));
    }
    Ok(e)
}

// ---------------------------------------------------------------------------------------------
// Statements

/// A parsed template node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    /// Literal text.
    Text(String),
    /// `{{ expr }}`.
    Output(Expr),
    /// `if` / `elif` branches with their conditions, then the `else` body.
    If(Vec<(Expr, Vec<Node>)>, Vec<Node>),
    /// `for var in iter`.
    For {
        /// The loop variable.
        var: String,
        /// What is iterated.
        iter: Expr,
        /// The loop body.
        body: Vec<Node>,
    },
    /// `set target = value`.
    Set(String, Expr),
}

impl fmt::Display for Node {
    /// The node's opening tag, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Text(t) => write!(f, "text {t:?}"),
            Node::Output(e) => write!(f, "{{{{ {e} }}}}"),
            Node::If(branches, _) => write!(f, "{{% if {} %}}", branches[0].0),
            Node::For { var, iter, .. } => write!(f, "{{% for {var} in {iter} %}}"),
            Node::Set(target, value) => write!(f, "{{% set {target} = {value} %}}"),
        }
    }
}

/// Parses a token list into nodes. Statements other than `if`/`for`/`set` are errors.
pub(crate) fn parse(tokens: &[Token]) -> Result<Vec<Node>, String> {
    let mut pos = 0;
    let (nodes, end) = parse_block(tokens, &mut pos)?;
    match end {
        None => Ok(nodes),
        Some(e) => Err(format!("unexpected `{e}`")),
    }
}

/// Parses until a closing statement (`elif`, `else`, `endif`, `endfor`), which is returned.
fn parse_block(tokens: &[Token], pos: &mut usize) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while let Some(token) = tokens.get(*pos) {
        *pos += 1;
        match token {
            Token::Text(t) => nodes.push(Node::Text(t.clone())),
            Token::Output(e) => nodes.push(Node::Output(parse_expr(e)?)),
            Token::Statement(s) => {
                let (keyword, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
                match keyword {
                    "if" => nodes.push(parse_if(tokens, pos, rest)?),
                    "for" => nodes.push(parse_for(tokens, pos, rest)?),
                    "set" => {
                        let (target, value) =
                            rest.split_once('=').ok_or("block `set` is not supported")?;
                        nodes.push(Node::Set(target.trim().to_string(), parse_expr(value)?));
                    }
                    "elif" | "else" | "endif" | "endfor" => return Ok((nodes, Some(s.clone()))),
                    other => return Err(format!("unsupported statement `{other}`")),
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_if(tokens: &[Token], pos: &mut usize, cond: &str) -> Result<Node, String> {
    let mut branches = Vec::new();
    let mut cond = parse_expr(cond)?;
    loop {
        let (body, end) = parse_block(tokens, pos)?;
        let end = end.ok_or("missing `endif`")?;
        branches.push((cond, body));
        if let Some(next) = end.strip_prefix("elif") {
            cond = parse_expr(next)?;
        } else if end == "else" {
            let (otherwise, end) = parse_block(tokens, pos)?;
            return match end.as_deref() {
                Some("endif") => Ok(Node::If(branches, otherwise)),
                _ => Err("missing `endif`".into()),
            };
        } else if end == "endif" {
            return Ok(Node::If(branches, Vec::new()));
        } else {
            return Err(format!("unexpected `{end}`"));
        }
    }
}

fn parse_for(tokens: &[Token], pos: &mut usize, head: &str) -> Result<Node, String> {
    let (var, iter) = head.split_once(" in ").ok_or("malformed `for`")?;
    let var = var.trim();
    if !var.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return Err("only single loop variables are supported".into());
    }
    let iter = parse_expr(iter)?;
    if matches!(iter, Expr::Cond(..)) {
        return Err("filtered loops are not supported".into());
    }
    let (body, end) = parse_block(tokens, pos)?;
    match end.as_deref() {
        Some("endfor") => Ok(Node::For {
            var: var.to_string(),
            iter,
            body,
        }),
        _ => Err("missing `endfor`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_control_matches_hugging_face() {
        // Expected strings are what jinja2 renders with trim_blocks and lstrip_blocks.
        let text = |src: &str| {
            tokenize(src)
                .unwrap()
                .into_iter()
                .map(|t| match t {
                    Token::Text(t) => t,
                    Token::Output(o) => format!("<{o}>"),
                    Token::Statement(_) => String::new(),
                })
                .collect::<String>()
        };
        assert_eq!(text("a{# c #}\nb"), "ab");
        assert_eq!(text("a\n  {# c #}\nb"), "a\nb");
        assert_eq!(text("x{{ 1 }}\ny"), "x<1>\ny");
        assert_eq!(text("x\n   {% if 1 %}\ny{% endif %}\nz"), "x\nyz");
        assert_eq!(text("p  {%+ if 1 %}q{% endif %}"), "p  q");
        assert_eq!(text("a {%- if 1 -%} \n b{% endif %}"), "ab");
        assert_eq!(text("a{% if 1 +%}\nb{% endif %}"), "a\nb");
        assert_eq!(text("  {{ 1 }}  {% if 1 %}k{% endif %}"), "  <1>  k");
        assert_eq!(text("{{ '%}' }}"), "<'%}'>");
        assert_eq!(text("a\n\n"), "a\n");
    }

    #[test]
    fn strings_decode_like_python() {
        let toks = tokenize(r#"{{ 'a\nb' + "\"q\" \u00e9 \x41 \d" }}"#).unwrap();
        assert_eq!(literals(&toks), ["a\nb", "\"q\" é A \\d"]);
    }

    #[test]
    fn expressions_follow_jinja_precedence() {
        let e = parse_expr("'<|' + message['role'] + '|>' + message.content | trim").unwrap();
        assert_eq!(
            e.to_string(),
            r#"((("<|" + message.role) + "|>") + (message.content | trim()))"#
        );
        let e = parse_expr("loop.last and add_generation_prompt or not x is defined").unwrap();
        assert_eq!(
            e.to_string(),
            "((loop.last and add_generation_prompt) or not (x is defined))"
        );
        let e = parse_expr("(message['role'] == 'user') != (loop.index0 % 2 == 0)").unwrap();
        assert_eq!(
            e.to_string(),
            r#"((message.role == "user") != ((loop.index0 % 2) == 0))"#
        );
    }

    #[test]
    fn statements_nest() {
        let toks = tokenize("{% for m in messages %}{% if m.role == 'user' %}u{% elif x %}v{% else %}w{% endif %}{% endfor %}").unwrap();
        let nodes = parse(&toks).unwrap();
        let [Node::For { var, body, .. }] = nodes.as_slice() else {
            panic!("{nodes:?}")
        };
        assert_eq!(var, "m");
        assert!(matches!(body.as_slice(), [Node::If(b, e)] if b.len() == 2 && e.len() == 1));
        assert!(parse(&tokenize("{% macro x() %}{% endmacro %}").unwrap()).is_err());
    }
}
