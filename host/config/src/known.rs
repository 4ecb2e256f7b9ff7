//! Detection of unknown config keys (for warnings).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Description of the known top-level sections and their keys.
///
/// A section is either free-form (any keys: `streams`, `preload`, `log`) or
/// has a fixed set of first-level keys. Deeper levels are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    sections: BTreeMap<String, Option<BTreeSet<String>>>,
}

impl Known {
    /// Known sections: the free-form `streams`, `preload` and `log`.
    pub fn new() -> Self {
        Self::empty()
            .free_section("streams")
            .free_section("preload")
            .free_section("log")
    }

    /// No known sections at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Adds (or extends) a section with fixed keys.
    pub fn section<I, S>(mut self, name: &str, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.add_section(name, keys);
        self
    }

    /// Adds a free-form section (any keys allowed).
    pub fn free_section(mut self, name: &str) -> Self {
        self.add_free_section(name);
        self
    }

    /// In-place variant of [`Known::section`]. Extending a free-form section
    /// keeps it free-form.
    pub fn add_section<I, S>(&mut self, name: &str, keys: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let entry = self
            .sections
            .entry(name.to_string())
            .or_insert_with(|| Some(BTreeSet::new()));
        if let Some(set) = entry {
            set.extend(keys.into_iter().map(Into::into));
        }
    }

    /// In-place variant of [`Known::free_section`].
    pub fn add_free_section(&mut self, name: &str) {
        self.sections.insert(name.to_string(), None);
    }

    /// Whether the top-level section `name` is known.
    pub fn has_section(&self, name: &str) -> bool {
        self.sections.contains_key(name)
    }

    /// A JSON Schema (draft 2020-12) of the config: the known sections, each
    /// a mapping with its known keys. Unknown keys are only warned about at
    /// startup, so `additionalProperties: false` here means "unknown", which
    /// the web editor shows as a warning, not as an error. `streams` also
    /// says what a stream is: one source or a list of them.
    pub fn json_schema(&self) -> Value {
        let mut props = serde_json::Map::new();
        for (name, keys) in &self.sections {
            let mut section = serde_json::json!({"type": ["object", "null"]});
            if let Some(keys) = keys {
                let k: serde_json::Map<String, Value> = keys
                    .iter()
                    .map(|k| (k.clone(), serde_json::json!({})))
                    .collect();
                section["properties"] = Value::Object(k);
                section["additionalProperties"] = Value::Bool(false);
            }
            props.insert(name.clone(), section);
        }
        if props.contains_key("streams") {
            props.insert(
                "streams".into(),
                serde_json::json!({
                    "type": ["object", "null"],
                    "additionalProperties": {
                        "type": ["string", "array", "null"],
                        "items": {"type": "string"},
                    },
                }),
            );
        }
        serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "camrouter config",
            "type": "object",
            "properties": props,
            "additionalProperties": false,
        })
    }
}

/// Dotted paths of unknown keys in `config` (e.g. `api.lisen`, `webrtcc`), in
/// the config's key order: unknown top-level sections, and unknown
/// first-level keys of known non-free-form sections whose value is a mapping.
pub fn unknown_keys(config: &Value, known: &Known) -> Vec<String> {
    let mut out = Vec::new();
    let Some(top) = config.as_object() else {
        return out;
    };
    for (section, value) in top {
        match known.sections.get(section) {
            None => out.push(section.clone()),
            Some(None) => {}
            Some(Some(keys)) => {
                if let Some(obj) = value.as_object() {
                    for k in obj.keys() {
                        if !keys.contains(k) {
                            out.push(format!("{section}.{k}"));
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_unknown() {
        let known = Known::new()
            .section("api", ["listen", "username", "password"])
            .section("rtsp", ["listen"])
            .section("rtsp", ["default_query"]);
        let cfg = json!({
            "api": {"lisen": ":1984", "username": "u"},
            "rtsp": {"listen": ":8554", "default_query": "video", "x": 1},
            "streams": {"anything": "goes"},
            "log": {"level": "debug", "rtsp": "trace"},
            "preload": {"cam": "video"},
            "webrtcc": {"listen": ":8555"},
        });
        let mut got = unknown_keys(&cfg, &known);
        got.sort();
        assert_eq!(got, vec!["api.lisen", "rtsp.x", "webrtcc"]);
        // null section values (`api:` with nothing) are fine
        assert!(unknown_keys(&json!({"api": null}), &known).is_empty());
        // a free section stays free
        let k = Known::new().section("streams", ["x"]);
        assert!(unknown_keys(&json!({"streams": {"y": 1}}), &k).is_empty());
        assert_eq!(
            unknown_keys(&json!({"log": {}}), &Known::empty()),
            vec!["log"]
        );
        assert!(unknown_keys(&json!(null), &known).is_empty());
    }

    #[test]
    fn schema_lists_sections_and_keys() {
        let known = Known::new()
            .section("api", ["listen"])
            .free_section("webrtc");
        let s = known.json_schema();
        assert_eq!(s["additionalProperties"], json!(false));
        assert_eq!(s["properties"]["api"]["properties"], json!({"listen": {}}));
        assert_eq!(s["properties"]["api"]["additionalProperties"], json!(false));
        assert!(s["properties"]["webrtc"].get("properties").is_none());
        assert_eq!(
            s["properties"]["streams"]["additionalProperties"]["items"],
            json!({"type": "string"})
        );
        assert!(s["properties"]["log"].is_object());
    }
}
