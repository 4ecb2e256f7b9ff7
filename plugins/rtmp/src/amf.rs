//! AMF0 (Action Message Format, Adobe AMF0 spec), the encoding of RTMP
//! commands and metadata. Decoding is bounded: nesting depth and element
//! counts can never exceed what the input bytes could hold.

use crate::Error;

/// Deepest nesting of objects and arrays we accept; commands use two levels.
pub const MAX_DEPTH: usize = 16;

/// One AMF0 value. Object-like values keep their keys in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Amf {
    Number(f64),
    Bool(bool),
    String(String),
    Object(Vec<(String, Amf)>),
    Null,
    Undefined,
    /// ECMA array (`onMetaData`'s usual container).
    EcmaArray(Vec<(String, Amf)>),
    StrictArray(Vec<Amf>),
    /// Milliseconds since the epoch (the time zone is ignored).
    Date(f64),
}

const NUMBER: u8 = 0x00;
const BOOL: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0A;
const DATE: u8 = 0x0B;
const LONG_STRING: u8 = 0x0C;
const AVMPLUS: u8 = 0x11;

impl Amf {
    pub fn str(s: &str) -> Amf {
        Amf::String(s.to_string())
    }

    pub fn object(pairs: &[(&str, Amf)]) -> Amf {
        Amf::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Amf::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Amf::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// A property of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Amf> {
        match self {
            Amf::Object(p) | Amf::EcmaArray(p) => p.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Amf::Number(n) => {
                out.push(NUMBER);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Amf::Bool(b) => out.extend_from_slice(&[BOOL, u8::from(*b)]),
            Amf::String(s) => {
                if s.len() > usize::from(u16::MAX) {
                    out.push(LONG_STRING);
                    out.extend_from_slice(&(s.len().min(u32::MAX as usize) as u32).to_be_bytes());
                } else {
                    out.push(STRING);
                    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
                }
                out.extend_from_slice(s.as_bytes());
            }
            Amf::Object(p) => {
                out.push(OBJECT);
                encode_props(p, out);
            }
            Amf::Null => out.push(NULL),
            Amf::Undefined => out.push(UNDEFINED),
            Amf::EcmaArray(p) => {
                out.push(ECMA_ARRAY);
                out.extend_from_slice(&(p.len() as u32).to_be_bytes());
                encode_props(p, out);
            }
            Amf::StrictArray(v) => {
                out.push(STRICT_ARRAY);
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                for x in v {
                    x.encode(out);
                }
            }
            Amf::Date(ms) => {
                out.push(DATE);
                out.extend_from_slice(&ms.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
        }
    }
}

fn encode_props(p: &[(String, Amf)], out: &mut Vec<u8>) {
    for (k, v) in p {
        let k = &k.as_bytes()[..k.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(k.len() as u16).to_be_bytes());
        out.extend_from_slice(k);
        v.encode(out);
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

/// Encodes values one after another (a command message's body).
pub fn encode_all(values: &[Amf]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        v.encode(&mut out);
    }
    out
}

/// Decodes every value of a message body.
pub fn decode_all(mut data: &[u8]) -> Result<Vec<Amf>, Error> {
    let mut out = Vec::new();
    while !data.is_empty() {
        out.push(decode(&mut data, 0)?);
    }
    Ok(out)
}

fn bad(why: &'static str) -> Error {
    Error::Amf(why)
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Result<&'a [u8], Error> {
    if data.len() < n {
        return Err(bad("truncated"));
    }
    let (head, rest) = data.split_at(n);
    *data = rest;
    Ok(head)
}

fn u16_of(data: &mut &[u8]) -> Result<usize, Error> {
    let b = take(data, 2)?;
    Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
}

fn u32_of(data: &mut &[u8]) -> Result<usize, Error> {
    let b = take(data, 4)?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

fn f64_of(data: &mut &[u8]) -> Result<f64, Error> {
    let b = take(data, 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Ok(f64::from_be_bytes(a))
}

fn string_of(data: &mut &[u8], len: usize) -> Result<String, Error> {
    Ok(String::from_utf8_lossy(take(data, len)?).into_owned())
}

/// One value; `depth` counts the enclosing objects.
pub fn decode(data: &mut &[u8], depth: usize) -> Result<Amf, Error> {
    if depth > MAX_DEPTH {
        return Err(bad("nested too deep"));
    }
    let marker = take(data, 1)?[0];
    Ok(match marker {
        NUMBER => Amf::Number(f64_of(data)?),
        BOOL => Amf::Bool(take(data, 1)?[0] != 0),
        STRING => {
            let n = u16_of(data)?;
            Amf::String(string_of(data, n)?)
        }
        LONG_STRING => {
            let n = u32_of(data)?;
            Amf::String(string_of(data, n)?)
        }
        OBJECT => Amf::Object(decode_props(data, depth)?),
        NULL => Amf::Null,
        UNDEFINED => Amf::Undefined,
        ECMA_ARRAY => {
            // The count is advisory (writers get it wrong); the end marker
            // ends the array.
            u32_of(data)?;
            Amf::EcmaArray(decode_props(data, depth)?)
        }
        STRICT_ARRAY => {
            let n = u32_of(data)?;
            // Each element takes at least one byte: a count larger than the
            // rest of the input is a lie, refused before allocating.
            if n > data.len() {
                return Err(bad("array count past the end"));
            }
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(decode(data, depth + 1)?);
            }
            Amf::StrictArray(v)
        }
        DATE => {
            let ms = f64_of(data)?;
            take(data, 2)?;
            Amf::Date(ms)
        }
        // AMF0 switching to AMF3 for one value (clients that connect with
        // objectEncoding 3 send their command objects so).
        AVMPLUS => amf3::decode(data, depth)?,
        _ => return Err(bad("unsupported type marker")),
    })
}

fn decode_props(data: &mut &[u8], depth: usize) -> Result<Vec<(String, Amf)>, Error> {
    let mut props = Vec::new();
    loop {
        let n = u16_of(data)?;
        // An empty key followed by anything but the end marker is a key
        // like any other (allowed, if odd).
        if n == 0 && data.first() == Some(&OBJECT_END) {
            *data = &data[1..];
            return Ok(props);
        }
        let key = string_of(data, n)?;
        let value = decode(data, depth + 1)?;
        props.push((key, value));
    }
}

/// AMF3 (Adobe AMF3 spec, 2013), read into the same [`Amf`] values: integers
/// become numbers, byte arrays and XML strings. Bounded as AMF0: nesting by
/// `MAX_DEPTH`, counts by the input's length, references only to values
/// already read.
pub mod amf3 {
    use super::{bad, f64_of, string_of, take, Amf, MAX_DEPTH};
    use crate::Error;

    const UNDEFINED: u8 = 0x00;
    const NULL: u8 = 0x01;
    const FALSE: u8 = 0x02;
    const TRUE: u8 = 0x03;
    const INTEGER: u8 = 0x04;
    const DOUBLE: u8 = 0x05;
    const STRING: u8 = 0x06;
    const XML_DOC: u8 = 0x07;
    const DATE: u8 = 0x08;
    const ARRAY: u8 = 0x09;
    const OBJECT: u8 = 0x0A;
    const XML: u8 = 0x0B;
    const BYTE_ARRAY: u8 = 0x0C;

    /// Values one AMF3 graph may expand to. A reference is a copy here, and
    /// references to references double at each step: without a budget a
    /// few hundred bytes could ask for gigabytes.
    pub const MAX_VALUES: usize = 1 << 16;

    /// The reference tables of one AMF3 value graph (§2.2).
    struct Tables {
        strings: Vec<String>,
        objects: Vec<Amf>,
        traits: Vec<(Vec<String>, bool)>,
        budget: usize,
    }

    /// One AMF3 value (after the AMF0 `0x11` marker).
    pub fn decode(data: &mut &[u8], depth: usize) -> Result<Amf, Error> {
        let mut t = Tables {
            strings: Vec::new(),
            objects: Vec::new(),
            traits: Vec::new(),
            budget: MAX_VALUES,
        };
        value(data, depth, &mut t)
    }

    /// Values in `v`, counting no further than `limit`.
    fn weight(v: &Amf, limit: usize) -> usize {
        let mut n = 1;
        let kids: Box<dyn Iterator<Item = &Amf>> = match v {
            Amf::Object(p) | Amf::EcmaArray(p) => Box::new(p.iter().map(|(_, x)| x)),
            Amf::StrictArray(a) => Box::new(a.iter()),
            _ => return 1,
        };
        for k in kids {
            if n > limit {
                break;
            }
            n += weight(k, limit - n);
        }
        n
    }

    fn spend(t: &mut Tables, n: usize) -> Result<(), Error> {
        t.budget = t
            .budget
            .checked_sub(n)
            .ok_or(bad("AMF3 value expands too far"))?;
        Ok(())
    }

    /// U29: 1 to 4 bytes, 7 bits each, the 4th giving 8 (§1.3.1).
    fn u29(data: &mut &[u8]) -> Result<u32, Error> {
        let mut n: u32 = 0;
        for i in 0..4 {
            let b = take(data, 1)?[0];
            if i == 3 {
                return Ok((n << 8) | u32::from(b));
            }
            n = (n << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        Ok(n)
    }

    fn string(data: &mut &[u8], t: &mut Tables) -> Result<String, Error> {
        let h = u29(data)?;
        if h & 1 == 0 {
            return t
                .strings
                .get((h >> 1) as usize)
                .cloned()
                .ok_or(bad("AMF3 string reference past the table"));
        }
        let s = string_of(data, (h >> 1) as usize)?;
        // The empty string is never put in the table.
        if !s.is_empty() {
            t.strings.push(s.clone());
        }
        Ok(s)
    }

    fn object_ref(h: u32, t: &mut Tables) -> Result<Amf, Error> {
        let v = t
            .objects
            .get((h >> 1) as usize)
            .ok_or(bad("AMF3 object reference past the table"))?;
        let w = weight(v, t.budget);
        let v = v.clone();
        spend(t, w)?;
        Ok(v)
    }

    fn value(data: &mut &[u8], depth: usize, t: &mut Tables) -> Result<Amf, Error> {
        if depth > MAX_DEPTH {
            return Err(bad("nested too deep"));
        }
        spend(t, 1)?;
        let marker = take(data, 1)?[0];
        Ok(match marker {
            UNDEFINED => Amf::Undefined,
            NULL => Amf::Null,
            FALSE => Amf::Bool(false),
            TRUE => Amf::Bool(true),
            INTEGER => {
                // 29-bit signed.
                let n = u29(data)?;
                let n = if n & 0x1000_0000 != 0 {
                    i64::from(n) - (1 << 29)
                } else {
                    i64::from(n)
                };
                Amf::Number(n as f64)
            }
            DOUBLE => Amf::Number(f64_of(data)?),
            STRING => Amf::String(string(data, t)?),
            XML_DOC | XML | BYTE_ARRAY => {
                let h = u29(data)?;
                if h & 1 == 0 {
                    return object_ref(h, t);
                }
                let v = Amf::String(string_of(data, (h >> 1) as usize)?);
                t.objects.push(v.clone());
                v
            }
            DATE => {
                let h = u29(data)?;
                if h & 1 == 0 {
                    return object_ref(h, t);
                }
                let v = Amf::Date(f64_of(data)?);
                t.objects.push(v.clone());
                v
            }
            ARRAY => {
                let h = u29(data)?;
                if h & 1 == 0 {
                    return object_ref(h, t);
                }
                let dense = (h >> 1) as usize;
                // A reference to the array while it is read sees a placeholder.
                let slot = t.objects.len();
                t.objects.push(Amf::Null);
                let mut assoc = Vec::new();
                loop {
                    let k = string(data, t)?;
                    if k.is_empty() {
                        break;
                    }
                    assoc.push((k, value(data, depth + 1, t)?));
                }
                // Each element takes at least a byte.
                if dense > data.len() {
                    return Err(bad("AMF3 array count past the end"));
                }
                let mut items = Vec::with_capacity(dense);
                for _ in 0..dense {
                    items.push(value(data, depth + 1, t)?);
                }
                let v = if assoc.is_empty() {
                    Amf::StrictArray(items)
                } else {
                    assoc.extend(
                        items
                            .into_iter()
                            .enumerate()
                            .map(|(i, x)| (i.to_string(), x)),
                    );
                    Amf::EcmaArray(assoc)
                };
                t.objects[slot] = v.clone();
                v
            }
            OBJECT => {
                let h = u29(data)?;
                if h & 1 == 0 {
                    return object_ref(h, t);
                }
                let (keys, dynamic) = if h & 2 == 0 {
                    t.traits
                        .get((h >> 2) as usize)
                        .cloned()
                        .ok_or(bad("AMF3 traits reference past the table"))?
                } else {
                    if h & 4 != 0 {
                        // Externalizable: only its class knows the layout.
                        return Err(bad("AMF3 externalizable object"));
                    }
                    let _class = string(data, t)?;
                    let n = (h >> 4) as usize;
                    if n > data.len() {
                        return Err(bad("AMF3 trait count past the end"));
                    }
                    let mut keys = Vec::with_capacity(n);
                    for _ in 0..n {
                        keys.push(string(data, t)?);
                    }
                    let tr = (keys, h & 8 != 0);
                    t.traits.push(tr.clone());
                    tr
                };
                let slot = t.objects.len();
                t.objects.push(Amf::Null);
                let mut props = Vec::with_capacity(keys.len());
                for k in keys {
                    props.push((k, value(data, depth + 1, t)?));
                }
                if dynamic {
                    loop {
                        let k = string(data, t)?;
                        if k.is_empty() {
                            break;
                        }
                        props.push((k, value(data, depth + 1, t)?));
                    }
                }
                let v = Amf::Object(props);
                t.objects[slot] = v.clone();
                v
            }
            _ => return Err(bad("unsupported AMF3 type marker")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_connect_command() {
        let v = vec![
            Amf::str("connect"),
            Amf::Number(1.0),
            Amf::object(&[
                ("app", Amf::str("live")),
                ("flashVer", Amf::str("FMLE/3.0")),
                ("fpad", Amf::Bool(false)),
                ("nothing", Amf::Null),
            ]),
            Amf::EcmaArray(vec![("width".into(), Amf::Number(640.0))]),
            Amf::StrictArray(vec![Amf::Number(1.0), Amf::Undefined]),
            Amf::Date(5.0),
        ];
        let bytes = encode_all(&v);
        assert_eq!(decode_all(&bytes).unwrap(), v);
        assert_eq!(v[2].get("app").and_then(Amf::as_str), Some("live"));
    }

    #[test]
    fn refuses_deep_nesting_and_lying_counts() {
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[OBJECT, 0, 1, b'a']);
        }
        assert!(decode_all(&deep).is_err());
        let lie = [STRICT_ARRAY, 0xff, 0xff, 0xff, 0xff, NULL];
        assert!(decode_all(&lie).is_err());
        assert!(decode_all(&[STRING, 0, 9, b'a']).is_err());
        assert!(decode_all(&[0x11]).is_err());
        // AMF3 references to values not read yet, and lying counts.
        assert!(decode_all(&[0x11, 0x06, 0x02]).is_err());
        assert!(decode_all(&[0x11, 0x0A, 0x00]).is_err());
        assert!(decode_all(&[0x11, 0x09, 0xff, 0xff, 0xff, 0x7f, 0x01]).is_err());
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[0x09, 0x03, 0x01]);
        }
        assert!(amf3::decode(&mut deep.as_slice(), 0).is_err());
        // Each array holds the previous one twice, by reference: 2^40 values
        // from 160 bytes unless the expansion is bounded.
        let mut bomb = vec![0x09, 0x51, 0x01]; // array of 40 dense items
        bomb.extend_from_slice(&[0x09, 0x01, 0x01]); // item 0: [] (object 1)
        for i in 1..40u8 {
            // item i: [ref i, ref i] (object i+1)
            bomb.extend_from_slice(&[0x09, 0x05, 0x01, 0x09, i << 1, 0x09, i << 1]);
        }
        assert!(amf3::decode(&mut bomb.as_slice(), 0).is_err());
    }

    /// The AMF3 spec's layouts: a dynamic anonymous object (the shape of a
    /// connect command object), integers, a string reference, an array.
    #[test]
    fn reads_amf3_values_in_amf0() {
        let mut b = vec![0x02, 0, 7];
        b.extend_from_slice(b"connect");
        b.extend_from_slice(&[0x00]);
        b.extend_from_slice(&1.0f64.to_be_bytes());
        // 0x11 switch, object: U29O-traits 0x0B = inline, dynamic, 0 sealed;
        // class name "" (0x01).
        b.extend_from_slice(&[0x11, 0x0A, 0x0B, 0x01]);
        // "app": "live"
        b.extend_from_slice(&[0x07]);
        b.extend_from_slice(b"app");
        b.extend_from_slice(&[0x06, 0x09]);
        b.extend_from_slice(b"live");
        // "objectEncoding": integer 3
        b.extend_from_slice(&[0x1D]);
        b.extend_from_slice(b"objectEncoding");
        b.extend_from_slice(&[0x04, 0x03]);
        // "again": the string "live" by reference (index 1: "app" is 0)
        b.extend_from_slice(&[0x0B]);
        b.extend_from_slice(b"again");
        b.extend_from_slice(&[0x06, 0x02]);
        // "neg": integer -1 (0x1FFFFFFF as U29: ff ff ff ff)
        b.extend_from_slice(&[0x07]);
        b.extend_from_slice(b"neg");
        b.extend_from_slice(&[0x04, 0xff, 0xff, 0xff, 0xff]);
        // "list": dense array [true, 1.5]
        b.extend_from_slice(&[0x09]);
        b.extend_from_slice(b"list");
        b.extend_from_slice(&[0x09, 0x05, 0x01, 0x03, 0x05]);
        b.extend_from_slice(&1.5f64.to_be_bytes());
        b.push(0x01); // end of dynamic members
        let v = decode_all(&b).unwrap();
        assert_eq!(v[0].as_str(), Some("connect"));
        let o = &v[2];
        assert_eq!(o.get("app").and_then(Amf::as_str), Some("live"));
        assert_eq!(o.get("objectEncoding").and_then(Amf::as_f64), Some(3.0));
        assert_eq!(o.get("again").and_then(Amf::as_str), Some("live"));
        assert_eq!(o.get("neg").and_then(Amf::as_f64), Some(-1.0));
        assert_eq!(
            o.get("list"),
            Some(&Amf::StrictArray(vec![Amf::Bool(true), Amf::Number(1.5)]))
        );
    }
}
