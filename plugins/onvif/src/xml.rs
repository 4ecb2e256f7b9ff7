//! A small, lenient and bounded XML reader for SOAP answers from cameras.
//!
//! Cameras differ in namespace prefixes (`tt:`, `ns2:`, `MC2:`, none), add
//! whitespace inside values, and some send documents a strict parser refuses
//! (an unmatched end tag, an attribute without a value). Every lookup here is
//! by *local* name, namespaces are ignored, and what cannot be read is
//! skipped rather than refused. The input, the nesting depth and the number
//! of elements are capped, so a hostile answer costs bounded memory and time.

use thiserror::Error;

/// Larger answers are refused: a camera's GetProfiles with a dozen profiles
/// is tens of kilobytes.
pub const MAX_BYTES: usize = 1 << 20;
const MAX_DEPTH: usize = 64;
const MAX_ELEMENTS: usize = 20_000;
/// Attributes kept per element; ONVIF's have a handful.
const MAX_ATTRIBUTES: usize = 32;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum XmlError {
    #[error("answer too large ({0} bytes, at most {MAX_BYTES})")]
    TooLarge(usize),
    #[error("XML nested deeper than {MAX_DEPTH} elements")]
    TooDeep,
    #[error("XML with more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    #[error("not XML (no element)")]
    Empty,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Element {
    /// Local name: `tt:Uri` is `Uri`.
    pub name: String,
    /// Attributes by local name (`xmlns` declarations are left out).
    pub attrs: Vec<(String, String)>,
    /// The text directly inside this element, entities decoded.
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first descendant (depth first, this element included) named `name`.
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    /// Every descendant named `name`, in document order; one found is not
    /// searched further (ONVIF does not nest an element in itself).
    pub fn find_all<'a>(&'a self, name: &str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            } else {
                c.find_all(name, out);
            }
        }
    }

    /// The first direct child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The text, trimmed (cameras indent values on lines of their own).
    pub fn value(&self) -> &str {
        self.text.trim()
    }

    /// The trimmed text of the first descendant named `name`.
    pub fn find_value(&self, name: &str) -> Option<&str> {
        self.find(name)
            .map(Element::value)
            .filter(|v| !v.is_empty())
    }
}

fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

/// Reads `input` into a tree whose root holds the top-level elements (a SOAP
/// answer has one, `Envelope`).
pub fn parse(input: &[u8]) -> Result<Element, XmlError> {
    if input.len() > MAX_BYTES {
        return Err(XmlError::TooLarge(input.len()));
    }
    let s = String::from_utf8_lossy(input);
    let s = s.as_ref();
    let b = s.as_bytes();
    // The open elements; stack[0] is the synthetic root.
    let mut stack: Vec<Element> = vec![Element::default()];
    let mut count = 0usize;
    let mut i = 0usize;
    while i < b.len() {
        if b[i] != b'<' {
            let end = memchr(b'<', &b[i..]).map_or(b.len(), |n| i + n);
            let text = &s[i..end];
            if stack.len() > 1 {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&decode_entities(text));
                }
            }
            i = end;
            continue;
        }
        let rest = &s[i..];
        if rest.starts_with("<!--") {
            i = find_from(s, i + 4, "-->").map_or(b.len(), |n| n + 3);
        } else if rest.starts_with("<![CDATA[") {
            let start = i + 9;
            let end = find_from(s, start, "]]>").unwrap_or(b.len());
            if stack.len() > 1 {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s[start..end]);
                }
            }
            i = (end + 3).min(b.len());
        } else if rest.starts_with("<?") {
            i = find_from(s, i + 2, "?>").map_or(b.len(), |n| n + 2);
        } else if rest.starts_with("<!") {
            // DOCTYPE and the like: skipped, entities are never defined.
            i = find_from(s, i + 2, ">").map_or(b.len(), |n| n + 1);
        } else if rest.starts_with("</") {
            let end = find_from(s, i + 2, ">").unwrap_or(b.len());
            let name = local(s[i + 2..end].trim());
            // Close up to the matching open element; an end tag that matches
            // nothing open is ignored.
            if let Some(pos) = stack.iter().rposition(|e| e.name == name) {
                if pos > 0 {
                    while stack.len() > pos {
                        close(&mut stack);
                    }
                }
            }
            i = (end + 1).min(b.len());
        } else {
            let (end, next) = tag_end(b, i + 1);
            let inner = &s[i + 1..end];
            let (inner, empty) = match inner.strip_suffix('/') {
                Some(x) => (x, true),
                None => (inner, false),
            };
            let name_end = inner
                .find(|c: char| c.is_ascii_whitespace())
                .unwrap_or(inner.len());
            let name = local(&inner[..name_end]);
            i = next;
            if name.is_empty() {
                continue;
            }
            count += 1;
            if count > MAX_ELEMENTS {
                return Err(XmlError::TooManyElements);
            }
            let el = Element {
                name: name.to_string(),
                attrs: attributes(&inner[name_end..]),
                ..Default::default()
            };
            if empty {
                if let Some(top) = stack.last_mut() {
                    top.children.push(el);
                }
            } else {
                if stack.len() > MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                stack.push(el);
            }
        }
    }
    while stack.len() > 1 {
        close(&mut stack);
    }
    let root = stack.pop().unwrap_or_default();
    if root.children.is_empty() {
        return Err(XmlError::Empty);
    }
    Ok(root)
}

