//! Credentials out of text that leaves the process: log lines, API errors,
//! stream stats. [`mask`] works on URLs and on free text that contains them
//! (an ffmpeg command line, ffmpeg's stderr, a JSON error), because a camera's
//! `user:password@` reaches all of those.

/// Characters that end a URL inside free text.
fn ends_url(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '\\' | '`')
}

/// Query or `#param` keys whose values are secrets (case-insensitive).
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["pass", "pwd", "token", "secret", "credential"]
        .iter()
        .any(|w| k.contains(w))
        || matches!(
            k.as_str(),
            "key" | "apikey" | "api_key" | "auth" | "authkey" | "sign" | "signature" | "psk"
        )
}

/// Masks the password of every `scheme://user:password@` (URLs nest, as in
/// `#transport=ws://user:pass@…`, and free text holds several), the values of
/// secret-looking `key=value` parameters (`password=`, `pass=`, `pwd=`,
/// `token=`, `secret=`, `key=`, `apikey=`, `auth=`, …), `Basic`
/// credentials after `Authorization:`, and the value of a JSON
/// `"credential"` (a TURN server's, as `ice_servers` lists hold, also in a
/// `webrtc:` source's `#ice_servers=`; quotes escaped or not). Masked parts
/// become `***`.
///
/// A password written without percent-encoding may hold `/`, `?` or `#`; as
/// long as it ends at an `@` before the next space or quote, it is masked too,
/// at the cost of masking a little more in an odd URL such as
/// `rtsp://h:x/p@q` (`x/p`): a log line can lose a bit, a secret cannot leak.
pub fn mask(text: &str) -> String {
    let mut out = text.to_string();
    mask_userinfo(&mut out);
    mask_params(&mut out);
    mask_authorization(&mut out);
    mask_json_credential(&mut out);
    out
}

/// `"credential":"…"` (or `\"credential\":\"…\"` inside a quoted string).
fn mask_json_credential(out: &mut String) {
    const KEY: &str = "credential";
    let mut i = 0;
    while let Some(at) = out[i..].find(KEY).map(|p| p + i) {
        i = at + KEY.len();
        if !out[..at].ends_with('"') {
            continue;
        }
        let rest = &out[i..];
        let after_key = rest.trim_start_matches(['\\', '"']);
        let Some(after_colon) = after_key.trim_start().strip_prefix(':') else {
            continue;
        };
        let after_colon = after_colon.trim_start();
        let value = after_colon.trim_start_matches('\\');
        let Some(value) = value.strip_prefix('"') else {
            continue;
        };
        let vstart = out.len() - value.len();
        let vend = value.find(['"', '\\']).map_or(out.len(), |p| vstart + p);
        if vend > vstart && &out[vstart..vend] != "***" {
            out.replace_range(vstart..vend, "***");
            i = vstart + 3;
        } else {
            i = vend;
        }
    }
}

fn mask_userinfo(out: &mut String) {
    let mut from = 0;
    while let Some(i) = out[from..].find("://") {
        let start = from + i + 3;
        from = start;
        // A quoted URL (a command line's argument) ends at its closing quote
        // only: a password may hold spaces.
        let scheme_start = out[..start - 3]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')));
        let end = match scheme_start {
            Some((_, q @ ('"' | '\''))) => out[start..].find(q),
            _ => out[start..].find(ends_url),
        };
        let segment_len = end.unwrap_or(out.len() - start);
        let segment = &out[start..start + segment_len];
        let authority_len = segment.find(['/', '?', '#']).unwrap_or(segment.len());
        let authority = &segment[..authority_len];
        let (colon, at) = match authority.rfind('@') {
            Some(at) => match authority[..at].find(':') {
                Some(colon) => (colon, at),
                None => continue,
            },
            None => {
                // No `@` before the path: a password with `/`, `?` or `#` in it,
                // unless what follows the colon is a port or an IPv6 literal.
                let Some(colon) = authority.find(':') else {
                    continue;
                };
                let port = &authority[colon + 1..];
                if authority.starts_with('[') || port.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                match segment.rfind('@') {
                    Some(at) if at > colon => (colon, at),
                    _ => continue,
                }
            }
        };
        if at > colon + 1 {
            out.replace_range(start + colon + 1..start + at, "***");
            from = start + colon + 4;
        }
    }
}

fn mask_params(out: &mut String) {
    let mut i = 0;
    while let Some(eq) = out[i..].find('=').map(|p| p + i) {
        let key_start = out[..eq]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .map_or(0, |(p, c)| p + c.len_utf8());
        let boundary = key_start == 0
            || matches!(
                out.as_bytes()[key_start - 1],
                b'?' | b'&' | b'#' | b';' | b',' | b' ' | b'\t' | b'\n' | b'"' | b'\'' | b'{'
            );
        let vstart = eq + 1;
        let vend = out[vstart..]
            .find(|c: char| ends_url(c) || matches!(c, '&' | '#' | ';' | ','))
            .map_or(out.len(), |p| vstart + p);
        if boundary && vend > vstart && is_secret_key(&out[key_start..eq]) {
            if &out[vstart..vend] != "***" {
                out.replace_range(vstart..vend, "***");
            }
            i = vstart + 3;
        } else {
            i = vstart;
        }
    }
}

