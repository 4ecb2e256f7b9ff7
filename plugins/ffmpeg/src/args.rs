//! From an `ffmpeg:` source to an ffmpeg argv, the way go2rtc builds its
//! command line.
//!
//! A source is `{input}#{param}#{param}…`. The input picks an input
//! template (`file`, `http`, `rtsp`, a camrouter stream, a virtual source…),
//! the params add codecs, filters and raw arguments, and the output is the
//! `output` template (`{output}` is an RTSP URL the caller fills in) or, for
//! a few single-codec cases, a pipe format on stdout. Everything comes from
//! [`Templates`], which the `ffmpeg:` config section can override.
//!
//! Templates are split into arguments like a shell would (see [`split`])
//! *before* `{input}` and `{timeout}` are substituted, so an input with
//! spaces stays one argument and needs no quoting.

use std::collections::BTreeMap;
use std::fmt;

use camrouter_plugin_api::url::query_pairs;

use crate::hardware::{HardwareEngine, UnknownEngine};

/// ffmpeg's `-v` level when `log.ffmpeg` is not set (go2rtc's default).
pub const DEFAULT_LOG_LEVEL: &str = "error";

/// go2rtc's default templates (`internal/ffmpeg/ffmpeg.go`).
const DEFAULTS: &[(&str, &str)] = &[
    ("bin", "ffmpeg"),
    ("global", "-hide_banner"),
    ("timeout", "5"),
    // inputs
    ("file", "-re -i {input}"),
    ("http", "-fflags nobuffer -flags low_delay -i {input}"),
    (
        "rtsp",
        "-fflags nobuffer -flags low_delay -timeout {timeout} -user_agent go2rtc/ffmpeg -rtsp_flags prefer_tcp -i {input}",
    ),
    (
        "rtsp/udp",
        "-fflags nobuffer -flags low_delay -timeout {timeout} -user_agent go2rtc/ffmpeg -i {input}",
    ),
    // outputs
    ("output", "-user_agent ffmpeg/go2rtc -rtsp_transport tcp -f rtsp {output}"),
    ("output/mjpeg", "-f mjpeg -"),
    ("output/raw", "-f yuv4mpegpipe -"),
    ("output/aac", "-f adts -"),
    ("output/wav", "-f wav -"),
    // video, software
    (
        "h264",
        "-c:v libx264 -g 50 -profile:v high -level:v 4.1 -preset:v superfast -tune:v zerolatency -pix_fmt:v yuv420p",
    ),
    (
        "h265",
        "-c:v libx265 -g 50 -profile:v main -x265-params level=5.1:high-tier=0 -preset:v superfast -tune:v zerolatency -pix_fmt:v yuv420p",
    ),
    // Standard Huffman tables and 4:2:0: what RTP/JPEG (RFC 2435) carries
    // as is. go2rtc's `-c:v mjpeg` gives ffmpeg's "optimal" tables, which
    // the RTSP server would have to re-encode (milliseconds per frame), and
    // 4:4:4 from RGB sources such as `virtual`, which RTP/JPEG has no type
    // for.
    ("mjpeg", "-c:v mjpeg -huffman:v default -pix_fmt:v yuvj420p"),
    // go2rtc writes `-c:v rawvideo`, which ffmpeg's yuv4mpegpipe muxer
    // refuses ("Codec not supported"): it takes only wrapped_avframe. Plain
    // `raw` is 4:2:0, the one layout the Y4M reader encodes to H.264.
    ("raw", "-c:v wrapped_avframe -pix_fmt:v yuv420p"),
    ("raw/gray8", "-c:v wrapped_avframe -pix_fmt:v gray8"),
    ("raw/yuv420p", "-c:v wrapped_avframe -pix_fmt:v yuv420p"),
    ("raw/yuv422p", "-c:v wrapped_avframe -pix_fmt:v yuv422p"),
    ("raw/yuv444p", "-c:v wrapped_avframe -pix_fmt:v yuv444p"),
    // audio
    ("opus", "-c:a libopus -application:a lowdelay -min_comp 0"),
    (
        "opus/16000",
        "-c:a libopus -application:a lowdelay -min_comp 0 -ar:a 16000 -ac:a 1",
    ),
    ("pcmu", "-c:a pcm_mulaw -ar:a 8000 -ac:a 1"),
    ("pcmu/8000", "-c:a pcm_mulaw -ar:a 8000 -ac:a 1"),
    ("pcmu/16000", "-c:a pcm_mulaw -ar:a 16000 -ac:a 1"),
    ("pcmu/48000", "-c:a pcm_mulaw -ar:a 48000 -ac:a 1"),
    ("pcma", "-c:a pcm_alaw -ar:a 8000 -ac:a 1"),
    ("pcma/8000", "-c:a pcm_alaw -ar:a 8000 -ac:a 1"),
    ("pcma/16000", "-c:a pcm_alaw -ar:a 16000 -ac:a 1"),
    ("pcma/48000", "-c:a pcm_alaw -ar:a 48000 -ac:a 1"),
    ("aac", "-c:a aac"),
    ("aac/16000", "-c:a aac -ar:a 16000 -ac:a 1"),
    ("mp3", "-c:a libmp3lame -q:a 8"),
    ("pcm", "-c:a pcm_s16be -ar:a 8000 -ac:a 1"),
    ("pcm/8000", "-c:a pcm_s16be -ar:a 8000 -ac:a 1"),
    ("pcm/16000", "-c:a pcm_s16be -ar:a 16000 -ac:a 1"),
    ("pcm/48000", "-c:a pcm_s16be -ar:a 48000 -ac:a 1"),
    ("pcml", "-c:a pcm_s16le -ar:a 8000 -ac:a 1"),
    ("pcml/8000", "-c:a pcm_s16le -ar:a 8000 -ac:a 1"),
    ("pcml/16000", "-c:a pcm_s16le -ar:a 16000 -ac:a 1"),
    ("pcml/44100", "-c:a pcm_s16le -ar:a 44100 -ac:a 1"),
    // hardware: Intel and AMD on Linux
    (
        "h264/vaapi",
        "-c:v h264_vaapi -g 50 -bf 0 -profile:v high -level:v 4.1 -sei:v 0",
    ),
    (
        "h265/vaapi",
        "-c:v hevc_vaapi -g 50 -bf 0 -profile:v main -level:v 5.1 -sei:v 0",
    ),
    ("mjpeg/vaapi", "-c:v mjpeg_vaapi"),
    // hardware: Raspberry Pi
    ("h264/v4l2m2m", "-c:v h264_v4l2m2m -g 50 -bf 0"),
    ("h265/v4l2m2m", "-c:v hevc_v4l2m2m -g 50 -bf 0"),
    // hardware: Rockchip
    (
        "h264/rkmpp",
        "-c:v h264_rkmpp -g 50 -bf 0 -profile:v high -level:v 4.1",
    ),
    (
        "h265/rkmpp",
        "-c:v hevc_rkmpp -g 50 -bf 0 -profile:v main -level:v 5.1",
    ),
    ("mjpeg/rkmpp", "-c:v mjpeg_rkmpp"),
    // hardware: NVIDIA
    (
        "h264/cuda",
        "-c:v h264_nvenc -g 50 -bf 0 -profile:v high -level:v auto -preset:v p2 -tune:v ll",
    ),
    (
        "h265/cuda",
        "-c:v hevc_nvenc -g 50 -bf 0 -profile:v main -level:v auto",
    ),
    // hardware: Intel on Windows
    (
        "h264/dxva2",
        "-c:v h264_qsv -g 50 -bf 0 -profile:v high -level:v 4.1 -async_depth:v 1",
    ),
    (
        "h265/dxva2",
        "-c:v hevc_qsv -g 50 -bf 0 -profile:v main -level:v 5.1 -async_depth:v 1",
    ),
    ("mjpeg/dxva2", "-c:v mjpeg_qsv"),
    // hardware: macOS
    (
        "h264/videotoolbox",
        "-c:v h264_videotoolbox -g 50 -bf 0 -profile:v high -level:v 4.1",
    ),
    (
        "h265/videotoolbox",
        "-c:v hevc_videotoolbox -g 50 -bf 0 -profile:v main -level:v 5.1",
    ),
];

/// The `#params` [`build`] understands; others are reported in
/// [`Command::ignored`].
const KNOWN_PARAMS: &[&str] = &[
    "video", "audio", "input", "timeout", "raw", "width", "height", "rotate", "drawtext",
    "bitrate", "async", "hardware", "query",
];

/// drawtext's text when the param sets none: local date and time.
const DRAWTEXT_CLOCK: &str = r"text='%{localtime\:%Y-%m-%d %X}'";

/// Why a source or the config cannot become a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Nothing before the first `#`.
    #[error("ffmpeg: empty source (expected ffmpeg:{{input}}#{{params}})")]
    EmptySource,
    /// `#video=`/`#audio=` names no template, is not `copy`, and is not raw
    /// arguments.
    #[error(
        "ffmpeg: unknown {kind} codec {value:?}: not a template (add one to the ffmpeg: config), \
         not `copy`, and not raw arguments starting with `-`"
    )]
    UnknownCodec {
        /// `video` or `audio`.
        kind: &'static str,
        /// The value as written.
        value: String,
    },
    /// `#input=` names no template and is not raw input arguments.
    #[error(
        "ffmpeg: unknown input template {0:?}: not a template name, and raw input arguments \
         must start with `-` or contain {{input}}"
    )]
    UnknownInput(String),
    /// A param with a value that cannot work.
    #[error("ffmpeg: #{param}={value:?}: {reason}")]
    BadParam {
        /// The param name, without `#`.
        param: String,
        /// The value as written.
        value: String,
        /// What is expected.
        reason: String,
    },
    /// An input (before `#`) that cannot work.
    #[error("ffmpeg: input {input:?}: {reason}")]
    BadInput {
        /// The input as written.
        input: String,
        /// What is expected.
        reason: String,
    },
    /// Something go2rtc has that camrouter does not (yet).
    #[error("ffmpeg: {0} is not supported")]
    Unsupported(String),
    /// `#hardware=<engine>` with an unknown engine.
    #[error("ffmpeg: #hardware: {0}")]
    UnknownEngine(#[from] UnknownEngine),
    /// A camrouter stream as input, but no internal RTSP server to read it from.
    #[error("ffmpeg: stream {0:?} as input needs the rtsp module (no internal RTSP server)")]
    NoInternalRtsp(String),
    /// A template the command needs was removed or is empty.
    #[error("ffmpeg: template {0:?} is missing")]
    MissingTemplate(String),
    /// A quote with no closing quote, in a template or raw arguments.
    #[error("ffmpeg: unterminated quote in {0:?}")]
    Quote(String),
    /// The `ffmpeg:` config section or the log level is invalid.
    #[error("ffmpeg: config: {0}")]
    Config(String),
}

