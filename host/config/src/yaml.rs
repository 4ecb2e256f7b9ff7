//! YAML parsing with bounded alias expansion.
//!
//! The YAML library expands every alias in place, so a few KB of nested
//! aliases ("billion laughs") become gigabytes. Every YAML text we parse goes
//! through [`from_str`], which builds the value under a budget that grows with
//! the input: a document without aliases always fits, one that expands far
//! beyond its own size is refused (go2rtc's yaml.v3 refuses "excessive
//! aliasing" the same way).

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde_yaml::value::{Tag, TaggedValue};
use serde_yaml::{Mapping, Number, Value as Yaml};

/// The message of the error for a document over budget.
pub const EXCESSIVE_ALIASING: &str =
    "document contains excessive aliasing (it expands to far more than its own size)";

/// How much a parsed document may hold: nodes and bytes of scalar text.
/// Without aliases a document has at most about one node per input byte and
/// no more scalar bytes than input bytes; the fixed part leaves room for
/// ordinary anchor reuse (`<<: *defaults` in every stream).
struct Budget {
    nodes: Cell<u64>,
    bytes: Cell<u64>,
}

impl Budget {
    fn for_input(len: usize) -> Budget {
        let len = len as u64;
        Budget {
            nodes: Cell::new(100_000 + 2 * len),
            bytes: Cell::new((1 << 20) + 2 * len),
        }
    }

    fn take<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        let nodes = self.nodes.get();
        let left = self.bytes.get();
        let bytes = bytes as u64;
        if nodes == 0 || left < bytes {
            return Err(E::custom(EXCESSIVE_ALIASING));
        }
        self.nodes.set(nodes - 1);
        self.bytes.set(left - bytes);
        Ok(())
    }
}

/// Parses one YAML document into a value, refusing one whose aliases expand
/// it beyond the budget. Same values and errors as `serde_yaml::from_str`
/// otherwise (tags kept, duplicate keys refused).
pub fn from_str(text: &str) -> Result<Yaml, serde_yaml::Error> {
    let budget = Budget::for_input(text.len());
    let de = serde_yaml::Deserializer::from_str(text);
    Seed(&budget).deserialize(de)
}

#[derive(Clone, Copy)]
struct Seed<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Yaml;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Yaml, E> {
        self.0.take(0)?;
        Ok(Yaml::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Yaml, E> {
        self.0.take(0)?;
        Ok(Yaml::Number(i.into()))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Yaml, E> {
        self.0.take(0)?;
        Ok(Yaml::Number(u.into()))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Yaml, E> {
        self.0.take(0)?;
        Ok(Yaml::Number(Number::from(f)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Yaml, E> {
        self.0.take(s.len())?;
        Ok(Yaml::String(s.to_string()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Yaml, E> {
        self.0.take(s.len())?;
        Ok(Yaml::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Yaml, E> {
        self.0.take(0)?;
        Ok(Yaml::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Yaml, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Yaml, A::Error> {
        self.0.take(0)?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Yaml::Sequence(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Yaml, A::Error> {
        self.0.take(0)?;
        let mut out = Mapping::new();
        while let Some(k) = map.next_key_seed(self)? {
            if out.contains_key(&k) {
                return Err(de::Error::custom(format_args!(
                    "duplicate entry with key {}",
                    key_text(&k)
                )));
            }
            let v = map.next_value_seed(self)?;
            out.insert(k, v);
        }
        Ok(Yaml::Mapping(out))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Yaml, A::Error> {
        // A tagged node (`!tag value`): the library hands it over as an enum.
        let (tag, contents) = data.variant::<String>()?;
        if tag.is_empty() {
            return Err(de::Error::custom("empty YAML tag is not allowed"));
        }
        let value = contents.newtype_variant_seed(self)?;
        Ok(Yaml::Tagged(Box::new(TaggedValue {
            tag: Tag::new(tag),
            value,
        })))
    }
}

fn key_text(k: &Yaml) -> String {
    match k {
        Yaml::String(s) => format!("{s:?}"),
        Yaml::Null => "null".into(),
        Yaml::Bool(b) => format!("`{b}`"),
        Yaml::Number(n) => n.to_string(),
        _ => "in YAML map".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nine levels of nine aliases each: 9^9 leaves from about 700 bytes.
    fn laughs(levels: usize) -> String {
        let mut s = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..=levels {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        s
    }

    #[test]
    fn refuses_billion_laughs() {
        let err = from_str(&laughs(9)).unwrap_err();
        assert!(err.to_string().contains(EXCESSIVE_ALIASING), "{err}");
    }

    #[test]
    fn ordinary_anchor_reuse_fits() {
        // Three levels: 729 leaves, as a config sharing a defaults block would.
        let v = from_str(&laughs(3)).unwrap();
        assert_eq!(v["a3"][8][8][8][8], Yaml::String("lol".into()));
        let mut many =
            String::from("defaults: &d {user: admin, password: secret, ch: 1}\nstreams:\n");
        for i in 0..2000 {
            many.push_str(&format!("  cam{i}: {{<<: *d, ch: {i}}}\n"));
        }
        assert!(from_str(&many).is_ok());
    }

    #[test]
    fn same_values_as_the_library() {
        let text = "a: 1\nb: -2\nc: 1.5\nd: true\ne: ~\nf: !t {x: [1, 'y']}\n? [k]\n: v\n";
        let ours = from_str(text).unwrap();
        let theirs: Yaml = serde_yaml::from_str(text).unwrap();
        assert_eq!(ours, theirs);
        let dup = from_str("a: 1\na: 2\n").unwrap_err().to_string();
        assert!(dup.contains("duplicate entry with key \"a\""), "{dup}");
    }
}
