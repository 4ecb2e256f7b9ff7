//! Command lines in source URLs (`exec:`, `echo:`): split like go2rtc does
//! (whitespace, with `"…"` and `'…'` grouping; no shell), and `allow_paths`.

/// Splits a command line into arguments. Quotes group and are removed; there
/// is no shell, so `$VAR`, `|` and `;` are plain characters.
pub fn split_args(cmd: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut quote: Option<char> = None;
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            // Inside "…", `\"` and `\\` are escapes (what the ffmpeg module
            // writes when it quotes an argument); other backslashes stay.
            Some('"') if c == '\\' && matches!(chars.peek(), Some('"' | '\\')) => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            Some(_) => cur.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_arg = true;
            }
            None if c.is_whitespace() => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            None => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if in_arg {
        args.push(cur);
    }
    args
}

/// `<module>.allow_paths`: when set, the program must be listed exactly.
pub fn check_allowed(
    module: &str,
    config: &serde_json::Value,
    program: &str,
) -> Result<(), String> {
    let Some(list) = config.get("allow_paths").and_then(|v| v.as_array()) else {
        return Ok(());
    };
    if list.iter().any(|p| p.as_str() == Some(program)) {
        Ok(())
    } else {
        Err(format!("{module}: bin not in allow_paths: {program}"))
    }
}

/// Splits `cmd#k=v#k2=v2` into the command and its `#params`.
pub fn split_params(url: &str) -> (&str, Vec<(String, String)>) {
    let mut parts = url.split('#');
    let cmd = parts.next().unwrap_or("");
    let params = parts
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect();
    (cmd, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_with_quotes() {
        assert_eq!(
            split_args(r#"ffmpeg -i "a b.mp4"  -vf 'drawtext=text=x y' -f h264 -"#),
            vec![
                "ffmpeg",
                "-i",
                "a b.mp4",
                "-vf",
                "drawtext=text=x y",
                "-f",
                "h264",
                "-"
            ]
        );
        assert_eq!(split_args(r#"echo """#), vec!["echo", ""]);
        assert_eq!(
            split_args(r#"a "say \"hi\" \\ c:\x""#),
            vec!["a", r#"say "hi" \ c:\x"#]
        );
        assert!(split_args("  ").is_empty());
    }

    #[test]
    fn params_and_allowlist() {
        let (c, p) = split_params("ffmpeg -i x#killsignal=15#backchannel=1");
        assert_eq!(c, "ffmpeg -i x");
        assert_eq!(p[0], ("killsignal".into(), "15".into()));
        let cfg = serde_json::json!({"allow_paths": ["ffmpeg"]});
        assert!(check_allowed("exec", &cfg, "ffmpeg").is_ok());
        assert_eq!(
            check_allowed("exec", &cfg, "/bin/sh").unwrap_err(),
            "exec: bin not in allow_paths: /bin/sh"
        );
        assert!(check_allowed("exec", &serde_json::Value::Null, "x").is_ok());
    }
}