fn bad_param(param: &str, value: &str, reason: impl Into<String>) -> Error {
    Error::BadParam {
        param: param.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn bad_input(input: &str, reason: impl Into<String>) -> Error {
    Error::BadInput {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// The named argument templates: go2rtc's defaults, overridden and extended
/// by the `ffmpeg:` config section. `bin` is the binary, `global` the first
/// arguments, `timeout` the RTSP input timeout in seconds; input templates
/// use `{input}` (and `{timeout}`), the output template `{output}`, codec
/// templates are plain arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    map: BTreeMap<String, String>,
}

impl Default for Templates {
    /// go2rtc's table as is, without the `-v <level>` that
    /// [`Templates::from_config`] appends to `global`.
    fn default() -> Self {
        Templates {
            map: DEFAULTS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

impl Templates {
    /// The defaults, then every key of the `ffmpeg:` config section (a map
    /// of strings; numbers and booleans are taken as text, `null` keeps the
    /// default), then `-v <log_level>` appended to `global` as go2rtc does.
    /// `log_level` is `log.ffmpeg` (or [`DEFAULT_LOG_LEVEL`]); camrouter's
    /// `warn` becomes ffmpeg's `warning`.
    pub fn from_config(section: &serde_json::Value, log_level: &str) -> Result<Self, Error> {
        use serde_json::Value;
        let mut t = Templates::default();
        match section {
            Value::Null => {}
            Value::Object(map) => {
                for (key, value) in map {
                    if key == "allow_dirs" {
                        // Not a template: the directories API sources may read.
                        continue;
                    }
                    let text = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        Value::Null => continue,
                        _ => {
                            return Err(Error::Config(format!(
                                "ffmpeg.{key}: expected a string of arguments"
                            )))
                        }
                    };
                    t.set(key.as_str(), text);
                }
            }
            _ => {
                return Err(Error::Config(
                    "the ffmpeg section must be a map of templates".into(),
                ))
            }
        }
        t.set_log_level(log_level)?;
        Ok(t)
    }

    /// Appends `-v <level>` to `global`.
    pub fn set_log_level(&mut self, level: &str) -> Result<(), Error> {
        let level = ffmpeg_log_level(level)?;
        let global = self.map.entry("global".into()).or_default();
        if !global.is_empty() {
            global.push(' ');
        }
        global.push_str("-v ");
        global.push_str(level);
        Ok(())
    }

    /// The template `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// Adds or replaces the template `name`.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.map.insert(name.into(), value.into());
    }

    /// The ffmpeg binary (`bin`, default `ffmpeg`).
    pub fn bin(&self) -> &str {
        self.nonempty("bin").unwrap_or("ffmpeg")
    }

    /// Every template, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|s| !s.is_empty())
    }

    /// go2rtc's `configTemplate`: the template `name`, or `name` itself.
    fn or_raw<'a>(&'a self, name: &'a str) -> &'a str {
        self.nonempty(name).unwrap_or(name)
    }
}

/// camrouter (zerolog-style) level → ffmpeg `-v` level.
fn ffmpeg_log_level(level: &str) -> Result<&'static str, Error> {
    Ok(match level {
        "trace" => "trace",
        "debug" => "debug",
        "verbose" => "verbose",
        "info" => "info",
        "warn" | "warning" => "warning",
        "error" => "error",
        "fatal" => "fatal",
        "panic" => "panic",
        "disabled" | "off" | "quiet" => "quiet",
        _ => {
            return Err(Error::Config(format!(
                "log.ffmpeg: unknown level {level:?} (trace, debug, info, warn, error, fatal, panic, disabled)"
            )))
        }
    })
}

/// What [`build`] needs besides the source.
pub struct Env<'a> {
    /// Templates (defaults + `ffmpeg:` config).
    pub templates: &'a Templates,
    /// Whether a camrouter stream has this name; such an input is read back
    /// from the internal RTSP server.
    pub stream_exists: &'a dyn Fn(&str) -> bool,
    /// Base URL of the internal RTSP server (`rtsp://127.0.0.1:8554`), when
    /// the rtsp module runs.
    pub internal_rtsp: Option<String>,
    /// The engine [`crate::hardware::detect`] found, used by `#hardware`
    /// with no value. `None`: software.
    pub hardware: Option<HardwareEngine>,
    /// libavformat `(major, minor)` of the binary (see
    /// [`FfmpegVersion`]); from 60.16 (ffmpeg 6.1) a `-re` input gets
    /// `-readrate_initial_burst 0.001`, as in go2rtc. `None`: unknown.
    pub libavformat: Option<(u32, u32)>,
}

/// Where ffmpeg writes its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// RTSP publish to `{output}`, which the caller replaces with a URL.
    Rtsp,
    /// A container on stdout (`-`).
    Pipe(PipeFormat),
}

/// Pipe formats go2rtc uses for single-codec outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeFormat {
    /// `-f mjpeg -`: `#video=mjpeg…` only, or an MJPEG device copied.
    Mjpeg,
    /// `-f yuv4mpegpipe -`: `#video=raw…` only.
    Yuv4mpeg,
    /// `-f adts -`: `#audio=aac…` only.
    Adts,
    /// `-f wav -`: `#audio=pcma…`, `pcmu…` or `pcml…` only.
    Wav,
}

/// An ffmpeg command line built from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The argv; `args[0]` is the binary. With [`OutputKind::Rtsp`] one
    /// argument is `{output}`, for the caller to replace.
    pub args: Vec<String>,
    /// Where the output goes.
    pub output: OutputKind,
    /// The `#video=` values, in order (`h264`, `copy`, …).
    pub video: Vec<String>,
    /// The `#audio=` values, in order.
    pub audio: Vec<String>,
    /// The hardware engine applied to at least one codec.
    pub hardware: Option<HardwareEngine>,
    /// `#params` this module does not know (left for others, or typos).
    pub ignored: Vec<String>,
}

impl fmt::Display for Command {
    /// The command line, quoted so that [`split`] gives back the argv.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join(&self.args))
    }
}

/// `ffmpeg -version` facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FfmpegVersion {
    /// The version word after `ffmpeg version` (`6.1.1-3ubuntu5`, `n7.0-30-g…`).
    pub ffmpeg: String,
    /// libavformat `(major, minor)`, more reliable than the ffmpeg version
    /// for nightly builds.
    pub libavformat: Option<(u32, u32)>,
}

impl FfmpegVersion {
    /// Parses the output of `ffmpeg -version`; `None` if it is not ffmpeg's.
    pub fn parse(out: &str) -> Option<FfmpegVersion> {
        let rest = &out[out.find("ffmpeg version ")? + "ffmpeg version ".len()..];
        let ffmpeg = rest.split_whitespace().next()?.to_string();
        let libavformat = out
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("libavformat"))
            .and_then(|v| {
                let mut parts = v.split('/').next()?.split('.');
                let major = parts.next()?.trim().parse().ok()?;
                let minor = parts.next()?.trim().parse().ok()?;
                Some((major, minor))
            });
        Some(FfmpegVersion {
            ffmpeg,
            libavformat,
        })
    }

    /// go2rtc refuses ffmpeg older than 5.0 (libavformat 59.16).
    pub fn supported(&self) -> bool {
        self.libavformat.is_none_or(|v| v >= (59, 16))
    }
}

/// The `#params` of a source, in order.
struct Params<'s>(Vec<(&'s str, &'s str)>);

impl<'s> Params<'s> {
    /// `key=value#key#…` (the part after the first `#`), as go2rtc's
    /// `ParseQuery`: a key without `=` has an empty value.
    fn parse(s: &'s str) -> Self {
        Params(
            s.split('#')
                .filter(|p| !p.is_empty())
                .map(|p| match p.find('=') {
                    Some(i) if i > 0 => (&p[..i], &p[i + 1..]),
                    _ => (p, ""),
                })
                .collect(),
        )
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'s str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    fn first(&self, key: &str) -> Option<&'s str> {
        self.all(key).next()
    }

    fn has(&self, key: &str) -> bool {
        self.first(key).is_some()
    }
}

/// The parts of the command being assembled.
#[derive(Default)]
struct Parts {
    input: Vec<String>,
    codecs: Vec<Vec<String>>,
    filters: Vec<String>,
}

impl Parts {
    fn prefix_input(&mut self, args: &[&str]) {
        self.input.splice(0..0, args.iter().map(|s| s.to_string()));
    }

    fn has_filter(&self, prefixes: &[&str]) -> bool {
        self.filters
            .iter()
            .any(|f| prefixes.iter().any(|p| f.starts_with(p)))
    }

