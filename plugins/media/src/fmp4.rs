//! Fragmented MP4 writer (ISO/IEC 14496-12): an init segment (`ftyp` +
//! `moov`) describing the tracks, then one `moof` + `mdat` fragment per frame,
//! which is what MSE players, progressive `stream.mp4` readers and ffmpeg
//! take. A fragment per frame keeps latency at one frame, as go2rtc does.
//!
//! Frames come in the canonical form (DESIGN.md §4): H.264/H.265 access units
//! as 4-byte length-prefixed NAL units, which is exactly an MP4 sample; AV1
//! temporal units of sized OBUs (AV1-ISOBMFF 2.4, `av01` with `av1C`); AAC
//! raw frames; Opus packets. G.711 and 16-bit PCM go in as FLAC (verbatim
//! frames), as go2rtc writes them, since MP4 players and MSE take no G.711. Sans-IO: bytes in, bytes out, the caller owns the
//! clock and the socket.

use crate::adts::{AudioSpecificConfig, SAMPLES_PER_FRAME, SAMPLE_RATES};
use crate::annexb::{avcc_units, push_length_prefixed};
use crate::bits::unescape_rbsp;
use crate::codec::{CodecInfo, CodecName, MediaKind};
use crate::error::{Error, Result};
use crate::flac::{self, FlacEncoder};
use crate::{av1, h264, h265};

/// One frame to write.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Decode time in the track's clock rate.
    pub dts: i64,
    /// Presentation time in the track's clock rate.
    pub pts: i64,
    /// A random access point (video); audio frames are always sync samples.
    pub keyframe: bool,
    /// When the frame arrived, in microseconds of any monotonic clock (0 if
    /// unknown). Used once per track, to place a track that starts later
    /// than the first one at the right time (A/V sync).
    pub arrival_us: u64,
    /// The frame in its canonical form.
    pub data: &'a [u8],
}

/// Writes the init segment and the fragments of one output.
#[derive(Debug)]
pub struct Fmp4Writer {
    tracks: Vec<Track>,
    sequence: u32,
    /// Arrival time of the first sample written, the origin of every track.
    origin_us: Option<u64>,
    display: Display,
}

/// How players should show the video tracks (go2rtc's `rotate` and `scale`).
#[derive(Debug, Clone, Copy, Default)]
struct Display {
    /// Clockwise degrees: 0, 90, 180 or 270, in the track header's matrix.
    rotate: u16,
    /// Pixel aspect ratio (`pasp`), e.g. 4:3 to stretch 1440x1080 to 16:9.
    aspect: Option<(u32, u32)>,
}

#[derive(Debug)]
struct Track {
    info: CodecInfo,
    entry: SampleEntry,
    /// Decode time of the next sample, in the track's timescale.
    decode_time: u64,
    last_dts: Option<i64>,
    /// Duration given to the last sample; the next one's estimate.
    last_duration: u32,
    /// Video: what to add to a dts to place it on this output's timeline
    /// (set by the first sample, moved when timestamps jump).
    offset: i64,
    /// Duration written for the last sample.
    written: u32,
    /// Video: the last interval between two frames.
    last_gap: Option<u32>,
    /// G.711/PCM tracks: their frames become FLAC frames.
    flac: Option<FlacEncoder>,
}

/// What `stsd` needs, prepared once from the codec info.
#[derive(Debug, PartialEq, Eq)]
enum SampleEntry {
    Avc {
        config: Vec<u8>,
        width: u16,
        height: u16,
        mime: String,
    },
    Hevc {
        config: Vec<u8>,
        width: u16,
        height: u16,
        mime: String,
    },
    Av1 {
        config: Vec<u8>,
        width: u16,
        height: u16,
        mime: String,
    },
    Aac {
        asc: Vec<u8>,
        object_type: u8,
    },
    Opus,
    Flac {
        stream_info: [u8; 34],
    },
}

/// Largest gap between two frames we take as the frame's duration; a longer
/// one (a stall, a clock jump) counts as one estimated frame instead, so one
/// bad timestamp never opens a hole of minutes in the timeline.
const MAX_GAP_SECONDS: i64 = 10;

/// Sample flags (ISO/IEC 14496-12 8.8.3.1): `sample_depends_on` = 2 for a
/// sync sample; `depends_on` = 1 plus `sample_is_non_sync_sample` otherwise.
const FLAGS_SYNC: u32 = 0x0200_0000;
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

