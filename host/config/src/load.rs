//! Collecting and merging config sources (go2rtc `initConfig`).

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::value::{deep_merge, parse_mapping};
use crate::vars::substitute_vars;
use crate::{ConfigError, Result};

/// Files searched in the working directory when no `-c` is given; the first
/// one found is used.
pub const DEFAULT_FILES: [&str; 2] = ["camrouter.yaml", "go2rtc.yaml"];

/// What a `-c/--config` argument is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// Inline JSON or YAML document.
    Inline,
    /// Dotted override `a.b.c=value`.
    Override,
    /// Path of a config file (absolute, or relative to cwd).
    File(PathBuf),
}

/// One source that contributed to the loaded config, in merge order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSource {
    pub kind: SourceKind,
    /// File path, or `-c #N` (1-based position among the `-c` flags).
    pub label: String,
}

/// Result of [`load`].
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The merged config (always a JSON object).
    pub config: Value,
    /// The config file that API writes go to: the first file given with `-c`,
    /// or the file found by the search, or `cwd/camrouter.yaml`.
    pub path: PathBuf,
    /// Whether `path` existed and was loaded. `false` when the path is only
    /// the default write target (no file found / only inline `-c` sources).
    pub path_exists: bool,
    /// The sources in merge order.
    pub sources: Vec<ConfigSource>,
    /// Non-fatal problems (e.g. unset `${VAR}` without default), each prefixed
    /// with the source label.
    pub warnings: Vec<String>,
}

/// Decides what a `-c` argument is:
///
/// 1. starts with `{` → inline JSON/YAML (flow);
/// 2. contains a newline → inline YAML;
/// 3. `a.b...=value` where the part before the first `=` has at least two
///    non-empty dot-separated segments and no `/`, `\`, `:`, spaces → override;
/// 4. contains `: ` or ends with `:` → inline YAML (e.g. `-c "log: {level: debug}"`);
/// 5. otherwise a file path (e.g. `go2rtc.yaml`, `C:/cfg.yaml`, `/etc/x.yaml`).
pub fn classify_arg(arg: &str) -> SourceKind {
    let t = arg.trim_start();
    if t.starts_with('{') || arg.contains('\n') {
        return SourceKind::Inline;
    }
    if let Some(i) = arg.find('=') {
        let key = &arg[..i];
        let segs: Vec<&str> = key.split('.').collect();
        if segs.len() >= 2
            && segs.iter().all(|s| !s.is_empty())
            && !key.contains(['/', '\\', ':', ' ', '\t', '{', '}', '[', ']', '#'])
        {
            return SourceKind::Override;
        }
    }
    if arg.contains(": ") || arg.contains(":\t") || arg.trim_end().ends_with(':') {
        return SourceKind::Inline;
    }
    SourceKind::File(PathBuf::from(arg))
}