    /// Rewrites each filter that starts with `prefix` with `f(rest)`.
    fn map_filters(&mut self, prefix: &str, f: impl Fn(&str) -> String) {
        for filter in &mut self.filters {
            if let Some(rest) = filter.strip_prefix(prefix) {
                *filter = f(rest);
            }
        }
    }
}

/// Builds the command for `source`, the part of the URL after `ffmpeg:`.
pub fn build(source: &str, env: &Env) -> Result<Command, Error> {
    let t = env.templates;
    let (input, query) = source.split_once('#').unwrap_or((source, ""));
    if input.is_empty() {
        return Err(Error::EmptySource);
    }
    let params = Params::parse(query);
    let video: Vec<String> = params.all("video").map(String::from).collect();
    let audio: Vec<String> = params.all("audio").map(String::from).collect();
    for (kind, values) in [("video", &video), ("audio", &audio)] {
        for v in values {
            if v.is_empty() {
                return Err(bad_param(kind, v, "needs a codec (h264, copy, …)"));
            }
            if v == "auto" {
                return Err(Error::Unsupported(format!(
                    "#{kind}=auto (codec chosen by the consumer)"
                )));
            }
        }
    }
    let mut ignored: Vec<String> = Vec::new();
    for (k, _) in &params.0 {
        if !KNOWN_PARAMS.contains(k) && !ignored.iter().any(|i| i == k) {
            ignored.push(k.to_string());
        }
    }

    let mut parts = Parts {
        input: input_args(input, source, &params, video.len(), audio.len(), env)?,
        ..Parts::default()
    };
    if params.has("async") {
        parts.prefix_input(&["-use_wallclock_as_timestamps", "1", "-async", "1"]);
    }

    // 1. raw arguments (a template name or the arguments themselves)
    for raw in params.all("raw") {
        let args = split(t.or_raw(raw))?;
        if !args.is_empty() {
            parts.codecs.push(args);
        }
    }

    // 2. video filters
    let width = params.first("width");
    let height = params.first("height");
    if width.is_some() || height.is_some() {
        let w = dimension("width", width)?;
        let h = dimension("height", height)?;
        parts.filters.push(format!("scale={w}:{h}"));
    }
    if let Some(rotate) = params.first("rotate") {
        let filter = match rotate {
            "90" => "transpose=1",
            "180" => "transpose=1,transpose=1",
            "270" | "-90" => "transpose=2",
            _ => return Err(bad_param("rotate", rotate, "expected 90, 180, 270 or -90")),
        };
        parts.filters.push(filter.into());
    }
    for drawtext in params.all("drawtext") {
        let mut opts = t.or_raw(drawtext).to_string();
        if !opts.contains("text=") {
            if !opts.is_empty() {
                opts.push(':');
            }
            opts.push_str(DRAWTEXT_CLOCK);
        }
        parts.filters.push(format!("drawtext={opts}"));
    }

    // 3. codecs
    for v in &video {
        parts.codecs.push(codec_args(t, "video", v)?);
    }
    if let Some(b) = params.first("bitrate") {
        if b.is_empty() || b.contains(char::is_whitespace) {
            return Err(bad_param(
                "bitrate",
                b,
                "expected a bitrate like 2M or 800k",
            ));
        }
        parts.codecs.push(
            ["-b:v", b, "-maxrate", b, "-bufsize", b]
                .map(String::from)
                .into(),
        );
    }
    for a in &audio {
        parts.codecs.push(codec_args(t, "audio", a)?);
    }

    // 4. hardware
    let mut hardware = None;
    if let Some(hw) = params.first("hardware") {
        let (engine, auto) = match hw {
            "" => (env.hardware, true),
            "software" => (None, false),
            name => (Some(name.parse::<HardwareEngine>()?), false),
        };
        if let Some(engine) = engine {
            if apply_hardware(&mut parts, engine, auto, t)? {
                hardware = Some(engine);
            }
        }
    }

    // 5. what is not listed is dropped; nothing listed copies everything
    match (video.len(), audio.len()) {
        (0, 0) => parts.codecs.push(vec!["-c".into(), "copy".into()]),
        (0, _) => parts.codecs.push(vec!["-vn".into()]),
        (_, 0) => parts.codecs.push(vec!["-an".into()]),
        _ => {}
    }

    // 6. output: RTSP, or a pipe for some single-codec cases
    let before_slash = |s: &str| s.split('/').next().unwrap_or("").to_string();
    let (out_name, output) = match (video.len(), audio.len()) {
        (0, 0) if parts.input.iter().any(|a| a == "mjpeg") => {
            ("output/mjpeg", OutputKind::Pipe(PipeFormat::Mjpeg))
        }
        (1, 0) => match before_slash(&video[0]).as_str() {
            "mjpeg" => ("output/mjpeg", OutputKind::Pipe(PipeFormat::Mjpeg)),
            "raw" => ("output/raw", OutputKind::Pipe(PipeFormat::Yuv4mpeg)),
            _ => ("output", OutputKind::Rtsp),
        },
        (0, 1) => match before_slash(&audio[0]).as_str() {
            "aac" => ("output/aac", OutputKind::Pipe(PipeFormat::Adts)),
            "pcma" | "pcmu" | "pcml" => ("output/wav", OutputKind::Pipe(PipeFormat::Wav)),
            _ => ("output", OutputKind::Rtsp),
        },
        _ => ("output", OutputKind::Rtsp),
    };

    // 7. assemble
    let mut args = vec![t.bin().to_string()];
    args.extend(split(t.get("global").unwrap_or(""))?);
    if parts.input.first().map(String::as_str) == Some("-re")
        && env.libavformat.is_some_and(|v| v >= (60, 16))
    {
        // ffmpeg 6.1+ reads the first 0.5 s of a `-re` input at once
        args.extend(["-readrate_initial_burst", "0.001"].map(String::from));
    }
    args.append(&mut parts.input);
    let multi = video.len() > 1 || audio.len() > 1;
    let (mut nv, mut na) = (0, 0);
    for codec in parts.codecs {
        let stream = match codec.first().map(String::as_str) {
            Some("-c:v") if multi => 'v',
            Some("-c:a") if multi => 'a',
            _ => {
                args.extend(codec);
                continue;
            }
        };
        let n = if stream == 'v' { &mut nv } else { &mut na };
        // one output stream per codec, each from the input's first stream
        args.push("-map".into());
        args.push(format!("0:{stream}:0?"));
        let tag = format!(":{stream}");
        args.extend(codec.into_iter().map(|a| {
            if a.starts_with('-') && a.ends_with(&tag) {
                format!("{a}:{n}")
            } else {
                a
            }
        }));
        *n += 1;
    }
    if !parts.filters.is_empty() {
        args.push("-vf".into());
        args.push(parts.filters.join(","));
    }
    let out = t
        .nonempty(out_name)
        .ok_or_else(|| Error::MissingTemplate(out_name.into()))?;
    args.extend(split(out)?);

    Ok(Command {
        args,
        output,
        video,
        audio,
        hardware,
        ignored,
    })
}

/// `#width`/`#height` for the scale filter: pixels, or -1/-2 to keep the
/// aspect ratio; an absent one is -1.
fn dimension(param: &str, value: Option<&str>) -> Result<String, Error> {
    let Some(v) = value else {
        return Ok("-1".into());
    };
    match v.parse::<i32>() {
        Ok(n) if n > 0 || n == -1 || n == -2 => Ok(v.into()),
        _ => Err(bad_param(
            param,
            v,
            "expected pixels, or -1 to keep the aspect ratio",
        )),
    }
}

/// The arguments for one `#video=`/`#audio=` value.
fn codec_args(t: &Templates, kind: &'static str, value: &str) -> Result<Vec<String>, Error> {
    if value == "copy" {
        let opt = if kind == "video" { "-c:v" } else { "-c:a" };
        return Ok(vec![opt.into(), "copy".into()]);
    }
    if let Some(tpl) = t.nonempty(value) {
        return split(tpl);
    }
    if value.starts_with('-') {
        return split(value);
    }
    Err(Error::UnknownCodec {
        kind,
        value: value.into(),
    })
}

/// The input arguments for the part of the source before `#`.
fn input_args(
    input: &str,
    source: &str,
    params: &Params,
    nv: usize,
    na: usize,
    env: &Env,
) -> Result<Vec<String>, Error> {
    let t = env.templates;
    if let Some(i) = input.find("://").filter(|&i| i > 0) {
        return match &input[..i] {
            "http" | "https" | "rtmp" => input_template(t, "http", input, params),
            "rtsp" | "rtsps" => {
                // skip the tracks that are not wanted
                let types = match (nv, na) {
                    (0, 0) => "video+audio",
                    (_, 0) => "video",
                    (0, _) => "audio",
                    _ => "video+audio",
                };
                let mut args = vec!["-allowed_media_types".to_string(), types.into()];
                args.extend(input_template(t, "rtsp", input, params)?);
                Ok(args)
            }
            _ if params.has("input") => input_template(t, "", input, params),
            _ => Ok(vec!["-i".into(), input.into()]),
        };
    }
    if (env.stream_exists)(input) {
        let base = env
            .internal_rtsp
            .as_deref()
            .ok_or_else(|| Error::NoInternalRtsp(input.into()))?;
        let mut url = format!("{}/{input}", base.trim_end_matches('/'));
        url.push_str(match (nv, na) {
            (1.., 0) => "?video",
            (0, 1..) => "?audio",
            _ => "?video&audio",
        });
        url.push_str("&source=ffmpeg:");
        url.push_str(&query_escape(source));
        for q in params.all("query") {
            url.push('&');
            url.push_str(q);
        }
        return input_template(t, "rtsp", &url, params);
    }
    if let Some((kind, query)) = input.split_once('?') {
        match kind {
            "virtual" => return virtual_input(input, query),
            "tts" => return tts_input(input, query),
            "device" => return device_input(input, query),
            _ => {}
        }
    }
    input_template(t, "file", input, params)
}

/// go2rtc's `inputTemplate`: the `#input=` template (a name, or raw
/// arguments) or the default one, with `{input}` and `{timeout}` (in
/// microseconds) substituted after splitting.
fn input_template(
    t: &Templates,
    default: &str,
    input: &str,
    params: &Params,
) -> Result<Vec<String>, Error> {
    let tpl = match params.first("input") {
        Some(name) => match t.nonempty(name) {
            Some(tpl) => tpl,
            None if name.starts_with('-') || name.contains("{input}") => name,
            None => return Err(Error::UnknownInput(name.into())),
        },
        None => t
            .nonempty(default)
            .ok_or_else(|| Error::MissingTemplate(default.into()))?,
    };
    let timeout = if tpl.contains("{timeout}") {
        let (param, secs) = match params.first("timeout") {
            Some(v) => ("timeout", v),
            None => ("ffmpeg.timeout", t.get("timeout").unwrap_or("5")),
        };
        let secs: u64 = secs
            .parse()
            .map_err(|_| bad_param(param, secs, "expected whole seconds"))?;
        secs.saturating_mul(1_000_000).to_string()
    } else {
        String::new()
    };
    let mut args = split(tpl)?;
    for a in &mut args {
        if a.contains("{input}") {
            *a = a.replace("{input}", input);
        }
        if a.contains("{timeout}") {
            *a = a.replace("{timeout}", &timeout);
        }
    }
    Ok(args)
}

/// `virtual?video[=SOURCE]&size=720&rate=30…`: an lavfi test source
/// (go2rtc's `virtual`); `audio[=SOURCE]` (camrouter) adds an lavfi audio
/// source, `sine=frequency=1000` by default.
pub(crate) fn virtual_input(input: &str, query: &str) -> Result<Vec<String>, Error> {
    let q = query_pairs(query);
    let values = |key: &str| -> Vec<&str> {
        q.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let (videos, audios) = (values("video"), values("audio"));
    if videos.is_empty() && audios.is_empty() {
        return Err(bad_input(input, "virtual needs video and/or audio"));
    }
    let mut args = vec!["-re".to_string()];
    for video in videos {
        let (mut filter, mut sep) = if video.is_empty() {
            ("testsrc=decimals=2".to_string(), ':')
        } else {
            (video.to_string(), '=')
        };
        let mut opts: Vec<(&str, String)> = Vec::new();
        for (k, v) in &q {
            let k = k.as_str();
            let known = matches!(
                k,
                "color" | "rate" | "duration" | "sar" | "decimals" | "size"
            );
            if known && !opts.iter().any(|(o, _)| *o == k) {
                let v = if k == "size" {
                    video_size(v)
                } else {
                    v.clone()
                };
                opts.push((k, v));
            }
        }
        if !opts.iter().any(|(k, _)| *k == "size") {
            opts.push(("size", "1920x1080".into()));
        }
        for (k, v) in opts {
            filter.push(sep);
            filter.push_str(&format!("{k}={v}"));
            sep = ':';
        }
        if let Some(format) = q.iter().find(|(k, _)| k == "format") {
            if !format.1.is_empty() {
                filter.push_str(&format!(",format={}", format.1));
            }
        }
        args.extend(["-f", "lavfi", "-i"].map(String::from));
        args.push(filter);
    }
    for audio in audios {
        let src = if audio.is_empty() {
            "sine=frequency=1000"
        } else {
            audio
        };
        args.extend(["-f", "lavfi", "-i", src].map(String::from));
    }
    Ok(args)
}

/// go2rtc's size shortcuts for `virtual`.
fn video_size(v: &str) -> String {
    match v {
        "720" => "1280x720",
        "1080" => "1920x1080",
        "2K" => "2560x1440",
        "4K" => "3840x2160",
        "8K" => "7680x4320",
        other => other,
    }
    .to_string()
}

/// Backslash-escapes `special` for one level of lavfi parsing. A filter's
/// options are unescaped twice, once by the graph parser (which splits at
/// `[],;`) and once by the option parser (which splits at `:`), so a text
/// is escaped for the option level, then `key=value` pairs for the graph
/// level: `it's 5:30` stays one `text` value, and cannot add options.
fn lavfi_escape(s: &str, special: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if special.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `tts?text=hello&voice=slt`: speech from ffmpeg's flite filter.
pub(crate) fn tts_input(input: &str, query: &str) -> Result<Vec<String>, Error> {
    let q = query_pairs(query);
    let get = |key: &str| q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let text = get("text")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad_input(input, "tts needs text="))?;
    let mut opts = format!("text={}", lavfi_escape(text, "\\':"));
    if let Some(voice) = get("voice").filter(|v| !v.is_empty()) {
        opts.push_str(":voice=");
        opts.push_str(&lavfi_escape(voice, "\\':"));
    }
    let filter = format!("flite={}", lavfi_escape(&opts, "\\'[],;"));
    Ok(["-re", "-f", "lavfi", "-i", &filter]
        .map(String::from)
        .into())
}

/// `device?video=0&video_size=1280x720&input_format=mjpeg` (V4L2) or
/// `device?audio=hw:1&channels=1` (ALSA). Linux only; a number `N` as the
/// video device means `/dev/videoN`.
fn device_input(input: &str, query: &str) -> Result<Vec<String>, Error> {
    if cfg!(not(target_os = "linux")) {
        return Err(Error::Unsupported(
            "device (only Linux V4L2/ALSA devices)".into(),
        ));
    }
    let q = query_pairs(query);
    let get = |key: &str| {
        q.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let mut seen: Vec<&str> = Vec::new();
    let mut opts = |names: &[&str], args: &mut Vec<String>| {
        for (k, v) in &q {
            let k = k.as_str();
            if !names.contains(&k) || seen.contains(&k) {
                continue;
            }
            seen.push(k);
            let opt = if k == "resolution" { "video_size" } else { k };
            args.push(format!("-{opt}"));
            args.push(v.clone());
        }
    };
    if let Some(video) = get("video") {
        let mut args = vec!["-f".to_string(), "v4l2".into()];
        let names = [
            "resolution",
            "video_size",
            "pixel_format",
            "input_format",
            "framerate",
            "use_libv4l2",
        ];
        opts(&names, &mut args);
        let path = if video.bytes().all(|b| b.is_ascii_digit()) {
            format!("/dev/video{video}")
        } else {
            video.to_string()
        };
        args.extend(["-i".to_string(), path]);
        return Ok(args);
    }
    if let Some(audio) = get("audio") {
        let mut args = vec!["-f".to_string(), "alsa".into()];
        opts(&["channels", "sample_rate"], &mut args);
        args.extend(["-i".to_string(), audio.to_string()]);
        return Ok(args);
    }
    Err(bad_input(input, "device needs video= or audio="))
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// go2rtc's `MakeHardware`: swaps software video encoders (`libx264`,
/// `libx265`, `mjpeg`) for the `<codec>/<engine>` template and adds the
/// engine's decode flags and filters. A codec with no such template stays
/// software. With `auto` (`#hardware` with no value) H.265 stays software,
/// as in go2rtc. Returns whether anything changed.
fn apply_hardware(
    parts: &mut Parts,
    engine: HardwareEngine,
    auto: bool,
    t: &Templates,
) -> Result<bool, Error> {
    let mut names = Vec::new();
    for codec in &mut parts.codecs {
        if codec.first().map(String::as_str) != Some("-c:v") {
            continue;
        }
        let name = match codec.get(1).map(String::as_str) {
            Some("libx264") => "h264",
            Some("libx265") => "h265",
            Some("mjpeg") => "mjpeg",
            _ => continue,
        };
        if auto && name == "h265" {
            continue;
        }
        let Some(tpl) = t.nonempty(&format!("{name}/{engine}")) else {
            continue;
        };
        *codec = split(tpl)?;
        names.push(name);
    }
    if names.is_empty() {
        return Ok(false);
    }

    let drawtext = parts.has_filter(&["drawtext="]);
    match engine {
        HardwareEngine::Vaapi if !drawtext => {
            parts.prefix_input(&[
                "-hwaccel",
                "vaapi",
                "-hwaccel_output_format",
                "vaapi",
                "-hwaccel_flags",
                "allow_profile_mismatch",
            ]);
            if names.contains(&"h264") {
                // H.264 wants limited-range BT.709 NV12, whatever came in
                const FIX: &str = "out_color_matrix=bt709:out_range=tv:format=nv12";
                match parts.filters.iter_mut().find(|f| f.starts_with("scale=")) {
                    Some(scale) => {
                        scale.push(':');
                        scale.push_str(FIX);
                    }
                    None => parts.filters.push(format!("scale={FIX}")),
                }
            }
            parts.map_filters("scale=", |rest| format!("scale_vaapi={rest}"));
            parts.map_filters("transpose=", |rest| match rest {
                "1,transpose=1" => "transpose_vaapi=4".into(),
                _ => format!("transpose_vaapi={rest}"),
            });
            // frames that are not on the GPU yet get uploaded first
            parts.filters.insert(0, "format=vaapi|nv12,hwupload".into());
        }
        HardwareEngine::Vaapi => {
            // drawtext works on system memory: decode there, upload last
            parts.prefix_input(&[
                "-hwaccel",
                "vaapi",
                "-hwaccel_output_format",
                "nv12",
                "-hwaccel_flags",
                "allow_profile_mismatch",
            ]);
            parts.filters.push("hwupload".into());
        }
        HardwareEngine::Cuda => {
            // no hardware transpose on CUDA
            if !parts.has_filter(&["drawtext=", "transpose="]) {
                parts.prefix_input(&["-hwaccel", "cuda", "-hwaccel_output_format", "cuda"]);
                parts.map_filters("scale=", |rest| format!("scale_cuda={rest}"));
            } else {
                parts.prefix_input(&["-hwaccel", "cuda", "-hwaccel_output_format", "nv12"]);
                parts.filters.push("hwupload".into());
            }
        }
        HardwareEngine::Dxva2 => {
            parts.prefix_input(&["-hwaccel", "dxva2", "-hwaccel_output_format", "dxva2_vld"]);
            parts.map_filters("scale=", |rest| format!("scale_qsv={rest}"));
            parts
                .filters
                .insert(0, "hwmap=derive_device=qsv,format=qsv".into());
        }
        HardwareEngine::VideoToolbox => {
            parts.prefix_input(&[
                "-hwaccel",
                "videotoolbox",
                "-hwaccel_output_format",
                "videotoolbox_vld",
            ]);
        }
        HardwareEngine::V4l2m2m => {}
        HardwareEngine::Rkmpp if !drawtext => {
            parts.prefix_input(&[
                "-hwaccel",
                "rkmpp",
                "-hwaccel_output_format",
                "drm_prime",
                "-afbc",
                "rga",
            ]);
            parts.map_filters("scale=", |rest| {
                format!("scale_rkrga={rest}:force_original_aspect_ratio=0")
            });
            parts.map_filters("transpose=", |rest| match rest {
                "1,transpose=1" => "vpp_rkrga=transpose=4".into(),
                _ => format!("vpp_rkrga=transpose={rest}"),
            });
            if !parts.filters.is_empty() {
                parts
                    .filters
                    .insert(0, "format=drm_prime|nv12,hwupload".into());
            }
        }
        HardwareEngine::Rkmpp => {
            parts.prefix_input(&[
                "-hwaccel",
                "rkmpp",
                "-hwaccel_output_format",
                "nv12",
                "-afbc",
                "rga",
            ]);
            parts.filters.push("hwupload".into());
        }
    }
    Ok(true)
}

/// Splits a template or raw arguments into argv, like a shell without
/// expansions: whitespace separates; `"…"` and `'…'` group (and may start
/// or end inside a word, `a"b c"` → `ab c`; `""` is an empty argument);
/// inside `"…"`, `\"` and `\\` are escapes and any other backslash is kept
/// (so ffmpeg's own `\:` survives); inside `'…'` everything is literal;
/// outside quotes a backslash is an ordinary character.
pub fn split(s: &str) -> Result<Vec<String>, Error> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(Error::Quote(s.into())),
                        Some('"') => break,
                        Some('\\') if matches!(chars.peek(), Some('"' | '\\')) => {
                            cur.extend(chars.next());
                        }
                        Some(c) => cur.push(c),
                    }
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(Error::Quote(s.into())),
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                    }
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    args.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        args.push(cur);
    }
    Ok(args)
}

