use super::*;
use serde_json::json;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// set_stream without the re-serializing fallback.
fn strict_set(text: &str, name: &str, sources: &[&str]) -> String {
    let value = match sources {
        [] => Value::Null,
        [one] => json!(one),
        many => json!(many),
    };
    let out = edit_entry(text, "streams", name, Some(&value), true).unwrap();
    // the public function gives the same result
    assert_eq!(set_stream(text, name, &s(sources)).unwrap(), out);
    out
}

fn strict_remove(text: &str, name: &str) -> String {
    let out = edit_entry(text, "streams", name, None, true).unwrap();
    assert_eq!(remove_stream(text, name).unwrap(), out);
    out
}

fn parsed(text: &str) -> Value {
    parse_mapping(text, "t").unwrap()
}

const FILE: &str = "\
# camrouter config
api:
  listen: \":1984\"   # web ui

streams:
  # front door
  cam1: rtsp://a/1   # main
  cam2:
    - rtsp://b/2
    - ffmpeg:cam2#video=h264

  # disabled:
  # cam3: rtsp://c

webrtc:
  candidates:
    - 1.2.3.4:8555
";

#[test]
fn add_stream_keeps_comments() {
    let out = strict_set(FILE, "cam4", &["rtsp://d/4"]);
    assert_eq!(
        out,
        FILE.replace(
            "    - ffmpeg:cam2#video=h264\n",
            "    - ffmpeg:cam2#video=h264\n  cam4: rtsp://d/4\n"
        )
    );
    let out = strict_set(FILE, "cam5", &["a", "b"]);
    assert_eq!(
        out,
        FILE.replace(
            "    - ffmpeg:cam2#video=h264\n",
            "    - ffmpeg:cam2#video=h264\n  cam5:\n    - a\n    - b\n"
        )
    );
    assert_eq!(parsed(&out)["streams"]["cam5"], json!(["a", "b"]));
}

#[test]
fn replace_stream_scalar_with_sequence_and_back() {
    let out = strict_set(FILE, "cam1", &["x", "y"]);
    assert_eq!(
        out,
        FILE.replace(
            "  cam1: rtsp://a/1   # main\n",
            "  cam1:   # main\n    - x\n    - y\n"
        )
    );
    let out = strict_set(FILE, "cam2", &["rtsp://new"]);
    assert_eq!(
        out,
        FILE.replace(
            "  cam2:\n    - rtsp://b/2\n    - ffmpeg:cam2#video=h264\n",
            "  cam2: rtsp://new\n"
        )
    );
    let out = strict_set(FILE, "cam2", &[]);
    assert_eq!(
        out,
        FILE.replace(
            "  cam2:\n    - rtsp://b/2\n    - ffmpeg:cam2#video=h264\n",
            "  cam2:\n"
        )
    );
    assert_eq!(parsed(&out)["streams"]["cam2"], Value::Null);
    // unchanged value: no edit at all
    assert_eq!(strict_set(FILE, "cam1", &["rtsp://a/1"]), FILE);
}

#[test]
fn remove_streams() {
    let out = strict_remove(FILE, "cam1");
    assert_eq!(out, FILE.replace("  cam1: rtsp://a/1   # main\n", ""));
    let out = strict_remove(&out, "cam2");
    assert_eq!(
        out,
        "# camrouter config\napi:\n  listen: \":1984\"   # web ui\n\nstreams:\n  # front door\n\n  # disabled:\n  # cam3: rtsp://c\n\nwebrtc:\n  candidates:\n    - 1.2.3.4:8555\n"
    );
    assert_eq!(parsed(&out)["streams"], Value::Null);
    // absent: unchanged
    assert_eq!(strict_remove(FILE, "nope"), FILE);
    assert_eq!(
        strict_remove("api:\n  listen: x\n", "nope"),
        "api:\n  listen: x\n"
    );
}

#[test]
fn flow_sequence_value() {
    let text = "streams:\n  cam: [a, \"b # c\"]  # flow\n  next: c\n";
    assert_eq!(parsed(text)["streams"]["cam"], json!(["a", "b # c"]));
    assert_eq!(
        strict_set(text, "cam", &["a"]),
        "streams:\n  cam: a  # flow\n  next: c\n"
    );
    assert_eq!(
        strict_set(text, "cam", &["a", "b"]),
        "streams:\n  cam:  # flow\n    - a\n    - b\n  next: c\n"
    );
    assert_eq!(strict_remove(text, "cam"), "streams:\n  next: c\n");
    // multi-line flow sequence
    let text = "streams:\n  cam: [a,\n    b]\n  next: c\n";
    assert_eq!(
        strict_set(text, "cam", &["z"]),
        "streams:\n  cam: z\n  next: c\n"
    );
}

