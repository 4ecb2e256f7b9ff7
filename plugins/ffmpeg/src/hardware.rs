//! Hardware encoders: the engines go2rtc knows, and finding the one this
//! machine has.
//!
//! [`choose`] is pure: it takes what [`detect`] gathers (the output of
//! `ffmpeg -hide_banner -encoders`, the entries of `/dev/dri`, whether an
//! NVIDIA driver is loaded) and returns the best candidate, in go2rtc's order.
//! [`detect`] gathers those facts, then confirms each candidate the way
//! go2rtc does, by encoding one second of a test pattern with it.

use std::fmt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// A hardware acceleration engine, as named in `#hardware=<engine>` and in
/// the `<codec>/<engine>` templates (`h264/vaapi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HardwareEngine {
    /// Intel iGPU and AMD GPU on Linux.
    Vaapi,
    /// Raspberry Pi 3 and 4.
    V4l2m2m,
    /// NVIDIA (NVENC) on Linux and Windows.
    Cuda,
    /// Intel on Windows (DXVA2 decoding, QSV encoding).
    Dxva2,
    /// macOS.
    VideoToolbox,
    /// Rockchip (needs an ffmpeg build with rkmpp).
    Rkmpp,
}

impl HardwareEngine {
    /// Every engine, in no particular order.
    pub const ALL: [HardwareEngine; 6] = [
        HardwareEngine::Vaapi,
        HardwareEngine::V4l2m2m,
        HardwareEngine::Cuda,
        HardwareEngine::Dxva2,
        HardwareEngine::VideoToolbox,
        HardwareEngine::Rkmpp,
    ];

    /// The name used in URLs and template keys.
    pub fn as_str(self) -> &'static str {
        match self {
            HardwareEngine::Vaapi => "vaapi",
            HardwareEngine::V4l2m2m => "v4l2m2m",
            HardwareEngine::Cuda => "cuda",
            HardwareEngine::Dxva2 => "dxva2",
            HardwareEngine::VideoToolbox => "videotoolbox",
            HardwareEngine::Rkmpp => "rkmpp",
        }
    }

    /// The ffmpeg encoder that proves the engine is compiled in (H.264).
    pub fn h264_encoder(self) -> &'static str {
        match self {
            HardwareEngine::Vaapi => "h264_vaapi",
            HardwareEngine::V4l2m2m => "h264_v4l2m2m",
            HardwareEngine::Cuda => "h264_nvenc",
            HardwareEngine::Dxva2 => "h264_qsv",
            HardwareEngine::VideoToolbox => "h264_videotoolbox",
            HardwareEngine::Rkmpp => "h264_rkmpp",
        }
    }

    /// Arguments (after the binary) that encode one second of a test
    /// pattern to H.264 with this engine and discard it; exit status 0
    /// means the engine works. Same probes as go2rtc.
    pub fn probe_args(self) -> Vec<&'static str> {
        let s = match self {
            HardwareEngine::Vaapi => {
                "-init_hw_device vaapi -f lavfi -i testsrc2 -t 1 -vf format=nv12,hwupload -c h264_vaapi -f null -"
            }
            HardwareEngine::V4l2m2m => "-f lavfi -i testsrc2 -t 1 -c h264_v4l2m2m -f null -",
            HardwareEngine::Cuda => {
                "-init_hw_device cuda -f lavfi -i testsrc2 -t 1 -c h264_nvenc -f null -"
            }
            HardwareEngine::Dxva2 => {
                "-init_hw_device dxva2 -f lavfi -i testsrc2 -t 1 -c h264_qsv -f null -"
            }
            HardwareEngine::VideoToolbox => {
                "-f lavfi -i testsrc2=size=svga -t 1 -c h264_videotoolbox -f null -"
            }
            HardwareEngine::Rkmpp => "-f lavfi -i testsrc2 -t 1 -c h264_rkmpp -f null -",
        };
        s.split(' ').collect()
    }
}

