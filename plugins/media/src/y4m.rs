//! YUV4MPEG2 (Y4M) demuxer: raw pictures, as `ffmpeg -f yuv4mpegpipe`
//! writes them.
//!
//! A stream header line (`YUV4MPEG2 W320 H240 F15:1 Ip A1:1 C420jpeg`), then
//! for each picture a `FRAME` line (with optional parameters) and the planes
//! (Y, then U, then V). There are no timestamps and no sync markers: frame
//! times come from the header's rate, and a broken `FRAME` line ends the
//! stream, since nothing tells where the next picture starts.
//!
//! Only 8-bit 4:2:0 progressive pictures are accepted (the four C420 chroma
//! sitings differ only in where the chroma samples sit, not in layout);
//! everything else is refused with what to convert to. Memory is bounded by
//! one picture of at most [`MAX_PIXELS`] pixels plus one line.
//!
//! ```
//! use camrouter_media::y4m::{Y4mDemuxer, Y4mEvent};
//! let mut d = Y4mDemuxer::new();
//! d.push(b"YUV4MPEG2 W4 H2 F15:1 Ip C420jpeg\nFRAME\n");
//! d.push(&[16; 8 + 2 + 2]);
//! let Some(Ok(Y4mEvent::Format(f))) = d.poll() else { panic!() };
//! assert_eq!((f.width, f.height, f.picture_len()), (4, 2, 12));
//! assert!(matches!(d.poll(), Some(Ok(Y4mEvent::Picture(p))) if p.len() == 12));
//! ```

use std::collections::VecDeque;

use crate::error::{Error, Result};

/// The header's magic.
pub const MAGIC: &[u8] = b"YUV4MPEG2";
/// Longest header or `FRAME` line (ffmpeg writes under 100 bytes).
pub const MAX_LINE: usize = 1024;
/// Largest picture: 3840×2160, the largest the H.264 encoder takes (level
/// 5.2); it also bounds the demuxer's buffer at ~12 MiB.
pub const MAX_PIXELS: u64 = 3840 * 2160;
/// Frame rate when the header has none (ffmpeg's default too).
pub const DEFAULT_RATE: (u32, u32) = (25, 1);

/// What the stream header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Y4mFormat {
    /// Luma width in pixels.
    pub width: u32,
    /// Luma height in pixels.
    pub height: u32,
    /// Frame rate numerator (frames per `rate_den` seconds).
    pub rate_num: u32,
    /// Frame rate denominator.
    pub rate_den: u32,
    /// The `C` value as written (`420jpeg`, `420mpeg2`, `420paldv`, `420`).
    pub chroma: String,
}

impl Y4mFormat {
    /// Width and height of each chroma plane (4:2:0, rounded up).
    pub fn chroma_size(&self) -> (usize, usize) {
        (
            (self.width as usize).div_ceil(2),
            (self.height as usize).div_ceil(2),
        )
    }

    /// Bytes of one picture: Y, then U, then V.
    pub fn picture_len(&self) -> usize {
        let (cw, ch) = self.chroma_size();
        self.width as usize * self.height as usize + 2 * cw * ch
    }

    /// Duration of one picture in a clock of `clock_rate` Hz (at least 1).
    pub fn frame_duration(&self, clock_rate: u32) -> u64 {
        (u64::from(clock_rate) * u64::from(self.rate_den) / u64::from(self.rate_num).max(1)).max(1)
    }
}

/// Output of [`Y4mDemuxer::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Y4mEvent {
    /// The stream header, once, before any picture.
    Format(Y4mFormat),
    /// One picture: [`Y4mFormat::picture_len`] bytes, planar Y, U, V.
    Picture(Vec<u8>),
}

#[derive(Debug, Clone)]
enum State {
    /// Reading the stream header line.
    Header,
    /// Reading a `FRAME` line.
    FrameLine,
    /// Reading a picture's planes.
    Planes(Vec<u8>),
    /// Refused or lost: nothing more comes out.
    Failed,
}

/// Sans-IO Y4M demuxer. Feed bytes with [`push`](Self::push), take events
/// with [`poll`](Self::poll).
#[derive(Debug, Clone)]
pub struct Y4mDemuxer {
    state: State,
    line: Vec<u8>,
    format: Option<Y4mFormat>,
    out: VecDeque<Result<Y4mEvent>>,
}

impl Default for Y4mDemuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl Y4mDemuxer {
    /// A demuxer expecting the stream header.
    pub fn new() -> Self {
        Self {
            state: State::Header,
            line: Vec::new(),
            format: None,
            out: VecDeque::new(),
        }
    }