#[test]
fn last_entry_without_trailing_newline() {
    let text = "streams:\n  a: x\n  b: y";
    assert_eq!(strict_set(text, "b", &["z"]), "streams:\n  a: x\n  b: z\n");
    assert_eq!(
        strict_set(text, "c", &["z"]),
        "streams:\n  a: x\n  b: y\n  c: z\n"
    );
    assert_eq!(strict_remove(text, "b"), "streams:\n  a: x\n");
    assert_eq!(strict_remove(text, "a"), "streams:\n  b: y");
    let text = "api:\n  listen: x\nstreams:\n  a:\n    - x\n    - y";
    assert_eq!(
        strict_set(text, "a", &["z"]),
        "api:\n  listen: x\nstreams:\n  a: z\n"
    );
}

#[test]
fn no_streams_section() {
    assert_eq!(
        strict_set("", "cam", &["rtsp://x"]),
        "streams:\n  cam: rtsp://x\n"
    );
    assert_eq!(
        strict_set("# just a comment", "cam", &["x"]),
        "# just a comment\nstreams:\n  cam: x\n"
    );
    // indentation of other sections is reused
    assert_eq!(
        strict_set("api:\n    listen: \":1984\"\n", "cam", &["a", "b"]),
        "api:\n    listen: \":1984\"\n\
         streams:\n    cam:\n      - a\n      - b\n"
    );
    assert_eq!(
        strict_set("log:\n  level: info", "cam", &["x"]),
        "log:\n  level: info\nstreams:\n  cam: x\n"
    );
    // sequence style of other sections is reused (compact, offset 0)
    assert_eq!(
        strict_set("webrtc:\n  candidates:\n  - a\n", "cam", &["a", "b"]),
        "webrtc:\n  candidates:\n  - a\nstreams:\n  cam:\n  - a\n  - b\n"
    );
    // `streams:` with nothing (null) and a comment
    let text = "streams: # none yet\n\nwebrtc:\n  listen: \":8555\"\n";
    assert_eq!(
        strict_set(text, "cam", &["x"]),
        "streams: # none yet\n  cam: x\n\nwebrtc:\n  listen: \":8555\"\n"
    );
    // `streams:` followed only by commented-out entries
    let text = "streams:\n  # cam: old\nrtsp:\n  listen: \":8554\"\n";
    assert_eq!(
        strict_set(text, "cam", &["x"]),
        "streams:\n  # cam: old\n  cam: x\nrtsp:\n  listen: \":8554\"\n"
    );
}

