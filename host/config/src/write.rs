//! Atomic file replacement with a backup.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// How many earlier versions are kept: `<path>.bak` (the newest),
/// `<path>.bak.1`, ... `<path>.bak.{BACKUPS-1}`.
pub const BACKUPS: usize = 3;

/// Replaces the file at `path` with `new_text` atomically:
///
/// 1. writes `<path>.tmp` in the same directory (with the permissions of the
///    existing file) and fsyncs it;
/// 2. when the existing file differs from `new_text`, shifts the backups one
///    generation (`.bak` → `.bak.1` → `.bak.2`, the oldest dropped) and copies
///    it to `<path>.bak`; so a bad write followed by a few more still leaves
///    the good version on disk;
/// 3. renames the tmp file over `path` and fsyncs the directory (unix).
///
/// When `path` is a symlink the link target is replaced (the link is kept).
/// On unix the owner/group of the original are kept when permitted.
pub fn write_atomic(path: &Path, new_text: &str) -> io::Result<()> {
    let target = match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    };
    let tmp = with_suffix(&target, ".tmp");
    let bak = with_suffix(&target, ".bak");
    let original = match fs::metadata(&target) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };

    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        // permissions first: the new content may hold secrets
        if let Some(m) = &original {
            f.set_permissions(m.permissions())?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                // best effort: only root may give files away
                let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
            }
        }
        f.write_all(new_text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        if original.is_some() && fs::read(&target)? != new_text.as_bytes() {
            for n in (1..BACKUPS).rev() {
                let older = with_suffix(&bak, &format!(".{n}"));
                let newer = if n == 1 {
                    bak.clone()
                } else {
                    with_suffix(&bak, &format!(".{}", n - 1))
                };
                match fs::rename(&newer, &older) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            fs::copy(&target, &bak)?;
        }
        fs::rename(&tmp, &target)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    #[cfg(unix)]
    if let Some(dir) = target.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("camrouter-config-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn writes_with_backup_and_mode() {
        let d = tmpdir("write");
        let p = d.join("go2rtc.yaml");
        write_atomic(&p, "a: 1\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "a: 1\n");
        assert!(!d.join("go2rtc.yaml.bak").exists());
        assert!(!d.join("go2rtc.yaml.tmp").exists());

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        }
        write_atomic(&p, "a: 2\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "a: 2\n");
        assert_eq!(
            fs::read_to_string(d.join("go2rtc.yaml.bak")).unwrap(),
            "a: 1\n"
        );
        assert!(!d.join("go2rtc.yaml.tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn keeps_generations_of_backups() {
        let d = tmpdir("generations");
        let p = d.join("go2rtc.yaml");
        for i in 1..=5 {
            write_atomic(&p, &format!("a: {i}\n")).unwrap();
        }
        // Writing the same text again makes no new generation.
        write_atomic(&p, "a: 5\n").unwrap();
        let read = |s: &str| fs::read_to_string(d.join(s)).unwrap();
        assert_eq!(read("go2rtc.yaml"), "a: 5\n");
        assert_eq!(read("go2rtc.yaml.bak"), "a: 4\n");
        assert_eq!(read("go2rtc.yaml.bak.1"), "a: 3\n");
        assert_eq!(read("go2rtc.yaml.bak.2"), "a: 2\n");
        assert!(!d.join("go2rtc.yaml.bak.3").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn keeps_symlink() {
        let d = tmpdir("symlink");
        let real = d.join("real.yaml");
        let link = d.join("link.yaml");
        fs::write(&real, "a: 1\n").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, "a: 2\n").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "a: 2\n");
        assert_eq!(
            fs::read_to_string(d.join("real.yaml.bak")).unwrap(),
            "a: 1\n"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn error_leaves_no_tmp() {
        let d = tmpdir("err");
        let p = d.join("missing-dir").join("x.yaml");
        assert!(write_atomic(&p, "x").is_err());
        fs::remove_dir_all(&d).unwrap();
    }
}
