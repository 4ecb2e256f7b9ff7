//! The query parameters of `frame.jpeg`, `stream.mjpeg`, `stream.y4m` and
//! `stream.ascii`, as go2rtc reads them: `src`, `width`/`w`, `height`/`h`,
//! `rotate`, `cache`; `color`, `back`, `text` for ASCII.

use std::time::Duration;

use camrouter_plugin_api::url::query_pairs;

/// A clockwise rotation applied after scaling (go2rtc: scale, then transpose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Rotate {
    #[default]
    None,
    Cw90,
    Cw180,
    Cw270,
}

/// What the client asked the picture to look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub rotate: Rotate,
    /// What each picture becomes (part of a transcoder's key: clients of
    /// one stream, size and output share one).
    pub output: Output,
}

/// The form of each decoded picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Output {
    #[default]
    Jpeg,
    /// Raw YUV 4:2:0 (`stream.y4m`).
    Y4m,
    /// Text art for a terminal (`stream.ascii`).
    Ascii(Ascii),
}

/// go2rtc's `stream.ascii` params.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ascii {
    /// `color=`: the characters' colour.
    pub color: Palette,
    /// `back=`: the background colour.
    pub back: Palette,
    /// `text=`: the characters from dark to bright.
    pub text: Charset,
}

/// ANSI colours: none, the 8 basic ones, xterm's 256, or 24-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Palette {
    #[default]
    None,
    Ansi8,
    Xterm256,
    Rgb,
}

/// Most characters `text=` may list.
pub const MAX_CHARSET: usize = 32;

/// The characters of `text=`, dark to bright (Copy, to be part of the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Charset {
    chars: [char; MAX_CHARSET],
    len: u8,
}

impl Default for Charset {
    fn default() -> Self {
        // go2rtc's default ramp.
        Charset::new(" .::--~~==++**##%%$@").unwrap_or(Charset {
            chars: [' '; MAX_CHARSET],
            len: 1,
        })
    }
}

impl Charset {
    pub fn new(text: &str) -> Option<Charset> {
        let mut chars = [' '; MAX_CHARSET];
        let mut len = 0;
        for c in text.chars() {
            *chars.get_mut(len)? = c;
            len += 1;
        }
        (len > 0).then_some(Charset {
            chars,
            len: len as u8,
        })
    }

    pub fn chars(&self) -> &[char] {
        &self.chars[..usize::from(self.len)]
    }
}

fn palette(key: &str, v: &str) -> Result<Palette, String> {
    match v {
        "" => Ok(Palette::None),
        "8" => Ok(Palette::Ansi8),
        "256" => Ok(Palette::Xterm256),
        "rgb" => Ok(Palette::Rgb),
        _ => Err(format!("mjpeg: {key} must be 8, 256 or rgb: {v}")),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Params {
    pub src: String,
    pub shape: Shape,
    /// `cache=`: a stored snapshot younger than this is served as is.
    pub cache: Option<Duration>,
    /// `stream.ascii`'s look (used when the output is ASCII).
    pub ascii: Ascii,
}

impl Params {
    pub fn parse(query: &str) -> Result<Params, String> {
        let mut p = Params::default();
        for (k, v) in query_pairs(query) {
            match k.as_str() {
                "src" => p.src = v,
                "width" | "w" => p.shape.width = positive(&k, &v)?,
                "height" | "h" => p.shape.height = positive(&k, &v)?,
                "rotate" => {
                    p.shape.rotate = match v.as_str() {
                        "" | "0" => Rotate::None,
                        "90" => Rotate::Cw90,
                        "180" => Rotate::Cw180,
                        "270" | "-90" => Rotate::Cw270,
                        _ => return Err(format!("mjpeg: rotate must be 90, 180, 270 or -90: {v}")),
                    }
                }
                "color" => p.ascii.color = palette(&k, &v)?,
                "back" => p.ascii.back = palette(&k, &v)?,
                "text" => {
                    p.ascii.text = match v.as_str() {
                        "" => Charset::default(),
                        "block" => Charset::new(" ░░▒▒▓▓█").unwrap_or_default(),
                        t => Charset::new(t).ok_or_else(|| {
                            format!("mjpeg: text takes at most {MAX_CHARSET} characters")
                        })?,
                    }
                }
                "cache" if !v.is_empty() => {
                    p.cache = Some(go_duration(&v).ok_or_else(|| {
                        format!("mjpeg: cache must be a duration such as 10s or 1m: {v}")
                    })?)
                }
                _ => {}
            }
        }
        Ok(p)
    }
}

fn positive(key: &str, v: &str) -> Result<Option<u32>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    match v.parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(format!("mjpeg: {key} must be a number of pixels: {v}")),
    }
}

/// Go's `time.ParseDuration` syntax (`1m`, `10s`, `1.5h`, `300ms`, `1m30s`),
/// which go2rtc users write for `cache=`. Negative durations are refused.
pub fn go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += num * secs;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_writes_them() {
        assert_eq!(go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(go_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "10", "s", "-1s", "1x", "1..2s"] {
            assert_eq!(go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn params_with_aliases() {
        let p = Params::parse("src=cam&w=320&rotate=-90&cache=5s").unwrap();
        assert_eq!(p.src, "cam");
        assert_eq!(p.shape.width, Some(320));
        assert_eq!(p.shape.height, None);
        assert_eq!(p.shape.rotate, Rotate::Cw270);
        assert_eq!(p.cache, Some(Duration::from_secs(5)));
        let p = Params::parse("src=a%20b&height=180").unwrap();
        assert_eq!(p.src, "a b");
        assert_eq!(p.shape.height, Some(180));
        assert!(Params::parse("src=x&width=big").is_err());
        assert!(Params::parse("src=x&rotate=45").is_err());
        assert!(Params::parse("src=x&cache=soon").is_err());
    }

    #[test]
    fn ascii_params() {
        let p = Params::parse("src=x&color=256&back=rgb&text=block").unwrap();
        assert_eq!(p.ascii.color, Palette::Xterm256);
        assert_eq!(p.ascii.back, Palette::Rgb);
        assert_eq!(p.ascii.text.chars().len(), 8);
        assert_eq!(Params::parse("src=x").unwrap().ascii.text.chars()[1], '.');
        assert!(Params::parse("src=x&color=red").is_err());
        assert!(Params::parse(&format!("src=x&text={}", "a".repeat(33))).is_err());
    }
}