    /// The header was refused or a `FRAME` line was broken: nothing more
    /// will come out.
    pub fn failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }

    /// The stream's format, once its header is read.
    pub fn format(&self) -> Option<&Y4mFormat> {
        self.format.as_ref()
    }

    /// Next event; an `Err` is the end (see [`failed`](Self::failed)).
    pub fn poll(&mut self) -> Option<Result<Y4mEvent>> {
        self.out.pop_front()
    }

    /// Feed bytes.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Failed => return,
                State::Header | State::FrameLine => {
                    let Some(line) = self.take_line(&mut bytes) else {
                        return;
                    };
                    if matches!(self.state, State::Header) {
                        match parse_header(&line) {
                            Ok(format) => {
                                self.out.push_back(Ok(Y4mEvent::Format(format.clone())));
                                self.format = Some(format);
                                self.state = State::FrameLine;
                            }
                            Err(e) => self.fail(e),
                        }
                    } else {
                        match frame_line(&line) {
                            Ok(()) => {
                                let len = self.format.as_ref().map_or(0, Y4mFormat::picture_len);
                                self.state = State::Planes(Vec::with_capacity(len));
                            }
                            Err(e) => self.fail(e),
                        }
                    }
                }
                State::Planes(picture) => {
                    let len = self.format.as_ref().map_or(0, Y4mFormat::picture_len);
                    let n = (len - picture.len()).min(bytes.len());
                    picture.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if picture.len() == len {
                        let picture = std::mem::take(picture);
                        self.out.push_back(Ok(Y4mEvent::Picture(picture)));
                        self.state = State::FrameLine;
                    }
                }
            }
        }
    }

    /// End of input. A partial picture is dropped: there is no way to know
    /// what its missing part looked like.
    pub fn finish(&mut self) {
        if let State::Planes(p) = &self.state {
            if !p.is_empty() {
                self.out.push_back(Err(Error::Truncated("Y4M picture")));
            }
        }
        self.state = State::Failed;
    }

    /// Moves bytes up to and including a `\n` into `self.line`; the line
    /// (without its `\n`) when complete.
    fn take_line(&mut self, bytes: &mut &[u8]) -> Option<Vec<u8>> {
        let end = bytes.iter().position(|&b| b == b'\n');
        let take = end.map_or(bytes.len(), |i| i + 1);
        if self.line.len() + take > MAX_LINE + 1 {
            let what = if matches!(self.state, State::Header) {
                "Y4M header"
            } else {
                "Y4M FRAME line"
            };
            self.fail(Error::invalid(
                what,
                format!("longer than {MAX_LINE} bytes"),
            ));
            return None;
        }
        self.line.extend_from_slice(&bytes[..take]);
        *bytes = &bytes[take..];
        end?;
        self.line.pop();
        Some(std::mem::take(&mut self.line))
    }

    fn fail(&mut self, e: Error) {
        self.out.push_back(Err(e));
        self.state = State::Failed;
    }
}

/// A `FRAME` line. Its parameters (`X` comments, and per-frame interlacing,
/// which only a header's `Im` allows, refused already) are skipped.
fn frame_line(line: &[u8]) -> Result<()> {
    line.strip_prefix(b"FRAME")
        .filter(|r| r.is_empty() || r[0] == b' ')
        .ok_or_else(|| {
            Error::invalid(
                "Y4M FRAME line",
                format!(
                    "expected FRAME, got {:?} (picture size does not match the header?)",
                    String::from_utf8_lossy(&line[..line.len().min(16)])
                ),
            )
        })?;
    Ok(())
}

fn interlaced(token: &str) -> Error {
    Error::unsupported(
        "Y4M",
        format!(
            "interlaced pictures ({token}); deinterlace first, e.g. ffmpeg -vf yadif -f yuv4mpegpipe"
        ),
    )
}

