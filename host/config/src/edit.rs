//! Comment-preserving edits of the config file text.
//!
//! The edits work on lines: the top-level block mapping is scanned, the
//! section (`streams:`, `preload:`, ...) is located and only the lines of the
//! edited entry are replaced/removed/inserted; every other byte is kept.
//! After each edit the result is parsed again and compared with the expected
//! config; an edit that does not verify is never returned.
//!
//! Layouts that cannot be edited line-wise (JSON files, a flow-style
//! top level, exotic YAML) fall back to re-serializing the whole document,
//! which loses comments (go2rtc's historical behaviour). A JSON file stays
//! JSON. A section written in flow style (`streams: {a: b}`) is rewritten
//! as a block mapping, keeping the rest of the file.

use serde_json::{Map, Value};
use serde_yaml::Value as Yaml;

use crate::value::{deep_merge, key_to_string, parse_mapping};
use crate::{ConfigError, Result};

const LABEL: &str = "<text>";

// ---------------------------------------------------------------------------
// public API

/// Adds or replaces the stream `name` under the top-level `streams:` mapping
/// (created at the end of the document when missing). One source is written
/// as `name: source`, several as a block sequence, none as `name:` (null).
pub fn set_stream(text: &str, name: &str, sources: &[String]) -> Result<String> {
    let value = match sources {
        [] => Value::Null,
        [one] => Value::String(one.clone()),
        many => Value::Array(many.iter().cloned().map(Value::String).collect()),
    };
    set_entry(text, "streams", name, &value)
}

/// Removes the stream `name` from `streams:`. Removing a stream that is not
/// in the file returns the text unchanged.
pub fn remove_stream(text: &str, name: &str) -> Result<String> {
    remove_entry(text, "streams", name)
}

/// Adds or replaces `name: query` under the top-level `preload:` mapping
/// (go2rtc: stream name → query such as `video&audio`). An empty query is
/// written as `name:` (null = any tracks).
pub fn set_preload(text: &str, name: &str, query: &str) -> Result<String> {
    let value = if query.is_empty() {
        Value::Null
    } else {
        Value::String(query.to_string())
    };
    set_entry(text, "preload", name, &value)
}

/// Removes `name` from `preload:` (no-op when absent).
pub fn remove_preload(text: &str, name: &str) -> Result<String> {
    remove_entry(text, "preload", name)
}

/// Generic form of [`set_stream`]: sets `section.key = value` where the
/// top-level `section` is (or becomes) a mapping. Scalars and sequences of
/// scalars are written in block style, other values as inline JSON (flow).
pub fn set_entry(text: &str, section: &str, key: &str, value: &Value) -> Result<String> {
    edit_entry(text, section, key, Some(value), false)
}

/// Generic form of [`remove_stream`].
pub fn remove_entry(text: &str, section: &str, key: &str) -> Result<String> {
    edit_entry(text, section, key, None, false)
}

/// go2rtc's `PATCH /api/config`: deep-merges `patch` (a mapping) into the
/// config text. Maps merge recursively, other values replace.
///
/// When every change is "set key `k` of top-level mapping `s`" (e.g. a patch
/// of `streams` or `preload` entries, or `api: {listen: ...}`), the edits are
/// done with the comment-preserving [`set_entry`]. Otherwise (nested maps to
/// merge, replacing a whole section by a scalar, ...) the merged config is
/// re-serialized: comments and formatting are lost and key order may change.
pub fn patch(text: &str, patch: &Value) -> Result<String> {
    let Some(p) = patch.as_object() else {
        return Err(ConfigError::Edit("patch must be a mapping".into()));
    };
    let orig = parse_mapping(text, LABEL)?;
    let mut expected = orig.clone();
    deep_merge(&mut expected, patch.clone());

    if let Some(ops) = plan_patch(&orig, p) {
        let mut cur = text.to_string();
        let mut ok = true;
        for (section, key, value) in ops {
            match edit_entry(&cur, section, key, Some(value), true) {
                Ok(t) => cur = t,
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if ok && parse_mapping(&cur, LABEL).ok().as_ref() == Some(&expected) {
            return Ok(cur);
        }
    }
    reserialize(text, &expected)
}

/// Formats a string as a YAML scalar: plain when that is unambiguous
/// (parses back to the same string in block context, as a value, a
/// sequence item or a mapping key), else single- or double-quoted.
pub fn yaml_scalar(s: &str) -> String {
    if plain_ok(s) {
        s.to_string()
    } else {
        quote(s)
    }
}

// ---------------------------------------------------------------------------
// scalar formatting

fn special_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{feff}' | '\u{2028}' | '\u{2029}')
}

fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if s.trim() != s || s.chars().any(special_char) {
        return false;
    }
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.starts_with("...") {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "yes"
            | "no"
            | "on"
            | "off"
            | "true"
            | "false"
            | "null"
            | "~"
            | "<<"
            | ".inf"
            | "+.inf"
            | ".nan"
    ) {
        return false;
    }
    // numbers, dates, sexagesimals, hex/octal/binary in YAML 1.1 or 1.2
    if (first.is_ascii_digit() || first == '+' || first == '.')
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || "xXoObB_:.+-".contains(c))
    {
        return false;
    }
    matches!(crate::yaml::from_str(s), Ok(Yaml::String(ref x)) if x == s)
}

