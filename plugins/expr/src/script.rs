//! The pre-pass: rewrites go2rtc's expr-lang syntax into Rhai.
//!
//! It tokenizes the script (strings, comments, numbers, identifiers,
//! punctuation), so nothing inside a string or a comment is ever touched, and
//! tracks brackets to know where a `{` opens a map, where `[` indexes, and
//! which `:` belongs to a map key, a slice or a ternary. Rewrites:
//!
//! - `'…'` and `` `…` `` strings → `"…"` (escapes converted);
//! - `var x = …` → `let x = …`;
//! - `{a: 1, 'b': 2}` → `#{"a": 1, "b": 2}`, `{a}` → `#{"a": a}`;
//! - `s[a:b]`, `s[:b]`, `s[a:]` → `s.slice(a, b)` (missing bounds: `0`, `()`);
//! - `c ? a : b` → `if c { a } else { b }`;
//! - `match(` → `regex_match(` (`match` is a Rhai keyword), `nil` → `()`,
//!   `and`/`or`/`not` → `&&`/`||`/`!`, `not in` → `!in`, infix `contains`
//!   → `contains_op`;
//! - `.name` where `name` is a Rhai keyword → `["name"]`;
//! - a trailing comma before `)`, `]` or `}` is dropped.
//!
//! A `{` right after a value (`if x {`, `while true {`) or after `else`,
//! `loop`, `do`, `try`, `catch` stays a Rhai block, so plain Rhai passes
//! through unchanged.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Space,
    Comment,
    Str,
    Num,
    Ident,
    Punct,
}

#[derive(Debug)]
struct Tok {
    kind: Kind,
    /// For `Str`, the Rhai literal; otherwise the source text.
    text: String,
}

impl Tok {
    fn is(&self, p: &str) -> bool {
        self.kind == Kind::Punct && self.text == p
    }
    fn is_ident(&self, w: &str) -> bool {
        self.kind == Kind::Ident && self.text == w
    }
}

/// Words Rhai reserves; as a property name they become an index.
const RHAI_WORDS: &[&str] = &[
    "Fn",
    "as",
    "async",
    "await",
    "break",
    "call",
    "case",
    "catch",
    "const",
    "continue",
    "curry",
    "debug",
    "default",
    "do",
    "else",
    "eval",
    "exit",
    "export",
    "false",
    "fn",
    "for",
    "global",
    "go",
    "goto",
    "if",
    "import",
    "in",
    "is",
    "is_def_fn",
    "is_def_var",
    "is_shared",
    "let",
    "loop",
    "match",
    "module",
    "new",
    "nil",
    "null",
    "package",
    "print",
    "private",
    "protected",
    "public",
    "return",
    "shared",
    "spawn",
    "static",
    "super",
    "switch",
    "sync",
    "this",
    "thread",
    "throw",
    "true",
    "try",
    "type_of",
    "until",
    "use",
    "var",
    "void",
    "while",
    "with",
    "yield",
];

/// Identifiers that are operators or statements, not values: a `[` after
/// them starts an array, not an index.
const OPERATOR_WORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "let",
    "var",
    "return",
    "if",
    "else",
    "contains",
    "matches",
    "startsWith",
    "endsWith",
];

const TWO_CHAR_PUNCT: &[&str] = &[
    "#{", "?.", "??", "==", "!=", "<=", ">=", "&&", "||", "**", "..", "=>", "::", "|>",
];

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = if c.is_whitespace() {
            while i < chars.len() && chars[i].is_whitespace() {
                i += 1;
            }
            Kind::Space
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            Kind::Comment
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            loop {
                if i + 1 >= chars.len() {
                    return Err("unterminated comment".into());
                }
                if chars[i] == '*' && chars[i + 1] == '/' {
                    i += 2;
                    break;
                }
                i += 1;
            }
            Kind::Comment
        } else if c == '\'' || c == '"' || c == '`' {
            let (lit, end) = string_literal(&chars, i)?;
            toks.push(Tok {
                kind: Kind::Str,
                text: lit,
            });
            i = end;
            continue;
        } else if c.is_ascii_digit() {
            i += 1;
            while i < chars.len() {
                let d = chars[i];
                let exp_sign = (d == '+' || d == '-')
                    && matches!(chars[i - 1], 'e' | 'E')
                    && !chars[start..i].iter().any(|c| matches!(c, 'x' | 'X'));
                let dot = d == '.' && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
                if d.is_ascii_alphanumeric() || d == '_' || dot || exp_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            Kind::Num
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            Kind::Ident
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            i += if TWO_CHAR_PUNCT.contains(&two.as_str()) {
                2
            } else {
                1
            };
            Kind::Punct
        };
        toks.push(Tok {
            kind,
            text: chars[start..i].iter().collect(),
        });
    }
    Ok(toks)
}