fn parse_header(line: &[u8]) -> Result<Y4mFormat> {
    let rest = line
        .strip_prefix(MAGIC)
        .filter(|r| r.is_empty() || r[0] == b' ')
        .ok_or_else(|| Error::invalid("Y4M header", "does not start with YUV4MPEG2"))?;
    let text = std::str::from_utf8(rest).map_err(|_| Error::invalid("Y4M header", "not ASCII"))?;
    let (mut width, mut height) = (None, None);
    let mut rate = DEFAULT_RATE;
    let mut chroma = "420jpeg".to_string();
    for token in text.split(' ').filter(|t| !t.is_empty()) {
        // By character: a comment may hold any UTF-8.
        let (key, value) = token.split_at(token.chars().next().map_or(0, char::len_utf8));
        match key {
            "W" => width = Some(number("W", value)?),
            "H" => height = Some(number("H", value)?),
            "F" => rate = parse_rate(value)?,
            // `?` (unknown) is what most writers mean by progressive.
            "I" if !matches!(value, "p" | "?") => return Err(interlaced(token)),
            "C" => chroma = value.to_string(),
            // Aspect ratio, comments (`XYSCSS=420JPEG`, `XCOLORRANGE=FULL`)
            // and tags this reader does not know change nothing it does.
            _ => {}
        }
    }
    let (Some(width), Some(height)) = (width, height) else {
        return Err(Error::invalid("Y4M header", "W or H missing"));
    };
    if !matches!(chroma.as_str(), "420jpeg" | "420mpeg2" | "420paldv" | "420") {
        return Err(Error::unsupported(
            "Y4M",
            format!(
                "chroma C{chroma}: only 8-bit 4:2:0 (C420jpeg, C420mpeg2, C420paldv, C420) is read; \
                 convert first, e.g. ffmpeg -pix_fmt yuv420p -f yuv4mpegpipe"
            ),
        ));
    }
    if width < 2 || height < 2 || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Error::unsupported(
            "Y4M",
            format!("picture size {width}x{height}: from 2x2 to 3840x2160 (8.3 Mpixels)"),
        ));
    }
    Ok(Y4mFormat {
        width,
        height,
        rate_num: rate.0,
        rate_den: rate.1,
        chroma,
    })
}

fn number(what: &'static str, value: &str) -> Result<u32> {
    value
        .parse()
        .map_err(|_| Error::invalid("Y4M header", format!("{what}{value:?} is not a number")))
}

