//! camrouter: the host process. It owns the config, the log, the stream graph
//! and the HTTP API; every protocol is a plugin.

mod api;
mod app;
mod config_api;
mod dot;
mod graph;
mod hostapi;
mod loader;
mod logging;
mod metrics;
mod origin;
mod play;
mod plugin_http;
mod publish;
mod serve;
mod startup;
mod tls;
mod ws;
mod www;

use std::path::PathBuf;
use std::process::ExitCode;

/// Command-line options, go2rtc's spelling included (`-config`, `-c`).
#[derive(Debug, Default)]
pub struct Args {
    pub configs: Vec<String>,
    pub plugin_dirs: Vec<PathBuf>,
    pub version: bool,
    pub raw: Vec<String>,
}

pub fn parse_args(raw: Vec<String>) -> Result<Args, String> {
    let mut a = Args {
        raw: raw.clone(),
        ..Default::default()
    };
    let mut it = raw.into_iter().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with('-') && !f.contains(' ') => {
                (f.to_string(), Some(v.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-c" | "-config" | "--config" => a.configs.push(value("--config")?),
            "--plugins" | "-plugins" => a.plugin_dirs.push(PathBuf::from(value("--plugins")?)),
            "-v" | "-version" | "--version" => a.version = true,
            // go2rtc's daemon flag: we leave daemonizing to the service manager.
            "-d" | "-daemon" | "--daemon" => {}
            "-h" | "--help" => {
                return Err("usage: camrouter [-c CONFIG]... [--plugins DIR]... [-v]\n  CONFIG: a file path, inline YAML/JSON, or key.path=value".into())
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(a)
}

/// Re-executes the process with the same arguments (`POST /api/restart`).
pub fn restart_process(args: &[String]) -> ! {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(&args[0]));
    let err = std::process::Command::new(exe).args(&args[1..]).exec();
    eprintln!("restart failed: {err}");
    std::process::exit(1);
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.version {
        println!(
            "camrouter version {} (go2rtc {}) {}/{}",
            env!("CARGO_PKG_VERSION"),
            app::GO2RTC_VERSION,
            std::env::consts::OS,
            std::env::consts::ARCH
        );
        return ExitCode::SUCCESS;
    }
    match startup::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("camrouter: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_accept_go2rtc_spellings() {
        let a = parse_args(
            [
                "x",
                "-config=/a.yaml",
                "-c",
                "api.listen=:1",
                "--plugins",
                "/p",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        )
        .unwrap();
        assert_eq!(a.configs, vec!["/a.yaml", "api.listen=:1"]);
        assert_eq!(a.plugin_dirs, vec![PathBuf::from("/p")]);
        assert!(parse_args(vec!["x".into(), "--bogus".into()]).is_err());
    }
}