fn close(stack: &mut Vec<Element>) {
    if let Some(el) = stack.pop() {
        if let Some(parent) = stack.last_mut() {
            parent.children.push(el);
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == needle)
}

fn find_from(s: &str, from: usize, pat: &str) -> Option<usize> {
    s.get(from..)?.find(pat).map(|n| n + from)
}

/// Where a start tag's content ends (its `>`, outside quoted values) and
/// where reading goes on. Both are ASCII positions or the end, so slicing
/// there stays on char boundaries.
fn tag_end(b: &[u8], from: usize) -> (usize, usize) {
    let mut quote = None;
    for (n, &c) in b.iter().enumerate().skip(from) {
        match (quote, c) {
            (None, b'"' | b'\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, b'>') => return (n, n + 1),
            // A `<` outside quotes: the tag was never closed; end it here so
            // the next tag is read.
            (None, b'<') => return (n, n),
            _ => {}
        }
    }
    (b.len(), b.len())
}

fn attributes(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let name = &s[start..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            // An attribute without a value (`<Envelope ...>`): skipped.
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
            let q = b[i];
            let vs = i + 1;
            let ve = memchr(q, &b[vs..]).map_or(b.len(), |n| vs + n);
            i = (ve + 1).min(b.len());
            &s[vs..ve]
        } else {
            let vs = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            &s[vs..i]
        };
        if name.is_empty() || name == "xmlns" || name.starts_with("xmlns:") {
            continue;
        }
        if out.len() == MAX_ATTRIBUTES {
            break;
        }
        out.push((local(name).to_string(), decode_entities(value)));
    }
    out
}

/// The five predefined entities and character references; anything else is
/// kept as written.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let Some(semi) = rest.bytes().take(12).position(|c| c == b';') else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..semi];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => {
                let num = if let Some(h) = ent.strip_prefix("#x").or(ent.strip_prefix("#X")) {
                    u32::from_str_radix(h, 16).ok()
                } else if let Some(d) = ent.strip_prefix('#') {
                    d.parse::<u32>().ok()
                } else {
                    None
                };
                num.and_then(char::from_u32)
            }
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for an element's content or an attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_ignored_and_values_trimmed() {
        let doc = parse(
            br#"<?xml version="1.0"?><SOAP-ENV:Envelope ...><SOAP-ENV:Body><MC1:GetStreamUriResponse>
            <MC1:MediaUri><MC2:Uri>
                rtsp://192.168.5.53:8090/profile1=r
            </MC2:Uri></MC1:MediaUri></MC1:GetStreamUriResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"#,
        )
        .unwrap();
        assert_eq!(
            doc.find_value("Uri"),
            Some("rtsp://192.168.5.53:8090/profile1=r")
        );
        assert_eq!(doc.children[0].name, "Envelope");
    }

    #[test]
    fn entities_attributes_cdata_comments() {
        let doc = parse(
            br#"<a x:token="p&amp;1" b='2' xmlns:x="urn:x"><!-- <no/> --><u>a&amp;b&#x3d;&#61;&bogus;</u><c><![CDATA[<raw>]]></c><e/></a>"#,
        )
        .unwrap();
        let a = &doc.children[0];
        assert_eq!(a.attr("token"), Some("p&1"));
        assert_eq!(a.attr("b"), Some("2"));
        assert_eq!(a.attr("x"), None);
        assert_eq!(a.find_value("u"), Some("a&b==&bogus;"));
        assert_eq!(a.find_value("c"), Some("<raw>"));
        assert!(a.child("e").is_some());
        assert!(a.find("no").is_none());
    }

    #[test]
    fn broken_documents_are_read_as_far_as_possible() {
        // Unmatched end tag, unclosed elements, a tag cut by the end.
        let doc = parse(b"<a><b>1</x></b><c>2<d>3").unwrap();
        assert_eq!(doc.find_value("b"), Some("1"));
        assert_eq!(doc.find_value("d"), Some("3"));
        assert!(parse(b"<a><b attr=\"unterminated").is_ok());
        assert_eq!(parse(b"no markup"), Err(XmlError::Empty));
        assert_eq!(parse(b""), Err(XmlError::Empty));
        // Multi-byte text next to markup stays on char boundaries.
        let doc = parse("<a>é<b>ü</b>ß</a>".as_bytes()).unwrap();
        assert_eq!(doc.children[0].text, "éß");
    }

    #[test]
    fn bounds() {
        let deep = "<a>".repeat(MAX_DEPTH + 5);
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooDeep));
        let many = "<a/>".repeat(MAX_ELEMENTS + 1);
        assert_eq!(parse(many.as_bytes()), Err(XmlError::TooManyElements));
        let attrs = format!("<a{}/>", " x='1'".repeat(10_000));
        assert_eq!(
            parse(attrs.as_bytes()).unwrap().children[0].attrs.len(),
            MAX_ATTRIBUTES
        );
        let big = vec![b' '; MAX_BYTES + 1];
        assert_eq!(parse(&big), Err(XmlError::TooLarge(MAX_BYTES + 1)));
    }

    #[test]
    fn escape_round_trips() {
        let s = "a<b>&\"c'";
        assert_eq!(decode_entities(&escape(s)), s);
    }
}
