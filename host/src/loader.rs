//! Plugin discovery and loading. `app.modules` is the allowlist: a plugin file
//! whose module is not listed is never opened. Refusals are one log line each;
//! the host keeps running.

use std::collections::{BTreeSet, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use abi_stable::library::{lib_header_from_path, LibraryError, RootModule};
use abi_stable::std_types::{RResult, RStr, RString};
use camrouter_plugin_api::abi::{PluginBox, PluginRoot_Ref, SourceBox, SourceEventsBox};

use crate::graph::Opener;

pub const FILE_PREFIX: &str = "libcamrouter_plugin_";
/// `app.modules` names that are parts of the host, not plugins.
pub const HOST_MODULES: &[&str] = &["api", "ws", "streams", "app", "log", "preload", "static"];
pub const SYSTEM_DIR: &str = "/usr/lib/camrouter/plugins";
/// Plugin dir below the binary's prefix (`<prefix>/bin/camrouter`).
pub const PREFIX_PLUGIN_DIR: &str = "lib/camrouter/plugins";

pub struct LoadedPlugin {
    pub name: String,
    pub version: String,
    /// `None` for plugins linked into a bundled binary.
    pub path: Option<PathBuf>,
    pub object: PluginBox,
}

#[derive(Default)]
pub struct Registry {
    pub plugins: Vec<LoadedPlugin>,
    schemes: HashMap<String, usize>,
    routes: HashMap<String, usize>,
    ws_types: Vec<(String, usize)>,
}

/// A plugin file found on disk, not yet opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub module: String,
    pub path: PathBuf,
}

/// Lists plugin files in the dirs, first dir wins for a module name.
pub fn discover(dirs: &[PathBuf]) -> Vec<Candidate> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for path in files {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(module) = name
                .strip_prefix(FILE_PREFIX)
                .and_then(|n| n.strip_suffix(".so"))
            else {
                continue;
            };
            if seen.insert(module.to_string()) {
                out.push(Candidate {
                    module: module.to_string(),
                    path,
                });
            }
        }
    }
    out
}

/// Refuses files that other users could have replaced.
pub fn check_permissions(path: &Path) -> Result<(), String> {
    let check = |p: &Path, what: &str| -> Result<(), String> {
        let meta = std::fs::metadata(p).map_err(|e| format!("{what}: {e}"))?;
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(format!(
                "{what} is writable by group or others (mode {:o})",
                meta.permissions().mode() & 0o777
            ));
        }
        Ok(())
    };
    check(path, "file")?;
    if let Some(dir) = path.parent() {
        check(dir, &format!("directory {}", dir.display()))?;
    }
    Ok(())
}

/// First line of an abi_stable error, capped: its layout mismatch reports run
/// to thousands of lines.
fn short_error(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let mut line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("unknown error")
        .to_string();
    if line.len() > 240 {
        line.truncate(240);
        line.push('…');
    }
    line
}

/// Opens one plugin file and checks its ABI. Never panics on a bad file.
pub fn open_file(path: &Path) -> Result<PluginRoot_Ref, String> {
    check_permissions(path)?;
    let header = lib_header_from_path(path).map_err(|e| describe(&e, None))?;
    let built_for = header.version_strings().to_string();
    header.init_root_module::<PluginRoot_Ref>().map_err(|e| {
        format!(
            "incompatible plugin-api: {}",
            describe(&e, Some(&built_for))
        )
    })
}

/// The plugin-api version this host was built with.
pub fn host_abi() -> String {
    <PluginRoot_Ref as RootModule>::VERSION_STRINGS.to_string()
}

/// abi_stable's errors in one line a user can act on. `built_for` is the
/// plugin-api version the plugin says it was built with, once it is known.
fn describe(e: &LibraryError, built_for: Option<&str>) -> String {
    match e {
        LibraryError::OpenError { .. } => format!("cannot open: {}", short_error(e)),
        LibraryError::GetSymbolError { .. } => {
            "not a camrouter plugin (no abi_stable root module)".into()
        }
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => format!(
            "built for plugin-api {actual_version}, this host has {expected_version}: rebuild the plugin"
        ),
        // Same 0.MINOR but other types: a plugin-api changed without a
        // version bump, or a plugin built against another patch level that
        // changed a trait it implements.
        LibraryError::AbiInstability(_) => format!(
            "built for plugin-api {}, its types differ from this host's plugin-api {}: rebuild the plugin",
            built_for.unwrap_or("(unknown)"),
            host_abi()
        ),
        other => short_error(other),
    }
}

pub fn module_name(root: &PluginRoot_Ref) -> String {
    (root.name())().to_string()
}