/// Loads the config from the `-c/--config` values `args` (in order), reading
/// files from disk. `env` looks up environment variables (pass
/// `&|k| std::env::var(k).ok()` in production). See [`load_with`].
pub fn load(args: &[String], cwd: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded> {
    load_with(args, cwd, env, &|p: &Path| std::fs::read_to_string(p))
}

/// [`load`] with a custom file reader (used for config files and for
/// `$CREDENTIALS_DIRECTORY` files).
///
/// * Without args, `camrouter.yaml` then `go2rtc.yaml` are searched in `cwd`;
///   none found = empty config.
/// * A `-c` file that does not exist is an error; an empty file is an empty config.
/// * `${VAR}` substitution is applied to every source text before parsing.
/// * Later sources deep-merge over earlier ones (maps recursively; sequences
///   and scalars replace).
pub fn load_with(
    args: &[String],
    cwd: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> io::Result<String>,
) -> Result<Loaded> {
    let mut config = Value::Object(Map::new());
    let mut sources = Vec::new();
    let mut warnings = Vec::new();
    let mut path: Option<PathBuf> = None;

    let mut add = |text: &str,
                   label: String,
                   kind: SourceKind,
                   config: &mut Value,
                   warnings: &mut Vec<String>|
     -> Result<()> {
        let (text, warns) = substitute_vars(text, env, read_file);
        warnings.extend(warns.into_iter().map(|w| format!("config: {label}: {w}")));
        let value = match &kind {
            SourceKind::Override => parse_override(&text),
            _ => parse_mapping(&text, &label)?,
        };
        deep_merge(config, value);
        sources.push(ConfigSource { kind, label });
        Ok(())
    };

    if args.is_empty() {
        for name in DEFAULT_FILES {
            let p = cwd.join(name);
            match read_file(&p) {
                Ok(text) => {
                    let label = p.display().to_string();
                    add(
                        &text,
                        label,
                        SourceKind::File(p.clone()),
                        &mut config,
                        &mut warnings,
                    )?;
                    path = Some(p);
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(ConfigError::Read {
                        file: p.display().to_string(),
                        source: e,
                    })
                }
            }
        }
    }

    for (i, arg) in args.iter().enumerate() {
        if arg.trim().is_empty() {
            continue;
        }
        let label = format!("-c #{}", i + 1);
        match classify_arg(arg) {
            SourceKind::File(rel) => {
                let p = cwd.join(rel);
                let file = p.display().to_string();
                let text = read_file(&p).map_err(|source| ConfigError::Read {
                    file: file.clone(),
                    source,
                })?;
                add(
                    &text,
                    file,
                    SourceKind::File(p.clone()),
                    &mut config,
                    &mut warnings,
                )?;
                // go2rtc (and so Frigate, which passes two files) writes to
                // the first file given.
                if path.is_none() {
                    path = Some(p);
                }
            }
            kind => add(arg, label, kind, &mut config, &mut warnings)?,
        }
    }

    let path_exists = path.is_some();
    Ok(Loaded {
        config,
        path: path.unwrap_or_else(|| cwd.join(DEFAULT_FILES[0])),
        path_exists,
        sources,
        warnings,
    })
}

/// `a.b.c=value` → `{"a": {"b": {"c": value}}}`; the value is parsed as a
/// YAML scalar (`true`, `1984`, `":1984"`, `null`, `[a, b]`...), falling back
/// to the raw string when it is not valid YAML. An empty value is `null`.
fn parse_override(arg: &str) -> Value {
    let (key, raw) = arg.split_once('=').unwrap_or((arg, ""));
    let mut value = match crate::value::parse_yaml(raw, "") {
        Ok(v) => v,
        Err(_) => Value::String(raw.to_string()),
    };
    for seg in key.split('.').rev() {
        let mut m = Map::new();
        m.insert(seg.to_string(), value);
        value = Value::Object(m);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    struct Fs(HashMap<PathBuf, String>);
    impl Fs {
        fn new(files: &[(&str, &str)]) -> Self {
            Fs(files
                .iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect())
        }
        fn read(&self, p: &Path) -> io::Result<String> {
            self.0
                .get(p)
                .cloned()
                .ok_or_else(|| io::ErrorKind::NotFound.into())
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn classify() {
        assert_eq!(classify_arg("{api: {listen: ':1985'}}"), SourceKind::Inline);
        assert_eq!(
            classify_arg(r#"{"api":{"listen":":1985"}}"#),
            SourceKind::Inline
        );
        assert_eq!(classify_arg("api:\n  listen: x"), SourceKind::Inline);
        assert_eq!(classify_arg("log: {level: debug}"), SourceKind::Inline);
        assert_eq!(classify_arg("api.listen=:1985"), SourceKind::Override);
        assert_eq!(
            classify_arg("streams.cam=rtsp://a:b@h/x?q=1"),
            SourceKind::Override
        );
        assert_eq!(
            classify_arg("go2rtc.yaml"),
            SourceKind::File("go2rtc.yaml".into())
        );
        assert_eq!(
            classify_arg("/etc/a.b=c/x.yaml"),
            SourceKind::File("/etc/a.b=c/x.yaml".into())
        );
        assert_eq!(
            classify_arg("C:/cfg.yaml"),
            SourceKind::File("C:/cfg.yaml".into())
        );
        assert_eq!(classify_arg("x=1"), SourceKind::File("x=1".into()));
    }

    #[test]
    fn merge_order_of_three_sources() {
        let fs = Fs::new(&[
            (
                "/w/a.yaml",
                "api:\n  listen: \":1984\"\n  origin: '*'\nstreams:\n  cam: [a, b]\n",
            ),
            (
                "/w/b.yaml",
                "api:\n  listen: \":2000\"\nstreams:\n  cam: c\n  other: d\n",
            ),
        ]);
        let args = s(&[
            "a.yaml",
            r#"{"api": {"username": "u"}, "streams": {"cam": ["x"]}}"#,
            "b.yaml",
        ]);
        let l = load_with(&args, Path::new("/w"), &no_env, &|p| fs.read(p)).unwrap();
        assert_eq!(
            l.config,
            json!({"api": {"listen": ":2000", "origin": "*", "username": "u"},
                   "streams": {"cam": "c", "other": "d"}})
        );
        assert_eq!(l.path, PathBuf::from("/w/a.yaml"));
        assert!(l.path_exists);
        assert_eq!(
            l.sources
                .iter()
                .map(|s| s.label.as_str())
                .collect::<Vec<_>>(),
            vec!["/w/a.yaml", "-c #2", "/w/b.yaml"]
        );

        // reversed order: the sequence from a.yaml replaces the scalar
        let args = s(&["b.yaml", "a.yaml"]);
        let l = load_with(&args, Path::new("/w"), &no_env, &|p| fs.read(p)).unwrap();
        assert_eq!(
            l.config["streams"],
            json!({"cam": ["a", "b"], "other": "d"})
        );
        assert_eq!(l.config["api"]["listen"], ":1984");
        assert_eq!(l.path, PathBuf::from("/w/b.yaml"));
    }

    #[test]
    fn overrides_types() {
        let args = s(&[
            "api.listen=:1984",
            "a.b=c",
            "a.flag=true",
            "a.port=1984",
            "a.quoted=\":1984\"",
            "a.empty=",
            "a.list=[x, y]",
            "a.url=rtsp://u:p@h/x?a=1",
            "a.d.e.f=1.5",
            "a.bad=[x",
        ]);
        let l = load_with(&args, Path::new("/w"), &no_env, &|_| {
            Err(io::ErrorKind::NotFound.into())
        })
        .unwrap();
        assert_eq!(
            l.config,
            json!({"api": {"listen": ":1984"},
                   "a": {"b": "c", "flag": true, "port": 1984, "quoted": ":1984", "empty": null,
                         "list": ["x", "y"], "url": "rtsp://u:p@h/x?a=1", "d": {"e": {"f": 1.5}},
                         "bad": "[x"}})
        );
        assert_eq!(l.path, PathBuf::from("/w/camrouter.yaml"));
        assert!(!l.path_exists);
    }

    #[test]
    fn default_search() {
        let fs = Fs::new(&[("/w/go2rtc.yaml", "streams:\n  a: b\n")]);
        let l = load_with(&[], Path::new("/w"), &no_env, &|p| fs.read(p)).unwrap();
        assert_eq!(l.config, json!({"streams": {"a": "b"}}));
        assert_eq!(l.path, PathBuf::from("/w/go2rtc.yaml"));
        assert!(l.path_exists);

        let fs = Fs::new(&[
            ("/w/go2rtc.yaml", "streams:\n  a: b\n"),
            ("/w/camrouter.yaml", ""),
        ]);
        let l = load_with(&[], Path::new("/w"), &no_env, &|p| fs.read(p)).unwrap();
        assert_eq!(l.config, json!({}));
        assert_eq!(l.path, PathBuf::from("/w/camrouter.yaml"));

        let fs = Fs::new(&[]);
        let l = load_with(&[], Path::new("/w"), &no_env, &|p| fs.read(p)).unwrap();
        assert_eq!(l.config, json!({}));
        assert_eq!(l.path, PathBuf::from("/w/camrouter.yaml"));
        assert!(!l.path_exists);
        assert!(l.sources.is_empty());
    }

    #[test]
    fn missing_file_is_error() {
        let fs = Fs::new(&[]);
        let err = load_with(&s(&["nope.yaml"]), Path::new("/w"), &no_env, &|p| {
            fs.read(p)
        })
        .unwrap_err();
        assert!(matches!(&err, ConfigError::Read { file, .. } if file == "/w/nope.yaml"));
        assert!(err.to_string().starts_with("config: /w/nope.yaml: "));
    }

    #[test]
    fn yaml_error_in_file_and_inline() {
        let fs = Fs::new(&[("/w/go2rtc.yaml", "api:\n  listen: 1\n- x\n")]);
        let err = load_with(&[], Path::new("/w"), &no_env, &|p| fs.read(p)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config: /w/go2rtc.yaml:3:1: did not find expected key"
        );
        match err {
            ConfigError::Yaml {
                file,
                line,
                column,
                message,
            } => {
                assert_eq!((file.as_str(), line, column), ("/w/go2rtc.yaml", 3, 1));
                assert_eq!(message, "did not find expected key");
            }
            e => panic!("{e:?}"),
        }
        let err = load_with(&s(&["a.b=1", "{a: [}"]), Path::new("/w"), &no_env, &|p| {
            fs.read(p)
        })
        .unwrap_err();
        assert!(
            matches!(&err, ConfigError::Yaml { file, .. } if file == "-c #2"),
            "{err}"
        );
        let err = load_with(&s(&["{}", "- a\n- b\n"]), Path::new("/w"), &no_env, &|p| {
            fs.read(p)
        })
        .unwrap_err();
        assert!(
            matches!(&err, ConfigError::NotMapping { file } if file == "-c #2"),
            "{err}"
        );
    }

    #[test]
    fn vars_and_credentials() {
        let fs = Fs::new(&[
            (
                "/w/go2rtc.yaml",
                "streams:\n  cam: rtsp://${USER:admin}:${PASS}@${HOST}/x\n  other: ${MISSING}\n",
            ),
            ("/creds/PASS", "p@ss\n"),
        ]);
        let env = |k: &str| match k {
            "HOST" => Some("10.1.1.1".to_string()),
            "CREDENTIALS_DIRECTORY" => Some("/creds".to_string()),
            _ => None,
        };
        let l = load_with(&s(&["go2rtc.yaml"]), Path::new("/w"), &env, &|p| fs.read(p)).unwrap();
        assert_eq!(
            l.config,
            json!({"streams": {"cam": "rtsp://admin:p@ss@10.1.1.1/x", "other": "${MISSING}"}})
        );
        assert_eq!(
            l.warnings,
            vec!["config: /w/go2rtc.yaml: variable ${MISSING} is not set".to_string()]
        );
    }

    #[test]
    fn real_files() {
        let dir =
            std::env::temp_dir().join(format!("camrouter-config-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("camrouter.yaml"), "log:\n  level: info\n").unwrap();
        std::fs::write(dir.join("empty.yaml"), "").unwrap();
        let l = load(&[], &dir, &no_env).unwrap();
        assert_eq!(l.config, json!({"log": {"level": "info"}}));
        let l = load(&s(&["empty.yaml", "log.level=debug"]), &dir, &no_env).unwrap();
        assert_eq!(l.config, json!({"log": {"level": "debug"}}));
        assert_eq!(l.path, dir.join("empty.yaml"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