/// Reads the string literal starting at `chars[start]` (a quote) and returns
/// it as a Rhai double-quoted literal plus the index after its closing quote.
fn string_literal(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut out = String::from("\"");
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(format!("unterminated string starting with {quote}"));
        };
        i += 1;
        if c == quote {
            break;
        }
        match c {
            '\\' if quote != '`' => {
                let Some(&e) = chars.get(i) else {
                    return Err(format!("unterminated string starting with {quote}"));
                };
                i += 1;
                match e {
                    'n' | 't' | 'r' | '\\' | '"' => {
                        out.push('\\');
                        out.push(e);
                    }
                    '\'' => out.push('\''),
                    'a' => out.push_str("\\u0007"),
                    'b' => out.push_str("\\u0008"),
                    'f' => out.push_str("\\u000C"),
                    'v' => out.push_str("\\u000B"),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = chars[i..chars.len().min(i + n)].iter().collect();
                        let code = (hex.len() == n)
                            .then(|| u32::from_str_radix(&hex, 16).ok())
                            .flatten()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("invalid escape \\{e}{hex}"))?;
                        i += n;
                        push_escaped(&mut out, code);
                    }
                    '0'..='7' => {
                        let oct: String = chars[i - 1..chars.len().min(i + 2)].iter().collect();
                        let code = (oct.len() == 3)
                            .then(|| u32::from_str_radix(&oct, 8).ok())
                            .flatten()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("invalid escape \\{oct}"))?;
                        i += 2;
                        push_escaped(&mut out, code);
                    }
                    // Unknown escapes keep their backslash (regexes like '\d').
                    other => {
                        out.push_str("\\\\");
                        push_escaped(&mut out, other);
                    }
                }
            }
            c => push_escaped(&mut out, c),
        }
    }
    out.push('"');
    Ok((out, i))
}

/// Appends `c` to a Rhai double-quoted literal.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            out.push_str(&format!("\\u{:04X}", c as u32));
        }
        c => out.push(c),
    }
}

#[derive(PartialEq, Eq, Debug)]
enum FrameKind {
    Root,
    Paren,
    Array,
    Map,
    /// `{ … }` after a value or `else`/`loop`/`do`/`try`/`catch`: a Rhai
    /// statement block (expr-lang has none, so a map never stands there).
    Block,
    /// `[ … ]` after a value; `slice` is the token index of its slice colon.
    Index {
        slice: Option<usize>,
    },
}

struct Frame {
    kind: FrameKind,
    /// Output offset where the current expression segment starts (where an
    /// `if` is inserted when a ternary `?` shows up).
    seg_start: usize,
    /// Open ternaries of this segment; `true` once past their `:`.
    ternaries: Vec<bool>,
    /// In a map, right after `{` or `,`.
    key_pos: bool,
}

impl Frame {
    fn new(kind: FrameKind, seg_start: usize) -> Self {
        let key_pos = kind == FrameKind::Map;
        Frame {
            kind,
            seg_start,
            ternaries: Vec::new(),
            key_pos,
        }
    }
    fn close_ternaries(&mut self, out: &mut String) {
        for _ in self.ternaries.drain(..) {
            out.push_str(" }");
        }
    }
}