#[test]
fn names_and_values_needing_quotes() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "cam",
            "ffmpeg:cam#video=h264",
            "  cam: ffmpeg:cam#video=h264\n",
        ),
        ("cam", "rtsp://u:p@h/x?a=1", "  cam: rtsp://u:p@h/x?a=1\n"),
        ("cam", "rtsp://h/x #frag", "  cam: \"rtsp://h/x #frag\"\n"),
        (
            "cam",
            "exec:ffmpeg -i {input} -f rtsp {output}",
            "  cam: exec:ffmpeg -i {input} -f rtsp {output}\n",
        ),
        ("cam", "a: b", "  cam: \"a: b\"\n"),
        ("cam", "#x", "  cam: \"#x\"\n"),
        ("cam", "'q'", "  cam: \"'q'\"\n"),
        ("cam", "say \"hi\" it's", "  cam: say \"hi\" it's\n"),
        ("cam", "C:\\cams\\x", "  cam: C:\\cams\\x\n"),
        ("cam", "\"q\" x", "  cam: '\"q\" x'\n"),
        ("cam", " C:\\x", "  cam: ' C:\\x'\n"),
        ("cam", "'it's' \"x\"", "  cam: '''it''s'' \"x\"'\n"),
        ("cam", "y", "  cam: y\n"),
        ("cam", "true", "  cam: \"true\"\n"),
        ("cam", "1984", "  cam: \"1984\"\n"),
        ("cam", "12:30", "  cam: \"12:30\"\n"),
        ("cam", "-re", "  cam: \"-re\"\n"),
        ("cam", "*alias", "  cam: \"*alias\"\n"),
        ("cam", " padded ", "  cam: \" padded \"\n"),
        ("cam", "two\nlines\t", "  cam: \"two\\nlines\\t\"\n"),
        ("cam", "ends:", "  cam: \"ends:\"\n"),
        ("cam", "", "  cam: \"\"\n"),
        ("cam", "камера", "  cam: камера\n"),
        ("my cam: 1", "x", "  \"my cam: 1\": x\n"),
        ("cam#1", "x", "  cam#1: x\n"),
        ("#cam", "x", "  \"#cam\": x\n"),
        ("1", "x", "  \"1\": x\n"),
        ("a\"b", "x", "  a\"b: x\n"),
        ("\"a", "x", "  '\"a': x\n"),
        ("-", "x", "  \"-\": x\n"),
        ("a b", "x", "  a b: x\n"),
    ];
    for (name, value, line) in cases {
        let out = strict_set("streams:\n  other: o\n", name, &[value]);
        assert_eq!(
            out,
            format!("streams:\n  other: o\n{line}"),
            "{name:?} {value:?}"
        );
        let v = parsed(&out);
        assert_eq!(v["streams"][*name], json!(value), "{name:?} {value:?}");
        assert_eq!(v["streams"]["other"], json!("o"));
        // and it can be found again for replacement and removal
        let again = strict_set(&out, name, &["new"]);
        assert_eq!(parsed(&again)["streams"][*name], json!("new"));
        assert_eq!(strict_remove(&out, name), "streams:\n  other: o\n");
    }
    // sequences with quoted items round-trip
    let out = strict_set(
        "",
        "c",
        &["rtsp://h/x #frag", "ffmpeg:c#video=h264", "a: b"],
    );
    assert_eq!(
        out,
        "streams:\n  c:\n    - \"rtsp://h/x #frag\"\n    - ffmpeg:c#video=h264\n    - \"a: b\"\n"
    );
    assert_eq!(
        parsed(&out)["streams"]["c"],
        json!(["rtsp://h/x #frag", "ffmpeg:c#video=h264", "a: b"])
    );
}

#[test]
fn quoted_keys_in_file_are_found() {
    let text = "streams:\n  \"cam: 1\": a  # c1\n  'it''s': b\n  1: c\n  &anch cam4: d\n";
    assert_eq!(
        strict_set(text, "cam: 1", &["z"]),
        "streams:\n  \"cam: 1\": z  # c1\n  'it''s': b\n  1: c\n  &anch cam4: d\n"
    );
    assert_eq!(
        strict_set(text, "it's", &["z"]),
        "streams:\n  \"cam: 1\": a  # c1\n  it's: z\n  1: c\n  &anch cam4: d\n"
    );
    assert_eq!(
        strict_remove(text, "1"),
        "streams:\n  \"cam: 1\": a  # c1\n  'it''s': b\n  &anch cam4: d\n"
    );
    assert_eq!(
        strict_remove(text, "cam4"),
        "streams:\n  \"cam: 1\": a  # c1\n  'it''s': b\n  1: c\n"
    );
}

#[test]
fn indentation_is_reused() {
    let text = "streams:\n    a:\n    - x\n    - y\n    b: z\n";
    assert_eq!(
        strict_set(text, "c", &["p", "q"]),
        "streams:\n    a:\n    - x\n    - y\n    b: z\n    c:\n    - p\n    - q\n"
    );
    assert_eq!(
        strict_set(text, "a", &["p"]),
        "streams:\n    a: p\n    b: z\n"
    );
    assert_eq!(strict_remove(text, "a"), "streams:\n    b: z\n");
    let text = "streams:\n cam:\n     - x\n";
    assert_eq!(
        strict_set(text, "d", &["p", "q"]),
        "streams:\n cam:\n     - x\n d:\n     - p\n     - q\n"
    );
}

#[test]
fn entries_with_block_scalars_and_deeper_comments() {
    let text = "\
streams:
  a: |
    exec:ffmpeg
    # not a comment, part of the scalar
  b:
    - x
    # - y (disabled)

  # about c
  c: z
";
    assert_eq!(
        parsed(text)["streams"]["a"],
        "exec:ffmpeg\n# not a comment, part of the scalar\n"
    );
    assert_eq!(
        strict_remove(text, "a"),
        "streams:\n  b:\n    - x\n    # - y (disabled)\n\n  # about c\n  c: z\n"
    );
    assert_eq!(
        strict_set(text, "b", &["q"]),
        "streams:\n  a: |\n    exec:ffmpeg\n    # not a comment, part of the scalar\n  b: q\n\n  # about c\n  c: z\n"
    );
    assert_eq!(strict_set(text, "d", &["q"]), format!("{text}  d: q\n"));
}

