//! What an `ffmpeg:` source from the API may ask for. A client of the HTTP API
//! (or a web page driving a browser) must not choose ffmpeg arguments, read or
//! write local files, or load code; sources in the config file stay as free as
//! go2rtc's. [`check`] refuses, with a reason:
//!
//! - `#raw=`, an `#input=`, `#video=` or `#audio=` that is not a template name
//!   (or `copy`), and any `#param` value that looks like an option (`-…`);
//! - inputs with a scheme ffmpeg reads locally or that wrap other inputs
//!   (`file:`, `concat:`, `subfile:`, `pipe:`, `data:`, …): only network
//!   protocols pass;
//! - local files outside the `ffmpeg.allow_dirs` directories (none by default);
//! - lavfi filter graphs (`virtual?video=…`, `tts?…`, `#drawtext=…`) with a
//!   filter that is not a known generator or simple transform, or with an
//!   option that names a file (`textfile=`, `fontfile=`);
//! - devices other than `/dev/videoN` and ALSA `hw:`/`plughw:`/`default`.

use std::path::{Path, PathBuf};

use camrouter_plugin_api::url::query_pairs;

use crate::args::{self, Templates};

/// Network protocols ffmpeg may open for an API source.
const NETWORK_SCHEMES: &[&str] = &[
    "http", "https", "rtmp", "rtmps", "rtmpt", "rtmpts", "rtsp", "rtsps", "srt", "rist", "udp",
    "rtp", "tcp", "tls", "mmsh", "mmst",
];

/// lavfi filters an API source may use, and the options of each that name a
/// file (refused, and with them options given by position, since a
/// filter's first positional option may be one: drawtext's is `fontfile`).
/// Everything else (`movie`, `amovie`, `subtitles`, `sendcmd`, `frei0r`,
/// `ladspa`, `lv2`, `metadata`, `psnr`, `signature`, `cellauto`, …) can read
/// or write files, load code or reach the network.
const FILTERS: &[(&str, &[&str])] = &[
    // video generators
    ("testsrc", &[]),
    ("testsrc2", &[]),
    ("smptebars", &[]),
    ("smptehdbars", &[]),
    ("rgbtestsrc", &[]),
    ("yuvtestsrc", &[]),
    ("colorspectrum", &[]),
    ("colorchart", &[]),
    ("color", &[]),
    ("mandelbrot", &[]),
    ("allrgb", &[]),
    ("allyuv", &[]),
    ("nullsrc", &[]),
    ("pal75bars", &[]),
    ("pal100bars", &[]),
    ("gradients", &[]),
    ("sierpinski", &[]),
    ("zoneplate", &[]),
    ("haldclutsrc", &[]),
    // audio generators
    ("sine", &[]),
    ("anoisesrc", &[]),
    ("anullsrc", &[]),
    ("flite", &["textfile"]),
    // transforms
    ("format", &[]),
    ("aformat", &[]),
    ("fps", &[]),
    ("scale", &[]),
    ("setsar", &[]),
    ("setdar", &[]),
    ("hflip", &[]),
    ("vflip", &[]),
    ("transpose", &[]),
    ("crop", &[]),
    ("pad", &[]),
    ("null", &[]),
    ("anull", &[]),
    ("aresample", &[]),
    ("volume", &[]),
    ("drawbox", &[]),
    ("drawgrid", &[]),
    ("drawtext", &["textfile", "fontfile"]),
];

/// Why an API source is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ffmpeg: {0} (refused for sources from the API; the config file may use it)")]
pub struct Refused(String);

fn refuse(why: impl Into<String>) -> Refused {
    Refused(why.into())
}

/// Checks an untrusted `ffmpeg:` source (the part after `ffmpeg:`). `templates`
/// come from the config and are trusted; `allow_dirs` are the directories
/// whose files the API may read; `stream_exists` tells camrouter streams from
/// file names.
pub fn check(
    source: &str,
    templates: &Templates,
    allow_dirs: &[PathBuf],
    stream_exists: &dyn Fn(&str) -> bool,
) -> Result<(), Refused> {
    let (input, query) = source.split_once('#').unwrap_or((source, ""));
    for param in query.split('#').filter(|p| !p.is_empty()) {
        let (key, value) = match param.find('=') {
            Some(i) if i > 0 => (&param[..i], &param[i + 1..]),
            _ => (param, ""),
        };
        check_param(key, value, templates)?;
    }
    check_input(input, allow_dirs, stream_exists)
}

