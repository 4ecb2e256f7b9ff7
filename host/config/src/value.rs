//! YAML parsing into `serde_json::Value`, deep merge, validation.

use serde_json::{Map, Value};
use serde_yaml::Value as Yaml;

use crate::{ConfigError, Result};

/// Parses a YAML (or JSON) document into a JSON value.
///
/// * anchors/aliases are resolved by the YAML library, `<<` merge keys are
///   applied (explicit keys win, earlier merge sources win over later ones);
/// * non-string mapping keys become strings (`1` → `"1"`, `true` → `"true"`,
///   `~` → `"null"`);
/// * tags are dropped (`!foo bar` → `"bar"`);
/// * an empty document (or only comments) gives `Value::Null`.
///
/// `label` names the source in errors (file path, `-c #N`, ...).
pub fn parse_yaml(text: &str, label: &str) -> Result<Value> {
    let yaml: Yaml = crate::yaml::from_str(text).map_err(|e| yaml_error(&e, label))?;
    yaml_to_json(yaml).map_err(|message| ConfigError::Yaml {
        file: label.to_string(),
        line: 0,
        column: 0,
        message,
    })
}

/// Parses a document and requires a mapping at top level (an empty document
/// is an empty mapping). Returns the object.
pub(crate) fn parse_mapping(text: &str, label: &str) -> Result<Value> {
    match parse_yaml(text, label)? {
        Value::Null => Ok(Value::Object(Map::new())),
        v @ Value::Object(_) => Ok(v),
        _ => Err(ConfigError::NotMapping {
            file: label.to_string(),
        }),
    }
}

/// Validates a whole config posted to the API (YAML or JSON): it must parse
/// and have a mapping at top level. An empty document (nothing, or only
/// comments) is refused: it is what a cut-off or lost request body looks
/// like, and writing it would wipe the user's config. Returns the parsed config.
pub fn validate(text: &str) -> Result<Value> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('{') {
        // Pretty-printed JSON may be indented with tabs, which YAML rejects.
        if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
            return Ok(v);
        }
    }
    match parse_yaml(text, "<text>")? {
        Value::Null => Err(ConfigError::Empty),
        v @ Value::Object(_) => Ok(v),
        _ => Err(ConfigError::NotMapping {
            file: "<text>".to_string(),
        }),
    }
}

pub(crate) fn yaml_error(e: &serde_yaml::Error, label: &str) -> ConfigError {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let full = e.to_string();
    // Cut libyaml's " at line X column Y, while parsing ..." suffix.
    let cut = [" at line ", " at position "]
        .iter()
        .filter_map(|p| full.find(p))
        .min()
        .unwrap_or(full.len());
    ConfigError::Yaml {
        file: label.to_string(),
        line,
        column,
        message: full[..cut].to_string(),
    }
}

fn yaml_to_json(y: Yaml) -> Result<Value, String> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(b),
        Yaml::Number(n) => number_to_json(&n),
        Yaml::String(s) => Value::String(s),
        Yaml::Sequence(seq) => Value::Array(
            seq.into_iter()
                .map(yaml_to_json)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Yaml::Mapping(m) => {
            let mut out = Map::new();
            let mut merges = Vec::new();
            for (k, v) in m {
                if matches!(&k, Yaml::String(s) if s == "<<") {
                    merges.push(v);
                    continue;
                }
                out.insert(key_to_string(&k), yaml_to_json(v)?);
            }
            for m in merges {
                let sources = match yaml_to_json(m)? {
                    Value::Array(a) => a,
                    other => vec![other],
                };
                for src in sources {
                    match src {
                        Value::Object(o) => {
                            for (k, v) in o {
                                out.entry(k).or_insert(v);
                            }
                        }
                        _ => {
                            return Err(
                                "merge key `<<` expects a mapping or a list of mappings".into()
                            )
                        }
                    }
                }
            }
            Value::Object(out)
        }
        Yaml::Tagged(t) => yaml_to_json(t.value)?,
    })
}