#[test]
fn flow_style_section_is_rewritten_as_block() {
    let text = "# top\nstreams: {a: x}  # flow\nlog:\n  level: info\n";
    assert_eq!(
        strict_set(text, "b", &["y"]),
        "# top\nstreams:  # flow\n  a: x\n  b: y\nlog:\n  level: info\n"
    );
    assert_eq!(
        strict_remove(text, "a"),
        "# top\nstreams:  # flow\nlog:\n  level: info\n"
    );
    assert_eq!(
        strict_set("streams: {}\n", "b", &["y"]),
        "streams:\n  b: y\n"
    );
    assert_eq!(
        strict_set("streams: ~\n", "b", &["y"]),
        "streams:\n  b: y\n"
    );
}

#[test]
fn document_markers_and_crlf() {
    let text = "%YAML 1.1\n---\nstreams:\n  a: x\n...\n";
    assert_eq!(
        strict_set(text, "b", &["y"]),
        "%YAML 1.1\n---\nstreams:\n  a: x\n  b: y\n...\n"
    );
    let text = "---\napi:\n  listen: x\n...\n";
    assert_eq!(
        strict_set(text, "b", &["y"]),
        "---\napi:\n  listen: x\nstreams:\n  b: y\n...\n"
    );
    let text = "streams:\r\n  a: x # c\r\n\r\nlog:\r\n  level: info\r\n";
    assert_eq!(
        strict_set(text, "b", &["y", "z"]),
        "streams:\r\n  a: x # c\r\n  b:\r\n    - y\r\n    - z\r\n\r\nlog:\r\n  level: info\r\n"
    );
    assert_eq!(
        strict_set(text, "a", &["w"]),
        "streams:\r\n  a: w # c\r\n\r\nlog:\r\n  level: info\r\n"
    );
}

#[test]
fn json_file_stays_json() {
    let text = "{\"streams\": {\"a\": \"x\"}, \"api\": {\"listen\": \":1984\"}}";
    let out = set_stream(text, "b", &s(&["y"])).unwrap();
    assert!(out.trim_start().starts_with('{'));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"streams": {"a": "x", "b": "y"}, "api": {"listen": ":1984"}})
    );
    let out = remove_stream(text, "a").unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"streams": {}, "api": {"listen": ":1984"}})
    );
}

#[test]
fn verification_guards_line_edits() {
    // inserting after a keep-chomped block scalar would change its value:
    // the strict edit refuses, the public function falls back to re-serializing
    let text = "streams:\n  a: |+\n    text\n\nother: 1\n";
    assert_eq!(parsed(text)["streams"]["a"], "text\n\n");
    let err = edit_entry(text, "streams", "b", Some(&json!("y")), true).unwrap_err();
    assert!(
        err.to_string()
            .contains("does not parse to the expected config"),
        "{err}"
    );
    let out = set_stream(text, "b", &s(&["y"])).unwrap();
    assert_eq!(
        parsed(&out),
        json!({"streams": {"a": "text\n\n", "b": "y"}, "other": 1})
    );
    // a merge-key stream cannot be removed line-wise
    let text = "base: &b\n  cam: x\nstreams:\n  <<: *b\n  other: y\n";
    assert!(edit_entry(text, "streams", "cam", None, true).is_err());
    let out = remove_stream(text, "cam").unwrap();
    assert_eq!(parsed(&out)["streams"], json!({"other": "y"}));
    // setting it adds an explicit entry that overrides the merged one
    assert_eq!(
        strict_set(text, "cam", &["z"]),
        "base: &b\n  cam: x\nstreams:\n  <<: *b\n  other: y\n  cam: z\n"
    );
}

#[test]
fn invalid_input_is_an_error() {
    assert!(matches!(
        set_stream("streams:\n  a: [\n", "b", &s(&["x"])),
        Err(ConfigError::Yaml { .. })
    ));
    assert!(matches!(
        set_stream("streams: text\n", "b", &s(&["x"])),
        Err(ConfigError::Edit(_))
    ));
    assert!(matches!(
        set_stream("", "<<", &s(&["x"])),
        Err(ConfigError::Edit(_))
    ));
    assert!(matches!(
        set_stream("- a\n", "b", &s(&["x"])),
        Err(ConfigError::NotMapping { .. })
    ));
}