impl Registry {
    pub fn add(&mut self, plugin: LoadedPlugin) {
        let idx = self.plugins.len();
        for s in plugin.object.schemes() {
            self.schemes.entry(s.into_string()).or_insert(idx);
        }
        for r in plugin.object.routes() {
            self.routes.entry(r.into_string()).or_insert(idx);
        }
        for t in plugin.object.ws_types() {
            self.ws_types.push((t.into_string(), idx));
        }
        self.plugins.push(plugin);
    }

    pub fn schemes(&self) -> Vec<String> {
        let mut v: Vec<String> = self.schemes.keys().cloned().collect();
        v.sort();
        v
    }

    /// The plugin serving `method` on `path`: a `"METHOD /path"` route first
    /// (`true`: the plugin streams the request body), then a plain one.
    pub fn route(&self, method: &str, path: &str) -> Option<(&PluginBox, bool)> {
        if let Some(&i) = self.routes.get(&format!("{method} {path}")) {
            return Some((&self.plugins[i].object, true));
        }
        self.routes
            .get(path)
            .map(|&i| (&self.plugins[i].object, false))
    }

    /// Index of the plugin handling a `/api/ws` message type.
    pub fn ws_handler(&self, msg_type: &str) -> Option<usize> {
        self.ws_types
            .iter()
            .find(|(t, _)| match t.strip_suffix('*') {
                Some(prefix) => msg_type.starts_with(prefix),
                None => t == msg_type,
            })
            .map(|(_, i)| *i)
    }

    /// The plugin that opens `url`, by its scheme.
    pub fn plugin_for(&self, url: &str) -> Option<&LoadedPlugin> {
        let idx = self.schemes.get(scheme_of(url)?)?;
        self.plugins.get(*idx)
    }

    pub fn all(&self) -> impl Iterator<Item = &LoadedPlugin> {
        self.plugins.iter()
    }

    pub fn has_module(&self, name: &str) -> bool {
        self.plugins.iter().any(|p| p.name == name)
    }
}

/// The scheme of a source URL as go2rtc takes it: everything before the first `:`.
pub fn scheme_of(url: &str) -> Option<&str> {
    let i = url.find(':')?;
    let s = &url[..i];
    (!s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.'))
    .then_some(s)
}

pub struct RegistryOpener(pub Arc<Registry>);

impl Opener for RegistryOpener {
    fn open(&self, url: &str, events: SourceEventsBox) -> Result<SourceBox, String> {
        let scheme = scheme_of(url).ok_or_else(|| format!("source without scheme: {url}"))?;
        let idx = self.0.schemes.get(scheme).ok_or_else(|| {
            format!("unsupported scheme: {scheme} (no loaded module handles it; check app.modules)")
        })?;
        match self.0.plugins[*idx]
            .object
            .open_source(RStr::from_str(url), events)
        {
            RResult::ROk(s) => Ok(s),
            RResult::RErr(e) => Err(RString::into_string(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_parsing() {
        assert_eq!(scheme_of("rtsp://x"), Some("rtsp"));
        assert_eq!(scheme_of("exec:ffmpeg -i x"), Some("exec"));
        assert_eq!(scheme_of("nocolon"), None);
        assert_eq!(scheme_of("a b:c"), None);
    }

    #[test]
    fn abi_refusals_name_both_versions() {
        use abi_stable::sabi_types::VersionNumber;
        let old = LibraryError::IncompatibleVersionNumber {
            library_name: "camrouter_plugin",
            expected_version: VersionNumber {
                major: 0,
                minor: 2,
                patch: 0,
            },
            actual_version: VersionNumber {
                major: 0,
                minor: 1,
                patch: 3,
            },
        };
        assert_eq!(
            describe(&old, Some("0.1.3")),
            "built for plugin-api 0.1.3, this host has 0.2.0: rebuild the plugin"
        );
        let layout = LibraryError::AbiInstability(abi_stable::std_types::RBoxError::new(
            std::io::Error::other("field 12 differs\n...thousands of lines"),
        ));
        assert_eq!(
            describe(&layout, Some("0.2.0")),
            format!("built for plugin-api 0.2.0, its types differ from this host's plugin-api {}: rebuild the plugin", host_abi())
        );
    }

    #[test]
    fn discovery_first_dir_wins_and_ignores_other_files() {
        let base = std::env::temp_dir().join(format!("camrouter-disc-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        for (d, f) in [
            (&a, "libcamrouter_plugin_exec.so"),
            (&b, "libcamrouter_plugin_exec.so"),
            (&b, "libcamrouter_plugin_rtsp.so"),
            (&b, "libother.so"),
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let c = discover(&[a.clone(), b.clone()]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].path, a.join("libcamrouter_plugin_exec.so"));
        assert_eq!(c[1].module, "rtsp");
        // Not a shared library at all: a clear error, no panic.
        std::fs::set_permissions(&c[0].path, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&a, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(open_file(&c[0].path).is_err());
        std::fs::set_permissions(&c[0].path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(open_file(&c[0].path)
            .err()
            .unwrap()
            .contains("writable by group or others"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
