//! `${VAR}` / `${VAR:default}` substitution (go2rtc `shell.ReplaceEnvVars`).

use std::path::Path;

/// Replaces `${NAME}` and `${NAME:default}` in `text`.
///
/// Resolution order for `NAME`:
/// 1. `env(NAME)`;
/// 2. when `env("CREDENTIALS_DIRECTORY")` is set, the content of the file
///    `$CREDENTIALS_DIRECTORY/NAME` read with `read_file` (trailing `\r`/`\n`
///    trimmed; systemd `LoadCredential=`);
/// 3. the default after the first `:`, if any (may be empty);
/// 4. otherwise the reference is left as is and a warning is returned.
///
/// `NAME` is everything between `${` and `}` that contains no `{`/`}`
/// (like go2rtc). Returns the new text and warnings (one per unresolved name).
pub fn substitute_vars(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&Path) -> std::io::Result<String>,
) -> (String, Vec<String>) {
    let mut out = String::with_capacity(text.len());
    let mut warnings: Vec<String> = Vec::new();
    let mut rest = text;
    let creds_dir = env("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty());
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find(['{', '}']);
        match end {
            Some(e) if after.as_bytes()[e] == b'}' && e > 0 => {
                let inner = &after[..e];
                let (name, default) = match inner.find(':') {
                    Some(i) if i > 0 => (&inner[..i], Some(&inner[i + 1..])),
                    _ => (inner, None),
                };
                let value = env(name)
                    .or_else(|| {
                        let dir = creds_dir.as_ref()?;
                        if !safe_file_name(name) {
                            return None;
                        }
                        let content = read_file(&Path::new(dir).join(name)).ok()?;
                        Some(content.trim_end_matches(['\n', '\r']).to_string())
                    })
                    .or_else(|| default.map(str::to_string));
                match value {
                    Some(v) => out.push_str(&v),
                    None => {
                        out.push_str(&rest[start..start + 2 + e + 1]);
                        let w = format!("variable ${{{name}}} is not set");
                        if !warnings.contains(&w) {
                            warnings.push(w);
                        }
                    }
                }
                rest = &after[e + 1..];
            }
            _ => {
                // not a reference: emit "${" and continue after it
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, warnings)
}

fn safe_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    fn no_files(_: &Path) -> io::Result<String> {
        Err(io::ErrorKind::NotFound.into())
    }

    #[test]
    fn env_and_defaults() {
        let env = env_of(&[("HOST", "10.0.0.1"), ("EMPTY", "")]);
        let (out, warn) = substitute_vars(
            "a: rtsp://${HOST}/x\nb: ${PORT:8554}\nc: ${EMPTY:zz}\nd: ${NOPE}\ne: ${X:}\nf: ${HOST:other}:${PORT:1}\n",
            &env,
            &no_files,
        );
        assert_eq!(
            out,
            "a: rtsp://10.0.0.1/x\nb: 8554\nc: \nd: ${NOPE}\ne: \nf: 10.0.0.1:1\n"
        );
        assert_eq!(warn, vec!["variable ${NOPE} is not set".to_string()]);
    }

    #[test]
    fn default_with_colons_and_odd_input() {
        let env = env_of(&[]);
        let (out, warn) = substitute_vars(
            "u: ${URL:rtsp://a:b@h:554/x} ${ $} ${} ${a{b} ${NOPE} ${NOPE} end ${",
            &env,
            &no_files,
        );
        assert_eq!(
            out,
            "u: rtsp://a:b@h:554/x ${ $} ${} ${a{b} ${NOPE} ${NOPE} end ${"
        );
        assert_eq!(
            warn,
            vec![
                "variable ${ $} is not set".to_string(),
                "variable ${NOPE} is not set".to_string()
            ]
        );
    }

    #[test]
    fn credentials_directory() {
        let env = env_of(&[("CREDENTIALS_DIRECTORY", "/run/creds"), ("SET", "env")]);
        let files = |p: &Path| -> io::Result<String> {
            match p.to_str().unwrap() {
                "/run/creds/PASS" => Ok("s3cret\n".into()),
                "/run/creds/SET" => Ok("file\n".into()),
                _ => Err(io::ErrorKind::NotFound.into()),
            }
        };
        let (out, warn) =
            substitute_vars("${PASS} ${SET} ${OTHER:d} ${../etc/passwd:x}", &env, &files);
        assert_eq!(out, "s3cret env d x");
        assert!(warn.is_empty());
    }
}