impl fmt::Display for HardwareEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An engine name that is not one of [`HardwareEngine::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hardware engine {0:?} (known: vaapi, v4l2m2m, cuda, dxva2, videotoolbox, rkmpp)")]
pub struct UnknownEngine(pub String);

impl FromStr for HardwareEngine {
    type Err = UnknownEngine;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HardwareEngine::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEngine(s.to_string()))
    }
}

/// Where the engines are looked for; go2rtc's priority depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Linux (and other non-BSD unixes) on x86 and anything not ARM:
    /// CUDA, then VAAPI.
    Linux,
    /// Linux on ARM (Raspberry Pi, Rockchip): V4L2 M2M, then RKMPP.
    LinuxArm,
    /// macOS: VideoToolbox.
    MacOs,
    /// Windows: CUDA, then DXVA2/QSV.
    Windows,
}

impl Platform {
    /// The platform this binary was built for.
    pub fn current() -> Platform {
        if cfg!(target_os = "macos") {
            Platform::MacOs
        } else if cfg!(windows) {
            Platform::Windows
        } else if cfg!(any(target_arch = "arm", target_arch = "aarch64")) {
            Platform::LinuxArm
        } else {
            Platform::Linux
        }
    }
}

/// Whether `ffmpeg -encoders` output lists the encoder `name`.
///
/// Lines look like ` V....D h264_vaapi   H.264/AVC (VAAPI) (codec h264)`;
/// the legend above the `------` line is skipped.
pub fn has_encoder(encoders: &str, name: &str) -> bool {
    let body = match encoders.find("------") {
        Some(i) => &encoders[i + 6..],
        None => encoders,
    };
    body.lines().any(|line| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some(flags), Some(n)) => flags.len() == 6 && n == name,
            _ => false,
        }
    })
}

/// The engines worth probing, best first, following go2rtc's order for the
/// platform. An engine is a candidate when ffmpeg lists its H.264 encoder
/// and the device it needs is present (a DRM render node for VAAPI, the
/// NVIDIA driver for CUDA).
pub fn candidates(
    platform: Platform,
    encoders: &str,
    dri_devices: &[&str],
    nvidia: bool,
) -> Vec<HardwareEngine> {
    use HardwareEngine::*;
    let order: &[HardwareEngine] = match platform {
        Platform::Linux => &[Cuda, Vaapi],
        Platform::LinuxArm => &[V4l2m2m, Rkmpp],
        Platform::MacOs => &[VideoToolbox],
        Platform::Windows => &[Cuda, Dxva2],
    };
    let render_node = dri_devices.iter().any(|d| d.starts_with("renderD"));
    order
        .iter()
        .copied()
        .filter(|e| has_encoder(encoders, e.h264_encoder()))
        .filter(|e| match e {
            Cuda => nvidia,
            Vaapi => render_node,
            _ => true,
        })
        .collect()
}

/// The best engine for this platform ([`Platform::current`]) given the
/// facts [`detect`] gathers; see [`candidates`].
pub fn choose(encoders: &str, dri_devices: &[&str], nvidia: bool) -> Option<HardwareEngine> {
    candidates(Platform::current(), encoders, dri_devices, nvidia)
        .into_iter()
        .next()
}

/// How long one probe encode may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// Finds the hardware engine of this machine: runs `bin -hide_banner
/// -encoders`, lists `/dev/dri`, looks for the NVIDIA driver, then runs
/// go2rtc's probe encode for each candidate and returns the first that
/// works. `None` means software encoding. Blocks for up to a few seconds per
/// candidate; call it once.
pub fn detect(bin: &str) -> Option<HardwareEngine> {
    let out = Command::new(bin)
        .args(["-hide_banner", "-encoders"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let encoders = String::from_utf8_lossy(&out.stdout);
    let dri: Vec<String> = std::fs::read_dir("/dev/dri")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let dri: Vec<&str> = dri.iter().map(String::as_str).collect();
    let nvidia = Path::new("/dev/nvidiactl").exists() || Path::new("/proc/driver/nvidia").exists();
    candidates(Platform::current(), &encoders, &dri, nvidia)
        .into_iter()
        .find(|e| probe(bin, &e.probe_args()))
}

/// Runs `bin args…` with no input or output; true when it exits with 0
/// within [`PROBE_TIMEOUT`].
fn probe(bin: &str, args: &[&str]) -> bool {
    let Ok(mut child) = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if start.elapsed() < PROBE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HardwareEngine::*;

    const ENCODERS: &str = "Encoders:
 V..... = Video
 A..... = Audio
 .....D = Supports direct rendering method 1
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC (codec h264)
 V....D h264_nvenc           NVIDIA NVENC H.264 encoder (codec h264)
 V..... h264_v4l2m2m         V4L2 mem2mem H.264 encoder wrapper (codec h264)
 V....D h264_vaapi           H.264/AVC (VAAPI) (codec h264)
 V....D hevc_vaapi           H.265/HEVC (VAAPI) (codec hevc)
";

    const SOFTWARE_ONLY: &str = " ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC (codec h264)
 A....D aac                  AAC (Advanced Audio Coding)
";

    #[test]
    fn parses_encoder_list() {
        assert!(has_encoder(ENCODERS, "h264_vaapi"));
        assert!(has_encoder(ENCODERS, "libx264"));
        assert!(!has_encoder(ENCODERS, "h264_rkmpp"));
        // legend lines are not encoders
        assert!(!has_encoder(ENCODERS, "="));
        assert!(!has_encoder("", "libx264"));
    }

    #[test]
    fn linux_prefers_cuda_then_vaapi() {
        let p = Platform::Linux;
        assert_eq!(
            candidates(p, ENCODERS, &["card0", "renderD128"], true),
            vec![Cuda, Vaapi]
        );
        // no NVIDIA driver: VAAPI
        assert_eq!(
            candidates(p, ENCODERS, &["card0", "renderD128"], false),
            vec![Vaapi]
        );
        // VAAPI needs a render node
        assert_eq!(candidates(p, ENCODERS, &["card0"], false), vec![]);
        assert_eq!(candidates(p, ENCODERS, &[], true), vec![Cuda]);
        // v4l2m2m is never picked on x86, even if compiled in
        assert!(!candidates(p, ENCODERS, &[], false).contains(&V4l2m2m));
    }

    #[test]
    fn arm_prefers_v4l2m2m_then_rkmpp() {
        let rk = " ------\n V..... h264_rkmpp  Rockchip MPP (codec h264)\n";
        assert_eq!(
            candidates(Platform::LinuxArm, ENCODERS, &["renderD128"], false),
            vec![V4l2m2m]
        );
        assert_eq!(
            candidates(Platform::LinuxArm, rk, &["renderD128"], false),
            vec![Rkmpp]
        );
        // VAAPI is not used on ARM, even with a render node and the encoder
        assert!(!candidates(Platform::LinuxArm, ENCODERS, &["renderD128"], true).contains(&Vaapi));
    }

    #[test]
    fn other_platforms() {
        let mac = " ------\n V....D h264_videotoolbox  VideoToolbox H.264 Encoder (codec h264)\n";
        assert_eq!(
            candidates(Platform::MacOs, mac, &[], false),
            vec![VideoToolbox]
        );
        let win = " ------\n V..... h264_qsv  H.264 (Intel Quick Sync Video) (codec h264)\n V....D h264_nvenc  NVENC (codec h264)\n";
        assert_eq!(
            candidates(Platform::Windows, win, &[], true),
            vec![Cuda, Dxva2]
        );
        assert_eq!(candidates(Platform::Windows, win, &[], false), vec![Dxva2]);
    }

    #[test]
    fn software_only_means_none() {
        assert_eq!(choose(SOFTWARE_ONLY, &["renderD128"], true), None);
        assert_eq!(choose("", &[], false), None);
    }

    #[test]
    fn choose_uses_current_platform() {
        let expect = candidates(Platform::current(), ENCODERS, &["renderD128"], true)
            .first()
            .copied();
        assert_eq!(choose(ENCODERS, &["renderD128"], true), expect);
        if Platform::current() == Platform::Linux {
            assert_eq!(expect, Some(Cuda));
        }
    }

    #[test]
    fn engine_names_round_trip() {
        for e in HardwareEngine::ALL {
            assert_eq!(e.as_str().parse::<HardwareEngine>(), Ok(e));
            assert_eq!(e.to_string(), e.as_str());
            assert_eq!(e.probe_args().last(), Some(&"-"));
        }
        let err = "qsv".parse::<HardwareEngine>().unwrap_err();
        assert!(err.to_string().contains("\"qsv\""), "{err}");
    }
}