#[test]
fn preload_edits() {
    let text = "preload:\n  cam1: \"video&audio\"  # both\n";
    assert_eq!(
        set_preload(text, "cam2", "video=h264&audio=opus").unwrap(),
        "preload:\n  cam1: \"video&audio\"  # both\n  cam2: video=h264&audio=opus\n"
    );
    assert_eq!(
        set_preload(text, "cam1", "video").unwrap(),
        "preload:\n  cam1: video  # both\n"
    );
    assert_eq!(
        set_preload(text, "cam1", "").unwrap(),
        "preload:\n  cam1:  # both\n"
    );
    assert_eq!(remove_preload(text, "cam1").unwrap(), "preload:\n");
    assert_eq!(remove_preload(text, "nope").unwrap(), text);
    assert_eq!(
        set_preload("streams:\n  cam1: x\n", "cam1", "video&audio").unwrap(),
        "streams:\n  cam1: x\npreload:\n  cam1: video&audio\n"
    );
}

#[test]
fn patch_streams_keeps_comments() {
    let out = patch(
        FILE,
        &json!({"streams": {"cam4": "rtsp://d", "cam1": ["a", "b"], "cam2": null}}),
    )
    .unwrap();
    let expected_text = FILE
        .replace(
            "  cam1: rtsp://a/1   # main\n",
            "  cam1:   # main\n    - a\n    - b\n",
        )
        .replace(
            "  cam2:\n    - rtsp://b/2\n    - ffmpeg:cam2#video=h264\n",
            "  cam2:\n  cam4: rtsp://d\n",
        );
    assert_eq!(out, expected_text);
    // nested keys of other sections are set line-wise too
    let out = patch(
        FILE,
        &json!({"api": {"listen": ":1985", "username": "admin"}}),
    )
    .unwrap();
    assert_eq!(
        out,
        FILE.replace(
            "  listen: \":1984\"   # web ui\n",
            "  listen: \":1985\"   # web ui\n  username: admin\n"
        )
    );
}

#[test]
fn patch_with_deep_merge_reserializes() {
    let text = "# comment\napi:\n  tls:\n    cert: a\n    key: b\nstreams:\n  a: x\n";
    let p = json!({"api": {"tls": {"key": "c"}}, "log": {"level": "debug"}});
    let out = patch(text, &p).unwrap();
    assert!(!out.contains("# comment"));
    assert_eq!(
        parsed(&out),
        json!({"api": {"tls": {"cert": "a", "key": "c"}}, "streams": {"a": "x"}, "log": {"level": "debug"}})
    );
    // replacing a section by a scalar
    let out = patch(text, &json!({"streams": null})).unwrap();
    assert_eq!(
        parsed(&out),
        json!({"api": {"tls": {"cert": "a", "key": "b"}}, "streams": null})
    );
    // replacing a nested map by a scalar is a line-wise edit
    let out = patch(text, &json!({"api": {"tls": "off"}})).unwrap();
    assert_eq!(out, "# comment\napi:\n  tls: \"off\"\nstreams:\n  a: x\n");
    // an empty patch changes nothing
    assert_eq!(patch(text, &json!({})).unwrap(), text);
    assert!(patch(text, &json!([1])).is_err());
}

#[test]
fn scalar_formatting() {
    assert_eq!(yaml_scalar("rtsp://a"), "rtsp://a");
    assert_eq!(yaml_scalar("null"), "\"null\"");
    assert_eq!(yaml_scalar("~"), "\"~\"");
    assert_eq!(yaml_scalar("0x1F"), "\"0x1F\"");
    assert_eq!(yaml_scalar("1e3"), "\"1e3\"");
    assert_eq!(yaml_scalar(".inf"), "\".inf\"");
    assert_eq!(yaml_scalar("yes"), "\"yes\"");
    assert_eq!(yaml_scalar("2024-01-01"), "\"2024-01-01\"");
    assert_eq!(yaml_scalar("a\u{7f}"), "\"a\\u007f\"");
    for s in [
        "a,b", "[x]", "{x}", "x]", "a  b", "@x", "`x", "%x", "!x", "&x", "|", ">", "...", "---",
        "- x", "? x",
    ] {
        let q = yaml_scalar(s);
        let doc = format!("k: {q}\nl:\n  - {q}\n{q}: v\n");
        let v = parsed(&doc);
        assert_eq!(v["k"], json!(s), "{s:?} -> {q}");
        assert_eq!(v["l"][0], json!(s), "{s:?} -> {q}");
        assert_eq!(v[s], json!("v"), "{s:?} -> {q}");
    }
}