fn number_to_json(n: &serde_yaml::Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::from(i)
    } else if let Some(u) = n.as_u64() {
        Value::from(u)
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(n.to_string()))
    }
}

pub(crate) fn key_to_string(k: &Yaml) -> String {
    match k {
        Yaml::String(s) => s.clone(),
        Yaml::Null => "null".into(),
        Yaml::Bool(b) => b.to_string(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Tagged(t) => key_to_string(&t.value),
        // complex keys: render them as compact JSON
        other => match yaml_to_json(other.clone()) {
            Ok(v) => v.to_string(),
            Err(_) => String::new(),
        },
    }
}

/// Deep-merges `src` over `dst`: objects merge recursively, any other value
/// (sequence, scalar, null) replaces.
pub fn deep_merge(dst: &mut Value, src: Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, v) in s {
                match d.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        d.insert(k, v);
                    }
                }
            }
        }
        (d, s) => *d = s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_keys_and_merges() {
        let v = parse_yaml(
            "base: &b\n  a: 1\n  b: 2\nx:\n  <<: *b\n  b: 3\n1: one\ntrue: yes\n~: n\nf: 1.5\nt: !tag v\n",
            "t",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"base": {"a": 1, "b": 2}, "x": {"a": 1, "b": 3}, "1": "one", "true": "yes",
                   "null": "n", "f": 1.5, "t": "v"})
        );
    }

    #[test]
    fn nested_merge_keys() {
        let v = parse_yaml(
            "a: &a {k1: 1}\nb: &b {<<: *a, k2: 2}\nc: {<<: [*b], k3: 3}\n",
            "t",
        )
        .unwrap();
        assert_eq!(v["c"], json!({"k1": 1, "k2": 2, "k3": 3}));
    }

    #[test]
    fn empty_is_null() {
        assert_eq!(parse_yaml("", "t").unwrap(), Value::Null);
        assert_eq!(parse_yaml("# only a comment\n", "t").unwrap(), Value::Null);
    }

    #[test]
    fn error_location() {
        let err = parse_yaml("api:\n  listen: 1\n bad: [\n", "/p/go2rtc.yaml").unwrap_err();
        match &err {
            ConfigError::Yaml { line, column, .. } => {
                assert!(*line >= 2, "{err}");
                assert!(*column >= 1);
            }
            other => panic!("{other:?}"),
        }
        let err = parse_yaml("a: 1\nb: 2\n  c: 3\n", "/p/go2rtc.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "config: /p/go2rtc.yaml:3:4: mapping values are not allowed in this context"
        );
        let err = parse_yaml("api:\n  listen: 1\n- x\n", "/p/go2rtc.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "config: /p/go2rtc.yaml:3:1: did not find expected key"
        );
    }

    #[test]
    fn deep_merge_rules() {
        let mut a = json!({"a": {"x": 1, "y": [1, 2]}, "b": 1});
        deep_merge(
            &mut a,
            json!({"a": {"y": [3], "z": {"q": 1}}, "b": {"c": 1}}),
        );
        assert_eq!(
            a,
            json!({"a": {"x": 1, "y": [3], "z": {"q": 1}}, "b": {"c": 1}})
        );
    }

    #[test]
    fn validate_requires_mapping() {
        assert_eq!(validate("a: 1").unwrap(), json!({"a": 1}));
        assert_eq!(validate("{\n\t\"a\": 1\n}").unwrap(), json!({"a": 1}));
        assert!(matches!(validate(""), Err(ConfigError::Empty)));
        assert!(matches!(validate("# nothing\n\n"), Err(ConfigError::Empty)));
        assert_eq!(validate("{}").unwrap(), json!({}));
        assert!(matches!(
            validate("- a\n- b"),
            Err(ConfigError::NotMapping { .. })
        ));
        assert!(matches!(
            validate("just text"),
            Err(ConfigError::NotMapping { .. })
        ));
        assert!(matches!(validate("a: [1"), Err(ConfigError::Yaml { .. })));
    }
}