/// Rewrites an expr-lang script into Rhai. See the module docs.
pub fn translate(src: &str) -> Result<String, String> {
    let toks = lex(src)?;
    let sig: Vec<usize> = (0..toks.len())
        .filter(|&i| !matches!(toks[i].kind, Kind::Space | Kind::Comment))
        .collect();
    let mut out = String::with_capacity(src.len() + 16);
    let mut frames = vec![Frame::new(FrameKind::Root, 0)];
    let mut skip_until = 0usize; // token indexes below this were consumed by a lookahead
    let mut sig_pos = 0usize;
    for (i, tok) in toks.iter().enumerate() {
        if matches!(tok.kind, Kind::Space | Kind::Comment) {
            if i >= skip_until {
                out.push_str(&tok.text);
            }
            continue;
        }
        let here = sig_pos;
        sig_pos += 1;
        if i < skip_until {
            continue;
        }
        let prev = here.checked_sub(1).map(|p| &toks[sig[p]]);
        let next = sig.get(here + 1).map(|&n| &toks[n]);
        let next2 = sig.get(here + 2).map(|&n| &toks[n]);
        let top = frames.last_mut().expect("root frame");
        let at_key = top.kind == FrameKind::Map && top.key_pos && next.is_some_and(|n| n.is(":"));
        // `{method}`: shorthand for `{method: method}`.
        let shorthand = top.kind == FrameKind::Map
            && top.key_pos
            && tok.kind == Kind::Ident
            && next.is_some_and(|n| n.is(",") || n.is("}"));
        if top.kind == FrameKind::Map && !tok.is(",") {
            top.key_pos = false;
        }
        match tok.kind {
            Kind::Str => out.push_str(&tok.text),
            Kind::Num | Kind::Ident if at_key => {
                out.push('"');
                out.push_str(&tok.text);
                out.push('"');
            }
            Kind::Ident if shorthand => out.push_str(&format!("\"{0}\": {0}", tok.text)),
            Kind::Num => out.push_str(&tok.text),
            Kind::Ident => match tok.text.as_str() {
                "var" if next.is_some_and(|n| n.kind == Kind::Ident) => out.push_str("let"),
                "nil" => out.push_str("()"),
                "match" if next.is_some_and(|n| n.is("(")) => out.push_str("regex_match"),
                // Infix `contains` is a custom operator under another name, so
                // that Rhai's `x.contains(y)` and `contains(x, y)` still parse.
                "contains" if prev.is_some_and(ends_value) => out.push_str("contains_op"),
                "and" => out.push_str("&&"),
                "or" => out.push_str("||"),
                "not" if next.is_some_and(|n| n.is_ident("in")) => {
                    out.push_str("!in");
                    skip_until = sig[here + 1] + 1;
                }
                "not" => out.push('!'),
                w => out.push_str(w),
            },
            Kind::Punct => match tok.text.as_str() {
                p @ ("." | "?.")
                    if next.is_some_and(|n| {
                        n.kind == Kind::Ident && RHAI_WORDS.contains(&n.text.as_str())
                    }) && !next2.is_some_and(|n| n.is("(")) =>
                {
                    if p == "?." {
                        out.push('?');
                    }
                    out.push_str(&format!("[\"{}\"]", next.map_or("", |n| &n.text)));
                    skip_until = sig[here + 1] + 1;
                }
                "{" if prev.is_some_and(|p| {
                    ends_value(p)
                        || ["else", "loop", "do", "try", "catch"]
                            .iter()
                            .any(|w| p.is_ident(w))
                }) =>
                {
                    out.push('{');
                    frames.push(Frame::new(FrameKind::Block, out.len()));
                }
                "{" | "#{" => {
                    out.push_str("#{");
                    frames.push(Frame::new(FrameKind::Map, out.len()));
                }
                "(" => {
                    out.push('(');
                    frames.push(Frame::new(FrameKind::Paren, out.len()));
                }
                "[" => {
                    if prev.is_some_and(ends_value) {
                        let slice = slice_colon(&toks, &sig, here);
                        if slice.is_some() {
                            out.push_str(".slice(");
                            if next.is_some_and(|n| n.is(":")) {
                                out.push('0');
                            }
                        } else {
                            out.push('[');
                        }
                        frames.push(Frame::new(FrameKind::Index { slice }, out.len()));
                    } else {
                        out.push('[');
                        frames.push(Frame::new(FrameKind::Array, out.len()));
                    }
                }
                ")" | "]" | "}" => {
                    if frames.len() < 2 {
                        return Err(format!("unbalanced {}", tok.text));
                    }
                    let mut f = frames.pop().expect("frame");
                    f.close_ternaries(&mut out);
                    let (expected, closer) = match f.kind {
                        FrameKind::Paren => (")", ")"),
                        FrameKind::Array => ("]", "]"),
                        FrameKind::Map | FrameKind::Block => ("}", "}"),
                        FrameKind::Index { slice: Some(_) } => ("]", ")"),
                        FrameKind::Index { slice: None } => ("]", "]"),
                        FrameKind::Root => unreachable!("root is never popped"),
                    };
                    if expected != tok.text {
                        return Err(format!("unbalanced {}", tok.text));
                    }
                    if matches!(f.kind, FrameKind::Index { slice: Some(_) })
                        && prev.is_some_and(|p| p.is(":"))
                    {
                        out.push_str("()");
                    }
                    out.push_str(closer);
                }
                "," => {
                    top.close_ternaries(&mut out);
                    // Drop a trailing comma.
                    if !next.is_some_and(|n| n.is(")") || n.is("]") || n.is("}")) {
                        out.push(',');
                    }
                    top.seg_start = out.len();
                    top.key_pos = top.kind == FrameKind::Map;
                }
                ";" => {
                    top.close_ternaries(&mut out);
                    out.push(';');
                    top.seg_start = out.len();
                }
                "=" => {
                    out.push('=');
                    top.seg_start = out.len();
                }
                "?" => {
                    out.insert_str(top.seg_start, " if ");
                    out.push_str(" {");
                    top.ternaries.push(false);
                    top.seg_start = out.len();
                }
                ":" => {
                    if let Some(open) = top.ternaries.iter().rposition(|&in_else| !in_else) {
                        for _ in open + 1..top.ternaries.len() {
                            out.push_str(" }");
                        }
                        top.ternaries.truncate(open + 1);
                        top.ternaries[open] = true;
                        out.push_str(" } else {");
                    } else if matches!(top.kind, FrameKind::Index { slice: Some(c) } if c == i) {
                        out.push(',');
                    } else {
                        out.push(':');
                    }
                    top.seg_start = out.len();
                }
                p => out.push_str(p),
            },
            Kind::Space | Kind::Comment => unreachable!("handled above"),
        }
    }
    if frames.len() > 1 {
        return Err("unclosed bracket".into());
    }
    frames[0].close_ternaries(&mut out);
    Ok(out)
}

/// Whether a token ends a value, so that a following `[` indexes it.
fn ends_value(t: &Tok) -> bool {
    match t.kind {
        Kind::Str | Kind::Num => true,
        Kind::Ident => !OPERATOR_WORDS.contains(&t.text.as_str()),
        Kind::Punct => t.is(")") || t.is("]") || t.is("}"),
        _ => false,
    }
}

/// For the `[` at significant position `open`: the token index of a slice
/// colon at its top level (not a ternary's, not nested), if any.
fn slice_colon(toks: &[Tok], sig: &[usize], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut ternaries = 0usize;
    for &j in &sig[open + 1..] {
        let t = &toks[j];
        if t.kind != Kind::Punct {
            continue;
        }
        match t.text.as_str() {
            "(" | "[" | "{" | "#{" => depth += 1,
            ")" | "]" | "}" => {
                if depth == 0 {
                    return None;
                }
                depth -= 1;
            }
            "?" if depth == 0 => ternaries += 1,
            ":" if depth == 0 => {
                if ternaries == 0 {
                    return Some(j);
                }
                ternaries -= 1;
            }
            _ => {}
        }
    }
    None
}