/// Joins argv into one line that [`split`] turns back into the same argv;
/// arguments with whitespace or quotes are double-quoted.
pub fn join(args: &[String]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let plain =
            !a.is_empty() && !a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'');
        if plain {
            out.push_str(a);
            continue;
        }
        out.push('"');
        let mut chars = a.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' => out.push_str("\\\""),
                // a backslash is only an escape before `"`, `\` or the end
                '\\' if matches!(chars.peek(), None | Some('"' | '\\')) => out.push_str("\\\\"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTSP: &str = "rtsp://127.0.0.1:8554";

    fn no_streams(_: &str) -> bool {
        false
    }

    fn env(t: &Templates) -> Env<'_> {
        Env {
            templates: t,
            stream_exists: &no_streams,
            internal_rtsp: Some(RTSP.into()),
            hardware: None,
            libavformat: None,
        }
    }

    fn build_default(source: &str) -> Result<Command, Error> {
        build(source, &env(&Templates::default()))
    }

    /// `source` gives the argv of go2rtc's expected command line.
    fn check(source: &str, expect: &str) {
        let cmd = build_default(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        assert_eq!(cmd.args, split(expect).unwrap(), "{source}");
    }

    fn err(source: &str) -> Error {
        build_default(source).expect_err(source)
    }

    // go2rtc's software templates, spelled out once
    const H264: &str = "-c:v libx264 -g 50 -profile:v high -level:v 4.1 -preset:v superfast -tune:v zerolatency -pix_fmt:v yuv420p";
    const H265: &str = "-c:v libx265 -g 50 -profile:v main -x265-params level=5.1:high-tier=0 -preset:v superfast -tune:v zerolatency -pix_fmt:v yuv420p";
    const OUT: &str = "-user_agent ffmpeg/go2rtc -rtsp_transport tcp -f rtsp {output}";
    const RTSP_IN: &str = "-fflags nobuffer -flags low_delay -timeout 5000000 -user_agent go2rtc/ffmpeg -rtsp_flags prefer_tcp -i rtsp://example.com";
    const HTTP_IN: &str = "-fflags nobuffer -flags low_delay -i";

    // ---- ported from go2rtc's internal/ffmpeg/ffmpeg_test.go ----

    #[test]
    fn go2rtc_file() {
        check(
            "/media/bbb.mp4",
            &format!("ffmpeg -hide_banner -re -i /media/bbb.mp4 -c copy {OUT}"),
        );
        check(
            "/media/bbb.mp4#video=h264",
            &format!("ffmpeg -hide_banner -re -i /media/bbb.mp4 {H264} -an {OUT}"),
        );
        check(
            "/media/bbb.mp4#video=copy#audio=pcmu",
            &format!("ffmpeg -hide_banner -re -i /media/bbb.mp4 -c:v copy -c:a pcm_mulaw -ar:a 8000 -ac:a 1 {OUT}"),
        );
        // go2rtc's test still has the old H.265 template; this is the current one
        check(
            "/media/bbb.mp4#video=h265#rotate=-90",
            &format!(
                r#"ffmpeg -hide_banner -re -i /media/bbb.mp4 {H265} -an -vf "transpose=2" {OUT}"#
            ),
        );
        check(
            "/media/bbb.mp4#video=mjpeg",
            "ffmpeg -hide_banner -re -i /media/bbb.mp4 -c:v mjpeg -huffman:v default -pix_fmt:v yuvj420p -an -f mjpeg -",
        );
        // https://github.com/AlexxIT/go2rtc/issues/509
        check(
            "ffmpeg:test.mp4#raw=-ss 00:00:20",
            &format!("ffmpeg -hide_banner -re -i ffmpeg:test.mp4 -ss 00:00:20 -c copy {OUT}"),
        );
        let c = build_default("/media/bbb.mp4#video=mjpeg").unwrap();
        assert_eq!(c.output, OutputKind::Pipe(PipeFormat::Mjpeg));
        assert_eq!(
            build_default("/media/bbb.mp4").unwrap().output,
            OutputKind::Rtsp
        );
    }

    #[test]
    fn go2rtc_ip_cam() {
        check(
            "http://example.com",
            &format!("ffmpeg -hide_banner {HTTP_IN} http://example.com -c copy {OUT}"),
        );
        check(
            "http://example.com#video=h264",
            &format!("ffmpeg -hide_banner {HTTP_IN} http://example.com {H264} -an {OUT}"),
        );
        check(
            "https://example.com#video=copy",
            &format!("ffmpeg -hide_banner {HTTP_IN} https://example.com -c:v copy -an {OUT}"),
        );
        check(
            "rtsp://example.com",
            &format!(
                "ffmpeg -hide_banner -allowed_media_types video+audio {RTSP_IN} -c copy {OUT}"
            ),
        );
        check(
            "rtsp://example.com#video=h265#width=1280#height=720",
            &format!(
                r#"ffmpeg -hide_banner -allowed_media_types video {RTSP_IN} {H265} -an -vf "scale=1280:720" {OUT}"#
            ),
        );
        check(
            "rtsp://example.com#input=rtsp/udp",
            &format!("ffmpeg -hide_banner -allowed_media_types video+audio -fflags nobuffer -flags low_delay -timeout 5000000 -user_agent go2rtc/ffmpeg -i rtsp://example.com -c copy {OUT}"),
        );
        check(
            "rtmp://example.com#input=rtsp/udp",
            &format!("ffmpeg -hide_banner -fflags nobuffer -flags low_delay -timeout 5000000 -user_agent go2rtc/ffmpeg -i rtmp://example.com -c copy {OUT}"),
        );
        check(
            "rtsp://example.com#timeout=10",
            &format!("ffmpeg -hide_banner -allowed_media_types video+audio -fflags nobuffer -flags low_delay -timeout 10000000 -user_agent go2rtc/ffmpeg -rtsp_flags prefer_tcp -i rtsp://example.com -c copy {OUT}"),
        );
    }

    #[test]
    fn go2rtc_audio() {
        let pre = format!("ffmpeg -hide_banner -allowed_media_types audio {RTSP_IN}");
        let cases = [
            ("aac", "-c:a aac -vn -f adts -"),
            ("aac/16000", "-c:a aac -ar:a 16000 -ac:a 1 -vn -f adts -"),
            (
                "opus",
                &format!("-c:a libopus -application:a lowdelay -min_comp 0 -vn {OUT}"),
            ),
            ("pcmu", "-c:a pcm_mulaw -ar:a 8000 -ac:a 1 -vn -f wav -"),
            (
                "pcmu/16000",
                "-c:a pcm_mulaw -ar:a 16000 -ac:a 1 -vn -f wav -",
            ),
            (
                "pcmu/48000",
                "-c:a pcm_mulaw -ar:a 48000 -ac:a 1 -vn -f wav -",
            ),
            ("pcma", "-c:a pcm_alaw -ar:a 8000 -ac:a 1 -vn -f wav -"),
            (
                "pcma/16000",
                "-c:a pcm_alaw -ar:a 16000 -ac:a 1 -vn -f wav -",
            ),
            (
                "pcma/48000",
                "-c:a pcm_alaw -ar:a 48000 -ac:a 1 -vn -f wav -",
            ),
        ];
        for (codec, tail) in cases {
            check(
                &format!("rtsp://example.com#audio={codec}"),
                &format!("{pre} {tail}"),
            );
        }
        let aac = build_default("rtsp://example.com#audio=aac").unwrap();
        assert_eq!(aac.output, OutputKind::Pipe(PipeFormat::Adts));
        assert_eq!(aac.audio, vec!["aac"]);
        let pcma = build_default("rtsp://example.com#audio=pcma/16000").unwrap();
        assert_eq!(pcma.output, OutputKind::Pipe(PipeFormat::Wav));
        // big-endian PCM has no wav pipe: RTSP
        let pcm = build_default("rtsp://example.com#audio=pcm").unwrap();
        assert_eq!(pcm.output, OutputKind::Rtsp);
    }

    #[test]
    fn go2rtc_hw_vaapi() {
        const HW: &str =
            "-hwaccel vaapi -hwaccel_output_format vaapi -hwaccel_flags allow_profile_mismatch";
        const ENC: &str = "-c:v h264_vaapi -g 50 -bf 0 -profile:v high -level:v 4.1 -sei:v 0";
        const ENC5: &str = "-c:v hevc_vaapi -g 50 -bf 0 -profile:v main -level:v 5.1 -sei:v 0";
        check(
            "http:///example.com#video=h264#hardware=vaapi",
            &format!(
                r#"ffmpeg -hide_banner {HW} {HTTP_IN} http:///example.com {ENC} -an -vf "format=vaapi|nv12,hwupload,scale_vaapi=out_color_matrix=bt709:out_range=tv:format=nv12" {OUT}"#
            ),
        );
        check(
            "rtsp://example.com#video=h264#rotate=180#hardware=vaapi",
            &format!(
                r#"ffmpeg -hide_banner {HW} -allowed_media_types video {RTSP_IN} {ENC} -an -vf "format=vaapi|nv12,hwupload,transpose_vaapi=4,scale_vaapi=out_color_matrix=bt709:out_range=tv:format=nv12" {OUT}"#
            ),
        );
        check(
            "rtsp://example.com#video=h265#width=1280#height=720#hardware=vaapi",
            &format!(
                r#"ffmpeg -hide_banner {HW} -allowed_media_types video {RTSP_IN} {ENC5} -an -vf "format=vaapi|nv12,hwupload,scale_vaapi=1280:720" {OUT}"#
            ),
        );
        check(
            "/media/bbb.mp4#video=mjpeg#hardware=vaapi",
            &format!(
                r#"ffmpeg -hide_banner {HW} -re -i /media/bbb.mp4 -c:v mjpeg_vaapi -an -vf "format=vaapi|nv12,hwupload" -f mjpeg -"#
            ),
        );
        // go2rtc's case uses Windows' dshow; camrouter's devices are V4L2
        check(
            "device?video=0&video_size=1920x1080#video=h265#hardware=vaapi",
            &format!(
                r#"ffmpeg -hide_banner {HW} -f v4l2 -video_size 1920x1080 -i /dev/video0 {ENC5} -an -vf "format=vaapi|nv12,hwupload" {OUT}"#
            ),
        );
        let c = build_default("/media/bbb.mp4#video=h264#hardware=vaapi").unwrap();
        assert_eq!(c.hardware, Some(HardwareEngine::Vaapi));
    }

    /// Disabled (`_Test…`) in go2rtc; expectations follow its code.
    #[test]
    fn go2rtc_hw_v4l2m2m() {
        check(
            "http:///example.com#video=h264#hardware=v4l2m2m",
            &format!("ffmpeg -hide_banner {HTTP_IN} http:///example.com -c:v h264_v4l2m2m -g 50 -bf 0 -an {OUT}"),
        );
        check(
            "rtsp://example.com#video=h264#rotate=180#hardware=v4l2m2m",
            &format!(
                r#"ffmpeg -hide_banner -allowed_media_types video {RTSP_IN} -c:v h264_v4l2m2m -g 50 -bf 0 -an -vf "transpose=1,transpose=1" {OUT}"#
            ),
        );
        check(
            "rtsp://example.com#video=h265#width=1280#height=720#hardware=v4l2m2m",
            &format!(
                r#"ffmpeg -hide_banner -allowed_media_types video {RTSP_IN} -c:v hevc_v4l2m2m -g 50 -bf 0 -an -vf "scale=1280:720" {OUT}"#
            ),
        );
    }

    #[test]
    fn go2rtc_hw_rkmpp() {
        const HW: &str = "-hwaccel rkmpp -hwaccel_output_format drm_prime -afbc rga";
        const ENC: &str = "-c:v h264_rkmpp -g 50 -bf 0 -profile:v high -level:v 4.1";
        check(
            "bbb.mp4#video=h264#hardware=rkmpp",
            &format!("ffmpeg -hide_banner {HW} -re -i bbb.mp4 {ENC} -an {OUT}"),
        );
        check(
            "bbb.mp4#video=h264#rotate=180#hardware=rkmpp",
            &format!(
                r#"ffmpeg -hide_banner {HW} -re -i bbb.mp4 {ENC} -an -vf "format=drm_prime|nv12,hwupload,vpp_rkrga=transpose=4" {OUT}"#
            ),
        );
        check(
            "bbb.mp4#video=h264#height=320#hardware=rkmpp",
            &format!(
                r#"ffmpeg -hide_banner {HW} -re -i bbb.mp4 {ENC} -an -vf "format=drm_prime|nv12,hwupload,scale_rkrga=-1:320:force_original_aspect_ratio=0" {OUT}"#
            ),
        );
        check(
            "bbb.mp4#video=h264#drawtext=fontsize=12#hardware=rkmpp",
            &format!(
                r#"ffmpeg -hide_banner -hwaccel rkmpp -hwaccel_output_format nv12 -afbc rga -re -i bbb.mp4 {ENC} -an -vf "drawtext=fontsize=12:text='%{{localtime\:%Y-%m-%d %X}}',hwupload" {OUT}"#
            ),
        );
    }

    /// Disabled in go2rtc (and partly outdated there); expectations follow its code.
    #[test]
    fn go2rtc_hw_cuda() {
        check(
            "http:///example.com#video=h264#hardware=cuda",
            &format!("ffmpeg -hide_banner -hwaccel cuda -hwaccel_output_format cuda {HTTP_IN} http:///example.com -c:v h264_nvenc -g 50 -bf 0 -profile:v high -level:v auto -preset:v p2 -tune:v ll -an {OUT}"),
        );
        check(
            "rtsp://example.com#video=h264#rotate=180#hardware=cuda",
            &format!(
                r#"ffmpeg -hide_banner -hwaccel cuda -hwaccel_output_format nv12 -allowed_media_types video {RTSP_IN} -c:v h264_nvenc -g 50 -bf 0 -profile:v high -level:v auto -preset:v p2 -tune:v ll -an -vf "transpose=1,transpose=1,hwupload" {OUT}"#
            ),
        );
        check(
            "rtsp://example.com#video=h265#width=1280#height=720#hardware=cuda",
            &format!(
                r#"ffmpeg -hide_banner -hwaccel cuda -hwaccel_output_format cuda -allowed_media_types video {RTSP_IN} -c:v hevc_nvenc -g 50 -bf 0 -profile:v main -level:v auto -an -vf "scale_cuda=1280:720" {OUT}"#
            ),
        );
    }

    /// Disabled in go2rtc (and partly outdated there); expectations follow its code.
    #[test]
    fn go2rtc_hw_dxva2() {
        const HW: &str = "-hwaccel dxva2 -hwaccel_output_format dxva2_vld";
        const ENC: &str = "-c:v h264_qsv -g 50 -bf 0 -profile:v high -level:v 4.1 -async_depth:v 1";
        check(
            "http:///example.com#video=h264#hardware=dxva2",
            &format!(
                r#"ffmpeg -hide_banner {HW} {HTTP_IN} http:///example.com {ENC} -an -vf "hwmap=derive_device=qsv,format=qsv" {OUT}"#
            ),
        );
        check(
            "rtsp://example.com#video=h264#rotate=180#hardware=dxva2",
            &format!(
                r#"ffmpeg -hide_banner {HW} -allowed_media_types video {RTSP_IN} {ENC} -an -vf "hwmap=derive_device=qsv,format=qsv,transpose=1,transpose=1" {OUT}"#
            ),
        );
        check(
            "rtsp://example.com#video=h265#width=1280#height=720#hardware=dxva2",
            &format!(
                r#"ffmpeg -hide_banner {HW} -allowed_media_types video {RTSP_IN} -c:v hevc_qsv -g 50 -bf 0 -profile:v main -level:v 5.1 -async_depth:v 1 -an -vf "hwmap=derive_device=qsv,format=qsv,scale_qsv=1280:720" {OUT}"#
            ),
        );
        check(
            "/media/bbb.mp4#video=mjpeg#hardware=dxva2",
            &format!(
                r#"ffmpeg -hide_banner {HW} -re -i /media/bbb.mp4 -c:v mjpeg_qsv -an -vf "hwmap=derive_device=qsv,format=qsv" -f mjpeg -"#
            ),
        );
    }

    /// Disabled in go2rtc; expectations follow its code.
    #[test]
    fn go2rtc_hw_videotoolbox() {
        const HW: &str = "-hwaccel videotoolbox -hwaccel_output_format videotoolbox_vld";
        check(
            "http:///example.com#video=h264#hardware=videotoolbox",
            &format!("ffmpeg -hide_banner {HW} {HTTP_IN} http:///example.com -c:v h264_videotoolbox -g 50 -bf 0 -profile:v high -level:v 4.1 -an {OUT}"),
        );
        check(
            "rtsp://example.com#video=h265#width=1280#height=720#hardware=videotoolbox",
            &format!(
                r#"ffmpeg -hide_banner {HW} -allowed_media_types video {RTSP_IN} -c:v hevc_videotoolbox -g 50 -bf 0 -profile:v main -level:v 5.1 -an -vf "scale=1280:720" {OUT}"#
            ),
        );
    }

    #[test]
    fn go2rtc_decklink() {
        let source = r#"DeckLink SDI (2)#video=h264#hardware=vaapi#input=-format_code Hp29 -f decklink -i "{input}""#;
        check(
            source,
            &format!(
                r#"ffmpeg -hide_banner -hwaccel vaapi -hwaccel_output_format vaapi -hwaccel_flags allow_profile_mismatch -format_code Hp29 -f decklink -i "DeckLink SDI (2)" -c:v h264_vaapi -g 50 -bf 0 -profile:v high -level:v 4.1 -sei:v 0 -an -vf "format=vaapi|nv12,hwupload,scale_vaapi=out_color_matrix=bt709:out_range=tv:format=nv12" {OUT}"#
            ),
        );
        // the input stays one argument
        let c = build_default(source).unwrap();
        assert!(c.args.iter().any(|a| a == "DeckLink SDI (2)"));
    }

    #[test]
    fn go2rtc_drawtext() {
        const CLOCK: &str = r"text='%{localtime\:%Y-%m-%d %X}'";
        check(
            "http:///example.com#video=h264#drawtext=fontsize=12",
            &format!(
                r#"ffmpeg -hide_banner {HTTP_IN} http:///example.com {H264} -an -vf "drawtext=fontsize=12:{CLOCK}" {OUT}"#
            ),
        );
        check(
            "http:///example.com#video=h264#width=640#drawtext=fontsize=12",
            &format!(
                r#"ffmpeg -hide_banner {HTTP_IN} http:///example.com {H264} -an -vf "scale=640:-1,drawtext=fontsize=12:{CLOCK}" {OUT}"#
            ),
        );
        check(
            "http:///example.com#video=h264#width=640#drawtext=fontsize=12#hardware=vaapi",
            &format!(
                r#"ffmpeg -hide_banner -hwaccel vaapi -hwaccel_output_format nv12 -hwaccel_flags allow_profile_mismatch {HTTP_IN} http:///example.com -c:v h264_vaapi -g 50 -bf 0 -profile:v high -level:v 4.1 -sei:v 0 -an -vf "scale=640:-1,drawtext=fontsize=12:{CLOCK},hwupload" {OUT}"#
            ),
        );
        // the filter is exactly one argument, backslash and quotes intact
        let c = build_default("/a.mp4#video=h264#drawtext=x=2").unwrap();
        let vf = c.args.iter().position(|a| a == "-vf").unwrap();
        assert_eq!(c.args[vf + 1], format!("drawtext=x=2:{CLOCK}"));
        // an empty drawtext is the clock alone; a text= is kept as is
        let c = build_default("/a.mp4#video=h264#drawtext").unwrap();
        assert!(c.args.contains(&format!("drawtext={CLOCK}")));
        let c = build_default("/a.mp4#video=h264#drawtext=text=hi").unwrap();
        assert!(c.args.contains(&"drawtext=text=hi".to_string()));
    }

    #[test]
    fn go2rtc_version_burst() {
        let t = Templates::default();
        let e = Env {
            libavformat: Some((60, 16)),
            ..env(&t)
        };
        let c = build("/media/bbb.mp4", &e).unwrap();
        let expect = format!(
            "ffmpeg -hide_banner -readrate_initial_burst 0.001 -re -i /media/bbb.mp4 -c copy {OUT}"
        );
        assert_eq!(c.args, split(&expect).unwrap());
        // older ffmpeg, or an input that is not -re: no burst option
        let e = Env {
            libavformat: Some((60, 3)),
            ..env(&t)
        };
        assert!(!build("/media/bbb.mp4", &e)
            .unwrap()
            .args
            .contains(&"-readrate_initial_burst".into()));
        let e = Env {
            libavformat: Some((61, 1)),
            ..env(&t)
        };
        assert!(!build("http://x", &e)
            .unwrap()
            .args
            .contains(&"-readrate_initial_burst".into()));
    }

    /// go2rtc's internal/ffmpeg/virtual tests.
    #[test]
    fn go2rtc_virtual_and_tts() {
        check(
            "virtual?video",
            &format!("ffmpeg -hide_banner -re -f lavfi -i testsrc=decimals=2:size=1920x1080 -c copy {OUT}"),
        );
        check(
            "virtual?video=testsrc2&size=4K",
            &format!("ffmpeg -hide_banner -re -f lavfi -i testsrc2=size=3840x2160 -c copy {OUT}"),
        );
        // voice fixed: go2rtc writes `:voiceslt`
        check(
            "tts?text=hello world&voice=slt",
            &format!(
                r#"ffmpeg -hide_banner -re -f lavfi -i "flite=text=hello world:voice=slt" -c copy {OUT}"#
            ),
        );
    }

    // ---- camrouter additions ----

    #[test]
    fn virtual_sources() {
        check(
            "virtual?video&size=720#video=h264",
            &format!("ffmpeg -hide_banner -re -f lavfi -i testsrc=decimals=2:size=1280x720 {H264} -an {OUT}"),
        );
        check(
            "virtual?video=testsrc2&rate=30&size=720&format=yuv420p",
            &format!("ffmpeg -hide_banner -re -f lavfi -i testsrc2=rate=30:size=1280x720,format=yuv420p -c copy {OUT}"),
        );
        check(
            "virtual?audio#audio=aac",
            "ffmpeg -hide_banner -re -f lavfi -i sine=frequency=1000 -c:a aac -vn -f adts -",
        );
        check(
            "virtual?video&audio=anullsrc%3Dr%3D8000",
            &format!("ffmpeg -hide_banner -re -f lavfi -i testsrc=decimals=2:size=1920x1080 -f lavfi -i anullsrc=r=8000 -c copy {OUT}"),
        );
        assert!(matches!(err("virtual?size=720"), Error::BadInput { .. }));
        assert!(matches!(err("tts?voice=slt"), Error::BadInput { .. }));
        // quotes, colons and commas in the text are escaped for both levels
        // of the filter parser
        let c = build_default("tts?text=it's 5:30, ok").unwrap();
        assert!(
            c.args
                .contains(&r"flite=text=it\\\'s 5\\:30\, ok".to_string()),
            "{:?}",
            c.args
        );
    }

    #[test]
    fn devices() {
        if cfg!(not(target_os = "linux")) {
            assert!(matches!(err("device?video=0"), Error::Unsupported(_)));
            return;
        }
        check(
            "device?video=/dev/video2&input_format=h264&resolution=1280x720&framerate=30",
            &format!("ffmpeg -hide_banner -f v4l2 -input_format h264 -video_size 1280x720 -framerate 30 -i /dev/video2 -c copy {OUT}"),
        );
        // an MJPEG camera copied as is goes to an MJPEG pipe (go2rtc)
        let c = build_default("device?video=0&input_format=mjpeg&video_size=1280x720").unwrap();
        assert_eq!(c.output, OutputKind::Pipe(PipeFormat::Mjpeg));
        assert_eq!(
            c.args,
            split("ffmpeg -hide_banner -f v4l2 -input_format mjpeg -video_size 1280x720 -i /dev/video0 -c copy -f mjpeg -").unwrap()
        );
        check(
            "device?audio=hw:1,0&channels=1&sample_rate=16000#audio=opus",
            &format!("ffmpeg -hide_banner -f alsa -channels 1 -sample_rate 16000 -i hw:1,0 -c:a libopus -application:a lowdelay -min_comp 0 -vn {OUT}"),
        );
        assert!(matches!(err("device?video_size=1"), Error::BadInput { .. }));
    }

    #[test]
    fn stream_name_input() {
        let t = Templates::default();
        let is_cam = |name: &str| name == "cam";
        let e = Env {
            templates: &t,
            stream_exists: &is_cam,
            internal_rtsp: Some("rtsp://127.0.0.1:8554/".into()),
            hardware: None,
            libavformat: None,
        };
        let c = build("cam#video=h264", &e).unwrap();
        let url = "rtsp://127.0.0.1:8554/cam?video&source=ffmpeg:cam%23video%3Dh264";
        assert_eq!(
            c.args,
            split(&format!("ffmpeg -hide_banner -fflags nobuffer -flags low_delay -timeout 5000000 -user_agent go2rtc/ffmpeg -rtsp_flags prefer_tcp -i {url} {H264} -an {OUT}")).unwrap()
        );
        // audio only, extra #query, #input=rtsp/udp
        let c = build("cam#audio=opus#query=backchannel=0#input=rtsp/udp", &e).unwrap();
        let i = c.args.iter().position(|a| a == "-i").unwrap();
        assert_eq!(
            c.args[i + 1],
            "rtsp://127.0.0.1:8554/cam?audio&source=ffmpeg:cam%23audio%3Dopus%23query%3Dbackchannel%3D0%23input%3Drtsp%2Fudp&backchannel=0"
        );
        assert!(!c.args.contains(&"-rtsp_flags".to_string()));
        // neither or both: video&audio
        let c = build("cam", &e).unwrap();
        assert!(c
            .args
            .iter()
            .any(|a| a.starts_with("rtsp://127.0.0.1:8554/cam?video&audio&source=ffmpeg:cam")));
        // not a stream: a file
        let c = build("other", &e).unwrap();
        assert_eq!(&c.args[2..5], ["-re", "-i", "other"]);
        // no rtsp module: a clear error
        let e = Env {
            internal_rtsp: None,
            ..e
        };
        assert_eq!(
            build("cam", &e).unwrap_err(),
            Error::NoInternalRtsp("cam".into())
        );
    }

    #[test]
    fn other_schemes_and_input_param() {
        check(
            "srt://host:9000",
            &format!("ffmpeg -hide_banner -i srt://host:9000 -c copy {OUT}"),
        );
        // camrouter honours #input= for any scheme
        check(
            "udp://239.0.0.1:1234#input=-f mpegts -i {input}",
            &format!("ffmpeg -hide_banner -f mpegts -i udp://239.0.0.1:1234 -c copy {OUT}"),
        );
        // a file path with spaces stays one argument
        let c = build_default("/media/my file.mp4").unwrap();
        assert!(c.args.contains(&"/media/my file.mp4".to_string()));
        // an unknown template name is an error, not garbage arguments
        assert_eq!(
            err("rtsp://example.com#input=rtsp/tcp"),
            Error::UnknownInput("rtsp/tcp".into())
        );
        assert!(err("rtsp://example.com#input=rtsp/tcp")
            .to_string()
            .contains("rtsp/tcp"));
    }

    #[test]
    fn raw_params() {
        let mut t = Templates::default();
        t.set("seek", "-ss 00:00:20");
        // repeatable, a template name or the arguments, in order, before codecs
        let c = build(
            "/a.mp4#video=copy#raw=seek#raw=-t 10#raw=-vf \"drawtext=text='a b'\"",
            &env(&t),
        )
        .unwrap();
        let expect = format!(
            r#"ffmpeg -hide_banner -re -i /a.mp4 -ss 00:00:20 -t 10 -vf "drawtext=text='a b'" -c:v copy -an {OUT}"#
        );
        assert_eq!(c.args, split(&expect).unwrap());
        assert!(c.args.contains(&"drawtext=text='a b'".to_string()));
        // an unterminated quote is reported
        assert!(matches!(
            build("/a.mp4#raw=-metadata \"x", &env(&t)),
            Err(Error::Quote(_))
        ));
    }

    #[test]
    fn multiple_codecs_are_mapped() {
        check(
            "/media/bbb.mp4#video=copy#audio=copy#audio=pcmu",
            &format!("ffmpeg -hide_banner -re -i /media/bbb.mp4 -map 0:v:0? -c:v:0 copy -map 0:a:0? -c:a:0 copy -map 0:a:0? -c:a:1 pcm_mulaw -ar:a:1 8000 -ac:a:1 1 {OUT}"),
        );
        check(
            "rtsp://example.com#video=h264#video=copy",
            &format!("ffmpeg -hide_banner -allowed_media_types video {RTSP_IN} -map 0:v:0? -c:v:0 libx264 -g 50 -profile:v:0 high -level:v:0 4.1 -preset:v:0 superfast -tune:v:0 zerolatency -pix_fmt:v:0 yuv420p -map 0:v:0? -c:v:1 copy -an {OUT}"),
        );
        let c = build_default("/a.mp4#video=copy#audio=copy#audio=pcmu").unwrap();
        assert_eq!(c.video, vec!["copy"]);
        assert_eq!(c.audio, vec!["copy", "pcmu"]);
    }

    #[test]
    fn bitrate_and_async() {
        check(
            "rtsp://example.com#video=h264#bitrate=2M#async",
            &format!("ffmpeg -hide_banner -use_wallclock_as_timestamps 1 -async 1 -allowed_media_types video {RTSP_IN} {H264} -b:v 2M -maxrate 2M -bufsize 2M -an {OUT}"),
        );
        assert!(matches!(
            err("/a.mp4#video=h264#bitrate="),
            Error::BadParam { .. }
        ));
    }

    #[test]
    fn templates_from_config() {
        let cfg = serde_json::json!({
            "bin": "/usr/lib/ffmpeg7/bin/ffmpeg",
            "timeout": 10,
            "h264": "-codec:v libx264 -g:v 30 -preset:v superfast",
            "mycodec": "-c:v libx264 -crf 20",
            "myinput": "-fflags nobuffer -timeout {timeout} -i {input}",
            "global": "-hide_banner -nostats",
            "h265": null,
        });
        let t = Templates::from_config(&cfg, "warn").unwrap();
        assert_eq!(t.bin(), "/usr/lib/ffmpeg7/bin/ffmpeg");
        assert_eq!(t.get("global"), Some("-hide_banner -nostats -v warning"));
        assert_eq!(t.get("h265"), Templates::default().get("h265"));
        let e = env(&t);
        let c = build("rtsp://cam/1#video=h264#input=myinput", &e).unwrap();
        assert_eq!(
            c.args,
            split(&format!("/usr/lib/ffmpeg7/bin/ffmpeg -hide_banner -nostats -v warning -allowed_media_types video -fflags nobuffer -timeout 10000000 -i rtsp://cam/1 -codec:v libx264 -g:v 30 -preset:v superfast -an {OUT}")).unwrap()
        );
        let c = build("/a.mp4#video=mycodec", &e).unwrap();
        assert!(c.args.join(" ").contains("-c:v libx264 -crf 20 -an"));
        // an overridden output template
        let t = Templates::from_config(
            &serde_json::json!({"output/aac": "-f adts -ar 16000 -"}),
            "error",
        )
        .unwrap();
        let c = build("/a.mp4#audio=aac", &env(&t)).unwrap();
        assert_eq!(
            c.args[c.args.len() - 5..],
            ["-f", "adts", "-ar", "16000", "-"].map(String::from)
        );
    }

    #[test]
    fn templates_config_errors_and_levels() {
        let t = Templates::from_config(&serde_json::Value::Null, DEFAULT_LOG_LEVEL).unwrap();
        assert_eq!(t.get("global"), Some("-hide_banner -v error"));
        assert_eq!(t.bin(), "ffmpeg");
        let t = Templates::from_config(&serde_json::json!({"global": ""}), "disabled").unwrap();
        assert_eq!(t.get("global"), Some("-v quiet"));
        assert!(matches!(
            Templates::from_config(&serde_json::json!({"h264": ["-c:v"]}), "error"),
            Err(Error::Config(m)) if m.contains("ffmpeg.h264")
        ));
        assert!(matches!(
            Templates::from_config(&serde_json::json!("ffmpeg"), "error"),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Templates::from_config(&serde_json::Value::Null, "loud"),
            Err(Error::Config(_))
        ));
        // the default table has go2rtc's keys
        let d = Templates::default();
        for key in [
            "rtsp/udp",
            "output/wav",
            "raw/gray8",
            "pcml/44100",
            "h265/videotoolbox",
            "mjpeg/rkmpp",
        ] {
            assert!(d.get(key).is_some(), "{key}");
        }
        assert_eq!(d.iter().count(), DEFAULTS.len());
        // a bad timeout in the config is reported when used
        let t = Templates::from_config(&serde_json::json!({"timeout": "soon"}), "error").unwrap();
        assert!(
            matches!(build("rtsp://x", &env(&t)), Err(Error::BadParam { param, .. }) if param == "ffmpeg.timeout")
        );
        assert!(build("http://x", &env(&t)).is_ok());
    }

    #[test]
    fn hardware_auto_and_fallback() {
        let t = Templates::default();
        // #hardware with nothing detected: software
        let c = build("/a.mp4#video=h264#hardware", &env(&t)).unwrap();
        assert_eq!(c.hardware, None);
        assert_eq!(c.args, build("/a.mp4#video=h264", &env(&t)).unwrap().args);
        // with a detected engine
        let e = Env {
            hardware: Some(HardwareEngine::Vaapi),
            ..env(&t)
        };
        let c = build("/a.mp4#video=h264#hardware", &e).unwrap();
        assert_eq!(c.hardware, Some(HardwareEngine::Vaapi));
        assert!(c.args.contains(&"h264_vaapi".to_string()));
        // go2rtc does not auto-select hardware for H.265
        let c = build("/a.mp4#video=h265#hardware", &e).unwrap();
        assert_eq!(c.hardware, None);
        assert!(c.args.contains(&"libx265".to_string()));
        // ...but an explicit engine is used
        let c = build("/a.mp4#video=h265#hardware=vaapi", &e).unwrap();
        assert!(c.args.contains(&"hevc_vaapi".to_string()));
        // no mjpeg/cuda template: MJPEG stays software, untouched input
        let c = build("/a.mp4#video=mjpeg#hardware=cuda", &env(&t)).unwrap();
        assert_eq!(c.hardware, None);
        assert_eq!(
            c.args,
            split("ffmpeg -hide_banner -re -i /a.mp4 -c:v mjpeg -huffman:v default -pix_fmt:v yuvj420p -an -f mjpeg -")
                .unwrap()
        );
        // copy and audio are never touched
        let c = build("/a.mp4#video=copy#audio=opus#hardware=vaapi", &env(&t)).unwrap();
        assert_eq!(c.hardware, None);
        assert!(!c.args.contains(&"-hwaccel".to_string()));
        // software, explicitly
        let c = build("/a.mp4#video=h264#hardware=software", &e).unwrap();
        assert!(c.args.contains(&"libx264".to_string()));
        // unknown engine: error
        assert_eq!(
            err("/a.mp4#video=h264#hardware=qsv"),
            Error::UnknownEngine(UnknownEngine("qsv".into()))
        );
    }

    #[test]
    fn bad_params() {
        assert_eq!(
            err("/a.mp4#video=h246"),
            Error::UnknownCodec {
                kind: "video",
                value: "h246".into()
            }
        );
        let msg = err("/a.mp4#audio=pcma/22050").to_string();
        assert!(msg.contains("audio codec \"pcma/22050\""), "{msg}");
        assert!(matches!(err("/a.mp4#video"), Error::BadParam { param, .. } if param == "video"));
        assert!(matches!(err("/a.mp4#audio=auto"), Error::Unsupported(_)));
        assert!(
            matches!(err("/a.mp4#video=h264#rotate=45"), Error::BadParam { param, .. } if param == "rotate")
        );
        assert!(
            matches!(err("/a.mp4#video=h264#width=wide"), Error::BadParam { param, .. } if param == "width")
        );
        assert!(matches!(
            err("/a.mp4#video=h264#height=0"),
            Error::BadParam { .. }
        ));
        assert!(
            matches!(err("rtsp://x#timeout=5s"), Error::BadParam { param, .. } if param == "timeout")
        );
        assert_eq!(err("#video=h264"), Error::EmptySource);
        // raw codec arguments are allowed, as in go2rtc
        let c = build_default("/a.mp4#video=-c:v libx264 -crf 18").unwrap();
        assert!(c.args.join(" ").contains("-c:v libx264 -crf 18 -an"));
        // unknown params are reported, not fatal
        let c = build_default("/a.mp4#video=h264#killsignal=15#foo#foo").unwrap();
        assert_eq!(c.ignored, vec!["killsignal", "foo"]);
        // a missing output template
        let mut t = Templates::default();
        t.set("output", "");
        assert_eq!(
            build("/a.mp4", &env(&t)).unwrap_err(),
            Error::MissingTemplate("output".into())
        );
    }

    #[test]
    fn scale_keeps_aspect() {
        let c = build_default("/a.mp4#video=h264#height=480").unwrap();
        assert!(c.args.contains(&"scale=-1:480".to_string()));
        let c = build_default("/a.mp4#video=h264#width=640#height=-2").unwrap();
        assert!(c.args.contains(&"scale=640:-2".to_string()));
        let c = build_default("/a.mp4#video=h264#rotate=90").unwrap();
        assert!(c.args.contains(&"transpose=1".to_string()));
        let c = build_default("/a.mp4#video=h264#rotate=270").unwrap();
        assert!(c.args.contains(&"transpose=2".to_string()));
    }

    #[test]
    fn splitter() {
        let s = |x: &str| split(x).unwrap();
        assert_eq!(s("  -a  b\t-c\n"), ["-a", "b", "-c"]);
        assert_eq!(s(r#"-i "a b" -x 'c d'"#), ["-i", "a b", "-x", "c d"]);
        // quotes inside the other kind are literal
        assert_eq!(
            s(r#"-vf "drawtext=text='%{localtime\:%X}'""#),
            ["-vf", r"drawtext=text='%{localtime\:%X}'"]
        );
        assert_eq!(s(r#"'say "hi"'"#), [r#"say "hi""#]);
        // quotes inside a word, empty arguments, escapes in "…"
        assert_eq!(s(r#"a"b c"d e"#), ["ab cd", "e"]);
        assert_eq!(s(r#"x "" ''"#), ["x", "", ""]);
        assert_eq!(s(r#""a\"b\\c\d""#), [r#"a"b\c\d"#]);
        // outside quotes a backslash is plain
        assert_eq!(s(r"a\ b"), [r"a\", "b"]);
        assert!(s("").is_empty());
        assert_eq!(
            split(r#"-i "open"#),
            Err(Error::Quote(r#"-i "open"#.into()))
        );
        assert!(split("it's").is_err());
    }

    #[test]
    fn join_round_trips() {
        let cases: Vec<Vec<String>> = vec![
            vec!["ffmpeg".into(), "-i".into(), "a b.mp4".into()],
            vec![
                "".into(),
                "x\"y".into(),
                r"end\".into(),
                r"a\:b c".into(),
                "it's".into(),
            ],
            build_default("http://x#video=h264#drawtext=fontsize=12")
                .unwrap()
                .args,
        ];
        for args in cases {
            assert_eq!(split(&join(&args)).unwrap(), args, "{}", join(&args));
        }
        let c = build_default("/media/a b.mp4#video=h264#width=640").unwrap();
        assert!(c.to_string().contains(r#"-i "/media/a b.mp4""#), "{c}");
        assert!(c.to_string().contains("-vf scale=640:-1"), "{c}");
    }

    #[test]
    fn version_parsing() {
        let out = "ffmpeg version 6.1.1-3ubuntu5 Copyright (c) 2000-2023 the FFmpeg developers
  built with gcc 13 (Ubuntu 13.2.0-23ubuntu3)
  libavutil      58. 29.100 / 58. 29.100
  libavformat    60. 16.100 / 60. 16.100
";
        let v = FfmpegVersion::parse(out).unwrap();
        assert_eq!(v.ffmpeg, "6.1.1-3ubuntu5");
        assert_eq!(v.libavformat, Some((60, 16)));
        assert!(v.supported());
        let old = "ffmpeg version 4.4.2 Copyright\n  libavformat    58. 76.100 / 58. 76.100\n";
        assert!(!FfmpegVersion::parse(old).unwrap().supported());
        assert_eq!(FfmpegVersion::parse("bash: ffmpeg: not found"), None);
    }

    #[test]
    fn query_helpers() {
        assert_eq!(
            query_escape("cam#video=h264 x/y"),
            "cam%23video%3Dh264+x%2Fy"
        );
        assert_eq!(
            query_pairs("video&size=720&&x=a%3Db"),
            vec![
                ("video".into(), "".into()),
                ("size".into(), "720".into()),
                ("x".into(), "a=b".into())
            ]
        );
    }
}