fn check_param(key: &str, value: &str, t: &Templates) -> Result<(), Refused> {
    let numeric = value.parse::<i64>().is_ok();
    if value.starts_with('-') && !(numeric && matches!(key, "width" | "height" | "rotate")) {
        return Err(refuse(format!(
            "#{key}={value:?}: a value starting with `-` is an ffmpeg option"
        )));
    }
    let template = t.get(value).filter(|v| !v.is_empty());
    let is_template = template.is_some();
    // Only templates of the right kind: `bin` or `timeout` as codec arguments
    // would be a bare word, which ffmpeg takes for an output file name.
    let is_input = template.is_some_and(|v| v.contains("{input}"));
    let is_codec = template.is_some_and(|v| {
        !v.contains("{input}")
            && !v.contains("{output}")
            && !matches!(value, "bin" | "global" | "timeout")
            && !value.starts_with("output")
    });
    match key {
        "raw" => Err(refuse("#raw= adds ffmpeg arguments")),
        "input" if !is_input => Err(refuse(format!(
            "#input={value:?}: only the name of an input template"
        ))),
        "video" | "audio" if !(is_codec || value == "copy") => Err(refuse(format!(
            "#{key}={value:?}: only `copy` or the name of a codec template"
        ))),
        "drawtext" if !is_template => check_graph(&format!("drawtext={value}")),
        _ => Ok(()),
    }
}

fn check_input(
    input: &str,
    allow_dirs: &[PathBuf],
    stream_exists: &dyn Fn(&str) -> bool,
) -> Result<(), Refused> {
    // The same order as `args::build`: URL, stream, virtual/tts/device, file.
    if let Some(i) = input.find("://").filter(|&i| i > 0) {
        let scheme = input[..i].to_ascii_lowercase();
        if scheme == "file" {
            return check_file(&input[i + 3..], allow_dirs);
        }
        if NETWORK_SCHEMES.contains(&scheme.as_str()) {
            return Ok(());
        }
        return Err(refuse(format!("input scheme {scheme:?}")));
    }
    if stream_exists(input) {
        return Ok(());
    }
    if let Some((kind, query)) = input.split_once('?') {
        match kind {
            "virtual" | "tts" => {
                let built = if kind == "virtual" {
                    args::virtual_input(input, query)
                } else {
                    args::tts_input(input, query)
                };
                // A bad input is `build`'s to report, with its own message.
                let Ok(argv) = built else { return Ok(()) };
                for w in argv.windows(2) {
                    if w[0] == "-i" {
                        check_graph(&w[1])?;
                    }
                }
                return Ok(());
            }
            "device" => return check_device(query),
            _ => {}
        }
    }
    check_file(input.strip_prefix("file:").unwrap_or(input), allow_dirs)
}

/// A local file: an absolute path that, with `..` and links resolved, lies in
/// one of the allowed directories.
fn check_file(path: &str, allow_dirs: &[PathBuf]) -> Result<(), Refused> {
    if !path.starts_with('/') {
        return Err(refuse(format!(
            "input {path:?}: not a stream, a network URL or an absolute file path"
        )));
    }
    if allow_dirs.is_empty() {
        return Err(refuse(format!(
            "local file {path:?}: no directory is allowed (ffmpeg.allow_dirs)"
        )));
    }
    let real =
        std::fs::canonicalize(path).map_err(|e| refuse(format!("local file {path:?}: {e}")))?;
    let allowed = allow_dirs.iter().any(|d| {
        std::fs::canonicalize(d)
            .map(|d| real.starts_with(d))
            .unwrap_or(false)
    });
    if allowed {
        Ok(())
    } else {
        Err(refuse(format!(
            "local file {path:?}: not in a directory of ffmpeg.allow_dirs"
        )))
    }
}