fn mask_authorization(out: &mut String) {
    let lower = out.to_ascii_lowercase();
    let mut hits = Vec::new();
    let mut from = 0;
    while let Some(p) = lower[from..].find("authorization:") {
        let after = from + p + "authorization:".len();
        from = after;
        let rest = &lower[after..];
        let trimmed = rest.trim_start_matches([' ', '\t']);
        let Some(cred) = trimmed.strip_prefix("basic ") else {
            continue;
        };
        let vstart = after + (rest.len() - cred.len());
        let vstart = vstart + (cred.len() - cred.trim_start().len());
        let vend = lower[vstart..]
            .find(ends_url)
            .map_or(lower.len(), |p| vstart + p);
        if vend > vstart {
            hits.push((vstart, vend));
        }
    }
    for (s, e) in hits.into_iter().rev() {
        out.replace_range(s..e, "***");
    }
}

#[cfg(test)]
mod tests {
    use super::mask;

    #[test]
    fn urls() {
        for (raw, masked) in [
            (
                "rtsp://admin:pw@10.0.0.1/s?x=1",
                "rtsp://admin:***@10.0.0.1/s?x=1",
            ),
            (
                "http://h/x?user=a&password=b#p",
                "http://h/x?user=a&password=***#p",
            ),
            ("exec:ffmpeg -i x", "exec:ffmpeg -i x"),
            (
                "rtsp://u:p@cam/s#transport=wss://wu:w@p@h:1/ws",
                "rtsp://u:***@cam/s#transport=wss://wu:***@h:1/ws",
            ),
            (
                "rtsp://cam/s#transport=ws://wu:wp@h/ws",
                "rtsp://cam/s#transport=ws://wu:***@h/ws",
            ),
            ("rtsp://u:p/a#b?c@cam/s", "rtsp://u:***@cam/s"),
            ("rtsp://cam:554/s@x", "rtsp://cam:554/s@x"),
            ("rtsp://[::1]:8554/s", "rtsp://[::1]:8554/s"),
            ("rtsp://user@cam/s", "rtsp://user@cam/s"),
            (
                "srt://h:9000?mode=caller&passphrase=abcdefghij",
                "srt://h:9000?mode=caller&passphrase=***",
            ),
            ("http://h/a?Token=xyz&n=1", "http://h/a?Token=***&n=1"),
            ("http://h/a?api_key=xyz", "http://h/a?api_key=***"),
            (
                "http://h/a?monkey=1&keyframe=2",
                "http://h/a?monkey=1&keyframe=2",
            ),
        ] {
            assert_eq!(mask(raw), masked, "{raw}");
        }
    }

    #[test]
    fn free_text() {
        // ffmpeg's stderr and our own command lines.
        let stderr = "[rtsp @ 0x5581] method DESCRIBE failed: 401 Unauthorized\n\
                      rtsp://admin:s3cret@127.0.0.1:1/cam: Server returned 401 Unauthorized";
        let m = mask(stderr);
        assert!(!m.contains("s3cret") && m.contains("rtsp://admin:***@127.0.0.1:1/cam:"));
        let cmd = "exec:ffmpeg -i \"rtsp://a:b c@h/x\" -i 'http://u:p@h' -f rtsp {output}";
        let m = mask(cmd);
        assert!(!m.contains("b c@") && !m.contains(":p@"), "{m}");
        assert_eq!(mask("rtsp://u:pw@h"), "rtsp://u:***@h");
        assert_eq!(
            mask("x rtsp://u:pw@h:554: failed"),
            "x rtsp://u:***@h:554: failed"
        );
        // JSON and tracing fields.
        assert_eq!(
            mask(r#"{"url":"rtsp://u:pw@h/s","password":"x"}"#),
            r#"{"url":"rtsp://u:***@h/s","password":"x"}"#
        );
        assert_eq!(mask("pid=5 password=hunter2 ok"), "pid=5 password=*** ok");
        // A TURN credential, in ice_servers JSON (a `webrtc:` source's
        // `#ice_servers=`), raw and as a log field quotes it.
        let src = r#"webrtc:http://h/#ice_servers=[{"urls":"turn:t","username":"u","credential":"s3c ret"}]"#;
        assert_eq!(
            mask(src),
            r#"webrtc:http://h/#ice_servers=[{"urls":"turn:t","username":"u","credential":"***"}]"#
        );
        assert_eq!(
            mask(r#"url="x#ice_servers=[{\"credential\": \"s3c\"}]" ok"#),
            r#"url="x#ice_servers=[{\"credential\": \"***\"}]" ok"#
        );
        assert_eq!(mask("credential=abc&x=1"), "credential=***&x=1");
        for cut in 0..src.len() {
            let _ = mask(&src[..cut]);
        }
        assert_eq!(mask(r#"{"credential":""}"#), r#"{"credential":""}"#);
        assert_eq!(mask(r#""credential":"é"#), r#""credential":"***"#);
        assert_eq!(
            mask("check the username and credential in ice_servers"),
            "check the username and credential in ice_servers"
        );
        assert_eq!(
            mask("Authorization: Basic YWRtaW46c2VjcmV0\r\nCSeq: 2"),
            "Authorization: Basic ***\r\nCSeq: 2"
        );
        // Nothing to mask: the text is unchanged.
        for plain in [
            "",
            "a=b",
            "rtsp://",
            "://@",
            "x://:@",
            "=",
            "pass=",
            "ü://ä:ö@ß",
        ] {
            let _ = mask(plain);
        }
        assert_eq!(
            mask("-x265-params level=5.1:high-tier=0"),
            "-x265-params level=5.1:high-tier=0"
        );
    }
}
