//! Re-encodes JPEG files with the standard Huffman tables, for checking by
//! hand that the pixels do not change (this crate has no decoder):
//!
//! ```text
//! cargo run -p camrouter-media --example jpeg_standard_huffman -- plugins/media/testdata/*.jpg
//! for f in plugins/media/testdata/*.std.jpg; do
//!   cmp <(djpeg "${f%.std.jpg}.jpg" | md5sum) <(djpeg "$f" | md5sum); done
//! ```
//!
//! Each `X.jpg` gives `X.std.jpg` next to it.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut ok = true;
    for path in std::env::args().skip(1) {
        let result = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|jpeg| {
                let mut out = Vec::new();
                camrouter_media::jpeg_huffman::to_standard_huffman(&jpeg, &mut out)
                    .map_err(|e| e.to_string())?;
                let dst = format!("{}.std.jpg", path.trim_end_matches(".jpg"));
                std::fs::write(&dst, &out).map_err(|e| e.to_string())?;
                Ok(dst)
            });
        match result {
            Ok(dst) => println!("{path} -> {dst}"),
            Err(e) => {
                eprintln!("{path}: {e}");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