fn check_device(query: &str) -> Result<(), Refused> {
    for (k, v) in query_pairs(query) {
        let ok = match k.as_str() {
            "video" => {
                let n = v.strip_prefix("/dev/video").unwrap_or(&v);
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
            }
            // ALSA names can define PCMs inline, the `file` plugin among them.
            "audio" => {
                let card = v
                    .strip_prefix("hw:")
                    .or_else(|| v.strip_prefix("plughw:"))
                    .or_else(|| v.strip_prefix("sysdefault:"));
                match card {
                    Some(c) => {
                        !c.is_empty()
                            && c.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b',' || b == b'_')
                    }
                    None => matches!(v.as_str(), "default" | "sysdefault"),
                }
            }
            _ => !v.starts_with('-'),
        };
        if !ok {
            return Err(refuse(format!("device {k}={v:?}")));
        }
    }
    Ok(())
}

/// Checks an lavfi filter graph as ffmpeg parses it: filters separated by `,`
/// and `;`, `[label]`s around them, `name=options`; at both levels (graph and
/// options) `'…'` quotes and `\` escapes.
fn check_graph(graph: &str) -> Result<(), Refused> {
    // The builder appends to what is checked here (`,` and the next
    // `#drawtext`, drawtext's default text, `virtual`'s options): a graph
    // that ends inside a quote or on an escape would swallow them and let a
    // later, separately checked value end the quote and start a filter.
    if !ends_clean(graph) {
        return Err(refuse(format!(
            "filter graph {graph:?}: unterminated quote or trailing backslash"
        )));
    }
    let mut rest = graph;
    loop {
        rest = skip_labels(rest.trim_start());
        let name = token(&mut rest, "=,;[");
        let opts = if let Some(r) = rest.strip_prefix('=') {
            rest = r;
            Some(token(&mut rest, "[],;"))
        } else {
            None
        };
        check_filter(&name, opts.as_deref())?;
        rest = skip_labels(rest.trim_start());
        match rest.chars().next() {
            None => return Ok(()),
            Some(',' | ';') => rest = &rest[1..],
            Some(c) => return Err(refuse(format!("filter graph {graph:?}: unexpected {c:?}"))),
        }
    }
}

/// ffmpeg reads a `[label]` with `av_get_token` up to `]`, so quotes and
/// escapes count inside it: `[x'],movie=…']` is one label to a naive scan
/// but a label and a filter to ffmpeg.
fn skip_labels(mut s: &str) -> &str {
    while let Some(mut r) = s.strip_prefix('[') {
        token(&mut r, "]");
        s = r.strip_prefix(']').unwrap_or(r).trim_start();
    }
    s
}

/// Whether ffmpeg's tokenizer ends `s` outside quotes and not on a lone
/// `\` (which it keeps, escaping whatever the builder appends next).
fn ends_clean(s: &str) -> bool {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.next().is_none() => return false,
            '\'' if !chars.by_ref().any(|q| q == '\'') => return false,
            _ => {}
        }
    }
    true
}

/// ffmpeg's `av_get_token`: up to an unquoted, unescaped `term` character,
/// without the quotes and escapes, trailing unquoted whitespace trimmed.
fn token(s: &mut &str, term: &str) -> String {
    let text = s.trim_start();
    let mut out = String::new();
    let mut keep = 0; // length of `out` that trailing-space trimming must keep
    let mut chars = text.char_indices();
    let mut end = text.len();
    while let Some((i, c)) = chars.next() {
        match c {
            c if term.contains(c) => {
                end = i;
                break;
            }
            '\\' => {
                if let Some((_, n)) = chars.next() {
                    out.push(n);
                }
                keep = out.len();
            }
            '\'' => {
                for (_, q) in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    out.push(q);
                }
                keep = out.len();
            }
            c => out.push(c),
        }
    }
    *s = &text[end..];
    let trimmed = out.trim_end().len().max(keep);
    out.truncate(trimmed);
    out
}