fn quote(s: &str) -> String {
    let needs_double = s.chars().any(special_char);
    if !needs_double && (s.contains('\\') || s.contains('"')) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if special_char(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn inline_value(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => yaml_scalar(s),
        // JSON is valid YAML flow syntax
        other => other.to_string(),
    }
}

/// Renders `key: value` at `indent` (one line, or key line + block sequence
/// items at `indent + seq_off`). `comment` (with its leading whitespace) is
/// appended to the key line.
fn render_entry(
    key: &str,
    value: &Value,
    indent: usize,
    seq_off: usize,
    comment: &str,
    nl: &str,
) -> String {
    let pad = " ".repeat(indent);
    let k = yaml_scalar(key);
    match value {
        Value::Null => format!("{pad}{k}:{comment}{nl}"),
        Value::Array(items)
            if !items.is_empty() && items.iter().all(|i| !i.is_array() && !i.is_object()) =>
        {
            let mut out = format!("{pad}{k}:{comment}{nl}");
            let item_pad = " ".repeat(indent + seq_off);
            for item in items {
                out.push_str(&format!("{item_pad}- {}{nl}", inline_value(item)));
            }
            out
        }
        other => format!("{pad}{k}: {}{comment}{nl}", inline_value(other)),
    }
}

// ---------------------------------------------------------------------------
// line scanning

struct Line<'a> {
    start: usize,
    /// without the line break
    text: &'a str,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let line = text[start..end]
            .strip_suffix('\r')
            .unwrap_or(&text[start..end]);
        out.push(Line { start, text: line });
        start = end + 1;
    }
    out
}

fn indent_of(s: &str) -> usize {
    s.len() - s.trim_start_matches(' ').len()
}