impl Fmp4Writer {
    /// A writer for these tracks (MP4 track ids 1, 2, … in this order).
    /// H.264 and H.265 need their parameter sets in `extradata` (see
    /// [`parameter_sets_from_frame`] for a source that sends them in band only).
    pub fn new(tracks: &[CodecInfo]) -> Result<Fmp4Writer> {
        if tracks.is_empty() {
            return Err(Error::invalid("fMP4 tracks", "no track"));
        }
        let tracks = tracks
            .iter()
            .map(|info| {
                if info.clock_rate == 0 {
                    return Err(Error::invalid("fMP4 track", "clock rate 0"));
                }
                let flac = if flac::supports(info.name) {
                    Some(FlacEncoder::new(info.name, info.clock_rate, info.channels)?)
                } else {
                    None
                };
                Ok(Track {
                    flac,
                    entry: SampleEntry::new(info)?,
                    info: info.clone(),
                    decode_time: 0,
                    last_dts: None,
                    last_duration: default_duration(info),
                    offset: 0,
                    written: 0,
                    last_gap: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Fmp4Writer {
            tracks,
            sequence: 0,
            origin_us: None,
            display: Display::default(),
        })
    }

    /// Shows the video rotated clockwise by `degrees` (0, 90, 180, 270),
    /// through the track header's matrix: no pixel is touched.
    pub fn set_rotation(&mut self, degrees: u16) -> Result<()> {
        if !matches!(degrees, 0 | 90 | 180 | 270) {
            return Err(Error::invalid("rotation", format!("{degrees} degrees")));
        }
        self.display.rotate = degrees;
        Ok(())
    }

    /// Stretches the video's pixels to `h`:`v` (a `pasp` box).
    pub fn set_pixel_aspect(&mut self, h: u32, v: u32) -> Result<()> {
        if h == 0 || v == 0 {
            return Err(Error::invalid("pixel aspect", format!("{h}:{v}")));
        }
        self.display.aspect = Some((h, v));
        Ok(())
    }

    /// Whether `name` can be written (with proper codec info).
    pub fn supports(name: CodecName) -> bool {
        matches!(
            name,
            CodecName::H264 | CodecName::H265 | CodecName::Av1 | CodecName::Aac | CodecName::Opus
        ) || flac::supports(name)
    }

    /// RFC 6381 codec strings, comma separated: `avc1.640029,mp4a.40.2`.
    pub fn mime_codecs(&self) -> String {
        let v: Vec<String> = self.tracks.iter().map(|t| t.entry.mime()).collect();
        v.join(",")
    }

    /// `video/mp4; codecs="…"`, for `Content-Type` and MSE's `addSourceBuffer`.
    pub fn content_type(&self) -> String {
        format!("video/mp4; codecs=\"{}\"", self.mime_codecs())
    }

    /// Takes the parameter sets a video keyframe carries in band when they
    /// describe the picture differently from the track's (a camera back with
    /// another resolution): the track's description is replaced and `true`
    /// says a new init segment is due, which MSE accepts mid-stream. `false`
    /// for the same sets, no sets, or sets that do not parse.
    pub fn update_parameter_sets(&mut self, track: usize, frame: &[u8]) -> bool {
        let Some(t) = self.tracks.get_mut(track) else {
            return false;
        };
        if !matches!(
            t.entry,
            SampleEntry::Avc { .. } | SampleEntry::Hevc { .. } | SampleEntry::Av1 { .. }
        ) {
            return false;
        }
        let Some(sets) = parameter_sets_from_frame(t.info.name, frame) else {
            return false;
        };
        let mut info = t.info.clone();
        info.extradata = sets;
        // The size comes from the new SPS.
        info.width = 0;
        info.height = 0;
        match SampleEntry::new(&info) {
            Ok(entry) if entry != t.entry => {
                t.entry = entry;
                t.info = info;
                true
            }
            _ => false,
        }
    }

    /// `ftyp` + `moov`.
    pub fn init_segment(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        boxed(&mut out, b"ftyp", |b| {
            b.extend_from_slice(b"iso5");
            b.extend_from_slice(&512u32.to_be_bytes());
            for brand in [b"iso5", b"iso6", b"mp41"] {
                b.extend_from_slice(brand);
            }
        });
        boxed(&mut out, b"moov", |b| {
            full_box(b, b"mvhd", 0, 0, |b| {
                b.extend_from_slice(&[0; 8]); // creation, modification time
                b.extend_from_slice(&1000u32.to_be_bytes()); // timescale
                b.extend_from_slice(&0u32.to_be_bytes()); // duration: unknown
                b.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // rate 1.0
                b.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
                b.extend_from_slice(&[0; 10]);
                matrix(b);
                b.extend_from_slice(&[0; 24]); // pre_defined
                let next = self.tracks.len() as u32 + 1;
                b.extend_from_slice(&next.to_be_bytes());
            });
            for (i, t) in self.tracks.iter().enumerate() {
                t.write_trak(b, i as u32 + 1, &self.display);
            }
            boxed(b, b"mvex", |b| {
                for i in 0..self.tracks.len() {
                    full_box(b, b"trex", 0, 0, |b| {
                        b.extend_from_slice(&(i as u32 + 1).to_be_bytes());
                        b.extend_from_slice(&1u32.to_be_bytes()); // sample description
                        b.extend_from_slice(&[0; 12]); // duration, size, flags
                    });
                }
            });
        });
        out
    }

    /// One `moof` + `mdat` with this frame of track `track` (index into the
    /// tracks given to [`new`](Self::new)).
    pub fn fragment(&mut self, track: usize, sample: &Sample<'_>) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(sample.data.len() + 128);
        self.write_fragment(track, sample, &mut out)?;
        Ok(out)
    }

    /// [`fragment`](Self::fragment), appending to `out`.
    pub fn write_fragment(
        &mut self,
        track: usize,
        sample: &Sample<'_>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let origin = *self.origin_us.get_or_insert(sample.arrival_us);
        let t = self
            .tracks
            .get_mut(track)
            .ok_or_else(|| Error::invalid("fMP4 fragment", format!("no track {track}")))?;
        let flac_frame;
        let (data, samples) = match &mut t.flac {
            Some(enc) => {
                let n = enc.samples_in(sample.data.len()) as u32;
                flac_frame = enc.encode(sample.data)?;
                (flac_frame.as_slice(), Some(n))
            }
            None => (sample.data, None),
        };
        let size = u32::try_from(data.len())
            .map_err(|_| Error::invalid("fMP4 sample", "larger than 4 GiB"))?;
        if t.info.kind() == MediaKind::Video {
            t.place_video(sample, origin);
        } else {
            t.place_audio(sample, origin, samples);
        }
        let cts = i32::try_from(sample.pts.saturating_sub(sample.dts)).unwrap_or(0);
        let flags = if t.info.kind() == MediaKind::Audio || sample.keyframe {
            FLAGS_SYNC
        } else {
            FLAGS_NON_SYNC
        };
        self.sequence = self.sequence.wrapping_add(1);
        let track_id = track as u32 + 1;
        let decode_time = t.decode_time;
        let sample_duration = t.written;

        let moof_start = out.len();
        let mut data_offset_at = 0;
        boxed(out, b"moof", |b| {
            full_box(b, b"mfhd", 0, 0, |b| {
                b.extend_from_slice(&self.sequence.to_be_bytes())
            });
            boxed(b, b"traf", |b| {
                // default-base-is-moof: data offsets count from this moof.
                full_box(b, b"tfhd", 0, 0x02_0000, |b| {
                    b.extend_from_slice(&track_id.to_be_bytes())
                });
                full_box(b, b"tfdt", 1, 0, |b| {
                    b.extend_from_slice(&decode_time.to_be_bytes())
                });
                // Version 1: a signed composition offset (B-frames).
                // Flags: data offset, duration, size, flags, composition offset.
                full_box(b, b"trun", 1, 0x0F01, |b| {
                    b.extend_from_slice(&1u32.to_be_bytes());
                    data_offset_at = b.len();
                    b.extend_from_slice(&0u32.to_be_bytes());
                    b.extend_from_slice(&sample_duration.to_be_bytes());
                    b.extend_from_slice(&size.to_be_bytes());
                    b.extend_from_slice(&flags.to_be_bytes());
                    b.extend_from_slice(&cts.to_be_bytes());
                });
            });
        });
        let moof_len = out.len() - moof_start;
        let data_offset = (moof_len + 8) as u32;
        out[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
        out.extend_from_slice(&(size.saturating_add(8)).to_be_bytes());
        out.extend_from_slice(b"mdat");
        out.extend_from_slice(data);
        Ok(())
    }
}

/// A first duration before two timestamps tell the real one.
fn default_duration(info: &CodecInfo) -> u32 {
    match info.name {
        // Replaced by the frame's own sample count.
        name if flac::supports(name) => 1,
        CodecName::Aac => SAMPLES_PER_FRAME,
        // 20 ms, the usual Opus frame.
        CodecName::Opus => (info.clock_rate / 50).max(1),
        // 25 fps.
        _ => (info.clock_rate / 25).max(1),
    }
}

impl Track {
    /// Where a track's first sample goes: a track that starts after the
    /// first one starts where its first frame arrived, so audio and video
    /// stay in sync.
    fn start_time(&self, sample: &Sample<'_>, origin: u64) -> u64 {
        let late_us = sample.arrival_us.saturating_sub(origin);
        if sample.arrival_us == 0 || late_us > 60_000_000 {
            0
        } else {
            late_us * u64::from(self.info.clock_rate) / 1_000_000
        }
    }

    /// Audio: each frame at its own time; its duration is exact from the
    /// codec (AAC's 1024 samples, PCM's length).
    fn place_audio(&mut self, sample: &Sample<'_>, origin: u64, samples: Option<u32>) {
        let rate = i64::from(self.info.clock_rate);
        let duration = match self.last_dts {
            None => {
                self.decode_time = self.start_time(sample, origin);
                self.last_duration
            }
            Some(prev) => {
                let gap = sample.dts.saturating_sub(prev);
                if gap > 0 && gap <= rate * MAX_GAP_SECONDS {
                    gap as u32
                } else {
                    self.last_duration
                }
            }
        };
        if self.last_dts.is_some() {
            self.decode_time += u64::from(duration);
        }
        self.last_dts = Some(sample.dts);
        self.last_duration = match self.info.name {
            // Always 1024 samples (go2rtc: QuickTime needs it exact).
            CodecName::Aac => SAMPLES_PER_FRAME,
            // PCM knows its own length exactly.
            _ => samples.unwrap_or(duration).max(1),
        };
        self.written = self.last_duration;
    }

    /// Video: each frame starts exactly where the previous one ended, so the
    /// timeline has no hole. A frame's duration is only known when the next
    /// one comes, and Chromium's MSE takes a hole longer than twice the last
    /// frame's duration for a discontinuity and drops frames up to the next
    /// keyframe (and a player that does not seek stops there). So a frame
    /// lasts until its own time on the timeline plus the interval expected:
    /// a wrong guess (the first frame's 25 fps, jitter of arrival-stamped
    /// frames, a stall) lengthens or shortens this frame, never leaves a hole,
    /// and the next frame is back at its own time.
    fn place_video(&mut self, sample: &Sample<'_>, origin: u64) {
        let rate = i64::from(self.info.clock_rate);
        let max_gap = rate * MAX_GAP_SECONDS;
        match self.last_dts {
            None => {
                self.decode_time = self.start_time(sample, origin);
                self.offset = self.decode_time as i64 - sample.dts;
            }
            Some(prev) => {
                // The previous frame ended here: this one starts there.
                self.decode_time += u64::from(self.written);
                let gap = sample.dts.saturating_sub(prev);
                if gap > 0 && gap <= max_gap {
                    // The shorter of the last two intervals: a stall is not
                    // the next frame's interval (that guess would put the
                    // next frames late and squeeze them to nothing), while
                    // a change of frame rate shows in two intervals.
                    let gap = gap as u32;
                    self.last_duration = gap.min(self.last_gap.unwrap_or(gap));
                    self.last_gap = Some(gap);
                }
            }
        }
        self.last_dts = Some(sample.dts);
        let start = self.decode_time as i64;
        let mut at = sample.dts.saturating_add(self.offset);
        if (at - start).abs() > max_gap {
            // A timestamp jump (a camera's clock reset): the timeline goes on
            // from here.
            self.offset = start - sample.dts;
            at = start;
        }
        // This frame's time plus the expected interval, from where it starts.
        let end = at.saturating_add(i64::from(self.last_duration));
        let duration = end.saturating_sub(start).clamp(1, max_gap);
        self.written = duration as u32;
    }
    fn write_trak(&self, b: &mut Vec<u8>, id: u32, display: &Display) {
        let video = self.info.kind() == MediaKind::Video;
        let (width, height) = match &self.entry {
            SampleEntry::Avc { width, height, .. }
            | SampleEntry::Hevc { width, height, .. }
            | SampleEntry::Av1 { width, height, .. } => (*width, *height),
            _ => (0, 0),
        };
        boxed(b, b"trak", |b| {
            // Flags: track enabled, in movie.
            full_box(b, b"tkhd", 0, 3, |b| {
                b.extend_from_slice(&[0; 8]); // creation, modification time
                b.extend_from_slice(&id.to_be_bytes());
                b.extend_from_slice(&[0; 4]);
                b.extend_from_slice(&0u32.to_be_bytes()); // duration
                b.extend_from_slice(&[0; 8]);
                b.extend_from_slice(&[0; 4]); // layer, alternate group
                let volume: u16 = if video { 0 } else { 0x0100 };
                b.extend_from_slice(&volume.to_be_bytes());
                b.extend_from_slice(&[0; 2]);
                if video {
                    rotated_matrix(b, display.rotate, width, height);
                } else {
                    matrix(b);
                }
                b.extend_from_slice(&(u32::from(width) << 16).to_be_bytes());
                b.extend_from_slice(&(u32::from(height) << 16).to_be_bytes());
            });
            boxed(b, b"mdia", |b| {
                full_box(b, b"mdhd", 0, 0, |b| {
                    b.extend_from_slice(&[0; 8]);
                    b.extend_from_slice(&self.info.clock_rate.to_be_bytes());
                    b.extend_from_slice(&0u32.to_be_bytes());
                    b.extend_from_slice(&0x55C4u16.to_be_bytes()); // "und"
                    b.extend_from_slice(&[0; 2]);
                });
                full_box(b, b"hdlr", 0, 0, |b| {
                    b.extend_from_slice(&[0; 4]);
                    b.extend_from_slice(if video { b"vide" } else { b"soun" });
                    b.extend_from_slice(&[0; 12]);
                    b.extend_from_slice(if video {
                        b"VideoHandler\0"
                    } else {
                        b"SoundHandler\0"
                    });
                });
                boxed(b, b"minf", |b| {
                    if video {
                        full_box(b, b"vmhd", 0, 1, |b| b.extend_from_slice(&[0; 8]));
                    } else {
                        full_box(b, b"smhd", 0, 0, |b| b.extend_from_slice(&[0; 4]));
                    }
                    boxed(b, b"dinf", |b| {
                        full_box(b, b"dref", 0, 0, |b| {
                            b.extend_from_slice(&1u32.to_be_bytes());
                            // Flag 1: the data is in this file.
                            full_box(b, b"url ", 0, 1, |_| {});
                        });
                    });
                    boxed(b, b"stbl", |b| {
                        full_box(b, b"stsd", 0, 0, |b| {
                            b.extend_from_slice(&1u32.to_be_bytes());
                            self.write_sample_entry(b, display);
                        });
                        // Empty tables: the samples are in the fragments.
                        full_box(b, b"stts", 0, 0, |b| b.extend_from_slice(&[0; 4]));
                        full_box(b, b"stsc", 0, 0, |b| b.extend_from_slice(&[0; 4]));
                        full_box(b, b"stsz", 0, 0, |b| b.extend_from_slice(&[0; 8]));
                        full_box(b, b"stco", 0, 0, |b| b.extend_from_slice(&[0; 4]));
                    });
                });
            });
        });
    }

    fn write_sample_entry(&self, b: &mut Vec<u8>, display: &Display) {
        match &self.entry {
            SampleEntry::Avc {
                config,
                width,
                height,
                ..
            } => visual_entry(b, b"avc1", (*width, *height), (b"avcC", config), display),
            SampleEntry::Hevc {
                config,
                width,
                height,
                ..
            } => visual_entry(b, b"hvc1", (*width, *height), (b"hvcC", config), display),
            SampleEntry::Av1 {
                config,
                width,
                height,
                ..
            } => visual_entry(b, b"av01", (*width, *height), (b"av1C", config), display),
            SampleEntry::Aac { asc, .. } => {
                audio_entry(b, b"mp4a", &self.info, |b| {
                    full_box(b, b"esds", 0, 0, |b| esds(b, asc));
                });
            }
            SampleEntry::Flac { stream_info } => {
                audio_entry(b, b"fLaC", &self.info, |b| {
                    // FLAC-in-ISOBMFF 3.3.2: the metadata blocks, STREAMINFO
                    // only (last-block flag, type 0, length 34).
                    full_box(b, b"dfLa", 0, 0, |b| {
                        b.extend_from_slice(&[0x80, 0, 0, 34]);
                        b.extend_from_slice(stream_info);
                    });
                });
            }
            SampleEntry::Opus => {
                let mut info = self.info.clone();
                // Opus in MP4 always runs at 48 kHz (RFC 7845 §4).
                info.clock_rate = 48000;
                audio_entry(b, b"Opus", &info, |b| {
                    // Opus-in-ISOBMFF 4.3.2: version 0, channels, pre-skip,
                    // input rate, gain, mapping family 0 (mono/stereo).
                    boxed(b, b"dOps", |b| {
                        b.push(0);
                        b.push(self.info.channels.clamp(1, 2) as u8);
                        b.extend_from_slice(&312u16.to_be_bytes());
                        b.extend_from_slice(&48000u32.to_be_bytes());
                        b.extend_from_slice(&0u16.to_be_bytes());
                        b.push(0);
                    });
                });
            }
        }
    }
}

impl SampleEntry {
    fn new(info: &CodecInfo) -> Result<SampleEntry> {
        match info.name {
            CodecName::H264 => {
                let (sps, pps) = h264_sets(&info.extradata)?;
                let parsed = h264::Sps::parse(sps[0])?;
                let (width, height) = dims(info, parsed.width, parsed.height);
                let mime = format!("avc1.{:02X}{:02X}{:02X}", sps[0][1], sps[0][2], sps[0][3]);
                Ok(SampleEntry::Avc {
                    config: avc_config(&sps, &pps),
                    width,
                    height,
                    mime,
                })
            }
            CodecName::H265 => {
                let (vps, sps, pps) = h265_sets(&info.extradata)?;
                let parsed = h265::Sps::parse(sps[0])?;
                let (width, height) = dims(info, parsed.width, parsed.height);
                let ptl = Ptl::parse(sps[0])?;
                Ok(SampleEntry::Hevc {
                    config: hevc_config(&ptl, &parsed, &vps, &sps, &pps),
                    width,
                    height,
                    mime: ptl.mime(),
                })
            }
            CodecName::Av1 => {
                let rec = av1::config_record(&info.extradata)?;
                let (width, height) = dims(info, rec.sequence.width, rec.sequence.height);
                Ok(SampleEntry::Av1 {
                    config: rec.to_bytes(),
                    width,
                    height,
                    mime: rec.sequence.mime(),
                })
            }
            CodecName::Aac => {
                let asc = if info.extradata.is_empty() {
                    let index = SAMPLE_RATES
                        .iter()
                        .position(|r| *r == info.clock_rate)
                        .ok_or_else(|| {
                            Error::unsupported(
                                "AAC without AudioSpecificConfig",
                                format!("sample rate {}", info.clock_rate),
                            )
                        })?;
                    AudioSpecificConfig {
                        object_type: 2,
                        sample_rate_index: index as u8,
                        channel_config: info.channels.clamp(1, 7) as u8,
                    }
                    .to_bytes()
                    .to_vec()
                } else {
                    info.extradata.clone()
                };
                if asc.len() > 64 {
                    return Err(Error::invalid(
                        "AudioSpecificConfig",
                        "longer than 64 bytes",
                    ));
                }
                let object_type = asc.first().map(|b| b >> 3).unwrap_or(2);
                Ok(SampleEntry::Aac { asc, object_type })
            }
            CodecName::Opus => Ok(SampleEntry::Opus),
            name if flac::supports(name) => Ok(SampleEntry::Flac {
                stream_info: FlacEncoder::new(name, info.clock_rate, info.channels)?.stream_info(),
            }),
            other => Err(Error::unsupported(
                "fMP4 codec",
                other.ffmpeg_name().to_string(),
            )),
        }
    }

    fn mime(&self) -> String {
        match self {
            SampleEntry::Avc { mime, .. }
            | SampleEntry::Hevc { mime, .. }
            | SampleEntry::Av1 { mime, .. } => mime.clone(),
            SampleEntry::Aac { object_type, .. } => format!("mp4a.40.{object_type}"),
            SampleEntry::Opus => "opus".into(),
            SampleEntry::Flac { .. } => "flac".into(),
        }
    }
}

/// The size from the codec info, else from the SPS; MP4 stores 16 bits.
fn dims(info: &CodecInfo, w: u32, h: u32) -> (u16, u16) {
    let pick = |a: u32, b: u32| u16::try_from(if a > 0 { a } else { b }).unwrap_or(u16::MAX);
    (pick(info.width, w), pick(info.height, h))
}

type Nals<'a> = Vec<&'a [u8]>;

/// SPSs and PPSs of length-prefixed H.264 parameter sets.
fn h264_sets(extradata: &[u8]) -> Result<(Nals<'_>, Nals<'_>)> {
    let (mut sps, mut pps) = (Vec::new(), Vec::new());
    for nal in avcc_units(extradata) {
        let nal = nal?;
        match h264::nal_type_of(nal) {
            h264::nal_type::SPS if nal.len() >= 4 => sps.push(nal),
            h264::nal_type::PPS => pps.push(nal),
            _ => {}
        }
    }
    if sps.is_empty() || pps.is_empty() {
        return Err(Error::invalid("H.264 extradata", "no SPS and PPS"));
    }
    Ok((sps, pps))
}

/// VPSs, SPSs and PPSs of length-prefixed H.265 parameter sets.
fn h265_sets(extradata: &[u8]) -> Result<(Nals<'_>, Nals<'_>, Nals<'_>)> {
    let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
    for nal in avcc_units(extradata) {
        let nal = nal?;
        match h265::nal_type_of(nal) {
            h265::nal_type::VPS => vps.push(nal),
            h265::nal_type::SPS => sps.push(nal),
            h265::nal_type::PPS => pps.push(nal),
            _ => {}
        }
    }
    if vps.is_empty() || sps.is_empty() || pps.is_empty() {
        return Err(Error::invalid("H.265 extradata", "no VPS, SPS and PPS"));
    }
    Ok((vps, sps, pps))
}

/// The decoder configuration record FLV and RTMP carry as a sequence header:
/// AVCDecoderConfigurationRecord (H.264), HEVCDecoderConfigurationRecord
/// (H.265), or the AudioSpecificConfig (AAC).
pub fn decoder_config(info: &CodecInfo) -> Result<Vec<u8>> {
    match SampleEntry::new(info)? {
        SampleEntry::Avc { config, .. }
        | SampleEntry::Hevc { config, .. }
        | SampleEntry::Av1 { config, .. } => Ok(config),
        SampleEntry::Aac { asc, .. } => Ok(asc.to_vec()),
        _ => Err(Error::unsupported(
            "decoder configuration",
            info.name.ffmpeg_name(),
        )),
    }
}

/// Parameter sets carried in band by a keyframe, as `extradata` for a source
/// whose codec info has none (an RTSP camera without `sprop-parameter-sets`).
/// `None` when the frame does not hold a complete set.
pub fn parameter_sets_from_frame(name: CodecName, frame: &[u8]) -> Option<Vec<u8>> {
    if name == CodecName::Av1 {
        // The sequence header, as an `av1C` record.
        let sequence_header = av1::find_sequence_header(frame)?;
        let sequence = av1::SequenceHeader::find(&sequence_header).ok()?;
        return Some(
            av1::ConfigRecord {
                sequence,
                sequence_header,
            }
            .to_bytes(),
        );
    }
    let mut out = Vec::new();
    let mut found = [false; 3];
    let mut seen: Vec<&[u8]> = Vec::new();
    for nal in avcc_units(frame).map_while(|n| n.ok()) {
        let slot = match name {
            CodecName::H264 => match h264::nal_type_of(nal) {
                h264::nal_type::SPS => Some(1),
                h264::nal_type::PPS => Some(2),
                _ => None,
            },
            CodecName::H265 => match h265::nal_type_of(nal) {
                h265::nal_type::VPS => Some(0),
                h265::nal_type::SPS => Some(1),
                h265::nal_type::PPS => Some(2),
                _ => None,
            },
            _ => return None,
        };
        // A packetizer that inserts the sets before keyframes may repeat
        // the encoder's own: one copy each.
        if let Some(i) = slot.filter(|_| !seen.contains(&nal)) {
            found[i] = true;
            seen.push(nal);
            push_length_prefixed(&mut out, nal);
        }
    }
    let complete = found[1] && found[2] && (name == CodecName::H264 || found[0]);
    complete.then_some(out)
}

/// AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1).
fn avc_config(sps: &[&[u8]], pps: &[&[u8]]) -> Vec<u8> {
    let first = sps[0];
    let mut b = vec![1, first[1], first[2], first[3], 0xFF]; // 4-byte lengths
    b.push(0xE0 | (sps.len().min(31) as u8));
    for s in sps.iter().take(31) {
        nal_with_len16(&mut b, s);
    }
    b.push(pps.len().min(255) as u8);
    for p in pps.iter().take(255) {
        nal_with_len16(&mut b, p);
    }
    b
}

fn nal_with_len16(b: &mut Vec<u8>, nal: &[u8]) {
    let nal = &nal[..nal.len().min(usize::from(u16::MAX))];
    b.extend_from_slice(&(nal.len() as u16).to_be_bytes());
    b.extend_from_slice(nal);
}

/// The general profile_tier_level of an H.265 SPS (H.265 7.3.3), as the
/// bytes `hvcC` and the codec string copy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ptl {
    /// profile_space(2) tier(1) profile_idc(5).
    first: u8,
    compatibility: u32,
    constraints: [u8; 6],
    level: u8,
    /// sps_max_sub_layers_minus1(3) sps_temporal_id_nesting_flag(1).
    sub_layers: u8,
    nesting: bool,
}

impl Ptl {
    fn parse(sps: &[u8]) -> Result<Ptl> {
        // 2 bytes of NAL header, 1 of ids and sub-layers, then 12 of PTL.
        let rbsp = unescape_rbsp(sps);
        let b = rbsp
            .get(..15)
            .ok_or(Error::Truncated("H.265 SPS profile_tier_level"))?;
        let mut constraints = [0; 6];
        constraints.copy_from_slice(&b[8..14]);
        Ok(Ptl {
            first: b[3],
            compatibility: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            constraints,
            level: b[14],
            sub_layers: (b[2] >> 1) & 7,
            nesting: b[2] & 1 != 0,
        })
    }

    /// ISO/IEC 14496-15 Annex E.3: `hvc1.1.6.L93.B0`.
    fn mime(&self) -> String {
        let space = ["", "A", "B", "C"][usize::from(self.first >> 6)];
        let mut s = format!(
            "hvc1.{space}{}.{:X}.{}{}",
            self.first & 0x1F,
            self.compatibility.reverse_bits(),
            if self.first & 0x20 != 0 { 'H' } else { 'L' },
            self.level
        );
        let used = self
            .constraints
            .iter()
            .rposition(|b| *b != 0)
            .map_or(0, |i| i + 1);
        for c in &self.constraints[..used] {
            s.push_str(&format!(".{c:X}"));
        }
        s
    }
}

/// HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1).
fn hevc_config(ptl: &Ptl, sps: &h265::Sps, vps: &[&[u8]], s: &[&[u8]], p: &[&[u8]]) -> Vec<u8> {
    let mut b = vec![1, ptl.first];
    b.extend_from_slice(&ptl.compatibility.to_be_bytes());
    b.extend_from_slice(&ptl.constraints);
    b.push(ptl.level);
    b.extend_from_slice(&0xF000u16.to_be_bytes()); // min_spatial_segmentation 0
    b.push(0xFC); // parallelismType unknown
    b.push(0xFC | (sps.chroma_format_idc.min(3) as u8));
    let depth = (sps.bit_depth_luma.saturating_sub(8).min(7)) as u8;
    b.push(0xF8 | depth);
    b.push(0xF8 | depth); // chroma depth: the SPS reader keeps luma only
    b.extend_from_slice(&0u16.to_be_bytes()); // avgFrameRate unknown
                                              // constantFrameRate 0, numTemporalLayers, temporalIdNested, 4-byte lengths.
    b.push(((ptl.sub_layers + 1) << 3) | (u8::from(ptl.nesting) << 2) | 3);
    b.push(3);
    for (kind, nals) in [
        (h265::nal_type::VPS, vps),
        (h265::nal_type::SPS, s),
        (h265::nal_type::PPS, p),
    ] {
        b.push(0x80 | kind); // array_completeness: all sets are here
        let n = nals.len().min(usize::from(u16::MAX));
        b.extend_from_slice(&(n as u16).to_be_bytes());
        for nal in nals.iter().take(n) {
            nal_with_len16(&mut b, nal);
        }
    }
    b
}

/// ES_Descriptor with the AudioSpecificConfig (ISO/IEC 14496-1 7.2.6.5).
fn esds(b: &mut Vec<u8>, asc: &[u8]) {
    let dsi_len = asc.len();
    let dcd_len = 13 + 2 + dsi_len;
    let es_len = 3 + 2 + dcd_len + 3;
    b.push(0x03);
    b.push(es_len as u8);
    b.extend_from_slice(&[0, 0, 0]); // ES_ID 0, no flags
    b.push(0x04);
    b.push(dcd_len as u8);
    b.push(0x40); // objectTypeIndication: MPEG-4 Audio
    b.push(0x15); // streamType audio (5 << 2), upStream 0, reserved 1
    b.extend_from_slice(&[0; 3]); // bufferSizeDB
    b.extend_from_slice(&[0; 8]); // max, avg bitrate
    b.push(0x05);
    b.push(dsi_len as u8);
    b.extend_from_slice(asc);
    b.extend_from_slice(&[0x06, 0x01, 0x02]); // SLConfigDescriptor: MP4
}

fn visual_entry(
    b: &mut Vec<u8>,
    kind: &[u8; 4],
    (w, h): (u16, u16),
    (cfg, config): (&[u8; 4], &[u8]),
    display: &Display,
) {
    boxed(b, kind, |b| {
        b.extend_from_slice(&[0; 6]);
        b.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&w.to_be_bytes());
        b.extend_from_slice(&h.to_be_bytes());
        b.extend_from_slice(&0x0048_0000u32.to_be_bytes()); // 72 dpi
        b.extend_from_slice(&0x0048_0000u32.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&1u16.to_be_bytes()); // frame_count
        b.extend_from_slice(&[0; 32]); // compressorname
        b.extend_from_slice(&0x0018u16.to_be_bytes()); // depth
        b.extend_from_slice(&(-1i16).to_be_bytes());
        boxed(b, cfg, |b| b.extend_from_slice(config));
        if let Some((hs, vs)) = display.aspect {
            boxed(b, b"pasp", |b| {
                b.extend_from_slice(&hs.to_be_bytes());
                b.extend_from_slice(&vs.to_be_bytes());
            });
        }
    });
}

fn audio_entry(
    b: &mut Vec<u8>,
    kind: &[u8; 4],
    info: &CodecInfo,
    inner: impl FnOnce(&mut Vec<u8>),
) {
    boxed(b, kind, |b| {
        b.extend_from_slice(&[0; 6]);
        b.extend_from_slice(&1u16.to_be_bytes()); // data_reference_index
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&info.channels.clamp(1, 8).to_be_bytes());
        b.extend_from_slice(&16u16.to_be_bytes()); // sample size
        b.extend_from_slice(&[0; 4]);
        // 16.16 fixed point: rates above 65535 Hz do not fit (the esds has the real one).
        let rate = info.clock_rate.min(65535) << 16;
        b.extend_from_slice(&rate.to_be_bytes());
        inner(b);
    });
}

/// The display matrix (ISO/IEC 14496-12 6.2.2) rotating clockwise by
/// `degrees`, translated back into view as ffmpeg writes it.
fn rotated_matrix(b: &mut Vec<u8>, degrees: u16, w: u16, h: u16) {
    const ONE: u32 = 0x0001_0000;
    const MINUS_ONE: u32 = 0xFFFF_0000;
    let (w, h) = (u32::from(w) << 16, u32::from(h) << 16);
    let m: [u32; 9] = match degrees {
        90 => [0, ONE, 0, MINUS_ONE, 0, 0, h, 0, 0x4000_0000],
        180 => [MINUS_ONE, 0, 0, 0, MINUS_ONE, 0, w, h, 0x4000_0000],
        270 => [0, MINUS_ONE, 0, ONE, 0, 0, 0, w, 0x4000_0000],
        _ => return matrix(b),
    };
    for v in m {
        b.extend_from_slice(&v.to_be_bytes());
    }
}

fn matrix(b: &mut Vec<u8>) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        b.extend_from_slice(&v.to_be_bytes());
    }
}