fn check_filter(name: &str, opts: Option<&str>) -> Result<(), Refused> {
    // `name@instance` names an instance of `name`.
    let base = name.split('@').next().unwrap_or(name);
    let Some((_, file_opts)) = FILTERS.iter().find(|(f, _)| *f == base) else {
        return Err(refuse(format!("filter {name:?}")));
    };
    let Some(mut rest) = opts else {
        return Ok(());
    };
    while !rest.is_empty() {
        // libavutil's get_key: [A-Za-z0-9_/.-]+ then `=`.
        let key_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.')))
            .unwrap_or(rest.len());
        let key = match rest[key_len..].strip_prefix('=') {
            Some(r) if key_len > 0 => {
                let key = &rest[..key_len];
                rest = r;
                Some(key)
            }
            _ => None,
        };
        match key {
            // ffmpeg 7 reads the value of `/name=path` from the file `path`.
            Some(k) if k.starts_with('/') => {
                return Err(refuse(format!(
                    "{base} option {k}= reads its value from a file"
                )))
            }
            Some(k) if file_opts.contains(&k) => {
                return Err(refuse(format!("{base} option {k}= names a file")))
            }
            None if !file_opts.is_empty() => {
                return Err(refuse(format!(
                    "{base} options must be written as key=value"
                )))
            }
            _ => {}
        }
        token(&mut rest, ":");
        rest = rest.strip_prefix(':').unwrap_or(rest);
    }
    Ok(())
}