/// `F30000:1001`. `F0:0` means unknown (ffmpeg writes it for streams
/// without a rate): the default rate then.
fn parse_rate(value: &str) -> Result<(u32, u32)> {
    let bad = || Error::invalid("Y4M header", format!("frame rate F{value}"));
    let (n, d) = value.split_once(':').ok_or_else(bad)?;
    let (n, d): (u32, u32) = (n.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    if n == 0 && d == 0 {
        return Ok(DEFAULT_RATE);
    }
    // From one picture every 100 s to 1000 per second.
    if n == 0 || d == 0 || u64::from(d) > u64::from(n) * 100 || u64::from(n) > u64::from(d) * 1000 {
        return Err(bad());
    }
    Ok((n, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(d: &mut Y4mDemuxer) -> Vec<Result<Y4mEvent>> {
        std::iter::from_fn(|| d.poll()).collect()
    }

    fn refused(header: &str) -> Error {
        let mut d = Y4mDemuxer::new();
        d.push(header.as_bytes());
        d.push(b"\nFRAME\n");
        let ev = events(&mut d);
        assert!(d.failed(), "{header}: {ev:?}");
        assert_eq!(ev.len(), 1, "{ev:?}");
        ev.into_iter().next().unwrap().unwrap_err()
    }

    #[test]
    fn reads_ffmpeg_output_byte_by_byte() {
        // As `ffmpeg -f lavfi -i testsrc2=size=6x4 -f yuv4mpegpipe -` writes it.
        let mut s =
            b"YUV4MPEG2 W6 H4 F15:1 Ip A1:1 C420jpeg XYSCSS=420JPEG XCOLORRANGE=LIMITED\n".to_vec();
        for i in 0..3u8 {
            s.extend_from_slice(b"FRAME\n");
            s.extend(std::iter::repeat_n(i, 24 + 2 * 6));
        }
        let mut d = Y4mDemuxer::new();
        for b in s.chunks(1) {
            d.push(b);
        }
        d.finish();
        let ev: Vec<_> = events(&mut d).into_iter().map(|e| e.unwrap()).collect();
        assert_eq!(
            ev[0],
            Y4mEvent::Format(Y4mFormat {
                width: 6,
                height: 4,
                rate_num: 15,
                rate_den: 1,
                chroma: "420jpeg".into()
            })
        );
        assert_eq!(ev.len(), 4);
        for (i, e) in ev[1..].iter().enumerate() {
            assert_eq!(e, &Y4mEvent::Picture(vec![i as u8; 36]));
        }
    }

    #[test]
    fn every_420_siting_odd_sizes_and_defaults() {
        for c in ["C420jpeg", "C420mpeg2", "C420paldv", "C420", ""] {
            let mut d = Y4mDemuxer::new();
            d.push(format!("YUV4MPEG2 W5 H3 {c}\nFRAME Ip XFOO=1\n").as_bytes());
            // Chroma planes round up: 3x2 each.
            d.push(&[1; 15 + 12]);
            let ev: Vec<_> = events(&mut d).into_iter().map(|e| e.unwrap()).collect();
            let Y4mEvent::Format(f) = &ev[0] else {
                panic!("{ev:?}")
            };
            assert_eq!((f.rate_num, f.rate_den), DEFAULT_RATE, "{c}");
            assert_eq!(f.frame_duration(90_000), 3600);
            assert!(
                matches!(&ev[1], Y4mEvent::Picture(p) if p.len() == 27),
                "{c}"
            );
        }
    }

    #[test]
    fn unknown_tokens_are_skipped_even_non_ascii() {
        // Found by the fuzzer: a token starting with a two-byte character
        // once split inside that character.
        let mut d = Y4mDemuxer::new();
        d.push("YUV4MPEG2 W8 H2 \u{37e}1 Xcomment=\u{e9}t\u{e9} Z\n".as_bytes());
        assert_eq!(d.format().map(|f| f.width), Some(8));
        assert!(!d.failed());
    }

    #[test]
    fn ntsc_rate_and_unknown_rate() {
        let mut d = Y4mDemuxer::new();
        d.push(b"YUV4MPEG2 W2 H2 F30000:1001\n");
        assert_eq!(d.format().unwrap().frame_duration(90_000), 3003);
        let mut d = Y4mDemuxer::new();
        d.push(b"YUV4MPEG2 W2 H2 F0:0\n");
        assert_eq!(d.format().unwrap().rate_num, 25);
    }

    #[test]
    fn refuses_what_it_cannot_read_with_what_to_do() {
        for (header, says) in [
            ("YUV4MPEG2 W320 H240 C444", "C444"),
            ("YUV4MPEG2 W320 H240 C422", "C422"),
            ("YUV4MPEG2 W320 H240 Cmono", "Cmono"),
            ("YUV4MPEG2 W320 H240 C420p10 XYSCSS=420P10", "C420p10"),
            ("YUV4MPEG2 W320 H240 C444alpha", "-pix_fmt yuv420p"),
            ("YUV4MPEG2 W320 H240 It", "interlaced"),
            ("YUV4MPEG2 W320 H240 Ib", "yadif"),
            ("YUV4MPEG2 W320 H240 Im", "Im"),
            ("YUV4MPEG2 W7680 H4320", "7680x4320"),
            ("YUV4MPEG2 W1 H240", "1x240"),
        ] {
            let e = refused(header);
            assert!(matches!(e, Error::Unsupported { .. }), "{header}: {e}");
            assert!(e.to_string().contains(says), "{header}: {e}");
        }
        for header in [
            "YUV4MPEG2 H240",
            "YUV4MPEG2 W320 Hx",
            "YUV4MPEG2 W320 H240 F15",
            "YUV4MPEG2 W320 H240 F15:0",
            "YUV4MPEG2 W320 H240 F1:1000",
            "YUV4MPEG2 W320 H240 F100000:1",
            "YUV4MPEG2 W99999999999 H240",
            "YUV4MPEG2X W320 H240",
        ] {
            let e = refused(header);
            assert!(matches!(e, Error::Invalid { .. }), "{header}: {e}");
        }
    }

    #[test]
    fn lost_sync_and_long_lines_end_the_stream() {
        // One byte too many in the first picture: the next line is not FRAME.
        let mut d = Y4mDemuxer::new();
        d.push(b"YUV4MPEG2 W2 H2\nFRAME\n1234567FRAME\n");
        let ev = events(&mut d);
        assert!(
            matches!(
                &ev[2],
                Err(Error::Invalid {
                    what: "Y4M FRAME line",
                    ..
                })
            ),
            "{ev:?}"
        );
        assert!(d.failed());
        d.push(b"FRAME\n123456");
        assert!(d.poll().is_none());

        let mut d = Y4mDemuxer::new();
        d.push(b"YUV4MPEG2 W2 H2 X");
        for _ in 0..100 {
            d.push(&[b'a'; 100]);
        }
        let ev = events(&mut d);
        assert_eq!(ev.len(), 1);
        assert!(ev[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("longer than"));
    }

    #[test]
    fn a_truncated_last_picture_is_reported() {
        let mut d = Y4mDemuxer::new();
        d.push(b"YUV4MPEG2 W2 H2\nFRAME\n123");
        d.finish();
        let ev = events(&mut d);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[1], Err(Error::Truncated("Y4M picture")));
    }
}