fn is_blank(s: &str) -> bool {
    s.trim().is_empty()
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

fn is_content(s: &str) -> bool {
    !is_blank(s) && !is_comment(s)
}

fn is_seq_item(s: &str) -> bool {
    let t = s.trim_start_matches(' ');
    t == "-" || t.starts_with("- ") || t.starts_with("-\t")
}

fn is_marker(s: &str, m: &str) -> bool {
    s.strip_prefix(m)
        .is_some_and(|r| r.is_empty() || r.starts_with([' ', '\t']))
}

/// The line range `[start, end)` of the first YAML document's content.
fn doc_range(lines: &[Line]) -> std::result::Result<(usize, usize), String> {
    let mut start = 0;
    for (i, l) in lines.iter().enumerate() {
        if is_blank(l.text) || is_comment(l.text) || l.text.starts_with('%') {
            continue;
        }
        if is_marker(l.text, "---") {
            let rest = l.text[3..].trim();
            if !rest.is_empty() && !rest.starts_with('#') {
                return Err("content after `---` is not supported".into());
            }
            start = i + 1;
        }
        break;
    }
    let end = (start..lines.len())
        .find(|&i| is_marker(lines[i].text, "---") || is_marker(lines[i].text, "..."))
        .unwrap_or(lines.len());
    Ok((start, end))
}

/// Splits a block mapping key line (without indentation) into the raw key
/// and the rest after the `:` indicator.
fn split_key(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let n = b.len();
    if n == 0 {
        return None;
    }
    let ws = |i: usize| i >= n || b[i] == b' ' || b[i] == b'\t';
    let key_end = match b[0] {
        b'"' => {
            let mut i = 1;
            while i < n && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            if i >= n {
                return None;
            }
            i + 1
        }
        b'\'' => {
            let mut i = 1;
            loop {
                if i >= n {
                    return None;
                }
                if b[i] == b'\'' {
                    if i + 1 < n && b[i + 1] == b'\'' {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i + 1
        }
        b'-' | b'?' if ws(1) => return None,
        b'[' | b'{' | b'#' | b'|' | b'>' | b'%' | b'@' | b'`' => return None,
        _ => {
            let mut i = 0;
            loop {
                if i >= n {
                    return None;
                }
                if b[i] == b'#' && i > 0 && (b[i - 1] == b' ' || b[i - 1] == b'\t') {
                    return None;
                }
                if b[i] == b':' && ws(i + 1) {
                    break;
                }
                i += 1;
            }
            let raw = s[..i].trim_end();
            if raw.is_empty() {
                return None;
            }
            return Some((raw, &s[i + 1..]));
        }
    };
    let mut j = key_end;
    while j < n && (b[j] == b' ' || b[j] == b'\t') {
        j += 1;
    }
    if j < n && b[j] == b':' && ws(j + 1) {
        Some((&s[..key_end], &s[j + 1..]))
    } else {
        None
    }
}

/// Index of the `#` starting a comment in the text after a key's `:`.
fn comment_start(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let n = b.len();
    let mut i = 0;
    let mut prev_ws = true;
    let mut token_start = true;
    while i < n {
        match b[i] {
            b' ' | b'\t' => {
                prev_ws = true;
                i += 1;
                continue;
            }
            b'#' if prev_ws => return Some(i),
            b'"' if token_start => {
                i += 1;
                while i < n && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                token_start = false;
            }
            b'\'' if token_start => {
                i += 1;
                while i < n {
                    if b[i] == b'\'' {
                        if i + 1 < n && b[i + 1] == b'\'' {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                token_start = false;
            }
            b'[' | b'{' | b',' => {
                token_start = true;
                i += 1;
            }
            _ => {
                token_start = false;
                i += 1;
            }
        }
        prev_ws = false;
    }
    None
}

/// Splits the text after `key:` into the value part and the comment (with
/// the whitespace before it).
fn split_rest(rest: &str) -> (&str, &str) {
    match comment_start(rest) {
        Some(i) => {
            let ws = rest[..i].trim_end_matches([' ', '\t']).len();
            (&rest[..ws], &rest[ws..])
        }
        None => (rest, ""),
    }
}

/// The value on the key line is empty or only anchors/tags: the entry's
/// value (if any) is on the following lines.
fn value_is_block(value_part: &str) -> bool {
    value_part
        .split_whitespace()
        .all(|t| t.starts_with('&') || t.starts_with('!'))
}

struct Entry {
    key: String,
    key_line: usize,
    /// exclusive; includes trailing comment lines indented deeper than the key
    end: usize,
    indent: usize,
    rest: String,
}

/// Scans the block mapping in lines `[from, to)`: returns its indentation
/// and entries. Errors on anything that is not a plain block mapping.
fn scan_entries(
    lines: &[Line],
    from: usize,
    to: usize,
) -> std::result::Result<(Option<usize>, Vec<Entry>), String> {
    let Some(first) = (from..to).find(|&i| is_content(lines[i].text)) else {
        return Ok((None, Vec::new()));
    };
    let ind = indent_of(lines[first].text);
    let mut entries: Vec<Entry> = Vec::new();
    let mut last_content = first;

    let close = |e: &mut Entry, last_content: usize| {
        let mut end = last_content + 1;
        while end < to && is_comment(lines[end].text) && indent_of(lines[end].text) > ind {
            end += 1;
        }
        e.end = end;
    };

    for (i, line) in lines.iter().enumerate().take(to).skip(first) {
        let t = line.text;
        if !is_content(t) {
            continue;
        }
        let li = indent_of(t);
        if li > ind {
            if entries.is_empty() {
                return Err(format!("line {}: unexpected indentation", i + 1));
            }
            last_content = i;
            continue;
        }
        if li < ind {
            return Err(format!("line {}: unexpected indentation", i + 1));
        }
        if let Some(cur) = entries.last() {
            if is_seq_item(t) && value_is_block(split_rest(&cur.rest).0) {
                // compact block sequence (`key:\n- a`) belongs to the entry
                last_content = i;
                continue;
            }
        }
        let Some((raw_key, rest)) = split_key(&t[li..]) else {
            return Err(format!("line {}: not a block mapping entry", i + 1));
        };
        if let Some(prev) = entries.last_mut() {
            close(prev, last_content);
        }
        let key = match crate::yaml::from_str(raw_key) {
            Ok(y) => key_to_string(&y),
            Err(_) => raw_key.to_string(),
        };
        entries.push(Entry {
            key,
            key_line: i,
            end: i + 1,
            indent: ind,
            rest: rest.to_string(),
        });
        last_content = i;
    }
    if let Some(prev) = entries.last_mut() {
        close(prev, last_content);
    }
    Ok((Some(ind), entries))
}

/// Offset of the block sequence items relative to their key, from the first
/// entry with a block sequence value.
fn seq_offset(lines: &[Line], entries: &[Entry]) -> Option<usize> {
    for e in entries {
        if !value_is_block(split_rest(&e.rest).0) {
            continue;
        }
        if let Some(i) = (e.key_line + 1..e.end).find(|&i| is_content(lines[i].text)) {
            if is_seq_item(lines[i].text) {
                return Some(indent_of(lines[i].text).saturating_sub(e.indent));
            }
        }
    }
    None
}

/// Indentation (relative) of the children of other top-level sections.
fn child_offset(lines: &[Line], top: &[Entry]) -> Option<usize> {
    for e in top {
        if !value_is_block(split_rest(&e.rest).0) {
            continue;
        }
        if let Some(i) = (e.key_line + 1..e.end).find(|&i| is_content(lines[i].text)) {
            let li = indent_of(lines[i].text);
            if li > e.indent && !is_seq_item(lines[i].text) {
                return Some(li - e.indent);
            }
        }
    }
    None
}

fn seq_offset_anywhere(lines: &[Line], top: &[Entry]) -> Option<usize> {
    for e in top {
        if !value_is_block(split_rest(&e.rest).0) {
            continue;
        }
        if let Ok((_, children)) = scan_entries(lines, e.key_line + 1, e.end) {
            if let Some(off) = seq_offset(lines, &children) {
                return Some(off);
            }
        }
    }
    None
}

fn byte_at(lines: &[Line], i: usize, len: usize) -> usize {
    lines.get(i).map_or(len, |l| l.start)
}

/// Line-wise edit: set (`new = Some`) or remove (`None`) `section.key`.
/// `new_section` is the complete expected section (used when a flow-style
/// section has to be rewritten).
fn edit_lines(
    text: &str,
    section: &str,
    key: &str,
    new: Option<&Value>,
    new_section: &Map<String, Value>,
) -> std::result::Result<String, String> {
    let nl = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let lines = split_lines(text);
    let (ds, de) = doc_range(&lines)?;
    let (base, top) = scan_entries(&lines, ds, de)?;
    let base = base.unwrap_or(0);
    let child_off = child_offset(&lines, &top).unwrap_or(2);

    // text[..pos] + insert + text[pos..], adding a line break when needed
    let splice = |from: usize, to: usize, insert: &str| -> String {
        let mut out = String::with_capacity(text.len() + insert.len() + 2);
        out.push_str(&text[..from]);
        if !insert.is_empty() && !out.is_empty() && !out.ends_with('\n') {
            out.push_str(nl);
        }
        out.push_str(insert);
        out.push_str(&text[to..]);
        out
    };

    let Some(sec) = top.iter().find(|e| e.key == section) else {
        let Some(v) = new else {
            return Err(format!("no `{section}` section in the text"));
        };
        let seq = seq_offset_anywhere(&lines, &top).unwrap_or(2);
        let pos = byte_at(&lines, de, text.len());
        let mut insert = format!("{}{}:{nl}", " ".repeat(base), yaml_scalar(section));
        insert.push_str(&render_entry(key, v, base + child_off, seq, "", nl));
        return Ok(splice(pos, pos, &insert));
    };

    let (value_part, sec_comment) = split_rest(&sec.rest);
    if !value_is_block(value_part) {
        // flow style / scalar section: rewrite the section as a block mapping
        let key_line = &lines[sec.key_line].text;
        let key_end = key_line.len() - sec.rest.len(); // up to and including ':'
        let mut insert = format!("{}{sec_comment}{nl}", &key_line[..key_end]);
        let seq = seq_offset_anywhere(&lines, &top).unwrap_or(2);
        for (k, val) in new_section {
            insert.push_str(&render_entry(k, val, base + child_off, seq, "", nl));
        }
        let from = byte_at(&lines, sec.key_line, text.len());
        let to = byte_at(&lines, sec.end, text.len());
        return Ok(splice(from, to, &insert));
    }

    let (ci, children) = scan_entries(&lines, sec.key_line + 1, sec.end)?;
    let ci = ci.unwrap_or(base + child_off);
    if ci <= base {
        return Err(format!("`{section}` is not a block mapping"));
    }
    let seq = seq_offset(&lines, &children)
        .or_else(|| seq_offset_anywhere(&lines, &top))
        .unwrap_or(2);

    match (children.iter().find(|c| c.key == key), new) {
        (Some(c), Some(v)) => {
            let (_, comment) = split_rest(&c.rest);
            let insert = render_entry(key, v, ci, seq, comment, nl);
            let from = byte_at(&lines, c.key_line, text.len());
            let to = byte_at(&lines, c.end, text.len());
            Ok(splice(from, to, &insert))
        }
        (Some(c), None) => {
            let from = byte_at(&lines, c.key_line, text.len());
            let to = byte_at(&lines, c.end, text.len());
            Ok(splice(from, to, ""))
        }
        (None, Some(v)) => {
            let at = children.last().map_or(sec.end, |c| c.end);
            let pos = byte_at(&lines, at, text.len());
            Ok(splice(pos, pos, &render_entry(key, v, ci, seq, "", nl)))
        }
        (None, None) => Err(format!(
            "`{section}.{key}` is not written literally in the text (merge key or alias?)"
        )),
    }
}

fn is_json_text(text: &str) -> bool {
    text.trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('{')
}

/// `section: {}` and `section: null` are the same for verification.
fn normalized(mut v: Value, section: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        if let Some(s) = o.get_mut(section) {
            if s.as_object().is_some_and(|m| m.is_empty()) {
                *s = Value::Null;
            }
        }
    }
    v
}

fn reserialize(text: &str, expected: &Value) -> Result<String> {
    let out = if is_json_text(text) {
        let mut s =
            serde_json::to_string_pretty(expected).map_err(|e| ConfigError::Edit(e.to_string()))?;
        s.push('\n');
        s
    } else {
        serde_yaml::to_string(expected).map_err(|e| ConfigError::Edit(e.to_string()))?
    };
    match parse_mapping(&out, LABEL) {
        Ok(v) if &v == expected => Ok(out),
        _ => Err(ConfigError::Edit(
            "re-serialized config does not verify".into(),
        )),
    }
}

/// `strict`: never fall back to re-serializing (used by `patch` and tests).
fn edit_entry(
    text: &str,
    section: &str,
    key: &str,
    new: Option<&Value>,
    strict: bool,
) -> Result<String> {
    if key == "<<" && new.is_some() {
        // the YAML library treats even a quoted `"<<"` key as a merge key
        return Err(ConfigError::Edit("`<<` cannot be used as a key".into()));
    }
    let orig = parse_mapping(text, LABEL)?;
    let current = orig.get(section);
    let current_map = match current {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => {
            return Err(ConfigError::Edit(format!("`{section}` is not a mapping")));
        }
    };
    let old = current_map.and_then(|m| m.get(key));
    match (new, old) {
        (None, None) => return Ok(text.to_string()),
        (Some(n), Some(o)) if n == o => return Ok(text.to_string()),
        _ => {}
    }
    let mut section_map = current_map.cloned().unwrap_or_default();
    match new {
        Some(v) => {
            section_map.insert(key.to_string(), v.clone());
        }
        None => {
            section_map.remove(key);
        }
    }
    let mut expected = orig.clone();
    expected
        .as_object_mut()
        .expect("parse_mapping returns an object")
        .insert(section.to_string(), Value::Object(section_map.clone()));

    if is_json_text(text) {
        return reserialize(text, &expected);
    }
    let edited = edit_lines(text, section, key, new, &section_map).and_then(|out| {
        let v =
            parse_mapping(&out, LABEL).map_err(|e| format!("edited text does not parse: {e}"))?;
        if normalized(v, section) == normalized(expected.clone(), section) {
            Ok(out)
        } else {
            Err("edited text does not parse to the expected config".to_string())
        }
    });
    match edited {
        Ok(out) => Ok(out),
        Err(e) if strict => Err(ConfigError::Edit(format!(
            "cannot edit `{section}.{key}`: {e}"
        ))),
        Err(_) => reserialize(text, &expected),
    }
}

type PatchOp<'a> = (&'a str, &'a str, &'a Value);

/// The patch as a list of `set_entry` operations, if it can be expressed so.
fn plan_patch<'a>(orig: &Value, p: &'a Map<String, Value>) -> Option<Vec<PatchOp<'a>>> {
    let mut ops = Vec::new();
    for (section, pv) in p {
        let pm = pv.as_object()?;
        let current = match orig.get(section) {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(_) => return None,
        };
        if pm.is_empty() && current.is_none() {
            return None;
        }
        for (k, v) in pm {
            if v.is_object() && current.and_then(|m| m.get(k)).is_some_and(Value::is_object) {
                return None;
            }
            ops.push((section.as_str(), k.as_str(), v));
        }
    }
    Some(ops)
}

#[cfg(test)]
mod tests;