/// `ffmpeg.allow_dirs` from the module's config section.
pub fn allow_dirs(config: &serde_json::Value) -> Vec<PathBuf> {
    config
        .get("allow_dirs")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(|s| Path::new(s).to_path_buf()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(name: &str) -> bool {
        name == "cam"
    }

    fn check_default(source: &str, dirs: &[PathBuf]) -> Result<(), Refused> {
        let mut t = Templates::default();
        t.set("myinput", "-fflags nobuffer -i {input}");
        t.set("mytext", "x=2:y=2:fontsize=12");
        check(source, &t, dirs, &cam)
    }

    #[test]
    fn what_the_ui_sends_passes() {
        for ok in [
            "rtsp://user:pass@192.168.1.10/ch0#video=h264#audio=opus",
            "rtsp://192.168.1.10/ch0#input=rtsp/udp#video=copy",
            "rtsp://192.168.1.10/ch0#input=myinput",
            "http://cam/mjpeg#video=h264#width=-1#height=720#rotate=-90",
            "cam#video=h264#hardware",
            "cam#video=h264#drawtext=mytext",
            "cam#video=h264#drawtext=x=10:y=10:fontsize=24:text='a, b; c'",
            "cam#video=h264#drawtext",
            "cam#video=h264#bitrate=2M#raw_unknown_param",
            "virtual?video&size=720#video=h264",
            "virtual?video=smptebars&size=640x480&rate=30#video=h264",
            "virtual?video=testsrc2,format=yuv420p#video=h264",
            "virtual?audio#audio=opus",
            "virtual?video&audio=sine=frequency=440#video=h264#audio=aac",
            "tts?text=hello, it's 5:30 o'clock&voice=slt#audio=pcmu",
            // The text and the voice are escaped for both parsing levels: these
            // are words to speak and a (bad) voice name, not options or filters.
            "tts?text=a:textfile=/etc/passwd#audio=opus",
            "tts?text=a&voice=slt:textfile=/etc/passwd#audio=opus",
            "tts?text=a&voice=slt,amovie=/etc/passwd#audio=opus",
            "device?video=0&video_size=1280x720&input_format=mjpeg",
            "device?video=/dev/video2",
            "device?audio=hw:1,0&channels=1",
        ] {
            assert_eq!(check_default(ok, &[]), Ok(()), "{ok}");
        }
    }

    #[test]
    fn arguments_are_refused() {
        for bad in [
            "cam#raw=-y /tmp/x",
            "cam#raw=myinput",
            "cam#video=-f null /tmp/pwned",
            "cam#video=h264 -f null /tmp/pwned",
            "cam#audio=-c:a pcm_s16le -f wav /tmp/x",
            "cam#input=-i /etc/passwd",
            "rtsp://h/s#input=-f lavfi -i movie=/etc/passwd {input}",
            "rtsp://h/s#input={input} -y /tmp/x",
            "cam#video=h264#bitrate=-1",
            "cam#video=h264#query=-x",
            "cam#video=h264#width=-abc",
            "cam#video=bin",
            "cam#video=timeout",
            "cam#audio=output/wav",
            "cam#video=output",
            "cam#video=rtsp",
            "cam#input=h264",
            "cam#input=bin",
        ] {
            assert!(check_default(bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_reading_filters_are_refused() {
        for bad in [
            "cam#video=h264#drawtext=textfile=/etc/passwd",
            "cam#video=h264#drawtext=fontsize=9:textfile=/etc/passwd",
            "cam#video=h264#drawtext=fontfile=/etc/shadow:text=x",
            "cam#video=h264#drawtext=/etc/passwd",
            "cam#video=h264#drawtext=text=a,movie=/etc/passwd",
            "cam#video=h264#drawtext=text=a;movie=/tmp/x.mp4",
            "cam#video=h264#drawtext=text=a[x];[x]subtitles=/etc/passwd",
            "cam#video=h264#drawtext=text='a':text\\file=/etc/passwd",
            "virtual?video=movie=/etc/passwd#video=h264",
            "virtual?video=amovie=/tmp/a.wav#video=h264",
            "virtual?video=life=f=/etc/passwd#video=h264",
            "virtual?video=cellauto=filename=/etc/passwd#video=h264",
            "virtual?video&format=yuv420p,metadata=mode=print:file=/tmp/pwned#video=h264",
            "virtual?video&rate=25,sendcmd=f=/etc/passwd#video=h264",
            "virtual?video=testsrc,frei0r=filter_name=/tmp/evil.so#video=h264",
            "virtual?video=testsrc,ladspa=file=/tmp/evil.so#video=h264",
            "virtual?audio=flite=textfile=/etc/passwd#audio=opus",
            "virtual?audio=flite=/etc/passwd#audio=opus",
            "virtual?video=testsrc@x,movie@y=/etc/passwd#video=h264",
            "cam#video=h264#drawtext=/text=/etc/passwd",
            "virtual?video=color=/c=/etc/passwd#video=h264",
            // quotes inside labels hide a filter from a scan up to `]`
            "cam#video=h264#drawtext=text=hi[x'],null=a'],metadata=file=/tmp/x",
            "virtual?video=testsrc[x'],null=a'],metadata=file=/tmp/x#video=h264",
            // a quote left open by one #drawtext is closed by the next, after
            // the builder joined them with `,`
            "cam#video=h264#drawtext=text='a#drawtext=text=b'x,metadata=file=/tmp/x",
            "cam#video=h264#drawtext=text=a\\#drawtext=text=b",
        ] {
            assert!(check_default(bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn inputs_are_limited() {
        for bad in [
            "/etc/passwd",
            "/etc/passwd#video=h264",
            "file:/etc/passwd",
            "file:///etc/passwd",
            "concat:/etc/passwd|/etc/group",
            "subfile,,start,0,end,100,,:/etc/passwd",
            "pipe:0",
            "fd:3",
            "data:text/plain,hello",
            "relative.mp4",
            "gopher://h/",
            "hls+file:///tmp/x.m3u8",
            "device?video=/etc/passwd",
            "device?audio=file:'/tmp/x'",
            "device?audio=hw:0;x",
            "device?video=0&video_size=-i",
        ] {
            assert!(check_default(bad, &[]).is_err(), "{bad}");
        }
        let dir = std::env::temp_dir().join(format!("camrouter-ffu-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("media")).unwrap();
        std::fs::write(dir.join("media/a.mp4"), b"").unwrap();
        std::fs::write(dir.join("secret.mp4"), b"").unwrap();
        std::os::unix::fs::symlink(dir.join("secret.mp4"), dir.join("media/link.mp4")).unwrap();
        let allowed = [dir.join("media")];
        let p = |f: &str| dir.join(f).display().to_string();
        assert_eq!(check_default(&p("media/a.mp4"), &allowed), Ok(()));
        assert_eq!(
            check_default(&format!("file:{}#video=h264", p("media/a.mp4")), &allowed),
            Ok(())
        );
        for bad in [
            p("secret.mp4"),
            p("media/../secret.mp4"),
            p("media/link.mp4"),
            p("media/missing.mp4"),
        ] {
            assert!(check_default(&bad, &allowed).is_err(), "{bad}");
        }
        // Without allow_dirs no file passes.
        assert!(check_default(&p("media/a.mp4"), &[]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn av_get_token() {
        let mut s = "a\\,b 'c,d' ,rest";
        assert_eq!(token(&mut s, ","), "a,b c,d");
        assert_eq!(s, ",rest");
        let mut s = "  x\\ ";
        assert_eq!(token(&mut s, ","), "x ");
    }
}