/// Writes a box: size, type, then what `inner` writes.
fn boxed(b: &mut Vec<u8>, kind: &[u8; 4], inner: impl FnOnce(&mut Vec<u8>)) {
    let start = b.len();
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(kind);
    inner(b);
    let size = u32::try_from(b.len() - start).unwrap_or(u32::MAX);
    b[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

fn full_box(
    b: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    inner: impl FnOnce(&mut Vec<u8>),
) {
    boxed(b, kind, |b| {
        b.extend_from_slice(&((u32::from(version) << 24) | (flags & 0xFF_FFFF)).to_be_bytes());
        inner(b);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS_640X360: [u8; 26] = [
        0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03,
        0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x16, 0x2d, 0x96,
    ];
    const PPS: [u8; 4] = [0x68, 0xeb, 0xe3, 0xcb];
    const HEVC_SPS_1080: [u8; 43] = [
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x78, 0xa0, 0x03, 0xc0, 0x80, 0x11, 0x07, 0xcb, 0x96, 0x56, 0x54, 0xa4, 0xc2,
        0xf0, 0x16, 0x80, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x0c, 0x84,
    ];

    fn h264_info() -> CodecInfo {
        h264::codec_info(&SPS_640X360, Some(&PPS)).unwrap()
    }

    fn aac_info() -> CodecInfo {
        let mut a = CodecInfo::new(CodecName::Aac, 44100);
        a.channels = 2;
        a.extradata = vec![0x12, 0x10];
        a
    }

    /// The boxes at the top level of `data`: (type, body).
    fn boxes(data: &[u8]) -> Vec<(String, &[u8])> {
        let mut out = Vec::new();
        let mut rest = data;
        while rest.len() >= 8 {
            let size = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            assert!(size >= 8 && size <= rest.len(), "box size {size}");
            out.push((
                String::from_utf8_lossy(&rest[4..8]).into_owned(),
                &rest[8..size],
            ));
            rest = &rest[size..];
        }
        assert!(rest.is_empty());
        out
    }

    fn find<'a>(data: &'a [u8], path: &[&str]) -> Option<&'a [u8]> {
        let (first, more) = path.split_first()?;
        let (_, body) = boxes(data).into_iter().find(|(k, _)| k == first)?;
        if more.is_empty() {
            Some(body)
        } else {
            // Full boxes with children: skip version and flags.
            let skip = usize::from(matches!(*first, "stsd" | "dref")) * 8;
            find(&body[skip..], more)
        }
    }

    #[test]
    fn init_segment_structure() {
        let w = Fmp4Writer::new(&[h264_info(), aac_info()]).unwrap();
        assert_eq!(w.mime_codecs(), "avc1.64001E,mp4a.40.2");
        assert_eq!(
            w.content_type(),
            "video/mp4; codecs=\"avc1.64001E,mp4a.40.2\""
        );
        let init = w.init_segment();
        let top: Vec<_> = boxes(&init).into_iter().map(|(k, _)| k).collect();
        assert_eq!(top, ["ftyp", "moov"]);
        let moov = find(&init, &["moov"]).unwrap();
        let kids: Vec<_> = boxes(moov).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kids, ["mvhd", "trak", "trak", "mvex"]);
        let avc1 = find(
            &init,
            &["moov", "trak", "mdia", "minf", "stbl", "stsd", "avc1"],
        )
        .unwrap();
        assert_eq!(u16::from_be_bytes([avc1[24], avc1[25]]), 640);
        assert_eq!(u16::from_be_bytes([avc1[26], avc1[27]]), 360);
        let avcc = find(&avc1[78..], &["avcC"]).unwrap();
        assert_eq!(&avcc[..6], [1, 0x64, 0x00, 0x1e, 0xFF, 0xE1]);
        assert_eq!(&avcc[8..8 + SPS_640X360.len()], SPS_640X360);
        let mvex = find(&init, &["moov", "mvex"]).unwrap();
        assert_eq!(boxes(mvex).len(), 2);
    }

    #[test]
    fn fragment_timing_and_flags() {
        let mut w = Fmp4Writer::new(&[h264_info(), aac_info()]).unwrap();
        let data = [0, 0, 0, 2, 0x65, 0x88];
        let key = Sample {
            dts: 1000,
            pts: 1000,
            keyframe: true,
            arrival_us: 5_000_000,
            data: &data,
        };
        let f1 = w.fragment(0, &key).unwrap();
        let top: Vec<_> = boxes(&f1).into_iter().map(|(k, _)| k).collect();
        assert_eq!(top, ["moof", "mdat"]);
        assert_eq!(find(&f1, &["mdat"]).unwrap(), data);
        let tfdt = find(&f1, &["moof", "traf", "tfdt"]).unwrap();
        assert_eq!(u64::from_be_bytes(tfdt[4..12].try_into().unwrap()), 0);
        let trun = find(&f1, &["moof", "traf", "trun"]).unwrap();
        let moof_len = boxes(&f1)[0].1.len() + 8;
        let field = |i: usize| u32::from_be_bytes(trun[4 + 4 * i..8 + 4 * i].try_into().unwrap());
        assert_eq!(field(0), 1); // sample count
        assert_eq!(field(1) as usize, moof_len + 8); // data offset
        assert_eq!(field(2), 3600); // first duration: an estimate (25 fps)
        assert_eq!(field(3), 6);
        assert_eq!(field(4), FLAGS_SYNC);

        // B-frame: pts before... after dts; a negative offset is allowed too.
        let f2 = w
            .fragment(
                0,
                &Sample {
                    dts: 4000,
                    pts: 7000,
                    keyframe: false,
                    arrival_us: 5_033_000,
                    data: &data,
                },
            )
            .unwrap();
        // It starts where the first ended and ends at its own time plus
        // the interval seen (3000 + 3000).
        let tfdt = find(&f2, &["moof", "traf", "tfdt"]).unwrap();
        assert_eq!(u64::from_be_bytes(tfdt[4..12].try_into().unwrap()), 3600);
        let trun = find(&f2, &["moof", "traf", "trun"]).unwrap();
        let field = |i: usize| u32::from_be_bytes(trun[4 + 4 * i..8 + 4 * i].try_into().unwrap());
        assert_eq!(field(2), 2400);
        assert_eq!(field(4), FLAGS_NON_SYNC);
        assert_eq!(field(5) as i32, 3000);

        // Audio arriving 0.5 s after the first video frame starts at 0.5 s.
        let f3 = w
            .fragment(
                1,
                &Sample {
                    dts: 77,
                    pts: 77,
                    keyframe: false,
                    arrival_us: 5_500_000,
                    data: &[1, 2, 3],
                },
            )
            .unwrap();
        let tfhd = find(&f3, &["moof", "traf", "tfhd"]).unwrap();
        assert_eq!(u32::from_be_bytes(tfhd[4..8].try_into().unwrap()), 2);
        let tfdt = find(&f3, &["moof", "traf", "tfdt"]).unwrap();
        assert_eq!(u64::from_be_bytes(tfdt[4..12].try_into().unwrap()), 22050);
        let mfhd = find(&f3, &["moof", "mfhd"]).unwrap();
        assert_eq!(u32::from_be_bytes(mfhd[4..8].try_into().unwrap()), 3);

        // A timestamp jump backwards: on from the end of the last frame.
        let f4 = w
            .fragment(
                0,
                &Sample {
                    dts: 10,
                    pts: 10,
                    keyframe: true,
                    arrival_us: 0,
                    data: &data,
                },
            )
            .unwrap();
        let tfdt = find(&f4, &["moof", "traf", "tfdt"]).unwrap();
        assert_eq!(u64::from_be_bytes(tfdt[4..12].try_into().unwrap()), 6000);
        assert!(w.fragment(2, &key).is_err());
    }

    /// (tfdt, duration) of a one-sample fragment.
    fn timing(f: &[u8]) -> (u64, u32) {
        let tfdt = find(f, &["moof", "traf", "tfdt"]).unwrap();
        let trun = find(f, &["moof", "traf", "trun"]).unwrap();
        (
            u64::from_be_bytes(tfdt[4..12].try_into().unwrap()),
            u32::from_be_bytes(trun[12..16].try_into().unwrap()),
        )
    }

    #[test]
    fn video_timeline_has_no_holes() {
        // 10 fps stamped at arrival (jitter of up to 30 ms, a 2 s stall, a
        // clock reset): each fragment starts where the last one ended, and
        // the timeline stays within one interval of the frames' own times.
        let mut dts: Vec<i64> = (0..40).map(|i| i * 9000).collect();
        for (i, d) in dts.iter_mut().enumerate() {
            *d += [0, 2700, -1800, 900][i % 4];
        }
        dts.extend((40..60).map(|i| i * 9000 + 180_000));
        dts.extend((0..20).map(|i| 7_000 + i * 9000));
        let mut w = Fmp4Writer::new(&[h264_info()]).unwrap();
        let data = [0, 0, 0, 2, 0x65, 0x88];
        let mut end = None;
        for (i, &d) in dts.iter().enumerate() {
            let f = w
                .fragment(
                    0,
                    &Sample {
                        dts: d,
                        pts: d,
                        keyframe: i == 0,
                        arrival_us: 0,
                        data: &data,
                    },
                )
                .unwrap();
            let (tfdt, duration) = timing(&f);
            assert_eq!(tfdt, end.unwrap_or(0), "sample {i}: a hole or an overlap");
            assert!(duration > 0, "sample {i}");
            end = Some(tfdt + u64::from(duration));
            if (2..60).contains(&i) && i != 40 {
                // Within an interval of the frame's own time (jitter), except
                // after a wrong guess (the first frame's 25 fps, the stall),
                // which the next frame makes up.
                assert!(
                    (tfdt as i64 - d).abs() <= 9000,
                    "sample {i}: {tfdt} for {d}"
                );
            }
        }
    }

    #[test]
    fn audio_durations_stay_exact() {
        let mut w = Fmp4Writer::new(&[aac_info()]).unwrap();
        for (i, d) in [0i64, 1024, 2100, 3072].into_iter().enumerate() {
            let f = w
                .fragment(
                    0,
                    &Sample {
                        dts: d,
                        pts: d,
                        keyframe: true,
                        arrival_us: 0,
                        data: &[1, 2, 3],
                    },
                )
                .unwrap();
            assert_eq!(timing(&f), ([0, 1024, 2100, 3072][i], 1024));
        }
    }

    #[test]
    fn hevc_config_and_mime() {
        let vps = [0x40, 0x01, 0x0c, 0x01, 0xff, 0xff];
        let pps = [0x44, 0x01, 0xc1, 0x72];
        let info = h265::codec_info(Some(&vps), &HEVC_SPS_1080, Some(&pps)).unwrap();
        let w = Fmp4Writer::new(&[info]).unwrap();
        // Main, compatible with Main and Main 10 (flags 1 and 2), level 4.0,
        // progressive + frame-only constraint flags.
        assert_eq!(w.mime_codecs(), "hvc1.1.6.L120.90");
        let init = w.init_segment();
        let hvc1 = find(
            &init,
            &["moov", "trak", "mdia", "minf", "stbl", "stsd", "hvc1"],
        )
        .unwrap();
        let hvcc = find(&hvc1[78..], &["hvcC"]).unwrap();
        assert_eq!(hvcc[..2], [1, 0x01]);
        assert_eq!(hvcc[12], 120);
        assert_eq!(hvcc[22], 3); // three arrays
        assert_eq!(hvcc[23], 0x80 | 32);
    }

    #[test]
    fn opus_and_aac_without_config() {
        let mut opus = CodecInfo::new(CodecName::Opus, 48000);
        opus.channels = 2;
        let mut aac = CodecInfo::new(CodecName::Aac, 16000);
        aac.channels = 1;
        let w = Fmp4Writer::new(&[opus, aac]).unwrap();
        assert_eq!(w.mime_codecs(), "opus,mp4a.40.2");
        let init = w.init_segment();
        let entry = find(
            &init,
            &["moov", "trak", "mdia", "minf", "stbl", "stsd", "Opus"],
        )
        .unwrap();
        let dops = find(&entry[28..], &["dOps"]).unwrap();
        assert_eq!(dops[1], 2);
    }

    #[test]
    fn refuses_what_it_cannot_write() {
        assert!(Fmp4Writer::new(&[]).is_err());
        assert!(Fmp4Writer::new(&[CodecInfo::new(CodecName::G722, 8000)]).is_err());
        // H.264 without parameter sets.
        assert!(Fmp4Writer::new(&[CodecInfo::new(CodecName::H264, 90000)]).is_err());
        let mut bad = h264_info();
        bad.extradata.truncate(7);
        assert!(Fmp4Writer::new(&[bad]).is_err());
        assert!(Fmp4Writer::new(&[CodecInfo::new(CodecName::Aac, 12345)]).is_err());
    }

    #[test]
    fn parameter_sets_in_band() {
        let mut frame = Vec::new();
        push_length_prefixed(&mut frame, &[0x09, 0xf0]);
        push_length_prefixed(&mut frame, &SPS_640X360);
        push_length_prefixed(&mut frame, &SPS_640X360);
        push_length_prefixed(&mut frame, &PPS);
        push_length_prefixed(&mut frame, &[0x65, 0x88]);
        let sets = parameter_sets_from_frame(CodecName::H264, &frame).unwrap();
        assert_eq!(sets, h264_info().extradata);
        assert_eq!(
            parameter_sets_from_frame(CodecName::H264, &[0, 0, 0, 2, 0x65, 0x88]),
            None
        );
        assert_eq!(parameter_sets_from_frame(CodecName::H265, &frame), None);
    }

    #[test]
    fn new_parameter_sets_in_band() {
        let mut w = Fmp4Writer::new(&[h264_info(), aac_info()]).unwrap();
        let before = w.init_segment();
        let mut same = Vec::new();
        push_length_prefixed(&mut same, &SPS_640X360);
        push_length_prefixed(&mut same, &PPS);
        push_length_prefixed(&mut same, &[0x65, 0x88]);
        assert!(!w.update_parameter_sets(0, &same));
        assert!(!w.update_parameter_sets(0, &[0, 0, 0, 2, 0x65, 0x88]));
        assert!(!w.update_parameter_sets(1, &same));
        assert!(!w.update_parameter_sets(7, &same));
        let mut other = Vec::new();
        push_length_prefixed(&mut other, &h264::tests::SPS_1920X1080_HIGH);
        push_length_prefixed(&mut other, &PPS);
        push_length_prefixed(&mut other, &[0x65, 0x88]);
        assert!(w.update_parameter_sets(0, &other));
        assert!(!w.update_parameter_sets(0, &other));
        let after = w.init_segment();
        assert_ne!(before, after);
        let avc1 = find(
            &after,
            &["moov", "trak", "mdia", "minf", "stbl", "stsd", "avc1"],
        )
        .unwrap();
        assert_eq!(u16::from_be_bytes([avc1[24], avc1[25]]), 1920);
        assert_eq!(w.mime_codecs(), "avc1.640028,mp4a.40.2");
    }
}
